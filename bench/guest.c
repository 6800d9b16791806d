/* ioreq-bench's guest: the cost of one port read as the guest sees it.
 *
 * vCPU 0 reads N times (N: what the port PARAM_PORT reads, an
 * ioreq-dev-null with --pattern N) from
 *   - the exit port: its in-HSM client answers reads in the kvm backend's
 *     vCPU thread (all ones), no broker involved;
 *   - DEV_PORT: ioreq-dev-null through the broker;
 * timing each read with rdtsc, in ring 3 like every program of the guest
 * runtime, and prints one line per loop on the UART:
 *   "ioreq-bench hsm n=N p50=C p99=C min=C mean=C bad=B" (C in TSC cycles).
 * The host converts cycles with its own TSC rate: KVM runs the guest on the
 * host's TSC, only offset. */
#include "rt.h"

#define DEV_PORT 0x510
#define PARAM_PORT 0x520
#define PATTERN 0x5a5a5a5au
#define MAX_N 20000
#define DEFAULT_N 2000
#define WARMUP 100

static uint32_t samples[MAX_N];

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	/* lfence on both sides: the read must not move across either stamp. */
	__asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
	return (uint64_t)hi << 32 | lo;
}

static void shell_sort(uint32_t *v, unsigned n)
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

static void measure(const char *name, uint16_t port, uint32_t expect, unsigned n)
{
	uint64_t sum = 0;
	unsigned bad = 0;

	for (unsigned i = 0; i < WARMUP; i++)
		bad += inl(port) != expect;
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = rdtsc(), t;

		bad += inl(port) != expect;
		t = rdtsc() - t0;
		samples[i] = t > 0xffffffffu ? 0xffffffffu : (uint32_t)t;
		sum += samples[i];
	}
	shell_sort(samples, n);
	rt_printf("ioreq-bench %s n=%u p50=%u p99=%u min=%u mean=%lu bad=%u\n", name, n, samples[(n - 1) / 2],
		  samples[(n * 99 + 99) / 100 - 1], samples[0], (unsigned long)(sum / n), bad);
}

int guest_main(unsigned cpu, unsigned ncpus)
{
	unsigned n;

	if (cpu)
		return 0;
	n = inl(PARAM_PORT);
	if (n == 0 || n > MAX_N)
		n = DEFAULT_N;
	measure("hsm", RT_EXIT_PORT, 0xffffffffu, n);
	measure("dev", DEV_PORT, PATTERN, n);
	return 0;
}
