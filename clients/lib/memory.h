/* The guest's memory as a device sees it: one shared mapping of the memfd
 * the broker gave it, and the guest-physical regions that lie in it.
 *
 * Every guest address a device uses comes from the guest (a descriptor, a
 * register), so it is untrusted: a range is translated only if it lies
 * wholly inside one region, without overflow, and a write only if that
 * region is writable. The mapping covers the whole memfd and the memfd's
 * size is sealed, so a pointer this returns never faults and never reaches
 * outside the guest's RAM. */
#ifndef IOREQ_MEMORY_H
#define IOREQ_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ioreq/device.h"
#include "wire.h"

struct ioreq_mem {
	uint8_t *base;       /* the mapping of [0, size) of the memfd */
	uint64_t size;
	size_t n;
	struct ioreq_mem_region regions[WIRE_MAX_REGIONS];
	uint64_t offsets[WIRE_MAX_REGIONS]; /* where each region starts in the memfd */
};

/* Sets @m up over @base (@size bytes) from @n regions, checked: none empty,
 * none wrapping, each inside [0, @size) of the memfd, none overlapping
 * another in guest-physical space. -EINVAL otherwise. */
int mem_view_init(struct ioreq_mem *m, uint8_t *base, uint64_t size, const struct ioreq_mem_region *regions,
		  const uint64_t *offsets, size_t n);

#endif
