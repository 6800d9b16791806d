/* A latency histogram that threads update without locks: log2 buckets,
 * each split in four, so a percentile is known to within 25%. */
#ifndef IOREQ_HISTO_H
#define IOREQ_HISTO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HISTO_SUB 4
#define HISTO_BUCKETS (64 * HISTO_SUB)

struct histo {
	_Atomic uint64_t n[HISTO_BUCKETS];
	_Atomic uint64_t max;
	_Atomic uint64_t sum; /* of every value (wraps after 584 years of nanoseconds) */
};

void histo_record(struct histo *h, uint64_t value);

/* The upper bound of the bucket that holds quantile @q (0 < q <= 1) of the
 * recorded values; 0 when nothing was recorded. */
uint64_t histo_quantile(const struct histo *h, double q);

uint64_t histo_count(const struct histo *h);

uint64_t histo_sum(const struct histo *h);

/* From one pass over the buckets: into @ret_counts[j], how many values are
 * at most @le[j] (ascending; exact when each is a power of two minus one,
 * where buckets end), and into *@ret_total all of them, so the counts never
 * exceed the total however the histogram moves meanwhile. */
void histo_cumulative(const struct histo *h, const uint64_t *le, size_t n, uint64_t *ret_counts,
		      uint64_t *ret_total);

#endif
