/* Doorbells (test_kvm.c, ioeventfd): vCPU 0 writes the same sequence
 * whatever the test registered, and reports what its reads returned
 * through port REPORT; the test counts what reached each eventfd and what
 * reached its default client:
 *   N 2-byte writes of i to port PIO_BELL, N 4-byte writes of i to MMIO_BELL,
 *   3 writes of 7 and 2 of 8 to port MATCH_BELL (4 bytes),
 *   a 1-byte write to PIO_BELL + 1 (inside a 2-byte doorbell, not at it),
 *   a 2-byte read of PIO_BELL and a 4-byte read of MMIO_BELL, reported. */
#include "check.h"

#define PIO_BELL 0x600
#define MATCH_BELL 0x608
#define MMIO_BELL 0xd0000000ull
#define REPORT 0x620
#define N 100

int guest_main(unsigned cpu, unsigned ncpus)
{
	if (cpu)
		return 0;
	for (unsigned i = 0; i < N; i++)
		outw(PIO_BELL, (uint16_t)i);
	for (unsigned i = 0; i < N; i++)
		mmio_write32(MMIO_BELL, i);
	for (unsigned i = 0; i < 3; i++)
		outl(MATCH_BELL, 7);
	for (unsigned i = 0; i < 2; i++)
		outl(MATCH_BELL, 8);
	outb(PIO_BELL + 1, 1);
	outl(REPORT, inw(PIO_BELL));
	outl(REPORT, mmio_read32(MMIO_BELL));
	return 0;
}
