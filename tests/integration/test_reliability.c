/* A device process is untrusted: whatever it does, every request completes
 * exactly once, with the value its policy says, and nothing else is
 * disturbed. The misbehaving device is tests/devices/misbehave.c. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "steady.h"

/* Crash while holding a request: the vCPU gets all ones at once, the
 * device restarts with backoff and serves again. */
static void test_crash_fallback(void **state)
{
	char dev[1024];
	struct run r;

	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, sandbox: none, pio: [\"0x80+4\"],\n"
		 "          args: [--mode, crash-request, --nth, \"5\", --once, %s] }\n",
		 MISBEHAVE, steady_once());
	assert_int_equal(steady_run_vm(&r,
				"repeat 4\n  pio read 0x80 4 0x11\nend\n"
				"pio read 0x80 4 0xffffffff\n"
				"sleep 2500\n"
				"repeat 10\n  pio read 0x80 4 0x11\nend\n",
				dev),
			 0);
	assert_non_null(strstr(harness_log(&r), "killed by signal 6"));
	assert_non_null(strstr(harness_log(&r), "vm v device bad: restarting (restart 1)"));
	assert_int_equal(harness_stat(&r, "vm v device bad:", " fallbacks"), 1);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " pio"), 15);
	steady_assert(&r);
}

/* The same crash with on_failure: hold: the request waits for the
 * restarted device and gets its real answer. */
static void test_crash_hold(void **state)
{
	char dev[1024];
	struct run r;

	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, sandbox: none, pio: [\"0x80+4\"], on_failure: hold,\n"
		 "          deadline_ms: 5000, args: [--mode, crash-request, --nth, \"5\", --once, %s] }\n",
		 MISBEHAVE, steady_once());
	assert_int_equal(steady_run_vm(&r, "repeat 15\n  pio read 0x80 4 0x11\nend\n", dev), 0);
	assert_non_null(strstr(harness_log(&r), "its requests wait for its restart"));
	assert_int_equal(harness_stat(&r, "vm v device bad:", " fallbacks"), 0);
	steady_assert(&r);
}

/* on_failure: stop-vm stops that VM (status 1); the other VM is untouched. */
static void test_stop_vm(void **state)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };
	struct run r;

	harness_write("a.txt", "repeat 100\n  pio read 0x80 4 any\nend\n");
	harness_write("b.txt", STEADY_SCRIPT);
	args[1] = harness_write("s.yaml",
				"vms:\n"
				"  - name: a\n"
				"    backend: sim\n"
				"    vcpus: 1\n"
				"    scripts: [a.txt]\n"
				"    devices:\n"
				"      - { name: bad, program: %s, pio: [\"0x80+4\"], on_failure: stop-vm,\n"
				"          args: [--mode, crash-request, --nth, \"3\"] }\n"
				"  - name: b\n"
				"    backend: sim\n"
				"    vcpus: 1\n"
				"    scripts: [b.txt]\n"
				"    devices:\n" STEADY_DEVICE,
				MISBEHAVE);
	assert_int_equal(harness_run(&r, args, 120), 1);
	assert_non_null(strstr(harness_log(&r), "vm a: stopping: a device failed (on_failure: stop-vm)"));
	assert_non_null(strstr(harness_log(&r), "vm b: stopped with status 0"));
	assert_int_equal(harness_stat(&r, "vm b device ram:", " mmio"), 6000);
}

/* A device that never comes up is restarted restart_limit times, then
 * given up: its requests get the fallback. */
static void test_restart_limit(void **state)
{
	char dev[1024];
	struct run r;

	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, pio: [\"0x80+4\"], restart_limit: 2,\n"
		 "          args: [--mode, crash-hello] }\n",
		 MISBEHAVE);
	assert_int_equal(steady_run_vm(&r, "sleep 2500\nrepeat 3\n  pio read 0x80 4 0xffffffff\nend\n", dev), 0);
	assert_non_null(strstr(harness_log(&r), "vm v device bad: failed 3 times within 60000 ms: given up"));
	assert_non_null(strstr(harness_log(&r), "(restart 2)"));
	assert_null(strstr(harness_log(&r), "(restart 3)"));
	assert_int_equal(harness_stat(&r, "vm v device bad:", " fallbacks"), 3);
	steady_assert(&r);
}

/* A device that hangs: each request completes with the fallback at its
 * deadline. */
static void test_hang(void **state)
{
	char dev[1024];
	struct run r;

	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, pio: [\"0x80+4\"], deadline_ms: 50, args: [--mode, hang] }\n",
		 MISBEHAVE);
	assert_int_equal(steady_run_vm(&r, "repeat 3\n  pio read 0x80 2 0xffff\nend\n", dev), 0);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " expired)"), 3);
	steady_assert(&r);
}

/* Replies twice: the first completes the request, the second is dropped
 * and counted as a violation; up to max_violations a minute are tolerated
 * (test_limits.c shows what happens past them). */
static void test_reply_twice(void **state)
{
	char dev[1024];
	struct run r;

	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, pio: [\"0x80+4\"], max_violations: 1000,\n"
		 "          args: [--mode, reply-twice] }\n",
		 MISBEHAVE);
	assert_int_equal(steady_run_vm(&r, "repeat 200\n  pio read 0x80 1 0x11\nend\n", dev), 0);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " bad replies"), 200);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " fallbacks"), 0);
	steady_assert(&r);
}

/* Lies and garbage: cut off, the request gets the fallback, and the
 * restarted device (which behaves: --once) serves the rest. */
static void test_lies_cut_off(void **state)
{
	static const struct {
		const char *mode, *port, *why, *or_why;
	} cases[] = {
		{ "reply-unknown", "0x80", "replied to a request it was never sent: cut off", NULL },
		{ "wide-value", "0x90", "replied with a value wider than the access: cut off", NULL },
		{ "garbage", "0xa0", "sent a malformed message: cut off", NULL },
		/* nng drops the pipe; the device's dialer may be back before the
		 * broker has seen the old one go. */
		{ "oversized", "0xb0", "disconnected", "connected twice: cut off" },
	};
	char devs[2048] = "", script[1024] = "", name[16];
	size_t n = 0, m = 0;
	struct run r;

	for (size_t i = 0; i < 4; i++) {
		n += snprintf(devs + n, sizeof(devs) - n,
			      "      - { name: d%zu, program: %s, sandbox: none, pio: [\"%s+4\"],\n"
			      "          args: [--mode, %s, --once, %s.%zu] }\n",
			      i, MISBEHAVE, cases[i].port, cases[i].mode, steady_once(), i);
		m += snprintf(script + m, sizeof(script) - m,
			      "pio read %s 1 0xff\nsleep 2500\npio read %s 1 0x11\n", cases[i].port, cases[i].port);
	}
	assert_int_equal(steady_run_vm(&r, script, devs), 0);
	for (size_t i = 0; i < 4; i++) {
		char line[160];

		snprintf(name, sizeof(name), "d%zu", i);
		snprintf(line, sizeof(line), "vm v device %s: %s", name, cases[i].why);
		if (!strstr(harness_log(&r), line) && cases[i].or_why)
			snprintf(line, sizeof(line), "vm v device %s: %s", name, cases[i].or_why);
		if (!strstr(harness_log(&r), line))
			print_error("missing: %s\n", line);
		assert_non_null(strstr(harness_log(&r), line));
		snprintf(line, sizeof(line), "vm v device %s:", name);
		assert_int_equal(harness_stat(&r, line, " fallbacks"), 1);
	}
	steady_assert(&r);
}

/* An interrupt flood is throttled, then cut off; the rest keeps serving. */
static void test_irq_flood(void **state)
{
	char dev[1024];
	struct run r;

	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, pio: [\"0x80+4\"], irqs: [5], max_msg_rate: 1000,\n"
		 "          restart_limit: 0, args: [--mode, irq-flood] }\n",
		 MISBEHAVE);
	assert_int_equal(steady_run_vm(&r, "pio read 0x80 4 any\nsleep 2500\npio read 0x80 4 0xffffffff\n", dev), 0);
	assert_non_null(strstr(harness_log(&r), "more than 1000 messages a second; dropping them"));
	assert_non_null(strstr(harness_log(&r), "flooded the broker with messages: cut off"));
	assert_true(harness_stat(&r, "vm v device bad:", " interrupts") <= 1000);
	steady_assert(&r);
}

/* A claim outside the device's windows is refused and reported, to the
 * device (which tells the script) and in the log. */
static void test_claim_outside(void **state)
{
	char dev[1024];
	struct run r;

	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, pio: [\"0x80+8\"], windows: {mmio: [\"0x20000000+0x1000\"]},\n"
		 "          args: [--mode, claim-outside] }\n",
		 MISBEHAVE);
	/* 100 - EPERM */
	assert_int_equal(steady_run_vm(&r, "sleep 1000\npio read 0x84 4 99\nmmio read 0x10000000 4 0xffffffff\n", dev), 0);
	assert_non_null(strstr(harness_log(&r), "vm v device bad: refused a claim of mmio 0x10000000..0x10000fff: "
						"outside its windows"));
	steady_assert(&r);
}

/* A local device that asks for guest memory through messages (only a
 * remote device may: a local one maps it) and signals eventfds as messages
 * (only a remote one's are): each access answered with -EPERM, each lie
 * named; it serves on, its neighbour untouched. */
static void test_memory_messages_local(void **state)
{
	char dev[1024];
	struct run r;

	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, pio: [\"0x80+8\"], args: [--mode, mem-lie, --nth, \"1\"] }\n",
		 MISBEHAVE);
	/* Bits 0: not one access came back as a remote device's would. */
	assert_int_equal(steady_run_vm(&r, "sleep 300\npio read 0x80 4 0\npio read 0x80 4 0\n", dev), 0);
	assert_non_null(strstr(harness_log(&r), "vm v device bad: asked for guest memory through messages (a local "
						"device maps it) (16 bytes at 0x1000000)"));
	assert_non_null(strstr(harness_log(&r), "vm v device bad: signalled an irqfd it was not given as a message"));
	assert_null(strstr(harness_log(&r), "cut off"));
	steady_assert(&r);
}

/* The ranges a device claimed die with its instance: once it crashed, its
 * BAR routes to nobody, not to the next instance, which never claimed it. */
static void test_claims_die_with_instance(void **state)
{
	char dev[1024];
	struct run r;

	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, sandbox: none, pio: [\"0x80+4\"],\n"
		 "          windows: {mmio: [\"0x10000000+0x1000\"]},\n"
		 "          args: [--mode, claim-crash, --nth, \"3\", --once, %s] }\n",
		 MISBEHAVE, steady_once());
	assert_int_equal(steady_run_vm(&r,
				"sleep 500\n"
				"mmio read 0x10000000 4 0x11\n"
				"pio read 0x80 4 0x11\n"
				"pio read 0x80 4 0xffffffff\n"
				"pio read 0x80 4 0x11 until 30000\n"
				"mmio read 0x10000000 4 0xffffffff\n",
				dev),
			 0);
	assert_non_null(strstr(harness_log(&r), "vm v device bad: claimed mmio 0x10000000..0x10000fff"));
	assert_non_null(strstr(harness_log(&r), "vm v device bad: restarting (restart 1)"));
	assert_int_equal(harness_stat(&r, "vm v:", " unclaimed"), 1);
	steady_assert(&r);
}

/* A device that hangs up and lets another process reconnect as itself: the
 * broker kills the original and starts a fresh one; the stranger is refused
 * if it connects in time, and otherwise dies with the instance that started
 * it (its cgroup is emptied when the instance is collected). Either way it
 * is never taken for the device. */
static void test_reconnect_as_someone_else(void **state)
{
	char dev[1024];
	struct run r;

	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, sandbox: none, pio: [\"0x80+4\"],\n"
		 "          args: [--mode, reconnect, --nth, \"3\", --once, %s] }\n",
		 MISBEHAVE, steady_once());
	assert_int_equal(steady_run_vm(&r,
				"repeat 2\n  pio read 0x80 1 0x11\nend\n"
				"pio read 0x80 1 0xff\n"
				"pio read 0x80 1 0x11 until 30000\n",
				dev),
			 0);
	assert_non_null(strstr(harness_log(&r), "vm v device bad: disconnected"));
	assert_non_null(strstr(harness_log(&r), "vm v device bad: restarting (restart 1)"));
	assert_null(strstr(harness_log(&r), "accepted in another process's place"));
	steady_assert(&r);
}

/* SIGTERM with every vCPU waiting on a slow device: the broker lets the
 * device answer what it holds, then exits 0; nothing hangs. */
static void test_sigterm_under_load(void **state)
{
	const char *args[] = { "--config", NULL, NULL };
	struct run r;

	for (int v = 0; v < 4; v++) {
		char name[16];

		snprintf(name, sizeof(name), "l%d.txt", v);
		harness_write(name, "repeat 1000\n  pio read 0x80 4 0x5a\nend\n");
	}
	args[1] = harness_write("l.yaml",
				"vms:\n"
				"  - name: load\n"
				"    backend: sim\n"
				"    vcpus: 4\n"
				"    scripts: [l0.txt, l1.txt, l2.txt, l3.txt]\n"
				"    devices:\n"
				"      - { name: slow, program: ioreq-dev-null, pio: [\"0x80+4\"], deadline_ms: 2000,\n"
				"          args: [--pattern, \"0x5a\", --delay-us, \"200000\"] }\n");
	harness_start(&r, args);
	assert_non_null(harness_wait_log(&r, "vm load: started", 30));
	usleep(500 * 1000);
	kill(r.pid, SIGTERM);
	harness_wait(&r, 30);
	assert_int_equal(r.status, 0);
	assert_true(r.seconds < 10);
	/* What the device held was answered, not abandoned. */
	assert_int_equal(harness_stat(&r, "vm load device slow:", " fallbacks"), 0);
	assert_int_equal(harness_stat(&r, "vm load device slow:", " expired)"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_crash_fallback),
		harness_test(test_crash_hold),
		harness_test(test_stop_vm),
		harness_test(test_restart_limit),
		harness_test(test_hang),
		harness_test(test_reply_twice),
		harness_test(test_lies_cut_off),
		harness_test(test_irq_flood),
		harness_test(test_claim_outside),
		harness_test(test_memory_messages_local),
		harness_test(test_claims_die_with_instance),
		harness_test(test_reconnect_as_someone_else),
		harness_test(test_sigterm_under_load),
	};

	return harness_run_group("integration-reliability", tests);
}
