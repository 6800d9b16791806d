#include "rpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/transport/ipc/ipc.h>

#include "wire.h"

/* How long a connection may wait for rpc_expect: the pid is known as soon
 * as the spawn returns, milliseconds before the device can connect. The
 * wait holds one of nng's few task threads, hence short. */
#define EXPECT_WAIT_MS 1000
/* How long rpc_shut waits for the accepted connection to end (see there):
 * a local device's process is gone by then, a remote one may be silent
 * behind a partition, and the VM's event thread waits meanwhile. */
#define PIPE_GONE_MS 1000
#define REMOTE_GONE_MS 100

struct rpc {
	const struct rpc_events *ev;
	void *opaque;
	/* The open socket's id and its instance, in one word so that a send
	 * reads both at once: gen << 32 | socket id (0: shut). */
	_Atomic uint64_t current;
	nng_socket sock;
	nng_listener listener;
	nng_aio *rx;
	char path[108];         /* "" for a remote device */
	bool remote;            /* accepts anyone: the TLS engine checked who */
	pthread_mutex_t lock;   /* expected, accepted, connected, peer */
	pthread_cond_t known;   /* expected is known; connected went false */
	pid_t expected;         /* 0: not known yet */
	bool shutting;
	uint32_t accepted;      /* the accepted pipe's id, 0: none */
	bool connected;         /* the accepted pipe has not ended yet */
	char peer[64];          /* the accepted pipe's remote address */
	struct wire_arena arena; /* the receive callback's */
};

static uint32_t gen_of(const struct rpc *c)
{
	return (uint32_t)(atomic_load(&c->current) >> 32);
}

int rpc_new(const struct rpc_events *ev, void *opaque, struct rpc **ret)
{
	struct rpc *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->ev = ev;
	c->opaque = opaque;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->known, NULL);
	*ret = c;
	return 0;
}

struct rpc *rpc_free(struct rpc *c)
{
	if (!c)
		return NULL;
	rpc_shut(c);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->known);
	free(c);
	return NULL;
}

/* Waits (bounded) for the pid the spawner is about to report. */
static pid_t expected_pid(struct rpc *c)
{
	struct timespec until;
	pid_t pid;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += EXPECT_WAIT_MS / 1000;
	pthread_mutex_lock(&c->lock);
	while (!c->expected && !c->shutting)
		if (pthread_cond_clockwait(&c->known, &c->lock, CLOCK_MONOTONIC, &until) == ETIMEDOUT)
			break;
	pid = c->expected;
	pthread_mutex_unlock(&c->lock);
	return pid;
}

/* "10.0.0.2:43210", "[fd00::2]:43210". */
static void format_addr(nng_pipe pipe, char *buf, size_t len)
{
	nng_sockaddr sa;
	char ip[INET6_ADDRSTRLEN];

	snprintf(buf, len, "an unknown address");
	if (nng_pipe_get_addr(pipe, NNG_OPT_REMADDR, &sa))
		return;
	if (sa.s_family == NNG_AF_INET && inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip)))
		snprintf(buf, len, "%s:%u", ip, ntohs(sa.s_in.sa_port));
	else if (sa.s_family == NNG_AF_INET6 && inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof(ip)))
		snprintf(buf, len, "[%s]:%u", ip, ntohs(sa.s_in6.sa_port));
}

static void pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	struct rpc *c = arg;
	uint32_t id = (uint32_t)nng_pipe_id(pipe), gen = gen_of(c);
	uint64_t peer = 0;
	char who[64];
	bool ours;

	if (ev == NNG_PIPE_EV_ADD_PRE) {
		if (c->remote) {
			format_addr(pipe, who, sizeof(who));
		} else {
			/* The kernel's SO_PEERCRED, read in our pid namespace: a
			 * process cannot claim another's pid. */
			nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &peer);
			snprintf(who, sizeof(who), "pid %" PRIu64, peer);
			if (peer == 0 || peer != (uint64_t)expected_pid(c)) {
				nng_pipe_close(pipe);
				c->ev->refused(c->opaque, gen, who);
				return;
			}
		}
		pthread_mutex_lock(&c->lock);
		ours = !c->accepted;
		if (ours) {
			c->accepted = id;
			c->connected = true;
			snprintf(c->peer, sizeof(c->peer), "%s", c->remote ? who : "");
		}
		pthread_mutex_unlock(&c->lock);
		/* One connection per instance: a second one from the same
		 * process is not the protocol; from another host (a runner
		 * that reconnects before the broker saw the old connection
		 * go), it waits for the next instance. */
		if (!ours) {
			nng_pipe_close(pipe);
			if (c->remote)
				c->ev->refused(c->opaque, gen, who);
			else
				c->ev->garbage(c->opaque, gen, "connected twice");
		}
		return;
	}
	pthread_mutex_lock(&c->lock);
	ours = id == c->accepted;
	if (ours && ev == NNG_PIPE_EV_REM_POST) {
		c->connected = false;
		pthread_cond_broadcast(&c->known);
	}
	pthread_mutex_unlock(&c->lock);
	if (ev == NNG_PIPE_EV_REM_POST && ours)
		c->ev->closed(c->opaque, gen);
}

static void rx_done(void *arg)
{
	struct rpc *c = arg;
	uint32_t gen = gen_of(c);
	Ioreq__Envelope *env;
	int r = wire_aio_unpack(c->rx, &c->arena, &env);

	if (r == -ECANCELED)
		return;
	if (r == 0)
		c->ev->message(c->opaque, gen, env);
	else if (r != -EAGAIN)
		c->ev->garbage(c->opaque, gen, r == -EMSGSIZE ? "sent an oversized message" : "sent a malformed message");
	nng_recv_aio(c->sock, c->rx);
}

static int listen_on(struct rpc *c, const char *url, nng_tls_config *tls, uint32_t gen)
{
	int r;

	pthread_mutex_lock(&c->lock);
	c->expected = 0;
	c->accepted = 0;
	c->connected = false;
	c->shutting = false;
	c->peer[0] = '\0';
	pthread_mutex_unlock(&c->lock);

	r = nng_pair1_open(&c->sock);
	if (r)
		return wire_errno(r);
	atomic_store(&c->current, (uint64_t)gen << 32 | (uint32_t)nng_socket_id(c->sock));
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
	/* Room for one request per vCPU and the messages around them, so that
	 * a non-blocking send fails only when the device stopped reading. */
	nng_socket_set_int(c->sock, NNG_OPT_SENDBUF, 2 * ACRN_IO_REQUEST_MAX);
	nng_socket_set_int(c->sock, NNG_OPT_RECVBUF, 2 * ACRN_IO_REQUEST_MAX);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_PRE, pipe_event, c);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_event, c);
	r = nng_aio_alloc(&c->rx, rx_done, c);
	if (r == 0)
		r = nng_listener_create(&c->listener, c->sock, url);
	if (r == 0 && tls)
		r = nng_listener_set_ptr(c->listener, NNG_OPT_TLS_CONFIG, tls);
	if (r == 0)
		r = nng_listener_start(c->listener, 0);
	if (r) {
		rpc_shut(c);
		return wire_errno(r);
	}
	nng_recv_aio(c->sock, c->rx);
	return 0;
}

int rpc_listen(struct rpc *c, const char *path, uint32_t gen)
{
	char url[sizeof(c->path) + 8];

	if (strlen(path) >= sizeof(c->path))
		return -ENAMETOOLONG;
	rpc_shut(c);
	c->remote = false;
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(url, sizeof(url), "ipc://%s", path);
	unlink(path);
	return listen_on(c, url, NULL, gen);
}

int rpc_listen_remote(struct rpc *c, const char *url, nng_tls_config *tls, uint32_t gen)
{
	rpc_shut(c);
	c->remote = true;
	c->path[0] = '\0';
	return listen_on(c, url, tls, gen);
}

void rpc_peer(struct rpc *c, char *buf, size_t len)
{
	pthread_mutex_lock(&c->lock);
	snprintf(buf, len, "%s", c->connected ? c->peer : "");
	pthread_mutex_unlock(&c->lock);
}

void rpc_expect(struct rpc *c, pid_t pid)
{
	pthread_mutex_lock(&c->lock);
	c->expected = pid;
	pthread_cond_broadcast(&c->known);
	pthread_mutex_unlock(&c->lock);
}

void rpc_shut(struct rpc *c)
{
	struct timespec until;

	if (!atomic_exchange(&c->current, 0))
		return;
	/* nng 1.5.2 can hang for good in nng_close when it closes a pipe while
	 * a message is arriving on it (nng_shim.c): close only once the
	 * device's connection has ended from its side (the caller made sure
	 * its process is gone), bounded. A connection waiting for rpc_expect
	 * gives up now. */
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += (c->remote ? REMOTE_GONE_MS : PIPE_GONE_MS) % 1000 * 1000000L;
	until.tv_sec += (c->remote ? REMOTE_GONE_MS : PIPE_GONE_MS) / 1000 + until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&c->lock);
	c->shutting = true;
	pthread_cond_broadcast(&c->known);
	while (c->connected)
		if (pthread_cond_clockwait(&c->known, &c->lock, CLOCK_MONOTONIC, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&c->lock);
	nng_close(c->sock);
	if (c->rx) {
		/* Returns once the receive callback is not running. */
		nng_aio_stop(c->rx);
		nng_aio_free(c->rx);
		c->rx = NULL;
	}
	if (c->path[0])
		unlink(c->path);
}

int rpc_send(struct rpc *c, uint32_t gen, const Ioreq__Envelope *env)
{
	uint64_t cur = atomic_load(&c->current);
	nng_socket s = { .id = (uint32_t)cur };
	int r;

	if (!cur || (uint32_t)(cur >> 32) != gen)
		return -ESTALE;
	r = wire_send(s, env, NNG_FLAG_NONBLOCK);
	return r == -ECONNABORTED || r == -EBADF || r == -ENOENT ? -ESTALE : r;
}

int rpc_send_request(struct rpc *c, uint32_t gen, uint64_t id, unsigned vcpu, const struct access *a, uint32_t tag,
		     uint64_t offset)
{
	struct access_wire w = access_wire(a, offset);
	Ioreq__Request q = IOREQ__REQUEST__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	q.id = id;
	q.vcpu = vcpu;
	q.kind = (Ioreq__Kind)w.kind;
	q.dir = a->write ? IOREQ__DIRECTION__DIR_WRITE : IOREQ__DIRECTION__DIR_READ;
	q.size = a->size;
	q.value = a->value;
	q.range = tag;
	q.addr = w.addr;
	q.offset = w.offset;
	q.bdf = w.bdf;
	q.reg = w.reg;
	env.msg_case = IOREQ__ENVELOPE__MSG_REQUEST;
	env.request = &q;
	return rpc_send(c, gen, &env);
}
