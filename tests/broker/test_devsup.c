/* devsup.c: a device through its instances, with real processes
 * (ioreq-dev-null, unconfined so that the test needs no launcher): the
 * handshake, deaths, restarts with backoff, giving up, cutting off, and a
 * stop that leaves nothing behind. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devsup.h"
#include "loop.h"

#define WAIT_S 10

struct record {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned ready, down, failed;
	uint32_t ready_gen, down_gen;
	char why[256];
};

static struct record rec = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
static struct loop *loop;
static struct devsup *dev;
static struct cfg_device cfg;
static struct cfg_range pio = { .start = 0x80, .end = 0x83 };
static char *no_args[] = { NULL };
static char dir[64];

static void on_ready(void *opaque, uint32_t gen)
{
	pthread_mutex_lock(&rec.lock);
	rec.ready++;
	rec.ready_gen = gen;
	pthread_cond_broadcast(&rec.cond);
	pthread_mutex_unlock(&rec.lock);
}

static void on_down(void *opaque, uint32_t gen, const char *why)
{
	pthread_mutex_lock(&rec.lock);
	rec.down++;
	rec.down_gen = gen;
	snprintf(rec.why, sizeof(rec.why), "%s", why);
	pthread_cond_broadcast(&rec.cond);
	pthread_mutex_unlock(&rec.lock);
}

static void on_failed(void *opaque)
{
	pthread_mutex_lock(&rec.lock);
	rec.failed++;
	pthread_cond_broadcast(&rec.cond);
	pthread_mutex_unlock(&rec.lock);
}

static int on_reply(void *opaque, uint32_t gen, uint64_t id, uint64_t value, bool ok)
{
	return -ENOENT;
}

static int on_interrupt(void *opaque, const Ioreq__Interrupt *irq)
{
	return 0;
}

static int on_claim(void *opaque, uint32_t gen, uint32_t type, uint64_t start, uint64_t size, bool release,
		    uint32_t tag, const char **why)
{
	*why = "no";
	return -EPERM;
}

static const struct devsup_events events = {
	.ready = on_ready,
	.down = on_down,
	.reply = on_reply,
	.interrupt = on_interrupt,
	.claim = on_claim,
	.failed = on_failed,
};

static bool wait_count(unsigned *counter, unsigned n)
{
	struct timespec until;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += WAIT_S;
	pthread_mutex_lock(&rec.lock);
	while (*counter < n)
		if (pthread_cond_clockwait(&rec.cond, &rec.lock, CLOCK_MONOTONIC, &until))
			break;
	ok = *counter >= n;
	pthread_mutex_unlock(&rec.lock);
	return ok;
}

static void do_new(void *arg)
{
	int *r = arg;
	struct devsup_params p = {
		.cfg = &cfg,
		.vm = "t",
		.runtime_dir = dir,
		.loop = loop,
		.events = &events,
	};

	*r = devsup_new(&p, &dev);
}

/* On the loop's thread: no cmocka assertion there, its jump would land in
 * the wrong thread. */
static void do_start(void *arg)
{
	*(int *)arg = devsup_start(dev);
}

static int start(void)
{
	int r;

	loop_call(loop, do_start, &r);
	return r;
}

static void do_stop(void *arg)
{
	devsup_stop(dev);
}

static void do_free(void *arg)
{
	dev = devsup_free(dev);
}

static int setup(void **state)
{
	int r;

	memset(&rec.ready, 0, sizeof(rec) - offsetof(struct record, ready));
	snprintf(dir, sizeof(dir), "/tmp/ioreq-devsup.XXXXXX");
	assert_non_null(mkdtemp(dir));
	cfg = (struct cfg_device){
		.name = "null",
		.program = IOREQ_BINDIR "/ioreq-dev-null",
		.args = no_args,
		.pio = &pio,
		.n_pio = 1,
		.deadline_ms = 500,
		.sandbox = CFG_SANDBOX_NONE,
		.on_failure = CFG_ON_FAILURE_FALLBACK,
		.restart_limit = 2,
		.restart_window_ms = 60000,
		.max_inflight = 16,
		.max_msg_rate = 1000,
		.max_violations = 3,
	};
	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(loop_start(loop, "test-devsup"), 0);
	loop_call(loop, do_new, &r);
	assert_int_equal(r, 0);
	return 0;
}

static int teardown(void **state)
{
	loop_call(loop, do_free, NULL);
	loop = loop_free(loop);
	rmdir(dir);
	return 0;
}

static pid_t pid_of(void)
{
	struct devsup_info i;

	devsup_info(dev, &i);
	return i.pid;
}

static void start_ready(void)
{
	assert_int_equal(start(), 0);
	assert_true(wait_count(&rec.ready, 1));
	assert_int_equal(rec.ready_gen, devsup_ready_gen(dev));
	assert_int_equal(devsup_state(dev), DEVSUP_READY);
	assert_true(pid_of() > 0);
}

/* Killed: down once, with why; restarted; ready again as the next instance. */
static void test_restart(void **state)
{
	struct devsup_info i;
	uint32_t gen;

	start_ready();
	gen = rec.ready_gen;
	assert_int_equal(kill(pid_of(), SIGKILL), 0);
	assert_true(wait_count(&rec.down, 1));
	assert_int_equal(rec.down_gen, gen);
	/* Whichever the broker notices first: the hang-up or the death. */
	assert_true(strstr(rec.why, "killed by signal 9") || !strcmp(rec.why, "disconnected"));
	assert_true(wait_count(&rec.ready, 2));
	assert_int_equal(rec.ready_gen, gen + 1);
	devsup_info(dev, &i);
	assert_int_equal(i.restarts, 1);
	assert_int_equal(i.exits, 1);
	assert_int_equal(rec.down, 1);
}

/* Past its restart limit within the window, the device is given up. */
static void test_give_up(void **state)
{
	struct devsup_info i;

	start_ready();
	for (unsigned n = 1; n <= 3; n++) {
		assert_true(wait_count(&rec.ready, n));
		assert_int_equal(kill(pid_of(), SIGKILL), 0);
		assert_true(wait_count(&rec.down, n));
	}
	assert_true(wait_count(&rec.failed, 1));
	assert_int_equal(devsup_state(dev), DEVSUP_FAILED);
	devsup_info(dev, &i);
	assert_non_null(strstr(i.failure, "failed 3 times within 60000 ms"));
	assert_int_equal(i.pid, 0);
}

/* Cut off: its process is killed by the broker, never trusted again, and a
 * fresh instance replaces it. Events of the old instance change nothing. */
static void test_cut_off(void **state)
{
	uint32_t gen;
	pid_t old;

	start_ready();
	gen = rec.ready_gen;
	old = pid_of();
	devsup_cut_off(dev, gen, "lied");
	assert_true(wait_count(&rec.down, 1));
	assert_string_equal(rec.why, "lied: cut off");
	assert_true(wait_count(&rec.ready, 2));
	assert_true(pid_of() != old);
	assert_true(kill(old, 0) < 0 && errno == ESRCH);
	/* The old instance once more: nothing happens to the new one. */
	devsup_cut_off(dev, gen, "lied again");
	devsup_violation(dev, gen, "late");
	usleep(100000);
	assert_int_equal(rec.down, 1);
	assert_int_equal(devsup_state(dev), DEVSUP_READY);
}

/* Soft violations are tolerated up to max_violations a minute. */
static void test_violations(void **state)
{
	uint32_t gen;

	start_ready();
	gen = rec.ready_gen;
	for (unsigned n = 0; n < cfg.max_violations; n++)
		devsup_violation(dev, gen, "replied late");
	assert_int_equal(rec.down, 0);
	devsup_violation(dev, gen, "replied late");
	assert_true(wait_count(&rec.down, 1));
	assert_non_null(strstr(rec.why, "more than 3 protocol violations within a minute: cut off"));
}

/* A stop is not a failure: no down event, no restart, nothing left. */
static void test_stop(void **state)
{
	struct devsup_info i;
	pid_t pid;

	start_ready();
	pid = pid_of();
	loop_call(loop, do_stop, NULL);
	assert_int_equal(devsup_state(dev), DEVSUP_STOPPED);
	assert_true(kill(pid, 0) < 0 && errno == ESRCH);
	devsup_info(dev, &i);
	assert_int_equal(i.pid, 0);
	usleep(200000);
	assert_int_equal(rec.down, 0);
	assert_int_equal(rec.ready, 1);
	/* It starts again as a new instance. */
	assert_int_equal(start(), 0);
	assert_true(wait_count(&rec.ready, 2));
}

/* A program that cannot start: down, and retried with backoff until the
 * limit, never ready. */
static void test_cannot_start(void **state)
{
	cfg.program = IOREQ_BINDIR "/no-such-device";
	assert_int_equal(start(), 0);
	assert_true(wait_count(&rec.failed, 1));
	assert_int_equal(rec.ready, 0);
	assert_int_equal(devsup_state(dev), DEVSUP_FAILED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_give_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_violations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cannot_start, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("devsup", tests, NULL, NULL);
}
