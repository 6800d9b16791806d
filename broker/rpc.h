/* A channel to one device: an nng pair1 socket listening on an ipc://
 * path (a remote device: tcp:// or tls+tcp://), the protocol's messages
 * out, events in. It knows nothing of VMs,
 * requests or policies.
 *
 * Each device instance gets a socket of its own (rpc_listen when it is
 * spawned, rpc_shut once it is reaped), so that nothing of a dead
 * instance outlives it. Connections are refused only in nng's ADD_PRE
 * callback, never later: nng 1.5.2 can hang closing a live pipe (see
 * nng_shim.c, which the broker links to survive its other bugs). Only the process
 * the channel is told to expect (its pid, which SO_PEERCRED reports) is
 * accepted, and only one connection at a time.
 *
 * Events run on nng's threads and carry the instance's generation. Sends
 * are safe from any thread at any time: to a channel that was shut, or to
 * another instance than the one named, they fail with -ESTALE. */
#ifndef IOREQ_RPC_H
#define IOREQ_RPC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "access.h"
#include "ioreq.pb-c.h"

struct rpc;

struct rpc_events {
	/* A message of the device (Hello, Reply, Interrupt, Claim), valid until
	 * the callback returns. */
	void (*message)(void *opaque, uint32_t gen, const Ioreq__Envelope *env);
	/* The device broke the protocol (@why: malformed, oversized, a message
	 * only the broker sends): it must be cut off. */
	void (*garbage)(void *opaque, uint32_t gen, const char *why);
	/* A connection from @who ("pid 123", "10.0.0.2:43210") was refused:
	 * not the process expected, or (remote) one is open already. */
	void (*refused)(void *opaque, uint32_t gen, const char *who);
	/* The accepted connection is gone. */
	void (*closed)(void *opaque, uint32_t gen);
};

int rpc_new(const struct rpc_events *ev, void *opaque, struct rpc **ret);

/* Shuts the channel if it is open; NULL is fine. Returns NULL. */
struct rpc *rpc_free(struct rpc *c);

/* Opens a fresh socket at @path (ipc path, no scheme; removed first) for
 * instance @gen, accepting nothing until rpc_expect. */
int rpc_listen(struct rpc *c, const char *path, uint32_t gen);

/* The same for a device on another host: a socket listening on @url
 * (tcp://, or tls+tcp:// with @tls, whose engine checked the peer's
 * certificate before the connection exists: tlsid.h), accepting one
 * connection at a time from anywhere. rpc_expect is not needed. */
int rpc_listen_remote(struct rpc *c, const char *url, nng_tls_config *tls, uint32_t gen);

/* The accepted connection's peer address ("ADDRESS:PORT"), or "" when
 * there is none, or it is a local one. */
void rpc_peer(struct rpc *c, char *buf, size_t len);

/* The process allowed to connect (its pid in our pid namespace). */
void rpc_expect(struct rpc *c, pid_t pid);

/* Closes the socket and every connection; returns once no event of it
 * runs any more. Call it once the device's process is gone: it waits (up
 * to a second) for the device's connection to end from its side first.
 * Never from an event callback. */
void rpc_shut(struct rpc *c);

/* Sends @env to instance @gen, without blocking: -ESTALE (another
 * instance, or shut), -EAGAIN (the device does not read), -EMSGSIZE. */
int rpc_send(struct rpc *c, uint32_t gen, const Ioreq__Envelope *env);

/* One guest access, as a Request. */
int rpc_send_request(struct rpc *c, uint32_t gen, uint64_t id, unsigned vcpu, const struct access *a, uint32_t tag,
		     uint64_t offset);

#endif
