/* irqfds in user space: see irqfd.h.
 *
 * The thread sleeps in epoll_wait on the registered eventfds (edge
 * triggered: every write is an edge) and on a wake eventfd of its own, which
 * irqfd_relay_free writes. An event carries the registration's id; the
 * thread looks it up under the lock, so an event for an eventfd removed
 * meanwhile finds nothing and injects nothing. */
#include "irqfd.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dispatch.h"

#define IRQFD_EVENTS 16
/* epoll's data for the wake eventfd: no registration has it. */
#define IRQFD_WAKE UINT64_MAX

struct irqfd_entry {
	uint64_t id;
	struct hsm_irqfd f;
};

struct irqfd_relay {
	irqfd_inject_fn inject;
	void *opaque;
	pthread_mutex_t lock;
	int epfd, wake;
	bool thread;
	pthread_t tid;
	uint64_t next_id;
	size_t n, cap;
	struct irqfd_entry *entries;
};

/* Consumes the count without ever blocking: the eventfd's blocking mode is
 * the device's (one open file), and another reader may have emptied it. */
static void irqfd_consume(int fd)
{
	uint64_t count;
	struct iovec iov = { &count, sizeof(count) };

	(void)!preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
}

static void irqfd_fire(struct irqfd_relay *r, uint64_t id)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		if (r->entries[i].id != id)
			continue;
		irqfd_consume(r->entries[i].f.fd);
		r->inject(r->opaque, &r->entries[i].f);
		break;
	}
	pthread_mutex_unlock(&r->lock);
}

static void *irqfd_main(void *arg)
{
	struct irqfd_relay *r = arg;
	struct epoll_event ev[IRQFD_EVENTS];

	for (;;) {
		int n = epoll_wait(r->epfd, ev, IRQFD_EVENTS, -1);

		for (int i = 0; i < n; i++) {
			if (ev[i].data.u64 == IRQFD_WAKE)
				return NULL;
			irqfd_fire(r, ev[i].data.u64);
		}
	}
}

int irqfd_relay_create(irqfd_inject_fn inject, void *opaque, struct irqfd_relay **ret)
{
	struct irqfd_relay *r = calloc(1, sizeof(*r));
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = IRQFD_WAKE };
	int err;

	if (!r)
		return -ENOMEM;
	r->inject = inject;
	r->opaque = opaque;
	pthread_mutex_init(&r->lock, NULL);
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	r->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->epfd < 0 || r->wake < 0 || epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->wake, &ev) < 0) {
		err = -errno;
		irqfd_relay_free(r);
		return err;
	}
	*ret = r;
	return 0;
}

int irqfd_relay_add(struct irqfd_relay *r, const struct hsm_irqfd *f)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	int err = 0;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		if (dispatch_same_eventfd(r->entries[i].f.fd, f->fd)) {
			err = -EEXIST;
			goto out;
		}
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 8;
		struct irqfd_entry *e = realloc(r->entries, cap * sizeof(*e));

		if (!e) {
			err = -ENOMEM;
			goto out;
		}
		r->entries = e;
		r->cap = cap;
	}
	if (!r->thread) {
		err = -pthread_create(&r->tid, NULL, irqfd_main, r);
		if (err)
			goto out;
		r->thread = true;
	}
	ev.data.u64 = r->next_id;
	r->entries[r->n] = (struct irqfd_entry){ .id = r->next_id++, .f = *f };
	/* Edge triggered, yet an eventfd written already reports at once:
	 * the interrupt it stands for is not lost. */
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, f->fd, &ev) < 0) {
		err = -errno;
		goto out;
	}
	r->n++;
out:
	pthread_mutex_unlock(&r->lock);
	return err;
}

int irqfd_relay_del(struct irqfd_relay *r, int fd)
{
	int ret = -ENOENT;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		if (!dispatch_same_eventfd(r->entries[i].f.fd, fd))
			continue;
		ret = r->entries[i].f.fd;
		epoll_ctl(r->epfd, EPOLL_CTL_DEL, ret, NULL);
		r->entries[i] = r->entries[--r->n];
		break;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

struct irqfd_relay *irqfd_relay_free(struct irqfd_relay *r)
{
	static const uint64_t one = 1;

	if (!r)
		return NULL;
	if (r->thread) {
		(void)!write(r->wake, &one, sizeof(one));
		pthread_join(r->tid, NULL);
	}
	if (r->wake >= 0)
		close(r->wake);
	if (r->epfd >= 0)
		close(r->epfd);
	pthread_mutex_destroy(&r->lock);
	free(r->entries);
	free(r);
	return NULL;
}
