/* What the benchmark's guests share: TSC stamps, and the line that reports
 * a figure's samples (cycles) to ioreq-bench over the UART. Freestanding,
 * like the guest runtime (rt.h). */
#ifndef IOREQ_BENCH_GUEST_SAMPLES_H
#define IOREQ_BENCH_GUEST_SAMPLES_H

#include "rt.h"

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	/* lfence on both sides: the access must not move across either stamp. */
	__asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
	return (uint64_t)hi << 32 | lo;
}

static inline uint32_t clamp32(uint64_t v)
{
	return v > 0xffffffffu ? 0xffffffffu : (uint32_t)v;
}

static inline void shell_sort(uint32_t *v, unsigned n)
{
	for (unsigned gap = n / 2; gap; gap /= 2)
		for (unsigned i = gap; i < n; i++) {
			uint32_t x = v[i];
			unsigned j = i;

			for (; j >= gap && v[j - gap] > x; j -= gap)
				v[j] = v[j - gap];
			v[j] = x;
		}
}

/* Sorts @s (@n > 0 samples) and prints the line ioreq-bench parses. */
static inline void report_samples(const char *name, uint32_t *s, unsigned n, unsigned bad)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < n; i++)
		sum += s[i];
	shell_sort(s, n);
	rt_printf("ioreq-bench %s n=%u p50=%u p99=%u min=%u mean=%lu bad=%u\n", name, n, s[(n - 1) / 2],
		  s[(n * 99 + 99) / 100 - 1], s[0], (unsigned long)(sum / n), bad);
}

#endif
