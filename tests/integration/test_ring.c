/* A device that lies in its request ring (tests/devices/misbehave.c, the
 * ring-* modes) is cut off and restarted exactly as one that sends a
 * garbage frame: the request it lied about completes once, with the
 * fallback; its restarted instance serves again in a ring of its own; and
 * a well-behaved device of the same VM, on another vCPU, never notices.
 * Softer faults are not lies: a request held past its deadline completes
 * with the fallback while the vCPU's next ones go over the socket, and an
 * answer that comes late is counted, not trusted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define MISBEHAVE IOREQ_TESTDIR "/ioreq-test-misbehave"

/* vCPU 1 on a well-behaved device (in its ring), checked all along. */
#define STEADY_SCRIPT "repeat 3000\n  mmio write 0x2000 8 seq\n  mmio read 0x2000 8 seq\nend\n"
#define STEADY_DEVICE "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x2000+8\"] }\n"

static int run_vm(struct run *r, const char *script, const char *devices)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };

	harness_write("cpu0.txt", "%s", script);
	harness_write("cpu1.txt", STEADY_SCRIPT);
	args[1] = harness_write("v.yaml",
				"broker: { runtime_dir: %s/run }\n"
				"vms:\n"
				"  - name: v\n"
				"    backend: sim\n"
				"    vcpus: 2\n"
				"    scripts: [cpu0.txt, cpu1.txt]\n"
				"    devices:\n" STEADY_DEVICE "%s",
				harness_tmpdir(), devices);
	harness_run(r, args, 120);
	if (r->status)
		fprintf(stderr, "broker exited %d:\n%s\n", r->status, harness_log(r));
	return r->status;
}

static void assert_steady(const struct run *r)
{
	assert_int_equal(harness_stat(r, "vm v device ram:", " mmio"), 6000);
	assert_int_equal(harness_stat(r, "vm v device ram:", " fallbacks"), 0);
}

static const char *once(void)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/once", harness_tmpdir());
	return path;
}

static void need_ring(void)
{
	if (!harness_ring())
		harness_skip("the suite runs over nng only (IOREQ_TRANSPORT=nng): no rings to lie in");
}

/* Request 5 is the lie: it gets all ones, the device is cut off for @why,
 * restarts, and its next instance answers every read (in its ring again). */
static void lie(const char *mode, const char *why, const char *extra)
{
	char dev[1024];
	struct run r;

	need_ring();
	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, sandbox: none, pio: [\"0x80+4\"],%s\n"
		 "          args: [--mode, %s, --nth, \"5\", --once, %s] }\n",
		 MISBEHAVE, extra, mode, once());
	assert_int_equal(run_vm(&r,
				"repeat 4\n  pio read 0x80 4 0x11\nend\n"
				"pio read 0x80 4 0xffffffff\n"
				"pio read 0x80 4 0x11 until 30000\n"
				"repeat 20\n  pio read 0x80 4 0x11\nend\n",
				dev),
			 0);
	if (!strstr(harness_log(&r), why))
		fail_msg("no \"%s\" in:\n%s", why, harness_log(&r));
	assert_non_null(strstr(harness_log(&r), "vm v device bad: restarting (restart 1)"));
	/* The lie's request and those of the restart, each completed once. */
	assert_true(harness_stat(&r, "vm v device bad:", " fallbacks") >= 1);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " bad replies"), 0);
	assert_steady(&r);
}

static void test_wrong_id(void **state)
{
	lie("ring-wrong-id", "answered another request than the one in its ring's slot", "");
}

static void test_bad_state(void **state)
{
	lie("ring-bad-state", "wrote an unknown state into its request ring", "");
}

static void test_bad_status(void **state)
{
	lie("ring-bad-status", "wrote an unknown status into its request ring", "");
}

static void test_freed_slot(void **state)
{
	lie("ring-free", "freed a slot of its request ring that held a request", "");
}

static void test_scribble(void **state)
{
	lie("ring-scribble", "its request ring", "");
}

static void test_bell_flood(void **state)
{
	lie("ring-bell-flood", "flooded the broker with empty reply doorbells", " max_msg_rate: 100,");
}

/* A request the device takes and never answers: the deadline completes
 * it; the vCPU's slot stays taken, so its next requests go over the
 * socket and are answered there. Nothing is cut off. */
static void test_hang_then_socket(void **state)
{
	char dev[1024];
	struct run r;

	need_ring();
	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, sandbox: none, pio: [\"0x80+4\"], deadline_ms: 200,\n"
		 "          args: [--mode, ring-hang, --nth, \"3\"] }\n",
		 MISBEHAVE);
	assert_int_equal(run_vm(&r,
				"repeat 2\n  pio read 0x80 4 0x11\nend\n"
				"pio read 0x80 4 0xffffffff\n"
				"repeat 50\n  pio read 0x80 4 0x11\nend\n",
				dev),
			 0);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " fallbacks"), 1);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " expired)"), 1);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " pio"), 53);
	/* From the held one on, the vCPU's requests go over the socket. */
	assert_int_equal(harness_stat(&r, "vm v device bad:", " in its ring"), 3);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " on its socket"), 50);
	assert_null(strstr(harness_log(&r), "cut off"));
	assert_steady(&r);
}

/* An answer after the deadline: the request completed already, so it is
 * a late reply (a soft violation), and the slot serves on. */
static void test_late(void **state)
{
	char dev[1024];
	struct run r;

	need_ring();
	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, sandbox: none, pio: [\"0x80+4\"], deadline_ms: 100,\n"
		 "          args: [--mode, ring-late, --nth, \"3\", --delay-ms, \"400\"] }\n",
		 MISBEHAVE);
	assert_int_equal(run_vm(&r,
				"repeat 2\n  pio read 0x80 4 0x11\nend\n"
				"pio read 0x80 4 0xffffffff\n"
				"pio read 0x80 4 0x11 until 5000\n"
				"repeat 20\n  pio read 0x80 4 0x11\nend\n",
				dev),
			 0);
	/* While it sleeps, the retries (over the socket: the slot is taken)
	 * expire too; each expired request is answered late, once. */
	assert_true(harness_stat(&r, "vm v device bad:", " expired)") >= 1);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " bad replies"),
			 harness_stat(&r, "vm v device bad:", " expired)"));
	assert_null(strstr(harness_log(&r), "cut off"));
	assert_steady(&r);
}

/* The page is sealed: the device can neither shrink it under the broker's
 * mapping nor grow it; the broker serves on. */
static void test_truncate(void **state)
{
	char dev[1024];
	struct run r;

	need_ring();
	snprintf(dev, sizeof(dev),
		 "      - { name: bad, program: %s, pio: [\"0x80+4\"],\n"
		 "          args: [--mode, ring-truncate, --nth, \"2\"] }\n",
		 MISBEHAVE);
	assert_int_equal(run_vm(&r, "repeat 20\n  pio read 0x80 4 0x11\nend\n", dev), 0);
	assert_null(strstr(harness_log(&r), "changed its size"));
	assert_int_equal(harness_stat(&r, "vm v device bad:", " fallbacks"), 0);
	assert_steady(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_wrong_id),
		harness_test(test_bad_state),
		harness_test(test_bad_status),
		harness_test(test_freed_slot),
		harness_test(test_scribble),
		harness_test(test_bell_flood),
		harness_test(test_hang_then_socket),
		harness_test(test_late),
		harness_test(test_truncate),
	};

	return harness_run_group("integration-ring", tests);
}
