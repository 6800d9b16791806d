/* The broker's side of a device's request ring (proto/ioreq_ring.h): the fast
 * path for requests, beside the device's nng socket.
 *
 * One ring object per device, for its whole life; each instance gets a
 * fresh page and fresh eventfds (ring_open), so nothing of one instance
 * reaches the next. Requests go into the ring only once the instance said
 * it serves one and was welcomed (ring_enable); otherwise, and while a
 * vCPU's slot still holds an earlier request the device never answered,
 * they go over nng (ring_post says which).
 *
 * The device is untrusted. The broker keeps its own record of what it
 * posted in each slot and never reads back what it wrote; it reads each
 * reply field once, and a reply that does not match what it posted, an
 * unknown state or status, or a slot freed behind its back is corruption:
 * ring_collect says so and the caller cuts the device off.
 *
 * Threads: the VM thread posts (and, with poll_us, spins for the reply);
 * the VM's event thread opens, enables, collects on the reply doorbell and
 * closes. One mutex, shared by those two threads of one VM only, guards
 * the page's mapping and the record; nothing under it blocks but a
 * doorbell's write. */
#ifndef IOREQ_BROKER_RING_H
#define IOREQ_BROKER_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access.h"
#include "ioreq_ring.h"

struct ring;

/* One answered request, as collected. */
struct ring_reply {
	uint64_t id;
	uint64_t value;
	bool ok;   /* false: the device did not handle it */
	bool sent; /* the device answered it on its socket instead (RING_SENT):
		    * the slot is free, the reply comes as a message */
};

int ring_new(struct ring **ret);

/* Closes what is open; NULL is fine. Returns NULL. */
struct ring *ring_free(struct ring *r);

/* A fresh page with @slots slots (the VM's vCPUs), for instance @gen,
 * whose device spins up to @poll_us before sleeping; the previous
 * instance's is closed first. */
int ring_open(struct ring *r, uint32_t gen, unsigned slots, uint32_t poll_us);

/* The open ring's fds, for the device to be given (the ring keeps them):
 * the page's memfd, the doorbell the broker rings, the one it reads. */
void ring_fds(const struct ring *r, int *ret_memfd, int *ret_doorbell, int *ret_reply_doorbell);

/* Requests may go into the ring from now on (instance @gen welcomed with it). */
void ring_enable(struct ring *r, uint32_t gen);

/* The instance is gone: no more posts; its page and fds are closed. */
void ring_close(struct ring *r);

/* Posts request @id of vCPU @slot to instance @gen and rings the device if
 * it sleeps. -ESTALE: another instance's ring, or none; -ENOTCONN: the
 * instance does not take requests in its ring; -EBUSY: the slot still
 * holds a request the device has not answered. In the last two cases the
 * request may go over nng. */
int ring_post(struct ring *r, uint32_t gen, unsigned slot, uint64_t id, const struct access *a, uint32_t tag,
	      uint64_t offset);

/* The VM is being reset (instance @gen): bumps the page's reset_seq and
 * rings the device if it sleeps. -ENOTCONN when the instance takes no
 * requests in a ring (then it is told with a Reset message). */
int ring_reset(struct ring *r, uint32_t gen);

/* Quiets the reply doorbell, then collects every answered slot into @out
 * (room for RING_SLOTS), frees them and sets *@ret_n. -EPROTO when the device corrupted the ring (*@why
 * says how; then nothing is collected), -ESTALE when no ring is open. */
int ring_collect(struct ring *r, struct ring_reply *out, size_t *ret_n, const char **why);

/* The VM thread, just after posting @id in @slot: spins until the device
 * answers it or @until_ns (CLOCK_MONOTONIC) passes, the device being told
 * not to ring meanwhile; then collects as ring_collect does, every slot
 * (replies for other vCPUs came without a ring too). What it did not find
 * the reply doorbell brings later. */
int ring_wait(struct ring *r, unsigned slot, uint64_t id, int64_t until_ns, struct ring_reply *out, size_t *ret_n,
	      const char **why);

#endif
