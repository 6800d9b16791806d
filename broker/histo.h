/* A latency histogram that threads update without locks: log2 buckets,
 * each split in four, so a percentile is known to within 25%. */
#ifndef IOREQ_HISTO_H
#define IOREQ_HISTO_H

#include <stdatomic.h>
#include <stdint.h>

#define HISTO_SUB 4
#define HISTO_BUCKETS (64 * HISTO_SUB)

struct histo {
	_Atomic uint64_t n[HISTO_BUCKETS];
	_Atomic uint64_t max;
};

void histo_record(struct histo *h, uint64_t value);

/* The upper bound of the bucket that holds quantile @q (0 < q <= 1) of the
 * recorded values; 0 when nothing was recorded. */
uint64_t histo_quantile(const struct histo *h, double q);

uint64_t histo_count(const struct histo *h);

#endif
