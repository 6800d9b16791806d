/* libFuzzer: the split-virtqueue walker (clients/lib/virtq.c) against a
 * hostile driver.
 *
 * The input lays guest RAM out over a small memfd (up to four regions, any
 * of them read-only, holes between them, some at the top of the address
 * space), fills it, programs a queue anywhere, then plays driver and device
 * in turn: pops, pushes, notification and kick questions, and the driver's
 * writes to its memory between them. The memfd's mapping has nothing around
 * it, nothing over the pages no region uses, and only read access to pages
 * only read-only regions use, so a stray access crashes.
 *
 * The model checked after every call: a chain's buffers lie wholly inside
 * regions of guest RAM, the writable ones in writable regions, within the
 * iovecs given, adding up to the lengths reported; popping writes nothing;
 * no more chains are in flight than the queue holds; a failure is one of
 * the documented errnos and breaks the queue, which then answers every
 * call with it and leaves guest memory alone. A walk that does not end is
 * libFuzzer's timeout.
 *
 * Half the inputs run the queue over a view of the same memory that is not
 * mapped (a remote device's): every access of the library a copy through
 * the mapped view, which the protections guard as well; the buffers are
 * then the library's own copies, of the lengths it reports. */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ioreq/virtq.h"
#include "memory.h"

#define PAGE 4096u
#define PAGES 4u
#define MEMFD_SIZE (PAGES * PAGE)
#define MAX_REGIONS 4
#define MAX_IOV 32
#define DESC_NEXT 1
#define DESC_WRITE 2
#define DESC_INDIRECT 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
	const uint8_t *p;
	size_t n;
};

static int memfd = -1;
static uint8_t *base;

static uint8_t take8(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint16_t take16(struct input *in)
{
	return (uint16_t)(take8(in) | take8(in) << 8);
}

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void map_once(void)
{
	uint8_t *reserved;

	if (base)
		return;
	memfd = memfd_create("guest", MFD_CLOEXEC);
	check(memfd >= 0 && ftruncate(memfd, MEMFD_SIZE) == 0);
	reserved = mmap(NULL, MEMFD_SIZE + 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	check(reserved != MAP_FAILED);
	base = mmap(reserved + PAGE, MEMFD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd, 0);
	check(base != MAP_FAILED);
}

struct world {
	struct ioreq_mem mem;
	struct ioreq_mem copied;     /* the same memory, not mapped */
	bool use_copies;
	struct ioreq_mem_region regions[MAX_REGIONS];
	uint64_t offsets[MAX_REGIONS];
	size_t n_regions;
	struct ioreq_vq_config cfg;
	struct ioreq_vq *vq;
	unsigned n_iov;
	uint16_t in_flight[IOREQ_VQ_MAX_SIZE];
	unsigned n_in_flight;
};

/* Each page as the regions over it allow: none, read, or read and write. */
static void protect(const struct world *w)
{
	for (unsigned pg = 0; pg < PAGES; pg++) {
		int prot = PROT_NONE;

		for (size_t i = 0; i < w->n_regions; i++) {
			uint64_t off = w->offsets[i], end = off + w->regions[i].size;

			if ((uint64_t)pg * PAGE >= off && (uint64_t)pg * PAGE < end)
				prot |= w->regions[i].read_only ? PROT_READ : PROT_READ | PROT_WRITE;
		}
		check(mprotect(base + pg * PAGE, PAGE, prot) == 0);
	}
}

/* The broker's side of w->copied: the mapped view. */
static int copy_access(struct ioreq_dev *dev, uint64_t gpa, void *buf, size_t len, bool write)
{
	struct world *w = (struct world *)dev;

	return write ? ioreq_mem_write(&w->mem, gpa, buf, len) : ioreq_mem_read(&w->mem, gpa, buf, len);
}

static bool layout(struct world *w, struct input *in)
{
	w->n_regions = 1 + take8(in) % MAX_REGIONS;
	for (size_t i = 0; i < w->n_regions; i++) {
		uint8_t b = take8(in), s = take8(in);
		uint64_t gpa = (uint64_t)(b & 0x0f) * PAGE;
		uint64_t pages = 1 + (s & 3);

		if (b & 0x10)
			gpa = UINT64_MAX - gpa - pages * PAGE + 1;
		w->regions[i] = (struct ioreq_mem_region){ gpa, pages * PAGE, b & 0x20 };
		w->offsets[i] = (uint64_t)(s >> 2 & 3) * PAGE;
	}
	return mem_view_init(&w->mem, base, MEMFD_SIZE, w->regions, w->offsets, w->n_regions) == 0 &&
	       mem_view_init_remote(&w->copied, w->regions, w->n_regions, (struct ioreq_dev *)w, copy_access) == 0;
}

/* Somewhere in a region, aligned as the spec asks unless the input says
 * otherwise; or anywhere at all. */
static uint64_t ring_gpa(const struct world *w, struct input *in, unsigned align)
{
	uint8_t b = take8(in);
	uint16_t off = take16(in);

	if (b & 0x80)
		return (uint64_t)off << 48 | (uint64_t)take16(in) << 16 | take16(in);
	if (!(b & 0x40))
		off &= (uint16_t)~(align - 1);
	return w->regions[b % w->n_regions].gpa + off % (PAGES * PAGE);
}

/* Guest memory as the guest sees it, bypassing the device's mapping. */
static void snapshot(uint8_t *buf)
{
	check(pread(memfd, buf, MEMFD_SIZE, 0) == MEMFD_SIZE);
}

static bool inside_region(const struct world *w, const struct iovec *v, bool write)
{
	const uint8_t *p = v->iov_base;

	/* A copy of ours: its length is what ASan checks. */
	if (w->use_copies)
		return true;
	for (size_t i = 0; i < w->n_regions; i++) {
		const uint8_t *start = base + w->offsets[i];

		if (write && w->regions[i].read_only)
			continue;
		if (p >= start && p < start + w->regions[i].size && v->iov_len <= (size_t)(start + w->regions[i].size - p))
			return true;
	}
	return false;
}

static void check_chain(struct world *w, const struct iovec *iov, const struct ioreq_vq_chain *c)
{
	uint64_t out = 0, in = 0;
	volatile uint8_t sink = 0;

	check(c->head < w->cfg.size);
	check(c->n_out + c->n_in <= w->n_iov);
	check(c->out_len + c->in_len <= 1ull << 32);
	for (unsigned i = 0; i < c->n_out + c->n_in; i++) {
		bool write = i >= c->n_out;

		check(iov[i].iov_len > 0);
		check(inside_region(w, &iov[i], write));
		/* Touch every byte as a device would: the protections catch
		 * what the model might not. */
		if (write) {
			memset(iov[i].iov_base, 0xa5, iov[i].iov_len);
			in += iov[i].iov_len;
		} else {
			for (size_t j = 0; j < iov[i].iov_len; j++)
				sink ^= ((const uint8_t *)iov[i].iov_base)[j];
			out += iov[i].iov_len;
		}
	}
	(void)sink;
	check(out == c->out_len && in == c->in_len);
	check(w->n_in_flight < w->cfg.size);
	w->in_flight[w->n_in_flight++] = c->head;
}

static bool documented(int r)
{
	static const int errs[] = { -EOVERFLOW, -ENOSPC, -ERANGE, -ELOOP,  -EFAULT, -EPROTO,
				    -EMLINK,    -EBADMSG, -EILSEQ, -E2BIG, -ENOBUFS, -EBUSY };

	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		if (r == errs[i])
			return true;
	return false;
}

/* Broken by @err: every call says so, and guest memory is left alone. */
static void check_broken(struct world *w, int err)
{
	static uint8_t before[MEMFD_SIZE], after[MEMFD_SIZE];
	struct iovec iov[MAX_IOV];
	struct ioreq_vq_chain c;

	check(documented(err));
	check(ioreq_vq_broken(w->vq) != NULL);
	snapshot(before);
	check(ioreq_vq_pop(w->vq, iov, w->n_iov, &c) == err);
	check(ioreq_vq_push(w->vq, 0, 0) == err);
	check(ioreq_vq_notify_needed(w->vq) == err);
	check(ioreq_vq_enable_kicks(w->vq) == err);
	check(ioreq_vq_disable_kicks(w->vq) == err);
	snapshot(after);
	check(memcmp(before, after, MEMFD_SIZE) == 0);
}

static void put(const void *buf, size_t len, size_t off)
{
	check(pwrite(memfd, buf, len, (off_t)off) == (ssize_t)len);
}

/* Descriptor @i of a table at memfd offset @table. */
static void put_desc(size_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t d[16];

	addr = htole64(addr);
	len = htole32(len);
	flags = htole16(flags);
	next = htole16(next);
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
	put(d, sizeof(d), table + 16 * i);
}

/* A buffer somewhere in a region: mostly one that fits, sometimes any
 * length. */
static void some_buffer(const struct world *w, struct input *in, uint64_t *addr, uint32_t *len)
{
	const struct ioreq_mem_region *r = &w->regions[take8(in) % w->n_regions];
	uint8_t f = take8(in);

	*addr = r->gpa + take16(in) % r->size;
	*len = f & 0x80 ? (uint32_t)take16(in) << 16 | take16(in) : take16(in) % 2048u;
}

static void publish(const struct world *w, struct input *in, uint16_t head)
{
	size_t avail = (const uint8_t *)ioreq_mem_ptr(&w->mem, w->cfg.avail, 4, false) - base;
	uint16_t idx;

	check(pread(memfd, &idx, 2, (off_t)avail + 2) == 2);
	idx = le16toh(idx);
	head = htole16(head);
	put(&head, 2, avail + 4 + 2 * (idx % w->cfg.size));
	idx = htole16((uint16_t)(idx + 1));
	put(&idx, 2, avail + 2);
}

/* A chain of up to 8 descriptors, readable then writable, in the queue's
 * table or in an indirect table in some region; flags perturbed at times. */
static void chain(const struct world *w, struct input *in)
{
	size_t table = (const uint8_t *)ioreq_mem_ptr(&w->mem, w->cfg.desc, 16, false) - base;
	unsigned size = w->cfg.size, n = 1 + take8(in) % 8, split = take8(in) % (n + 1);
	uint16_t head = take16(in) % size, first = head, count = (uint16_t)size;
	uint8_t how = take8(in);

	if (how & 1) {
		size_t r = take8(in) % w->n_regions;
		uint64_t at = take16(in) % w->regions[r].size;

		put_desc(table, head, w->regions[r].gpa + at, 16 * n, DESC_INDIRECT, 0);
		table = w->offsets[r] + at;
		if (at + 16 * n > w->regions[r].size)
			return;
		first = 0;
		count = (uint16_t)n;
	}
	for (unsigned j = 0; j < n; j++) {
		uint16_t flags = (j + 1 < n ? DESC_NEXT : 0) | (j >= split ? DESC_WRITE : 0);
		uint8_t chaos = take8(in);
		uint64_t addr;
		uint32_t len;

		if (chaos & 0x80)
			flags ^= chaos & 7;
		some_buffer(w, in, &addr, &len);
		put_desc(table, (first + j) % count, addr, len, flags, (uint16_t)((first + j + 1) % count));
	}
	publish(w, in, head);
}

/* The driver writes its memory: raw bytes, a descriptor, an available
 * entry or a whole chain. */
static void drive(const struct world *w, struct input *in)
{
	size_t table = (const uint8_t *)ioreq_mem_ptr(&w->mem, w->cfg.desc, 16, false) - base;
	uint8_t buf[16];
	uint64_t addr;
	uint32_t len;

	switch (take8(in) % 4) {
	case 0:
		len = 1 + take8(in) % sizeof(buf);
		for (size_t i = 0; i < len; i++)
			buf[i] = take8(in);
		put(buf, len, take16(in) % (MEMFD_SIZE - len + 1));
		break;
	case 1:
		some_buffer(w, in, &addr, &len);
		put_desc(table, take16(in) % w->cfg.size, addr, len, take8(in) & 7, take16(in) % w->cfg.size);
		break;
	case 2:
		publish(w, in, take16(in) % (w->cfg.size + 1));
		break;
	default:
		chain(w, in);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct world w;
	static uint8_t before[MEMFD_SIZE], after[MEMFD_SIZE];
	struct input in = { data, size };
	struct iovec iov[MAX_IOV];
	struct ioreq_vq_chain c;
	size_t image;
	uint8_t b;
	int r;

	map_once();
	/* All but the in-flight heads, which n_in_flight bounds. */
	memset(&w, 0, offsetof(struct world, in_flight));
	w.n_in_flight = 0;
	if (!layout(&w, &in))
		return 0;
	b = take8(&in);
	w.cfg.size = b & 0x80 ? take16(&in) : 1u << (b % 10);
	w.cfg.event_idx = b & 0x10;
	w.cfg.indirect = b & 0x20;
	w.cfg.desc = ring_gpa(&w, &in, 16);
	w.cfg.avail = ring_gpa(&w, &in, 2);
	w.cfg.used = ring_gpa(&w, &in, 4);
	w.n_iov = 1 + take8(&in) % MAX_IOV;
	w.use_copies = take8(&in) & 1;

	/* The guest's memory: the next bytes, over and over. */
	image = (size_t)take8(&in) * 8;
	if (image > in.n)
		image = in.n;
	check(mprotect(base, MEMFD_SIZE, PROT_READ | PROT_WRITE) == 0);
	for (size_t i = 0; i < MEMFD_SIZE; i++)
		base[i] = image ? in.p[i % image] : 0;
	in.p += image;
	in.n -= image;
	protect(&w);

	r = ioreq_vq_new(w.use_copies ? &w.copied : &w.mem, &w.cfg, &w.vq);
	if (r < 0) {
		check(r == -EINVAL || r == -EFAULT || (w.use_copies && r == -ENOMEM));
		return 0;
	}
	while (in.n) {
		switch (take8(&in) % 7) {
		case 0:
		case 1:
			snapshot(before);
			r = ioreq_vq_pop(w.vq, iov, w.n_iov, &c);
			snapshot(after);
			check(memcmp(before, after, MEMFD_SIZE) == 0);
			if (r == 1)
				check_chain(&w, iov, &c);
			else if (r < 0)
				check_broken(&w, r);
			else
				check(r == 0);
			break;
		case 2: {
			/* Mostly a chain in flight; else any head, which the
			 * library takes while any chain is in flight. */
			uint16_t pick = take16(&in), head = pick, len = take16(&in);
			bool ours = w.n_in_flight && !(pick & 0x8000);
			bool ok;

			if (ours) {
				unsigned i = pick % w.n_in_flight;

				head = w.in_flight[i];
				w.in_flight[i] = w.in_flight[--w.n_in_flight];
			}
			ok = ours || (head < w.cfg.size && w.n_in_flight);
			check(ioreq_vq_push(w.vq, head, len) == (ok ? 0 : -EINVAL));
			if (ok && !ours)
				w.n_in_flight--;
			break;
		}
		case 3:
			r = ioreq_vq_notify_needed(w.vq);
			check(r == 0 || r == 1);
			break;
		case 4:
			r = ioreq_vq_enable_kicks(w.vq);
			check(r == 0 || r == 1);
			break;
		case 5:
			check(ioreq_vq_disable_kicks(w.vq) == 0);
			break;
		default:
			drive(&w, &in);
			break;
		}
		if (ioreq_vq_broken(w.vq))
			break;
	}
	w.vq = ioreq_vq_free(w.vq);
	return 0;
}
