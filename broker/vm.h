/* One VM of the broker: its guest (an HSM VM), its devices, its routes and
 * its requests, and the two threads that serve it.
 *
 *   the VM thread    blocks in hsm_attach, takes each new request, routes
 *                    it and sends it to its device (or completes it at once);
 *   the event thread runs the VM's loop: its deadline timer, its devices'
 *                    processes, pipes and restarts, and every change to the
 *                    VM's life (start, stop, reset), so that those never
 *                    race each other and never wait behind another VM.
 *
 * Replies complete requests on nng's threads, with no thread of ours in
 * between (request.c). Nothing here is shared with another VM. */
#ifndef IOREQ_VM_H
#define IOREQ_VM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "devsup.h"

struct cgroup_tree;
struct bvm;

/* What every VM of a broker shares. */
struct vm_env {
	const char *runtime_dir;
	const char *launcher;         /* ioreq-launch */
	struct cgroup_tree *cgroups;  /* NULL: devices run without cgroup limits */
	uint32_t deadline_ms;         /* the broker's default deadline */
	/* A VM's state changed (it stopped by itself, say): any thread. */
	void (*changed)(void *opaque);
	void *opaque;
};

enum vm_state {
	VM_STOPPED,  /* not started, or stopped by the broker */
	VM_RUNNING,
	VM_EXITED,   /* the guest stopped by itself (status) */
};

struct vm_info {
	const struct cfg_vm *cfg;
	enum vm_state state;
	int status;
	uint64_t requests, unclaimed, fallbacks;
};

/* A range a device serves, as control reports it. */
struct vm_range {
	uint32_t type;   /* ACRN_IOREQ_TYPE_* */
	uint64_t start, end;
	bool claimed;    /* claimed at run time (a BAR) */
};

struct vm_device_info {
	const struct cfg_device *cfg;
	struct devsup_info sup;
	uint64_t requests[3];  /* by ACRN_IOREQ_TYPE_* */
	uint64_t fallbacks, expired, bad_replies, throttled;
	uint64_t replies, p50_ns, p90_ns, p99_ns, max_ns;
	const struct histo *latency; /* the live histogram, as long as the VM */
	struct vm_range *ranges; /* malloc'ed; the caller frees it */
	size_t n_ranges;
};

/* Sets up @cfg's VM and its devices; nothing runs yet. */
int vm_new(const struct cfg_vm *cfg, const struct vm_env *env, struct bvm **ret);

/* Stops the VM and frees it; NULL is fine. Returns NULL. */
struct bvm *vm_free(struct bvm *vm);

/* Starts the devices, waits (bounded) for their handshakes, then the
 * guest. -EALREADY if it runs. */
int vm_start(struct bvm *vm);

/* Stops dispatching, drains the requests in flight (bounded by their
 * deadlines), destroys the guest and stops the devices. -ENOTCONN if
 * neither guest nor devices run. */
int vm_stop(struct bvm *vm);

/* ACRN's reset: stop dispatching and drain, reset the devices (they keep
 * running), start the guest again. -ENOTCONN if it does not run. */
int vm_reset(struct bvm *vm);

/* Asks for a stop without waiting for it. */
void vm_stop_async(struct bvm *vm);

enum vm_state vm_state(const struct bvm *vm);
const struct cfg_vm *vm_cfg(const struct bvm *vm);
void vm_info(const struct bvm *vm, struct vm_info *ret);
size_t vm_n_devices(const struct bvm *vm);

/* Device @i (in configuration order); 0 or -ENOMEM. */
int vm_device_info(struct bvm *vm, size_t i, struct vm_device_info *ret);

const char *vm_state_name(enum vm_state s);

/* The guest's HSM VM while it runs, else NULL: for benchmarks that play
 * the vCPUs of a sim guest themselves. */
struct hsm_vm *vm_guest(struct bvm *vm);

#endif
