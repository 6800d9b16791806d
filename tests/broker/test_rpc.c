/* rpc.c: a channel to one device instance, on a real ipc socket, with this
 * process playing the device through nng itself. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>

#include "rpc.h"
#include "wire.h"

struct events {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned hellos, garbage, refused, closed;
	uint32_t last_gen;
	char why[128];
};

static struct events ev = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
static char dir[64], path[96], url[128];
static char *self;
extern char **environ;

static void note(unsigned *counter, uint32_t gen, const char *why)
{
	pthread_mutex_lock(&ev.lock);
	(*counter)++;
	ev.last_gen = gen;
	if (why)
		snprintf(ev.why, sizeof(ev.why), "%s", why);
	pthread_cond_broadcast(&ev.cond);
	pthread_mutex_unlock(&ev.lock);
}

static void on_message(void *opaque, uint32_t gen, const Ioreq__Envelope *env)
{
	if (env->msg_case == IOREQ__ENVELOPE__MSG_HELLO && !strcmp(env->hello->device, "dev"))
		note(&ev.hellos, gen, NULL);
}

static void on_garbage(void *opaque, uint32_t gen, const char *why)
{
	note(&ev.garbage, gen, why);
}

static void on_refused(void *opaque, uint32_t gen, const char *who)
{
	note(&ev.refused, gen, NULL);
}

static void on_closed(void *opaque, uint32_t gen)
{
	note(&ev.closed, gen, NULL);
}

static const struct rpc_events events = {
	.message = on_message,
	.garbage = on_garbage,
	.refused = on_refused,
	.closed = on_closed,
};

/* Waits up to 5 s for *@counter to reach @n. */
static bool wait_for(unsigned *counter, unsigned n)
{
	struct timespec until;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&ev.lock);
	while (*counter < n)
		if (pthread_cond_clockwait(&ev.cond, &ev.lock, CLOCK_MONOTONIC, &until))
			break;
	ok = *counter >= n;
	pthread_mutex_unlock(&ev.lock);
	return ok;
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/ioreq-rpc.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	snprintf(url, sizeof(url), "ipc://%s", path);
	pthread_mutex_lock(&ev.lock);
	ev.hellos = ev.garbage = ev.refused = ev.closed = 0;
	pthread_mutex_unlock(&ev.lock);
	return 0;
}

static int teardown(void **state)
{
	rmdir(dir);
	return 0;
}

static nng_socket dial(void)
{
	nng_socket s;

	assert_int_equal(nng_pair1_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 10);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 50);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
	assert_int_equal(nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK), 0);
	return s;
}

static void send_env(nng_socket s, const Ioreq__Envelope *env)
{
	assert_int_equal(wire_send(s, env, 0), 0);
}

static void send_hello(nng_socket s)
{
	Ioreq__Hello h = IOREQ__HELLO__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	h.version = IOREQ__VERSION__VERSION_CURRENT;
	h.device = "dev";
	env.msg_case = IOREQ__ENVELOPE__MSG_HELLO;
	env.hello = &h;
	send_env(s, &env);
}

/* The expected process talks; a request reaches it; a send to another
 * instance or a shut channel fails. */
static void test_talk(void **state)
{
	static struct wire_arena arena;
	struct access a = { .type = ACRN_IOREQ_TYPE_MMIO, .size = 4, .addr = 0x1000 };
	Ioreq__Envelope *env;
	struct rpc *c;
	nng_socket s;
	nng_msg *msg;

	assert_int_equal(rpc_new(&events, NULL, &c), 0);
	assert_int_equal(rpc_send_request(c, 1, 16, 0, &a, 0, 0), -ESTALE);
	assert_int_equal(rpc_listen(c, path, 1), 0);
	rpc_expect(c, getpid());
	s = dial();
	send_hello(s);
	assert_true(wait_for(&ev.hellos, 1));
	assert_int_equal(ev.last_gen, 1);
	assert_int_equal(rpc_send_request(c, 2, 17, 0, &a, 0, 0), -ESTALE);
	assert_int_equal(rpc_send_request(c, 1, 16 | 3, 3, &a, 5, 0x10), 0);
	assert_int_equal(nng_recvmsg(s, &msg, 0), 0);
	assert_int_equal(wire_unpack(nng_msg_body(msg), nng_msg_len(msg), &arena, &env), 0);
	assert_int_equal(env->msg_case, IOREQ__ENVELOPE__MSG_REQUEST);
	assert_int_equal(env->request->id, 16 | 3);
	assert_int_equal(env->request->vcpu, 3);
	assert_int_equal(env->request->addr, 0x1000);
	assert_int_equal(env->request->range, 5);
	assert_int_equal(env->request->offset, 0x10);
	nng_msg_free(msg);
	/* The device hangs up: the channel says so. */
	nng_close(s);
	assert_true(wait_for(&ev.closed, 1));
	rpc_shut(c);
	assert_int_equal(rpc_send_request(c, 1, 16, 0, &a, 0, 0), -ESTALE);
	assert_int_equal(access(path, F_OK), -1);
	rpc_free(c);
}

/* The impostor: this program again (nng cannot cross a fork), which dials
 * @url and says hello until it is killed. */
static _Noreturn void impostor_main(const char *to)
{
	nng_socket s;

	snprintf(url, sizeof(url), "%s", to);
	s = dial();
	for (;;) {
		send_hello(s);
		sleep(1);
	}
}

/* Another process than the one expected is refused, and nothing it says
 * arrives. */
static void test_impostor(void **state)
{
	char *argv[] = { self, "--impostor", url, NULL };
	struct rpc *c;
	pid_t pid;
	int status;

	assert_int_equal(rpc_new(&events, NULL, &c), 0);
	assert_int_equal(rpc_listen(c, path, 1), 0);
	rpc_expect(c, getpid());
	assert_int_equal(posix_spawn(&pid, self, NULL, NULL, argv, environ), 0);
	assert_true(wait_for(&ev.refused, 1));
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(ev.hellos, 0);
	rpc_free(c);
}

/* Bytes that are no Envelope: garbage, not a message. */
static void test_garbage(void **state)
{
	struct rpc *c;
	nng_socket s;

	assert_int_equal(rpc_new(&events, NULL, &c), 0);
	assert_int_equal(rpc_listen(c, path, 4), 0);
	rpc_expect(c, getpid());
	s = dial();
	assert_int_equal(nng_send(s, "\xff\xff\xff\xff", 4, 0), 0);
	assert_true(wait_for(&ev.garbage, 1));
	assert_string_equal(ev.why, "sent a malformed message");
	assert_int_equal(ev.last_gen, 4);
	nng_close(s);
	rpc_free(c);
}

/* A fresh socket per instance: the old instance's connection is gone, and
 * its events carry its own generation. */
static void test_new_instance(void **state)
{
	struct rpc *c;
	nng_socket s;

	assert_int_equal(rpc_new(&events, NULL, &c), 0);
	assert_int_equal(rpc_listen(c, path, 1), 0);
	rpc_expect(c, getpid());
	s = dial();
	send_hello(s);
	assert_true(wait_for(&ev.hellos, 1));
	/* As the broker does: the old instance is gone before the next one's
	 * socket listens (else its dialer would reconnect to the new socket,
	 * be taken for the new instance, and the real one refused). */
	nng_close(s);
	assert_int_equal(rpc_listen(c, path, 2), 0);
	rpc_expect(c, getpid());
	s = dial();
	send_hello(s);
	assert_true(wait_for(&ev.hellos, 2));
	assert_int_equal(ev.last_gen, 2);
	nng_close(s);
	rpc_free(c);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_talk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_impostor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_instance, setup, teardown),
	};

	int failed;

	self = argv[0];
	if (argc == 3 && !strcmp(argv[1], "--impostor"))
		impostor_main(argv[2]);
	failed = cmocka_run_group_tests_name("rpc", tests, NULL, NULL);

	/* The dialers' pipes are freed by nng's reaper after nng_close. */
	nng_fini();
	return failed;
}
