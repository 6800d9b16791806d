/* The README's demo, as shipped in examples/, through the real broker: the
 * demo guest on /dev/kvm, and the same guest booted on the acrn backend
 * against the fake /dev/acrn_hsm (which runs it on /dev/kvm as the
 * hypervisor would). Its DMA engine (clients/dma.c) reads a buffer the
 * guest filled and writes one the guest checks, through the guest's memory,
 * rung through an ioeventfd and answering through an irqfd: the guest
 * prints "demo: ok" only when every byte came back right. Its virtio-blk
 * disk (ioreq-dev-virtio-blk over a copy of the build's image in the
 * scratch directory, one per VM) is read, written and read back through
 * the guest's virtio driver (examples/guest/virtio.c), its queue's doorbell
 * an ioeventfd and its MSI-X messages irqfds; the image must be as the
 * build wrote it afterwards (the guest writes back what it overwrote).
 *
 * Skipped (77) without a usable /dev/kvm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define EXAMPLES IOREQ_SRCDIR "/examples"
#define DEMO_IMAGE IOREQ_BINDIR "/guests/demo.elf"
/* The build's disk image (examples/mkdisk.cmake): 2048 sectors. */
#define DEMO_DISK IOREQ_BINDIR "/../demo-disk.img"
#define DEMO_DISK_BYTES (2048 * 512)

static void assert_has(const char *log, const char *needle)
{
	if (!strstr(log, needle)) {
		print_error("the broker's log lacks \"%s\"\n", needle);
		fail();
	}
}

static char *slurp(const char *path)
{
	static char buf[1 << 20];
	FILE *f = fopen(path, "re");
	size_t n = 0;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static size_t read_all(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "rbe");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, len, f);
	fclose(f);
	return n;
}

/* A copy of the build's disk image in the scratch directory, as @name. */
static const char *disk_copy(const char *name)
{
	static char data[DEMO_DISK_BYTES];

	assert_int_equal(read_all(DEMO_DISK, data, sizeof(data)), sizeof(data));
	return harness_write_bytes(name, data, sizeof(data));
}

/* The guest wrote back what it overwrote: the image is the build's. */
static void assert_disk_unchanged(const char *path)
{
	static char want[DEMO_DISK_BYTES], got[DEMO_DISK_BYTES + 1];

	assert_int_equal(read_all(DEMO_DISK, want, sizeof(want)), sizeof(want));
	assert_int_equal(read_all(path, got, sizeof(got)), sizeof(want));
	if (memcmp(want, got, sizeof(want))) {
		print_error("%s differs from the build's image after the demo\n", path);
		fail();
	}
}


/* The disk's line of the broker's statistics: nothing fell back, and no
 * interrupt came as a message (they are irqfds). */
static void assert_disk_stats(const char *log, const char *vm)
{
	static const char want[] = " requests; 0 fallbacks (0 expired), 0 bad replies, 0 interrupts;";
	char head[96];
	const char *line;

	snprintf(head, sizeof(head), "vm %s device disk: 0 pio, ", vm);
	line = strstr(log, head);
	if (!line) {
		print_error("the broker's log lacks \"%s\"\n", head);
		fail();
	}
	line = strstr(line, " requests; ");
	assert_non_null(line);
	if (strncmp(line, want, sizeof(want) - 1)) {
		print_error("the disk's statistics: %.80s\n", line);
		fail();
	}
}

/* What every run of the demo guest in VM @vm shows: the guest's own lines
 * (tagged @tag) in @out, and in the broker's @log that its DMA's doorbell
 * never reached the device as a request (the guest's 6 register writes and
 * 2 reads did: 8) and its completion came through the irqfd, not an
 * interrupt message. @irqfd_path: how the backend serves the irqfd. */
static void assert_demo_ran(const char *log, const char *out, const char *vm, const char *tag,
			    const char *irqfd_path)
{
	char want[256];

	snprintf(want, sizeof(want), "%s: dma: 4096 bytes at ", tag);
	assert_has(out, want);
	assert_has(out, "irq 10 taken (status 1, transfers 1)");
	snprintf(want, sizeof(want), "%s: pci 00:04.0 1af4:1042 class 018000", tag);
	assert_has(out, want);
	snprintf(want, sizeof(want), "%s: virtio-blk 00:04.0: capacity 2048 sectors, id \"", tag);
	assert_has(out, want);
	assert_has(out, "completions by MSI-X");
	snprintf(want, sizeof(want), "%s: virtio-blk: read 8192 bytes, wrote 4096 bytes, read back ok", tag);
	assert_has(out, want);
	snprintf(want, sizeof(want), "%s: virtio-blk: ok, 16384 bytes read and 8192 written in all", tag);
	assert_has(out, want);
	snprintf(want, sizeof(want), "%s: ok", tag);
	assert_has(out, want);
	/* The disk's doorbell (queue 0's notify, BAR0 + 0x3000) is the
	 * hypervisor's, its interrupts are irqfds: none crosses the broker. */
	snprintf(want, sizeof(want), "vm %s device disk: registered doorbell 0 (mmio 0xe1003000 size 2", vm);
	assert_has(log, want);
	snprintf(want, sizeof(want), "vm %s device disk: registered irqfd 0 (MSI)", vm);
	assert_has(log, want);
	snprintf(want, sizeof(want), "vm %s device disk: claimed mmio 0xe1000000..0xe1007fff", vm);
	assert_has(log, want);
	snprintf(want, sizeof(want), "vm %s device dma: registered doorbell 0 (pio 0x540 size 1): served by the hypervisor",
		 vm);
	assert_has(log, want);
	snprintf(want, sizeof(want), "vm %s device dma: registered irqfd 0 (IRQ 10): %s", vm, irqfd_path);
	assert_has(log, want);
	snprintf(want, sizeof(want),
		 "vm %s device dma: 8 pio, 0 mmio, 0 pci requests; 0 fallbacks (0 expired), 0 bad replies, 0 interrupts",
		 vm);
	assert_has(log, want);
	assert_disk_stats(log, vm);
	snprintf(want, sizeof(want), "vm %s: stopped with status 0", vm);
	assert_has(log, want);
}

/* examples/@name, written to the scratch directory with each @subst pair
 * (from, to; NULL-terminated) applied and the image found from there, so
 * that what it writes next to itself lands there too. */
static const char *example(const char *name, const char *const *subst)
{
	static const char image[] = "../build/bin/guests/demo.elf";
	static char text[16384];
	char path[512], *in;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/%s", EXAMPLES, name);
	in = slurp(path);
	while (*in && n < sizeof(text) - 1) {
		const char *const *p = subst;

		while (*p && strncmp(in, p[0], strlen(p[0])))
			p += 2;
		if (*p) {
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%s", p[1]);
			in += strlen(p[0]);
		} else if (!strncmp(in, image, strlen(image))) {
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%s", DEMO_IMAGE);
			in += strlen(image);
		} else {
			text[n++] = *in++;
		}
	}
	assert_true(n < sizeof(text) - 1);
	text[n] = '\0';
	return harness_write(name, "%s", text);
}

/* The guest's UART writes a file rather than the broker's stdout, which
 * shares the log with the broker's own lines: byte by byte, they would
 * interleave. */
static const char *uart_log(const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s", harness_tmpdir(), name);
	return slurp(path);
}

static void test_demo_kvm(void **state)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };
	const char *disk;
	struct run r;

	harness_need_kvm();
	disk = disk_copy("demo-disk.img");
	args[1] = example("demo.yaml", (const char *[]){ "output: stdout", "output: demo-uart.log",
							 "../build/demo-disk.img", disk, NULL });
	assert_int_equal(harness_run(&r, args, 120), 0);
	assert_demo_ran(harness_log(&r), uart_log("demo-uart.log"), "demo", "demo", "served by the hypervisor");
	assert_disk_unchanged(disk);
}

/* Two VMs at once, each UART in its own file, each disk its own image. */
static void test_demo_two_vms(void **state)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };
	const char *disk1, *disk2;
	struct run r;

	harness_need_kvm();
	disk1 = disk_copy("demo-disk.img");
	disk2 = disk_copy("demo-disk2.img");
	args[1] = example("demo-two-vms.yaml", (const char *[]){ "output: stdout", "output: demo1-uart.log",
								 "../build/demo-disk.img", disk1,
								 "../build/demo-disk2.img", disk2, NULL });
	assert_int_equal(harness_run(&r, args, 180), 0);
	assert_demo_ran(harness_log(&r), uart_log("demo1-uart.log"), "demo1", "demo[1]", "served by the hypervisor");
	assert_demo_ran(harness_log(&r), uart_log("demo2-uart.log"), "demo2", "demo[2]", "served by the hypervisor");
	assert_disk_unchanged(disk1);
	assert_disk_unchanged(disk2);
}

/* The same guest and devices on the acrn backend: the broker loads the
 * image into the guest's memfd RAM, SET_MEMSEGs it, sets the boot vCPU's
 * registers and starts the VM; the fake runs it on KVM. ACRN's IRQFD takes
 * MSIs only, so the broker relays the DMA engine's line irqfd while the
 * disk's MSI-X irqfds are ACRN's; the doorbells are the HSM's ioeventfds. */
static void test_demo_acrn(void **state)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };
	char hsm_log[512], *log;
	const char *disk;
	struct run r;

	harness_need_kvm();
	disk = disk_copy("demo-disk.img");
	args[1] = example("demo.yaml", (const char *[]){ "backend: kvm", "backend: acrn", "output: stdout",
							 "output: demo-uart.log", "../build/demo-disk.img", disk, NULL });
	snprintf(hsm_log, sizeof(hsm_log), "%s/hsm.log", harness_tmpdir());
	setenv("LD_PRELOAD", FAKE_HSM_PRELOAD, 1);
	setenv("FAKE_HSM_LOG", hsm_log, 1);
	harness_keep_log("the fake HSM's log", hsm_log);
	harness_start(&r, args);
	unsetenv("LD_PRELOAD");
	unsetenv("FAKE_HSM_LOG");
	harness_wait(&r, 120);
	assert_int_equal(r.status, 0);
	assert_demo_ran(harness_log(&r), uart_log("demo-uart.log"), "demo", "demo", "relayed by the broker");

	log = slurp(hsm_log);
	assert_has(log, "hsm1 SET_MEMSEG type=0 gpa=0x0 len=0x4000000 attr=0x7 = 0");
	assert_has(log, "hsm1 SET_VCPU_REGS vcpu=0 rip=0x");
	assert_has(log, "hsm1 START_VM = 0");
	assert_has(log, "hsm1 IOEVENTFD ");
	assert_has(log, " addr=0x540 len=1 data=0x0 = 0");
	/* The disk's doorbell, and its MSI-X messages (to vCPU 0's APIC,
	 * the guest runtime's first MSI vector) as ACRN irqfds. */
	assert_has(log, " addr=0xe1003000 len=2 ");
	assert_has(log, "hsm1 IRQFD ");
	assert_has(log, " addr=0xfee00000 data=0x30 = 0");
	assert_disk_unchanged(disk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_demo_kvm),
		harness_test(test_demo_two_vms),
		harness_test(test_demo_acrn),
	};

	return harness_run_group("demo", tests);
}
