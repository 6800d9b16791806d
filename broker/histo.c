#include "histo.h"

/* Values below 2 * HISTO_SUB get a bucket each; above, bucket = the power of
 * two and the next two bits below the top one. */
static unsigned bucket_of(uint64_t v)
{
	unsigned top;

	if (v < 2 * HISTO_SUB)
		return (unsigned)v;
	top = 63 - __builtin_clzll(v);
	return (top - 1) * HISTO_SUB + (unsigned)((v >> (top - 2)) & (HISTO_SUB - 1)) + HISTO_SUB;
}

static uint64_t upper_bound(unsigned b)
{
	unsigned top, sub;

	if (b < 2 * HISTO_SUB)
		return b;
	top = (b - HISTO_SUB) / HISTO_SUB + 1;
	sub = (b - HISTO_SUB) % HISTO_SUB;
	if (top >= 63 && sub == HISTO_SUB - 1)
		return UINT64_MAX;
	return ((uint64_t)(HISTO_SUB + sub + 1) << (top - 2)) - 1;
}

void histo_record(struct histo *h, uint64_t value)
{
	uint64_t max = atomic_load_explicit(&h->max, memory_order_relaxed);

	atomic_fetch_add_explicit(&h->n[bucket_of(value)], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, value, memory_order_relaxed);
	while (value > max &&
	       !atomic_compare_exchange_weak_explicit(&h->max, &max, value, memory_order_relaxed, memory_order_relaxed))
		;
}

uint64_t histo_count(const struct histo *h)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < HISTO_BUCKETS; i++)
		total += atomic_load_explicit(&h->n[i], memory_order_relaxed);
	return total;
}

uint64_t histo_sum(const struct histo *h)
{
	return atomic_load_explicit(&h->sum, memory_order_relaxed);
}

void histo_cumulative(const struct histo *h, const uint64_t *le, size_t n, uint64_t *ret_counts,
		      uint64_t *ret_total)
{
	uint64_t seen = 0;
	size_t j = 0;

	for (unsigned i = 0; i < HISTO_BUCKETS; i++) {
		uint64_t c = atomic_load_explicit(&h->n[i], memory_order_relaxed);

		for (; j < n && upper_bound(i) > le[j]; j++)
			ret_counts[j] = seen;
		seen += c;
	}
	for (; j < n; j++)
		ret_counts[j] = seen;
	*ret_total = seen;
}

uint64_t histo_quantile(const struct histo *h, double q)
{
	uint64_t total = histo_count(h), seen = 0, rank;

	if (!total)
		return 0;
	rank = (uint64_t)(q * (double)total + 0.999999);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < HISTO_BUCKETS; i++) {
		seen += atomic_load_explicit(&h->n[i], memory_order_relaxed);
		if (seen >= rank) {
			uint64_t ub = upper_bound(i), max = atomic_load_explicit(&h->max, memory_order_relaxed);

			return ub < max ? ub : max;
		}
	}
	return atomic_load_explicit(&h->max, memory_order_relaxed);
}
