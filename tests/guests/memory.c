/* Guest RAM is the memfd the host holds (test_kvm.c, memory; test_acrn.c,
 * the boot on /dev/kvm): vCPU 0 fills BUF with a pattern from ring 3 (plain
 * stores, no exit), writes 1 to port READY, whose handler (the test's
 * default client) checks BUF through its own mapping of the memfd and
 * writes REPLY before it completes the write; then the guest checks REPLY. */
#include "check.h"

#define BUF 0x400000ull
#define REPLY 0x401000ull
#define WORDS 1024
#define READY 0x500

int guest_main(unsigned cpu, unsigned ncpus)
{
	volatile uint32_t *buf = (volatile uint32_t *)BUF;
	volatile const uint32_t *reply = (volatile const uint32_t *)REPLY;

	if (cpu)
		return 0;
	for (unsigned i = 0; i < WORDS; i++)
		buf[i] = 0x5a000000u | i;
	outl(READY, 1);
	for (unsigned i = 0; i < WORDS; i++)
		CHECK_EQ(reply[i], 0xa5000000u | i);
	return 0;
}
