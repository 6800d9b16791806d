/* Every vCPU exits to the VMM for as long as the VM runs: a port write,
 * string I/O (one exit, many requests), an MMIO write and read, over and
 * over. It never stops by itself: tests/kernel/test_kvm.c stops it from
 * outside at moments of its choosing. */
#include "rt.h"

#define PORT 0x500
#define MMIO 0xd0000000ull

int guest_main(unsigned cpu, unsigned ncpus)
{
	static const uint8_t burst[16] = { 0 };
	uint64_t addr = MMIO + 8 * cpu;

	for (uint64_t i = 0;; i++) {
		outb(PORT + cpu, (uint8_t)i);
		outsb(PORT + cpu, burst, sizeof(burst));
		mmio_write64(addr, i);
		(void)mmio_read64(addr);
	}
	return 0;
}
