/* ring.c and the device library's devring.c: the request ring's protocol,
 * both sides in this process on one real sealed memfd and real eventfds.
 *
 * Posting and collecting, the doorbells rung only when the other side
 * sleeps, a slot held by an unanswered request, a device that lies about
 * ids, states or statuses (-EPROTO, nothing collected), instances that
 * never see each other's rings, the broker's bounded wait, and a long run
 * of round trips through sleeping threads that must lose no wake-up. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "devring.h"
#include "ring.h"

#define SLOTS 4

static struct access pio_read(uint16_t port, unsigned size)
{
	return (struct access){ .type = ACRN_IOREQ_TYPE_PORTIO, .size = (uint8_t)size, .addr = port };
}

/* The device's view of the broker's ring: its own fds, as a launch would give them. */
static struct devring *device_side(struct ring *r, unsigned slots, uint32_t poll_us)
{
	Ioreq__Ring w = IOREQ__RING__INIT;
	struct devring *d;
	int m, db, rdb;

	ring_fds(r, &m, &db, &rdb);
	w.fd = dup(m);
	w.doorbell = dup(db);
	w.reply_doorbell = dup(rdb);
	w.slots = slots;
	w.poll_us = poll_us;
	assert_int_equal(devring_open(&w, &d), 0);
	return d;
}

static struct ring_page *page_of(struct ring *r)
{
	int m, db, rdb;
	void *p;

	ring_fds(r, &m, &db, &rdb);
	p = mmap(NULL, RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
	assert_ptr_not_equal(p, MAP_FAILED);
	return p;
}

static uint64_t bell_count(int fd)
{
	uint64_t n = 0;

	if (read(fd, &n, sizeof(n)) < 0)
		assert_int_equal(errno, EAGAIN);
	return n;
}

static int answer_port(void *opaque, const struct ioreq_access *a, uint64_t *value)
{
	unsigned *calls = opaque;

	if (calls)
		(*calls)++;
	if (a->kind != IOREQ_PIO || a->addr == 0x99)
		return -EOPNOTSUPP;
	if (a->addr == 0x98)
		return DEVRING_SENT;
	*value = a->write ? 0 : a->addr * 3 + a->vcpu;
	return 0;
}

static struct ring *open_ring(uint32_t gen, uint32_t poll_us)
{
	struct ring *r;

	assert_int_equal(ring_new(&r), 0);
	assert_int_equal(ring_open(r, gen, SLOTS, poll_us), 0);
	return r;
}

static void test_page_is_sealed(void **state)
{
	struct ring *r = open_ring(1, 0);
	int m, db, rdb, seals;
	struct stat st;

	ring_fds(r, &m, &db, &rdb);
	assert_int_equal(fstat(m, &st), 0);
	assert_int_equal(st.st_size, RING_SIZE);
	seals = fcntl(m, F_GET_SEALS);
	assert_true((seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
	/* What the device would try first. */
	assert_int_equal(ftruncate(m, 0), -1);
	assert_int_equal(fcntl(m, F_ADD_SEALS, F_SEAL_WRITE), -1);
	assert_true(fcntl(db, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(rdb, F_GETFL) & O_NONBLOCK);
	ring_free(r);
}

static void test_post_answer_collect(void **state)
{
	struct ring *r = open_ring(1, 0);
	struct devring *d = device_side(r, SLOTS, 0);
	struct access a = pio_read(0x70, 2);
	struct ring_reply rep[RING_SLOTS];
	const char *why = NULL;
	unsigned calls = 0;
	size_t n;
	int m, db, rdb;

	ring_fds(r, &m, &db, &rdb);
	/* Not until the instance was welcomed with it, and only its own. */
	assert_int_equal(ring_post(r, 1, 0, 0x10, &a, 0, 0), -ENOTCONN);
	ring_enable(r, 2);
	assert_int_equal(ring_post(r, 1, 0, 0x10, &a, 0, 0), -ENOTCONN);
	ring_enable(r, 1);
	assert_int_equal(ring_post(r, 2, 0, 0x10, &a, 0, 0), -ESTALE);
	assert_int_equal(ring_post(r, 1, SLOTS, 0x10, &a, 0, 0), -ENOTCONN);

	assert_int_equal(ring_post(r, 1, 0, 0x10, &a, 5, 0x0), 0);
	a.addr = 0x71;
	assert_int_equal(ring_post(r, 1, 2, 0x22, &a, 5, 0x1), 0);
	/* Held until answered and collected. */
	assert_int_equal(ring_post(r, 1, 2, 0x32, &a, 5, 0x1), -EBUSY);
	/* The device was not waiting: no doorbell. */
	assert_int_equal(bell_count(db), 0);
	assert_int_equal(ring_collect(r, rep, &n, &why), 0);
	assert_int_equal(n, 0);

	assert_int_equal(devring_serve(d, answer_port, NULL, &calls), 2);
	assert_int_equal(calls, 2);
	assert_int_equal(bell_count(rdb), 2);
	assert_int_equal(ring_collect(r, rep, &n, &why), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rep[0].id, 0x10);
	assert_int_equal(rep[0].value, 0x70 * 3 + 0);
	assert_true(rep[0].ok);
	assert_int_equal(rep[1].id, 0x22);
	assert_int_equal(rep[1].value, 0x71 * 3 + 2);
	/* Collected once. */
	assert_int_equal(ring_collect(r, rep, &n, &why), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ring_post(r, 1, 2, 0x32, &a, 5, 0x1), 0);

	/* Unhandled: no value, not ok. */
	devring_serve(d, answer_port, NULL, NULL);
	ring_collect(r, rep, &n, &why);
	a.addr = 0x99;
	assert_int_equal(ring_post(r, 1, 1, 0x41, &a, 5, 0x1), 0);
	devring_serve(d, answer_port, NULL, NULL);
	assert_int_equal(ring_collect(r, rep, &n, &why), 0);
	assert_int_equal(n, 1);
	assert_false(rep[0].ok);
	assert_int_equal(rep[0].value, 0);
	/* Answered on the socket: the slot is free, nothing to deliver. */
	a.addr = 0x98;
	assert_int_equal(ring_post(r, 1, 1, 0x51, &a, 5, 0x1), 0);
	devring_serve(d, answer_port, NULL, NULL);
	assert_int_equal(ring_collect(r, rep, &n, &why), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rep[0].id, 0x51);
	assert_true(rep[0].sent);
	assert_int_equal(ring_post(r, 1, 1, 0x61, &a, 5, 0x1), 0);
	devring_free(d);
	ring_free(r);
}

/* Each side rings only the other side's sleep. */
static void test_doorbells_only_for_sleepers(void **state)
{
	struct ring *r = open_ring(1, 0);
	struct ring_page *p = page_of(r);
	struct devring *d = device_side(r, SLOTS, 0);
	struct access a = pio_read(0x70, 1);
	struct ring_reply rep[RING_SLOTS];
	const char *why;
	size_t n;
	int m, db, rdb;

	ring_fds(r, &m, &db, &rdb);
	ring_enable(r, 1);
	atomic_store(&p->h.device_waiting, 1);
	assert_int_equal(ring_post(r, 1, 0, 0x10, &a, 0, 0), 0);
	assert_int_equal(bell_count(db), 1);
	atomic_store(&p->h.device_waiting, 0);
	assert_int_equal(ring_post(r, 1, 1, 0x21, &a, 0, 0), 0);
	assert_int_equal(bell_count(db), 0);
	/* The broker says it polls: the device answers without a syscall. */
	atomic_store(&p->h.broker_polling, 1);
	assert_int_equal(devring_serve(d, answer_port, NULL, NULL), 2);
	assert_int_equal(bell_count(rdb), 0);
	atomic_store(&p->h.broker_polling, 0);
	assert_int_equal(ring_collect(r, rep, &n, &why), 0);
	assert_int_equal(n, 2);
	munmap(p, RING_SIZE);
	devring_free(d);
	ring_free(r);
}

/* A device writes what it likes into the page: each lie is -EPROTO, and
 * nothing of that pass is collected. */
static void test_lies(void **state)
{
	static const struct {
		const char *what;
		uint32_t state, status;
		uint64_t id_delta;
	} lies[] = {
		{ "another id", RING_COMPLETE, RING_OK, 1 },
		{ "an unknown status", RING_COMPLETE, 7, 0 },
		{ "an unknown state", 9, RING_OK, 0 },
		{ "a slot freed behind the broker's back", RING_FREE, RING_OK, 0 },
	};

	for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		struct ring *r = open_ring(1, 0);
		struct ring_page *p = page_of(r);
		struct access a = pio_read(0x70, 4);
		struct ring_reply rep[RING_SLOTS];
		const char *why = NULL;
		size_t n = 99;

		ring_enable(r, 1);
		assert_int_equal(ring_post(r, 1, 0, 0x10, &a, 0, 0), 0);
		assert_int_equal(ring_post(r, 1, 1, 0x21, &a, 0, 0), 0);
		/* Slot 0 answered honestly, slot 1 lies. */
		atomic_store(&p->slot[0].reply_id, 0x10);
		atomic_store(&p->slot[0].state, RING_COMPLETE);
		atomic_store(&p->slot[1].reply_id, 0x21 + lies[i].id_delta);
		atomic_store(&p->slot[1].status, lies[i].status);
		atomic_store(&p->slot[1].state, lies[i].state);
		print_message("%s\n", lies[i].what);
		assert_int_equal(ring_collect(r, rep, &n, &why), -EPROTO);
		assert_int_equal(n, 0);
		assert_non_null(why);
		munmap(p, RING_SIZE);
		ring_free(r);
	}
}

/* Garbage in slots the broker did not post to, and in the header, is
 * never read. */
static void test_garbage_elsewhere_is_ignored(void **state)
{
	struct ring *r = open_ring(1, 0);
	struct ring_page *p = page_of(r);
	struct access a = pio_read(0x70, 4);
	struct ring_reply rep[RING_SLOTS];
	const char *why;
	size_t n;

	ring_enable(r, 1);
	memset(p, 0xa5, RING_SIZE);
	atomic_store(&p->h.device_waiting, 0);
	assert_int_equal(ring_collect(r, rep, &n, &why), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ring_post(r, 1, 3, 0x13, &a, 0, 0), 0);
	assert_int_equal(atomic_load(&p->slot[3].state), RING_PENDING);
	assert_int_equal(p->slot[3].id, 0x13);
	munmap(p, RING_SIZE);
	ring_free(r);
}

/* Each instance has its own page: the last one's mapping sees nothing of
 * the next, and a closed ring takes nothing. */
static void test_instances_apart(void **state)
{
	struct ring *r = open_ring(1, 0);
	struct ring_page *old = page_of(r);
	struct access a = pio_read(0x70, 4);
	struct ring_reply rep[RING_SLOTS];
	const char *why;
	size_t n;
	int m1, m2, db, rdb;

	ring_fds(r, &m1, &db, &rdb);
	ring_enable(r, 1);
	assert_int_equal(ring_post(r, 1, 0, 0x10, &a, 0, 0), 0);
	ring_close(r);
	assert_int_equal(ring_post(r, 1, 0, 0x20, &a, 0, 0), -ESTALE);
	assert_int_equal(ring_collect(r, rep, &n, &why), -ESTALE);
	assert_int_equal(ring_open(r, 2, SLOTS, 0), 0);
	ring_enable(r, 2);
	assert_int_equal(ring_post(r, 1, 0, 0x20, &a, 0, 0), -ESTALE);
	assert_int_equal(ring_post(r, 2, 0, 0x30, &a, 0, 0), 0);
	ring_fds(r, &m2, &db, &rdb);
	assert_int_equal(old->slot[0].id, 0x10);
	/* The old instance answers into its own page: nothing here. */
	atomic_store(&old->slot[0].reply_id, 0x10);
	atomic_store(&old->slot[0].state, RING_COMPLETE);
	assert_int_equal(ring_collect(r, rep, &n, &why), 0);
	assert_int_equal(n, 0);
	munmap(old, RING_SIZE);
	ring_free(r);
}

/* The broker's bounded wait: the reply when the device answers in time
 * (and then no doorbell), nothing once the time is up. */
static void test_wait(void **state)
{
	struct ring *r = open_ring(1, 200);
	struct devring *d = device_side(r, SLOTS, 200);
	struct access a = pio_read(0x70, 4);
	struct ring_reply rep[RING_SLOTS];
	const char *why;
	int64_t t0;
	size_t n;
	int m, db, rdb;

	ring_fds(r, &m, &db, &rdb);
	ring_enable(r, 1);
	assert_int_equal(ring_post(r, 1, 1, 0x11, &a, 0, 0), 0);
	t0 = clock_now_ns();
	assert_int_equal(ring_wait(r, 1, 0x11, t0 + 2000000, rep, &n, &why), 0);
	assert_int_equal(n, 0);
	assert_true(clock_now_ns() - t0 >= 2000000);
	assert_int_equal(ring_wait(r, 1, 0x99, t0 + 2000000, rep, &n, &why), 0);
	assert_int_equal(n, 0);

	/* What the device answers for other vCPUs while the broker polls
	 * (and it therefore does not ring) is collected with it. */
	assert_int_equal(ring_post(r, 1, 3, 0x13, &a, 0, 0), 0);
	assert_int_equal(devring_start(d, answer_port, NULL, NULL), 0);
	assert_int_equal(ring_wait(r, 1, 0x11, clock_now_ns() + 5000000000, rep, &n, &why), 0);
	if (n == 1) { /* the device took slot 3 a moment later */
		assert_int_equal(rep[0].id, 0x11);
		assert_int_equal(ring_wait(r, 3, 0x13, clock_now_ns() + 5000000000, rep, &n, &why), 0);
		assert_int_equal(n, 1);
		assert_int_equal(rep[0].id, 0x13);
	} else {
		assert_int_equal(n, 2);
		assert_int_equal(rep[0].id, 0x11);
		assert_int_equal(rep[0].value, 0x70 * 3 + 1);
		assert_int_equal(rep[1].id, 0x13);
		assert_int_equal(rep[1].value, 0x70 * 3 + 3);
	}
	bell_count(rdb);
	for (unsigned i = 0; i < 1000; i++) {
		assert_int_equal(ring_post(r, 1, 1, 0x21 + ((uint64_t)i << 4), &a, 0, 0), 0);
		assert_int_equal(ring_wait(r, 1, 0x21 + ((uint64_t)i << 4), clock_now_ns() + 5000000000, rep, &n, &why), 0);
		assert_int_equal(n, 1);
	}
	devring_stop(d);
	/* The device saw the broker polling, but for a reply that landed just
	 * as the broker stopped looking (then both may act: proto/ioreq_ring.h). */
	assert_true(bell_count(rdb) < 500);
	devring_free(d);
	ring_free(r);
}

/* An answer the device wrote while the broker polled for another vCPU
 * came without a ring: the poll collects it too, or it would wait for
 * some later ring (or its deadline). */
static void test_wait_takes_every_answer(void **state)
{
	struct ring *r = open_ring(1, 50);
	struct ring_page *p = page_of(r);
	struct devring *d = device_side(r, SLOTS, 0);
	struct access a = pio_read(0x70, 4);
	struct ring_reply rep[RING_SLOTS];
	const char *why;
	size_t n;
	int m, db, rdb;

	ring_fds(r, &m, &db, &rdb);
	ring_enable(r, 1);
	assert_int_equal(ring_post(r, 1, 3, 0x13, &a, 0, 0), 0);
	atomic_store(&p->h.broker_polling, 1); /* (as during another vCPU's wait) */
	assert_int_equal(devring_serve(d, answer_port, NULL, NULL), 1);
	assert_int_equal(bell_count(rdb), 0);
	atomic_store(&p->h.broker_polling, 0);
	assert_int_equal(ring_post(r, 1, 1, 0x11, &a, 0, 0), 0);
	assert_int_equal(devring_serve(d, answer_port, NULL, NULL), 1);
	assert_int_equal(ring_wait(r, 1, 0x11, clock_now_ns(), rep, &n, &why), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rep[0].id, 0x11);
	assert_int_equal(rep[1].id, 0x13);
	munmap(p, RING_SIZE);
	devring_free(d);
	ring_free(r);
}

/* A reset goes through the ring: the device resets before it serves what
 * was posted after the reset, once per reset, and is rung if it sleeps. */
static unsigned resets, calls_at_reset, calls;

static void on_reset(void *opaque)
{
	resets++;
	calls_at_reset = calls;
}

static int count_call(void *opaque, const struct ioreq_access *a, uint64_t *value)
{
	calls++;
	*value = 0;
	return 0;
}

static void test_reset_in_ring(void **state)
{
	struct ring *r = open_ring(1, 0);
	struct ring_page *p = page_of(r);
	struct devring *d = device_side(r, SLOTS, 0);
	struct access a = pio_read(0x70, 4);
	int m, db, rdb;

	ring_fds(r, &m, &db, &rdb);
	assert_int_equal(ring_reset(r, 1), -ENOTCONN); /* not welcomed with a ring: a message */
	ring_enable(r, 1);
	assert_int_equal(ring_post(r, 1, 0, 0x10, &a, 0, 0), 0);
	assert_int_equal(devring_serve(d, count_call, on_reset, NULL), 1);
	assert_int_equal(resets, 0);
	atomic_store(&p->h.device_waiting, 1);
	assert_int_equal(ring_reset(r, 2), -ENOTCONN); /* another instance's */
	assert_int_equal(ring_reset(r, 1), 0);
	assert_int_equal(bell_count(db), 1);
	atomic_store(&p->h.device_waiting, 0);
	assert_int_equal(ring_post(r, 1, 2, 0x22, &a, 0, 0), 0);
	assert_int_equal(devring_serve(d, count_call, on_reset, NULL), 1);
	assert_int_equal(resets, 1);
	assert_int_equal(calls_at_reset, 1); /* before the request posted after it */
	assert_int_equal(devring_serve(d, count_call, on_reset, NULL), 0);
	assert_int_equal(resets, 1);
	munmap(p, RING_SIZE);
	devring_free(d);
	ring_free(r);
}

/* Both sides sleep between requests: a lost wake-up would hang here. */
static void test_no_lost_wakeups(void **state)
{
	struct ring *r = open_ring(1, 0);
	struct devring *d = device_side(r, SLOTS, 0);
	struct ring_reply rep[RING_SLOTS];
	const char *why;
	unsigned got = 0;
	size_t n;
	int m, db, rdb;

	ring_fds(r, &m, &db, &rdb);
	ring_enable(r, 1);
	assert_int_equal(devring_start(d, answer_port, NULL, NULL), 0);
	for (unsigned i = 0; i < 20000; i++) {
		struct access a = pio_read((uint16_t)(0x100 + (i & 0xff)), 4);
		struct pollfd p = { .fd = rdb, .events = POLLIN };
		unsigned v = i % SLOTS;

		assert_int_equal(ring_post(r, 1, v, (uint64_t)(i + 1) << 4 | v, &a, 0, 0), 0);
		while (got <= i) {
			assert_int_equal(poll(&p, 1, 5000), 1);
			bell_count(rdb);
			assert_int_equal(ring_collect(r, rep, &n, &why), 0);
			for (size_t k = 0; k < n; k++) {
				assert_int_equal(rep[k].id, (uint64_t)(i + 1) << 4 | v);
				assert_int_equal(rep[k].value, (0x100 + (i & 0xff)) * 3 + v);
			}
			got += (unsigned)n;
		}
	}
	devring_free(d);
	ring_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_is_sealed),
		cmocka_unit_test(test_post_answer_collect),
		cmocka_unit_test(test_doorbells_only_for_sleepers),
		cmocka_unit_test(test_lies),
		cmocka_unit_test(test_garbage_elsewhere_is_ignored),
		cmocka_unit_test(test_instances_apart),
		cmocka_unit_test(test_wait),
		cmocka_unit_test(test_wait_takes_every_answer),
		cmocka_unit_test(test_reset_in_ring),
		cmocka_unit_test(test_no_lost_wakeups),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
