/* What a hostile device cannot take from the host or the other devices,
 * checked through the real broker (issue 13): an identity of its own,
 * no terminal and a bounded share of the log, its memory and task
 * budget, the broker's runtime directory, and the broker's patience
 * with floods of interrupts, claims and lies. The misbehaving device is
 * tests/devices/misbehave.c. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MISBEHAVE IOREQ_TESTDIR "/ioreq-test-misbehave"

/* One VM "v" whose vCPU runs @script against the devices in @devices.
 * Each misbehaves on its second request: in the sandbox it can keep no
 * file to remember it did, so every instance does it again. */
static int run_vm(struct run *r, const char *broker, const char *script, const char *devices)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };

	harness_write("cpu0.txt", "%s", script);
	args[1] = harness_write("v.yaml",
				"broker: { runtime_dir: %s/run%s }\n"
				"vms:\n"
				"  - name: v\n"
				"    backend: sim\n"
				"    vcpus: 1\n"
				"    scripts: [cpu0.txt]\n"
				"    devices:\n%s",
				harness_tmpdir(), broker, devices);
	return harness_run(r, args, 120);
}

static unsigned count_lines(const char *log, const char *has)
{
	unsigned n = 0;

	for (const char *p = log; (p = strstr(p, has)); p += strlen(has))
		n++;
	return n;
}

static bool root_with_cgroups(void)
{
	if (geteuid() != 0) {
		harness_skip("cgroup limits need a root broker");
		return false;
	}
	return true;
}

/* Each device instance runs as a host uid of its own, from the range. */
static void test_identity_per_device(void **state)
{
	const char *args[] = { "--config", NULL, NULL };
	uid_t uids[4];
	struct run r;

	if (geteuid() != 0) {
		harness_skip("device uids are the root broker's to give");
		return;
	}
	harness_write("idle.txt", "repeat 100000\n  sleep 10\nend\n");
	args[1] = harness_write("ids.yaml",
				"broker: { runtime_dir: %s/run, device_ids: \"600000+16\" }\n"
				"vms:\n"
				"  - name: a\n"
				"    backend: sim\n"
				"    vcpus: 1\n"
				"    scripts: [idle.txt]\n"
				"    devices:\n"
				"      - { name: x, program: ioreq-dev-null, pio: [\"0x80+4\"] }\n"
				"      - { name: y, program: ioreq-dev-null, pio: [\"0x90+4\"] }\n"
				"  - name: b\n"
				"    backend: sim\n"
				"    vcpus: 1\n"
				"    scripts: [idle.txt]\n"
				"    devices:\n"
				"      - { name: x, program: ioreq-dev-null, pio: [\"0x80+4\"] }\n"
				"      - { name: y, program: ioreq-dev-null, pio: [\"0x90+4\"] }\n",
				harness_tmpdir());
	harness_start(&r, args);
	for (int i = 0; i < 4; i++) {
		char path[64], line[256];
		pid_t pid = harness_device_pid(&r, i < 2 ? "a" : "b", i % 2 ? "y" : "x", 30);
		FILE *f;

		assert_true(pid > 0);
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
		f = fopen(path, "r");
		assert_non_null(f);
		uids[i] = (uid_t)-1;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Uid: %u", &uids[i]) == 1)
				break;
		fclose(f);
		assert_true(uids[i] >= 600000 && uids[i] < 600016);
		for (int j = 0; j < i; j++)
			assert_true(uids[i] != uids[j]);
	}
	kill(r.pid, SIGTERM);
	harness_wait(&r, 30);
	assert_int_equal(r.status, 0);
}

/* What a device writes goes to the broker's log, under its name, and no
 * more than a burst of it: a device cannot drown the log. */
static void test_output_logged_and_bounded(void **state)
{
	char dev[1024];
	struct run r;
	unsigned lines;

	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, pio: [\"0x80+4\"], args: [--mode, chatter, --nth, \"2\"] }\n",
		 MISBEHAVE);
	assert_int_equal(run_vm(&r, "", "repeat 5\n  pio read 0x80 4 0x11\nend\n", dev), 0);
	assert_non_null(strstr(harness_log(&r), "vm v device bad: chatter line 0\n"));
	assert_null(strstr(harness_log(&r), "chatter line 9999"));
	lines = count_lines(harness_log(&r), "vm v device bad: chatter line ");
	assert_true(lines >= 50 && lines <= 200);
	assert_non_null(strstr(harness_log(&r), "messages suppressed"));
}

/* Interrupts on a line it was not granted: each is refused, the log does
 * not grow with them, and past max_violations the device is cut off. */
static void test_denied_interrupts(void **state)
{
	char dev[1024];
	struct run r;

	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, pio: [\"0x80+4\"], irqs: [5],\n"
		 "          args: [--mode, irq-denied, --nth, \"2\"] }\n",
		 MISBEHAVE);
	assert_int_equal(run_vm(&r, "", "repeat 2\n  pio read 0x80 4 any\nend\nsleep 1000\n", dev), 0);
	assert_non_null(strstr(harness_log(&r), "more than 100 protocol violations within a minute: cut off"));
	assert_true(count_lines(harness_log(&r), "IRQ line 200 not granted") <= 101);
	assert_non_null(strstr(harness_log(&r), "vm v device bad: restarting (restart 1)"));
}

/* Claims: at most max_claims at once; the rest refused, releases of what
 * it does not hold refused, and a device that keeps at it is cut off. */
static void test_claims_capped(void **state)
{
	char dev[1024];
	struct run r;

	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, pio: [\"0x80+4\"], max_claims: 16,\n"
		 "          windows: { mmio: [\"0xe0000000+0x100000\"] },\n"
		 "          args: [--mode, claim-flood, --nth, \"2\"] }\n",
		 MISBEHAVE);
	assert_int_equal(run_vm(&r, "", "repeat 2\n  pio read 0x80 4 any\nend\nsleep 1000\n", dev), 0);
	assert_int_equal(count_lines(harness_log(&r), "vm v device bad: claimed mmio "), 16);
	assert_non_null(strstr(harness_log(&r), "it holds as many ranges as max_claims allows"));
	assert_non_null(strstr(harness_log(&r), "more than 100 protocol violations within a minute: cut off"));
}

/* A memfd past memory_max: the kernel kills the device, the broker says
 * why and restarts it. */
static void test_memory_limit(void **state)
{
	char dev[1024];
	struct run r;

	if (!root_with_cgroups())
		return;
	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, pio: [\"0x80+4\"], memory_max: 64M,\n"
		 "          args: [--mode, memfd-bomb, --nth, \"2\"] }\n",
		 MISBEHAVE);
	assert_int_equal(run_vm(&r, "", "repeat 2\n  pio read 0x80 4 any\nend\nsleep 2500\npio read 0x80 4 0x11\n", dev),
			 0);
	assert_non_null(strstr(harness_log(&r), "exceeded its memory.max"));
	assert_non_null(strstr(harness_log(&r), "vm v device bad: restarting (restart 1)"));
}

/* A fork bomb stops at pids_max, and the device is killed for trying. */
static void test_pids_limit(void **state)
{
	char dev[1024];
	struct run r;

	if (!root_with_cgroups())
		return;
	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, pio: [\"0x80+4\"], pids_max: 32,\n"
		 "          args: [--mode, fork-bomb, --nth, \"2\"] }\n",
		 MISBEHAVE);
	assert_int_equal(run_vm(&r, "", "repeat 2\n  pio read 0x80 4 any\nend\nsleep 2500\npio read 0x80 4 0x11\n", dev),
			 0);
	assert_non_null(strstr(harness_log(&r), "exceeded its pids.max"));
	assert_non_null(strstr(harness_log(&r), "vm v device bad: restarting (restart 1)"));
}

/* A second broker on the same runtime directory leaves the first one's
 * sockets alone and says who owns it. */
static void test_second_broker_refused(void **state)
{
	const char *args[] = { "--config", NULL, NULL };
	const char *ctl[] = { IOREQ_BINDIR "/ioreqctl", "--socket", NULL, "status", NULL };
	char expect[600], sock[600], out[4096];
	struct run a, b;

	harness_write("idle.txt", "repeat 100000\n  sleep 10\nend\n");
	args[1] = harness_write("one.yaml",
				"broker: { runtime_dir: %s/run }\n"
				"vms:\n"
				"  - { name: v, backend: sim, vcpus: 1, scripts: [idle.txt], devices: [\n"
				"      { name: n, program: ioreq-dev-null, pio: [\"0x80+4\"] } ] }\n",
				harness_tmpdir());
	harness_start(&a, args);
	assert_non_null(harness_wait_log(&a, "vm v: started", 30));
	assert_int_equal(harness_run(&b, args, 30), 1);
	snprintf(expect, sizeof(expect), "another broker (pid %d) owns %s/run", (int)a.pid, harness_tmpdir());
	assert_non_null(strstr(harness_log(&b), expect));
	snprintf(sock, sizeof(sock), "%s/run/control", harness_tmpdir());
	ctl[2] = sock;
	assert_int_equal(harness_exec(ctl, out, sizeof(out)), 0);
	assert_true(access(harness_tmpdir(), F_OK) == 0);
	snprintf(sock, sizeof(sock), "%s/run/v.n/sock", harness_tmpdir());
	assert_int_equal(access(sock, F_OK), 0);
	kill(a.pid, SIGTERM);
	harness_wait(&a, 30);
	assert_int_equal(a.status, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_identity_per_device),
		harness_test(test_output_logged_and_bounded),
		harness_test(test_denied_interrupts),
		harness_test(test_claims_capped),
		harness_test(test_memory_limit),
		harness_test(test_pids_limit),
		harness_test(test_second_broker_refused),
	};

	return harness_run_group("integration-limits", tests);
}
