#include "vm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "dispatch.h"
#include "log.h"

#define HANDSHAKE_TIMEOUT_MS 10000

int64_t vm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* What the broker needs of a slot, whatever its type. */
struct access {
	uint32_t type;
	bool write;
	uint64_t size;
	uint64_t key;   /* PIO/MMIO address; PCI: BDF */
};

static int decode(const struct acrn_io_request *req, struct access *a)
{
	a->type = req->type;
	switch (req->type) {
	case ACRN_IOREQ_TYPE_PORTIO:
		a->write = req->reqs.pio_request.direction == ACRN_IOREQ_DIR_WRITE;
		a->size = req->reqs.pio_request.size;
		a->key = req->reqs.pio_request.address;
		return a->size <= 4 && wire_size_ok(a->size) ? 0 : -EINVAL;
	case ACRN_IOREQ_TYPE_MMIO:
		a->write = req->reqs.mmio_request.direction == ACRN_IOREQ_DIR_WRITE;
		a->size = req->reqs.mmio_request.size;
		a->key = req->reqs.mmio_request.address;
		return wire_size_ok(a->size) && a->key + a->size - 1 >= a->key ? 0 : -EINVAL;
	case ACRN_IOREQ_TYPE_PCICFG: {
		const struct acrn_pci_request *p = &req->reqs.pci_request;

		a->write = p->direction == ACRN_IOREQ_DIR_WRITE;
		a->size = p->size;
		a->key = (p->bus & 0xff) << 8 | (p->dev & 0x1f) << 3 | (p->func & 7);
		return a->size <= 4 && wire_size_ok(a->size) ? 0 : -EINVAL;
	}
	default:
		return -EINVAL;
	}
}

/* Writes the result into the slot and tells the HSM (NOTIFY_REQUEST_FINISH). */
static void finish(struct bvm *vm, unsigned vcpu, uint64_t value, bool fallback)
{
	struct acrn_io_request *req = &vm->hsm->page->req_slot[vcpu];
	int r;

	switch (req->type) {
	case ACRN_IOREQ_TYPE_PORTIO:
		if (req->reqs.pio_request.direction == ACRN_IOREQ_DIR_READ)
			req->reqs.pio_request.value =
				fallback ? dispatch_all_ones(req->reqs.pio_request.size) : (uint32_t)value;
		break;
	case ACRN_IOREQ_TYPE_MMIO:
		if (req->reqs.mmio_request.direction == ACRN_IOREQ_DIR_READ)
			req->reqs.mmio_request.value = fallback ? dispatch_all_ones(req->reqs.mmio_request.size) : value;
		break;
	case ACRN_IOREQ_TYPE_PCICFG:
		if (req->reqs.pci_request.direction == ACRN_IOREQ_DIR_READ)
			req->reqs.pci_request.value =
				fallback ? dispatch_all_ones(req->reqs.pci_request.size) : (uint32_t)value;
		break;
	default:
		/* Unknown types carry no value we could fill; complete them all the same. */
		break;
	}
	if (fallback)
		atomic_fetch_add_explicit(&vm->stats.fallbacks, 1, memory_order_relaxed);
	r = hsm_complete(vm->hsm, vcpu);
	if (r < 0)
		log_err("vm %s: completing vcpu %u failed: %s", vm->cfg->name, vcpu, strerror(-r));
}

bool vm_complete(struct bvm *vm, unsigned vcpu, uint64_t id, uint64_t value, bool fallback)
{
	struct inflight *f = &vm->inflight[vcpu];
	uint64_t expect = id;
	struct bdev *dev;

	if (id <= INFLIGHT_COMPLETING || !atomic_compare_exchange_strong(&f->id, &expect, INFLIGHT_COMPLETING))
		return false;
	dev = atomic_load(&f->dev);
	if (fallback && dev)
		atomic_fetch_add_explicit(&dev->stats.fallbacks, 1, memory_order_relaxed);
	else if (dev)
		histo_record(&dev->stats.latency, (uint64_t)(vm_now_ns() - f->sent_ns));
	if (dev)
		atomic_fetch_sub_explicit(&dev->inflight, 1, memory_order_relaxed);
	finish(vm, vcpu, value, fallback);
	atomic_store(&f->id, INFLIGHT_IDLE);
	/* Only now may the VM thread look at this vCPU's slot again: its new
	 * request, if it already posted one, waits for this kick. */
	atomic_fetch_and(&vm->held, ~(1u << vcpu));
	hsm_kick(vm->hsm);
	return true;
}

/* The width of vCPU @vcpu's access in flight. */
static uint64_t access_size(struct bvm *vm, unsigned vcpu)
{
	const struct acrn_io_request *req = &vm->hsm->page->req_slot[vcpu];

	switch (req->type) {
	case ACRN_IOREQ_TYPE_PORTIO:
		return req->reqs.pio_request.size;
	case ACRN_IOREQ_TYPE_PCICFG:
		return req->reqs.pci_request.size;
	default:
		return req->reqs.mmio_request.size;
	}
}

int vm_complete_checked(struct bvm *vm, unsigned vcpu, uint64_t id, uint64_t value, bool fallback)
{
	/* The id is re-checked by vm_complete; reading the slot first is safe
	 * because the request cannot complete while its id is in flight. */
	if (atomic_load(&vm->inflight[vcpu].id) != id)
		return -ENOENT;
	if (!fallback && value > dispatch_all_ones(access_size(vm, vcpu))) {
		vm_complete(vm, vcpu, id, 0, true);
		return -ERANGE;
	}
	return vm_complete(vm, vcpu, id, value, fallback) ? 0 : -ENOENT;
}

/* Sends vCPU @vcpu's request @id to the current instance of its device,
 * unless it went there already: the VM thread and a device's handshake may
 * both try, exactly one sends. */
static void send_once(struct bvm *vm, unsigned vcpu, uint64_t id)
{
	struct inflight *f = &vm->inflight[vcpu];
	struct bdev *dev = atomic_load(&f->dev);
	uint32_t gen = atomic_load(&dev->gen), sent = atomic_load(&f->sent_gen);

	if (atomic_load(&dev->state) != BDEV_READY || sent == gen ||
	    !atomic_compare_exchange_strong(&f->sent_gen, &sent, gen))
		return;
	if (atomic_load(&f->id) != id)
		return;
	if (rpc_send_request(dev, id, vcpu, &vm->hsm->page->req_slot[vcpu], f->tag, f->offset) < 0)
		vm_complete(vm, vcpu, id, 0, true);
}

void vm_resend(struct bvm *vm, struct bdev *dev)
{
	for (unsigned v = 0; v < vm->vcpus; v++) {
		uint64_t id = atomic_load(&vm->inflight[v].id);

		if (id > INFLIGHT_COMPLETING && atomic_load(&vm->inflight[v].dev) == dev)
			send_once(vm, v, id);
	}
}

void vm_fail_device(struct bvm *vm, struct bdev *dev)
{
	for (unsigned v = 0; v < vm->vcpus; v++) {
		uint64_t id = atomic_load(&vm->inflight[v].id);

		if (atomic_load(&vm->inflight[v].dev) == dev)
			vm_complete(vm, v, id, 0, true);
	}
}

void vm_expire(struct bvm *vm, int64_t now_ns)
{
	for (unsigned v = 0; v < vm->vcpus; v++) {
		struct inflight *f = &vm->inflight[v];
		uint64_t id = atomic_load(&f->id);
		struct bdev *dev;

		if (id <= INFLIGHT_COMPLETING || atomic_load(&f->deadline_ns) > now_ns)
			continue;
		dev = atomic_load(&f->dev);
		if (vm_complete(vm, v, id, 0, true) && dev) {
			atomic_fetch_add(&dev->stats.expired, 1);
			log_warn("vm %s device %s: request %" PRIu64 " of vcpu %u missed its %u ms deadline",
				 vm->cfg->name, dev->cfg->name, id, v, dev->cfg->deadline_ms);
		}
	}
}

static const char *const type_names[] = {
	[ACRN_IOREQ_TYPE_PORTIO] = "pio",
	[ACRN_IOREQ_TYPE_MMIO] = "mmio",
	[ACRN_IOREQ_TYPE_PCICFG] = "pci",
};

static bool inside_window(const struct cfg_device *c, uint32_t type, uint64_t start, uint64_t end)
{
	const struct cfg_range *w = type == ACRN_IOREQ_TYPE_PORTIO ? c->win_pio : c->win_mmio;
	size_t n = type == ACRN_IOREQ_TYPE_PORTIO ? c->n_win_pio : c->n_win_mmio;

	for (size_t i = 0; i < n; i++)
		if (w[i].start <= start && end <= w[i].end)
			return true;
	return false;
}

static int claim_locked(struct bvm *vm, struct bdev *dev, uint32_t type, uint64_t start, uint64_t end, bool release,
			uint32_t tag, const char **ret_why)
{
	struct rangemap *m = &vm->map[type];
	const struct rangemap_entry *e;

	if (release) {
		e = rangemap_find(m, start, end);
		if (!e || e->start != start || e->end != end || e->owner != dev || e->tag != (VM_CLAIMED_RANGE | tag)) {
			*ret_why = "it holds no such claim";
			return -ENOENT;
		}
		return rangemap_remove(m, start, end, dev);
	}
	if (!inside_window(dev->cfg, type, start, end)) {
		*ret_why = "outside its windows";
		return -EPERM;
	}
	if (rangemap_add(m, start, end, dev, VM_CLAIMED_RANGE | tag, &e) == -EEXIST) {
		*ret_why = e->owner == dev ? "it overlaps one of its own ranges" : "it overlaps another device's range";
		return -EEXIST;
	}
	return 0;
}

int vm_claim(struct bvm *vm, struct bdev *dev, uint32_t type, uint64_t start, uint64_t size, bool release,
	     uint32_t tag)
{
	uint64_t end = start + size - 1;
	const char *why = "PCI config space cannot be claimed";
	int r = -EINVAL;

	if (type != ACRN_IOREQ_TYPE_PCICFG && !(tag & VM_CLAIMED_RANGE)) {
		pthread_rwlock_wrlock(&vm->routes);
		r = claim_locked(vm, dev, type, start, end, release, tag, &why);
		pthread_rwlock_unlock(&vm->routes);
	}
	if (r < 0)
		log_warn("vm %s device %s: refused a %s of %s 0x%" PRIx64 "..0x%" PRIx64 ": %s", vm->cfg->name,
			 dev->cfg->name, release ? "release" : "claim", type_names[type], start, end, why);
	else
		log_info("vm %s device %s: %s %s 0x%" PRIx64 "..0x%" PRIx64, vm->cfg->name, dev->cfg->name,
			 release ? "released" : "claimed", type_names[type], start, end);
	return r;
}

/* A device that is down or restarting keeps requests only if its policy
 * is to hold them (bounded by the deadline) for the restarted device. */
static bool accepts(const struct bdev *dev, int state)
{
	if (state == BDEV_READY)
		return true;
	return (state == BDEV_DOWN || state == BDEV_STARTING) && dev->cfg->on_failure == CFG_ON_FAILURE_HOLD;
}

/* One PROCESSING slot for the default client: route it and send it, or
 * complete it here when nobody can serve it. */
static void handle(struct bvm *vm, unsigned vcpu)
{
	const struct acrn_io_request *req = &vm->hsm->page->req_slot[vcpu];
	const struct rangemap_entry *e = NULL;
	struct inflight *f = &vm->inflight[vcpu];
	struct bdev *dev = NULL;
	uint64_t id, offset = 0;
	uint32_t tag = 0;
	struct access a;
	int state;

	atomic_fetch_add_explicit(&vm->stats.requests, 1, memory_order_relaxed);
	if (decode(req, &a) < 0) {
		log_warn("vm %s: vcpu %u posted a malformed request (type %u): completed with all ones",
			 vm->cfg->name, vcpu, req->type);
		finish(vm, vcpu, 0, true);
		return;
	}
	pthread_rwlock_rdlock(&vm->routes);
	e = rangemap_find(&vm->map[a.type], a.key, a.type == ACRN_IOREQ_TYPE_PCICFG ? a.key : a.key + a.size - 1);
	if (e) {
		dev = e->owner;
		tag = e->tag;
		offset = a.key - e->start;
	}
	pthread_rwlock_unlock(&vm->routes);
	if (!dev) {
		atomic_fetch_add_explicit(&vm->stats.unclaimed, 1, memory_order_relaxed);
		finish(vm, vcpu, 0, true);
		return;
	}
	atomic_fetch_add_explicit(&dev->stats.requests[a.type], 1, memory_order_relaxed);
	state = atomic_load(&dev->state);
	if (!accepts(dev, state)) {
		atomic_fetch_add_explicit(&dev->stats.fallbacks, 1, memory_order_relaxed);
		finish(vm, vcpu, 0, true);
		return;
	}
	if (atomic_fetch_add_explicit(&dev->inflight, 1, memory_order_relaxed) >= dev->cfg->max_inflight) {
		atomic_fetch_sub_explicit(&dev->inflight, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&dev->stats.throttled, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&dev->stats.fallbacks, 1, memory_order_relaxed);
		finish(vm, vcpu, 0, true);
		return;
	}

	id = atomic_fetch_add_explicit(&vm->next_seq, 1, memory_order_relaxed) << 4 | vcpu;
	f->sent_ns = vm_now_ns();
	f->tag = tag;
	f->offset = offset;
	atomic_store(&f->sent_gen, 0);
	atomic_store(&f->dev, dev);
	atomic_store(&f->deadline_ns, f->sent_ns + (int64_t)dev->cfg->deadline_ms * 1000000);
	atomic_store(&f->id, id);
	atomic_fetch_or(&vm->held, 1u << vcpu);
	send_once(vm, vcpu, id);
	/* The device may die at any moment: whoever sees the other's write
	 * (its state, our id) completes the request, unless it is held. */
	if (atomic_load(&dev->state) != BDEV_READY && dev->cfg->on_failure != CFG_ON_FAILURE_HOLD)
		vm_complete(vm, vcpu, id, 0, true);
}

static void *vm_thread(void *arg)
{
	struct bvm *vm = arg;
	struct acrn_io_request_buffer *page = vm->hsm->page;
	unsigned n = vm->hsm->vcpu_num;
	int r;

	for (;;) {
		uint32_t held;

		r = hsm_attach(vm->hsm, &vm->held);
		if (r == -ENODEV)
			break;
		if (r < 0) {
			log_err("vm %s: waiting for requests failed: %s", vm->cfg->name, strerror(-r));
			break;
		}
		held = atomic_load(&vm->held);
		for (unsigned v = 0; v < n; v++) {
			struct acrn_io_request *req = &page->req_slot[v];

			if (held & 1u << v)
				continue;
			/* acrn-dm's rule: PROCESSING and not taken by an in-HSM client. */
			if (__atomic_load_n(&req->processed, __ATOMIC_ACQUIRE) != ACRN_IOREQ_STATE_PROCESSING ||
			    req->kernel_handled)
				continue;
			handle(vm, v);
		}
	}
	return NULL;
}

static void on_stop(void *opaque, int status)
{
	struct bvm *vm = opaque;

	atomic_store(&vm->status, status);
	atomic_store(&vm->state, VM_EXITED);
	broker_vm_stopped(vm->broker, vm);
}

static void on_report(void *opaque, const char *line)
{
	struct bvm *vm = opaque;

	atomic_store(&vm->reported, true);
	log_err("%s", line);
}

static int add_routes(struct bvm *vm, struct bdev *dev)
{
	const struct cfg_device *c = dev->cfg;
	const struct {
		uint32_t type;
		const struct cfg_range *v;
		size_t n;
	} lists[] = {
		{ ACRN_IOREQ_TYPE_PORTIO, c->pio, c->n_pio },
		{ ACRN_IOREQ_TYPE_MMIO, c->mmio, c->n_mmio },
		{ ACRN_IOREQ_TYPE_PCICFG, c->pci, c->n_pci },
	};
	uint32_t tag = 0;
	int r;

	/* Tags count the ranges in the order the Welcome lists them. */
	for (size_t l = 0; l < 3; l++) {
		for (size_t i = 0; i < lists[l].n; i++, tag++) {
			r = rangemap_add(&vm->map[lists[l].type], lists[l].v[i].start, lists[l].v[i].end, dev, tag, NULL);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int vm_create(struct broker *b, const struct cfg_vm *cfg, struct bvm *vm)
{
	int r;

	vm->broker = b;
	vm->cfg = cfg;
	vm->vcpus = cfg->vcpus;
	atomic_store(&vm->next_seq, 1);
	pthread_rwlock_init(&vm->routes, NULL);
	pthread_mutex_init(&vm->life, NULL);
	vm->devs = calloc(cfg->n_devices, sizeof(*vm->devs));
	if (cfg->n_devices && !vm->devs)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_devices; i++) {
		struct bdev *dev = calloc(1, sizeof(*dev));

		if (!dev)
			return -ENOMEM;
		vm->devs[vm->n_devs++] = dev;
		dev->vm = vm;
		dev->cfg = &cfg->devices[i];
		dev->index = i;
		pthread_mutex_init(&dev->lock, NULL);
		r = add_routes(vm, dev);
		if (r < 0) {
			log_err("vm %s device %s: bad routes: %s", cfg->name, dev->cfg->name, strerror(-r));
			return r;
		}
	}
	return 0;
}

static void wait_handshakes(struct bvm *vm)
{
	for (unsigned waited = 0; waited < HANDSHAKE_TIMEOUT_MS; waited++) {
		size_t starting = 0;

		for (size_t i = 0; i < vm->n_devs; i++)
			starting += atomic_load(&vm->devs[i]->state) == BDEV_STARTING;
		if (!starting)
			return;
		usleep(1000);
	}
	for (size_t i = 0; i < vm->n_devs; i++)
		if (atomic_load(&vm->devs[i]->state) == BDEV_STARTING)
			log_err("vm %s device %s: no handshake within %u ms; its requests get the fallback",
				vm->cfg->name, vm->devs[i]->cfg->name, HANDSHAKE_TIMEOUT_MS);
}

static const enum hsm_backend backends[] = {
	[CFG_BACKEND_SIM] = HSM_BACKEND_SIM,
	[CFG_BACKEND_KVM] = HSM_BACKEND_KVM,
	[CFG_BACKEND_ACRN] = HSM_BACKEND_ACRN,
};

/* Starts the VM thread on a VM that already has its default client. */
static int start_thread(struct bvm *vm)
{
	int r = -pthread_create(&vm->thread, NULL, vm_thread, vm);

	if (r < 0)
		log_err("vm %s: cannot start its thread: %s", vm->cfg->name, strerror(-r));
	vm->thread_started = r == 0;
	return r;
}

/* The guest side: the HSM VM, its default client, the VM thread. */
static int guest_start(struct bvm *vm)
{
	const struct cfg_vm *cfg = vm->cfg;
	struct hsm_vm_params p = {
		.name = cfg->name,
		.vcpus = cfg->vcpus,
		.scripts = (const char *const *)cfg->scripts,
		.memory = cfg->memory,
		.image = cfg->image,
		.exit_port = (uint16_t)cfg->exit_port,
		.completion_polling = cfg->completion_polling,
		.on_stop = on_stop,
		.report = on_report,
		.opaque = vm,
	};
	struct hsm_vm *hsm;
	int r;

	atomic_store(&vm->reported, false);
	r = hsm_create(backends[cfg->backend], &p, &hsm);
	if (r < 0) {
		/* The backend says why in its own words when it can: log once. */
		if (!atomic_load(&vm->reported))
			log_err("vm %s: cannot create the VM on the %s backend: %s", cfg->name,
				cfg_backend_name(cfg->backend), strerror(-r));
		return r;
	}
	r = hsm_create_client(hsm);
	if (r < 0) {
		log_err("vm %s: cannot create the default client: %s", cfg->name, strerror(-r));
		hsm_destroy(hsm);
		return r;
	}
	pthread_rwlock_wrlock(&vm->routes);
	vm->hsm = hsm;
	pthread_rwlock_unlock(&vm->routes);
	r = start_thread(vm);
	if (r < 0)
		return r;
	atomic_store(&vm->stop_requested, false);
	atomic_store(&vm->status, 0);
	atomic_store(&vm->state, VM_RUNNING);
	atomic_fetch_add(&vm->broker->vms_running, 1);
	r = hsm_start(vm->hsm);
	if (r < 0)
		log_err("vm %s: cannot start: %s", cfg->name, strerror(-r));
	return r;
}

/* Lets the devices answer what they hold, for at most the longest
 * deadline, then completes the rest; returns once nobody is completing. */
static void drain(struct bvm *vm)
{
	int64_t until = vm_now_ns() + (int64_t)vm->broker->cfg->deadline_ms * 1000000;

	for (size_t i = 0; i < vm->n_devs; i++) {
		int64_t d = vm_now_ns() + (int64_t)vm->devs[i]->cfg->deadline_ms * 1000000;

		if (d > until)
			until = d;
	}
	while (atomic_load(&vm->held) && vm_now_ns() < until)
		usleep(1000);
	for (size_t i = 0; i < vm->n_devs; i++)
		vm_fail_device(vm, vm->devs[i]);
	/* A reply or a deadline may be completing right now: the HSM VM must
	 * outlive it. */
	for (unsigned v = 0; v < vm->vcpus; v++)
		while (atomic_load(&vm->inflight[v].id) != INFLIGHT_IDLE)
			usleep(100);
}

static void guest_stop(struct bvm *vm)
{
	struct hsm_vm *hsm = vm->hsm;

	if (!hsm)
		return;
	/* Stop dispatching: the VM thread's attach returns -ENODEV; new
	 * requests complete at once. */
	hsm_destroy_client(hsm);
	if (vm->thread_started)
		pthread_join(vm->thread, NULL);
	vm->thread_started = false;
	drain(vm);
	if (atomic_exchange(&vm->state, VM_STOPPED) == VM_RUNNING)
		atomic_fetch_sub(&vm->broker->vms_running, 1);
	pthread_rwlock_wrlock(&vm->routes);
	vm->hsm = NULL;
	pthread_rwlock_unlock(&vm->routes);
	hsm_destroy(hsm);
}

int vm_start(struct bvm *vm)
{
	int r = 0;

	pthread_mutex_lock(&vm->life);
	if (vm->hsm) {
		r = -EALREADY;
		goto out;
	}
	for (size_t i = 0; i < vm->n_devs; i++) {
		struct bdev *dev = vm->devs[i];

		r = rpc_open(dev);
		if (r == 0)
			r = rpc_spawn(dev);
		if (r < 0)
			goto out;
	}
	wait_handshakes(vm);
	r = guest_start(vm);
	if (r == 0)
		log_info("vm %s: started on the %s backend with %u vcpus and %zu devices", vm->cfg->name,
			 cfg_backend_name(vm->cfg->backend), vm->cfg->vcpus, vm->n_devs);
out:
	pthread_mutex_unlock(&vm->life);
	return r;
}

void vm_stop(struct bvm *vm)
{
	pthread_mutex_lock(&vm->life);
	guest_stop(vm);
	for (size_t i = 0; i < vm->n_devs; i++)
		rpc_close(vm->devs[i]);
	pthread_mutex_unlock(&vm->life);
}

/* acrn-dm's reset, where the backend can pause: the guest keeps its VM.
 * The VM thread goes with the default client, so that nothing is taken
 * once the drain has begun; a new client comes back for the restart. */
static int reset_in_place(struct bvm *vm)
{
	struct hsm_vm *hsm = vm->hsm;
	int r;

	r = hsm_pause(hsm);
	if (r < 0)
		return r;
	hsm_destroy_client(hsm);
	if (vm->thread_started)
		pthread_join(vm->thread, NULL);
	vm->thread_started = false;
	drain(vm);
	hsm_clear(hsm);
	for (size_t i = 0; i < vm->n_devs; i++)
		rpc_reset(vm->devs[i]);
	r = hsm_reset(hsm);
	if (r == 0)
		r = hsm_create_client(hsm);
	if (r == 0)
		r = start_thread(vm);
	if (r == 0) {
		atomic_store(&vm->status, 0);
		if (atomic_exchange(&vm->state, VM_RUNNING) != VM_RUNNING)
			atomic_fetch_add(&vm->broker->vms_running, 1);
		r = hsm_start(hsm);
	}
	if (r < 0)
		log_err("vm %s: reset failed: %s", vm->cfg->name, strerror(-r));
	return r;
}

int vm_reset(struct bvm *vm)
{
	int r;

	pthread_mutex_lock(&vm->life);
	if (!vm->hsm) {
		r = -ENOTCONN;
		goto out;
	}
	r = reset_in_place(vm);
	if (r == -EOPNOTSUPP) {
		/* No pause (kvm): stop and drain, reset the devices, start a new guest. */
		guest_stop(vm);
		for (size_t i = 0; i < vm->n_devs; i++)
			rpc_reset(vm->devs[i]);
		r = guest_start(vm);
	}
	if (r == 0)
		log_info("vm %s: reset", vm->cfg->name);
out:
	pthread_mutex_unlock(&vm->life);
	return r;
}

void vm_destroy(struct bvm *vm)
{
	vm_stop(vm);
	for (size_t i = 0; i < vm->n_devs; i++) {
		pthread_mutex_destroy(&vm->devs[i]->lock);
		free(vm->devs[i]);
	}
	for (size_t t = 0; t < 3; t++)
		rangemap_fini(&vm->map[t]);
	pthread_rwlock_destroy(&vm->routes);
	pthread_mutex_destroy(&vm->life);
	free(vm->devs);
	vm->devs = NULL;
	vm->n_devs = 0;
}
