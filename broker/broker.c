#include "broker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "devsup.h"
#include "log.h"
#include "vm.h"

#define HOUSEKEEPING_INTERVAL_US 2000

/* $RUNTIME_DIRECTORY (systemd), else a private directory under
 * $XDG_RUNTIME_DIR or /tmp. */
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

static struct bdev *find_device(struct broker *b, pid_t pid)
{
	for (size_t i = 0; i < b->n_vms; i++) {
		for (size_t j = 0; j < b->vms[i]->n_devs; j++) {
			struct bdev *dev = b->vms[i]->devs[j];
			pid_t p;

			pthread_mutex_lock(&dev->lock);
			p = dev->pid;
			pthread_mutex_unlock(&dev->lock);
			if (p == pid)
				return dev;
		}
	}
	return NULL;
}

/* Restarts the devices of a running VM, and stops a VM whose device
 * failed with on_failure: stop-vm. Skipped while someone starts, stops or
 * resets the VM. */
static void maintain(struct bvm *vm)
{
	if (pthread_mutex_trylock(&vm->life))
		return;
	if (atomic_load(&vm->stop_requested) && vm->hsm) {
		log_err("vm %s: stopping: a device failed (on_failure: stop-vm)", vm->cfg->name);
		atomic_store(&vm->status, 1);
		pthread_mutex_unlock(&vm->life);
		vm_stop(vm);
		return;
	}
	for (size_t j = 0; vm->hsm && j < vm->n_devs; j++)
		rpc_maintain(vm->devs[j], vm_now_ns());
	pthread_mutex_unlock(&vm->life);
}

static void *housekeeping(void *arg)
{
	struct broker *b = arg;

	while (!atomic_load(&b->quit)) {
		pid_t pid;
		int status;

		while (devsup_reap(&pid, &status) == 0) {
			struct bdev *dev;

			pthread_mutex_lock(&b->lock);
			dev = find_device(b, pid);
			if (dev)
				rpc_exited(dev, status);
			pthread_mutex_unlock(&b->lock);
		}
		pthread_mutex_lock(&b->lock);
		for (size_t i = 0; i < b->n_vms; i++) {
			vm_expire(b->vms[i], vm_now_ns());
			maintain(b->vms[i]);
		}
		pthread_mutex_unlock(&b->lock);
		usleep(HOUSEKEEPING_INTERVAL_US);
	}
	return NULL;
}

static struct bvm *new_vm(struct broker *b, const struct cfg_vm *cfg)
{
	struct bvm *vm = calloc(1, sizeof(*vm));

	if (vm && vm_create(b, cfg, vm) < 0) {
		vm_destroy(vm);
		free(vm);
		vm = NULL;
	}
	return vm;
}

static void free_vm(struct bvm *vm)
{
	vm_destroy(vm);
	free(vm);
}

int broker_create(struct cfg *cfg, const char *bindir, struct broker **ret)
{
	struct broker *b;
	int r;

	b = calloc(1, sizeof(*b));
	if (!b) {
		cfg_free(cfg);
		return -ENOMEM;
	}
	b->cfg = cfg;
	snprintf(b->bindir, sizeof(b->bindir), "%s", bindir);
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->admin, NULL);
	b->vms = calloc(cfg->n_vms, sizeof(*b->vms));
	if (!b->vms) {
		r = -ENOMEM;
		goto err;
	}
	r = make_runtime_dir(b);
	if (r < 0)
		goto err;
	for (size_t i = 0; i < cfg->n_vms; i++) {
		b->vms[i] = new_vm(b, &cfg->vms[i]);
		if (!b->vms[i]) {
			r = -ENOMEM;
			goto err;
		}
		b->n_vms++;
	}
	*ret = b;
	return 0;
err:
	broker_destroy(b);
	return r;
}

int broker_start(struct broker *b)
{
	char path[PATH_MAX + 16];
	int r;

	b->started_ns = vm_now_ns();
	if (b->cfg->control_socket)
		snprintf(path, sizeof(path), "%s", b->cfg->control_socket);
	else
		snprintf(path, sizeof(path), "%s/control", b->runtime_dir);
	r = control_open(b, path, b->cfg->control_group, &b->control);
	if (r < 0)
		return r;
	r = -pthread_create(&b->housekeeper, NULL, housekeeping, b);
	if (r < 0)
		return r;
	b->housekeeper_started = true;
	for (size_t i = 0; i < b->n_vms; i++) {
		if (!b->vms[i]->cfg->autostart)
			continue;
		r = vm_start(b->vms[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

void broker_vm_stopped(struct broker *b, struct bvm *vm)
{
	int status = atomic_load(&vm->status);

	/* Counted before it is logged: whoever reads the log line sees the count. */
	atomic_fetch_sub(&b->vms_running, 1);
	if (status)
		log_err("vm %s: stopped with status %d", vm->cfg->name, status);
	else
		log_info("vm %s: stopped with status 0", vm->cfg->name);
}

unsigned broker_vms_running(struct broker *b)
{
	return atomic_load(&b->vms_running);
}

void broker_summary(struct broker *b, char *buf, size_t len)
{
	size_t devs = 0, ready = 0;

	for (size_t i = 0; i < b->n_vms; i++) {
		devs += b->vms[i]->n_devs;
		for (size_t j = 0; j < b->vms[i]->n_devs; j++)
			ready += atomic_load(&b->vms[i]->devs[j]->state) == BDEV_READY;
	}
	snprintf(buf, len, "%u/%zu VMs running, %zu/%zu devices ready", broker_vms_running(b), b->n_vms, ready, devs);
}

int64_t broker_now_ms(void)
{
	return vm_now_ns() / 1000000;
}

static struct bvm *find_vm(struct bvm **vms, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(vms[i]->cfg->name, name))
			return vms[i];
	return NULL;
}

static bool same_broker_settings(const struct cfg *a, const struct cfg *b)
{
	const char *s[][2] = {
		{ a->runtime_dir, b->runtime_dir },
		{ a->control_socket, b->control_socket },
		{ a->control_group, b->control_group },
	};

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		if (!(s[i][0] == s[i][1] || (s[i][0] && s[i][1] && !strcmp(s[i][0], s[i][1]))))
			return false;
	return true;
}

/* Nothing is changed unless every change can be made. */
static int check_reload(struct broker *b, const struct cfg *c, char *why, size_t len)
{
	char what[128];

	if (!same_broker_settings(b->cfg, c)) {
		snprintf(why, len, "the broker's runtime_dir or control socket changed: restart the broker");
		return -EBUSY;
	}
	for (size_t i = 0; i < c->n_vms; i++) {
		struct bvm *vm = find_vm(b->vms, b->n_vms, c->vms[i].name);

		if (vm && atomic_load(&vm->state) == VM_RUNNING && !cfg_vm_equal(vm->cfg, &c->vms[i], what, sizeof(what))) {
			snprintf(why, len, "vm %s is running and its configuration changed (%s): stop it first",
				 vm->cfg->name, what);
			return -EBUSY;
		}
	}
	return 0;
}

static int apply_reload(struct broker *b, struct cfg *c, char *why, size_t len)
{
	struct bvm **vms = calloc(c->n_vms ? c->n_vms : 1, sizeof(*vms)), **gone;
	size_t n_gone = 0, added = 0, changed = 0, kept = 0;
	struct cfg **retired;
	bool *fresh = calloc(c->n_vms ? c->n_vms : 1, sizeof(*fresh));

	gone = calloc(b->n_vms ? b->n_vms : 1, sizeof(*gone));
	retired = reallocarray(b->retired, b->n_retired + 1, sizeof(*retired));
	if (retired)
		b->retired = retired;
	if (!vms || !fresh || !gone || !retired)
		goto oom;
	for (size_t i = 0; i < c->n_vms; i++) {
		struct bvm *old = find_vm(b->vms, b->n_vms, c->vms[i].name);

		if (old && cfg_vm_equal(old->cfg, &c->vms[i], NULL, 0)) {
			vms[i] = old;
			kept++;
			continue;
		}
		vms[i] = new_vm(b, &c->vms[i]);
		if (!vms[i])
			goto oom;
		fresh[i] = !old;
		added += !old;
		changed += !!old;
	}
	/* Gone: every old VM that was not carried over as it is. */
	for (size_t i = 0; i < b->n_vms; i++) {
		size_t j = 0;

		while (j < c->n_vms && vms[j] != b->vms[i])
			j++;
		if (j == c->n_vms)
			gone[n_gone++] = b->vms[i];
	}

	pthread_mutex_lock(&b->lock);
	free(b->vms);
	b->vms = vms;
	b->n_vms = c->n_vms;
	pthread_mutex_unlock(&b->lock);
	b->retired[b->n_retired++] = b->cfg;
	b->cfg = c;

	for (size_t i = 0; i < n_gone; i++) {
		log_info("vm %s: removed by reload", gone[i]->cfg->name);
		free_vm(gone[i]);
	}
	for (size_t i = 0; i < c->n_vms; i++)
		if (fresh[i] && vms[i]->cfg->autostart)
			vm_start(vms[i]);
	snprintf(why, len, "reloaded: %zu added, %zu changed, %zu removed, %zu unchanged", added, changed,
		 n_gone - changed, kept);
	log_info("%s", why);
	free(gone);
	free(fresh);
	return 0;
oom:
	for (size_t i = 0; vms && i < c->n_vms; i++)
		if (vms[i] && vms[i] != find_vm(b->vms, b->n_vms, c->vms[i].name))
			free_vm(vms[i]);
	free(vms);
	free(gone);
	free(fresh);
	snprintf(why, len, "out of memory");
	return -ENOMEM;
}

int broker_reload(struct broker *b, char *why, size_t len)
{
	char buf[512], err[1024];
	struct cfg *c;
	int r;

	if (!why) {
		why = buf;
		len = sizeof(buf);
	}
	pthread_mutex_lock(&b->admin);
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
	pthread_mutex_unlock(&b->admin);
	if (r < 0)
		log_err("reload refused: %s", why);
	return r;
}

static void log_stats(struct bvm *vm)
{
	log_info("vm %s: %" PRIu64 " requests, %" PRIu64 " unclaimed, %" PRIu64 " completed with the fallback",
		 vm->cfg->name, atomic_load(&vm->stats.requests), atomic_load(&vm->stats.unclaimed),
		 atomic_load(&vm->stats.fallbacks));
	for (size_t i = 0; i < vm->n_devs; i++) {
		struct bdev_stats *s = &vm->devs[i]->stats;

		log_info("vm %s device %s: %" PRIu64 " pio, %" PRIu64 " mmio, %" PRIu64 " pci requests; %" PRIu64
			 " fallbacks (%" PRIu64 " expired), %" PRIu64 " bad replies, %" PRIu64 " interrupts",
			 vm->cfg->name, vm->devs[i]->cfg->name, atomic_load(&s->requests[0]),
			 atomic_load(&s->requests[1]), atomic_load(&s->requests[2]), atomic_load(&s->fallbacks),
			 atomic_load(&s->expired), atomic_load(&s->bad_replies), atomic_load(&s->interrupts));
	}
}

int broker_destroy(struct broker *b)
{
	int status = 0;

	if (!b)
		return 0;
	for (size_t i = 0; i < b->n_vms; i++) {
		struct bvm *vm = b->vms[i];

		if (vm->cfg->autostart && (atomic_load(&vm->state) != VM_EXITED || atomic_load(&vm->status)))
			status = 1;
	}
	b->control = control_close(b->control);
	/* Stop dispatching first and let devices answer what they hold, while
	 * the housekeeper still enforces deadlines and notices exits. */
	for (size_t i = 0; i < b->n_vms; i++)
		vm_stop(b->vms[i]);
	for (size_t i = 0; i < b->n_vms; i++)
		log_stats(b->vms[i]);
	atomic_store(&b->quit, true);
	if (b->housekeeper_started)
		pthread_join(b->housekeeper, NULL);
	for (size_t i = 0; i < b->n_vms; i++)
		free_vm(b->vms[i]);
	if (b->own_runtime_dir)
		rmdir(b->runtime_dir);
	free(b->vms);
	for (size_t i = 0; i < b->n_retired; i++)
		cfg_free(b->retired[i]);
	free(b->retired);
	cfg_free(b->cfg);
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->admin);
	free(b);
	return status;
}
