/* The device sandbox, proven from both sides with the real programs.
 *
 * From inside: ioreq-test-escape (tests/devices/escape.c) tries one escape
 * per guest read and answers 0 when it was refused; the sim script checks
 * every answer, so a missing sandbox fails the run. From outside: a running
 * device's /proc entries, its namespaces against the broker's, its fds and
 * rlimits, its death with the broker. And a process that is not the device
 * the broker spawned is refused on the device's socket.
 *
 * Every sandboxed case runs twice: with the broker as root (devices become
 * nobody) and as an unprivileged uid (the shipped unit's case: devices keep
 * the broker's uid, inside user namespaces the broker creates). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define BIN IOREQ_BINDIR
#define ESCAPE IOREQ_TESTDIR "/ioreq-test-escape"
#define SETPRIV "/usr/bin/setpriv"
#define NOBODY 65534

/* The listeners the device must not reach. */
struct targets {
	int tcp, abstract;
	unsigned port;
	char name[64];
};

static void listen_targets(struct targets *t)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len = sizeof(sin);

	t->tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(t->tcp >= 0);
	assert_int_equal(bind(t->tcp, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(t->tcp, 8), 0);
	assert_int_equal(getsockname(t->tcp, (struct sockaddr *)&sin, &len), 0);
	t->port = ntohs(sin.sin_port);

	snprintf(t->name, sizeof(t->name), "ioreq-test-escape-%d", (int)getpid());
	memcpy(sun.sun_path + 1, t->name, strlen(t->name));
	t->abstract = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(t->abstract >= 0);
	assert_int_equal(bind(t->abstract, (struct sockaddr *)&sun,
			      offsetof(struct sockaddr_un, sun_path) + 1 + strlen(t->name)),
			 0);
	assert_int_equal(listen(t->abstract, 8), 0);
}

static void close_targets(struct targets *t)
{
	close(t->tcp);
	close(t->abstract);
}

/* The broker's runtime directory, and who the broker runs as. */
static const char *runtime_dir(bool unprivileged)
{
	static char dir[512];

	snprintf(dir, sizeof(dir), "%s/run", harness_tmpdir());
	assert_int_equal(mkdir(dir, 0700), 0);
	if (unprivileged) {
		/* nobody reads the configuration and owns the runtime directory. */
		assert_int_equal(chmod(harness_tmpdir(), 0755), 0);
		assert_int_equal(chown(dir, NOBODY, NOBODY), 0);
	}
	return dir;
}

static void start_broker(struct run *r, const char *cfg, bool unprivileged)
{
	const char *root[] = { BIN "/ioreq-brokerd", "--config", cfg, "--exit-with-vms", NULL };
	const char *nobody[] = { SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
				 BIN "/ioreq-brokerd", "--config", cfg, "--exit-with-vms", NULL };

	harness_start_argv(r, unprivileged ? nobody : root);
}

/* Tests that need root to become another uid skip when they cannot. */
static bool can_drop_to_nobody(void)
{
	if (geteuid() != 0 || access(SETPRIV, X_OK) != 0)
		harness_skip("this test needs root and %s", SETPRIV);
	return true;
}

/* ---- from inside ---- */

/* 0 = refused. Lines 12 and 13 kill their device (seccomp KILL_PROCESS):
 * the read gets the fallback. The exec probe comes last for its device:
 * without a sandbox it replaces the device with a shell. */
static const char probe_script[] = "pio read 0x100 4 0           # open /etc/passwd\n"
				   "pio read 0x104 4 0           # an AF_INET socket\n"
				   "pio read 0x10c 4 0           # create a file outside its root\n"
				   "pio read 0x110 4 0           # connect to 127.0.0.1\n"
				   "pio read 0x114 4 0           # connect to the host's abstract socket\n"
				   "pio read 0x118 4 0           # raise IRQ 6, not granted: sent...\n"
				   "pio read 0x11c 4 0           # raise IRQ 5, granted\n"
				   "irq 5 1\n"
				   "irq 6 0                      # ...and ignored by the broker\n"
				   "pio read 0x120 4 1           # its pid: 1, in a pid namespace\n"
				   "pio read 0x108 4 0           # exec /bin/sh\n"
				   "pio read 0x224 4 0xffffffff  # ptrace its parent: killed\n"
				   "pio read 0x328 4 0xffffffff  # signal a host process: killed\n"
				   "sleep 500                    # the broker collects and logs both deaths\n";

static const char *probe_config(const char *sandbox, bool unprivileged, const struct targets *t)
{
	harness_write("probe.txt", "%s", probe_script);
	return harness_write("probe.yaml",
			     "broker: { runtime_dir: %s }\n"
			     "vms:\n"
			     "  - name: esc\n"
			     "    backend: sim\n"
			     "    vcpus: 1\n"
			     "    scripts: [probe.txt]\n"
			     "    devices:\n"
			     "      - name: probe\n"
			     "        program: %s\n"
			     "        args: [--write-path, %s/escaped, --tcp-port, \"%u\", --abstract, %s,\n"
			     "               --irq-denied, \"6\"]\n"
			     "        pio: [\"0x100+0x40\"]\n"
			     "        irqs: [5]\n"
			     "        sandbox: %s\n"
			     "      - { name: tracer, program: %s, pio: [\"0x200+0x40\"], sandbox: %s }\n"
			     "      - name: killer\n"
			     "        program: %s\n"
			     "        args: [--host-pid, \"%d\"]\n"
			     "        pio: [\"0x300+0x40\"]\n"
			     "        sandbox: %s\n",
			     runtime_dir(unprivileged), ESCAPE, harness_tmpdir(), t->port, t->name, sandbox, ESCAPE,
			     sandbox, ESCAPE, (int)getpid(), sandbox);
}

/* Some log line contains both @needle and, after it, @also. */
static bool log_line_has(const struct run *r, const char *needle, const char *also)
{
	const char *log = harness_log(r);

	for (const char *hit = strstr(log, needle); hit; hit = strstr(hit + 1, needle)) {
		const char *end = strchr(hit, '\n'), *more = strstr(hit, also);

		if (more && (!end || more < end))
			return true;
	}
	return false;
}

static void check_escapes_refused(bool unprivileged)
{
	struct targets t;
	struct run r;
	char path[600];
	const char *cfg;

	listen_targets(&t);
	cfg = probe_config("strict", unprivileged, &t);
	start_broker(&r, cfg, unprivileged);
	harness_wait(&r, 60);
	close_targets(&t);
	if (r.status != 0)
		print_error("broker exited %d\n", r.status);
	assert_int_equal(r.status, 0);
	assert_true(log_line_has(&r, "vm esc device tracer: pid ", "killed by signal 31 (Bad system call)"));
	assert_true(log_line_has(&r, "vm esc device killer: pid ", "killed by signal 31 (Bad system call)"));
	assert_true(log_line_has(&r, "vm esc device probe: ", "IRQ line not granted"));
	snprintf(path, sizeof(path), "%s/escaped", harness_tmpdir());
	assert_int_equal(access(path, F_OK), -1);
	assert_null(strstr(harness_log(&r), "running unconfined"));
}

static void test_escapes_refused(void **state)
{
	check_escapes_refused(false);
}

static void test_escapes_refused_unprivileged(void **state)
{
	if (can_drop_to_nobody())
		check_escapes_refused(true);
}

/* The same probes without a sandbox: the script catches every escape. This
 * is what the test above would see if the sandbox went missing. */
static void test_probes_catch_no_sandbox(void **state)
{
	static const unsigned escaped_lines[] = { 1, 2, 3, 4, 5, 10, 11, 12, 13 };
	struct targets t;
	struct run r;
	const char *cfg;

	listen_targets(&t);
	cfg = probe_config("none", false, &t);
	start_broker(&r, cfg, false);
	harness_wait(&r, 60);
	close_targets(&t);
	assert_int_equal(r.status, 1);
	for (size_t i = 0; i < sizeof(escaped_lines) / sizeof(escaped_lines[0]); i++) {
		char needle[64];

		snprintf(needle, sizeof(needle), "probe.txt:%u:", escaped_lines[i]);
		if (!strstr(harness_log(&r), needle))
			print_error("line %u did not escape\n", escaped_lines[i]);
		assert_non_null(strstr(harness_log(&r), needle));
	}
	/* The broker's own check holds without a sandbox. */
	assert_null(strstr(harness_log(&r), "probe.txt:9:"));
	assert_non_null(strstr(harness_log(&r), "vm esc device probe: sandbox none: running unconfined"));
}

/* ---- from outside ---- */

static char *slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, len - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

/* The value after "@key:" in /proc/PID/status, up to the end of its line. */
static const char *status_field(const char *status, const char *key, char *buf, size_t len)
{
	const char *p = strstr(status, key), *end;

	assert_non_null(p);
	p += strlen(key);
	while (*p == ' ' || *p == '\t')
		p++;
	end = strchr(p, '\n');
	snprintf(buf, len, "%.*s", (int)(end ? end - p : (ptrdiff_t)strlen(p)), p);
	return buf;
}

/* The seccomp filter goes on right after the handshake, just after the
 * broker logs "ready": give the device a moment. */
static void wait_seccomp(pid_t pid, char *status, size_t len)
{
	char path[64], v[64];

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	for (int i = 0; i < 400; i++) {
		if (!strcmp(status_field(slurp(path, status, len), "Seccomp:", v, sizeof(v)), "2"))
			return;
		usleep(5000);
	}
}

static void check_ns(pid_t broker, pid_t dev)
{
	static const char *const ns[] = { "user", "mnt", "pid", "net", "ipc", "uts" };

	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		char a[128], b[128], pa[64], pb[64];
		ssize_t na, nb;

		snprintf(pa, sizeof(pa), "/proc/%d/ns/%s", (int)broker, ns[i]);
		snprintf(pb, sizeof(pb), "/proc/%d/ns/%s", (int)dev, ns[i]);
		na = readlink(pa, a, sizeof(a) - 1);
		nb = readlink(pb, b, sizeof(b) - 1);
		assert_true(na > 0 && nb > 0);
		a[na] = b[nb] = '\0';
		if (!strcmp(a, b))
			print_error("the device shares the broker's %s namespace\n", ns[i]);
		assert_string_not_equal(a, b);
	}
}

/* 0, 1 and 2, and what nng opened since: nothing that names a file but
 * /dev/null and the broker's log (its stderr). */
static void check_fds(pid_t dev, const char *log)
{
	char dir[64], path[384], target[512];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)dev);
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d))) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		assert_true(n > 0);
		target[n] = '\0';
		if (target[0] == '/' && strcmp(target, "/dev/null") && strcmp(target, log))
			print_error("fd %s of the device is %s\n", e->d_name, target);
		assert_true(target[0] != '/' || !strcmp(target, "/dev/null") || !strcmp(target, log));
	}
	closedir(d);
}

static void check_limit(const char *limits, const char *name, const char *value)
{
	const char *p = strstr(limits, name);
	char soft[32];

	assert_non_null(p);
	assert_int_equal(sscanf(p + strlen(name), " %31s", soft), 1);
	assert_string_equal(soft, value);
}

static void check_seen_from_outside(bool unprivileged)
{
	static const char *const caps[] = { "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:" };
	char status[8192], limits[4096], path[64], v[64];
	const char *cfg;
	struct run r;
	pid_t dev, broker;

	harness_write("forever.txt", "repeat 100000\n  sleep 10\nend\n");
	cfg = harness_write("out.yaml",
			    "broker: { runtime_dir: %s }\n"
			    "vms:\n"
			    "  - { name: out, backend: sim, vcpus: 1, scripts: [forever.txt], devices: [\n"
			    "      { name: ram, program: ioreq-dev-ram, mmio: [\"0x1000+0x100\"] } ] }\n",
			    runtime_dir(unprivileged));
	start_broker(&r, cfg, unprivileged);
	dev = harness_device_pid(&r, "out", "ram", 20);
	if (dev <= 0)
		print_error("no device\n");
	assert_true(dev > 0);
	/* setpriv executes the broker in place: same pid. */
	broker = r.pid;

	wait_seccomp(dev, status, sizeof(status));
	assert_string_equal(status_field(status, "Seccomp:", v, sizeof(v)), "2");
	assert_string_equal(status_field(status, "NoNewPrivs:", v, sizeof(v)), "1");
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		assert_string_equal(status_field(status, caps[i], v, sizeof(v)), "0000000000000000");
	/* nobody outside when the broker is root, else the broker's uid (here nobody too). */
	assert_string_equal(status_field(status, "Uid:", v, sizeof(v)), "65534\t65534\t65534\t65534");
	check_ns(broker, dev);
	check_fds(dev, r.log);
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)dev);
	slurp(path, limits, sizeof(limits));
	check_limit(limits, "Max open files", "64");
	check_limit(limits, "Max processes", "64");
	check_limit(limits, "Max core file size", "0");

	/* It dies with the broker: nothing to serve, nobody to stop it. */
	kill(broker, SIGKILL);
	harness_wait(&r, 10);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)dev);
	for (int i = 0; i < 400 && access(path, F_OK) == 0; i++) {
		/* Reparented to an init that may not reap: a zombie is dead too. */
		if (!strncmp(status_field(slurp(path, status, sizeof(status)), "State:", v, sizeof(v)), "Z", 1))
			break;
		usleep(5000);
	}
	assert_true(access(path, F_OK) < 0 ||
		    !strncmp(status_field(slurp(path, status, sizeof(status)), "State:", v, sizeof(v)), "Z", 1));
}

static void test_seen_from_outside(void **state)
{
	check_seen_from_outside(false);
}

static void test_seen_from_outside_unprivileged(void **state)
{
	if (can_drop_to_nobody())
		check_seen_from_outside(true);
}

/* ---- the socket ---- */

/* While the spawned device waits before dialling, another process dials its
 * socket and says hello under its name: refused; the spawned device is then
 * accepted. */
static void test_impostor_refused(void **state)
{
	char url[600], out[4096], started[64], ready[64];
	const char *argv[] = { BIN "/ioreq-dev-null", "--socket", url, "--name", "probe", NULL };
	const char *cfg, *dir = runtime_dir(false), *line;
	struct run r;
	int st;

	harness_write("imp.txt", "pio read 0x120 4 1\n");
	cfg = harness_write("imp.yaml",
			    "broker: { runtime_dir: %s }\n"
			    "vms:\n"
			    "  - name: imp\n"
			    "    backend: sim\n"
			    "    vcpus: 1\n"
			    "    scripts: [imp.txt]\n"
			    "    devices:\n"
			    "      - { name: probe, program: %s, args: [--connect-delay-ms, \"2000\"],\n"
			    "          pio: [\"0x100+0x40\"] }\n",
			    dir, ESCAPE);
	snprintf(url, sizeof(url), "ipc://%s/imp.probe/sock", dir);
	start_broker(&r, cfg, false);
	line = harness_wait_log(&r, "vm imp device probe: started ", 10);
	assert_non_null(line);
	snprintf(started, sizeof(started), "%s", strstr(line, "(pid "));
	*strchr(started, ')') = '\0';

	st = harness_exec(argv, out, sizeof(out));
	assert_int_not_equal(st, 0);
	assert_non_null(harness_wait_log(&r, "vm imp device probe: refused a connection from pid ", 5));

	harness_wait(&r, 30);
	if (r.status != 0)
		print_error("broker exited %d\n", r.status);
	assert_int_equal(r.status, 0);
	/* The one accepted is the one spawned. */
	line = harness_wait_log(&r, "vm imp device probe: ready ", 0);
	assert_non_null(line);
	snprintf(ready, sizeof(ready), "%s", strstr(line, "(pid "));
	*strchr(ready, ')') = '\0';
	assert_string_equal(started, ready);
	snprintf(out, sizeof(out), "refused a connection from pid %s:", started + strlen("(pid "));
	assert_null(strstr(harness_log(&r), out));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_escapes_refused),
		harness_test(test_escapes_refused_unprivileged),
		harness_test(test_probes_catch_no_sandbox),
		harness_test(test_seen_from_outside),
		harness_test(test_seen_from_outside_unprivileged),
		harness_test(test_impostor_refused),
	};

	return harness_run_group("integration-sandbox", tests);
}
