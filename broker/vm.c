#include "vm.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "evreg.h"
#include "guestmem.h"
#include "events.h"
#include "histo.h"
#include "hsm.h"
#include "log.h"
#include "loop.h"
#include "rangemap.h"
#include "request.h"

/* How long a stop or reset lets devices answer what they hold: ACRN's
 * CLEAR_VM_IOREQ gives in-HSM clients 100 ms; devices get more, but a stop
 * never waits for a long deadline (on_failure: hold may set minutes). */
#define DRAIN_MAX_MS 1000

/* Set in the tag of a range a device claimed at run time (a BAR). */
#define CLAIMED_RANGE 0x80000000u

struct vdev_stats {
	_Atomic uint64_t requests[3]; /* by ACRN_IOREQ_TYPE_* */
	_Atomic uint64_t fallbacks;   /* completed with the fallback value */
	_Atomic uint64_t expired;     /* of which: the deadline passed */
	_Atomic uint64_t bad_replies; /* late or duplicate replies, dropped */
	_Atomic uint64_t throttled;   /* requests over max_inflight */
	struct histo latency;         /* ns from publishing to the reply, answered requests only */
};

/* A device as its VM sees it: where its requests go and what they cost. */
struct vdev {
	struct bvm *vm;
	const struct cfg_device *cfg;
	struct devsup *sup;
	_Atomic unsigned inflight;
	unsigned claims;              /* ranges it claimed: under the routes lock */
	struct vdev_stats stats;
};

struct vm_stats {
	_Atomic uint64_t requests;
	_Atomic uint64_t unclaimed;   /* no device for the range */
	_Atomic uint64_t fallbacks;   /* all completions with the fallback value */
};

struct bvm {
	const struct cfg_vm *cfg;
	struct vm_env env;
	struct loop *loop;
	struct loop *replies;          /* the thread that collects replies from the devices' rings; NULL: no ring */
	struct request_table *req;
	struct loop_source *timer_src;
	/* The guest. Changed on the event thread under the write lock; the VM
	 * thread runs only while it is set, interrupts read it. */
	pthread_rwlock_t guest;
	struct hsm_vm *hsm;
	pthread_t thread;
	bool thread_started;
	bool client;                   /* event thread: the guest has its default client */
	bool devices_started;          /* event thread */
	/* Routes change at run time (BAR claims, registrations) from nng's
	 * threads. */
	pthread_rwlock_t routes;
	struct rangemap map[3];        /* by ACRN_IOREQ_TYPE_*: PIO, MMIO, PCI BDFs */
	struct evreg_set *regs;        /* the devices' ioeventfds and irqfds */
	struct loop_source *relay_src; /* the irqfds the broker relays */
	struct vdev *devs;
	size_t n_devs;
	_Atomic int state;             /* enum vm_state */
	_Atomic int status;
	_Atomic bool failing;          /* a device with on_failure: stop-vm went down */
	struct loop_job stop_job;      /* on_failure: stop-vm */
	struct loop_job quit_job;      /* vm_stop_async */
	/* A start in progress (event thread): the devices are spawned, the
	 * guest waits for their handshakes (check_start). */
	bool starting;
	int start_timer;
	struct loop_source *start_src;
	struct loop_job check_job;
	/* vm_start's caller waits here for the end of the start. */
	pthread_mutex_t start_lock;
	pthread_cond_t start_done;
	unsigned start_seq;
	int start_result;
	struct vm_stats stats;
};

static const char *const state_names[] = {
	[VM_STOPPED] = "stopped",
	[VM_RUNNING] = "running",
	[VM_EXITED] = "exited",
};

const char *vm_state_name(enum vm_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}

enum vm_state vm_state(const struct bvm *vm)
{
	return atomic_load(&vm->state);
}

const struct cfg_vm *vm_cfg(const struct bvm *vm)
{
	return vm->cfg;
}

struct hsm_vm *vm_guest(struct bvm *vm)
{
	return vm->hsm;
}

size_t vm_n_devices(const struct bvm *vm)
{
	return vm->n_devs;
}

static void set_state(struct bvm *vm, enum vm_state s)
{
	enum vm_state was = (enum vm_state)atomic_exchange(&vm->state, s);
	char why[32] = "";

	if (was == s)
		return;
	if (s == VM_EXITED)
		snprintf(why, sizeof(why), "status %d", atomic_load(&vm->status));
	events_publish(vm->cfg->name, NULL, vm_state_name(was), vm_state_name(s), why, 0);
	if (vm->env.changed)
		vm->env.changed(vm->env.opaque);
}

/* ---- the VM thread: from the HSM to a device ---- */

static void finish_now(struct bvm *vm, struct vdev *dev, unsigned vcpu, const struct access *a)
{
	atomic_fetch_add_explicit(&vm->stats.fallbacks, 1, memory_order_relaxed);
	if (dev)
		atomic_fetch_add_explicit(&dev->stats.fallbacks, 1, memory_order_relaxed);
	request_finish(vm->req, vcpu, a, 0, true);
}

/* Sends @id to instance @gen of @dev, once per instance. */
static void send_once(struct bvm *vm, struct vdev *dev, uint32_t gen, uint64_t id, unsigned vcpu,
		      const struct access *a, uint32_t tag, uint64_t offset)
{
	int r;

	if (!request_mark_sent(vm->req, id, gen))
		return;
	r = devsup_send(dev->sup, gen, id, vcpu, a, tag, offset);
	/* An instance that went meanwhile: a held request waits for the next. */
	if (r == -ESTALE && dev->cfg->on_failure == CFG_ON_FAILURE_HOLD)
		return;
	if (r < 0)
		request_complete(vm->req, id, 0, REQUEST_FAILED);
}

/* A device that is down or restarting keeps requests only if its policy
 * is to hold them (bounded by the deadline) for the restarted device. */
static bool accepts(const struct vdev *dev, uint32_t gen)
{
	enum devsup_state s;

	if (gen)
		return true;
	s = devsup_state(dev->sup);
	return (s == DEVSUP_DOWN || s == DEVSUP_STARTING) && dev->cfg->on_failure == CFG_ON_FAILURE_HOLD;
}

/* One new request: route it and send it, or complete it at once when
 * nobody can serve it. */
static void handle(struct bvm *vm, unsigned vcpu)
{
	const struct rangemap_entry *e;
	struct request_route route = { 0 };
	struct vdev *dev = NULL;
	struct access a;
	bool rung = false;
	uint32_t gen;
	uint64_t id;
	int r;

	r = request_take(vm->req, vcpu, &a);
	if (r == -EAGAIN || r == -EBUSY)
		return;
	atomic_fetch_add_explicit(&vm->stats.requests, 1, memory_order_relaxed);
	if (r < 0) {
		log_warn("vm %s: vcpu %u posted a malformed request (type %u): completed with all ones",
			 vm->cfg->name, vcpu, a.type);
		finish_now(vm, NULL, vcpu, NULL);
		return;
	}
	pthread_rwlock_rdlock(&vm->routes);
	e = rangemap_find(&vm->map[a.type], access_first(&a), access_last(&a));
	if (e) {
		dev = e->owner;
		route = (struct request_route){ .owner = dev, .tag = e->tag, .offset = access_first(&a) - e->start };
		/* A doorbell the backend cannot ring itself: rung here, done. */
		rung = evreg_doorbell(vm->regs, &a);
	}
	pthread_rwlock_unlock(&vm->routes);
	if (!dev) {
		atomic_fetch_add_explicit(&vm->stats.unclaimed, 1, memory_order_relaxed);
		finish_now(vm, NULL, vcpu, &a);
		return;
	}
	atomic_fetch_add_explicit(&dev->stats.requests[a.type], 1, memory_order_relaxed);
	if (rung) {
		request_finish(vm->req, vcpu, &a, 0, false);
		return;
	}
	gen = devsup_ready_gen(dev->sup);
	if (!accepts(dev, gen)) {
		finish_now(vm, dev, vcpu, &a);
		return;
	}
	if (atomic_fetch_add_explicit(&dev->inflight, 1, memory_order_relaxed) >= dev->cfg->max_inflight) {
		atomic_fetch_sub_explicit(&dev->inflight, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&dev->stats.throttled, 1, memory_order_relaxed);
		finish_now(vm, dev, vcpu, &a);
		return;
	}
	id = request_publish(vm->req, vcpu, &a, &route, clock_now_ns() + (int64_t)dev->cfg->deadline_ms * 1000000);
	if (gen)
		send_once(vm, dev, gen, id, vcpu, &a, route.tag, route.offset);
	/* The device may have gone since we looked: its down() event fails
	 * what it finds published, and what it did not find yet we fail here
	 * (the request and the device's state are both seq_cst). */
	if (dev->cfg->on_failure != CFG_ON_FAILURE_HOLD && devsup_ready_gen(dev->sup) != gen)
		request_complete(vm->req, id, 0, REQUEST_FAILED);
}

static void *vm_thread(void *arg)
{
	struct bvm *vm = arg;
	unsigned n = vm->cfg->vcpus;
	int r;

	log_debug("vm %s: its thread takes the requests of %u vcpus", vm->cfg->name, n);
	for (;;) {
		uint32_t held;

		r = hsm_attach(vm->hsm, request_held(vm->req));
		if (r == -ENODEV)
			break;
		if (r < 0) {
			log_err("vm %s: waiting for requests failed: %s", vm->cfg->name, strerror(-r));
			break;
		}
		held = atomic_load(request_held(vm->req));
		for (unsigned v = 0; v < n; v++)
			if (!(held & 1u << v))
				handle(vm, v);
	}
	return NULL;
}

/* ---- completions ---- */

static void on_done(void *opaque, const struct request_done *d)
{
	struct bvm *vm = opaque;
	struct vdev *dev = d->owner;

	atomic_fetch_sub_explicit(&dev->inflight, 1, memory_order_relaxed);
	if (d->how == REQUEST_ANSWERED) {
		histo_record(&dev->stats.latency, (uint64_t)(clock_now_ns() - d->published_ns));
		return;
	}
	atomic_fetch_add_explicit(&vm->stats.fallbacks, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&dev->stats.fallbacks, 1, memory_order_relaxed);
	if (d->how == REQUEST_EXPIRED) {
		atomic_fetch_add(&dev->stats.expired, 1);
		devsup_log(dev->sup, LOG_WARNING, "request %" PRIu64 " of vcpu %u missed its %u ms deadline", d->id,
			   d->vcpu, dev->cfg->deadline_ms);
	}
}

static void on_deadline(void *opaque, uint32_t events)
{
	struct bvm *vm = opaque;
	uint64_t ticks;

	if (read(request_timer_fd(vm->req), &ticks, sizeof(ticks)) > 0)
		request_expire(vm->req, clock_now_ns());
}

/* ---- what devices tell their VM ---- */

static void dev_ready(void *opaque, uint32_t gen)
{
	struct vdev *dev = opaque;
	struct bvm *vm = dev->vm;

	loop_post(vm->loop, &vm->check_job);
	/* What waited for this instance (on_failure: hold) goes to it now. */
	for (unsigned v = 0; v < vm->cfg->vcpus; v++) {
		struct request_route route;
		struct access a;
		uint64_t id = request_id_of(vm->req, v);

		if (id && request_view(vm->req, id, &a, &route) && route.owner == dev)
			send_once(vm, dev, gen, id, v, &a, route.tag, route.offset);
	}
}

/* Forgets the ranges @dev claimed at run time and its registrations (all
 * devices: NULL): an instance's, when it goes down, before the next one
 * exists. */
static void forget_claims(struct bvm *vm, struct vdev *dev)
{
	pthread_rwlock_wrlock(&vm->routes);
	evreg_remove_owner(vm->regs, dev);
	for (size_t t = 0; t < 3; t++)
		rangemap_remove_tagged(&vm->map[t], dev, CLAIMED_RANGE);
	for (size_t i = 0; i < vm->n_devs; i++)
		if (!dev || &vm->devs[i] == dev)
			vm->devs[i].claims = 0;
	pthread_rwlock_unlock(&vm->routes);
}

static void dev_down(void *opaque, uint32_t gen, const char *why)
{
	struct vdev *dev = opaque;
	struct bvm *vm = dev->vm;

	loop_post(vm->loop, &vm->check_job);
	/* A new instance starts from nothing: the guest programs its BARs again. */
	forget_claims(vm, dev);
	switch (dev->cfg->on_failure) {
	case CFG_ON_FAILURE_HOLD:
		break;
	case CFG_ON_FAILURE_STOP_VM:
		/* Decided now, whatever the guest does until the stop: its
		 * requests wait for the stop's drain, its status is a failure. */
		atomic_store(&vm->status, 1);
		if (!atomic_exchange(&vm->failing, true))
			loop_post(vm->loop, &vm->stop_job);
		break;
	default:
		request_fail_owner(vm->req, dev, REQUEST_FAILED);
		break;
	}
}

static void dev_failed(void *opaque)
{
	struct vdev *dev = opaque;

	loop_post(dev->vm->loop, &dev->vm->check_job);
	request_fail_owner(dev->vm->req, dev, REQUEST_FAILED);
}

static int dev_reply(void *opaque, uint32_t gen, uint64_t id, uint64_t value, bool ok)
{
	struct vdev *dev = opaque;
	int r = request_reply(dev->vm->req, id, dev, gen, value, ok);

	if (r == -ENOENT)
		atomic_fetch_add(&dev->stats.bad_replies, 1);
	return r;
}

static int dev_interrupt(void *opaque, const Ioreq__Interrupt *irq)
{
	static const enum hsm_irq_op ops[] = {
		[IOREQ__IRQ_OP__IRQ_ASSERT] = HSM_IRQ_ASSERT,
		[IOREQ__IRQ_OP__IRQ_DEASSERT] = HSM_IRQ_DEASSERT,
		[IOREQ__IRQ_OP__IRQ_PULSE] = HSM_IRQ_PULSE_HIGH,
	};
	struct vdev *dev = opaque;
	struct bvm *vm = dev->vm;
	int r = 0;

	/* The guest may be between a stop and a start (reset): nothing to interrupt. */
	pthread_rwlock_rdlock(&vm->guest);
	if (vm->hsm && irq->op == IOREQ__IRQ_OP__IRQ_MSI)
		r = hsm_inject_msi(vm->hsm, irq->msi_addr, irq->msi_data);
	else if (vm->hsm)
		r = hsm_set_irqline(vm->hsm, irq->line, ops[irq->op]);
	pthread_rwlock_unlock(&vm->guest);
	return r;
}

static bool inside_window(const struct cfg_device *c, uint32_t type, uint64_t start, uint64_t end)
{
	const struct cfg_range *w = type == ACRN_IOREQ_TYPE_PORTIO ? c->win_pio : c->win_mmio;
	size_t n = type == ACRN_IOREQ_TYPE_PORTIO ? c->n_win_pio : c->n_win_mmio;

	for (size_t i = 0; i < n; i++)
		if (w[i].start <= start && end <= w[i].end)
			return true;
	return false;
}

static int claim_locked(struct bvm *vm, struct vdev *dev, uint32_t type, uint64_t start, uint64_t end, bool release,
			uint32_t tag, const char **why)
{
	struct rangemap *m = &vm->map[type];
	const struct rangemap_entry *e;
	int r;

	if (release) {
		e = rangemap_find(m, start, end);
		if (!e || e->start != start || e->end != end || e->owner != dev || e->tag != (CLAIMED_RANGE | tag)) {
			*why = "it holds no such claim";
			return -ENOENT;
		}
		r = rangemap_remove(m, start, end, dev);
		if (r == 0) {
			dev->claims--;
			/* Its doorbells there would now catch writes meant
			 * for whoever takes the range next. */
			evreg_remove_inside(vm->regs, dev, type, start, end);
		}
		return r;
	}
	if (!inside_window(dev->cfg, type, start, end)) {
		*why = "outside its windows";
		return -EPERM;
	}
	if (dev->claims >= dev->cfg->max_claims) {
		*why = "it holds as many ranges as max_claims allows";
		return -ENOSPC;
	}
	r = rangemap_add(m, start, end, dev, CLAIMED_RANGE | tag, &e);
	if (r == -EEXIST)
		*why = e->owner == dev ? "it overlaps one of its own ranges" : "it overlaps another device's range";
	else if (r == 0)
		dev->claims++;
	return r;
}

static int dev_claim(void *opaque, uint32_t gen, uint32_t type, uint64_t start, uint64_t size, bool release,
		     uint32_t tag, const char **why)
{
	struct vdev *dev = opaque;
	struct bvm *vm = dev->vm;
	int r;

	*why = "PCI config space cannot be claimed";
	if (type == ACRN_IOREQ_TYPE_PCICFG)
		return -EINVAL;
	*why = "its tag has the top bit set";
	if (tag & CLAIMED_RANGE)
		return -EINVAL;
	pthread_rwlock_wrlock(&vm->routes);
	/* An instance that is gone claims nothing: its claims were forgotten. */
	if (devsup_ready_gen(dev->sup) != gen) {
		*why = "it is not the current instance";
		r = -ESTALE;
	} else {
		r = claim_locked(vm, dev, type, start, start + size - 1, release, tag, why);
	}
	pthread_rwlock_unlock(&vm->routes);
	return r;
}

static int dev_register(void *opaque, uint32_t gen, const struct evreg_spec *spec, int fd, bool release,
			const char **why)
{
	static const char *const paths[] = {
		[EVREG_PENDING] = "applied when the guest starts",
		[EVREG_IN_HSM] = "served by the hypervisor",
		[EVREG_RELAYED] = "relayed by the broker",
	};
	struct vdev *dev = opaque;
	struct bvm *vm = dev->vm;
	enum evreg_path path;
	int r;

	pthread_rwlock_wrlock(&vm->routes);
	/* As for claims: what a gone instance held was forgotten already. */
	if (devsup_ready_gen(dev->sup) != gen) {
		*why = "it is not the current instance";
		r = -ESTALE;
	} else if (release) {
		r = evreg_remove(vm->regs, dev, spec->kind, spec->index);
		if (r < 0)
			*why = "it has no such registration";
	} else {
		r = evreg_check(spec, dev->cfg, vm->map, dev, why);
		if (r == 0)
			r = evreg_add(vm->regs, dev, spec, fd, &path, why);
		if (r == 0)
			*why = paths[path];
	}
	pthread_rwlock_unlock(&vm->routes);
	return r;
}

static int dev_guest_copy(void *opaque, uint64_t gpa, void *buf, size_t len, bool write)
{
	struct vdev *dev = opaque;
	struct bvm *vm = dev->vm;
	int r;

	/* Under the read lock the guest, and its RAM, cannot go. */
	pthread_rwlock_rdlock(&vm->guest);
	r = vm->hsm ? guestmem_copy(vm->hsm, gpa, buf, len, write) : -EFAULT;
	pthread_rwlock_unlock(&vm->guest);
	return r;
}

static const struct devsup_events dev_events = {
	.ready = dev_ready,
	.down = dev_down,
	.reply = dev_reply,
	.interrupt = dev_interrupt,
	.claim = dev_claim,
	.failed = dev_failed,
	.registration = dev_register,
	.guest_copy = dev_guest_copy,
};

/* The relayed irqfds were written: inject (event thread). */
static void on_relay(void *opaque, uint32_t events)
{
	struct bvm *vm = opaque;

	pthread_rwlock_rdlock(&vm->routes);
	evreg_relay(vm->regs);
	pthread_rwlock_unlock(&vm->routes);
}

/* ---- the guest (event thread) ---- */

static void on_stop(void *opaque, int status)
{
	struct bvm *vm = opaque;

	if (atomic_load(&vm->failing))
		status = 1;
	atomic_store(&vm->status, status);
	if (status)
		log_err("vm %s: stopped with status %d", vm->cfg->name, status);
	else
		log_info("vm %s: stopped with status 0", vm->cfg->name);
	set_state(vm, VM_EXITED);
}

static void on_report(void *opaque, const char *line)
{
	log_err("%s", line);
}

static const enum hsm_backend backends[] = {
	[CFG_BACKEND_SIM] = HSM_BACKEND_SIM,
	[CFG_BACKEND_KVM] = HSM_BACKEND_KVM,
	[CFG_BACKEND_ACRN] = HSM_BACKEND_ACRN,
};

/* Starts the VM thread on a guest that has its default client. */
static int start_thread(struct bvm *vm)
{
	int r = -pthread_create(&vm->thread, NULL, vm_thread, vm);

	if (r < 0)
		log_err("vm %s: cannot start its thread: %s", vm->cfg->name, strerror(-r));
	vm->thread_started = r == 0;
	return r;
}

static void stop_thread(struct bvm *vm)
{
	/* Stop dispatching: the VM thread's attach returns -ENODEV; new
	 * requests complete at once. */
	hsm_destroy_client(vm->hsm);
	vm->client = false;
	if (vm->thread_started)
		pthread_join(vm->thread, NULL);
	vm->thread_started = false;
}

static void set_guest(struct bvm *vm, struct hsm_vm *hsm)
{
	pthread_rwlock_wrlock(&vm->guest);
	vm->hsm = hsm;
	pthread_rwlock_unlock(&vm->guest);
	request_table_set_hsm(vm->req, hsm);
}

/* The guest's RAM as its devices get it, or false when it has none. */
static bool guest_memory(const struct hsm_vm *hsm, struct devsup_memory *m)
{
	if (hsm->mem_fd < 0 || !hsm->mem_size || !hsm->n_regions || hsm->n_regions > WIRE_MAX_REGIONS)
		return false;
	*m = (struct devsup_memory){ .fd = hsm->mem_fd, .size = hsm->mem_size, .n_regions = hsm->n_regions };
	for (unsigned i = 0; i < hsm->n_regions; i++)
		m->regions[i] = (struct devsup_mem_region){
			.gpa = hsm->regions[i].gpa,
			.size = hsm->regions[i].size,
			.offset = hsm->regions[i].offset,
		};
	return true;
}

static void give_memory(struct bvm *vm, const struct devsup_memory *m)
{
	for (size_t i = 0; i < vm->n_devs; i++)
		devsup_set_memory(vm->devs[i].sup, m);
}

/* Creates the guest, without running it: its RAM exists from here on, to
 * be given to the devices, and the registrations are applied to it. */
static int guest_create(struct bvm *vm)
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
	struct devsup_memory mem;
	struct hsm_vm *hsm;
	int r;

	r = hsm_create(backends[cfg->backend], &p, &hsm);
	if (r < 0) {
		log_err("vm %s: cannot create the VM on the %s backend: %s", cfg->name, cfg_backend_name(cfg->backend),
			strerror(-r));
		return r;
	}
	give_memory(vm, guest_memory(hsm, &mem) ? &mem : NULL);
	pthread_rwlock_wrlock(&vm->routes);
	evreg_attach(vm->regs, hsm);
	pthread_rwlock_unlock(&vm->routes);
	set_guest(vm, hsm);
	return 0;
}

/* Runs the created guest: its default client, the VM thread, its vCPUs. */
static int guest_run(struct bvm *vm)
{
	const struct cfg_vm *cfg = vm->cfg;
	int r;

	r = hsm_create_client(vm->hsm);
	if (r < 0) {
		log_err("vm %s: cannot create the default client: %s", cfg->name, strerror(-r));
		return r;
	}
	vm->client = true;
	r = start_thread(vm);
	if (r < 0)
		return r;
	atomic_store(&vm->status, atomic_load(&vm->failing) ? 1 : 0);
	set_state(vm, VM_RUNNING);
	r = hsm_start(vm->hsm);
	if (r < 0)
		log_err("vm %s: cannot start: %s", cfg->name, strerror(-r));
	return r;
}

/* Lets the devices answer what they hold, for at most the longest
 * deadline or DRAIN_MAX_MS, then completes the rest. */
static void drain(struct bvm *vm)
{
	uint32_t longest = vm->env.deadline_ms;

	for (size_t i = 0; i < vm->n_devs; i++)
		if (vm->devs[i].cfg->deadline_ms > longest)
			longest = vm->devs[i].cfg->deadline_ms;
	if (longest > DRAIN_MAX_MS)
		longest = DRAIN_MAX_MS;
	request_drain(vm->req, clock_now_ns() + (int64_t)longest * 1000000);
}

static void guest_stop(struct bvm *vm)
{
	struct hsm_vm *hsm = vm->hsm;

	if (!hsm)
		return;
	if (vm->client)
		stop_thread(vm);
	drain(vm);
	/* Nobody completes any more: the guest may go, and with it its RAM
	 * (the devices that mapped it keep their pages until they exit). */
	pthread_rwlock_wrlock(&vm->routes);
	evreg_detach(vm->regs);
	pthread_rwlock_unlock(&vm->routes);
	give_memory(vm, NULL);
	set_guest(vm, NULL);
	hsm_destroy(hsm);
	if (vm_state(vm) == VM_RUNNING)
		set_state(vm, VM_STOPPED);
}

/* ---- life (event thread) ---- */

struct life_call {
	struct bvm *vm;
	int result;
};

static void stop_devices(struct bvm *vm)
{
	for (size_t i = 0; i < vm->n_devs; i++)
		devsup_ask_stop(vm->devs[i].sup);
	for (size_t i = 0; i < vm->n_devs; i++)
		devsup_stop(vm->devs[i].sup);
	forget_claims(vm, NULL);
	vm->devices_started = false;
}

/* Tells vm_start's caller how the start ended. */
static void finish_start(struct bvm *vm, int result)
{
	vm->starting = false;
	vm->start_src = loop_remove(vm->loop, vm->start_src);
	pthread_mutex_lock(&vm->start_lock);
	vm->start_result = result;
	vm->start_seq++;
	pthread_cond_broadcast(&vm->start_done);
	pthread_mutex_unlock(&vm->start_lock);
}

/* The guest starts once every device finished its handshake or failed,
 * or when DEVSUP_HANDSHAKE_MS are up: checked on every device event and on
 * the start timer, never waited for, so that the event thread goes on
 * reading the devices' pipes and collecting their exits meanwhile. */
static void check_start(struct bvm *vm, bool timeout)
{
	int r;

	if (!vm->starting)
		return;
	for (size_t i = 0; i < vm->n_devs && !timeout; i++)
		if (devsup_state(vm->devs[i].sup) == DEVSUP_STARTING)
			return;
	for (size_t i = 0; i < vm->n_devs; i++)
		if (devsup_state(vm->devs[i].sup) == DEVSUP_STARTING)
			log_err("vm %s device %s: no handshake within %u ms; its requests get the fallback", vm->cfg->name,
				vm->devs[i].cfg->name, DEVSUP_HANDSHAKE_MS);
	r = guest_run(vm);
	if (r == 0) {
		log_info("vm %s: started on the %s backend with %u vcpus and %zu devices", vm->cfg->name,
			 cfg_backend_name(vm->cfg->backend), vm->cfg->vcpus, vm->n_devs);
	} else {
		guest_stop(vm);
		stop_devices(vm);
	}
	finish_start(vm, r);
}

static void on_check_job(void *arg)
{
	check_start(arg, false);
}

static void on_start_timer(void *opaque, uint32_t events)
{
	struct bvm *vm = opaque;
	uint64_t ticks;

	if (read(vm->start_timer, &ticks, sizeof(ticks)) > 0)
		check_start(vm, true);
}

/* The guest runs once the devices started have finished their handshakes
 * (check_start). */
static int wait_for_devices(struct bvm *vm)
{
	struct itimerspec its = { .it_value = { .tv_sec = DEVSUP_HANDSHAKE_MS / 1000,
						.tv_nsec = DEVSUP_HANDSHAKE_MS % 1000 * 1000000 } };
	int r;

	timerfd_settime(vm->start_timer, 0, &its, NULL);
	r = loop_add(vm->loop, vm->start_timer, EPOLLIN, on_start_timer, vm, &vm->start_src);
	vm->starting = r == 0;
	return r;
}

static void do_start(void *arg)
{
	struct life_call *c = arg;
	struct bvm *vm = c->vm;
	int r = 0;

	if (vm->hsm || vm->devices_started) {
		c->result = -EALREADY;
		return;
	}
	atomic_store(&vm->failing, false);
	/* The guest first, without running it: the devices get its RAM. */
	r = guest_create(vm);
	if (r < 0) {
		c->result = r;
		return;
	}
	vm->devices_started = true;
	for (size_t i = 0; i < vm->n_devs && r == 0; i++)
		r = devsup_start(vm->devs[i].sup);
	if (r == 0)
		r = wait_for_devices(vm);
	if (r < 0) {
		guest_stop(vm);
		stop_devices(vm);
		c->result = r;
		return;
	}
	c->result = 0;
	check_start(vm, false);
}

static void do_stop(void *arg)
{
	struct life_call *c = arg;
	struct bvm *vm = c->vm;

	if (!vm->hsm && !vm->devices_started) {
		c->result = -ENOTCONN;
		return;
	}
	guest_stop(vm);
	stop_devices(vm);
	if (vm->starting)
		finish_start(vm, -ECANCELED);
	c->result = 0;
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
	stop_thread(vm);
	drain(vm);
	hsm_clear(hsm);
	for (size_t i = 0; i < vm->n_devs; i++)
		devsup_reset(vm->devs[i].sup);
	r = hsm_reset(hsm);
	if (r == 0)
		r = hsm_create_client(hsm);
	if (r == 0) {
		vm->client = true;
		r = start_thread(vm);
	}
	if (r == 0) {
		atomic_store(&vm->status, atomic_load(&vm->failing) ? 1 : 0);
		set_state(vm, VM_RUNNING);
		r = hsm_start(hsm);
	}
	return r;
}

/* A reset where the backend cannot pause (kvm): stop and drain, reset the
 * devices, start a new guest. A device given the old guest's RAM starts
 * over with the new one's, and the new guest waits for its handshake, as
 * at a start. */
static int reset_new_guest(struct bvm *vm)
{
	bool restart = false;
	int r;

	guest_stop(vm);
	for (size_t i = 0; i < vm->n_devs; i++) {
		struct vdev *dev = &vm->devs[i];

		if (dev->cfg->memory == CFG_MEMORY_NONE) {
			devsup_reset(dev->sup);
		} else {
			devsup_ask_stop(dev->sup);
			devsup_stop(dev->sup);
			restart = true;
		}
	}
	r = guest_create(vm);
	if (r < 0)
		return r;
	for (size_t i = 0; i < vm->n_devs && r == 0; i++)
		if (vm->devs[i].cfg->memory != CFG_MEMORY_NONE)
			r = devsup_start(vm->devs[i].sup);
	if (r == 0 && restart)
		r = wait_for_devices(vm);
	if (r < 0)
		return r;
	if (restart)
		check_start(vm, false);
	else
		r = guest_run(vm);
	return r;
}

static void do_reset(void *arg)
{
	struct life_call *c = arg;
	struct bvm *vm = c->vm;
	int r;

	/* A guest that is created but waits for its devices does not run yet. */
	if (!vm->hsm || vm->starting) {
		c->result = -ENOTCONN;
		return;
	}
	r = reset_in_place(vm);
	if (r == -EOPNOTSUPP)
		r = reset_new_guest(vm);
	if (r == 0)
		log_info("vm %s: reset", vm->cfg->name);
	else
		log_err("vm %s: reset failed: %s", vm->cfg->name, strerror(-r));
	c->result = r;
}

static int life(struct bvm *vm, loop_job_fn fn)
{
	struct life_call c = { .vm = vm };

	loop_call(vm->loop, fn, &c);
	return c.result;
}

int vm_start(struct bvm *vm)
{
	unsigned seq;
	int r;

	pthread_mutex_lock(&vm->start_lock);
	seq = vm->start_seq;
	pthread_mutex_unlock(&vm->start_lock);
	r = life(vm, do_start);
	if (r < 0)
		return r;
	/* Started on the event thread; finished there when the devices are. */
	pthread_mutex_lock(&vm->start_lock);
	while (vm->start_seq == seq)
		pthread_cond_wait(&vm->start_done, &vm->start_lock);
	r = vm->start_result;
	pthread_mutex_unlock(&vm->start_lock);
	return r;
}

int vm_stop(struct bvm *vm)
{
	return life(vm, do_stop);
}

int vm_reset(struct bvm *vm)
{
	return life(vm, do_reset);
}

static void on_stop_job(void *arg)
{
	struct bvm *vm = arg;
	struct life_call c = { .vm = vm };

	if (!atomic_load(&vm->failing))
		return;
	log_err("vm %s: stopping: a device failed (on_failure: stop-vm)", vm->cfg->name);
	do_stop(&c);
}

static void on_quit_job(void *arg)
{
	struct life_call c = { .vm = arg };

	do_stop(&c);
}

void vm_stop_async(struct bvm *vm)
{
	loop_post(vm->loop, &vm->quit_job);
}

/* ---- setting up ---- */

static int add_routes(struct bvm *vm, struct vdev *dev)
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

struct setup {
	struct bvm *vm;
	int result;
};

static void do_setup(void *arg)
{
	struct setup *s = arg;
	struct bvm *vm = s->vm;
	int r = 0;

	for (size_t i = 0; i < vm->cfg->n_devices && r == 0; i++) {
		struct vdev *dev = &vm->devs[i];
		struct devsup_params p = {
			.cfg = &vm->cfg->devices[i],
			.vm = vm->cfg->name,
			.vcpus = vm->cfg->vcpus,
			.runtime_dir = vm->env.runtime_dir,
			.launcher = vm->env.launcher,
			.loop = vm->loop,
			.replies = vm->replies,
			.cgroups = vm->env.cgroups,
			.events = &dev_events,
			.opaque = dev,
		};

		dev->vm = vm;
		dev->cfg = p.cfg;
		r = devsup_new(&p, &dev->sup);
		if (r == 0) {
			vm->n_devs++;
			r = add_routes(vm, dev);
			if (r < 0)
				log_err("vm %s device %s: bad routes: %s", vm->cfg->name, dev->cfg->name, strerror(-r));
		}
	}
	if (r == 0)
		r = loop_add(vm->loop, request_timer_fd(vm->req), EPOLLIN, on_deadline, vm, &vm->timer_src);
	if (r == 0)
		r = loop_add(vm->loop, evreg_relay_fd(vm->regs), EPOLLIN, on_relay, vm, &vm->relay_src);
	s->result = r;
}

int vm_new(const struct cfg_vm *cfg, const struct vm_env *env, struct bvm **ret)
{
	struct bvm *vm = calloc(1, sizeof(*vm));
	struct setup s = { .vm = vm };
	char name[16];
	int r;

	if (!vm)
		return -ENOMEM;
	vm->cfg = cfg;
	vm->env = *env;
	vm->start_timer = -1;
	vm->stop_job = (struct loop_job){ .fn = on_stop_job, .arg = vm };
	vm->quit_job = (struct loop_job){ .fn = on_quit_job, .arg = vm };
	vm->check_job = (struct loop_job){ .fn = on_check_job, .arg = vm };
	pthread_mutex_init(&vm->start_lock, NULL);
	pthread_cond_init(&vm->start_done, NULL);
	vm->start_timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (vm->start_timer < 0) {
		r = -errno;
		goto err;
	}
	pthread_rwlock_init(&vm->guest, NULL);
	pthread_rwlock_init(&vm->routes, NULL);
	vm->devs = calloc(cfg->n_devices ? cfg->n_devices : 1, sizeof(*vm->devs));
	if (!vm->devs) {
		r = -ENOMEM;
		goto err;
	}
	r = request_table_new(cfg->vcpus, on_done, vm, &vm->req);
	if (r == 0)
		r = evreg_set_new(cfg->name, &vm->regs);
	if (r == 0)
		r = loop_new(&vm->loop);
	/* Only where a device has a request ring. */
	for (size_t i = 0; i < cfg->n_devices && r == 0 && !vm->replies; i++) {
		if (!cfg_device_has_ring(&cfg->devices[i]))
			continue;
		r = loop_new(&vm->replies);
		snprintf(name, sizeof(name), "vmr-%.11s", cfg->name);
		if (r == 0)
			r = loop_start(vm->replies, name);
	}
	if (r < 0)
		goto err;
	/* Before the loop runs, its sources may be added from here. */
	do_setup(&s);
	r = s.result;
	if (r < 0)
		goto err;
	snprintf(name, sizeof(name), "vm-%.12s", cfg->name);
	r = loop_start(vm->loop, name);
	if (r < 0)
		goto err;
	*ret = vm;
	return 0;
err:
	vm_free(vm);
	return r;
}

static void do_teardown(void *arg)
{
	struct bvm *vm = arg;
	struct life_call c = { .vm = vm };

	do_stop(&c);
	for (size_t i = 0; i < vm->n_devs; i++)
		vm->devs[i].sup = devsup_free(vm->devs[i].sup);
	vm->timer_src = loop_remove(vm->loop, vm->timer_src);
	vm->relay_src = loop_remove(vm->loop, vm->relay_src);
}

struct bvm *vm_free(struct bvm *vm)
{
	if (!vm)
		return NULL;
	if (vm->loop) {
		loop_call(vm->loop, do_teardown, vm);
		vm->loop = loop_free(vm->loop);
	}
	vm->replies = loop_free(vm->replies);
	vm->req = request_table_free(vm->req);
	vm->regs = evreg_set_free(vm->regs);
	for (size_t t = 0; t < 3; t++)
		rangemap_fini(&vm->map[t]);
	pthread_rwlock_destroy(&vm->routes);
	pthread_rwlock_destroy(&vm->guest);
	pthread_mutex_destroy(&vm->start_lock);
	pthread_cond_destroy(&vm->start_done);
	if (vm->start_timer >= 0)
		close(vm->start_timer);
	free(vm->devs);
	free(vm);
	return NULL;
}

/* ---- what control reports ---- */

void vm_info(const struct bvm *vm, struct vm_info *ret)
{
	*ret = (struct vm_info){
		.cfg = vm->cfg,
		.state = vm_state(vm),
		.status = atomic_load(&vm->status),
		.requests = atomic_load(&vm->stats.requests),
		.unclaimed = atomic_load(&vm->stats.unclaimed),
		.fallbacks = atomic_load(&vm->stats.fallbacks),
	};
}

int vm_device_info(struct bvm *vm, size_t i, struct vm_device_info *ret)
{
	struct vdev *dev = &vm->devs[i];
	struct vdev_stats *s = &dev->stats;
	size_t n = 0, k = 0;

	*ret = (struct vm_device_info){
		.cfg = dev->cfg,
		.fallbacks = atomic_load(&s->fallbacks),
		.expired = atomic_load(&s->expired),
		.bad_replies = atomic_load(&s->bad_replies),
		.throttled = atomic_load(&s->throttled),
		.replies = histo_count(&s->latency),
		.p50_ns = histo_quantile(&s->latency, 0.50),
		.p90_ns = histo_quantile(&s->latency, 0.90),
		.p99_ns = histo_quantile(&s->latency, 0.99),
		.max_ns = atomic_load(&s->latency.max),
		.latency = &s->latency,
	};
	for (size_t t = 0; t < 3; t++)
		ret->requests[t] = atomic_load(&s->requests[t]);
	devsup_info(dev->sup, &ret->sup);
	pthread_rwlock_rdlock(&vm->routes);
	for (uint32_t t = 0; t < 3; t++)
		n += vm->map[t].n;
	ret->ranges = calloc(n ? n : 1, sizeof(*ret->ranges));
	for (uint32_t t = 0; ret->ranges && t < 3; t++) {
		for (size_t e = 0; e < vm->map[t].n; e++) {
			const struct rangemap_entry *en = &vm->map[t].v[e];

			if (en->owner != dev)
				continue;
			ret->ranges[k++] = (struct vm_range){
				.type = t,
				.start = en->start,
				.end = en->end,
				.claimed = en->tag & CLAIMED_RANGE,
			};
		}
	}
	pthread_rwlock_unlock(&vm->routes);
	ret->n_ranges = k;
	return ret->ranges ? 0 : -ENOMEM;
}
