#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc_count.h"
#include "wire.h"

extern char **environ;

int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int bench_mkdtemp(char *buf, size_t len)
{
	const char *base = getenv("TMPDIR");

	/* Short: nng's ipc:// paths must fit in sun_path. */
	snprintf(buf, len, "%s/ioreq-bench.XXXXXX", base && *base ? base : "/tmp");
	return mkdtemp(buf) ? 0 : -errno;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

void bench_rmtree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int bench_spawn(char *const argv[], const cpu_set_t *cpus, int out_fd, int err_fd, int pass_fd, pid_t *ret)
{
	posix_spawn_file_actions_t fa;
	cpu_set_t saved;
	int r;

	/* posix_spawn has no affinity attribute; the child inherits ours, so
	 * set it around the spawn (the orchestrator is single-threaded). */
	if (cpus) {
		if (sched_getaffinity(0, sizeof(saved), &saved) < 0 || sched_setaffinity(0, sizeof(*cpus), cpus) < 0)
			return -errno;
	}
	posix_spawn_file_actions_init(&fa);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	if (err_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
	if (pass_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, pass_fd, 3);
	r = -posix_spawn(ret, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (cpus)
		sched_setaffinity(0, sizeof(saved), &saved);
	return r;
}

int bench_wait(pid_t pid, int timeout_ms)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	int status;

	if (fd >= 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, timeout_ms) == 0)
			kill(pid, SIGKILL);
		close(fd);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return status;
}

int bench_wire_sizes(size_t *ret_req, size_t *ret_rep)
{
	Ioreq__Request q = IOREQ__REQUEST__INIT;
	Ioreq__Reply rep = IOREQ__REPLY__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	nng_msg *msg;
	int r;

	/* What rpc_send_request sends for vCPU 0's 4-byte read of the device's
	 * first port, some 100,000 requests into a run (ids are seq << 4 | vcpu). */
	q.id = 100000ull << 4;
	q.vcpu = 0;
	q.kind = IOREQ__KIND__KIND_PIO;
	q.dir = IOREQ__DIRECTION__DIR_READ;
	q.addr = BENCH_DEV_PORT;
	q.size = 4;
	env.msg_case = IOREQ__ENVELOPE__MSG_REQUEST;
	env.request = &q;
	r = wire_pack(&env, &msg);
	if (r < 0)
		return r;
	*ret_req = nng_msg_len(msg);
	nng_msg_free(msg);

	rep.id = q.id;
	rep.value = BENCH_PATTERN;
	rep.status = IOREQ__STATUS__STATUS_OK;
	env.msg_case = IOREQ__ENVELOPE__MSG_REPLY;
	env.reply = &rep;
	r = wire_pack(&env, &msg);
	if (r < 0)
		return r;
	*ret_rep = nng_msg_len(msg);
	nng_msg_free(msg);
	return 0;
}

void bench_last_line(const char *path, char *buf, size_t len)
{
	char line[512];
	FILE *f = fopen(path, "re");

	snprintf(buf, len, "(nothing logged)");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0])
			snprintf(buf, len, "%.200s", line);
	}
	fclose(f);
}

static int read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static uint64_t field_u64(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

int proc_sample(pid_t pid, struct proc_sample *ret)
{
	char dir[64], path[384], buf[4096];
	struct dirent *e;
	DIR *d;

	if (pid)
		snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	else
		snprintf(dir, sizeof(dir), "/proc/self/task");
	ret->csw = ret->cpu_ns = 0;
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
		if (read_text(path, buf, sizeof(buf)) == 0)
			ret->csw += field_u64(buf, "\nvoluntary_ctxt_switches:") +
				    field_u64(buf, "\nnonvoluntary_ctxt_switches:");
		/* schedstat: time on the CPU in ns, then time waiting for it. */
		snprintf(path, sizeof(path), "%s/%s/schedstat", dir, e->d_name);
		if (read_text(path, buf, sizeof(buf)) == 0)
			ret->cpu_ns += strtoull(buf, NULL, 10);
	}
	closedir(d);
	return 0;
}

long proc_status(pid_t pid, const char *key)
{
	char path[64], buf[4096], k[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	snprintf(k, sizeof(k), "\n%s:", key);
	r = read_text(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	if (!strstr(buf, k))
		return -ESRCH;
	return (long)field_u64(buf, k);
}

size_t proc_children(pid_t pid, pid_t *ret, size_t max)
{
	char dir[64], path[384], buf[4096];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char *p, *end;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/children", dir, e->d_name);
		if (read_text(path, buf, sizeof(buf)) < 0)
			continue;
		for (p = buf; n < max; p = end) {
			long c = strtol(p, &end, 10);

			if (end == p)
				break;
			ret[n++] = (pid_t)c;
		}
	}
	closedir(d);
	return n;
}

void alloc_sample(pid_t pid, struct alloc_sample *ret)
{
	const char *dir = getenv(ALLOC_COUNT_ENV);
	struct alloc_counts c;
	char path[4096];
	int fd;

	_Static_assert(ALLOC_ORIGINS == 4, "struct alloc_sample holds four origins");
	memset(ret, 0, sizeof(*ret));
	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/%d", dir, (int)(pid ? pid : getpid()));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (pread(fd, &c, sizeof(c), 0) == (ssize_t)sizeof(c) && c.magic == ALLOC_COUNT_MAGIC) {
		ret->valid = true;
		memcpy(ret->n, c.allocs, sizeof(ret->n));
	}
	close(fd);
}

void meter_start(struct meter *m, pid_t peer)
{
	m->peer = peer;
	proc_sample(0, &m->self);
	if (peer > 0)
		proc_sample(peer, &m->other);
	/* Last: reading /proc allocates (opendir). */
	alloc_sample(0, &m->aself);
	if (peer > 0)
		alloc_sample(peer, &m->aother);
}

/* Prints one side's figures per request, from @p0/@a0 to @p1/@a1. */
static void meter_side(const char *side, const struct proc_sample *p0, const struct proc_sample *p1,
		       const struct alloc_sample *a0, const struct alloc_sample *a1, uint64_t requests)
{
	static const char *const origins[] = { "exe", "nng", "libc", "other" };
	char key[64];

	snprintf(key, sizeof(key), "%s_csw", side);
	out_kv(key, (double)(p1->csw - p0->csw) / requests);
	snprintf(key, sizeof(key), "%s_cpu_ns", side);
	out_kv(key, (double)(p1->cpu_ns - p0->cpu_ns) / requests);
	if (!a0->valid || !a1->valid)
		return;
	for (size_t i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "%s_alloc_%s", side, origins[i]);
		out_kv(key, (double)(a1->n[i] - a0->n[i]) / requests);
	}
}

void meter_print(const struct meter *m, uint64_t requests)
{
	struct alloc_sample aself, aother = { 0 };
	struct proc_sample self, other;

	if (!requests)
		return;
	/* The allocation counts first: reading /proc allocates (opendir). */
	alloc_sample(0, &aself);
	if (m->peer > 0)
		alloc_sample(m->peer, &aother);
	proc_sample(0, &self);
	meter_side("req", &m->self, &self, &m->aself, &aself, requests);
	if (m->peer > 0 && proc_sample(m->peer, &other) == 0)
		meter_side("rep", &m->other, &other, &m->aother, &aother, requests);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile. */
static uint64_t rank(const uint64_t *sorted, size_t n, double q)
{
	size_t i = (size_t)(q * n + 0.999999);

	return sorted[i ? i - 1 : 0];
}

void latency_print(uint64_t *ns, size_t n)
{
	double sum = 0;

	if (!n)
		return;
	qsort(ns, n, sizeof(*ns), cmp_u64);
	for (size_t i = 0; i < n; i++)
		sum += (double)ns[i];
	out_kv("n", (double)n);
	out_kv("p50_ns", (double)rank(ns, n, 0.50));
	out_kv("p99_ns", (double)rank(ns, n, 0.99));
	out_kv("mean_ns", sum / n);
	out_kv("min_ns", (double)ns[0]);
	out_kv("max_ns", (double)ns[n - 1]);
}

void latency_print_as(const char *prefix, uint64_t *ns, size_t n)
{
	char key[32];

	if (!n)
		return;
	qsort(ns, n, sizeof(*ns), cmp_u64);
	snprintf(key, sizeof(key), "%s_p50_ns", prefix);
	out_kv(key, (double)rank(ns, n, 0.50));
	snprintf(key, sizeof(key), "%s_p99_ns", prefix);
	out_kv(key, (double)rank(ns, n, 0.99));
}

void out_kv(const char *key, double value)
{
	printf("%s %.6f\n", key, value);
}
