#include "access.h"

#include <errno.h>

#include "dispatch.h"
#include "ioreq.pb-c.h"

_Static_assert(ACRN_IOREQ_TYPE_PORTIO == IOREQ__KIND__KIND_PIO && ACRN_IOREQ_TYPE_MMIO == IOREQ__KIND__KIND_MMIO &&
		       ACRN_IOREQ_TYPE_PCICFG == IOREQ__KIND__KIND_PCICFG,
	       "access_wire: ACRN's request types are the wire's kinds");

static bool width_ok(uint64_t size, uint64_t max)
{
	return (size == 1 || size == 2 || size == 4 || size == 8) && size <= max;
}

/* The HSM's decode (dispatch.h) reads the slot by its type; what the
 * broker adds is the checks a request from an untrusted guest needs, and
 * PCI's address. */
int access_decode(const struct acrn_io_request *slot, struct access *a)
{
	const struct acrn_pci_request *pci = &slot->reqs.pci_request;
	struct dispatch_access d;

	*a = (struct access){ .type = slot->type };
	if (dispatch_decode(slot, &d) < 0 || (d.dir != ACRN_IOREQ_DIR_READ && d.dir != ACRN_IOREQ_DIR_WRITE))
		return -EINVAL;
	switch (d.type) {
	case ACRN_IOREQ_TYPE_PORTIO:
		if (!width_ok(d.size, 4) || d.addr > 0xffff)
			return -EINVAL;
		a->addr = d.addr;
		break;
	case ACRN_IOREQ_TYPE_MMIO:
		if (!width_ok(d.size, 8) || d.addr + d.size - 1 < d.addr)
			return -EINVAL;
		a->addr = d.addr;
		break;
	default:
		if (!width_ok(d.size, 4) || pci->bus > 0xff || pci->dev > 0x1f || pci->func > 7 || pci->reg > 0xfff)
			return -EINVAL;
		a->bdf = (uint16_t)(pci->bus << 8 | pci->dev << 3 | pci->func);
		a->addr = pci->reg;
		break;
	}
	a->size = (uint8_t)d.size;
	a->write = d.dir == ACRN_IOREQ_DIR_WRITE;
	a->value = a->write ? d.value & access_all_ones(a->size) : 0;
	return 0;
}

void access_finish(struct acrn_io_request *slot, const struct access *a, uint64_t value, bool fallback)
{
	if (!a->write)
		dispatch_set_value(slot, fallback ? access_all_ones(a->size) : value & access_all_ones(a->size));
}

const char *access_type_name(uint32_t type)
{
	static const char *const names[] = {
		[ACRN_IOREQ_TYPE_PORTIO] = "pio",
		[ACRN_IOREQ_TYPE_MMIO] = "mmio",
		[ACRN_IOREQ_TYPE_PCICFG] = "pci",
	};

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}
