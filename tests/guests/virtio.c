/* The virtio devices through the guest's virtio driver (test_virtio.c):
 *
 *  - virtio-rng at RNG_BDF: two reads of entropy (MSI-X), neither all zero
 *    and not the same; then once more polled, without MSI-X;
 *  - virtio-console at CONSOLE_BDF (port 0: queue 0 receives, 1 transmits):
 *    a buffer waits on the receive queue for what the test feeds the
 *    device's stdin, a line goes out on the transmit queue (the test finds
 *    it in the device's output file), and the bytes received are printed;
 *  - virtio-blk at DISK_BDF (a read-write image of DISK_SECTORS, byte i of
 *    sector s holding (s + i) & 0xff): a read past the capacity and one
 *    across its end end with IOERR; a chain whose data buffer lies outside
 *    guest RAM makes the device set DEVICE_NEEDS_RESET, while its registers
 *    keep answering; a reset and a new setup, and a read works again;
 *  - virtio-blk at RODISK_BDF (the same image, read-only): RO offered, a
 *    write ends with IOERR and a read still works.
 *
 * Each step prints a line the test looks for; a failure prints why and
 * returns its line number (the VM's exit status). */
#include "check.h"
#include "virtio.h"

#define RNG_BDF RT_BDF(0, 5, 0)
#define CONSOLE_BDF RT_BDF(0, 6, 0)
#define DISK_BDF RT_BDF(0, 7, 0)
#define RODISK_BDF RT_BDF(0, 8, 0)
#define RNG_BAR 0xe1000000ull
#define CONSOLE_BAR 0xe1100000ull
#define DISK_BAR 0xe1200000ull
#define RODISK_BAR 0xe1300000ull

#define DISK_SECTORS 128
#define SECTOR 512
/* Unbacked: the VM has 64 MiB of RAM. */
#define OUTSIDE_RAM 0x80000000ull

#define CONSOLE_RX 0
#define CONSOLE_TX 1
#define CONSOLE_LINE "virtio-console: hello from the guest\n"

#define BLK_F_RO 5
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_S_OK 0
#define BLK_S_IOERR 1

#define FAIL(...)                                    \
	do {                                         \
		rt_printf("virtio: " __VA_ARGS__);   \
		return __LINE__;                     \
	} while (0)

static struct vio_dev dev;
static uint8_t buf[2][4096] __attribute__((aligned(4096)));

struct blk_req {
	uint32_t type, reserved;
	uint64_t sector;
};

static struct blk_req req;
static volatile uint8_t status;

static bool same(const uint8_t *a, const uint8_t *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

static bool all_zero(const uint8_t *a, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i])
			return false;
	return true;
}

/* One entropy request of @n bytes into @p; the bytes the device wrote. */
static int rng_read(uint8_t *p, unsigned n, uint32_t *ret_len)
{
	struct vio_buf b = VIO_BUF_IN(p, n);

	__builtin_memset(p, 0, n);
	return vio_transfer(&dev, 0, &b, 1, ret_len);
}

static int test_rng(void)
{
	uint32_t len[2];

	if (vio_probe(&dev, RNG_BDF, RNG_BAR) < 0 || vio_setup(&dev, VIO_BIT(VIO_F_EVENT_IDX), 1, true) < 0)
		FAIL("rng: %s\n", dev.err);
	if (dev.type != VIO_ID_RNG || !dev.q[0].msix)
		FAIL("rng: type %u, msix %u\n", dev.type, dev.q[0].msix);
	for (unsigned i = 0; i < 2; i++)
		if (rng_read(buf[i], 64, &len[i]) < 0)
			FAIL("rng: %s\n", dev.err);
	if (!len[0] || !len[1] || all_zero(buf[0], len[0]) || all_zero(buf[1], len[1]))
		FAIL("rng: %u and %u bytes, all zero?\n", len[0], len[1]);
	if (len[0] == len[1] && same(buf[0], buf[1], len[0]))
		FAIL("rng: two reads of %u bytes returned the same bytes\n", len[0]);
	rt_printf("virtio: rng: %u and %u bytes of entropy (MSI-X), different\n", len[0], len[1]);

	/* Again from reset, polled: no MSI-X, no EVENT_IDX. */
	if (vio_setup(&dev, 0, 1, false) < 0 || rng_read(buf[0], 32, &len[0]) < 0)
		FAIL("rng: polled: %s\n", dev.err);
	if (!len[0] || all_zero(buf[0], len[0]))
		FAIL("rng: polled: %u bytes, all zero\n", len[0]);
	rt_printf("virtio: rng: %u bytes polled\n", len[0]);
	return 0;
}

static int test_console(void)
{
	static const char line[] = CONSOLE_LINE;
	struct vio_buf rx = VIO_BUF_IN(buf[0], 64), tx = VIO_BUF_OUT(buf[1], sizeof(line) - 1);
	uint16_t rx_head;
	uint32_t len;

	if (vio_probe(&dev, CONSOLE_BDF, CONSOLE_BAR) < 0 || vio_setup(&dev, VIO_BIT(VIO_F_EVENT_IDX), 2, true) < 0)
		FAIL("console: %s\n", dev.err);
	if (dev.type != VIO_ID_CONSOLE)
		FAIL("console: type %u\n", dev.type);
	/* The receive buffer first: the device may have input already. */
	__builtin_memset(buf[0], 0, sizeof(buf[0]));
	if (vio_submit(&dev, CONSOLE_RX, &rx, 1, &rx_head) < 0)
		FAIL("console: %s\n", dev.err);
	vio_kick(&dev, CONSOLE_RX);
	__builtin_memcpy(buf[1], line, sizeof(line) - 1);
	if (vio_transfer(&dev, CONSOLE_TX, &tx, 1, &len) < 0)
		FAIL("console: transmit: %s\n", dev.err);
	rt_printf("virtio: console: sent %u bytes\n", (unsigned)sizeof(line) - 1);
	if (vio_wait(&dev, CONSOLE_RX, rx_head, &len, 0) < 0)
		FAIL("console: receive: %s\n", dev.err);
	if (!len)
		FAIL("console: received nothing\n");
	for (unsigned i = 0; i < len; i++)
		if (buf[0][i] < 0x20 || buf[0][i] >= 0x7f)
			buf[0][i] = '.';
	buf[0][len] = '\0';
	rt_printf("virtio: console: received %u bytes \"%s\"\n", len, (const char *)buf[0]);
	return 0;
}

/* A request of @n data bytes at @sector (@out: written from @p, else read
 * into it); its status byte, or -1 with the driver's reason printed. */
static int blk(uint32_t type, uint64_t sector, uint64_t p, uint32_t n)
{
	struct vio_buf b[3] = { VIO_BUF_OUT(&req, sizeof(req)), { p, n, type == BLK_T_IN }, VIO_BUF_IN(&status, 1) };
	uint32_t len;
	int r;

	req = (struct blk_req){ .type = type, .sector = sector };
	status = 0xff;
	r = vio_transfer(&dev, 0, b, 3, &len);
	if (r < 0)
		return r;
	return status;
}

static bool sector_ok(const uint8_t *p, uint64_t s)
{
	for (unsigned i = 0; i < SECTOR; i++)
		if (p[i] != (uint8_t)(s + i))
			return false;
	return true;
}

static int test_disk(void)
{
	uint64_t gpa = (uint64_t)(uintptr_t)buf[0];
	uint64_t capacity;
	uint16_t numq;
	int st;

	if (vio_probe(&dev, DISK_BDF, DISK_BAR) < 0 || vio_setup(&dev, VIO_BIT(VIO_F_EVENT_IDX), 1, true) < 0)
		FAIL("blk: %s\n", dev.err);
	capacity = vio_config(&dev, 0, 8);
	CHECK_EQ(capacity, DISK_SECTORS);
	st = blk(BLK_T_IN, 5, gpa, SECTOR);
	if (st != BLK_S_OK || !sector_ok(buf[0], 5))
		FAIL("blk: read of sector 5: status %d (%s)\n", st, st < 0 ? dev.err : "data");
	st = blk(BLK_T_IN, DISK_SECTORS, gpa, SECTOR);
	if (st != BLK_S_IOERR)
		FAIL("blk: read past the capacity: status %d, expected IOERR\n", st);
	st = blk(BLK_T_IN, DISK_SECTORS - 1, gpa, 2 * SECTOR);
	if (st != BLK_S_IOERR)
		FAIL("blk: read across the end: status %d, expected IOERR\n", st);
	rt_printf("virtio: blk: reads past the capacity (%u sectors) end with IOERR\n", (unsigned)capacity);

	/* A buffer outside RAM: the device cannot serve the queue. */
	st = blk(BLK_T_IN, 0, OUTSIDE_RAM, SECTOR);
	if (st != -VIO_ERESET)
		FAIL("blk: a buffer outside RAM: %d (%s), expected DEVICE_NEEDS_RESET\n", st, dev.err ? dev.err : "");
	numq = mmio_read16(dev.common + 0x12);
	if (!(vio_status(&dev) & VIO_S_NEEDS_RESET) || numq != 1 || vio_config(&dev, 0, 8) != DISK_SECTORS)
		FAIL("blk: after the bad buffer: status 0x%x, %u queues\n", vio_status(&dev), numq);
	rt_printf("virtio: blk: a buffer outside RAM: DEVICE_NEEDS_RESET (status 0x%x), registers answer\n",
		  vio_status(&dev));
	if (vio_setup(&dev, VIO_BIT(VIO_F_EVENT_IDX), 1, true) < 0)
		FAIL("blk: setup after the reset: %s\n", dev.err);
	st = blk(BLK_T_IN, 7, gpa, SECTOR);
	if (st != BLK_S_OK || !sector_ok(buf[0], 7))
		FAIL("blk: read after the reset: status %d\n", st);
	rt_printf("virtio: blk: reset and set up again, reads work\n");
	return 0;
}

static int test_rodisk(void)
{
	uint64_t gpa = (uint64_t)(uintptr_t)buf[0];
	int st;

	if (vio_probe(&dev, RODISK_BDF, RODISK_BAR) < 0 ||
	    vio_setup(&dev, VIO_BIT(VIO_F_EVENT_IDX) | VIO_BIT(BLK_F_RO), 1, true) < 0)
		FAIL("blk ro: %s\n", dev.err);
	if (!(dev.features & VIO_BIT(BLK_F_RO)))
		FAIL("blk ro: RO not offered (features 0x%lx)\n", dev.features);
	__builtin_memset(buf[0], 0x5a, SECTOR);
	st = blk(BLK_T_OUT, 3, gpa, SECTOR);
	if (st != BLK_S_IOERR)
		FAIL("blk ro: write: status %d, expected IOERR\n", st);
	st = blk(BLK_T_IN, 3, gpa, SECTOR);
	if (st != BLK_S_OK || !sector_ok(buf[0], 3))
		FAIL("blk ro: read after the refused write: status %d\n", st);
	rt_printf("virtio: blk ro: a write ends with IOERR, the sector is unchanged\n");
	return 0;
}

int guest_main(unsigned cpu, unsigned ncpus)
{
	int r;

	if (cpu)
		return 0;
	r = test_rng();
	if (!r)
		r = test_console();
	if (!r)
		r = test_disk();
	if (!r)
		r = test_rodisk();
	if (!r)
		rt_printf("virtio: ok\n");
	return r;
}
