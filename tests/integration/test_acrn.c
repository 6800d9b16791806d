/* ioreq-brokerd on the acrn backend, against the fake /dev/acrn_hsm
 * (tests/fake_hsm/) preloaded into it: scripted vCPUs behind the fake post
 * requests into the broker's request page, the broker serves them with real
 * device processes over nng, and the fake records every ioctl, so the
 * sequences acrn-dm makes can be asserted line by line. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MAX_LINES 16384

static char log_path[512], result_path[512];
static char lines[MAX_LINES][160];
static unsigned n_lines;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Starts the broker on @config with the fake preloaded and running
 * @scripts (FAKE_HSM_SCRIPTS). Only the broker gets the fake's variables. */
static void start_with_fake(struct run *r, const char *config, const char *scripts)
{
	const char *args[] = { "--config", config, NULL };

	snprintf(log_path, sizeof(log_path), "%s/hsm.log", harness_tmpdir());
	snprintf(result_path, sizeof(result_path), "%s/hsm.result", harness_tmpdir());
	setenv("LD_PRELOAD", FAKE_HSM_PRELOAD, 1);
	setenv("FAKE_HSM_LOG", log_path, 1);
	setenv("FAKE_HSM_RESULT", result_path, 1);
	setenv("FAKE_HSM_SCRIPTS", scripts, 1);
	harness_keep_log("the fake HSM's result", result_path);
	harness_start(r, args);
	unsetenv("LD_PRELOAD");
	unsetenv("FAKE_HSM_LOG");
	unsetenv("FAKE_HSM_RESULT");
	unsetenv("FAKE_HSM_SCRIPTS");
}

static char *slurp(const char *path)
{
	static char buf[1 << 22];
	FILE *f = fopen(path, "re");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

/* Waits until the fake reports @vms VMs whose scripts ended; fails on a
 * mismatch or when the broker dies. */
static void wait_scripts_ended(struct run *r, unsigned vms, double timeout_s)
{
	double until = now() + timeout_s;
	const char *res;

	for (;;) {
		unsigned ended = 0;

		res = slurp(result_path);
		for (const char *p = res; (p = strstr(p, "scripts ended")); p++)
			ended++;
		if (ended >= vms)
			break;
		if (now() > until || kill(r->pid, 0) < 0) {
			print_error("%u of %u VMs ended their scripts, after %.0f s or when the broker died\n", ended, vms,
				    timeout_s);
			fail();
		}
		usleep(10 * 1000);
	}
	for (const char *p = res; (p = strstr(p, "scripts ended")); p++) {
		if (strncmp(strchr(p, ',') ?: p, ", 0 mismatches,", strlen(", 0 mismatches,"))) {
			print_error("a script did not run as expected (the fake's result is below)\n");
			fail();
		}
	}
}

/* SIGTERM, and the broker must be gone within @limit_s, with status 0. */
static void stop_broker(struct run *r, double limit_s)
{
	double t0 = now();

	kill(r->pid, SIGTERM);
	harness_wait(r, 30);
	if (r->status != 0 || now() - t0 > limit_s) {
		print_error("broker exited %d after %.2f s\n", r->status, now() - t0);
		fail();
	}
}

/* The fake's log lines of its open number @serial, without "hsmN ". */
static void load_lines(unsigned serial)
{
	char *log = slurp(log_path), *save = NULL, head[16];

	snprintf(head, sizeof(head), "hsm%u ", serial);
	n_lines = 0;
	for (char *l = strtok_r(log, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, head, strlen(head)))
			continue;
		assert_true(n_lines < MAX_LINES);
		snprintf(lines[n_lines++], sizeof(lines[0]), "%s", l + strlen(head));
	}
}

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static unsigned count(const char *prefix)
{
	unsigned n = 0;

	for (unsigned i = 0; i < n_lines; i++)
		n += starts(lines[i], prefix);
	return n;
}

/* Index of the first line equal to @line at or after @from; fails if none. */
static unsigned find(const char *line, unsigned from)
{
	for (unsigned i = from; i < n_lines; i++)
		if (!strcmp(lines[i], line))
			return i;
	print_error("no \"%s\" after line %u\n", line, from);
	fail();
	return 0;
}

/* The lines other than requests (ATTACH, NOTIFY) are exactly @expect. */
static void assert_sequence(const char *const *expect)
{
	unsigned i = 0;

	for (unsigned l = 0; l < n_lines; l++) {
		if (starts(lines[l], "ATTACH_IOREQ_CLIENT") || starts(lines[l], "NOTIFY_REQUEST_FINISH"))
			continue;
		if (!expect[i] || strcmp(lines[l], expect[i])) {
			print_error("ioctl %u: expected \"%s\", got \"%s\"\n", i, expect[i] ? expect[i] : "(end)",
				    lines[l]);
			fail();
		}
		i++;
	}
	assert_null(expect[i]);
}

/* Every request is completed exactly once, by the broker, while the VM
 * runs: NOTIFY lines with nothing remarkable, one per default-client
 * request, before PAUSE_VM; the first came after an ATTACH returned 0 (the
 * client existed by then); the last ATTACH ended with the destroyed client.
 * (A line is written when its ioctl returns, so vCPUs' requests may show
 * before START_VM = 0.) */
static void assert_requests(unsigned requests)
{
	unsigned client = find("CREATE_IOREQ_CLIENT = 0", 0), pause = find("PAUSE_VM = 0", client);
	unsigned first_notify = n_lines, first_attach = n_lines, notifies = 0, last_attach = 0;

	for (unsigned i = 0; i < n_lines; i++) {
		if (starts(lines[i], "NOTIFY_REQUEST_FINISH")) {
			assert_non_null(strstr(lines[i], " = 0"));
			assert_null(strchr(lines[i], '('));
			assert_true(i < pause);
			first_notify = first_notify < i ? first_notify : i;
			notifies++;
		} else if (starts(lines[i], "ATTACH_IOREQ_CLIENT")) {
			if (first_attach == n_lines && !strcmp(lines[i], "ATTACH_IOREQ_CLIENT = 0"))
				first_attach = i;
			last_attach = i;
		}
	}
	assert_int_equal(notifies, requests);
	assert_true(client < first_attach && first_attach < first_notify);
	assert_string_equal(lines[last_attach], "ATTACH_IOREQ_CLIENT = -ENODEV");
	assert_true(last_attach > pause);
}

/* Port I/O, MMIO and PCI config (0xCF8/0xCFC folded by the HSM) served by
 * real devices; then SIGTERM: start, requests and shutdown in acrn-dm's
 * order, and the destroyed client ends the VM thread's ATTACH at once. */
static void test_serves_requests_in_acrn_dm_order(void **state)
{
	const char *const expect[] = {
		"OPEN O_RDWR|O_CLOEXEC",
		"CREATE_VM name=alpha vcpu_num=2 vm_flag=0x0 cpu_affinity=0x0 = 0",
		"SET_MEMSEG type=0 gpa=0x0 len=0x4000000 attr=0x7 = 0",
		"CREATE_IOREQ_CLIENT = 0",
		"START_VM = 0",
		"PAUSE_VM = 0",
		"DESTROY_IOREQ_CLIENT = 0",
		"DESTROY_VM = 0",
		"CLOSE",
		NULL,
	};
	char scripts[1024];
	const char *cfg;
	struct run r;

	snprintf(scripts, sizeof(scripts), "%s:%s",
		 harness_write("cpu0.txt", "repeat 500\n"
					   "  mmio write 0x1000 8 seq\n"
					   "  mmio read  0x1000 8 seq\n"
					   "  pio  write 0x60 1 0x11\n"
					   "end\n"
					   "pio read 0x64 4 500\n"
					   "pci write 00:03.0 0x40 4 0x12345678\n"
					   "pci read  00:03.0 0x40 4 0x12345678\n"),
		 harness_write("cpu1.txt", "repeat 500\n"
					   "  mmio write 0x1800 4 seq\n"
					   "  mmio read  0x1800 4 seq\n"
					   "end\n"
					   "mmio read 0xd0000000 4 0xffffffff\n"));
	cfg = harness_write("acrn.yaml",
			    "vms:\n"
			    "  - name: alpha\n"
			    "    backend: acrn\n"
			    "    vcpus: 2\n"
			    "    memory: 64M\n"
			    "    devices:\n"
			    "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x1000+0x1000\"], pci: [\"00:03.0\"] }\n"
			    "      - { name: counter, program: ioreq-dev-null, pio: [\"0x60+8\"], args: [--counter-at, 4] }\n");
	start_with_fake(&r, cfg, scripts);
	wait_scripts_ended(&r, 1, 120);
	assert_non_null(strstr(slurp(result_path), "hsm1 vm alpha: scripts ended: 2506 accesses, 0 mismatches, "
						   "completion by notification"));
	stop_broker(&r, 5);

	/* 0xCF8 stays in the HSM: 2 of the 2506 accesses never reach the broker. */
	assert_int_equal(harness_stat(&r, "vm alpha:", " requests"), 2504);
	assert_int_equal(harness_stat(&r, "vm alpha:", " unclaimed"), 1);
	assert_int_equal(harness_stat(&r, "vm alpha device counter:", " pio"), 501);
	assert_int_equal(harness_stat(&r, "vm alpha device ram:", " pci"), 2);
	load_lines(1);
	assert_sequence(expect);
	assert_requests(2504);
}

/* Two VMs, two open files; the one asking for completion polling gets the
 * flag in CREATE_VM, and its vCPU polls (NOTIFY wakes nobody there). */
static void test_two_vms_one_polling(void **state)
{
	const char *cfg;
	struct run r;

	cfg = harness_write("two.yaml",
			    "vms:\n"
			    "  - name: plain\n"
			    "    backend: acrn\n"
			    "    vcpus: 1\n"
			    "    devices:\n"
			    "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x1000+0x1000\"] }\n"
			    "  - name: polled\n"
			    "    backend: acrn\n"
			    "    vcpus: 1\n"
			    "    memory: 16M\n"
			    "    completion_polling: true\n"
			    "    devices:\n"
			    "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x1000+0x1000\"] }\n");
	start_with_fake(&r, cfg,
			harness_write("rw.txt", "repeat 300\n  mmio write 0x1010 8 seq\n  mmio read 0x1010 8 seq\nend\n"));
	wait_scripts_ended(&r, 2, 120);
	assert_non_null(strstr(slurp(result_path), "vm plain: scripts ended: 600 accesses, 0 mismatches, completion by "
						   "notification"));
	assert_non_null(strstr(slurp(result_path), "vm polled: scripts ended: 600 accesses, 0 mismatches, completion by "
						   "polling"));
	stop_broker(&r, 5);

	load_lines(1);
	find("CREATE_VM name=plain vcpu_num=1 vm_flag=0x0 cpu_affinity=0x0 = 0", 0);
	assert_requests(600);
	load_lines(2);
	find("CREATE_VM name=polled vcpu_num=1 vm_flag=0x4 cpu_affinity=0x0 = 0", 0);
	find("SET_MEMSEG type=0 gpa=0x0 len=0x1000000 attr=0x7 = 0", 0);
	assert_requests(600);
}

/* ioreqctl vm reset on the acrn backend: acrn-dm's sequence (pause, clear,
 * reset devices, reset, start), with the broker's default client taken
 * down before the drain and back before the restart; the scripts run again. */
static void test_reset_in_acrn_dm_order(void **state)
{
	const char *const expect[] = {
		"OPEN O_RDWR|O_CLOEXEC",
		"CREATE_VM name=beta vcpu_num=1 vm_flag=0x0 cpu_affinity=0x0 = 0",
		"SET_MEMSEG type=0 gpa=0x0 len=0x4000000 attr=0x7 = 0",
		"CREATE_IOREQ_CLIENT = 0",
		"START_VM = 0",
		"PAUSE_VM = 0",
		"DESTROY_IOREQ_CLIENT = 0",
		"CLEAR_VM_IOREQ = 0",
		"RESET_VM = 0",
		"CREATE_IOREQ_CLIENT = 0",
		"START_VM = 0",
		"PAUSE_VM = 0",
		"DESTROY_IOREQ_CLIENT = 0",
		"DESTROY_VM = 0",
		"CLOSE",
		NULL,
	};
	char sock[512], out[4096];
	const char *cfg, *ctl[] = { IOREQ_BINDIR "/ioreqctl", "--socket", sock, "vm", "reset", "beta", NULL };
	struct run r;

	snprintf(sock, sizeof(sock), "%s/run/control", harness_tmpdir());
	cfg = harness_write("reset.yaml",
			    "broker: { runtime_dir: %s/run }\n"
			    "vms:\n"
			    "  - name: beta\n"
			    "    backend: acrn\n"
			    "    vcpus: 1\n"
			    "    devices:\n"
			    "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x1000+0x1000\"] }\n",
			    harness_tmpdir());
	start_with_fake(&r, cfg,
			harness_write("rw.txt", "mmio read 0x1000 4 0\nmmio write 0x1000 4 0x55\nmmio read 0x1000 4 0x55\n"));
	wait_scripts_ended(&r, 1, 60);
	assert_int_equal(harness_exec(ctl, out, sizeof(out)), 0);
	/* Again from the top, against a device that was reset too (reads 0 first). */
	for (int i = 0; i < 500 && !strstr(slurp(log_path), "hsm1 START_VM = 0\n" "hsm1 ATTACH"); i++)
		usleep(10 * 1000);
	usleep(300 * 1000);
	stop_broker(&r, 5);
	assert_non_null(strstr(harness_log(&r), "vm beta: reset"));
	assert_int_equal(harness_stat(&r, "vm beta device ram:", " mmio"), 6);
	assert_null(strstr(slurp(result_path), "returned"));
	load_lines(1);
	assert_sequence(expect);
}

/* An idle VM: the VM thread sits in ATTACH; shutdown must not wait for it. */
static void test_idle_vm_stops_at_once(void **state)
{
	const char *cfg;
	struct run r;

	cfg = harness_write("idle.yaml", "vms:\n"
					 "  - name: idle\n"
					 "    backend: acrn\n"
					 "    vcpus: 4\n"
					 "    devices:\n"
					 "      - { name: quiet, program: ioreq-dev-null, pio: [\"0x60+8\"] }\n");
	start_with_fake(&r, cfg, "");
	wait_scripts_ended(&r, 1, 30);
	assert_non_null(harness_wait_log(&r, "vm idle: started", 10));
	/* Let the VM thread block. */
	usleep(100 * 1000);
	stop_broker(&r, 2);
	load_lines(1);
	/* One ATTACH, blocked until the client was destroyed (after the pause). */
	assert_int_equal(count("ATTACH_IOREQ_CLIENT"), 1);
	assert_true(find("ATTACH_IOREQ_CLIENT = -ENODEV", 0) > find("PAUSE_VM = 0", 0));
	find("DESTROY_IOREQ_CLIENT = 0", 0);
}

/* Without an ACRN Service VM (and without the fake): one clear line. */
static void test_missing_device(void **state)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };
	struct run r;

	if (access("/dev/acrn_hsm", F_OK) == 0)
		harness_skip("/dev/acrn_hsm exists: this test needs a machine without an ACRN Service VM");
	args[1] = harness_write("nodev.yaml", "vms:\n"
					      "  - name: alpha\n"
					      "    backend: acrn\n"
					      "    vcpus: 1\n");
	assert_int_not_equal(harness_run(&r, args, 30), 0);
	assert_non_null(strstr(harness_log(&r), "vm alpha: /dev/acrn_hsm: No such file or directory: the acrn backend "
						 "needs an ACRN Service VM\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_serves_requests_in_acrn_dm_order),
		harness_test(test_two_vms_one_polling),
		harness_test(test_reset_in_acrn_dm_order),
		harness_test(test_idle_vm_stops_at_once),
		harness_test(test_missing_device),
	};

	return harness_run_group("broker on the acrn backend", tests);
}
