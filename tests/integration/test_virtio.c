/* The virtio devices (ioreq-dev-virtio-rng, -console, -blk) through the
 * real broker, driven by a real guest's virtio driver (tests/guests/virtio.c
 * over examples/guest/virtio.c): on the kvm backend, and on the acrn backend
 * against the fake /dev/acrn_hsm (which runs the guest on /dev/kvm).
 *
 * The guest reads entropy (MSI-X, then polled), sends a line through the
 * console (the test finds it in the console's output file) and receives
 * what the test feeds the console's stdin, and tries the disk's hostile
 * cases: reads past the capacity, a write to a read-only image, a buffer
 * outside guest RAM (DEVICE_NEEDS_RESET, then a reset and a working
 * read). No device may crash or be restarted on the way, and the image
 * must be unchanged. And examples/sim/virtio-rng.yaml: the same device
 * driven by a sim script.
 *
 * Skipped (77) without a usable /dev/kvm, or while the virtio devices are
 * not built. */
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

#define GUEST IOREQ_BINDIR "/guests/virtio.elf"
#define DISK_SECTORS 128
#define SECTOR 512
#define CONSOLE_INPUT "ping from the test\n"


static char *slurp(const char *path)
{
	static char buf[1 << 16];
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f) {
		buf[0] = '\0';
		return buf;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void assert_has(const char *text, const char *what, const char *needle)
{
	if (!strstr(text, needle)) {
		print_error("%s lacks \"%s\"\n", what, needle);
		fail();
	}
}

/* Byte i of sector s is (s + i) & 0xff, as the guest checks. */
static void disk_bytes(unsigned char *p)
{
	for (unsigned s = 0; s < DISK_SECTORS; s++)
		for (unsigned i = 0; i < SECTOR; i++)
			p[s * SECTOR + i] = (unsigned char)(s + i);
}

static const char *write_disk(void)
{
	static unsigned char data[DISK_SECTORS * SECTOR];

	disk_bytes(data);
	return harness_write_bytes("disk.img", data, sizeof(data));
}

static void assert_disk_unchanged(const char *path)
{
	static unsigned char want[DISK_SECTORS * SECTOR], got[DISK_SECTORS * SECTOR + 1];
	FILE *f = fopen(path, "rbe");

	assert_non_null(f);
	disk_bytes(want);
	assert_int_equal(fread(got, 1, sizeof(got), f), sizeof(want));
	fclose(f);
	assert_memory_equal(got, want, sizeof(want));
}

/* The guest's VM with its four virtio functions, each BAR in a window of
 * its own; @backend kvm or acrn. */
static const char *write_config(const char *backend)
{
	return harness_write("virtio.yaml",
			     "vms:\n"
			     "  - name: v\n"
			     "    backend: %s\n"
			     "    vcpus: 1\n"
			     "    memory: 64M\n"
			     "    image: %s\n"
			     "    devices:\n"
			     "      - { name: uart, program: ioreq-dev-uart, pio: [\"0x3f8+8\"], irqs: [4], output: uart.log }\n"
			     "      - name: rng\n"
			     "        program: ioreq-dev-virtio-rng\n"
			     "        pci: [\"00:05.0\"]\n"
			     "        windows: { mmio: [\"0xe1000000+0x100000\"] }\n"
			     "        msi: true\n"
			     "        memory: guest\n"
			     "        doorbells: 1\n"
			     "        irqfds: 2\n"
			     "      - name: console\n"
			     "        program: ioreq-dev-virtio-console\n"
			     "        args: [--input, stdin]\n"
			     "        pci: [\"00:06.0\"]\n"
			     "        windows: { mmio: [\"0xe1100000+0x100000\"] }\n"
			     "        input: stdin\n"
			     "        output: console.out\n"
			     "        msi: true\n"
			     "        memory: guest\n"
			     "        doorbells: 2\n"
			     "        irqfds: 3\n"
			     "      - name: disk\n"
			     "        program: ioreq-dev-virtio-blk\n"
			     "        pci: [\"00:07.0\"]\n"
			     "        windows: { mmio: [\"0xe1200000+0x100000\"] }\n"
			     "        files: [{ path: disk.img, mode: rw }]\n"
			     "        msi: true\n"
			     "        memory: guest\n"
			     "        doorbells: 1\n"
			     "        irqfds: 2\n"
			     "      - name: rodisk\n"
			     "        program: ioreq-dev-virtio-blk\n"
			     "        pci: [\"00:08.0\"]\n"
			     "        windows: { mmio: [\"0xe1300000+0x100000\"] }\n"
			     "        files: [disk.img]\n"
			     "        msi: true\n"
			     "        memory: guest\n"
			     "        doorbells: 1\n"
			     "        irqfds: 2\n",
			     backend, GUEST);
}

static void assert_guest_ran(const struct run *r)
{
	char path[512];
	const char *out, *log = harness_log(r);

	snprintf(path, sizeof(path), "%s/uart.log", harness_tmpdir());
	out = slurp(path);
	assert_has(out, "the guest's output", "virtio: rng: ");
	assert_has(out, "the guest's output", "bytes of entropy (MSI-X), different");
	assert_has(out, "the guest's output", "bytes polled");
	assert_has(out, "the guest's output", "virtio: console: sent 37 bytes");
	assert_has(out, "the guest's output", "virtio: console: received ");
	assert_has(out, "the guest's output", "ping from the test");
	assert_has(out, "the guest's output", "virtio: blk: reads past the capacity (128 sectors) end with IOERR");
	assert_has(out, "the guest's output", "virtio: blk: a buffer outside RAM: DEVICE_NEEDS_RESET");
	assert_has(out, "the guest's output", "virtio: blk: reset and set up again, reads work");
	assert_has(out, "the guest's output", "virtio: blk ro: a write ends with IOERR, the sector is unchanged");
	assert_has(out, "the guest's output", "virtio: ok");

	snprintf(path, sizeof(path), "%s/console.out", harness_tmpdir());
	assert_has(slurp(path), "the console's output", "virtio-console: hello from the guest\n");

	/* Nobody crashed or was restarted; the VM stopped with status 0. */
	assert_null(strstr(log, ": restarting"));
	assert_null(strstr(log, "killed by signal"));
	assert_has(log, "the broker's log", "vm v: stopped with status 0");
}

static void run_guest(const char *backend, bool fake_hsm)
{
	const char *args[] = { "--config", write_config(backend), "--exit-with-vms", NULL };
	const char *disk = write_disk();
	char hsm_log[512];
	struct run r;

	harness_set_stdin(harness_write("console.in", CONSOLE_INPUT));
	if (fake_hsm) {
		snprintf(hsm_log, sizeof(hsm_log), "%s/hsm.log", harness_tmpdir());
		setenv("LD_PRELOAD", FAKE_HSM_PRELOAD, 1);
		setenv("FAKE_HSM_LOG", hsm_log, 1);
		harness_keep_log("the fake HSM's log", hsm_log);
	}
	harness_start(&r, args);
	unsetenv("LD_PRELOAD");
	unsetenv("FAKE_HSM_LOG");
	harness_wait(&r, 180);
	assert_int_equal(r.status, 0);
	assert_guest_ran(&r);
	assert_disk_unchanged(disk);
}

static void test_virtio_kvm(void **state)
{
	harness_need_kvm();
	run_guest("kvm", false);
}

static void test_virtio_acrn(void **state)
{
	harness_need_kvm();
	run_guest("acrn", true);
}

/* examples/sim/virtio-rng.yaml as shipped: a scripted vCPU sets up a
 * one-entry queue in guest RAM with PCI, MMIO and mem statements, rings the
 * doorbell and waits for the used ring (16 bytes filled). */
static void test_virtio_rng_sim(void **state)
{
	const char *args[] = { "--config", IOREQ_SRCDIR "/examples/sim/virtio-rng.yaml", "--exit-with-vms", NULL };
	struct run r;

	assert_int_equal(harness_run(&r, args, 60), 0);
	assert_has(harness_log(&r), "the broker's log", "vm rng device rng: claimed mmio 0xe1000000..0xe1007fff");
	assert_has(harness_log(&r), "the broker's log", "vm rng: stopped with status 0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_virtio_rng_sim),
		harness_test(test_virtio_kvm),
		harness_test(test_virtio_acrn),
	};

	return harness_run_group("virtio", tests);
}
