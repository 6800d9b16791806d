/* One VM of the broker: its HSM handle, its devices and route tables, the
 * thread that waits on the HSM, and the requests in flight.
 *
 * Every request is completed exactly once: a vCPU's in-flight record moves
 * IDLE -> id (sent) -> COMPLETING -> IDLE, and whoever wins the compare-and-
 * swap from the id (the reply, the deadline, the device's death) completes. */
#ifndef IOREQ_VM_H
#define IOREQ_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "hsm.h"
#include "rangemap.h"
#include "rpc.h"

struct broker;

/* Set in the tag of a range a device claimed at run time (a BAR). */
#define VM_CLAIMED_RANGE 0x80000000u

#define INFLIGHT_IDLE 0
#define INFLIGHT_COMPLETING 1

struct inflight {
	_Atomic uint64_t id;          /* IDLE, COMPLETING, or the request id */
	struct bdev *_Atomic dev;
	_Atomic int64_t deadline_ns;  /* CLOCK_MONOTONIC */
	int64_t sent_ns;              /* written before id, read after winning it */
	_Atomic uint32_t sent_gen;    /* the device instance it went to; 0: not sent */
	uint32_t tag;                 /* the route's tag and the offset in it, to */
	uint64_t offset;              /* send it again to a restarted device */
};

struct vm_stats {
	_Atomic uint64_t requests;
	_Atomic uint64_t unclaimed;   /* no device for the range */
	_Atomic uint64_t fallbacks;   /* all completions with the fallback value */
};

enum vm_state {
	VM_STOPPED,  /* not started, or stopped by the broker */
	VM_RUNNING,
	VM_EXITED,   /* the guest stopped by itself (status) */
};

struct bvm {
	struct broker *broker;
	const struct cfg_vm *cfg;
	unsigned vcpus;
	/* Serialises start, stop and reset (the control socket, shutdown). */
	pthread_mutex_t life;
	/* Changed under the write lock of routes: nng callbacks read it. */
	struct hsm_vm *hsm;
	pthread_t thread;
	bool thread_started;
	/* Routes change at run time (BAR claims) from nng callbacks. */
	pthread_rwlock_t routes;
	struct rangemap map[3];       /* by ACRN_IOREQ_TYPE_*: PIO, MMIO, PCI BDFs */
	struct bdev **devs;
	size_t n_devs;
	/* Bit v set while the broker holds vCPU v's request (see hsm_attach). */
	_Atomic uint32_t held;
	_Atomic uint64_t next_seq;
	struct inflight inflight[ACRN_IO_REQUEST_MAX];
	_Atomic int state;            /* enum vm_state */
	_Atomic bool stop_requested;  /* a device with on_failure: stop-vm failed */
	_Atomic bool reported;        /* the backend reported a problem itself */
	_Atomic int status;
	struct vm_stats stats;
};

/* Sets up @vm's devices and routes; nothing runs yet. */
int vm_create(struct broker *b, const struct cfg_vm *cfg, struct bvm *vm);

/* Starts the devices, waits (bounded) for their handshakes, then the HSM
 * VM and the VM thread. -EALREADY if it runs. */
int vm_start(struct bvm *vm);

/* Stops dispatching (the default client goes away, new requests complete at
 * once), waits, bounded by the deadlines, for the requests in flight,
 * destroys the HSM VM and stops the devices. */
void vm_stop(struct bvm *vm);

/* ACRN's reset: stop dispatching and drain, reset the devices (they keep
 * running), start the guest again. -ENOTCONN if it does not run. */
int vm_reset(struct bvm *vm);

/* Stops the VM and frees everything. Safe on a half-built VM. */
void vm_destroy(struct bvm *vm);

/* Completes vCPU @vcpu's request @id with @value, unless it is no longer in
 * flight. @fallback: the device did not answer; use all ones / drop. Returns
 * true if this call completed it. */
bool vm_complete(struct bvm *vm, unsigned vcpu, uint64_t id, uint64_t value, bool fallback);

/* A device claims (or releases) [start, start + size) of @type, tagged
 * @tag, for a BAR the guest programmed. Accepted only inside one of its
 * windows and where no other route is; effective at once. 0 or -EPERM
 * (outside its windows), -EEXIST (taken), -ENOENT (release of nothing),
 * -EINVAL. The broker logs the outcome. */
int vm_claim(struct bvm *vm, struct bdev *dev, uint32_t type, uint64_t start, uint64_t size, bool release,
	     uint32_t tag);

/* Like vm_complete, for a device's reply: -ENOENT if the request is no
 * longer in flight, -ERANGE if @value is wider than the access (a lie). */
int vm_complete_checked(struct bvm *vm, unsigned vcpu, uint64_t id, uint64_t value, bool fallback);

/* Sends what waits for @dev (on_failure: hold) to its new instance. */
void vm_resend(struct bvm *vm, struct bdev *dev);

/* Completes every request in flight to @dev with the fallback. */
void vm_fail_device(struct bvm *vm, struct bdev *dev);

/* Completes every request whose deadline passed before @now_ns. */
void vm_expire(struct bvm *vm, int64_t now_ns);

int64_t vm_now_ns(void);

#endif
