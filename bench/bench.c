/* ioreq-bench: what a guest access costs, against what the transport
 * itself costs, measured side by side in one run on one machine.
 *
 *   ioreq-bench [--quick] [--json] [--iters N] [--cpu N] [--only PART]
 *
 * Latency cases, each unpinned and with every thread of both sides pinned
 * to one CPU (cross-CPU wake-ups dominate on small machines):
 *   unix              raw AF_UNIX SOCK_SEQPACKET ping-pong (the limit)
 *   nng-aio           bare nng pair1 over ipc://, non-blocking send and an
 *                     aio callback, as the broker does (the transport floor)
 *   nng-block         the same with a blocking nng_recvmsg
 *   broker            sim vCPU -> dispatcher -> broker -> nng ->
 *                     ioreq-dev-null -> completion (the broker path)
 *   broker-nosandbox  the same, the device without its sandbox
 *   broker-unclaimed  the same for a port nobody serves: without nng
 *   hsm-client        an in-HSM client, no broker (the in-process baseline)
 *   kvm-hsm, kvm-dev  a guest on /dev/kvm timing its own port reads, to the
 *                     HSM's exit-port client and to ioreq-dev-null
 * a device on "another host" (remote.c), each figure beside the local
 * device's over the ring and over nng, measured in the same rounds:
 *   remote            the broker path with ioreq-dev-null served through
 *                     ioreq-remote over tls+tcp:// (certificates made with
 *                     openssl; without it tcp://, insecure) on 127.0.0.1
 *   remote-veth       the same between two network namespaces joined by a
 *                     veth pair, the broker in one, the runner in the other
 *                     (root and ip only)
 * then a cross-check of the broker path with the real ioreq-brokerd and a
 * sim script; the data plane, each figure beside its baseline (dataplane.c,
 * dplane_guest.c): a sandboxed device copying 4 KiB and 1 MiB of guest RAM
 * against an in-process memcpy, locally and served through ioreq-remote (its
 * memory through messages, TLS on 127.0.0.1), an ioeventfd doorbell against the same write
 * through the broker, an irqfd against the protocol's Interrupt message, on
 * sim and on /dev/kvm; ioreq-dev-virtio-blk's IOPS and MB/s from a polling
 * driver against preadv on the same image, and its QD1 served through
 * ioreq-remote against the local one (vblk.c); throughput over 1, 2, 4
 * and 16 vCPUs in 1 and 2 VMs,
 * allocations per request (LD_PRELOAD counter) and memory.
 *
 * Each measurement runs in a worker process (ioreq-bench --worker CASE),
 * started with its CPU placement so that all it starts inherits it. The
 * latency and throughput cases run in three interleaved rounds; each figure
 * is the median of its rounds. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc_count.h"

#define WORKER_TIMEOUT_MS 180000
#define ITERS_DEFAULT 20000
#define ITERS_QUICK 2000
#define MAX_LAT 32
/* The kvm guest's rows of each placement: in-HSM, ring, ring+poll, nng. */
#define KVM_ROWS 4
#define MAX_TPUT 12
#define MAX_ALLOC 4
#define MAX_DP 6
#define MAX_REMOTE 4

/* Why a case that spins on both sides did not run. */
#define POLL_NEEDS "polling needs two CPUs"

static const struct {
	const char *id;
	const char *title;
	bool spins;
} lat_cases[] = {
	{ "unix", "raw AF_UNIX seqpacket ping-pong (limit)", false },
	{ "shm-eventfd", "shared page + eventfds, both sleep (ring floor)", false },
	{ "shm-spin", "shared page, both spin (polling limit)", true },
	{ "nng-aio", "bare nng pair1, aio callback (floor)", false },
	{ "nng-block", "bare nng pair1, blocking recv", false },
	{ "broker", "broker path: vCPU->broker->ring->dev-null", false },
	{ "broker-poll", "broker path, ring with poll_us: 50", true },
	{ "broker-nng", "broker path over nng (transport: nng)", false },
	{ "broker-nosandbox", "broker path, device with sandbox: none", false },
	{ "broker-unclaimed", "broker, unclaimed port (no nng, no device)", false },
	{ "hsm-client", "in-HSM client (in-process baseline)", false },
};

/* The data plane (dataplane.c; kvm: daemon.c), unpinned; each case's
 * iterations are the latency cases' over @div: a 1 MiB copy, a broker
 * round trip and a spin for the device each go into one sample. */
static const struct {
	const char *id;
	const char *title;
	unsigned div;
} dp_cases[] = {
	{ "dp-copy", "sim: a device copies guest RAM", 4 },
	{ "dp-copy-remote", "sim: a remote device copies guest RAM (DMA messages)", 8 },
	{ "dp-bell", "sim: an ioeventfd doorbell", 2 },
	{ "dp-irq", "sim: an irqfd", 2 },
	{ "kvm-dp", "kvm guest: doorbells and interrupts", 8 },
};

static const struct {
	unsigned vms, vcpus, devices;
	const char *transport;
} tput_cases[] = {
	{ 1, 1, 1, "ring" }, { 1, 2, 1, "ring" }, { 1, 4, 1, "ring" }, { 1, 16, 1, "ring" }, { 1, 4, 4, "ring" },
	{ 2, 1, 1, "ring" }, { 2, 2, 1, "ring" }, { 2, 8, 1, "ring" }, { 1, 1, 1, "nng" },  { 1, 4, 1, "nng" },
	{ 2, 2, 1, "nng" },
};

static const struct {
	const char *id;
	const char *title;
} alloc_cases[] = {
	{ "unix", "raw AF_UNIX seqpacket ping-pong" },
	{ "nng-aio", "bare nng pair1, aio callback" },
	{ "nng-block", "bare nng pair1, blocking recv" },
	{ "broker-nosandbox", "broker path (sandbox: none; broker / dev-null)" },
};

/* The remote part's rows: the two local baselines, then the remote cases
 * (worker "remote", with --netns for the veth pair). */
static const struct {
	const char *id;
	const char *title;
	const char *title_insecure; /* without openssl */
} remote_cases[] = {
	{ "broker", "local device, ring (the broker case)", NULL },
	{ "broker-nng", "local device over nng (broker-nng)", NULL },
	{ "remote", "remote device, tls+tcp:// on 127.0.0.1", "remote device, tcp:// (insecure) on 127.0.0.1" },
	{ "remote-veth", "remote device, tls+tcp:// over a veth pair", "remote device, tcp:// (insecure) over veth" },
};

/* The parts of a run, in the order they run; --only picks one. */
static const char *const parts[] = { "latency", "remote", "crosscheck", "dataplane", "vblk", "throughput",
				     "allocations", "memory" };

static void usage(FILE *f)
{
	fprintf(f, "Usage: ioreq-bench [--quick] [--json] [--iters N] [--cpu N] [--only PART]\n"
		   "\n"
		   "  -q, --quick      a short run, for smoke tests (the figures are noisy)\n"
		   "  -j, --json       print the results as one JSON object\n"
		   "  -n, --iters N    timed round trips per latency case (default %d, quick %d)\n"
		   "  -c, --cpu N      the CPU of the pinned runs (default: the first we may use)\n"
		   "  -o, --only PART  run only one part:",
		   ITERS_DEFAULT, ITERS_QUICK);
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		fprintf(f, " %s", parts[i]);
	fprintf(f, "\n  -h, --help       show this help\n      --version    print the version\n");
}

static bool part_known(const char *name)
{
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (!strcmp(parts[i], name))
			return true;
	return false;
}

/* Whether the run includes @part (NULL @only: all of them). */
static bool wanted(const char *only, const char *part)
{
	return !only || !strcmp(only, part);
}

/* ---- workers ---- */

static int parse_worker(int argc, char **argv, struct worker_args *a)
{
	static const struct option opts[] = {
		{ "worker", required_argument, NULL, 'w' },  { "iters", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'u' },  { "req-size", required_argument, NULL, 'r' },
		{ "rep-size", required_argument, NULL, 'p' }, { "vms", required_argument, NULL, 'v' },
		{ "vcpus", required_argument, NULL, 'c' },   { "seconds", required_argument, NULL, 's' },
		{ "devices", required_argument, NULL, 'd' }, { "transport", required_argument, NULL, 't' },
		{ "bindir", required_argument, NULL, 'b' },  { "image", required_argument, NULL, 'i' },
		{ "certs", required_argument, NULL, 'C' },   { "netns", required_argument, NULL, 'N' },
		{},
	};
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'w':
			a->kind = optarg;
			break;
		case 'n':
			a->iters = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'u':
			a->warmup = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			a->req_size = strtoul(optarg, NULL, 10);
			break;
		case 'p':
			a->rep_size = strtoul(optarg, NULL, 10);
			break;
		case 'v':
			a->vms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			a->vcpus = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			a->seconds = strtod(optarg, NULL);
			break;
		case 'd':
			a->devices = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			a->transport = optarg;
			break;
		case 'b':
			a->bindir = optarg;
			break;
		case 'i':
			a->image = optarg;
			break;
		case 'C':
			a->certs = optarg;
			break;
		case 'N':
			a->netns = optarg;
			break;
		default:
			return -EINVAL;
		}
	}
	return a->kind && a->bindir && optind == argc ? 0 : -EINVAL;
}

static int worker_main(int argc, char **argv, const char *exe)
{
	struct worker_args a = { .exe = exe };
	int r;

	if (parse_worker(argc, argv, &a) < 0) {
		fprintf(stderr, "ioreq-bench: bad worker arguments\n");
		return 2;
	}
	if (!strcmp(a.kind, "unix"))
		r = pp_unix_worker(&a);
	else if (!strcmp(a.kind, "nng-aio"))
		r = pp_nng_worker(&a, true);
	else if (!strcmp(a.kind, "nng-block"))
		r = pp_nng_worker(&a, false);
	else if (!strncmp(a.kind, "shm-", 4))
		r = pp_shm_worker(&a, !strcmp(a.kind, "shm-spin"));
	else if (!strncmp(a.kind, "dp-", 3))
		r = dp_worker(&a);
	else if (!strcmp(a.kind, "vblk") || !strcmp(a.kind, "vblk-remote"))
		r = vblk_worker(&a);
	else
		r = bp_worker(&a);
	fflush(stdout);
	if (r < 0) {
		fprintf(stderr, "ioreq-bench: worker %s: %s\n", a.kind, strerror(-r));
		return 1;
	}
	return 0;
}

static void parse_output(char *text, struct result *r)
{
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char key[32];
		double v;

		if (sscanf(line, "%31s %lf", key, &v) == 2)
			result_set(r, key, v);
	}
}

/* Runs "ioreq-bench --worker ..." with @extra arguments on @cpus and
 * collects what it prints into @r. */
static void run_worker(const struct bench_ctx *c, const cpu_set_t *cpus, char **extra, struct result *r)
{
	char iters[16], warmup[16], req[16], rep[16], text[8192], log[300];
	char *argv[32] = { (char *)c->exe, "--bindir", (char *)c->bindir, "--iters", iters, "--warmup", warmup,
			   "--req-size", req, "--rep-size", rep };
	int64_t deadline = bench_now_ns() + (int64_t)WORKER_TIMEOUT_MS * 1000000;
	size_t n = 11, len = 0;
	int fds[2], err, status;
	pid_t pid;

	snprintf(iters, sizeof(iters), "%u", c->iters);
	snprintf(warmup, sizeof(warmup), "%u", c->iters / 10);
	snprintf(req, sizeof(req), "%zu", c->req_size);
	snprintf(rep, sizeof(rep), "%zu", c->rep_size);
	for (size_t i = 0; extra[i] && n < 31; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	r->ok = false;
	/* What the worker and its devices say goes to a log, shown on failure. */
	snprintf(log, sizeof(log), "%s/worker.log", c->tmp);
	err = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (err < 0 || pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(r->why, sizeof(r->why), "%.200s: %s", err < 0 ? log : "pipe", strerror(errno));
		if (err >= 0)
			close(err);
		return;
	}
	status = bench_spawn(argv, cpus, fds[1], err, -1, &pid);
	close(fds[1]);
	close(err);
	if (status < 0) {
		close(fds[0]);
		snprintf(r->why, sizeof(r->why), "cannot start the worker: %s", strerror(-status));
		return;
	}
	for (;;) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		int64_t left = (deadline - bench_now_ns()) / 1000000;
		ssize_t got;

		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			kill(pid, SIGKILL);
			snprintf(r->why, sizeof(r->why), "timed out");
			break;
		}
		got = read(fds[0], text + len, sizeof(text) - 1 - len);
		if (got <= 0)
			break;
		len += (size_t)got;
	}
	close(fds[0]);
	text[len] = '\0';
	status = bench_wait(pid, WORKER_TIMEOUT_MS);
	if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && !r->why[0]) {
		r->ok = true;
		parse_output(text, r);
	} else if (!r->why[0]) {
		char line[200];

		bench_last_line(log, line, sizeof(line));
		snprintf(r->why, sizeof(r->why), "the worker failed (status 0x%x): %s", status, line);
	}
}

/* ---- the run ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void progress(const char *what, const char *placement)
{
	fprintf(stderr, "ioreq-bench: %s%s%s\n", what, placement ? ", " : "", placement ? placement : "");
}

/* Merges the rounds of one case: the median of each figure over the rounds
 * that worked. */
static void merge_rounds(struct result *out, const struct result *rounds, size_t n)
{
	const struct result *first = NULL;
	size_t ok = 0;

	for (size_t i = 0; i < n; i++) {
		if (rounds[i].ok && !first)
			first = &rounds[i];
		ok += rounds[i].ok;
	}
	out->ok = first != NULL;
	if (!first) {
		snprintf(out->why, sizeof(out->why), "%s", rounds[0].why);
		return;
	}
	for (size_t k = 0; k < first->n; k++) {
		double v[ROUNDS];
		size_t m = 0;

		for (size_t i = 0; i < n; i++) {
			double x = rounds[i].ok ? result_get(&rounds[i], first->kv[k].key) : NAN;

			if (!isnan(x))
				v[m++] = x;
		}
		qsort(v, m, sizeof(v[0]), cmp_double);
		result_set(out, first->kv[k].key, m % 2 ? v[m / 2] : (v[m / 2 - 1] + v[m / 2]) / 2);
	}
	result_set(out, "rounds", (double)ok);
}

static void run_latency(const struct bench_ctx *c, struct result *lat, size_t *n)
{
	const struct {
		const cpu_set_t *cpus;
		const char *name;
	} placements[] = { { &c->all, "unpinned" }, { &c->one, c->one_name } };
	const size_t cases = sizeof(lat_cases) / sizeof(lat_cases[0]);
	static struct result rounds[MAX_LAT][ROUNDS];
	struct bench_ctx round = *c;
	struct result scratch;

	round.iters = c->iters / ROUNDS ? c->iters / ROUNDS : 1;
	for (size_t p = 0; p < 2; p++) {
		struct result *row = &lat[*n];

		for (size_t i = 0; i < cases; i++)
			row[i] = (struct result){ .id = lat_cases[i].id, .title = lat_cases[i].title };
		row[cases] = (struct result){ .id = "kvm-hsm", .title = "kvm guest: in/out to the in-HSM client" };
		row[cases + 1] = (struct result){ .id = "kvm-dev", .title = "kvm guest: to sandboxed dev-null, ring" };
		row[cases + 2] = (struct result){ .id = "kvm-dev-poll", .title = "kvm guest: the same, poll_us: 50" };
		row[cases + 3] = (struct result){ .id = "kvm-dev-nng", .title = "kvm guest: the same over nng" };
		memset(rounds, 0, sizeof(rounds));
		for (size_t k = 0; k < ROUNDS; k++) {
			for (size_t i = 0; i < cases; i++) {
				char *extra[] = { "--worker", (char *)lat_cases[i].id, NULL };

				/* Both sides spinning on one CPU: nothing to learn. */
				if (lat_cases[i].spins && CPU_COUNT(placements[p].cpus) < 2) {
					snprintf(rounds[i][k].why, sizeof(rounds[i][k].why), POLL_NEEDS);
					continue;
				}
				progress(row[i].title, placements[p].name);
				run_worker(&round, placements[p].cpus, extra, &rounds[i][k]);
			}
			progress("kvm guest", placements[p].name);
			daemon_kvm(&round, placements[p].cpus, "", &rounds[cases][k], &rounds[cases + 1][k]);
			if (CPU_COUNT(placements[p].cpus) >= 2)
				daemon_kvm(&round, placements[p].cpus, ", poll_us: 50", &scratch, &rounds[cases + 2][k]);
			else
				snprintf(rounds[cases + 2][k].why, sizeof(rounds[0][0].why), POLL_NEEDS);
			daemon_kvm(&round, placements[p].cpus, ", transport: nng", &scratch, &rounds[cases + 3][k]);
		}
		for (size_t i = 0; i < cases + KVM_ROWS; i++) {
			row[i].placement = placements[p].name;
			merge_rounds(&row[i], rounds[i], ROUNDS);
		}
		*n += cases + KVM_ROWS;
	}
}

/* The rounds' lowest and highest p50 of each figure ("X_p50_ns" gives
 * "X_lo_ns" and "X_hi_ns"): how much the rounds of one run agree. */
static void round_spread(struct result *out, const struct result *rounds, size_t n)
{
	size_t keys = out->n;

	for (size_t k = 0; k < keys; k++) {
		const char *key = out->kv[k].key;
		size_t len = strlen(key);
		double lo = NAN, hi = NAN;
		char name[40];

		if (len < 7 || strcmp(key + len - 7, "_p50_ns"))
			continue;
		for (size_t i = 0; i < n; i++) {
			double v = rounds[i].ok ? result_get(&rounds[i], key) : NAN;

			if (!isnan(v)) {
				lo = isnan(lo) || v < lo ? v : lo;
				hi = isnan(hi) || v > hi ? v : hi;
			}
		}
		snprintf(name, sizeof(name), "%.*s_lo_ns", (int)(len - 7), key);
		result_set(out, name, lo);
		snprintf(name, sizeof(name), "%.*s_hi_ns", (int)(len - 7), key);
		result_set(out, name, hi);
	}
}

static void run_dataplane(const struct bench_ctx *c, struct result *dp, size_t *n)
{
	const size_t cases = sizeof(dp_cases) / sizeof(dp_cases[0]);
	static struct result rounds[MAX_DP][ROUNDS];
	struct remote_env e;

	/* The remote copy over 127.0.0.1, with certificates if openssl is here. */
	remote_env_up(c, &e);
	memset(rounds, 0, sizeof(rounds));
	for (size_t k = 0; k < ROUNDS; k++) {
		for (size_t i = 0; i < cases; i++) {
			bool remote = !strcmp(dp_cases[i].id, "dp-copy-remote");
			char *extra[] = { "--worker", (char *)dp_cases[i].id, remote && e.certs[0] ? "--certs" : NULL,
					  e.certs, NULL };
			struct bench_ctx round = *c;

			if (remote && e.why[0]) {
				snprintf(rounds[i][k].why, sizeof(rounds[i][k].why), "%s", e.why);
				continue;
			}
			round.iters = c->iters / ROUNDS / dp_cases[i].div ? c->iters / ROUNDS / dp_cases[i].div : 1;
			progress(dp_cases[i].title, "unpinned");
			if (!strcmp(dp_cases[i].id, "kvm-dp"))
				daemon_kvm_dataplane(&round, &c->all, &rounds[i][k]);
			else
				run_worker(&round, &c->all, extra, &rounds[i][k]);
		}
	}
	remote_env_down(&e);
	for (size_t i = 0; i < cases; i++) {
		struct result *r = &dp[(*n)++];

		*r = (struct result){ .id = dp_cases[i].id, .title = dp_cases[i].title, .placement = "unpinned" };
		merge_rounds(r, rounds[i], ROUNDS);
		round_spread(r, rounds[i], ROUNDS);
	}
}

static const char *remote_title(size_t i, const struct remote_env *e)
{
	return e->certs[0] || !remote_cases[i].title_insecure ? remote_cases[i].title : remote_cases[i].title_insecure;
}

/* Why remote case @i cannot run ("" if it can). */
static const char *remote_why(size_t i, const struct remote_env *e)
{
	if (strncmp(remote_cases[i].id, "remote", 6))
		return "";
	if (e->why[0] || strcmp(remote_cases[i].id, "remote-veth"))
		return e->why;
	return e->why_veth;
}

/* The remote device (remote.c) beside the local one, the baselines in the
 * same rounds as the figures they judge; unpinned only (the network's
 * threads and the runner's are no part of one CPU's story). */
static void run_remote(const struct bench_ctx *c, struct result *rows, size_t *n)
{
	const size_t cases = sizeof(remote_cases) / sizeof(remote_cases[0]);
	static struct result rounds[MAX_REMOTE][ROUNDS];
	struct bench_ctx round = *c;
	struct remote_env e;
	char netns[80];

	progress("remote device: certificates and network namespaces", NULL);
	remote_env_up(c, &e);
	snprintf(netns, sizeof(netns), "%s:%s", e.ns_b, e.ns_d);
	round.iters = c->iters / ROUNDS ? c->iters / ROUNDS : 1;
	memset(rounds, 0, sizeof(rounds));
	for (size_t k = 0; k < ROUNDS; k++) {
		for (size_t i = 0; i < cases; i++) {
			bool remote = !strncmp(remote_cases[i].id, "remote", 6);
			char *extra[8] = { "--worker", remote ? "remote" : (char *)remote_cases[i].id };
			size_t m = 2;

			if (remote_why(i, &e)[0]) {
				snprintf(rounds[i][k].why, sizeof(rounds[i][k].why), "%s", remote_why(i, &e));
				continue;
			}
			if (remote && e.certs[0]) {
				extra[m++] = "--certs";
				extra[m++] = e.certs;
			}
			if (!strcmp(remote_cases[i].id, "remote-veth")) {
				extra[m++] = "--netns";
				extra[m++] = netns;
			}
			progress(remote_title(i, &e), "unpinned");
			run_worker(&round, &c->all, extra, &rounds[i][k]);
		}
	}
	remote_env_down(&e);
	for (size_t i = 0; i < cases; i++) {
		rows[*n + i] = (struct result){ .id = remote_cases[i].id, .title = remote_title(i, &e),
						.placement = "unpinned" };
		merge_rounds(&rows[*n + i], rounds[i], ROUNDS);
	}
	/* Each row over the local device's, over the ring and over nng. */
	for (size_t i = 0; i < cases; i++) {
		double p50 = result_get(&rows[*n + i], "p50_ns");

		if (rows[*n + i].ok) {
			result_set(&rows[*n + i], "x_ring_p50", p50 / result_get(&rows[*n], "p50_ns"));
			result_set(&rows[*n + i], "x_nng_p50", p50 / result_get(&rows[*n + 1], "p50_ns"));
		}
	}
	*n += cases;
}

/* virtio-blk against preadv (vblk.c): one image for every round, each
 * round a worker that measures every figure and its baseline; then QD1
 * with the device served remotely (through ioreq-remote, over tls+tcp://
 * on 127.0.0.1 if openssl is here), whose baseline is the local QD1. */
static void run_vblk(const struct bench_ctx *c, struct result *r, struct result *remote)
{
	char image[300], secs[16];
	char *extra[] = { "--worker", "vblk", "--seconds", secs, "--image", image, NULL };
	static struct result rounds[ROUNDS], remote_rounds[ROUNDS];
	struct remote_env env;
	int e;

	*r = (struct result){ .id = "vblk", .title = "sim: virtio-blk", .placement = "unpinned" };
	*remote = (struct result){ .id = "vblk-remote", .title = "sim: virtio-blk, the device remote",
				   .placement = "unpinned" };
	snprintf(image, sizeof(image), "%s/vblk.img", c->tmp);
	snprintf(secs, sizeof(secs), "%.2f", c->quick ? TPUT_SECONDS_QUICK : TPUT_SECONDS);
	progress("virtio-blk: the image", NULL);
	e = vblk_make_image(image);
	if (e < 0) {
		snprintf(r->why, sizeof(r->why), "%.200s: %s", image, strerror(-e));
		unlink(image);
		return;
	}
	memset(rounds, 0, sizeof(rounds));
	for (size_t k = 0; k < ROUNDS; k++) {
		progress(r->title, "unpinned");
		run_worker(c, &c->all, extra, &rounds[k]);
	}
	merge_rounds(r, rounds, ROUNDS);
	remote_env_up(c, &env);
	if (env.why[0]) {
		snprintf(remote->why, sizeof(remote->why), "%s", env.why);
	} else {
		char *extra_remote[] = { "--worker", "vblk-remote", "--seconds", secs, "--image", image,
					 env.certs[0] ? "--certs" : NULL, env.certs, NULL };

		memset(remote_rounds, 0, sizeof(remote_rounds));
		for (size_t k = 0; k < ROUNDS; k++) {
			progress(remote->title, "unpinned");
			run_worker(c, &c->all, extra_remote, &remote_rounds[k]);
		}
		merge_rounds(remote, remote_rounds, ROUNDS);
	}
	remote_env_down(&env);
	unlink(image);
}

static void run_throughput(const struct bench_ctx *c, struct result *tput, size_t *n)
{
	const size_t cases = sizeof(tput_cases) / sizeof(tput_cases[0]);
	char vms[16], vcpus[16], devs[16], secs[16], transport[8];
	char *extra[] = { "--worker", "throughput", "--vms", vms, "--vcpus", vcpus, "--devices", devs,
			  "--transport", transport, "--seconds", secs, NULL };
	static struct result rounds[MAX_TPUT][ROUNDS];

	snprintf(secs, sizeof(secs), "%.2f", c->quick ? TPUT_SECONDS_QUICK : TPUT_SECONDS);
	memset(rounds, 0, sizeof(rounds));
	for (size_t k = 0; k < ROUNDS; k++) {
		for (size_t i = 0; i < cases; i++) {
			char what[64];

			snprintf(vms, sizeof(vms), "%u", tput_cases[i].vms);
			snprintf(vcpus, sizeof(vcpus), "%u", tput_cases[i].vcpus);
			snprintf(devs, sizeof(devs), "%u", tput_cases[i].devices);
			snprintf(transport, sizeof(transport), "%s", tput_cases[i].transport);
			snprintf(what, sizeof(what), "throughput, %u VM x %u vCPUs x %u devices, %s", tput_cases[i].vms,
				 tput_cases[i].vcpus, tput_cases[i].devices, tput_cases[i].transport);
			progress(what, NULL);
			run_worker(c, &c->all, extra, &rounds[i][k]);
		}
	}
	for (size_t i = 0; i < cases; i++) {
		struct result *r = &tput[(*n)++];

		*r = (struct result){ .id = "throughput", .title = "throughput", .vms = tput_cases[i].vms,
				      .vcpus = tput_cases[i].vcpus, .devices = tput_cases[i].devices,
				      .transport = tput_cases[i].transport };
		merge_rounds(r, rounds[i], ROUNDS);
	}
}

static int counter_usable(const char *lib, const char *dir)
{
#if defined(__SANITIZE_ADDRESS__)
	/* The sanitizer's allocator must come first: ours cannot be preloaded. */
	return -ENOTSUP;
#else
	if (access(lib, R_OK) < 0 || mkdir(dir, 0700) < 0)
		return -errno;
	return 0;
#endif
}

/* The same workers again, with the allocation counter preloaded into them
 * and everything they start. */
static void run_allocs(const struct bench_ctx *c, struct result *alloc, size_t *n)
{
	char lib[4200], dir[300];
	struct bench_ctx counted = *c;
	int e;

	snprintf(lib, sizeof(lib), "%s/ioreq-bench-alloc.so", c->bindir);
	snprintf(dir, sizeof(dir), "%s/alloc", c->tmp);
	e = counter_usable(lib, dir);
	if (e < 0) {
		for (size_t i = 0; i < sizeof(alloc_cases) / sizeof(alloc_cases[0]); i++) {
			alloc[*n] = (struct result){ .id = alloc_cases[i].id, .title = alloc_cases[i].title };
			snprintf(alloc[(*n)++].why, sizeof(alloc[0].why), "%.200s: %s", lib, strerror(-e));
		}
		return;
	}
	counted.iters = c->iters / 2 ? c->iters / 2 : 1;
	setenv("LD_PRELOAD", lib, 1);
	setenv(ALLOC_COUNT_ENV, dir, 1);
	for (size_t i = 0; i < sizeof(alloc_cases) / sizeof(alloc_cases[0]); i++) {
		struct result *r = &alloc[(*n)++];
		char *extra[] = { "--worker", (char *)alloc_cases[i].id, NULL };

		r->id = alloc_cases[i].id;
		r->title = alloc_cases[i].title;
		progress("allocations", r->id);
		run_worker(&counted, &c->all, extra, r);
		if (r->ok && isnan(result_get(r, "req_alloc_exe"))) {
			r->ok = false;
			snprintf(r->why, sizeof(r->why), "the counter did not load");
		}
	}
	unsetenv("LD_PRELOAD");
	unsetenv(ALLOC_COUNT_ENV);
}

/* ---- about the machine ---- */

static void read_cpu_model(char *buf, size_t len)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "re");

	snprintf(buf, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && p) {
			p[strcspn(p, "\n")] = '\0';
			snprintf(buf, len, "%s", p + 2);
			break;
		}
	}
	fclose(f);
}

static void command_line(const char *cmd, char *buf, size_t len)
{
	FILE *f = popen(cmd, "re");

	buf[0] = '\0';
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	pclose(f);
}

static void read_commit(char *buf, size_t len)
{
	char dirty[256];

	command_line("git -C '" IOREQ_BENCH_SRCDIR "' rev-parse --short HEAD 2>/dev/null", buf, len);
	if (!buf[0]) {
		snprintf(buf, len, "unknown");
		return;
	}
	/* Uncommitted changes to tracked files make the figures those of no commit. */
	command_line("git -C '" IOREQ_BENCH_SRCDIR "' status --porcelain --untracked-files=no 2>/dev/null", dirty,
		     sizeof(dirty));
	if (dirty[0] && strlen(buf) + 7 < len)
		strcat(buf, "-dirty");
}

/* The host's TSC rate, for the guest's cycle counts (x86-64 only). */
static double tsc_ghz(void)
{
#if defined(__x86_64__)
	struct timespec a, b;
	uint64_t c0, c1;

	clock_gettime(CLOCK_MONOTONIC_RAW, &a);
	c0 = __builtin_ia32_rdtsc();
	usleep(100000);
	clock_gettime(CLOCK_MONOTONIC_RAW, &b);
	c1 = __builtin_ia32_rdtsc();
	return (double)(c1 - c0) / ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec));
#else
	return NAN;
#endif
}

static int setup(struct bench_ctx *c, int cpu)
{
	ssize_t n;
	int r;

	n = readlink("/proc/self/exe", c->bindir, sizeof(c->bindir) - 1);
	if (n <= 0)
		return -errno;
	c->bindir[n] = '\0';
	*strrchr(c->bindir, '/') = '\0';
	if (sched_getaffinity(0, sizeof(c->all), &c->all) < 0)
		return -errno;
	if (cpu < 0)
		for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &c->all); cpu++)
			;
	if (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &c->all))
		return -ECHRNG;
	c->cpu = cpu;
	CPU_ZERO(&c->one);
	CPU_SET(cpu, &c->one);
	snprintf(c->one_name, sizeof(c->one_name), "cpu%d", cpu);
	r = bench_wire_sizes(&c->req_size, &c->rep_size);
	if (r < 0)
		return r;
	c->tsc_ghz = tsc_ghz();
	return bench_mkdtemp(c->tmp, sizeof(c->tmp));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "quick", no_argument, NULL, 'q' }, { "json", no_argument, NULL, 'j' },
		{ "iters", required_argument, NULL, 'n' }, { "cpu", required_argument, NULL, 'c' },
		{ "only", required_argument, NULL, 'o' }, { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },     {},
	};
	static struct result lat[MAX_LAT], remote[MAX_REMOTE], dp[MAX_DP], tput[MAX_TPUT], alloc[MAX_ALLOC], mem, check,
		vblk, vblk_remote;
	struct bench_ctx c = { .exe = "/proc/self/exe" };
	struct report rep = { .ctx = &c, .lat = lat, .remote = remote, .dp = dp, .tput = tput, .alloc = alloc };
	const char *only = NULL;
	bool json = false;
	int opt, cpu = -1, r;
	struct utsname u;
	int64_t t0;
	time_t now;

	/* Our own peers: a pong is this program in another mode. It must not
	 * outlive a worker that was killed. */
	if (argc >= 2 && !strncmp(argv[1], "--pong-", 7) && (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1))
		return 1;
	if (argc == 3 && !strcmp(argv[1], "--pong-unix"))
		return pp_unix_pong(3, strtoul(argv[2], NULL, 10));
	if (argc == 4 && !strcmp(argv[1], "--pong-nng"))
		return pp_nng_pong(argv[2], strtoul(argv[3], NULL, 10));
	/* A program that must die with its worker (ioreq-remote). */
	if (argc >= 3 && !strcmp(argv[1], "--pong-exec")) {
		execv(argv[2], argv + 2);
		return 127;
	}
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--worker"))
			return worker_main(argc, argv, "/proc/self/exe");

	while ((opt = getopt_long(argc, argv, "qjn:c:o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			c.quick = true;
			break;
		case 'j':
			json = true;
			break;
		case 'n':
			c.iters = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			cpu = atoi(optarg);
			break;
		case 'o':
			only = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("ioreq-bench %s\n", IOREQ_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (only && !part_known(only))) {
		usage(stderr);
		return 2;
	}
	if (!c.iters)
		c.iters = c.quick ? ITERS_QUICK : ITERS_DEFAULT;
	r = setup(&c, cpu);
	if (r == -ECHRNG) {
		fprintf(stderr, "ioreq-bench: --cpu %d: not a CPU this process may use\n", cpu);
		return 2;
	}
	if (r < 0) {
		fprintf(stderr, "ioreq-bench: %s\n", strerror(-r));
		return 1;
	}
	t0 = bench_now_ns();
	now = time(NULL);
	strftime(rep.date, sizeof(rep.date), "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
	read_commit(rep.commit, sizeof(rep.commit));
	read_cpu_model(rep.cpu_model, sizeof(rep.cpu_model));
	rep.ncpus = (unsigned)CPU_COUNT(&c.all);
	if (uname(&u) == 0)
		snprintf(rep.kernel, sizeof(rep.kernel), "%s %s", u.sysname, u.release);

	if (wanted(only, "latency"))
		run_latency(&c, lat, &rep.n_lat);
	if (wanted(only, "remote"))
		run_remote(&c, remote, &rep.n_remote);
	if (wanted(only, "crosscheck")) {
		progress("cross-check with ioreq-brokerd", NULL);
		check = (struct result){ .id = "brokerd-sim", .title = "ioreq-brokerd + sim script, mean" };
		daemon_crosscheck(&c, &check);
		rep.check = &check;
	}
	if (wanted(only, "dataplane"))
		run_dataplane(&c, dp, &rep.n_dp);
	if (wanted(only, "vblk")) {
		run_vblk(&c, &vblk, &vblk_remote);
		rep.vblk = &vblk;
		rep.vblk_remote = &vblk_remote;
	}
	if (wanted(only, "throughput"))
		run_throughput(&c, tput, &rep.n_tput);
	if (wanted(only, "allocations"))
		run_allocs(&c, alloc, &rep.n_alloc);
	if (wanted(only, "memory")) {
		progress("memory", NULL);
		mem = (struct result){ .id = "memory", .title = "memory" };
		daemon_memory(&c, &mem);
		rep.mem = &mem;
	}
	rep.seconds = (double)(bench_now_ns() - t0) / 1e9;

	if (json)
		report_json(&rep);
	else
		report_text(&rep);
	bench_rmtree(c.tmp);
	return 0;
}
