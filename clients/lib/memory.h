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

/* Copies @len bytes between @buf and guest-physical @gpa (to the guest
 * with @write), through @dev's broker: device.c's dev_mem_access. */
typedef int (*mem_access_fn)(struct ioreq_dev *dev, uint64_t gpa, void *buf, size_t len, bool write);

struct ioreq_mem {
	size_t n;
	struct ioreq_mem_region regions[WIRE_MAX_REGIONS];
	uint8_t *hosts[WIRE_MAX_REGIONS]; /* where each region is mapped */
	/* Not mapped at all (a remote device's: guest memory cannot cross
	 * hosts): every read and write goes through @remote's broker by
	 * @access, and there are no pointers. NULL: mapped. */
	struct ioreq_dev *remote;
	mem_access_fn access;
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

/* Sets @m up from @n regions that are not mapped here, checked as above:
 * reads and writes are @access on @dev. */
int mem_view_init_remote(struct ioreq_mem *m, const struct ioreq_mem_region *regions, size_t n,
			 struct ioreq_dev *dev, mem_access_fn access);

/* Whether guest-physical [@gpa, @gpa + @len) lies wholly inside one region
 * (and, with @write, a writable one): its index, or -1. */
int mem_region(const struct ioreq_mem *m, uint64_t gpa, uint64_t len, bool write);

#endif
