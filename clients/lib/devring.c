#include "devring.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "ioreq_ring.h"

struct devring {
	struct ring_page *page;
	int fd, doorbell, reply_doorbell;
	unsigned slots;
	int64_t poll_ns;
	int stop;            /* eventfd: wakes the thread to stop */
	atomic_bool quit;
	bool running;
	pthread_t thread;
	devring_fn fn;
	devring_reset_fn reset;
	void *opaque;
	uint32_t reset_seen; /* the reset_seq last acted on */
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int devring_open(const Ioreq__Ring *w, struct devring **ret)
{
	struct devring *r = calloc(1, sizeof(*r));
	void *p;

	if (!r)
		return -ENOMEM;
	r->stop = -1;
	r->fd = w->fd;
	r->doorbell = w->doorbell;
	r->reply_doorbell = w->reply_doorbell;
	r->slots = w->slots;
	r->poll_ns = (int64_t)w->poll_us * 1000;
	p = mmap(NULL, RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd, 0);
	if (p == MAP_FAILED) {
		devring_free(r);
		return -EPROTO;
	}
	r->page = p;
	r->stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->stop < 0 || r->page->h.magic != RING_MAGIC || r->page->h.version != RING_VERSION) {
		int e = r->stop < 0 ? -errno : -EPROTO;

		devring_free(r);
		return e;
	}
	*ret = r;
	return 0;
}

struct devring *devring_free(struct devring *r)
{
	if (!r)
		return NULL;
	devring_stop(r);
	if (r->page)
		munmap(r->page, RING_SIZE);
	if (r->stop >= 0)
		close(r->stop);
	close(r->fd);
	close(r->doorbell);
	close(r->reply_doorbell);
	free(r);
	return NULL;
}

static void ring_bell(int fd)
{
	static const uint64_t one = 1;

	/* EAGAIN: the counter is full, so it is rung already. */
	(void)!write(fd, &one, sizeof(one));
}

/* Slot @v's request, as the wire would carry it: false if it is not one. */
static bool take(const struct ring_slot *s, unsigned v, struct ioreq_access *a)
{
	uint8_t kind = s->kind, size = s->size, write = s->write;

	if (kind > IOREQ_PCICFG || write > 1 || (size != 1 && size != 2 && size != 4 && size != 8))
		return false;
	*a = (struct ioreq_access){
		.id = s->id,
		.vcpu = v,
		.kind = (enum ioreq_kind)kind,
		.write = write,
		.size = size,
		.value = write ? s->value & (size >= 8 ? UINT64_MAX : (UINT64_C(1) << (size * 8)) - 1) : 0,
		.addr = s->addr,
		.offset = s->offset,
		.range = s->range,
		.bdf = s->bdf,
		.reg = s->reg,
	};
	return true;
}

/* A reset the broker asked for since the last look, before any request
 * posted after it (its PENDING was acquired before this load). */
static void check_reset(struct devring *r, devring_reset_fn reset, void *opaque)
{
	uint32_t seq = atomic_load_explicit(&r->page->h.reset_seq, memory_order_acquire);

	if (seq == r->reset_seen)
		return;
	r->reset_seen = seq;
	if (reset)
		reset(opaque);
}

unsigned devring_serve(struct devring *r, devring_fn fn, devring_reset_fn reset, void *opaque)
{
	unsigned n = 0;

	check_reset(r, reset, opaque);
	for (unsigned v = 0; v < r->slots; v++) {
		struct ring_slot *s = &r->page->slot[v];
		struct ioreq_access a = { .id = s->id };
		uint64_t value = 0;
		int e = -EINVAL;

		if (atomic_load_explicit(&s->state, memory_order_acquire) != RING_PENDING)
			continue;
		check_reset(r, reset, opaque);
		atomic_store_explicit(&s->state, RING_PROCESSING, memory_order_relaxed);
		if (take(s, v, &a))
			e = fn(opaque, &a, &value);
		atomic_store_explicit(&s->reply_id, a.id, memory_order_relaxed);
		atomic_store_explicit(&s->reply, e || a.write ? 0 : value, memory_order_relaxed);
		atomic_store_explicit(&s->status, e < 0 ? RING_UNHANDLED : e == DEVRING_SENT ? RING_SENT : RING_OK,
				      memory_order_relaxed);
		/* Sequentially consistent, before reading the broker's flag. */
		atomic_store(&s->state, RING_COMPLETE);
		if (!atomic_load(&r->page->h.broker_polling))
			ring_bell(r->reply_doorbell);
		n++;
	}
	return n;
}

static bool pending(struct devring *r)
{
	for (unsigned v = 0; v < r->slots; v++)
		if (atomic_load(&r->page->slot[v].state) == RING_PENDING)
			return true;
	return false;
}

/* Serves; spins up to poll_ns after the last request; then says it sleeps,
 * looks once more, and sleeps on the doorbell. */
static void *ring_main(void *arg)
{
	struct devring *r = arg;
	struct ring_header *h = &r->page->h;
	int64_t idle_since = now_ns();
	unsigned spins = 0;
	uint64_t ticks;

	for (;;) {
		struct pollfd p[2] = { { .fd = r->doorbell, .events = POLLIN }, { .fd = r->stop, .events = POLLIN } };

		if (devring_serve(r, r->fn, r->reset, r->opaque)) {
			idle_since = r->poll_ns ? now_ns() : 0;
			continue;
		}
		/* Only with nothing pending: what was posted before the stop
		 * is answered, as messages before a Shutdown are. */
		if (atomic_load_explicit(&r->quit, memory_order_relaxed))
			break;
		if (r->poll_ns && (++spins & 63 || now_ns() - idle_since < r->poll_ns)) {
			ring_cpu_relax();
			continue;
		}
		atomic_store(&h->device_waiting, 1);
		if (!pending(r) && poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		atomic_store(&h->device_waiting, 0);
		(void)!read(r->doorbell, &ticks, sizeof(ticks));
		idle_since = r->poll_ns ? now_ns() : 0;
	}
	return NULL;
}

int devring_start(struct devring *r, devring_fn fn, devring_reset_fn reset, void *opaque)
{
	int e;

	if (r->running)
		return -EBUSY;
	r->fn = fn;
	r->reset = reset;
	r->opaque = opaque;
	atomic_store(&r->quit, false);
	e = pthread_create(&r->thread, NULL, ring_main, r);
	if (e)
		return -e;
	r->running = true;
	return 0;
}

void devring_stop(struct devring *r)
{
	if (!r->running)
		return;
	atomic_store(&r->quit, true);
	ring_bell(r->stop);
	pthread_join(r->thread, NULL);
	r->running = false;
	(void)!read(r->stop, &(uint64_t){ 0 }, sizeof(uint64_t));
}
