/* The two reference points of every broker figure, between two processes:
 *
 *  - the limit: a raw AF_UNIX SOCK_SEQPACKET ping-pong (blocking send and
 *    recv on both sides, no thread but the caller's);
 *  - the transport floor: a bare nng ping-pong on pair1 over ipc://, set up
 *    as the broker and a device set up theirs. The pinging side listens,
 *    with the broker's buffer and size options; each round trip allocates
 *    and fills a message of a packed Request's size, then either sends it
 *    without blocking and takes the reply in an aio callback that wakes the
 *    waiting thread through a futex (exactly the broker's rx_done ->
 *    vm_complete -> dispatch_notify shape), or sends it blocking and calls
 *    nng_recvmsg. The pong dials, receives with nng_recvmsg (what
 *    libioreq-device's aio + wait amounts to), frees the request, allocates
 *    a Reply-sized message and sends it blocking, as the device library does.
 *
 * Each sample is one round trip as the pinging thread sees it: from before
 * the message is built to after the reply has been taken. */
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>

#include "wire.h"

#define PONG_EXIT_MS 5000
#define CONNECT_MS 10000
#define MAX_MSG 256

static int check_sizes(const struct worker_args *a)
{
	if (!a->req_size || a->req_size > MAX_MSG || !a->rep_size || a->rep_size > MAX_MSG)
		return -EINVAL;
	return 0;
}

static uint64_t *alloc_samples(const struct worker_args *a)
{
	uint64_t *s = calloc(a->iters ? a->iters : 1, sizeof(*s));

	if (!s)
		fprintf(stderr, "ioreq-bench: out of memory\n");
	return s;
}

/* ---- the limit ---- */

int pp_unix_pong(int fd, size_t rep_size)
{
	char in[MAX_MSG], out[MAX_MSG] = { 0 };

	if (rep_size > MAX_MSG)
		return 2;
	for (;;) {
		ssize_t n = recv(fd, in, sizeof(in), 0);

		if (n <= 0)
			return n < 0 ? 1 : 0;
		if (send(fd, out, rep_size, 0) != (ssize_t)rep_size)
			return 1;
	}
}

static int unix_round_trip(int fd, const char *req, size_t req_size, size_t rep_size)
{
	char in[MAX_MSG];

	if (send(fd, req, req_size, 0) != (ssize_t)req_size)
		return -errno;
	if (recv(fd, in, sizeof(in), 0) != (ssize_t)rep_size)
		return -EPROTO;
	return 0;
}

int pp_unix_worker(const struct worker_args *a)
{
	char req[MAX_MSG] = { 0 }, size[32];
	char *argv[] = { (char *)a->exe, "--pong-unix", size, NULL };
	uint64_t *ns = NULL;
	struct meter m;
	int sv[2], r;
	pid_t pid;

	r = check_sizes(a);
	if (r < 0)
		return r;
	ns = alloc_samples(a);
	if (!ns)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		free(ns);
		return -errno;
	}
	snprintf(size, sizeof(size), "%zu", a->rep_size);
	r = bench_spawn(argv, NULL, -1, -1, sv[1], &pid);
	close(sv[1]);
	if (r < 0)
		goto out;
	for (unsigned i = 0; i < a->warmup && !r; i++)
		r = unix_round_trip(sv[0], req, a->req_size, a->rep_size);
	meter_start(&m, pid);
	for (unsigned i = 0; i < a->iters && !r; i++) {
		int64_t t0 = bench_now_ns();

		r = unix_round_trip(sv[0], req, a->req_size, a->rep_size);
		ns[i] = (uint64_t)(bench_now_ns() - t0);
	}
	if (!r) {
		meter_print(&m, a->iters);
		latency_print(ns, a->iters);
	}
	close(sv[0]);
	sv[0] = -1;
	bench_wait(pid, PONG_EXIT_MS);
out:
	if (sv[0] >= 0)
		close(sv[0]);
	free(ns);
	return r;
}

/* ---- the transport floor ---- */

int pp_nng_pong(const char *url, size_t rep_size)
{
	nng_socket s;
	int r;

	if (rep_size > MAX_MSG)
		return 2;
	r = nng_pair1_open(&s);
	if (!r)
		r = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
	if (!r)
		r = nng_dial(s, url, NULL, 0);
	if (r) {
		fprintf(stderr, "ioreq-bench pong: %s: %s\n", url, nng_strerror(r));
		return 1;
	}
	for (;;) {
		nng_msg *in, *out;

		if (nng_recvmsg(s, &in, 0))
			break;
		nng_msg_free(in);
		if (nng_msg_alloc(&out, rep_size))
			break;
		memset(nng_msg_body(out), 0, rep_size);
		if (nng_sendmsg(s, out, 0)) {
			nng_msg_free(out);
			break;
		}
	}
	nng_close(s);
	return 0;
}

struct ping {
	nng_socket sock;
	nng_aio *rx;
	size_t rep_size;
	/* Bumped by the receive callback for every reply; the waiter's futex. */
	_Atomic uint32_t replies;
	_Atomic int error;
	_Atomic bool connected;
};

static void ping_rx(void *arg)
{
	struct ping *p = arg;
	nng_msg *msg;
	int r = nng_aio_result(p->rx);

	if (r == NNG_ECLOSED || r == NNG_ECANCELED)
		return;
	if (r == 0) {
		msg = nng_aio_get_msg(p->rx);
		if (nng_msg_len(msg) != p->rep_size)
			atomic_store(&p->error, -EPROTO);
		nng_msg_free(msg);
		atomic_fetch_add(&p->replies, 1);
		syscall(SYS_futex, &p->replies, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
	}
	nng_recv_aio(p->sock, p->rx);
}

static void ping_pipe(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	struct ping *p = arg;

	atomic_store(&p->connected, true);
}

static int nng_send_req(struct ping *p, const char *req, size_t req_size, int flags)
{
	nng_msg *msg;
	int r;

	r = nng_msg_alloc(&msg, req_size);
	if (r)
		return wire_errno(r);
	memcpy(nng_msg_body(msg), req, req_size);
	r = nng_sendmsg(p->sock, msg, flags);
	if (r) {
		nng_msg_free(msg);
		return wire_errno(r);
	}
	return 0;
}

/* The broker's way: a non-blocking send, the reply taken in the callback. */
static int nng_round_trip_aio(struct ping *p, const char *req, size_t req_size)
{
	uint32_t seen = atomic_load(&p->replies);
	int r = nng_send_req(p, req, req_size, NNG_FLAG_NONBLOCK);

	if (r < 0)
		return r;
	while (atomic_load(&p->replies) == seen)
		syscall(SYS_futex, &p->replies, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
	return atomic_load(&p->error);
}

static int nng_round_trip_block(struct ping *p, const char *req, size_t req_size)
{
	nng_msg *msg;
	int r = nng_send_req(p, req, req_size, 0);

	if (r < 0)
		return r;
	r = nng_recvmsg(p->sock, &msg, 0);
	if (r)
		return wire_errno(r);
	r = nng_msg_len(msg) == p->rep_size ? 0 : -EPROTO;
	nng_msg_free(msg);
	return r;
}

int pp_nng_worker(const struct worker_args *a, bool aio)
{
	char dir[256], url[300], size[32], req[MAX_MSG] = { 0 };
	char *argv[] = { (char *)a->exe, "--pong-nng", url, size, NULL };
	struct ping p = { .rep_size = a->rep_size };
	uint64_t *ns = NULL;
	bool open = false;
	struct meter m;
	pid_t pid = 0;
	int r;

	r = check_sizes(a);
	if (r < 0)
		return r;
	r = bench_mkdtemp(dir, sizeof(dir));
	if (r < 0)
		return r;
	ns = alloc_samples(a);
	if (!ns) {
		r = -ENOMEM;
		goto out;
	}
	snprintf(url, sizeof(url), "ipc://%s/sock", dir);
	snprintf(size, sizeof(size), "%zu", a->rep_size);

	/* The broker's socket options (rpc_open). */
	r = wire_errno(nng_pair1_open(&p.sock));
	if (r < 0)
		goto out;
	open = true;
	nng_socket_set_size(p.sock, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
	nng_socket_set_int(p.sock, NNG_OPT_SENDBUF, 32);
	nng_socket_set_int(p.sock, NNG_OPT_RECVBUF, 32);
	nng_pipe_notify(p.sock, NNG_PIPE_EV_ADD_POST, ping_pipe, &p);
	if (aio) {
		r = wire_errno(nng_aio_alloc(&p.rx, ping_rx, &p));
		if (r < 0)
			goto out;
	}
	r = wire_errno(nng_listen(p.sock, url, NULL, 0));
	if (r < 0)
		goto out;
	if (aio)
		nng_recv_aio(p.sock, p.rx);
	r = bench_spawn(argv, NULL, -1, -1, -1, &pid);
	if (r < 0)
		goto out;
	for (int waited = 0; !atomic_load(&p.connected); waited++) {
		if (waited == CONNECT_MS) {
			r = -ETIMEDOUT;
			goto out;
		}
		usleep(1000);
	}

	for (unsigned i = 0; i < a->warmup && !r; i++)
		r = aio ? nng_round_trip_aio(&p, req, a->req_size) : nng_round_trip_block(&p, req, a->req_size);
	meter_start(&m, pid);
	for (unsigned i = 0; i < a->iters && !r; i++) {
		int64_t t0 = bench_now_ns();

		r = aio ? nng_round_trip_aio(&p, req, a->req_size) : nng_round_trip_block(&p, req, a->req_size);
		ns[i] = (uint64_t)(bench_now_ns() - t0);
	}
	if (!r) {
		meter_print(&m, a->iters);
		latency_print(ns, a->iters);
	}
out:
	/* The pong's pair1 socket would wait for the next pipe forever. */
	if (pid > 0) {
		kill(pid, SIGTERM);
		bench_wait(pid, PONG_EXIT_MS);
	}
	if (open)
		nng_close(p.sock);
	if (p.rx)
		nng_aio_free(p.rx);
	bench_rmtree(dir);
	free(ns);
	return r;
}
