#include "memory.h"

#include <errno.h>
#include <string.h>

/* None empty, none wrapping, none overlapping another in guest-physical
 * space, at most WIRE_MAX_REGIONS. */
static bool regions_ok(const struct ioreq_mem_region *regions, size_t n)
{
	if (n > WIRE_MAX_REGIONS)
		return false;
	for (size_t i = 0; i < n; i++) {
		const struct ioreq_mem_region *r = &regions[i];

		if (!r->size || r->gpa + (r->size - 1) < r->gpa)
			return false;
		for (size_t j = 0; j < i; j++)
			if (r->gpa <= regions[j].gpa + (regions[j].size - 1) && regions[j].gpa <= r->gpa + (r->size - 1))
				return false;
	}
	return true;
}

int mem_view_init_hosts(struct ioreq_mem *m, const struct ioreq_mem_region *regions, uint8_t *const *hosts,
			size_t n)
{
	if (!regions_ok(regions, n))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!hosts[i])
			return -EINVAL;
	*m = (struct ioreq_mem){ .n = n };
	memcpy(m->regions, regions, n * sizeof(*regions));
	memcpy(m->hosts, hosts, n * sizeof(*hosts));
	return 0;
}

int mem_view_init(struct ioreq_mem *m, uint8_t *base, uint64_t size, const struct ioreq_mem_region *regions,
		  const uint64_t *offsets, size_t n)
{
	uint8_t *hosts[WIRE_MAX_REGIONS];

	if (n > WIRE_MAX_REGIONS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (offsets[i] > size || regions[i].size > size - offsets[i])
			return -EINVAL;
		hosts[i] = base + offsets[i];
	}
	return mem_view_init_hosts(m, regions, hosts, n);
}

int mem_view_init_remote(struct ioreq_mem *m, const struct ioreq_mem_region *regions, size_t n,
			 struct ioreq_dev *dev, mem_access_fn access)
{
	if (!regions_ok(regions, n))
		return -EINVAL;
	*m = (struct ioreq_mem){ .n = n, .remote = dev, .access = access };
	memcpy(m->regions, regions, n * sizeof(*regions));
	return 0;
}

int mem_region(const struct ioreq_mem *m, uint64_t gpa, uint64_t len, bool write)
{
	if (!m || !len)
		return -1;
	for (size_t i = 0; i < m->n; i++) {
		const struct ioreq_mem_region *r = &m->regions[i];

		/* gpa - r->gpa and the length both within the region: no sum
		 * that could wrap is ever formed. */
		if (gpa < r->gpa || gpa - r->gpa >= r->size || len > r->size - (gpa - r->gpa))
			continue;
		return write && r->read_only ? -1 : (int)i;
	}
	return -1;
}

void *ioreq_mem_ptr(const struct ioreq_mem *m, uint64_t gpa, uint64_t len, bool write)
{
	int i = mem_region(m, gpa, len, write);

	if (i < 0 || m->remote)
		return NULL;
	return m->hosts[i] + (gpa - m->regions[i].gpa);
}

bool ioreq_mem_mapped(const struct ioreq_mem *m)
{
	return m && !m->remote;
}

/* Memory not mapped here: checked here, then copied by the broker. */
static int copy(const struct ioreq_mem *m, uint64_t gpa, void *buf, size_t len, bool write)
{
	return mem_region(m, gpa, len, write) < 0 ? -EFAULT : m->access(m->remote, gpa, buf, len, write);
}

int ioreq_mem_read(const struct ioreq_mem *m, uint64_t gpa, void *buf, size_t len)
{
	const void *p;

	if (!len)
		return 0;
	if (m && m->remote)
		return copy(m, gpa, buf, len, false);
	p = ioreq_mem_ptr(m, gpa, len, false);
	if (!p)
		return -EFAULT;
	memcpy(buf, p, len);
	return 0;
}

int ioreq_mem_write(const struct ioreq_mem *m, uint64_t gpa, const void *buf, size_t len)
{
	void *p;

	if (!len)
		return 0;
	if (m && m->remote)
		return copy(m, gpa, (void *)buf, len, true);
	p = ioreq_mem_ptr(m, gpa, len, true);
	if (!p)
		return -EFAULT;
	memcpy(p, buf, len);
	return 0;
}
