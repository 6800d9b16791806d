/* The broker's side of one device: its nng socket, the handshake, requests
 * out and replies, interrupts and claims in.
 *
 * One pair1 socket per device instance, listening on ipc://DIR/sock in the
 * device's own directory. Only the process the broker spawned is accepted
 * (its pid is checked when the pipe is added). Replies are handled in nng's
 * receive callback, which completes the vCPU's request directly: the path is
 * VM thread -> nng -> device -> nng callback -> HSM, with no thread of ours
 * in between. */
#ifndef IOREQ_RPC_H
#define IOREQ_RPC_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/acrn.h>

#include <nng/nng.h>

#include "config.h"
#include "histo.h"
#include "wire.h"

struct bvm;

enum bdev_state {
	BDEV_DOWN,       /* not started, or gone and waiting for its restart */
	BDEV_STARTING,   /* spawned, no handshake yet */
	BDEV_READY,      /* serving */
	BDEV_STOPPING,   /* being shut down on purpose */
	BDEV_FAILED,     /* restarted too often: given up, requests get the fallback */
};

struct bdev_stats {
	_Atomic uint64_t requests[3]; /* by ACRN_IOREQ_TYPE_* */
	_Atomic uint64_t fallbacks;   /* completed with the fallback value */
	_Atomic uint64_t expired;     /* of which: the deadline passed */
	_Atomic uint64_t bad_replies; /* late or duplicate replies, dropped */
	_Atomic uint64_t throttled;   /* requests over max_inflight, messages over max_msg_rate */
	_Atomic uint64_t interrupts;
	_Atomic uint64_t denied_interrupts; /* for lines or MSIs not granted */
	_Atomic uint64_t exits;
	struct histo latency;         /* ns from sending to the reply, answered requests only */
};

struct bdev {
	struct bvm *vm;
	const struct cfg_device *cfg;
	unsigned index;
	char dir[PATH_MAX];
	char url[PATH_MAX + 16];
	_Atomic int state;
	/* Guards pid against the pipe callback, which may run before
	 * posix_spawn has returned the child's pid to us. */
	pthread_mutex_t lock;
	pid_t pid;
	/* Bumped at every start: a held request is sent again to a new instance. */
	_Atomic uint32_t gen;
	_Atomic unsigned inflight;
	/* Restarts: housekeeping only. */
	unsigned restarts;
	int64_t restart_at_ns;        /* 0: none scheduled */
	unsigned backoff_ms;
	int64_t window_start_ns;
	unsigned window_restarts;
	char failed_why[96];
	/* Message rate: the receive callback only. */
	int64_t rate_start_ns;
	unsigned rate_count;
	nng_socket sock;
	bool sock_open;
	_Atomic int pipe_id;           /* the accepted connection */
	nng_listener listener;
	nng_aio *rx;
	struct wire_arena arena; /* used by the receive callback only */
	struct bdev_stats stats;
};

/* Creates the device's directory and socket and starts listening. */
int rpc_open(struct bdev *dev);

/* Spawns the device program, connected to the socket. */
int rpc_spawn(struct bdev *dev);

/* Sends one request (no allocation of ours; nng owns the message). */
int rpc_send_request(struct bdev *dev, uint64_t id, unsigned vcpu, const struct acrn_io_request *req,
		     uint32_t range, uint64_t offset);

/* Tells the device that the VM is being reset. */
void rpc_reset(struct bdev *dev);

/* Asks the device to exit, waits for it, closes the socket, removes the
 * directory. Safe on a device that never started. */
void rpc_close(struct bdev *dev);

/* The device process @dev->pid exited with wait @status. */
void rpc_exited(struct bdev *dev, int status);

/* Housekeeping for a device of a running VM: restarts it when it is due,
 * with exponential backoff, or marks it failed past its restart limit. */
void rpc_maintain(struct bdev *dev, int64_t now_ns);

#endif
