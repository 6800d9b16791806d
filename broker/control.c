#include "control.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "broker.h"
#include "control.pb-c.h"
#include "log.h"
#include "vm.h"

#define CTL_MAX_MSG 4096
#define CTL_REPLY_MAX (1u << 20)

struct control {
	struct broker *b;
	int fd;
	int wake;          /* eventfd: stop serving */
	bool created;      /* we made the socket file: remove it at exit */
	gid_t gid;
	bool has_gid;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pthread_t thread;
	bool thread_started;
};

static const char *const vm_states[] = {
	[VM_STOPPED] = "stopped",
	[VM_RUNNING] = "running",
	[VM_EXITED] = "exited",
};

static const char *const dev_states[] = {
	[BDEV_DOWN] = "down",
	[BDEV_STARTING] = "starting",
	[BDEV_READY] = "ready",
	[BDEV_STOPPING] = "stopping",
	[BDEV_FAILED] = "failed",
};

static const char *const kinds[] = { "pio", "mmio", "pci" };

/* ---- building replies: everything lives in the reply's own allocations ---- */

struct reply {
	Ioreqctl__CtlReply msg;
	Ioreqctl__BrokerInfo broker;
	char message[256];
	void *allocs[8];
	unsigned n_allocs;
};

static void *reply_alloc(struct reply *r, size_t n, size_t size)
{
	void *p;

	if (r->n_allocs == sizeof(r->allocs) / sizeof(r->allocs[0]))
		return NULL;
	p = calloc(n ? n : 1, size);
	if (p)
		r->allocs[r->n_allocs++] = p;
	return p;
}

static void reply_free(struct reply *r)
{
	for (unsigned i = 0; i < r->n_allocs; i++)
		free(r->allocs[i]);
}

static int reply_error(struct reply *r, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int reply_error(struct reply *r, int error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	r->msg.error = error;
	return error;
}

static struct bvm *find_vm(struct broker *b, const char *name)
{
	for (size_t i = 0; i < b->n_vms; i++)
		if (!strcmp(b->vms[i]->cfg->name, name))
			return b->vms[i];
	return NULL;
}

/* The VMs a Target selects: one by name, or all. */
static int select_vms(struct reply *r, struct broker *b, const Ioreqctl__Target *t, struct bvm ***ret, size_t *n)
{
	static struct bvm *one;

	if (t && t->vm && *t->vm) {
		one = find_vm(b, t->vm);
		if (!one)
			return reply_error(r, -ENOENT, "no VM named '%s'", t->vm);
		*ret = &one;
		*n = 1;
	} else {
		*ret = b->vms;
		*n = b->n_vms;
	}
	return 0;
}

static void fill_broker(struct reply *r, struct broker *b)
{
	Ioreqctl__BrokerInfo *i = &r->broker;

	ioreqctl__broker_info__init(i);
	i->pid = (uint32_t)getpid();
	i->uptime_ms = (uint64_t)((vm_now_ns() - b->started_ns) / 1000000);
	i->config = (char *)b->cfg->path;
	i->version = IOREQ_VERSION;
	i->vms_total = (uint32_t)b->n_vms;
	i->vms_running = broker_vms_running(b);
	for (size_t v = 0; v < b->n_vms; v++) {
		i->devices_total += (uint32_t)b->vms[v]->n_devs;
		for (size_t d = 0; d < b->vms[v]->n_devs; d++)
			i->devices_ready += atomic_load(&b->vms[v]->devs[d]->state) == BDEV_READY;
	}
	r->msg.broker = i;
}

static int fill_vms(struct reply *r, struct bvm **vms, size_t n)
{
	Ioreqctl__VmInfo *v = reply_alloc(r, n, sizeof(*v));
	Ioreqctl__VmInfo **p = reply_alloc(r, n, sizeof(*p));

	if (!v || !p)
		return reply_error(r, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		ioreqctl__vm_info__init(&v[i]);
		v[i].name = vms[i]->cfg->name;
		v[i].backend = (char *)cfg_backend_name(vms[i]->cfg->backend);
		v[i].vcpus = vms[i]->cfg->vcpus;
		v[i].state = (char *)vm_states[atomic_load(&vms[i]->state)];
		v[i].status = atomic_load(&vms[i]->status);
		v[i].devices = (uint32_t)vms[i]->n_devs;
		v[i].autostart = vms[i]->cfg->autostart;
		p[i] = &v[i];
	}
	r->msg.n_vms = n;
	r->msg.vms = p;
	return 0;
}

static size_t count_devices(struct bvm **vms, size_t n, const char *dev)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		for (size_t d = 0; d < vms[i]->n_devs; d++)
			total += !dev || !*dev || !strcmp(vms[i]->devs[d]->cfg->name, dev);
	return total;
}

static int fill_devices(struct reply *r, struct bvm **vms, size_t n, const char *only)
{
	size_t total = count_devices(vms, n, only), k = 0, n_ranges = 0;
	Ioreqctl__DeviceInfo *d = reply_alloc(r, total, sizeof(*d)), **p = reply_alloc(r, total, sizeof(*p));
	Ioreqctl__RangeInfo *ri, **rp;

	for (size_t i = 0; i < n; i++)
		for (unsigned t = 0; t < 3; t++)
			n_ranges += vms[i]->map[t].n;
	ri = reply_alloc(r, n_ranges, sizeof(*ri));
	rp = reply_alloc(r, n_ranges, sizeof(*rp));
	if (!d || !p || !ri || !rp)
		return reply_error(r, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct bvm *vm = vms[i];

		pthread_rwlock_rdlock(&vm->routes);
		for (size_t j = 0; j < vm->n_devs; j++) {
			struct bdev *dev = vm->devs[j];

			if (only && *only && strcmp(dev->cfg->name, only))
				continue;
			ioreqctl__device_info__init(&d[k]);
			d[k].vm = vm->cfg->name;
			d[k].name = dev->cfg->name;
			d[k].program = dev->cfg->program;
			pthread_mutex_lock(&dev->lock);
			d[k].pid = (uint32_t)dev->pid;
			pthread_mutex_unlock(&dev->lock);
			d[k].state = (char *)dev_states[atomic_load(&dev->state)];
			d[k].restarts = dev->restarts;
			d[k].failure = dev->failed_why;
			d[k].sandbox = dev->cfg->sandbox == CFG_SANDBOX_STRICT ? "strict" : "none";
			d[k].ranges = rp;
			for (unsigned t = 0; t < 3; t++) {
				for (size_t e = 0; e < vm->map[t].n; e++) {
					const struct rangemap_entry *en = &vm->map[t].v[e];

					if (en->owner != dev)
						continue;
					ioreqctl__range_info__init(ri);
					ri->kind = (char *)kinds[t];
					ri->start = en->start;
					ri->end = en->end;
					ri->claimed = en->tag & VM_CLAIMED_RANGE;
					*rp++ = ri++;
					d[k].n_ranges++;
				}
			}
			p[k] = &d[k];
			k++;
		}
		pthread_rwlock_unlock(&vm->routes);
	}
	r->msg.n_devices = k;
	r->msg.devices = p;
	return 0;
}

static int fill_stats(struct reply *r, struct bvm **vms, size_t n, const char *only)
{
	size_t total = count_devices(vms, n, only), k = 0;
	Ioreqctl__VmStats *v = reply_alloc(r, n, sizeof(*v)), **vp = reply_alloc(r, n, sizeof(*vp));
	Ioreqctl__DeviceStats *d = reply_alloc(r, total, sizeof(*d)), **dp = reply_alloc(r, total, sizeof(*dp));

	if (!v || !vp || !d || !dp)
		return reply_error(r, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct bvm *vm = vms[i];

		ioreqctl__vm_stats__init(&v[i]);
		v[i].vm = vm->cfg->name;
		v[i].requests = atomic_load(&vm->stats.requests);
		v[i].unclaimed = atomic_load(&vm->stats.unclaimed);
		v[i].fallbacks = atomic_load(&vm->stats.fallbacks);
		v[i].devices = &dp[k];
		for (size_t j = 0; j < vm->n_devs; j++) {
			struct bdev *dev = vm->devs[j];
			struct bdev_stats *s = &dev->stats;
			Ioreqctl__DeviceStats *o = &d[k];

			if (only && *only && strcmp(dev->cfg->name, only))
				continue;
			ioreqctl__device_stats__init(o);
			o->vm = vm->cfg->name;
			o->device = dev->cfg->name;
			o->pio = atomic_load(&s->requests[ACRN_IOREQ_TYPE_PORTIO]);
			o->mmio = atomic_load(&s->requests[ACRN_IOREQ_TYPE_MMIO]);
			o->pci = atomic_load(&s->requests[ACRN_IOREQ_TYPE_PCICFG]);
			o->fallbacks = atomic_load(&s->fallbacks);
			o->expired = atomic_load(&s->expired);
			o->bad_replies = atomic_load(&s->bad_replies);
			o->interrupts = atomic_load(&s->interrupts);
			o->exits = atomic_load(&s->exits);
			o->throttled = atomic_load(&s->throttled);
			o->replies = histo_count(&s->latency);
			o->p50_ns = histo_quantile(&s->latency, 0.50);
			o->p90_ns = histo_quantile(&s->latency, 0.90);
			o->p99_ns = histo_quantile(&s->latency, 0.99);
			o->max_ns = atomic_load(&s->latency.max);
			dp[k++] = o;
			v[i].n_devices++;
		}
		vp[i] = &v[i];
	}
	r->msg.n_stats = n;
	r->msg.stats = vp;
	return 0;
}

static int do_vm(struct reply *r, struct broker *b, const Ioreqctl__Target *t, int (*op)(struct bvm *),
		 const char *done)
{
	struct bvm *vm;
	int e;

	if (!t || !t->vm || !*t->vm)
		return reply_error(r, -EINVAL, "which VM?");
	vm = find_vm(b, t->vm);
	if (!vm)
		return reply_error(r, -ENOENT, "no VM named '%s'", t->vm);
	e = op(vm);
	if (e == -EALREADY)
		return reply_error(r, e, "vm %s is already running", t->vm);
	if (e == -ENOTCONN)
		return reply_error(r, e, "vm %s is not running", t->vm);
	if (e < 0)
		return reply_error(r, e, "vm %s: %s", t->vm, strerror(-e));
	snprintf(r->message, sizeof(r->message), "vm %s %s", t->vm, done);
	return 0;
}

static int stop_op(struct bvm *vm)
{
	if (!vm->hsm)
		return -ENOTCONN;
	vm_stop(vm);
	return 0;
}

static void handle(struct control *c, const Ioreqctl__CtlRequest *q, struct reply *r)
{
	struct broker *b = c->b;
	struct bvm **vms;
	size_t n;

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
		do_vm(r, b, q->vm_stop, stop_op, "stopped");
		break;
	case IOREQCTL__CTL_REQUEST__CMD_VM_RESET:
		do_vm(r, b, q->vm_reset, vm_reset, "reset");
		break;
	default:
		reply_error(r, -EINVAL, "unknown command");
		break;
	}
	r->msg.message = r->message;
}

/* Root, our own user, or the configured group (primary or supplementary,
 * as the kernel saw them when the client connected). */
static bool peer_allowed(struct control *c, int fd)
{
	gid_t groups[256];
	socklen_t len = sizeof(struct ucred);
	struct ucred cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	if (cred.uid == 0 || cred.uid == geteuid())
		return true;
	if (!c->has_gid)
		return false;
	if (cred.gid == c->gid)
		return true;
	len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == c->gid)
			return true;
	return false;
}

static void serve_one(struct control *c, int fd)
{
	uint8_t in[CTL_MAX_MSG];
	struct reply r = { 0 };
	Ioreqctl__CtlRequest *q;
	uint8_t *out = NULL;
	ssize_t n;
	size_t len;

	ioreqctl__ctl_reply__init(&r.msg);
	if (!peer_allowed(c, fd)) {
		reply_error(&r, -EACCES, "permission denied: root or group membership needed");
		r.msg.message = r.message;
		goto send;
	}
	n = recv(fd, in, sizeof(in), MSG_TRUNC);
	if (n < 0 || (size_t)n > sizeof(in)) {
		reply_error(&r, -EMSGSIZE, "request too large");
		r.msg.message = r.message;
		goto send;
	}
	q = ioreqctl__ctl_request__unpack(NULL, (size_t)n, in);
	if (!q) {
		reply_error(&r, -EBADMSG, "malformed request");
		r.msg.message = r.message;
		goto send;
	}
	if (q->cmd_case == IOREQCTL__CTL_REQUEST__CMD_RELOAD) {
		r.msg.error = broker_reload(c->b, r.message, sizeof(r.message));
		r.msg.message = r.message;
	} else {
		pthread_mutex_lock(&c->b->admin);
		handle(c, q, &r);
		pthread_mutex_unlock(&c->b->admin);
	}
	ioreqctl__ctl_request__free_unpacked(q, NULL);
send:
	len = ioreqctl__ctl_reply__get_packed_size(&r.msg);
	if (len <= CTL_REPLY_MAX && (out = malloc(len ? len : 1))) {
		ioreqctl__ctl_reply__pack(&r.msg, out);
		if (send(fd, out, len, MSG_NOSIGNAL) < 0)
			log_warn("control: cannot answer: %s", strerror(errno));
	}
	free(out);
	reply_free(&r);
}

static void *control_thread(void *arg)
{
	struct control *c = arg;
	struct pollfd p[2] = { { .fd = c->fd, .events = POLLIN }, { .fd = c->wake, .events = POLLIN } };

	for (;;) {
		int fd;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		/* A client that connects and says nothing must not stall us. */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_sec = 5 }, sizeof(struct timeval));
		serve_one(c, fd);
		close(fd);
	}
	return NULL;
}

/* The socket systemd passed, if any: the one named "control", or the only one. */
static int inherited_socket(void)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names), fd = -1;

	for (int i = 0; i < n; i++) {
		if (fd < 0 && (n == 1 || (names && !strcmp(names[i], "control"))) &&
		    sd_is_socket_unix(SD_LISTEN_FDS_START + i, SOCK_SEQPACKET, 1, NULL, 0) > 0)
			fd = SD_LISTEN_FDS_START + i;
		else
			close(SD_LISTEN_FDS_START + i);
		if (names)
			free(names[i]);
	}
	free(names);
	return fd;
}

static int create_socket(struct control *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	unlink(path);
	if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	c->created = true;
	/* Group access only when a group is configured. */
	r = chmod(path, c->has_gid ? 0660 : 0600);
	if (r == 0 && c->has_gid)
		r = chown(path, (uid_t)-1, c->gid);
	if (r < 0)
		return -errno;
	if (listen(c->fd, 16) < 0)
		return -errno;
	return 0;
}

int control_open(struct broker *b, const char *path, const char *group, struct control **ret)
{
	struct control *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	c->b = b;
	c->fd = c->wake = -1;
	if (group) {
		struct group *g = getgrnam(group);

		if (!g) {
			log_err("control: no group named '%s'", group);
			r = -ENOENT;
			goto err;
		}
		c->gid = g->gr_gid;
		c->has_gid = true;
	}
	c->fd = inherited_socket();
	if (c->fd >= 0) {
		struct sockaddr_un sa;
		socklen_t len = sizeof(sa);

		if (getsockname(c->fd, (struct sockaddr *)&sa, &len) == 0 && len > sizeof(sa_family_t))
			snprintf(c->path, sizeof(c->path), "%s", sa.sun_path);
		log_info("control: serving the socket systemd passed (%s)", c->path);
	} else {
		snprintf(c->path, sizeof(c->path), "%s", path);
		r = create_socket(c, path);
		if (r < 0) {
			log_err("control: cannot create %s: %s", path, strerror(-r));
			goto err;
		}
	}
	c->wake = eventfd(0, EFD_CLOEXEC);
	if (c->wake < 0) {
		r = -errno;
		goto err;
	}
	r = -pthread_create(&c->thread, NULL, control_thread, c);
	if (r < 0)
		goto err;
	c->thread_started = true;
	*ret = c;
	return 0;
err:
	control_close(c);
	return r;
}

const char *control_path(const struct control *c)
{
	return c->path;
}

struct control *control_close(struct control *c)
{
	if (!c)
		return NULL;
	if (c->thread_started) {
		eventfd_write(c->wake, 1);
		pthread_join(c->thread, NULL);
	}
	if (c->fd >= 0)
		close(c->fd);
	if (c->wake >= 0)
		close(c->wake);
	if (c->created)
		unlink(c->path);
	free(c);
	return NULL;
}
