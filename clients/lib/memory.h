/* The guest's memory as a device sees it: the guest-physical regions and
 * where each one is mapped in the device (one shared mapping of the memfd
 * the broker gave it, or one mapping per region of a vhost-user front end).
 *
 * Every guest address a device uses comes from the guest (a descriptor, a
 * register), so it is untrusted: a range is translated only if it lies
 * wholly inside one region, without overflow, and a write only if that
 * region is writable. The mapping covers the whole memfd and the memfd's
 * size is sealed, so a pointer this returns never faults and never reaches
 * outside the guest's RAM (a vhost-user front end's memfds are sealed
 * likewise before they are mapped). */
#ifndef IOREQ_MEMORY_H
#define IOREQ_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ioreq/device.h"
#include "wire.h"

struct ioreq_mem {
	size_t n;
	struct ioreq_mem_region regions[WIRE_MAX_REGIONS];
	uint8_t *hosts[WIRE_MAX_REGIONS]; /* where each region is mapped */
};

/* Sets @m up over @base (@size bytes) from @n regions, checked: none empty,
 * none wrapping, each inside [0, @size) of the memfd, none overlapping
 * another in guest-physical space. -EINVAL otherwise. */
int mem_view_init(struct ioreq_mem *m, uint8_t *base, uint64_t size, const struct ioreq_mem_region *regions,
		  const uint64_t *offsets, size_t n);

/* Sets @m up from @n regions, region i mapped (all of its size) at
 * @hosts[i] by the caller, checked as above: none empty, none wrapping,
 * none overlapping another in guest-physical space. -EINVAL otherwise. */
int mem_view_init_hosts(struct ioreq_mem *m, const struct ioreq_mem_region *regions, uint8_t *const *hosts,
			size_t n);

#endif
