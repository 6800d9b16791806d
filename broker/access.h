/* One guest access, decoded once from the HSM's request slot.
 *
 * The slot is the kernel's struct acrn_io_request, a union read three ways
 * (PORTIO, MMIO, PCICFG). The broker decodes it once, when it takes the
 * request (request.c), and everything after that (routing, the wire, the
 * completion) reads this struct instead of the slot. */
#ifndef IOREQ_ACCESS_H
#define IOREQ_ACCESS_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/acrn.h>

struct access {
	uint32_t type;  /* ACRN_IOREQ_TYPE_PORTIO, _MMIO or _PCICFG */
	bool write;
	uint8_t size;   /* 1, 2, 4 or 8 (PIO and PCICFG: at most 4) */
	uint16_t bdf;   /* PCICFG: bus << 8 | dev << 3 | func */
	uint64_t addr;  /* PIO/MMIO: the guest address; PCICFG: the register */
	uint64_t value; /* the value written; 0 for a read */
};

/* Decodes @slot. -EINVAL for a type, direction or width the broker cannot
 * serve, or an MMIO access that wraps. */
int access_decode(const struct acrn_io_request *slot, struct access *a);

/* Completes @a in @slot: a read gets @value (all ones when @fallback). */
void access_finish(struct acrn_io_request *slot, const struct access *a, uint64_t value, bool fallback);

/* All ones of an access of @size bytes. */
static inline uint64_t access_all_ones(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

/* What routes it: the address, or the BDF for PCI config space. */
static inline uint64_t access_first(const struct access *a)
{
	return a->type == ACRN_IOREQ_TYPE_PCICFG ? a->bdf : a->addr;
}

static inline uint64_t access_last(const struct access *a)
{
	return a->type == ACRN_IOREQ_TYPE_PCICFG ? a->bdf : a->addr + a->size - 1;
}

/* @a as a device sees it, in a Request or in a ring slot: its kind (an
 * Ioreq__Kind, the same numbers as ACRN's types: access.c checks), and
 * PIO/MMIO by address and @offset in the matched range, PCICFG by BDF and
 * register. */
struct access_wire {
	uint32_t kind;
	uint64_t addr, offset;
	uint32_t bdf, reg;
};

static inline struct access_wire access_wire(const struct access *a, uint64_t offset)
{
	if (a->type == ACRN_IOREQ_TYPE_PCICFG)
		return (struct access_wire){ .kind = a->type, .bdf = a->bdf, .reg = (uint32_t)a->addr };
	return (struct access_wire){ .kind = a->type, .addr = a->addr, .offset = offset };
}

/* "pio", "mmio", "pci". */
const char *access_type_name(uint32_t type);

#endif
