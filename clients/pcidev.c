/* A conventional PCI function model (see pcidev.h). */
#include "pcidev.h"

#include <errno.h>
#include <string.h>

#define BAR_MEM_MIN 16
#define BAR_MEM32_MAX (UINT64_C(1) << 31)
#define BAR_MEM64_MAX (UINT64_C(1) << 63)
#define BAR_IO_MIN 4
#define BAR_IO_MAX 256
#define MSI_MME 0x0070 /* multiple message enable: writable, though one vector is all there is */

static const struct pcidev_config profiles[] = {
	/* 1234 is the vendor id emulators use for their own test devices;
	 * class ff: a device that fits no defined class. */
	[PCIDEV_PROFILE_DEVICE] = {
		.vendor = 0x1234, .device = 0x0001,
		.subsystem_vendor = 0x1234, .subsystem = 0x0001,
		.class_code = 0xff0000, .intx_pin = 1,
	},
	/* The i440FX host bridge that PC firmware and Linux expect at 00:00.0. */
	[PCIDEV_PROFILE_HOST_BRIDGE] = {
		.vendor = 0x8086, .device = 0x1237, .revision = 0x02,
		.class_code = 0x060000,
	},
};

/* The read-only low bits of a BAR: I/O space indicator, memory type. */
static const uint32_t bar_low_bits[] = {
	[PCIDEV_BAR_MEM32] = 0x0,
	[PCIDEV_BAR_MEM64] = 0x4,
	[PCIDEV_BAR_IO] = 0x1,
};

void pcidev_config_init(struct pcidev_config *c, enum pcidev_profile profile)
{
	*c = profiles[profile];
}

static bool power_of_two(uint64_t v)
{
	return v && !(v & (v - 1));
}

static bool bar_size_ok(enum pcidev_bar_kind kind, uint64_t size)
{
	if (!power_of_two(size))
		return false;
	switch (kind) {
	case PCIDEV_BAR_MEM32:
		return size >= BAR_MEM_MIN && size <= BAR_MEM32_MAX;
	case PCIDEV_BAR_MEM64:
		return size >= BAR_MEM_MIN && size <= BAR_MEM64_MAX;
	case PCIDEV_BAR_IO:
		return size >= BAR_IO_MIN && size <= BAR_IO_MAX;
	case PCIDEV_BAR_NONE:
		break;
	}
	return false;
}

/* Is slot @n free for a BAR of @kind in @c (ignoring what @c has at @n)? */
static bool bar_slot_free(const struct pcidev_config *c, unsigned n, enum pcidev_bar_kind kind)
{
	if (n > 0 && c->bar[n - 1].kind == PCIDEV_BAR_MEM64)
		return false;
	if (kind == PCIDEV_BAR_MEM64)
		return n + 1 < PCIDEV_NBARS && c->bar[n + 1].kind == PCIDEV_BAR_NONE;
	return true;
}

int pcidev_config_bar(struct pcidev_config *c, unsigned n, enum pcidev_bar_kind kind, uint64_t size)
{
	if (n >= PCIDEV_NBARS || !bar_size_ok(kind, size))
		return -EINVAL;
	if (kind == PCIDEV_BAR_MEM64 && n + 1 >= PCIDEV_NBARS)
		return -EINVAL;
	if (c->bar[n].kind != PCIDEV_BAR_NONE || !bar_slot_free(c, n, kind))
		return -EEXIST;
	c->bar[n] = (struct pcidev_bar_config){ .kind = kind, .size = size };
	return 0;
}

static int config_check(const struct pcidev_config *c)
{
	if (c->intx_pin > 4 || c->class_code > 0xffffff)
		return -EINVAL;
	if (c->cap_ptr && (c->msi || c->cap_ptr < PCIDEV_MSI_CAP || c->cap_ptr % 4))
		return -EINVAL;
	for (unsigned n = 0; n < PCIDEV_NBARS; n++) {
		enum pcidev_bar_kind kind = c->bar[n].kind;

		if (kind != PCIDEV_BAR_NONE && (!bar_size_ok(kind, c->bar[n].size) || !bar_slot_free(c, n, kind)))
			return -EINVAL;
	}
	return 0;
}

/* ---- configuration space ---- */

static uint32_t get(const uint8_t *p, unsigned off, unsigned size)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (uint32_t)p[off + i] << (8 * i);
	return v;
}

static void put(uint8_t *p, unsigned off, unsigned size, uint32_t v)
{
	for (unsigned i = 0; i < size; i++)
		p[off + i] = (uint8_t)(v >> (8 * i));
}

static uint16_t command(const struct pcidev *d)
{
	return (uint16_t)get(d->regs, PCIDEV_COMMAND, 2);
}

/* The power-on header, and which of its bits the guest may write. */
static void build_config(struct pcidev *d)
{
	const struct pcidev_config *c = &d->cfg;
	uint8_t *r = d->regs, *w = d->wmask;

	memset(r, 0, PCIDEV_CFG_SIZE);
	memset(w, 0, PCIDEV_CFG_SIZE);
	put(r, PCIDEV_VENDOR, 2, c->vendor);
	put(r, PCIDEV_DEVICE, 2, c->device);
	put(w, PCIDEV_COMMAND, 2,
	    PCIDEV_CMD_IO | PCIDEV_CMD_MEM | PCIDEV_CMD_MASTER | (c->intx_pin ? PCIDEV_CMD_INTX_DISABLE : 0));
	r[PCIDEV_REVISION] = c->revision;
	put(r, PCIDEV_CLASS, 3, c->class_code);
	w[PCIDEV_CACHE_LINE] = 0xff;
	for (unsigned n = 0; n < PCIDEV_NBARS; n++) {
		const struct pcidev_bar_config *b = &c->bar[n];
		unsigned off = PCIDEV_BAR0 + 4 * n;
		/* Sizes are powers of two of at least 4 (I/O) or 16 (memory)
		 * bytes, so the address bits never reach the type bits. */
		uint64_t mask = ~(b->size - 1);

		if (b->kind == PCIDEV_BAR_NONE)
			continue;
		put(r, off, 4, bar_low_bits[b->kind]);
		put(w, off, 4, (uint32_t)mask);
		if (b->kind == PCIDEV_BAR_MEM64)
			put(w, off + 4, 4, (uint32_t)(mask >> 32));
	}
	put(r, PCIDEV_SUBSYSTEM_VENDOR, 2, c->subsystem_vendor);
	put(r, PCIDEV_SUBSYSTEM, 2, c->subsystem);
	w[PCIDEV_INT_LINE] = 0xff;
	r[PCIDEV_INT_PIN] = c->intx_pin;
	if (c->msi) {
		put(r, PCIDEV_STATUS, 2, PCIDEV_STATUS_CAP_LIST);
		r[PCIDEV_CAP_PTR] = PCIDEV_MSI_CAP;
		r[PCIDEV_MSI_CAP] = PCIDEV_CAP_ID_MSI; /* and no next capability */
		put(r, PCIDEV_MSI_CONTROL, 2, PCIDEV_MSI_64BIT);
		put(w, PCIDEV_MSI_CONTROL, 2, PCIDEV_MSI_ENABLE | MSI_MME);
		put(w, PCIDEV_MSI_ADDR_LO, 4, 0xfffffffc); /* dword aligned */
		put(w, PCIDEV_MSI_ADDR_HI, 4, 0xffffffff);
		put(w, PCIDEV_MSI_DATA, 2, 0xffff);
	}
	if (c->cap_ptr) {
		put(r, PCIDEV_STATUS, 2, PCIDEV_STATUS_CAP_LIST);
		r[PCIDEV_CAP_PTR] = c->cap_ptr;
	}
}

/* ---- interrupts ---- */

static bool msi_enabled(const struct pcidev *d)
{
	return d->cfg.msi && (get(d->regs, PCIDEV_MSI_CONTROL, 2) & PCIDEV_MSI_ENABLE);
}

/* Status bit 3 shows a pending INTx whatever the command register says;
 * the pin is asserted only while INTx is neither disabled nor replaced by
 * MSI. */
static void update_intx(struct pcidev *d)
{
	uint32_t status = get(d->regs, PCIDEV_STATUS, 2) & ~(uint32_t)PCIDEV_STATUS_INTX;
	bool level = d->intx_pending && !(command(d) & PCIDEV_CMD_INTX_DISABLE) && !msi_enabled(d);

	put(d->regs, PCIDEV_STATUS, 2, status | (d->intx_pending ? PCIDEV_STATUS_INTX : 0));
	if (level == d->intx_level)
		return;
	d->intx_level = level;
	if (d->ops->intx)
		d->ops->intx(d->opaque, level);
}

static void ring_doorbell(struct pcidev *d)
{
	d->doorbells++;
	if (msi_enabled(d)) {
		uint64_t addr = get(d->regs, PCIDEV_MSI_ADDR_LO, 4) |
				(uint64_t)get(d->regs, PCIDEV_MSI_ADDR_HI, 4) << 32;

		if (d->ops->msi)
			d->ops->msi(d->opaque, addr, get(d->regs, PCIDEV_MSI_DATA, 2));
		return;
	}
	if (d->cfg.intx_pin && !(command(d) & PCIDEV_CMD_INTX_DISABLE))
		d->intx_pending = true;
	update_intx(d);
}

void pcidev_set_intx(struct pcidev *d, bool pending)
{
	d->intx_pending = pending && d->cfg.intx_pin;
	update_intx(d);
}

/* ---- decoding and claims ---- */

/* The address BAR @n decodes, if it decodes at all. A dword whose writable
 * bits are all ones is a sizing probe in progress, not an address (the low
 * dword of a BAR above 4 GiB has no writable bits, and says nothing). */
static bool bar_decoded(const struct pcidev *d, unsigned n, uint64_t *ret_start)
{
	const struct pcidev_bar_config *b = &d->cfg.bar[n];
	unsigned off = PCIDEV_BAR0 + 4 * n;
	uint16_t enable = b->kind == PCIDEV_BAR_IO ? PCIDEV_CMD_IO : PCIDEV_CMD_MEM;
	uint32_t lo_mask = get(d->wmask, off, 4), lo = get(d->regs, off, 4) & lo_mask;
	uint64_t start = lo;

	if (!(command(d) & enable) || (lo_mask && lo == lo_mask))
		return false;
	if (b->kind == PCIDEV_BAR_MEM64) {
		uint32_t hi_mask = get(d->wmask, off + 4, 4), hi = get(d->regs, off + 4, 4) & hi_mask;

		if (hi == hi_mask)
			return false;
		start |= (uint64_t)hi << 32;
	}
	*ret_start = start;
	return start != 0;
}

/* Sends one claim or release and remembers it until its answer. */
static int send_claim(struct pcidev *d, unsigned n, uint64_t start, bool release)
{
	const struct pcidev_bar_config *b = &d->cfg.bar[n];
	struct pcidev_claim_op op = {
		.bar = n,
		.io = b->kind == PCIDEV_BAR_IO,
		.release = release,
		.start = start,
		.size = b->size,
	};
	int r = d->ops->claim(d->opaque, n, op.io, start, b->size, release);

	if (r < 0)
		return r;
	/* The broker answers each claim before the guest's next access, so
	 * this fills only if it stopped answering: then the oldest entries
	 * will never be answered anyway. */
	if (d->n_unanswered == PCIDEV_MAX_UNANSWERED)
		memmove(&d->unanswered[0], &d->unanswered[1], --d->n_unanswered * sizeof(d->unanswered[0]));
	d->unanswered[d->n_unanswered++] = op;
	return 0;
}

/* Releases what a BAR no longer decodes and claims what it decodes now. A
 * refused address is not asked for again until it changes. */
static void update_claims(struct pcidev *d)
{
	for (unsigned n = 0; n < PCIDEV_NBARS; n++) {
		uint64_t start = 0;
		bool want;

		if (d->cfg.bar[n].kind == PCIDEV_BAR_NONE)
			continue;
		want = bar_decoded(d, n, &start);
		if (d->claims[n].state != PCIDEV_UNCLAIMED && (!want || d->claims[n].start != start)) {
			if (d->claims[n].state == PCIDEV_CLAIMED)
				send_claim(d, n, d->claims[n].start, true);
			d->claims[n].state = PCIDEV_UNCLAIMED;
		}
		if (want && d->claims[n].state == PCIDEV_UNCLAIMED) {
			d->claims[n].start = start;
			d->claims[n].state = send_claim(d, n, start, false) < 0 ? PCIDEV_REFUSED : PCIDEV_CLAIMED;
		}
	}
}

int pcidev_claim_result(struct pcidev *d, unsigned bar, int error, struct pcidev_claim_op *ret_op)
{
	for (unsigned i = 0; i < d->n_unanswered; i++) {
		struct pcidev_claim_op op = d->unanswered[i];

		if (op.bar != bar)
			continue;
		memmove(&d->unanswered[i], &d->unanswered[i + 1], (--d->n_unanswered - i) * sizeof(op));
		if (error && !op.release && d->claims[bar].state == PCIDEV_CLAIMED && d->claims[bar].start == op.start)
			d->claims[bar].state = PCIDEV_REFUSED;
		*ret_op = op;
		return 0;
	}
	return -ENOENT;
}

/* ---- configuration accesses ---- */

static bool overlaps(unsigned reg, unsigned size, unsigned start, unsigned len)
{
	return reg < start + len && start < reg + size;
}

uint32_t pcidev_cfg_read(struct pcidev *d, unsigned reg, unsigned size)
{
	if (reg >= PCIDEV_CFG_SIZE || size > 4)
		return 0;
	if (size > PCIDEV_CFG_SIZE - reg)
		size = PCIDEV_CFG_SIZE - reg;
	return get(d->regs, reg, size);
}

void pcidev_cfg_write(struct pcidev *d, unsigned reg, unsigned size, uint32_t value)
{
	if (reg >= PCIDEV_CFG_SIZE || size > 4)
		return;
	if (size > PCIDEV_CFG_SIZE - reg)
		size = PCIDEV_CFG_SIZE - reg;
	for (unsigned i = 0; i < size; i++) {
		uint8_t w = d->wmask[reg + i], v = (uint8_t)(value >> (8 * i));

		d->regs[reg + i] = (uint8_t)((d->regs[reg + i] & ~w) | (v & w));
	}
	if (overlaps(reg, size, PCIDEV_COMMAND, 2) || overlaps(reg, size, PCIDEV_BAR0, 4 * PCIDEV_NBARS))
		update_claims(d);
	if (overlaps(reg, size, PCIDEV_COMMAND, 2) || overlaps(reg, size, PCIDEV_MSI_CONTROL, 2))
		update_intx(d);
}

/* ---- the BAR0 register block ---- */

static uint32_t block_read(const struct pcidev *d, uint64_t reg)
{
	if (reg < PCIDEV_REG_DOORBELL)
		return d->scratch[reg / 4];
	if (reg == PCIDEV_REG_IRQ_STATUS)
		return d->intx_pending;
	if (reg == PCIDEV_REG_DOORBELL_COUNT)
		return d->doorbells;
	return 0;
}

/* A write of the bytes in @bytes (a bit mask) of register @reg. */
static void block_write(struct pcidev *d, uint64_t reg, uint32_t value, uint32_t bytes)
{
	if (reg < PCIDEV_REG_DOORBELL) {
		d->scratch[reg / 4] = (d->scratch[reg / 4] & ~bytes) | (value & bytes);
	} else if (reg == PCIDEV_REG_DOORBELL) {
		ring_doorbell(d);
	} else if (reg == PCIDEV_REG_IRQ_STATUS && (value & bytes & 1)) {
		d->intx_pending = false;
		update_intx(d);
	}
}

/* Accesses are split at register boundaries; each register touched sees
 * one read or one write of the bytes that fall into it. */
static void block_access(struct pcidev *d, bool write, uint64_t offset, unsigned size, uint64_t *value)
{
	uint64_t end = offset + size, v = 0;

	for (uint64_t reg = offset & ~UINT64_C(3); reg < end; reg += 4) {
		uint32_t part = 0, bytes = 0;

		for (uint64_t at = reg > offset ? reg : offset; at < reg + 4 && at < end; at++) {
			unsigned shift_reg = 8 * (unsigned)(at - reg), shift_val = 8 * (unsigned)(at - offset);

			if (write) {
				part |= (uint32_t)((*value >> shift_val) & 0xff) << shift_reg;
				bytes |= UINT32_C(0xff) << shift_reg;
			} else {
				v |= (uint64_t)((block_read(d, reg) >> shift_reg) & 0xff) << shift_val;
			}
		}
		if (write)
			block_write(d, reg, part, bytes);
	}
	if (!write)
		*value = v;
}

int pcidev_bar_access(struct pcidev *d, unsigned bar, bool write, uint64_t offset, unsigned size, uint64_t *value)
{
	if (bar >= PCIDEV_NBARS || d->cfg.bar[bar].kind == PCIDEV_BAR_NONE || size > 8)
		return -ENOENT;
	if (bar == 0)
		block_access(d, write, offset, size, value);
	else if (!write)
		*value = 0;
	return 0;
}

/* ---- life cycle ---- */

void pcidev_reset(struct pcidev *d)
{
	for (unsigned n = 0; n < PCIDEV_NBARS; n++) {
		if (d->claims[n].state == PCIDEV_CLAIMED)
			send_claim(d, n, d->claims[n].start, true);
		d->claims[n].state = PCIDEV_UNCLAIMED;
	}
	build_config(d);
	memset(d->scratch, 0, sizeof(d->scratch));
	d->doorbells = 0;
	d->intx_pending = false;
	update_intx(d);
}

int pcidev_init(struct pcidev *d, const struct pcidev_config *cfg, const struct pcidev_ops *ops, void *opaque)
{
	int r = config_check(cfg);

	if (r < 0)
		return r;
	memset(d, 0, sizeof(*d));
	d->cfg = *cfg;
	d->ops = ops;
	d->opaque = opaque;
	build_config(d);
	return 0;
}
