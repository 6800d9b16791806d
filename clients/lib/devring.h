/* The device's side of its request ring (proto/ioreq_ring.h): a thread
 * that takes the requests the broker posts there, has them handled, and
 * writes the replies back, sleeping on its doorbell when there are none
 * (after spinning for poll_us, when the broker asked for that).
 *
 * The broker is trusted here as it is on the socket; the request fields
 * are still checked, since a handler must never see an access the wire
 * could not carry. */
#ifndef IOREQ_DEVRING_H
#define IOREQ_DEVRING_H

#include <stdint.h>

#include "ioreq.pb-c.h"
#include "ioreq/device.h"

struct devring;

/* Handles @a: 0 with *@value set, DEVRING_SENT when the reply went over the
 * socket (after messages the handler sent there), or a negative errno
 * (unhandled). */
#define DEVRING_SENT 1
typedef int (*devring_fn)(void *opaque, const struct ioreq_access *a, uint64_t *value);

/* Maps the ring the Welcome gave (its fds are this process's). */
int devring_open(const Ioreq__Ring *w, struct devring **ret);

/* Stops the thread if it runs; unmaps, closes; NULL is fine. Returns NULL. */
struct devring *devring_free(struct devring *r);

/* The VM was reset (the ring's reset_seq moved). */
typedef void (*devring_reset_fn)(void *opaque);

/* Serves the ring from a thread of its own until devring_stop. */
int devring_start(struct devring *r, devring_fn fn, devring_reset_fn reset, void *opaque);

/* Returns once the thread has stopped (and no handler runs). */
void devring_stop(struct devring *r);

/* One pass over the slots: a reset first if the broker asked for one,
 * then what is pending; rings the broker. Returns how many requests it
 * handled. (The thread's work; tests call it.) */
unsigned devring_serve(struct devring *r, devring_fn fn, devring_reset_fn reset, void *opaque);

#endif
