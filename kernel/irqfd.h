/* irqfds in user space, for the HSMs that live in this process (the sim
 * backend, the fake ACRN HSM of the tests): one thread per VM waits on the
 * registered eventfds and injects each one's interrupt when it is written,
 * as drivers/virt/acrn/irqfd.c does from the eventfd's wait queue.
 *
 * Writes that come faster than the thread wakes up are one interrupt: an
 * edge that is still pending is not raised twice, as with a real line. The
 * count is consumed without blocking (preadv2 RWF_NOWAIT), so a device that
 * reads its own irqfd cannot stall the thread; an eventfd that is already
 * written when it is registered injects at once. */
#ifndef IOREQ_IRQFD_H
#define IOREQ_IRQFD_H

#include "hsm.h"

struct irqfd_relay;

/* Called from the relay's thread, one irqfd at a time. */
typedef void (*irqfd_inject_fn)(void *opaque, const struct hsm_irqfd *f);

/* No thread until the first irqfd is added. */
int irqfd_relay_create(irqfd_inject_fn inject, void *opaque, struct irqfd_relay **ret);

/* @f->fd stays the caller's, open until irqfd_relay_del returns it.
 * -EEXIST when @f->fd's eventfd is registered already (dispatch_same_eventfd). */
int irqfd_relay_add(struct irqfd_relay *r, const struct hsm_irqfd *f);

/* Removes the registration of @fd's eventfd: once it returns, the thread no
 * longer uses that eventfd; returns the fd given to irqfd_relay_add, or
 * -ENOENT. */
int irqfd_relay_del(struct irqfd_relay *r, int fd);

/* Stops the thread (nothing is injected once it returns) and frees the
 * relay; the caller closes its fds. NULL is fine; returns NULL. */
struct irqfd_relay *irqfd_relay_free(struct irqfd_relay *r);

#endif
