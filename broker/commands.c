#include "commands.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "broker.h"
#include "events.h"
#include "histo.h"
#include "vm.h"

/* The VMs a Target selects: one by name, or all (the broker's read lock is held). */
static int select_vms(struct control_reply *r, struct broker *b, const Ioreqctl__Target *t, struct bvm ***ret,
		      size_t *n)
{
	size_t total = broker_n_vms(b);
	struct bvm **v;

	if (t && t->vm && *t->vm) {
		struct bvm *one = broker_find_vm(b, t->vm);

		if (!one)
			return control_error(r, -ENOENT, "no VM named '%s'", t->vm);
		v = control_alloc(r, 1, sizeof(*v));
		if (!v)
			return control_error(r, -ENOMEM, "out of memory");
		v[0] = one;
		*n = 1;
	} else {
		v = control_alloc(r, total, sizeof(*v));
		if (!v)
			return control_error(r, -ENOMEM, "out of memory");
		for (size_t i = 0; i < total; i++)
			v[i] = broker_vm(b, i);
		*n = total;
	}
	*ret = v;
	return 0;
}

static bool wanted(const struct cfg_device *c, const char *only)
{
	return !only || !*only || !strcmp(c->name, only);
}

static void fill_broker(struct control_reply *r, struct broker *b)
{
	Ioreqctl__BrokerInfo *i = control_alloc(r, 1, sizeof(*i));

	if (!i)
		return;
	ioreqctl__broker_info__init(i);
	i->pid = (uint32_t)getpid();
	i->uptime_ms = (uint64_t)broker_uptime_ms(b);
	i->config = broker_cfg(b)->path;
	i->version = IOREQ_VERSION;
	i->vms_total = (uint32_t)broker_n_vms(b);
	for (size_t v = 0; v < broker_n_vms(b); v++) {
		struct bvm *vm = broker_vm(b, v);

		i->vms_running += vm_state(vm) == VM_RUNNING;
		for (size_t d = 0; d < vm_n_devices(vm); d++) {
			struct vm_device_info info;

			i->devices_total++;
			if (vm_device_info(vm, d, &info) == 0)
				i->devices_ready += info.sup.state == DEVSUP_READY;
			free(info.ranges);
		}
	}
	control_msg(r)->broker = i;
}

static int fill_vms(struct control_reply *r, struct bvm **vms, size_t n)
{
	Ioreqctl__VmInfo *v = control_alloc(r, n, sizeof(*v));
	Ioreqctl__VmInfo **p = control_alloc(r, n, sizeof(*p));

	if (!v || !p)
		return control_error(r, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct vm_info info;

		vm_info(vms[i], &info);
		ioreqctl__vm_info__init(&v[i]);
		v[i].name = info.cfg->name;
		v[i].backend = (char *)cfg_backend_name(info.cfg->backend);
		v[i].vcpus = info.cfg->vcpus;
		v[i].state = (char *)vm_state_name(info.state);
		v[i].status = info.status;
		v[i].devices = (uint32_t)vm_n_devices(vms[i]);
		v[i].autostart = info.cfg->autostart;
		p[i] = &v[i];
	}
	control_msg(r)->n_vms = n;
	control_msg(r)->vms = p;
	return 0;
}

static size_t count_devices(struct bvm **vms, size_t n, const char *only)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		for (size_t d = 0; d < vm_n_devices(vms[i]); d++)
			total += wanted(vm_cfg(vms[i])->devices + d, only);
	return total;
}

/* One device's ranges, in the reply's memory. */
static int fill_ranges(struct control_reply *r, Ioreqctl__DeviceInfo *d, const struct vm_device_info *info)
{
	Ioreqctl__RangeInfo *ri = control_alloc(r, info->n_ranges, sizeof(*ri));
	Ioreqctl__RangeInfo **rp = control_alloc(r, info->n_ranges, sizeof(*rp));

	if (!ri || !rp)
		return -ENOMEM;
	for (size_t k = 0; k < info->n_ranges; k++) {
		ioreqctl__range_info__init(&ri[k]);
		ri[k].kind = (char *)access_type_name(info->ranges[k].type);
		ri[k].start = info->ranges[k].start;
		ri[k].end = info->ranges[k].end;
		ri[k].claimed = info->ranges[k].claimed;
		rp[k] = &ri[k];
	}
	d->ranges = rp;
	d->n_ranges = info->n_ranges;
	return 0;
}

static int fill_remote(struct control_reply *r, Ioreqctl__DeviceInfo *d, const struct vm_device_info *info)
{
	Ioreqctl__RemoteInfo *m = control_alloc(r, 1, sizeof(*m));
	char *peer = control_alloc(r, 1, sizeof(info->sup.peer)), *subject = control_alloc(r, 1, sizeof(info->sup.subject));

	if (!m || !peer || !subject)
		return -ENOMEM;
	ioreqctl__remote_info__init(m);
	memcpy(peer, info->sup.peer, sizeof(info->sup.peer));
	memcpy(subject, info->sup.subject, sizeof(info->sup.subject));
	m->listen = info->cfg->remote.listen;
	m->peer = peer;
	m->subject = subject;
	m->rtt_ns = info->sup.rtt_ns;
	m->reconnects = info->sup.restarts;
	m->dma_accesses = info->sup.dma_accesses;
	m->dma_bytes = info->sup.dma_bytes;
	d->remote = m;
	return 0;
}

static int fill_devices(struct control_reply *r, struct bvm **vms, size_t n, const char *only)
{
	size_t total = count_devices(vms, n, only), k = 0;
	Ioreqctl__DeviceInfo *d = control_alloc(r, total, sizeof(*d)), **p = control_alloc(r, total, sizeof(*p));

	if (!d || !p)
		return control_error(r, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < vm_n_devices(vms[i]); j++) {
			struct vm_device_info info;
			char *failure;
			int e;

			if (!wanted(vm_cfg(vms[i])->devices + j, only))
				continue;
			e = vm_device_info(vms[i], j, &info);
			failure = control_alloc(r, 1, sizeof(info.sup.failure));
			ioreqctl__device_info__init(&d[k]);
			if (e == 0 && failure)
				e = fill_ranges(r, &d[k], &info);
			if (e == 0 && failure) {
				memcpy(failure, info.sup.failure, sizeof(info.sup.failure));
				d[k].vm = vm_cfg(vms[i])->name;
				d[k].name = info.cfg->name;
				d[k].program = info.cfg->program;
				d[k].pid = (uint32_t)info.sup.pid;
				d[k].uid = info.sup.uid == (uid_t)-1 ? 0 : (uint32_t)info.sup.uid;
				d[k].state = (char *)devsup_state_name(info.sup.state);
				d[k].restarts = info.sup.restarts;
				d[k].failure = failure;
				/* A remote device's sandbox is its runner's. */
				d[k].sandbox = info.cfg->remote.listen ? "remote"
					       : info.cfg->sandbox == CFG_SANDBOX_STRICT ? "strict" : "none";
				if (info.sup.remote)
					e = fill_remote(r, &d[k], &info);
			}
			free(info.ranges);
			if (e < 0 || !failure)
				return control_error(r, -ENOMEM, "out of memory");
			p[k] = &d[k];
			k++;
		}
	}
	control_msg(r)->n_devices = k;
	control_msg(r)->devices = p;
	return 0;
}

/* Buckets from 1 us (1023 ns) to 8.6 s, each twice the last. */
#define LATENCY_FIRST_BIT 10
#define LATENCY_BUCKETS 24

static int fill_latency(struct control_reply *r, Ioreqctl__DeviceStats *o, const struct histo *h)
{
	Ioreqctl__LatencyBucket *b = control_alloc(r, LATENCY_BUCKETS, sizeof(*b));
	Ioreqctl__LatencyBucket **bp = control_alloc(r, LATENCY_BUCKETS, sizeof(*bp));
	uint64_t le[LATENCY_BUCKETS], counts[LATENCY_BUCKETS];

	if (!b || !bp)
		return -ENOMEM;
	for (size_t i = 0; i < LATENCY_BUCKETS; i++)
		le[i] = (UINT64_C(1) << (LATENCY_FIRST_BIT + i)) - 1;
	histo_cumulative(h, le, LATENCY_BUCKETS, counts, &o->latency_count);
	for (size_t i = 0; i < LATENCY_BUCKETS; i++) {
		ioreqctl__latency_bucket__init(&b[i]);
		b[i].le_ns = le[i];
		b[i].count = counts[i];
		bp[i] = &b[i];
	}
	o->latency_sum_ns = histo_sum(h);
	o->latency = bp;
	o->n_latency = LATENCY_BUCKETS;
	return 0;
}

static int fill_stats(struct control_reply *r, struct bvm **vms, size_t n, const char *only)
{
	size_t total = count_devices(vms, n, only), k = 0;
	Ioreqctl__VmStats *v = control_alloc(r, n, sizeof(*v)), **vp = control_alloc(r, n, sizeof(*vp));
	Ioreqctl__DeviceStats *d = control_alloc(r, total, sizeof(*d)), **dp = control_alloc(r, total, sizeof(*dp));

	if (!v || !vp || !d || !dp)
		return control_error(r, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct vm_info vi;

		vm_info(vms[i], &vi);
		ioreqctl__vm_stats__init(&v[i]);
		v[i].vm = vi.cfg->name;
		v[i].requests = vi.requests;
		v[i].unclaimed = vi.unclaimed;
		v[i].fallbacks = vi.fallbacks;
		v[i].devices = &dp[k];
		for (size_t j = 0; j < vm_n_devices(vms[i]); j++) {
			Ioreqctl__DeviceStats *o = &d[k];
			struct vm_device_info info;

			if (!wanted(vi.cfg->devices + j, only))
				continue;
			if (vm_device_info(vms[i], j, &info) < 0)
				return control_error(r, -ENOMEM, "out of memory");
			free(info.ranges);
			ioreqctl__device_stats__init(o);
			o->vm = vi.cfg->name;
			o->device = info.cfg->name;
			o->pio = info.requests[ACRN_IOREQ_TYPE_PORTIO];
			o->mmio = info.requests[ACRN_IOREQ_TYPE_MMIO];
			o->pci = info.requests[ACRN_IOREQ_TYPE_PCICFG];
			o->fallbacks = info.fallbacks;
			o->expired = info.expired;
			o->bad_replies = info.bad_replies;
			o->ring_requests = info.sup.ring_requests;
			o->socket_requests = info.sup.socket_requests;
			o->interrupts = info.sup.interrupts;
			o->denied_interrupts = info.sup.denied_interrupts;
			o->violations = info.sup.violations;
			o->exits = info.sup.exits;
			o->throttled = info.throttled + info.sup.throttled;
			o->replies = info.replies;
			o->p50_ns = info.p50_ns;
			o->p90_ns = info.p90_ns;
			o->p99_ns = info.p99_ns;
			o->max_ns = info.max_ns;
			o->restarts = info.sup.restarts;
			o->state = (char *)devsup_state_name(info.sup.state);
			if (fill_latency(r, o, info.latency) < 0)
				return control_error(r, -ENOMEM, "out of memory");
			dp[k++] = o;
			v[i].n_devices++;
		}
		vp[i] = &v[i];
	}
	control_msg(r)->n_stats = n;
	control_msg(r)->stats = vp;
	return 0;
}

static int do_vm(struct control_reply *r, struct broker *b, const Ioreqctl__Target *t, int (*op)(struct bvm *),
		 const char *done)
{
	struct bvm *vm;
	int e;

	if (!t || !t->vm || !*t->vm)
		return control_error(r, -EINVAL, "which VM?");
	vm = broker_find_vm(b, t->vm);
	if (!vm)
		return control_error(r, -ENOENT, "no VM named '%s'", t->vm);
	e = op(vm);
	if (e == -EALREADY)
		return control_error(r, e, "vm %s is already running", t->vm);
	if (e == -ENOTCONN)
		return control_error(r, e, "vm %s is not running", t->vm);
	if (e < 0)
		return control_error(r, e, "vm %s: %s", t->vm, strerror(-e));
	control_message(r, "vm %s %s", t->vm, done);
	return 0;
}

/* How long an events query with `wait` waits for one: short, so that a
 * follower's connection never holds up a stop for long. */
#define EVENTS_WAIT_MS 500

static void fill_events(struct control_reply *r, const Ioreqctl__EventsQuery *q)
{
	uint64_t after = q ? q->after : 0;
	struct event *e = control_alloc(r, EVENTS_RING, sizeof(*e));
	Ioreqctl__Event *m = control_alloc(r, EVENTS_RING, sizeof(*m));
	Ioreqctl__Event **p = control_alloc(r, EVENTS_RING, sizeof(*p));
	size_t n;

	if (!e || !m || !p) {
		control_error(r, -ENOMEM, "out of memory");
		return;
	}
	if (q && q->wait)
		events_wait(after, EVENTS_WAIT_MS);
	n = events_read(after, e, EVENTS_RING, &control_msg(r)->lost);
	for (size_t i = 0; i < n; i++) {
		ioreqctl__event__init(&m[i]);
		m[i].seq = e[i].seq;
		m[i].time_ns = e[i].time_ns;
		m[i].vm = e[i].vm;
		m[i].device = e[i].device;
		m[i].from = e[i].from;
		m[i].to = e[i].to;
		m[i].reason = e[i].reason;
		m[i].restarts = e[i].restarts;
		p[i] = &m[i];
	}
	control_msg(r)->events = p;
	control_msg(r)->n_events = n;
	/* Never an empty datagram, which the client could not tell from EOF. */
	control_message(r, "%zu events", n);
}

void commands_handle(void *opaque, const Ioreqctl__CtlRequest *q, struct control_reply *r)
{
	struct broker *b = opaque;
	struct bvm **vms;
	size_t n;

	if (q->cmd_case == IOREQCTL__CTL_REQUEST__CMD_EVENTS) {
		/* The bus is the broker's own: no VM lock, none held while waiting. */
		fill_events(r, q->events);
		return;
	}
	if (q->cmd_case == IOREQCTL__CTL_REQUEST__CMD_RELOAD) {
		char why[512];

		control_msg(r)->error = broker_reload(b, why, sizeof(why));
		control_message(r, "%s", why);
		return;
	}
	/* The VMs found stay until the answer is built (a reload waits). */
	broker_read_lock(b);
	switch (q->cmd_case) {
	case IOREQCTL__CTL_REQUEST__CMD_STATUS:
		fill_broker(r, b);
		if (!select_vms(r, b, NULL, &vms, &n))
			fill_vms(r, vms, n);
		break;
	case IOREQCTL__CTL_REQUEST__CMD_VMS:
		if (!select_vms(r, b, q->vms, &vms, &n))
			fill_vms(r, vms, n);
		break;
	case IOREQCTL__CTL_REQUEST__CMD_DEVICES:
		if (!select_vms(r, b, q->devices, &vms, &n))
			fill_devices(r, vms, n, q->devices ? q->devices->device : NULL);
		break;
	case IOREQCTL__CTL_REQUEST__CMD_STATS:
		if (!select_vms(r, b, q->stats, &vms, &n))
			fill_stats(r, vms, n, q->stats ? q->stats->device : NULL);
		break;
	case IOREQCTL__CTL_REQUEST__CMD_VM_START:
		do_vm(r, b, q->vm_start, vm_start, "started");
		break;
	case IOREQCTL__CTL_REQUEST__CMD_VM_STOP:
		do_vm(r, b, q->vm_stop, vm_stop, "stopped");
		break;
	case IOREQCTL__CTL_REQUEST__CMD_VM_RESET:
		do_vm(r, b, q->vm_reset, vm_reset, "reset");
		break;
	default:
		control_error(r, -EINVAL, "unknown command");
		break;
	}
	broker_read_unlock(b);
}
