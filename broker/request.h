/* The requests of one VM, from the moment the broker takes one from the
 * HSM to its one completion.
 *
 * A VM has one request slot per vCPU in the HSM's page. The VM thread reads
 * a slot exactly once (request_take: the only read of a slot in the broker)
 * into a snapshot it owns; from then on everyone works from the snapshot,
 * never from the slot, which the vCPU reuses as soon as it is completed.
 *
 * A published request has an id (seq << 4 | vcpu, never reused) and moves
 * IDLE -> id -> BUSY -> IDLE. Whoever swaps id for BUSY (a reply, the
 * deadline, the device's death, a drain) completes it, so it completes
 * exactly once; the others find the id gone and do nothing.
 *
 * Threads: the VM thread takes, finishes and publishes; replies arrive on
 * nng's threads; deadlines and device deaths on the VM's event thread; a
 * drain on whoever stops the VM. Nothing here takes a lock on the hot path:
 * a mutex guards only the deadline timer's re-arming and the drain's wait. */
#ifndef IOREQ_REQUEST_H
#define IOREQ_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "access.h"
#include "clock.h"
#include "hsm.h"

#define REQUEST_MAX ACRN_IO_REQUEST_MAX

/* How a published request ended. */
enum request_end {
	REQUEST_ANSWERED,  /* with the device's value */
	REQUEST_UNHANDLED, /* the device said it does not serve it: the fallback */
	REQUEST_EXPIRED,   /* its deadline passed: the fallback */
	REQUEST_FAILED,    /* its device went down or could not be sent to: the fallback */
	REQUEST_DRAINED,   /* the VM stopped or reset: the fallback */
};

/* Where a published request goes: the device (opaque here), the route's
 * tag and the offset in it, for sending it again to a restarted device. */
struct request_route {
	void *owner;
	uint32_t tag;
	uint64_t offset;
};

/* What the completer learns about the request it completed. */
struct request_done {
	uint64_t id;
	unsigned vcpu;
	void *owner;
	int64_t published_ns;
	enum request_end how;
};

/* Called once per completed published request, in the completing thread,
 * just before the vCPU is released: statistics, in-flight counts. */
typedef void (*request_done_fn)(void *opaque, const struct request_done *d);

struct request_table;

int request_table_new(unsigned vcpus, request_done_fn done, void *opaque, struct request_table **ret);

/* NULL is fine. Returns NULL. Nothing may be in flight. */
struct request_table *request_table_free(struct request_table *t);

/* The HSM VM whose slots this table serves, from its creation to its
 * destruction (NULL): nothing may be in flight when it changes. */
void request_table_set_hsm(struct request_table *t, struct hsm_vm *hsm);

/* Bit v is set while request v is published: hsm_attach's @held. */
const _Atomic uint32_t *request_held(const struct request_table *t);

/* A timerfd (CLOCK_MONOTONIC) that becomes readable at the earliest
 * deadline; on reading it, call request_expire. */
int request_timer_fd(const struct request_table *t);

/* The VM thread: decodes vCPU @vcpu's PROCESSING slot into @a. -EBUSY if
 * the vCPU's previous request is still being completed (retry after the
 * completer's kick), -EINVAL if the slot is malformed (finish it with the
 * fallback). */
int request_take(struct request_table *t, unsigned vcpu, struct access *a);

/* The VM thread: completes a request that was taken but never published
 * (nobody serves it, its device cannot take it, it is malformed). */
void request_finish(struct request_table *t, unsigned vcpu, const struct access *a, uint64_t value, bool fallback);

/* The VM thread: publishes the taken request of @vcpu, to be completed by
 * @deadline_ns (CLOCK_MONOTONIC) at the latest. Returns its id. */
uint64_t request_publish(struct request_table *t, unsigned vcpu, const struct access *a,
			 const struct request_route *route, int64_t deadline_ns);

/* A consistent copy of published request @id, or false once it is no
 * longer in flight. Any thread. */
bool request_view(struct request_table *t, uint64_t id, struct access *a, struct request_route *route);

/* The id of vCPU @vcpu's published request, or 0. */
uint64_t request_id_of(struct request_table *t, unsigned vcpu);

/* Records that @id went to instance @gen of its owner; false if it went
 * there already or is no longer in flight, so each instance gets it once. */
bool request_mark_sent(struct request_table *t, uint64_t id, uint32_t gen);

/* Completes @id unless it is no longer in flight; true if this call did. */
bool request_complete(struct request_table *t, uint64_t id, uint64_t value, enum request_end how);

/* A device's reply to @id: @owner's instance @gen answered @value (or
 * UNHANDLED when !@ok). 0 when it completed the request; -ENOENT when the
 * request is no longer in flight or was not sent to that instance (late,
 * duplicate, or someone else's); -EBADMSG when no such id was ever issued;
 * -ERANGE when @value is wider than the access (the request completes with
 * the fallback). The last two are lies. */
int request_reply(struct request_table *t, uint64_t id, const void *owner, uint32_t gen, uint64_t value, bool ok);

/* Completes every request in flight to @owner with @how. */
void request_fail_owner(struct request_table *t, const void *owner, enum request_end how);

/* Completes every request whose deadline is at or before @now_ns, re-arms
 * the timer for the earliest that remains. */
void request_expire(struct request_table *t, int64_t now_ns);

/* Stop or reset, once the VM thread has stopped taking requests: lets the
 * devices answer until @until_ns, completes what is left, and returns when
 * no completion is running any more (the HSM VM may then go). */
void request_drain(struct request_table *t, int64_t until_ns);

#endif
