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

#include "steady.h"

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
		 MISBEHAVE, extra, mode, steady_once());
	assert_int_equal(steady_run_vm(&r,
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
	steady_assert(&r);
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
		 "          output: bad.out, args: [--mode, ring-hang, --nth, \"3\"] }\n",
		 MISBEHAVE);
	assert_int_equal(steady_run_vm(&r,
				"repeat 2\n  pio read 0x80 4 0x11\nend\n"
				"pio read 0x80 4 0xffffffff\n"
				"repeat 50\n  pio read 0x80 4 0x11\nend\n",
				dev),
			 0);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " fallbacks"), 1);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " expired)"), 1);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " pio"), 53);
	/* From the held one on, the vCPU's requests go over the socket: as
	 * the broker counts them, and as the device received them. */
	assert_int_equal(harness_stat(&r, "vm v device bad:", " in its ring"), 3);
	assert_int_equal(harness_stat(&r, "vm v device bad:", " on its socket"), 50);
	assert_non_null(strstr(harness_read("bad.out"), "ring 3 socket 50\n"));
	assert_null(strstr(harness_log(&r), "cut off"));
	steady_assert(&r);
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
	assert_int_equal(steady_run_vm(&r,
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
	steady_assert(&r);
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
	assert_int_equal(steady_run_vm(&r, "repeat 20\n  pio read 0x80 4 0x11\nend\n", dev), 0);
	assert_null(strstr(harness_log(&r), "changed its size"));
	assert_int_equal(harness_stat(&r, "vm v device bad:", " fallbacks"), 0);
	steady_assert(&r);
}

/* poll_us with four vCPUs on one device: while the VM thread spins for
 * one vCPU's reply the device answers the others' without ringing; each
 * is collected then, none waits for its deadline. */
static void test_poll_many_vcpus(void **state)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };
	struct run r;

	need_ring();
	for (int v = 0; v < 4; v++) {
		char name[16];

		snprintf(name, sizeof(name), "p%d.txt", v);
		harness_write(name, "repeat 2000\n  pio read 0x80 4 0x5a\nend\n");
	}
	args[1] = harness_write("p.yaml",
				"broker: { runtime_dir: %s/run }\n"
				"vms:\n"
				"  - name: p\n"
				"    backend: sim\n"
				"    vcpus: 4\n"
				"    scripts: [p0.txt, p1.txt, p2.txt, p3.txt]\n"
				"    devices:\n"
				"      - { name: sink, program: ioreq-dev-null, pio: [\"0x80+4\"], poll_us: 50,\n"
				"          deadline_ms: 2000, args: [--pattern, \"0x5a\"] }\n",
				harness_tmpdir());
	assert_int_equal(harness_run(&r, args, 120), 0);
	assert_true(r.seconds < 60);
	assert_int_equal(harness_stat(&r, "vm p device sink:", " pio"), 8000);
	assert_int_equal(harness_stat(&r, "vm p device sink:", " fallbacks"), 0);
	assert_int_equal(harness_stat(&r, "vm p device sink:", " in its ring"), 8000);
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
		harness_test(test_poll_many_vcpus),
	};

	return harness_run_group("integration-ring", tests);
}
