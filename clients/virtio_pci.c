/* virtio over PCI, modern (see virtio_pci.h). */
#include "virtio_pci.h"

#include <errno.h>
#include <string.h>

#define PAGE 0x1000
#define DRIVER_BITS                                                                                      \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK | \
	 VIRTIO_STATUS_FAILED)
#define BIT(n) (UINT64_C(1) << (n))

/* The class of each device type this project serves (PCI code and ID
 * assignment): storage, network, communication; the rest "other". */
static const uint32_t type_class[] = {
	[VIRTIO_ID_NET] = 0x020000,
	[VIRTIO_ID_BLOCK] = 0x018000,
	[VIRTIO_ID_CONSOLE] = 0x078000,
};

static uint64_t le_get(const uint8_t *p, unsigned size)
{
	uint64_t v = 0;

	while (size--)
		v = v << 8 | p[size];
	return v;
}

static void le_put(uint8_t *p, unsigned size, uint64_t v)
{
	for (unsigned i = 0; i < size; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static unsigned n_vectors(const struct virtio_pci *vp)
{
	return vp->cfg.num_queues + 1;
}

static struct virtio_pci_queue *selected(struct virtio_pci *vp)
{
	return vp->queue_sel < vp->cfg.num_queues ? &vp->queues[vp->queue_sel] : NULL;
}

/* ---- interrupts ---- */

static uint16_t msix_control(const struct virtio_pci *vp)
{
	return (uint16_t)le_get(vp->caps + vp->msix_cap + VIRTIO_PCI_MSIX_CONTROL, 2);
}

static bool msix_enabled(const struct virtio_pci *vp)
{
	return msix_control(vp) & VIRTIO_PCI_MSIX_ENABLE;
}

static bool msix_masked(const struct virtio_pci *vp, unsigned v)
{
	return (msix_control(vp) & VIRTIO_PCI_MSIX_MASKALL) ||
	       (vp->msix_table[v][VIRTIO_PCI_MSIX_ENTRY_CTRL / 4] & VIRTIO_PCI_MSIX_ENTRY_MASKED);
}

static void msix_send(struct virtio_pci *vp, unsigned v)
{
	if (msix_masked(vp, v)) {
		vp->msix_pending[v / 64] |= BIT(v % 64);
		return;
	}
	vp->msix_pending[v / 64] &= ~BIT(v % 64);
	if (vp->ops->msi)
		vp->ops->msi(vp->opaque, vp->msix_table[v][0] | (uint64_t)vp->msix_table[v][1] << 32, vp->msix_table[v][2]);
}

/* What a mask held back goes out once nothing masks it. */
static void msix_flush(struct virtio_pci *vp)
{
	if (!msix_enabled(vp))
		return;
	for (unsigned v = 0; v < n_vectors(vp); v++)
		if ((vp->msix_pending[v / 64] & BIT(v % 64)) && !msix_masked(vp, v))
			msix_send(vp, v);
}

/* INTx follows ISR, and is silent while MSI-X replaces it. */
static void update_intx(struct virtio_pci *vp)
{
	pcidev_set_intx(&vp->pci, vp->isr && !msix_enabled(vp));
}

static void interrupt(struct virtio_pci *vp, uint8_t isr, uint16_t vector)
{
	if (msix_enabled(vp)) {
		if (vector < n_vectors(vp))
			msix_send(vp, vector);
		return;
	}
	vp->isr |= isr;
	update_intx(vp);
}

static void config_changed(struct virtio_pci *vp)
{
	vp->generation++;
	if (vp->status & VIRTIO_STATUS_DRIVER_OK)
		interrupt(vp, VIRTIO_ISR_CONFIG, vp->config_vector);
}

int virtio_pci_needs_reset(struct virtio_pci *vp, int error)
{
	if (!(vp->status & VIRTIO_STATUS_NEEDS_RESET)) {
		vp->status |= VIRTIO_STATUS_NEEDS_RESET;
		if (vp->ops->status)
			vp->ops->status(vp->opaque, vp->status);
		config_changed(vp);
	}
	return error;
}

/* ---- device status ---- */

/* The virtio device's power-on state; the PCI function (its header and
 * MSI-X table) is not the driver's reset's to touch. */
static void device_state_init(struct virtio_pci *vp)
{
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_QUEUES; i++) {
		struct virtio_pci_queue *q = &vp->queues[i];

		ioreq_vq_free(q->vq);
		*q = (struct virtio_pci_queue){ .size = vp->cfg.queue_max_size, .vector = VIRTIO_PCI_NO_VECTOR };
	}
	vp->driver_features = 0;
	vp->dfselect = vp->gfselect = 0;
	vp->config_vector = VIRTIO_PCI_NO_VECTOR;
	vp->queue_sel = 0;
	vp->status = 0;
	vp->isr = 0;
	memset(vp->msix_pending, 0, sizeof(vp->msix_pending));
}

/* The driver's reset, reported before the queues go. */
static void device_reset(struct virtio_pci *vp)
{
	if (vp->ops->status)
		vp->ops->status(vp->opaque, 0);
	device_state_init(vp);
	update_intx(vp);
}

static bool features_acceptable(const struct virtio_pci *vp)
{
	return (vp->driver_features & BIT(VIRTIO_F_VERSION_1)) && !(vp->driver_features & ~vp->cfg.features);
}

static void write_status(struct virtio_pci *vp, uint8_t value)
{
	uint8_t old = vp->status, next = old | (value & DRIVER_BITS);

	if (!value) {
		device_reset(vp);
		return;
	}
	if (old & DRIVER_BITS & ~value)
		return;
	/* Each step needs the one before it. */
	if (!(next & VIRTIO_STATUS_ACKNOWLEDGE))
		next &= (uint8_t)~VIRTIO_STATUS_DRIVER;
	if (!(next & VIRTIO_STATUS_DRIVER) || (!(old & VIRTIO_STATUS_FEATURES_OK) && !features_acceptable(vp)))
		next &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	if (!(next & VIRTIO_STATUS_FEATURES_OK))
		next &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
	if (next == old)
		return;
	vp->status = next;
	if (vp->ops->status)
		vp->ops->status(vp->opaque, next);
}

static void enable_queue(struct virtio_pci *vp, struct virtio_pci_queue *q)
{
	uint64_t f = virtio_pci_features(vp);
	struct ioreq_vq_config c = {
		.size = q->size,
		.desc = q->ring[VIRTIO_PCI_DESC],
		.avail = q->ring[VIRTIO_PCI_AVAIL],
		.used = q->ring[VIRTIO_PCI_USED],
		.event_idx = f & BIT(VIRTIO_F_EVENT_IDX),
		.indirect = f & BIT(VIRTIO_F_INDIRECT_DESC),
	};
	int r = -ENXIO;

	if (q->vq || (vp->status & (VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)) != VIRTIO_STATUS_FEATURES_OK)
		return;
	if (q->size > vp->cfg.queue_max_size)
		r = -EINVAL;
	else if (vp->mem)
		r = ioreq_vq_new(vp->mem, &c, &q->vq);
	if (r < 0)
		virtio_pci_needs_reset(vp, r);
}

/* ---- common configuration ---- */

static uint16_t vector_or_none(const struct virtio_pci *vp, uint64_t v)
{
	return v < n_vectors(vp) ? (uint16_t)v : VIRTIO_PCI_NO_VECTOR;
}

/* A 64-bit value's low half (0), high half (1) or all of it (2). */
static uint64_t part_get(uint64_t v, unsigned part)
{
	return part == 2 ? v : (uint32_t)(v >> (32 * part));
}

static uint64_t part_set(uint64_t old, unsigned part, uint64_t v)
{
	uint64_t mask = part == 2 ? UINT64_MAX : UINT64_C(0xffffffff) << (32 * part);

	return (old & ~mask) | ((v << (part == 2 ? 0 : 32 * part)) & mask);
}

static uint64_t rd_dfselect(struct virtio_pci *vp, unsigned arg)
{
	return vp->dfselect;
}

static void wr_dfselect(struct virtio_pci *vp, unsigned arg, uint64_t v)
{
	vp->dfselect = (uint32_t)v;
}

static uint64_t rd_df(struct virtio_pci *vp, unsigned arg)
{
	return vp->dfselect < 2 ? part_get(vp->cfg.features, vp->dfselect) : 0;
}

static uint64_t rd_gfselect(struct virtio_pci *vp, unsigned arg)
{
	return vp->gfselect;
}

static void wr_gfselect(struct virtio_pci *vp, unsigned arg, uint64_t v)
{
	vp->gfselect = (uint32_t)v;
}

static uint64_t rd_gf(struct virtio_pci *vp, unsigned arg)
{
	return vp->gfselect < 2 ? part_get(vp->driver_features, vp->gfselect) : 0;
}

/* Features are the driver's to choose until FEATURES_OK fixes them. */
static void wr_gf(struct virtio_pci *vp, unsigned arg, uint64_t v)
{
	if (vp->gfselect < 2 && !(vp->status & VIRTIO_STATUS_FEATURES_OK))
		vp->driver_features = part_set(vp->driver_features, vp->gfselect, v);
}

static uint64_t rd_msix(struct virtio_pci *vp, unsigned arg)
{
	return vp->config_vector;
}

static void wr_msix(struct virtio_pci *vp, unsigned arg, uint64_t v)
{
	vp->config_vector = vector_or_none(vp, v);
}

static uint64_t rd_numq(struct virtio_pci *vp, unsigned arg)
{
	return vp->cfg.num_queues;
}

static uint64_t rd_status(struct virtio_pci *vp, unsigned arg)
{
	return vp->status;
}

static void wr_status(struct virtio_pci *vp, unsigned arg, uint64_t v)
{
	write_status(vp, (uint8_t)v);
}

static uint64_t rd_generation(struct virtio_pci *vp, unsigned arg)
{
	return vp->generation;
}

static uint64_t rd_qselect(struct virtio_pci *vp, unsigned arg)
{
	return vp->queue_sel;
}

static void wr_qselect(struct virtio_pci *vp, unsigned arg, uint64_t v)
{
	vp->queue_sel = (uint16_t)v;
}

/* A queue that does not exist reads size 0: unavailable. */
static uint64_t rd_qsize(struct virtio_pci *vp, unsigned arg)
{
	struct virtio_pci_queue *q = selected(vp);

	return q ? q->size : 0;
}

static void wr_qsize(struct virtio_pci *vp, unsigned arg, uint64_t v)
{
	struct virtio_pci_queue *q = selected(vp);

	if (q && !q->vq)
		q->size = (uint16_t)v;
}

static uint64_t rd_qmsix(struct virtio_pci *vp, unsigned arg)
{
	struct virtio_pci_queue *q = selected(vp);

	return q ? q->vector : VIRTIO_PCI_NO_VECTOR;
}

static void wr_qmsix(struct virtio_pci *vp, unsigned arg, uint64_t v)
{
	struct virtio_pci_queue *q = selected(vp);

	if (q && !q->vq)
		q->vector = vector_or_none(vp, v);
}

static uint64_t rd_qenable(struct virtio_pci *vp, unsigned arg)
{
	struct virtio_pci_queue *q = selected(vp);

	return q && q->vq;
}

/* Only 1 means anything: disabling a queue takes VIRTIO_F_RING_RESET. */
static void wr_qenable(struct virtio_pci *vp, unsigned arg, uint64_t v)
{
	struct virtio_pci_queue *q = selected(vp);

	if (q && v == 1)
		enable_queue(vp, q);
}

static uint64_t rd_qnoff(struct virtio_pci *vp, unsigned arg)
{
	return selected(vp) ? vp->queue_sel : 0;
}

/* @arg: the ring times 3, plus the part. */
static uint64_t rd_ring(struct virtio_pci *vp, unsigned arg)
{
	struct virtio_pci_queue *q = selected(vp);

	return q ? part_get(q->ring[arg / 3], arg % 3) : 0;
}

static void wr_ring(struct virtio_pci *vp, unsigned arg, uint64_t v)
{
	struct virtio_pci_queue *q = selected(vp);

	if (q && !q->vq)
		q->ring[arg / 3] = part_set(q->ring[arg / 3], arg % 3, v);
}

struct common_field {
	unsigned offset, size;
	uint64_t (*read)(struct virtio_pci *vp, unsigned arg);
	void (*write)(struct virtio_pci *vp, unsigned arg, uint64_t v); /* NULL: read-only */
	unsigned arg;
};

#define RING(off, ring)                                             \
	{ off, 4, rd_ring, wr_ring, 3 * (ring) },                   \
	{ off + 4, 4, rd_ring, wr_ring, 3 * (ring) + 1 },           \
	{ off, 8, rd_ring, wr_ring, 3 * (ring) + 2 }

static const struct common_field common_fields[] = {
	{ VIRTIO_PCI_COMMON_DFSELECT, 4, rd_dfselect, wr_dfselect, 0 },
	{ VIRTIO_PCI_COMMON_DF, 4, rd_df, NULL, 0 },
	{ VIRTIO_PCI_COMMON_GFSELECT, 4, rd_gfselect, wr_gfselect, 0 },
	{ VIRTIO_PCI_COMMON_GF, 4, rd_gf, wr_gf, 0 },
	{ VIRTIO_PCI_COMMON_MSIX, 2, rd_msix, wr_msix, 0 },
	{ VIRTIO_PCI_COMMON_NUMQ, 2, rd_numq, NULL, 0 },
	{ VIRTIO_PCI_COMMON_STATUS, 1, rd_status, wr_status, 0 },
	{ VIRTIO_PCI_COMMON_CFGGENERATION, 1, rd_generation, NULL, 0 },
	{ VIRTIO_PCI_COMMON_Q_SELECT, 2, rd_qselect, wr_qselect, 0 },
	{ VIRTIO_PCI_COMMON_Q_SIZE, 2, rd_qsize, wr_qsize, 0 },
	{ VIRTIO_PCI_COMMON_Q_MSIX, 2, rd_qmsix, wr_qmsix, 0 },
	{ VIRTIO_PCI_COMMON_Q_ENABLE, 2, rd_qenable, wr_qenable, 0 },
	{ VIRTIO_PCI_COMMON_Q_NOFF, 2, rd_qnoff, NULL, 0 },
	RING(VIRTIO_PCI_COMMON_Q_DESC, VIRTIO_PCI_DESC),
	RING(VIRTIO_PCI_COMMON_Q_AVAIL, VIRTIO_PCI_AVAIL),
	RING(VIRTIO_PCI_COMMON_Q_USED, VIRTIO_PCI_USED),
};

static void common_access(struct virtio_pci *vp, bool write, unsigned off, unsigned size, uint64_t *value)
{
	for (size_t i = 0; i < sizeof(common_fields) / sizeof(common_fields[0]); i++) {
		const struct common_field *f = &common_fields[i];

		if (f->offset != off || f->size != size)
			continue;
		if (!write)
			*value = f->read(vp, f->arg);
		else if (f->write)
			f->write(vp, f->arg, *value);
		return;
	}
}

/* ---- the other regions of the BAR ---- */

/* Reading ISR acknowledges it. */
static void isr_access(struct virtio_pci *vp, bool write, unsigned off, unsigned size, uint64_t *value)
{
	if (write || off != 0)
		return;
	*value = vp->isr;
	vp->isr = 0;
	update_intx(vp);
}

static void device_access(struct virtio_pci *vp, bool write, unsigned off, unsigned size, uint64_t *value)
{
	if (off + size > vp->cfg.config_size)
		return;
	if (!write)
		*value = le_get(vp->config + off, size);
	else if (vp->ops->config_write)
		vp->ops->config_write(vp->opaque, off, size, *value);
}

static void notify_access(struct virtio_pci *vp, bool write, unsigned off, unsigned size, uint64_t *value)
{
	unsigned q = off / VIRTIO_PCI_NOTIFY_MULTIPLIER;

	if (write && (size == 2 || size == 4) && off % VIRTIO_PCI_NOTIFY_MULTIPLIER == 0 && q < vp->cfg.num_queues &&
	    vp->queues[q].vq && vp->ops->notify)
		vp->ops->notify(vp->opaque, q);
}

/* The MSI-X table and PBA take aligned dwords and qwords only (PCI 3.0,
 * 6.8.2). */
static bool dword_access(unsigned off, unsigned size, unsigned len)
{
	return (size == 4 || size == 8) && off % size == 0 && off + size <= len;
}

static void msix_entry_write(struct virtio_pci *vp, unsigned v, unsigned word, uint32_t value)
{
	/* Address: dword aligned. Vector control: only the mask bit. */
	static const uint32_t wmask[] = { 0xfffffffc, 0xffffffff, 0xffffffff, VIRTIO_PCI_MSIX_ENTRY_MASKED };

	vp->msix_table[v][word] = value & wmask[word];
	if (word == VIRTIO_PCI_MSIX_ENTRY_CTRL / 4)
		msix_flush(vp);
}

static void msix_table_access(struct virtio_pci *vp, bool write, unsigned off, unsigned size, uint64_t *value)
{
	if (!dword_access(off, size, n_vectors(vp) * VIRTIO_PCI_MSIX_ENTRY_SIZE))
		return;
	for (unsigned i = 0; i < size / 4; i++) {
		unsigned dword = off / 4 + i, v = dword / 4, word = dword % 4;

		if (write)
			msix_entry_write(vp, v, word, (uint32_t)(*value >> (32 * i)));
		else
			*value |= (uint64_t)vp->msix_table[v][word] << (32 * i);
	}
}

static void msix_pba_access(struct virtio_pci *vp, bool write, unsigned off, unsigned size, uint64_t *value)
{
	uint64_t bits;

	if (write || !dword_access(off, size, (unsigned)sizeof(vp->msix_pending)))
		return;
	bits = vp->msix_pending[off / 8];
	*value = size == 8 ? bits : (uint32_t)(bits >> (8 * (off % 8)));
}

typedef void region_fn(struct virtio_pci *vp, bool write, unsigned off, unsigned size, uint64_t *value);

/* One page of the BAR each. */
static region_fn *const regions[VIRTIO_PCI_BAR_SIZE / PAGE] = {
	[VIRTIO_PCI_COMMON_AT / PAGE] = common_access,
	[VIRTIO_PCI_ISR_AT / PAGE] = isr_access,
	[VIRTIO_PCI_DEVICE_AT / PAGE] = device_access,
	[VIRTIO_PCI_NOTIFY_AT / PAGE] = notify_access,
	[VIRTIO_PCI_MSIX_TABLE_AT / PAGE] = msix_table_access,
	[VIRTIO_PCI_MSIX_PBA_AT / PAGE] = msix_pba_access,
};

int virtio_pci_bar_access(struct virtio_pci *vp, unsigned bar, bool write, uint64_t offset, unsigned size,
			  uint64_t *value)
{
	region_fn *fn;

	if (bar != VIRTIO_PCI_BAR)
		return -ENOENT;
	if (!write)
		*value = 0;
	if ((size != 1 && size != 2 && size != 4 && size != 8) || offset >= VIRTIO_PCI_BAR_SIZE ||
	    offset % PAGE + size > PAGE)
		return 0;
	fn = regions[offset / PAGE];
	if (fn)
		fn(vp, write, (unsigned)(offset % PAGE), size, value);
	return 0;
}

/* ---- configuration space: the capabilities ---- */

/* Appends a capability of @len bytes at *@at, linked after *@prev. */
static unsigned cap_add(struct virtio_pci *vp, unsigned *at, unsigned *prev, uint8_t id, unsigned len)
{
	unsigned off = *at;

	vp->caps[off] = id;
	if (*prev)
		vp->caps[*prev + 1] = (uint8_t)off;
	*prev = off;
	*at += (len + 3) & ~3u;
	return off;
}

static unsigned vendor_cap(struct virtio_pci *vp, unsigned *at, unsigned *prev, uint8_t type, unsigned len,
			   uint32_t offset, uint32_t length)
{
	unsigned off = cap_add(vp, at, prev, VIRTIO_PCI_CAP_VNDR, len);

	vp->caps[off + 2] = (uint8_t)len;
	vp->caps[off + VIRTIO_PCI_CAP_TYPE] = type;
	vp->caps[off + VIRTIO_PCI_CAP_BAR] = VIRTIO_PCI_BAR;
	le_put(vp->caps + off + VIRTIO_PCI_CAP_OFFSET, 4, offset);
	le_put(vp->caps + off + VIRTIO_PCI_CAP_LENGTH, 4, length);
	return off;
}

static void build_caps(struct virtio_pci *vp)
{
	unsigned at = PCIDEV_MSI_CAP, prev = 0, off;
	uint8_t *w = vp->caps_wmask;

	memset(vp->caps, 0, sizeof(vp->caps));
	memset(w, 0, sizeof(vp->caps_wmask));
	vendor_cap(vp, &at, &prev, VIRTIO_PCI_CAP_COMMON_CFG, 16, VIRTIO_PCI_COMMON_AT, VIRTIO_PCI_COMMON_SIZE);
	off = vendor_cap(vp, &at, &prev, VIRTIO_PCI_CAP_NOTIFY_CFG, 20, VIRTIO_PCI_NOTIFY_AT,
			 vp->cfg.num_queues * VIRTIO_PCI_NOTIFY_MULTIPLIER);
	le_put(vp->caps + off + VIRTIO_PCI_CAP_MULTIPLIER, 4, VIRTIO_PCI_NOTIFY_MULTIPLIER);
	vendor_cap(vp, &at, &prev, VIRTIO_PCI_CAP_ISR_CFG, 16, VIRTIO_PCI_ISR_AT, 1);
	if (vp->cfg.config_size)
		vendor_cap(vp, &at, &prev, VIRTIO_PCI_CAP_DEVICE_CFG, 16, VIRTIO_PCI_DEVICE_AT, vp->cfg.config_size);
	/* A window onto the BAR through configuration space: bar, offset,
	 * length and data are the driver's. */
	off = vp->pci_cfg_cap = vendor_cap(vp, &at, &prev, VIRTIO_PCI_CAP_PCI_CFG, 20, 0, 0);
	w[off + VIRTIO_PCI_CAP_BAR] = 0xff;
	memset(w + off + VIRTIO_PCI_CAP_OFFSET, 0xff, 12);
	off = vp->msix_cap = cap_add(vp, &at, &prev, VIRTIO_PCI_CAP_ID_MSIX, 12);
	le_put(vp->caps + off + VIRTIO_PCI_MSIX_CONTROL, 2, n_vectors(vp) - 1);
	w[off + VIRTIO_PCI_MSIX_CONTROL + 1] = (VIRTIO_PCI_MSIX_ENABLE | VIRTIO_PCI_MSIX_MASKALL) >> 8;
	le_put(vp->caps + off + VIRTIO_PCI_MSIX_TABLE, 4, VIRTIO_PCI_MSIX_TABLE_AT | VIRTIO_PCI_BAR);
	le_put(vp->caps + off + VIRTIO_PCI_MSIX_PBA, 4, VIRTIO_PCI_MSIX_PBA_AT | VIRTIO_PCI_BAR);
}

static bool overlaps(unsigned reg, unsigned size, unsigned start, unsigned len)
{
	return reg < start + len && start < reg + size;
}

/* The PCI_CFG window: an access of the window's length to the BAR at its
 * offset, when the driver named this function's BAR and a length of 1, 2
 * or 4. */
static void pci_cfg_window(struct virtio_pci *vp, bool write)
{
	uint8_t *cap = vp->caps + vp->pci_cfg_cap;
	uint32_t len = (uint32_t)le_get(cap + VIRTIO_PCI_CAP_LENGTH, 4);
	uint64_t v = le_get(cap + VIRTIO_PCI_CAP_CFG_DATA, 4);

	if (cap[VIRTIO_PCI_CAP_BAR] != VIRTIO_PCI_BAR || (len != 1 && len != 2 && len != 4))
		return;
	virtio_pci_bar_access(vp, VIRTIO_PCI_BAR, write, le_get(cap + VIRTIO_PCI_CAP_OFFSET, 4), len, &v);
	if (!write)
		le_put(cap + VIRTIO_PCI_CAP_CFG_DATA, 4, v);
}

static uint32_t caps_read(struct virtio_pci *vp, unsigned reg, unsigned size)
{
	if (overlaps(reg, size, vp->pci_cfg_cap + VIRTIO_PCI_CAP_CFG_DATA, 4))
		pci_cfg_window(vp, false);
	return (uint32_t)le_get(vp->caps + reg, size);
}

static void caps_write(struct virtio_pci *vp, unsigned reg, unsigned size, uint32_t value)
{
	unsigned data = vp->pci_cfg_cap + VIRTIO_PCI_CAP_CFG_DATA;

	for (unsigned i = 0; i < size; i++) {
		uint8_t w = vp->caps_wmask[reg + i], v = (uint8_t)(value >> (8 * i));

		if (overlaps(reg + i, 1, data, 4))
			w = 0xff;
		vp->caps[reg + i] = (uint8_t)((vp->caps[reg + i] & ~w) | (v & w));
	}
	if (overlaps(reg, size, data, 4))
		pci_cfg_window(vp, true);
	if (overlaps(reg, size, vp->msix_cap + VIRTIO_PCI_MSIX_CONTROL, 2)) {
		update_intx(vp);
		msix_flush(vp);
	}
}

/* The header is pcidev's, the capabilities from PCIDEV_MSI_CAP up are
 * ours; an access across the boundary is split there. */
uint32_t virtio_pci_cfg_read(struct virtio_pci *vp, unsigned reg, unsigned size)
{
	unsigned low;

	if (size < 1 || size > 4 || reg >= PCIDEV_CFG_SIZE || size > PCIDEV_CFG_SIZE - reg)
		return 0;
	if (reg >= PCIDEV_MSI_CAP)
		return caps_read(vp, reg, size);
	if (reg + size <= PCIDEV_MSI_CAP)
		return pcidev_cfg_read(&vp->pci, reg, size);
	low = PCIDEV_MSI_CAP - reg;
	return pcidev_cfg_read(&vp->pci, reg, low) | caps_read(vp, PCIDEV_MSI_CAP, size - low) << (8 * low);
}

void virtio_pci_cfg_write(struct virtio_pci *vp, unsigned reg, unsigned size, uint32_t value)
{
	unsigned low;

	if (size < 1 || size > 4 || reg >= PCIDEV_CFG_SIZE || size > PCIDEV_CFG_SIZE - reg)
		return;
	if (reg >= PCIDEV_MSI_CAP) {
		caps_write(vp, reg, size, value);
		return;
	}
	if (reg + size <= PCIDEV_MSI_CAP) {
		pcidev_cfg_write(&vp->pci, reg, size, value);
		return;
	}
	low = PCIDEV_MSI_CAP - reg;
	pcidev_cfg_write(&vp->pci, reg, low, value);
	caps_write(vp, PCIDEV_MSI_CAP, size - low, value >> (8 * low));
}

int virtio_pci_claim_result(struct virtio_pci *vp, unsigned bar, int error, struct pcidev_claim_op *ret_op)
{
	return pcidev_claim_result(&vp->pci, bar, error, ret_op);
}

/* ---- the device's side ---- */

uint64_t virtio_pci_features(const struct virtio_pci *vp)
{
	return vp->status & VIRTIO_STATUS_FEATURES_OK ? vp->driver_features : 0;
}

struct ioreq_vq *virtio_pci_queue(struct virtio_pci *vp, unsigned queue)
{
	return queue < vp->cfg.num_queues ? vp->queues[queue].vq : NULL;
}

int virtio_pci_queue_done(struct virtio_pci *vp, unsigned queue)
{
	struct ioreq_vq *vq = virtio_pci_queue(vp, queue);
	int r;

	if (!vq)
		return -ENOENT;
	r = ioreq_vq_notify_needed(vq);
	if (r < 0)
		return virtio_pci_needs_reset(vp, r);
	if (r > 0)
		interrupt(vp, VIRTIO_ISR_QUEUE, vp->queues[queue].vector);
	return r;
}

int virtio_pci_set_config(struct virtio_pci *vp, unsigned offset, const void *buf, unsigned len)
{
	if (offset > vp->cfg.config_size || len > vp->cfg.config_size - offset)
		return -EINVAL;
	memcpy(vp->config + offset, buf, len);
	config_changed(vp);
	return 0;
}

/* ---- life cycle ---- */

static void pci_intx(void *opaque, bool level)
{
	struct virtio_pci *vp = opaque;

	if (vp->ops->intx)
		vp->ops->intx(vp->opaque, level);
}

static int pci_claim(void *opaque, unsigned bar, bool io, uint64_t start, uint64_t size, bool release)
{
	struct virtio_pci *vp = opaque;

	return vp->ops->claim(vp->opaque, bar, io, start, size, release);
}

static const struct pcidev_ops pci_ops = {
	.intx = pci_intx,
	.claim = pci_claim,
};

static bool power_of_two(uint64_t v)
{
	return v && !(v & (v - 1));
}

static void msix_reset(struct virtio_pci *vp)
{
	for (unsigned v = 0; v < n_vectors(vp); v++)
		vp->msix_table[v][VIRTIO_PCI_MSIX_ENTRY_CTRL / 4] = VIRTIO_PCI_MSIX_ENTRY_MASKED;
}

void virtio_pci_reset(struct virtio_pci *vp)
{
	device_reset(vp);
	memset(vp->msix_table, 0, sizeof(vp->msix_table));
	msix_reset(vp);
	build_caps(vp);
	pcidev_reset(&vp->pci);
}

int virtio_pci_init(struct virtio_pci *vp, const struct virtio_pci_config *cfg, const struct ioreq_mem *mem,
		    const struct virtio_pci_ops *ops, void *opaque)
{
	struct pcidev_config pc = { 0 };
	int r;

	if (!cfg->device_type || cfg->device_type > 0xffff - VIRTIO_PCI_DEVICE_BASE || !cfg->num_queues ||
	    cfg->num_queues > VIRTIO_PCI_MAX_QUEUES || !power_of_two(cfg->queue_max_size) ||
	    cfg->queue_max_size > IOREQ_VQ_MAX_SIZE || cfg->config_size > VIRTIO_PCI_MAX_CONFIG ||
	    cfg->class_code > 0xffffff || !ops->claim)
		return -EINVAL;
	memset(vp, 0, sizeof(*vp));
	vp->cfg = *cfg;
	vp->cfg.features |= BIT(VIRTIO_F_VERSION_1);
	vp->ops = ops;
	vp->opaque = opaque;
	vp->mem = mem;

	pc.vendor = VIRTIO_PCI_VENDOR;
	pc.device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + cfg->device_type);
	pc.revision = 1; /* non-transitional: Linux's virtio_pci refuses revision 0 at 1040+ */
	pc.subsystem_vendor = cfg->subsystem_vendor ? cfg->subsystem_vendor : VIRTIO_PCI_VENDOR;
	pc.subsystem = cfg->subsystem ? cfg->subsystem : pc.device;
	pc.class_code = cfg->class_code;
	if (!pc.class_code)
		pc.class_code = cfg->device_type < sizeof(type_class) / sizeof(type_class[0]) && type_class[cfg->device_type]
					? type_class[cfg->device_type]
					: 0xff0000;
	pc.intx_pin = 1;
	pc.cap_ptr = PCIDEV_MSI_CAP;
	r = pcidev_config_bar(&pc, VIRTIO_PCI_BAR, PCIDEV_BAR_MEM64, VIRTIO_PCI_BAR_SIZE);
	if (r == 0)
		r = pcidev_init(&vp->pci, &pc, &pci_ops, vp);
	if (r < 0)
		return r;
	device_state_init(vp);
	msix_reset(vp);
	build_caps(vp);
	return 0;
}

void virtio_pci_fini(struct virtio_pci *vp)
{
	for (unsigned i = 0; i < VIRTIO_PCI_MAX_QUEUES; i++)
		vp->queues[i].vq = ioreq_vq_free(vp->queues[i].vq);
}
