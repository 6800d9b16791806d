/* The PCI function model against the PCI Local Bus spec: the header, BAR
 * sizing and decoding, the claims that follow, INTx and MSI. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pcidev.h"

#define MAX_CLAIMS 32

struct probe {
	bool intx;
	unsigned intx_changes;
	unsigned n_msi;
	uint64_t msi_addr;
	uint32_t msi_data;
	struct pcidev_claim_op claims[MAX_CLAIMS];
	unsigned n_claims;
	int claim_error; /* what the claim callback returns */
};

static void probe_intx(void *opaque, bool level)
{
	struct probe *p = opaque;

	p->intx = level;
	p->intx_changes++;
}

static void probe_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct probe *p = opaque;

	p->n_msi++;
	p->msi_addr = addr;
	p->msi_data = data;
}

static int probe_claim(void *opaque, unsigned bar, bool io, uint64_t start, uint64_t size, bool release)
{
	struct probe *p = opaque;

	assert_true(p->n_claims < MAX_CLAIMS);
	p->claims[p->n_claims++] = (struct pcidev_claim_op){
		.bar = bar, .io = io, .release = release, .start = start, .size = size
	};
	return p->claim_error;
}

static const struct pcidev_ops probe_ops = { .intx = probe_intx, .msi = probe_msi, .claim = probe_claim };

struct fixture {
	struct pcidev d;
	struct probe p;
};

/* BAR0 mem32 4 KiB, BAR1 io 32 bytes, BAR2/3 mem64 1 MiB, BAR4/5 mem64 8 GiB. */
static void full_config(struct pcidev_config *c, bool msi)
{
	pcidev_config_init(c, PCIDEV_PROFILE_DEVICE);
	c->vendor = 0xabcd;
	c->device = 0x1234;
	c->class_code = 0x020000;
	c->revision = 0x07;
	c->subsystem_vendor = 0x5678;
	c->subsystem = 0x9abc;
	c->msi = msi;
	assert_int_equal(pcidev_config_bar(c, 0, PCIDEV_BAR_MEM32, 4096), 0);
	assert_int_equal(pcidev_config_bar(c, 1, PCIDEV_BAR_IO, 32), 0);
	assert_int_equal(pcidev_config_bar(c, 2, PCIDEV_BAR_MEM64, 1 << 20), 0);
	assert_int_equal(pcidev_config_bar(c, 4, PCIDEV_BAR_MEM64, UINT64_C(8) << 30), 0);
}

static struct fixture *start(void **state, const struct pcidev_config *c)
{
	static struct fixture f;

	memset(&f, 0, sizeof(f));
	assert_int_equal(pcidev_init(&f.d, c, &probe_ops, &f.p), 0);
	*state = &f;
	return &f;
}

static struct fixture *start_full(void **state, bool msi)
{
	struct pcidev_config c;

	full_config(&c, msi);
	return start(state, &c);
}

static uint32_t cfg_rd(struct fixture *f, unsigned reg, unsigned size)
{
	return pcidev_cfg_read(&f->d, reg, size);
}

static void cfg_wr(struct fixture *f, unsigned reg, unsigned size, uint32_t v)
{
	pcidev_cfg_write(&f->d, reg, size, v);
}

static uint64_t bar_rd(struct fixture *f, unsigned bar, uint64_t off, unsigned size)
{
	uint64_t v = 0xdeadbeef;

	assert_int_equal(pcidev_bar_access(&f->d, bar, false, off, size, &v), 0);
	return v;
}

static void bar_wr(struct fixture *f, unsigned bar, uint64_t off, unsigned size, uint64_t v)
{
	assert_int_equal(pcidev_bar_access(&f->d, bar, true, off, size, &v), 0);
}

static void assert_claim(const struct fixture *f, unsigned i, unsigned bar, bool release, uint64_t start,
			 uint64_t size)
{
	assert_true(i < f->p.n_claims);
	assert_int_equal(f->p.claims[i].bar, bar);
	assert_int_equal(f->p.claims[i].release, release);
	assert_int_equal(f->p.claims[i].start, start);
	assert_int_equal(f->p.claims[i].size, size);
}

/* ---- the header ---- */

static void test_identity(void **state)
{
	struct fixture *f = start_full(state, false);

	assert_int_equal(cfg_rd(f, PCIDEV_VENDOR, 4), 0x1234abcd);
	assert_int_equal(cfg_rd(f, PCIDEV_VENDOR + 1, 1), 0xab);
	assert_int_equal(cfg_rd(f, PCIDEV_DEVICE, 2), 0x1234);
	assert_int_equal(cfg_rd(f, PCIDEV_REVISION, 4), 0x02000007);
	assert_int_equal(cfg_rd(f, PCIDEV_CLASS, 2), 0x0000);
	assert_int_equal(cfg_rd(f, PCIDEV_CLASS + 2, 1), 0x02);
	assert_int_equal(cfg_rd(f, PCIDEV_HEADER_TYPE, 1), 0x00);
	assert_int_equal(cfg_rd(f, PCIDEV_SUBSYSTEM_VENDOR, 4), 0x9abc5678);
	assert_int_equal(cfg_rd(f, PCIDEV_COMMAND, 4), 0); /* no capabilities without MSI */
	assert_int_equal(cfg_rd(f, PCIDEV_CAP_PTR, 1), 0);
	assert_int_equal(cfg_rd(f, PCIDEV_INT_LINE, 4), 0x0100); /* INTA */
	/* What is not defined reads 0, up to the end and beyond. */
	assert_int_equal(cfg_rd(f, 0x28, 4), 0);
	assert_int_equal(cfg_rd(f, 0x30, 4), 0);
	assert_int_equal(cfg_rd(f, 0x40, 4), 0);
	assert_int_equal(cfg_rd(f, 0xfc, 4), 0);
	assert_int_equal(cfg_rd(f, 0x100, 4), 0);
	assert_int_equal(cfg_rd(f, 0xffc, 4), 0);
}

static void test_host_bridge(void **state)
{
	struct pcidev_config c;
	struct fixture *f;

	pcidev_config_init(&c, PCIDEV_PROFILE_HOST_BRIDGE);
	f = start(state, &c);
	assert_int_equal(cfg_rd(f, PCIDEV_VENDOR, 4), 0x12378086);
	assert_int_equal(cfg_rd(f, PCIDEV_REVISION, 4), 0x06000002);
	assert_int_equal(cfg_rd(f, PCIDEV_HEADER_TYPE, 1), 0);
	assert_int_equal(cfg_rd(f, PCIDEV_INT_PIN, 1), 0);
	for (unsigned n = 0; n < PCIDEV_NBARS; n++) {
		cfg_wr(f, PCIDEV_BAR0 + 4 * n, 4, 0xffffffff);
		assert_int_equal(cfg_rd(f, PCIDEV_BAR0 + 4 * n, 4), 0);
	}
	/* No pin: INTx disable is hardwired to 0. */
	cfg_wr(f, PCIDEV_COMMAND, 2, 0xffff);
	assert_int_equal(cfg_rd(f, PCIDEV_COMMAND, 2), PCIDEV_CMD_IO | PCIDEV_CMD_MEM | PCIDEV_CMD_MASTER);
	assert_int_equal(f->p.n_claims, 0);
	assert_int_equal(pcidev_bar_access(&f->d, 0, false, 0, 4, &(uint64_t){ 0 }), -ENOENT);
}

static void test_read_only_bits(void **state)
{
	struct fixture *f = start_full(state, false);

	for (unsigned reg = 0; reg < 0x40; reg += 4)
		if (reg < PCIDEV_BAR0 || reg >= PCIDEV_BAR0 + 4 * PCIDEV_NBARS)
			cfg_wr(f, reg, 4, 0xffffffff);
	assert_int_equal(cfg_rd(f, PCIDEV_VENDOR, 4), 0x1234abcd);
	/* Command: I/O, memory, bus master, INTx disable; status: nothing. */
	assert_int_equal(cfg_rd(f, PCIDEV_COMMAND, 4), 0x0407);
	assert_int_equal(cfg_rd(f, PCIDEV_REVISION, 4), 0x02000007);
	/* Cache line size is read/write; latency, header type, BIST are not. */
	assert_int_equal(cfg_rd(f, PCIDEV_CACHE_LINE, 4), 0x000000ff);
	assert_int_equal(cfg_rd(f, PCIDEV_SUBSYSTEM_VENDOR, 4), 0x9abc5678);
	assert_int_equal(cfg_rd(f, 0x30, 4), 0); /* no expansion ROM */
	assert_int_equal(cfg_rd(f, PCIDEV_CAP_PTR, 4), 0);
	/* Interrupt line read/write, pin read-only. */
	assert_int_equal(cfg_rd(f, PCIDEV_INT_LINE, 4), 0x01ff);
	cfg_wr(f, PCIDEV_INT_LINE, 1, 0x0b);
	assert_int_equal(cfg_rd(f, PCIDEV_INT_LINE, 2), 0x010b);
	/* Byte and word writes at any offset in the dword. */
	cfg_wr(f, PCIDEV_COMMAND + 1, 1, 0x00);
	assert_int_equal(cfg_rd(f, PCIDEV_COMMAND, 2), 0x0007);
	cfg_wr(f, PCIDEV_COMMAND, 1, 0x02);
	assert_int_equal(cfg_rd(f, PCIDEV_COMMAND, 2), 0x0002);
}

/* ---- BARs ---- */

/* Write all ones, read the size mask with the type bits, write back. */
static void test_bar_sizing(void **state)
{
	static const struct {
		unsigned reg;
		uint32_t sized;
	} want[] = {
		{ 0x10, 0xfffff000 }, /* mem32 4K */
		{ 0x14, 0xffffffe1 }, /* io 32 */
		{ 0x18, 0xfff00004 }, /* mem64 1M, low... */
		{ 0x1c, 0xffffffff }, /* ...and high */
		{ 0x20, 0x00000004 }, /* mem64 8G: the size reaches into the high half */
		{ 0x24, 0xfffffffe },
	};
	struct fixture *f = start_full(state, false);

	assert_int_equal(cfg_rd(f, 0x10, 4), 0x0);
	assert_int_equal(cfg_rd(f, 0x14, 4), 0x1);
	assert_int_equal(cfg_rd(f, 0x18, 4), 0x4);
	assert_int_equal(cfg_rd(f, 0x1c, 4), 0x0);
	/* Decoding enabled all along, as for a device with mmio_always_on:
	 * the probe values must not be claimed. */
	cfg_wr(f, PCIDEV_COMMAND, 2, PCIDEV_CMD_IO | PCIDEV_CMD_MEM);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		uint32_t old = cfg_rd(f, want[i].reg, 4);

		cfg_wr(f, want[i].reg, 4, 0xffffffff);
		assert_int_equal(cfg_rd(f, want[i].reg, 4), want[i].sized);
		cfg_wr(f, want[i].reg, 4, old);
		assert_int_equal(cfg_rd(f, want[i].reg, 4), old);
	}
	assert_int_equal(f->p.n_claims, 0);
	/* The type bits and those below the size ignore writes. */
	cfg_wr(f, PCIDEV_COMMAND, 2, 0);
	cfg_wr(f, 0x10, 4, 0xfe00000f);
	assert_int_equal(cfg_rd(f, 0x10, 4), 0xfe000000);
	cfg_wr(f, 0x14, 4, 0x0000c0ff);
	assert_int_equal(cfg_rd(f, 0x14, 4), 0x0000c0e1);
}

/* Nothing is claimed until the command register enables the BAR's space,
 * and everything is released when it is disabled. */
static void test_command_gating(void **state)
{
	struct fixture *f = start_full(state, false);

	cfg_wr(f, 0x10, 4, 0xfe000000);
	cfg_wr(f, 0x14, 4, 0xc000);
	cfg_wr(f, 0x18, 4, 0xfd000000);
	assert_int_equal(f->p.n_claims, 0);

	cfg_wr(f, PCIDEV_COMMAND, 2, PCIDEV_CMD_IO);
	assert_int_equal(f->p.n_claims, 1);
	assert_claim(f, 0, 1, false, 0xc000, 32);
	assert_true(f->p.claims[0].io);

	cfg_wr(f, PCIDEV_COMMAND, 2, PCIDEV_CMD_IO | PCIDEV_CMD_MEM);
	assert_int_equal(f->p.n_claims, 3);
	assert_claim(f, 1, 0, false, 0xfe000000, 4096);
	assert_false(f->p.claims[1].io);
	assert_claim(f, 2, 2, false, 0xfd000000, 1 << 20);
	/* BAR4/5 is still 0: not decoded. Rewriting the same command changes nothing. */
	cfg_wr(f, PCIDEV_COMMAND, 2, PCIDEV_CMD_IO | PCIDEV_CMD_MEM);
	assert_int_equal(f->p.n_claims, 3);

	cfg_wr(f, PCIDEV_COMMAND, 2, PCIDEV_CMD_IO);
	assert_int_equal(f->p.n_claims, 5);
	assert_claim(f, 3, 0, true, 0xfe000000, 4096);
	assert_claim(f, 4, 2, true, 0xfd000000, 1 << 20);
	cfg_wr(f, PCIDEV_COMMAND, 2, 0);
	assert_int_equal(f->p.n_claims, 6);
	assert_claim(f, 5, 1, true, 0xc000, 32);
}

/* A BAR moved while decoding: the old range goes, then the new one comes. */
static void test_bar_move(void **state)
{
	struct fixture *f = start_full(state, false);
	struct pcidev_claim_op op;

	cfg_wr(f, 0x10, 4, 0xfe000000);
	cfg_wr(f, PCIDEV_COMMAND, 2, PCIDEV_CMD_MEM);
	cfg_wr(f, 0x10, 4, 0xfe100000);
	assert_int_equal(f->p.n_claims, 3);
	assert_claim(f, 0, 0, false, 0xfe000000, 4096);
	assert_claim(f, 1, 0, true, 0xfe000000, 4096);
	assert_claim(f, 2, 0, false, 0xfe100000, 4096);
	/* The answers, in order. */
	assert_int_equal(pcidev_claim_result(&f->d, 0, 0, &op), 0);
	assert_false(op.release);
	assert_int_equal(op.start, 0xfe000000);
	assert_int_equal(pcidev_claim_result(&f->d, 0, 0, &op), 0);
	assert_true(op.release);
	assert_int_equal(pcidev_claim_result(&f->d, 0, 0, &op), 0);
	assert_int_equal(op.start, 0xfe100000);
	assert_int_equal(pcidev_claim_result(&f->d, 0, 0, &op), -ENOENT);
	/* The same value again is no move; 0 is no address. */
	cfg_wr(f, 0x10, 4, 0xfe100000);
	assert_int_equal(f->p.n_claims, 3);
	cfg_wr(f, 0x10, 4, 0);
	assert_int_equal(f->p.n_claims, 4);
	assert_claim(f, 3, 0, true, 0xfe100000, 4096);
}

/* A 64-bit BAR claims the whole address; a probe of either half does not. */
static void test_mem64_pair(void **state)
{
	struct fixture *f = start_full(state, false);

	cfg_wr(f, 0x20, 4, 0x00000000);
	cfg_wr(f, 0x24, 4, 0x00000004);
	cfg_wr(f, PCIDEV_COMMAND, 2, PCIDEV_CMD_MEM);
	assert_int_equal(f->p.n_claims, 1);
	assert_claim(f, 0, 4, false, UINT64_C(0x400000000), UINT64_C(8) << 30);
	cfg_wr(f, 0x24, 4, 0xffffffff);
	assert_int_equal(f->p.n_claims, 2);
	assert_claim(f, 1, 4, true, UINT64_C(0x400000000), UINT64_C(8) << 30);
	cfg_wr(f, 0x24, 4, 0x00000006);
	assert_int_equal(f->p.n_claims, 3);
	assert_claim(f, 2, 4, false, UINT64_C(0x600000000), UINT64_C(8) << 30);

	cfg_wr(f, 0x18, 4, 0x80000000);
	cfg_wr(f, 0x1c, 4, 0x00000001);
	assert_int_equal(f->p.n_claims, 6);
	assert_claim(f, 3, 2, false, 0x80000000, 1 << 20);
	assert_claim(f, 4, 2, true, 0x80000000, 1 << 20);
	assert_claim(f, 5, 2, false, UINT64_C(0x180000000), 1 << 20);
}

/* A refused claim leaves the BAR's value alone; the address is not asked
 * for again, and not released, until it changes. */
static void test_claim_refused(void **state)
{
	struct fixture *f = start_full(state, false);
	struct pcidev_claim_op op;

	cfg_wr(f, 0x10, 4, 0xd0000000);
	cfg_wr(f, PCIDEV_COMMAND, 2, PCIDEV_CMD_MEM);
	assert_int_equal(f->p.n_claims, 1);
	assert_int_equal(pcidev_claim_result(&f->d, 0, -EPERM, &op), 0);
	assert_false(op.release);
	assert_int_equal(op.start, 0xd0000000);
	assert_int_equal(cfg_rd(f, 0x10, 4), 0xd0000000);
	cfg_wr(f, PCIDEV_COMMAND, 2, PCIDEV_CMD_MEM | PCIDEV_CMD_MASTER);
	cfg_wr(f, PCIDEV_INT_LINE, 1, 5);
	assert_int_equal(f->p.n_claims, 1);
	/* Moved: a claim, and no release of what was never routed. */
	cfg_wr(f, 0x10, 4, 0xfe000000);
	assert_int_equal(f->p.n_claims, 2);
	assert_claim(f, 1, 0, false, 0xfe000000, 4096);

	/* Refused at once by the owner: nothing to wait for, nothing to release. */
	f->p.claim_error = -EPERM;
	cfg_wr(f, 0x10, 4, 0xc0000000);
	assert_int_equal(f->p.n_claims, 4);
	assert_claim(f, 2, 0, true, 0xfe000000, 4096);
	assert_claim(f, 3, 0, false, 0xc0000000, 4096);
	cfg_wr(f, PCIDEV_COMMAND, 2, 0);
	assert_int_equal(f->p.n_claims, 4);
	/* Only the two that went out are answered. */
	assert_int_equal(pcidev_claim_result(&f->d, 0, 0, &op), 0);
	assert_int_equal(op.start, 0xfe000000);
	assert_false(op.release);
	assert_int_equal(pcidev_claim_result(&f->d, 0, 0, &op), -ENOENT);
	assert_int_equal(pcidev_claim_result(&f->d, 1, 0, &op), -ENOENT);
}

/* ---- MSI ---- */

static void test_msi_capability(void **state)
{
	struct fixture *f = start_full(state, true);

	assert_int_equal(cfg_rd(f, PCIDEV_STATUS, 2), PCIDEV_STATUS_CAP_LIST);
	assert_int_equal(cfg_rd(f, PCIDEV_CAP_PTR, 1), PCIDEV_MSI_CAP);
	/* ID 05, no next, control: 64-bit capable, one vector, disabled. */
	assert_int_equal(cfg_rd(f, PCIDEV_MSI_CAP, 4), 0x00800005);
	cfg_wr(f, PCIDEV_MSI_CAP, 4, 0xffffffff);
	assert_int_equal(cfg_rd(f, PCIDEV_MSI_CAP, 4), 0x00f10005);
	cfg_wr(f, PCIDEV_MSI_ADDR_LO, 4, 0xfee0100f);
	assert_int_equal(cfg_rd(f, PCIDEV_MSI_ADDR_LO, 4), 0xfee0100c);
	cfg_wr(f, PCIDEV_MSI_ADDR_HI, 4, 0x12345678);
	assert_int_equal(cfg_rd(f, PCIDEV_MSI_ADDR_HI, 4), 0x12345678);
	cfg_wr(f, PCIDEV_MSI_DATA, 4, 0xffffffff);
	assert_int_equal(cfg_rd(f, PCIDEV_MSI_DATA, 4), 0x0000ffff);
	assert_int_equal(cfg_rd(f, PCIDEV_MSI_DATA + 4, 4), 0);
}

/* ---- the BAR0 block ---- */

static void test_scratch_registers(void **state)
{
	struct fixture *f = start_full(state, false);

	for (unsigned i = 0; i < PCIDEV_NSCRATCH; i++)
		bar_wr(f, 0, 4 * i, 4, 0x11111111u * (i + 1));
	for (unsigned i = 0; i < PCIDEV_NSCRATCH; i++)
		assert_int_equal(bar_rd(f, 0, 4 * i, 4), 0x11111111u * (i + 1));
	bar_wr(f, 0, 0x01, 1, 0xab);
	assert_int_equal(bar_rd(f, 0, 0x00, 4), 0x1111ab11);
	assert_int_equal(bar_rd(f, 0, 0x01, 2), 0x11ab);
	/* 8 bytes span two registers; unaligned works too. */
	bar_wr(f, 0, 0x08, 8, UINT64_C(0x0123456789abcdef));
	assert_int_equal(bar_rd(f, 0, 0x08, 4), 0x89abcdef);
	assert_int_equal(bar_rd(f, 0, 0x0c, 4), 0x01234567);
	assert_int_equal(bar_rd(f, 0, 0x08, 8), UINT64_C(0x0123456789abcdef));
	assert_int_equal(bar_rd(f, 0, 0x0a, 4), 0x456789ab);
	bar_wr(f, 0, 0x1e, 2, 0xbeef);
	assert_int_equal(bar_rd(f, 0, 0x1c, 4), 0xbeef8888);
	/* Past the block: 0. Other BARs: 0, writes ignored. */
	assert_int_equal(bar_rd(f, 0, 0x40, 8), 0);
	bar_wr(f, 1, 0, 4, 0x12345678);
	assert_int_equal(bar_rd(f, 1, 0, 4), 0);
	assert_int_equal(bar_rd(f, 4, 0x100, 8), 0);
	/* BAR3 is BAR2's upper half, not a BAR. */
	assert_int_equal(pcidev_bar_access(&f->d, 3, false, 0, 4, &(uint64_t){ 0 }), -ENOENT);
	assert_int_equal(pcidev_bar_access(&f->d, 6, false, 0, 4, &(uint64_t){ 0 }), -ENOENT);
}

static void test_doorbell_intx(void **state)
{
	struct fixture *f = start_full(state, false);

	bar_wr(f, 0, PCIDEV_REG_DOORBELL, 4, 0);
	assert_true(f->p.intx);
	assert_int_equal(cfg_rd(f, PCIDEV_STATUS, 2), PCIDEV_STATUS_INTX);
	assert_int_equal(bar_rd(f, 0, PCIDEV_REG_IRQ_STATUS, 4), 1);
	assert_int_equal(bar_rd(f, 0, PCIDEV_REG_DOORBELL_COUNT, 4), 1);
	/* Writing 0 acknowledges nothing; 1 does. */
	bar_wr(f, 0, PCIDEV_REG_IRQ_STATUS, 4, 0);
	assert_true(f->p.intx);
	bar_wr(f, 0, PCIDEV_REG_IRQ_STATUS, 4, 1);
	assert_false(f->p.intx);
	assert_int_equal(cfg_rd(f, PCIDEV_STATUS, 2), 0);
	assert_int_equal(bar_rd(f, 0, PCIDEV_REG_IRQ_STATUS, 4), 0);
	/* A byte write rings too; an 8-byte write rings and acknowledges. */
	bar_wr(f, 0, PCIDEV_REG_DOORBELL + 3, 1, 0);
	assert_true(f->p.intx);
	bar_wr(f, 0, PCIDEV_REG_DOORBELL, 8, UINT64_C(1) << 32);
	assert_false(f->p.intx);
	assert_int_equal(bar_rd(f, 0, PCIDEV_REG_DOORBELL_COUNT, 4), 3);
	assert_int_equal(f->p.intx_changes, 4);
}

/* Command bit 10: no new INTx; a pending one stays in the status but
 * leaves the pin until INTx is enabled again. */
static void test_intx_disable(void **state)
{
	struct fixture *f = start_full(state, false);

	cfg_wr(f, PCIDEV_COMMAND, 2, PCIDEV_CMD_INTX_DISABLE);
	bar_wr(f, 0, PCIDEV_REG_DOORBELL, 4, 0);
	assert_false(f->p.intx);
	assert_int_equal(bar_rd(f, 0, PCIDEV_REG_IRQ_STATUS, 4), 0);
	assert_int_equal(bar_rd(f, 0, PCIDEV_REG_DOORBELL_COUNT, 4), 1);

	cfg_wr(f, PCIDEV_COMMAND, 2, 0);
	bar_wr(f, 0, PCIDEV_REG_DOORBELL, 4, 0);
	assert_true(f->p.intx);
	cfg_wr(f, PCIDEV_COMMAND, 2, PCIDEV_CMD_INTX_DISABLE);
	assert_false(f->p.intx);
	assert_int_equal(cfg_rd(f, PCIDEV_STATUS, 2), PCIDEV_STATUS_INTX);
	cfg_wr(f, PCIDEV_COMMAND, 2, 0);
	assert_true(f->p.intx);
}

static void test_no_pin(void **state)
{
	struct pcidev_config c;
	struct fixture *f;

	full_config(&c, false);
	c.intx_pin = 0;
	f = start(state, &c);
	assert_int_equal(cfg_rd(f, PCIDEV_INT_PIN, 1), 0);
	bar_wr(f, 0, PCIDEV_REG_DOORBELL, 4, 0);
	assert_false(f->p.intx);
	assert_int_equal(cfg_rd(f, PCIDEV_STATUS, 2), 0);
	assert_int_equal(f->p.intx_changes, 0);
}

static void test_doorbell_msi(void **state)
{
	struct fixture *f = start_full(state, true);

	cfg_wr(f, PCIDEV_MSI_ADDR_LO, 4, 0xfee01000);
	cfg_wr(f, PCIDEV_MSI_ADDR_HI, 4, 0);
	cfg_wr(f, PCIDEV_MSI_DATA, 2, 0x4041);
	/* Pending INTx, then MSI enabled: the pin must let go. */
	bar_wr(f, 0, PCIDEV_REG_DOORBELL, 4, 0);
	assert_true(f->p.intx);
	cfg_wr(f, PCIDEV_MSI_CONTROL, 2, PCIDEV_MSI_ENABLE);
	assert_false(f->p.intx);
	bar_wr(f, 0, PCIDEV_REG_IRQ_STATUS, 4, 1);

	bar_wr(f, 0, PCIDEV_REG_DOORBELL, 4, 0x1234);
	assert_int_equal(f->p.n_msi, 1);
	assert_int_equal(f->p.msi_addr, 0xfee01000);
	assert_int_equal(f->p.msi_data, 0x4041);
	assert_false(f->p.intx);
	assert_int_equal(bar_rd(f, 0, PCIDEV_REG_IRQ_STATUS, 4), 0);
	cfg_wr(f, PCIDEV_MSI_ADDR_HI, 4, 0x1);
	bar_wr(f, 0, PCIDEV_REG_DOORBELL, 1, 0);
	assert_int_equal(f->p.n_msi, 2);
	assert_int_equal(f->p.msi_addr, UINT64_C(0x1fee01000));
	assert_int_equal(bar_rd(f, 0, PCIDEV_REG_DOORBELL_COUNT, 4), 3);
}

/* ---- life cycle and configuration ---- */

static void test_reset(void **state)
{
	struct fixture *f = start_full(state, true);

	cfg_wr(f, 0x10, 4, 0xfe000000);
	cfg_wr(f, 0x14, 4, 0xc000);
	cfg_wr(f, PCIDEV_INT_LINE, 1, 11);
	cfg_wr(f, PCIDEV_COMMAND, 2, PCIDEV_CMD_MEM);
	cfg_wr(f, PCIDEV_MSI_CONTROL, 2, PCIDEV_MSI_ENABLE);
	bar_wr(f, 0, 0, 4, 0x55);
	cfg_wr(f, PCIDEV_MSI_CONTROL, 2, 0);
	bar_wr(f, 0, PCIDEV_REG_DOORBELL, 4, 0);
	assert_true(f->p.intx);
	assert_int_equal(f->p.n_claims, 1);

	pcidev_reset(&f->d);
	assert_false(f->p.intx);
	assert_int_equal(f->p.n_claims, 2);
	assert_claim(f, 1, 0, true, 0xfe000000, 4096);
	assert_int_equal(cfg_rd(f, PCIDEV_COMMAND, 4), PCIDEV_STATUS_CAP_LIST << 16);
	assert_int_equal(cfg_rd(f, 0x10, 4), 0);
	assert_int_equal(cfg_rd(f, 0x14, 4), 1);
	assert_int_equal(cfg_rd(f, PCIDEV_INT_LINE, 1), 0);
	assert_int_equal(cfg_rd(f, PCIDEV_MSI_CONTROL, 2), PCIDEV_MSI_64BIT);
	assert_int_equal(bar_rd(f, 0, 0, 4), 0);
	assert_int_equal(bar_rd(f, 0, PCIDEV_REG_DOORBELL_COUNT, 4), 0);
	cfg_wr(f, PCIDEV_COMMAND, 2, PCIDEV_CMD_MEM);
	assert_int_equal(f->p.n_claims, 2);
}

static void test_bar_config(void **state)
{
	struct pcidev_config c;

	pcidev_config_init(&c, PCIDEV_PROFILE_DEVICE);
	assert_int_equal(c.intx_pin, 1);
	assert_int_equal(c.class_code, 0xff0000);
	assert_int_equal(pcidev_config_bar(&c, 0, PCIDEV_BAR_MEM32, 3000), -EINVAL);
	assert_int_equal(pcidev_config_bar(&c, 0, PCIDEV_BAR_MEM32, 8), -EINVAL);
	assert_int_equal(pcidev_config_bar(&c, 0, PCIDEV_BAR_MEM32, UINT64_C(4) << 30), -EINVAL);
	assert_int_equal(pcidev_config_bar(&c, 0, PCIDEV_BAR_IO, 512), -EINVAL);
	assert_int_equal(pcidev_config_bar(&c, 0, PCIDEV_BAR_IO, 2), -EINVAL);
	assert_int_equal(pcidev_config_bar(&c, 0, PCIDEV_BAR_NONE, 16), -EINVAL);
	assert_int_equal(pcidev_config_bar(&c, 6, PCIDEV_BAR_MEM32, 16), -EINVAL);
	assert_int_equal(pcidev_config_bar(&c, 5, PCIDEV_BAR_MEM64, 16), -EINVAL);
	assert_int_equal(pcidev_config_bar(&c, 1, PCIDEV_BAR_MEM64, 16), 0);
	assert_int_equal(pcidev_config_bar(&c, 1, PCIDEV_BAR_IO, 16), -EEXIST);
	assert_int_equal(pcidev_config_bar(&c, 2, PCIDEV_BAR_IO, 16), -EEXIST);
	assert_int_equal(pcidev_config_bar(&c, 0, PCIDEV_BAR_MEM64, 16), -EEXIST);
	assert_int_equal(pcidev_config_bar(&c, 0, PCIDEV_BAR_IO, 4), 0);
	assert_int_equal(pcidev_config_bar(&c, 3, PCIDEV_BAR_MEM64, UINT64_C(1) << 63), 0);
	assert_int_equal(pcidev_config_bar(&c, 4, PCIDEV_BAR_IO, 4), -EEXIST);

	c.intx_pin = 5;
	assert_int_equal(pcidev_init(&(struct pcidev){ 0 }, &c, &probe_ops, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_host_bridge),
		cmocka_unit_test(test_read_only_bits),
		cmocka_unit_test(test_bar_sizing),
		cmocka_unit_test(test_command_gating),
		cmocka_unit_test(test_bar_move),
		cmocka_unit_test(test_mem64_pair),
		cmocka_unit_test(test_claim_refused),
		cmocka_unit_test(test_msi_capability),
		cmocka_unit_test(test_scratch_registers),
		cmocka_unit_test(test_doorbell_intx),
		cmocka_unit_test(test_intx_disable),
		cmocka_unit_test(test_no_pin),
		cmocka_unit_test(test_doorbell_msi),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_bar_config),
	};

	return cmocka_run_group_tests_name("pcidev", tests, NULL, NULL);
}
