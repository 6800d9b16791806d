/* The data plane on the sim backend: the real broker in-process (as in
 * brokerpath.c), one sim VM with guest RAM, and a real ioreq-bench-dev in
 * its sandbox with `memory: guest`, three doorbells and an irqfd
 * (dplane.h). The benchmark's thread is the vCPU; each case measures a
 * data-plane path and, in the same loop, its baseline, sample by sample
 * alternately, so that both see the same machine:
 *
 *   dp-copy  the device copies 4 KiB and 1 MiB of guest RAM into a buffer
 *            of its own through the library's view (ioreq_mem_read), timed
 *            in the device; against a memcpy of the same guest pages in
 *            this process (the sim backend's own mapping of the memfd);
 *   dp-copy-remote  the same device served remotely (remote.c: through
 *            ioreq-remote, over tls+tcp:// on 127.0.0.1), its
 *            ioreq_mem_read then MemAccess messages of 16 KiB;
 *   dp-bell  a write to an ioeventfd doorbell: how long it holds the vCPU
 *            (the in-HSM client signals the eventfd and completes it at
 *            once), and until the device, woken in poll(), has stored its
 *            count of rings in guest RAM (the vCPU spins on it, as a
 *            driver polls); against the same write as a request through
 *            the broker to the device and its reply;
 *   dp-irq   from the device's timestamp, taken just before it writes its
 *            irqfd, until the HSM layer injects the interrupt (the sim
 *            backend's line counter moves; the vCPU spins on it); against
 *            the same with the protocol's Interrupt message, which the
 *            broker turns into SET_IRQLINE. The device fires on a doorbell,
 *            so the vCPU's view, ring to injection, is reported too.
 *
 * The spinning vCPU holds one CPU, as a polling driver would: these cases
 * are measured unpinned only. */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "broker.h"
#include "dplane.h"
#include "guestmem.h"
#include "log.h"
#include "sim.h"
#include "vm.h"

#define DP_WARMUP 50
/* A ring that the device never answers is lost, not waited for. */
#define DP_SPIN_NS 1000000000
#define DP_READY_MS 5000

struct dp {
	pid_t runner;            /* dp-copy-remote: ioreq-remote; 0 */
	struct broker *b;
	struct dispatch *d;
	struct hsm_vm *vm;
	uint8_t *shared;
	uint64_t lost;
};

/* The VM, with the device local or (@remote: its remote: entries) served
 * through ioreq-remote. */
static int write_config(const char *dir, const char *remote, char *path, size_t len)
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
	snprintf(path, len, "%s/dp.yaml", dir);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f,
		"broker:\n  runtime_dir: %s/run\n"
		"vms:\n  - name: dp\n    backend: sim\n    vcpus: 1\n    memory: " DP_MEMORY "\n"
		"    scripts: [park.txt]\n"
		"    devices:\n"
		"      - name: %s\n"
		"        %s%s%s\n"
		"        pio: [\"" DP_PORT_RANGE "\"]\n"
		"        irqs: [%u]\n"
		"        memory: guest\n"
		"        doorbells: 3\n"
		"        irqfds: 1\n",
		dir, remote ? "dev0" : "dev", remote ? "remote: { " : "program: ioreq-bench-dev",
		remote ? remote : "", remote ? " }" : "", DP_IRQ_LINE);
	return fclose(f) ? -errno : 0;
}

static uint32_t load32(const struct dp *p, unsigned off)
{
	return __atomic_load_n((uint32_t *)(p->shared + off), __ATOMIC_ACQUIRE);
}

static uint64_t load64(const struct dp *p, unsigned off)
{
	return __atomic_load_n((uint64_t *)(p->shared + off), __ATOMIC_ACQUIRE);
}

static int dp_up(const struct worker_args *a, const char *dir, struct dp *p)
{
	static const char *const device[] = { "ioreq-bench-dev", NULL };
	char path[512], remote[2048];
	bool remoted = !strcmp(a->kind, "dp-copy-remote");
	int r = 0;

	if (remoted)
		r = remote_runner_start(a, dir, device, NULL, remote, sizeof(remote), &p->runner);
	if (r == 0)
		r = write_config(dir, remoted ? remote : NULL, path, sizeof(path));
	if (r == 0)
		r = bench_broker_up(path, a->bindir, 1, &p->b);
	if (r < 0)
		return r;
	p->d = bench_vm_dispatch(p->b, 0);
	p->vm = vm_guest(broker_vm(p->b, 0));
	p->shared = guestmem_ptr(p->vm, DP_SHARED, 4096);
	if (!p->shared) {
		broker_destroy(p->b);
		return -EFAULT;
	}
	/* The device binds its doorbells after its handshake. */
	for (int i = 0; i < DP_READY_MS && load32(p, DP_READY) != DP_READY_MAGIC; i++)
		usleep(1000);
	if (load32(p, DP_READY) != DP_READY_MAGIC) {
		fprintf(stderr, "ioreq-bench: ioreq-bench-dev did not bind its doorbells\n");
		broker_destroy(p->b);
		return -ETIMEDOUT;
	}
	return 0;
}

static uint32_t pio(struct dp *p, bool write, unsigned reg, uint32_t value)
{
	return bench_vcpu_pio(p->d, 0, write, DP_PORT + reg, value);
}

/* ---- copies ---- */

static void copy_size(struct dp *p, const char *name, uint32_t size, unsigned n, uint64_t *dev, uint64_t *mem)
{
	const uint8_t *src = guestmem_ptr(p->vm, DP_SRC, size);
	uint8_t *buf = malloc(size);
	char key[32];

	if (!buf || !src) {
		free(buf);
		p->lost += n;
		return;
	}
	memset(buf, 0, size);
	pio(p, true, DP_COPY, size);
	for (unsigned i = 0; i < DP_WARMUP + n; i++) {
		uint64_t dev_ns = pio(p, false, DP_COPY, 0);
		int64_t t0 = bench_now_ns();

		memcpy(buf, src, size);
		/* The copy must happen, and before the second stamp. */
		__asm__ volatile("" : : "r"(buf) : "memory");
		if (i >= DP_WARMUP) {
			mem[i - DP_WARMUP] = (uint64_t)(bench_now_ns() - t0);
			dev[i - DP_WARMUP] = dev_ns;
		}
	}
	free(buf);
	snprintf(key, sizeof(key), "%s_dev", name);
	latency_print_as(key, dev, n);
	snprintf(key, sizeof(key), "%s_mem", name);
	latency_print_as(key, mem, n);
}

static void dp_copy(struct dp *p, unsigned n, uint64_t *ns)
{
	/* Guest RAM worth copying: not pages of zeroes. */
	memset(guestmem_ptr(p->vm, DP_SRC, DP_COPY_MAX), 0xa5, DP_COPY_MAX);
	copy_size(p, "copy4k", 4096, n, ns, ns + n);
	copy_size(p, "copy1m", DP_COPY_MAX, n, ns, ns + n);
}

/* ---- doorbells ---- */

/* Spins until @done(p, arg); false after DP_SPIN_NS. */
static bool spin(struct dp *p, bool (*done)(const struct dp *p, uint64_t arg), uint64_t arg)
{
	int64_t limit = bench_now_ns() + DP_SPIN_NS;

	for (unsigned i = 0; !done(p, arg); i++) {
		__builtin_ia32_pause();
		if (!(i & 1023) && bench_now_ns() > limit) {
			p->lost++;
			return false;
		}
	}
	return true;
}

static bool acked(const struct dp *p, uint64_t rung)
{
	return load32(p, DP_ACK) == (uint32_t)rung;
}

static void dp_bell(struct dp *p, unsigned n, uint64_t *ns)
{
	uint64_t *stall = ns, *ack = ns + n, *broker = ns + 2 * n;
	uint32_t rung = load32(p, DP_ACK);

	for (unsigned i = 0; i < DP_WARMUP + n; i++) {
		int64_t t0 = bench_now_ns(), t1, t2, t3;

		pio(p, true, DP_BELL_ACK, i);
		t1 = bench_now_ns();
		spin(p, acked, ++rung);
		t2 = bench_now_ns();
		pio(p, true, DP_WRITE, i);
		t3 = bench_now_ns();
		if (i >= DP_WARMUP) {
			stall[i - DP_WARMUP] = (uint64_t)(t1 - t0);
			ack[i - DP_WARMUP] = (uint64_t)(t2 - t0);
			broker[i - DP_WARMUP] = (uint64_t)(t3 - t2);
		}
	}
	latency_print_as("bell_stall", stall, n);
	latency_print_as("bell_ack", ack, n);
	latency_print_as("bell_broker", broker, n);
}

/* ---- interrupts ---- */

static uint64_t injections(const struct dp *p)
{
	struct sim_stats s;

	sim_vm_stats(p->vm, &s);
	return s.irq_ops;
}

static bool injected(const struct dp *p, uint64_t before)
{
	return injections(p) != before;
}

/* Rings @bell and waits for the interrupt: from the device's stamp to the
 * injection in *@ret_dev, from the ring in *@ret_ring. */
static void irq_once(struct dp *p, unsigned bell, uint64_t *ret_dev, uint64_t *ret_ring)
{
	uint64_t before = injections(p);
	int64_t t0 = bench_now_ns(), t1;

	pio(p, true, bell, 1);
	spin(p, injected, before);
	t1 = bench_now_ns();
	*ret_dev = (uint64_t)t1 - load64(p, DP_T0);
	*ret_ring = (uint64_t)(t1 - t0);
}

static void dp_irq(struct dp *p, unsigned n, uint64_t *ns)
{
	uint64_t *fd = ns, *fd_ring = ns + n, *msg = ns + 2 * n, *msg_ring = ns + 3 * n, a, b;

	for (unsigned i = 0; i < DP_WARMUP + n; i++) {
		unsigned k = i >= DP_WARMUP ? i - DP_WARMUP : 0;

		irq_once(p, DP_BELL_IRQFD, i >= DP_WARMUP ? &fd[k] : &a, i >= DP_WARMUP ? &fd_ring[k] : &b);
		irq_once(p, DP_BELL_IRQMSG, i >= DP_WARMUP ? &msg[k] : &a, i >= DP_WARMUP ? &msg_ring[k] : &b);
	}
	latency_print_as("irqfd", fd, n);
	latency_print_as("irqfd_ring", fd_ring, n);
	latency_print_as("irqmsg", msg, n);
	latency_print_as("irqmsg_ring", msg_ring, n);
}

int dp_worker(const struct worker_args *a)
{
	unsigned n = a->iters ? a->iters : 1;
	struct dp p = { 0 };
	uint64_t *ns;
	char dir[256] = "";
	int r;

	log_set_level(LOG_WARNING);
	ns = calloc(4 * (size_t)n, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	r = bench_mkdtemp(dir, sizeof(dir));
	if (r == 0)
		r = dp_up(a, dir, &p);
	if (r == 0) {
		if (!strcmp(a->kind, "dp-copy") || !strcmp(a->kind, "dp-copy-remote"))
			dp_copy(&p, n, ns);
		else if (!strcmp(a->kind, "dp-bell"))
			dp_bell(&p, n, ns);
		else if (!strcmp(a->kind, "dp-irq"))
			dp_irq(&p, n, ns);
		else
			r = -EINVAL;
		out_kv("n", n);
		out_kv("lost", (double)p.lost);
		broker_destroy(p.b);
	}
	if (p.runner)
		remote_runner_stop(p.runner);
	if (dir[0])
		bench_rmtree(dir);
	free(ns);
	return r;
}
