/* Split virtqueues over the guest's RAM (ioreq/virtq.h).
 *
 * The rings are shared with a guest that may be hostile and whose vCPUs
 * write them while the device reads: every value is loaded exactly once
 * into a local and checked there, never re-read after the check. Ordering
 * with the driver follows the spec's barriers: the available idx is loaded
 * with acquire before the entries it publishes; the used idx is stored with
 * release after the elements it publishes; a full fence separates a store
 * the driver must see from the load of what the driver decided (used idx
 * then used_event, avail_event then avail idx). */
#include "ioreq/virtq.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct ioreq_vq {
	const struct ioreq_mem *mem;
	uint16_t mask;               /* size - 1 */
	uint32_t size;
	bool event_idx, indirect;
	const uint8_t *desc;
	const uint8_t *avail;        /* flags, idx, ring[size], used_event */
	uint8_t *used;               /* flags, idx, ring[size], avail_event */
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

/* A ring of @len bytes at @gpa, aligned (in the guest and in our mapping,
 * for the atomic accesses) and wholly in one region. */
static int ring_map(const struct ioreq_mem *mem, uint64_t gpa, uint64_t len, unsigned align, bool write,
		    void **ret)
{
	void *p;

	if (gpa % align)
		return -EINVAL;
	p = ioreq_mem_ptr(mem, gpa, len, write);
	if (!p)
		return -EFAULT;
	if ((uintptr_t)p % align)
		return -EINVAL;
	*ret = p;
	return 0;
}

int ioreq_vq_new(const struct ioreq_mem *mem, const struct ioreq_vq_config *cfg, struct ioreq_vq **ret)
{
	void *desc, *avail, *used;
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
	free(vq);
	return NULL;
}

/* Where a chain's buffers go as it is walked. */
struct walk {
	struct iovec *iov;
	unsigned cap, n;
	bool writable;               /* a device-writable buffer seen */
	struct ioreq_vq_chain *chain;
};

/* The longest prefix of [@gpa, @gpa + @len) that one region holds, in
 * *@ret_n, and where it is (NULL: none). A translation holds for every
 * prefix of a range it holds for: the prefix is found by bisection. */
static void *mem_piece(const struct ioreq_mem *mem, uint64_t gpa, uint64_t len, bool write, uint64_t *ret_n)
{
	uint64_t lo = 0, hi = len;
	void *p = ioreq_mem_ptr(mem, gpa, len, write);

	if (p) {
		*ret_n = len;
		return p;
	}
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (ioreq_mem_ptr(mem, gpa, mid, write))
			lo = mid;
		else
			hi = mid;
	}
	*ret_n = lo;
	return ioreq_mem_ptr(mem, gpa, lo, write);
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
		uint64_t n;
		void *p = mem_piece(vq->mem, gpa, left, write, &n);

		if (!p)
			return -EFAULT;
		if (w->n == w->cap)
			return -ENOBUFS;
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
	const uint8_t *table = vq->desc;
	uint32_t count = vq->size, seen = 0, i = head;
	bool nested = false;

	for (;;) {
		struct desc d;
		int r;

		if (i >= count)
			return -ERANGE;
		if (++seen > count)
			return -ELOOP;
		d = desc_load(table + (size_t)i * DESC_SIZE);
		if (d.flags & DESC_F_INDIRECT) {
			/* Its F_WRITE means nothing (2.7.5.3.2). */
			if (nested)
				return -EMLINK;
			if (!vq->indirect || (d.flags & DESC_F_NEXT))
				return -EPROTO;
			if (!d.len || d.len % DESC_SIZE || d.len / DESC_SIZE > IOREQ_VQ_MAX_SIZE)
				return -EBADMSG;
			table = ioreq_mem_ptr(vq->mem, d.addr, d.len, false);
			if (!table)
				return -EFAULT;
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
		uint16_t idx = load16(vq->avail + 2, __ATOMIC_ACQUIRE);

		if ((uint16_t)(idx - vq->last_avail) > vq->size)
			return vq_break(vq, -EOVERFLOW);
		vq->shadow_avail = idx;
		if (idx == vq->last_avail)
			return 0;
	}
	if (vq->in_flight == vq->size)
		return vq_break(vq, -ENOSPC);
	head = load16(vq->avail + RING_HDR + 2 * (vq->last_avail & vq->mask), __ATOMIC_RELAXED);
	*ret = (struct ioreq_vq_chain){ .head = head };
	r = walk_chain(vq, head, &w);
	if (r < 0)
		return vq_break(vq, r);
	ret->n_in = w.n - ret->n_out;
	vq->last_avail++;
	vq->in_flight++;
	return 1;
}

int ioreq_vq_push(struct ioreq_vq *vq, uint16_t head, uint32_t len)
{
	uint8_t *elem;

	if (vq->broken)
		return vq->broken;
	if (head >= vq->size || !vq->in_flight)
		return -EINVAL;
	elem = vq->used + RING_HDR + USED_ELEM * (vq->used_idx & vq->mask);
	store32(elem, head);
	store32(elem + 4, len);
	vq->used_idx++;
	store16(vq->used + 2, vq->used_idx, __ATOMIC_RELEASE);
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
	uint16_t old = vq->signalled_used;
	bool valid = vq->signalled_valid;

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
	if (!vq->event_idx)
		return !(load16(vq->avail, __ATOMIC_RELAXED) & AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return 1;
	return need_event(load16(vq->avail + RING_HDR + 2 * vq->size, __ATOMIC_RELAXED), vq->used_idx, old);
}

int ioreq_vq_enable_kicks(struct ioreq_vq *vq)
{
	if (vq->broken)
		return vq->broken;
	if (vq->event_idx)
		store16(vq->used + RING_HDR + USED_ELEM * vq->size, vq->last_avail, __ATOMIC_RELAXED);
	else
		store16(vq->used, 0, __ATOMIC_RELAXED);
	/* The wish stored, then the avail idx loaded: a chain made available
	 * before the driver saw the wish gets no kick, so it must be seen
	 * here. */
	full_fence();
	return load16(vq->avail + 2, __ATOMIC_ACQUIRE) != vq->last_avail;
}

int ioreq_vq_disable_kicks(struct ioreq_vq *vq)
{
	if (vq->broken)
		return vq->broken;
	if (!vq->event_idx)
		store16(vq->used, USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
	return 0;
}

uint16_t ioreq_vq_next_avail(const struct ioreq_vq *vq)
{
	return vq->last_avail;
}

const char *ioreq_vq_broken(const struct ioreq_vq *vq)
{
	return vq->broken ? broken_why[-vq->broken] : NULL;
}
