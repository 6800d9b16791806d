/* The kvm backend with real guests: ioreq-brokerd boots the guest images of
 * tests/guests/ on /dev/kvm, every port-I/O and MMIO exit goes through the
 * HSM dispatcher to real device processes, and each guest reports through
 * its exit status (0 = every check passed; otherwise the line of the failed
 * check, printed on the UART). Where /dev/kvm cannot be used, each test that
 * needs it says why and is skipped, and the suite exits 77 (CTest: Skipped). */
#include <errno.h>
#include <fcntl.h>
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

#define GUESTS IOREQ_BINDIR "/guests"

/* One VM "t" running GUESTS/@image with @vcpus vCPUs and the devices in
 * @devices (YAML lines at the device list's indentation). */
static const char *vm_config(const char *image, unsigned vcpus, const char *devices)
{
	return harness_write("vm.yaml",
			     "vms:\n"
			     "  - name: t\n"
			     "    backend: kvm\n"
			     "    vcpus: %u\n"
			     "    memory: 16M\n"
			     "    image: %s/%s.elf\n"
			     "    devices:\n"
			     "%s",
			     vcpus, GUESTS, image, devices);
}

static void run_ok(struct run *r, const char *config, double timeout_s)
{
	const char *args[] = { "--config", config, "--exit-with-vms", NULL };

	if (harness_run(r, args, timeout_s) != 0) {
		print_error("broker exited %d\n", r->status);
		fail();
	}
}

/* Each width of PIO (1, 2, 4) and MMIO (1, 2, 4, 8) against ioreq-dev-ram,
 * string PIO, unclaimed reads, and 0xCFC with 0xCF8's bit 31 clear. */
static void test_access(void **state)
{
	struct run r;

	harness_need_kvm();
	run_ok(&r,
	       vm_config("access", 1,
			 "      - { name: ram, program: ioreq-dev-ram, pio: [\"0x100+16\"], mmio: [\"0xd0000000+0x1000\"] }\n"),
	       60);
	/* 8 for the widths; 8 + 1 + 8 (bytes) and 5 + 1 + 1 + 5 (words) strings. */
	assert_int_equal(harness_stat(&r, "vm t device ram:", " pio"), 37);
	assert_int_equal(harness_stat(&r, "vm t device ram:", " mmio"), 10);
	/* Port 0x200 x 4, MMIO 0xd1000000 x 5, the PCICFG read of 00:02.0 x 2. */
	assert_int_equal(harness_stat(&r, "vm t:", " unclaimed"), 11);
}

/* 2 vCPUs x 10,000 verified accesses: nothing lost, duplicated or
 * reordered within a vCPU (each read returns the vCPU's last write), and
 * the device saw each access exactly once. */
static void test_two_vcpus_nothing_lost(void **state)
{
	struct run r;

	harness_need_kvm();
	run_ok(&r,
	       vm_config("stress", 2,
			 "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0xd0000000+0x1000\"], deadline_ms: 5000 }\n"),
	       120);
	assert_int_equal(harness_stat(&r, "vm t device ram:", " mmio"), 2 * 10000);
	assert_int_equal(harness_stat(&r, "vm t:", " requests"), 2 * 10000);
	assert_int_equal(harness_stat(&r, "vm t:", " completed with the fallback"), 0);
	print_message("2 x 10,000 accesses in %.2f s\n", r.seconds);
}

/* A device asserts, then pulses, its granted line: the guest's handler runs
 * both times (it waits halted: nothing else would wake it). */
static void test_irq(void **state)
{
	char dev[512];
	struct run r;

	harness_need_kvm();
	snprintf(dev, sizeof(dev),
		 "      - { name: irq, program: %s/ioreq-test-irq-dev, pio: [\"0x300+4\"], irqs: [5] }\n",
		 IOREQ_TESTDIR);
	run_ok(&r, vm_config("irq", 1, dev), 60);
	assert_int_equal(harness_stat(&r, "vm t device irq:", " interrupts"), 4);
}

/* The device dies under the guest: its accesses complete with all ones and
 * the guest runs on to its exit port. */
static void test_device_killed(void **state)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };
	struct run r;
	pid_t pid;

	harness_need_kvm();
	args[1] = vm_config("fallback", 1,
			    "      - { name: dev, program: ioreq-dev-null, args: [--pattern, \"0x5a5a5a5a5a5a5a5a\"],\n"
			    "          pio: [\"0x400+8\"], mmio: [\"0xd0000000+0x1000\"] }\n");
	harness_start(&r, args);
	pid = harness_device_pid(&r, "t", "dev", 10);
	assert_true(pid > 0);
	assert_non_null(harness_wait_log(&r, "vm t: started", 10));
	usleep(300 * 1000);
	assert_int_equal(kill(pid, SIGKILL), 0);
	harness_wait(&r, 60);
	if (r.status != 0) {
		print_error("broker exited %d\n", r.status);
		fail();
	}
	assert_true(harness_stat(&r, "vm t device dev:", " fallbacks") > 0);
}

/* A guest that triple-faults: the VM stops with a report naming the vCPU,
 * the exit and the guest's RIP. */
static void test_triple_fault(void **state)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };
	struct run r;

	harness_need_kvm();
	args[1] = vm_config("crash", 1, "      []\n");
	harness_run(&r, args, 60);
	assert_int_equal(r.status, 1);
	if (!strstr(harness_log(&r), "vm t: vcpu 0: triple fault (KVM_EXIT_SHUTDOWN) at rip 0x") ||
	    !strstr(harness_log(&r), "vm t: stopped with status 255")) {
		print_error("no triple-fault report in the broker's log\n");
		fail();
	}
}

/* An image that is not a static ELF64 executable is refused, with its name,
 * before KVM is even opened. */
static void test_bad_image(void **state)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };
	const char *cfg;
	struct run r;

	harness_write("bad.elf", "not an executable\n");
	cfg = harness_write("bad.yaml", "vms:\n"
					"  - { name: t, backend: kvm, vcpus: 1, image: bad.elf }\n");
	args[1] = cfg;
	harness_run(&r, args, 30);
	assert_int_not_equal(r.status, 0);
	if (!strstr(harness_log(&r), "bad.elf: not a static ELF64 x86-64 executable")) {
		print_error("no report of the bad image in the broker's log\n");
		fail();
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_access),
		harness_test(test_two_vcpus_nothing_lost),
		harness_test(test_irq),
		harness_test(test_device_killed),
		harness_test(test_triple_fault),
		harness_test(test_bad_image),
	};

	return harness_run_group("integration_kvm", tests);
}
