/* Split virtqueues over the guest's RAM (ioreq/virtq.h).
 *
 * The rings are shared with a guest that may be hostile and whose vCPUs
 * write them while the device reads: every value is loaded exactly once
 * into a local and checked there, never re-read after the check. Ordering
 * with the driver follows the spec's barriers: the available idx is loaded
 * with acquire before the entries it publishes; the used idx is stored with
 * release after the elements it publishes; a full fence separates a store
 * the driver must see from the load of what the driver decided (used idx
 * then used_event, avail_event then avail idx).
 *
 * Over memory that is not mapped here (a remote device's, memory.h) the
 * same steps are copies: each load or store of a ring a read or write
 * through the broker, done in order, one round trip each (the broker keeps
 * the order the fences keep here); each buffer a bounce buffer of ours,
 * read from the guest when it is popped if the device reads it, written
 * back (as much as the used length says) when it is pushed if the device
 * writes it. Round trips are what a remote queue costs, so what the
 * available idx publishes is read in a few whole pieces right after it:
 * the new entries, and the descriptor table if one message holds it (the
 * driver changes neither while those chains are the device's); an
 * indirect table is read whole when its descriptor is reached. The chains
 * are then walked in those snapshots, each value still read once. */
#include "ioreq/virtq.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"

/* virtio 1.x 2.7.5, 2.7.6, 2.7.8: the split queue's layout, little-endian. */
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define DESC_F_INDIRECT 4
#define DESC_SIZE 16
#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY 1
#define RING_HDR 4 /* flags, idx */
#define USED_ELEM 8 /* id u32, len u32 */
/* A chain's total, at most (2.7.13.1: "longer than 2^32 bytes"). */
#define CHAIN_MAX_BYTES (1ull << 32)
/* ... and in bounce buffers (memory not mapped here): more than any
 * request Linux's drivers make (max_sectors_kb is 1280 by default). */
#define COPY_MAX_BYTES (4ull << 20)
/* A descriptor table read whole after each available idx: what one
 * memory message carries (larger ones are read a descriptor at a time). */
#define DESC_COPY_MAX WIRE_MAX_DMA

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

/* A ring or a descriptor table: where the guest has it, and where we see
 * it (NULL: the memory is not mapped here, every access is a copy; a table
 * of such memory may be seen in a snapshot of ours, see snapshot()). */
struct area {
	uint64_t gpa;
	uint8_t *host;
};

/* Memory not mapped here: a chain's buffers, each a copy of ours. */
struct bounce {
	unsigned n, cap;
	uint64_t bytes;              /* in all its pieces */
	struct piece {
		void *buf;
		uint64_t gpa, len;
		bool write;          /* device-writable: copied back at push */
	} *pieces;               /* NULL: the head is not in flight */
};

struct ioreq_vq {
	const struct ioreq_mem *mem;
	uint16_t mask;               /* size - 1 */
	uint32_t size;
	bool event_idx, indirect;
	struct area desc;
	struct area avail;           /* flags, idx, ring[size], used_event */
	struct area used;            /* flags, idx, ring[size], avail_event */
	struct bounce *bounces;      /* per head; NULL: the memory is mapped */
	/* Memory not mapped here: what the last available idx published,
	 * read once after it (the entries, by ring position; the table,
	 * NULL if one message cannot carry it). */
	uint16_t *avail_copy;        /* little-endian, as the guest's */
	uint8_t *desc_copy;          /* desc.host then */
	uint16_t last_avail;         /* the next available entry to pop */
	uint16_t shadow_avail;       /* the available idx as last loaded */
	uint16_t used_idx;           /* as last published */
	uint16_t signalled_used;     /* used_idx at the last notify_needed */
	bool signalled_valid;        /* false: 2^16 pushes since, it is ambiguous */
	uint32_t in_flight;
	int broken;                  /* 0, or the negative errno that broke it */
};

static const char *const broken_why[] = {
	[EOVERFLOW] = "the available idx ran more than the queue size ahead",
	[ENOSPC] = "more chains made available than the queue holds",
	[ERANGE] = "a descriptor index outside its table",
	[ELOOP] = "a descriptor chain longer than its table (a loop)",
	[EFAULT] = "a buffer or indirect table outside guest RAM",
	[EPROTO] = "an indirect descriptor not negotiated or with F_NEXT",
	[EMLINK] = "an indirect descriptor inside an indirect table",
	[EBADMSG] = "an indirect table of a bad length",
	[EILSEQ] = "a device-readable descriptor after a device-writable one",
	[E2BIG] = "a descriptor chain of more than 4 GiB",
	[ENOBUFS] = "a descriptor chain of more buffers than the device takes",
	[EIO] = "guest memory not reachable through the broker",
	[ENOMEM] = "no memory for a copy of a buffer",
	[EBUSY] = "a chain made available again while the device holds it",
};

static uint16_t load16(const uint8_t *p, int order)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, order));
}

static void store16(uint8_t *p, uint16_t v, int order)
{
	__atomic_store_n((uint16_t *)p, htole16(v), order);
}

static void store32(uint8_t *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELAXED);
}

/* An indirect table need not be aligned: copy the descriptor out bytewise,
 * then a compiler barrier so that the checks use the copy and the compiler
 * cannot go back to guest memory for a field. */
static struct desc desc_load(const uint8_t *p)
{
	struct desc raw, d;

	memcpy(&raw, p, sizeof(raw));
	__asm__ volatile("" ::: "memory");
	d.addr = le64toh(raw.addr);
	d.len = le32toh(raw.len);
	d.flags = le16toh(raw.flags);
	d.next = le16toh(raw.next);
	return d;
}

static int vq_break(struct ioreq_vq *vq, int err)
{
	vq->broken = err;
	return err;
}

/* ---- the rings' fields, mapped or copied ---- */

static int get16(const struct ioreq_vq *vq, const struct area *a, size_t off, int order, uint16_t *ret)
{
	uint16_t v;

	if (a->host) {
		*ret = load16(a->host + off, order);
		return 0;
	}
	if (ioreq_mem_read(vq->mem, a->gpa + off, &v, sizeof(v)) < 0)
		return -EIO;
	*ret = le16toh(v);
	return 0;
}

static int put16(const struct ioreq_vq *vq, const struct area *a, size_t off, uint16_t v, int order)
{
	if (a->host) {
		store16(a->host + off, v, order);
		return 0;
	}
	v = htole16(v);
	return ioreq_mem_write(vq->mem, a->gpa + off, &v, sizeof(v)) < 0 ? -EIO : 0;
}

/* A used element: id, then len (one write when copied). */
static int put_elem(const struct ioreq_vq *vq, size_t off, uint32_t id, uint32_t len)
{
	uint32_t e[2] = { htole32(id), htole32(len) };

	if (vq->used.host) {
		store32(vq->used.host + off, id);
		store32(vq->used.host + off + 4, len);
		return 0;
	}
	return ioreq_mem_write(vq->mem, vq->used.gpa + off, e, sizeof(e)) < 0 ? -EIO : 0;
}

static int get_desc(const struct ioreq_vq *vq, const struct area *table, uint32_t i, struct desc *ret)
{
	uint8_t raw[DESC_SIZE];

	if (table->host) {
		*ret = desc_load(table->host + (size_t)i * DESC_SIZE);
		return 0;
	}
	if (ioreq_mem_read(vq->mem, table->gpa + (uint64_t)i * DESC_SIZE, raw, sizeof(raw)) < 0)
		return -EIO;
	*ret = desc_load(raw);
	return 0;
}

/* A ring of @len bytes at @gpa, aligned (in the guest and in our mapping,
 * for the atomic accesses) and wholly in one region. */
static int ring_map(const struct ioreq_mem *mem, uint64_t gpa, uint64_t len, unsigned align, bool write,
		    struct area *ret)
{
	*ret = (struct area){ .gpa = gpa };
	if (gpa % align)
		return -EINVAL;
	if (!ioreq_mem_mapped(mem))
		return mem_region(mem, gpa, len, write) < 0 ? -EFAULT : 0;
	ret->host = ioreq_mem_ptr(mem, gpa, len, write);
	if (!ret->host)
		return -EFAULT;
	if ((uintptr_t)ret->host % align)
		return -EINVAL;
	return 0;
}

/* ---- bounce buffers (memory not mapped here) ---- */

static void bounce_drop(struct ioreq_vq *vq, uint16_t head)
{
	struct bounce *b = &vq->bounces[head];

	for (unsigned i = 0; i < b->n; i++)
		free(b->pieces[i].buf);
	free(b->pieces);
	*b = (struct bounce){ 0 };
}

/* Where the device's writes to chain @head's buffers go back to the
 * guest: the first @len bytes of its device-writable pieces. Then the
 * copies go. */
static int bounce_back(struct ioreq_vq *vq, uint16_t head, uint64_t len)
{
	struct bounce *b = &vq->bounces[head];
	int r = 0;

	for (unsigned i = 0; i < b->n && len && r == 0; i++) {
		const struct piece *p = &b->pieces[i];
		uint64_t n = p->len < len ? p->len : len;

		if (!p->write)
			continue;
		r = ioreq_mem_write(vq->mem, p->gpa, p->buf, n) < 0 ? -EIO : 0;
		len -= n;
	}
	bounce_drop(vq, head);
	return r;
}

int ioreq_vq_new(const struct ioreq_mem *mem, const struct ioreq_vq_config *cfg, struct ioreq_vq **ret)
{
	struct area desc, avail, used;
	struct ioreq_vq *vq;
	int r;

	if (!mem || !cfg->size || cfg->size > IOREQ_VQ_MAX_SIZE || (cfg->size & (cfg->size - 1)))
		return -EINVAL;
	r = ring_map(mem, cfg->desc, (uint64_t)DESC_SIZE * cfg->size, 16, false, &desc);
	if (r == 0)
		r = ring_map(mem, cfg->avail, RING_HDR + 2ull * cfg->size + 2, 2, false, &avail);
	if (r == 0)
		r = ring_map(mem, cfg->used, RING_HDR + (uint64_t)USED_ELEM * cfg->size + 2, 4, true, &used);
	if (r < 0)
		return r;
	vq = calloc(1, sizeof(*vq));
	if (!vq)
		return -ENOMEM;
	if (!ioreq_mem_mapped(mem)) {
		bool whole = (uint64_t)DESC_SIZE * cfg->size <= DESC_COPY_MAX;

		vq->bounces = calloc(cfg->size, sizeof(*vq->bounces));
		vq->avail_copy = calloc(cfg->size, sizeof(*vq->avail_copy));
		if (whole)
			vq->desc_copy = desc.host = calloc(cfg->size, DESC_SIZE);
		if (!vq->bounces || !vq->avail_copy || (whole && !vq->desc_copy)) {
			ioreq_vq_free(vq);
			return -ENOMEM;
		}
	}
	vq->mem = mem;
	vq->size = cfg->size;
	vq->mask = (uint16_t)(cfg->size - 1);
	vq->event_idx = cfg->event_idx;
	vq->indirect = cfg->indirect;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	/* Both sides start at the same index: the driver's used_event speaks
	 * of it. */
	vq->last_avail = vq->shadow_avail = cfg->start;
	vq->used_idx = vq->signalled_used = cfg->start;
	vq->signalled_valid = true;
	*ret = vq;
	return 0;
}

struct ioreq_vq *ioreq_vq_free(struct ioreq_vq *vq)
{
	if (!vq)
		return NULL;
	for (uint32_t i = 0; vq->bounces && i < vq->size; i++)
		bounce_drop(vq, (uint16_t)i);
	free(vq->bounces);
	free(vq->avail_copy);
	free(vq->desc_copy);
	free(vq);
	return NULL;
}

/* Where a chain's buffers go as it is walked. */
struct walk {
	struct iovec *iov;
	unsigned cap, n;
	bool writable;               /* a device-writable buffer seen */
	struct ioreq_vq_chain *chain;
	struct bounce *bounce;       /* memory not mapped here: the copies */
	uint8_t *indirect;           /* ... and the indirect table's */
};

/* The longest prefix of [@gpa, @gpa + @len) that one region holds (0:
 * none). A region holds every prefix of a range it holds: the prefix is
 * found by bisection. */
static uint64_t mem_piece(const struct ioreq_mem *mem, uint64_t gpa, uint64_t len, bool write)
{
	uint64_t lo = 0, hi = len;

	if (mem_region(mem, gpa, len, write) >= 0)
		return len;
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (mem_region(mem, gpa, mid, write) >= 0)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Memory not mapped here: a copy of ours for the piece, read from the
 * guest if the device reads it, zeroed if it writes it (what it leaves
 * unwritten must not be our heap's), kept for ioreq_vq_push. */
static int bounce_piece(struct ioreq_vq *vq, struct walk *w, uint64_t gpa, uint64_t n, bool write, void **ret)
{
	struct bounce *b = w->bounce;
	struct piece *p;

	if (n > COPY_MAX_BYTES - b->bytes)
		return -E2BIG;
	p = &b->pieces[b->n];
	*p = (struct piece){ .buf = write ? calloc(1, n) : malloc(n), .gpa = gpa, .len = n, .write = write };
	if (!p->buf)
		return -ENOMEM;
	b->n++;
	b->bytes += n;
	if (!write && ioreq_mem_read(vq->mem, gpa, p->buf, n) < 0)
		return -EIO;
	*ret = p->buf;
	return 0;
}

static int walk_buffer(struct ioreq_vq *vq, struct walk *w, const struct desc *d)
{
	bool write = d->flags & DESC_F_WRITE;
	uint64_t gpa = d->addr, left = d->len;
	struct ioreq_vq_chain *c = w->chain;

	if (write)
		w->writable = true;
	else if (w->writable)
		return -EILSEQ;
	if (c->out_len + c->in_len + d->len > CHAIN_MAX_BYTES)
		return -E2BIG;
	/* One that wraps the address space: from its top region into the
	 * bottom one would otherwise look like two adjacent regions. */
	if (left && gpa + (left - 1) < gpa)
		return -EFAULT;
	while (left) {
		uint64_t n = mem_piece(vq->mem, gpa, left, write);
		void *p;
		int r;

		if (!n)
			return -EFAULT;
		if (w->n == w->cap)
			return -ENOBUFS;
		if (w->bounce) {
			r = bounce_piece(vq, w, gpa, n, write, &p);
			if (r < 0)
				return r;
		} else {
			p = ioreq_mem_ptr(vq->mem, gpa, n, write);
		}
		w->iov[w->n].iov_base = p;
		w->iov[w->n++].iov_len = n;
		gpa += n;
		left -= n;
	}
	if (write) {
		c->in_len += d->len;
	} else {
		c->out_len += d->len;
		c->n_out = w->n;
	}
	return 0;
}

/* Walks the chain from @head: the queue's table, then at most one indirect
 * table, each visited at most its own number of descriptors (more is a
 * loop), so at most size + IOREQ_VQ_MAX_SIZE steps in all. */
static int walk_chain(struct ioreq_vq *vq, uint16_t head, struct walk *w)
{
	struct area table = vq->desc;
	uint32_t count = vq->size, seen = 0, i = head;
	bool nested = false;

	for (;;) {
		struct desc d;
		int r;

		if (i >= count)
			return -ERANGE;
		if (++seen > count)
			return -ELOOP;
		r = get_desc(vq, &table, i, &d);
		if (r < 0)
			return r;
		if (d.flags & DESC_F_INDIRECT) {
			/* Its F_WRITE means nothing (2.7.5.3.2). */
			if (nested)
				return -EMLINK;
			if (!vq->indirect || (d.flags & DESC_F_NEXT))
				return -EPROTO;
			if (!d.len || d.len % DESC_SIZE || d.len / DESC_SIZE > IOREQ_VQ_MAX_SIZE)
				return -EBADMSG;
			r = ring_map(vq->mem, d.addr, d.len, 1, false, &table);
			if (r < 0)
				return r;
			if (!table.host) {
				w->indirect = table.host = malloc(d.len);
				if (!w->indirect)
					return -ENOMEM;
				if (ioreq_mem_read(vq->mem, d.addr, w->indirect, d.len) < 0)
					return -EIO;
			}
			count = d.len / DESC_SIZE;
			seen = 0;
			i = 0;
			nested = true;
			continue;
		}
		r = walk_buffer(vq, w, &d);
		if (r < 0)
			return r;
		if (!(d.flags & DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

/* Memory not mapped here: the entries [last_avail, @idx) the idx just
 * loaded published, and the descriptor table as it is now (the driver
 * leaves both alone while those chains are the device's), each in one
 * piece (the entries in two where they wrap). */
static int snapshot(struct ioreq_vq *vq, uint16_t idx)
{
	uint32_t start = vq->last_avail & vq->mask, n = (uint16_t)(idx - vq->last_avail);
	uint32_t first = n < vq->size - start ? n : vq->size - start;
	uint64_t ring = vq->avail.gpa + RING_HDR;

	if (ioreq_mem_read(vq->mem, ring + 2ull * start, vq->avail_copy + start, 2ull * first) < 0 ||
	    (first < n && ioreq_mem_read(vq->mem, ring, vq->avail_copy, 2ull * (n - first)) < 0))
		return -EIO;
	if (vq->desc_copy && ioreq_mem_read(vq->mem, vq->desc.gpa, vq->desc_copy, (size_t)DESC_SIZE * vq->size) < 0)
		return -EIO;
	return 0;
}

int ioreq_vq_pop(struct ioreq_vq *vq, struct iovec *iov, unsigned n_iov, struct ioreq_vq_chain *ret)
{
	struct walk w = { .iov = iov, .cap = n_iov, .chain = ret };
	uint16_t head;
	int r;

	if (vq->broken)
		return vq->broken;
	/* The idx is loaded only when the entries seen so far are used up:
	 * once per pop at most, and its acquire orders every later load of
	 * the entries and descriptors it published. */
	if (vq->last_avail == vq->shadow_avail) {
		uint16_t idx;

		r = get16(vq, &vq->avail, 2, __ATOMIC_ACQUIRE, &idx);
		if (r < 0)
			return vq_break(vq, r);
		if ((uint16_t)(idx - vq->last_avail) > vq->size)
			return vq_break(vq, -EOVERFLOW);
		if (idx == vq->last_avail)
			return 0;
		if (vq->avail_copy) {
			r = snapshot(vq, idx);
			if (r < 0)
				return vq_break(vq, r);
		}
		vq->shadow_avail = idx;
	}
	if (vq->in_flight == vq->size)
		return vq_break(vq, -ENOSPC);
	if (vq->avail_copy) {
		head = le16toh(vq->avail_copy[vq->last_avail & vq->mask]);
	} else {
		r = get16(vq, &vq->avail, RING_HDR + 2 * (vq->last_avail & vq->mask), __ATOMIC_RELAXED, &head);
		if (r < 0)
			return vq_break(vq, r);
	}
	*ret = (struct ioreq_vq_chain){ .head = head };
	if (vq->bounces && head < vq->size) {
		w.bounce = &vq->bounces[head];
		if (w.bounce->pieces)
			return vq_break(vq, -EBUSY);
		w.bounce->pieces = calloc(n_iov ? n_iov : 1, sizeof(*w.bounce->pieces));
		if (!w.bounce->pieces)
			return vq_break(vq, -ENOMEM);
		w.bounce->cap = n_iov;
	}
	r = walk_chain(vq, head, &w);
	free(w.indirect);
	if (r < 0) {
		if (w.bounce)
			bounce_drop(vq, head);
		return vq_break(vq, r);
	}
	ret->n_in = w.n - ret->n_out;
	vq->last_avail++;
	vq->in_flight++;
	return 1;
}

int ioreq_vq_push(struct ioreq_vq *vq, uint16_t head, uint32_t len)
{
	int r = 0;

	if (vq->broken)
		return vq->broken;
	if (head >= vq->size || !vq->in_flight)
		return -EINVAL;
	/* The buffers' contents, then the element that says they are used. */
	if (vq->bounces)
		r = bounce_back(vq, head, len);
	if (r == 0)
		r = put_elem(vq, RING_HDR + USED_ELEM * (vq->used_idx & vq->mask), head, len);
	vq->used_idx++;
	if (r == 0)
		r = put16(vq, &vq->used, 2, vq->used_idx, __ATOMIC_RELEASE);
	if (r < 0)
		return vq_break(vq, r);
	vq->in_flight--;
	/* 2^16 pushes without a notify_needed: the idx it saw is ambiguous. */
	if (vq->used_idx == vq->signalled_used)
		vq->signalled_valid = false;
	return 0;
}

/* virtio 1.x 2.7.10: whether @event lies in [old, new), modulo 2^16. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

/* A store to guest memory, then a load from it, in that order as the other
 * side sees them (the driver on another CPU): only a full fence does that.
 * ThreadSanitizer does not model fences; the orders it checks are the
 * atomics', and the guest is no thread of ours. */
static inline void full_fence(void)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wunknown-warning-option"
#pragma GCC diagnostic ignored "-Wtsan"
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#pragma GCC diagnostic pop
}

int ioreq_vq_notify_needed(struct ioreq_vq *vq)
{
	uint16_t old = vq->signalled_used, flags, event;
	bool valid = vq->signalled_valid;
	int r;

	if (vq->broken)
		return vq->broken;
	if (valid && old == vq->used_idx)
		return 0;
	vq->signalled_used = vq->used_idx;
	vq->signalled_valid = true;
	/* The used idx stored, then the driver's wish loaded: only a full
	 * fence keeps the load from passing the store (and an interrupt from
	 * being lost against a driver that re-enabled them meanwhile). */
	full_fence();
	if (!vq->event_idx) {
		r = get16(vq, &vq->avail, 0, __ATOMIC_RELAXED, &flags);
		return r < 0 ? vq_break(vq, r) : !(flags & AVAIL_F_NO_INTERRUPT);
	}
	if (!valid)
		return 1;
	r = get16(vq, &vq->avail, RING_HDR + 2 * vq->size, __ATOMIC_RELAXED, &event);
	return r < 0 ? vq_break(vq, r) : need_event(event, vq->used_idx, old);
}

int ioreq_vq_enable_kicks(struct ioreq_vq *vq)
{
	uint16_t idx;
	int r;

	if (vq->broken)
		return vq->broken;
	if (vq->event_idx)
		r = put16(vq, &vq->used, RING_HDR + USED_ELEM * vq->size, vq->last_avail, __ATOMIC_RELAXED);
	else
		r = put16(vq, &vq->used, 0, 0, __ATOMIC_RELAXED);
	/* The wish stored, then the avail idx loaded: a chain made available
	 * before the driver saw the wish gets no kick, so it must be seen
	 * here. */
	full_fence();
	if (r == 0)
		r = get16(vq, &vq->avail, 2, __ATOMIC_ACQUIRE, &idx);
	return r < 0 ? vq_break(vq, r) : idx != vq->last_avail;
}

int ioreq_vq_disable_kicks(struct ioreq_vq *vq)
{
	int r = 0;

	if (vq->broken)
		return vq->broken;
	if (!vq->event_idx)
		r = put16(vq, &vq->used, 0, USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
	return r < 0 ? vq_break(vq, r) : 0;
}

uint16_t ioreq_vq_next_avail(const struct ioreq_vq *vq)
{
	return vq->last_avail;
}

const char *ioreq_vq_broken(const struct ioreq_vq *vq)
{
	return vq->broken ? broken_why[-vq->broken] : NULL;
}
