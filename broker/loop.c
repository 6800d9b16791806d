#include "loop.h"

#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_EVENTS 32

struct loop_source {
	int fd;
	loop_fd_fn fn;
	void *opaque;
	bool dead;
	struct loop_source *prev, *next; /* the live ones, or the dead ones of a batch */
};

struct loop {
	int epfd;
	int wake;                 /* eventfd: jobs queued, or quit */
	pthread_t thread;
	bool started;
	_Atomic bool quit;
	pthread_mutex_t lock;     /* the job queue */
	struct loop_job *head, **tail;
	/* Watched; and removed during a batch of events, freed after it. */
	struct loop_source *live, *dead;
};

int loop_new(struct loop **ret)
{
	struct loop *l = calloc(1, sizeof(*l));
	struct epoll_event ev = { .events = EPOLLIN };
	int r;

	if (!l)
		return -ENOMEM;
	l->tail = &l->head;
	pthread_mutex_init(&l->lock, NULL);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->epfd < 0 || l->wake < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake, &ev) < 0) {
		r = -errno;
		loop_free(l);
		return r;
	}
	*ret = l;
	return 0;
}

static void free_list(struct loop_source **head)
{
	while (*head) {
		struct loop_source *s = *head;

		*head = s->next;
		free(s);
	}
}

struct loop *loop_free(struct loop *l)
{
	if (!l)
		return NULL;
	if (l->started) {
		atomic_store(&l->quit, true);
		eventfd_write(l->wake, 1);
		pthread_join(l->thread, NULL);
	}
	/* The loop owns its sources: those nobody removed go with it. */
	free_list(&l->dead);
	free_list(&l->live);
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->wake >= 0)
		close(l->wake);
	pthread_mutex_destroy(&l->lock);
	free(l);
	return NULL;
}

int loop_add(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *opaque, struct loop_source **ret)
{
	struct loop_source *s = calloc(1, sizeof(*s));
	struct epoll_event ev = { .events = events };
	int r;

	if (!s)
		return -ENOMEM;
	s->fd = fd;
	s->fn = fn;
	s->opaque = opaque;
	ev.data.ptr = s;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		r = -errno;
		free(s);
		return r;
	}
	s->next = l->live;
	if (l->live)
		l->live->prev = s;
	l->live = s;
	*ret = s;
	return 0;
}

struct loop_source *loop_remove(struct loop *l, struct loop_source *s)
{
	if (!s)
		return NULL;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	if (s->prev)
		s->prev->next = s->next;
	else
		l->live = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->dead = true;
	s->prev = NULL;
	s->next = l->dead;
	l->dead = s;
	return NULL;
}

void loop_post(struct loop *l, struct loop_job *job)
{
	bool first;

	pthread_mutex_lock(&l->lock);
	if (job->queued) {
		pthread_mutex_unlock(&l->lock);
		return;
	}
	job->queued = true;
	job->next = NULL;
	first = !l->head;
	*l->tail = job;
	l->tail = &job->next;
	pthread_mutex_unlock(&l->lock);
	if (first)
		eventfd_write(l->wake, 1);
}

static void run_jobs(struct loop *l)
{
	for (;;) {
		struct loop_job *job;

		pthread_mutex_lock(&l->lock);
		job = l->head;
		if (job) {
			l->head = job->next;
			if (!l->head)
				l->tail = &l->head;
			job->queued = false;
		}
		pthread_mutex_unlock(&l->lock);
		if (!job)
			return;
		job->fn(job->arg);
	}
}

/* A loop_call in flight: the caller waits on its own stack frame. */
struct call {
	struct loop_job job;
	loop_job_fn fn;
	void *arg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void run_call(void *arg)
{
	struct call *c = arg;

	c->fn(c->arg);
	pthread_mutex_lock(&c->lock);
	c->done = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void loop_call(struct loop *l, loop_job_fn fn, void *arg)
{
	struct call c = { .job = { .fn = run_call, .arg = &c }, .fn = fn, .arg = arg };

	if (!l->started || loop_is_current(l)) {
		fn(arg);
		return;
	}
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	loop_post(l, &c.job);
	pthread_mutex_lock(&c.lock);
	while (!c.done)
		pthread_cond_wait(&c.cond, &c.lock);
	pthread_mutex_unlock(&c.lock);
	pthread_cond_destroy(&c.cond);
	pthread_mutex_destroy(&c.lock);
}

/* The loop whose thread this is. */
static __thread const struct loop *current;

bool loop_is_current(const struct loop *l)
{
	return current == l;
}

static void *loop_thread(void *arg)
{
	struct loop *l = arg;
	struct epoll_event ev[MAX_EVENTS];

	current = l;
	while (!atomic_load(&l->quit)) {
		int n = epoll_wait(l->epfd, ev, MAX_EVENTS, -1);

		for (int i = 0; i < n; i++) {
			struct loop_source *s = ev[i].data.ptr;
			eventfd_t drop;

			if (!s) {
				eventfd_read(l->wake, &drop);
				run_jobs(l);
				continue;
			}
			if (!s->dead)
				s->fn(s->opaque, ev[i].events);
		}
		free_list(&l->dead);
	}
	/* Jobs posted while we stopped still run: their posters may wait. */
	run_jobs(l);
	return NULL;
}

int loop_start(struct loop *l, const char *name)
{
	sigset_t all, old;
	int r;

	/* Signals belong to the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	l->started = true;
	r = -pthread_create(&l->thread, NULL, loop_thread, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		l->started = false;
		return r;
	}
	pthread_setname_np(l->thread, name);
	return 0;
}
