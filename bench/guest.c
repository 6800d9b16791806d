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
#include "guest_samples.h"

#define DEV_PORT 0x510
#define PARAM_PORT 0x520
#define PATTERN 0x5a5a5a5au
#define MAX_N 20000
#define DEFAULT_N 2000
#define WARMUP 100

static uint32_t samples[MAX_N];

static void measure(const char *name, uint16_t port, uint32_t expect, unsigned n)
{
	unsigned bad = 0;

	for (unsigned i = 0; i < WARMUP; i++)
		bad += inl(port) != expect;
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = rdtsc();

		bad += inl(port) != expect;
		samples[i] = clamp32(rdtsc() - t0);
	}
	report_samples(name, samples, n, bad);
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
