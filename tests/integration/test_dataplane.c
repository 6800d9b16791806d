/* The data plane through the real broker (issue 15): what a sandboxed
 * device is given (guest memory, files, eventfds) and nothing else, what it
 * may do with each and what it may not, and that a device killed with its
 * bindings in place leaves nothing behind in the broker.
 *
 * The device is tests/devices/dplane.c (ioreq-test-dplane): the sim vCPU
 * drives it through its registers and checks guest RAM with mem
 * statements; the device reports on its stdout, a file here.
 *
 * With --kvm it runs only the same data plane under a real guest on
 * /dev/kvm (test_integration_dataplane_kvm), skipped (77) without it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define DPLANE IOREQ_TESTDIR "/ioreq-test-dplane"
/* The device's registers (its first range, MMIO). */
#define BASE 0x10000000ull
#define OTHER 0x20000000ull

/* ---- the vCPU's script ---- */

static struct harness_script script;
static uint64_t cmd_base = BASE; /* whose registers s_cmd writes */

__attribute__((format(printf, 1, 2))) static void s_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	harness_script_vline(&script, fmt, ap);
	va_end(ap);
}

static void s_reset(void)
{
	harness_script_reset(&script);
	cmd_base = BASE;
}

/* Command @c of the device at cmd_base with its arguments; the result
 * read back must be @expect ("any" for anything). */
static void s_cmd(uint64_t c, uint64_t a0, uint64_t a1, uint64_t a2, const char *expect)
{
	s_line("mmio write 0x%" PRIx64 " 8 0x%" PRIx64, cmd_base + 8, a0);
	s_line("mmio write 0x%" PRIx64 " 8 0x%" PRIx64, cmd_base + 0x10, a1);
	s_line("mmio write 0x%" PRIx64 " 8 0x%" PRIx64, cmd_base + 0x18, a2);
	s_line("mmio write 0x%" PRIx64 " 8 %" PRIu64, cmd_base, c);
	s_line("mmio read 0x%" PRIx64 " 8 %s", cmd_base, expect);
}

/* A negative errno as the device's register holds it. */
static const char *neg(int err)
{
	static char buf[8][24];
	static unsigned k;
	char *b = buf[k++ % 8];

	snprintf(b, 24, "0x%" PRIx64, (uint64_t)(int64_t)-err);
	return b;
}

static const char *tmp_path(const char *name)
{
	static char buf[4][512];
	static unsigned k;
	char *b = buf[k++ % 4];

	snprintf(b, 512, "%s/%s", harness_tmpdir(), name);
	return b;
}

/* ---- the broker ---- */

/* The devices' outputs that @devices names go with the logs if the test
 * fails (once per test: each has its own scratch directory). */
static void keep_outputs(const char *devices)
{
	static const char *const names[] = { "dp.out", "ro.out", "plain.out" };
	static char kept_in[256];
	char label[64];

	if (!strcmp(kept_in, harness_tmpdir()))
		return;
	snprintf(kept_in, sizeof(kept_in), "%s", harness_tmpdir());
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(label, sizeof(label), "output: %s", names[i]);
		if (!strstr(devices, label))
			continue;
		snprintf(label, sizeof(label), "the device's output, %s", names[i]);
		harness_keep_log(label, tmp_path(names[i]));
	}
}

static const char *vm_config(const char *vm_extra, const char *devices)
{
	keep_outputs(devices);
	harness_write("cpu0.txt", "%s", script.text);
	return harness_write("v.yaml",
			     "broker: { runtime_dir: %s/run }\n"
			     "vms:\n"
			     "  - name: v\n"
			     "    backend: sim\n"
			     "    vcpus: 1\n"
			     "    scripts: [cpu0.txt]\n"
			     "%s"
			     "    devices:\n%s",
			     harness_tmpdir(), vm_extra, devices);
}

/* Runs the VM to its end: the broker's exit status. */
static int run_vm(struct run *r, const char *vm_extra, const char *devices, bool verbose)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", verbose ? "--verbose" : NULL, NULL };

	args[1] = vm_config(vm_extra, devices);
	return harness_run(r, args, 120);
}

static unsigned count(const char *text, const char *needle)
{
	unsigned n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

#define assert_has(text, needle)                                                                  \
	do {                                                                                      \
		if (!strstr((text), (needle)))                                                    \
			fail_msg("no \"%s\" in:\n%s", (needle), (text));                          \
	} while (0)

/* ---- what a device is given ---- */

/* Exactly its block from fd 3 (files in order, then eventfds), in its
 * sandbox and unconfined alike: nothing of the broker's or the launcher's. */
static void test_fds_given(void **state)
{
	char dev[1024];
	struct run r;

	harness_write("ro.bin", "read me");
	harness_write("rw.bin", "write me");
	s_reset();
	s_cmd(12, 0, 0, 0, "0");
	s_line("mmio read 0x%llx 8 0", OTHER);
	snprintf(dev, sizeof(dev),
		 "      - { name: dp, program: %s, mmio: [\"0x%llx+0x100\"], files: [ro.bin, {path: rw.bin, mode: rw}],\n"
		 "          doorbells: 2, irqfds: 1, output: dp.out }\n"
		 "      - { name: plain, program: %s, mmio: [\"0x%llx+0x100\"], files: [ro.bin], irqfds: 1,\n"
		 "          sandbox: none, output: plain.out }\n",
		 DPLANE, BASE, DPLANE, OTHER);
	assert_int_equal(run_vm(&r, "", dev, false), 0);
	/* Its request ring comes last: a memfd and two eventfds. */
	assert_has(harness_read("dp.out"), harness_ring() ? "fds: 0 1 2 3:reg 4:reg 5:anon 6:anon 7:anon 8:reg 9:anon 10:anon\n"
						       : "fds: 0 1 2 3:reg 4:reg 5:anon 6:anon 7:anon\n");
	assert_has(harness_read("dp.out"), "given: memory 0 files 2 doorbells 2 irqfds 1\n");
	assert_has(harness_read("plain.out"),
		   harness_ring() ? "fds: 0 1 2 3:reg 4:anon 5:reg 6:anon 7:anon\n" : "fds: 0 1 2 3:reg 4:anon\n");
	assert_has(harness_read("plain.out"), "given: memory 0 files 1 doorbells 0 irqfds 1\n");
}

/* Files opened by the broker: read, written and synced by the device in
 * its sandbox, which knows no path. */
static void test_files(void **state)
{
	const char *hello = "0x6f6c6c65682d6f6c"; /* "lo-hello" */
	char dev[1024];
	struct run r;

	harness_write("data.bin", "hello-hello-hello");
	harness_write("out.bin", "................");
	assert_int_equal(symlink(tmp_path("data.bin"), tmp_path("link.bin")), 0);
	s_reset();
	s_cmd(4, 0, 3, 0, hello);        /* 8 bytes at offset 3 of data.bin */
	s_cmd(4, 2, 3, 0, hello);        /* the same through the symlink */
	s_cmd(5, 1, 8, 0x4142434445464748ull, "0");
	s_cmd(4, 1, 8, 0, "0x4142434445464748");
	s_cmd(5, 0, 0, 1, neg(EBADF));   /* data.bin is read-only */
	s_cmd(4, 3, 0, 0, neg(ENOENT));  /* there is no file 3 */
	snprintf(dev, sizeof(dev),
		 "      - { name: dp, program: %s, mmio: [\"0x%llx+0x100\"], output: dp.out,\n"
		 "          files: [data.bin, {path: out.bin, mode: rw, direct: false}, link.bin] }\n",
		 DPLANE, BASE);
	assert_int_equal(run_vm(&r, "", dev, false), 0);
	assert_string_equal(harness_read("out.bin"), "........HGFEDCBA");
	assert_string_equal(harness_read("data.bin"), "hello-hello-hello");
}

/* A file the broker cannot give as asked fails the VM's start, with the
 * entry's FILE:LINE:COLUMN; nothing of the device runs. */
static void test_file_errors(void **state)
{
	/* The entry, the path the error names (relative: in the scratch
	 * directory), and what follows it. */
	static const struct {
		const char *entry, *path, *error;
	} cases[] = {
		{ "missing.bin", "missing.bin", " read-only: No such file or directory" },
		{ "adir", "adir", " read-only: Is a directory" },
		{ "dirlink", "dirlink", " read-only: Is a directory" },
		{ "dangling", "dangling", " read-only: No such file or directory" },
		/* a character device, even through a link: never opened */
		{ "/dev/null", "/dev/null", " read-only: not a regular file or a block device" },
		{ "nulllink", "nulllink", " read-only: not a regular file or a block device" },
		{ "fifo", "fifo", " read-only: not a regular file or a block device" },
		{ "{path: locked.bin, mode: rw}", "locked.bin", " read-write: " },
	};
	char dev[1024], want[512];
	unsigned flags = FS_IMMUTABLE_FL;
	bool locked = false;
	int fd;

	assert_int_equal(mkdir(tmp_path("adir"), 0755), 0);
	assert_int_equal(symlink(tmp_path("adir"), tmp_path("dirlink")), 0);
	assert_int_equal(symlink(tmp_path("nowhere"), tmp_path("dangling")), 0);
	assert_int_equal(symlink("/dev/null", tmp_path("nulllink")), 0);
	assert_int_equal(mkfifo(tmp_path("fifo"), 0600), 0);
	/* A mode the broker cannot get: as root, an immutable file; else one
	 * it may not write. */
	harness_write("locked.bin", "x");
	fd = open(tmp_path("locked.bin"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	if (geteuid() == 0)
		locked = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
	else
		locked = chmod(tmp_path("locked.bin"), 0444) == 0;
	close(fd);
	if (!locked)
		print_message("[   INFO   ] cannot make a file the broker may not write here: that case is left out\n");
	s_reset();
	s_cmd(12, 0, 0, 0, "0");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;

		if (!locked && strstr(cases[i].entry, "locked"))
			continue;
		snprintf(dev, sizeof(dev),
			 "      - name: dp\n"
			 "        program: %s\n"
			 "        mmio: [\"0x%llx+0x100\"]\n"
			 "        output: dp.out\n"
			 "        files: [ro.bin, %s]\n",
			 DPLANE, BASE, cases[i].entry);
		harness_write("ro.bin", "fine");
		unlink(tmp_path("dp.out"));
		assert_int_not_equal(run_vm(&r, "", dev, false), 0);
		/* lines 8-12 are the device; the entry is the second of line 12 */
		snprintf(want, sizeof(want), "v.yaml:12:25: ");
		assert_has(harness_log(&r), want);
		snprintf(want, sizeof(want), "cannot open %s%s", cases[i].path[0] == '/' ? cases[i].path : tmp_path(cases[i].path),
			 cases[i].error);
		assert_has(harness_log(&r), want);
		assert_string_equal(harness_read("dp.out"), "");
	}
	if (locked && geteuid() == 0) {
		flags = 0;
		fd = open(tmp_path("locked.bin"), O_RDONLY | O_CLOEXEC);
		assert_int_equal(ioctl(fd, FS_IOC_SETFLAGS, &flags), 0);
		close(fd);
	}
}

/* ---- doorbells and irqfds ---- */

/* A doorbell rings the device without a request. The sim backend serves
 * it in its HSM layer, as ACRN's ioeventfd client does: the doorbell's
 * bytes are the client's, so a write there that does not match (another
 * value, another address inside it) is dropped, and a narrower write of
 * the value rings; a write elsewhere is the device's request, as is one
 * to the doorbell's address once it is unbound. Refusals leave the
 * device's eventfd free (it has 3: two bound, one for the refusals). */
static void test_doorbells(void **state)
{
	char dev[512];
	struct run r;

	s_reset();
	/* Its eventfds are fds 3-5 (test_fds_given): the first two bound. */
	s_cmd(8, 1, BASE + 0x40, 4, "3");                           /* BASE+0x40, 4 bytes */
	s_cmd(8, 1, BASE + 0x48, 4 | 1 << 8 | 7ull << 32, "4");     /* BASE+0x48, value 7 only */
	s_cmd(8, 1, OTHER + 0x40, 4, neg(EPERM));                   /* another device's */
	s_cmd(8, 1, BASE + 0xfc, 8, neg(EPERM));                    /* across its end */
	s_cmd(8, 1, BASE + 0x40, 4, neg(EEXIST));                   /* a second on the same write */
	s_cmd(8, 1, BASE + 0x50, 1 | 1 << 8 | 0x1ffull << 32, neg(EINVAL)); /* a value wider than a byte */
	for (int i = 0; i < 3; i++)
		s_line("mmio write 0x%llx 4 %d", BASE + 0x40, i);   /* 3 rings */
	s_line("mmio write 0x%llx 4 7", BASE + 0x48);              /* 2 rings */
	s_line("mmio write 0x%llx 4 7", BASE + 0x48);
	s_line("mmio write 0x%llx 4 8", BASE + 0x48);              /* not 7: dropped */
	s_line("mmio write 0x%llx 2 7", BASE + 0x48);              /* 7 in 2 bytes: a ring */
	s_line("mmio write 0x%llx 2 7", BASE + 0x4a);              /* inside, not at it: dropped */
	s_line("mmio write 0x%llx 8 1", BASE + 0x50);              /* elsewhere: a request */
	s_cmd(6, 0, 0, 0, "6");
	s_cmd(12, 0, 0, 0, "1");
	s_cmd(10, 3, 0, 0, "0");                                   /* unbind the first */
	s_line("mmio write 0x%llx 8 1", BASE + 0x40);              /* its register again */
	s_cmd(6, 0, 0, 0, "6");
	s_cmd(12, 0, 0, 0, "2");
	s_cmd(8, 1, BASE + 0x40, 4, "3");                          /* and bound again */
	s_line("mmio write 0x%llx 4 1", BASE + 0x40);
	s_cmd(6, 0, 0, 0, "7");
	snprintf(dev, sizeof(dev),
		 "      - { name: dp, program: %s, mmio: [\"0x%llx+0x100\"], doorbells: 3, output: dp.out }\n"
		 "      - { name: other, program: ioreq-dev-null, mmio: [\"0x%llx+0x100\"] }\n",
		 DPLANE, BASE, OTHER);
	assert_int_equal(run_vm(&r, "", dev, false), 0);
	assert_has(harness_log(&r), "vm v device dp: registered doorbell 0 (mmio 0x10000040 size 4): "
				    "served by the hypervisor");
	assert_has(harness_log(&r), "vm v device dp: registered doorbell 1 (mmio 0x10000048 size 4 with datamatch): "
				    "served by the hypervisor");
	assert_has(harness_log(&r), "vm v device dp: refused a registration of doorbell 2 (mmio 0x20000040 size 4): "
				    "outside its ranges");
	assert_has(harness_log(&r), "vm v device dp: refused a registration of doorbell 2 (mmio 0x10000040 size 4): "
				    "another doorbell waits for that write");
	assert_has(harness_log(&r), "its value is wider than the access");
	assert_has(harness_log(&r), "vm v device dp: released doorbell 0");
	/* 13 commands of 5 accesses and the 2 writes to registers: no ring
	 * and nothing dropped was a request. */
	assert_int_equal(harness_stat(&r, "vm v device dp:", " mmio"), 13 * 5 + 2);
}

/* An irqfd injects its interrupt when the device writes it, with no
 * message to the broker: the guest takes the line's edge, then the MSI. */
static void test_irqfds(void **state)
{
	char dev[512];
	const char *log;
	struct run r;

	s_reset();
	/* Its eventfds are fds 3 and 4 (irqfds 0 and 1). */
	s_cmd(9, 5, 0, 0, "3");
	s_cmd(7, 3, 0, 0, "0");
	s_line("irq 5 edge");
	s_cmd(9, 6, 0, 0, neg(EPERM));          /* not its line */
	s_cmd(9, 0xffffffff, 0, 0, "4");        /* an MSI */
	s_cmd(7, 4, 0, 0, "0");
	s_line("msi 0xfee00000 0x41");
	s_cmd(9, 5, 0, 0, neg(ENOSPC));         /* both bound */
	s_cmd(10, 3, 0, 0, "0");                /* unbound, it can be bound again */
	s_cmd(9, 5, 0, 0, "3");
	s_cmd(7, 3, 0, 0, "0");
	s_line("irq 5 edge");
	snprintf(dev, sizeof(dev),
		 "      - { name: dp, program: %s, mmio: [\"0x%llx+0x100\"], irqs: [5], msi: true, irqfds: 2,\n"
		 "          output: dp.out }\n",
		 DPLANE, BASE);
	assert_int_equal(run_vm(&r, "", dev, false), 0);
	log = harness_log(&r);
	assert_has(log, "vm v device dp: registered irqfd 0 (IRQ 5): served by the hypervisor");
	assert_has(log, "vm v device dp: registered irqfd 1 (MSI): served by the hypervisor");
	assert_has(log, "vm v device dp: refused a registration of irqfd 1 (IRQ 6): IRQ line not granted");
	/* The interrupts were the irqfds': none came as a message. */
	assert_int_equal(harness_stat(&r, "vm v device dp:", " interrupts"), 0);
}

/* What the library would never send, sent raw: each refused with its
 * errno and counted as a violation, the device kept. */
static void test_hostile_registrations(void **state)
{
	static const struct {
		const char *reg;
		int error;
		const char *why;
	} cases[] = {
		{ "io:0:mmio:10000040:4", 0, NULL },
		{ "io:0:mmio:10000044:4", -EEXIST, "it registered that eventfd already" },
		{ "io:1:mmio:10000040:4", -EEXIST, "another doorbell waits for that write" },
		{ "io:1:mmio:20000000:4", -EPERM, "outside its ranges" },
		{ "io:1:mmio:100000fe:4", -EPERM, "outside its ranges" },
		{ "io:1:mmio:30000000:4", -EPERM, "outside its ranges" },
		{ "io:1:pio:cfc:4", -EPERM, "the PCI configuration ports are the HSM's" },
		{ "io:1:pci:8:4", -EINVAL, "a doorbell is a port or an MMIO address" },
		{ "io:2:mmio:10000050:4", -EBADF, "it was given no such eventfd" },
		{ "irq:0:6", -EPERM, "IRQ line not granted" },
		{ "irq:1:5", -EBADF, "it was given no such eventfd" },
		{ "msi:0", -EPERM, "MSI not granted" },
		{ "irq:0:5", 0, NULL },
		{ "release-io:1", -ENOENT, "it has no such registration" },
	};
	const size_t n = sizeof(cases) / sizeof(cases[0]);
	char dev[2048], line[128];
	size_t len;
	struct run r;

	len = (size_t)snprintf(dev, sizeof(dev),
			       "      - name: dp\n"
			       "        program: %s\n"
			       "        mmio: [\"0x%llx+0x100\"]\n"
			       "        pio: [\"0xcf8+8\"]\n"
			       "        irqs: [5]\n"
			       "        doorbells: 2\n"
			       "        irqfds: 1\n"
			       "        output: dp.out\n"
			       "        args: [--raw",
			       DPLANE, BASE);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(dev + len, sizeof(dev) - len, ", --reg, \"%s\"", cases[i].reg);
	snprintf(dev + len, sizeof(dev) - len, "]\n      - { name: other, program: ioreq-dev-null, mmio: [\"0x%llx+0x100\"] }\n",
		 OTHER);
	s_reset();
	s_line("sleep 500");
	s_line("mmio read 0x%llx 8 0", BASE);
	assert_int_equal(run_vm(&r, "", dev, false), 0);
	assert_has(harness_read("dp.out"), "all answered");
	for (size_t i = 0; i < n; i++) {
		snprintf(line, sizeof(line), "reg %zu: %d\n", i, cases[i].error);
		assert_has(harness_read("dp.out"), line);
		if (cases[i].why)
			assert_has(harness_log(&r), cases[i].why);
	}
	/* Soft violations, below max_violations: still there, never restarted. */
	assert_int_equal(count(harness_log(&r), "cut off"), 0);
	assert_int_equal(count(harness_log(&r), "restarting"), 0);
}

/* A raw device with @limit that sends @n registrations of its doorbell 0,
 * on the 4 bytes at @first, then at each next 4. */
static void flooder(char *dev, size_t size, const char *limit, uint64_t first, int n)
{
	size_t len;

	len = (size_t)snprintf(dev, size,
			       "      - { name: dp, program: %s, mmio: [\"0x%llx+0x100\"], doorbells: 1, %s,\n"
			       "          restart_limit: 0, output: dp.out, args: [--raw",
			       DPLANE, BASE, limit);
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(dev + len, size - len, ", --reg, \"io:0:mmio:%" PRIx64 ":4\"",
					first + 4 * (uint64_t)i);
	assert_true(len < size - 8);
	snprintf(dev + len, size - len, "] }\n");
}

/* Registrations count against max_msg_rate, and refusals against
 * max_violations, like claims. */
static void test_registration_floods(void **state)
{
	char dev[2048];
	struct run r;

	flooder(dev, sizeof(dev), "max_msg_rate: 2", BASE + 0x40, 16);
	s_reset();
	s_line("sleep 500");
	s_line("mmio read 0x%llx 8 any", BASE);
	assert_int_equal(run_vm(&r, "", dev, false), 0);
	assert_has(harness_log(&r), "vm v device dp: more than 2 messages a second; dropping them");
	assert_has(harness_log(&r), "vm v device dp: flooded the broker with messages: cut off");
	/* The first 2 were served (whether their answers reached the device
	 * before it was cut off is the sockets' business), the rest dropped. */
	assert_int_equal(count(harness_log(&r), "registered doorbell") + count(harness_log(&r), "refused a registration"), 2);
	assert_true(count(harness_read("dp.out"), "\nreg ") <= 2); /* its answers; not "3:reg" of its fds line */

	flooder(dev, sizeof(dev), "max_violations: 3", OTHER, 8);
	unlink(tmp_path("dp.out"));
	assert_int_equal(run_vm(&r, "", dev, false), 0);
	assert_has(harness_log(&r), "vm v device dp: more than 3 protocol violations within a minute: cut off");
}

/* ---- what a device leaves behind ---- */

static long broker_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Waits until the device's output says "bound" @n times; false on timeout. */
static bool wait_bound(unsigned n, double timeout_s)
{
	struct timespec ts = { 0, 10 * 1000000 };

	for (double t = 0; t < timeout_s; t += 0.01) {
		const char *out = harness_read("dp.out");

		if (strstr(out, "bind failed"))
			fail_msg("a new instance could not bind what its predecessor had:\n%s", out);
		if (count(out, "bound: ") >= n)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

/* The pid of the device's instance that logged ready last. */
static pid_t last_pid(const struct run *r)
{
	const char *log = harness_log(r), *p, *last = NULL;

	for (p = log; (p = strstr(p, "vm v device dp: ready (pid ")); p++)
		last = p;
	return last ? (pid_t)atoi(last + strlen("vm v device dp: ready (pid ")) : 0;
}

/* Killed 100 times with a doorbell and an irqfd bound: each new instance
 * gets fresh eventfds and binds the same again (it could not, were its
 * predecessor's still bound), and the broker's fds stay where they were. */
static void test_churn_leaves_nothing(void **state)
{
	const char *args[] = { "--config", NULL, NULL };
	unsigned kills = 100;
	char dev[512];
	long before, after;
	struct run r;

	harness_write("data.bin", "data");
	s_reset();
	s_line("repeat 1000000");
	s_line("  mmio write 0x%llx 4 1", BASE + 0x40);
	s_line("  sleep 1");
	s_line("end");
	snprintf(dev, sizeof(dev),
		 "      - { name: dp, program: %s, mmio: [\"0x%llx+0x100\"], irqs: [5], files: [data.bin], doorbells: 2,\n"
		 "          irqfds: 1, output: dp.out, args: [--bind-at-start], restart_limit: 1000,\n"
		 "          restart_window_ms: 1 }\n",
		 DPLANE, BASE);
	args[1] = vm_config("", dev);
	harness_start(&r, args);
	assert_true(wait_bound(1, 30));
	before = broker_fds(r.pid);
	for (unsigned i = 1; i <= kills; i++) {
		pid_t pid = last_pid(&r);

		assert_true(pid > 0);
		assert_int_equal(kill(pid, SIGKILL), 0);
		if (!wait_bound(i + 1, 30))
			fail_msg("instance %u did not bind within 30 s", i + 1);
	}
	after = broker_fds(r.pid);
	print_message("[   INFO   ] broker fds: %ld after the first instance, %ld after %u kills\n", before, after, kills);
	assert_int_equal(after, before);
	assert_int_equal(count(harness_read("dp.out"), harness_ring() ? "fds: 0 1 2 3:reg 4:anon 5:anon 6:anon 7:reg 8:anon 9:anon\n"
								  : "fds: 0 1 2 3:reg 4:anon 5:anon 6:anon\n"),
			 kills + 1);
	kill(r.pid, SIGTERM);
	harness_wait(&r, 30);
	assert_int_equal(r.status, 0);
}

/* ---- guest memory ---- */

#define BLOB_SIZE 4096

/* The byte at @i of the file the script loads, and 8 of them as the
 * little-endian word a mem read sees. */
static uint8_t blob_byte(size_t i)
{
	return (uint8_t)(i * 7 + i / 256 + 3);
}

static uint64_t blob_word(size_t i)
{
	uint64_t v = 0;

	for (size_t k = 8; k-- > 0;)
		v = v << 8 | blob_byte(i + k);
	return v;
}

static void write_blob(const char *name)
{
	uint8_t b[BLOB_SIZE];
	int fd;

	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = blob_byte(i);
	fd = open(tmp_path(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, sizeof(b)), sizeof(b));
	close(fd);
}

/* The guest's RAM (1 MiB at 0) through the device library's view: the
 * device reads what the guest stored and loaded, the guest reads what the
 * device wrote and copied; a range not wholly RAM (past the end, wrapping,
 * a copy whose destination crosses the end) is an error for the device,
 * which copies nothing and lives on. A device given it read-only reads it,
 * cannot write it through the library, and cannot map its fd writable. */
static void test_guest_memory(void **state)
{
	char dev[1024];
	struct run r;

	write_blob("blob.bin");
	s_reset();
	s_line("mem write 0x1000 8 0x1122334455667788");
	s_cmd(2, 0x1000, 0, 0, "0x1122334455667788");           /* the guest's, read by the device */
	s_cmd(3, 0x2000, 0x0102030405060708, 0, "0");           /* written by the device */
	s_line("mem read 0x2000 8 0x0102030405060708");         /* read by the guest */
	s_line("mem load 0x10000 blob.bin");
	s_cmd(1, 0x10000, 0x20000, BLOB_SIZE, "0");             /* copied by the device */
	for (size_t i = 0; i < BLOB_SIZE; i += 1024 - 8)
		s_line("mem read 0x%zx 8 0x%" PRIx64, 0x20000 + i, blob_word(i));
	s_line("mem read 0x%x 8 0x%" PRIx64, 0x20000 + BLOB_SIZE - 8, blob_word(BLOB_SIZE - 8));
	s_cmd(11, 0xff000, 0x1000, 0, "1");                     /* the last page */
	s_cmd(11, 0xff000, 0x1001, 0, neg(EFAULT));             /* one byte past the end */
	s_cmd(11, 0xffffffffffff0000, 0x20000, 0, neg(EFAULT)); /* wrapping */
	s_cmd(2, 0x100000, 0, 0, neg(EFAULT));                  /* just outside RAM */
	s_cmd(2, 0xfffffffffffffffc, 0, 0, neg(EFAULT));        /* 8 bytes that wrap */
	s_cmd(11, 0x1000, 0, 0, neg(EFAULT));                   /* 0 bytes have no pointer */
	s_cmd(1, 0x10000, 0xff800, 0x1000, neg(EFAULT));        /* a copy across the end */
	s_line("mem read 0xff800 8 0");                         /* copies nothing */
	s_cmd(2, 0x1000, 0, 0, "0x1122334455667788");           /* and serves on */
	/* The read-only device: it reads, but neither writes nor maps for writing. */
	cmd_base = OTHER;
	s_cmd(2, 0x2000, 0, 0, "0x0102030405060708");
	s_cmd(11, 0x1000, 8, 0, "0");                           /* a pointer for reading only */
	s_cmd(3, 0x1000, 0, 0, neg(EFAULT));
	s_line("mem read 0x1000 8 0x1122334455667788");
	s_cmd(13, 3, 0, 0, neg(EACCES));                        /* its fd is read-only */
	s_cmd(13, 3, 1, 0, "any");                              /* nor reopen it: below */
	snprintf(dev, sizeof(dev),
		 "      - { name: dp, program: %s, mmio: [\"0x%llx+0x100\"], memory: guest, output: dp.out }\n"
		 "      - { name: ro, program: %s, mmio: [\"0x%llx+0x100\"], memory: read-only, output: ro.out }\n",
		 DPLANE, BASE, DPLANE, OTHER);
	assert_int_equal(run_vm(&r, "    memory: 1M\n", dev, false), 0);
	/* The guest's memfd, and its ring's. */
	assert_has(harness_read("dp.out"), harness_ring() ? "fds: 0 1 2 3:reg 4:reg 5:anon 6:anon\n" : "fds: 0 1 2 3:reg\n");
	assert_has(harness_read("dp.out"), "given: memory 1 files 0 doorbells 0 irqfds 0\nregion 0: 0x0+0x100000\n");
	assert_has(harness_read("ro.out"), "region 0: 0x0+0x100000 read-only\n");
	/* Nor can it reopen the fd for writing through /proc, in its sandbox
	 * (whatever the error: an errno, not 0). */
	assert_has(harness_read("ro.out"), "cmd 13: -13\ncmd 13: -");
}

/* A device that asks for memory the VM does not have stops the VM's
 * start, with its entry's FILE:LINE:COLUMN. */
static void test_guest_memory_missing(void **state)
{
	char dev[512];
	struct run r;

	s_reset();
	s_line("mmio read 0x%llx 8 any", BASE);
	snprintf(dev, sizeof(dev), "      - { name: dp, program: %s, mmio: [\"0x%llx+0x100\"], memory: guest, output: dp.out }\n",
		 DPLANE, BASE);
	assert_int_not_equal(run_vm(&r, "", dev, false), 0);
	assert_has(harness_log(&r), "v.yaml:8:9: memory: the VM has no guest memory");
	assert_string_equal(harness_read("dp.out"), "");
}

/* The device that copies on a doorbell ring and answers through its
 * irqfd, with its registers at @base and IRQ line 5. */
static void copier(char *dev, size_t len, uint64_t base)
{
	snprintf(dev, len,
		 "      - { name: dp, program: %s, mmio: [\"0x%" PRIx64 "+0x100\"], memory: guest, irqs: [5], doorbells: 1,\n"
		 "          irqfds: 1, output: dp.out, args: [--bind-at-start, --copy-on-ring] }\n",
		 DPLANE, base);
}

/* The whole data plane with no request after setup: the guest loads a
 * buffer and rings the device's doorbell; the device copies it in guest
 * memory and answers through its irqfd; the guest waits for the copy's
 * last word (a driver polling), takes the interrupt and checks the rest.
 * 20 rounds, each with its own data. */
static void test_doorbell_to_irqfd(void **state)
{
	char dev[1024];
	struct run r;

	write_blob("blob.bin");
	s_reset();
	s_line("mem load 0x10000 blob.bin");
	s_line("mmio write 0x%llx 8 0x10000", BASE + 0x08);
	s_line("mmio write 0x%llx 8 0x20000", BASE + 0x10);
	s_line("mmio write 0x%llx 8 %d", BASE + 0x18, BLOB_SIZE);
	s_line("repeat 20");
	s_line("  mem write 0x%x 8 seq", 0x10000 + BLOB_SIZE - 8);
	s_line("  mmio write 0x%llx 4 1", BASE + 0x40);
	s_line("  mem wait 0x%x 8 seq 10000", 0x20000 + BLOB_SIZE - 8);
	s_line("  irq 5 edge");
	s_line("  mem read 0x20000 8 0x%" PRIx64, blob_word(0));
	s_line("  mem read 0x20800 8 0x%" PRIx64, blob_word(0x800));
	s_line("end");
	copier(dev, sizeof(dev), BASE);
	assert_int_equal(run_vm(&r, "    memory: 1M\n", dev, false), 0);
	assert_has(harness_read("dp.out"), "bound: ");
	/* The 3 arguments were requests; the 20 doorbells and interrupts were not. */
	assert_int_equal(harness_stat(&r, "vm v device dp:", " mmio"), 3);
	assert_int_equal(harness_stat(&r, "vm v device dp:", " interrupts"), 0);
}

/* ---- under a real guest ---- */

/* tests/guests/dataplane.c with the device sandboxed: 20 rounds of a 4 KiB
 * copy the guest asks for with a KVM_IOEVENTFD doorbell and learns of
 * through a KVM_IRQFD interrupt; the guest checks every word. Only the 3
 * writes of the copy's arguments are requests. */
static void test_kvm_doorbell_to_irqfd(void **state)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };
	char dev[512];
	struct run r;

	harness_need_kvm();
	copier(dev, sizeof(dev), 0xd0000000);
	keep_outputs(dev);
	args[1] = harness_write("vm.yaml",
				"broker: { runtime_dir: %s/run }\n"
				"vms:\n"
				"  - name: t\n"
				"    backend: kvm\n"
				"    vcpus: 1\n"
				"    memory: 16M\n"
				"    image: %s/guests/dataplane.elf\n"
				"    devices:\n%s",
				harness_tmpdir(), IOREQ_BINDIR, dev);
	assert_int_equal(harness_run(&r, args, 120), 0);
	assert_has(harness_log(&r), "vm t device dp: registered doorbell 0 (mmio 0xd0000040 size 4): "
				    "served by the hypervisor");
	assert_has(harness_log(&r), "vm t device dp: registered irqfd 0 (IRQ 5): served by the hypervisor");
	assert_int_equal(harness_stat(&r, "vm t device dp:", " mmio"), 3);
	assert_int_equal(harness_stat(&r, "vm t device dp:", " interrupts"), 0);
	assert_has(harness_read("dp.out"), "given: memory 1 files 0 doorbells 1 irqfds 1\n");
	assert_null(strstr(harness_read("dp.out"), "copy on ring:"));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest kvm[] = {
		harness_test(test_kvm_doorbell_to_irqfd),
	};
	const struct CMUnitTest tests[] = {
		harness_test(test_fds_given),
		harness_test(test_files),
		harness_test(test_file_errors),
		harness_test(test_doorbells),
		harness_test(test_irqfds),
		harness_test(test_hostile_registrations),
		harness_test(test_registration_floods),
		harness_test(test_churn_leaves_nothing),
		harness_test(test_guest_memory),
		harness_test(test_guest_memory_missing),
		harness_test(test_doorbell_to_irqfd),
	};

	if (argc == 2 && !strcmp(argv[1], "--kvm"))
		return harness_run_group("dataplane on kvm", kvm);
	return harness_run_group("dataplane", tests);
}
