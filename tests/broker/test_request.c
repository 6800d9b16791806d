/* request.c: a request read once from its slot, completed exactly once,
 * whoever races for it; on the real dispatcher of a sim VM whose vCPUs
 * are played by the test's threads. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dispatch.h"
#include "hsm.h"
#include "request.h"

#define VCPUS 4

struct fixture {
	struct hsm_vm *hsm;
	struct request_table *t;
	_Atomic unsigned done[REQUEST_DRAINED + 1];
	_Atomic unsigned done_total;
	_Atomic unsigned done_after_release; /* the vCPU was free before the event */
};

static struct fixture fx;
static int owner_a, owner_b;

static void on_done(void *opaque, const struct request_done *d)
{
	struct fixture *f = opaque;

	atomic_fetch_add(&f->done[d->how], 1);
	atomic_fetch_add(&f->done_total, 1);
	if (__atomic_load_n(&f->hsm->page->req_slot[d->vcpu].processed, __ATOMIC_ACQUIRE) !=
	    ACRN_IOREQ_STATE_PROCESSING)
		atomic_fetch_add(&f->done_after_release, 1);
}

static int setup(void **state)
{
	const char *scripts[VCPUS] = { NULL };
	struct hsm_vm_params p = { .name = "t", .vcpus = VCPUS, .scripts = scripts };

	memset(&fx, 0, sizeof(fx));
	assert_int_equal(hsm_create(HSM_BACKEND_SIM, &p, &fx.hsm), 0);
	assert_int_equal(hsm_create_client(fx.hsm), 0);
	assert_int_equal(request_table_new(VCPUS, on_done, &fx, &fx.t), 0);
	request_table_set_hsm(fx.t, fx.hsm);
	return 0;
}

static int teardown(void **state)
{
	request_table_set_hsm(fx.t, NULL);
	fx.t = request_table_free(fx.t);
	fx.hsm = hsm_destroy(fx.hsm);
	return 0;
}

/* ---- the vCPU side: what the hypervisor posts ---- */

static void post(unsigned vcpu, uint32_t type, bool write, uint64_t addr, uint32_t size, uint64_t value)
{
	struct acrn_io_request *slot = &fx.hsm->page->req_slot[vcpu];

	slot->type = type;
	memset(&slot->reqs, 0, sizeof(slot->reqs));
	slot->reqs.mmio_request.direction = write ? ACRN_IOREQ_DIR_WRITE : ACRN_IOREQ_DIR_READ;
	slot->reqs.mmio_request.address = addr;
	slot->reqs.mmio_request.size = size;
	slot->reqs.mmio_request.value = value;
	/* Returns with the slot PROCESSING for the default client. */
	dispatch_submit(fx.hsm->local, vcpu);
}

/* Waits for the completion and returns what a read got. */
static uint64_t wait_done(unsigned vcpu)
{
	dispatch_wait_complete(fx.hsm->local, vcpu);
	return fx.hsm->page->req_slot[vcpu].reqs.mmio_request.value;
}

static uint64_t take_and_publish(unsigned vcpu, void *owner, int64_t deadline_ns, struct access *a)
{
	struct request_route route = { .owner = owner, .tag = 3, .offset = 0x10 };

	assert_int_equal(request_take(fx.t, vcpu, a), 0);
	return request_publish(fx.t, vcpu, a, &route, deadline_ns);
}

static int64_t later(int64_t ms)
{
	return clock_now_ns() + ms * 1000000;
}

/* ---- tests ---- */

static void test_reply_completes_once(void **state)
{
	struct access a;
	uint64_t id;

	post(0, ACRN_IOREQ_TYPE_MMIO, false, 0x1000, 4, 0);
	id = take_and_publish(0, &owner_a, later(10000), &a);
	assert_true(atomic_load(request_held(fx.t)) & 1);
	assert_true(request_mark_sent(fx.t, id, 7));
	assert_false(request_mark_sent(fx.t, id, 7));
	/* Only the instance it went to, with a value that fits. */
	assert_int_equal(request_reply(fx.t, id, &owner_b, 7, 1, true), -ENOENT);
	assert_int_equal(request_reply(fx.t, id, &owner_a, 6, 1, true), -ENOENT);
	assert_int_equal(request_reply(fx.t, id + (1000 << 4), &owner_a, 7, 1, true), -EBADMSG);
	assert_int_equal(request_reply(fx.t, id, &owner_a, 7, 0x12345678, true), 0);
	assert_int_equal(wait_done(0), 0x12345678);
	assert_false(atomic_load(request_held(fx.t)) & 1);
	/* A duplicate finds nothing; so does a late deadline or death. */
	assert_int_equal(request_reply(fx.t, id, &owner_a, 7, 1, true), -ENOENT);
	assert_false(request_complete(fx.t, id, 0, REQUEST_EXPIRED));
	request_fail_owner(fx.t, &owner_a, REQUEST_FAILED);
	assert_int_equal(atomic_load(&fx.done_total), 1);
	assert_int_equal(atomic_load(&fx.done[REQUEST_ANSWERED]), 1);
	/* What it held is given back before its vCPU may post the next one. */
	assert_int_equal(atomic_load(&fx.done_after_release), 0);
}

static void test_wider_value_is_a_lie(void **state)
{
	struct access a;
	uint64_t id;

	post(1, ACRN_IOREQ_TYPE_PORTIO, false, 0x80, 2, 0);
	id = take_and_publish(1, &owner_a, later(10000), &a);
	assert_true(request_mark_sent(fx.t, id, 1));
	assert_int_equal(request_reply(fx.t, id, &owner_a, 1, 0x10000, true), -ERANGE);
	assert_int_equal(wait_done(1) & 0xffff, 0xffff);
	assert_int_equal(atomic_load(&fx.done[REQUEST_FAILED]), 1);
}

/* The vCPU reuses its slot as soon as it is completed: nothing the broker
 * sends or completes afterwards may read it. */
static void test_snapshot_not_slot(void **state)
{
	struct request_route route;
	struct access a, v;
	uint64_t id;

	post(2, ACRN_IOREQ_TYPE_MMIO, true, 0x2000, 8, 0x1122334455667788);
	id = take_and_publish(2, &owner_a, later(10000), &a);
	/* What a hypervisor must never do, to prove nobody reads it again. */
	fx.hsm->page->req_slot[2].reqs.mmio_request.address = 0xdead;
	fx.hsm->page->req_slot[2].reqs.mmio_request.size = 1;
	assert_true(request_view(fx.t, id, &v, &route));
	assert_int_equal(v.addr, 0x2000);
	assert_int_equal(v.size, 8);
	assert_true(v.write);
	assert_int_equal(v.value, 0x1122334455667788);
	assert_ptr_equal(route.owner, &owner_a);
	assert_int_equal(route.tag, 3);
	assert_int_equal(route.offset, 0x10);
	assert_true(request_complete(fx.t, id, 0, REQUEST_ANSWERED));
	wait_done(2);
	assert_false(request_view(fx.t, id, &v, &route));
}

static void test_malformed_and_unpublished(void **state)
{
	struct access a;

	post(0, ACRN_IOREQ_TYPE_MMIO, false, 0x3000, 3, 0);
	assert_int_equal(request_take(fx.t, 0, &a), -EINVAL);
	request_finish(fx.t, 0, NULL, 0, true);
	wait_done(0);
	post(0, ACRN_IOREQ_TYPE_PORTIO, false, 0x60, 1, 0);
	assert_int_equal(request_take(fx.t, 0, &a), 0);
	request_finish(fx.t, 0, &a, 0, true);
	assert_int_equal(wait_done(0) & 0xff, 0xff);
	/* Never published: no completion event, nothing held. */
	assert_int_equal(atomic_load(&fx.done_total), 0);
	assert_int_equal(atomic_load(request_held(fx.t)), 0);
	/* Not PROCESSING: nothing to take. */
	assert_int_equal(request_take(fx.t, 3, &a), -EAGAIN);
}

static void test_deadline_timer(void **state)
{
	struct pollfd p = { .fd = request_timer_fd(fx.t), .events = POLLIN };
	struct access a;
	uint64_t ticks;
	int64_t start = clock_now_ns();

	post(0, ACRN_IOREQ_TYPE_MMIO, false, 0x1000, 4, 0);
	post(1, ACRN_IOREQ_TYPE_MMIO, false, 0x1000, 4, 0);
	take_and_publish(0, &owner_a, later(200), &a);
	/* An earlier deadline published later re-arms the timer earlier. */
	take_and_publish(1, &owner_a, later(30), &a);
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_true(clock_now_ns() - start < 190 * 1000000LL);
	assert_int_equal(read(p.fd, &ticks, sizeof(ticks)), sizeof(ticks));
	request_expire(fx.t, clock_now_ns());
	assert_int_equal(wait_done(1) & 0xffffffff, 0xffffffff);
	assert_int_equal(atomic_load(&fx.done[REQUEST_EXPIRED]), 1);
	/* The timer is armed again, for the other one. */
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_true(clock_now_ns() - start >= 200 * 1000000LL);
	assert_int_equal(read(p.fd, &ticks, sizeof(ticks)), sizeof(ticks));
	request_expire(fx.t, clock_now_ns());
	wait_done(0);
	assert_int_equal(atomic_load(&fx.done[REQUEST_EXPIRED]), 2);
}

/* ---- races ---- */

struct racer {
	uint64_t id;
	int how;
	pthread_barrier_t *go;
	bool won;
};

static void *race(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->go);
	switch (r->how) {
	case 0:
		r->won = request_reply(fx.t, r->id, &owner_a, 1, 5, true) == 0;
		break;
	case 1:
		r->won = request_complete(fx.t, r->id, 0, REQUEST_EXPIRED);
		break;
	default:
		request_fail_owner(fx.t, &owner_a, REQUEST_FAILED);
		break;
	}
	return NULL;
}

/* A reply, the deadline and the device's death, all at once, 2000 times:
 * each request completes exactly once. */
static void test_exactly_once_under_races(void **state)
{
	enum { ROUNDS = 2000, RACERS = 3 };

	for (unsigned i = 0; i < ROUNDS; i++) {
		struct racer r[RACERS];
		pthread_t t[RACERS];
		pthread_barrier_t go;
		struct access a;
		uint64_t id;

		post(0, ACRN_IOREQ_TYPE_MMIO, false, 0x1000, 4, 0);
		id = take_and_publish(0, &owner_a, later(10000), &a);
		assert_true(request_mark_sent(fx.t, id, 1));
		pthread_barrier_init(&go, NULL, RACERS);
		for (int k = 0; k < RACERS; k++) {
			r[k] = (struct racer){ .id = id, .how = k, .go = &go };
			pthread_create(&t[k], NULL, race, &r[k]);
		}
		for (int k = 0; k < RACERS; k++)
			pthread_join(t[k], NULL);
		pthread_barrier_destroy(&go);
		wait_done(0);
		assert_int_equal(atomic_load(&fx.done_total), i + 1);
	}
}

struct viewer {
	_Atomic bool stop;
	unsigned torn, seen;
};

static void *view_loop(void *arg)
{
	struct viewer *w = arg;

	while (!atomic_load(&w->stop)) {
		uint64_t id = request_id_of(fx.t, 0);
		struct request_route route;
		struct access a;

		if (!id || !request_view(fx.t, id, &a, &route))
			continue;
		w->seen++;
		/* Every access the test posts has addr == size << 12 and
		 * value == size: a mix of two is torn. */
		if (a.addr != (uint64_t)a.size << 12 || a.value != a.size ||
		    route.offset != a.addr)
			w->torn++;
	}
	return NULL;
}

/* A reader of published requests racing the VM thread that completes and
 * republishes them never sees half of one and half of another. The vCPU
 * is left out (publishing does not look at the slot, completing one that
 * is not PROCESSING is a no-op for the dispatcher), so that the rewrites
 * come as fast as they can. */
static void test_views_never_torn(void **state)
{
	static const uint8_t sizes[] = { 1, 2, 4, 8 };
	struct viewer w = { 0 };
	pthread_t t;

	pthread_create(&t, NULL, view_loop, &w);
	for (unsigned i = 0; i < 500000; i++) {
		uint8_t size = sizes[i % 4];
		struct access a = {
			.type = ACRN_IOREQ_TYPE_MMIO, .write = true, .size = size, .addr = (uint64_t)size << 12, .value = size,
		};
		struct request_route route = { .owner = &owner_a, .offset = a.addr };
		uint64_t id = request_publish(fx.t, 0, &a, &route, later(10000));

		request_complete(fx.t, id, 0, REQUEST_ANSWERED);
	}
	atomic_store(&w.stop, true);
	pthread_join(t, NULL);
	assert_int_equal(w.torn, 0);
	assert_true(w.seen > 0);
}

struct late {
	uint64_t id;
	unsigned ms;
};

static void *reply_later(void *arg)
{
	struct late *l = arg;

	usleep(l->ms * 1000);
	request_reply(fx.t, l->id, &owner_a, 1, 9, true);
	return NULL;
}

/* A drain lets the devices answer until its limit, completes the rest,
 * and returns only once nobody completes any more. */
static void test_drain(void **state)
{
	struct late l;
	struct access a;
	pthread_t t;
	int64_t start;
	uint64_t id0;

	post(0, ACRN_IOREQ_TYPE_MMIO, false, 0x1000, 4, 0);
	post(1, ACRN_IOREQ_TYPE_MMIO, false, 0x1000, 4, 0);
	id0 = take_and_publish(0, &owner_a, later(10000), &a);
	take_and_publish(1, &owner_b, later(10000), &a);
	assert_true(request_mark_sent(fx.t, id0, 1));
	l = (struct late){ .id = id0, .ms = 20 };
	pthread_create(&t, NULL, reply_later, &l);
	start = clock_now_ns();
	request_drain(fx.t, later(150));
	/* vCPU 0 was answered during the drain, vCPU 1 drained at its end. */
	assert_true(clock_now_ns() - start >= 140 * 1000000LL);
	assert_int_equal(wait_done(0), 9);
	assert_int_equal(wait_done(1) & 0xffffffff, 0xffffffff);
	assert_int_equal(atomic_load(&fx.done[REQUEST_ANSWERED]), 1);
	assert_int_equal(atomic_load(&fx.done[REQUEST_DRAINED]), 1);
	assert_int_equal(atomic_load(request_held(fx.t)), 0);
	pthread_join(t, NULL);
}

/* With nothing in flight a drain returns at once. */
static void test_drain_idle(void **state)
{
	int64_t start = clock_now_ns();

	request_drain(fx.t, later(5000));
	assert_true(clock_now_ns() - start < 1000 * 1000000LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reply_completes_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wider_value_is_a_lie, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_not_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_and_unpublished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exactly_once_under_races, setup, teardown),
		cmocka_unit_test_setup_teardown(test_views_never_torn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_idle, setup, teardown),
	};

	return cmocka_run_group_tests_name("request", tests, NULL, NULL);
}
