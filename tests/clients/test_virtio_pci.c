/* The virtio-pci transport (clients/virtio_pci.c) driven as Linux's
 * virtio_pci_modern driver drives it, over a real memfd as guest RAM: the
 * test finds the capabilities by walking the list, negotiates, sets queues
 * up in RAM, kicks, and takes the interrupts; then plays a hostile driver. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "memory.h"
#include "virtio_pci.h"

#define PAGE 0x1000ull
#define RAM_PAGES 64ull
#define RAM_END (RAM_PAGES * PAGE)
#define HOLE RAM_END /* nothing of guest RAM from here */
#define NQ 2
#define QMAX 64
#define MSI_ADDR 0xfee00000u

static int memfd = -1;
static uint8_t *base;
static struct ioreq_mem mem;

static const struct ioreq_mem_region layout[] = { { 0, RAM_END, false } };
static const uint64_t offsets[] = { 0 };

/* What the model told the device program. */
struct seen {
	unsigned kicks[16], n_kicks;
	struct {
		uint64_t addr;
		uint32_t data;
	} msi[16];
	unsigned n_msi;
	bool intx;
	uint8_t status[16];
	unsigned n_status;
	unsigned claims;
};

static struct seen seen;
static struct virtio_pci vp;

static void on_notify(void *opaque, unsigned queue)
{
	(void)opaque;
	seen.kicks[seen.n_kicks++ % 16] = queue;
}

static void on_msi(void *opaque, uint64_t addr, uint32_t data)
{
	(void)opaque;
	seen.msi[seen.n_msi % 16].addr = addr;
	seen.msi[seen.n_msi++ % 16].data = data;
}

static void on_intx(void *opaque, bool level)
{
	(void)opaque;
	seen.intx = level;
}

static int on_claim(void *opaque, unsigned bar, bool io, uint64_t start, uint64_t size, bool release)
{
	(void)opaque, (void)bar, (void)io, (void)start, (void)size, (void)release;
	seen.claims++;
	return 0;
}

static void on_status(void *opaque, uint8_t status)
{
	(void)opaque;
	seen.status[seen.n_status++ % 16] = status;
}

static const struct virtio_pci_ops ops = {
	.notify = on_notify,
	.msi = on_msi,
	.intx = on_intx,
	.claim = on_claim,
	.status = on_status,
};

/* ---- the driver's accessors ---- */

static uint32_t cfg_rd(unsigned reg, unsigned size)
{
	return virtio_pci_cfg_read(&vp, reg, size);
}

static void cfg_wr(unsigned reg, unsigned size, uint32_t v)
{
	virtio_pci_cfg_write(&vp, reg, size, v);
}

static uint64_t bar_rd(uint64_t off, unsigned size)
{
	uint64_t v = 0xdead;

	assert_int_equal(virtio_pci_bar_access(&vp, 0, false, off, size, &v), 0);
	return v;
}

static void bar_wr(uint64_t off, unsigned size, uint64_t v)
{
	assert_int_equal(virtio_pci_bar_access(&vp, 0, true, off, size, &v), 0);
}

/* Where each structure is, as the driver finds it. */
struct layout {
	uint32_t at[6], len[6]; /* by cfg_type */
	uint32_t multiplier;
	unsigned pci_cfg;       /* the PCI_CFG capability's offset */
	unsigned msix;          /* the MSI-X capability's offset */
};

/* Walks the list as virtio_pci_find_capability does: every vendor
 * capability, by cfg_type, the first of each; a list of more capabilities
 * than fit in config space is a loop. */
static struct layout find_caps(void)
{
	struct layout l = { 0 };
	unsigned n = 0;

	assert_true(cfg_rd(PCIDEV_STATUS, 2) & PCIDEV_STATUS_CAP_LIST);
	for (unsigned pos = cfg_rd(PCIDEV_CAP_PTR, 1); pos; pos = cfg_rd(pos + 1, 1)) {
		uint8_t id = (uint8_t)cfg_rd(pos, 1);

		assert_true(pos >= 0x40 && pos % 4 == 0 && n++ < 48);
		if (id == VIRTIO_PCI_CAP_ID_MSIX)
			l.msix = pos;
		if (id != VIRTIO_PCI_CAP_VNDR)
			continue;
		uint8_t type = (uint8_t)cfg_rd(pos + VIRTIO_PCI_CAP_TYPE, 1);

		assert_true(type >= 1 && type <= 5);
		if (type == VIRTIO_PCI_CAP_PCI_CFG) {
			l.pci_cfg = pos;
			continue;
		}
		if (l.len[type])
			continue;
		assert_int_equal(cfg_rd(pos + VIRTIO_PCI_CAP_BAR, 1), 0);
		l.at[type] = cfg_rd(pos + VIRTIO_PCI_CAP_OFFSET, 4);
		l.len[type] = cfg_rd(pos + VIRTIO_PCI_CAP_LENGTH, 4);
		assert_true(l.at[type] + l.len[type] <= VIRTIO_PCI_BAR_SIZE);
		if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
			assert_true(cfg_rd(pos + 2, 1) >= 20);
			l.multiplier = cfg_rd(pos + VIRTIO_PCI_CAP_MULTIPLIER, 4);
		}
	}
	return l;
}

static uint64_t common(const struct layout *l, unsigned off, unsigned size)
{
	return bar_rd(l->at[VIRTIO_PCI_CAP_COMMON_CFG] + off, size);
}

static void common_wr(const struct layout *l, unsigned off, unsigned size, uint64_t v)
{
	bar_wr(l->at[VIRTIO_PCI_CAP_COMMON_CFG] + off, size, v);
}

static uint8_t status(const struct layout *l)
{
	return (uint8_t)common(l, VIRTIO_PCI_COMMON_STATUS, 1);
}

static void add_status(const struct layout *l, uint8_t bits)
{
	common_wr(l, VIRTIO_PCI_COMMON_STATUS, 1, status(l) | bits);
}

static void write_features(const struct layout *l, uint64_t f)
{
	common_wr(l, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	common_wr(l, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)f);
	common_wr(l, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	common_wr(l, VIRTIO_PCI_COMMON_GF, 4, f >> 32);
}

static uint64_t device_features(const struct layout *l)
{
	common_wr(l, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	uint64_t f = common(l, VIRTIO_PCI_COMMON_DF, 4);

	common_wr(l, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	return f | common(l, VIRTIO_PCI_COMMON_DF, 4) << 32;
}

/* The sizes driver_init gives the queues. */
static unsigned queue_size(unsigned q)
{
	return q ? 32 : 16;
}

/* Queue @q's rings, 16 KiB apart from 0x10000. */
static uint64_t ring_at(unsigned q, enum virtio_pci_ring r)
{
	return 0x10000 + 0x4000ull * q + 0x1000ull * r;
}

static void setup_queue(const struct layout *l, unsigned q, unsigned size, uint16_t vector)
{
	common_wr(l, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	assert_int_equal(common(l, VIRTIO_PCI_COMMON_Q_SIZE, 2), QMAX);
	common_wr(l, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
	common_wr(l, VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
	/* lo and hi halves, as Linux's vp_iowrite64_twopart */
	common_wr(l, VIRTIO_PCI_COMMON_Q_DESC, 4, (uint32_t)ring_at(q, VIRTIO_PCI_DESC));
	common_wr(l, VIRTIO_PCI_COMMON_Q_DESC + 4, 4, 0);
	common_wr(l, VIRTIO_PCI_COMMON_Q_AVAIL, 4, (uint32_t)ring_at(q, VIRTIO_PCI_AVAIL));
	common_wr(l, VIRTIO_PCI_COMMON_Q_AVAIL + 4, 4, 0);
	common_wr(l, VIRTIO_PCI_COMMON_Q_USED, 8, ring_at(q, VIRTIO_PCI_USED));
}

/* reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queues, DRIVER_OK */
static struct layout driver_init(uint16_t vector0, uint16_t vector1)
{
	struct layout l = find_caps();

	common_wr(&l, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(status(&l), 0);
	add_status(&l, VIRTIO_STATUS_ACKNOWLEDGE);
	add_status(&l, VIRTIO_STATUS_DRIVER);
	assert_true(device_features(&l) & (UINT64_C(1) << VIRTIO_F_VERSION_1));
	write_features(&l, UINT64_C(1) << VIRTIO_F_VERSION_1 | UINT64_C(1) << VIRTIO_F_EVENT_IDX);
	add_status(&l, VIRTIO_STATUS_FEATURES_OK);
	assert_true(status(&l) & VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(common(&l, VIRTIO_PCI_COMMON_NUMQ, 2), NQ);
	setup_queue(&l, 0, queue_size(0), vector0);
	setup_queue(&l, 1, queue_size(1), vector1);
	for (unsigned q = 0; q < NQ; q++) {
		common_wr(&l, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
		common_wr(&l, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
		assert_int_equal(common(&l, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
		assert_int_equal(common(&l, VIRTIO_PCI_COMMON_Q_NOFF, 2), q);
	}
	add_status(&l, VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(status(&l), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
					     VIRTIO_STATUS_DRIVER_OK);
	assert_non_null(virtio_pci_queue(&vp, 0));
	assert_non_null(virtio_pci_queue(&vp, 1));
	return l;
}

/* The driver makes one 64-byte device-writable buffer available on @q as
 * its @idx'th, and asks for an interrupt when it is used (used_event). */
static void make_available(unsigned q, uint16_t idx)
{
	uint8_t *d = base + ring_at(q, VIRTIO_PCI_DESC);
	uint8_t *a = base + ring_at(q, VIRTIO_PCI_AVAIL);
	uint64_t addr = htole64(0x30000);
	uint32_t len = htole32(64);
	uint16_t flags = htole16(2), head = 0, i = htole16(idx), event = htole16(idx - 1);

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(a + 4 + 2 * ((idx - 1) % queue_size(q)), &head, 2);
	memcpy(a + 4 + 2 * queue_size(q), &event, 2);
	memcpy(a + 2, &i, 2);
}

static void kick(const struct layout *l, unsigned q)
{
	common_wr(l, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	bar_wr(l->at[VIRTIO_PCI_CAP_NOTIFY_CFG] + common(l, VIRTIO_PCI_COMMON_Q_NOFF, 2) * l->multiplier, 2, q);
}

/* The device serves one chain on @q and tells the transport. */
static int serve(unsigned q)
{
	struct iovec iov[4];
	struct ioreq_vq_chain c;
	struct ioreq_vq *vq = virtio_pci_queue(&vp, q);
	int r = ioreq_vq_pop(vq, iov, 4, &c);

	if (r < 0)
		return virtio_pci_needs_reset(&vp, r);
	assert_int_equal(r, 1);
	assert_int_equal(ioreq_vq_push(vq, c.head, 64), 0);
	return virtio_pci_queue_done(&vp, q);
}

static void msix_entry(const struct layout *l, unsigned v, uint32_t data, bool masked)
{
	(void)l;
	bar_wr(VIRTIO_PCI_MSIX_TABLE_AT + 16 * v, 4, MSI_ADDR);
	bar_wr(VIRTIO_PCI_MSIX_TABLE_AT + 16 * v + 4, 4, 0);
	bar_wr(VIRTIO_PCI_MSIX_TABLE_AT + 16 * v + 8, 4, data);
	bar_wr(VIRTIO_PCI_MSIX_TABLE_AT + 16 * v + 12, 4, masked);
}

static void msix_control(const struct layout *l, uint16_t bits)
{
	cfg_wr(l->msix + VIRTIO_PCI_MSIX_CONTROL, 2, bits);
}

static uint64_t pba(void)
{
	return bar_rd(VIRTIO_PCI_MSIX_PBA_AT, 8);
}

/* ---- fixture ---- */

static int group_setup(void **state)
{
	(void)state;
	memfd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (memfd < 0 || ftruncate(memfd, (off_t)RAM_END) < 0 ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		return -1;
	base = mmap(NULL, RAM_END, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (base == MAP_FAILED)
		return -1;
	return mem_view_init(&mem, base, RAM_END, layout, offsets, 1);
}

static int group_teardown(void **state)
{
	(void)state;
	munmap(base, RAM_END);
	close(memfd);
	return 0;
}

static int setup(void **state)
{
	struct virtio_pci_config cfg = {
		.device_type = VIRTIO_ID_BLOCK,
		.features = UINT64_C(1) << VIRTIO_F_EVENT_IDX | UINT64_C(1) << VIRTIO_F_INDIRECT_DESC,
		.num_queues = NQ,
		.queue_max_size = QMAX,
		.config_size = 8,
	};
	uint64_t capacity = htole64(2048);

	(void)state;
	memset(base, 0, RAM_END);
	memset(&seen, 0, sizeof(seen));
	if (virtio_pci_init(&vp, &cfg, &mem, &ops, NULL) < 0)
		return -1;
	assert_int_equal(virtio_pci_set_config(&vp, 0, &capacity, 8), 0);
	/* memory decoding on, BAR 0 at 4 GiB */
	cfg_wr(PCIDEV_BAR0, 4, 0);
	cfg_wr(PCIDEV_BAR0 + 4, 4, 1);
	cfg_wr(PCIDEV_COMMAND, 2, PCIDEV_CMD_MEM | PCIDEV_CMD_MASTER);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	virtio_pci_fini(&vp);
	return 0;
}

/* ---- tests ---- */

static void test_identity(void **state)
{
	struct layout l;

	(void)state;
	assert_int_equal(cfg_rd(PCIDEV_VENDOR, 2), 0x1af4);
	assert_int_equal(cfg_rd(PCIDEV_DEVICE, 2), 0x1042);
	assert_int_equal(cfg_rd(PCIDEV_REVISION, 1), 1);
	assert_int_equal(cfg_rd(PCIDEV_CLASS, 4) & 0xffffff, 0x018000);
	assert_int_equal(cfg_rd(PCIDEV_SUBSYSTEM_VENDOR, 2), 0x1af4);
	assert_int_equal(cfg_rd(PCIDEV_SUBSYSTEM, 2), 0x1042);
	assert_int_equal(cfg_rd(PCIDEV_INT_PIN, 1), 1);
	assert_int_equal(seen.claims, 1);
	/* BAR 0: 64-bit memory, sized by all ones */
	cfg_wr(PCIDEV_BAR0, 4, 0xffffffff);
	cfg_wr(PCIDEV_BAR0 + 4, 4, 0xffffffff);
	assert_int_equal(cfg_rd(PCIDEV_BAR0, 4), (uint32_t)-VIRTIO_PCI_BAR_SIZE | 0x4);
	assert_int_equal(cfg_rd(PCIDEV_BAR0 + 4, 4), 0xffffffff);
	for (unsigned n = 2; n < PCIDEV_NBARS; n++)
		assert_int_equal(cfg_rd(PCIDEV_BAR0 + 4 * n, 4), 0);

	l = find_caps();
	assert_int_equal(l.at[VIRTIO_PCI_CAP_COMMON_CFG], VIRTIO_PCI_COMMON_AT);
	assert_true(l.len[VIRTIO_PCI_CAP_COMMON_CFG] >= 0x38);
	assert_int_equal(l.at[VIRTIO_PCI_CAP_ISR_CFG], VIRTIO_PCI_ISR_AT);
	assert_true(l.len[VIRTIO_PCI_CAP_ISR_CFG] >= 1);
	assert_int_equal(l.at[VIRTIO_PCI_CAP_DEVICE_CFG], VIRTIO_PCI_DEVICE_AT);
	assert_int_equal(l.len[VIRTIO_PCI_CAP_DEVICE_CFG], 8);
	assert_int_equal(l.multiplier, 4);
	assert_true(l.len[VIRTIO_PCI_CAP_NOTIFY_CFG] >= (NQ - 1) * l.multiplier + 2);
	assert_true(l.pci_cfg != 0);
	/* MSI-X: a vector per queue and config's, table and PBA in BAR 0 */
	assert_true(l.msix != 0);
	assert_int_equal(cfg_rd(l.msix + VIRTIO_PCI_MSIX_CONTROL, 2), NQ);
	assert_int_equal(cfg_rd(l.msix + VIRTIO_PCI_MSIX_TABLE, 4), VIRTIO_PCI_MSIX_TABLE_AT);
	assert_int_equal(cfg_rd(l.msix + VIRTIO_PCI_MSIX_PBA, 4), VIRTIO_PCI_MSIX_PBA_AT);
	/* every vector masked at power-on */
	for (unsigned v = 0; v <= NQ; v++)
		assert_int_equal(bar_rd(VIRTIO_PCI_MSIX_TABLE_AT + 16 * v + 12, 4), 1);
	/* the device's configuration, and its generation */
	assert_int_equal(bar_rd(VIRTIO_PCI_DEVICE_AT, 8), 2048);
	assert_int_equal(bar_rd(VIRTIO_PCI_DEVICE_AT + 4, 4), 0);
	assert_int_equal(common(&l, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 1);
}

static void test_init_kick_intx(void **state)
{
	struct layout l;

	(void)state;
	l = driver_init(VIRTIO_PCI_NO_VECTOR, VIRTIO_PCI_NO_VECTOR);
	assert_int_equal(virtio_pci_features(&vp),
			 UINT64_C(1) << VIRTIO_F_VERSION_1 | UINT64_C(1) << VIRTIO_F_EVENT_IDX);
	assert_int_equal(seen.status[seen.n_status - 1], 0x0f);

	make_available(1, 1);
	kick(&l, 1);
	assert_int_equal(seen.n_kicks, 1);
	assert_int_equal(seen.kicks[0], 1);
	/* a doorbell of the wrong width, or between queues, is nothing */
	bar_wr(l.at[VIRTIO_PCI_CAP_NOTIFY_CFG] + 4, 1, 1);
	bar_wr(l.at[VIRTIO_PCI_CAP_NOTIFY_CFG] + 2, 2, 1);
	bar_wr(l.at[VIRTIO_PCI_CAP_NOTIFY_CFG] + 4 * NQ, 2, NQ);
	assert_int_equal(seen.n_kicks, 1);

	/* served: INTx through ISR, lowered by reading it */
	assert_int_equal(serve(1), 1);
	assert_true(seen.intx);
	assert_true(cfg_rd(PCIDEV_STATUS, 2) & PCIDEV_STATUS_INTX);
	assert_int_equal(bar_rd(l.at[VIRTIO_PCI_CAP_ISR_CFG], 1), VIRTIO_ISR_QUEUE);
	assert_false(seen.intx);
	assert_int_equal(bar_rd(l.at[VIRTIO_PCI_CAP_ISR_CFG], 1), 0);
	assert_int_equal(le32toh(*(uint32_t *)(base + ring_at(1, VIRTIO_PCI_USED) + 8)), 64);

	/* INTx disabled in the command register: ISR still says so */
	cfg_wr(PCIDEV_COMMAND, 2, PCIDEV_CMD_MEM | PCIDEV_CMD_MASTER | PCIDEV_CMD_INTX_DISABLE);
	assert_int_equal(virtio_pci_set_config(&vp, 0, "\1", 1), 0);
	assert_false(seen.intx);
	assert_int_equal(bar_rd(l.at[VIRTIO_PCI_CAP_ISR_CFG], 1), VIRTIO_ISR_CONFIG);
	assert_int_equal(seen.n_msi, 0);
}

static void test_msix(void **state)
{
	struct layout l;

	(void)state;
	l = driver_init(0, 1);
	msix_entry(&l, 0, 0x40, false);
	msix_entry(&l, 1, 0x41, false);
	msix_entry(&l, 2, 0x42, false);
	common_wr(&l, VIRTIO_PCI_COMMON_MSIX, 2, 2);
	assert_int_equal(common(&l, VIRTIO_PCI_COMMON_MSIX, 2), 2);
	/* vectors the table does not have are refused: NO_VECTOR */
	common_wr(&l, VIRTIO_PCI_COMMON_MSIX, 2, NQ + 1);
	assert_int_equal(common(&l, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_PCI_NO_VECTOR);
	common_wr(&l, VIRTIO_PCI_COMMON_MSIX, 2, 2);
	msix_control(&l, VIRTIO_PCI_MSIX_ENABLE);

	make_available(0, 1);
	assert_int_equal(serve(0), 1);
	assert_int_equal(seen.n_msi, 1);
	assert_int_equal(seen.msi[0].addr, MSI_ADDR);
	assert_int_equal(seen.msi[0].data, 0x40);
	assert_false(seen.intx);
	assert_int_equal(bar_rd(l.at[VIRTIO_PCI_CAP_ISR_CFG], 1), 0);

	/* a masked vector: pending, sent when unmasked */
	bar_wr(VIRTIO_PCI_MSIX_TABLE_AT + 16 * 1 + 12, 4, 1);
	make_available(1, 1);
	assert_int_equal(serve(1), 1);
	assert_int_equal(seen.n_msi, 1);
	assert_int_equal(pba(), 1u << 1);
	bar_wr(VIRTIO_PCI_MSIX_TABLE_AT + 16 * 1 + 12, 4, 0);
	assert_int_equal(seen.n_msi, 2);
	assert_int_equal(seen.msi[1].data, 0x41);
	assert_int_equal(pba(), 0);

	/* the function masked: the config change waits for it */
	msix_control(&l, VIRTIO_PCI_MSIX_ENABLE | VIRTIO_PCI_MSIX_MASKALL);
	assert_int_equal(virtio_pci_set_config(&vp, 0, "\2", 1), 0);
	assert_int_equal(seen.n_msi, 2);
	assert_int_equal(bar_rd(VIRTIO_PCI_MSIX_PBA_AT, 4), 1u << 2);
	msix_control(&l, VIRTIO_PCI_MSIX_ENABLE);
	assert_int_equal(seen.n_msi, 3);
	assert_int_equal(seen.msi[2].data, 0x42);

	/* NO_VECTOR: no interrupt at all */
	common_wr(&l, VIRTIO_PCI_COMMON_MSIX, 2, VIRTIO_PCI_NO_VECTOR);
	assert_int_equal(virtio_pci_set_config(&vp, 0, "\3", 1), 0);
	assert_int_equal(seen.n_msi, 3);
	assert_int_equal(pba(), 0);
	assert_false(seen.intx);

	/* MSI-X off again: back to INTx */
	msix_control(&l, 0);
	make_available(0, 2);
	assert_int_equal(serve(0), 1);
	assert_true(seen.intx);
	assert_int_equal(seen.n_msi, 3);
}

static void test_features(void **state)
{
	struct layout l = find_caps();
	const uint8_t ad = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	(void)state;
	/* out of order: DRIVER before ACKNOWLEDGE, FEATURES_OK before DRIVER */
	common_wr(&l, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_DRIVER);
	assert_int_equal(status(&l), 0);
	write_features(&l, UINT64_C(1) << VIRTIO_F_VERSION_1);
	common_wr(&l, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(status(&l), VIRTIO_STATUS_ACKNOWLEDGE);
	add_status(&l, VIRTIO_STATUS_DRIVER);

	/* without VERSION_1; with one not offered; DRIVER_OK before FEATURES_OK */
	write_features(&l, 0);
	add_status(&l, VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(status(&l), ad);
	write_features(&l, UINT64_C(1) << VIRTIO_F_VERSION_1 | 1);
	add_status(&l, VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(status(&l), ad);
	assert_int_equal(virtio_pci_features(&vp), 0);
	/* the driver may not set NEEDS_RESET, nor clear a bit */
	add_status(&l, VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(status(&l), ad);
	common_wr(&l, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(status(&l), ad);

	/* a queue enabled before FEATURES_OK stays off */
	setup_queue(&l, 0, 16, VIRTIO_PCI_NO_VECTOR);
	common_wr(&l, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	assert_int_equal(common(&l, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);

	write_features(&l, UINT64_C(1) << VIRTIO_F_VERSION_1 | UINT64_C(1) << VIRTIO_F_INDIRECT_DESC);
	add_status(&l, VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(status(&l), ad | VIRTIO_STATUS_FEATURES_OK);
	/* fixed from now on */
	write_features(&l, UINT64_C(1) << VIRTIO_F_VERSION_1);
	assert_int_equal(virtio_pci_features(&vp), UINT64_C(1) << VIRTIO_F_VERSION_1 | UINT64_C(1) << VIRTIO_F_INDIRECT_DESC);
	/* selectors beyond the 64 bits read 0 */
	common_wr(&l, VIRTIO_PCI_COMMON_DFSELECT, 4, 7);
	assert_int_equal(common(&l, VIRTIO_PCI_COMMON_DF, 4), 0);
	assert_int_equal(device_features(&l) >> 32, 1);
}

/* Each way a driver can get a queue wrong ends in NEEDS_RESET, with a new
 * generation and no queue. */
static void test_bad_queues(void **state)
{
	static const struct {
		unsigned size;
		uint64_t desc, avail, used;
	} cases[] = {
		{ 0, 0x10000, 0x11000, 0x12000 },
		{ 3, 0x10000, 0x11000, 0x12000 },
		{ 2 * QMAX, 0x10000, 0x11000, 0x12000 },
		{ 16, HOLE, 0x11000, 0x12000 },
		{ 16, 0x10000, RAM_END - 4, 0x12000 },
		{ 16, 0x10000, 0x11000, UINT64_MAX - 0x40 },
		{ 16, 0x10008, 0x11000, 0x12000 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct layout l = find_caps();
		uint8_t gen;

		common_wr(&l, VIRTIO_PCI_COMMON_STATUS, 1, 0);
		add_status(&l, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
		write_features(&l, UINT64_C(1) << VIRTIO_F_VERSION_1);
		add_status(&l, VIRTIO_STATUS_FEATURES_OK);
		gen = (uint8_t)common(&l, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
		common_wr(&l, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
		common_wr(&l, VIRTIO_PCI_COMMON_Q_SIZE, 2, cases[i].size);
		common_wr(&l, VIRTIO_PCI_COMMON_Q_DESC, 8, cases[i].desc);
		common_wr(&l, VIRTIO_PCI_COMMON_Q_AVAIL, 8, cases[i].avail);
		common_wr(&l, VIRTIO_PCI_COMMON_Q_USED, 8, cases[i].used);
		common_wr(&l, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
		assert_int_equal(common(&l, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
		assert_null(virtio_pci_queue(&vp, 0));
		assert_true(status(&l) & VIRTIO_STATUS_NEEDS_RESET);
		assert_int_equal(common(&l, VIRTIO_PCI_COMMON_CFGGENERATION, 1), (uint8_t)(gen + 1));
	}
	/* a queue that does not exist reads size 0 and takes nothing */
	struct layout l = find_caps();

	common_wr(&l, VIRTIO_PCI_COMMON_Q_SELECT, 2, NQ);
	assert_int_equal(common(&l, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	common_wr(&l, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	assert_int_equal(common(&l, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
}

/* A queue the guest breaks while it runs: NEEDS_RESET and a config
 * interrupt. */
static void test_broken_queue(void **state)
{
	struct layout l;
	uint16_t idx = htole16(100);

	(void)state;
	l = driver_init(VIRTIO_PCI_NO_VECTOR, VIRTIO_PCI_NO_VECTOR);
	memcpy(base + ring_at(0, VIRTIO_PCI_AVAIL) + 2, &idx, 2); /* 100 ahead of a queue of 16 */
	kick(&l, 0);
	assert_int_equal(serve(0), -EOVERFLOW);
	assert_true(status(&l) & VIRTIO_STATUS_NEEDS_RESET);
	assert_true(seen.intx);
	assert_int_equal(bar_rd(l.at[VIRTIO_PCI_CAP_ISR_CFG], 1), VIRTIO_ISR_CONFIG);
	assert_int_equal(virtio_pci_queue_done(&vp, 0), -EOVERFLOW);
	/* the reset clears it, and the queue can be set up again */
	driver_init(VIRTIO_PCI_NO_VECTOR, VIRTIO_PCI_NO_VECTOR);
	make_available(0, 1);
	assert_int_equal(serve(0), 1);
}

static void test_reset(void **state)
{
	struct layout l;

	(void)state;
	l = driver_init(0, 1);
	msix_entry(&l, 0, 0x40, true);
	msix_control(&l, VIRTIO_PCI_MSIX_ENABLE);
	make_available(0, 1);
	assert_int_equal(serve(0), 1);
	assert_int_equal(pba(), 1);

	seen.n_status = 0;
	common_wr(&l, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	assert_int_equal(seen.n_status, 1);
	assert_int_equal(seen.status[0], 0);
	assert_int_equal(status(&l), 0);
	assert_int_equal(virtio_pci_features(&vp), 0);
	common_wr(&l, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	assert_int_equal(common(&l, VIRTIO_PCI_COMMON_GF, 4), 0);
	assert_int_equal(common(&l, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_PCI_NO_VECTOR);
	for (unsigned q = 0; q < NQ; q++) {
		common_wr(&l, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
		assert_int_equal(common(&l, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
		assert_int_equal(common(&l, VIRTIO_PCI_COMMON_Q_SIZE, 2), QMAX);
		assert_int_equal(common(&l, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_PCI_NO_VECTOR);
		assert_int_equal(common(&l, VIRTIO_PCI_COMMON_Q_DESC, 8), 0);
		assert_null(virtio_pci_queue(&vp, q));
	}
	/* pending interrupts die with the device; the MSI-X table is the
	 * function's and stays */
	assert_int_equal(pba(), 0);
	assert_int_equal(bar_rd(VIRTIO_PCI_MSIX_TABLE_AT + 8, 4), 0x40);
	assert_true(cfg_rd(l.msix + VIRTIO_PCI_MSIX_CONTROL, 2) & VIRTIO_PCI_MSIX_ENABLE);
	assert_int_equal(virtio_pci_queue_done(&vp, 0), -ENOENT);

	/* the function's reset takes the table too */
	virtio_pci_reset(&vp);
	assert_int_equal(bar_rd(VIRTIO_PCI_MSIX_TABLE_AT + 8, 4), 0);
	assert_int_equal(bar_rd(VIRTIO_PCI_MSIX_TABLE_AT + 12, 4), 1);
	assert_false(cfg_rd(l.msix + VIRTIO_PCI_MSIX_CONTROL, 2) & VIRTIO_PCI_MSIX_ENABLE);
	assert_int_equal(cfg_rd(PCIDEV_COMMAND, 2), 0);
}

/* VIRTIO_PCI_CAP_PCI_CFG: the BAR through configuration space. */
static void test_pci_cfg_window(void **state)
{
	struct layout l = find_caps();

	(void)state;
	cfg_wr(l.pci_cfg + VIRTIO_PCI_CAP_BAR, 1, 0);
	cfg_wr(l.pci_cfg + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_COMMON_AT + VIRTIO_PCI_COMMON_NUMQ);
	cfg_wr(l.pci_cfg + VIRTIO_PCI_CAP_LENGTH, 4, 2);
	assert_int_equal(cfg_rd(l.pci_cfg + VIRTIO_PCI_CAP_CFG_DATA, 4), NQ);
	cfg_wr(l.pci_cfg + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_COMMON_AT + VIRTIO_PCI_COMMON_STATUS);
	cfg_wr(l.pci_cfg + VIRTIO_PCI_CAP_LENGTH, 4, 1);
	cfg_wr(l.pci_cfg + VIRTIO_PCI_CAP_CFG_DATA, 4, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(status(&l), VIRTIO_STATUS_ACKNOWLEDGE);
	/* another BAR, or a length of 3: nothing */
	cfg_wr(l.pci_cfg + VIRTIO_PCI_CAP_BAR, 1, 2);
	cfg_wr(l.pci_cfg + VIRTIO_PCI_CAP_CFG_DATA, 4, 0);
	cfg_wr(l.pci_cfg + VIRTIO_PCI_CAP_BAR, 1, 0);
	cfg_wr(l.pci_cfg + VIRTIO_PCI_CAP_LENGTH, 4, 3);
	cfg_wr(l.pci_cfg + VIRTIO_PCI_CAP_CFG_DATA, 4, 0);
	assert_int_equal(status(&l), VIRTIO_STATUS_ACKNOWLEDGE);
}

static uint64_t next_random(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Every width at every offset of the BAR and of configuration space,
 * read and written with all ones, zero and noise, from a running device:
 * nothing crashes (the ASan build says nothing reads out of bounds), and
 * the other BARs are not there. */
static void test_every_access(void **state)
{
	static const unsigned widths[] = { 0, 1, 2, 3, 4, 5, 8, 16 };
	uint64_t rnd = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (unsigned round = 0; round < 3; round++) {
		driver_init(VIRTIO_PCI_NO_VECTOR, 0);
		for (uint64_t off = 0; off < VIRTIO_PCI_BAR_SIZE + 16; off++) {
			for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
				uint64_t v = round == 0 ? UINT64_MAX : round == 1 ? 0 : next_random(&rnd);

				assert_int_equal(virtio_pci_bar_access(&vp, 0, false, off, widths[w], &v), 0);
				v = round == 0 ? UINT64_MAX : round == 1 ? 0 : next_random(&rnd);
				assert_int_equal(virtio_pci_bar_access(&vp, 0, true, off, widths[w], &v), 0);
			}
		}
		for (unsigned reg = 0; reg < PCIDEV_CFG_SIZE + 8; reg++) {
			for (unsigned w = 0; w <= 8; w++) {
				/* leave BAR 0 and the command register alone: they
				 * only move the BAR, which another test covers */
				if (reg < PCIDEV_BAR0 + 8 && reg + w > PCIDEV_COMMAND)
					continue;
				(void)cfg_rd(reg, w);
				cfg_wr(reg, w, round == 0 ? UINT32_MAX : round == 1 ? 0 : (uint32_t)next_random(&rnd));
			}
		}
		for (unsigned bar = 1; bar < 8; bar++) {
			uint64_t v = 0;

			assert_int_equal(virtio_pci_bar_access(&vp, bar, false, 0, 4, &v), -ENOENT);
		}
	}
	/* still a device a driver can bring up */
	virtio_pci_reset(&vp);
	cfg_wr(PCIDEV_COMMAND, 2, PCIDEV_CMD_MEM | PCIDEV_CMD_MASTER);
	driver_init(VIRTIO_PCI_NO_VECTOR, VIRTIO_PCI_NO_VECTOR);
}

static void test_config_checked(void **state)
{
	struct virtio_pci other;
	static const struct virtio_pci_config bad[] = {
		{ .device_type = 0, .num_queues = 1, .queue_max_size = 16 },
		{ .device_type = 2, .num_queues = 0, .queue_max_size = 16 },
		{ .device_type = 2, .num_queues = VIRTIO_PCI_MAX_QUEUES + 1, .queue_max_size = 16 },
		{ .device_type = 2, .num_queues = 1, .queue_max_size = 24 },
		{ .device_type = 2, .num_queues = 1, .queue_max_size = 0 },
		{ .device_type = 2, .num_queues = 1, .queue_max_size = 16, .config_size = VIRTIO_PCI_MAX_CONFIG + 1 },
	};
	const struct virtio_pci_config rng = { .device_type = VIRTIO_ID_RNG, .num_queues = 1, .queue_max_size = 16 };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(virtio_pci_init(&other, &bad[i], &mem, &ops, NULL), -EINVAL);
	assert_int_equal(virtio_pci_init(&other, &rng, NULL, &ops, NULL), 0);
	assert_int_equal(virtio_pci_cfg_read(&other, PCIDEV_DEVICE, 2), 0x1044);
	assert_int_equal(virtio_pci_cfg_read(&other, PCIDEV_CLASS, 4) & 0xffffff, 0xff0000);
	assert_int_equal(virtio_pci_set_config(&other, 0, "", 1), -EINVAL);
	virtio_pci_fini(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_kick_intx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_queues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_cfg_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_access, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_checked, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
