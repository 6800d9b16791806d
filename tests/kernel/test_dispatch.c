/* The ACRN HSM dispatch rules (kernel/dispatch.h), one test per rule. Threads
 * stand in for vCPUs and for the default client; every wait is bounded. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dispatch.h"

#define VCPUS 4
/* How long a thread must stay blocked to count as blocked. */
#define BLOCKED_MS 20
/* How long a thread may take to finish once it should. */
#define DONE_MS 2000

static struct acrn_io_request_buffer page __attribute__((aligned(4096)));
static struct dispatch d;

static struct acrn_io_request *slot(unsigned vcpu)
{
	return &page.req_slot[vcpu];
}

static uint32_t state_of(unsigned vcpu)
{
	return __atomic_load_n(&slot(vcpu)->processed, __ATOMIC_ACQUIRE);
}

static void fill_pio(unsigned vcpu, uint32_t dir, uint64_t port, uint64_t size, uint32_t value)
{
	struct acrn_io_request *req = slot(vcpu);

	memset(&req->reqs, 0, sizeof(req->reqs));
	req->type = ACRN_IOREQ_TYPE_PORTIO;
	req->reqs.pio_request.direction = dir;
	req->reqs.pio_request.address = port;
	req->reqs.pio_request.size = size;
	req->reqs.pio_request.value = value;
}

static void fill_mmio(unsigned vcpu, uint32_t dir, uint64_t addr, uint64_t size, uint64_t value)
{
	struct acrn_io_request *req = slot(vcpu);

	memset(&req->reqs, 0, sizeof(req->reqs));
	req->type = ACRN_IOREQ_TYPE_MMIO;
	req->reqs.mmio_request.direction = dir;
	req->reqs.mmio_request.address = addr;
	req->reqs.mmio_request.size = size;
	req->reqs.mmio_request.value = value;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls @flag for up to @ms. */
static bool flag_within(_Atomic int *flag, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (!atomic_load(flag)) {
		if (now_ms() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

static bool join_within(pthread_t t, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

/* Submits and finishes one request as the vCPU side does, for requests the
 * HSM completes by itself. */
static void submit_and_free(unsigned vcpu)
{
	dispatch_submit(&d, vcpu);
	assert_int_equal(state_of(vcpu), ACRN_IOREQ_STATE_COMPLETE);
	dispatch_wait_complete(&d, vcpu);
	assert_int_equal(state_of(vcpu), ACRN_IOREQ_STATE_FREE);
}

struct handled {
	unsigned calls;
	unsigned vcpu;
	uint32_t state;
	uint32_t kernel_handled;
	uint64_t addr;
};

/* An in-HSM client: records what it saw, answers reads with 0x5a5a... */
static void handler(void *priv, unsigned vcpu, struct acrn_io_request *req)
{
	struct handled *h = priv;

	h->calls++;
	h->vcpu = vcpu;
	h->state = __atomic_load_n(&req->processed, __ATOMIC_ACQUIRE);
	h->kernel_handled = req->kernel_handled;
	if (req->type == ACRN_IOREQ_TYPE_PORTIO) {
		h->addr = req->reqs.pio_request.address;
		if (req->reqs.pio_request.direction == ACRN_IOREQ_DIR_READ)
			req->reqs.pio_request.value = 0x5a5a5a5a;
	} else {
		h->addr = req->reqs.mmio_request.address;
		if (req->reqs.mmio_request.direction == ACRN_IOREQ_DIR_READ)
			req->reqs.mmio_request.value = 0x5a5a5a5a5a5a5a5aull;
	}
}

static void other_handler(void *priv, unsigned vcpu, struct acrn_io_request *req)
{
	handler(priv, vcpu, req);
}

static int setup(void **state)
{
	/* Leftovers of a previous test must not leak into this one. */
	memset(&page, 0xa5, sizeof(page));
	return dispatch_init(&d, &page, VCPUS);
}

/* ---- init and configuration ---- */

static void test_init(void **state)
{
	assert_int_equal(dispatch_init(&d, &page, 0), -EINVAL);
	assert_int_equal(dispatch_init(&d, &page, 17), -EINVAL);
	assert_int_equal(dispatch_init(&d, NULL, 1), -EINVAL);
	assert_int_equal(dispatch_init(&d, &page, 16), 0);
	memset(&page, 0xa5, sizeof(page));
	assert_int_equal(dispatch_init(&d, &page, 1), 0);
	for (unsigned i = 0; i < ACRN_IO_REQUEST_MAX; i++)
		assert_int_equal(state_of(i), ACRN_IOREQ_STATE_FREE);
	assert_int_equal(dispatch_pending(&d), 0);
	/* No default client yet. */
	assert_int_equal(dispatch_attach(&d), -ENODEV);
}

static void test_add_client_rejects(void **state)
{
	struct handled h = {0};

	assert_int_equal(dispatch_add_client(&d, "a", ACRN_IOREQ_TYPE_PCICFG, 0, 10, handler, &h), -EINVAL);
	assert_int_equal(dispatch_add_client(&d, "a", 3, 0, 10, handler, &h), -EINVAL);
	assert_int_equal(dispatch_add_client(&d, "a", ACRN_IOREQ_TYPE_PORTIO, 10, 9, handler, &h), -EINVAL);
	assert_int_equal(dispatch_add_client(&d, "a", ACRN_IOREQ_TYPE_PORTIO, 0, 10, NULL, &h), -EINVAL);
	assert_int_equal(dispatch_add_client(&d, NULL, ACRN_IOREQ_TYPE_PORTIO, 0, 10, handler, &h), -EINVAL);
	assert_int_equal(d.n_clients, 0);
	/* A single-port range is fine. */
	assert_int_equal(dispatch_add_client(&d, "a", ACRN_IOREQ_TYPE_PORTIO, 10, 10, handler, &h), 0);
	/* The same name with another type or handler is another client. */
	assert_int_equal(dispatch_add_client(&d, "a", ACRN_IOREQ_TYPE_MMIO, 0, 10, handler, &h), -EINVAL);
	assert_int_equal(dispatch_add_client(&d, "a", ACRN_IOREQ_TYPE_PORTIO, 0, 10, other_handler, &h), -EINVAL);
}

static void test_add_client_limits(void **state)
{
	struct handled h = {0};
	char name[8];

	for (unsigned i = 0; i < DISPATCH_MAX_CLIENT_RANGES; i++)
		assert_int_equal(dispatch_add_client(&d, "r", ACRN_IOREQ_TYPE_MMIO, i * 16, i * 16 + 7, handler, &h),
				 0);
	assert_int_equal(d.n_clients, 1);
	assert_int_equal(dispatch_add_client(&d, "r", ACRN_IOREQ_TYPE_MMIO, 0x1000, 0x1007, handler, &h), -ENOSPC);
	for (unsigned i = 1; i < DISPATCH_MAX_CLIENTS; i++) {
		snprintf(name, sizeof(name), "c%u", i);
		assert_int_equal(dispatch_add_client(&d, name, ACRN_IOREQ_TYPE_PORTIO, i, i, handler, &h), 0);
	}
	assert_int_equal(dispatch_add_client(&d, "full", ACRN_IOREQ_TYPE_PORTIO, 0, 1, handler, &h), -ENOSPC);
	assert_int_equal(d.n_clients, DISPATCH_MAX_CLIENTS);
}

/* A second range of the same name belongs to the same client. */
static void test_add_client_second_range(void **state)
{
	struct handled h = {0};

	assert_int_equal(dispatch_add_client(&d, "two", ACRN_IOREQ_TYPE_PORTIO, 0x60, 0x60, handler, &h), 0);
	assert_int_equal(dispatch_add_client(&d, "two", ACRN_IOREQ_TYPE_PORTIO, 0x64, 0x64, handler, &h), 0);
	assert_int_equal(d.n_clients, 1);
	fill_pio(0, ACRN_IOREQ_DIR_READ, 0x60, 1, 0);
	submit_and_free(0);
	fill_pio(0, ACRN_IOREQ_DIR_READ, 0x64, 1, 0);
	submit_and_free(0);
	assert_int_equal(h.calls, 2);
	assert_int_equal(h.addr, 0x64);
}

/* ---- in-HSM clients ---- */

static void test_inhsm_client_takes_access(void **state)
{
	struct handled h = {0};

	assert_int_equal(dispatch_create_default(&d), 0);
	assert_int_equal(dispatch_add_client(&d, "kbd", ACRN_IOREQ_TYPE_PORTIO, 0x60, 0x63, handler, &h), 0);
	fill_pio(2, ACRN_IOREQ_DIR_READ, 0x60, 4, 0);
	slot(2)->kernel_handled = 0;
	dispatch_submit(&d, 2);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.vcpu, 2);
	/* The handler runs on a PROCESSING slot marked kernel_handled. */
	assert_int_equal(h.state, ACRN_IOREQ_STATE_PROCESSING);
	assert_int_equal(h.kernel_handled, 1);
	assert_int_equal(slot(2)->kernel_handled, 1);
	assert_int_equal(state_of(2), ACRN_IOREQ_STATE_COMPLETE);
	assert_int_equal(slot(2)->reqs.pio_request.value, 0x5a5a5a5a);
	assert_int_equal(dispatch_pending(&d), 0);
	dispatch_wait_complete(&d, 2);
	assert_int_equal(state_of(2), ACRN_IOREQ_STATE_FREE);
}

/* [addr, addr + size - 1] must lie inside the range, not just addr. */
static void test_inhsm_client_needs_whole_access(void **state)
{
	struct handled h = {0};

	assert_int_equal(dispatch_create_default(&d), 0);
	assert_int_equal(dispatch_add_client(&d, "kbd", ACRN_IOREQ_TYPE_PORTIO, 0x60, 0x63, handler, &h), 0);
	fill_pio(0, ACRN_IOREQ_DIR_READ, 0x62, 4, 0); /* 0x62..0x65 straddles the end */
	slot(0)->kernel_handled = 1;
	dispatch_submit(&d, 0);
	assert_int_equal(h.calls, 0);
	assert_int_equal(slot(0)->kernel_handled, 0);
	assert_int_equal(state_of(0), ACRN_IOREQ_STATE_PROCESSING);
	assert_int_equal(dispatch_pending(&d), 1u << 0);

	fill_pio(1, ACRN_IOREQ_DIR_READ, 0x5f, 2, 0); /* 0x5f..0x60 straddles the start */
	dispatch_submit(&d, 1);
	assert_int_equal(h.calls, 0);
	assert_int_equal(dispatch_pending(&d), (1u << 0) | (1u << 1));

	fill_pio(3, ACRN_IOREQ_DIR_READ, 0x63, 1, 0); /* the last byte alone fits */
	submit_and_free(3);
	assert_int_equal(h.calls, 1);
}

static void test_newest_client_wins(void **state)
{
	struct handled old = {0}, young = {0};

	assert_int_equal(dispatch_add_client(&d, "old", ACRN_IOREQ_TYPE_MMIO, 0x1000, 0x1fff, handler, &old), 0);
	assert_int_equal(dispatch_add_client(&d, "young", ACRN_IOREQ_TYPE_MMIO, 0x1800, 0x18ff, handler, &young), 0);
	fill_mmio(0, ACRN_IOREQ_DIR_WRITE, 0x1800, 8, 1);
	submit_and_free(0);
	assert_int_equal(young.calls, 1);
	assert_int_equal(old.calls, 0);
	/* Outside the newer range the older client still gets it. */
	fill_mmio(0, ACRN_IOREQ_DIR_READ, 0x1000, 4, 0);
	submit_and_free(0);
	assert_int_equal(old.calls, 1);
	assert_int_equal(slot(0)->reqs.mmio_request.value, 0x5a5a5a5a5a5a5a5aull);
}

static void test_client_type_must_match(void **state)
{
	struct handled h = {0};

	assert_int_equal(dispatch_create_default(&d), 0);
	assert_int_equal(dispatch_add_client(&d, "mmio", ACRN_IOREQ_TYPE_MMIO, 0x0, 0xffff, handler, &h), 0);
	fill_pio(1, ACRN_IOREQ_DIR_WRITE, 0x80, 1, 0x12);
	dispatch_submit(&d, 1);
	assert_int_equal(h.calls, 0);
	assert_int_equal(dispatch_pending(&d), 1u << 1);
	assert_int_equal(state_of(1), ACRN_IOREQ_STATE_PROCESSING);
	fill_mmio(2, ACRN_IOREQ_DIR_WRITE, 0x80, 1, 0x12);
	submit_and_free(2);
	assert_int_equal(h.calls, 1);
}

/* ---- the default client ---- */

static void test_default_client_fallback(void **state)
{
	assert_int_equal(dispatch_create_default(&d), 0);
	fill_mmio(3, ACRN_IOREQ_DIR_READ, 0xfee00000, 4, 0);
	slot(3)->kernel_handled = 1;
	dispatch_submit(&d, 3);
	assert_int_equal(slot(3)->kernel_handled, 0);
	assert_int_equal(state_of(3), ACRN_IOREQ_STATE_PROCESSING);
	assert_int_equal(dispatch_pending(&d), 1u << 3);
	assert_int_equal(dispatch_attach(&d), 0);

	slot(3)->reqs.mmio_request.value = 0xcafe;
	assert_int_equal(dispatch_notify(&d, 3), 0);
	assert_int_equal(state_of(3), ACRN_IOREQ_STATE_COMPLETE);
	assert_int_equal(dispatch_pending(&d), 0);
	dispatch_wait_complete(&d, 3);
	assert_int_equal(state_of(3), ACRN_IOREQ_STATE_FREE);
	assert_int_equal(slot(3)->reqs.mmio_request.value, 0xcafe);
}

/* A PCICFG request goes to the default client even where a client covers
 * every port and every address. */
static void test_pcicfg_always_default(void **state)
{
	struct handled h = {0};
	struct acrn_io_request *req = slot(0);

	assert_int_equal(dispatch_create_default(&d), 0);
	assert_int_equal(dispatch_add_client(&d, "pio", ACRN_IOREQ_TYPE_PORTIO, 0, UINT64_MAX, handler, &h), 0);
	assert_int_equal(dispatch_add_client(&d, "mmio", ACRN_IOREQ_TYPE_MMIO, 0, UINT64_MAX, handler, &h), 0);
	memset(&req->reqs, 0, sizeof(req->reqs));
	req->type = ACRN_IOREQ_TYPE_PCICFG;
	req->reqs.pci_request.direction = ACRN_IOREQ_DIR_READ;
	req->reqs.pci_request.size = 4;
	dispatch_submit(&d, 0);
	assert_int_equal(h.calls, 0);
	assert_int_equal(req->kernel_handled, 0);
	assert_int_equal(dispatch_pending(&d), 1u << 0);
	assert_int_equal(dispatch_notify(&d, 0), 0);
	dispatch_wait_complete(&d, 0);

	/* A folded 0xCFC access too, although "pio" covers port 0xCFC. */
	fill_pio(1, ACRN_IOREQ_DIR_WRITE, 0xcf8, 4, 0x80000000);
	submit_and_free(1);
	fill_pio(1, ACRN_IOREQ_DIR_READ, 0xcfc, 4, 0);
	dispatch_submit(&d, 1);
	assert_int_equal(h.calls, 0);
	assert_int_equal(slot(1)->type, ACRN_IOREQ_TYPE_PCICFG);
	assert_int_equal(dispatch_pending(&d), 1u << 1);
}

/* ---- PCI configuration mechanism #1 ---- */

static void test_cf8_kept_in_hsm(void **state)
{
	struct handled h = {0};

	assert_int_equal(dispatch_create_default(&d), 0);
	/* Port 0xCF8 is taken before any client is looked at. */
	assert_int_equal(dispatch_add_client(&d, "pio", ACRN_IOREQ_TYPE_PORTIO, 0xcf8, 0xcff, handler, &h), 0);
	fill_pio(0, ACRN_IOREQ_DIR_WRITE, 0xcf8, 4, 0x80001234);
	submit_and_free(0);
	assert_int_equal(atomic_load(&d.pci_conf_addr), 0x80001234);
	fill_pio(1, ACRN_IOREQ_DIR_READ, 0xcf8, 4, 0);
	submit_and_free(1);
	assert_int_equal(slot(1)->reqs.pio_request.value, 0x80001234);
	assert_int_equal(h.calls, 0);
	assert_int_equal(dispatch_pending(&d), 0);

	/* Any width, as in the kernel (which only warns). */
	fill_pio(0, ACRN_IOREQ_DIR_WRITE, 0xcf8, 1, 0x7f);
	submit_and_free(0);
	assert_int_equal(atomic_load(&d.pci_conf_addr), 0x7f);
	assert_int_equal(h.calls, 0);
	assert_int_equal(dispatch_pending(&d), 0);
}

static void test_cfc_disabled_completes(void **state)
{
	struct handled h = {0};

	assert_int_equal(dispatch_create_default(&d), 0);
	assert_int_equal(dispatch_add_client(&d, "pio", ACRN_IOREQ_TYPE_PORTIO, 0xcf8, 0xcff, handler, &h), 0);
	fill_pio(0, ACRN_IOREQ_DIR_WRITE, 0xcf8, 4, 0x7fffff00); /* bit 31 clear */
	submit_and_free(0);
	for (unsigned port = 0xcfc; port <= 0xcff; port++) {
		fill_pio(1, ACRN_IOREQ_DIR_READ, port, 1, 0);
		dispatch_submit(&d, 1);
		assert_int_equal(state_of(1), ACRN_IOREQ_STATE_COMPLETE);
		assert_int_equal(slot(1)->type, ACRN_IOREQ_TYPE_PORTIO);
		assert_int_equal(slot(1)->reqs.pio_request.value, 0xffffffff);
		dispatch_wait_complete(&d, 1);
	}
	fill_pio(1, ACRN_IOREQ_DIR_WRITE, 0xcfc, 4, 0x1234);
	submit_and_free(1);
	assert_int_equal(slot(1)->reqs.pio_request.value, 0x1234);
	assert_int_equal(h.calls, 0);
	assert_int_equal(dispatch_pending(&d), 0);
}

static void test_cfc_enabled_rewrites_to_pcicfg(void **state)
{
	/* enable | ext reg 0x3 (bits 27:24) | bus 0x12 | dev 0x1f | func 5 | reg 0xab */
	const uint32_t conf = 0x80000000u | 0x3u << 24 | 0x12u << 16 | 0x1fu << 11 | 5u << 8 | 0xab;
	struct acrn_pci_request *pci = &slot(2)->reqs.pci_request;

	assert_int_equal(dispatch_create_default(&d), 0);
	fill_pio(2, ACRN_IOREQ_DIR_WRITE, 0xcf8, 4, conf);
	submit_and_free(2);
	for (unsigned off = 0; off < 4; off++) {
		uint64_t size = off == 2 ? 2 : 1;

		fill_pio(2, ACRN_IOREQ_DIR_WRITE, 0xcfc + off, size, 0xbeef);
		slot(2)->kernel_handled = 1;
		dispatch_submit(&d, 2);
		assert_int_equal(slot(2)->type, ACRN_IOREQ_TYPE_PCICFG);
		assert_int_equal(pci->direction, ACRN_IOREQ_DIR_WRITE);
		assert_int_equal(pci->size, size);
		assert_int_equal(pci->value, 0xbeef);
		assert_int_equal(pci->bus, 0x12);
		assert_int_equal(pci->dev, 0x1f);
		assert_int_equal(pci->func, 5);
		/* Low bits 1:0 masked off; bits 27:24 become reg bits 11:8. */
		assert_int_equal(pci->reg, 0x3a8 + off);
		assert_int_equal(slot(2)->kernel_handled, 0);
		assert_int_equal(state_of(2), ACRN_IOREQ_STATE_PROCESSING);
		assert_int_equal(dispatch_pending(&d), 1u << 2);
		assert_int_equal(dispatch_notify(&d, 2), 0);
		dispatch_wait_complete(&d, 2);
	}

	/* A read keeps its direction, and bus 0 dev 0 func 0 are plain zeros. */
	fill_pio(2, ACRN_IOREQ_DIR_WRITE, 0xcf8, 4, 0x80000010);
	submit_and_free(2);
	fill_pio(2, ACRN_IOREQ_DIR_READ, 0xcfc, 4, 0);
	dispatch_submit(&d, 2);
	assert_int_equal(pci->direction, ACRN_IOREQ_DIR_READ);
	assert_int_equal(pci->bus, 0);
	assert_int_equal(pci->dev, 0);
	assert_int_equal(pci->func, 0);
	assert_int_equal(pci->reg, 0x10);
}

/* ---- ATTACH, DESTROY, CREATE ---- */

struct waiter {
	pthread_t thread;
	const _Atomic uint32_t *held;
	bool except;
	_Atomic int done;
	int ret;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->ret = w->except ? dispatch_attach_except(&d, w->held) : dispatch_attach(&d);
	atomic_store(&w->done, 1);
	return NULL;
}

static void waiter_start(struct waiter *w)
{
	atomic_init(&w->done, 0);
	w->ret = 1;
	assert_int_equal(pthread_create(&w->thread, NULL, waiter_main, w), 0);
}

static void waiter_finish(struct waiter *w, int ret)
{
	assert_true(flag_within(&w->done, DONE_MS));
	assert_true(join_within(w->thread, DONE_MS));
	assert_int_equal(w->ret, ret);
}

static void test_attach_level_triggered(void **state)
{
	struct waiter w = {0};

	assert_int_equal(dispatch_create_default(&d), 0);
	fill_mmio(1, ACRN_IOREQ_DIR_READ, 0x1000, 4, 0);
	dispatch_submit(&d, 1);
	/* While the request is unfinished, every ATTACH returns at once. */
	assert_int_equal(dispatch_attach(&d), 0);
	assert_int_equal(dispatch_attach(&d), 0);
	assert_int_equal(dispatch_notify(&d, 1), 0);
	dispatch_wait_complete(&d, 1);

	/* With nothing assigned it blocks until a request comes. */
	waiter_start(&w);
	sleep_ms(BLOCKED_MS);
	assert_int_equal(atomic_load(&w.done), 0);
	fill_mmio(0, ACRN_IOREQ_DIR_READ, 0x1000, 4, 0);
	dispatch_submit(&d, 0);
	waiter_finish(&w, 0);
	assert_int_equal(dispatch_pending(&d), 1u << 0);
}

static void test_attach_except(void **state)
{
	_Atomic uint32_t held = 1u << 0;
	struct waiter w = {.held = &held, .except = true};

	assert_int_equal(dispatch_create_default(&d), 0);
	fill_mmio(0, ACRN_IOREQ_DIR_READ, 0x1000, 4, 0);
	dispatch_submit(&d, 0);
	/* vCPU 0's request is held: only another vCPU's wakes it. */
	waiter_start(&w);
	sleep_ms(BLOCKED_MS);
	assert_int_equal(atomic_load(&w.done), 0);
	fill_mmio(2, ACRN_IOREQ_DIR_READ, 0x1000, 4, 0);
	dispatch_submit(&d, 2);
	waiter_finish(&w, 0);
	assert_int_equal(dispatch_attach_except(&d, NULL), 0);

	/* Everything held: blocks, until the holder lets one go and kicks. */
	atomic_store(&held, (1u << 0) | (1u << 2));
	waiter_start(&w);
	sleep_ms(BLOCKED_MS);
	assert_int_equal(atomic_load(&w.done), 0);
	atomic_store(&held, 1u << 2);
	dispatch_kick(&d);
	waiter_finish(&w, 0);
	assert_int_equal(dispatch_pending(&d), (1u << 0) | (1u << 2));
}

/* The kick count wraps inside its field, never into the flags. */
static void test_kick_wraps(void **state)
{
	assert_int_equal(dispatch_create_default(&d), 0);
	for (unsigned i = 0; i < (DISPATCH_KICK_MASK >> DISPATCH_KICK_SHIFT) + 2; i++)
		dispatch_kick(&d);
	assert_int_equal(atomic_load(&d.dflt) & ~DISPATCH_KICK_MASK, DISPATCH_DEFAULT_EXISTS);
	assert_int_equal(atomic_load(&d.dflt) & DISPATCH_KICK_MASK, 1u << DISPATCH_KICK_SHIFT);
}

/* A waiter that read the word while vCPU 0's request was held, then
 * slept only after that request was completed and the vCPU's next one
 * assigned (the same bits again): the kick in between, which woke nobody
 * (nothing was assigned), still changed the word, so the wait returns at
 * once. Found by test_integration_churn: a lost request, a vCPU stuck. */
static void test_kick_then_same_bits(void **state)
{
	uint32_t seen;

	assert_int_equal(dispatch_create_default(&d), 0);
	fill_mmio(0, ACRN_IOREQ_DIR_READ, 0x1000, 4, 0);
	dispatch_submit(&d, 0);
	seen = atomic_load(&d.dflt);                 /* the waiter's view: vCPU 0 held */
	assert_int_equal(dispatch_notify(&d, 0), 0);  /* completed... */
	dispatch_wait_complete(&d, 0);
	dispatch_kick(&d);                            /* ...let go of, nothing assigned */
	fill_mmio(0, ACRN_IOREQ_DIR_READ, 0x1000, 4, 0);
	dispatch_submit(&d, 0);                       /* the next one */
	assert_int_not_equal(atomic_load(&d.dflt), seen);
}

static void test_destroy_wakes_attach(void **state)
{
	_Atomic uint32_t held = 0;
	struct waiter w = {0}, we = {.held = &held, .except = true};

	assert_int_equal(dispatch_destroy_default(&d), -ENODEV);
	assert_int_equal(dispatch_create_default(&d), 0);
	waiter_start(&w);
	waiter_start(&we);
	sleep_ms(BLOCKED_MS);
	assert_int_equal(atomic_load(&w.done), 0);
	assert_int_equal(atomic_load(&we.done), 0);
	assert_int_equal(dispatch_destroy_default(&d), 0);
	waiter_finish(&w, -ENODEV);
	waiter_finish(&we, -ENODEV);
	assert_int_equal(dispatch_attach(&d), -ENODEV);
	assert_int_equal(dispatch_destroy_default(&d), -ENODEV);
}

static void test_create_twice(void **state)
{
	assert_int_equal(dispatch_create_default(&d), 0);
	assert_int_equal(dispatch_create_default(&d), -EEXIST);
	assert_int_equal(dispatch_destroy_default(&d), 0);
	assert_int_equal(dispatch_create_default(&d), 0);
	assert_int_equal(dispatch_create_default(&d), -EEXIST);
}

/* What a destroyed client held stays PROCESSING (as in the kernel) and goes
 * to the next client, or to dispatch_clear. */
static void test_destroy_leaves_requests(void **state)
{
	assert_int_equal(dispatch_create_default(&d), 0);
	fill_mmio(1, ACRN_IOREQ_DIR_READ, 0x1000, 4, 0);
	dispatch_submit(&d, 1);
	fill_mmio(2, ACRN_IOREQ_DIR_READ, 0x2000, 4, 0);
	dispatch_submit(&d, 2);
	assert_int_equal(dispatch_destroy_default(&d), 0);
	assert_int_equal(state_of(1), ACRN_IOREQ_STATE_PROCESSING);
	/* NOTIFY without a default client does nothing, as in the kernel. */
	assert_int_equal(dispatch_notify(&d, 1), 0);
	assert_int_equal(state_of(1), ACRN_IOREQ_STATE_PROCESSING);

	assert_int_equal(dispatch_create_default(&d), 0);
	assert_int_equal(dispatch_attach(&d), 0);
	assert_int_equal(dispatch_notify(&d, 1), 0);
	assert_int_equal(state_of(1), ACRN_IOREQ_STATE_COMPLETE);
	dispatch_wait_complete(&d, 1);

	assert_int_equal(dispatch_destroy_default(&d), 0);
	dispatch_clear(&d, 0);
	assert_int_equal(state_of(2), ACRN_IOREQ_STATE_COMPLETE);
	assert_int_equal(slot(2)->reqs.mmio_request.value, 0xffffffff);
	assert_int_equal(dispatch_pending(&d), 0);
}

/* ---- NOTIFY and the vCPU's wait ---- */

static void test_notify_bad_vcpu(void **state)
{
	assert_int_equal(dispatch_init(&d, &page, 2), 0);
	assert_int_equal(dispatch_create_default(&d), 0);
	assert_int_equal(dispatch_notify(&d, 2), -EINVAL);
	assert_int_equal(dispatch_notify(&d, 16), -EINVAL);
	assert_int_equal(dispatch_notify(&d, 1), 0);
}

struct vcpu {
	pthread_t thread;
	unsigned index;
	_Atomic int done;
	uint64_t value;
};

/* A vCPU: one MMIO read through the HSM. */
static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;

	dispatch_submit(&d, v->index);
	dispatch_wait_complete(&d, v->index);
	v->value = slot(v->index)->reqs.mmio_request.value;
	atomic_store(&v->done, 1);
	return NULL;
}

static void vcpu_read(struct vcpu *v, unsigned index, bool polling)
{
	v->index = index;
	atomic_init(&v->done, 0);
	fill_mmio(index, ACRN_IOREQ_DIR_READ, 0x3000, 8, 0);
	slot(index)->completion_polling = polling;
	assert_int_equal(pthread_create(&v->thread, NULL, vcpu_main, v), 0);
}

static void wait_pending(uint32_t bits)
{
	uint64_t end = now_ms() + DONE_MS;

	while ((dispatch_pending(&d) & bits) != bits) {
		assert_true(now_ms() < end);
		sleep_ms(1);
	}
}

static void vcpu_answer(struct vcpu *v, bool polling)
{
	vcpu_read(v, 1, polling);
	wait_pending(1u << 1);
	sleep_ms(BLOCKED_MS);
	assert_int_equal(atomic_load(&v->done), 0);
	assert_int_equal(state_of(1), ACRN_IOREQ_STATE_PROCESSING);
	slot(1)->reqs.mmio_request.value = 0x0123456789abcdefull;
	assert_int_equal(dispatch_notify(&d, 1), 0);
	assert_true(flag_within(&v->done, DONE_MS));
	assert_true(join_within(v->thread, DONE_MS));
	assert_int_equal(v->value, 0x0123456789abcdefull);
	assert_int_equal(state_of(1), ACRN_IOREQ_STATE_FREE);
	assert_int_equal(dispatch_pending(&d), 0);
}

static void test_notify_wakes_vcpu(void **state)
{
	struct vcpu v;

	assert_int_equal(dispatch_create_default(&d), 0);
	vcpu_answer(&v, false);
}

static void test_completion_polling(void **state)
{
	struct vcpu v;

	assert_int_equal(dispatch_create_default(&d), 0);
	vcpu_answer(&v, true);
}

/* ---- CLEAR_VM_IOREQ ---- */

static void test_clearing_completes_new_requests(void **state)
{
	struct handled h = {0};

	assert_int_equal(dispatch_create_default(&d), 0);
	assert_int_equal(dispatch_add_client(&d, "pio", ACRN_IOREQ_TYPE_PORTIO, 0x60, 0x60, handler, &h), 0);
	atomic_store(&d.clearing, true);
	fill_mmio(0, ACRN_IOREQ_DIR_READ, 0x1000, 2, 0);
	submit_and_free(0);
	assert_int_equal(slot(0)->reqs.mmio_request.value, 0xffff);
	fill_pio(0, ACRN_IOREQ_DIR_READ, 0x60, 1, 0);
	submit_and_free(0);
	assert_int_equal(slot(0)->reqs.pio_request.value, 0xff);
	/* Not even 0xCF8 is looked at. */
	fill_pio(0, ACRN_IOREQ_DIR_WRITE, 0xcf8, 4, 0x80000000);
	submit_and_free(0);
	assert_int_equal(atomic_load(&d.pci_conf_addr), 0);
	fill_mmio(0, ACRN_IOREQ_DIR_WRITE, 0x1000, 8, 0x77);
	submit_and_free(0);
	assert_int_equal(slot(0)->reqs.mmio_request.value, 0x77);
	assert_int_equal(h.calls, 0);
	assert_int_equal(dispatch_pending(&d), 0);
}

static void test_clear_forces_in_flight(void **state)
{
	uint64_t start;

	assert_int_equal(dispatch_create_default(&d), 0);
	fill_mmio(0, ACRN_IOREQ_DIR_READ, 0x1000, 2, 0x1111);
	dispatch_submit(&d, 0);
	fill_pio(3, ACRN_IOREQ_DIR_READ, 0x3f8, 1, 0x22);
	dispatch_submit(&d, 3);
	fill_mmio(2, ACRN_IOREQ_DIR_WRITE, 0x1000, 4, 0x3333);
	dispatch_submit(&d, 2);
	start = now_ms();
	dispatch_clear(&d, 30);
	/* The client got its drain time, then lost the requests. */
	assert_true(now_ms() - start >= 25);
	assert_int_equal(state_of(0), ACRN_IOREQ_STATE_COMPLETE);
	assert_int_equal(slot(0)->reqs.mmio_request.value, 0xffff);
	assert_int_equal(state_of(3), ACRN_IOREQ_STATE_COMPLETE);
	assert_int_equal(slot(3)->reqs.pio_request.value, 0xff);
	assert_int_equal(state_of(2), ACRN_IOREQ_STATE_COMPLETE);
	assert_int_equal(slot(2)->reqs.mmio_request.value, 0x3333);
	assert_int_equal(dispatch_pending(&d), 0);
	assert_false(atomic_load(&d.clearing));

	/* A late NOTIFY finds nothing assigned and leaves the slot alone. */
	dispatch_wait_complete(&d, 0);
	assert_int_equal(dispatch_notify(&d, 0), 0);
	assert_int_equal(state_of(0), ACRN_IOREQ_STATE_FREE);

	/* Dispatching is back to normal. */
	fill_mmio(0, ACRN_IOREQ_DIR_READ, 0x1000, 2, 0);
	dispatch_submit(&d, 0);
	assert_int_equal(state_of(0), ACRN_IOREQ_STATE_PROCESSING);
	assert_int_equal(dispatch_pending(&d), 1u << 0);
}

struct clearer {
	pthread_t thread;
	unsigned timeout_ms;
	_Atomic int done;
};

static void *clearer_main(void *arg)
{
	struct clearer *c = arg;

	dispatch_clear(&d, c->timeout_ms);
	atomic_store(&c->done, 1);
	return NULL;
}

/* During the drain new requests complete at once, and a request the client
 * finishes in time keeps its value; the drain ends as soon as nothing is held. */
static void test_clear_drain_window(void **state)
{
	struct clearer c = {.timeout_ms = DONE_MS};
	uint64_t end;

	assert_int_equal(dispatch_create_default(&d), 0);
	fill_mmio(1, ACRN_IOREQ_DIR_READ, 0x1000, 4, 0);
	dispatch_submit(&d, 1);
	atomic_init(&c.done, 0);
	assert_int_equal(pthread_create(&c.thread, NULL, clearer_main, &c), 0);
	end = now_ms() + DONE_MS;
	while (!atomic_load(&d.clearing)) {
		assert_true(now_ms() < end);
		sleep_ms(1);
	}

	fill_mmio(2, ACRN_IOREQ_DIR_READ, 0x1000, 4, 0);
	submit_and_free(2);
	assert_int_equal(slot(2)->reqs.mmio_request.value, 0xffffffff);
	assert_int_equal(dispatch_pending(&d), 1u << 1);
	sleep_ms(BLOCKED_MS);
	assert_int_equal(atomic_load(&c.done), 0);

	slot(1)->reqs.mmio_request.value = 0xabcd;
	assert_int_equal(dispatch_notify(&d, 1), 0);
	assert_true(flag_within(&c.done, 500));
	assert_true(join_within(c.thread, DONE_MS));
	assert_int_equal(state_of(1), ACRN_IOREQ_STATE_COMPLETE);
	assert_int_equal(slot(1)->reqs.mmio_request.value, 0xabcd);
	assert_false(atomic_load(&d.clearing));
}

/* A vCPU blocked in dispatch_wait_complete is released by dispatch_clear. */
static void test_clear_wakes_vcpu(void **state)
{
	struct vcpu v;

	assert_int_equal(dispatch_create_default(&d), 0);
	vcpu_read(&v, 3, false);
	wait_pending(1u << 3);
	dispatch_clear(&d, 0);
	assert_true(flag_within(&v.done, DONE_MS));
	assert_true(join_within(v.thread, DONE_MS));
	assert_int_equal(v.value, ~0ull);
	assert_int_equal(state_of(3), ACRN_IOREQ_STATE_FREE);
}

static void test_no_default_client(void **state)
{
	fill_mmio(0, ACRN_IOREQ_DIR_READ, 0x1000, 4, 0);
	submit_and_free(0);
	assert_int_equal(slot(0)->reqs.mmio_request.value, 0xffffffff);
	fill_pio(1, ACRN_IOREQ_DIR_READ, 0x3f8, 1, 0);
	submit_and_free(1);
	assert_int_equal(slot(1)->reqs.pio_request.value, 0xff);
	fill_mmio(1, ACRN_IOREQ_DIR_WRITE, 0x1000, 8, 0x42);
	submit_and_free(1);
	assert_int_equal(slot(1)->reqs.mmio_request.value, 0x42);
	assert_int_equal(dispatch_pending(&d), 0);

	/* A destroyed client is no client. */
	assert_int_equal(dispatch_create_default(&d), 0);
	assert_int_equal(dispatch_destroy_default(&d), 0);
	fill_mmio(0, ACRN_IOREQ_DIR_READ, 0x1000, 8, 0);
	submit_and_free(0);
	assert_int_equal(slot(0)->reqs.mmio_request.value, ~0ull);
	assert_int_equal(dispatch_pending(&d), 0);
}

/* ---- one access: decode, value, the vCPU side ---- */

/* The union's three layouts, each read by its own type. */
static void test_decode(void **state)
{
	struct dispatch_access a;

	fill_pio(0, ACRN_IOREQ_DIR_WRITE, 0x3f8, 2, 0xbeef);
	assert_int_equal(dispatch_decode(slot(0), &a), 0);
	assert_int_equal(a.type, ACRN_IOREQ_TYPE_PORTIO);
	assert_int_equal(a.dir, ACRN_IOREQ_DIR_WRITE);
	assert_int_equal(a.addr, 0x3f8);
	assert_int_equal(a.size, 2);
	assert_int_equal(a.value, 0xbeef);

	fill_mmio(1, ACRN_IOREQ_DIR_READ, 0xfee00000, 8, 0x0123456789abcdefull);
	assert_int_equal(dispatch_decode(slot(1), &a), 0);
	assert_int_equal(a.type, ACRN_IOREQ_TYPE_MMIO);
	assert_int_equal(a.dir, ACRN_IOREQ_DIR_READ);
	assert_int_equal(a.addr, 0xfee00000);
	assert_int_equal(a.size, 8);
	assert_int_equal(a.value, 0x0123456789abcdefull);

	memset(&slot(2)->reqs, 0xee, sizeof(slot(2)->reqs));
	slot(2)->type = ACRN_IOREQ_TYPE_PCICFG;
	slot(2)->reqs.pci_request.direction = ACRN_IOREQ_DIR_READ;
	slot(2)->reqs.pci_request.size = 4;
	slot(2)->reqs.pci_request.value = 0x80861234;
	assert_int_equal(dispatch_decode(slot(2), &a), 0);
	assert_int_equal(a.type, ACRN_IOREQ_TYPE_PCICFG);
	assert_int_equal(a.dir, ACRN_IOREQ_DIR_READ);
	assert_int_equal(a.addr, 0);
	assert_int_equal(a.size, 4);
	assert_int_equal(a.value, 0x80861234);

	/* A type the HSM never produces: an error, and nothing written. */
	memset(&a, 0x77, sizeof(a));
	slot(3)->type = 3;
	assert_int_equal(dispatch_decode(slot(3), &a), -EINVAL);
	assert_int_equal(a.type, 0x77777777);
}

/* Each kind's value field, at its width; the fields around it untouched. */
static void test_set_value(void **state)
{
	fill_pio(0, ACRN_IOREQ_DIR_READ, 0x60, 1, 0);
	dispatch_set_value(slot(0), 0x1122334455667788ull);
	assert_int_equal(slot(0)->reqs.pio_request.value, 0x55667788);
	assert_int_equal(slot(0)->reqs.pio_request.address, 0x60);

	fill_mmio(1, ACRN_IOREQ_DIR_READ, 0x1000, 8, 0);
	dispatch_set_value(slot(1), 0x1122334455667788ull);
	assert_int_equal(slot(1)->reqs.mmio_request.value, 0x1122334455667788ull);

	memset(&slot(2)->reqs, 0, sizeof(slot(2)->reqs));
	slot(2)->type = ACRN_IOREQ_TYPE_PCICFG;
	slot(2)->reqs.pci_request.bus = 7;
	dispatch_set_value(slot(2), 0x1122334455667788ull);
	assert_int_equal(slot(2)->reqs.pci_request.value, 0x55667788);
	assert_int_equal(slot(2)->reqs.pci_request.bus, 7);

	memset(&slot(3)->reqs, 0, sizeof(slot(3)->reqs));
	slot(3)->type = 3;
	dispatch_set_value(slot(3), ~0ull);
	for (size_t i = 0; i < sizeof(slot(3)->reqs); i++)
		assert_int_equal(((const uint8_t *)&slot(3)->reqs)[i], 0);
}

/* An in-HSM client answers in the caller's thread; the value comes back
 * masked to the access size, and the slot is free again. */
static void test_access_inhsm(void **state)
{
	struct dispatch_access rd = { ACRN_IOREQ_TYPE_PORTIO, ACRN_IOREQ_DIR_READ, 0x61, 1, 0 };
	struct dispatch_access wr = { ACRN_IOREQ_TYPE_MMIO, ACRN_IOREQ_DIR_WRITE, 0x2000, 8, 0x0102030405060708ull };
	struct handled h = {0};

	assert_int_equal(dispatch_add_client(&d, "kbd", ACRN_IOREQ_TYPE_PORTIO, 0x60, 0x63, handler, &h), 0);
	assert_int_equal(dispatch_add_client(&d, "mem", ACRN_IOREQ_TYPE_MMIO, 0x2000, 0x2fff, handler, &h), 0);
	/* Leftovers of a previous request must not leak into this one. */
	memset(&slot(2)->reqs, 0xff, sizeof(slot(2)->reqs));
	assert_int_equal(dispatch_access(&d, 2, &rd, false), 0x5a);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.addr, 0x61);
	assert_int_equal(slot(2)->reqs.pio_request.size, 1);
	assert_int_equal(state_of(2), ACRN_IOREQ_STATE_FREE);

	dispatch_access(&d, 2, &wr, false);
	assert_int_equal(h.calls, 2);
	assert_int_equal(h.addr, 0x2000);
	assert_int_equal(slot(2)->reqs.mmio_request.value, 0x0102030405060708ull);
	assert_int_equal(state_of(2), ACRN_IOREQ_STATE_FREE);
}

/* Nobody to answer: all ones of the access's width. */
static void test_access_unclaimed(void **state)
{
	struct dispatch_access pio = { ACRN_IOREQ_TYPE_PORTIO, ACRN_IOREQ_DIR_READ, 0x200, 2, 0 };
	struct dispatch_access mmio = { ACRN_IOREQ_TYPE_MMIO, ACRN_IOREQ_DIR_READ, 0xd1000000, 8, 0 };

	assert_int_equal(dispatch_access(&d, 0, &pio, false), 0xffff);
	assert_int_equal(dispatch_access(&d, 0, &mmio, true), ~0ull);
}

struct accessor {
	pthread_t thread;
	unsigned vcpu;
	struct dispatch_access a;
	bool polling;
	_Atomic int done;
	uint64_t value;
};

static void *accessor_main(void *arg)
{
	struct accessor *x = arg;

	x->value = dispatch_access(&d, x->vcpu, &x->a, x->polling);
	atomic_store(&x->done, 1);
	return NULL;
}

static void accessor_start(struct accessor *x)
{
	atomic_init(&x->done, 0);
	assert_int_equal(pthread_create(&x->thread, NULL, accessor_main, x), 0);
}

/* ---- the ioeventfd client ---- */

static uint64_t drained(int efd)
{
	uint64_t n = 0;

	if (read(efd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

static int nb_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	assert_true(fd >= 0);
	return fd;
}

/* eventfd_ctx_fdget's answers, and what counts as the same eventfd. */
static void test_eventfd_checks(void **state)
{
	int efd = nb_eventfd(), copy = dup(efd), other = nb_eventfd(), p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(dispatch_check_eventfd(efd), 0);
	assert_int_equal(dispatch_check_eventfd(p[0]), -EINVAL);
	assert_int_equal(dispatch_check_eventfd(-1), -EBADF);
	close(p[0]);
	assert_int_equal(dispatch_check_eventfd(p[0]), -EBADF);
	close(p[1]);
	assert_true(dispatch_same_eventfd(efd, copy));
	assert_false(dispatch_same_eventfd(efd, other));
	close(efd);
	close(copy);
	close(other);
}

/* acrn_ioeventfd_assign's checks; its conflicts are per eventfd, and two
 * values of one doorbell are not a conflict. */
static void test_ioeventfd_assign(void **state)
{
	int a = nb_eventfd(), b = nb_eventfd(), a2 = dup(a);
	struct dispatch_ioeventfd e = { .fd = a, .type = ACRN_IOREQ_TYPE_PORTIO, .addr = 0x600, .len = 2, .wildcard = true };
	struct dispatch_ioeventfd x;
	unsigned i;

	x = e, x.len = 3;
	assert_int_equal(dispatch_ioeventfd_assign(&d, &x), -EINVAL);
	x = e, x.len = 16;
	assert_int_equal(dispatch_ioeventfd_assign(&d, &x), -EINVAL);
	x = e, x.addr = ~0ull;
	assert_int_equal(dispatch_ioeventfd_assign(&d, &x), -EINVAL);
	x = e, x.type = ACRN_IOREQ_TYPE_PCICFG;
	assert_int_equal(dispatch_ioeventfd_assign(&d, &x), -EINVAL);
	assert_int_equal(dispatch_ioeventfd_assign(&d, &e), 0);
	/* The same eventfd (by any fd), address and type, data overlapping. */
	assert_int_equal(dispatch_ioeventfd_assign(&d, &e), -EEXIST);
	x = e, x.fd = a2, x.wildcard = false, x.data = 5;
	assert_int_equal(dispatch_ioeventfd_assign(&d, &x), -EEXIST);
	/* Another type, another address, another eventfd: the kernel's list
	 * takes them (only the first match of a write is signalled). */
	x = e, x.type = ACRN_IOREQ_TYPE_MMIO;
	assert_int_equal(dispatch_ioeventfd_assign(&d, &x), 0);
	x = e, x.addr = 0x700;
	assert_int_equal(dispatch_ioeventfd_assign(&d, &x), 0);
	x = e, x.fd = b;
	assert_int_equal(dispatch_ioeventfd_assign(&d, &x), 0);
	/* Deassign: the first registration of that eventfd, by any fd. */
	assert_int_equal(dispatch_ioeventfd_deassign(&d, a2), a);
	assert_int_equal(atomic_load(&d.n_ioeventfds), 3);
	assert_int_equal(d.ioeventfds[0].type, ACRN_IOREQ_TYPE_MMIO);
	assert_int_equal(dispatch_ioeventfd_deassign(&d, a), a);
	assert_int_equal(dispatch_ioeventfd_deassign(&d, a), a);
	assert_int_equal(dispatch_ioeventfd_deassign(&d, a), -ENOENT);
	assert_int_equal(dispatch_ioeventfd_deassign(&d, b), b);
	for (i = 0; i < DISPATCH_MAX_IOEVENTFDS; i++) {
		x = e, x.addr = i;
		assert_int_equal(dispatch_ioeventfd_assign(&d, &x), 0);
	}
	x = e, x.addr = i;
	assert_int_equal(dispatch_ioeventfd_assign(&d, &x), -ENOSPC);
	for (i = 0; i < DISPATCH_MAX_IOEVENTFDS; i++)
		assert_int_equal(dispatch_ioeventfd_deassign(&d, a), a);
	close(a);
	close(a2);
	close(b);
}

/* The HSM's ioeventfd client, as acrn_ioeventfd_handler: the vCPU never
 * waits for the default client (which exists, and answers nobody here);
 * every access inside a doorbell's range is the HSM's. */
static void test_ioeventfd_rules(void **state)
{
	int bell = nb_eventfd(), match = nb_eventfd(), mmio = nb_eventfd();
	struct dispatch_ioeventfd e_bell = { .fd = bell, .type = ACRN_IOREQ_TYPE_PORTIO, .addr = 0x600, .len = 4, .wildcard = true };
	struct dispatch_ioeventfd e_match = { .fd = match, .type = ACRN_IOREQ_TYPE_PORTIO, .addr = 0x610, .len = 2, .data = 9 };
	struct dispatch_ioeventfd e_mmio = { .fd = mmio, .type = ACRN_IOREQ_TYPE_MMIO, .addr = 0xd0000000, .len = 8, .wildcard = true };
	struct dispatch_access w = { ACRN_IOREQ_TYPE_PORTIO, ACRN_IOREQ_DIR_WRITE, 0x600, 4, 0x1234 };
	struct dispatch_access rd = { ACRN_IOREQ_TYPE_PORTIO, ACRN_IOREQ_DIR_READ, 0x600, 4, 0 };

	assert_int_equal(dispatch_create_default(&d), 0);
	assert_int_equal(dispatch_ioeventfd_assign(&d, &e_bell), 0);
	assert_int_equal(dispatch_ioeventfd_assign(&d, &e_match), 0);
	assert_int_equal(dispatch_ioeventfd_assign(&d, &e_mmio), 0);

	dispatch_access(&d, 0, &w, false);
	dispatch_access(&d, 1, &w, false);
	assert_int_equal(slot(1)->kernel_handled, 1);
	assert_int_equal(drained(bell), 2);
	/* Narrower at the doorbell: rung; elsewhere inside: dropped. */
	w.size = 1;
	dispatch_access(&d, 0, &w, false);
	w.addr = 0x602;
	dispatch_access(&d, 0, &w, false);
	assert_int_equal(drained(bell), 1);
	/* Reads return 0, and ring nothing. */
	assert_int_equal(dispatch_access(&d, 0, &rd, false), 0);
	rd.addr = 0x601, rd.size = 2;
	assert_int_equal(dispatch_access(&d, 0, &rd, false), 0);
	assert_int_equal(drained(bell), 0);
	/* Datamatch: only its value; the rest stays in the HSM too. */
	w = (struct dispatch_access){ ACRN_IOREQ_TYPE_PORTIO, ACRN_IOREQ_DIR_WRITE, 0x610, 2, 8 };
	dispatch_access(&d, 0, &w, false);
	assert_int_equal(drained(match), 0);
	w.value = 9;
	dispatch_access(&d, 0, &w, false);
	assert_int_equal(drained(match), 1);
	/* MMIO of every width at the doorbell. */
	w = (struct dispatch_access){ ACRN_IOREQ_TYPE_MMIO, ACRN_IOREQ_DIR_WRITE, 0xd0000000, 8, 1 };
	dispatch_access(&d, 2, &w, false);
	w.size = 4;
	dispatch_access(&d, 2, &w, false);
	assert_int_equal(drained(mmio), 2);
	assert_int_equal(dispatch_pending(&d), 0);
	close(bell);
	close(match);
	close(mmio);
}

/* The ioeventfd client is the oldest in-HSM client: any other wins; an
 * access that is not wholly inside a doorbell, a port where an MMIO
 * doorbell is, and a deassigned doorbell reach the default client. */
static void test_ioeventfd_order(void **state)
{
	int bell = nb_eventfd();
	struct dispatch_ioeventfd e = { .fd = bell, .type = ACRN_IOREQ_TYPE_PORTIO, .addr = 0x600, .len = 2, .wildcard = true };
	struct accessor x = { .vcpu = 3, .a = { ACRN_IOREQ_TYPE_PORTIO, ACRN_IOREQ_DIR_WRITE, 0x601, 2, 1 } };
	struct dispatch_access w = { ACRN_IOREQ_TYPE_PORTIO, ACRN_IOREQ_DIR_WRITE, 0x600, 2, 1 };
	struct handled h = { 0 };

	assert_int_equal(dispatch_ioeventfd_assign(&d, &e), 0);
	assert_int_equal(dispatch_add_client(&d, "dev", ACRN_IOREQ_TYPE_PORTIO, 0x600, 0x600, handler, &h), 0);
	w.size = 1;
	dispatch_access(&d, 0, &w, false);
	assert_int_equal(h.calls, 1);
	assert_int_equal(drained(bell), 0);
	w.size = 2;
	dispatch_access(&d, 0, &w, false);
	assert_int_equal(h.calls, 1);
	assert_int_equal(drained(bell), 1);

	assert_int_equal(dispatch_create_default(&d), 0);
	accessor_start(&x);
	wait_pending(1u << 3);
	assert_int_equal(dispatch_notify(&d, 3), 0);
	assert_true(join_within(x.thread, DONE_MS));
	assert_int_equal(drained(bell), 0);

	assert_int_equal(dispatch_ioeventfd_deassign(&d, bell), bell);
	x.a.addr = 0x600;
	accessor_start(&x);
	wait_pending(1u << 3);
	assert_int_equal(dispatch_notify(&d, 3), 0);
	assert_true(join_within(x.thread, DONE_MS));
	assert_int_equal(drained(bell), 0);
	close(bell);
}

/* Through the default client: the slot carries what the vCPU asked for
 * (polling included), the vCPU waits, and the client's value comes back. */
static void test_access_default_client(void **state)
{
	struct accessor x = { .vcpu = 1, .a = { ACRN_IOREQ_TYPE_MMIO, ACRN_IOREQ_DIR_READ, 0xfee00000, 4, 0 },
			      .polling = true };
	struct dispatch_access seen;

	assert_int_equal(dispatch_create_default(&d), 0);
	accessor_start(&x);
	wait_pending(1u << 1);
	while (state_of(1) != ACRN_IOREQ_STATE_PROCESSING)
		sched_yield();
	assert_int_equal(dispatch_decode(slot(1), &seen), 0);
	assert_int_equal(seen.type, ACRN_IOREQ_TYPE_MMIO);
	assert_int_equal(seen.addr, 0xfee00000);
	assert_int_equal(seen.size, 4);
	assert_int_equal(slot(1)->completion_polling, 1);
	sleep_ms(BLOCKED_MS);
	assert_int_equal(atomic_load(&x.done), 0);
	/* More than the access is wide: the vCPU sees only its 4 bytes. */
	dispatch_set_value(slot(1), 0xaaaabbbbccccddddull);
	assert_int_equal(dispatch_notify(&d, 1), 0);
	assert_true(flag_within(&x.done, DONE_MS));
	assert_true(join_within(x.thread, DONE_MS));
	assert_int_equal(x.value, 0xccccdddd);
}

/* A 0xCFC access comes back as PCICFG: its value is read by that type. */
static void test_access_reads_back_pcicfg(void **state)
{
	struct dispatch_access cf8 = { ACRN_IOREQ_TYPE_PORTIO, ACRN_IOREQ_DIR_WRITE, 0xcf8, 4, 0x80001800 };
	struct accessor x = { .vcpu = 0, .a = { ACRN_IOREQ_TYPE_PORTIO, ACRN_IOREQ_DIR_READ, 0xcfe, 2, 0 } };

	assert_int_equal(dispatch_create_default(&d), 0);
	dispatch_access(&d, 0, &cf8, false);
	accessor_start(&x);
	wait_pending(1u << 0);
	while (state_of(0) != ACRN_IOREQ_STATE_PROCESSING)
		sched_yield();
	assert_int_equal(slot(0)->type, ACRN_IOREQ_TYPE_PCICFG);
	assert_int_equal(slot(0)->reqs.pci_request.dev, 3);
	assert_int_equal(slot(0)->reqs.pci_request.reg, 2);
	slot(0)->reqs.pci_request.value = 0x12345678;
	assert_int_equal(dispatch_notify(&d, 0), 0);
	assert_true(join_within(x.thread, DONE_MS));
	assert_int_equal(x.value, 0x5678);
}

/* ---- DESTROY_VM (dispatch_close) ---- */

/* Closing ends the client's wait, releases a blocked vCPU with all ones,
 * completes later requests at once and takes no client again. */
static void test_close(void **state)
{
	struct waiter w = {0};
	struct vcpu v;

	assert_int_equal(dispatch_create_default(&d), 0);
	vcpu_read(&v, 3, false);
	wait_pending(1u << 3);
	fill_mmio(0, ACRN_IOREQ_DIR_READ, 0x1000, 4, 0);
	slot(0)->completion_polling = true;
	dispatch_submit(&d, 0);
	/* Take vCPU 3's request, so that the waiter blocks. */
	{
		_Atomic uint32_t held = (1u << 3) | (1u << 0);

		w.held = &held;
		w.except = true;
		waiter_start(&w);
		sleep_ms(BLOCKED_MS);
		assert_int_equal(atomic_load(&w.done), 0);
		dispatch_close(&d);
		waiter_finish(&w, -ENODEV);
	}
	assert_true(flag_within(&v.done, DONE_MS));
	assert_true(join_within(v.thread, DONE_MS));
	assert_int_equal(v.value, ~0ull);
	assert_int_equal(state_of(0), ACRN_IOREQ_STATE_COMPLETE);
	assert_int_equal(slot(0)->reqs.mmio_request.value, 0xffffffff);
	dispatch_wait_complete(&d, 0);
	assert_int_equal(dispatch_pending(&d), 0);

	fill_pio(1, ACRN_IOREQ_DIR_READ, 0x3f8, 1, 0);
	submit_and_free(1);
	assert_int_equal(slot(1)->reqs.pio_request.value, 0xff);
	assert_int_equal(dispatch_create_default(&d), -ENODEV);
	assert_int_equal(dispatch_attach(&d), -ENODEV);
	assert_int_equal(dispatch_notify(&d, 1), 0);
	assert_int_equal(state_of(1), ACRN_IOREQ_STATE_FREE);
	/* A second close, and a clear after it, change nothing. */
	dispatch_close(&d);
	dispatch_clear(&d, 0);
	assert_int_equal(dispatch_pending(&d), 0);
}

/* In-HSM clients still run after the close (the exit port must see its
 * last write), and 0xCF8 is still kept: only the default client is gone. */
static void test_close_keeps_inhsm_clients(void **state)
{
	struct handled h = {0};

	assert_int_equal(dispatch_add_client(&d, "pio", ACRN_IOREQ_TYPE_PORTIO, 0x60, 0x60, handler, &h), 0);
	dispatch_close(&d);
	fill_pio(0, ACRN_IOREQ_DIR_READ, 0x60, 1, 0);
	submit_and_free(0);
	assert_int_equal(h.calls, 1);
	assert_int_equal(slot(0)->reqs.pio_request.value, 0x5a5a5a5a);
}

#define CLOSE_VCPUS 4
#define CLOSE_ROUNDS 200

struct looper {
	pthread_t thread;
	unsigned index;
	_Atomic int *stop;
};

/* A vCPU that exits without end, like a busy guest, until told to stop. */
static void *looper_main(void *arg)
{
	struct looper *l = arg;

	while (!atomic_load(l->stop)) {
		fill_mmio(l->index, ACRN_IOREQ_DIR_READ, 0x1000, 8, 0);
		dispatch_submit(&d, l->index);
		dispatch_wait_complete(&d, l->index);
	}
	return NULL;
}

/* A client that answers everything, like the broker. */
static void *answer_main(void *arg)
{
	while (dispatch_attach(&d) == 0) {
		for (unsigned i = 0; i < CLOSE_VCPUS; i++) {
			if (state_of(i) == ACRN_IOREQ_STATE_PROCESSING &&
			    !__atomic_load_n(&slot(i)->kernel_handled, __ATOMIC_RELAXED))
				dispatch_notify(&d, i);
		}
	}
	return NULL;
}

/* The teardown race of the kvm and sim backends: vCPUs keep posting while
 * the VM is closed. Whatever the interleaving, none may block after the
 * close, so each is joined at once (a clear instead of the close leaves a
 * vCPU that posts just after it waiting for good). */
static void test_close_races_busy_vcpus(void **state)
{
	for (unsigned round = 0; round < CLOSE_ROUNDS; round++) {
		struct looper l[CLOSE_VCPUS];
		_Atomic int stop = 0;
		pthread_t client;

		assert_int_equal(dispatch_init(&d, &page, CLOSE_VCPUS), 0);
		assert_int_equal(dispatch_create_default(&d), 0);
		assert_int_equal(pthread_create(&client, NULL, answer_main, NULL), 0);
		for (unsigned i = 0; i < CLOSE_VCPUS; i++) {
			l[i] = (struct looper){ .index = i, .stop = &stop };
			assert_int_equal(pthread_create(&l[i].thread, NULL, looper_main, &l[i]), 0);
		}
		if (round % 2)
			sched_yield();
		dispatch_close(&d);
		atomic_store(&stop, 1);
		assert_true(join_within(client, DONE_MS));
		for (unsigned i = 0; i < CLOSE_VCPUS; i++)
			assert_true(join_within(l[i].thread, DONE_MS));
		assert_int_equal(dispatch_pending(&d), 0);
	}
}

/* ---- all together: vCPUs against an acrn-dm style default client ---- */

#define STRESS_VCPUS 4
#define STRESS_ROUNDS 500

static _Atomic int stress_bad;

static void *stress_vcpu(void *arg)
{
	unsigned i = (unsigned)(uintptr_t)arg;

	for (unsigned n = 0; n < STRESS_ROUNDS; n++) {
		uint64_t addr = 0x10000 + ((uint64_t)i << 12) + n;

		fill_mmio(i, ACRN_IOREQ_DIR_READ, addr, 8, 0);
		slot(i)->completion_polling = n & 1;
		dispatch_submit(&d, i);
		dispatch_wait_complete(&d, i);
		if (slot(i)->reqs.mmio_request.value != ~addr)
			atomic_fetch_add(&stress_bad, 1);
	}
	return NULL;
}

/* Scans the slots like acrn-dm: PROCESSING && !kernel_handled. */
static void *stress_client(void *arg)
{
	_Atomic int *handled = arg;

	while (dispatch_attach(&d) == 0) {
		for (unsigned i = 0; i < STRESS_VCPUS; i++) {
			struct acrn_io_request *req = slot(i);

			if (state_of(i) != ACRN_IOREQ_STATE_PROCESSING || req->kernel_handled)
				continue;
			req->reqs.mmio_request.value = ~req->reqs.mmio_request.address;
			if (dispatch_notify(&d, i))
				atomic_fetch_add(&stress_bad, 1);
			atomic_fetch_add(handled, 1);
		}
	}
	return NULL;
}

static void test_stress(void **state)
{
	pthread_t vcpus[STRESS_VCPUS], client;
	_Atomic int handled = 0;

	atomic_store(&stress_bad, 0);
	assert_int_equal(dispatch_create_default(&d), 0);
	assert_int_equal(pthread_create(&client, NULL, stress_client, &handled), 0);
	for (unsigned i = 0; i < STRESS_VCPUS; i++)
		assert_int_equal(pthread_create(&vcpus[i], NULL, stress_vcpu, (void *)(uintptr_t)i), 0);
	for (unsigned i = 0; i < STRESS_VCPUS; i++)
		assert_true(join_within(vcpus[i], 5 * DONE_MS));
	assert_int_equal(dispatch_destroy_default(&d), 0);
	assert_true(join_within(client, DONE_MS));
	assert_int_equal(atomic_load(&stress_bad), 0);
	/* Each request handled exactly once. */
	assert_int_equal(atomic_load(&handled), STRESS_VCPUS * STRESS_ROUNDS);
	assert_int_equal(dispatch_pending(&d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_init, setup),
	    cmocka_unit_test_setup(test_add_client_rejects, setup),
	    cmocka_unit_test_setup(test_add_client_limits, setup),
	    cmocka_unit_test_setup(test_add_client_second_range, setup),
	    cmocka_unit_test_setup(test_inhsm_client_takes_access, setup),
	    cmocka_unit_test_setup(test_inhsm_client_needs_whole_access, setup),
	    cmocka_unit_test_setup(test_newest_client_wins, setup),
	    cmocka_unit_test_setup(test_client_type_must_match, setup),
	    cmocka_unit_test_setup(test_default_client_fallback, setup),
	    cmocka_unit_test_setup(test_pcicfg_always_default, setup),
	    cmocka_unit_test_setup(test_cf8_kept_in_hsm, setup),
	    cmocka_unit_test_setup(test_cfc_disabled_completes, setup),
	    cmocka_unit_test_setup(test_cfc_enabled_rewrites_to_pcicfg, setup),
	    cmocka_unit_test_setup(test_attach_level_triggered, setup),
	    cmocka_unit_test_setup(test_attach_except, setup),
	    cmocka_unit_test_setup(test_kick_wraps, setup),
	    cmocka_unit_test_setup(test_kick_then_same_bits, setup),
	    cmocka_unit_test_setup(test_destroy_wakes_attach, setup),
	    cmocka_unit_test_setup(test_create_twice, setup),
	    cmocka_unit_test_setup(test_destroy_leaves_requests, setup),
	    cmocka_unit_test_setup(test_notify_bad_vcpu, setup),
	    cmocka_unit_test_setup(test_notify_wakes_vcpu, setup),
	    cmocka_unit_test_setup(test_completion_polling, setup),
	    cmocka_unit_test_setup(test_clearing_completes_new_requests, setup),
	    cmocka_unit_test_setup(test_clear_forces_in_flight, setup),
	    cmocka_unit_test_setup(test_clear_drain_window, setup),
	    cmocka_unit_test_setup(test_clear_wakes_vcpu, setup),
	    cmocka_unit_test_setup(test_no_default_client, setup),
	    cmocka_unit_test_setup(test_decode, setup),
	    cmocka_unit_test_setup(test_set_value, setup),
	    cmocka_unit_test_setup(test_access_inhsm, setup),
	    cmocka_unit_test_setup(test_access_unclaimed, setup),
	    cmocka_unit_test_setup(test_access_default_client, setup),
	    cmocka_unit_test_setup(test_access_reads_back_pcicfg, setup),
	    cmocka_unit_test_setup(test_eventfd_checks, setup),
	    cmocka_unit_test_setup(test_ioeventfd_assign, setup),
	    cmocka_unit_test_setup(test_ioeventfd_rules, setup),
	    cmocka_unit_test_setup(test_ioeventfd_order, setup),
	    cmocka_unit_test_setup(test_close, setup),
	    cmocka_unit_test_setup(test_close_keeps_inhsm_clients, setup),
	    cmocka_unit_test_setup(test_close_races_busy_vcpus, setup),
	    cmocka_unit_test_setup(test_stress, setup),
	};

	return cmocka_run_group_tests_name("dispatch", tests, NULL, NULL);
}
