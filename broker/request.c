#include "request.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define ID_IDLE 0
#define ID_BUSY 1
#define ID_VCPU(id) ((unsigned)((id) & (REQUEST_MAX - 1)))
#define ID_SEQ(id) ((id) >> 4)

/* One vCPU's request. The snapshot and route are written by the VM thread
 * while the id is IDLE and read by anyone holding the id: request_view
 * reads them between two loads of the id, like a seqlock whose sequence is
 * the id, and discards what it read if the id moved. They are atomic words
 * so that such a discarded read is a stale value, not a data race. */
struct request {
	_Atomic uint64_t id;
	_Atomic uint64_t kind;   /* type | write << 8 | size << 16 | bdf << 32 */
	_Atomic uint64_t addr;
	_Atomic uint64_t value;
	_Atomic(void *) owner;
	_Atomic uint32_t tag;
	_Atomic uint64_t offset;
	_Atomic uint32_t sent_gen; /* the owner's instance it went to; 0: none */
	_Atomic int64_t deadline_ns;
	/* Written before the id is published, read by its completer. */
	int64_t published_ns;
};

struct request_table {
	struct hsm_vm *hsm;
	unsigned vcpus;
	request_done_fn done;
	void *opaque;
	_Atomic uint32_t held;
	_Atomic uint64_t next_seq;
	/* Completers between winning an id and releasing the vCPU. */
	_Atomic unsigned active;
	_Atomic bool draining;
	int timer;
	_Atomic int64_t armed_ns;  /* the timer's expiry; 0: not armed */
	pthread_mutex_t lock;      /* the timer's re-arming, the drain's wait */
	pthread_cond_t quiet;
	struct request r[REQUEST_MAX];
};

int request_table_new(unsigned vcpus, request_done_fn done, void *opaque, struct request_table **ret)
{
	struct request_table *t;

	if (vcpus == 0 || vcpus > REQUEST_MAX)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->timer < 0) {
		int r = -errno;

		free(t);
		return r;
	}
	t->vcpus = vcpus;
	t->done = done;
	t->opaque = opaque;
	atomic_init(&t->next_seq, 1);
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->quiet, NULL);
	*ret = t;
	return 0;
}

struct request_table *request_table_free(struct request_table *t)
{
	if (!t)
		return NULL;
	close(t->timer);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->quiet);
	free(t);
	return NULL;
}

void request_table_set_hsm(struct request_table *t, struct hsm_vm *hsm)
{
	t->hsm = hsm;
}

const _Atomic uint32_t *request_held(const struct request_table *t)
{
	return &t->held;
}

int request_timer_fd(const struct request_table *t)
{
	return t->timer;
}

/* ---- the timer ---- */

static void arm_locked(struct request_table *t, int64_t when)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = when / 1000000000LL, .tv_nsec = when % 1000000000LL },
	};

	atomic_store(&t->armed_ns, when);
	timerfd_settime(t->timer, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Deadlines of one device grow with time, so the timer is nearly always
 * armed already for an earlier one: the lock is rarely taken. */
static void arm_by(struct request_table *t, int64_t when)
{
	int64_t armed = atomic_load(&t->armed_ns);

	if (armed && armed <= when)
		return;
	pthread_mutex_lock(&t->lock);
	armed = atomic_load(&t->armed_ns);
	if (!armed || when < armed)
		arm_locked(t, when);
	pthread_mutex_unlock(&t->lock);
}

/* ---- taking and publishing (the VM thread) ---- */

int request_take(struct request_table *t, unsigned vcpu, struct access *a)
{
	const struct acrn_io_request *slot = &t->hsm->page->req_slot[vcpu];

	/* acrn-dm's rule: PROCESSING, and not taken by an in-HSM client. */
	if (__atomic_load_n(&slot->processed, __ATOMIC_ACQUIRE) != ACRN_IOREQ_STATE_PROCESSING ||
	    __atomic_load_n(&slot->kernel_handled, __ATOMIC_RELAXED))
		return -EAGAIN;
	if (atomic_load_explicit(&t->r[vcpu].id, memory_order_acquire) != ID_IDLE)
		return -EBUSY;
	return access_decode(slot, a);
}

void request_finish(struct request_table *t, unsigned vcpu, const struct access *a, uint64_t value, bool fallback)
{
	if (a)
		access_finish(&t->hsm->page->req_slot[vcpu], a, value, fallback);
	hsm_complete(t->hsm, vcpu);
}

static uint64_t pack_kind(const struct access *a)
{
	return a->type | (uint64_t)a->write << 8 | (uint64_t)a->size << 16 | (uint64_t)a->bdf << 32;
}

static void unpack_kind(uint64_t w, struct access *a)
{
	a->type = w & 0xff;
	a->write = (w >> 8) & 1;
	a->size = (w >> 16) & 0xff;
	a->bdf = (uint16_t)(w >> 32);
}

uint64_t request_publish(struct request_table *t, unsigned vcpu, const struct access *a,
			 const struct request_route *route, int64_t deadline_ns)
{
	struct request *r = &t->r[vcpu];
	uint64_t id = atomic_fetch_add_explicit(&t->next_seq, 1, memory_order_relaxed) << 4 | vcpu;

	/* request_take saw IDLE: whoever released the id is done with the
	 * snapshot. The fence orders that before our writes, for readers. */
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&r->kind, pack_kind(a), memory_order_relaxed);
	atomic_store_explicit(&r->addr, a->addr, memory_order_relaxed);
	atomic_store_explicit(&r->value, a->value, memory_order_relaxed);
	atomic_store_explicit(&r->owner, route->owner, memory_order_relaxed);
	atomic_store_explicit(&r->tag, route->tag, memory_order_relaxed);
	atomic_store_explicit(&r->offset, route->offset, memory_order_relaxed);
	atomic_store_explicit(&r->sent_gen, 0, memory_order_relaxed);
	atomic_store_explicit(&r->deadline_ns, deadline_ns, memory_order_relaxed);
	r->published_ns = clock_now_ns();
	atomic_fetch_or(&t->held, 1u << vcpu);
	/* seq_cst: a device's down() reads the id after changing its state,
	 * the VM thread reads that state after this (vm.c handle). */
	atomic_store(&r->id, id);
	arm_by(t, deadline_ns);
	return id;
}

/* ---- reading a published request (any thread) ---- */

static struct request *of(struct request_table *t, uint64_t id)
{
	unsigned vcpu = ID_VCPU(id);

	return id > ID_BUSY && vcpu < t->vcpus ? &t->r[vcpu] : NULL;
}

static bool read_view(struct request *r, uint64_t id, struct access *a, struct request_route *route, uint32_t *gen)
{
	if (atomic_load_explicit(&r->id, memory_order_acquire) != id)
		return false;
	unpack_kind(atomic_load_explicit(&r->kind, memory_order_relaxed), a);
	a->addr = atomic_load_explicit(&r->addr, memory_order_relaxed);
	a->value = atomic_load_explicit(&r->value, memory_order_relaxed);
	route->owner = atomic_load_explicit(&r->owner, memory_order_relaxed);
	route->tag = atomic_load_explicit(&r->tag, memory_order_relaxed);
	route->offset = atomic_load_explicit(&r->offset, memory_order_relaxed);
	*gen = atomic_load_explicit(&r->sent_gen, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&r->id, memory_order_relaxed) == id;
}

bool request_view(struct request_table *t, uint64_t id, struct access *a, struct request_route *route)
{
	struct request *r = of(t, id);
	uint32_t gen;

	return r && read_view(r, id, a, route, &gen);
}

uint64_t request_id_of(struct request_table *t, unsigned vcpu)
{
	uint64_t id = vcpu < t->vcpus ? atomic_load(&t->r[vcpu].id) : ID_IDLE;

	return id > ID_BUSY ? id : 0;
}

bool request_mark_sent(struct request_table *t, uint64_t id, uint32_t gen)
{
	struct request *r = of(t, id);
	uint32_t sent;

	if (!r || atomic_load(&r->id) != id)
		return false;
	sent = atomic_load(&r->sent_gen);
	/* A stale sent_gen of a later request cannot match: the id is checked
	 * again by whoever completes, and a request sent twice to one instance
	 * is what this prevents, not one sent to a wrong one. */
	return sent != gen && atomic_compare_exchange_strong(&r->sent_gen, &sent, gen) && atomic_load(&r->id) == id;
}

/* ---- completing ---- */

static void wake_drain(struct request_table *t)
{
	if (!atomic_load(&t->draining))
		return;
	pthread_mutex_lock(&t->lock);
	pthread_cond_broadcast(&t->quiet);
	pthread_mutex_unlock(&t->lock);
}

bool request_complete(struct request_table *t, uint64_t id, uint64_t value, enum request_end how)
{
	struct request *r = of(t, id);
	uint64_t expect = id;
	struct request_done d;
	struct access a;
	unsigned vcpu;

	if (!r)
		return false;
	/* Counted before the swap: a drain that sees no id in flight and no
	 * completer active knows nobody is about to touch the HSM VM. */
	atomic_fetch_add(&t->active, 1);
	if (!atomic_compare_exchange_strong(&r->id, &expect, ID_BUSY)) {
		atomic_fetch_sub(&t->active, 1);
		wake_drain(t);
		return false;
	}
	vcpu = ID_VCPU(id);
	unpack_kind(atomic_load_explicit(&r->kind, memory_order_relaxed), &a);
	d = (struct request_done){
		.id = id,
		.vcpu = vcpu,
		.owner = atomic_load_explicit(&r->owner, memory_order_relaxed),
		.published_ns = r->published_ns,
		.how = how,
	};
	/* Before the vCPU is released: its next request must find what this
	 * one held (the device's in-flight count) already given back. */
	if (t->done)
		t->done(t->opaque, &d);
	access_finish(&t->hsm->page->req_slot[vcpu], &a, value, how != REQUEST_ANSWERED);
	hsm_complete(t->hsm, vcpu);
	/* IDLE before the held bit: the VM thread takes the vCPU's next
	 * request only once it sees the bit clear, and then finds IDLE. */
	atomic_store_explicit(&r->id, ID_IDLE, memory_order_release);
	atomic_fetch_and(&t->held, ~(1u << vcpu));
	hsm_kick(t->hsm);
	atomic_fetch_sub(&t->active, 1);
	wake_drain(t);
	return true;
}

int request_reply(struct request_table *t, uint64_t id, const void *owner, uint32_t gen, uint64_t value, bool ok)
{
	struct request *r = of(t, id);
	struct request_route route;
	struct access a;
	uint32_t sent;

	if (!r || ID_SEQ(id) >= atomic_load(&t->next_seq))
		return -EBADMSG;
	if (!read_view(r, id, &a, &route, &sent) || route.owner != owner || sent != gen)
		return -ENOENT;
	if (ok && value > access_all_ones(a.size)) {
		request_complete(t, id, 0, REQUEST_FAILED);
		return -ERANGE;
	}
	return request_complete(t, id, value, ok ? REQUEST_ANSWERED : REQUEST_UNHANDLED) ? 0 : -ENOENT;
}

void request_fail_owner(struct request_table *t, const void *owner, enum request_end how)
{
	for (unsigned v = 0; v < t->vcpus; v++) {
		struct request *r = &t->r[v];
		uint64_t id = atomic_load(&r->id);

		if (id > ID_BUSY && atomic_load(&r->owner) == owner)
			request_complete(t, id, 0, how);
	}
}

void request_expire(struct request_table *t, int64_t now_ns)
{
	int64_t next = 0;

	/* The timer fired: nothing is armed until we say so below. */
	pthread_mutex_lock(&t->lock);
	atomic_store(&t->armed_ns, 0);
	pthread_mutex_unlock(&t->lock);
	for (unsigned v = 0; v < t->vcpus; v++) {
		struct request *r = &t->r[v];
		uint64_t id = atomic_load(&r->id);
		int64_t deadline = atomic_load(&r->deadline_ns);

		if (id <= ID_BUSY)
			continue;
		if (deadline <= now_ns) {
			request_complete(t, id, 0, REQUEST_EXPIRED);
			continue;
		}
		/* A stale deadline of a request that completed meanwhile only
		 * makes the timer fire early once. */
		if (!next || deadline < next)
			next = deadline;
	}
	if (next)
		arm_by(t, next);
}

static bool quiet(struct request_table *t)
{
	return !atomic_load(&t->held) && !atomic_load(&t->active);
}

void request_drain(struct request_table *t, int64_t until_ns)
{
	struct timespec until = { .tv_sec = until_ns / 1000000000LL, .tv_nsec = until_ns % 1000000000LL };

	pthread_mutex_lock(&t->lock);
	atomic_store(&t->draining, true);
	while (!quiet(t) && clock_now_ns() < until_ns)
		if (pthread_cond_clockwait(&t->quiet, &t->lock, CLOCK_MONOTONIC, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&t->lock);
	for (unsigned v = 0; v < t->vcpus; v++) {
		uint64_t id = atomic_load(&t->r[v].id);

		if (id > ID_BUSY)
			request_complete(t, id, 0, REQUEST_DRAINED);
	}
	/* Whoever was completing when we looked is done before we return. */
	pthread_mutex_lock(&t->lock);
	while (!quiet(t))
		pthread_cond_wait(&t->quiet, &t->lock);
	atomic_store(&t->draining, false);
	pthread_mutex_unlock(&t->lock);
}
