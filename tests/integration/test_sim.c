/* The whole path on the sim backend, with the real programs: ioreq-brokerd,
 * real device processes, real nng sockets, scripted vCPUs. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define BIN IOREQ_BINDIR

static void run_ok(struct run *r, const char *config, double timeout_s)
{
	const char *args[] = { "--config", config, "--exit-with-vms", NULL };

	if (harness_run(r, args, timeout_s) != 0) {
		print_error("broker exited %d\n", r->status);
		fail();
	}
}

/* Two VMs use the same addresses, each served by its own device processes:
 * every value read back is the one its own VM wrote, and each VM's null
 * device counted exactly its own VM's writes. */
static void test_vms_are_isolated(void **state)
{
	struct run r;
	const char *cfg;

	harness_write("a.txt", "repeat 2000\n"
			       "  mmio write 0x1000 8 0xaaaaaaaaaaaaaaaa\n"
			       "  mmio read  0x1000 8 0xaaaaaaaaaaaaaaaa\n"
			       "  pio  write 0x60 1 0x11\n"
			       "end\n"
			       "pio read 0x64 4 2000\n");
	harness_write("b.txt", "repeat 3000\n"
			       "  mmio write 0x1000 8 0xbbbbbbbbbbbbbbbb\n"
			       "  mmio read  0x1000 8 0xbbbbbbbbbbbbbbbb\n"
			       "  pio  write 0x60 1 0x22\n"
			       "end\n"
			       "pio read 0x64 4 3000\n");
	cfg = harness_write("two-vms.yaml",
			    "vms:\n"
			    "  - name: a\n"
			    "    backend: sim\n"
			    "    vcpus: 1\n"
			    "    scripts: [a.txt]\n"
			    "    devices:\n"
			    "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x1000+0x1000\"] }\n"
			    "      - { name: counter, program: ioreq-dev-null, pio: [\"0x60+8\"], args: [--counter-at, 4] }\n"
			    "  - name: b\n"
			    "    backend: sim\n"
			    "    vcpus: 1\n"
			    "    scripts: [b.txt]\n"
			    "    devices:\n"
			    "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x1000+0x1000\"] }\n"
			    "      - { name: counter, program: ioreq-dev-null, pio: [\"0x60+8\"], args: [--counter-at, 4] }\n");
	run_ok(&r, cfg, 120);
	assert_int_equal(harness_stat(&r, "vm a device ram:", " mmio"), 4000);
	assert_int_equal(harness_stat(&r, "vm b device ram:", " mmio"), 6000);
	/* Every request in the device's ring (the default), or every one on
	 * its socket (IOREQ_TRANSPORT=nng). */
	assert_int_equal(harness_stat(&r, "vm b device ram:", " in its ring"), harness_ring() ? 6000 : 0);
	assert_int_equal(harness_stat(&r, "vm b device ram:", " on its socket"), harness_ring() ? 0 : 6000);
	assert_int_equal(harness_stat(&r, "vm a device counter:", " pio"), 2001);
	assert_int_equal(harness_stat(&r, "vm b device counter:", " pio"), 3001);
	assert_int_equal(harness_stat(&r, "vm a:", " completed with the fallback"), 0);
	assert_int_equal(harness_stat(&r, "vm b:", " completed with the fallback"), 0);
}

/* 4 vCPUs x 10,000 accesses: every write lands exactly once (each vCPU's
 * own null device counts them) and every read returns what was written. */
static void test_four_vcpus_nothing_lost(void **state)
{
	char scripts[4][16];
	struct run r;
	const char *cfg;

	for (int v = 0; v < 4; v++) {
		snprintf(scripts[v], sizeof(scripts[v]), "cpu%d.txt", v);
		harness_write(scripts[v],
			      "repeat 3333\n"
			      "  mmio write 0x%x 8 seq\n"
			      "  mmio read  0x%x 8 seq\n"
			      "  pio  write 0x%x 2 0x%x\n"
			      "end\n"
			      "pio read 0x%x 4 3333\n",
			      0x10000 + v * 8, 0x10000 + v * 8, 0x100 + v * 0x10, v, 0x100 + v * 0x10 + 4);
	}
	cfg = harness_write("four.yaml",
			    "broker: { deadline_ms: 5000 }\n"
			    "vms:\n"
			    "  - name: vm\n"
			    "    backend: sim\n"
			    "    vcpus: 4\n"
			    "    scripts: [cpu0.txt, cpu1.txt, cpu2.txt, cpu3.txt]\n"
			    "    devices:\n"
			    "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x10000+0x1000\"] }\n"
			    "      - { name: n0, program: ioreq-dev-null, pio: [\"0x100+8\"], args: [--counter-at, 4] }\n"
			    "      - { name: n1, program: ioreq-dev-null, pio: [\"0x110+8\"], args: [--counter-at, 4] }\n"
			    "      - { name: n2, program: ioreq-dev-null, pio: [\"0x120+8\"], args: [--counter-at, 4] }\n"
			    "      - { name: n3, program: ioreq-dev-null, pio: [\"0x130+8\"], args: [--counter-at, 4] }\n");
	run_ok(&r, cfg, 300);
	assert_int_equal(harness_stat(&r, "vm vm:", " requests"), 4 * 10000);
	assert_int_equal(harness_stat(&r, "vm vm device ram:", " mmio"), 4 * 6666);
	for (int v = 0; v < 4; v++) {
		char line[64];

		snprintf(line, sizeof(line), "vm vm device n%d:", v);
		assert_int_equal(harness_stat(&r, line, " pio"), 3334);
	}
	assert_int_equal(harness_stat(&r, "vm vm:", " completed with the fallback"), 0);
}

/* Nobody serves these: reads are all ones of their width, writes vanish,
 * and config space behind a clear enable bit or an empty slot is all ones. */
static void test_unclaimed_reads_all_ones(void **state)
{
	struct run r;
	const char *cfg;

	harness_write("u.txt", "pio  read 0x500 1 0xff\n"
			       "pio  read 0x500 2 0xffff\n"
			       "pio  read 0x500 4 0xffffffff\n"
			       "pio  write 0x500 4 0\n"
			       "pio  read 0x500 4 0xffffffff\n"
			       "mmio read 0xd0000000 8 0xffffffffffffffff\n"
			       "mmio read 0xd0000000 1 0xff\n"
			       "# an access straddling the end of a device's range is not its\n"
			       "mmio read 0x1ffe 4 0xffffffff\n"
			       "mmio read 0x1ffc 4 0\n"
			       "# enable bit clear: the HSM answers 0xCFC itself\n"
			       "pio  write 0xcf8 4 0x00000000\n"
			       "pio  read  0xcfc 4 0xffffffff\n"
			       "# enable bit set, empty slot\n"
			       "pci  read 00:1f.7 0 4 0xffffffff\n"
			       "pci  read 00:03.0 2 2 0xffff\n");
	cfg = harness_write("u.yaml", "vms:\n"
				      "  - name: u\n"
				      "    backend: sim\n"
				      "    vcpus: 1\n"
				      "    scripts: [u.txt]\n"
				      "    devices:\n"
				      "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x1000..0x1fff\"] }\n");
	run_ok(&r, cfg, 60);
	/* 0xCF8/0xCFC with the bit clear never reach the broker. */
	assert_int_equal(harness_stat(&r, "vm u:", " unclaimed"), 10);
	assert_int_equal(harness_stat(&r, "vm u device ram:", " mmio"), 1);
}

/* A device killed while it holds a request: the vCPU gets the fallback at
 * once (long before the 20 s deadline) and the other device keeps serving. */
static void test_device_killed_mid_run(void **state)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };
	struct run r;
	pid_t slow;

	harness_write("k0.txt", "repeat 40\n"
				"  pio read 0x80 4 any\n"
				"end\n");
	harness_write("k1.txt", "repeat 4000\n"
				"  mmio write 0x2000 4 seq\n"
				"  mmio read  0x2000 4 seq\n"
				"end\n");
	args[1] = harness_write("k.yaml", "vms:\n"
					  "  - name: k\n"
					  "    backend: sim\n"
					  "    vcpus: 2\n"
					  "    scripts: [k0.txt, k1.txt]\n"
					  "    devices:\n"
					  "      - name: slow\n"
					  "        program: ioreq-dev-null\n"
					  "        args: [--delay-us, 100000]\n"
					  "        pio: [\"0x80+4\"]\n"
					  "        deadline_ms: 20000\n"
					  "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x2000+16\"] }\n");
	harness_start(&r, args);
	slow = harness_device_pid(&r, "k", "slow", 10);
	assert_true(slow > 0);
	usleep(250 * 1000);
	assert_int_equal(kill(slow, SIGKILL), 0);
	harness_wait(&r, 60);
	assert_int_equal(r.status, 0);
	assert_true(r.seconds < 15);
	assert_non_null(strstr(harness_log(&r), "killed by signal 9"));
	/* At least the request it held, and every later one, got the fallback... */
	assert_true(harness_stat(&r, "vm k device slow:", " fallbacks") >= 1);
	assert_int_equal(harness_stat(&r, "vm k device slow:", " expired)"), 0);
	/* ...while every access to the other device was served. */
	assert_int_equal(harness_stat(&r, "vm k device ram:", " mmio"), 8000);
	assert_int_equal(harness_stat(&r, "vm k device ram:", " fallbacks"), 0);
}

/* A device slower than its deadline: the vCPU gets all ones when the
 * deadline passes, and the late replies are dropped. */
static void test_deadline_completes_with_fallback(void **state)
{
	struct run r;
	const char *cfg;

	harness_write("d.txt", "repeat 3\n"
			       "  pio read 0x90 2 0xffff\n"
			       "end\n");
	cfg = harness_write("d.yaml", "vms:\n"
				      "  - name: d\n"
				      "    backend: sim\n"
				      "    vcpus: 1\n"
				      "    scripts: [d.txt]\n"
				      "    devices:\n"
				      "      - name: late\n"
				      "        program: ioreq-dev-null\n"
				      "        args: [--delay-us, 400000, --pattern, 0x1234]\n"
				      "        pio: [\"0x90+2\"]\n"
				      "        deadline_ms: 50\n");
	run_ok(&r, cfg, 60);
	assert_int_equal(harness_stat(&r, "vm d device late:", " expired)"), 3);
}

/* A read that does not return what the script expects fails the run, and
 * the report names the script line, the access and both values. */
static void test_mismatch_reported(void **state)
{
	struct run r;
	const char *cfg, *args[] = { "--config", NULL, "--exit-with-vms", NULL };

	harness_write("m.txt", "mmio write 0x3000 4 0x1234\n"
			       "mmio read 0x3000 4 0x1234\n"
			       "mmio read 0x3000 4 0x4321\n");
	cfg = harness_write("m.yaml", "vms:\n"
				      "  - name: m\n"
				      "    backend: sim\n"
				      "    vcpus: 1\n"
				      "    scripts: [m.txt]\n"
				      "    devices:\n"
				      "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x3000+4\"] }\n");
	args[1] = cfg;
	assert_int_equal(harness_run(&r, args, 60), 1);
	assert_non_null(strstr(harness_log(&r),
			       "m.txt:3: mmio read 0x3000 size 4 returned 0x1234, expected 0x4321"));
	assert_null(strstr(harness_log(&r), "m.txt:2:"));
}

static void test_check(void **state)
{
	struct run r;
	const char *good, *bad, *args[] = { "--check", NULL, NULL };

	harness_write("c.txt", "pio read 0x10 1 any\n");
	good = harness_write("good.yaml", "vms: [{ name: c, backend: sim, vcpus: 1, scripts: [c.txt] }]\n");
	args[1] = good;
	assert_int_equal(harness_run(&r, args, 30), 0);
	assert_non_null(strstr(harness_log(&r), "good.yaml: ok"));

	bad = harness_write("bad.yaml", "vms:\n"
					"  - name: c\n"
					"    backend: sim\n"
					"    vcpus: 1\n"
					"    colour: blue\n");
	args[1] = bad;
	assert_int_equal(harness_run(&r, args, 30), 2);
	assert_non_null(strstr(harness_log(&r), "bad.yaml:5:5: "));

	/* A broken script is a broken configuration too. */
	harness_write("c.txt", "pio read 0x10 3 any\n");
	args[1] = good;
	assert_int_equal(harness_run(&r, args, 30), 2);
	assert_non_null(strstr(harness_log(&r), "c.txt:1: bad size '3'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_vms_are_isolated),
		harness_test(test_four_vcpus_nothing_lost),
		harness_test(test_unclaimed_reads_all_ones),
		harness_test(test_device_killed_mid_run),
		harness_test(test_deadline_completes_with_fallback),
		harness_test(test_mismatch_reported),
		harness_test(test_check),
	};

	return harness_run_group("integration-sim", tests);
}
