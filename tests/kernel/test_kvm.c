/* The kvm backend taken down while its guest is busy. Issue 14: stopping a
 * running guest crashed the broker in about one stop in six, because the
 * teardown unmapped a joined vCPU's kvm_run page and then wrote into it
 * while kicking a vCPU that was still running.
 *
 * Each round boots tests/guests/busy on VCPUS vCPUs (every one of them
 * exits to the VMM without end), serves their requests from a default
 * client of its own until each vCPU has had WARM requests done, and stops
 * the VM at once, in one of three ways that the broker and a crashing
 * broker can produce. Needs /dev/kvm: without it the executable exits 77. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dispatch.h"
#include "hsm.h"
#include "kvm.h"

#define IMAGE IOREQ_BINDIR "/guests/busy.elf"
#define VCPUS 4
/* Enough for the old teardown to crash in every run (measured:
 * see the commit that fixed it). */
#define ROUNDS 60
/* Requests each vCPU has had done before the stop. */
#define WARM 4
/* Booting is ring-0 code, which KVM-PVM emulates slowly. */
#define BOOT_S 60
/* A stop that takes longer has hung. */
#define STOP_S 20

enum stop_mode {
	/* The broker's order: the client answers until it is destroyed, then
	 * the VM goes. */
	STOP_SERVING,
	/* The client holds every request from the warm-up on, so the vCPUs
	 * are blocked in the HSM when it is destroyed. */
	STOP_HELD,
	/* hsm_destroy with the default client still there and every vCPU
	 * waiting for it: what a broker that lost its VM thread would do. */
	STOP_LIVE_CLIENT,
	STOP_MODES,
};

struct round {
	struct hsm_vm *vm;
	enum stop_mode mode;
	pthread_t client;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned done[VCPUS];
	bool warm;
	_Atomic uint32_t held;
	_Atomic int stops;
	_Atomic int reports;
	char report[512];
};

static void on_stop(void *opaque, int status)
{
	struct round *rd = opaque;

	atomic_fetch_add(&rd->stops, 1);
}

static void on_report(void *opaque, const char *line)
{
	struct round *rd = opaque;

	if (atomic_fetch_add(&rd->reports, 1) == 0)
		snprintf(rd->report, sizeof(rd->report), "%s", line);
}

static bool all_warm(const struct round *rd)
{
	for (unsigned v = 0; v < VCPUS; v++)
		if (rd->done[v] < WARM)
			return false;
	return true;
}

/* Reads see zero; writes are dropped. */
static void answer(struct acrn_io_request *req)
{
	struct dispatch_access a;

	if (!dispatch_decode(req, &a) && a.dir == ACRN_IOREQ_DIR_READ)
		dispatch_set_value(req, 0);
}

/* The default client, scanning the slots as acrn-dm does. */
static void *client_main(void *arg)
{
	struct round *rd = arg;
	struct hsm_vm *vm = rd->vm;
	bool warm = false;

	while (hsm_attach(vm, &rd->held) == 0) {
		if (warm && rd->mode == STOP_LIVE_CLIENT)
			break;
		for (unsigned v = 0; v < VCPUS; v++) {
			struct acrn_io_request *req = &vm->page->req_slot[v];

			if (__atomic_load_n(&req->processed, __ATOMIC_ACQUIRE) != ACRN_IOREQ_STATE_PROCESSING ||
			    __atomic_load_n(&req->kernel_handled, __ATOMIC_RELAXED) || (atomic_load(&rd->held) & (1u << v)))
				continue;
			if (warm) {
				atomic_fetch_or(&rd->held, 1u << v);
				continue;
			}
			answer(req);
			assert_int_equal(hsm_complete(vm, v), 0);
			pthread_mutex_lock(&rd->lock);
			rd->done[v]++;
			if (all_warm(rd) && !rd->warm) {
				rd->warm = true;
				pthread_cond_signal(&rd->cond);
			}
			/* Only the holding modes stop answering. */
			warm = rd->warm && rd->mode != STOP_SERVING;
			pthread_mutex_unlock(&rd->lock);
		}
	}
	return NULL;
}

static void wait_warm(struct round *rd)
{
	struct timespec until;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += BOOT_S;
	pthread_mutex_lock(&rd->lock);
	while (!rd->warm && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&rd->cond, &rd->lock, &until);
	pthread_mutex_unlock(&rd->lock);
	if (!rd->warm) {
		print_error("the guest did not get %u requests done on each of %u vCPUs within %d s%s%s\n", WARM,
			    VCPUS, BOOT_S, rd->report[0] ? "; it reported: " : "", rd->report);
		fail();
	}
}

static void stop(struct round *rd)
{
	/* A teardown that hangs fails here, not at CTest's timeout. */
	alarm(STOP_S);
	if (rd->mode != STOP_LIVE_CLIENT)
		assert_int_equal(hsm_destroy_client(rd->vm), 0);
	pthread_join(rd->client, NULL);
	rd->vm = hsm_destroy(rd->vm);
	alarm(0);
}

static void one_round(enum stop_mode mode, unsigned jitter_us)
{
	struct round rd = { .mode = mode };
	struct hsm_vm_params p = {
		.name = "busy",
		.vcpus = VCPUS,
		.memory = 16 << 20,
		.image = IMAGE,
		.exit_port = 0xf4,
		.on_stop = on_stop,
		.report = on_report,
		.opaque = &rd,
	};
	struct timespec jitter = { .tv_nsec = (long)jitter_us * 1000 };

	pthread_mutex_init(&rd.lock, NULL);
	pthread_cond_init(&rd.cond, NULL);
	assert_int_equal(hsm_create(HSM_BACKEND_KVM, &p, &rd.vm), 0);
	assert_int_equal(hsm_create_client(rd.vm), 0);
	assert_int_equal(pthread_create(&rd.client, NULL, client_main, &rd), 0);
	assert_int_equal(hsm_start(rd.vm), 0);
	wait_warm(&rd);
	/* Land the stop anywhere in the vCPUs' exit loop. */
	nanosleep(&jitter, NULL);
	stop(&rd);
	/* The guest never stops by itself, and nothing went wrong inside. */
	assert_int_equal(atomic_load(&rd.stops), 0);
	if (atomic_load(&rd.reports)) {
		print_error("the backend reported: %s\n", rd.report);
		fail();
	}
	pthread_cond_destroy(&rd.cond);
	pthread_mutex_destroy(&rd.lock);
}

/* Stopped the broker's way, and twice as hard, many times over. */
static void test_stop_busy_guest(void **state)
{
	for (unsigned i = 0; i < ROUNDS; i++)
		one_round(i % STOP_MODES, (unsigned)rand() % 2000);
}

/* Created and destroyed without ever running, and destroyed before its
 * vCPUs got anything done. */
static void test_stop_before_running(void **state)
{
	struct hsm_vm_params p = { .name = "idle", .vcpus = VCPUS, .memory = 16 << 20, .image = IMAGE };
	struct hsm_vm *vm;

	assert_int_equal(hsm_create(HSM_BACKEND_KVM, &p, &vm), 0);
	hsm_destroy(vm);
	assert_int_equal(hsm_create(HSM_BACKEND_KVM, &p, &vm), 0);
	assert_int_equal(hsm_start(vm), 0);
	hsm_destroy(vm);
}

/* Why /dev/kvm cannot be used here, or NULL. */
static const char *kvm_unusable(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	const char *why = NULL;

	if (fd < 0)
		return strerror(errno);
	if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		why = "not a KVM device";
	close(fd);
	return why;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stop_busy_guest),
		cmocka_unit_test(test_stop_before_running),
	};
	const char *why = kvm_unusable();

	if (why) {
		printf("skipped: /dev/kvm: %s: the kvm backend needs KVM\n", why);
		return 77;
	}
	srand((unsigned)time(NULL));
	return cmocka_run_group_tests_name("kvm backend", tests, NULL, NULL);
}
