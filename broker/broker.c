#include "broker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static void *housekeeping(void *arg)
{
	struct broker *b = arg;

	while (!atomic_load(&b->quit)) {
		pid_t pid;
		int status;

		while (devsup_reap(&pid, &status) == 0) {
			struct bdev *dev = find_device(b, pid);

			if (dev)
				rpc_exited(dev, status);
		}
		for (size_t i = 0; i < b->n_vms; i++)
			vm_expire(b->vms[i], vm_now_ns());
		usleep(HOUSEKEEPING_INTERVAL_US);
	}
	return NULL;
}

int broker_create(const struct cfg *cfg, struct broker **ret)
{
	struct broker *b;
	int r;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->cfg = cfg;
	b->vms = calloc(cfg->n_vms, sizeof(*b->vms));
	if (!b->vms) {
		r = -ENOMEM;
		goto err;
	}
	r = make_runtime_dir(b);
	if (r < 0)
		goto err;
	for (size_t i = 0; i < cfg->n_vms; i++) {
		b->vms[i] = calloc(1, sizeof(*b->vms[i]));
		if (!b->vms[i]) {
			r = -ENOMEM;
			goto err;
		}
		b->n_vms++;
		r = vm_create(b, &cfg->vms[i], b->vms[i]);
		if (r < 0)
			goto err;
	}
	*ret = b;
	return 0;
err:
	broker_destroy(b);
	return r;
}

int broker_start(struct broker *b)
{
	int r;

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

	if (status)
		log_err("vm %s: stopped with status %d", vm->cfg->name, status);
	else
		log_info("vm %s: stopped with status 0", vm->cfg->name);
	atomic_fetch_sub(&b->vms_running, 1);
}

unsigned broker_vms_running(struct broker *b)
{
	return atomic_load(&b->vms_running);
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
	/* Stop dispatching first and let devices answer what they hold, while
	 * the housekeeper still enforces deadlines and notices exits. */
	for (size_t i = 0; i < b->n_vms; i++)
		vm_stop(b->vms[i]);
	for (size_t i = 0; i < b->n_vms; i++)
		log_stats(b->vms[i]);
	atomic_store(&b->quit, true);
	if (b->housekeeper_started)
		pthread_join(b->housekeeper, NULL);
	for (size_t i = 0; i < b->n_vms; i++) {
		vm_destroy(b->vms[i]);
		free(b->vms[i]);
	}
	if (b->own_runtime_dir)
		rmdir(b->runtime_dir);
	free(b->vms);
	free(b);
	return status;
}
