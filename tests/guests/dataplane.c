/* The data plane under a real guest (test_dataplane.c --kvm): vCPU 0 gives
 * the device (ioreq-test-dplane --bind-at-start --copy-on-ring, its
 * registers at DEV) the source, destination and length of a copy, the
 * only requests; then, each round, fills SRC with the round's pattern
 * (plain stores to the shared memfd), rings the doorbell (an ioeventfd:
 * KVM signals the device's eventfd, no exit reaches the broker), halts
 * until the device's irqfd raises LINE, and checks DST word by word. */
#include "check.h"

#define DEV 0xd0000000ull
#define DOORBELL (DEV + 0x40)
#define SRC 0x400000ull
#define DST 0x402000ull
#define WORDS 1024
#define ROUNDS 20
#define LINE 5

static volatile unsigned fired;

static void on_line(unsigned line)
{
	fired++;
}

int guest_main(unsigned cpu, unsigned ncpus)
{
	volatile uint32_t *src = (volatile uint32_t *)SRC;
	volatile const uint32_t *dst = (volatile const uint32_t *)DST;

	if (cpu)
		return 0;
	rt_irq_enable(LINE, on_line);
	mmio_write64(DEV + 0x08, SRC);
	mmio_write64(DEV + 0x10, DST);
	mmio_write64(DEV + 0x18, WORDS * 4);
	for (uint32_t r = 1; r <= ROUNDS; r++) {
		for (uint32_t i = 0; i < WORDS; i++)
			src[i] = r << 16 | i;
		/* The last round's interrupt came before its copy was checked:
		 * nothing is pending now. */
		fired = 0;
		mmio_write32(DOORBELL, 1);
		rt_wait(&fired);
		for (uint32_t i = 0; i < WORDS; i++)
			CHECK_EQ(dst[i], r << 16 | i);
	}
	return 0;
}
