/* ioreq-bench: the benchmark's parts and what they share.
 *
 * The program is its own orchestra: the orchestrator (bench.c) starts one
 * worker process per measurement ("ioreq-bench --worker CASE ..."), with the
 * CPU placement already applied, so that every thread of the worker, nng's
 * included, and every process the worker starts (a pong, a device) inherit
 * it. A worker prints its results as "key value" lines on stdout.
 *
 *   pingpong.c    the limit (raw AF_UNIX) and the transport floor (bare nng)
 *   shmpong.c     the request ring's: a shared page, spinning or eventfds
 *   brokerpath.c  the broker in-process: the broker path, its decomposition,
 *                 the in-HSM baseline, throughput
 *   dataplane.c   the broker in-process with ioreq-bench-dev (benchdev.c,
 *                 dplane.h): guest-memory copies, doorbells, irqfds
 *   vblk.c        the broker in-process with ioreq-dev-virtio-blk, driven
 *                 by a polling virtio driver, against preadv
 *   remote.c      the broker in-process with ioreq-dev-null served through
 *                 ioreq-remote over TLS: on 127.0.0.1, and over a veth pair
 *                 between two network namespaces
 *   daemon.c      runs the real ioreq-brokerd: the kvm guests (guest.c,
 *                 dplane_guest.c), memory, and a cross-check of the broker
 *                 path through a sim script
 *   report.c      the tables and the JSON
 *   util.c        clocks, placement, /proc readings, percentiles
 */
#ifndef IOREQ_BENCH_H
#define IOREQ_BENCH_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What the benchmark's vCPUs read: served by ioreq-dev-null... */
#define BENCH_DEV_PORT 0x510
#define BENCH_DEV_PORT_RANGE "0x510+8"
/* ...which answers this (a read's reply carries a value, as most do). */
#define BENCH_PATTERN 0x5a5a5a5aull
/* Routed to nobody: the broker completes it itself. */
#define BENCH_UNCLAIMED_PORT 0x600

/* Each latency and throughput case runs in ROUNDS rounds, interleaved with
 * the other cases, and reports the median of its rounds: on a shared machine
 * a burst of someone else's load then spoils a round, not a case. */
#define ROUNDS 3
/* How long each throughput round lasts. */
#define TPUT_SECONDS 1.0
#define TPUT_SECONDS_QUICK 0.2

/* What a worker is told. */
struct worker_args {
	const char *kind;  /* the case, see bench.c */
	unsigned iters;    /* timed round trips */
	unsigned warmup;   /* untimed ones first */
	size_t req_size;   /* bytes of a packed Request envelope */
	size_t rep_size;   /* bytes of a packed Reply envelope */
	unsigned vms;      /* throughput: VMs */
	unsigned vcpus;    /* throughput: vCPUs per VM */
	unsigned devices;  /* throughput: devices per VM (vCPU i reads device i % devices) */
	const char *transport; /* throughput: the devices' (ring, nng) */
	double seconds;    /* throughput: how long */
	const char *exe;   /* this program, for pongs */
	const char *bindir; /* where ioreq-dev-null lives */
	const char *image; /* vblk: the disk image */
	const char *certs; /* remote: the certificates' directory (NULL: tcp://, insecure) */
	const char *netns; /* remote: "BROKER:DEVICE", the namespaces (NULL: 127.0.0.1) */
};

/* The orchestrator's view of one measurement: the worker's "key value"
 * lines, or why there are none. */
#define RESULT_MAX_KV 40

struct result {
	const char *id;        /* the case, as in the JSON */
	const char *title;     /* what it measures, for the table */
	const char *placement; /* "unpinned", "cpuN", or NULL */
	unsigned vms, vcpus, devices; /* throughput rows */
	const char *transport;
	bool ok;
	char why[256];         /* !ok: skipped or failed, and why */
	size_t n;
	struct {
		char key[32];
		double value;
	} kv[RESULT_MAX_KV];
};

void result_set(struct result *r, const char *key, double value);
/* NAN when @key is missing. */
double result_get(const struct result *r, const char *key);

/* What every part of the orchestrator needs. */
struct bench_ctx {
	const char *exe;
	char bindir[4096];
	char tmp[256];     /* the orchestrator's temporary directory */
	bool quick;
	unsigned iters;    /* timed round trips per latency case */
	cpu_set_t all;     /* "unpinned": the CPUs we were given */
	cpu_set_t one;     /* "pinned": one of them, for every side */
	int cpu;
	char one_name[16]; /* "cpu0" */
	size_t req_size, rep_size;
	double tsc_ghz;    /* the host's TSC rate, for guest cycle counts */
};

/* ---- util.c ---- */

int64_t bench_now_ns(void);

/* A private temporary directory, removed (with what is in it) by bench_rmtree. */
int bench_mkdtemp(char *buf, size_t len);
void bench_rmtree(const char *dir);

/* posix_spawn of @argv with @cpus as its affinity (NULL: ours), stdout on
 * @out_fd, stderr on @err_fd and @pass_fd as fd 3 (each -1: inherited /
 * none). */
int bench_spawn(char *const argv[], const cpu_set_t *cpus, int out_fd, int err_fd, int pass_fd, pid_t *ret);

/* The last non-empty line of the file at @path, for saying why a run failed. */
void bench_last_line(const char *path, char *buf, size_t len);

/* Waits up to @timeout_ms for @pid; kills it past that. Returns its wait
 * status, or a negative errno. */
int bench_wait(pid_t pid, int timeout_ms);

/* The Request the broker sends for a 4-byte PIO read, and its Reply, packed
 * with wire_pack: the message sizes of every ping-pong. */
int bench_wire_sizes(size_t *ret_req, size_t *ret_rep);

/* Context switches (voluntary + involuntary) and CPU time of every thread
 * of @pid (0: this process) that is alive now. */
struct proc_sample {
	uint64_t csw;
	uint64_t cpu_ns;
};

int proc_sample(pid_t pid, struct proc_sample *ret);

/* A number from /proc/@pid/status ("VmRSS" in KiB, "Threads"), or a
 * negative errno. */
long proc_status(pid_t pid, const char *key);

/* The children of @pid (every thread's), up to @max; returns how many. */
size_t proc_children(pid_t pid, pid_t *ret, size_t max);

/* Counters of the allocation counter (alloc_count.h), when it is preloaded. */
struct alloc_sample {
	bool valid;
	uint64_t n[4]; /* by enum alloc_origin */
};

void alloc_sample(pid_t pid, struct alloc_sample *ret);

/* Before and after a run of requests: prints, per request, the context
 * switches and CPU time of this process ("req_") and of @peer ("rep_"), and
 * their allocations by origin when the counter is preloaded. */
struct meter {
	pid_t peer;
	struct proc_sample self, other;
	struct alloc_sample aself, aother;
};

void meter_start(struct meter *m, pid_t peer);
void meter_print(const struct meter *m, uint64_t requests);

/* Sorts @ns (n samples, nanoseconds) and prints p50, p99, mean, min, max. */
void latency_print(uint64_t *ns, size_t n);

/* The same as "PREFIX_p50_ns" and "PREFIX_p99_ns" only. */
void latency_print_as(const char *prefix, uint64_t *ns, size_t n);

/* One "key value" line of a worker's output. */
void out_kv(const char *key, double value);

/* ---- the workers and their peers ---- */

int pp_unix_worker(const struct worker_args *a);
int pp_nng_worker(const struct worker_args *a, bool aio);
int pp_unix_pong(int fd, size_t rep_size);
int pp_nng_pong(const char *url, size_t rep_size);
int pp_shm_worker(const struct worker_args *a, bool spin);

/* kind: "broker", "broker-nosandbox", "broker-unclaimed", "hsm-client",
 * "remote", "throughput". */
int bp_worker(const struct worker_args *a);

/* For the other workers of the in-process broker: starts the broker of
 * the YAML file at @config (sim VMs, each with its device ready), the
 * dispatcher of VM @vm, where the benchmark's threads post as vCPU @vcpu. */
struct broker;
struct dispatch;
int bench_broker_up(const char *config, const char *bindir, unsigned vms, struct broker **ret);
struct dispatch *bench_vm_dispatch(struct broker *b, unsigned vm);
uint32_t bench_vcpu_pio(struct dispatch *d, unsigned vcpu, bool write, uint16_t port, uint32_t value);
/* An MMIO access of @size bytes; a PCI configuration access of function
 * @bdf (bus << 8 | device << 3 | function) through ports 0xCF8/0xCFC. Each
 * returns what a read returned. */
uint64_t bench_vcpu_mmio(struct dispatch *d, unsigned vcpu, bool write, uint64_t addr, unsigned size, uint64_t value);
uint32_t bench_vcpu_pci(struct dispatch *d, unsigned vcpu, bool write, uint32_t bdf, unsigned reg, unsigned size,
			uint32_t value);

/* ---- remote.c ---- */

/* What the remote cases need, made once by the orchestrator. */
struct remote_env {
	char runner[4200];   /* ioreq-remote */
	char why[256];       /* not "": no remote case can run, why */
	char certs[300];     /* "": no openssl, tcp:// with insecure: true */
	char ns_b[32], ns_d[32];
	char why_veth[256];  /* not "": no namespaces, why */
};

void remote_env_up(const struct bench_ctx *c, struct remote_env *e);
/* Deletes the namespaces (also at exit, should the run end early). */
void remote_env_down(struct remote_env *e);

/* In a worker: starts ioreq-remote serving a device ("dev0") for a
 * broker at the address of @a (127.0.0.1 or the veth pair, in which case
 * the runner starts in the device's namespace and the calling thread then
 * enters the broker's), with its files in @dir; the entries of the
 * device's remote: mapping in @yaml. The device: @device, its program
 * (in the bindir) and arguments, and @file (or NULL) the file it reads
 * (the runner's --file). 0 with *@ret, or a negative errno. */
int remote_runner_start(const struct worker_args *a, const char *dir, const char *const *device, const char *file,
			char *yaml, size_t len, pid_t *ret);
void remote_runner_stop(pid_t pid);

/* dataplane.c, kind: "dp-copy", "dp-bell", "dp-irq". */
int dp_worker(const struct worker_args *a);

/* vblk.c: ioreq-dev-virtio-blk against preadv on the image at
 * @a->image, made by vblk_make_image (VBLK_IMAGE_BYTES, every 4 KiB block
 * tagged, written back and read once). */
#define VBLK_IMAGE_BYTES (64ull << 20)
int vblk_make_image(const char *path);
int vblk_worker(const struct worker_args *a);

/* ---- daemon.c: runs of the real ioreq-brokerd ---- */

/* The broker path through a sim script: the mean per access from the wall
 * time of two runs of different lengths. */
void daemon_crosscheck(const struct bench_ctx *c, struct result *r);

/* RSS of the broker per VM and per device, and of a device process. */
void daemon_memory(const struct bench_ctx *c, struct result *r);

/* A guest's in/out loop on /dev/kvm: (a) to the HSM's exit-port client,
 * (b) to ioreq-dev-null, timed by the guest (rdtsc). */
/* @dev_keys: more YAML keys of the device (", transport: nng"). */
void daemon_kvm(const struct bench_ctx *c, const cpu_set_t *cpus, const char *dev_keys, struct result *hsm,
		struct result *dev);

/* The data plane on /dev/kvm (dplane_guest.c): the guest's doorbell and
 * interrupt figures against ioreq-bench-dev, c->iters of each, timed by
 * the guest (rdtsc). */
void daemon_kvm_dataplane(const struct bench_ctx *c, const cpu_set_t *cpus, struct result *r);

/* ---- report.c ---- */

struct report {
	char date[64];
	char commit[64];
	char cpu_model[128];
	char kernel[160];
	unsigned ncpus;
	const struct bench_ctx *ctx;
	double seconds; /* the whole run */
	struct result *lat;
	size_t n_lat;
	struct result *dp;
	size_t n_dp;
	struct result *tput;
	size_t n_tput;
	struct result *alloc;
	size_t n_alloc;
	struct result *remote;
	size_t n_remote;
	struct result *mem;   /* each NULL when not run */
	struct result *check;
	struct result *vblk;
	struct result *vblk_remote; /* QD1 with the device remote */
};

void report_text(const struct report *r);
void report_json(const struct report *r);

#endif
