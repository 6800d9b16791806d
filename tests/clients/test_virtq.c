/* Split virtqueues (clients/lib/virtq.c) over a real memfd laid out like a
 * guest's RAM, the test playing the driver. Guest RAM has a hole, two
 * regions adjacent in the guest but not in the memfd, a read-only region
 * and a region at the top of the address space; around the mapping and
 * over the memfd page no region uses, nothing is mapped (PROT_NONE), and
 * the read-only region is mapped read-only: an access outside guest RAM,
 * or a write to what the device may only read, is a crash here, not a
 * silent pass.
 *
 * The same tests run again over a view of that memory that is not mapped
 * (a remote device's, memory.h), its accesses copies through a stand-in
 * for the broker: only the pointers differ; test_copied checks what only
 * copies do. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "ioreq/virtq.h"
#include "memory.h"

#define PAGE 0x1000ull
#define TOP (UINT64_MAX - PAGE + 1)
#define RAM_PAGES 256ull
#define MEMFD_PAGES (RAM_PAGES + 5)

/* Guest-physical layout (memfd page in brackets):
 *   0x000000..0x0fffff  RAM [0, 256): rings and buffers
 *   0x100000..0x1fffff  a hole ([256] is in no region: PROT_NONE)
 *   0x200000..0x200fff  X [258], and right after it
 *   0x201000..0x201fff  Y [257]: adjacent in the guest, not in the memfd
 *   0x300000..0x300fff  RO [259], read-only
 *   TOP..UINT64_MAX     [260] */
#define RAM_END (RAM_PAGES * PAGE)
#define HOLE 0x100000ull
#define X 0x200000ull
#define Y 0x201000ull
#define RO 0x300000ull
static const struct ioreq_mem_region layout[] = {
	{ 0, RAM_END, false }, { X, PAGE, false }, { Y, PAGE, false }, { RO, PAGE, true }, { TOP, PAGE, false },
};
static const uint64_t offsets[] = { 0, 258 * PAGE, 257 * PAGE, 259 * PAGE, 260 * PAGE };

/* virtio 1.x, written out again here from the spec, as a driver would. */
#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4
#define RING_DESC 0x0000ull
#define RING_AVAIL 0x8000ull
#define RING_USED 0x9000ull
#define BUF 0x20000ull

static int memfd = -1;
static uint8_t *reserved, *base;
static struct ioreq_mem mem, copied;
/* What the queues under test use: &mem, or &copied. */
static const struct ioreq_mem *view = &mem;
/* The broker's stand-in for &copied: the accesses it served; the error it
 * answers every one with (0: none). */
static unsigned copies;
static int copy_error;

/* The test's driver: one queue in RAM. */
struct drv {
	unsigned size;
	uint64_t desc, avail, used;
	uint16_t avail_idx;
	struct ioreq_vq *vq;
};

static uint8_t *host(uint64_t gpa)
{
	assert_true(gpa < RAM_END);
	return base + gpa;
}

static void put16(uint64_t gpa, uint16_t v)
{
	v = htole16(v);
	memcpy(host(gpa), &v, sizeof(v));
}

static uint16_t get16(uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, host(gpa), sizeof(v));
	return le16toh(v);
}

static uint32_t get32(uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, host(gpa), sizeof(v));
	return le32toh(v);
}

/* Descriptor @i of the table at @table. */
static void desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *p = host(table + 16ull * i);
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t f = htole16(flags), n = htole16(next);

	memcpy(p, &a, 8);
	memcpy(p + 8, &l, 4);
	memcpy(p + 12, &f, 2);
	memcpy(p + 14, &n, 2);
}

static void set_avail_idx(struct drv *d, uint16_t idx)
{
	d->avail_idx = idx;
	/* The driver's side of the order the device reads in (one thread
	 * here: a compiler barrier is all it takes). */
	__asm__ volatile("" ::: "memory");
	put16(d->avail + 2, idx);
}

static void publish(struct drv *d, uint16_t head)
{
	put16(d->avail + 4 + 2ull * (d->avail_idx % d->size), head);
	set_avail_idx(d, d->avail_idx + 1);
}

static void set_used_event(struct drv *d, uint16_t v)
{
	put16(d->avail + 4 + 2ull * d->size, v);
}

static uint16_t avail_event(const struct drv *d)
{
	return get16(d->used + 4 + 8ull * d->size);
}

static void drv_start(struct drv *d, unsigned size, bool event_idx, bool indirect)
{
	struct ioreq_vq_config cfg = { size, RING_DESC, RING_AVAIL, RING_USED, event_idx, indirect, 0 };

	memset(base, 0, RAM_END);
	*d = (struct drv){ size, RING_DESC, RING_AVAIL, RING_USED, 0, NULL };
	assert_int_equal(ioreq_vq_new(view, &cfg, &d->vq), 0);
}

static void drv_stop(struct drv *d)
{
	d->vq = ioreq_vq_free(d->vq);
}

/* The broker's side of &copied: what it reads and writes in guest memory. */
static int copy_access(struct ioreq_dev *dev, uint64_t gpa, void *buf, size_t len, bool write)
{
	copies++;
	if (copy_error)
		return copy_error;
	return write ? ioreq_mem_write(&mem, gpa, buf, len) : ioreq_mem_read(&mem, gpa, buf, len);
}

static int setup(void **state)
{
	size_t len = MEMFD_PAGES * PAGE;

	memfd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (memfd < 0 || ftruncate(memfd, (off_t)len) < 0 || fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		return -1;
	/* A page of nothing on either side of the memfd's mapping. */
	reserved = mmap(NULL, len + 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (reserved == MAP_FAILED)
		return -1;
	base = mmap(reserved + PAGE, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd, 0);
	if (base == MAP_FAILED || mprotect(base + 256 * PAGE, PAGE, PROT_NONE) < 0 ||
	    mprotect(base + 259 * PAGE, PAGE, PROT_READ) < 0)
		return -1;
	if (mem_view_init(&mem, base, len, layout, offsets, sizeof(layout) / sizeof(layout[0])) < 0)
		return -1;
	return mem_view_init_remote(&copied, layout, sizeof(layout) / sizeof(layout[0]), (struct ioreq_dev *)&copied,
				    copy_access);
}

static int use_copies(void **state)
{
	view = &copied;
	return 0;
}

static int use_mapping(void **state)
{
	view = &mem;
	copy_error = 0;
	return 0;
}

static int teardown(void **state)
{
	munmap(reserved, MEMFD_PAGES * PAGE + 2 * PAGE);
	close(memfd);
	return 0;
}

static void test_setup(void **state)
{
	static const struct {
		struct ioreq_vq_config cfg;
		int err;
	} cases[] = {
		{ { 256, 0, 0x8000, 0x9000, false, false, 0 }, 0 },
		{ { 1, 0, 0x8000, 0x9000, true, true, 0 }, 0 },
		/* the largest, its rings filling most of RAM */
		{ { 32768, 0, 0x80000, 0x90000, true, true, 0 }, 0 },
		/* the descriptor table and available ring may be read-only */
		{ { 64, RO, RO + 0x400, 0x9000, false, false, 0 }, 0 },
		{ { 0, 0, 0x8000, 0x9000, false, false, 0 }, -EINVAL },
		{ { 3, 0, 0x8000, 0x9000, false, false, 0 }, -EINVAL },
		{ { 48, 0, 0x8000, 0x9000, false, false, 0 }, -EINVAL },
		{ { 65536, 0, 0x8000, 0x9000, false, false, 0 }, -EINVAL },
		{ { 1u << 31, 0, 0x8000, 0x9000, false, false, 0 }, -EINVAL },
		/* misaligned: desc 16, avail 2, used 4 */
		{ { 16, 0x8, 0x8000, 0x9000, false, false, 0 }, -EINVAL },
		{ { 16, 0, 0x8001, 0x9000, false, false, 0 }, -EINVAL },
		{ { 16, 0, 0x8000, 0x9002, false, false, 0 }, -EINVAL },
		/* outside RAM: in the hole, running into it, across X and Y,
		 * the used ring read-only, wrapping the address space */
		{ { 16, HOLE, 0x8000, 0x9000, false, false, 0 }, -EFAULT },
		{ { 16, 0, RAM_END - 0x20, 0x9000, false, false, 0 }, -EFAULT },
		{ { 16, 0, 0x8000, RAM_END - 0x80, false, false, 0 }, -EFAULT },
		{ { 256, X + 0x800, 0x8000, 0x9000, false, false, 0 }, -EFAULT },
		{ { 16, 0, 0x8000, RO, false, false, 0 }, -EFAULT },
		{ { 16, UINT64_MAX - 0xef, 0x8000, 0x9000, false, false, 0 }, -EFAULT },
		{ { 16, 0, UINT64_MAX - 1, 0x9000, false, false, 0 }, -EFAULT },
		/* the avail ring's used_event counts: 6 + 2 * size bytes */
		{ { 16, 0, RAM_END - 0x24, 0x9000, false, false, 0 }, -EFAULT },
		{ { 16, 0, RAM_END - 0x26, 0x9000, false, false, 0 }, 0 },
	};
	uint8_t *before = malloc(RAM_END);

	assert_non_null(before);
	memset(base, 0x5a, RAM_END);
	memcpy(before, base, RAM_END);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ioreq_vq *vq = NULL;
		int r = ioreq_vq_new(view, &cases[i].cfg, &vq);

		if (r != cases[i].err)
			fail_msg("case %zu: %d, not %d", i, r, cases[i].err);
		assert_true(!r == !!vq);
		vq = ioreq_vq_free(vq);
	}
	/* Setting up reads nothing it could misuse and writes nothing. */
	assert_memory_equal(before, base, RAM_END);
	free(before);
	assert_null(ioreq_vq_free(NULL));
	assert_int_equal(ioreq_vq_new(NULL, &cases[0].cfg, &(struct ioreq_vq *){ NULL }), -EINVAL);
}

/* A virtio-blk-like request: header and data out, status in. */
static void test_direct(void **state)
{
	struct ioreq_vq_chain c;
	struct iovec iov[8];
	struct drv d;

	drv_start(&d, 8, false, false);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 8, &c), 0);
	desc(d.desc, 5, BUF, 16, F_NEXT, 2);
	desc(d.desc, 2, BUF + 0x1000, 512, F_NEXT, 7);
	desc(d.desc, 7, BUF + 0x2000, 1, F_WRITE, 0);
	publish(&d, 5);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 8, &c), 1);
	assert_int_equal(c.head, 5);
	assert_int_equal(c.n_out, 2);
	assert_int_equal(c.n_in, 1);
	assert_true(c.out_len == 528 && c.in_len == 1);
	assert_ptr_equal(iov[0].iov_base, host(BUF));
	assert_int_equal(iov[0].iov_len, 16);
	assert_ptr_equal(iov[1].iov_base, host(BUF + 0x1000));
	assert_int_equal(iov[1].iov_len, 512);
	assert_ptr_equal(iov[2].iov_base, host(BUF + 0x2000));
	assert_int_equal(iov[2].iov_len, 1);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 8, &c), 0);

	assert_int_equal(ioreq_vq_push(d.vq, 5, 1), 0);
	assert_int_equal(get16(d.used + 2), 1);
	assert_int_equal(get32(d.used + 4), 5);
	assert_int_equal(get32(d.used + 8), 1);
	/* Nothing in flight, or no such head: the device's mistake, not a
	 * broken queue. */
	assert_int_equal(ioreq_vq_push(d.vq, 5, 1), -EINVAL);
	assert_int_equal(get16(d.used + 2), 1);
	publish(&d, 7);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 8, &c), 1);
	assert_int_equal(ioreq_vq_push(d.vq, 8, 0), -EINVAL);
	assert_null(ioreq_vq_broken(d.vq));

	/* Only writable, and one of 0 bytes (no iovec), read-only RAM read. */
	desc(d.desc, 0, RO, 64, F_NEXT, 1);
	desc(d.desc, 1, BUF, 0, F_WRITE | F_NEXT, 3);
	desc(d.desc, 3, BUF + 0x100, 0x40, F_WRITE, 0);
	publish(&d, 0);
	desc(d.desc, 4, BUF, 0x10, F_WRITE, 0);
	publish(&d, 4);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 8, &c), 1);
	assert_true(c.head == 0 && c.n_out == 1 && c.n_in == 1 && c.in_len == 0x40);
	assert_ptr_equal(iov[0].iov_base, base + 259 * PAGE);
	assert_ptr_equal(iov[1].iov_base, host(BUF + 0x100));
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 8, &c), 1);
	assert_true(c.head == 4 && c.n_out == 0 && c.n_in == 1);
	drv_stop(&d);
}

/* Indirect tables: unaligned, out of order, and after direct descriptors. */
static void test_indirect(void **state)
{
	const uint64_t table = BUF + 0x8003;
	struct ioreq_vq_chain c;
	struct iovec iov[8];
	struct drv d;

	drv_start(&d, 4, false, true);
	desc(table, 0, BUF, 16, F_NEXT, 2);
	desc(table, 2, BUF + 0x100, 0x200, F_NEXT, 1);
	desc(table, 1, BUF + 0x400, 0x10, F_WRITE, 0);
	/* F_WRITE on the indirect descriptor itself means nothing. */
	desc(d.desc, 3, table, 3 * 16, F_INDIRECT | F_WRITE, 0);
	publish(&d, 3);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 8, &c), 1);
	assert_true(c.head == 3 && c.n_out == 2 && c.n_in == 1);
	assert_true(c.out_len == 0x210 && c.in_len == 0x10);
	assert_ptr_equal(iov[1].iov_base, host(BUF + 0x100));
	assert_ptr_equal(iov[2].iov_base, host(BUF + 0x400));
	assert_int_equal(ioreq_vq_push(d.vq, 3, 0x10), 0);

	/* Direct descriptors, then the table ends the chain. */
	desc(d.desc, 0, BUF + 0x800, 8, F_NEXT, 1);
	desc(d.desc, 1, table + 16, 2 * 16, F_INDIRECT, 0);
	publish(&d, 0);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 8, &c), 1);
	assert_true(c.head == 0 && c.n_out == 1 && c.n_in == 1);
	assert_ptr_equal(iov[0].iov_base, host(BUF + 0x800));
	assert_ptr_equal(iov[1].iov_base, host(BUF + 0x400));

	/* A table of IOREQ_VQ_MAX_SIZE descriptors, in a queue of 4. */
	for (unsigned i = 0; i < IOREQ_VQ_MAX_SIZE; i++)
		desc(0x80000, i, BUF, 0, i + 1 < IOREQ_VQ_MAX_SIZE ? F_NEXT : 0, (uint16_t)(i + 1));
	desc(d.desc, 2, 0x80000, 16 * IOREQ_VQ_MAX_SIZE, F_INDIRECT, 0);
	publish(&d, 2);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 8, &c), 1);
	assert_true(c.n_out == 0 && c.n_in == 0 && c.out_len == 0);
	drv_stop(&d);
}

/* A buffer running from one region into the next: one iovec for each. */
static void test_adjacent_regions(void **state)
{
	struct ioreq_vq_chain c;
	struct iovec iov[4];
	struct drv d;

	drv_start(&d, 2, false, false);
	desc(d.desc, 0, X + 0x800, 0x1000, F_WRITE, 0);
	publish(&d, 0);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 4, &c), 1);
	assert_true(c.n_out == 0 && c.n_in == 2 && c.in_len == 0x1000);
	assert_ptr_equal(iov[0].iov_base, base + 258 * PAGE + 0x800);
	assert_int_equal(iov[0].iov_len, 0x800);
	assert_ptr_equal(iov[1].iov_base, base + 257 * PAGE);
	assert_int_equal(iov[1].iov_len, 0x800);
	/* ...which needs the iovecs to hold it. */
	publish(&d, 0);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 1, &c), -ENOBUFS);
	drv_stop(&d);
}

/* 16-bit indices wrap, on both rings, with chains in flight across it. */
static void test_index_wrap(void **state)
{
	struct ioreq_vq_chain c;
	struct iovec iov[2];
	struct drv d;
	uint16_t used = 0;

	drv_start(&d, 4, true, false);
	for (unsigned i = 0; i < 4; i++)
		desc(d.desc, i, BUF + 0x100 * i, 0x10, F_WRITE, 0);
	for (unsigned n = 0; n < 3 * 65536 + 7; n += 2) {
		publish(&d, n % 4);
		publish(&d, (n + 1) % 4);
		assert_int_equal(ioreq_vq_pop(d.vq, iov, 2, &c), 1);
		assert_int_equal(c.head, n % 4);
		if (view == &mem)
			assert_ptr_equal(iov[0].iov_base, host(BUF + 0x100 * (n % 4)));
		assert_int_equal(ioreq_vq_pop(d.vq, iov, 2, &c), 1);
		assert_int_equal(c.head, (n + 1) % 4);
		assert_int_equal(ioreq_vq_push(d.vq, (n + 1) % 4, 1), 0);
		assert_int_equal(ioreq_vq_push(d.vq, n % 4, 2), 0);
		assert_int_equal(get32(d.used + 4 + 8 * (used % 4)), (n + 1) % 4);
		assert_int_equal(get32(d.used + 4 + 8 * ((used + 1) % 4) + 4), 2);
		used += 2;
		assert_int_equal(get16(d.used + 2), used);
		/* The driver wants an interrupt when the used idx passes its
		 * used_event, even across the wrap. */
		set_used_event(&d, used - 1);
		assert_int_equal(ioreq_vq_notify_needed(d.vq), 1);
		assert_int_equal(ioreq_vq_pop(d.vq, iov, 2, &c), 0);
	}
	assert_int_equal(d.avail_idx, (3 * 65536 + 8) % 65536);
	assert_null(ioreq_vq_broken(d.vq));
	drv_stop(&d);
}

static void push_one(struct drv *d)
{
	struct ioreq_vq_chain c;
	struct iovec iov[1];

	publish(d, 0);
	assert_int_equal(ioreq_vq_pop(d->vq, iov, 1, &c), 1);
	assert_int_equal(ioreq_vq_push(d->vq, c.head, 0), 0);
}

/* VIRTIO_F_EVENT_IDX: used_event says when to interrupt, avail_event when
 * to kick. */
static void test_event_idx(void **state)
{
	struct ioreq_vq_chain c;
	struct iovec iov[1];
	struct drv d;

	drv_start(&d, 8, true, false);
	desc(d.desc, 0, BUF, 8, 0, 0);
	/* Nothing pushed: nothing to say. */
	assert_int_equal(ioreq_vq_notify_needed(d.vq), 0);
	/* used_event 0: interrupt when the used idx goes past 0. */
	push_one(&d);
	assert_int_equal(ioreq_vq_notify_needed(d.vq), 1);
	assert_int_equal(ioreq_vq_notify_needed(d.vq), 0);
	/* used_event 5: not before used idx 6, and then once. */
	set_used_event(&d, 5);
	for (int i = 2; i <= 5; i++) {
		push_one(&d);
		assert_int_equal(ioreq_vq_notify_needed(d.vq), 0);
	}
	push_one(&d);
	assert_int_equal(ioreq_vq_notify_needed(d.vq), 1);
	/* Several pushes, one question: was used_event among them? */
	set_used_event(&d, 7);
	push_one(&d);
	push_one(&d);
	push_one(&d);
	assert_int_equal(ioreq_vq_notify_needed(d.vq), 1);
	set_used_event(&d, 20);
	push_one(&d);
	push_one(&d);
	assert_int_equal(ioreq_vq_notify_needed(d.vq), 0);
	/* The flag means nothing with EVENT_IDX. */
	put16(d.avail, 1);
	set_used_event(&d, 11);
	push_one(&d);
	assert_int_equal(ioreq_vq_notify_needed(d.vq), 1);

	/* Kicks: avail_event is the next entry the device has not seen. */
	assert_int_equal(ioreq_vq_disable_kicks(d.vq), 0);
	assert_int_equal(avail_event(&d), 0);
	assert_int_equal(ioreq_vq_enable_kicks(d.vq), 0);
	assert_int_equal(avail_event(&d), 12);
	publish(&d, 0);
	/* Made available before the device looked: pop, do not wait. */
	assert_int_equal(ioreq_vq_enable_kicks(d.vq), 1);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 1, &c), 1);
	assert_int_equal(ioreq_vq_enable_kicks(d.vq), 0);
	assert_int_equal(avail_event(&d), 13);
	/* The used ring's flags are not EVENT_IDX's. */
	assert_int_equal(get16(d.used), 0);
	drv_stop(&d);
}

/* Without EVENT_IDX: the driver's NO_INTERRUPT and the device's NO_NOTIFY. */
static void test_flags(void **state)
{
	struct drv d;

	drv_start(&d, 8, false, false);
	desc(d.desc, 0, BUF, 8, 0, 0);
	push_one(&d);
	put16(d.avail, 1);
	assert_int_equal(ioreq_vq_notify_needed(d.vq), 0);
	push_one(&d);
	put16(d.avail, 0);
	assert_int_equal(ioreq_vq_notify_needed(d.vq), 1);
	assert_int_equal(ioreq_vq_notify_needed(d.vq), 0);

	assert_int_equal(ioreq_vq_disable_kicks(d.vq), 0);
	assert_int_equal(get16(d.used), 1);
	assert_int_equal(ioreq_vq_enable_kicks(d.vq), 0);
	assert_int_equal(get16(d.used), 0);
	publish(&d, 0);
	assert_int_equal(ioreq_vq_enable_kicks(d.vq), 1);
	/* avail_event is EVENT_IDX's. */
	assert_int_equal(avail_event(&d), 0);
	drv_stop(&d);
}

/* ---- a hostile driver ---- */

struct hostile {
	const char *what;
	bool indirect;
	int err;
	void (*build)(struct drv *d);
};

static void loop_self(struct drv *d)
{
	desc(d->desc, 0, BUF, 8, F_NEXT, 0);
	publish(d, 0);
}

static void loop_two(struct drv *d)
{
	desc(d->desc, 0, BUF, 8, F_NEXT, 3);
	desc(d->desc, 3, BUF, 8, F_NEXT, 0);
	publish(d, 0);
}

/* Every descriptor of the table, then back to the second: one more than the
 * queue holds (with buffers of 0 bytes, which cost no iovec). */
static void too_long(struct drv *d)
{
	for (unsigned i = 0; i < d->size; i++)
		desc(d->desc, i, BUF, 0, F_NEXT, (uint16_t)((i + 1) % d->size ? i + 1 : 1));
	publish(d, 0);
}

static void loop_indirect(struct drv *d)
{
	for (unsigned i = 0; i < 4; i++)
		desc(BUF, i, BUF + 0x1000, 0, F_NEXT, (uint16_t)(i == 3 ? 1 : i + 1));
	desc(d->desc, 0, BUF, 4 * 16, F_INDIRECT, 0);
	publish(d, 0);
}

static void head_out_of_range(struct drv *d)
{
	publish(d, (uint16_t)d->size);
}

static void next_out_of_range(struct drv *d)
{
	desc(d->desc, 0, BUF, 8, F_NEXT, (uint16_t)d->size);
	publish(d, 0);
}

static void indirect_next_out_of_range(struct drv *d)
{
	desc(BUF, 0, BUF + 0x1000, 8, F_NEXT, 2);
	desc(BUF, 1, BUF + 0x1000, 8, 0, 0);
	desc(d->desc, 0, BUF, 2 * 16, F_INDIRECT, 0);
	publish(d, 0);
}

static void in_hole(struct drv *d)
{
	desc(d->desc, 0, HOLE + 0x100, 8, 0, 0);
	publish(d, 0);
}

static void into_hole(struct drv *d)
{
	desc(d->desc, 0, RAM_END - 8, 16, F_WRITE, 0);
	publish(d, 0);
}

/* X then Y are RAM; past Y is not. */
static void across_regions_into_hole(struct drv *d)
{
	desc(d->desc, 0, X + 0x800, 0x1801, 0, 0);
	publish(d, 0);
}

static void past_top(struct drv *d)
{
	desc(d->desc, 0, UINT64_MAX - 0xff, 0x1000, 0, 0);
	publish(d, 0);
}

/* From the top region, wrapping to gpa 0, which is RAM too. */
static void wraps_to_zero(struct drv *d)
{
	desc(d->desc, 0, TOP + 0x800, 0x1000, 0, 0);
	publish(d, 0);
}

static void writable_read_only(struct drv *d)
{
	desc(d->desc, 0, RO, 8, F_WRITE, 0);
	publish(d, 0);
}

static void huge_len(struct drv *d)
{
	desc(d->desc, 0, BUF, UINT32_MAX, 0, 0);
	publish(d, 0);
}

static void nested_indirect(struct drv *d)
{
	desc(BUF, 0, BUF + 0x1000, 16, F_INDIRECT, 0);
	desc(BUF + 0x1000, 0, BUF + 0x2000, 8, 0, 0);
	desc(d->desc, 0, BUF, 16, F_INDIRECT, 0);
	publish(d, 0);
}

static void indirect_empty(struct drv *d)
{
	desc(d->desc, 0, BUF, 0, F_INDIRECT, 0);
	publish(d, 0);
}

static void indirect_odd_len(struct drv *d)
{
	desc(d->desc, 0, BUF, 24, F_INDIRECT, 0);
	publish(d, 0);
}

static void indirect_too_big(struct drv *d)
{
	desc(d->desc, 0, 0, 16 * (IOREQ_VQ_MAX_SIZE + 1), F_INDIRECT, 0);
	publish(d, 0);
}

static void indirect_with_next(struct drv *d)
{
	desc(BUF, 0, BUF + 0x1000, 8, 0, 0);
	desc(d->desc, 0, BUF, 16, F_INDIRECT | F_NEXT, 1);
	desc(d->desc, 1, BUF, 8, 0, 0);
	publish(d, 0);
}

static void indirect_outside_ram(struct drv *d)
{
	desc(d->desc, 0, RAM_END - 16, 32, F_INDIRECT, 0);
	publish(d, 0);
}

static void readable_after_writable(struct drv *d)
{
	desc(d->desc, 0, BUF, 8, F_NEXT, 1);
	desc(d->desc, 1, BUF, 8, F_WRITE | F_NEXT, 2);
	desc(d->desc, 2, BUF, 8, 0, 0);
	publish(d, 0);
}

static void readable_after_writable_indirect(struct drv *d)
{
	desc(BUF, 0, BUF + 0x1000, 8, F_WRITE | F_NEXT, 1);
	desc(BUF, 1, BUF + 0x1000, 8, 0, 0);
	desc(d->desc, 0, BUF, 32, F_INDIRECT, 0);
	publish(d, 0);
}

static void avail_ahead(struct drv *d)
{
	set_avail_idx(d, (uint16_t)(d->size + 1));
}

static void avail_far_ahead(struct drv *d)
{
	set_avail_idx(d, 0x8000);
}

/* A chain made available again before it was used, more than the queue
 * can have in flight. */
static void reused_head(struct drv *d)
{
	struct ioreq_vq_chain c;
	struct iovec iov[1];

	for (unsigned i = 0; i < d->size; i++) {
		desc(d->desc, i, BUF, 8, 0, 0);
		publish(d, (uint16_t)i);
		assert_int_equal(ioreq_vq_pop(d->vq, iov, 1, &c), 1);
	}
	publish(d, 0);
}

static void over_4g(struct drv *d)
{
	desc(d->desc, 0, BUF, 0x1000, F_NEXT, 1);
	desc(d->desc, 1, BUF, UINT32_MAX, F_WRITE, 0);
	publish(d, 0);
}

/* Five buffers, each across X and Y: ten iovecs. */
static void too_many_buffers(struct drv *d)
{
	for (unsigned i = 0; i < 5; i++)
		desc(d->desc, i, X + 0x800, 0x1000, i < 4 ? F_NEXT : 0, (uint16_t)(i + 1));
	publish(d, 0);
}

static const struct hostile hostile[] = {
	{ "a descriptor pointing at itself", false, -ELOOP, loop_self },
	{ "two descriptors in a loop", false, -ELOOP, loop_two },
	{ "a chain longer than the queue", false, -ELOOP, too_long },
	{ "a loop in an indirect table", true, -ELOOP, loop_indirect },
	{ "a head outside the table", false, -ERANGE, head_out_of_range },
	{ "a next outside the table", false, -ERANGE, next_out_of_range },
	{ "a next outside the indirect table", true, -ERANGE, indirect_next_out_of_range },
	{ "a buffer in a hole", false, -EFAULT, in_hole },
	{ "a buffer running into a hole", false, -EFAULT, into_hole },
	{ "a buffer across two regions into a hole", false, -EFAULT, across_regions_into_hole },
	{ "a buffer past the top of the address space", false, -EFAULT, past_top },
	{ "a buffer wrapping to gpa 0", false, -EFAULT, wraps_to_zero },
	{ "a writable buffer in read-only RAM", false, -EFAULT, writable_read_only },
	{ "a buffer of 4 GiB", false, -EFAULT, huge_len },
	{ "an indirect table in an indirect table", true, -EMLINK, nested_indirect },
	{ "an indirect table of 0 bytes", true, -EBADMSG, indirect_empty },
	{ "an indirect table of 24 bytes", true, -EBADMSG, indirect_odd_len },
	{ "an indirect table of 32769 descriptors", true, -EBADMSG, indirect_too_big },
	{ "an indirect descriptor with F_NEXT", true, -EPROTO, indirect_with_next },
	{ "an indirect descriptor not negotiated", false, -EPROTO, nested_indirect },
	{ "an indirect table outside RAM", true, -EFAULT, indirect_outside_ram },
	{ "readable after writable", false, -EILSEQ, readable_after_writable },
	{ "readable after writable, indirect", true, -EILSEQ, readable_after_writable_indirect },
	{ "the avail idx size + 1 ahead", false, -EOVERFLOW, avail_ahead },
	{ "the avail idx 0x8000 ahead", false, -EOVERFLOW, avail_far_ahead },
	{ "more chains in flight than the queue holds", false, -ENOSPC, reused_head },
	{ "a chain of more than 4 GiB", false, -E2BIG, over_4g },
	{ "more buffers than the device takes", false, -ENOBUFS, too_many_buffers },
};

/* Each violation breaks the queue with its own errno; after it, nothing
 * the guest does makes the queue read or write guest memory again. */
static void test_hostile(void **state)
{
	uint8_t *before = malloc(RAM_END);
	const char *seen[sizeof(hostile) / sizeof(hostile[0])] = { 0 };

	assert_non_null(before);
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		const struct hostile *h = &hostile[i];
		struct ioreq_vq_chain c;
		struct iovec iov[8]; /* a whole table of buffers: loops are found as loops */
		struct drv d;
		int r;

		drv_start(&d, 8, true, h->indirect);
		h->build(&d);
		while ((r = ioreq_vq_pop(d.vq, iov, 8, &c)) == 1)
			;
		if (r != h->err)
			fail_msg("%s: %d, not %d", h->what, r, h->err);
		seen[i] = ioreq_vq_broken(d.vq);
		assert_non_null(seen[i]);

		/* Broken: the guest now offers a good chain, and asks for
		 * interrupts and kicks; the queue answers the same errno and
		 * leaves guest memory alone. */
		desc(d.desc, 1, BUF, 8, 0, 0);
		publish(&d, 1);
		set_used_event(&d, 0);
		memcpy(before, base, RAM_END);
		assert_int_equal(ioreq_vq_pop(d.vq, iov, 8, &c), h->err);
		assert_int_equal(ioreq_vq_push(d.vq, 0, 8), h->err);
		assert_int_equal(ioreq_vq_notify_needed(d.vq), h->err);
		assert_int_equal(ioreq_vq_enable_kicks(d.vq), h->err);
		assert_int_equal(ioreq_vq_disable_kicks(d.vq), h->err);
		assert_memory_equal(before, base, RAM_END);
		drv_stop(&d);
	}
	/* One sentence per errno. */
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
		for (size_t j = 0; j < i; j++)
			if ((hostile[i].err == hostile[j].err) != (strcmp(seen[i], seen[j]) == 0))
				fail_msg("%s and %s", hostile[i].what, hostile[j].what);
	free(before);
}

/* A broken queue stays broken until the transport frees it; the queue the
 * driver sets up after its reset works. */
static void test_reset(void **state)
{
	struct ioreq_vq_config cfg = { 8, RING_DESC, RING_AVAIL, RING_USED, false, false, 0 };
	struct ioreq_vq_chain c;
	struct iovec iov[2];
	struct drv d;

	drv_start(&d, 8, false, false);
	desc(d.desc, 0, BUF, 8, 0, 0);
	publish(&d, 0);
	publish(&d, 9);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 2, &c), 1);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 2, &c), -ERANGE);
	assert_string_equal(ioreq_vq_broken(d.vq), "a descriptor index outside its table");
	drv_stop(&d);
	memset(base, 0, RING_USED + 0x100);
	d.avail_idx = 0;
	assert_int_equal(ioreq_vq_new(view, &cfg, &d.vq), 0);
	desc(d.desc, 0, BUF, 8, 0, 0);
	publish(&d, 0);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 2, &c), 1);
	assert_null(ioreq_vq_broken(d.vq));
	drv_stop(&d);
}

/* A queue served again from where it stopped (vhost-user's GET_VRING_BASE
 * and SET_VRING_BASE): the device pops from the start index, pushes after
 * it, and says where it is; across the 2^16 wrap too. */
static void test_start_index(void **state)
{
	struct ioreq_vq_config cfg = { 4, RING_DESC, RING_AVAIL, RING_USED, true, false, 0xfffe };
	struct ioreq_vq_chain c;
	struct iovec iov[1];
	struct drv d;

	drv_start(&d, 4, true, false);
	assert_int_equal(ioreq_vq_next_avail(d.vq), 0);
	drv_stop(&d);
	d.vq = NULL;
	assert_int_equal(ioreq_vq_new(view, &cfg, &d.vq), 0);
	assert_int_equal(ioreq_vq_next_avail(d.vq), 0xfffe);
	/* The driver's rings as they were: both idx at the start. */
	set_avail_idx(&d, 0xfffe);
	put16(d.used + 2, 0xfffe);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 1, &c), 0);
	desc(d.desc, 1, BUF, 8, F_WRITE, 0);
	desc(d.desc, 3, BUF + 8, 8, F_WRITE, 0);
	publish(&d, 1);
	publish(&d, 3);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 1, &c), 1);
	assert_int_equal(c.head, 1);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 1, &c), 1);
	assert_int_equal(c.head, 3);
	assert_int_equal(ioreq_vq_next_avail(d.vq), 0);
	assert_int_equal(ioreq_vq_push(d.vq, 1, 8), 0);
	/* The element went to slot 0xfffe % 4, the used idx past it. */
	assert_int_equal(get32(d.used + 4 + 8 * 2), 1);
	assert_int_equal(get16(d.used + 2), 0xffff);
	assert_int_equal(ioreq_vq_push(d.vq, 3, 8), 0);
	assert_int_equal(get32(d.used + 4 + 8 * 3), 3);
	assert_int_equal(get16(d.used + 2), 0);
	/* used_event at the start index: the first push passed it. */
	set_used_event(&d, 0xfffe);
	assert_int_equal(ioreq_vq_notify_needed(d.vq), 1);
	/* A driver that ran further ahead than the queue holds, from there. */
	set_avail_idx(&d, 5);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 1, &c), -EOVERFLOW);
	drv_stop(&d);
}

/* What only copies do: a device-readable buffer is a copy taken at pop
 * (the guest's later changes do not reach it); a device-writable one
 * reaches the guest at push, as much of it as the used length says, and
 * what the device left unwritten is zeroes, never our heap; a head made
 * available again while in flight breaks the queue; a broker that does not
 * answer breaks it too (-EIO), and then nothing more is asked of it. */
static void test_copied(void **state)
{
	struct ioreq_vq_chain c;
	struct iovec iov[4];
	struct drv d;
	unsigned before;

	assert_null(ioreq_mem_ptr(&copied, BUF, 16, false));
	assert_false(ioreq_mem_mapped(&copied));
	assert_true(ioreq_mem_mapped(&mem));
	drv_start(&d, 8, false, false);
	memset(host(BUF), 'h', 16);
	memset(host(BUF + 0x1000), 0xee, 64);
	desc(d.desc, 5, BUF, 16, F_NEXT, 2);
	desc(d.desc, 2, BUF + 0x1000, 64, F_WRITE, 0);
	publish(&d, 5);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 4, &c), 1);
	assert_true(c.head == 5 && c.n_out == 1 && c.n_in == 1);
	assert_true(iov[0].iov_base != host(BUF) && iov[1].iov_base != host(BUF + 0x1000));
	memset(host(BUF), 'x', 16);
	assert_memory_equal(iov[0].iov_base, "hhhhhhhhhhhhhhhh", 16);
	assert_int_equal(((uint8_t *)iov[1].iov_base)[63], 0);
	/* Four bytes written, the used length says 8. */
	memcpy(iov[1].iov_base, "abcd", 4);
	assert_int_equal(host(BUF + 0x1000)[0], 0xee);
	/* Made available again while the device holds it. */
	publish(&d, 5);
	assert_int_equal(ioreq_vq_push(d.vq, 5, 8), 0);
	assert_memory_equal(host(BUF + 0x1000), "abcd\0\0\0\0\xee", 9);
	assert_int_equal(get16(d.used + 2), 1);
	assert_int_equal(get32(d.used + 4), 5);
	assert_int_equal(get32(d.used + 8), 8);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 4, &c), 1);
	publish(&d, 5);
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 4, &c), -EBUSY);
	assert_string_equal(ioreq_vq_broken(d.vq), "a chain made available again while the device holds it");
	drv_stop(&d);

	/* The broker gone. */
	drv_start(&d, 8, true, false);
	desc(d.desc, 0, BUF, 16, 0, 0);
	publish(&d, 0);
	copy_error = -ECONNRESET;
	assert_int_equal(ioreq_vq_pop(d.vq, iov, 4, &c), -EIO);
	assert_string_equal(ioreq_vq_broken(d.vq), "guest memory not reachable through the broker");
	before = copies;
	assert_int_equal(ioreq_vq_enable_kicks(d.vq), -EIO);
	assert_int_equal(ioreq_vq_notify_needed(d.vq), -EIO);
	assert_int_equal(copies, before);
	copy_error = 0;
	drv_stop(&d);
}

/* The memory accesses one pop costs over copies (it must find a chain). */
static unsigned pop_cost(struct drv *d, struct iovec *iov, unsigned n, struct ioreq_vq_chain *c)
{
	unsigned before = copies;

	assert_int_equal(ioreq_vq_pop(d->vq, iov, n, c), 1);
	return copies - before;
}

/* Over copies a round trip is the cost. Chains made available together
 * are found with three reads (the idx, the new entries, the descriptor
 * table), then one per device-readable buffer; the table is read again
 * after each idx (a descriptor the driver rewrote for a later chain is
 * seen as it is now); an indirect table is one read; new entries across
 * the ring's end two; a table larger than one message is read a
 * descriptor at a time. */
static void test_copied_round_trips(void **state)
{
	struct ioreq_vq_config big = { 2048, 0x40000, 0x50000, 0x52000, false, false, 0 };
	const uint64_t table = BUF + 0x8003;
	struct ioreq_vq_chain c;
	struct iovec iov[4];
	unsigned cost = 0;
	struct drv d;

	/* Four virtio-blk-like requests: header, data, status. */
	drv_start(&d, 16, false, true);
	for (unsigned i = 0; i < 4; i++) {
		desc(d.desc, 3 * i, BUF + 0x1000 * i, 16, F_NEXT, (uint16_t)(3 * i + 1));
		desc(d.desc, 3 * i + 1, BUF + 0x1000 * i + 0x200, 512, F_WRITE | F_NEXT, (uint16_t)(3 * i + 2));
		desc(d.desc, 3 * i + 2, BUF + 0x1000 * i + 0x400, 1, F_WRITE, 0);
		publish(&d, (uint16_t)(3 * i));
	}
	for (unsigned i = 0; i < 4; i++) {
		cost += pop_cost(&d, iov, 4, &c);
		assert_true(c.head == 3 * i && c.n_out == 1 && c.n_in == 2 && c.in_len == 513);
	}
	assert_int_equal(cost, 3 + 4);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(ioreq_vq_push(d.vq, (uint16_t)(3 * i), 513), 0);
	/* Rewritten after the last snapshot, then made available. */
	memset(host(BUF + 0x800), 'n', 8);
	desc(d.desc, 0, BUF + 0x800, 8, 0, 0);
	publish(&d, 0);
	assert_int_equal(pop_cost(&d, iov, 4, &c), 3 + 1);
	assert_true(c.head == 0 && c.n_out == 1 && c.n_in == 0 && c.out_len == 8);
	assert_memory_equal(iov[0].iov_base, "nnnnnnnn", 8);
	assert_int_equal(ioreq_vq_push(d.vq, 0, 0), 0);
	/* Indirect: its table in one read, then its readable buffer. */
	desc(table, 0, BUF, 16, F_NEXT, 1);
	desc(table, 1, BUF + 0x400, 0x10, F_WRITE, 0);
	desc(d.desc, 15, table, 2 * 16, F_INDIRECT, 0);
	publish(&d, 15);
	assert_int_equal(pop_cost(&d, iov, 4, &c), 3 + 1 + 1);
	assert_true(c.head == 15 && c.n_out == 1 && c.n_in == 1);
	assert_int_equal(ioreq_vq_push(d.vq, 15, 0), 0);
	drv_stop(&d);

	/* Three new entries at positions 3, 0 and 1 of a ring of 4. */
	drv_start(&d, 4, false, false);
	for (unsigned i = 0; i < 4; i++)
		desc(d.desc, i, BUF + 0x100 * i, 0x10, F_WRITE, 0);
	for (unsigned i = 0; i < 3; i++) {
		publish(&d, (uint16_t)i);
		assert_int_equal(pop_cost(&d, iov, 4, &c), 3);
		assert_int_equal(ioreq_vq_push(d.vq, c.head, 0), 0);
	}
	for (unsigned i = 3; i < 6; i++)
		publish(&d, (uint16_t)(i % 4));
	cost = 0;
	for (unsigned i = 3; i < 6; i++) {
		cost += pop_cost(&d, iov, 4, &c);
		assert_int_equal(c.head, i % 4);
	}
	assert_int_equal(cost, 1 + 2 + 1);
	drv_stop(&d);

	/* A table of 32 KiB: the idx, the entry, then each descriptor. */
	memset(base, 0, RAM_END);
	assert_int_equal(ioreq_vq_new(view, &big, &d.vq), 0);
	d = (struct drv){ 2048, big.desc, big.avail, big.used, 0, d.vq };
	desc(d.desc, 2047, BUF, 16, F_NEXT, 7);
	desc(d.desc, 7, BUF + 0x100, 16, F_WRITE, 0);
	publish(&d, 2047);
	assert_int_equal(pop_cost(&d, iov, 4, &c), 2 + 2 + 1);
	assert_true(c.head == 2047 && c.n_out == 1 && c.n_in == 1);
	drv_stop(&d);
}

#define COPIED(test) { #test " (copied)", test, use_copies, use_mapping, NULL }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_setup),
		cmocka_unit_test(test_direct),
		cmocka_unit_test(test_indirect),
		cmocka_unit_test(test_adjacent_regions),
		cmocka_unit_test(test_index_wrap),
		cmocka_unit_test(test_event_idx),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_start_index),
		COPIED(test_setup),
		COPIED(test_index_wrap),
		COPIED(test_event_idx),
		COPIED(test_flags),
		COPIED(test_hostile),
		COPIED(test_reset),
		COPIED(test_start_index),
		COPIED(test_copied),
		COPIED(test_copied_round_trips),
	};

	return cmocka_run_group_tests_name("virtq", tests, setup, teardown);
}
