/* Churn: many VMs under load while their devices are killed at random.
 * Afterwards the broker holds what it held before (fds, memory), no device
 * is stuck starting, and every request completed exactly once.
 * (Thousands of connections that close mid-handshake, and SIGTERM within
 * 5 s: test_handshake.c.)
 *
 * Sized to run in about a minute; a longer run:
 *   IOREQ_CHURN_VMS=32 IOREQ_CHURN_SECONDS=600 build/tests/test_integration_churn */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "json.h"

/* Every access of the scripts returns what its device says: on_failure:
 * hold, and a deadline longer than any restart. */
#define DEVICES                                                                                               \
	"      - { name: pio, program: ioreq-dev-null, pio: [\"0x80+4\"], on_failure: hold, deadline_ms: 30000,\n" \
	"          restart_limit: 1000, args: [--pattern, \"0x5a5a5a5a\"] }\n"                                     \
	"      - { name: mmio, program: ioreq-dev-null, mmio: [\"0x1000+8\"], on_failure: hold, deadline_ms: 30000,\n" \
	"          restart_limit: 1000, args: [--pattern, \"0xa5a5a5a5\"] }\n"

static unsigned env_or(const char *name, unsigned dflt)
{
	const char *v = getenv(name);

	return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct usage {
	long fds;
	long rss_kb;
	double cpu_s;
};

static void usage_of(pid_t pid, struct usage *u)
{
	char path[64], buf[4096], *p;
	unsigned long ut, st;
	struct dirent *e;
	FILE *f;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	assert_non_null(d);
	u->fds = 0;
	while ((e = readdir(d)))
		u->fds += e->d_name[0] != '.';
	closedir(d);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	u->rss_kb = -1;
	while (fgets(buf, sizeof(buf), f))
		if (sscanf(buf, "VmRSS: %ld", &u->rss_kb) == 1)
			break;
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	/* Fields 14 and 15, after the ")" that ends the command name. */
	p = strrchr(buf, ')');
	assert_non_null(p);
	assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
	u->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static const char *control_sock(void)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/run/control", harness_tmpdir());
	return path;
}

/* ioreqctl --json devices, in @out. */
static void devices_json(char *out, size_t len)
{
	const char *argv[] = { IOREQ_BINDIR "/ioreqctl", "--socket", control_sock(), "--json", "devices", NULL };

	assert_int_equal(harness_exec(argv, out, len), 0);
}

/* The pids of the running devices, and how many are ready. */
static unsigned device_pids(pid_t *pids, unsigned max, unsigned *ret_ready)
{
	static char out[1 << 20];
	unsigned n = 0, ready = 0;
	char path[64];

	devices_json(out, sizeof(out));
	for (unsigned i = 0;; i++) {
		long long pid;

		snprintf(path, sizeof(path), "devices.%u.pid", i);
		pid = json_num(out, path);
		if (pid < 0)
			break;
		snprintf(path, sizeof(path), "devices.%u.state", i);
		ready += !strcmp(json_str(out, path), "ready");
		if (pid > 0 && n < max)
			pids[n++] = (pid_t)pid;
	}
	*ret_ready = ready;
	return n;
}

/* Waits until all @n devices are ready again; false after @timeout_s. */
static bool all_ready(unsigned n, double timeout_s)
{
	double until = now() + timeout_s;
	pid_t pids[256];
	unsigned ready;

	do {
		device_pids(pids, 256, &ready);
		if (ready == n)
			return true;
		usleep(200000);
	} while (now() < until);
	return false;
}

static const char *write_config(unsigned vms, const char *script)
{
	static char text[1 << 16];
	size_t n;

	n = (size_t)snprintf(text, sizeof(text), "broker: { runtime_dir: %s/run }\nvms:\n", harness_tmpdir());
	for (unsigned v = 0; v < vms; v++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "  - name: v%u\n"
				      "    backend: sim\n"
				      "    vcpus: 1\n"
				      "    scripts: [%s]\n"
				      "    devices:\n" DEVICES,
				      v, script);
	assert_true(n < sizeof(text));
	return harness_write("churn.yaml", "%s", text);
}

static void wait_started(const struct run *r, unsigned vms)
{
	char needle[32];

	for (unsigned v = 0; v < vms; v++) {
		snprintf(needle, sizeof(needle), "vm v%u: started", v);
		if (!harness_wait_log(r, needle, 60))
			fail_msg("%s never came", needle);
	}
}

static void assert_back_to(const struct usage *before, const struct usage *after, const char *what)
{
	print_message("[   INFO   ] %s: fds %ld -> %ld, RSS %ld -> %ld kB\n", what, before->fds, after->fds,
		      before->rss_kb, after->rss_kb);
	/* A few fds of nng's own may come and go. */
	assert_true(after->fds <= before->fds + 4);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	/* The sanitizers' quarantines and shadow make RSS mean nothing. */
	assert_true(after->rss_kb <= before->rss_kb + before->rss_kb / 4 + 2048);
#endif
}

/* Random device kills, several a second, under load; then the scripts run
 * to their end: each read got its device's value (or the VM would exit 1),
 * and the broker counted exactly the accesses the scripts made. */
static void test_kills_under_load(void **state)
{
	unsigned vms = env_or("IOREQ_CHURN_VMS", 12), secs = env_or("IOREQ_CHURN_SECONDS", 20);
	/* Three accesses and 5 ms of sleep per round: about secs + 15 s of work. */
	unsigned iters = (secs + 15) * 1000 / 6;
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };
	struct usage before, after;
	unsigned kills = 0, ready;
	pid_t pids[256];
	long long total = 0;
	const char *line;
	struct run r;
	double end;

	harness_write("cpu.txt",
		      "repeat %u\n"
		      "  pio read 0x80 4 0x5a5a5a5a\n"
		      "  mmio read 0x1000 4 0xa5a5a5a5\n"
		      "  pio write 0x80 4 seq\n"
		      "  sleep 5\n"
		      "end\n",
		      iters);
	args[1] = write_config(vms, "cpu.txt");
	harness_start(&r, args);
	wait_started(&r, vms);
	usleep(500000);
	usage_of(r.pid, &before);
	srand((unsigned)getpid());
	for (end = now() + secs; now() < end;) {
		unsigned n = device_pids(pids, 256, &ready);

		if (n && kill(pids[rand() % n], SIGKILL) == 0)
			kills++;
		usleep(333000);
	}
	assert_true(kills > secs);
	if (!all_ready(2 * vms, 30)) {
		static char out[1 << 20];

		devices_json(out, sizeof(out));
		fail_msg("devices stuck after %u kills:\n%s", kills, out);
	}
	usage_of(r.pid, &after);
	assert_back_to(&before, &after, "after the kills");
	harness_wait(&r, 300);
	assert_int_equal(r.status, 0);
	/* "vm vN: R requests, ..." once per VM at the end. */
	for (line = harness_log(&r); (line = strstr(line, ": ")); line += 2) {
		long long n, unclaimed;

		if (sscanf(line, ": %lld requests, %lld unclaimed", &n, &unclaimed) == 2)
			total += n;
	}
	print_message("[   INFO   ] %u VMs, %u kills, %lld requests\n", vms, kills, total);
	assert_int_equal(total, (long long)vms * iters * 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_kills_under_load),
	};

	return harness_run_group("integration-churn", tests);
}
