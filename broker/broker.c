#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "cgroup.h"
#include "clock.h"
#include "log.h"
#include "proc.h"
#include "vm.h"

#define LOCK_FILE "broker.lock"

struct broker {
	struct cfg *cfg;
	struct cfg **retired;
	size_t n_retired;
	char bindir[PATH_MAX];
	char launcher[PATH_MAX + 16];
	char runtime_dir[PATH_MAX];
	bool own_runtime_dir;  /* created by us: removed at exit */
	int lock_fd;           /* the runtime directory's lock, held until exit */
	struct cgroup_tree *cgroups;
	int changed;           /* eventfd */
	int64_t started_ns;
	/* The VM list; reloads take it for writing. */
	pthread_rwlock_t vms_lock;
	struct bvm **vms;
	size_t n_vms;
	/* One reload at a time. */
	pthread_mutex_t reload;
};

static void vm_changed(void *opaque)
{
	struct broker *b = opaque;

	eventfd_write(b->changed, 1);
}

static struct vm_env env_of(struct broker *b)
{
	return (struct vm_env){
		.runtime_dir = b->runtime_dir,
		.launcher = b->launcher,
		.cgroups = b->cgroups,
		.deadline_ms = b->cfg->deadline_ms,
		.changed = vm_changed,
		.opaque = b,
	};
}

/* ---- the runtime directory ---- */

/* broker.runtime_dir or $RUNTIME_DIRECTORY (systemd), else a private
 * directory under $XDG_RUNTIME_DIR or /tmp. */
static int make_runtime_dir(struct broker *b)
{
	const char *base = b->cfg->runtime_dir;
	char tmpl[PATH_MAX];
	int r;

	if (!base)
		base = getenv("RUNTIME_DIRECTORY");
	if (base) {
		if (mkdir(base, 0700) < 0 && errno != EEXIST) {
			r = -errno;
			log_err("cannot create the runtime directory %s: %s", base, strerror(-r));
			return r;
		}
		snprintf(b->runtime_dir, sizeof(b->runtime_dir), "%s", base);
		return 0;
	}
	base = getenv("XDG_RUNTIME_DIR");
	snprintf(tmpl, sizeof(tmpl), "%s/ioreq-broker.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpl)) {
		r = -errno;
		log_err("cannot create a runtime directory %s: %s", tmpl, strerror(-r));
		return r;
	}
	snprintf(b->runtime_dir, sizeof(b->runtime_dir), "%s", tmpl);
	b->own_runtime_dir = true;
	return 0;
}

/* One broker per runtime directory: a second one would remove the first
 * one's sockets. The lock file holds the owner's pid, for the message. */
static int lock_runtime_dir(struct broker *b)
{
	char path[PATH_MAX + 32], pid[32] = "";
	ssize_t n;
	int r;

	snprintf(path, sizeof(path), "%s/" LOCK_FILE, b->runtime_dir);
	b->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (b->lock_fd < 0) {
		r = -errno;
		log_err("cannot open %s: %s", path, strerror(-r));
		return r;
	}
	if (flock(b->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		n = pread(b->lock_fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (r == -EWOULDBLOCK)
			log_err("another broker (pid %s) owns %s", *pid ? pid : "?", b->runtime_dir);
		else
			log_err("cannot lock %s: %s", path, strerror(-r));
		close(b->lock_fd);
		b->lock_fd = -1;
		return r == -EWOULDBLOCK ? -EBUSY : r;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(b->lock_fd, 0) < 0 || pwrite(b->lock_fd, pid, n, 0) != n)
		log_warn("cannot write %s: %s", path, strerror(errno));
	return 0;
}

/* ---- VMs ---- */

int broker_create(struct cfg *cfg, const char *bindir, struct broker **ret)
{
	struct broker *b = calloc(1, sizeof(*b));

	if (!b) {
		cfg_free(cfg);
		return -ENOMEM;
	}
	b->cfg = cfg;
	b->lock_fd = -1;
	snprintf(b->bindir, sizeof(b->bindir), "%s", bindir);
	snprintf(b->launcher, sizeof(b->launcher), "%s/ioreq-launch", bindir);
	pthread_rwlock_init(&b->vms_lock, NULL);
	pthread_mutex_init(&b->reload, NULL);
	b->changed = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->changed < 0) {
		int r = -errno;

		broker_destroy(b);
		return r;
	}
	*ret = b;
	return 0;
}

int broker_start(struct broker *b)
{
	const struct cfg *c = b->cfg;
	struct vm_env env;
	char why[256];
	int r;

	b->started_ns = clock_now_ns();
	r = make_runtime_dir(b);
	if (r == 0)
		r = lock_runtime_dir(b);
	if (r < 0)
		return r;
	proc_set_ids(c->device_id_first, c->device_id_count);
	if (cgroup_tree_open(c->cgroup, &b->cgroups, why, sizeof(why)) < 0)
		log_warn("devices run without cgroup limits: %s", why);
	env = env_of(b);
	b->vms = calloc(c->n_vms ? c->n_vms : 1, sizeof(*b->vms));
	if (!b->vms)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_vms; i++) {
		r = vm_new(&c->vms[i], &env, &b->vms[i]);
		if (r < 0)
			return r;
		b->n_vms++;
	}
	return 0;
}

int broker_autostart(struct broker *b)
{
	for (size_t i = 0; i < b->n_vms; i++) {
		int r;

		if (!vm_cfg(b->vms[i])->autostart)
			continue;
		r = vm_start(b->vms[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

const char *broker_runtime_dir(const struct broker *b)
{
	return b->runtime_dir;
}

int broker_changed_fd(const struct broker *b)
{
	return b->changed;
}

void broker_read_lock(struct broker *b)
{
	pthread_rwlock_rdlock(&b->vms_lock);
}

void broker_read_unlock(struct broker *b)
{
	pthread_rwlock_unlock(&b->vms_lock);
}

const struct cfg *broker_cfg(const struct broker *b)
{
	return b->cfg;
}

size_t broker_n_vms(const struct broker *b)
{
	return b->n_vms;
}

struct bvm *broker_vm(const struct broker *b, size_t i)
{
	return b->vms[i];
}

struct bvm *broker_find_vm(const struct broker *b, const char *name)
{
	for (size_t i = 0; i < b->n_vms; i++)
		if (!strcmp(vm_cfg(b->vms[i])->name, name))
			return b->vms[i];
	return NULL;
}

int64_t broker_uptime_ms(const struct broker *b)
{
	return (clock_now_ns() - b->started_ns) / 1000000;
}

unsigned broker_vms_running(struct broker *b)
{
	unsigned n = 0;

	broker_read_lock(b);
	for (size_t i = 0; i < b->n_vms; i++)
		n += vm_state(b->vms[i]) == VM_RUNNING;
	broker_read_unlock(b);
	return n;
}

void broker_summary(struct broker *b, char *buf, size_t len)
{
	size_t devs = 0, ready = 0, running = 0;

	broker_read_lock(b);
	for (size_t i = 0; i < b->n_vms; i++) {
		struct bvm *vm = b->vms[i];

		running += vm_state(vm) == VM_RUNNING;
		for (size_t j = 0; j < vm_n_devices(vm); j++) {
			struct vm_device_info d;

			devs++;
			if (vm_device_info(vm, j, &d) == 0)
				ready += d.sup.state == DEVSUP_READY;
			free(d.ranges);
		}
	}
	snprintf(buf, len, "%zu/%zu VMs running, %zu/%zu devices ready", running, b->n_vms, ready, devs);
	broker_read_unlock(b);
}

/* ---- reload ---- */

static bool same_string(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool same_broker_settings(const struct cfg *a, const struct cfg *b)
{
	return same_string(a->runtime_dir, b->runtime_dir) && same_string(a->control_socket, b->control_socket) &&
	       same_string(a->control_group, b->control_group) && same_string(a->cgroup, b->cgroup) &&
	       a->device_id_first == b->device_id_first && a->device_id_count == b->device_id_count;
}

/* Nothing is changed unless every change can be made. */
static int check_reload(struct broker *b, const struct cfg *c, char *why, size_t len)
{
	char what[128];

	if (!same_broker_settings(b->cfg, c)) {
		snprintf(why, len, "the broker's settings changed (runtime_dir, control socket, device ids or cgroup): "
				   "restart the broker");
		return -EBUSY;
	}
	for (size_t i = 0; i < c->n_vms; i++) {
		struct bvm *vm = broker_find_vm(b, c->vms[i].name);

		if (vm && vm_state(vm) == VM_RUNNING && !cfg_vm_equal(vm_cfg(vm), &c->vms[i], what, sizeof(what))) {
			snprintf(why, len, "vm %s is running and its configuration changed (%s): stop it first",
				 c->vms[i].name, what);
			return -EBUSY;
		}
	}
	return 0;
}

static int apply_reload(struct broker *b, struct cfg *c, char *why, size_t len)
{
	struct bvm **vms = calloc(c->n_vms ? c->n_vms : 1, sizeof(*vms)), **gone = NULL, **old;
	struct cfg **retired = reallocarray(b->retired, b->n_retired + 1, sizeof(*retired));
	bool *fresh = calloc(c->n_vms ? c->n_vms : 1, sizeof(*fresh));
	size_t n_gone = 0, added = 0, changed = 0, kept = 0, n_old;
	struct vm_env env = env_of(b);
	int r = -ENOMEM;

	if (retired)
		b->retired = retired;
	gone = calloc(b->n_vms ? b->n_vms : 1, sizeof(*gone));
	if (!vms || !fresh || !gone || !retired)
		goto err;
	for (size_t i = 0; i < c->n_vms; i++) {
		struct bvm *was = broker_find_vm(b, c->vms[i].name);

		if (was && cfg_vm_equal(vm_cfg(was), &c->vms[i], NULL, 0)) {
			vms[i] = was;
			kept++;
			continue;
		}
		r = vm_new(&c->vms[i], &env, &vms[i]);
		if (r < 0)
			goto err;
		fresh[i] = !was;
		added += !was;
		changed += !!was;
	}
	/* Gone: every old VM that was not carried over as it is. */
	for (size_t i = 0; i < b->n_vms; i++) {
		size_t j = 0;

		while (j < c->n_vms && vms[j] != b->vms[i])
			j++;
		if (j == c->n_vms)
			gone[n_gone++] = b->vms[i];
	}
	pthread_rwlock_wrlock(&b->vms_lock);
	old = b->vms;
	n_old = b->n_vms;
	b->vms = vms;
	b->n_vms = c->n_vms;
	b->retired[b->n_retired++] = b->cfg;
	b->cfg = c;
	pthread_rwlock_unlock(&b->vms_lock);
	(void)n_old;
	free(old);

	for (size_t i = 0; i < n_gone; i++) {
		log_info("vm %s: removed by reload", vm_cfg(gone[i])->name);
		vm_free(gone[i]);
	}
	for (size_t i = 0; i < c->n_vms; i++)
		if (fresh[i] && vms[i] && vm_cfg(vms[i])->autostart)
			vm_start(vms[i]);
	snprintf(why, len, "reloaded: %zu added, %zu changed, %zu removed, %zu unchanged", added, changed,
		 n_gone - changed, kept);
	log_info("%s", why);
	free(gone);
	free(fresh);
	return 0;
err:
	for (size_t i = 0; vms && i < c->n_vms; i++)
		if (vms[i] && vms[i] != broker_find_vm(b, c->vms[i].name))
			vm_free(vms[i]);
	free(vms);
	free(gone);
	free(fresh);
	snprintf(why, len, "cannot set up the new VMs: %s", strerror(-r));
	return r;
}

int broker_reload(struct broker *b, char *why, size_t len)
{
	char buf[512], err[1024];
	struct timespec now;
	struct cfg *c;
	int r;

	if (!why) {
		why = buf;
		len = sizeof(buf);
	}
	pthread_mutex_lock(&b->reload);
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* systemd's reload protocol: RELOADING=1 with the time, READY=1 when done. */
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000);
	log_debug("reload: reading %s", b->cfg->path);
	r = cfg_load(b->cfg->path, b->bindir, &c, err, sizeof(err));
	if (r < 0) {
		snprintf(why, len, "%s", err);
	} else {
		r = check_reload(b, c, why, len);
		if (r == 0)
			r = apply_reload(b, c, why, len);
		else
			cfg_free(c);
	}
	pthread_mutex_unlock(&b->reload);
	sd_notify(0, "READY=1");
	if (r < 0)
		log_err("reload refused: %s", why);
	else
		log_debug("reload: %s", why);
	return r;
}

/* ---- the end ---- */

static void log_stats(struct bvm *vm)
{
	struct vm_info v;

	vm_info(vm, &v);
	log_info("vm %s: %" PRIu64 " requests, %" PRIu64 " unclaimed, %" PRIu64 " completed with the fallback",
		 v.cfg->name, v.requests, v.unclaimed, v.fallbacks);
	for (size_t i = 0; i < vm_n_devices(vm); i++) {
		struct vm_device_info d;

		if (vm_device_info(vm, i, &d) == 0)
			log_info("vm %s device %s: %" PRIu64 " pio, %" PRIu64 " mmio, %" PRIu64 " pci requests; %" PRIu64
				 " fallbacks (%" PRIu64 " expired), %" PRIu64 " bad replies, %" PRIu64 " interrupts; sent %" PRIu64
				 " in its ring, %" PRIu64 " on its socket",
				 v.cfg->name, d.cfg->name, d.requests[0], d.requests[1], d.requests[2], d.fallbacks,
				 d.expired, d.bad_replies, d.sup.interrupts, d.sup.ring_requests, d.sup.socket_requests);
		free(d.ranges);
	}
}

int broker_destroy(struct broker *b)
{
	int status = 0;

	if (!b)
		return 0;
	for (size_t i = 0; i < b->n_vms; i++) {
		struct vm_info v;

		vm_info(b->vms[i], &v);
		if (v.cfg->autostart && (v.state != VM_EXITED || v.status))
			status = 1;
	}
	/* Every VM drains and stops on its own thread, all at once. */
	for (size_t i = 0; i < b->n_vms; i++)
		vm_stop_async(b->vms[i]);
	for (size_t i = 0; i < b->n_vms; i++) {
		vm_stop(b->vms[i]);
		log_stats(b->vms[i]);
	}
	for (size_t i = 0; i < b->n_vms; i++)
		vm_free(b->vms[i]);
	free(b->vms);
	b->cgroups = cgroup_tree_close(b->cgroups);
	if (b->lock_fd >= 0 && b->own_runtime_dir) {
		char path[PATH_MAX + 32];

		snprintf(path, sizeof(path), "%s/" LOCK_FILE, b->runtime_dir);
		unlink(path);
	}
	if (b->own_runtime_dir)
		rmdir(b->runtime_dir);
	if (b->lock_fd >= 0)
		close(b->lock_fd);
	for (size_t i = 0; i < b->n_retired; i++)
		cfg_free(b->retired[i]);
	free(b->retired);
	cfg_free(b->cfg);
	if (b->changed >= 0)
		close(b->changed);
	pthread_rwlock_destroy(&b->vms_lock);
	pthread_mutex_destroy(&b->reload);
	free(b);
	return status;
}
