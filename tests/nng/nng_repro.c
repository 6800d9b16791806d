/* nng-repro: the broker's device listener (broker/rpc.c as of issue 14: a
 * pair1 socket listening on ipc://, an ADD_PRE callback that refuses pipes
 * from the wrong pid with nng_pipe_close, a REM_POST callback, an rx aio)
 * against what nng 1.5.2 mishandles. It prints what happens to the
 * listener's process: fds, CPU, whether a real device can still connect,
 * and whether nng_close returns. A measuring tool, not a test: see
 * tests/nng/README.md for the figures.
 *
 *   nng-repro [--kind KIND] [--rounds N] [--during]  raw clients giving up
 *   nng-repro --busy-kills N [--flood]               busy devices killed
 *   nng-repro --close-busy                           nng_close, device busy
 *   common: [--refuse pre|post] [--per-instance] [--idle SECONDS]
 *
 * KIND (each round is one raw AF_UNIX connection; `all` rotates):
 *   connect-close   connect, close at once
 *   read-close      read the listener's SP header, close without sending one
 *   header-close    send the 8-byte SP header, read the listener's, close
 *   header-noread   send the SP header, close without reading the listener's
 *   partial-frame   header exchange, half a message frame, close
 *   refused         header exchange, wait for the listener to refuse (EOF)
 * --during starts a real device while they run.
 *
 * --busy-kills N starts N device instances one after the other, each sending
 * requests (echoed) and interrupts while reading what comes back, and kills
 * each with SIGKILL mid-traffic; --flood makes them never read.
 * --close-busy calls nng_close while a busy device is connected.
 *
 * nng-repro-shim is the same program linked with the broker's workaround
 * (broker/nng_shim.c); --refuse post refuses pipes in ADD_POST instead of
 * ADD_PRE; --per-instance serves the device after the
 * churn from a fresh socket on a fresh path, closing the churned one.
 *
 * Internal modes, exec'd by the listener so that no forked child of an nng
 * process touches nng: --impostor KIND N PATH (the raw clients), --device URL
 * and --device-busy URL reads|flood (nng pair1 dialers like libioreq-device). */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/transport/ipc/ipc.h>


extern char **environ;

enum kind {
	K_CONNECT_CLOSE,
	K_READ_CLOSE,
	K_HEADER_CLOSE,
	K_HEADER_NOREAD,
	K_PARTIAL_FRAME,
	K_REFUSED,
	K_ALL,
	K_COUNT
};

static const char *const kind_names[K_COUNT] = {
    [K_CONNECT_CLOSE] = "connect-close",
    [K_READ_CLOSE] = "read-close",
    [K_HEADER_CLOSE] = "header-close",
    [K_HEADER_NOREAD] = "header-noread",
    [K_PARTIAL_FRAME] = "partial-frame",
    [K_REFUSED] = "refused",
    [K_ALL] = "all",
};

/* Offered by an nng pair1 peer: 0, 'S', 'P', 0, protocol 0x0011 (big endian), 0, 0. */
static const uint8_t sp_header[8] = {0, 'S', 'P', 0, 0x00, 0x11, 0, 0};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int parse_kind(const char *s)
{
	for (int k = 0; k < K_COUNT; k++)
		if (!strcmp(s, kind_names[k]))
			return k;
	return -1;
}

/* ---- the impostor: raw AF_UNIX clients ---------------------------------- */

static int wait_readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms);
}

static void read_some(int fd, size_t n, int ms)
{
	uint8_t buf[64];

	while (n > 0 && wait_readable(fd, ms) > 0) {
		ssize_t r = read(fd, buf, n < sizeof(buf) ? n : sizeof(buf));
		if (r <= 0)
			return;
		n -= (size_t)r;
	}
}

/* One connection of kind @k; returns 1 if the listener closed it (refused). */
static int impostor_round(const char *path, int k)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint8_t frame[9 + 10] = {1, 0, 0, 0, 0, 0, 0, 0, 64};
	int fd, refused = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return 0;
	}
	switch (k) {
	case K_CONNECT_CLOSE:
		break;
	case K_READ_CLOSE:
		read_some(fd, 8, 2000);
		break;
	case K_HEADER_NOREAD:
		send(fd, sp_header, sizeof(sp_header), MSG_NOSIGNAL);
		break;
	case K_HEADER_CLOSE:
		send(fd, sp_header, sizeof(sp_header), MSG_NOSIGNAL);
		read_some(fd, 8, 2000);
		break;
	case K_PARTIAL_FRAME:
		send(fd, sp_header, sizeof(sp_header), MSG_NOSIGNAL);
		read_some(fd, 8, 2000);
		/* A 64-byte message announced, 10 bytes of it sent. */
		send(fd, frame, sizeof(frame), MSG_NOSIGNAL);
		break;
	case K_REFUSED: {
		uint8_t b;
		send(fd, sp_header, sizeof(sp_header), MSG_NOSIGNAL);
		read_some(fd, 8, 2000);
		if (wait_readable(fd, 300) > 0 && read(fd, &b, 1) <= 0)
			refused = 1;
		break;
	}
	}
	close(fd);
	return refused;
}

static int impostor_main(const char *kind, const char *count, const char *path)
{
	int k = parse_kind(kind), n = atoi(count), refused = 0;

	for (int i = 0; i < n; i++)
		refused += impostor_round(path, k == K_ALL ? i % K_ALL : k);
	printf("%d\n", refused);
	return 0;
}

/* ---- the device: an nng pair1 dialer like clients/lib/device.c ---------- */

static int device_main(const char *url)
{
	double t0 = now_s();
	nng_socket s;
	nng_msg *m;
	int r;

	if ((r = nng_pair1_open(&s)) || (r = nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 200)) ||
	    (r = nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 200)) || (r = nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 20)) ||
	    (r = nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 100)) || (r = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK))) {
		fprintf(stderr, "device: %s\n", nng_strerror(r));
		return 1;
	}
	/* A hello sent on a pipe the listener then refused (it learns our
	 * pid only after the spawn) is lost: say it again until answered. */
	do {
		if (nng_send(s, "hello", 6, 0) == 0 && nng_recvmsg(s, &m, 0) == 0) {
			nng_msg_free(m);
			/* Not closed: the exit is what the listener waits for, and
			 * nng_close could hang on a listener gone wrong. */
			return 0;
		}
	} while (now_s() - t0 < 10);
	return 1;
}

/* The same, then traffic both ways until it is killed: like a device, it
 * keeps 16 requests in flight (messages the listener echoes, as the broker
 * sends requests and the device replies) and sends unsolicited messages
 * (interrupts) as fast as it can, reading everything that comes back.
 * With @flood it never reads, so the listener's sends back up. */
static int device_busy_main(const char *url, bool flood)
{
	char echo[200] = "e", irq[64] = "i";
	int outstanding = 0;
	nng_socket s;
	nng_msg *m;

	if (nng_pair1_open(&s) || nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 200) ||
	    nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK))
		return 1;
	while (nng_send(s, "hello", 6, 0) || nng_recvmsg(s, &m, 0))
		;
	nng_msg_free(m);
	for (;;) {
		while (flood || outstanding < 16) {
			nng_send(s, echo, sizeof(echo), 0);
			outstanding++;
		}
		nng_send(s, irq, sizeof(irq), 0);
		while (nng_recvmsg(s, &m, NNG_FLAG_NONBLOCK) == 0) {
			outstanding--;
			nng_msg_free(m);
		}
	}
}

/* ---- the listener: broker/rpc.c's use of nng --------------------------- */

enum { REFUSE_PRE, REFUSE_POST };

struct listener {
	nng_socket sock;
	nng_aio *rx;
	char url[128];
	int refuse_at;
	atomic_int expected_pid; /* the device we started; 0: refuse everyone */
	atomic_int accepted, refused, removed, received;
};

static void pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	struct listener *l = arg;
	uint64_t peer = 0;
	int want = atomic_load(&l->expected_pid);

	if ((ev == NNG_PIPE_EV_ADD_PRE && l->refuse_at == REFUSE_PRE) ||
	    (ev == NNG_PIPE_EV_ADD_POST && l->refuse_at == REFUSE_POST)) {
		nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &peer);
		if (want <= 0 || peer != (uint64_t)want) {
			atomic_fetch_add(&l->refused, 1);
			nng_pipe_close(pipe);
			return;
		}
		atomic_fetch_add(&l->accepted, 1);
		return;
	}
	if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_add(&l->removed, 1);
}

static void rx_done(void *arg)
{
	struct listener *l = arg;
	int r = nng_aio_result(l->rx);

	if (r == NNG_ECLOSED || r == NNG_ECANCELED)
		return;
	if (r == 0) {
		nng_msg *m = nng_aio_get_msg(l->rx);
		atomic_fetch_add(&l->received, 1);
		/* Answer hellos and echo requests; interrupts need no answer. */
		if (nng_msg_len(m) && *(char *)nng_msg_body(m) == 'i')
			nng_msg_free(m);
		else if (nng_sendmsg(l->sock, m, NNG_FLAG_NONBLOCK))
			nng_msg_free(m);
	}
	nng_recv_aio(l->sock, l->rx);
}

static int listener_open(struct listener *l, const char *dir, int n, int refuse_at)
{
	int r;

	memset(l, 0, sizeof(*l));
	l->refuse_at = refuse_at;
	snprintf(l->url, sizeof(l->url), "ipc://%s/sock%d", dir, n);
	if ((r = nng_pair1_open(&l->sock)))
		return r;
	nng_socket_set_size(l->sock, NNG_OPT_RECVMAXSZ, 65536);
	nng_socket_set_int(l->sock, NNG_OPT_SENDBUF, 32);
	nng_socket_set_int(l->sock, NNG_OPT_RECVBUF, 32);
	nng_pipe_notify(l->sock, refuse_at == REFUSE_PRE ? NNG_PIPE_EV_ADD_PRE : NNG_PIPE_EV_ADD_POST, pipe_event, l);
	nng_pipe_notify(l->sock, NNG_PIPE_EV_REM_POST, pipe_event, l);
	if ((r = nng_aio_alloc(&l->rx, rx_done, l)) || (r = nng_listen(l->sock, l->url, NULL, 0)))
		return r;
	nng_recv_aio(l->sock, l->rx);
	return 0;
}

struct closer {
	nng_socket sock;
	atomic_bool done;
};

static void *close_thread(void *arg)
{
	struct closer *c = arg;

	nng_close(c->sock);
	atomic_store(&c->done, true);
	return NULL;
}

/* nng_close in a thread: returns the seconds it took, or -1 if it had not
 * returned after @limit seconds (the thread is then left behind). */
static double listener_close(struct listener *l, double limit)
{
	static struct closer c; /* outlives a hung thread */
	double t0 = now_s();
	pthread_t t;

	c.sock = l->sock;
	atomic_store(&c.done, false);
	if (pthread_create(&t, NULL, close_thread, &c))
		return -1;
	while (!atomic_load(&c.done) && now_s() - t0 < limit)
		sleep_s(0.01);
	if (!atomic_load(&c.done)) {
		pthread_detach(t);
		return -1;
	}
	pthread_join(t, NULL);
	nng_aio_free(l->rx);
	return now_s() - t0;
}

/* ---- measuring ourselves ------------------------------------------------ */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds of our threads whose name starts with @prefix. */
static double thread_cpu_s(const char *prefix)
{
	long tick = sysconf(_SC_CLK_TCK);
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	double sum = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[300], comm[32] = "", stat[1024], *p;
		unsigned long ut, st;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		if (!(f = fopen(path, "re")))
			continue;
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
		if (strncmp(comm, prefix, strlen(prefix)))
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
		if (!(f = fopen(path, "re")))
			continue;
		p = fgets(stat, sizeof(stat), f);
		fclose(f);
		/* Fields after the ")" of comm: state is 3, utime 14, stime 15. */
		if (!p || !(p = strrchr(stat, ')')) ||
		    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
			continue;
		sum += (double)(ut + st) / (double)tick;
	}
	closedir(d);
	return sum;
}

static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static pid_t spawn_self(char *const argv[], int *out_fd)
{
	posix_spawn_file_actions_t fa;
	int p[2] = {-1, -1};
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	if (out_fd) {
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	}
	if (posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ))
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	if (out_fd) {
		close(p[1]);
		*out_fd = p[0];
	}
	return pid;
}

static int wait_exit(pid_t pid, double limit)
{
	double t0 = now_s();
	int status;

	while (now_s() - t0 < limit) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		sleep_s(0.01);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* Starts the real device against @l and waits for its hello. */
static bool device_served(struct listener *l, double limit)
{
	char *argv[] = {"nng-repro", "--device", l->url, NULL};
	int before = atomic_load(&l->received), rc;
	pid_t pid;

	/* The pid is known only after the spawn, as in the broker, which
	 * records it under a lock the callback takes; here a connection
	 * refused in that window is retried by the device's redial. */
	pid = spawn_self(argv, NULL);
	if (pid < 0)
		return false;
	atomic_store(&l->expected_pid, pid);
	rc = wait_exit(pid, limit);
	atomic_store(&l->expected_pid, 0);
	return rc == 0 && atomic_load(&l->received) > before;
}

/* Real device instances killed while messages flow both ways, as the
 * broker's devices are under churn. Returns the instance after which a
 * REM_POST never came (nng's reaper is stuck), or 0. */
static int busy_kills(struct listener *l, int n, bool flood)
{
	char *argv[] = {"nng-repro", "--device-busy", l->url, flood ? "flood" : "reads", NULL};

	for (int i = 1; i <= n; i++) {
		int before = atomic_load(&l->received), removed = atomic_load(&l->removed);
		double t0 = now_s();
		pid_t pid = spawn_self(argv, NULL);

		if (pid < 0)
			return -1;
		atomic_store(&l->expected_pid, pid);
		while (atomic_load(&l->received) < before + 200 && now_s() - t0 < 5)
			sleep_s(0.001);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		atomic_store(&l->expected_pid, 0);
		t0 = now_s();
		while (atomic_load(&l->removed) == removed && now_s() - t0 < 3)
			sleep_s(0.001);
		if (atomic_load(&l->removed) == removed)
			return i;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: nng-repro [--kind KIND] [--rounds N] [--refuse pre|post]\n"
			"                 [--per-instance] [--busy-kills N [--flood]] [--close-busy] [--during]\n"
			"                 [--idle SECONDS]\n"
			"KIND: connect-close read-close header-close header-noread partial-frame refused all\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *kind = "all";
	int rounds = 1000, busy = 0, stuck = 0, refuse_at = REFUSE_PRE, imp_out, fds0, fds1, fds2, threads0, r;
	bool per_instance = false, flood = false, close_busy = false, during = false, ok;
	double idle = 2.0, t0, t_churn, cpu0, cpu1, cpu2, poll0, poll1, reap0, reap1, closed;
	char dir[] = "/tmp/nng-repro.XXXXXX", nbuf[16], out[32] = "";
	struct listener l, fresh, *serve = &l;
	ssize_t n;
	pid_t imp;

	if (argc == 5 && !strcmp(argv[1], "--impostor"))
		return impostor_main(argv[2], argv[3], argv[4]);
	if (argc == 3 && !strcmp(argv[1], "--device"))
		return device_main(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "--device-busy"))
		return device_busy_main(argv[2], !strcmp(argv[3], "flood"));
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--kind") && i + 1 < argc && parse_kind(argv[i + 1]) >= 0)
			kind = argv[++i];
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--refuse") && i + 1 < argc)
			refuse_at = !strcmp(argv[++i], "post") ? REFUSE_POST : REFUSE_PRE;
		else if (!strcmp(argv[i], "--per-instance"))
			per_instance = true;
		else if (!strcmp(argv[i], "--busy-kills") && i + 1 < argc)
			busy = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--flood"))
			flood = true;
		else if (!strcmp(argv[i], "--close-busy"))
			close_busy = true;
		else if (!strcmp(argv[i], "--during"))
			during = true;
		else if (!strcmp(argv[i], "--idle") && i + 1 < argc)
			idle = atof(argv[++i]);
		else
			usage();
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	if ((r = listener_open(&l, dir, 0, refuse_at))) {
		fprintf(stderr, "listen: %s\n", nng_strerror(r));
		return 1;
	}
	sleep_s(0.3);
	fds0 = count_fds();
	threads0 = count_threads();
	printf("kind %s rounds %d refuse %s%s%s\n", kind, rounds, refuse_at == REFUSE_PRE ? "ADD_PRE" : "ADD_POST",
	       NNG_REPRO_SHIM ? " shim" : "", per_instance ? " per-instance" : "");
	printf("baseline: %d fds, %d threads\n", fds0, threads0);
	if (!device_served(&l, 5)) {
		printf("device before churn: NOT served\n");
		return 1;
	}

	if (close_busy) {
		/* nng_close while a device is sending, instead of after it exited. */
		char *dargv[] = {"nng-repro", "--device-busy", l.url, "reads", NULL};
		int before = atomic_load(&l.received);
		pid_t pid = spawn_self(dargv, NULL);

		atomic_store(&l.expected_pid, pid);
		t0 = now_s();
		while (atomic_load(&l.received) < before + 200 && now_s() - t0 < 5)
			sleep_s(0.001);
		closed = listener_close(&l, 10);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		printf("nng_close with a busy device connected: %s\n", closed < 0 ? "HUNG (>10 s)" : "returned");
		fflush(stdout);
		_exit(closed < 0 ? 3 : 0);
	}
	snprintf(nbuf, sizeof(nbuf), "%d", rounds);
	if (busy > 0) {
		cpu0 = cpu_s();
		t0 = now_s();
		stuck = busy_kills(&l, busy, flood);
		t_churn = now_s() - t0;
		rounds = 0;
		if (stuck > 0)
			printf("busy device instance %d killed: its REM_POST never came (nng's reaper is stuck)\n",
			       stuck);
		else
			printf("%d busy device instances%s killed: every REM_POST came\n", busy,
			       flood ? " (not reading)" : "");
	} else {
		char *iargv[] = {"nng-repro", "--impostor", (char *)kind, nbuf, l.url + strlen("ipc://"), NULL};
		cpu0 = cpu_s();
		t0 = now_s();
		imp = spawn_self(iargv, &imp_out);
		if (during && imp > 0) {
			/* A device instance starting while the churn goes on. */
			double d0 = now_s();

			sleep_s(0.05);
			ok = device_served(&l, 10);
			printf("device during churn: %s after %.2f s\n", ok ? "served" : "NOT served",
			       now_s() - d0 - 0.05);
		}
		if (imp < 0 || wait_exit(imp, 600) != 0) {
			fprintf(stderr, "impostor failed\n");
			return 1;
		}
		t_churn = now_s() - t0;
		n = read(imp_out, out, sizeof(out) - 1);
		out[n > 0 ? n : 0] = 0;
		close(imp_out);
	}
	sleep_s(1.0); /* let nng finish with what was in flight */
	cpu1 = cpu_s();
	fds1 = count_fds();
	poll0 = thread_cpu_s("nng:poll");
	reap0 = thread_cpu_s("nng:reap");
	sleep_s(idle);
	cpu2 = cpu_s();
	poll1 = thread_cpu_s("nng:poll");
	reap1 = thread_cpu_s("nng:reap");
	printf("churn: %d connections in %.2f s, %.2f s CPU (%d closed by the listener)\n", rounds, t_churn,
	       cpu1 - cpu0, atoi(out));
	printf("after: %d fds (%+d), %d threads; pipes accepted %d refused %d removed %d\n", fds1, fds1 - fds0,
	       count_threads(), atomic_load(&l.accepted), atomic_load(&l.refused), atomic_load(&l.removed));
	printf("idle %.1f s: CPU %.0f%% (poll thread %.0f%%, reaper %.0f%%)\n", idle, 100 * (cpu2 - cpu1) / idle,
	       100 * (poll1 - poll0) / idle, 100 * (reap1 - reap0) / idle);

	if (per_instance) {
		/* The candidate: the next instance gets its own socket and path;
		 * the old one goes with the instance that was on it. */
		closed = listener_close(&l, 10);
		printf("old socket nng_close: %s", closed < 0 ? "HUNG (>10 s)\n" : "");
		if (closed >= 0)
			printf("%.3f s, %d fds left (%+d)\n", closed, count_fds(), count_fds() - fds0);
		if ((r = listener_open(&fresh, dir, 1, refuse_at))) {
			fprintf(stderr, "listen: %s\n", nng_strerror(r));
			return 1;
		}
		serve = &fresh;
	}
	ok = device_served(serve, 5);
	printf("device after churn: %s; %d fds\n", ok ? "served" : "NOT served (no hello within 5 s)", count_fds());
	closed = listener_close(serve, 10);
	fds2 = count_fds();
	if (closed < 0)
		printf("nng_close: HUNG (>10 s)\n");
	else
		printf("nng_close: %.3f s; %d fds left (%+d against the baseline)\n", closed, fds2, fds2 - fds0);
	fflush(stdout);
	for (int i = 0; i < 2; i++) {
		char path[sizeof(dir) + 16];

		snprintf(path, sizeof(path), "%s/sock%d", dir, i);
		unlink(path);
	}
	rmdir(dir);
	/* A hung close thread would keep exit() waiting in nng's atexit fini. */
	_exit(closed < 0 ? 3 : 0);
}
