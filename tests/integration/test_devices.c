/* The device programs on the sim backend: ioreq-brokerd, ioreq-dev-uart,
 * ioreq-dev-rtc and ioreq-dev-pci as real processes, driven by scripted
 * vCPUs that do what a guest driver would. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static void run_ok(struct run *r, const char *config, double timeout_s)
{
	const char *args[] = { "--config", config, "--exit-with-vms", NULL };

	if (harness_run(r, args, timeout_s) != 0) {
		print_error("broker exited %d\n", r->status);
		fail();
	}
}

/* Is there a line in @log with @needle and, after it, @also? */
static bool line_has(const char *log, const char *needle, const char *also)
{
	const char *line = strstr(log, needle), *hit;

	if (!line)
		return false;
	hit = strstr(line, also);
	return hit && hit < strchrnul(line, '\n');
}

/* The whole of a small file in the scratch directory, NUL-terminated. */
/* What the 8250 driver does to a console: 115200 8N1, FIFOs on, then
 * bytes to THR. They land in the output file in order; the THRE interrupt
 * follows IER bit 1 and OUT2 and goes away when IIR names it. */
static void test_uart(void **state)
{
	struct run r;
	const char *cfg;

	harness_write("uart.txt", "# 115200 8N1 through the divisor latch\n"
				  "pio write 0x3fb 1 0x80\n"
				  "pio write 0x3f8 1 0x01\n"
				  "pio write 0x3f9 1 0x00\n"
				  "pio read  0x3f8 2 0x0001\n"
				  "pio write 0x3fb 1 0x03\n"
				  "# FIFOs on and cleared: a 16550A says so in IIR\n"
				  "pio write 0x3fa 1 0xc7\n"
				  "pio read  0x3fa 1 0xc1\n"
				  "pio read  0x3fd 1 0x60\n"
				  "pio write 0x3f8 1 0x48\n"
				  "pio write 0x3f8 1 0x65\n"
				  "pio write 0x3f8 1 0x6c\n"
				  "pio write 0x3f8 1 0x6c\n"
				  "pio write 0x3f8 1 0x6f\n"
				  "pio write 0x3f8 1 0x2c\n"
				  "pio write 0x3f8 1 0x20\n"
				  "pio write 0x3f8 1 0x55\n"
				  "pio write 0x3f8 1 0x41\n"
				  "pio write 0x3f8 1 0x52\n"
				  "pio write 0x3f8 1 0x54\n"
				  "pio write 0x3f8 1 0x21\n"
				  "pio read  0x3fd 1 0x60\n"
				  "# THRE interrupt, gated by OUT2\n"
				  "pio write 0x3f9 1 0x02\n"
				  "sleep 50\n"
				  "irq 4 0\n"
				  "pio write 0x3fc 1 0x0b\n"
				  "irq 4 1\n"
				  "pio read  0x3fa 1 0xc2\n"
				  "irq 4 0\n"
				  "pio read  0x3fa 1 0xc1\n"
				  "# the byte leaves at once: THR is empty again and says so\n"
				  "pio write 0x3f8 1 0x0a\n"
				  "irq 4 1\n"
				  "pio read  0x3fa 1 0xc2\n"
				  "irq 4 0\n"
				  "pio write 0x3f9 1 0x00\n"
				  "# loopback: nothing leaves, the IRQ stays low\n"
				  "pio write 0x3fc 1 0x1b\n"
				  "pio write 0x3f8 1 0x55\n"
				  "pio read  0x3fd 1 0x61\n"
				  "pio read  0x3f8 1 0x55\n"
				  "pio read  0x3fe 1 0xb0\n"
				  "pio write 0x3fc 1 0x0b\n"
				  "irq 4 0\n"
				  "# LCR and MCR in one word access\n"
				  "pio read  0x3fb 2 0x0b03\n"
				  "pio write 0x3ff 1 0xa5\n"
				  "pio read  0x3ff 1 0xa5\n");
	cfg = harness_write("uart.yaml", "vms:\n"
					 "  - name: u\n"
					 "    backend: sim\n"
					 "    vcpus: 1\n"
					 "    scripts: [uart.txt]\n"
					 "    devices:\n"
					 "      - name: com1\n"
					 "        program: ioreq-dev-uart\n"
					 "        pio: [\"0x3f8+8\"]\n"
					 "        irqs: [4]\n"
					 "        output: uart.log\n");
	run_ok(&r, cfg, 60);
	assert_string_equal(harness_read("uart.log"), "Hello, UART!\n");
	assert_int_equal(harness_stat(&r, "vm u:", " completed with the fallback"), 0);
	/* Assert, deassert, assert, deassert. */
	assert_int_equal(harness_stat(&r, "vm u device com1:", " interrupts"), 4);
}

/* `input: stdin`: what the broker reads on stdin reaches the receiver a
 * byte at a time (no FIFO yet), each one raising the RX interrupt. */
static void test_uart_input(void **state)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };
	struct run r;
	int saved, fd;

	harness_write("input.txt", "pio write 0x3f9 1 0x01\n"
				   "pio write 0x3fc 1 0x08\n"
				   "irq 4 1\n"
				   "pio read  0x3fa 1 0x04\n"
				   "pio read  0x3fd 1 0x61\n"
				   "pio read  0x3f8 1 0x68\n"
				   "irq 4 1\n"
				   "pio read  0x3f8 1 0x69\n"
				   "irq 4 1\n"
				   "pio read  0x3f8 1 0x0a\n"
				   "sleep 100\n"
				   "irq 4 0\n"
				   "pio read  0x3fd 1 0x60\n");
	args[1] = harness_write("input.yaml", "vms:\n"
					      "  - name: i\n"
					      "    backend: sim\n"
					      "    vcpus: 1\n"
					      "    scripts: [input.txt]\n"
					      "    devices:\n"
					      "      - name: com1\n"
					      "        program: ioreq-dev-uart\n"
					      "        pio: [\"0x3f8+8\"]\n"
					      "        irqs: [4]\n"
					      "        input: stdin\n");
	/* The broker inherits our stdin, and hands it to the UART. */
	saved = dup(0);
	fd = open(harness_write("in.txt", "hi\n"), O_RDONLY | O_CLOEXEC);
	assert_true(saved >= 0 && fd >= 0);
	assert_int_equal(dup2(fd, 0), 0);
	harness_start(&r, args);
	assert_int_equal(dup2(saved, 0), 0);
	close(fd);
	close(saved);
	harness_wait(&r, 60);
	if (r.status != 0)
		print_error("broker exited %d\n", r.status);
	assert_int_equal(r.status, 0);
}

/* Register D, register B in binary/24-hour mode, the century, NVRAM, and
 * the periodic interrupt on IRQ 8, cleared by reading C. */
static void test_rtc(void **state)
{
	struct run r;
	const char *cfg;

	harness_write("rtc.txt", "pio write 0x70 1 0x0d\n"
				 "pio read  0x71 1 0x80\n"
				 "pio write 0x70 1 0x0b\n"
				 "pio read  0x71 1 0x02\n"
				 "pio write 0x71 1 0x06\n"
				 "pio read  0x71 1 0x06\n"
				 "# the century in binary: this runs before 2100\n"
				 "pio write 0x70 1 0x32\n"
				 "pio read  0x71 1 20\n"
				 "pio write 0x70 1 0x00\n"
				 "pio read  0x71 1 any\n"
				 "# NVRAM; bit 7 of the index is the NMI mask\n"
				 "pio write 0x70 1 0x40\n"
				 "pio write 0x71 1 0x5a\n"
				 "pio write 0x70 1 0xff\n"
				 "pio write 0x71 1 0xa5\n"
				 "pio write 0x70 1 0x40\n"
				 "pio read  0x71 1 0x5a\n"
				 "pio write 0x70 1 0x7f\n"
				 "pio read  0x71 1 0xa5\n"
				 "pio write 0x70 2 0x3c41\n"
				 "pio write 0x70 1 0x41\n"
				 "pio read  0x71 1 0x3c\n"
				 "# periodic at 2 Hz\n"
				 "pio write 0x70 1 0x0c\n"
				 "pio read  0x71 1 any\n"
				 "irq 8 0\n"
				 "pio write 0x70 1 0x0a\n"
				 "pio write 0x71 1 0x2f\n"
				 "pio write 0x70 1 0x0b\n"
				 "pio write 0x71 1 0x46\n"
				 "irq 8 1\n"
				 "pio write 0x70 1 0x0c\n"
				 "pio read  0x71 1 any\n"
				 "irq 8 0\n"
				 "irq 8 1\n"
				 "pio write 0x70 1 0x0b\n"
				 "pio write 0x71 1 0x06\n"
				 "pio write 0x70 1 0x0c\n"
				 "pio read  0x71 1 any\n"
				 "irq 8 0\n");
	cfg = harness_write("rtc.yaml", "vms:\n"
					"  - name: c\n"
					"    backend: sim\n"
					"    vcpus: 1\n"
					"    scripts: [rtc.txt]\n"
					"    devices:\n"
					"      - name: rtc\n"
					"        program: ioreq-dev-rtc\n"
					"        pio: [\"0x70+2\"]\n"
					"        irqs: [8]\n");
	run_ok(&r, cfg, 60);
	assert_int_equal(harness_stat(&r, "vm c:", " completed with the fallback"), 0);
	assert_true(harness_stat(&r, "vm c device rtc:", " interrupts") >= 4);
}

/* Bus 0 as a guest scans it, BAR sizing and programming, the BAR0 block
 * through the routed range, INTx on the granted line, a moved BAR moving
 * the routing, and a BAR outside the window refused. */
static void test_pci(void **state)
{
	struct run r;
	const char *cfg, *log;

	harness_write("pci.txt", "# the host bridge, the device, and empty slots\n"
				 "pci read 00:00.0 0x00 4 0x12378086\n"
				 "pci read 00:00.0 0x08 4 0x06000002\n"
				 "pci read 00:00.0 0x0e 1 0x00\n"
				 "pci read 00:00.0 0x10 4 0\n"
				 "pci read 00:01.0 0x00 4 0xffffffff\n"
				 "pci read 00:02.0 0x00 4 0xffffffff\n"
				 "pci read 00:03.1 0x00 4 0xffffffff\n"
				 "pci read 00:1f.0 0x00 4 0xffffffff\n"
				 "pci read 01:00.0 0x00 4 0xffffffff\n"
				 "pci read 00:03.0 0x00 4 0x10001af4\n"
				 "pci read 00:03.0 0x08 4 0x02000001\n"
				 "pci read 00:03.0 0x0e 1 0x00\n"
				 "pci read 00:03.0 0x2c 4 0x00011af4\n"
				 "pci read 00:03.0 0x3d 1 0x01\n"
				 "# sizing\n"
				 "pci write 00:03.0 0x10 4 0xffffffff\n"
				 "pci read  00:03.0 0x10 4 0xfffff000\n"
				 "pci write 00:03.0 0x14 4 0xffffffff\n"
				 "pci read  00:03.0 0x14 4 0xffffffe1\n"
				 "pci write 00:03.0 0x18 4 0xffffffff\n"
				 "pci read  00:03.0 0x18 4 0xfff00004\n"
				 "pci write 00:03.0 0x1c 4 0xffffffff\n"
				 "pci read  00:03.0 0x1c 4 0xffffffff\n"
				 "pci write 00:03.0 0x10 4 0xfe000000\n"
				 "pci write 00:03.0 0x14 4 0xc000\n"
				 "pci write 00:03.0 0x18 4 0xfe100000\n"
				 "pci write 00:03.0 0x1c 4 0\n"
				 "# not decoded until the command register says so\n"
				 "mmio read 0xfe000000 4 0xffffffff\n"
				 "pci write 00:03.0 0x04 2 0x0002\n"
				 "mmio write 0xfe000000 4 0x12345678\n"
				 "mmio read  0xfe000000 4 0x12345678\n"
				 "mmio read  0xfe000001 1 0x56\n"
				 "mmio write 0xfe000018 8 0x1122334455667788\n"
				 "mmio read  0xfe000018 8 0x1122334455667788\n"
				 "mmio read  0xfe100000 4 0\n"
				 "pio  read  0xc000 4 0xffffffff\n"
				 "# the doorbell raises INTx on line 11; IRQ_STATUS acknowledges\n"
				 "irq 11 0\n"
				 "mmio write 0xfe000020 4 1\n"
				 "irq 11 1\n"
				 "pci  read  00:03.0 0x06 2 0x0008\n"
				 "mmio read  0xfe000024 4 1\n"
				 "mmio write 0xfe000024 4 1\n"
				 "irq 11 0\n"
				 "pci  read  00:03.0 0x06 2 0x0000\n"
				 "mmio read  0xfe000028 4 1\n"
				 "# INTx disabled: no interrupt\n"
				 "pci  write 00:03.0 0x04 2 0x0402\n"
				 "mmio write 0xfe000020 4 1\n"
				 "sleep 50\n"
				 "irq 11 0\n"
				 "mmio read  0xfe000028 4 2\n"
				 "pci  write 00:03.0 0x04 2 0x0002\n"
				 "# moved: the old address is nobody's\n"
				 "pci  write 00:03.0 0x10 4 0xfe200000\n"
				 "mmio read  0xfe000000 4 0xffffffff\n"
				 "mmio read  0xfe200000 4 0x12345678\n"
				 "# I/O space on: BAR1 answers (with zeros)\n"
				 "pci  write 00:03.0 0x04 2 0x0003\n"
				 "pio  read  0xc000 4 0\n"
				 "# outside the window: refused, not routed, value kept\n"
				 "pci  write 00:03.0 0x10 4 0xd0000000\n"
				 "pci  read  00:03.0 0x10 4 0xd0000000\n"
				 "mmio read  0xd0000000 4 0xffffffff\n"
				 "mmio read  0xfe200000 4 0xffffffff\n"
				 "# back inside: routed again\n"
				 "pci  write 00:03.0 0x10 4 0xfe300000\n"
				 "mmio read  0xfe300000 4 0x12345678\n"
				 "# decoding off: everything released\n"
				 "pci  write 00:03.0 0x04 2 0x0000\n"
				 "mmio read  0xfe300000 4 0xffffffff\n"
				 "mmio read  0xfe100000 4 0xffffffff\n"
				 "pio  read  0xc000 4 0xffffffff\n");
	cfg = harness_write("pci.yaml",
			    "vms:\n"
			    "  - name: p\n"
			    "    backend: sim\n"
			    "    vcpus: 1\n"
			    "    scripts: [pci.txt]\n"
			    "    devices:\n"
			    "      - name: host\n"
			    "        program: ioreq-dev-pci\n"
			    "        args: [--profile, host-bridge]\n"
			    "        pci: [\"00:00.0\"]\n"
			    "      - name: nic\n"
			    "        program: ioreq-dev-pci\n"
			    "        args: [--vendor, \"0x1af4\", --device, \"1000\", --class, \"0x020000\",\n"
			    "               --revision, \"1\",\n"
			    "               --subsystem, \"0x0001\", --bar, \"0:mem32:4K\", --bar, \"1:io:32\",\n"
			    "               --bar, \"2:mem64:1M\"]\n"
			    "        pci: [\"00:03.0\"]\n"
			    "        irqs: [11]\n"
			    "        windows: {mmio: [\"0xfe000000..0xfeffffff\"], pio: [\"0xc000..0xcfff\"]}\n");
	run_ok(&r, cfg, 60);
	/* The broker saw the claim, refused it, and said so. */
	log = harness_log(&r);
	if (!line_has(log, "device nic: refused a claim", "0xd0000000")) {
		print_error("no refusal of 0xd0000000 in the broker's log\n");
		fail();
	}
	assert_int_equal(harness_stat(&r, "vm p device nic:", " interrupts"), 2);
	/* The empty slots and the addresses nobody decoded, and nothing else. */
	assert_int_equal(harness_stat(&r, "vm p:", " unclaimed"), 13);
	assert_int_equal(harness_stat(&r, "vm p device nic:", " fallbacks"), 0);
	assert_int_equal(harness_stat(&r, "vm p device host:", " fallbacks"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_uart),
		harness_test(test_uart_input),
		harness_test(test_rtc),
		harness_test(test_pci),
	};

	return harness_run_group("integration_devices", tests);
}
