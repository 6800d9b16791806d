/* libFuzzer: the device library's guest-address translation
 * (clients/lib/memory.c), which every guest address a device uses goes
 * through. A random layout of regions over a buffer standing for the
 * memfd, then random translations, each checked against a model in 128-bit
 * arithmetic: the view accepts exactly the layouts the model does, and a
 * range translates exactly when it lies wholly inside one region (and, to
 * write, a writable one), to exactly the model's place in the buffer. The
 * small ones are copied for real, so ASan sees any byte outside. The
 * same layout as a remote device's unmapped view, its copies through a
 * stand-in for the broker, must give no pointers and the same answers. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "memory.h"

#define MAX_MEMFD 65536
#define MAX_QUERIES 64
#define MAX_COPY 4096

typedef unsigned __int128 u128;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The broker's stand-in for the unmapped view: the mapped one. The view
 * checked the range before it asked, so this one never refuses. */
static int mapped_access(struct ioreq_dev *dev, uint64_t gpa, void *buf, size_t len, bool write)
{
	const struct ioreq_mem *m = (const struct ioreq_mem *)dev;
	int r = write ? ioreq_mem_write(m, gpa, buf, len) : ioreq_mem_read(m, gpa, buf, len);

	if (r)
		abort();
	return 0;
}

static bool layout_ok(const struct ioreq_mem_region *r, const uint64_t *off, size_t n, uint64_t memfd)
{
	for (size_t i = 0; i < n; i++) {
		if (!r[i].size || (u128)r[i].gpa + r[i].size > (u128)1 << 64 || (u128)off[i] + r[i].size > memfd)
			return false;
		for (size_t j = 0; j < i; j++)
			if ((u128)r[i].gpa < (u128)r[j].gpa + r[j].size && (u128)r[j].gpa < (u128)r[i].gpa + r[i].size)
				return false;
	}
	return true;
}

/* Where [gpa, gpa + len) is in the memfd, or -1. */
static int64_t model(const struct ioreq_mem_region *r, const uint64_t *off, size_t n, uint64_t gpa, uint64_t len,
		     bool write)
{
	if (!len)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (gpa >= r[i].gpa && (u128)gpa + len <= (u128)r[i].gpa + r[i].size)
			return write && r[i].read_only ? -1 : (int64_t)(off[i] + (gpa - r[i].gpa));
	return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct ioreq_mem_region regions[WIRE_MAX_REGIONS];
	uint64_t offsets[WIRE_MAX_REGIONS], memfd;
	static uint8_t copy[MAX_COPY];
	struct ioreq_mem m, unmapped;
	uint8_t *base;
	size_t n;
	int r;

	memfd = 1 + in_bytes(&in, 2) % MAX_MEMFD;
	n = in_u8(&in) % (WIRE_MAX_REGIONS + 2); /* one too many, too */
	for (size_t i = 0; i < n && i < WIRE_MAX_REGIONS; i++) {
		uint64_t prev_end = i ? regions[i - 1].gpa + regions[i - 1].size : 0;

		regions[i].gpa = in_addr(&in, prev_end);
		regions[i].size = in_addr(&in, memfd);
		regions[i].read_only = in_u8(&in) & 1;
		offsets[i] = in_addr(&in, memfd - (regions[i].size < memfd ? regions[i].size : 0));
	}
	/* Exactly the memfd's bytes: ASan's redzones lie just past them. */
	base = malloc(memfd);
	if (!base)
		return 0;
	memset(base, 0, memfd);
	r = mem_view_init(&m, base, memfd, regions, offsets, n);
	if (n > WIRE_MAX_REGIONS || !layout_ok(regions, offsets, n, memfd)) {
		if (r != -EINVAL)
			abort();
		free(base);
		return 0;
	}
	if (r != 0 || mem_view_init_remote(&unmapped, regions, n, (struct ioreq_dev *)&m, mapped_access) != 0 ||
	    !ioreq_mem_mapped(&m) || ioreq_mem_mapped(&unmapped))
		abort();
	for (unsigned q = 0; q < MAX_QUERIES && in.left; q++) {
		const struct ioreq_mem_region *at = &regions[n ? in_u8(&in) % n : 0];
		uint64_t gpa = in_addr(&in, n ? at->gpa + (in_u8(&in) & 1 ? at->size : 0) : 0);
		uint64_t len = in_addr(&in, n ? at->size : 0);
		bool write = in_u8(&in) & 1;
		int64_t want = n ? model(regions, offsets, n, gpa, len, write) : -1;
		uint8_t *p = ioreq_mem_ptr(&m, gpa, len, write);

		if ((want < 0 ? p != NULL : p != base + want) || ioreq_mem_ptr(&unmapped, gpa, len, write))
			abort();
		if (len > MAX_COPY)
			continue;
		r = write ? ioreq_mem_write(&m, gpa, copy, len) : ioreq_mem_read(&m, gpa, copy, len);
		if (r != (want >= 0 || !len ? 0 : -EFAULT))
			abort();
		r = write ? ioreq_mem_write(&unmapped, gpa, copy, len) : ioreq_mem_read(&unmapped, gpa, copy, len);
		if (r != (want >= 0 || !len ? 0 : -EFAULT))
			abort();
	}
	free(base);
	return 0;
}
