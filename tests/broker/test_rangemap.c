#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "rangemap.h"

static int a, b, c;

static void test_add_find(void **state)
{
	struct rangemap m = { 0 };

	assert_int_equal(rangemap_add(&m, 0x100, 0x1ff, &a, 0, NULL), 0);
	assert_int_equal(rangemap_add(&m, 0x300, 0x3ff, &b, 1, NULL), 0);
	assert_int_equal(rangemap_add(&m, 0x200, 0x2ff, &c, 2, NULL), 0);
	assert_int_equal(m.n, 3);
	/* Kept sorted whatever the insertion order. */
	for (size_t i = 1; i < m.n; i++)
		assert_true(m.v[i - 1].end < m.v[i].start);
	assert_ptr_equal(rangemap_find(&m, 0x100, 0x100)->owner, &a);
	assert_ptr_equal(rangemap_find(&m, 0x1ff, 0x1ff)->owner, &a);
	assert_ptr_equal(rangemap_find(&m, 0x200, 0x203)->owner, &c);
	assert_int_equal(rangemap_find(&m, 0x3fc, 0x3ff)->tag, 1);
	assert_null(rangemap_find(&m, 0xff, 0xff));
	assert_null(rangemap_find(&m, 0x400, 0x400));
	rangemap_fini(&m);
}

static void test_access_must_fit_one_range(void **state)
{
	struct rangemap m = { 0 };

	assert_int_equal(rangemap_add(&m, 0x100, 0x1ff, &a, 0, NULL), 0);
	assert_int_equal(rangemap_add(&m, 0x200, 0x2ff, &b, 0, NULL), 0);
	/* Straddles two devices' ranges: nobody's. */
	assert_null(rangemap_find(&m, 0x1fe, 0x201));
	/* Runs off the end of the only range. */
	assert_null(rangemap_find(&m, 0x2fe, 0x301));
	rangemap_fini(&m);
}

static void test_overlaps_rejected(void **state)
{
	const struct rangemap_entry *conflict = NULL;
	struct rangemap m = { 0 };

	assert_int_equal(rangemap_add(&m, 0x100, 0x1ff, &a, 0, NULL), 0);
	assert_int_equal(rangemap_add(&m, 0x1ff, 0x2ff, &b, 0, &conflict), -EEXIST);
	assert_ptr_equal(conflict->owner, &a);
	assert_int_equal(rangemap_add(&m, 0x0, 0x100, &b, 0, NULL), -EEXIST);
	assert_int_equal(rangemap_add(&m, 0x150, 0x160, &b, 0, NULL), -EEXIST);
	assert_int_equal(rangemap_add(&m, 0x0, UINT64_MAX, &b, 0, NULL), -EEXIST);
	assert_int_equal(rangemap_add(&m, 0x20, 0x10, &b, 0, NULL), -EINVAL);
	assert_int_equal(m.n, 1);
	/* Touching is not overlapping. */
	assert_int_equal(rangemap_add(&m, 0x200, 0x2ff, &b, 0, NULL), 0);
	assert_int_equal(rangemap_add(&m, 0xff, 0xff, &c, 0, NULL), 0);
	assert_int_equal(m.n, 3);
	rangemap_fini(&m);
}

static void test_extremes(void **state)
{
	struct rangemap m = { 0 };

	assert_int_equal(rangemap_add(&m, UINT64_MAX - 0xfff, UINT64_MAX, &a, 0, NULL), 0);
	assert_int_equal(rangemap_add(&m, 0, 0, &b, 0, NULL), 0);
	assert_ptr_equal(rangemap_find(&m, UINT64_MAX - 7, UINT64_MAX)->owner, &a);
	assert_ptr_equal(rangemap_find(&m, 0, 0)->owner, &b);
	rangemap_fini(&m);
}

static void test_remove(void **state)
{
	struct rangemap m = { 0 };

	assert_int_equal(rangemap_add(&m, 0x100, 0x1ff, &a, 0, NULL), 0);
	assert_int_equal(rangemap_add(&m, 0x200, 0x2ff, &b, 0, NULL), 0);
	assert_int_equal(rangemap_add(&m, 0x300, 0x3ff, &a, 1, NULL), 0);
	/* Only the owner's exact range goes. */
	assert_int_equal(rangemap_remove(&m, 0x200, 0x2ff, &a), -ENOENT);
	assert_int_equal(rangemap_remove(&m, 0x200, 0x2fe, &b), -ENOENT);
	assert_int_equal(rangemap_remove(&m, 0x200, 0x2ff, &b), 0);
	assert_null(rangemap_find(&m, 0x200, 0x200));
	assert_int_equal(rangemap_add(&m, 0x280, 0x2ff, &c, 0, NULL), 0);
	assert_int_equal(rangemap_add(&m, 0x400, 0x4ff, &c, 0x80000001, NULL), 0);
	assert_int_equal(rangemap_add(&m, 0x500, 0x5ff, &a, 0x80000002, NULL), 0);
	/* Only the flagged entries (of one owner, or of all) go. */
	rangemap_remove_tagged(&m, &a, 0x80000000);
	assert_int_equal(m.n, 4);
	assert_null(rangemap_find(&m, 0x500, 0x500));
	assert_ptr_equal(rangemap_find(&m, 0x300, 0x300)->owner, &a);
	rangemap_remove_tagged(&m, NULL, 0x80000000);
	assert_int_equal(m.n, 3);
	assert_null(rangemap_find(&m, 0x400, 0x400));
	assert_ptr_equal(rangemap_find(&m, 0x280, 0x280)->owner, &c);
	rangemap_fini(&m);
}

static void test_many(void **state)
{
	struct rangemap m = { 0 };

	/* Inserted in a scrambled order, found by binary search. */
	for (uint64_t i = 0; i < 1000; i++) {
		uint64_t k = (i * 7919) % 1000;

		assert_int_equal(rangemap_add(&m, k * 0x10, k * 0x10 + 7, &a, (uint32_t)k, NULL), 0);
	}
	for (uint64_t k = 0; k < 1000; k++) {
		assert_int_equal(rangemap_find(&m, k * 0x10 + 3, k * 0x10 + 4)->tag, k);
		assert_null(rangemap_find(&m, k * 0x10 + 8, k * 0x10 + 8));
	}
	rangemap_fini(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_find),
		cmocka_unit_test(test_access_must_fit_one_range),
		cmocka_unit_test(test_overlaps_rejected),
		cmocka_unit_test(test_extremes),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests_name("rangemap", tests, NULL, NULL);
}
