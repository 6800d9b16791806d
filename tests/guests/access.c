/* Every access width and kind from guest code (test_kvm.c, access). The VM:
 *   ram: ioreq-dev-ram, pio 0x100+16 and mmio 0xd0000000+0x1000 (laid end
 *        to end: port 0x100 + i is byte i, MMIO 0xd0000000 + i byte 16 + i)
 *   nothing at port 0x200 nor at MMIO 0xd1000000. */
#include "check.h"

#define PORT 0x100
#define MMIO 0xd0000000ull
#define NO_PORT 0x200
#define NO_MMIO 0xd1000000ull

static int pio_widths(void)
{
	outb(PORT, 0x5a);
	outw(PORT + 2, 0xbeef);
	outl(PORT + 4, 0xdeadbeef);
	CHECK_EQ(inb(PORT), 0x5a);
	CHECK_EQ(inw(PORT + 2), 0xbeef);
	CHECK_EQ(inl(PORT + 4), 0xdeadbeef);
	/* Each width reached the device as one access of that width. */
	CHECK_EQ(inb(PORT + 3), 0xbe);
	CHECK_EQ(inw(PORT + 6), 0xdead);
	return 0;
}

static int mmio_widths(void)
{
	mmio_write8(MMIO, 0xa5);
	mmio_write16(MMIO + 2, 0x1234);
	mmio_write32(MMIO + 4, 0x89abcdef);
	mmio_write64(MMIO + 8, 0x0123456789abcdefull);
	CHECK_EQ(mmio_read8(MMIO), 0xa5);
	CHECK_EQ(mmio_read16(MMIO + 2), 0x1234);
	CHECK_EQ(mmio_read32(MMIO + 4), 0x89abcdef);
	CHECK_EQ(mmio_read64(MMIO + 8), 0x0123456789abcdefull);
	CHECK_EQ(mmio_read32(MMIO + 12), 0x01234567);
	CHECK_EQ(mmio_read8(MMIO + 5), 0xcd);
	return 0;
}

/* rep outs/ins: one exit for many elements, one request each, in order: the
 * port keeps the last element written, and every element read sees it. */
static int string_pio(void)
{
	static const uint8_t out[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	static const uint16_t outw16[5] = { 0x1111, 0x2222, 0x3333, 0x4444, 0x5555 };
	uint8_t in[8] = { 0 };
	uint16_t in16[5] = { 0 };

	outsb(PORT + 8, out, sizeof(out));
	CHECK_EQ(inb(PORT + 8), 8);
	insb(PORT + 8, in, sizeof(in));
	for (unsigned i = 0; i < sizeof(in); i++)
		CHECK_EQ(in[i], 8);
	outsw(PORT + 10, outw16, 5);
	CHECK_EQ(inw(PORT + 10), 0x5555);
	outw(PORT + 10, 0x6666);
	insw(PORT + 10, in16, 5);
	for (unsigned i = 0; i < 5; i++)
		CHECK_EQ(in16[i], 0x6666);
	return 0;
}

static int unclaimed(void)
{
	CHECK_EQ(inb(NO_PORT), 0xff);
	CHECK_EQ(inw(NO_PORT), 0xffff);
	CHECK_EQ(inl(NO_PORT), 0xffffffff);
	outl(NO_PORT, 0); /* dropped */
	CHECK_EQ(mmio_read8(NO_MMIO), 0xff);
	CHECK_EQ(mmio_read16(NO_MMIO), 0xffff);
	CHECK_EQ(mmio_read32(NO_MMIO), 0xffffffff);
	CHECK_EQ(mmio_read64(NO_MMIO), 0xffffffffffffffffull);
	mmio_write64(NO_MMIO, 0); /* dropped */
	return 0;
}

/* The HSM keeps 0xCF8; with its bit 31 clear, 0xCFC..0xCFF read all ones
 * without reaching the broker; with it set, a BDF nobody serves too. */
static int pci_conf(void)
{
	outl(0xcf8, 0x00001000);
	CHECK_EQ(inl(0xcf8), 0x00001000);
	CHECK_EQ(inl(0xcfc), 0xffffffff);
	CHECK_EQ(inb(0xcfd), 0xff);
	outl(0xcf8, 0x80001000);
	CHECK_EQ(inl(0xcfc), 0xffffffff);
	CHECK_EQ(inw(0xcfe), 0xffff);
	return 0;
}

int guest_main(unsigned cpu, unsigned ncpus)
{
	int r;

	r = pio_widths();
	if (!r)
		r = mmio_widths();
	if (!r)
		r = string_pio();
	if (!r)
		r = unclaimed();
	if (!r)
		r = pci_conf();
	return r;
}
