/* The broker in-process, on sim VMs whose vCPUs are the benchmark's threads.
 *
 * The broker is the real one: broker_create and broker_start on a generated
 * YAML file, its VM thread, routing, the rpc engine, a real ioreq-dev-null
 * it spawned (in its sandbox, the default), and the sim backend's VM with
 * its dispatcher (kernel/dispatch.c). The sim vCPU threads run a script that
 * only sleeps, so they never touch their slots; the benchmark's threads take
 * their places and post each access exactly as a sim vCPU does for a script
 * line (sim.c, vcpu_access): fill the slot, dispatch_submit,
 * dispatch_wait_complete, on the VM's dispatcher (hsm_vm.local). So one
 * sample is one guest access as its vCPU sees it:
 *
 *   vCPU: fill slot, dispatch_submit (futex wake) -> broker VM thread:
 *   route, pack, nng_sendmsg -> nng -> ioreq-dev-null -> nng -> rx_done:
 *   vm_complete -> dispatch_notify (futex wake) -> vCPU returns.
 *
 * Cases:
 *   broker            reads of the device's port (the broker path), the
 *                     device in its sandbox (the broker's default)
 *   broker-nosandbox  the same with "sandbox: none" (no seccomp filter on
 *                     the device's syscalls; the allocation counter needs it)
 *   broker-unclaimed  reads of a port nobody serves: the broker's VM thread
 *                     completes them itself (the path minus nng and device)
 *   remote            reads of the device's port, the device served from
 *                     "another host" through ioreq-remote (remote.c)
 *   hsm-client        no broker: an in-HSM client (dispatch_add_client)
 *                     answers in the vCPU's thread (the in-process baseline)
 *   throughput        VMs x vCPUs reading the device port for a while
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "broker.h"
#include "dispatch.h"
#include "hsm.h"
#include "log.h"
#include "vm.h"

#define MAX_VMS 4
#define MAX_DEVICES 8
#define VCPU_WARMUP 200
/* What the sim vCPU threads run meanwhile: a sleep of days. */
#define PARK_SCRIPT "repeat 10000000\nsleep 60000\nend\n"

/* ---- the vCPU side ---- */

/* One 4-byte port access, as sim.c's vcpu_access posts it. */
uint32_t bench_vcpu_pio(struct dispatch *d, unsigned vcpu, bool write, uint16_t port, uint32_t value)
{
	struct acrn_io_request *req = &d->page->req_slot[vcpu];

	req->type = ACRN_IOREQ_TYPE_PORTIO;
	req->completion_polling = 0;
	memset(&req->reqs, 0, sizeof(req->reqs));
	req->reqs.pio_request.direction = write ? ACRN_IOREQ_DIR_WRITE : ACRN_IOREQ_DIR_READ;
	req->reqs.pio_request.address = port;
	req->reqs.pio_request.size = 4;
	req->reqs.pio_request.value = value;
	dispatch_submit(d, vcpu);
	dispatch_wait_complete(d, vcpu);
	return req->reqs.pio_request.value;
}

uint64_t bench_vcpu_mmio(struct dispatch *d, unsigned vcpu, bool write, uint64_t addr, unsigned size, uint64_t value)
{
	struct dispatch_access a = { .type = ACRN_IOREQ_TYPE_MMIO,
				     .dir = write ? ACRN_IOREQ_DIR_WRITE : ACRN_IOREQ_DIR_READ,
				     .addr = addr,
				     .size = size,
				     .value = value };

	return dispatch_access(d, vcpu, &a, false);
}

/* Configuration mechanism #1, as sim.c's "pci" statement does it: the
 * address to 0xCF8, then the data port, which the HSM turns into PCICFG. */
uint32_t bench_vcpu_pci(struct dispatch *d, unsigned vcpu, bool write, uint32_t bdf, unsigned reg, unsigned size,
			uint32_t value)
{
	uint32_t cf8 = 1u << 31 | (bdf >> 8) << 16 | (bdf & 0xff) << 8 | (reg & 0xfc) | (reg & 0xf00) << 16;
	struct dispatch_access a = { .type = ACRN_IOREQ_TYPE_PORTIO,
				     .dir = ACRN_IOREQ_DIR_WRITE,
				     .addr = 0xcf8,
				     .size = 4,
				     .value = cf8 };

	dispatch_access(d, vcpu, &a, false);
	a.dir = write ? ACRN_IOREQ_DIR_WRITE : ACRN_IOREQ_DIR_READ;
	a.addr = 0xcfc + (reg & 3);
	a.size = size;
	a.value = value;
	return (uint32_t)dispatch_access(d, vcpu, &a, false);
}

static uint32_t vcpu_read(struct dispatch *d, unsigned vcpu, uint16_t port)
{
	return bench_vcpu_pio(d, vcpu, false, port, 0);
}

/* Times @iters reads after @warmup; *@bad counts reads that did not return @expect. */
static void vcpu_latency(struct dispatch *d, uint16_t port, uint32_t expect, const struct worker_args *a,
			 pid_t peer, uint64_t *ns)
{
	uint64_t bad = 0;
	struct meter m;

	for (unsigned i = 0; i < a->warmup; i++)
		bad += vcpu_read(d, 0, port) != expect;
	meter_start(&m, peer);
	for (unsigned i = 0; i < a->iters; i++) {
		int64_t t0 = bench_now_ns();

		bad += vcpu_read(d, 0, port) != expect;
		ns[i] = (uint64_t)(bench_now_ns() - t0);
	}
	meter_print(&m, a->iters);
	latency_print(ns, a->iters);
	out_kv("bad_values", (double)bad);
}

/* ---- the in-HSM baseline ---- */

static void hsm_client_read(void *priv, unsigned vcpu, struct acrn_io_request *req)
{
	req->reqs.pio_request.value = (uint32_t)BENCH_PATTERN;
}

static int hsm_client_run(const struct worker_args *a, uint64_t *ns)
{
	struct acrn_io_request_buffer *page = aligned_alloc(4096, sizeof(*page));
	struct dispatch d;
	int r = -ENOMEM;

	if (page)
		r = dispatch_init(&d, page, 1);
	if (r == 0)
		r = dispatch_add_client(&d, "bench", ACRN_IOREQ_TYPE_PORTIO, BENCH_DEV_PORT, BENCH_DEV_PORT + 7,
					hsm_client_read, NULL);
	if (r == 0)
		vcpu_latency(&d, BENCH_DEV_PORT, (uint32_t)BENCH_PATTERN, a, 0, ns);
	free(page);
	return r;
}

/* ---- the broker ---- */

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) ? -errno : 0;
}

/* What the benchmark's devices are configured with. */
struct dev_setup {
	const char *sandbox;   /* strict, none */
	const char *transport; /* ring, nng */
	unsigned poll_us;
	unsigned devices;      /* per VM, at BENCH_DEV_PORT + 8 * i */
	const char *remote;    /* the one device's remote: entries, or NULL */
};

static int write_config(const char *dir, unsigned vms, unsigned vcpus, const struct dev_setup *ds, char *path,
			size_t len)
{
	char park[300];
	FILE *f;
	int r;

	snprintf(park, sizeof(park), "%s/park.txt", dir);
	r = write_file(park, PARK_SCRIPT);
	if (r < 0)
		return r;
	snprintf(path, len, "%s/bench.yaml", dir);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f, "broker:\n  runtime_dir: %s/run\nvms:\n", dir);
	for (unsigned v = 0; v < vms; v++) {
		fprintf(f, "  - name: vm%u\n    backend: sim\n    vcpus: %u\n    scripts: [", v, vcpus);
		for (unsigned c = 0; c < vcpus; c++)
			fprintf(f, "%spark.txt", c ? ", " : "");
		fprintf(f, "]\n    devices:\n");
		if (ds->remote)
			fprintf(f, "      - name: dev0\n        pio: [\"0x%x+8\"]\n        remote: { %s }\n", BENCH_DEV_PORT,
				ds->remote);
		for (unsigned d = 0; !ds->remote && d < ds->devices; d++)
			fprintf(f,
				"      - name: dev%u\n"
				"        program: ioreq-dev-null\n"
				"        args: [--pattern, \"0x%llx\"]\n"
				"        pio: [\"0x%x+8\"]\n"
				"        sandbox: %s\n"
				"        transport: %s\n"
				"        poll_us: %u\n",
				d, BENCH_PATTERN, BENCH_DEV_PORT + 8 * d, ds->sandbox, ds->transport, ds->poll_us);
	}
	return fclose(f) ? -errno : 0;
}

int bench_broker_up(const char *path, const char *bindir, unsigned vms, struct broker **ret)
{
	char err[1024];
	struct cfg *cfg;
	int r;

	r = cfg_load(path, bindir, &cfg, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "ioreq-bench: %s\n", err);
		return r;
	}
	r = broker_create(cfg, bindir, ret);
	if (r < 0)
		return r;
	r = broker_start(*ret);
	if (r == 0)
		r = broker_autostart(*ret);
	for (unsigned v = 0; r == 0 && v < vms; v++) {
		if (!vm_guest(broker_vm(*ret, v)) || !vm_guest(broker_vm(*ret, v))->local)
			r = -ENODEV;
		for (size_t i = 0; r == 0 && i < vm_n_devices(broker_vm(*ret, v)); i++) {
			struct vm_device_info d = { 0 };

			if (vm_device_info(broker_vm(*ret, v), i, &d) < 0 || d.sup.state != DEVSUP_READY)
				r = -ENOTCONN;
			free(d.ranges);
		}
	}
	if (r < 0) {
		fprintf(stderr, "ioreq-bench: the broker did not start: %s\n", strerror(-r));
		broker_destroy(*ret);
	}
	return r;
}

/* The device is sandboxed as the broker's default has it, except where the
 * allocation counter must reach into it (its empty root has no counter);
 * it takes requests in its ring (the default) unless the case says nng;
 * it and the broker spin 50 us for the next request or reply in
 * broker-poll. */
static int broker_up(const char *dir, const struct worker_args *a, unsigned vms, unsigned vcpus, const char *remote,
		     struct broker **ret)
{
	struct dev_setup ds = {
		.remote = remote,
		.sandbox = strcmp(a->kind, "broker-nosandbox") ? "strict" : "none",
		.transport = a->transport ? a->transport : strcmp(a->kind, "broker-nng") ? "ring" : "nng",
		.poll_us = strcmp(a->kind, "broker-poll") ? 0 : 50,
		.devices = a->devices ? a->devices : 1,
	};
	char path[512];
	cpu_set_t cpus;
	int r;

	if (ds.poll_us && (sched_getaffinity(0, sizeof(cpus), &cpus) < 0 || CPU_COUNT(&cpus) < 2)) {
		fprintf(stderr, "ioreq-bench: polling on both sides needs two CPUs\n");
		return -EXDEV;
	}
	r = write_config(dir, vms, vcpus, &ds, path, sizeof(path));
	return r < 0 ? r : bench_broker_up(path, a->bindir, vms, ret);
}

struct dispatch *bench_vm_dispatch(struct broker *b, unsigned vm)
{
	return vm_guest(broker_vm(b, vm))->local;
}

static pid_t device_pid(struct broker *b, unsigned vm, size_t i)
{
	struct vm_device_info d;

	if (vm_device_info(broker_vm(b, vm), i, &d) < 0)
		return 0;
	free(d.ranges);
	return d.sup.pid;
}

static uint64_t broker_fallbacks(struct broker *b)
{
	uint64_t n = 0;

	for (size_t v = 0; v < broker_n_vms(b); v++) {
		struct vm_info i;

		vm_info(broker_vm(b, v), &i);
		n += i.fallbacks;
	}
	return n;
}

/* remote: the runner first (it dials until the broker listens); the
 * broker's start returns once the device is ready. The other side of
 * the meter is the runner (the relay; the device is its child). */
static int broker_latency_run(const struct worker_args *a, const char *dir, bool unclaimed, uint64_t *ns)
{
	bool remote = !strcmp(a->kind, "remote");
	char yaml[2048], pattern[24];
	const char *const device[] = { "ioreq-dev-null", "--pattern", pattern, NULL };
	pid_t runner = 0;
	struct broker *b;
	int r;

	snprintf(pattern, sizeof(pattern), "0x%llx", BENCH_PATTERN);
	if (remote && (r = remote_runner_start(a, dir, device, NULL, yaml, sizeof(yaml), &runner)) < 0)
		return r;
	r = broker_up(dir, a, 1, 1, remote ? yaml : NULL, &b);
	if (r < 0)
		goto out;
	if (unclaimed)
		vcpu_latency(bench_vm_dispatch(b, 0), BENCH_UNCLAIMED_PORT, 0xffffffffu, a, 0, ns);
	else
		vcpu_latency(bench_vm_dispatch(b, 0), BENCH_DEV_PORT, (uint32_t)BENCH_PATTERN, a,
			     remote ? runner : device_pid(b, 0, 0), ns);
	if (!unclaimed)
		out_kv("fallbacks", (double)broker_fallbacks(b));
	broker_destroy(b);
out:
	if (runner)
		remote_runner_stop(runner);
	return r;
}

/* ---- throughput ---- */

struct tp_vcpu {
	struct dispatch *d;
	unsigned index;
	uint16_t port;
	pthread_t thread;
	pthread_barrier_t *start;
	_Atomic bool *stop;
	uint64_t done, bad;
};

static void *tp_vcpu_main(void *arg)
{
	struct tp_vcpu *c = arg;

	for (unsigned i = 0; i < VCPU_WARMUP; i++)
		c->bad += vcpu_read(c->d, c->index, c->port) != (uint32_t)BENCH_PATTERN;
	pthread_barrier_wait(c->start);
	while (!atomic_load_explicit(c->stop, memory_order_relaxed)) {
		c->bad += vcpu_read(c->d, c->index, c->port) != (uint32_t)BENCH_PATTERN;
		c->done++;
	}
	return NULL;
}

static void cpu_of(pid_t pid, uint64_t *ns)
{
	struct proc_sample s;

	if (proc_sample(pid, &s) == 0)
		*ns += s.cpu_ns;
}

static int throughput_run(const struct worker_args *a, const char *dir)
{
	unsigned n = a->vms * a->vcpus, started = 0;
	uint64_t done = 0, bad = 0, self0 = 0, self1 = 0, dev0 = 0, dev1 = 0;
	pid_t devs[MAX_VMS * MAX_DEVICES];
	unsigned n_devs = a->devices ? a->devices : 1;
	pthread_barrier_t start;
	_Atomic bool stop = false;
	struct tp_vcpu *c;
	struct broker *b;
	int64_t t0 = 0, t1 = 0;
	int r;

	if (!a->vms || a->vms > MAX_VMS || !a->vcpus || a->vcpus > ACRN_IO_REQUEST_MAX || n_devs > MAX_DEVICES)
		return -EINVAL;
	c = calloc(n, sizeof(*c));
	if (!c)
		return -ENOMEM;
	r = broker_up(dir, a, a->vms, a->vcpus, NULL, &b);
	if (r < 0) {
		free(c);
		return r;
	}
	for (unsigned v = 0; v < a->vms; v++)
		for (unsigned d = 0; d < n_devs; d++)
			devs[v * n_devs + d] = device_pid(b, v, d);
	pthread_barrier_init(&start, NULL, n + 1);
	for (unsigned i = 0; i < n; i++) {
		c[i] = (struct tp_vcpu){
			.d = bench_vm_dispatch(b, i / a->vcpus),
			.index = i % a->vcpus,
			.port = (uint16_t)(BENCH_DEV_PORT + 8 * ((i % a->vcpus) % (a->devices ? a->devices : 1))),
			.start = &start,
			.stop = &stop,
		};
		r = -pthread_create(&c[i].thread, NULL, tp_vcpu_main, &c[i]);
		if (r < 0)
			break;
		started++;
	}
	if (started == n) {
		pthread_barrier_wait(&start);
		cpu_of(0, &self0);
		for (unsigned v = 0; v < a->vms * n_devs; v++)
			cpu_of(devs[v], &dev0);
		t0 = bench_now_ns();
		usleep((useconds_t)(a->seconds * 1e6));
		atomic_store(&stop, true);
		t1 = bench_now_ns();
		cpu_of(0, &self1);
		for (unsigned v = 0; v < a->vms * n_devs; v++)
			cpu_of(devs[v], &dev1);
	} else {
		/* The ones that did start wait at the barrier: let them through. */
		atomic_store(&stop, true);
		for (unsigned i = started; i < n + 1; i++)
			pthread_barrier_wait(&start);
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(c[i].thread, NULL);
		done += c[i].done;
		bad += c[i].bad;
	}
	if (started == n && done) {
		out_kv("requests", (double)done);
		out_kv("rate", (double)done / ((double)(t1 - t0) / 1e9));
		out_kv("req_cpu_ns", (double)(self1 - self0) / done);
		out_kv("rep_cpu_ns", (double)(dev1 - dev0) / done);
		out_kv("cpu_busy", (double)(self1 - self0 + dev1 - dev0) / (double)(t1 - t0));
		out_kv("bad_values", (double)bad);
		out_kv("fallbacks", (double)broker_fallbacks(b));
	}
	pthread_barrier_destroy(&start);
	broker_destroy(b);
	free(c);
	return r;
}

int bp_worker(const struct worker_args *a)
{
	uint64_t *ns = NULL;
	char dir[256];
	int r;

	/* The broker's own info lines would only get in the way of the results. */
	log_set_level(LOG_WARNING);
	r = bench_mkdtemp(dir, sizeof(dir));
	if (r < 0)
		return r;
	if (strcmp(a->kind, "throughput")) {
		ns = calloc(a->iters ? a->iters : 1, sizeof(*ns));
		if (!ns) {
			r = -ENOMEM;
			goto out;
		}
	}
	if (!strcmp(a->kind, "broker") || !strcmp(a->kind, "broker-nosandbox") || !strcmp(a->kind, "broker-poll") ||
	    !strcmp(a->kind, "broker-nng") || !strcmp(a->kind, "remote"))
		r = broker_latency_run(a, dir, false, ns);
	else if (!strcmp(a->kind, "broker-unclaimed"))
		r = broker_latency_run(a, dir, true, ns);
	else if (!strcmp(a->kind, "hsm-client"))
		r = hsm_client_run(a, ns);
	else if (!strcmp(a->kind, "throughput"))
		r = throughput_run(a, dir);
	else
		r = -EINVAL;
out:
	free(ns);
	bench_rmtree(dir);
	return r;
}
