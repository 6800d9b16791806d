/* ioreq-bench's data-plane guest (the kvm side of dataplane.c): vCPU 0
 * times with rdtsc, in ring 3 like every program of the guest runtime, N
 * times each (N: what port PARAM_PORT reads, an ioreq-dev-null with
 * --pattern N), against ioreq-bench-dev (dplane.h):
 *
 *   bell_stall   a 4-byte write to the DP_BELL_ACK doorbell (KVM_IOEVENTFD):
 *                how long it holds the vCPU;
 *   bell_ack     the same write until the device, woken by its eventfd, has
 *                stored its count of rings in guest RAM (the vCPU spins);
 *   bell_broker  the same write to DP_WRITE: a request through the broker to
 *                the device and its reply (the doorbell's baseline);
 *   irqfd_ring   a ring of DP_BELL_IRQFD until the interrupt the device then
 *                raises through its irqfd (KVM_IRQFD) has run its handler;
 *   irqmsg_ring  the same through DP_BELL_IRQMSG: the device sends the
 *                protocol's Interrupt, the broker raises the line
 *                (KVM_IRQ_LINE) (the irqfd's baseline).
 *
 * and prints one line per figure on the UART:
 *   "ioreq-bench NAME n=N p50=C p99=C min=C mean=C bad=B" (C in TSC cycles;
 *   B: rings that got no answer within SPIN_LIMIT cycles).
 * The interrupt handler runs in ring 0, which KVM-PVM emulates: both
 * interrupt figures carry that cost alike. */
#include "dplane.h"
#include "guest_samples.h"

#define PARAM_PORT 0x520
#define MAX_N 20000
#define DEFAULT_N 500
#define WARMUP 50
/* About a second: a ring nobody answers is counted, not waited for. */
#define SPIN_LIMIT 3000000000ull

enum { STALL, ACK, BROKER, IRQFD, IRQMSG, FIGURES };

static const char *const names[FIGURES] = { "bell_stall", "bell_ack", "bell_broker", "irqfd_ring", "irqmsg_ring" };
static uint32_t samples[FIGURES][MAX_N];
static unsigned lost[FIGURES];
static volatile unsigned irqs;

static volatile uint32_t *shared32(unsigned off)
{
	return (volatile uint32_t *)(uintptr_t)(DP_SHARED + off);
}

static void on_irq(unsigned line)
{
	irqs++;
}

/* Spins until *@word != @old (@differ) or == @want; false (and counted
 * against @fig) after SPIN_LIMIT cycles. */
static bool spin(volatile uint32_t *word, uint32_t v, bool differ, unsigned fig)
{
	uint64_t t0 = rdtsc();

	while (differ ? *word == v : *word != v) {
		rt_pause();
		if (rdtsc() - t0 > SPIN_LIMIT) {
			lost[fig]++;
			return false;
		}
	}
	return true;
}

static void report(unsigned fig, unsigned n)
{
	report_samples(names[fig], samples[fig], n, lost[fig]);
}

int guest_main(unsigned cpu, unsigned ncpus)
{
	volatile uint32_t *ack = shared32(DP_ACK);
	uint32_t rung;
	unsigned n;

	if (cpu)
		return 0;
	n = inl(PARAM_PORT);
	if (n == 0 || n > MAX_N)
		n = DEFAULT_N;
	/* The device binds its doorbells after its handshake. */
	if (!spin(shared32(DP_READY), DP_READY_MAGIC, false, STALL)) {
		rt_printf("ioreq-bench: ioreq-bench-dev did not bind its doorbells\n");
		return 1;
	}
	rt_irq_enable(DP_IRQ_LINE, on_irq);
	rung = *ack;
	for (unsigned i = 0; i < WARMUP + n; i++) {
		uint64_t t[8];
		uint32_t seen;

		t[0] = rdtsc();
		outl(DP_PORT + DP_BELL_ACK, i);
		t[1] = rdtsc();
		spin(ack, ++rung, false, ACK);
		t[2] = rdtsc();
		outl(DP_PORT + DP_WRITE, i);
		t[3] = rdtsc();
		seen = irqs;
		t[4] = rdtsc();
		outl(DP_PORT + DP_BELL_IRQFD, i);
		spin(&irqs, seen, true, IRQFD);
		t[5] = rdtsc();
		seen = irqs;
		t[6] = rdtsc();
		outl(DP_PORT + DP_BELL_IRQMSG, i);
		spin(&irqs, seen, true, IRQMSG);
		t[7] = rdtsc();
		if (i < WARMUP)
			continue;
		samples[STALL][i - WARMUP] = clamp32(t[1] - t[0]);
		samples[ACK][i - WARMUP] = clamp32(t[2] - t[0]);
		samples[BROKER][i - WARMUP] = clamp32(t[3] - t[2]);
		samples[IRQFD][i - WARMUP] = clamp32(t[5] - t[4]);
		samples[IRQMSG][i - WARMUP] = clamp32(t[7] - t[6]);
	}
	for (unsigned f = 0; f < FIGURES; f++)
		report(f, n);
	return 0;
}
