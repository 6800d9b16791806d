/* virtio-blk on the sim backend, against preadv on the same image in the
 * same run: the real broker in-process (as in brokerpath.c), one sim VM
 * with guest RAM, and a sandboxed ioreq-dev-virtio-blk serving a 64 MiB
 * image from the page cache (the orchestrator writes it and reads it once,
 * vblk_make_image). The benchmark's thread is the vCPU and a polling
 * virtio driver: BAR0 through configuration space, the status handshake
 * (VERSION_1 only: no EVENT_IDX, no indirect descriptors), one queue of 256
 * with interrupts off (VIRTQ_AVAIL_F_NO_INTERRUPT), the rings and buffers
 * written straight into guest RAM, the notify write an ioeventfd
 * (`doorbells: 1`), the used ring spun on. Each slot is one fixed chain of
 * three descriptors (header, data, status); a request only changes its
 * header and its avail entry, so the loop allocates nothing.
 *
 * Figures, each followed by its baseline, in this order:
 *   qd1     4 KiB reads at random 4 KiB-aligned offsets, one at a time:
 *           IOPS, p50/p99 per request (post, notify, spin on used);
 *           against one thread's preadv of the same (pread1);
 *   qd32    the same with 32 in flight: each completion is resubmitted at
 *           once, one notify per batch of resubmissions; against 4
 *           threads' preadv (the device's 4 workers; pread4);
 *   seq     128 KiB reads one after the other, one at a time (MB/s);
 *           against one thread's sequential preadv of 128 KiB (pread_seq).
 * Every read's first 8 bytes are checked against the block's tag. The
 * device process's CPU time and context switches per request tell where
 * the device spends its time; notify_requests counts notifications that
 * came to the device as requests instead of through the doorbell during
 * the timed loops (0 when the ioeventfd works).
 *
 * The spinning vCPU holds one CPU, as a polling driver does; the device's
 * queue thread and workers share what is left.
 *
 * vblk-remote: the same device under ioreq-remote (remote.c), the image
 * its --file, over tls+tcp:// on 127.0.0.1 (tcp:// without openssl): its
 * queue and buffers reached through memory messages. QD1 only; the local
 * device's QD1 is its baseline. */
#include "bench.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include "broker.h"
#include "guestmem.h"
#include "log.h"
#include "vm.h"

#define VB_BLOCK 4096u
#define VB_SEQ (128u << 10)
#define VB_BLOCKS (VBLK_IMAGE_BYTES / VB_BLOCK)
#define VB_QD 32
#define VB_THREADS 4 /* the device's workers (virtio_blk.c's default) */
#define VB_QSIZE 256
#define VB_WARMUP 200
#define VB_SAMPLES (1u << 20)
/* A request the device never completes is a failure, not a wait. */
#define VB_SPIN_NS 2000000000ll
#define VB_READY_MS 5000

/* The function and its BAR0 (as in tests/integration/test_virtio_sim.c). */
#define VB_BDF (4u << 3) /* 00:04.0 */
#define VB_BAR 0xe1000000ull
#define VB_WINDOW "0xe1000000+0x1000000"
/* virtio 1.x 4.1.4.3: common configuration, at BAR0 + 0 here */
#define CC_GFSELECT 0x08
#define CC_GF 0x0c
#define CC_NUMQ 0x12
#define CC_STATUS 0x14
#define CC_Q_SELECT 0x16
#define CC_Q_SIZE 0x18
#define CC_Q_ENABLE 0x1c
#define CC_Q_DESC 0x20
#define CC_Q_AVAIL 0x28
#define CC_Q_USED 0x30
#define VB_NOTIFY 0x3000 /* queue 0's notify address */
#define VB_DEVCFG 0x2000 /* struct virtio_blk_config: capacity first */
#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4
#define ST_FEATURES_OK 8

/* Guest RAM: the rings, then per slot a 16-byte header and its status
 * byte (32 bytes a slot), then per slot VB_SEQ bytes of data. */
#define VB_MEMORY "256M"
#define VB_DESC 0x100000ull
#define VB_AVAIL 0x101000ull
#define VB_USED 0x102000ull
#define VB_HDR 0x110000ull
#define VB_DATA 0x1000000ull
#define HDR_SLOT 32
#define F_NEXT 1
#define F_WRITE 2
#define AVAIL_F_NO_INTERRUPT 1

struct vb {
	struct broker *b;
	struct dispatch *d;
	pid_t dev_pid;
	pid_t runner;           /* vblk-remote: ioreq-remote; 0 */
	uint8_t *desc, *avail, *used, *hdr, *data; /* in guest RAM */
	uint16_t avail_idx, used_idx;
	uint64_t sector[VB_QD]; /* what each slot reads now */
	uint64_t rng;
	uint64_t bad;
};

/* The tag in the first 8 bytes of each 4 KiB block of the image. */
static uint64_t block_tag(uint64_t block)
{
	return 0xb10c000000000000ull | block;
}

/* xorshift64*: a random block of the image. */
static uint64_t random_block(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (*s * 0x2545f4914f6cdd1dull >> 32) % VB_BLOCKS;
}

int vblk_make_image(const char *path)
{
	uint8_t *buf = malloc(VB_SEQ);
	int fd = -1, r = 0;

	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		r = -errno;
	memset(buf, 0xa5, VB_SEQ);
	for (uint64_t off = 0; r == 0 && off < VBLK_IMAGE_BYTES; off += VB_SEQ) {
		for (unsigned i = 0; i < VB_SEQ / VB_BLOCK; i++) {
			uint64_t tag = htole64(block_tag(off / VB_BLOCK + i));

			memcpy(buf + i * VB_BLOCK, &tag, sizeof(tag));
		}
		if (pwrite(fd, buf, VB_SEQ, (off_t)off) != (ssize_t)VB_SEQ)
			r = -EIO;
	}
	/* Written back now, not during a measurement; then read once, so that
	 * both sides read from the page cache. */
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	for (uint64_t off = 0; r == 0 && off < VBLK_IMAGE_BYTES; off += VB_SEQ)
		if (pread(fd, buf, VB_SEQ, (off_t)off) != (ssize_t)VB_SEQ)
			r = -EIO;
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

/* ---- the driver ---- */

static uint64_t mmio(struct vb *v, bool write, uint64_t off, unsigned size, uint64_t value)
{
	return bench_vcpu_mmio(v->d, 0, write, VB_BAR + off, size, value);
}

static void put16(uint8_t *p, uint16_t x)
{
	x = htole16(x);
	memcpy(p, &x, sizeof(x));
}

static void put32(uint8_t *p, uint32_t x)
{
	x = htole32(x);
	memcpy(p, &x, sizeof(x));
}

static void put64(uint8_t *p, uint64_t x)
{
	x = htole64(x);
	memcpy(p, &x, sizeof(x));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t x;

	memcpy(&x, p, sizeof(x));
	return le64toh(x);
}

static uint8_t *slot_data(const struct vb *v, unsigned slot)
{
	return v->data + (size_t)slot * VB_SEQ;
}

/* Slot @slot's chain: header (device-readable), @len bytes of data and
 * the status byte (device-writable). Descriptors 3 * slot and on. */
static void set_chain(struct vb *v, unsigned slot, uint32_t len)
{
	uint8_t *d = v->desc + 16 * 3 * slot;
	uint64_t hdr = VB_HDR + (uint64_t)slot * HDR_SLOT;

	put64(d, hdr);
	put32(d + 8, 16);
	put16(d + 12, F_NEXT);
	put16(d + 14, (uint16_t)(3 * slot + 1));
	put64(d + 16, VB_DATA + (uint64_t)slot * VB_SEQ);
	put32(d + 24, len);
	put16(d + 28, F_NEXT | F_WRITE);
	put16(d + 30, (uint16_t)(3 * slot + 2));
	put64(d + 32, hdr + 16);
	put32(d + 40, 1);
	put16(d + 44, F_WRITE);
	put16(d + 46, 0);
}

/* Makes slot @slot's read of @sector available (not yet published). */
static void post(struct vb *v, unsigned slot, uint64_t sector)
{
	uint8_t *h = v->hdr + (size_t)slot * HDR_SLOT;

	put32(h, 0); /* VIRTIO_BLK_T_IN */
	put32(h + 4, 0);
	put64(h + 8, sector);
	h[16] = 0xff;
	/* A stale tag must not pass for this read's. */
	memset(slot_data(v, slot), 0, 8);
	v->sector[slot] = sector;
	put16(v->avail + 4 + 2 * (v->avail_idx % VB_QSIZE), (uint16_t)(3 * slot));
	v->avail_idx++;
}

/* Publishes what was posted, then notifies (always: the device never asks
 * for no notifications, and without EVENT_IDX there is nothing to skip). */
static void publish(struct vb *v)
{
	/* Release: the headers, descriptors and entries before the idx. */
	__atomic_store_n((uint16_t *)(v->avail + 2), htole16(v->avail_idx), __ATOMIC_RELEASE);
	mmio(v, true, VB_NOTIFY, 2, 0);
}

/* The next used element's slot, checked, or -1 while there is none. */
static int reap(struct vb *v, uint32_t len)
{
	/* Acquire: the element, status and data after the idx. */
	uint16_t idx = le16toh(__atomic_load_n((uint16_t *)(v->used + 2), __ATOMIC_ACQUIRE));
	const uint8_t *e;
	uint32_t id, got;
	unsigned slot;

	if (idx == v->used_idx)
		return -1;
	e = v->used + 4 + 8 * (v->used_idx % VB_QSIZE);
	v->used_idx++;
	memcpy(&id, e, 4);
	memcpy(&got, e + 4, 4);
	id = le32toh(id);
	slot = id / 3;
	if (id % 3 || slot >= VB_QD) {
		v->bad++;
		return 0;
	}
	if (le32toh(got) != len + 1 || v->hdr[(size_t)slot * HDR_SLOT + 16] != 0 ||
	    get64(slot_data(v, slot)) != block_tag(v->sector[slot] * 512 / VB_BLOCK))
		v->bad++;
	return (int)slot;
}

/* Spins until the next completion: its slot, or -ETIMEDOUT. */
static int wait_one(struct vb *v, uint32_t len)
{
	int64_t limit = 0;
	int slot;

	for (unsigned i = 0; (slot = reap(v, len)) < 0; i++) {
		__builtin_ia32_pause();
		if (i & 1023)
			continue;
		if (!limit)
			limit = bench_now_ns() + VB_SPIN_NS;
		else if (bench_now_ns() > limit)
			return -ETIMEDOUT;
	}
	return slot;
}

/* The VM, its disk local (reading @image) or, with @remote (its remote:
 * entries), served through ioreq-remote, which opens the image. */
static int write_config(const char *dir, const char *image, const char *remote, char *path, size_t len)
{
	char park[300];
	FILE *f;

	snprintf(park, sizeof(park), "%s/park.txt", dir);
	f = fopen(park, "we");
	if (!f)
		return -errno;
	/* The sim vCPU sleeps: the benchmark's thread takes its place. */
	fputs("repeat 10000000\nsleep 60000\nend\n", f);
	if (fclose(f))
		return -errno;
	snprintf(path, len, "%s/vblk.yaml", dir);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f,
		"broker:\n  runtime_dir: %s/run\n"
		"vms:\n  - name: vblk\n    backend: sim\n    vcpus: 1\n    memory: " VB_MEMORY "\n"
		"    scripts: [park.txt]\n"
		"    devices:\n"
		"      - name: %s\n"
		"        pci: [\"00:04.0\"]\n"
		"        windows: { mmio: [\"" VB_WINDOW "\"] }\n"
		"        msi: true\n"
		"        memory: guest\n"
		"        doorbells: 1\n",
		dir, remote ? "dev0" : "disk");
	if (remote)
		fprintf(f, "        remote: { %s }\n", remote);
	else
		fprintf(f, "        program: ioreq-dev-virtio-blk\n        files: [{ path: \"%s\", mode: ro }]\n", image);
	return fclose(f) ? -errno : 0;
}

/* BAR0 programmed, the handshake, queue 0 of VB_QSIZE, DRIVER_OK. */
static int driver_init(struct vb *v)
{
	uint32_t st;
	int i;

	bench_vcpu_pci(v->d, 0, true, VB_BDF, 0x10, 4, (uint32_t)VB_BAR);
	bench_vcpu_pci(v->d, 0, true, VB_BDF, 0x14, 4, (uint32_t)(VB_BAR >> 32));
	bench_vcpu_pci(v->d, 0, true, VB_BDF, 0x04, 2, 0x6); /* memory, bus master */
	/* The device claims the BAR from the broker: until then nobody decodes it. */
	for (i = 0; i < VB_READY_MS && mmio(v, false, CC_NUMQ, 2, 0) != 1; i++)
		usleep(1000);
	if (i == VB_READY_MS) {
		fprintf(stderr, "ioreq-bench: virtio-blk: BAR0 never decoded\n");
		return -ETIMEDOUT;
	}
	mmio(v, true, CC_STATUS, 1, 0);
	mmio(v, true, CC_STATUS, 1, ST_ACK);
	mmio(v, true, CC_STATUS, 1, ST_ACK | ST_DRIVER);
	mmio(v, true, CC_GFSELECT, 4, 1);
	mmio(v, true, CC_GF, 4, 1); /* VIRTIO_F_VERSION_1 */
	mmio(v, true, CC_GFSELECT, 4, 0);
	mmio(v, true, CC_GF, 4, 0);
	mmio(v, true, CC_STATUS, 1, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	st = (uint32_t)mmio(v, false, CC_STATUS, 1, 0);
	if (!(st & ST_FEATURES_OK) || mmio(v, false, VB_DEVCFG, 8, 0) != VBLK_IMAGE_BYTES / 512) {
		fprintf(stderr, "ioreq-bench: virtio-blk: features refused (status 0x%x) or wrong capacity\n", st);
		return -EPROTO;
	}
	for (unsigned s = 0; s < VB_QD; s++)
		set_chain(v, s, VB_BLOCK);
	put16(v->avail, AVAIL_F_NO_INTERRUPT);
	mmio(v, true, CC_Q_SELECT, 2, 0);
	mmio(v, true, CC_Q_SIZE, 2, VB_QSIZE);
	mmio(v, true, CC_Q_DESC, 8, VB_DESC);
	mmio(v, true, CC_Q_AVAIL, 8, VB_AVAIL);
	mmio(v, true, CC_Q_USED, 8, VB_USED);
	mmio(v, true, CC_Q_ENABLE, 2, 1);
	mmio(v, true, CC_STATUS, 1, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
	st = (uint32_t)mmio(v, false, CC_STATUS, 1, 0);
	if (st != (ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK)) {
		fprintf(stderr, "ioreq-bench: virtio-blk: the device did not start (status 0x%x)\n", st);
		return -EPROTO;
	}
	return 0;
}

static void vb_down(struct vb *v)
{
	broker_destroy(v->b);
	if (v->runner)
		remote_runner_stop(v->runner);
}

static int vb_up(const char *dir, const struct worker_args *a, struct vb *v)
{
	struct hsm_vm *vm;
	static const char *const device[] = { "ioreq-dev-virtio-blk", NULL };
	struct vm_device_info info = { 0 };
	char path[512], remote[2048];
	int r = 0;

	if (!strcmp(a->kind, "vblk-remote"))
		r = remote_runner_start(a, dir, device, a->image, remote, sizeof(remote), &v->runner);
	if (r == 0)
		r = write_config(dir, a->image, v->runner ? remote : NULL, path, sizeof(path));
	if (r == 0)
		r = bench_broker_up(path, a->bindir, 1, &v->b);
	if (r < 0) {
		if (v->runner)
			remote_runner_stop(v->runner);
		return r;
	}
	v->d = bench_vm_dispatch(v->b, 0);
	vm = vm_guest(broker_vm(v->b, 0));
	if (vm_device_info(broker_vm(v->b, 0), 0, &info) == 0)
		v->dev_pid = info.sup.pid;
	free(info.ranges);
	v->desc = guestmem_ptr(vm, VB_DESC, 16 * VB_QSIZE);
	v->avail = guestmem_ptr(vm, VB_AVAIL, 6 + 2 * VB_QSIZE);
	v->used = guestmem_ptr(vm, VB_USED, 6 + 8 * VB_QSIZE);
	v->hdr = guestmem_ptr(vm, VB_HDR, HDR_SLOT * VB_QD);
	v->data = guestmem_ptr(vm, VB_DATA, (uint64_t)VB_SEQ * VB_QD);
	r = v->desc && v->avail && v->used && v->hdr && v->data ? driver_init(v) : -EFAULT;
	if (r < 0)
		vb_down(v);
	return r;
}

/* Requests the device got from the broker (notifications that missed the
 * doorbell among them). */
static uint64_t dev_requests(struct vb *v)
{
	struct vm_device_info info = { 0 };
	uint64_t n = 0;

	if (vm_device_info(broker_vm(v->b, 0), 0, &info) == 0)
		n = info.requests[0] + info.requests[1] + info.requests[2];
	free(info.ranges);
	return n;
}

/* The device process's CPU time and context switches per request, as
 * PREFIX_dev_cpu_ns and PREFIX_dev_csw. */
static void dev_cost(const char *prefix, const struct proc_sample *p0, pid_t pid, uint64_t requests)
{
	struct proc_sample p1;
	char key[32];

	if (!requests || proc_sample(pid, &p1) < 0)
		return;
	snprintf(key, sizeof(key), "%s_dev_cpu_ns", prefix);
	out_kv(key, (double)(p1.cpu_ns - p0->cpu_ns) / (double)requests);
	snprintf(key, sizeof(key), "%s_dev_csw", prefix);
	out_kv(key, (double)(p1.csw - p0->csw) / (double)requests);
}

/* One read of @len at @sector in slot 0, waited for. */
static int read_one(struct vb *v, uint64_t sector, uint32_t len)
{
	post(v, 0, sector);
	publish(v);
	return wait_one(v, len) < 0 ? -ETIMEDOUT : 0;
}

/* 4 KiB random reads at queue depth 1; latency samples into @ns. */
static int dev_qd1(struct vb *v, double seconds, uint64_t *ns, double *ret_iops, double *ret_p50)
{
	struct proc_sample p0;
	int64_t t0, end;
	size_t n = 0;

	for (unsigned i = 0; i < VB_WARMUP; i++)
		if (read_one(v, random_block(&v->rng) * (VB_BLOCK / 512), VB_BLOCK) < 0)
			return -ETIMEDOUT;
	proc_sample(v->dev_pid, &p0);
	t0 = bench_now_ns();
	end = t0 + (int64_t)(seconds * 1e9);
	for (int64_t t = t0; t < end; n++) {
		int64_t t1;

		if (read_one(v, random_block(&v->rng) * (VB_BLOCK / 512), VB_BLOCK) < 0)
			return -ETIMEDOUT;
		t1 = bench_now_ns();
		if (n < VB_SAMPLES)
			ns[n] = (uint64_t)(t1 - t);
		t = t1;
	}
	*ret_iops = (double)n / ((double)(bench_now_ns() - t0) / 1e9);
	dev_cost("qd1", &p0, v->dev_pid, n);
	n = n < VB_SAMPLES ? n : VB_SAMPLES;
	latency_print_as("qd1", ns, n);
	*ret_p50 = (double)ns[(n - 1) / 2]; /* sorted: the nearest-rank p50 */
	out_kv("qd1_iops", *ret_iops);
	return 0;
}

/* 4 KiB random reads with VB_QD in flight: after a warm-up of a tenth of
 * the time, completions over the rest. */
static int dev_qd32(struct vb *v, double seconds, double *ret_iops)
{
	struct proc_sample p0 = { 0 };
	int64_t t0 = bench_now_ns(), start = t0 + (int64_t)(seconds * 1e8), end = start + (int64_t)(seconds * 1e9);
	uint64_t n = 0;
	bool counting = false;

	for (unsigned s = 0; s < VB_QD; s++)
		post(v, s, random_block(&v->rng) * (VB_BLOCK / 512));
	publish(v);
	for (;;) {
		int64_t now = bench_now_ns();
		unsigned got = 0;
		int slot;

		if (!counting && now >= start) {
			counting = true;
			proc_sample(v->dev_pid, &p0);
			n = 0;
			start = now;
		}
		if (now >= end)
			break;
		slot = wait_one(v, VB_BLOCK);
		if (slot < 0)
			return slot;
		do {
			post(v, (unsigned)slot, random_block(&v->rng) * (VB_BLOCK / 512));
			got++;
		} while ((slot = reap(v, VB_BLOCK)) >= 0);
		n += got;
		publish(v);
	}
	*ret_iops = (double)n / ((double)(bench_now_ns() - start) / 1e9);
	dev_cost("qd32", &p0, v->dev_pid, n);
	/* Drain: the next figure starts with an idle device. */
	for (uint16_t left = (uint16_t)(v->avail_idx - v->used_idx); left; left--)
		if (wait_one(v, VB_BLOCK) < 0)
			return -ETIMEDOUT;
	out_kv("qd32_iops", *ret_iops);
	return 0;
}

/* 128 KiB reads, one after the other through the image, one at a time. */
static int dev_seq(struct vb *v, double seconds, double *ret_mbs)
{
	struct proc_sample p0;
	uint64_t off = 0, n = 0;
	int64_t t0, end;

	set_chain(v, 0, VB_SEQ);
	for (unsigned i = 0; i < VB_WARMUP / 10; i++, off = (off + VB_SEQ) % VBLK_IMAGE_BYTES)
		if (read_one(v, off / 512, VB_SEQ) < 0)
			return -ETIMEDOUT;
	proc_sample(v->dev_pid, &p0);
	t0 = bench_now_ns();
	end = t0 + (int64_t)(seconds * 1e9);
	for (; bench_now_ns() < end; n++, off = (off + VB_SEQ) % VBLK_IMAGE_BYTES)
		if (read_one(v, off / 512, VB_SEQ) < 0)
			return -ETIMEDOUT;
	*ret_mbs = (double)(n * VB_SEQ) / ((double)(bench_now_ns() - t0) / 1e9) / 1e6;
	dev_cost("seq", &p0, v->dev_pid, n);
	set_chain(v, 0, VB_BLOCK);
	out_kv("seq_mbs", *ret_mbs);
	return 0;
}

/* ---- the baselines: preadv on the same image ---- */

struct reader {
	int fd;
	uint8_t *buf;
	uint64_t rng;
	int64_t end;
	uint64_t n, bad;
};

static void check_tag(struct reader *rd, uint64_t block)
{
	if (get64(rd->buf) != block_tag(block))
		rd->bad++;
}

/* One 4 KiB preadv at a random block; -errno on failure. */
static int pread_random(struct reader *rd)
{
	uint64_t block = random_block(&rd->rng);
	struct iovec iov = { rd->buf, VB_BLOCK };

	if (preadv(rd->fd, &iov, 1, (off_t)(block * VB_BLOCK)) != (ssize_t)VB_BLOCK)
		return -EIO;
	check_tag(rd, block);
	return 0;
}

static void *reader_thread(void *arg)
{
	struct reader *rd = arg;

	while (bench_now_ns() < rd->end && pread_random(rd) == 0)
		rd->n++;
	return NULL;
}

static int base_pread1(struct reader *rd, double seconds, uint64_t *ns, double *ret_iops, double *ret_p50)
{
	int64_t t0, end;
	size_t n = 0;

	for (unsigned i = 0; i < VB_WARMUP; i++)
		if (pread_random(rd) < 0)
			return -EIO;
	t0 = bench_now_ns();
	end = t0 + (int64_t)(seconds * 1e9);
	for (int64_t t = t0; t < end; n++) {
		int64_t t1;

		if (pread_random(rd) < 0)
			return -EIO;
		t1 = bench_now_ns();
		if (n < VB_SAMPLES)
			ns[n] = (uint64_t)(t1 - t);
		t = t1;
	}
	*ret_iops = (double)n / ((double)(bench_now_ns() - t0) / 1e9);
	n = n < VB_SAMPLES ? n : VB_SAMPLES;
	latency_print_as("pread1", ns, n);
	*ret_p50 = (double)ns[(n - 1) / 2];
	out_kv("pread1_iops", *ret_iops);
	return 0;
}

/* VB_THREADS threads, each with its own buffer (@bufs), for @seconds from
 * before the first starts until after the last ends. */
static int base_pread4(struct reader *proto, uint8_t *const *bufs, double seconds, double *ret_iops)
{
	struct reader rd[VB_THREADS];
	pthread_t t[VB_THREADS];
	int64_t t0 = bench_now_ns();
	unsigned started = 0;
	uint64_t n = 0;

	for (unsigned i = 0; i < VB_THREADS; i++) {
		rd[i] = (struct reader){ .fd = proto->fd, .buf = bufs[i], .rng = proto->rng + i + 1,
					 .end = t0 + (int64_t)(seconds * 1e9) };
		if (pthread_create(&t[i], NULL, reader_thread, &rd[i]))
			break;
		started++;
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(t[i], NULL);
		n += rd[i].n;
		proto->bad += rd[i].bad;
	}
	if (started < VB_THREADS)
		return -EAGAIN;
	*ret_iops = (double)n / ((double)(bench_now_ns() - t0) / 1e9);
	out_kv("pread4_iops", *ret_iops);
	return 0;
}

static int base_seq(struct reader *rd, double seconds, double *ret_mbs)
{
	uint64_t off = 0, n = 0;
	int64_t t0 = bench_now_ns(), end = t0 + (int64_t)(seconds * 1e9);

	for (; bench_now_ns() < end; n++, off = (off + VB_SEQ) % VBLK_IMAGE_BYTES) {
		struct iovec iov = { rd->buf, VB_SEQ };

		if (preadv(rd->fd, &iov, 1, (off_t)off) != (ssize_t)VB_SEQ)
			return -EIO;
		check_tag(rd, off / VB_BLOCK);
	}
	*ret_mbs = (double)(n * VB_SEQ) / ((double)(bench_now_ns() - t0) / 1e9) / 1e6;
	out_kv("pread_seq_mbs", *ret_mbs);
	return 0;
}

/* The figures and their baselines, alternately; then the ratios. */
static int measure(struct vb *v, struct reader *rd, uint8_t *const *bufs, double seconds, uint64_t *ns)
{
	double dev_iops = 0, dev_p50 = 0, base_iops = 0, base_p50 = 0, qd32 = 0, base4 = 0, seq = 0, base_s = 0;
	uint64_t req0 = dev_requests(v);
	int r;

	r = dev_qd1(v, seconds, ns, &dev_iops, &dev_p50);
	if (r == 0)
		r = base_pread1(rd, seconds, ns, &base_iops, &base_p50);
	if (r == 0)
		r = dev_qd32(v, seconds, &qd32);
	if (r == 0)
		r = base_pread4(rd, bufs, seconds, &base4);
	if (r == 0)
		r = dev_seq(v, seconds, &seq);
	if (r == 0)
		r = base_seq(rd, seconds, &base_s);
	if (r < 0)
		return r;
	out_kv("x_qd1_iops", dev_iops / base_iops);
	out_kv("x_qd1_p50", dev_p50 / base_p50);
	out_kv("x_qd32_iops", qd32 / base4);
	out_kv("x_seq_mbs", seq / base_s);
	out_kv("notify_requests", (double)(dev_requests(v) - req0));
	out_kv("bad_values", (double)(v->bad + rd->bad));
	return 0;
}

/* vblk-remote: the device on "another host" (ioreq-remote over
 * tls+tcp:// on 127.0.0.1, guest memory through messages): QD1 only, the
 * local figures being the baseline (bench.c puts them side by side). */
static int measure_remote(struct vb *v, double seconds, uint64_t *ns)
{
	double iops, p50;
	int r = dev_qd1(v, seconds, ns, &iops, &p50);

	if (r == 0)
		out_kv("bad_values", (double)v->bad);
	return r;
}

int vblk_worker(const struct worker_args *a)
{
	double seconds = a->seconds > 0 ? a->seconds : TPUT_SECONDS;
	uint64_t *ns = calloc(VB_SAMPLES, sizeof(*ns));
	uint8_t *bufs[VB_THREADS] = { 0 };
	struct reader rd = { .fd = -1, .rng = 0x9e3779b97f4a7c15ull };
	struct vb v = { .rng = 0x2545f4914f6cdd1dull };
	char dir[256] = "";
	int r = ns ? 0 : -ENOMEM;

	log_set_level(LOG_WARNING);
	for (unsigned i = 0; r == 0 && i < VB_THREADS; i++)
		if (!(bufs[i] = aligned_alloc(VB_BLOCK, VB_SEQ)))
			r = -ENOMEM;
	if (r == 0 && !a->image)
		r = -EINVAL;
	if (r == 0) {
		rd.buf = bufs[0];
		rd.fd = open(a->image, O_RDONLY | O_CLOEXEC);
		if (rd.fd < 0)
			r = -errno;
	}
	if (r == 0)
		r = bench_mkdtemp(dir, sizeof(dir));
	if (r == 0)
		r = vb_up(dir, a, &v);
	if (r == 0) {
		r = v.runner ? measure_remote(&v, seconds, ns) : measure(&v, &rd, bufs, seconds, ns);
		vb_down(&v);
	}
	if (dir[0])
		bench_rmtree(dir);
	if (rd.fd >= 0)
		close(rd.fd);
	for (unsigned i = 0; i < VB_THREADS; i++)
		free(bufs[i]);
	free(ns);
	return r;
}
