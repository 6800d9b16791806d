/* The run's results as tables (the README's) or as one JSON object. */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void result_set(struct result *r, const char *key, double value)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->kv[i].key, key)) {
			r->kv[i].value = value;
			return;
		}
	if (r->n == RESULT_MAX_KV)
		return;
	snprintf(r->kv[r->n].key, sizeof(r->kv[r->n].key), "%s", key);
	r->kv[r->n++].value = value;
}

double result_get(const struct result *r, const char *key)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->kv[i].key, key))
			return r->kv[i].value;
	return NAN;
}

/* The p50 of case @id at @placement, the denominator of a ratio. */
static double base_p50(const struct report *rep, const char *id, const char *placement)
{
	for (size_t i = 0; i < rep->n_lat; i++) {
		const struct result *r = &rep->lat[i];

		if (r->ok && !strcmp(r->id, id) && r->placement && !strcmp(r->placement, placement))
			return result_get(r, "p50_ns");
	}
	return NAN;
}

/* Ratios only mean something for what crosses the same host path: the
 * guest's figures include KVM-PVM's exit cost. */
static bool has_ratios(const struct result *r)
{
	return strncmp(r->id, "kvm-", 4);
}

static void ratios(const struct report *rep, const struct result *r, double *ret_unix, double *ret_spin,
		   double *ret_nng)
{
	double p50 = result_get(r, "p50_ns");

	*ret_unix = *ret_spin = *ret_nng = NAN;
	if (!r->ok || !has_ratios(r))
		return;
	*ret_unix = p50 / base_p50(rep, "unix", r->placement);
	*ret_spin = p50 / base_p50(rep, "shm-spin", r->placement);
	*ret_nng = p50 / base_p50(rep, "nng-aio", r->placement);
}

/* The kvm guest's sandboxed device over its in-HSM client, at @placement. */
static void kvm_ratios(const struct report *rep, const char *placement)
{
	static const char *const ids[] = { "kvm-dev", "kvm-dev-poll", "kvm-dev-nng" };
	static const char *const names[] = { "ring", "ring + poll_us: 50", "nng" };
	double hsm = base_p50(rep, "kvm-hsm", placement);

	if (isnan(hsm))
		return;
	printf("kvm guest, %s: a sandboxed device's access over the in-HSM client's:", placement);
	for (size_t i = 0; i < 3; i++) {
		double v = base_p50(rep, ids[i], placement);

		if (!isnan(v))
			printf(" %s %.2fx;", names[i], v / hsm);
	}
	printf("\n");
}

/* "12.3" or "-" for NAN, in @width columns. */
static void num(double v, int width, int prec)
{
	if (isnan(v))
		printf(" %*s", width, "-");
	else
		printf(" %*.*f", width, prec, v);
}

/* A latency row's last columns: each side's context switches and CPU time
 * per round trip; then what went wrong, if anything did. */
static void row_costs(const struct result *r)
{
	num(result_get(r, "req_csw"), 5, 1);
	num(result_get(r, "rep_csw"), 5, 1);
	num(result_get(r, "req_cpu_ns") / 1e3, 6, 1);
	num(result_get(r, "rep_cpu_ns") / 1e3, 6, 1);
	if (result_get(r, "bad_values") > 0 || result_get(r, "fallbacks") > 0)
		printf("  (%.0f wrong values, %.0f fallbacks)", result_get(r, "bad_values"), result_get(r, "fallbacks"));
}

static void header(const struct report *r)
{
	const struct bench_ctx *c = r->ctx;

	printf("ioreq-bench  %s  commit %s\n", r->date, r->commit);
	printf("CPU: %s, %u CPUs; kernel %s\n", r->cpu_model, r->ncpus, r->kernel);
	printf("Messages: Request envelope %zu bytes, Reply %zu bytes (wire_pack of a 4-byte PIO read and its reply)\n",
	       c->req_size, c->rep_size);
	printf("Placement: unpinned = every CPU we were given, the scheduler decides; %s = every thread of\n"
	       "both sides (requester, broker, nng, device) pinned to that one CPU.\n",
	       c->one_name);
}

/* The in-process broker path's unpinned mean, what the cross-check checks. */
static double broker_mean(const struct report *rep)
{
	for (size_t i = 0; i < rep->n_lat; i++) {
		const struct result *r = &rep->lat[i];

		if (r->ok && !strcmp(r->id, "broker") && !strcmp(r->placement, "unpinned"))
			return result_get(r, "mean_ns");
	}
	return NAN;
}

static void latency_table(const struct report *rep)
{
	const struct bench_ctx *c = rep->ctx;

	if (!rep->n_lat && !rep->check)
		return;
	printf("\nLatency: one round trip as the requesting thread sees it; each case in %d rounds of %u timed\n"
	       "(kvm: %u) after %u warm-up, interleaved with the other cases; figures are medians over the rounds\n",
	       ROUNDS, c->iters / ROUNDS, c->iters / ROUNDS / 4, c->iters / ROUNDS / 10);
	printf("%-48s %-9s %8s %8s %7s %7s %7s %11s %13s\n", "case", "placement", "p50 us", "p99 us", "x unix",
	       "x spin", "x nng", "csw/req", "cpu us/req");
	printf("%-48s %-9s %8s %8s %7s %7s %7s %5s %5s %6s %6s\n", "", "", "", "", "", "", "", "req", "rep", "req",
	       "rep");
	for (size_t i = 0; i < rep->n_lat; i++) {
		const struct result *r = &rep->lat[i];
		double xu, xs, xn;

		printf("%-48s %-9s", r->title, r->placement ? r->placement : "-");
		if (!r->ok) {
			printf(" skipped: %s\n", r->why);
			continue;
		}
		ratios(rep, r, &xu, &xs, &xn);
		num(result_get(r, "p50_ns") / 1e3, 8, 1);
		num(result_get(r, "p99_ns") / 1e3, 8, 1);
		num(xu, 7, 2);
		num(xs, 7, 2);
		num(xn, 7, 2);
		row_costs(r);
		if (result_get(r, "sandboxed") == 0)
			printf("  (the device was not sandboxed)");
		printf("\n");
	}
	if (rep->check) {
		const struct result *r = rep->check;

		printf("%-48s %-9s", "cross-check: ioreq-brokerd + sim script, mean", "unpinned");
		if (r->ok)
			printf(" %8.1f  (per access over %.0f; the broker path above: mean %.1f)\n",
			       result_get(r, "mean_ns") / 1e3, result_get(r, "n"), broker_mean(rep) / 1e3);
		else
			printf(" failed: %s\n", r->why);
	}
	kvm_ratios(rep, "unpinned");
	kvm_ratios(rep, rep->ctx->one_name);
	printf("x unix, x spin, x nng: p50 over the p50 of the raw AF_UNIX, the spinning shared-page and the\n"
	       "broker-like bare nng cases at the same placement. csw: context switches of every thread of the\n"
	       "requesting (req) and answering (rep) process per round trip; cpu: their CPU time per round trip.\n");
}

static void remote_table(const struct report *rep)
{
	if (!rep->n_remote)
		return;
	printf("\nRemote device: the broker path as above (in-process broker, sim vCPU) to a sandboxed ioreq-dev-null\n"
	       "served through ioreq-remote (mutual TLS with certificates the bench made, or tcp:// where it says so),\n"
	       "beside the same device local, in the same rounds; unpinned; medians over %d rounds of %u\n",
	       ROUNDS, rep->ctx->iters / ROUNDS);
	printf("%-48s %-9s %8s %8s %7s %7s %11s %13s\n", "case", "placement", "p50 us", "p99 us", "x ring", "x nng",
	       "csw/req", "cpu us/req");
	printf("%-48s %-9s %8s %8s %7s %7s %5s %5s %6s %6s\n", "", "", "", "", "", "", "req", "rep", "req", "rep");
	for (size_t i = 0; i < rep->n_remote; i++) {
		const struct result *r = &rep->remote[i];

		printf("%-48s %-9s", r->title, r->placement);
		if (!r->ok) {
			printf(" skipped: %s\n", r->why);
			continue;
		}
		num(result_get(r, "p50_ns") / 1e3, 8, 1);
		num(result_get(r, "p99_ns") / 1e3, 8, 1);
		num(result_get(r, "x_ring_p50"), 7, 2);
		num(result_get(r, "x_nng_p50"), 7, 2);
		row_costs(r);
		printf("\n");
	}
	printf("x ring, x nng: p50 over the p50 of the local device over the ring and over nng (the first two rows).\n"
	       "csw, cpu: as above; rep is the device process, for a remote device the runner (the relay).\n");
}

/* The data plane: each figure beside its baseline, both keys of one
 * result ("KEY_p50_ns"...), measured in the same loop. */
static const struct {
	const char *id;
	const char *key, *title;
	const char *base_key, *base_title;
} dp_rows[] = {
	{ "dp-copy", "copy4k_dev", "sim: device copies 4 KiB of guest RAM", "copy4k_mem",
	  "memcpy of the same pages, in-process" },
	{ "dp-copy", "copy1m_dev", "sim: device copies 1 MiB of guest RAM", "copy1m_mem",
	  "memcpy of the same pages, in-process" },
	{ "dp-copy-remote", "copy4k_dev", "sim: remote device copies 4 KiB (DMA messages, TLS, 127.0.0.1)",
	  "copy4k_mem", "memcpy of the same pages, in-process" },
	{ "dp-copy-remote", "copy1m_dev", "sim: remote device copies 1 MiB (DMA messages, TLS, 127.0.0.1)",
	  "copy1m_mem", "memcpy of the same pages, in-process" },
	{ "dp-bell", "bell_stall", "sim: ioeventfd write, vCPU held for", "bell_broker",
	  "the same write through the broker" },
	{ "dp-bell", "bell_ack", "sim: ioeventfd write until the device acks", "bell_broker",
	  "the same write through the broker" },
	{ "dp-irq", "irqfd", "sim: irqfd write until the HSM injects", "irqmsg", "Interrupt message until the HSM injects" },
	{ "dp-irq", "irqfd_ring", "sim: doorbell, device, irqfd, injected", "irqmsg_ring",
	  "the same with the Interrupt message" },
	{ "kvm-dp", "bell_stall", "kvm: ioeventfd write, vCPU held for", "bell_broker", "the same write through the broker" },
	{ "kvm-dp", "bell_ack", "kvm: ioeventfd write until the device acks", "bell_broker",
	  "the same write through the broker" },
	{ "kvm-dp", "irqfd_ring", "kvm: doorbell, device, irqfd, handler ran", "irqmsg_ring",
	  "the same with the Interrupt message" },
};

static double dp_get(const struct result *r, const char *prefix, const char *what)
{
	char key[40];

	snprintf(key, sizeof(key), "%s_%s_ns", prefix, what);
	return result_get(r, key);
}

static const struct result *dp_result(const struct report *rep, const char *id)
{
	for (size_t i = 0; i < rep->n_dp; i++)
		if (!strcmp(rep->dp[i].id, id))
			return &rep->dp[i];
	return NULL;
}

static void dataplane_table(const struct report *rep)
{
	const struct bench_ctx *c = rep->ctx;

	if (!rep->n_dp)
		return;
	printf("\nData plane: ioreq-brokerd's broker (sim: in-process, as above) and a sandboxed ioreq-bench-dev with\n"
	       "`memory: guest`, 3 doorbells and an irqfd; unpinned (the vCPU spins for the device's answer, as a\n"
	       "polling driver does); each figure and its baseline alternate in one loop; medians over %d rounds of\n"
	       "%u (copies), %u (doorbells, irqfds), kvm %u, timed by the guest (rdtsc)\n",
	       ROUNDS, c->iters / ROUNDS / 4, c->iters / ROUNDS / 2, c->iters / ROUNDS / 8);
	printf("%-43s %7s %7s   %-40s %7s %7s %7s\n", "figure", "p50 us", "p99 us", "baseline", "p50 us", "p99 us",
	       "x base");
	for (size_t i = 0; i < sizeof(dp_rows) / sizeof(dp_rows[0]); i++) {
		const struct result *r = dp_result(rep, dp_rows[i].id);
		double p50, base;

		printf("%-43s", dp_rows[i].title);
		if (!r || !r->ok) {
			printf(" skipped: %s\n", r ? r->why : "not measured");
			continue;
		}
		p50 = dp_get(r, dp_rows[i].key, "p50");
		base = dp_get(r, dp_rows[i].base_key, "p50");
		num(p50 / 1e3, 7, 2);
		num(dp_get(r, dp_rows[i].key, "p99") / 1e3, 7, 1);
		printf("   %-40s", dp_rows[i].base_title);
		num(base / 1e3, 7, 2);
		num(dp_get(r, dp_rows[i].base_key, "p99") / 1e3, 7, 1);
		num(p50 / base, 7, 3);
		if (result_get(r, "lost") > 0)
			printf("  (%.0f rings unanswered)", result_get(r, "lost"));
		printf("\n");
	}
	printf("x base: the figure's p50 over its baseline's. The copies are timed inside the device and around\n"
	       "the memcpy; the doorbell, from the guest's write; the irqfd (sim), from the device's timestamp just\n"
	       "before its eventfd write or its Interrupt message until the sim HSM counts the injection; the rows\n"
	       "'doorbell, device, ...' from the guest's ring until it sees the interrupt (kvm: its ring-0 handler,\n"
	       "which KVM-PVM emulates, has run).\n");
}

/* virtio-blk (vblk.c): each figure beside its baseline; x base is the
 * median of the rounds' own ratios where the worker gives one. */
static const struct {
	const char *title, *key;
	const char *base_title, *base_key;
	const char *ratio_key; /* NULL: the medians' ratio */
	const char *cost;      /* the device's CPU per request, or NULL */
	double scale;
} vblk_rows[] = {
	{ "4 KiB random reads, QD1: IOPS", "qd1_iops", "1 thread's preadv, 4 KiB random", "pread1_iops", "x_qd1_iops",
	  "qd1", 1 },
	{ "4 KiB random reads, QD1: p50 us", "qd1_p50_ns", "1 thread's preadv: p50 us", "pread1_p50_ns", "x_qd1_p50",
	  NULL, 1e-3 },
	{ "4 KiB random reads, QD1: p99 us", "qd1_p99_ns", "1 thread's preadv: p99 us", "pread1_p99_ns", NULL, NULL,
	  1e-3 },
	{ "4 KiB random reads, QD32: IOPS", "qd32_iops", "4 threads' preadv, 4 KiB random", "pread4_iops", "x_qd32_iops",
	  "qd32", 1 },
	{ "128 KiB sequential reads, QD1: MB/s", "seq_mbs", "1 thread's preadv, 128 KiB seq.", "pread_seq_mbs",
	  "x_seq_mbs", "seq", 1 },
};

/* QD1 with the device on "another host", beside the local QD1. */
static void vblk_remote_rows(const struct report *rep)
{
	const struct result *r = rep->vblk_remote, *l = rep->vblk;

	if (!r)
		return;
	if (!r->ok) {
		printf("%-37s %s\n", "QD1, the device remote", r->why);
		return;
	}
	printf("%-37s", "4 KiB random, QD1, remote: IOPS");
	num(result_get(r, "qd1_iops"), 9, 1);
	printf("   %-33s", "the device local: IOPS");
	num(result_get(l, "qd1_iops"), 9, 1);
	num(result_get(r, "qd1_iops") / result_get(l, "qd1_iops"), 7, 3);
	printf("\n%-37s", "4 KiB random, QD1, remote: p50 us");
	num(result_get(r, "qd1_p50_ns") / 1e3, 9, 1);
	printf("   %-33s", "the device local: p50 us");
	num(result_get(l, "qd1_p50_ns") / 1e3, 9, 1);
	num(result_get(r, "qd1_p50_ns") / result_get(l, "qd1_p50_ns"), 7, 3);
	printf("\n");
	if (result_get(r, "bad_values") > 0)
		printf("(remote: %.0f reads with wrong data or status)\n", result_get(r, "bad_values"));
	printf("remote: ioreq-dev-virtio-blk under ioreq-remote (--file, the image), tls+tcp:// on 127.0.0.1 (tcp://\n"
	       "without openssl), its queue and buffers in guest memory it reaches only through messages.\n");
}

static void vblk_table(const struct report *rep)
{
	const struct result *r = rep->vblk;

	if (!r)
		return;
	printf("\nvirtio-blk: a sandboxed ioreq-dev-virtio-blk (4 workers, `doorbells: 1`) on a 64 MiB image in the\n"
	       "page cache, driven by a polling virtio driver on a sim vCPU (the in-process broker, as above),\n"
	       "against preadv on the same image in the same run; unpinned; medians over %d rounds of %.1f s a figure\n",
	       ROUNDS, rep->ctx->quick ? TPUT_SECONDS_QUICK : TPUT_SECONDS);
	if (!r->ok) {
		printf("failed: %s\n", r->why);
		return;
	}
	printf("%-37s %9s   %-33s %9s %7s %14s %8s\n", "figure", "device", "baseline", "", "x base", "dev cpu us/req",
	       "csw/req");
	for (size_t i = 0; i < sizeof(vblk_rows) / sizeof(vblk_rows[0]); i++) {
		double v = result_get(r, vblk_rows[i].key), base = result_get(r, vblk_rows[i].base_key);
		double x = vblk_rows[i].ratio_key ? result_get(r, vblk_rows[i].ratio_key) : v / base;
		char key[32];

		printf("%-37s", vblk_rows[i].title);
		num(v * vblk_rows[i].scale, 9, 1);
		printf("   %-33s", vblk_rows[i].base_title);
		num(base * vblk_rows[i].scale, 9, 1);
		num(x, 7, 3);
		if (vblk_rows[i].cost) {
			snprintf(key, sizeof(key), "%s_dev_cpu_ns", vblk_rows[i].cost);
			num(result_get(r, key) / 1e3, 14, 1);
			snprintf(key, sizeof(key), "%s_dev_csw", vblk_rows[i].cost);
			num(result_get(r, key), 8, 1);
		}
		printf("\n");
	}
	if (result_get(r, "bad_values") > 0 || result_get(r, "notify_requests") > 0)
		printf("(%.0f reads with wrong data or status, %.0f notifications that missed the doorbell)\n",
		       result_get(r, "bad_values"), result_get(r, "notify_requests"));
	vblk_remote_rows(rep);
	printf("x base: device over baseline (for IOPS and MB/s higher is better, for latency lower); the device\n"
	       "and its baseline run one after the other in each round. dev cpu, csw: CPU time and context switches\n"
	       "of every thread of the device process per request.\n");
}

static void throughput_table(const struct report *rep)
{
	double base = NAN;

	if (!rep->n_tput)
		return;
	printf("\nThroughput: every vCPU reads its device's port in a loop for %.1f s (vCPU i, device i mod devs);\n"
	       "ioreq-dev-null; unpinned; medians over %d interleaved rounds\n",
	       rep->ctx->quick ? TPUT_SECONDS_QUICK : TPUT_SECONDS, ROUNDS);
	printf("%4s %9s %6s %8s %-9s %12s %10s %12s %12s %9s\n", "VMs", "vCPUs/VM", "vCPUs", "devs/VM", "transport",
	       "requests/s", "x 1 vCPU", "broker us/req", "device us/req", "CPUs busy");
	for (size_t i = 0; i < rep->n_tput; i++) {
		const struct result *r = &rep->tput[i];
		double rate = result_get(r, "rate");

		printf("%4u %9u %6u %8u %-9s", r->vms, r->vcpus, r->vms * r->vcpus, r->devices, r->transport);
		if (!r->ok) {
			printf(" failed: %s\n", r->why);
			continue;
		}
		if (isnan(base) && r->vms * r->vcpus == 1 && !strcmp(r->transport, "ring"))
			base = rate;
		num(rate, 12, 0);
		num(rate / base, 10, 2);
		num(result_get(r, "req_cpu_ns") / 1e3, 12, 1);
		num(result_get(r, "rep_cpu_ns") / 1e3, 12, 1);
		num(result_get(r, "cpu_busy"), 9, 2);
		if (result_get(r, "bad_values") > 0 || result_get(r, "fallbacks") > 0)
			printf("  (%.0f wrong values, %.0f fallbacks)", result_get(r, "bad_values"),
			       result_get(r, "fallbacks"));
		printf("\n");
	}
	printf("broker us/req: CPU time of the broker process (vCPU threads included) per request;\n"
	       "device us/req: of all device processes; CPUs busy: both, over the wall time.\n");
}

static void alloc_table(const struct report *rep)
{
	static const char *const o[] = { "exe", "nng", "libc", "other" };
	char key[64];

	if (!rep->n_alloc)
		return;
	printf("\nAllocations per request in steady state, counted by an LD_PRELOAD malloc counter by the calling\n"
	       "object (exe: our code, the broker or libioreq-device; nng: libnng's own messages), %u requests\n",
	       rep->ctx->iters / 2 ? rep->ctx->iters / 2 : 1);
	printf("%-48s %27s   %27s\n", "", "requester process", "answering process");
	printf("%-48s %6s %6s %6s %6s   %6s %6s %6s %6s\n", "case", "exe", "nng", "libc", "other", "exe", "nng", "libc",
	       "other");
	for (size_t i = 0; i < rep->n_alloc; i++) {
		const struct result *r = &rep->alloc[i];

		printf("%-48s", r->title);
		if (!r->ok) {
			printf(" failed: %s\n", r->why);
			continue;
		}
		for (size_t s = 0; s < 2; s++) {
			for (size_t k = 0; k < 4; k++) {
				snprintf(key, sizeof(key), "%s_alloc_%s", s ? "rep" : "req", o[k]);
				num(result_get(r, key), 6, 3);
			}
			if (!s)
				printf("  ");
		}
		printf("\n");
	}
}

static void memory_table(const struct report *rep)
{
	const struct result *r = rep->mem;

	if (!r)
		return;
	printf("\nMemory: VmRSS of ioreq-brokerd (sim VMs, 1 vCPU each; the sim vCPU threads live in the broker)\n"
	       "after 2000 reads per device\n");
	if (!r->ok) {
		printf("failed: %s\n", r->why);
		return;
	}
	printf("%-40s %8.0f KiB  (%.0f threads)\n", "broker, 1 VM with 1 device", result_get(r, "broker_1vm_1dev_kb"),
	       result_get(r, "broker_threads_1vm_1dev"));
	printf("%-40s %+8.0f KiB  (from 1 to 4 VMs; %.0f threads with 4)\n", "per further VM (with its device)",
	       result_get(r, "broker_per_vm_kb"), result_get(r, "broker_threads_4vm_1dev"));
	printf("%-40s %+8.0f KiB  (from 1 to 9 devices; %.0f threads with 9)\n", "per further device",
	       result_get(r, "broker_per_device_kb"), result_get(r, "broker_threads_1vm_9dev"));
	printf("%-40s %8.0f KiB\n", "device process (ioreq-dev-null)", result_get(r, "device_kb"));
}

void report_text(const struct report *r)
{
	header(r);
	latency_table(r);
	remote_table(r);
	dataplane_table(r);
	vblk_table(r);
	throughput_table(r);
	alloc_table(r);
	memory_table(r);
	printf("\nTotal run time %.0f s\n", r->seconds);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_num(double v)
{
	if (isnan(v) || isinf(v))
		printf("null");
	else
		printf("%.6g", v);
}

static void json_result(const struct report *rep, const struct result *r, bool lat)
{
	double xu, xs, xn;

	printf("{\"id\": ");
	json_str(r->id);
	printf(", \"title\": ");
	json_str(r->title);
	if (r->placement) {
		printf(", \"placement\": ");
		json_str(r->placement);
	}
	if (r->vms) {
		printf(", \"vms\": %u, \"vcpus_per_vm\": %u, \"devices_per_vm\": %u, \"transport\": ", r->vms, r->vcpus,
		       r->devices);
		json_str(r->transport);
	}
	printf(", \"ok\": %s", r->ok ? "true" : "false");
	if (!r->ok) {
		printf(", \"why\": ");
		json_str(r->why);
	}
	for (size_t i = 0; i < r->n; i++) {
		printf(", ");
		json_str(r->kv[i].key);
		printf(": ");
		json_num(r->kv[i].value);
	}
	if (lat && r->ok && has_ratios(r)) {
		ratios(rep, r, &xu, &xs, &xn);
		printf(", \"ratio_unix_p50\": ");
		json_num(xu);
		printf(", \"ratio_spin_p50\": ");
		json_num(xs);
		printf(", \"ratio_nng_p50\": ");
		json_num(xn);
	}
	printf("}");
}

static void json_list(const struct report *rep, const char *name, const struct result *v, size_t n, bool lat)
{
	printf(",\n  ");
	json_str(name);
	printf(": [");
	for (size_t i = 0; i < n; i++) {
		printf(i ? ",\n    " : "\n    ");
		json_result(rep, &v[i], lat);
	}
	printf("\n  ]");
}

void report_json(const struct report *r)
{
	const struct bench_ctx *c = r->ctx;

	printf("{\n  \"date\": ");
	json_str(r->date);
	printf(",\n  \"commit\": ");
	json_str(r->commit);
	printf(",\n  \"cpu_model\": ");
	json_str(r->cpu_model);
	printf(",\n  \"ncpus\": %u,\n  \"kernel\": ", r->ncpus);
	json_str(r->kernel);
	printf(",\n  \"pinned_cpu\": %d, \"iters\": %u, \"quick\": %s, \"request_bytes\": %zu, \"reply_bytes\": %zu,"
	       " \"seconds\": %.1f",
	       c->cpu, c->iters, c->quick ? "true" : "false", c->req_size, c->rep_size, r->seconds);
	json_list(r, "latency", r->lat, r->n_lat, true);
	json_list(r, "remote", r->remote, r->n_remote, false);
	if (r->check) {
		printf(",\n  \"crosscheck\": ");
		json_result(r, r->check, false);
	}
	json_list(r, "dataplane", r->dp, r->n_dp, false);
	if (r->vblk) {
		printf(",\n  \"vblk\": ");
		json_result(r, r->vblk, false);
	}
	if (r->vblk_remote) {
		printf(",\n  \"vblk_remote\": ");
		json_result(r, r->vblk_remote, false);
	}
	json_list(r, "throughput", r->tput, r->n_tput, false);
	json_list(r, "allocations", r->alloc, r->n_alloc, false);
	if (r->mem) {
		printf(",\n  \"memory\": ");
		json_result(r, r->mem, false);
	}
	printf("\n}\n");
}
