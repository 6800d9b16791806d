/* A device killed while the guest runs (test_kvm.c, device_killed): the
 * guest keeps reading ioreq-dev-null (--pattern 0x5a) at port 0x400 and MMIO
 * 0xd0000000 until a read comes back as the fallback, all ones; then it
 * makes some more accesses (each must be the pattern, should the device
 * be restarted, or all ones) and exits 0 through the exit port. */
#include "check.h"

#define PORT 0x400
#define MMIO 0xd0000000ull
/* About 30 s of reads: the test kills the device long before. */
#define MAX_READS 150000
#define AFTER 50

static bool ok8(uint8_t v)
{
	return v == 0x5a || v == 0xff;
}

int guest_main(unsigned cpu, unsigned ncpus)
{
	unsigned i;

	if (cpu)
		return 0;
	for (i = 0; i < MAX_READS; i++) {
		uint8_t v = inb(PORT);

		CHECK_EQ(ok8(v), true);
		if (v == 0xff)
			break;
	}
	CHECK_EQ(i < MAX_READS, true);
	rt_printf("fallback: device gone after %u reads\n", i);
	for (i = 0; i < AFTER; i++) {
		uint32_t p = inl(PORT);
		uint64_t m = mmio_read64(MMIO);

		CHECK_EQ(p == 0x5a5a5a5a || p == 0xffffffff, true);
		CHECK_EQ(m == 0x5a5a5a5a5a5a5a5aull || m == ~0ull, true);
		outb(PORT, 1);
	}
	return 0;
}
