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
	BDEV_DOWN,       /* not started, or gone: requests get the fallback */
	BDEV_STARTING,   /* spawned, no handshake yet */
	BDEV_READY,      /* serving */
	BDEV_STOPPING,   /* being shut down on purpose */
};

struct bdev_stats {
	_Atomic uint64_t requests[3]; /* by ACRN_IOREQ_TYPE_* */
	_Atomic uint64_t fallbacks;   /* completed with the fallback value */
	_Atomic uint64_t expired;     /* of which: the deadline passed */
	_Atomic uint64_t bad_replies; /* stale, duplicate or foreign ids */
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
	unsigned restarts;
	nng_socket sock;
	bool sock_open;
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

#endif
