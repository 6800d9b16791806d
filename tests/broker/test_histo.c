#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "histo.h"

static struct histo h;

static int reset(void **state)
{
	for (unsigned i = 0; i < HISTO_BUCKETS; i++)
		atomic_store(&h.n[i], 0);
	atomic_store(&h.max, 0);
	atomic_store(&h.sum, 0);
	return 0;
}

/* What ioreqctl metrics exports: cumulative counts at powers of two minus
 * one, and the sum. */
static void test_cumulative(void **state)
{
	static const uint64_t le[] = { 1023, 2047, 4095, 1048575 };
	uint64_t counts[4], total;

	histo_cumulative(&h, le, 4, counts, &total);
	assert_int_equal(total, 0);
	assert_int_equal(counts[3], 0);
	histo_record(&h, 5);
	histo_record(&h, 1023);
	histo_record(&h, 1024);
	histo_record(&h, 3000);
	histo_record(&h, 4095);
	histo_record(&h, 4096);
	histo_record(&h, 2000000);
	histo_cumulative(&h, le, 4, counts, &total);
	assert_int_equal(counts[0], 2); /* 5, 1023 */
	assert_int_equal(counts[1], 3); /* and 1024 */
	assert_int_equal(counts[2], 5); /* and 3000, 4095 */
	assert_int_equal(counts[3], 6); /* and 4096 */
	assert_int_equal(total, 7);
	assert_int_equal(histo_sum(&h), 5 + 1023 + 1024 + 3000 + 4095 + 4096 + 2000000);
}

static void test_empty(void **state)
{
	assert_int_equal(histo_count(&h), 0);
	assert_int_equal(histo_quantile(&h, 0.5), 0);
}

static void test_small_values_exact(void **state)
{
	for (uint64_t v = 0; v < 8; v++)
		histo_record(&h, v);
	assert_int_equal(histo_count(&h), 8);
	assert_int_equal(histo_quantile(&h, 0.5), 3);
	assert_int_equal(histo_quantile(&h, 1.0), 7);
}

/* Every quantile lies within 25% above the true value, never below. */
static void test_precision(void **state)
{
	for (uint64_t v = 1; v <= 100000; v++)
		histo_record(&h, v * 1000);
	for (int p = 1; p <= 100; p++) {
		uint64_t truth = (uint64_t)p * 1000 * 1000, got = histo_quantile(&h, p / 100.0);

		assert_true(got >= truth);
		assert_true(got <= truth + truth / 4);
	}
	assert_int_equal(histo_quantile(&h, 1.0), 100000 * 1000);
}

static void test_extremes(void **state)
{
	histo_record(&h, UINT64_MAX);
	histo_record(&h, 1ull << 62);
	assert_int_equal(histo_quantile(&h, 1.0), UINT64_MAX);
	assert_true(histo_quantile(&h, 0.5) >= 1ull << 62);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_cumulative, reset),
		cmocka_unit_test_setup(test_empty, reset),
		cmocka_unit_test_setup(test_small_values_exact, reset),
		cmocka_unit_test_setup(test_precision, reset),
		cmocka_unit_test_setup(test_extremes, reset),
	};

	return cmocka_run_group_tests_name("histo", tests, NULL, NULL);
}
