#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clock.h"

struct ring {
	pthread_mutex_t lock; /* everything below */
	struct ring_page *page; /* NULL: none open */
	int memfd, doorbell, reply_doorbell;
	uint32_t gen;
	unsigned slots;
	bool enabled;
	uint64_t posted[RING_SLOTS]; /* the id in each slot until collected; 0: free */
};

int ring_new(struct ring **ret)
{
	struct ring *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	r->memfd = r->doorbell = r->reply_doorbell = -1;
	*ret = r;
	return 0;
}

static void close_locked(struct ring *r)
{
	if (r->page)
		munmap(r->page, RING_SIZE);
	r->page = NULL;
	r->enabled = false;
	for (int *fd = &r->memfd; fd <= &r->reply_doorbell; fd++) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	memset(r->posted, 0, sizeof(r->posted));
}

struct ring *ring_free(struct ring *r)
{
	if (!r)
		return NULL;
	close_locked(r);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return NULL;
}

/* A sealed page: the device can neither shrink it (the broker would
 * fault on its mapping) nor grow it. */
static int new_page(int *ret_fd, struct ring_page **ret_page)
{
	void *p;
	int fd, r;

	fd = memfd_create("ioreq-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, RING_SIZE) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	p = mmap(NULL, RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	*ret_page = p;
	return 0;
}

int ring_open(struct ring *r, uint32_t gen, unsigned slots, uint32_t poll_us)
{
	int e = 0;

	if (!slots || slots > RING_SLOTS || poll_us > RING_POLL_US_MAX)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	close_locked(r);
	e = new_page(&r->memfd, &r->page);
	if (e < 0)
		goto out;
	/* Non-blocking, for both sides (one open file each): a device that
	 * fills a counter never makes the broker wait. */
	r->doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->reply_doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->doorbell < 0 || r->reply_doorbell < 0) {
		e = -errno;
		close_locked(r);
		goto out;
	}
	r->page->h.magic = RING_MAGIC;
	r->page->h.version = RING_VERSION;
	r->page->h.slots = slots;
	r->page->h.poll_us = poll_us;
	r->gen = gen;
	r->slots = slots;
out:
	pthread_mutex_unlock(&r->lock);
	return e;
}

void ring_fds(const struct ring *r, int *ret_memfd, int *ret_doorbell, int *ret_reply_doorbell)
{
	*ret_memfd = r->memfd;
	*ret_doorbell = r->doorbell;
	*ret_reply_doorbell = r->reply_doorbell;
}

void ring_enable(struct ring *r, uint32_t gen)
{
	pthread_mutex_lock(&r->lock);
	if (r->page && r->gen == gen)
		r->enabled = true;
	pthread_mutex_unlock(&r->lock);
}

void ring_close(struct ring *r)
{
	pthread_mutex_lock(&r->lock);
	close_locked(r);
	pthread_mutex_unlock(&r->lock);
}

int ring_post(struct ring *r, uint32_t gen, unsigned slot, uint64_t id, const struct access *a, uint32_t tag,
	      uint64_t offset)
{
	static const uint64_t one = 1;
	struct access_wire w = access_wire(a, offset);
	struct ring_slot *s;
	int e = 0;

	pthread_mutex_lock(&r->lock);
	if (!r->page || r->gen != gen) {
		e = -ESTALE;
		goto out;
	}
	if (!r->enabled || slot >= r->slots) {
		e = -ENOTCONN;
		goto out;
	}
	if (r->posted[slot]) {
		e = -EBUSY;
		goto out;
	}
	s = &r->page->slot[slot];
	s->id = id;
	s->kind = (uint8_t)w.kind;
	s->write = a->write;
	s->size = a->size;
	s->value = a->value;
	s->range = tag;
	s->addr = w.addr;
	s->offset = w.offset;
	s->bdf = w.bdf;
	s->reg = w.reg;
	r->posted[slot] = id;
	/* Sequentially consistent, before reading its flag (proto/ioreq_ring.h). */
	atomic_store(&s->state, RING_PENDING);
	if (atomic_load(&r->page->h.device_waiting) && write(r->doorbell, &one, sizeof(one)) < 0 && errno != EAGAIN)
		e = -errno; /* (EAGAIN: the counter is full, so it is rung) */
out:
	pthread_mutex_unlock(&r->lock);
	return e;
}

int ring_reset(struct ring *r, uint32_t gen)
{
	static const uint64_t one = 1;
	int e = 0;

	pthread_mutex_lock(&r->lock);
	if (!r->page || r->gen != gen || !r->enabled) {
		e = -ENOTCONN;
		goto out;
	}
	atomic_fetch_add(&r->page->h.reset_seq, 1);
	if (atomic_load(&r->page->h.device_waiting) && write(r->doorbell, &one, sizeof(one)) < 0 && errno != EAGAIN)
		e = -errno;
out:
	pthread_mutex_unlock(&r->lock);
	return e;
}

/* Looks at slot @v once: 1 with *@out when the device answered what was
 * posted there (or said it answered on its socket), 0 while it has not,
 * -EPROTO for a lie. Under the lock, with something posted in @v. */
static int take_locked(struct ring *r, unsigned v, struct ring_reply *out, const char **why)
{
	struct ring_slot *s = &r->page->slot[v];
	uint32_t state = atomic_load(&s->state), status;
	uint64_t id;

	switch (state) {
	case RING_PENDING:
	case RING_PROCESSING:
		return 0;
	case RING_COMPLETE:
		break;
	case RING_FREE:
		*why = "freed a slot of its request ring that held a request";
		return -EPROTO;
	default:
		*why = "wrote an unknown state into its request ring";
		return -EPROTO;
	}
	/* Each field once, into locals: the device may be writing them still. */
	id = atomic_load_explicit(&s->reply_id, memory_order_relaxed);
	status = atomic_load_explicit(&s->status, memory_order_relaxed);
	out->value = atomic_load_explicit(&s->reply, memory_order_relaxed);
	if (id != r->posted[v]) {
		*why = "answered another request than the one in its ring's slot";
		return -EPROTO;
	}
	if (status != RING_OK && status != RING_UNHANDLED && status != RING_SENT) {
		*why = "wrote an unknown status into its request ring";
		return -EPROTO;
	}
	out->id = id;
	out->ok = status == RING_OK;
	out->sent = status == RING_SENT;
	r->posted[v] = 0;
	atomic_store_explicit(&s->state, RING_FREE, memory_order_relaxed);
	return 1;
}

/* Every answered slot, the reply doorbell quieted first (a ring after
 * this look is not lost). Under the lock, with a page. */
static int collect_locked(struct ring *r, struct ring_reply *out, size_t *ret_n, const char **why)
{
	uint64_t ticks;
	size_t n = 0;
	int e = 0;

	(void)!read(r->reply_doorbell, &ticks, sizeof(ticks));
	for (unsigned v = 0; v < r->slots && e >= 0; v++)
		if (r->posted[v] && (e = take_locked(r, v, &out[n], why)) > 0)
			n++;
	*ret_n = e < 0 ? 0 : n;
	return e < 0 ? e : 0;
}

int ring_collect(struct ring *r, struct ring_reply *out, size_t *ret_n, const char **why)
{
	int e = -ESTALE;

	*ret_n = 0;
	pthread_mutex_lock(&r->lock);
	if (r->page)
		e = collect_locked(r, out, ret_n, why);
	pthread_mutex_unlock(&r->lock);
	return e;
}

int ring_wait(struct ring *r, unsigned slot, uint64_t id, int64_t until_ns, struct ring_reply *out, size_t *ret_n,
	      const char **why)
{
	struct ring_slot *s;
	int e = 0;

	*ret_n = 0;
	pthread_mutex_lock(&r->lock);
	if (!id || !r->page || slot >= r->slots || r->posted[slot] != id)
		goto out;
	s = &r->page->slot[slot];
	atomic_store(&r->page->h.broker_polling, 1);
	for (unsigned spins = 0;; spins++) {
		uint32_t state = atomic_load_explicit(&s->state, memory_order_relaxed);

		if (state != RING_PENDING && state != RING_PROCESSING)
			break;
		/* The clock only every few spins: it costs more than a look. */
		if (!(spins & 63) && clock_now_ns() >= until_ns)
			break;
		ring_cpu_relax();
	}
	/* Sequentially consistent, then one more look (proto/ioreq_ring.h): the
	 * device either saw the flag clear and rings, or is seen here. Every
	 * slot: what the device answered meanwhile for other vCPUs came
	 * without a ring too. */
	atomic_store(&r->page->h.broker_polling, 0);
	e = collect_locked(r, out, ret_n, why);
out:
	pthread_mutex_unlock(&r->lock);
	return e;
}
