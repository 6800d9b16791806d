/* Every vCPU: 5,000 writes of a distinct value to its own 8 bytes of
 * ioreq-dev-ram at 0xd0000000 + 8 * cpu, each read back at once: 10,000
 * verified accesses per vCPU; a lost, duplicated or reordered access shows
 * as a wrong value (test_kvm.c, two vCPUs). */
#include "check.h"

#define MMIO 0xd0000000ull
#define ROUNDS 5000

int guest_main(unsigned cpu, unsigned ncpus)
{
	uint64_t addr = MMIO + 8 * cpu;

	for (uint64_t i = 0; i < ROUNDS; i++) {
		uint64_t v = (uint64_t)cpu << 48 | i << 8 | 0x5a;

		mmio_write64(addr, v);
		CHECK_EQ(mmio_read64(addr), v);
	}
	return 0;
}
