/* ioreq-remote: runs one device program on a host other than the broker's.
 *
 *   ioreq-remote --broker tls+tcp://ADDRESS:PORT --name DEVICE
 *                --ca FILE --cert FILE --key FILE --broker-name NAME
 *                [--user UID] [--runtime-dir DIR] [--sandbox none]
 *                [--file PATH]... [--file-rw PATH]... -- PROGRAM [ARGS...]
 *   ioreq-remote --broker tcp://ADDRESS:PORT --insecure --name DEVICE ... -- PROGRAM [ARGS...]
 *
 * Over and over, until SIGINT or SIGTERM: it dials the broker with its
 * certificate and key (and checks the broker's against the CA and NAME),
 * then starts PROGRAM exactly as the broker starts a local device (through
 * ioreq-launch into its sandbox, found next to this program, or as a plain
 * child with --sandbox none), on an ipc:// socket of its own in DIR where
 * only that process may connect (rpc.c), and relays the protocol's messages
 * between the two, each one validated on the way (wire.c).
 *
 * Files of this host (--file read-only, --file-rw read-write) go to the
 * device as a local device's `files:` do: opened here (a regular file or a
 * block device), they are its fds 3, 4, ... in the order given, and the
 * broker's Welcome reaches it with their list in place of the broker's
 * (which grants a remote device none).
 *
 * The device never holds the key nor a network: its sandbox keeps its empty
 * network namespace, and the device library is the same as for a local
 * device. The price is one more hop on this host.
 *
 * Until it connects, it says why each attempt failed (connection refused,
 * the broker's certificate not trusted, ours refused by the broker), once
 * per reason, a repeat counted and said again every 30 s.
 *
 * The broker pings every third of its timeout; the runner answers itself.
 * When either end goes (the device exits or breaks the protocol, the
 * connection drops, or no ping came for the timeout: a partition), the
 * device is killed, the connection closed, and the cycle begins again after
 * a backoff (50 ms doubling to 5 s; back to 50 ms after a cycle of 10 s):
 * the broker sees a disconnection as the death of a local device, applies
 * its policy and listens again. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/supplemental/tls/tls.h>

#include "clock.h"
#include "log.h"
#include "proc.h"
#include "rpc.h"
#include "wire.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000
#define STABLE_MS 10000
/* A dial failure repeating its reason is said again after this long. */
#define REPEAT_SAY_MS 30000
#define MAX_ARGS 64

struct data_file {
	const char *path;
	bool write;
};

struct opts {
	const char *broker, *name, *ca, *cert, *key, *broker_name, *runtime_dir;
	bool insecure, sandbox;
	long user;
	struct data_file files[WIRE_MAX_FILES]; /* in command-line order */
	size_t n_files;
	char **program;
};

/* Why dialing the broker failed last, across cycles: each new reason is
 * said at once, a repeated one counted and said again every 30 s. */
struct refusal {
	int err;          /* nng's; 0: none since the last connection */
	unsigned repeats; /* since it was last said */
	int64_t said_ns;
};

/* One cycle: a connection to the broker and a device instance. The
 * callbacks run on nng's threads, the attempts to connect on a thread of
 * their own; the main thread waits for the end. */
struct relay {
	const struct opts *o;
	nng_socket up;
	nng_dialer dialer;
	pthread_t dialing;
	bool dialing_started;
	pthread_cond_t stop_dialing;  /* with lock: ending was set */
	struct refusal *refusal;
	nng_aio *rx;
	struct rpc *dev;
	uint32_t gen;
	int wake;                     /* eventfd: connected, or ending */
	_Atomic bool connected, ending;
	_Atomic int64_t last_ping_ns; /* 0: no ping yet */
	_Atomic uint32_t timeout_ms;  /* the broker's, from its pings */
	pthread_mutex_t lock;
	char why[160];                /* why it ended (the first reason) */
	struct wire_arena arena;      /* rx_done's */
	Ioreq__FileFd fv[WIRE_MAX_FILES], *fp[WIRE_MAX_FILES];
};

static void wake(struct relay *rl)
{
	uint64_t one = 1;

	if (write(rl->wake, &one, sizeof(one)) < 0)
		log_err("cannot wake the main thread: %s", strerror(errno));
}

static void end_cycle(struct relay *rl, const char *why)
{
	pthread_mutex_lock(&rl->lock);
	if (!atomic_load(&rl->ending))
		snprintf(rl->why, sizeof(rl->why), "%s", why);
	atomic_store(&rl->ending, true);
	pthread_cond_broadcast(&rl->stop_dialing);
	pthread_mutex_unlock(&rl->lock);
	wake(rl);
}

/* Waits for a wake-up: 0, or -EINTR for a signal. */
static int sleep_until_woken(struct relay *rl, int sigfd, int pidfd, int timeout_ms)
{
	struct pollfd p[3] = { { .fd = rl->wake, .events = POLLIN },
			       { .fd = sigfd, .events = POLLIN },
			       { .fd = pidfd, .events = POLLIN } };
	uint64_t v;

	if (poll(p, pidfd >= 0 ? 3 : 2, timeout_ms) < 0 && errno != EINTR)
		return -errno;
	if (p[1].revents)
		return -EINTR;
	if (p[0].revents && read(rl->wake, &v, sizeof(v)) < 0)
		return -errno;
	if (pidfd >= 0 && p[2].revents)
		end_cycle(rl, "the device exited");
	return 0;
}

/* ---- the broker's side ---- */

static void up_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct relay *rl = arg;

	if (ev == NNG_PIPE_EV_ADD_POST) {
		atomic_store(&rl->connected, true);
		wake(rl);
	} else if (atomic_load(&rl->connected)) {
		end_cycle(rl, "the connection to the broker dropped");
	}
}

static void answer_ping(struct relay *rl, const Ioreq__Ping *ping)
{
	Ioreq__Pong pong = IOREQ__PONG__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	atomic_store(&rl->timeout_ms, ping->timeout_ms);
	atomic_store(&rl->last_ping_ns, clock_now_ns());
	pong.seq = ping->seq;
	env.msg_case = IOREQ__ENVELOPE__MSG_PONG;
	env.pong = &pong;
	wire_send(rl->up, &env, NNG_FLAG_NONBLOCK);
}

static void rx_done(void *arg)
{
	struct relay *rl = arg;
	Ioreq__Envelope *env;
	int r = wire_aio_unpack(rl->rx, &rl->arena, &env);

	if (r == -ECANCELED)
		return;
	if (r == 0 && env->msg_case == IOREQ__ENVELOPE__MSG_WELCOME) {
		env->welcome->n_files = rl->o->n_files;
		env->welcome->files = rl->fp;
	}
	if (r == 0 && env->msg_case == IOREQ__ENVELOPE__MSG_PING)
		answer_ping(rl, env->ping);
	else if (r == 0 && rpc_send(rl->dev, rl->gen, env) < 0)
		end_cycle(rl, "the device does not take the broker's messages");
	else if (r < 0 && r != -EAGAIN)
		end_cycle(rl, "the broker sent a malformed message");
	nng_recv_aio(rl->up, rl->rx);
}

static int read_file(const char *path, char **ret)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0;
	int r = 0;

	if (!f)
		return -errno;
	if (getdelim(&buf, &len, '\0', f) < 0)
		r = ferror(f) ? -EIO : -ENODATA;
	fclose(f);
	if (r < 0)
		free(buf);
	else
		*ret = buf;
	return r;
}

/* The client's TLS configuration, from the files, once. */
static int make_tls(const struct opts *o, nng_tls_config **ret)
{
	char *cert = NULL, *key = NULL;
	int r;

	r = nng_tls_config_alloc(ret, NNG_TLS_MODE_CLIENT);
	if (r)
		return wire_errno(r);
	r = nng_tls_config_ca_file(*ret, o->ca);
	if (r) {
		log_err("cannot load the CA file %s: %s", o->ca, nng_strerror(r));
		goto err;
	}
	if (read_file(o->cert, &cert) < 0 || read_file(o->key, &key) < 0) {
		log_err("cannot read %s or %s", o->cert, o->key);
		r = NNG_EINVAL;
		goto err;
	}
	r = nng_tls_config_own_cert(*ret, cert, key, NULL);
	if (r) {
		log_err("cannot use the certificate %s with the key %s: %s", o->cert, o->key, nng_strerror(r));
		goto err;
	}
	r = nng_tls_config_server_name(*ret, o->broker_name);
	if (r == 0)
		r = nng_tls_config_auth_mode(*ret, NNG_TLS_AUTH_MODE_REQUIRED);
	if (r)
		goto err;
	free(cert);
	free(key);
	return 0;
err:
	free(cert);
	free(key);
	nng_tls_config_free(*ret);
	return -EINVAL;
}

/* What a failed attempt to connect means, for the operator. nng maps mbed
 * TLS's errors (nng 1.5.2, src/supplemental/tls/mbedtls/tls.c): our check
 * of the broker's certificate failing (--ca, --broker-name) is
 * NNG_ECRYPTO or NNG_EPEERAUTH; the broker refusing ours closes the
 * connection in the handshake (NNG_ECONNRESET, nng_shim.c's end of stream,
 * or NNG_ECONNSHUT). */
#define NOT_TRUSTED                                                                                            \
	"TLS handshake failed: the broker's certificate is not trusted (not signed by the CA of --ca, "          \
	"not for --broker-name, or expired?)"
#define CLOSED "closed by the broker while connecting"
#define CLOSED_TLS "closed by the broker during the handshake: it refused our certificate?"

static const struct {
	int err;
	const char *name, *why, *why_tls; /* why_tls: over tls+tcp://, if other */
} dial_errors[] = {
	{ NNG_ECRYPTO, "NNG_ECRYPTO", NOT_TRUSTED, NULL },
	{ NNG_EPEERAUTH, "NNG_EPEERAUTH", NOT_TRUSTED, NULL },
	{ NNG_ECONNRESET, "NNG_ECONNRESET", CLOSED, CLOSED_TLS },
	{ NNG_ECONNSHUT, "NNG_ECONNSHUT", CLOSED, CLOSED_TLS },
	{ NNG_ECONNREFUSED, "NNG_ECONNREFUSED", "connection refused (is the broker listening there?)", NULL },
	{ NNG_ETIMEDOUT, "NNG_ETIMEDOUT", "timed out", NULL },
	{ NNG_EUNREACHABLE, "NNG_EUNREACHABLE", "unreachable", NULL },
	{ NNG_EADDRINVAL, "NNG_EADDRINVAL", "not an address", NULL },
	{ NNG_EPROTO, "NNG_EPROTO", "not an nng pair1 peer", NULL },
};

static void say_refusal(struct refusal *f, const struct opts *o, int err)
{
	bool tls = !o->insecure;
	int64_t now = clock_now_ns();
	char why[192], name[24];

	if (err == f->err && now - f->said_ns < REPEAT_SAY_MS * 1000000LL) {
		f->repeats++;
		return;
	}
	snprintf(why, sizeof(why), "%s", nng_strerror(err));
	snprintf(name, sizeof(name), "nng error %d", err);
	for (size_t i = 0; i < sizeof(dial_errors) / sizeof(dial_errors[0]); i++)
		if (dial_errors[i].err == err) {
			snprintf(why, sizeof(why), "%s", tls && dial_errors[i].why_tls ? dial_errors[i].why_tls
										      : dial_errors[i].why);
			snprintf(name, sizeof(name), "%s", dial_errors[i].name);
		}
	if (err == f->err)
		log_warn("the broker at %s: %s (%s), %u times in %lld s", o->broker, why, name, f->repeats + 1,
			 (long long)((now - f->said_ns) / 1000000000));
	else
		log_warn("the broker at %s: %s (%s)", o->broker, why, name);
	*f = (struct refusal){ .err = err, .said_ns = now };
}

/* nng 1.5.2 tells nobody why a retrying dialer's attempt failed, but a
 * synchronous nng_dialer_start returns it and leaves the dialer stopped, to
 * be started again (src/core/dialer.c). So the attempts are ours, with the
 * backoff nng would apply, on this thread: one attempt may take the TCP
 * connect's timeout, and the main thread must stay free for signals.
 * Closing the socket ends an attempt. */
static void *dialing(void *arg)
{
	struct relay *rl = arg;
	unsigned backoff = BACKOFF_MIN_MS;
	int r;

	while ((r = nng_dialer_start(rl->dialer, 0)) != 0) {
		struct timespec until;
		int64_t t = clock_now_ns() + (int64_t)backoff * 1000000;

		if (atomic_load(&rl->ending))
			return NULL;
		say_refusal(rl->refusal, rl->o, r);
		until = (struct timespec){ .tv_sec = t / 1000000000, .tv_nsec = t % 1000000000 };
		pthread_mutex_lock(&rl->lock);
		while (!atomic_load(&rl->ending) &&
		       pthread_cond_timedwait(&rl->stop_dialing, &rl->lock, &until) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&rl->lock);
		if (atomic_load(&rl->ending))
			return NULL;
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	rl->refusal->err = 0;
	return NULL;
}

/* Dials until connected, or a signal. */
static int dial(struct relay *rl, nng_tls_config *tls, int sigfd)
{
	int r;

	r = nng_pair1_open(&rl->up);
	if (r)
		return wire_errno(r);
	nng_socket_set_size(rl->up, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
	nng_socket_set_int(rl->up, NNG_OPT_SENDBUF, 64);
	nng_pipe_notify(rl->up, NNG_PIPE_EV_ADD_POST, up_pipe, rl);
	nng_pipe_notify(rl->up, NNG_PIPE_EV_REM_POST, up_pipe, rl);
	r = nng_aio_alloc(&rl->rx, rx_done, rl);
	if (r == 0)
		r = nng_dialer_create(&rl->dialer, rl->up, rl->o->broker);
	if (r == 0 && tls)
		r = nng_dialer_set_ptr(rl->dialer, NNG_OPT_TLS_CONFIG, tls);
	if (r)
		return wire_errno(r);
	r = -pthread_create(&rl->dialing, NULL, dialing, rl);
	if (r < 0)
		return r;
	rl->dialing_started = true;
	while (!atomic_load(&rl->connected) && !atomic_load(&rl->ending))
		if ((r = sleep_until_woken(rl, sigfd, -1, -1)) < 0)
			return r;
	if (atomic_load(&rl->ending))
		return -ECONNRESET;
	nng_recv_aio(rl->up, rl->rx);
	return 0;
}

/* ---- the device's side ---- */

static void dev_message(void *opaque, uint32_t gen, const Ioreq__Envelope *env)
{
	struct relay *rl = opaque;

	if (wire_send(rl->up, env, NNG_FLAG_NONBLOCK) < 0)
		end_cycle(rl, "the broker does not take the device's messages");
}

static void dev_garbage(void *opaque, uint32_t gen, const char *why)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "the device %s", why);
	end_cycle(opaque, msg);
}

static void dev_refused(void *opaque, uint32_t gen, const char *who)
{
	log_warn("refused a connection from %s: not the device it started", who);
}

static void dev_closed(void *opaque, uint32_t gen)
{
	end_cycle(opaque, "the device disconnected");
}

static const struct rpc_events dev_events = {
	.message = dev_message,
	.garbage = dev_garbage,
	.refused = dev_refused,
	.closed = dev_closed,
};

static void close_files(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

/* Every --file and --file-rw into @fds, in order; 0, or a negative errno
 * (said, with the path) and none open. */
static int open_files(const struct opts *o, int *fds)
{
	const char *why;
	int r;

	for (size_t i = 0; i < o->n_files; i++) {
		r = proc_open_file(o->files[i].path, o->files[i].write, false, &fds[i], &why);
		if (r < 0) {
			log_err("cannot open %s %s: %s", o->files[i].path, o->files[i].write ? "read-write" : "read-only",
				why ? why : strerror(-r));
			close_files(fds, i);
			return r;
		}
	}
	return 0;
}

/* The device gets the files at fds 3, 4, ...; the launcher also gets our
 * pidfd, after them (as the broker's spawn_instance lays them out). */
static int spawn(const struct opts *o, const int *files, const char *sock, const char *launcher, pid_t *pid,
		 int *pidfd)
{
	char *argv[MAX_ARGS], url[PATH_MAX + 16], pfd[16], npass[16], user[48];
	int stdio_null = open("/dev/null", O_RDONLY | O_CLOEXEC), fds[WIRE_MAX_FILES + 1];
	struct proc_req req = { .argv = argv, .stdio = { stdio_null, 2, 2 }, .fds = fds, .sandboxed = o->sandbox };
	size_t k = 0;
	int r;

	if (stdio_null < 0)
		return -errno;
	for (size_t i = 0; i < o->n_files; i++)
		fds[req.n_fds++] = files[i];
	if (o->sandbox) {
		r = proc_broker_pidfd();
		if (r < 0)
			goto out;
		snprintf(pfd, sizeof(pfd), "%u", (unsigned)(3 + req.n_fds));
		fds[req.n_fds++] = r;
		argv[k++] = (char *)launcher;
		argv[k++] = "--socket";
		argv[k++] = (char *)sock;
		argv[k++] = "--broker-pidfd";
		argv[k++] = pfd;
		if (o->user >= 0) {
			snprintf(user, sizeof(user), "%ld:%ld", o->user, o->user);
			argv[k++] = "--user";
			argv[k++] = user;
		}
		if (o->n_files) {
			snprintf(npass, sizeof(npass), "%u", (unsigned)o->n_files);
			argv[k++] = "--pass-fds";
			argv[k++] = npass;
		}
		argv[k++] = "--";
	}
	snprintf(url, sizeof(url), "ipc://%s", sock);
	argv[k++] = o->program[0];
	argv[k++] = "--socket";
	argv[k++] = url;
	argv[k++] = "--name";
	argv[k++] = (char *)o->name;
	for (size_t i = 1; o->program[i]; i++) {
		if (k + 1 >= MAX_ARGS) {
			r = -E2BIG;
			goto out;
		}
		argv[k++] = o->program[i];
	}
	argv[k] = NULL;
	r = proc_start(&req, pid, pidfd);
out:
	close(stdio_null);
	return r;
}

/* ---- the cycles ---- */

/* Waits for the end of the cycle: the device's exit, an event, a signal
 * (then -EINTR), or the broker's silence. */
static int wait_end(struct relay *rl, int pidfd, int sigfd)
{
	char why[96];
	int r;

	while (!atomic_load(&rl->ending)) {
		uint32_t timeout = atomic_load(&rl->timeout_ms);
		int64_t last = atomic_load(&rl->last_ping_ns);

		if (timeout && last && clock_now_ns() - last > (int64_t)timeout * 1000000) {
			snprintf(why, sizeof(why), "no ping from the broker for %u ms (a partition?)", timeout);
			end_cycle(rl, why);
		}
		r = sleep_until_woken(rl, sigfd, pidfd, timeout ? (int)(timeout / 3) : 1000);
		if (r < 0)
			return r;
	}
	return 0;
}

static int cycle(const struct opts *o, const int *files, nng_tls_config *tls, struct refusal *refusal,
		 const char *sock, const char *launcher, int sigfd, uint32_t gen)
{
	struct relay *rl = calloc(1, sizeof(*rl));
	pthread_condattr_t monotonic;
	pid_t pid = 0;
	int pidfd = -1, r;

	if (!rl)
		return -ENOMEM;
	rl->o = o;
	rl->gen = gen;
	rl->refusal = refusal;
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&rl->stop_dialing, &monotonic);
	pthread_condattr_destroy(&monotonic);
	for (size_t i = 0; i < o->n_files; i++) {
		ioreq__file_fd__init(&rl->fv[i]);
		rl->fv[i].fd = (int32_t)(3 + i);
		rl->fv[i].writable = o->files[i].write;
		rl->fp[i] = &rl->fv[i];
	}
	pthread_mutex_init(&rl->lock, NULL);
	rl->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r = rl->wake < 0 ? -errno : rpc_new(&dev_events, rl, &rl->dev);
	if (r == 0)
		r = dial(rl, tls, sigfd);
	if (r == 0) {
		log_info("connected to the broker at %s", o->broker);
		r = rpc_listen(rl->dev, sock, gen);
		if (r < 0)
			log_err("cannot listen on %s: %s", sock, strerror(-r));
	}
	if (r == 0) {
		r = spawn(o, files, sock, launcher, &pid, &pidfd);
		if (r < 0)
			log_err("cannot start %s: %s", o->program[0], strerror(-r));
	}
	if (r == 0) {
		rpc_expect(rl->dev, pid);
		log_info("started %s (pid %d)", o->program[0], pid);
		r = wait_end(rl, pidfd, sigfd);
		pthread_mutex_lock(&rl->lock);
		log_info("pid %d: %s", pid, r == -EINTR ? "stopping" : rl->why);
		pthread_mutex_unlock(&rl->lock);
	}
	if (pidfd >= 0) {
		pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
		waitid(P_PIDFD, pidfd, &(siginfo_t){ 0 }, WEXITED);
		close(pidfd);
	}
	/* The device is gone: its connection has ended from its side. */
	rpc_free(rl->dev);
	/* Ending first: an attempt that closing the socket ends is no refusal. */
	end_cycle(rl, "stopping");
	if (rl->up.id)
		nng_close(rl->up);
	if (rl->dialing_started)
		pthread_join(rl->dialing, NULL);
	if (rl->rx) {
		nng_aio_stop(rl->rx);
		nng_aio_free(rl->rx);
	}
	if (rl->wake >= 0)
		close(rl->wake);
	pthread_cond_destroy(&rl->stop_dialing);
	pthread_mutex_destroy(&rl->lock);
	free(rl);
	return r;
}

static void usage(FILE *f)
{
	fputs("usage: ioreq-remote --broker tls+tcp://ADDRESS:PORT --name DEVICE --ca FILE --cert FILE --key FILE\n"
	      "                    --broker-name NAME [--user UID] [--runtime-dir DIR] [--sandbox none]\n"
	      "                    [--file PATH]... [--file-rw PATH]... -- PROGRAM [ARGS...]\n"
	      "       ioreq-remote --broker tcp://ADDRESS:PORT --insecure --name DEVICE ... -- PROGRAM [ARGS...]\n"
	      "       ioreq-remote --version\n",
	      f);
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option opts[] = {
		{ "broker", required_argument, NULL, 'b' },	 { "name", required_argument, NULL, 'n' },
		{ "ca", required_argument, NULL, 'a' },		 { "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },	 { "broker-name", required_argument, NULL, 'N' },
		{ "user", required_argument, NULL, 'u' },	 { "runtime-dir", required_argument, NULL, 'r' },
		{ "sandbox", required_argument, NULL, 's' },	 { "insecure", no_argument, NULL, 'i' },
		{ "file", required_argument, NULL, 'f' },	 { "file-rw", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },		 { "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int opt;

	*o = (struct opts){ .sandbox = true, .user = -1 };
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'b': o->broker = optarg; break;
		case 'n': o->name = optarg; break;
		case 'a': o->ca = optarg; break;
		case 'c': o->cert = optarg; break;
		case 'k': o->key = optarg; break;
		case 'N': o->broker_name = optarg; break;
		case 'u': o->user = strtol(optarg, NULL, 10); break;
		case 'r': o->runtime_dir = optarg; break;
		case 'i': o->insecure = true; break;
		case 'f':
		case 'F':
			if (o->n_files == WIRE_MAX_FILES) {
				fprintf(stderr, "ioreq-remote: at most %d files\n", WIRE_MAX_FILES);
				return -EINVAL;
			}
			o->files[o->n_files++] = (struct data_file){ .path = optarg, .write = opt == 'F' };
			break;
		case 's':
			if (strcmp(optarg, "none") && strcmp(optarg, "strict"))
				return -EINVAL;
			o->sandbox = !strcmp(optarg, "strict");
			break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("ioreq-remote %s\n", IOREQ_VERSION); exit(0);
		default: return -EINVAL;
		}
	}
	if (!o->broker || !o->name || optind >= argc)
		return -EINVAL;
	o->program = argv + optind;
	if (!strncmp(o->broker, "tls+tcp://", 10)) {
		if (o->insecure || !o->ca || !o->cert || !o->key || !o->broker_name)
			return -EINVAL;
	} else if (strncmp(o->broker, "tcp://", 6) || !o->insecure) {
		return -EINVAL;
	}
	if (o->sandbox && geteuid() == 0 && (o->user <= 0 || o->user > 0xfffffffe)) {
		fputs("ioreq-remote: as root, give the device a uid of its own with --user UID\n", stderr);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char self[PATH_MAX], launcher[PATH_MAX + 16], dir[PATH_MAX], sock[PATH_MAX + 8];
	nng_tls_config *tls = NULL;
	struct refusal refusal = { 0 };
	unsigned backoff = BACKOFF_MIN_MS;
	int files[WIRE_MAX_FILES], sigfd, r, status = 0;
	struct opts o;
	sigset_t set;
	ssize_t n;

	if (parse(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	log_set_prefix("ioreq-remote");
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = '\0';
	snprintf(launcher, sizeof(launcher), "%s/ioreq-launch", dirname(self));
	if (o.runtime_dir)
		snprintf(dir, sizeof(dir), "%s", o.runtime_dir);
	else
		snprintf(dir, sizeof(dir), "/run/ioreq-remote.%s", o.name);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_err("cannot create %s: %s", dir, strerror(errno));
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	if (!o.insecure && make_tls(&o, &tls) < 0)
		return 1;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sigfd < 0) {
		log_err("signalfd: %s", strerror(errno));
		return 1;
	}
	for (uint32_t gen = 1;; gen++) {
		int64_t start = clock_now_ns();
		struct pollfd p = { .fd = sigfd, .events = POLLIN };

		/* Fresh open files for each instance, as the broker gives a
		 * local device's: what the offset, the status flags and the
		 * OFD locks of a killed instance were (they are the open file's,
		 * shared by all its fds) never reaches the next, and a file
		 * replaced meanwhile is the one the next instance gets. A file
		 * that cannot be opened is a mistake of the command line's. */
		if (open_files(&o, files) < 0) {
			status = 1;
			break;
		}
		r = cycle(&o, files, tls, &refusal, sock, launcher, sigfd, gen);
		close_files(files, o.n_files);
		if (r == -EINTR)
			break;
		backoff = clock_now_ns() - start >= STABLE_MS * 1000000LL ? BACKOFF_MIN_MS
			  : backoff * 2 > BACKOFF_MAX_MS                 ? BACKOFF_MAX_MS
									 : backoff * 2;
		/* The backoff, unless a signal comes first. */
		if (poll(&p, 1, (int)backoff) > 0)
			break;
	}
	if (tls)
		nng_tls_config_free(tls);
	rmdir(dir);
	return status;
}
