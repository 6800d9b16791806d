/* An event loop run by one thread: file descriptors with callbacks, and
 * work handed to that thread by others.
 *
 * Each VM has one (its "event thread"): its deadline timer, its devices'
 * pidfds, timers and log pipes, and every change to its life (start, stop,
 * reset, restarts) run there, so that nothing of a VM is changed by two
 * threads at once and nothing slow for one VM ever waits behind another. */
#ifndef IOREQ_LOOP_H
#define IOREQ_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_source;

typedef void (*loop_fd_fn)(void *opaque, uint32_t events);
typedef void (*loop_job_fn)(void *arg);

/* Work for the loop's thread, embedded in the object it concerns. A job is
 * queued at most once at a time: posting it again before it ran is a no-op. */
struct loop_job {
	loop_job_fn fn;
	void *arg;
	struct loop_job *next;
	bool queued;  /* under the loop's lock */
};

int loop_new(struct loop **ret);

/* Stops and joins the thread if it runs; NULL is fine. Returns NULL. */
struct loop *loop_free(struct loop *l);

/* Starts the loop's thread, named @name (at most 15 characters). */
int loop_start(struct loop *l, const char *name);

/* Calls @fn(@opaque, revents) on the loop's thread whenever @fd has
 * @events (EPOLL*). Only on the loop's thread, or before loop_start. The
 * loop does not own @fd. */
int loop_add(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *opaque, struct loop_source **ret);

/* Stops watching; an event already collected for it is dropped. Only on
 * the loop's thread, or once it has stopped. NULL is fine. Returns NULL. */
struct loop_source *loop_remove(struct loop *l, struct loop_source *s);

/* Queues @job for the loop's thread. Any thread, never blocks. */
void loop_post(struct loop *l, struct loop_job *job);

/* Runs @fn(@arg) on the loop's thread and returns when it has; on the
 * loop's own thread, runs it at once. */
void loop_call(struct loop *l, loop_job_fn fn, void *arg);

/* Whether the caller is the loop's thread. */
bool loop_is_current(const struct loop *l);

#endif
