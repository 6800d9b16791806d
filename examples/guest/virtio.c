/* A small virtio-pci driver for the guest runtime (see virtio.h). */
#include "virtio.h"

#include "rt.h"

#define PCI_VENDOR 0x00
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_BAR1 0x14
#define PCI_CAP_PTR 0x34
#define PCI_COMMAND_MEM 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_BAR_MEM64 0x4
#define PCI_BAR_TYPE_MASK 0x7

/* Capabilities: virtio's vendor ones (struct virtio_pci_cap) and MSI-X. */
#define CAP_VNDR 0x09
#define CAP_MSIX 0x11
#define CAP_TYPE 3
#define CAP_BAR 4
#define CAP_OFFSET 8
#define CAP_LENGTH 12
#define CAP_NOTIFY_MULT 16
#define CFG_COMMON 1
#define CFG_NOTIFY 2
#define CFG_ISR 3
#define CFG_DEVICE 4
#define MSIX_CONTROL 2
#define MSIX_TABLE 4
#define MSIX_ENABLE 0x8000
#define MSIX_MASKALL 0x4000
#define MSIX_ENTRY_SIZE 16
#define MSIX_ENTRY_CTRL 12
/* At most this many capabilities: a list that loops ends here. */
#define MAX_CAPS 48

/* struct virtio_pci_common_cfg */
#define COMMON_DFSELECT 0x00
#define COMMON_DF 0x04
#define COMMON_GFSELECT 0x08
#define COMMON_GF 0x0c
#define COMMON_MSIX 0x10
#define COMMON_NUMQ 0x12
#define COMMON_STATUS 0x14
#define COMMON_GENERATION 0x15
#define COMMON_Q_SELECT 0x16
#define COMMON_Q_SIZE 0x18
#define COMMON_Q_MSIX 0x1a
#define COMMON_Q_ENABLE 0x1c
#define COMMON_Q_NOFF 0x1e
#define COMMON_Q_DESC 0x20
#define COMMON_Q_AVAIL 0x28
#define COMMON_Q_USED 0x30
#define COMMON_SIZE 0x38
#define NO_VECTOR 0xffff

/* Split rings inside a queue's page (virtio 1.x, 2.7). */
#define AVAIL_AT 1024
#define USED_AT 2048
#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY 1

struct vio_avail {
	uint16_t flags, idx;
	uint16_t ring[VIO_QUEUE_MAX]; /* then used_event, at ring[size] */
};

struct vio_used_elem {
	uint32_t id, len;
};

struct vio_used {
	uint16_t flags, idx;
	struct vio_used_elem ring[VIO_QUEUE_MAX]; /* then avail_event */
};

_Static_assert(16 * VIO_QUEUE_MAX <= AVAIL_AT, "descriptors overlap the available ring");
_Static_assert(AVAIL_AT + 6 + 2 * VIO_QUEUE_MAX <= USED_AT, "available ring overlaps the used ring");
_Static_assert(USED_AT + 6 + 8 * VIO_QUEUE_MAX <= 4096, "used ring outside the page");

static struct vio_desc *ring_desc(struct vio_queue *q)
{
	return (struct vio_desc *)q->ring;
}

static volatile struct vio_avail *ring_avail(struct vio_queue *q)
{
	return (volatile struct vio_avail *)(q->ring + AVAIL_AT);
}

static volatile struct vio_used *ring_used(struct vio_queue *q)
{
	return (volatile struct vio_used *)(q->ring + USED_AT);
}

static volatile uint16_t *used_event(struct vio_queue *q)
{
	return &ring_avail(q)->ring[q->size];
}

static volatile uint16_t *avail_event(struct vio_queue *q)
{
	return (volatile uint16_t *)&ring_used(q)->ring[q->size];
}

/* The device runs on another host CPU: what we wrote to the rings must be
 * visible before what tells it so, and our reads must not pass that. */
static void full_fence(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static int fail(struct vio_dev *d, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct vio_dev *d, int error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rt_vsnprintf(d->errbuf, sizeof(d->errbuf), fmt, ap);
	va_end(ap);
	d->err = d->errbuf;
	return -error;
}

/* ---- PCI ---- */

static int find_function(uint16_t type, uint32_t *ret_bdf)
{
	uint32_t want = (uint32_t)(VIO_DEVICE_BASE + type) << 16 | VIO_VENDOR;

	for (unsigned dev = 0; dev < 32; dev++) {
		for (unsigned fn = 0; fn < 8; fn++) {
			uint32_t bdf = RT_BDF(0, dev, fn), id = rt_pci_read(bdf, PCI_VENDOR, 4);

			if ((id & 0xffff) == 0xffff) {
				if (fn == 0)
					break;
				continue;
			}
			if (id == want) {
				*ret_bdf = bdf;
				return 0;
			}
			if (fn == 0 && !(rt_pci_read(bdf, PCI_HEADER_TYPE, 1) & 0x80))
				break;
		}
	}
	return -1;
}

/* BAR0 must be a 64-bit memory BAR: sized the way firmware does, placed at
 * @addr. Returns its size, or 0. */
static uint64_t place_bar(struct vio_dev *d, uint64_t addr)
{
	uint32_t lo = rt_pci_read(d->bdf, PCI_BAR0, 4);
	uint64_t mask, size;

	if ((lo & PCI_BAR_TYPE_MASK) != PCI_BAR_MEM64)
		return 0;
	rt_pci_write(d->bdf, PCI_BAR0, 4, 0xffffffff);
	rt_pci_write(d->bdf, PCI_BAR1, 4, 0xffffffff);
	mask = (rt_pci_read(d->bdf, PCI_BAR0, 4) & ~0xfull) | (uint64_t)rt_pci_read(d->bdf, PCI_BAR1, 4) << 32;
	size = ~mask + 1;
	if (!mask || (size & (size - 1)) || (addr & (size - 1)))
		return 0;
	rt_pci_write(d->bdf, PCI_BAR0, 4, (uint32_t)addr);
	rt_pci_write(d->bdf, PCI_BAR1, 4, (uint32_t)(addr >> 32));
	return size;
}

/* Where a vendor capability points, if it lies wholly in BAR0. */
static uint64_t cap_region(struct vio_dev *d, unsigned cap, uint64_t bar_size, uint32_t *ret_len)
{
	uint32_t off = rt_pci_read(d->bdf, cap + CAP_OFFSET, 4), len = rt_pci_read(d->bdf, cap + CAP_LENGTH, 4);

	if (rt_pci_read(d->bdf, cap + CAP_BAR, 1) != 0 || !len || off >= bar_size || len > bar_size - off)
		return 0;
	*ret_len = len;
	return d->bar + off;
}

static int read_caps(struct vio_dev *d, uint64_t bar_size)
{
	unsigned cap, n;
	uint32_t len;

	if (!(rt_pci_read(d->bdf, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
		return fail(d, VIO_ENODEV, "no capability list");
	cap = rt_pci_read(d->bdf, PCI_CAP_PTR, 1) & 0xfc;
	for (n = 0; cap >= 0x40 && n < MAX_CAPS; n++, cap = rt_pci_read(d->bdf, cap + 1, 1) & 0xfc) {
		uint8_t id = (uint8_t)rt_pci_read(d->bdf, cap, 1);
		uint64_t at;

		if (id == CAP_MSIX && !d->msix_cap) {
			uint32_t table = rt_pci_read(d->bdf, cap + MSIX_TABLE, 4);

			if ((table & 7) == 0 && (table & ~7u) < bar_size) {
				d->msix_cap = cap;
				d->msix_vectors = (rt_pci_read(d->bdf, cap + MSIX_CONTROL, 2) & 0x7ff) + 1;
			}
			continue;
		}
		if (id != CAP_VNDR)
			continue;
		/* The first capability of each type that the driver can use. */
		at = cap_region(d, cap, bar_size, &len);
		if (!at)
			continue;
		switch (rt_pci_read(d->bdf, cap + CAP_TYPE, 1)) {
		case CFG_COMMON:
			if (!d->common && len >= COMMON_SIZE)
				d->common = at;
			break;
		case CFG_NOTIFY:
			if (!d->notify_base) {
				d->notify_base = at;
				d->notify_mult = rt_pci_read(d->bdf, cap + CAP_NOTIFY_MULT, 4);
			}
			break;
		case CFG_ISR:
			if (!d->isr)
				d->isr = at;
			break;
		case CFG_DEVICE:
			if (!d->device) {
				d->device = at;
				d->device_len = len;
			}
			break;
		}
	}
	if (!d->common || !d->notify_base || !d->isr)
		return fail(d, VIO_ENODEV, "capabilities missing (common %s, notify %s, isr %s)", d->common ? "yes" : "no",
			    d->notify_base ? "yes" : "no", d->isr ? "yes" : "no");
	return 0;
}

int vio_find(struct vio_dev *d, uint16_t type, uint64_t bar_addr)
{
	uint32_t bdf;

	if (find_function(type, &bdf) < 0) {
		__builtin_memset(d, 0, sizeof(*d));
		return fail(d, VIO_ENODEV, "no virtio device %04x:%04x on bus 0", VIO_VENDOR, VIO_DEVICE_BASE + type);
	}
	return vio_probe(d, bdf, bar_addr);
}

int vio_probe(struct vio_dev *d, uint32_t bdf, uint64_t bar_addr)
{
	uint32_t id = rt_pci_read(bdf, PCI_VENDOR, 4);
	uint64_t size;
	uint16_t cmd;

	__builtin_memset(d, 0, sizeof(*d));
	d->bdf = bdf;
	d->type = (uint16_t)((id >> 16) - VIO_DEVICE_BASE);
	if ((id & 0xffff) != VIO_VENDOR || id >> 16 < VIO_DEVICE_BASE)
		return fail(d, VIO_ENODEV, "%02x:%02x.%x is %04x:%04x, not a modern virtio device", bdf >> 8, bdf >> 3 & 31,
			    bdf & 7, id & 0xffff, id >> 16);
	size = place_bar(d, bar_addr);
	if (!size)
		return fail(d, VIO_ENODEV, "BAR0 is not a 64-bit memory BAR that fits at 0x%lx", bar_addr);
	d->bar = bar_addr;
	cmd = (uint16_t)rt_pci_read(d->bdf, PCI_COMMAND, 2);
	rt_pci_write(d->bdf, PCI_COMMAND, 2, cmd | PCI_COMMAND_MEM | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	return read_caps(d, size);
}

/* ---- the virtio device ---- */

uint8_t vio_status(struct vio_dev *d)
{
	return mmio_read8(d->common + COMMON_STATUS);
}

static void set_status(struct vio_dev *d, uint8_t bits)
{
	mmio_write8(d->common + COMMON_STATUS, vio_status(d) | bits);
}

/* The spec lets a reset take its time: the device says when it is done. */
#define RESET_TRIES 1000

int vio_reset(struct vio_dev *d)
{
	mmio_write8(d->common + COMMON_STATUS, 0);
	for (unsigned i = 0; i < RESET_TRIES; i++)
		if (vio_status(d) == 0)
			return 0;
	return fail(d, VIO_EIO, "device status stays 0x%x after a reset", vio_status(d));
}

uint64_t vio_config(struct vio_dev *d, unsigned off, unsigned len)
{
	uint8_t gen;
	uint64_t v, at = d->device + off;

	if (!d->device || off + len > d->device_len)
		return 0;
	do {
		gen = mmio_read8(d->common + COMMON_GENERATION);
		v = len == 1 ? mmio_read8(at) : len == 2 ? mmio_read16(at) : len == 4 ? mmio_read32(at) : mmio_read64(at);
	} while (gen != mmio_read8(d->common + COMMON_GENERATION));
	return v;
}

static uint64_t device_features(struct vio_dev *d)
{
	uint64_t f;

	mmio_write32(d->common + COMMON_DFSELECT, 0);
	f = mmio_read32(d->common + COMMON_DF);
	mmio_write32(d->common + COMMON_DFSELECT, 1);
	return f | (uint64_t)mmio_read32(d->common + COMMON_DF) << 32;
}

static void driver_features(struct vio_dev *d, uint64_t f)
{
	mmio_write32(d->common + COMMON_GFSELECT, 0);
	mmio_write32(d->common + COMMON_GF, (uint32_t)f);
	mmio_write32(d->common + COMMON_GFSELECT, 1);
	mmio_write32(d->common + COMMON_GF, (uint32_t)(f >> 32));
}

static void on_msi(void *arg)
{
	struct vio_dev *d = arg;

	d->events++;
}

/* Entry 0 for the configuration, 1 + q for queue q; one APIC vector for
 * all of them (vio_wait looks at the rings anyway). */
static int setup_msix(struct vio_dev *d, unsigned nq, uint64_t addr, uint32_t data)
{
	uint16_t ctl;

	if (d->msix_vectors < nq + 1)
		return -1;
	for (unsigned v = 0; v < nq + 1; v++) {
		uint64_t e = d->bar + (rt_pci_read(d->bdf, d->msix_cap + MSIX_TABLE, 4) & ~7u) + v * MSIX_ENTRY_SIZE;

		mmio_write32(e, (uint32_t)addr);
		mmio_write32(e + 4, (uint32_t)(addr >> 32));
		mmio_write32(e + 8, data);
		mmio_write32(e + MSIX_ENTRY_CTRL, 0);
	}
	ctl = (uint16_t)rt_pci_read(d->bdf, d->msix_cap + MSIX_CONTROL, 2);
	rt_pci_write(d->bdf, d->msix_cap + MSIX_CONTROL, 2, (ctl | MSIX_ENABLE) & ~MSIX_MASKALL);
	mmio_write16(d->common + COMMON_MSIX, 0);
	return mmio_read16(d->common + COMMON_MSIX) == 0 ? 0 : -1;
}

static int setup_queue(struct vio_dev *d, unsigned i, bool msix)
{
	struct vio_queue *q = &d->q[i];
	uint16_t max, size = VIO_QUEUE_MAX;
	uint64_t base = (uint64_t)(uintptr_t)q->ring;

	mmio_write16(d->common + COMMON_Q_SELECT, (uint16_t)i);
	max = mmio_read16(d->common + COMMON_Q_SIZE);
	if (!max)
		return fail(d, VIO_EIO, "queue %u is not available", i);
	while (size > max)
		size /= 2;
	__builtin_memset(q, 0, sizeof(*q));
	q->size = size;
	q->num_free = size;
	for (uint16_t j = 0; j + 1 < size; j++)
		ring_desc(q)[j].next = j + 1;
	mmio_write16(d->common + COMMON_Q_SIZE, size);
	mmio_write32(d->common + COMMON_Q_DESC, (uint32_t)base);
	mmio_write32(d->common + COMMON_Q_DESC + 4, (uint32_t)(base >> 32));
	mmio_write32(d->common + COMMON_Q_AVAIL, (uint32_t)(base + AVAIL_AT));
	mmio_write32(d->common + COMMON_Q_AVAIL + 4, (uint32_t)((base + AVAIL_AT) >> 32));
	mmio_write32(d->common + COMMON_Q_USED, (uint32_t)(base + USED_AT));
	mmio_write32(d->common + COMMON_Q_USED + 4, (uint32_t)((base + USED_AT) >> 32));
	if (msix) {
		mmio_write16(d->common + COMMON_Q_MSIX, (uint16_t)(1 + i));
		q->msix = mmio_read16(d->common + COMMON_Q_MSIX) == 1 + i;
	}
	/* Polling: ask for no interrupts at all. */
	ring_avail(q)->flags = q->msix ? 0 : AVAIL_F_NO_INTERRUPT;
	q->notify = d->notify_base + (uint64_t)mmio_read16(d->common + COMMON_Q_NOFF) * d->notify_mult;
	mmio_write16(d->common + COMMON_Q_ENABLE, 1);
	if (mmio_read16(d->common + COMMON_Q_ENABLE) != 1 || (vio_status(d) & VIO_S_NEEDS_RESET))
		return fail(d, VIO_EIO, "queue %u (size %u) refused", i, size);
	return 0;
}

int vio_setup(struct vio_dev *d, uint64_t want, unsigned nq, bool msix)
{
	uint64_t offered;
	int r;

	d->err = NULL;
	if (nq > VIO_MAX_QUEUES || nq > mmio_read16(d->common + COMMON_NUMQ))
		return fail(d, VIO_ENODEV, "%u queues wanted, the device has %u", nq, mmio_read16(d->common + COMMON_NUMQ));
	r = vio_reset(d);
	if (r < 0)
		return r;
	set_status(d, VIO_S_ACKNOWLEDGE);
	set_status(d, VIO_S_DRIVER);
	offered = device_features(d);
	if (!(offered & VIO_BIT(VIO_F_VERSION_1)))
		return fail(d, VIO_ENODEV, "the device does not offer VERSION_1 (features 0x%lx)", offered);
	d->features = offered & (want | VIO_BIT(VIO_F_VERSION_1));
	driver_features(d, d->features);
	set_status(d, VIO_S_FEATURES_OK);
	if (!(vio_status(d) & VIO_S_FEATURES_OK))
		return fail(d, VIO_EIO, "the device refused features 0x%lx", d->features);

	/* One APIC vector per device, kept across setups. */
	if (msix && d->msix_cap && !d->msi_addr && rt_msi_alloc(on_msi, d, &d->msi_addr, &d->msi_data) < 0)
		msix = false;
	msix = msix && d->msix_cap && setup_msix(d, nq, d->msi_addr, d->msi_data) == 0;
	d->nq = nq;
	for (unsigned i = 0; i < nq; i++) {
		r = setup_queue(d, i, msix);
		if (r < 0)
			return r;
	}
	set_status(d, VIO_S_DRIVER_OK);
	if ((vio_status(d) & (VIO_S_DRIVER_OK | VIO_S_NEEDS_RESET)) != VIO_S_DRIVER_OK)
		return fail(d, VIO_EIO, "device status 0x%x after DRIVER_OK", vio_status(d));
	return 0;
}

/* ---- queues ---- */

int vio_submit(struct vio_dev *d, unsigned qi, const struct vio_buf *bufs, unsigned n, uint16_t *ret_head)
{
	struct vio_queue *q = &d->q[qi];
	struct vio_desc *desc = ring_desc(q);
	uint16_t head = q->free_head, i = head, last = head;
	uint32_t in = 0;

	if (qi >= d->nq || !q->size || !n)
		return fail(d, VIO_EIO, "queue %u is not set up", qi);
	if (n > q->num_free)
		return fail(d, VIO_ENOSPC, "queue %u: %u buffers, %u descriptors free", qi, n, q->num_free);
	for (unsigned k = 0; k < n; k++) {
		desc[i].addr = bufs[k].addr;
		desc[i].len = bufs[k].len;
		desc[i].flags = (uint16_t)((bufs[k].device_writes ? VIO_DESC_F_WRITE : 0) | (k + 1 < n ? VIO_DESC_F_NEXT : 0));
		if (bufs[k].device_writes)
			in += bufs[k].len;
		last = i;
		i = desc[i].next;
	}
	q->free_head = desc[last].next;
	q->num_free = (uint16_t)(q->num_free - n);
	q->chain_len[head] = (uint16_t)n;
	q->chain_in[head] = in;
	q->done[head] = false;
	ring_avail(q)->ring[q->avail_idx % q->size] = head;
	full_fence();
	ring_avail(q)->idx = ++q->avail_idx;
	*ret_head = head;
	return 0;
}

void vio_kick(struct vio_dev *d, unsigned qi)
{
	struct vio_queue *q = &d->q[qi];
	bool kick;

	full_fence();
	if (d->features & VIO_BIT(VIO_F_EVENT_IDX)) {
		/* vring_need_event for the one entry just made available. */
		uint16_t ev = *avail_event(q), new = q->avail_idx, old = q->kicked;

		kick = (uint16_t)(new - ev - 1) < (uint16_t)(new - old);
	} else {
		kick = !(ring_used(q)->flags & USED_F_NO_NOTIFY);
	}
	q->kicked = q->avail_idx;
	if (kick)
		mmio_write16(q->notify, (uint16_t)qi);
}

static void free_chain(struct vio_queue *q, uint16_t head)
{
	struct vio_desc *desc = ring_desc(q);
	uint16_t last = head;

	for (unsigned k = 1; k < q->chain_len[head]; k++)
		last = desc[last].next;
	desc[last].next = q->free_head;
	q->free_head = head;
	q->num_free = (uint16_t)(q->num_free + q->chain_len[head]);
	q->chain_len[head] = 0;
	q->done[head] = false;
}

/* Takes every new used entry; each must name a chain in flight, with no
 * more bytes than the chain let the device write. */
static int drain_used(struct vio_dev *d, unsigned qi)
{
	struct vio_queue *q = &d->q[qi];
	uint16_t idx = ring_used(q)->idx;

	if ((uint16_t)(idx - q->used_seen) > q->size)
		return fail(d, VIO_EPROTO, "queue %u: used idx %u runs ahead of %u", qi, idx, q->used_seen);
	full_fence();
	for (; q->used_seen != idx; q->used_seen++) {
		volatile struct vio_used_elem *e = &ring_used(q)->ring[q->used_seen % q->size];
		uint32_t id = e->id, len = e->len;

		if (id >= q->size || !q->chain_len[id] || q->done[id])
			return fail(d, VIO_EPROTO, "queue %u: used id %u is not a chain in flight", qi, id);
		if (len > q->chain_in[id])
			return fail(d, VIO_EPROTO, "queue %u: used len %u for chain %u, which has %u writable bytes", qi,
				    len, id, q->chain_in[id]);
		q->done[id] = true;
		q->done_len[id] = len;
	}
	/* Interrupt us for the next one. */
	*used_event(q) = q->used_seen;
	full_fence();
	return 0;
}

int vio_wait(struct vio_dev *d, unsigned qi, uint16_t head, uint32_t *ret_len, unsigned spins)
{
	struct vio_queue *q = &d->q[qi];

	if (qi >= d->nq || head >= q->size || !q->chain_len[head])
		return fail(d, VIO_EIO, "queue %u: chain %u is not in flight", qi, head);
	for (unsigned n = 0;; n++) {
		int r;

		d->events = 0;
		r = drain_used(d, qi);
		if (r < 0)
			return r;
		if (q->done[head]) {
			*ret_len = q->done_len[head];
			free_chain(q, head);
			return 0;
		}
		if (vio_status(d) & VIO_S_NEEDS_RESET)
			return fail(d, VIO_ERESET, "the device needs a reset (status 0x%x)", vio_status(d));
		if (spins && n >= spins)
			return fail(d, VIO_ETIMEDOUT, "queue %u: chain %u not used after %u polls", qi, head, n);
		if (q->msix)
			rt_wait(&d->events);
		else
			rt_pause();
	}
}

int vio_transfer(struct vio_dev *d, unsigned q, const struct vio_buf *bufs, unsigned n, uint32_t *ret_len)
{
	uint16_t head;
	int r = vio_submit(d, q, bufs, n, &head);

	if (r < 0)
		return r;
	vio_kick(d, q);
	return vio_wait(d, q, head, ret_len, 0);
}
