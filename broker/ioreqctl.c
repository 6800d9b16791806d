/* ioreqctl: the command-line client of ioreq-brokerd's control socket. */
#include <errno.h>
#include <poll.h>
#include <termios.h>
#include <signal.h>
#include <time.h>
#include <stddef.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.pb-c.h"
#include "suggest.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define DEFAULT_SOCKET "/run/ioreq-broker/control"
#define MAX_REPLY (1u << 20)

/* Exit codes that scripts can rely on. */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,      /* the broker refused or the command failed */
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3, /* no broker behind the socket */
	EXIT_DENIED = 4,      /* not root nor in the control group */
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: ioreqctl [--socket PATH] [--json] COMMAND [ARGS...]\n"
		   "\n"
		   "Commands:\n"
		   "  status                   the broker, its VMs and devices\n"
		   "  vms [VM]                 the VMs\n"
		   "  devices [VM]             devices: ranges, pid, state, restarts\n"
		   "  stats [VM [DEVICE]]      request counts, fallbacks, expiries, latency\n"
		   "  metrics                  the counters and latency histograms (OpenMetrics)\n"
		   "  top [--once | -n N]      a live view of VMs and devices: state, requests\n"
		   "                           per second, latency, fallbacks, restarts (q quits)\n"
		   "  events [--follow]        recent changes of state of devices and VMs (JSON\n"
		   "                           lines); --follow: and every new one until interrupted\n"
		   "  vm start|stop|reset VM   control a VM\n"
		   "  reload                   re-read the configuration\n"
		   "\n"
		   "Options may come anywhere; --version prints the version.\n"
		   "The socket is $IOREQ_CONTROL_SOCKET or " DEFAULT_SOCKET ".\n"
		   "Exit status: 0 ok, 1 failed, 2 usage, 3 broker unreachable, 4 permission denied.\n");
}

/* ---- output ---- */

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

static void fmt_ns(char *buf, size_t len, uint64_t ns)
{
	if (ns < 10000)
		snprintf(buf, len, "%" PRIu64 "ns", ns);
	else if (ns < 10000000)
		snprintf(buf, len, "%" PRIu64 "us", ns / 1000);
	else
		snprintf(buf, len, "%" PRIu64 "ms", ns / 1000000);
}

static void fmt_range(char *buf, size_t len, const Ioreqctl__RangeInfo *r)
{
	if (!strcmp(r->kind, "pci"))
		snprintf(buf, len, "pci %02x:%02x.%x", (unsigned)(r->start >> 8), (unsigned)(r->start >> 3) & 31,
			 (unsigned)r->start & 7);
	else
		snprintf(buf, len, "%s 0x%" PRIx64 "-0x%" PRIx64 "%s", r->kind, r->start, r->end,
			 r->claimed ? " (claimed)" : "");
}

static void print_broker(const Ioreqctl__BrokerInfo *b, bool json)
{
	uint64_t s = b->uptime_ms / 1000;

	if (json) {
		printf("\"broker\": {\"pid\": %u, \"uptime_ms\": %" PRIu64 ", \"config\": ", b->pid, b->uptime_ms);
		json_str(b->config);
		printf(", \"version\": ");
		json_str(b->version);
		printf(", \"vms_total\": %u, \"vms_running\": %u, \"devices_total\": %u, \"devices_ready\": %u}",
		       b->vms_total, b->vms_running, b->devices_total, b->devices_ready);
		return;
	}
	printf("broker:  pid %u, up %" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s, version %s\n", b->pid, s / 3600,
	       s / 60 % 60, s % 60, b->version);
	printf("config:  %s\n", b->config);
	printf("vms:     %u (%u running)\ndevices: %u (%u ready)\n\n", b->vms_total, b->vms_running, b->devices_total,
	       b->devices_ready);
}

static void print_vms(const Ioreqctl__CtlReply *r, bool json)
{
	if (json) {
		printf("\"vms\": [");
		for (size_t i = 0; i < r->n_vms; i++) {
			const Ioreqctl__VmInfo *v = r->vms[i];

			printf("%s{\"name\": ", i ? ", " : "");
			json_str(v->name);
			printf(", \"backend\": ");
			json_str(v->backend);
			printf(", \"vcpus\": %u, \"state\": ", v->vcpus);
			json_str(v->state);
			printf(", \"status\": %d, \"devices\": %u, \"autostart\": %s}", v->status, v->devices,
			       v->autostart ? "true" : "false");
		}
		printf("]");
		return;
	}
	printf("%-16s %-8s %5s %-8s %6s %7s %9s\n", "VM", "BACKEND", "VCPUS", "STATE", "STATUS", "DEVICES",
	       "AUTOSTART");
	for (size_t i = 0; i < r->n_vms; i++) {
		const Ioreqctl__VmInfo *v = r->vms[i];

		printf("%-16s %-8s %5u %-8s %6d %7u %9s\n", v->name, v->backend, v->vcpus, v->state, v->status,
		       v->devices, v->autostart ? "yes" : "no");
	}
}

static void print_devices(const Ioreqctl__CtlReply *r, bool json)
{
	char buf[96];

	if (!json)
		printf("%-16s %-16s %-8s %7s %8s %-7s %s\n", "VM", "DEVICE", "STATE", "PID", "RESTARTS", "SANDBOX",
		       "RANGES");
	else
		printf("\"devices\": [");
	for (size_t i = 0; i < r->n_devices; i++) {
		const Ioreqctl__DeviceInfo *d = r->devices[i];

		if (json) {
			printf("%s{\"vm\": ", i ? ", " : "");
			json_str(d->vm);
			printf(", \"name\": ");
			json_str(d->name);
			printf(", \"program\": ");
			json_str(d->program);
			printf(", \"pid\": %u, \"state\": ", d->pid);
			json_str(d->state);
			printf(", \"restarts\": %u, \"sandbox\": ", d->restarts);
			json_str(d->sandbox);
			printf(", \"failure\": ");
			json_str(d->failure);
			if (d->remote) {
				printf(", \"remote\": {\"listen\": ");
				json_str(d->remote->listen);
				printf(", \"peer\": ");
				json_str(d->remote->peer);
				printf(", \"subject\": ");
				json_str(d->remote->subject);
				printf(", \"rtt_ns\": %" PRIu64 ", \"reconnects\": %u, \"dma_accesses\": %" PRIu64
				       ", \"dma_bytes\": %" PRIu64 "}",
				       d->remote->rtt_ns, d->remote->reconnects, d->remote->dma_accesses, d->remote->dma_bytes);
			}
			printf(", \"ranges\": [");
			for (size_t k = 0; k < d->n_ranges; k++) {
				printf("%s{\"kind\": ", k ? ", " : "");
				json_str(d->ranges[k]->kind);
				printf(", \"start\": %" PRIu64 ", \"end\": %" PRIu64 ", \"claimed\": %s}",
				       d->ranges[k]->start, d->ranges[k]->end, d->ranges[k]->claimed ? "true" : "false");
			}
			printf("]}");
			continue;
		}
		printf("%-16s %-16s %-8s %7u %8u %-7s", d->vm, d->name, d->state, d->pid, d->restarts, d->sandbox);
		for (size_t k = 0; k < d->n_ranges; k++) {
			fmt_range(buf, sizeof(buf), d->ranges[k]);
			printf("%s%s", k ? ", " : " ", buf);
		}
		if (d->failure && *d->failure)
			printf(" (%s)", d->failure);
		printf("\n");
		if (d->remote)
			printf("%-16s remote: %s from %s, certificate \"%s\", rtt %.2f ms, %u reconnects, %" PRIu64
			       " memory accesses (%.1f KiB)\n",
			       "", d->remote->listen, *d->remote->peer ? d->remote->peer : "(not connected)",
			       d->remote->subject, (double)d->remote->rtt_ns / 1e6, d->remote->reconnects,
			       d->remote->dma_accesses, (double)d->remote->dma_bytes / 1024);
	}
	if (json)
		printf("]");
}

static void print_stats(const Ioreqctl__CtlReply *r, bool json)
{
	char p50[24], p90[24], p99[24], max[24];

	if (json)
		printf("\"stats\": [");
	for (size_t i = 0; i < r->n_stats; i++) {
		const Ioreqctl__VmStats *v = r->stats[i];

		if (json) {
			printf("%s{\"vm\": ", i ? ", " : "");
			json_str(v->vm);
			printf(", \"requests\": %" PRIu64 ", \"unclaimed\": %" PRIu64 ", \"fallbacks\": %" PRIu64
			       ", \"devices\": [",
			       v->requests, v->unclaimed, v->fallbacks);
		} else {
			printf("%svm %s: %" PRIu64 " requests, %" PRIu64 " unclaimed, %" PRIu64 " fallbacks\n",
			       i ? "\n" : "", v->vm, v->requests, v->unclaimed, v->fallbacks);
			printf("  %-16s %9s %9s %9s %9s %8s %5s %6s %8s %8s %8s %8s\n", "DEVICE", "PIO", "MMIO", "PCI",
			       "FALLBACKS", "EXPIRED", "BAD", "IRQS", "P50", "P90", "P99", "MAX");
		}
		for (size_t k = 0; k < v->n_devices; k++) {
			const Ioreqctl__DeviceStats *d = v->devices[k];

			if (json) {
				printf("%s{\"device\": ", k ? ", " : "");
				json_str(d->device);
				printf(", \"pio\": %" PRIu64 ", \"mmio\": %" PRIu64 ", \"pci\": %" PRIu64
				       ", \"fallbacks\": %" PRIu64 ", \"expired\": %" PRIu64 ", \"bad_replies\": %" PRIu64
				       ", \"interrupts\": %" PRIu64 ", \"exits\": %" PRIu64 ", \"replies\": %" PRIu64
				       ", \"p50_ns\": %" PRIu64 ", \"p90_ns\": %" PRIu64 ", \"p99_ns\": %" PRIu64
				       ", \"max_ns\": %" PRIu64 ", \"throttled\": %" PRIu64 ", \"ring_requests\": %" PRIu64
				       ", \"socket_requests\": %" PRIu64 "}",
				       d->pio, d->mmio, d->pci, d->fallbacks, d->expired, d->bad_replies, d->interrupts,
				       d->exits, d->replies, d->p50_ns, d->p90_ns, d->p99_ns, d->max_ns, d->throttled,
				       d->ring_requests, d->socket_requests);
				continue;
			}
			fmt_ns(p50, sizeof(p50), d->p50_ns);
			fmt_ns(p90, sizeof(p90), d->p90_ns);
			fmt_ns(p99, sizeof(p99), d->p99_ns);
			fmt_ns(max, sizeof(max), d->max_ns);
			printf("  %-16s %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64 " %8" PRIu64 " %5" PRIu64
			       " %6" PRIu64 " %8s %8s %8s %8s\n",
			       d->device, d->pio, d->mmio, d->pci, d->fallbacks, d->expired, d->bad_replies,
			       d->interrupts, p50, p90, p99, max);
		}
		if (json)
			printf("]}");
	}
	if (json)
		printf("]");
}

static void print_reply(const Ioreqctl__CtlReply *r, Ioreqctl__CtlRequest__CmdCase cmd, bool json)
{
	if (json) {
		printf("{\"error\": %d, \"message\": ", r->error);
		json_str(r->message);
		if (r->broker) {
			printf(", ");
			print_broker(r->broker, true);
		}
		if (cmd == IOREQCTL__CTL_REQUEST__CMD_STATUS || cmd == IOREQCTL__CTL_REQUEST__CMD_VMS) {
			printf(", ");
			print_vms(r, true);
		}
		if (cmd == IOREQCTL__CTL_REQUEST__CMD_DEVICES) {
			printf(", ");
			print_devices(r, true);
		}
		if (cmd == IOREQCTL__CTL_REQUEST__CMD_STATS) {
			printf(", ");
			print_stats(r, true);
		}
		printf("}\n");
		return;
	}
	if (r->error) {
		fprintf(stderr, "ioreqctl: %s\n", r->message && *r->message ? r->message : strerror(-r->error));
		return;
	}
	if (r->broker)
		print_broker(r->broker, false);
	switch (cmd) {
	case IOREQCTL__CTL_REQUEST__CMD_STATUS:
	case IOREQCTL__CTL_REQUEST__CMD_VMS:
		print_vms(r, false);
		break;
	case IOREQCTL__CTL_REQUEST__CMD_DEVICES:
		print_devices(r, false);
		break;
	case IOREQCTL__CTL_REQUEST__CMD_STATS:
		print_stats(r, false);
		break;
	default:
		if (r->message && *r->message)
			printf("%s\n", r->message);
		break;
	}
}

/* ---- OpenMetrics ---- */

/* A label value: backslash, double quote and newline escaped. */
static void om_value(const char *s)
{
	for (; s && *s; s++) {
		if (*s == '\\' || *s == '"')
			printf("\\%c", *s);
		else if (*s == '\n')
			printf("\\n");
		else
			putchar(*s);
	}
}

static void om_labels(const char *vm, const char *device, const char *key, const char *value)
{
	printf("{vm=\"");
	om_value(vm);
	if (device) {
		printf("\",device=\"");
		om_value(device);
	}
	if (key) {
		printf("\",%s=\"", key);
		om_value(value);
	}
	printf("\"}");
}

static void om_family(const char *name, const char *type, const char *help)
{
	printf("# TYPE %s %s\n# HELP %s %s\n", name, type, name, help);
}

#define VM_COUNTER(f, h) { "ioreq_vm_" #f, h, offsetof(Ioreqctl__VmStats, f) }
#define DEV_COUNTER(f, h) { "ioreq_device_" #f, h, offsetof(Ioreqctl__DeviceStats, f) }

static const struct om_counter {
	const char *name, *help;
	size_t off; /* of a uint64_t */
} vm_counters[] = {
	VM_COUNTER(requests, "Requests taken from the VM's vCPUs."),
	VM_COUNTER(unclaimed, "Requests no device serves."),
	VM_COUNTER(fallbacks, "Requests completed with the fallback (all ones, or dropped)."),
}, device_counters[] = {
	DEV_COUNTER(replies, "Requests the device answered."),
	DEV_COUNTER(fallbacks, "Requests completed with the fallback."),
	DEV_COUNTER(expired, "Requests past their deadline."),
	DEV_COUNTER(bad_replies, "Replies the broker refused."),
	DEV_COUNTER(throttled, "Requests and messages over max_inflight or max_msg_rate."),
	DEV_COUNTER(violations, "Soft protocol violations."),
	DEV_COUNTER(interrupts, "Interrupts the device raised."),
	DEV_COUNTER(denied_interrupts, "Interrupts refused (not granted)."),
	DEV_COUNTER(exits, "Instances of the device that ended."),
	DEV_COUNTER(ring_requests, "Requests sent in the device's request ring."),
	DEV_COUNTER(socket_requests, "Requests sent on the device's socket."),
};

static uint64_t field(const void *obj, size_t off)
{
	return *(const uint64_t *)((const char *)obj + off);
}

/* The counters and latency histograms as OpenMetrics text: each family
 * once, its samples together, and # EOF at the end. */
static void print_metrics(const Ioreqctl__CtlReply *r)
{
	static const char *const kinds[] = { "pio", "mmio", "pci" };

	for (size_t f = 0; f < ARRAY_SIZE(vm_counters); f++) {
		om_family(vm_counters[f].name, "counter", vm_counters[f].help);
		for (size_t i = 0; i < r->n_stats; i++) {
			printf("%s_total", vm_counters[f].name);
			om_labels(r->stats[i]->vm, NULL, NULL, NULL);
			printf(" %" PRIu64 "\n", field(r->stats[i], vm_counters[f].off));
		}
	}
	om_family("ioreq_device_requests", "counter", "Requests routed to the device, by kind.");
	for (size_t i = 0; i < r->n_stats; i++) {
		for (size_t k = 0; k < r->stats[i]->n_devices; k++) {
			const Ioreqctl__DeviceStats *d = r->stats[i]->devices[k];
			const uint64_t by_kind[] = { d->pio, d->mmio, d->pci };

			for (size_t j = 0; j < ARRAY_SIZE(kinds); j++) {
				printf("ioreq_device_requests_total");
				om_labels(d->vm, d->device, "kind", kinds[j]);
				printf(" %" PRIu64 "\n", by_kind[j]);
			}
		}
	}
	for (size_t f = 0; f < ARRAY_SIZE(device_counters); f++) {
		om_family(device_counters[f].name, "counter", device_counters[f].help);
		for (size_t i = 0; i < r->n_stats; i++) {
			for (size_t k = 0; k < r->stats[i]->n_devices; k++) {
				const Ioreqctl__DeviceStats *d = r->stats[i]->devices[k];

				printf("%s_total", device_counters[f].name);
				om_labels(d->vm, d->device, NULL, NULL);
				printf(" %" PRIu64 "\n", field(d, device_counters[f].off));
			}
		}
	}
	om_family("ioreq_device_restarts", "counter", "Restarts of the device.");
	for (size_t i = 0; i < r->n_stats; i++) {
		for (size_t k = 0; k < r->stats[i]->n_devices; k++) {
			printf("ioreq_device_restarts_total");
			om_labels(r->stats[i]->vm, r->stats[i]->devices[k]->device, NULL, NULL);
			printf(" %u\n", r->stats[i]->devices[k]->restarts);
		}
	}
	om_family("ioreq_device_ready", "gauge", "1 when the device is ready, else 0.");
	for (size_t i = 0; i < r->n_stats; i++) {
		for (size_t k = 0; k < r->stats[i]->n_devices; k++) {
			const Ioreqctl__DeviceStats *d = r->stats[i]->devices[k];

			printf("ioreq_device_ready");
			om_labels(d->vm, d->device, NULL, NULL);
			printf(" %d\n", d->state && !strcmp(d->state, "ready"));
		}
	}
	om_family("ioreq_device_latency_seconds", "histogram", "From sending a request to the device to its reply.");
	printf("# UNIT ioreq_device_latency_seconds seconds\n");
	for (size_t i = 0; i < r->n_stats; i++) {
		for (size_t k = 0; k < r->stats[i]->n_devices; k++) {
			const Ioreqctl__DeviceStats *d = r->stats[i]->devices[k];
			char le[32];

			for (size_t b = 0; b < d->n_latency; b++) {
				snprintf(le, sizeof(le), "%.9f", (double)d->latency[b]->le_ns / 1e9);
				printf("ioreq_device_latency_seconds_bucket");
				om_labels(d->vm, d->device, "le", le);
				printf(" %" PRIu64 "\n", d->latency[b]->count);
			}
			printf("ioreq_device_latency_seconds_bucket");
			om_labels(d->vm, d->device, "le", "+Inf");
			printf(" %" PRIu64 "\n", d->latency_count);
			printf("ioreq_device_latency_seconds_count");
			om_labels(d->vm, d->device, NULL, NULL);
			printf(" %" PRIu64 "\n", d->latency_count);
			printf("ioreq_device_latency_seconds_sum");
			om_labels(d->vm, d->device, NULL, NULL);
			printf(" %.9f\n", (double)d->latency_sum_ns / 1e9);
		}
	}
	printf("# EOF\n");
}

/* ---- events ---- */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	interrupted = 1;
}

static void print_event(const Ioreqctl__Event *e)
{
	time_t s = (time_t)(e->time_ns / 1000000000);
	char when[32];
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	printf("{\"time\": \"%s.%06" PRId64 "Z\", \"seq\": %" PRIu64 ", \"vm\": ", when, e->time_ns / 1000 % 1000000,
	       e->seq);
	json_str(e->vm);
	printf(", \"device\": ");
	if (e->device && *e->device)
		json_str(e->device);
	else
		printf("null");
	printf(", \"from\": ");
	json_str(e->from);
	printf(", \"to\": ");
	json_str(e->to);
	printf(", \"reason\": ");
	json_str(e->reason);
	printf(", \"restarts\": %u}\n", e->restarts);
}

static int exchange(const char *path, const Ioreqctl__CtlRequest *q, Ioreqctl__CtlReply **ret);

/* One JSON line per event; with @follow, asks again and again (each time
 * the broker waits a moment for news) until SIGINT or SIGTERM. */
static int events(const char *path, bool follow)
{
	Ioreqctl__CtlRequest q = IOREQCTL__CTL_REQUEST__INIT;
	Ioreqctl__EventsQuery eq = IOREQCTL__EVENTS_QUERY__INIT;
	struct sigaction sa = { .sa_handler = on_interrupt };
	int status = EXIT_OK;

	/* No SA_RESTART: a signal ends the wait for the broker's answer. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	q.cmd_case = IOREQCTL__CTL_REQUEST__CMD_EVENTS;
	q.events = &eq;
	do {
		Ioreqctl__CtlReply *reply = NULL;
		int r = exchange(path, &q, &reply);

		if (r < 0) {
			if (interrupted)
				break;
			fprintf(stderr, "ioreqctl: %s: %s\n", path, strerror(-r));
			return r == -EACCES || r == -EPERM ? EXIT_DENIED : EXIT_UNREACHABLE;
		}
		if (reply->error) {
			print_reply(reply, q.cmd_case, false);
			status = reply->error == -EACCES ? EXIT_DENIED : EXIT_FAILED;
			ioreqctl__ctl_reply__free_unpacked(reply, NULL);
			break;
		}
		/* A follower too slow for the broker's ring hears what it missed. */
		if (reply->lost && eq.after)
			printf("{\"lost\": %" PRIu64 "}\n", reply->lost);
		for (size_t i = 0; i < reply->n_events; i++) {
			print_event(reply->events[i]);
			eq.after = reply->events[i]->seq;
		}
		ioreqctl__ctl_reply__free_unpacked(reply, NULL);
		eq.wait = true;
	} while (follow && !interrupted);
	return status;
}

/* ---- top ---- */

#define TOP_INTERVAL_MS 1000

/* One look at the broker: its status and every VM's and device's stats. */
struct sample {
	Ioreqctl__CtlReply *status, *stats;
	struct timespec when;
};

static void sample_free(struct sample *s)
{
	if (s->status)
		ioreqctl__ctl_reply__free_unpacked(s->status, NULL);
	if (s->stats)
		ioreqctl__ctl_reply__free_unpacked(s->stats, NULL);
	*s = (struct sample){ 0 };
}

static int take_sample(const char *path, struct sample *s)
{
	Ioreqctl__CtlRequest q = IOREQCTL__CTL_REQUEST__INIT;
	Ioreqctl__Target t = IOREQCTL__TARGET__INIT;
	int r;

	q.status = &t; /* the oneof's Target members alias each other */
	q.cmd_case = IOREQCTL__CTL_REQUEST__CMD_STATUS;
	r = exchange(path, &q, &s->status);
	if (r == 0) {
		q.cmd_case = IOREQCTL__CTL_REQUEST__CMD_STATS;
		r = exchange(path, &q, &s->stats);
	}
	clock_gettime(CLOCK_MONOTONIC, &s->when);
	if (r == 0 && (s->status->error || s->stats->error))
		r = s->status->error ? s->status->error : s->stats->error;
	return r;
}

static uint64_t device_requests(const Ioreqctl__DeviceStats *d)
{
	return d->pio + d->mmio + d->pci;
}

/* The same device in the earlier sample, or NULL (it is new). */
static const Ioreqctl__DeviceStats *find_device(const struct sample *s, const char *vm, const char *name)
{
	for (size_t i = 0; s->stats && i < s->stats->n_stats; i++)
		for (size_t k = 0; k < s->stats->stats[i]->n_devices; k++)
			if (!strcmp(s->stats->stats[i]->vm, vm) && !strcmp(s->stats->stats[i]->devices[k]->device, name))
				return s->stats->stats[i]->devices[k];
	return NULL;
}

static const Ioreqctl__VmStats *find_vm(const struct sample *s, const char *vm)
{
	for (size_t i = 0; s->stats && i < s->stats->n_stats; i++)
		if (!strcmp(s->stats->stats[i]->vm, vm))
			return s->stats->stats[i];
	return NULL;
}

static double rate(uint64_t now, uint64_t then, double seconds)
{
	return now >= then && seconds > 0 ? (double)(now - then) / seconds : 0;
}

/* One frame: @now against @then (requests per second between the two). */
static void print_frame(const struct sample *then, const struct sample *now)
{
	const Ioreqctl__BrokerInfo *b = now->status->broker;
	double dt = (double)(now->when.tv_sec - then->when.tv_sec) + (double)(now->when.tv_nsec - then->when.tv_nsec) / 1e9;
	uint64_t up = b ? b->uptime_ms / 1000 : 0;
	char p50[24], p99[24], max[24];

	if (b)
		printf("ioreq-brokerd %s, pid %u, up %" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s: %u VMs (%u running), %u "
		       "devices (%u ready)\n\n",
		       b->version, b->pid, up / 3600, up / 60 % 60, up % 60, b->vms_total, b->vms_running,
		       b->devices_total, b->devices_ready);
	printf("%-20s %-8s %9s %8s %8s %8s %9s %8s\n", "VM / DEVICE", "STATE", "REQ/S", "P50", "P99", "MAX",
	       "FALLBACKS", "RESTARTS");
	for (size_t i = 0; i < now->status->n_vms; i++) {
		const Ioreqctl__VmInfo *v = now->status->vms[i];
		const Ioreqctl__VmStats *vs = find_vm(now, v->name), *was = find_vm(then, v->name);

		printf("%-20s %-8s %9.1f %8s %8s %8s %9" PRIu64 " %8s\n", v->name, v->state,
		       vs && was ? rate(vs->requests, was->requests, dt) : 0.0, "", "", "", vs ? vs->fallbacks : 0, "");
		for (size_t k = 0; vs && k < vs->n_devices; k++) {
			const Ioreqctl__DeviceStats *d = vs->devices[k], *dw = find_device(then, v->name, d->device);

			fmt_ns(p50, sizeof(p50), d->p50_ns);
			fmt_ns(p99, sizeof(p99), d->p99_ns);
			fmt_ns(max, sizeof(max), d->max_ns);
			printf("  %-18s %-8s %9.1f %8s %8s %8s %9" PRIu64 " %8u\n", d->device, d->state,
			       dw ? rate(device_requests(d), device_requests(dw), dt) : 0.0, p50, p99, max, d->fallbacks,
			       d->restarts);
		}
	}
}

static struct termios saved_tty;
static bool tty_raw;

static void restore_tty(void)
{
	if (tty_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	tty_raw = false;
}

/* Keys one at a time, unechoed, for q; the terminal comes back at exit. */
static void raw_tty(void)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tty) < 0)
		return;
	t = saved_tty;
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
		tty_raw = true;
		atexit(restore_tty);
	}
}

/* Waits @ms for the next frame; whether to go on (no q, no signal). */
static bool top_wait(int ms)
{
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
	char c;

	if (!tty_raw) {
		poll(NULL, 0, ms);
		return !interrupted;
	}
	while (!interrupted && poll(&p, 1, ms) > 0) {
		if (read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q'))
			return false;
		ms = 100; /* another key: look again soon */
	}
	return !interrupted;
}

/* Like top(1): a frame a second on a terminal until q or SIGINT; @frames
 * of them (0: endless) otherwise, one when stdout is not a terminal. */
static int top(const char *path, long frames)
{
	struct sigaction sa = { .sa_handler = on_interrupt };
	struct sample then = { 0 }, now = { 0 };
	bool live = isatty(STDOUT_FILENO);
	int r;

	if (!live && frames == 0)
		frames = 1;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	r = take_sample(path, &then);
	if (r == 0 && live)
		raw_tty();
	for (long n = 0; r == 0 && (frames == 0 || n < frames); n++) {
		if (!top_wait(TOP_INTERVAL_MS))
			break;
		r = take_sample(path, &now);
		if (r < 0)
			break;
		if (live)
			printf("\033[H\033[2J"); /* home, clear */
		print_frame(&then, &now);
		fflush(stdout);
		sample_free(&then);
		then = now;
		now = (struct sample){ 0 };
	}
	restore_tty();
	sample_free(&then);
	sample_free(&now);
	if (r < 0) {
		fprintf(stderr, "ioreqctl: %s: %s\n", path, strerror(-r));
		return r == -EACCES || r == -EPERM ? EXIT_DENIED : r == -ECONNREFUSED || r == -ENOENT ? EXIT_UNREACHABLE
													: EXIT_FAILED;
	}
	return EXIT_OK;
}

/* ---- the command line and the socket ---- */

/* How a command shows what the broker answered. */
enum view {
	VIEW_REPLY,   /* a table, or --json */
	VIEW_METRICS, /* OpenMetrics text */
	VIEW_EVENTS,  /* JSON lines, once or followed */
	VIEW_TOP,     /* a live view */
};

static const struct command {
	const char *name;
	Ioreqctl__CtlRequest__CmdCase cmd;
	int max_args; /* VM, DEVICE */
	enum view view;
} commands[] = {
	{ "status", IOREQCTL__CTL_REQUEST__CMD_STATUS, 0, VIEW_REPLY },
	{ "vms", IOREQCTL__CTL_REQUEST__CMD_VMS, 1, VIEW_REPLY },
	{ "devices", IOREQCTL__CTL_REQUEST__CMD_DEVICES, 1, VIEW_REPLY },
	{ "stats", IOREQCTL__CTL_REQUEST__CMD_STATS, 2, VIEW_REPLY },
	{ "metrics", IOREQCTL__CTL_REQUEST__CMD_STATS, 0, VIEW_METRICS },
	{ "events", IOREQCTL__CTL_REQUEST__CMD_EVENTS, 0, VIEW_EVENTS },
	{ "top", IOREQCTL__CTL_REQUEST__CMD_STATS, 0, VIEW_TOP },
	{ "reload", IOREQCTL__CTL_REQUEST__CMD_RELOAD, 0, VIEW_REPLY },
	{ "vm", 0, 2, VIEW_REPLY },
};

static const struct command vm_commands[] = {
	{ "start", IOREQCTL__CTL_REQUEST__CMD_VM_START, 1, VIEW_REPLY },
	{ "stop", IOREQCTL__CTL_REQUEST__CMD_VM_STOP, 1, VIEW_REPLY },
	{ "reset", IOREQCTL__CTL_REQUEST__CMD_VM_RESET, 1, VIEW_REPLY },
};

/* The entry of @cmds named @word; else NULL, once it said that @word is an
 * unknown @what, with the nearest name if one is near enough. */
static const struct command *lookup(const char *what, const struct command *cmds, size_t n, const char *word)
{
	struct suggest s;

	for (size_t i = 0; i < n; i++)
		if (!strcmp(cmds[i].name, word))
			return &cmds[i];
	suggest_init(&s, word);
	for (size_t i = 0; i < n; i++)
		suggest_add(&s, cmds[i].name);
	if (suggest_best(&s))
		fprintf(stderr, "ioreqctl: unknown %s '%s' (did you mean '%s'?)\n", what, word, suggest_best(&s));
	else
		fprintf(stderr, "ioreqctl: unknown %s '%s'\n", what, word);
	return NULL;
}

/* Fills @q from the words after the options and *@ret with the command;
 * says what is wrong, if anything. */
static int parse_command(int argc, char **argv, Ioreqctl__CtlRequest *q, Ioreqctl__Target *t,
			 const struct command **ret)
{
	const struct command *c;

	if (argc < 1) {
		fprintf(stderr, "ioreqctl: which command?\n");
		return -EINVAL;
	}
	c = lookup("command", commands, ARRAY_SIZE(commands), argv[0]);
	if (!c)
		return -EINVAL;
	/* Every command carries a Target; the oneof's members all alias it. */
	q->status = t;
	if (!strcmp(c->name, "vm")) {
		argc--;
		argv++;
		if (argc < 1) {
			fprintf(stderr, "ioreqctl: vm start|stop|reset VM\n");
			return -EINVAL;
		}
		c = lookup("vm command", vm_commands, ARRAY_SIZE(vm_commands), argv[0]);
		if (!c)
			return -EINVAL;
		if (argc != 2) {
			fprintf(stderr, "ioreqctl: vm %s VM\n", c->name);
			return -EINVAL;
		}
	}
	if (argc - 1 > c->max_args) {
		fprintf(stderr, "ioreqctl: %s takes at most %d argument%s\n", c->name, c->max_args,
			c->max_args == 1 ? "" : "s");
		return -EINVAL;
	}
	q->cmd_case = c->cmd;
	*ret = c;
	if (argc > 1)
		t->vm = argv[1];
	if (argc > 2)
		t->device = argv[2];
	return 0;
}

static int exchange(const char *path, const Ioreqctl__CtlRequest *q, Ioreqctl__CtlReply **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t out[4096], *in;
	size_t len = ioreqctl__ctl_request__get_packed_size(q);
	ssize_t n;
	int fd, r = 0;

	if (strlen(path) >= sizeof(sa.sun_path) || len > sizeof(out))
		return -ENAMETOOLONG;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	in = malloc(MAX_REPLY);
	if (!in) {
		close(fd);
		return -ENOMEM;
	}
	ioreqctl__ctl_request__pack(q, out);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || send(fd, out, len, MSG_NOSIGNAL) < 0) {
		r = -errno;
		goto out;
	}
	n = recv(fd, in, MAX_REPLY, 0);
	if (n <= 0) {
		r = n < 0 ? -errno : -ECONNRESET;
		goto out;
	}
	*ret = ioreqctl__ctl_reply__unpack(NULL, (size_t)n, in);
	if (!*ret)
		r = -EBADMSG;
out:
	free(in);
	close(fd);
	return r;
}

/* What getopt refused: an unknown option (with the nearest one, if near
 * enough), or one without its argument. */
static void bad_option(const struct option *opts, const char *arg)
{
	struct suggest s;
	char names[8][24];
	size_t n = 0, len = strcspn(arg, "=");

	for (const struct option *o = opts; o->name && n < ARRAY_SIZE(names); o++, n++) {
		snprintf(names[n], sizeof(names[n]), "--%s", o->name);
		if (!strncmp(arg, names[n], len) && names[n][len] == '\0' && o->has_arg == required_argument) {
			fprintf(stderr, "ioreqctl: option '%s' needs an argument\n", names[n]);
			return;
		}
	}
	suggest_init(&s, arg);
	for (size_t i = 0; i < n; i++)
		suggest_add(&s, names[i]);
	if (suggest_best(&s))
		fprintf(stderr, "ioreqctl: unknown option '%s' (did you mean '%s'?)\n", arg, suggest_best(&s));
	else
		fprintf(stderr, "ioreqctl: unknown option '%s'\n", arg);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "follow", no_argument, NULL, 'f' },
		{ "once", no_argument, NULL, '1' },
		{ "iterations", required_argument, NULL, 'n' },
		{},
	};
	const char *path = getenv("IOREQ_CONTROL_SOCKET");
	Ioreqctl__CtlRequest q = IOREQCTL__CTL_REQUEST__INIT;
	Ioreqctl__Target t = IOREQCTL__TARGET__INIT;
	Ioreqctl__CtlReply *reply = NULL;
	const struct command *c = NULL;
	bool json = false, follow = false;
	long frames = 0;
	char *end;
	int opt, r, status;

	/* Options go anywhere: ioreqctl status --json is ioreqctl --json status. */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "s:jhfn:", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'f':
			follow = true;
			break;
		case '1':
			frames = 1;
			break;
		case 'n':
			frames = strtol(optarg, &end, 10);
			if (*end || frames < 1) {
				fprintf(stderr, "ioreqctl: -n takes a number of frames, 1 or more\n");
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("ioreqctl %s\n", IOREQ_VERSION);
			return EXIT_OK;
		default:
			bad_option(opts, argv[optind - 1]);
			fprintf(stderr, "Try 'ioreqctl --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (parse_command(argc - optind, argv + optind, &q, &t, &c) < 0) {
		fprintf(stderr, "Try 'ioreqctl --help'.\n");
		return EXIT_USAGE;
	}
	if (!path || !*path)
		path = DEFAULT_SOCKET;
	if (follow && c->view != VIEW_EVENTS) {
		fprintf(stderr, "ioreqctl: --follow is for events\n");
		return EXIT_USAGE;
	}
	if (frames && c->view != VIEW_TOP) {
		fprintf(stderr, "ioreqctl: --once and -n are for top\n");
		return EXIT_USAGE;
	}
	if (c->view == VIEW_EVENTS)
		return events(path, follow);
	if (c->view == VIEW_TOP)
		return top(path, frames);
	r = exchange(path, &q, &reply);
	if (r < 0) {
		fprintf(stderr, "ioreqctl: %s: %s\n", path, strerror(-r));
		return r == -EACCES || r == -EPERM ? EXIT_DENIED : EXIT_UNREACHABLE;
	}
	if (c->view == VIEW_METRICS && !reply->error)
		print_metrics(reply);
	else
		print_reply(reply, q.cmd_case, json);
	status = reply->error == 0 ? EXIT_OK : reply->error == -EACCES ? EXIT_DENIED : EXIT_FAILED;
	ioreqctl__ctl_reply__free_unpacked(reply, NULL);
	return status;
}
