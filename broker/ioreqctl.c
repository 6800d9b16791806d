/* ioreqctl: the command-line client of ioreq-brokerd's control socket. */
#include <errno.h>
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
	fprintf(f, "Usage: ioreqctl [--socket PATH] [--json] COMMAND\n"
		   "\n"
		   "Commands:\n"
		   "  status                   the broker, its VMs and devices\n"
		   "  vms [VM]                 the VMs\n"
		   "  devices [VM]             devices: ranges, pid, state, restarts\n"
		   "  stats [VM [DEVICE]]      request counts, fallbacks, expiries, latency\n"
		   "  vm start|stop|reset VM   control a VM\n"
		   "  reload                   re-read the configuration\n"
		   "\n"
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
				printf(", \"rtt_ns\": %" PRIu64 ", \"reconnects\": %u}", d->remote->rtt_ns,
				       d->remote->reconnects);
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
			printf("%-16s remote: %s from %s, certificate \"%s\", rtt %.2f ms, %u reconnects\n", "",
			       d->remote->listen, *d->remote->peer ? d->remote->peer : "(not connected)",
			       d->remote->subject, (double)d->remote->rtt_ns / 1e6, d->remote->reconnects);
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
				       ", \"max_ns\": %" PRIu64 ", \"throttled\": %" PRIu64 "}",
				       d->pio, d->mmio, d->pci, d->fallbacks, d->expired, d->bad_replies, d->interrupts,
				       d->exits, d->replies, d->p50_ns, d->p90_ns, d->p99_ns, d->max_ns, d->throttled);
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

/* ---- the command line and the socket ---- */

static int parse_command(int argc, char **argv, Ioreqctl__CtlRequest *q, Ioreqctl__Target *t)
{
	static const struct {
		const char *name;
		Ioreqctl__CtlRequest__CmdCase cmd;
		int max_args; /* VM, DEVICE */
	} cmds[] = {
		{ "status", IOREQCTL__CTL_REQUEST__CMD_STATUS, 0 },
		{ "vms", IOREQCTL__CTL_REQUEST__CMD_VMS, 1 },
		{ "devices", IOREQCTL__CTL_REQUEST__CMD_DEVICES, 1 },
		{ "stats", IOREQCTL__CTL_REQUEST__CMD_STATS, 2 },
		{ "reload", IOREQCTL__CTL_REQUEST__CMD_RELOAD, 0 },
	};
	static const struct {
		const char *name;
		Ioreqctl__CtlRequest__CmdCase cmd;
	} vm_cmds[] = {
		{ "start", IOREQCTL__CTL_REQUEST__CMD_VM_START },
		{ "stop", IOREQCTL__CTL_REQUEST__CMD_VM_STOP },
		{ "reset", IOREQCTL__CTL_REQUEST__CMD_VM_RESET },
	};

	if (argc < 1)
		return -EINVAL;
	/* Every command carries a Target; the oneof's members all alias it. */
	q->status = t;
	if (!strcmp(argv[0], "vm")) {
		if (argc != 3)
			return -EINVAL;
		for (size_t i = 0; i < sizeof(vm_cmds) / sizeof(vm_cmds[0]); i++) {
			if (!strcmp(argv[1], vm_cmds[i].name)) {
				q->cmd_case = vm_cmds[i].cmd;
				t->vm = argv[2];
				return 0;
			}
		}
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[0], cmds[i].name))
			continue;
		if (argc - 1 > cmds[i].max_args)
			return -EINVAL;
		q->cmd_case = cmds[i].cmd;
		if (argc > 1)
			t->vm = argv[1];
		if (argc > 2)
			t->device = argv[2];
		return 0;
	}
	return -EINVAL;
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *path = getenv("IOREQ_CONTROL_SOCKET");
	Ioreqctl__CtlRequest q = IOREQCTL__CTL_REQUEST__INIT;
	Ioreqctl__Target t = IOREQCTL__TARGET__INIT;
	Ioreqctl__CtlReply *reply = NULL;
	bool json = false;
	int opt, r, status;

	while ((opt = getopt_long(argc, argv, "+s:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			path = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (parse_command(argc - optind, argv + optind, &q, &t) < 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!path || !*path)
		path = DEFAULT_SOCKET;
	r = exchange(path, &q, &reply);
	if (r < 0) {
		fprintf(stderr, "ioreqctl: %s: %s\n", path, strerror(-r));
		return r == -EACCES || r == -EPERM ? EXIT_DENIED : EXIT_UNREACHABLE;
	}
	print_reply(reply, q.cmd_case, json);
	status = reply->error == 0 ? EXIT_OK : reply->error == -EACCES ? EXIT_DENIED : EXIT_FAILED;
	ioreqctl__ctl_reply__free_unpacked(reply, NULL);
	return status;
}
