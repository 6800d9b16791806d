/* Runs of the real ioreq-brokerd (build/bin), for what only the shipped
 * daemon can show: a guest on /dev/kvm, the memory it takes per VM and per
 * device, and a cross-check of the in-process broker path through the sim
 * backend's own script interpreter. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dplane.h"

#define BROKERD_TIMEOUT_MS 120000
#define MEM_ACCESSES 2000
#define MEM_VMS 4
#define MEM_DEVICES 9
#define KVM_PARAM_PORT 0x520

static void fail(struct result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct result *r, const char *fmt, ...)
{
	va_list ap;

	r->ok = false;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) ? -errno : 0;
}

/* Starts ioreq-brokerd --config @config on @cpus, its stdout and stderr in @log. */
static int brokerd_start(const struct bench_ctx *c, const char *config, bool exit_with_vms, const cpu_set_t *cpus,
			 const char *log, pid_t *ret)
{
	char prog[4200];
	char *argv[] = { prog, "--config", (char *)config, exit_with_vms ? "--exit-with-vms" : NULL, NULL };
	int fd, r;

	snprintf(prog, sizeof(prog), "%s/ioreq-brokerd", c->bindir);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = bench_spawn(argv, cpus, fd, fd, -1, ret);
	close(fd);
	return r;
}

/* ---- the cross-check ---- */

static int sim_run(const struct bench_ctx *c, unsigned accesses, int64_t *ret_ns, char *why, size_t len)
{
	char script[512], config[512], log[512], text[1024];
	int64_t t0;
	pid_t pid;
	int r;

	snprintf(script, sizeof(script), "%s/cpu0.txt", c->tmp);
	snprintf(config, sizeof(config), "%s/sim.yaml", c->tmp);
	snprintf(log, sizeof(log), "%s/sim.log", c->tmp);
	snprintf(text, sizeof(text), "repeat %u\npio read 0x%x 4 0x%llx\nend\n", accesses, BENCH_DEV_PORT,
		 BENCH_PATTERN & 0xffffffffull);
	r = write_file(script, text);
	if (r < 0)
		return r;
	snprintf(text, sizeof(text),
		 "broker:\n  runtime_dir: %s/run\n"
		 "vms:\n  - name: sim\n    backend: sim\n    vcpus: 1\n    scripts: [cpu0.txt]\n"
		 "    devices:\n      - name: dev\n        program: ioreq-dev-null\n"
		 "        args: [--pattern, \"0x%llx\"]\n        pio: [\"%s\"]\n",
		 c->tmp, BENCH_PATTERN, BENCH_DEV_PORT_RANGE);
	r = write_file(config, text);
	if (r < 0)
		return r;
	t0 = bench_now_ns();
	r = brokerd_start(c, config, true, &c->all, log, &pid);
	if (r < 0)
		return r;
	r = bench_wait(pid, BROKERD_TIMEOUT_MS);
	*ret_ns = bench_now_ns() - t0;
	if (r < 0 || !WIFEXITED(r) || WEXITSTATUS(r)) {
		bench_last_line(log, why, len);
		return -EIO;
	}
	return 0;
}

void daemon_crosscheck(const struct bench_ctx *c, struct result *r)
{
	unsigned n1 = c->iters / 10, n2 = c->iters;
	int64_t t1, t2;
	int e;

	r->ok = true;
	e = sim_run(c, n1, &t1, r->why, sizeof(r->why));
	if (e == 0)
		e = sim_run(c, n2, &t2, r->why, sizeof(r->why));
	if (e < 0) {
		r->ok = false;
		if (e != -EIO)
			snprintf(r->why, sizeof(r->why), "ioreq-brokerd: %s", strerror(-e));
		return;
	}
	result_set(r, "n", n2 - n1);
	result_set(r, "mean_ns", (double)(t2 - t1) / (n2 - n1));
	result_set(r, "wall_short_ns", (double)t1);
	result_set(r, "wall_long_ns", (double)t2);
}

/* ---- memory ---- */

struct mem_sample {
	long broker_kb;
	long broker_threads;
	long device_kb;  /* the first device's */
	size_t devices;
};

/* A broker with @vms VMs of @devs ioreq-dev-null each; every vCPU reads
 * each of its devices MEM_ACCESSES times, so that the numbers are taken
 * after traffic, then its VM stops by itself and everything stays up. */
static int mem_run(const struct bench_ctx *c, unsigned vms, unsigned devs, struct mem_sample *s, char *why,
		   size_t len)
{
	char path[512], log[512], text[8192];
	size_t n = 0, stopped = 0;
	pid_t pid, kids[64];
	FILE *f;
	int r;

	snprintf(path, sizeof(path), "%s/mem.txt", c->tmp);
	for (unsigned d = 0; d < devs; d++)
		n += snprintf(text + n, sizeof(text) - n, "repeat %u\npio read 0x%x 4 0x%llx\nend\n", MEM_ACCESSES,
			      BENCH_DEV_PORT + 8 * d, BENCH_PATTERN & 0xffffffffull);
	r = write_file(path, text);
	if (r < 0)
		return r;
	n = snprintf(text, sizeof(text), "broker:\n  runtime_dir: %s/run\nvms:\n", c->tmp);
	for (unsigned v = 0; v < vms; v++) {
		n += snprintf(text + n, sizeof(text) - n,
			      "  - name: vm%u\n    backend: sim\n    vcpus: 1\n    scripts: [mem.txt]\n    devices:\n", v);
		for (unsigned d = 0; d < devs; d++)
			n += snprintf(text + n, sizeof(text) - n,
				      "      - { name: dev%u, program: ioreq-dev-null, args: [--pattern, \"0x%llx\"],"
				      " pio: [\"0x%x+8\"] }\n",
				      d, BENCH_PATTERN, BENCH_DEV_PORT + 8 * d);
	}
	snprintf(path, sizeof(path), "%s/mem.yaml", c->tmp);
	r = write_file(path, text);
	if (r < 0)
		return r;
	snprintf(log, sizeof(log), "%s/mem.log", c->tmp);
	r = brokerd_start(c, path, false, &c->all, log, &pid);
	if (r < 0)
		return r;
	/* Every VM logs its stop once its script has run. */
	for (int waited = 0; stopped < vms && waited < BROKERD_TIMEOUT_MS / 10; waited++) {
		char line[512];

		usleep(10000);
		if (waitpid(pid, &r, WNOHANG) == pid) {
			bench_last_line(log, why, len);
			return -EIO;
		}
		f = fopen(log, "re");
		if (!f)
			continue;
		stopped = 0;
		while (fgets(line, sizeof(line), f))
			stopped += strstr(line, ": stopped with status 0") != NULL;
		fclose(f);
	}
	r = 0;
	if (stopped < vms) {
		bench_last_line(log, why, len);
		r = -ETIMEDOUT;
	} else {
		s->broker_kb = proc_status(pid, "VmRSS");
		s->broker_threads = proc_status(pid, "Threads");
		s->devices = proc_children(pid, kids, 64);
		s->device_kb = s->devices ? proc_status(kids[0], "VmRSS") : -1;
	}
	kill(pid, SIGTERM);
	bench_wait(pid, BROKERD_TIMEOUT_MS);
	return r;
}

void daemon_memory(const struct bench_ctx *c, struct result *r)
{
	struct mem_sample one, many_vms, many_devs;
	int e;

	e = mem_run(c, 1, 1, &one, r->why, sizeof(r->why));
	if (e == 0)
		e = mem_run(c, MEM_VMS, 1, &many_vms, r->why, sizeof(r->why));
	if (e == 0)
		e = mem_run(c, 1, MEM_DEVICES, &many_devs, r->why, sizeof(r->why));
	if (e < 0) {
		r->ok = false;
		if (e != -EIO && e != -ETIMEDOUT)
			snprintf(r->why, sizeof(r->why), "ioreq-brokerd: %s", strerror(-e));
		return;
	}
	r->ok = true;
	result_set(r, "broker_1vm_1dev_kb", one.broker_kb);
	result_set(r, "broker_4vm_1dev_kb", many_vms.broker_kb);
	result_set(r, "broker_1vm_9dev_kb", many_devs.broker_kb);
	result_set(r, "broker_per_vm_kb", (double)(many_vms.broker_kb - one.broker_kb) / (MEM_VMS - 1));
	result_set(r, "broker_per_device_kb", (double)(many_devs.broker_kb - one.broker_kb) / (MEM_DEVICES - 1));
	result_set(r, "broker_threads_1vm_1dev", one.broker_threads);
	result_set(r, "broker_threads_4vm_1dev", many_vms.broker_threads);
	result_set(r, "broker_threads_1vm_9dev", many_devs.broker_threads);
	result_set(r, "device_kb", one.device_kb);
}

/* ---- kvm ---- */

/* Guest exits cost some 100 us from ring 3 on KVM-PVM: a quarter of the
 * host cases' count keeps the guest's part of the run short. */
static unsigned kvm_accesses(const struct bench_ctx *c)
{
	return c->iters / 4 ? c->iters / 4 : 1;
}

static const char *kvm_unusable(void)
{
	static char why[128];
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int v;

	if (fd < 0 && errno == ENOENT) {
		snprintf(why, sizeof(why), "no /dev/kvm");
		return why;
	}
	if (fd < 0) {
		snprintf(why, sizeof(why), "/dev/kvm: %s", strerror(errno));
		return why;
	}
	v = ioctl(fd, KVM_GET_API_VERSION, 0);
	close(fd);
	if (v != KVM_API_VERSION) {
		snprintf(why, sizeof(why), "/dev/kvm: not a KVM device");
		return why;
	}
	return NULL;
}

/* One "ioreq-bench NAME n=... p50=... p99=... min=... mean=... bad=..." line. */
static int parse_guest_line(const char *out, const char *name, double ghz, struct result *r)
{
	char key[32];
	const char *p;
	unsigned long n, p50, p99, min, mean;
	unsigned bad;

	snprintf(key, sizeof(key), "ioreq-bench %s ", name);
	p = strstr(out, key);
	if (!p || sscanf(p + strlen(key), "n=%lu p50=%lu p99=%lu min=%lu mean=%lu bad=%u", &n, &p50, &p99, &min, &mean,
			 &bad) != 6)
		return -EPROTO;
	r->ok = true;
	result_set(r, "n", n);
	result_set(r, "p50_ns", p50 / ghz);
	result_set(r, "p99_ns", p99 / ghz);
	result_set(r, "min_ns", min / ghz);
	result_set(r, "mean_ns", mean / ghz);
	result_set(r, "bad_values", bad);
	return 0;
}

/* The device runs with the strict profile: look whether it really is
 * confined, in its own pid namespace (NSpid has two levels) under a seccomp
 * filter. 1 yes, 0 no, -1 not known yet (not started, not connected). */
static int sandboxed(pid_t broker, const char *name)
{
	char path[64], buf[4096], want[80];
	pid_t kids[8];
	size_t n = proc_children(broker, kids, 8);
	int len = snprintf(want, sizeof(want), "--name%c%s%c", '\0', name, '\0');

	for (size_t i = 0; i < n; i++) {
		ssize_t got;
		char *ns;
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)kids[i]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		got = read(fd, buf, sizeof(buf));
		close(fd);
		if (got <= 0 || !memmem(buf, got, want, len))
			continue;
		if (proc_status(kids[i], "Seccomp") != 2)
			return -1;
		snprintf(path, sizeof(path), "/proc/%d/status", (int)kids[i]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		got = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[got > 0 ? got : 0] = '\0';
		ns = strstr(buf, "\nNSpid:");
		return ns && strchr(ns + 8, '\t') && strchr(ns + 8, '\t') < strchr(ns + 1, '\n');
	}
	return -1;
}

/* A kvm VM of one vCPU running bin/guests/@image with @devices (YAML list
 * items) and a UART whose output goes to a file: ioreq-brokerd started on
 * @cpus. 0, or a negative errno with the reason in @why. */
static int kvm_start(const struct bench_ctx *c, const cpu_set_t *cpus, const char *image, const char *devices,
		     pid_t *ret, char *why, size_t len)
{
	char path[4200], config[512], log[512], out[512], text[8192];
	const char *no = kvm_unusable();
	struct stat st;
	int r;

	snprintf(path, sizeof(path), "%s/guests/%s", c->bindir, image);
	if (!no && stat(path, &st) < 0)
		no = "no guest image (the guest runtime did not build)";
	if (no) {
		snprintf(why, len, "kvm backend not available: %s", no);
		return -ENODEV;
	}
	snprintf(config, sizeof(config), "%s/kvm.yaml", c->tmp);
	snprintf(log, sizeof(log), "%s/kvm.log", c->tmp);
	snprintf(out, sizeof(out), "%s/kvm.uart", c->tmp);
	snprintf(text, sizeof(text),
		 "broker:\n  runtime_dir: %s/run\n"
		 "vms:\n  - name: kvm\n    backend: kvm\n    vcpus: 1\n    memory: 16M\n    image: %s\n"
		 "    devices:\n%s"
		 "      - { name: uart, program: ioreq-dev-uart, pio: [\"0x3f8+8\"], output: %s }\n",
		 c->tmp, path, devices, out);
	r = write_file(config, text);
	/* The broker opens a device's output file for appending. */
	unlink(out);
	if (r == 0)
		r = brokerd_start(c, config, true, cpus, log, ret);
	if (r < 0)
		snprintf(why, len, "kvm backend not available: ioreq-brokerd: %s", strerror(-r));
	return r;
}

/* Waits for the broker of kvm_start to exit with its VM; what the guest
 * printed into @buf. 0, or -EIO with the reason in @why. */
static int kvm_finish(const struct bench_ctx *c, pid_t pid, char *buf, size_t len, char *why, size_t wlen)
{
	char path[512], line[200];
	int status = bench_wait(pid, BROKERD_TIMEOUT_MS);
	ssize_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/kvm.uart", c->tmp);
	f = fopen(path, "re");
	n = f ? (ssize_t)fread(buf, 1, len - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n > 0 ? n : 0] = '\0';
	if (status >= 0 && WIFEXITED(status) && !WEXITSTATUS(status))
		return 0;
	snprintf(path, sizeof(path), "%s/kvm.log", c->tmp);
	bench_last_line(path, line, sizeof(line));
	snprintf(why, wlen, "kvm backend not available: the guest did not report (%s)", line);
	return -EIO;
}

void daemon_kvm(const struct bench_ctx *c, const cpu_set_t *cpus, const char *dev_keys, struct result *hsm,
		struct result *dev)
{
	char devices[1024], buf[65536];
	int sandbox = -1;
	pid_t pid;

	hsm->ok = dev->ok = false;
	snprintf(devices, sizeof(devices),
		 "      - { name: dev, program: ioreq-dev-null, args: [--pattern, \"0x%llx\"], pio: [\"%s\"],"
		 " sandbox: strict%s }\n"
		 "      - { name: param, program: ioreq-dev-null, args: [--pattern, \"%u\"], pio: [\"0x%x+4\"] }\n",
		 BENCH_PATTERN, BENCH_DEV_PORT_RANGE, dev_keys, kvm_accesses(c), KVM_PARAM_PORT);
	if (kvm_start(c, cpus, "ioreq-bench.elf", devices, &pid, hsm->why, sizeof(hsm->why)) < 0) {
		fail(dev, "%s", hsm->why);
		return;
	}
	/* The devices are up long before the guest's first timed read. */
	for (int i = 0; i < 400 && sandbox < 0; i++) {
		usleep(5000);
		sandbox = sandboxed(pid, "dev");
	}
	if (kvm_finish(c, pid, buf, sizeof(buf), hsm->why, sizeof(hsm->why)) < 0 ||
	    parse_guest_line(buf, "hsm", c->tsc_ghz, hsm) || parse_guest_line(buf, "dev", c->tsc_ghz, dev)) {
		if (!hsm->why[0])
			snprintf(hsm->why, sizeof(hsm->why), "kvm backend not available: the guest did not report");
		hsm->ok = false;
		fail(dev, "%s", hsm->why);
		return;
	}
	result_set(dev, "sandboxed", sandbox);
}

/* ---- the data plane on kvm ---- */

static const char *const kvm_dp_figures[] = { "bell_stall", "bell_ack", "bell_broker", "irqfd_ring", "irqmsg_ring" };

void daemon_kvm_dataplane(const struct bench_ctx *c, const cpu_set_t *cpus, struct result *r)
{
	char devices[1024], buf[65536];
	double lost = 0;
	pid_t pid;

	r->ok = false;
	snprintf(devices, sizeof(devices),
		 "      - { name: dev, program: ioreq-bench-dev, pio: [\"" DP_PORT_RANGE "\"], irqs: [%u],"
		 " memory: guest, doorbells: 3, irqfds: 1 }\n"
		 "      - { name: param, program: ioreq-dev-null, args: [--pattern, \"%u\"], pio: [\"0x%x+4\"] }\n",
		 DP_IRQ_LINE, c->iters, KVM_PARAM_PORT);
	if (kvm_start(c, cpus, "ioreq-bench-dp.elf", devices, &pid, r->why, sizeof(r->why)) < 0 ||
	    kvm_finish(c, pid, buf, sizeof(buf), r->why, sizeof(r->why)) < 0)
		return;
	for (size_t i = 0; i < sizeof(kvm_dp_figures) / sizeof(kvm_dp_figures[0]); i++) {
		struct result one = { 0 };
		char key[32];

		if (parse_guest_line(buf, kvm_dp_figures[i], c->tsc_ghz, &one)) {
			fail(r, "the guest did not report %s", kvm_dp_figures[i]);
			return;
		}
		snprintf(key, sizeof(key), "%s_p50_ns", kvm_dp_figures[i]);
		result_set(r, key, result_get(&one, "p50_ns"));
		snprintf(key, sizeof(key), "%s_p99_ns", kvm_dp_figures[i]);
		result_set(r, key, result_get(&one, "p99_ns"));
		result_set(r, "n", result_get(&one, "n"));
		lost += result_get(&one, "bad_values");
	}
	result_set(r, "lost", lost);
	r->ok = true;
}
