/* The demo guest: every access below leaves the vCPU, crosses the broker and
 * is answered by a sandboxed device process (examples/demo.yaml).
 *
 *   - each vCPU greets (the UART, ioreq-dev-uart);
 *   - vCPU 0 reads the date and time (the RTC, ioreq-dev-rtc), scans PCI
 *     bus 0 (ioreq-dev-pci), programs the test device's BAR0 inside its
 *     window, uses its scratch registers, rings its doorbell and takes its
 *     INTx interrupt;
 *   - it fills a buffer of its memory and has the DMA engine
 *     (ioreq-dev-dma, which was given the guest's memory) invert it into
 *     another: the doorbell is an ioeventfd (the vCPU does not wait for the
 *     device), the completion an irqfd; then it checks every byte and prints
 *     "demo: ok".
 *
 * An optional ID register at port DEMO_ID_PORT (examples/demo-two-vms.yaml
 * gives each VM one) names the VM in every line: "demo[ID]: ...". Any
 * failure prints why and exits non-zero. */
#include "rt.h"
#include "virtio.h"

#define DEMO_ID_PORT 0x510

#define RTC_INDEX 0x70
#define RTC_DATA 0x71
#define RTC_SEC 0x00
#define RTC_MIN 0x02
#define RTC_HOUR 0x04
#define RTC_DAY 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b
#define RTC_CENTURY 0x32
#define RTC_A_UIP 0x80
#define RTC_B_24H 0x02
#define RTC_B_BINARY 0x04

#define PCI_VENDOR 0x00
#define PCI_DEVICE 0x02
#define PCI_COMMAND 0x04
#define PCI_CLASS_REV 0x08
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_COMMAND_MEM 0x0002
#define PCI_COMMAND_INTX_DISABLE 0x0400

/* The test device (ioreq-dev-pci) and where the demo puts its BAR0: inside
 * the MMIO window demo.yaml grants it. */
#define TESTDEV_VENDOR 0x1234
#define TESTDEV_DEVICE 0x11e8
#define TESTDEV_BAR0 0xe0000000ull
#define TESTDEV_IRQ 11
#define TESTDEV_SCRATCH 0x00
#define TESTDEV_SCRATCH_REGS 8
#define TESTDEV_DOORBELL 0x20
#define TESTDEV_IRQ_STATUS 0x24
#define TESTDEV_DOORBELL_COUNT 0x28

/* The DMA engine (ioreq-dev-dma, clients/dma.c). */
#define DMA_BASE 0x520
#define DMA_IRQ 10
#define DMA_SRC_LO 0x00
#define DMA_SRC_HI 0x04
#define DMA_DST_LO 0x08
#define DMA_DST_HI 0x0c
#define DMA_LEN 0x10
#define DMA_OP 0x14
#define DMA_STATUS 0x18
#define DMA_COUNT 0x1c
#define DMA_DOORBELL 0x20
#define DMA_OP_INVERT 1
#define DMA_BYTES 4096

/* The virtio-blk disk (examples/demo.yaml's `disk`) and its BAR0, inside
 * its window; the image examples/mkdisk.cmake writes. */
#define DISK_BAR0 0xe1000000ull
#define SECTOR 512
#define DISK_LINE_LEN 32
#define DISK_READ_AT 0
#define DISK_READ_SECTORS 16
#define DISK_WRITE_AT 1024
#define DISK_WRITE_SECTORS 8

/* virtio-blk (virtio 1.x, 5.2) */
#define BLK_F_RO 5
#define BLK_F_FLUSH 9
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_ID_BYTES 20
#define BLK_CFG_CAPACITY 0

struct blk_req {
	uint32_t type, reserved;
	uint64_t sector;
};

static char tag[16] = "demo";
static volatile unsigned tagged, greeted;
static volatile unsigned got_irq;
static volatile uint32_t irq_status;
static volatile unsigned dma_irq;
/* Guest-physical = virtual: the runtime maps the low memory one to one. */
static uint8_t dma_src[DMA_BYTES] __attribute__((aligned(4096)));
static uint8_t dma_dst[DMA_BYTES] __attribute__((aligned(4096)));

static uint8_t rtc_read(uint8_t reg)
{
	outb(RTC_INDEX, reg);
	return inb(RTC_DATA);
}

static unsigned bcd(uint8_t v, bool binary)
{
	return binary ? v : (v >> 4) * 10 + (v & 0xf);
}

struct rtc_time {
	uint8_t sec, min, hour, day, month, year, century;
};

/* An update takes under 2 ms; an RTC stuck in one is read as it is. */
#define RTC_UIP_TRIES 1000

static void rtc_snapshot(struct rtc_time *t)
{
	for (unsigned i = 0; i < RTC_UIP_TRIES && rtc_read(RTC_REG_A) & RTC_A_UIP; i++)
		rt_pause();
	t->sec = rtc_read(RTC_SEC);
	t->min = rtc_read(RTC_MIN);
	t->hour = rtc_read(RTC_HOUR);
	t->day = rtc_read(RTC_DAY);
	t->month = rtc_read(RTC_MONTH);
	t->year = rtc_read(RTC_YEAR);
	t->century = rtc_read(RTC_CENTURY);
}

/* Reads until two snapshots agree (an update may land between reads), then
 * decodes them in the mode register B says: BCD or binary, 12 or 24 hours. */
static void print_rtc(void)
{
	struct rtc_time a, b;
	unsigned hour, century;
	uint8_t regb;
	bool bin;

	rtc_snapshot(&b);
	do {
		a = b;
		rtc_snapshot(&b);
	} while (a.sec != b.sec || a.min != b.min || a.hour != b.hour || a.day != b.day || a.month != b.month ||
		 a.year != b.year || a.century != b.century);
	regb = rtc_read(RTC_REG_B);
	bin = regb & RTC_B_BINARY;
	hour = bcd(b.hour & 0x7f, bin);
	if (!(regb & RTC_B_24H))
		hour = hour % 12 + (b.hour & 0x80 ? 12 : 0);
	century = b.century && b.century != 0xff ? bcd(b.century, bin) : 20;
	rt_printf("%s: rtc %02u%02u-%02u-%02u %02u:%02u:%02u\n", tag, century, bcd(b.year, bin), bcd(b.month, bin),
		  bcd(b.day, bin), hour, bcd(b.min, bin), bcd(b.sec, bin));
}

/* Bus 0, every device, every function of a multi-function one. Returns the
 * test device's BDF, or -1. */
static int scan_pci(void)
{
	int found = -1;

	for (unsigned dev = 0; dev < 32; dev++) {
		for (unsigned fn = 0; fn < 8; fn++) {
			uint32_t bdf = RT_BDF(0, dev, fn);
			uint32_t id = rt_pci_read(bdf, PCI_VENDOR, 4);

			if ((id & 0xffff) == 0xffff) {
				if (fn == 0)
					break;
				continue;
			}
			rt_printf("%s: pci %02x:%02x.%x %04x:%04x class %06x\n", tag, 0u, dev, fn, id & 0xffff,
				  id >> 16, rt_pci_read(bdf, PCI_CLASS_REV, 4) >> 8);
			if ((id & 0xffff) == TESTDEV_VENDOR && id >> 16 == TESTDEV_DEVICE && found < 0)
				found = (int)bdf;
			if (fn == 0 && !(rt_pci_read(bdf, PCI_HEADER_TYPE, 1) & 0x80))
				break;
		}
	}
	return found;
}

/* Ring 0, vCPU 0: acknowledge the device (it lowers INTx) before the
 * runtime's EOI. */
static void testdev_irq(unsigned line)
{
	irq_status = mmio_read32(TESTDEV_BAR0 + TESTDEV_IRQ_STATUS);
	mmio_write32(TESTDEV_BAR0 + TESTDEV_IRQ_STATUS, 1);
	got_irq = 1;
}

static int use_testdev(uint32_t bdf)
{
	uint32_t size, count;
	uint16_t cmd;

	/* Size BAR0 the way firmware does, then place it in the window. */
	rt_pci_write(bdf, PCI_BAR0, 4, 0xffffffff);
	size = ~(rt_pci_read(bdf, PCI_BAR0, 4) & ~0xfu) + 1;
	rt_pci_write(bdf, PCI_BAR0, 4, (uint32_t)TESTDEV_BAR0);
	rt_pci_write(bdf, PCI_INTERRUPT_LINE, 1, TESTDEV_IRQ);
	cmd = (uint16_t)rt_pci_read(bdf, PCI_COMMAND, 2);
	rt_pci_write(bdf, PCI_COMMAND, 2, (cmd | PCI_COMMAND_MEM) & ~PCI_COMMAND_INTX_DISABLE);
	rt_printf("%s: pci %02x:%02x.%x bar0 0x%x (%u bytes), memory decoding on\n", tag, bdf >> 8, bdf >> 3 & 31,
		  bdf & 7, (uint32_t)TESTDEV_BAR0, size);

	for (unsigned i = 0; i < TESTDEV_SCRATCH_REGS; i++)
		mmio_write32(TESTDEV_BAR0 + TESTDEV_SCRATCH + 4 * i, 0xc0de0000u + i);
	for (unsigned i = 0; i < TESTDEV_SCRATCH_REGS; i++) {
		uint32_t v = mmio_read32(TESTDEV_BAR0 + TESTDEV_SCRATCH + 4 * i);

		if (v != 0xc0de0000u + i) {
			rt_printf("%s: scratch register %u reads 0x%x, wrote 0x%x\n", tag, i, v, 0xc0de0000u + i);
			return 2;
		}
	}
	rt_printf("%s: scratch registers ok\n", tag);

	rt_irq_enable(TESTDEV_IRQ, testdev_irq);
	mmio_write32(TESTDEV_BAR0 + TESTDEV_DOORBELL, 1);
	rt_wait(&got_irq);
	count = mmio_read32(TESTDEV_BAR0 + TESTDEV_DOORBELL_COUNT);
	rt_printf("%s: doorbell rang, irq %u taken (status 0x%x), doorbell count %u\n", tag, TESTDEV_IRQ,
		  irq_status, count);
	return count == 1 ? 0 : 3;
}

static void dma_done(unsigned line)
{
	dma_irq = 1;
}

static void dma_write64(unsigned lo, const void *p)
{
	uint64_t gpa = (uint64_t)(uintptr_t)p;

	outl(DMA_BASE + lo, (uint32_t)gpa);
	outl(DMA_BASE + lo + 4, (uint32_t)(gpa >> 32));
}

static int use_dma(void)
{
	int32_t status;
	uint32_t count;

	for (unsigned i = 0; i < DMA_BYTES; i++) {
		dma_src[i] = (uint8_t)(i * 7 + 3);
		dma_dst[i] = 0;
	}
	dma_write64(DMA_SRC_LO, dma_src);
	dma_write64(DMA_DST_LO, dma_dst);
	outl(DMA_BASE + DMA_LEN, DMA_BYTES);
	outl(DMA_BASE + DMA_OP, DMA_OP_INVERT);
	rt_irq_enable(DMA_IRQ, dma_done);
	outb(DMA_BASE + DMA_DOORBELL, 1);
	rt_wait(&dma_irq);
	status = (int32_t)inl(DMA_BASE + DMA_STATUS);
	count = inl(DMA_BASE + DMA_COUNT);
	for (unsigned i = 0; i < DMA_BYTES; i++) {
		if ((uint8_t)(dma_dst[i] ^ dma_src[i]) != 0xff) {
			rt_printf("%s: dma: byte %u is 0x%x, not 0x%x (status %d)\n", tag, i, dma_dst[i],
				  (uint8_t)~dma_src[i], status);
			return 4;
		}
	}
	rt_printf("%s: dma: %u bytes at 0x%x inverted into 0x%x by a sandboxed device, irq %u taken "
		  "(status %d, transfers %u)\n",
		  tag, DMA_BYTES, (uint32_t)(uintptr_t)dma_src, (uint32_t)(uintptr_t)dma_dst, DMA_IRQ, status, count);
	return status == 1 && count == 1 ? 0 : 5;
}

static struct vio_dev disk;
static uint8_t disk_buf[DISK_READ_SECTORS * SECTOR] __attribute__((aligned(4096)));
static uint8_t disk_out[DISK_WRITE_SECTORS * SECTOR] __attribute__((aligned(4096)));
static struct blk_req disk_req;
static volatile uint8_t disk_status;
static uint64_t disk_read_bytes, disk_written_bytes;

/* One request: the header, @n data buffers, the status byte. Returns the
 * status (0 OK), or -1 after printing why the transport failed. */
static int blk_request(uint32_t type, uint64_t sector, const struct vio_buf *data, unsigned n)
{
	struct vio_buf bufs[4];
	uint32_t len, in = 1;

	disk_req = (struct blk_req){ .type = type, .sector = sector };
	disk_status = 0xff;
	bufs[0] = VIO_BUF_OUT(&disk_req, sizeof(disk_req));
	for (unsigned i = 0; i < n; i++) {
		bufs[1 + i] = data[i];
		in += data[i].device_writes ? data[i].len : 0;
	}
	bufs[1 + n] = VIO_BUF_IN(&disk_status, 1);
	if (vio_transfer(&disk, 0, bufs, n + 2, &len) < 0) {
		rt_printf("%s: virtio-blk: %s\n", tag, disk.err);
		return -1;
	}
	/* A read writes all its buffers and the status byte after them; the
	 * others at least the status. */
	if (type == BLK_T_IN ? len != in : len < 1) {
		rt_printf("%s: virtio-blk: request type %u: used len %u, expected %u\n", tag, type, len, in);
		return -1;
	}
	if (type == BLK_T_IN)
		disk_read_bytes += in - 1;
	else if (type == BLK_T_OUT)
		for (unsigned i = 0; i < n; i++)
			disk_written_bytes += data[i].len;
	return disk_status;
}

/* The image's sector @s: DISK_LINE_LEN-byte lines naming it. */
static void disk_pattern(uint64_t s, uint8_t *buf)
{
	char line[DISK_LINE_LEN + 1];

	rt_snprintf(line, sizeof(line), "demo disk sector %06u .......\n", (unsigned)s);
	for (unsigned i = 0; i < SECTOR; i++)
		buf[i] = (uint8_t)line[i % DISK_LINE_LEN];
}

static int disk_check(uint64_t first, unsigned sectors, const uint8_t *buf)
{
	uint8_t want[SECTOR];

	for (unsigned s = 0; s < sectors; s++) {
		disk_pattern(first + s, want);
		for (unsigned i = 0; i < SECTOR; i++) {
			if (buf[s * SECTOR + i] != want[i]) {
				rt_printf("%s: virtio-blk: sector %u byte %u is 0x%x, expected 0x%x\n", tag,
					  (unsigned)(first + s), i, buf[s * SECTOR + i], want[i]);
				return -1;
			}
		}
	}
	return 0;
}

/* Writes @buf to the write area, flushes it, and reads it back. */
static int disk_write_check(const uint8_t *buf, bool flush)
{
	struct vio_buf out = VIO_BUF_OUT(buf, sizeof(disk_out));
	struct vio_buf in = VIO_BUF_IN(disk_buf, sizeof(disk_out));
	int st;

	st = blk_request(BLK_T_OUT, DISK_WRITE_AT, &out, 1);
	if (st == 0 && flush)
		st = blk_request(BLK_T_FLUSH, 0, NULL, 0);
	if (st == 0) {
		__builtin_memset(disk_buf, 0, sizeof(disk_buf));
		st = blk_request(BLK_T_IN, DISK_WRITE_AT, &in, 1);
	}
	if (st) {
		if (st > 0)
			rt_printf("%s: virtio-blk: a write, flush or read back ended with status %d\n", tag, st);
		return -1;
	}
	for (unsigned i = 0; i < sizeof(disk_out); i++) {
		if (disk_buf[i] != buf[i]) {
			rt_printf("%s: virtio-blk: byte %u read back 0x%x, wrote 0x%x\n", tag, i, disk_buf[i], buf[i]);
			return -1;
		}
	}
	return 0;
}

static int use_disk(void)
{
	/* Two data buffers: one request, a chain of four descriptors. */
	struct vio_buf rd[2] = { VIO_BUF_IN(disk_buf, sizeof(disk_buf) / 2),
				 VIO_BUF_IN(disk_buf + sizeof(disk_buf) / 2, sizeof(disk_buf) / 2) };
	struct vio_buf id = VIO_BUF_IN(disk_buf, BLK_ID_BYTES);
	uint64_t want = VIO_BIT(VIO_F_EVENT_IDX) | VIO_BIT(BLK_F_RO) | VIO_BIT(BLK_F_FLUSH);
	char serial[BLK_ID_BYTES + 1];
	uint64_t capacity;
	bool flush;

	if (vio_find(&disk, VIO_ID_BLOCK, DISK_BAR0) < 0 || vio_setup(&disk, want, 1, true) < 0) {
		rt_printf("%s: virtio-blk: %s\n", tag, disk.err);
		return 6;
	}
	capacity = vio_config(&disk, BLK_CFG_CAPACITY, 8);
	flush = disk.features & VIO_BIT(BLK_F_FLUSH);
	if (capacity < DISK_WRITE_AT + DISK_WRITE_SECTORS || (disk.features & VIO_BIT(BLK_F_RO))) {
		rt_printf("%s: virtio-blk: capacity %u sectors%s: not the demo's disk\n", tag, (unsigned)capacity,
			  disk.features & VIO_BIT(BLK_F_RO) ? ", read-only" : "");
		return 6;
	}
	__builtin_memset(disk_buf, 0, BLK_ID_BYTES);
	if (blk_request(BLK_T_GET_ID, 0, &id, 1))
		return 6;
	/* The ID is up to 20 bytes, NUL-terminated only when shorter. */
	for (unsigned i = 0; i < BLK_ID_BYTES; i++)
		serial[i] = disk_buf[i] >= 0x20 && disk_buf[i] < 0x7f ? (char)disk_buf[i] : '\0';
	serial[BLK_ID_BYTES] = '\0';
	rt_printf("%s: virtio-blk %02x:%02x.%x: capacity %u sectors, id \"%s\", %s\n", tag, disk.bdf >> 8,
		  disk.bdf >> 3 & 31, disk.bdf & 7, (unsigned)capacity, serial,
		  disk.q[0].msix ? "completions by MSI-X" : "completions polled");

	if (blk_request(BLK_T_IN, DISK_READ_AT, rd, 2) || disk_check(DISK_READ_AT, DISK_READ_SECTORS, disk_buf))
		return 7;
	for (unsigned i = 0; i < sizeof(disk_out); i++)
		disk_out[i] = (uint8_t)(i * 13 + 1);
	if (disk_write_check(disk_out, flush))
		return 7;
	rt_printf("%s: virtio-blk: read %u bytes, wrote %u bytes, read back ok%s\n", tag, DISK_READ_SECTORS * SECTOR,
		  (unsigned)sizeof(disk_out), flush ? ", flushed" : "");
	/* Leave the image as it was. */
	for (unsigned s = 0; s < DISK_WRITE_SECTORS; s++)
		disk_pattern(DISK_WRITE_AT + s, disk_out + s * SECTOR);
	if (disk_write_check(disk_out, flush))
		return 7;
	rt_printf("%s: virtio-blk: ok, %u bytes read and %u written in all\n", tag, (unsigned)disk_read_bytes,
		  (unsigned)disk_written_bytes);
	return 0;
}

int guest_main(unsigned cpu, unsigned ncpus)
{
	int bdf;

	if (cpu == 0) {
		uint32_t id = inl(DEMO_ID_PORT);

		if (id != 0xffffffff)
			rt_snprintf(tag, sizeof(tag), "demo[%u]", id);
		__atomic_store_n(&tagged, 1, __ATOMIC_RELEASE);
	}
	while (!__atomic_load_n(&tagged, __ATOMIC_ACQUIRE))
		rt_pause();
	rt_printf("%s: hello from vcpu %u of %u\n", tag, cpu, ncpus);
	__atomic_add_fetch(&greeted, 1, __ATOMIC_SEQ_CST);
	if (cpu != 0)
		return 0;
	/* The rest in order, after every greeting. */
	while (greeted < ncpus)
		rt_pause();

	print_rtc();
	bdf = scan_pci();
	if (bdf < 0) {
		rt_printf("%s: no PCI device %04x:%04x on bus 0\n", tag, TESTDEV_VENDOR, TESTDEV_DEVICE);
		return 1;
	}
	if (use_testdev((uint32_t)bdf) || use_dma() || use_disk())
		return 1;
	rt_printf("%s: ok\n", tag);
	return 0;
}
