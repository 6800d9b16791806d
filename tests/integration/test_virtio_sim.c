/* The virtio devices through the real broker on the sim backend (issue
 * 16): each sandboxed device program (ioreq-dev-virtio-blk, -rng,
 * -console) driven by a sim vCPU as a virtio-pci driver drives it: BAR0
 * programmed through configuration space, the status handshake, queues laid
 * out in guest RAM with mem statements, notifications (ioeventfds where the
 * YAML grants doorbells, requests where it does not), the used ring waited
 * for, what the device wrote checked in RAM and, for the disk, in the image
 * on the host afterwards.
 *
 * The hostile cases: requests the device must refuse with a status (past
 * the end, write to a read-only image, unknown type, no status byte) and a
 * descriptor outside guest RAM, which must cost the guest its device
 * (DEVICE_NEEDS_RESET) and the device program nothing: it answers its
 * registers, resets, and serves again, with no restart. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "simvirtio.h"

static const char *config(const char *devices)
{
	harness_write("cpu0.txt", "%s", sim_script.text);
	return harness_write("v.yaml",
			     "broker: { runtime_dir: %s/run }\n"
			     "vms:\n"
			     "  - name: v\n"
			     "    backend: sim\n"
			     "    vcpus: 1\n"
			     "    memory: 16M\n"
			     "    scripts: [cpu0.txt]\n"
			     "    devices:\n%s",
			     harness_tmpdir(), devices);
}

static int run_vm(struct run *r, const char *devices)
{
	const char *args[] = { "--config", config(devices), "--exit-with-vms", NULL };

	return harness_run(r, args, 120);
}

static const char *tmp_path(const char *name)
{
	static char buf[4][512];
	static unsigned k;
	char *b = buf[k++ % 4];

	snprintf(b, 512, "%s/%s", harness_tmpdir(), name);
	return b;
}

/* An image of @sectors (at most 64), sector i all 'a' + i % 26. */
static void make_image(const char *name, size_t sectors)
{
	static char data[64 * 512];

	assert_true(sectors <= 64);
	for (size_t i = 0; i < sectors; i++)
		memset(data + 512 * i, 'a' + (int)(i % 26), 512);
	harness_write_bytes(name, data, sectors * 512);
}

static void read_image(const char *name, size_t sector, void *buf, size_t len)
{
	int fd = open(tmp_path(name), O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)sector * 512), (ssize_t)len);
	close(fd);
}

/* The bytes of @c repeated, as a little-endian value of 8. */
static uint64_t rep8(char c)
{
	return 0x0101010101010101ull * (uint8_t)c;
}

/* ---- virtio-blk ---- */

#define BLK_DEVICE(files, extra)                                                      \
	"      - name: disk\n"                                                       \
	"        program: ioreq-dev-virtio-blk\n"                                   \
	"        pci: [\"" BDF "\"]\n"                                              \
	"        windows: { mmio: [\"0xe1000000+0x1000000\"] }\n"                   \
	"        msi: true\n"                                                      \
	"        memory: guest\n"                                                  \
	"        files: [" files "]\n"                                             \
	"        output: stdout\n" extra

static void blk_read_write(void **state)
{
	char sector[512], expect[512];
	struct run r;

	make_image("disk.img", 64);
	s_reset();
	s_bar(2);
	s_init(1, 0);
	/* capacity, and the features: SEG_MAX, BLK_SIZE, FLUSH, DISCARD,
	 * WRITE_ZEROES, INDIRECT_DESC, EVENT_IDX; not RO */
	s("mmio read 0x%llx 8 64", DEVCFG(0));
	s("mmio write 0x%llx 4 0", COMMON(0x00));
	s("mmio read 0x%llx 4 0x30006244", COMMON(0x04));
	s_blk_read_write();
	/* flush; get-id (the YAML name); discard sector 7 (reads as zeroes after) */
	s_blk(4, 0, 0, false, 0, "1");
	s_blk(8, 0, 20, true, 0, "21");
	s("mem read 0x%llx 4 0x6b736964", BUF(0) + 0x1000);
	s("mem write 0x%llx 8 7", BUF(0) + 0x2000);
	s("mem write 0x%llx 4 1", BUF(0) + 0x2008);
	s("mem write 0x%llx 4 0", BUF(0) + 0x200c);
	{
		struct seg segs[] = { { BUF(0), 16, false }, { BUF(0) + 0x2000, 16, false }, { BUF(0) + 0x100, 1, true } };

		s("mem write 0x%llx 4 11", BUF(0));
		s("mem write 0x%llx 8 0", BUF(0) + 8);
		s_chain(0, segs, 3);
		s_used(0, "1");
		s("mem read 0x%llx 1 0", BUF(0) + 0x100);
	}
	/* refused with a status: past the end, unknown type, not whole sectors */
	s_blk(0, 63, 1024, true, 1, "any");
	s_blk(0, UINT64_MAX / 2, 512, true, 1, "any");
	s_blk(99, 0, 0, false, 2, "any");
	s_blk(0, 0, 100, true, 1, "any");
	assert_int_equal(run_vm(&r, BLK_DEVICE("{ path: disk.img, mode: rw }", "        doorbells: 1\n")), 0);
	assert_non_null(strstr(harness_log(&r), "registered doorbell 0"));

	/* The image on the host: the guest's two sectors, the discarded one zero. */
	read_image("disk.img", 5, sector, 8);
	assert_memory_equal(sector, "\xef\xcd\xab\x89\x67\x45\x23\x01", 8);
	read_image("disk.img", 7, sector, sizeof(sector));
	memset(expect, 0, sizeof(expect));
	assert_memory_equal(sector, expect, sizeof(expect));
	read_image("disk.img", 8, sector, sizeof(sector));
	memset(expect, 'i', sizeof(expect));
	assert_memory_equal(sector, expect, sizeof(expect));
}

/* A read-only image: offered RO, writes refused, the image untouched; and
 * notifications that come as requests (no doorbells). */
static void blk_read_only(void **state)
{
	char sector[512], expect[512];
	struct run r;

	make_image("ro.img", 16);
	s_reset();
	s_bar(2);
	s_init(1, 0);
	s("mmio write 0x%llx 4 0", COMMON(0x00));
	s("mmio read 0x%llx 4 0x30000264", COMMON(0x04));
	s_blk(0, 1, 512, true, 0, "513");
	s("mem read 0x%llx 8 0x%llx", BUF(0) + 0x1000, (unsigned long long)rep8('b'));
	s_blk(1, 1, 512, false, 1, "1");
	assert_int_equal(run_vm(&r, BLK_DEVICE("ro.img", "")), 0);
	assert_null(strstr(harness_log(&r), "registered doorbell"));
	read_image("ro.img", 1, sector, sizeof(sector));
	memset(expect, 'b', sizeof(expect));
	assert_memory_equal(sector, expect, sizeof(expect));
}

/* A descriptor outside guest RAM: DEVICE_NEEDS_RESET, the device answers
 * on, a reset and a new setup work, and nothing restarted. */
static void blk_broken_queue(void **state)
{
	struct seg bad[] = { { BUF(0), 16, false }, { 0x40000000, 512, true }, { BUF(0) + 0x100, 1, true } };
	struct run r;

	make_image("disk.img", 16);
	s_reset();
	s_bar(2);
	s_init(1, 0);
	s("mem write 0x%llx 4 0", BUF(0));
	s("mem write 0x%llx 8 0", BUF(0) + 8);
	s_chain(0, bad, 3);
	s("mmio read 0x%llx 1 0x4f until 3000", COMMON(0x14));
	/* a config interrupt's generation moved; the device still answers */
	s("mmio read 0x%llx 8 16", DEVCFG(0));
	s_init(1, 0);
	s_blk(0, 2, 512, true, 0, "513");
	s("mem read 0x%llx 8 0x%llx", BUF(0) + 0x1000, (unsigned long long)rep8('c'));
	assert_int_equal(run_vm(&r, BLK_DEVICE("{ path: disk.img, mode: rw }", "        doorbells: 1\n")), 0);
	assert_non_null(strstr(harness_log(&r), "the device needs a reset"));
	assert_null(strstr(harness_log(&r), "restart"));
}

/* Without bus mastering the device leaves guest memory alone: a request
 * made available waits, and is served once the driver sets the bit. */
static void blk_bus_master(void **state)
{
	struct run r;

	make_image("disk.img", 16);
	s_reset();
	s_bar(2);
	s("pci write " BDF " 0x04 2 0x2");
	s_init(1, 0);
	s("mem write 0x%llx 4 0", BUF(0));
	s("mem write 0x%llx 8 4", BUF(0) + 8);
	s("mem write 0x%llx 1 0xff", BUF(0) + 0x100);
	{
		struct seg segs[] = { { BUF(0), 16, false }, { BUF(0) + 0x1000, 512, true }, { BUF(0) + 0x100, 1, true } };

		s_chain(0, segs, 3);
	}
	s("sleep 300");
	s("mem read 0x%llx 2 0", USED(0) + 2);
	s("mem read 0x%llx 1 0xff", BUF(0) + 0x100);
	s("pci write " BDF " 0x04 2 0x6");
	s_used(0, "513");
	s("mem read 0x%llx 1 0", BUF(0) + 0x100);
	s("mem read 0x%llx 8 0x%llx", BUF(0) + 0x1000, (unsigned long long)rep8('e'));
	assert_int_equal(run_vm(&r, BLK_DEVICE("{ path: disk.img, mode: rw }", "        doorbells: 1\n")), 0);
}

/* ---- virtio-rng ---- */

#define RNG_DEVICE(args)                                                    \
	"      - name: rng\n"                                              \
	"        program: ioreq-dev-virtio-rng\n"                         \
	"        args: [" args "]\n"                                       \
	"        pci: [\"" BDF "\"]\n"                                    \
	"        windows: { mmio: [\"0xe1000000+0x1000000\"] }\n"         \
	"        irqs: [5]\n"                                            \
	"        memory: guest\n"                                        \
	"        doorbells: 1\n"

/* Two 64-byte buffers of entropy (not zero, not equal); the INTx line up
 * after each, down once ISR is read. */
static void rng_entropy(void **state)
{
	struct run r;

	s_reset();
	s_bar(4);
	s_init(1, 0);
	for (unsigned i = 0; i < 2; i++) {
		struct seg one = { BUF(0) + 64 * i, 64, true };

		s_chain(0, &one, 1);
		s_used(0, "64");
		s("irq 5 1");
		s("mmio read 0x%llx 1 1", ISR);
		s("irq 5 0");
	}
	s("mem read 0x%llx 8 any", BUF(0));
	assert_int_equal(run_vm(&r, RNG_DEVICE("")), 0);
}

/* The budget: --rate 256 bytes per second, a burst of 256. The guest asks
 * for 8 buffers of 128 bytes and gets each whole, in order: the first two
 * at once, the other six as the budget refills, 768 bytes at 256 a second,
 * so never in less than 3 seconds however fast the machine. */
static void rng_rate_limit(void **state)
{
	struct timespec t0, t1;
	struct run r;

	s_reset();
	s_bar(4);
	s_init(1, 0);
	for (unsigned i = 0; i < 8; i++) {
		struct seg one = { BUF(0) + 128 * i, 128, true };

		s_chain(0, &one, 1);
		s_used(0, "128");
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(run_vm(&r, RNG_DEVICE("--rate, 256")), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 > 2.9);
}

/* ---- virtio-console ---- */

/* Input from a file the broker opens into the guest's receive buffer, the
 * guest's line out to the broker's log; notifications as requests, INTx. */
static void console_in_out(void **state)
{
	static const char msg[] = "hello from the guest\n";
	struct seg rx = { BUF(0), 64, true }, tx = { BUF(1), sizeof(msg) - 1, false };
	struct run r;

	harness_write("input.txt", "typed on the host");
	s_reset();
	s_bar(3);
	s_init(2, 0);
	s_chain(0, &rx, 1);
	s_used(0, "17");
	s("mem read 0x%llx 8 0x%llx", BUF(0), 0x6e6f206465707974ull);
	for (size_t i = 0; i + 1 < sizeof(msg); i++)
		s("mem write 0x%llx 1 %u", BUF(1) + i, (unsigned char)msg[i]);
	s_chain(1, &tx, 1);
	s_used(1, "0");
	assert_int_equal(run_vm(&r,
				"      - name: con\n"
				"        program: ioreq-dev-virtio-console\n"
				"        args: [--output, log, --input, \"file:0\"]\n"
				"        files: [input.txt]\n"
				"        pci: [\"" BDF "\"]\n"
				"        windows: { mmio: [\"0xe1000000+0x1000000\"] }\n"
				"        irqs: [5]\n"
				"        memory: guest\n"),
			 0);
	assert_non_null(strstr(harness_log(&r), "device con: ioreq-dev-virtio-console con: hello from the guest"));
}

/* A YAML that does not give a virtio device what it needs: a clear line,
 * and the device fails (exit 2) instead of serving half a device. */
static void missing_grants(void **state)
{
	struct run r;

	s_reset();
	s("sleep 300");
	run_vm(&r, "      - name: disk\n"
		   "        program: ioreq-dev-virtio-blk\n"
		   "        pci: [\"" BDF "\"]\n"
		   "        irqs: [5]\n"
		   "        restart_limit: 0\n");
	assert_non_null(strstr(harness_log(&r), "needs its image in `files:`"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(blk_read_write),
		harness_test(blk_read_only),
		harness_test(blk_broken_queue),
		harness_test(blk_bus_master),
		harness_test(rng_entropy),
		harness_test(rng_rate_limit),
		harness_test(console_in_out),
		harness_test(missing_grants),
	};

	return harness_run_group("virtio_sim", tests);
}
