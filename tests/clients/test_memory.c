/* The device library's view of guest memory (clients/lib/memory.c), over a
 * real shared mapping of a sealed memfd laid out like a guest's RAM with a
 * hole, two adjacent regions and a read-only region at the very top of the
 * address space. A hostile guest hands a device any address and length: a
 * translation must be wholly inside one region or nothing. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "memory.h"

#define PAGE 0x1000ull
#define TOP (UINT64_MAX - PAGE + 1)

/*   gpa 0x0000..0x0fff  memfd page 0
 *   gpa 0x1000..0x2fff  a hole
 *   gpa 0x3000..0x3fff  memfd page 1, and right after it
 *   gpa 0x4000..0x4fff  memfd page 3 (adjacent in the guest, not in the memfd)
 *   gpa TOP..UINT64_MAX memfd page 2, read-only */
static const struct ioreq_mem_region layout[] = {
	{ 0x0000, PAGE, false },
	{ 0x3000, PAGE, false },
	{ 0x4000, PAGE, false },
	{ TOP, PAGE, true },
};
static const uint64_t offsets[] = { 0, PAGE, 3 * PAGE, 2 * PAGE };

struct fixture {
	int fd;
	uint8_t *base;
	struct ioreq_mem m;
};

static int setup(void **state)
{
	static struct fixture f;

	f.fd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (f.fd < 0 || ftruncate(f.fd, 4 * PAGE) < 0 || fcntl(f.fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		return -1;
	f.base = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, f.fd, 0);
	if (f.base == MAP_FAILED)
		return -1;
	if (mem_view_init(&f.m, f.base, 4 * PAGE, layout, offsets, 4) < 0)
		return -1;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	munmap(f->base, 4 * PAGE);
	close(f->fd);
	return 0;
}

/* A pointer is either NULL or inside the mapping, and then all of it is. */
static uint8_t *ptr(const struct fixture *f, uint64_t gpa, uint64_t len, bool write)
{
	uint8_t *p = ioreq_mem_ptr(&f->m, gpa, len, write);

	if (p) {
		assert_true(p >= f->base && p < f->base + 4 * PAGE);
		assert_true(len <= (uint64_t)(f->base + 4 * PAGE - p));
	}
	return p;
}

static void test_inside(void **state)
{
	struct fixture *f = *state;

	assert_ptr_equal(ptr(f, 0, PAGE, true), f->base);
	assert_ptr_equal(ptr(f, 0xfff, 1, true), f->base + 0xfff);
	assert_ptr_equal(ptr(f, 0x3000, 8, true), f->base + PAGE);
	assert_ptr_equal(ptr(f, 0x4ff8, 8, false), f->base + 3 * PAGE + 0xff8);
	assert_ptr_equal(ptr(f, TOP, PAGE, false), f->base + 2 * PAGE);
	assert_ptr_equal(ptr(f, UINT64_MAX, 1, false), f->base + 3 * PAGE - 1);
}

/* A range that runs into a hole, starts in one, or starts past the end. */
static void test_holes(void **state)
{
	struct fixture *f = *state;
	uint64_t buf[2] = { 0 };

	assert_null(ptr(f, 0xfff, 2, false));
	assert_null(ptr(f, 0x1000, 1, false));
	assert_null(ptr(f, 0x2fff, 2, false));
	assert_null(ptr(f, 0x5000, 1, false));
	assert_null(ptr(f, TOP - 1, 2, false));
	assert_int_equal(ioreq_mem_read(&f->m, 0xff8, buf, 16), -EFAULT);
	assert_int_equal(ioreq_mem_write(&f->m, 0x2ff8, buf, 16), -EFAULT);
}

/* Two regions adjacent in the guest but not in the memfd: a range across
 * them has no one pointer (and a copy across them is refused too). */
static void test_straddle(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[32];

	assert_non_null(ptr(f, 0x3ff0, 0x10, true));
	assert_non_null(ptr(f, 0x4000, 0x10, true));
	assert_null(ptr(f, 0x3ff0, 0x20, true));
	assert_null(ptr(f, 0x3000, 2 * PAGE, false));
	assert_int_equal(ioreq_mem_read(&f->m, 0x3ff0, buf, sizeof(buf)), -EFAULT);
}

/* Lengths that wrap the address space or overflow an offset. */
static void test_wrap(void **state)
{
	struct fixture *f = *state;

	assert_null(ptr(f, TOP, PAGE + 1, false));
	assert_null(ptr(f, UINT64_MAX, 2, false));
	assert_null(ptr(f, TOP, UINT64_MAX, false));
	assert_null(ptr(f, 0, UINT64_MAX, false));
	assert_null(ptr(f, 0x10, UINT64_MAX - 0x8, false));
	assert_null(ptr(f, UINT64_MAX, UINT64_MAX, false));
	/* 0x3000 + (2^64 - 0x1000) wraps to 0x2000: inside nothing. */
	assert_null(ptr(f, 0x3000, (uint64_t)0 - PAGE, false));
}

static void test_read_only(void **state)
{
	struct fixture *f = *state;
	uint64_t v = 0x1122334455667788, got;

	assert_null(ptr(f, TOP, 8, true));
	assert_non_null(ptr(f, TOP, 8, false));
	memset(f->base + 2 * PAGE, 0xab, 8);
	assert_int_equal(ioreq_mem_write(&f->m, TOP, &v, sizeof(v)), -EFAULT);
	assert_int_equal(ioreq_mem_read(&f->m, TOP, &got, sizeof(got)), 0);
	assert_true(got == 0xabababababababab);
}

/* What goes through the view is the memfd's: another mapping (the guest's)
 * sees it. */
static void test_copy(void **state)
{
	struct fixture *f = *state;
	uint64_t v = 0x0102030405060708, got = 0;

	assert_int_equal(ioreq_mem_write(&f->m, 0x4010, &v, sizeof(v)), 0);
	assert_int_equal(pread(f->fd, &got, sizeof(got), 3 * PAGE + 0x10), sizeof(got));
	assert_true(got == v);
	got = 0;
	assert_int_equal(ioreq_mem_read(&f->m, 0x4010, &got, sizeof(got)), 0);
	assert_true(got == v);
}

static void test_empty_and_none(void **state)
{
	struct fixture *f = *state;
	uint8_t b = 0;

	/* 0 bytes: no pointer, nothing to copy, wherever. */
	assert_null(ptr(f, 0, 0, false));
	assert_int_equal(ioreq_mem_read(&f->m, 0x1000, &b, 0), 0);
	assert_int_equal(ioreq_mem_write(&f->m, UINT64_MAX, &b, 0), 0);
	/* A device given no memory has no view. */
	assert_null(ioreq_mem_ptr(NULL, 0, 1, false));
	assert_int_equal(ioreq_mem_read(NULL, 0, &b, 1), -EFAULT);
	assert_int_equal(ioreq_mem_write(NULL, 0, &b, 1), -EFAULT);
}

/* A view built in memory that held anything before (on a stack): mapped,
 * whatever was there (the fuzzer found one that was taken for a remote
 * device's, and gave no pointers). */
static void test_view_over_garbage(void **state)
{
	struct fixture *f = *state;
	struct ioreq_mem m;

	memset(&m, 0xa5, sizeof(m));
	assert_int_equal(mem_view_init(&m, f->base, 4 * PAGE, layout, offsets, 4), 0);
	assert_true(ioreq_mem_mapped(&m));
	assert_ptr_equal(ioreq_mem_ptr(&m, 0x4010, 8, false), ioreq_mem_ptr(&f->m, 0x4010, 8, false));
	assert_non_null(ioreq_mem_ptr(&m, 0x4010, 8, false));
}

/* A layout the view must refuse to be built from. */
static void test_bad_layouts(void **state)
{
	struct fixture *f = *state;
	static const struct {
		struct ioreq_mem_region r[2];
		uint64_t off[2];
		size_t n;
	} bad[] = {
		{ { { 0, 0, false } }, { 0 }, 1 },                              /* empty */
		{ { { 0, PAGE + 1, false } }, { 3 * PAGE }, 1 },                /* past the memfd's end */
		{ { { 0, PAGE, false } }, { UINT64_MAX }, 1 },                  /* an offset past it */
		{ { { 0, 5 * PAGE, false } }, { 0 }, 1 },                       /* bigger than the memfd */
		{ { { TOP + 1, PAGE, false } }, { 0 }, 1 },                     /* wraps the guest */
		{ { { 0, 2 * PAGE, false }, { PAGE, PAGE, false } }, { 0, 2 * PAGE }, 2 }, /* overlap */
		{ { { PAGE, PAGE, false }, { 0, 2 * PAGE, false } }, { 0, 2 * PAGE }, 2 }, /* the other way */
	};
	struct ioreq_mem m;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mem_view_init(&m, f->base, 4 * PAGE, bad[i].r, bad[i].off, bad[i].n) != -EINVAL)
			fail_msg("bad layout %zu accepted", i);
	assert_int_equal(mem_view_init(&m, f->base, 4 * PAGE, layout, offsets, WIRE_MAX_REGIONS + 1), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inside),
		cmocka_unit_test(test_holes),
		cmocka_unit_test(test_straddle),
		cmocka_unit_test(test_wrap),
		cmocka_unit_test(test_read_only),
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_empty_and_none),
		cmocka_unit_test(test_view_over_garbage),
		cmocka_unit_test(test_bad_layouts),
	};

	return cmocka_run_group_tests_name("memory", tests, setup, teardown);
}
