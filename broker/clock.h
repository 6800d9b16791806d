/* The broker's one clock: CLOCK_MONOTONIC, in nanoseconds. */
#ifndef IOREQ_CLOCK_H
#define IOREQ_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#endif
