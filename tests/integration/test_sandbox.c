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
 * the broker's uid, inside user namespaces the broker creates).
 *
 * Then hostile programs (issue 13), built here from ioreq-test-hostile
 * (tests/devices/hostile.c, which links nothing of ours and never confines
 * itself): its probes against the launcher's own confinement; copies whose
 * PT_INTERP is a script, or whose DT_NEEDED names try to get / or a
 * directory bound; a terminal to type into; a look from outside at whether
 * another process of its uid can trace it; a program in a directory only
 * root can enter (issue 14). */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <linux/sched.h>

#include <cmocka.h>

#include "harness.h"

#define BIN IOREQ_BINDIR
#define ESCAPE IOREQ_TESTDIR "/ioreq-test-escape"
#define HOSTILE IOREQ_TESTDIR "/ioreq-test-hostile"
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
	assert_true(log_line_has(&r, "vm esc device probe: ", "not granted; ignored"));
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

/* 0, 1 and 2, its request ring, and what nng opened since: nothing that
 * names a file but /dev/null; its stdout and stderr are pipes to the broker, not the
 * broker's log or terminal. */
static void check_fds(pid_t dev)
{
	char dir[64], path[384], target[512];
	struct dirent *e;
	bool named;
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
		/* (Its request ring is a memfd: no file.) */
		named = target[0] == '/' && strcmp(target, "/dev/null") && strncmp(target, "/memfd:ioreq-ring ", 18);
		if (named)
			print_error("fd %s of the device is %s\n", e->d_name, target);
		assert_false(named);
		if (!strcmp(e->d_name, "1") || !strcmp(e->d_name, "2"))
			assert_int_equal(strncmp(target, "pipe:", 5), 0);
	}
	closedir(d);
}

/* Its memory cgroup is the instance's own, with the configured limit:
 * v2 memory.max, or v1 memory.limit_in_bytes. */
static void check_cgroup(pid_t dev, const char *name, const char *limit)
{
	char path[128], text[4096], file[1024], value[64];
	const char *line;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)dev);
	slurp(path, text, sizeof(text));
	if ((line = strstr(text, ":memory:"))) {
		snprintf(file, sizeof(file), "/sys/fs/cgroup/memory%.*s/memory.limit_in_bytes",
			 (int)strcspn(line + 8, "\n"), line + 8);
	} else {
		line = strstr(text, "0::");
		assert_non_null(line);
		snprintf(file, sizeof(file), "/sys/fs/cgroup%.*s/memory.max", (int)strcspn(line + 3, "\n"), line + 3);
	}
	if (!strstr(file, name))
		print_error("the device is in %s, not in a group of its own (%s)\n", file, name);
	assert_non_null(strstr(file, name));
	f = fopen(file, "re");
	assert_non_null(f);
	assert_non_null(fgets(value, sizeof(value), f));
	fclose(f);
	value[strcspn(value, "\n")] = '\0';
	assert_string_equal(value, limit);
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
			    "      { name: ram, program: ioreq-dev-ram, mmio: [\"0x1000+0x100\"], memory_max: 32M } ] }\n",
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
	/* The first id of the device range when the broker is root, else the
	 * broker's own uid (here nobody). */
	assert_string_equal(status_field(status, "Uid:", v, sizeof(v)),
			    unprivileged ? "65534\t65534\t65534\t65534" : "458752\t458752\t458752\t458752");
	check_ns(broker, dev);
	check_fds(dev);
	if (!unprivileged)
		check_cgroup(dev, "/out.ram.1", "33554432");
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)dev);
	slurp(path, limits, sizeof(limits));
	/* 64, and the fds it was given: its ring's three. */
	check_limit(limits, "Max open files", harness_ring() ? "67" : "64");
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

/* ---- hostile programs (issue 13) ---- */

/* A copy of @src at @dst, mode @mode. */
static void copy_file(const char *src, const char *dst, mode_t mode)
{
	char buf[65536];
	int in = open(src, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	assert_true(in >= 0);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, n), n);
	close(in);
	close(out);
	assert_int_equal(chmod(dst, mode), 0);
}

/* The whole of @path, to patch. */
static uint8_t *slurp_file(const char *path, size_t *ret_len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc(st.st_size);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, st.st_size), st.st_size);
	close(fd);
	*ret_len = st.st_size;
	return buf;
}

static void spit_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static Elf64_Phdr *phdr(uint8_t *img, unsigned type)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;

	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr *ph = (Elf64_Phdr *)(img + eh->e_phoff) + i;

		if (ph->p_type == type)
			return ph;
	}
	fail_msg("no program header of type %u", type);
	return NULL;
}

/* A copy of ioreq-test-hostile whose PT_INTERP is @interp. */
static void hostile_with_interp(const char *dst, const char *interp)
{
	size_t len;
	uint8_t *img;
	Elf64_Phdr *ph;

	copy_file(HOSTILE, dst, 0755);
	img = slurp_file(dst, &len);
	ph = phdr(img, PT_INTERP);
	assert_true(strlen(interp) < ph->p_filesz);
	memset(img + ph->p_offset, 0, ph->p_filesz);
	memcpy(img + ph->p_offset, interp, strlen(interp));
	spit_file(dst, img, len);
	free(img);
}

/* A copy of ioreq-test-hostile with DT_NEEDED entries for @names (one or
 * two) after libc's: its DT_RUNPATH (room left by its link options) holds
 * their strings and becomes the first, its DT_DEBUG the second. */
static void hostile_with_needed(const char *dst, const char *const *names, size_t n)
{
	Elf64_Dyn *dyn, *runpath = NULL, *debug = NULL;
	uint64_t strtab = 0, off;
	size_t len, room;
	uint8_t *img;
	Elf64_Phdr *ph;
	char *str;

	copy_file(HOSTILE, dst, 0755);
	img = slurp_file(dst, &len);
	ph = phdr(img, PT_DYNAMIC);
	dyn = (Elf64_Dyn *)(img + ph->p_offset);
	for (size_t i = 0; dyn[i].d_tag != DT_NULL; i++) {
		if (dyn[i].d_tag == DT_RUNPATH)
			runpath = &dyn[i];
		if (dyn[i].d_tag == DT_DEBUG)
			debug = &dyn[i];
		if (dyn[i].d_tag == DT_STRTAB)
			strtab = dyn[i].d_un.d_ptr;
	}
	assert_non_null(runpath);
	assert_true(n == 1 || debug);
	/* A PIE's string table: its address is its file offset in the first
	 * PT_LOAD, which maps the start of the file. */
	ph = phdr(img, PT_LOAD);
	str = (char *)img + strtab - ph->p_vaddr + ph->p_offset;
	off = runpath->d_un.d_val;
	room = strlen(str + off);
	for (size_t i = 0; i < n; i++) {
		Elf64_Dyn *d = i == 0 ? runpath : debug;

		assert_true(off + strlen(names[i]) <= runpath->d_un.d_val + room);
		strcpy(str + off, names[i]);
		d->d_tag = DT_NEEDED;
		d->d_un.d_val = off;
		off += strlen(names[i]) + 1;
	}
	spit_file(dst, img, len);
	free(img);
}

/* One VM whose only job is to keep the broker up while @devices (YAML
 * list items) start; every one in the sandbox. */
static const char *hostile_config(bool unprivileged, const char *devices)
{
	harness_write("idle.txt", "sleep 60000\n");
	return harness_write("hostile.yaml",
			     "broker: { runtime_dir: %s }\n"
			     "vms:\n"
			     "  - name: h\n"
			     "    backend: sim\n"
			     "    vcpus: 1\n"
			     "    scripts: [idle.txt]\n"
			     "    devices:\n%s",
			     runtime_dir(unprivileged), devices);
}

static void stop_broker(struct run *r)
{
	kill(r->pid, SIGTERM);
	harness_wait(r, 20);
}

/* The line ioreq-test-hostile ends its probes with. */
static void wait_hostile_done(const struct run *r, const char *name)
{
	char needle[128];

	snprintf(needle, sizeof(needle), "ioreq-test-hostile %s: done", name);
	if (!harness_wait_log(r, needle, 30))
		print_error("%s did not finish its probes; log:\n%s\n", name, harness_log(r));
	assert_non_null(harness_wait_log(r, needle, 0));
}

static void assert_refused(const struct run *r, const char *name, const char *probe)
{
	char needle[160];

	snprintf(needle, sizeof(needle), "ioreq-test-hostile %s: %s: refused", name, probe);
	if (!strstr(harness_log(r), needle))
		print_error("no \"%s\"; log:\n%s\n", needle, harness_log(r));
	assert_non_null(strstr(harness_log(r), needle));
}

/* No probe of device @name worked (NULL: of any device). */
static void assert_nothing_worked(const struct run *r, const char *name)
{
	const char *log = harness_log(r);
	char prefix[128];

	snprintf(prefix, sizeof(prefix), "ioreq-test-hostile %s: ", name ? name : "");
	for (const char *hit = strstr(log, ": WORKED"); hit; hit = strstr(hit + 1, ": WORKED")) {
		const char *line = hit;

		while (line > log && line[-1] != '\n')
			line--;
		if (name && strncmp(line, prefix, strlen(prefix)))
			continue;
		print_error("a probe worked: %.*s; log:\n%s\n", (int)(hit - line), line, log);
		fail();
	}
}

/* The launcher's seccomp baseline and namespaces hold for a program that
 * never asks for them. */
static void check_hostile_probes(bool unprivileged)
{
	static const char *const probes[] = {
		"io_uring_setup", "unshare(CLONE_NEWUSER)", "clone(CLONE_NEWUSER)", "mount", "bpf", "ptrace",
		"userfaultfd", "open /etc/passwd", "open the host file",
	};
	char devices[512];
	const char *cfg;
	struct run r;

	snprintf(devices, sizeof(devices),
		 "      - { name: bad, program: %s, args: [--host-file, %s], pio: [\"0x100+8\"] }\n", HOSTILE,
		 harness_write("secret", "host data\n"));
	cfg = hostile_config(unprivileged, devices);
	start_broker(&r, cfg, unprivileged);
	wait_hostile_done(&r, "bad");
	stop_broker(&r);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		assert_refused(&r, "bad", probes[i]);
	assert_nothing_worked(&r, NULL);
}

static void test_hostile_probes(void **state)
{
	check_hostile_probes(false);
}

static void test_hostile_probes_unprivileged(void **state)
{
	if (can_drop_to_nobody())
		check_hostile_probes(true);
}

/* A copy whose PT_INTERP is a script: the launcher used to run it, as
 * root, to list the libraries. It must never run, and the launch fails
 * with a reason. */
static void test_interp_never_runs(void **state)
{
	char program[512], interp[512], marker[512], devices[1024], error[1200];
	const char *cfg;
	struct run r;

	snprintf(marker, sizeof(marker), "%s/ran", harness_tmpdir());
	snprintf(interp, sizeof(interp), "%s", harness_write("i", "#!/bin/sh\ntouch %s\n", marker));
	assert_int_equal(chmod(interp, 0755), 0);
	snprintf(program, sizeof(program), "%s/hostile-interp", harness_tmpdir());
	hostile_with_interp(program, interp);
	snprintf(devices, sizeof(devices), "      - { name: interp, program: %s, pio: [\"0x100+8\"] }\n", program);
	cfg = hostile_config(false, devices);
	start_broker(&r, cfg, false);
	snprintf(error, sizeof(error), "ioreq-launch: %s: its interpreter %s: it is not an ELF file", program, interp);
	harness_wait_log(&r, error, 10);
	stop_broker(&r);
	if (access(marker, F_OK) == 0)
		print_error("the interpreter ran; log:\n%s\n", harness_log(&r));
	assert_int_equal(access(marker, F_OK), -1);
	if (!strstr(harness_log(&r), error))
		print_error("no \"%s\"; log:\n%s\n", error, harness_log(&r));
	assert_non_null(strstr(harness_log(&r), error));
}

/* Copies with crafted DT_NEEDED names. Two read like ld.so's --list output
 * ("NAME => PATH (ADDRESS)") and name real libraries: the parser of that
 * output bound host / and a host directory (holding the library, so that
 * ld.so found it there) into the sandbox. Two name / and a directory
 * outright: refused. */
static void test_needed_cannot_bind_directories(void **state)
{
	char tmp[256], root_name[600], dir_name[600], path[1024], devices[4096], error[1024];
	const char *cfg;
	struct run r;

	snprintf(tmp, sizeof(tmp), "%s", harness_tmpdir());
	/* Open to all, as a build tree usually is: only the sandbox stands
	 * between the devices and these files. */
	assert_int_equal(chmod(tmp, 0755), 0);
	harness_write("secret", "host data\n");
	snprintf(path, sizeof(path), "%s/s", tmp);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/s/secret", tmp);
	copy_file("/etc/hostname", path, 0644);

	/* ".../l => / (x" is the file " (x" in the directory ".../l => ";
	 * ".../s/l => .../s (x", the file "s (x" deep under .../s. */
	snprintf(root_name, sizeof(root_name), "%s/l => / (x", tmp);
	snprintf(dir_name, sizeof(dir_name), "%s/s/l => %s/s (x", tmp, tmp);
	for (const char *name = root_name; name; name = name == root_name ? dir_name : NULL) {
		snprintf(path, sizeof(path), "%s", name);
		for (char *p = path + strlen(tmp) + 1; (p = strchr(p, '/')); *p++ = '/') {
			*p = '\0';
			assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
		}
		copy_file("/lib/x86_64-linux-gnu/libdl.so.2", name, 0644);
	}

	snprintf(path, sizeof(path), "%s/h-root", tmp);
	hostile_with_needed(path, (const char *[]){ root_name }, 1);
	snprintf(path, sizeof(path), "%s/h-dir", tmp);
	hostile_with_needed(path, (const char *[]){ dir_name }, 1);
	snprintf(path, sizeof(path), "%s/h-slash", tmp);
	hostile_with_needed(path, (const char *[]){ "/" }, 1);
	snprintf(path, sizeof(path), "%s/h-tmp", tmp);
	hostile_with_needed(path, (const char *[]){ tmp }, 1);
	snprintf(devices, sizeof(devices),
		 "      - { name: root, program: %s/h-root, args: [--host-file, %s/secret], pio: [\"0x100+8\"] }\n"
		 "      - { name: dir, program: %s/h-dir, args: [--host-file, %s/s/secret], pio: [\"0x108+8\"] }\n"
		 "      - { name: slash, program: %s/h-slash, pio: [\"0x110+8\"] }\n"
		 "      - { name: tmp, program: %s/h-tmp, pio: [\"0x118+8\"] }\n",
		 tmp, tmp, tmp, tmp, tmp, tmp);
	cfg = hostile_config(false, devices);
	start_broker(&r, cfg, false);
	wait_hostile_done(&r, "root");
	wait_hostile_done(&r, "dir");
	snprintf(error, sizeof(error), "ioreq-launch: %s/h-tmp: library %s (needed by %s/h-tmp): %s is a directory", tmp,
		 tmp, tmp, tmp);
	harness_wait_log(&r, error, 10);
	stop_broker(&r);
	assert_refused(&r, "root", "open /etc/passwd");
	assert_refused(&r, "root", "open the host file");
	assert_refused(&r, "dir", "open the host file");
	assert_nothing_worked(&r, NULL);
	if (!strstr(harness_log(&r), error))
		print_error("no \"%s\"; log:\n%s\n", error, harness_log(&r));
	assert_non_null(strstr(harness_log(&r), error));
	snprintf(error, sizeof(error), "ioreq-launch: %s/h-slash: library / (needed by %s/h-slash): / is a directory", tmp,
		 tmp);
	assert_non_null(strstr(harness_log(&r), error));
	assert_null(strstr(harness_log(&r), "ioreq-test-hostile slash: done"));
	assert_null(strstr(harness_log(&r), "ioreq-test-hostile tmp: done"));
}

/* One library under two spellings, one through a directory that holds
 * nothing ("$ORIGIN/../sub" from a library's directory): ld.so in the
 * sandbox opens both, and walks through that directory to the second. */
static void test_needed_paths_with_dotdot(void **state)
{
	char tmp[256], lib[512], alias[512], path[600], devices[1024];
	const char *cfg;
	struct run r;

	snprintf(tmp, sizeof(tmp), "%s", harness_tmpdir());
	snprintf(path, sizeof(path), "%s/o", tmp);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/o/sub", tmp);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/o/e", tmp);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(lib, sizeof(lib), "%s/o/sub/libdl.so.2", tmp);
	snprintf(alias, sizeof(alias), "%s/o/e/../sub/libdl.so.2", tmp);
	copy_file("/lib/x86_64-linux-gnu/libdl.so.2", lib, 0644);
	snprintf(path, sizeof(path), "%s/h-dots", tmp);
	hostile_with_needed(path, (const char *[]){ lib, alias }, 2);
	snprintf(devices, sizeof(devices), "      - { name: dots, program: %s, pio: [\"0x100+8\"] }\n", path);
	cfg = hostile_config(false, devices);
	start_broker(&r, cfg, false);
	wait_hostile_done(&r, "dots");
	stop_broker(&r);
	assert_nothing_worked(&r, NULL);
}

/* ---- a terminal ---- */

/* The session and terminal of process @pid, from /proc/PID/stat. */
static void session_of(pid_t pid, unsigned long *ret_session, unsigned long *ret_tty)
{
	char path[64], line[1024];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	slurp(path, line, sizeof(line));
	assert_int_equal(sscanf(strrchr(line, ')') + 2, "%*c %*d %*d %lu %lu", ret_session, ret_tty), 2);
}

/* The broker runs with a pty as its controlling terminal, stdin and
 * stdout, as when an operator starts it by hand; its device gets stdin and
 * stdout and tries TIOCSTI on them, on stderr and on /dev/tty. Nothing may
 * reach the terminal's input. An unconfined device (sandbox: none, which
 * runs as root here, so TIOCSTI on a terminal it holds would work) has no
 * controlling terminal either: no /dev/tty. */
static void test_no_terminal(void **state)
{
	char devices[512], log[600], buf[64];
	unsigned long session, tty;
	const char *cfg, *line;
	struct termios raw;
	struct timespec ts;
	struct run r;
	int master, slave;
	pid_t plain;

	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	assert_true(master >= 0);
	assert_int_equal(grantpt(master), 0);
	assert_int_equal(unlockpt(master), 0);
	/* Raw: a typed (or injected) byte is readable at once. */
	slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	assert_true(slave >= 0);
	assert_int_equal(tcgetattr(slave, &raw), 0);
	cfmakeraw(&raw);
	assert_int_equal(tcsetattr(slave, TCSANOW, &raw), 0);

	snprintf(devices, sizeof(devices),
		 "      - { name: tty, program: %s, input: stdin, output: stdout, pio: [\"0x100+8\"] }\n"
		 "      - { name: plain, program: %s, args: [--stay], pio: [\"0x108+8\"], sandbox: none }\n",
		 HOSTILE, HOSTILE);
	cfg = hostile_config(false, devices);
	snprintf(log, sizeof(log), "%s/tty-broker.log", harness_tmpdir());
	r.pid = fork();
	assert_true(r.pid >= 0);
	if (r.pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int term = open(ptsname(master), O_RDWR | O_NOCTTY);

		if (fd < 0 || term < 0 || setsid() < 0 || ioctl(term, TIOCSCTTY, 0) < 0 || dup2(term, 0) < 0 ||
		    dup2(term, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execl(BIN "/ioreq-brokerd", "ioreq-brokerd", "--config", cfg, (char *)NULL);
		_exit(127);
	}
	snprintf(r.log, sizeof(r.log), "%s", log);
	r.status = -1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	r.seconds = ts.tv_sec + ts.tv_nsec / 1e9;
	wait_hostile_done(&r, "tty");
	wait_hostile_done(&r, "plain");
	line = harness_wait_log(&r, "vm h device plain: started ", 0);
	assert_non_null(line);
	plain = (pid_t)atoi(strstr(line, "(pid ") + 5);
	session_of(plain, &session, &tty);
	stop_broker(&r);
	assert_refused(&r, "tty", "TIOCSTI on fd 0");
	assert_refused(&r, "tty", "TIOCSTI on fd 1");
	assert_refused(&r, "tty", "TIOCSTI on fd 2");
	assert_refused(&r, "tty", "TIOCSTI on /dev/tty");
	assert_nothing_worked(&r, "tty");
	assert_refused(&r, "plain", "TIOCSTI on /dev/tty");
	assert_int_equal(session, (unsigned long)plain);
	assert_int_equal(tty, 0);
	assert_int_equal(read(slave, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EAGAIN);
	close(slave);
	close(master);
}

/* ---- from outside, again ---- */

/* What another process can do to @pid, as @uid: neither trace it nor take
 * its fds. Returns a bit per success. */
static int try_to_trace(pid_t pid, uid_t uid)
{
	int status, pidfd;
	pid_t child = fork();

	assert_true(child >= 0);
	if (child == 0) {
		int worked = 0;

		if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
			_exit(64);
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0)
			_exit(65);
		if (syscall(SYS_pidfd_getfd, pidfd, 0, 0) >= 0 || errno != EPERM)
			worked |= 1;
		if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) == 0 || errno != EPERM)
			worked |= 2;
		if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) == 0 || errno != EPERM)
			worked |= 4;
		_exit(worked);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void check_locked_up(pid_t dev, const char *status)
{
	static const char *const caps[] = { "CapPrm:", "CapEff:", "CapBnd:" };
	unsigned long tty, session;
	char v[64];
	uid_t uid;

	assert_string_equal(status_field(status, "NoNewPrivs:", v, sizeof(v)), "1");
	assert_string_equal(status_field(status, "Seccomp:", v, sizeof(v)), "2");
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		assert_string_equal(status_field(status, caps[i], v, sizeof(v)), "0000000000000000");
	/* Its own session, no controlling terminal. */
	session_of(dev, &session, &tty);
	assert_int_equal(session, (unsigned long)dev);
	assert_int_equal(tty, 0);
	/* Every device used to be 65534 on the host; try that and its own. */
	uid = (uid_t)strtoul(status_field(status, "Uid:", v, sizeof(v)), NULL, 10);
	assert_int_equal(try_to_trace(dev, 65534), 0);
	assert_int_equal(try_to_trace(dev, uid), 0);
}

/* A program that never confines itself, seen from outside. */
static void test_hostile_seen_from_outside(void **state)
{
	char devices[512], status[8192], path[64];
	const char *line, *cfg;
	struct run r;
	pid_t dev;

	snprintf(devices, sizeof(devices), "      - { name: stay, program: %s, args: [--stay], pio: [\"0x100+8\"] }\n",
		 HOSTILE);
	cfg = hostile_config(false, devices);
	start_broker(&r, cfg, false);
	line = harness_wait_log(&r, "vm h device stay: started ", 10);
	assert_non_null(line);
	dev = (pid_t)atoi(strstr(line, "(pid ") + 5);
	wait_hostile_done(&r, "stay");
	snprintf(path, sizeof(path), "/proc/%d/status", (int)dev);
	check_locked_up(dev, slurp(path, status, sizeof(status)));
	stop_broker(&r);
}

/* ---- where the program lives (issue 14) ---- */

/* A tree cloned with umask 077 under a directory only root may enter: the
 * device's uid can reach neither, and needs not to. */
static void test_program_in_private_directory(void **state)
{
	char dir[512], program[600];
	const char *cfg;
	struct run r;
	mode_t old;

	snprintf(dir, sizeof(dir), "%s/private", harness_tmpdir());
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(program, sizeof(program), "%s/ioreq-test-escape", dir);
	copy_file(ESCAPE, program, 0700);
	harness_write("private.txt", "pio read 0x120 4 1  # its pid: it runs, in its pid namespace\n");
	cfg = harness_write("private.yaml",
			    "broker: { runtime_dir: %s }\n"
			    "vms:\n"
			    "  - { name: p, backend: sim, vcpus: 1, scripts: [private.txt], devices: [\n"
			    "      { name: dev, program: %s, pio: [\"0x100+0x40\"] } ] }\n",
			    runtime_dir(false), program);
	old = umask(077);
	start_broker(&r, cfg, false);
	umask(old);
	harness_wait(&r, 30);
	if (r.status != 0)
		print_error("broker exited %d; its log:\n%s\n", r.status, harness_log(&r));
	assert_int_equal(r.status, 0);
}

/* ---- the launcher alone ---- */

/* ioreq-launch started as the broker starts it (devsup.c): cloned into new
 * mount, pid, ipc, net and uts namespaces, given our pidfd, @extra options
 * and the fds in @keep; its stdin and stdout /dev/null, its stderr appended
 * to @log. Runs @program with @arg (or none). Returns the pid. */
static pid_t launch_direct(const char *const *extra, const int *keep, size_t n_keep, const char *log,
			   const char *program, const char *arg)
{
	static char sock[600];
	static int self = -1;
	struct clone_args ca = {
		.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS,
		.exit_signal = SIGCHLD,
	};
	char pidfd[16];
	const char *argv[32];
	size_t n = 0;
	long pid;

	/* A socket where the broker's would be, in a directory of root's. */
	if (strncmp(sock, harness_tmpdir(), strlen(harness_tmpdir()))) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		int fd;

		snprintf(sock, sizeof(sock), "%s/direct", harness_tmpdir());
		assert_int_equal(mkdir(sock, 0700), 0);
		strcat(sock, "/sock");
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
		close(fd);
	}
	if (self < 0)
		self = (int)syscall(SYS_pidfd_open, getpid(), 0);
	assert_true(self >= 0);
	snprintf(pidfd, sizeof(pidfd), "%d", self);
	argv[n++] = BIN "/ioreq-launch";
	argv[n++] = "--socket";
	argv[n++] = sock;
	argv[n++] = "--broker-pidfd";
	argv[n++] = pidfd;
	argv[n++] = "--user";
	argv[n++] = "65534:65534";
	while (extra && *extra)
		argv[n++] = *extra++;
	argv[n++] = "--";
	argv[n++] = program;
	if (arg)
		argv[n++] = arg;
	argv[n] = NULL;
	pid = syscall(SYS_clone3, &ca, sizeof(ca));
	assert_true(pid >= 0);
	if (pid == 0) {
		int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (out < 0 || null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(out, 2) < 0 ||
		    fcntl(self, F_SETFD, 0) < 0)
			_exit(126);
		for (size_t i = 0; i < n_keep; i++)
			if (fcntl(keep[i], F_SETFD, 0) < 0)
				_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return (pid_t)pid;
}

static char *read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, len - 1);

	if (fd >= 0)
		close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

/* --cgroup-fd: the device is in the group before any of its code runs. */
static void test_launch_joins_cgroup(void **state)
{
	const char *base = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? "/sys/fs/cgroup"
										       : "/sys/fs/cgroup/pids";
	char cg[256], fd_arg[16], log[600], text[4096], path[64];
	const char *extra[] = { "--cgroup-fd", fd_arg, NULL };
	int fd, status;
	pid_t pid;

	snprintf(cg, sizeof(cg), "%s/ioreq-test-launch-%d", base, (int)getpid());
	if (mkdir(cg, 0755) < 0) {
		print_message("cannot create a cgroup under %s (%s): skipped\n", base, strerror(errno));
		return;
	}
	fd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	snprintf(fd_arg, sizeof(fd_arg), "%d", fd);
	snprintf(log, sizeof(log), "%s/direct.log", harness_tmpdir());
	pid = launch_direct(extra, &fd, 1, log, HOSTILE, "--stay");
	for (int i = 0; i < 2000 && !strstr(read_text(log, text, sizeof(text)), ": done"); i++)
		usleep(5000);
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	read_text(path, text, sizeof(text));
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(fd);
	for (int i = 0; i < 200 && rmdir(cg) < 0 && errno == EBUSY; i++)
		usleep(5000);
	if (!strstr(text, strrchr(cg, '/')))
		print_error("the device is not in %s: %s; launcher log:\n%s\n", cg, text,
			    read_text(log, text, sizeof(text)));
	assert_non_null(strstr(text, strrchr(cg, '/')));
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* What a launch costs, to the program's exit: ioreq-dev-null (its
 * interpreter, eight libraries, ld.so.cache) started without arguments,
 * which prints its usage and exits 2. */
static void test_launch_time(void **state)
{
	enum { RUNS = 50 };
	char log[600], text[4096];
	double t[RUNS];

	snprintf(log, sizeof(log), "%s/time.log", harness_tmpdir());
	for (int i = 0; i < RUNS; i++) {
		struct timespec a, b;
		int status;
		pid_t pid;

		clock_gettime(CLOCK_MONOTONIC, &a);
		pid = launch_direct(NULL, NULL, 0, log, BIN "/ioreq-dev-null", NULL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		clock_gettime(CLOCK_MONOTONIC, &b);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 2)
			print_error("status 0x%x; log:\n%s\n", status, read_text(log, text, sizeof(text)));
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
		t[i] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
	}
	qsort(t, RUNS, sizeof(t[0]), cmp_double);
	print_message("%d launches of ioreq-dev-null: median %.2f ms, min %.2f ms, max %.2f ms\n", RUNS, t[RUNS / 2],
		      t[0], t[RUNS - 1]);
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
		harness_test(test_hostile_probes),
		harness_test(test_hostile_probes_unprivileged),
		harness_test(test_interp_never_runs),
		harness_test(test_needed_cannot_bind_directories),
		harness_test(test_needed_paths_with_dotdot),
		harness_test(test_no_terminal),
		harness_test(test_hostile_seen_from_outside),
		harness_test(test_program_in_private_directory),
		harness_test(test_launch_joins_cgroup),
		harness_test(test_launch_time),
	};

	return harness_run_group("integration-sandbox", tests);
}
