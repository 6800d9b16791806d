#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/protocol/pair1/pair.h>
#include <nng/transport/ipc/ipc.h>

#include "broker.h"
#include "devsup.h"
#include "log.h"
#include "vm.h"

#define SHUTDOWN_GRACE_MS 1000

static const char *name_of(const struct bdev *dev)
{
	return dev->cfg->name;
}

static const char *vm_of(const struct bdev *dev)
{
	return dev->vm->cfg->name;
}

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000

static const char *const policies[] = {
	[CFG_ON_FAILURE_FALLBACK] = "its requests complete with the fallback",
	[CFG_ON_FAILURE_HOLD] = "its requests wait for its restart",
	[CFG_ON_FAILURE_STOP_VM] = "stopping the VM",
};

/* The device is gone (exited, disconnected, cut off): its process is
 * killed if it still runs (a fresh instance replaces it, never a
 * half-trusted one), what it held is handled by its on_failure policy, and
 * housekeeping restarts it. */
static void went_down(struct bdev *dev, const char *why)
{
	int prev = atomic_load(&dev->state);

	do {
		if (prev != BDEV_READY && prev != BDEV_STARTING)
			return;
	} while (!atomic_compare_exchange_weak(&dev->state, &prev, BDEV_DOWN));
	log_warn("vm %s device %s: %s; %s", vm_of(dev), name_of(dev), why, policies[dev->cfg->on_failure]);
	pthread_mutex_lock(&dev->lock);
	if (dev->pid > 0)
		kill(dev->pid, SIGKILL);
	pthread_mutex_unlock(&dev->lock);
	if (dev->cfg->on_failure == CFG_ON_FAILURE_STOP_VM)
		atomic_store(&dev->vm->stop_requested, true);
	if (dev->cfg->on_failure != CFG_ON_FAILURE_HOLD)
		vm_fail_device(dev->vm, dev);
}

/* The device broke the protocol: never trusted again. */
static void cut_off(struct bdev *dev, const char *why)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "%s: cut off", why);
	went_down(dev, msg);
}

static void pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	struct bdev *dev = arg;
	uint64_t peer = 0;
	pid_t expected;

	if (ev == NNG_PIPE_EV_ADD_PRE) {
		/* The kernel's SO_PEERCRED, so a process cannot claim another's
		 * pid. Read in our pid namespace, it is the pid we cloned, which a
		 * sandboxed device keeps: ioreq-launch becomes the device. */
		nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &peer);
		pthread_mutex_lock(&dev->lock);
		expected = dev->pid;
		pthread_mutex_unlock(&dev->lock);
		if (peer != (uint64_t)expected || expected <= 0 || atomic_load(&dev->state) != BDEV_STARTING) {
			log_warn("vm %s device %s: refused a connection from pid %" PRIu64 ": not the device it started",
				 vm_of(dev), name_of(dev), peer);
			nng_pipe_close(pipe);
			return;
		}
		atomic_store(&dev->pipe_id, nng_pipe_id(pipe));
		return;
	}
	/* Only the accepted connection counts, not a refused one. */
	if (ev == NNG_PIPE_EV_REM_POST && nng_pipe_id(pipe) == atomic_load(&dev->pipe_id))
		went_down(dev, "disconnected");
}

/* Fills @v and @p (room for WIRE_MAX_LIST) from @n_lists lists of ranges. */
static size_t fill_ranges(Ioreq__Range *v, Ioreq__Range **p, const struct cfg_range *const *lists,
			  const size_t *counts, const Ioreq__Kind *kinds, size_t n_lists)
{
	size_t k = 0;

	for (size_t l = 0; l < n_lists; l++) {
		for (size_t i = 0; i < counts[l]; i++, k++) {
			ioreq__range__init(&v[k]);
			v[k].kind = kinds[l];
			v[k].start = lists[l][i].start;
			v[k].size = lists[l][i].end - lists[l][i].start + 1;
			p[k] = &v[k];
		}
	}
	return k;
}

static int send_welcome(struct bdev *dev)
{
	static const Ioreq__Kind kinds[] = { IOREQ__KIND__KIND_PIO, IOREQ__KIND__KIND_MMIO, IOREQ__KIND__KIND_PCICFG };
	const struct cfg_device *c = dev->cfg;
	const struct cfg_range *ranges[] = { c->pio, c->mmio, c->pci }, *windows[] = { c->win_pio, c->win_mmio };
	const size_t n_ranges[] = { c->n_pio, c->n_mmio, c->n_pci }, n_windows[] = { c->n_win_pio, c->n_win_mmio };
	Ioreq__Range rv[WIRE_MAX_LIST], *rp[WIRE_MAX_LIST], wv[WIRE_MAX_LIST], *wp[WIRE_MAX_LIST];
	Ioreq__Welcome w = IOREQ__WELCOME__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	if (c->n_pio + c->n_mmio + c->n_pci > WIRE_MAX_LIST || c->n_win_pio + c->n_win_mmio > WIRE_MAX_LIST ||
	    c->n_irqs > WIRE_MAX_LIST)
		return -E2BIG;
	w.version = IOREQ__VERSION__VERSION_CURRENT;
	w.vm = (char *)vm_of(dev);
	w.device = (char *)name_of(dev);
	/* Ranges in the order of their tags (vm.c add_routes). */
	w.n_ranges = fill_ranges(rv, rp, ranges, n_ranges, kinds, 3);
	w.ranges = rp;
	w.n_windows = fill_ranges(wv, wp, windows, n_windows, kinds, 2);
	w.windows = wp;
	w.n_irq_lines = c->n_irqs;
	w.irq_lines = c->irqs;
	w.msi = c->msi;
	env.msg_case = IOREQ__ENVELOPE__MSG_WELCOME;
	env.welcome = &w;
	return wire_send(dev->sock, &env, 0);
}

static void on_hello(struct bdev *dev, const Ioreq__Hello *h)
{
	int starting = BDEV_STARTING;
	int r;

	if (h->version != IOREQ__VERSION__VERSION_CURRENT) {
		cut_off(dev, "speaks another protocol version");
		return;
	}
	if (strcmp(h->device, name_of(dev))) {
		cut_off(dev, "introduced itself under another name");
		return;
	}
	r = send_welcome(dev);
	if (r < 0) {
		cut_off(dev, "could not be welcomed");
		return;
	}
	if (!atomic_compare_exchange_strong(&dev->state, &starting, BDEV_READY)) {
		cut_off(dev, "said hello twice");
		return;
	}
	log_info("vm %s device %s: ready (pid %d)", vm_of(dev), name_of(dev), dev->pid);
	/* What waited for this instance (on_failure: hold) goes to it now. */
	vm_resend(dev->vm, dev);
}

static void on_reply(struct bdev *dev, const Ioreq__Reply *rep)
{
	struct bvm *vm = dev->vm;
	unsigned vcpu = rep->id & 15;
	bool fallback = rep->status != IOREQ__STATUS__STATUS_OK;
	int r;

	/* A device completes only what was sent to it. A reply that finds
	 * nothing is late (the deadline won) or a duplicate: counted, dropped.
	 * A reply to an id never issued, or wider than its access, is a lie. */
	if (vcpu >= vm->vcpus || rep->id >> 4 >= atomic_load(&vm->next_seq)) {
		cut_off(dev, "replied to a request it was never sent");
		return;
	}
	if (atomic_load(&vm->inflight[vcpu].dev) != dev) {
		atomic_fetch_add(&dev->stats.bad_replies, 1);
		return;
	}
	r = vm_complete_checked(vm, vcpu, rep->id, rep->value, fallback);
	if (r == -ERANGE)
		cut_off(dev, "replied with a value wider than the access");
	else if (r < 0)
		atomic_fetch_add(&dev->stats.bad_replies, 1);
}

static bool granted_line(const struct cfg_device *c, uint32_t line)
{
	for (size_t i = 0; i < c->n_irqs; i++)
		if (c->irqs[i] == line)
			return true;
	return false;
}

static void on_interrupt(struct bdev *dev, const Ioreq__Interrupt *irq)
{
	static const enum hsm_irq_op ops[] = {
		[IOREQ__IRQ_OP__IRQ_ASSERT] = HSM_IRQ_ASSERT,
		[IOREQ__IRQ_OP__IRQ_DEASSERT] = HSM_IRQ_DEASSERT,
		[IOREQ__IRQ_OP__IRQ_PULSE] = HSM_IRQ_PULSE_HIGH,
	};
	struct bvm *vm = dev->vm;
	int r = 0;

	atomic_fetch_add(&dev->stats.interrupts, 1);
	if (irq->op == IOREQ__IRQ_OP__IRQ_MSI ? !dev->cfg->msi : !granted_line(dev->cfg, irq->line)) {
		atomic_fetch_add(&dev->stats.denied_interrupts, 1);
		log_warn("vm %s device %s: %s not granted; ignored", vm_of(dev), name_of(dev),
			 irq->op == IOREQ__IRQ_OP__IRQ_MSI ? "MSI" : "IRQ line");
		return;
	}
	/* The guest may be between a stop and a start (reset): nothing to interrupt. */
	pthread_rwlock_rdlock(&vm->routes);
	if (vm->hsm && irq->op == IOREQ__IRQ_OP__IRQ_MSI)
		r = hsm_inject_msi(vm->hsm, irq->msi_addr, irq->msi_data);
	else if (vm->hsm)
		r = hsm_set_irqline(vm->hsm, irq->line, ops[irq->op]);
	pthread_rwlock_unlock(&vm->routes);
	if (r < 0)
		log_err("vm %s device %s: interrupt failed: %s", vm_of(dev), name_of(dev), strerror(-r));
}

static void on_claim(struct bdev *dev, const Ioreq__Claim *claim)
{
	static const uint32_t types[] = {
		[IOREQ__KIND__KIND_PIO] = ACRN_IOREQ_TYPE_PORTIO,
		[IOREQ__KIND__KIND_MMIO] = ACRN_IOREQ_TYPE_MMIO,
		[IOREQ__KIND__KIND_PCICFG] = ACRN_IOREQ_TYPE_PCICFG,
	};
	Ioreq__ClaimResult res = IOREQ__CLAIM_RESULT__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	/* Applied before the device's next message (its reply to the guest's
	 * BAR write) is read: routing has changed when the vCPU resumes. */
	res.tag = claim->tag;
	res.error = vm_claim(dev->vm, dev, types[claim->range->kind], claim->range->start, claim->range->size,
			     claim->release, claim->tag);
	env.msg_case = IOREQ__ENVELOPE__MSG_CLAIM_RESULT;
	env.claim_result = &res;
	wire_send(dev->sock, &env, NNG_FLAG_NONBLOCK);
}

/* Interrupts and claims beyond max_msg_rate per second are dropped; a
 * device that keeps sending at four times its rate is cut off. */
static bool within_rate(struct bdev *dev)
{
	int64_t now = vm_now_ns();

	if (now - dev->rate_start_ns >= 1000000000) {
		dev->rate_start_ns = now;
		dev->rate_count = 0;
	}
	if (++dev->rate_count <= dev->cfg->max_msg_rate)
		return true;
	atomic_fetch_add(&dev->stats.throttled, 1);
	if (dev->rate_count == dev->cfg->max_msg_rate + 1)
		log_warn("vm %s device %s: more than %u messages a second; dropping them", vm_of(dev), name_of(dev),
			 dev->cfg->max_msg_rate);
	if (dev->rate_count > 4 * dev->cfg->max_msg_rate)
		cut_off(dev, "flooded the broker with messages");
	return false;
}

static void dispatch_msg(struct bdev *dev, const Ioreq__Envelope *env)
{
	int state = atomic_load(&dev->state);

	if (env->msg_case == IOREQ__ENVELOPE__MSG_HELLO) {
		on_hello(dev, env->hello);
		return;
	}
	if (state != BDEV_READY) {
		if (state == BDEV_STARTING)
			cut_off(dev, "sent a message before its hello");
		return;
	}
	if (env->msg_case != IOREQ__ENVELOPE__MSG_REPLY && !within_rate(dev))
		return;
	switch (env->msg_case) {
	case IOREQ__ENVELOPE__MSG_REPLY:
		on_reply(dev, env->reply);
		break;
	case IOREQ__ENVELOPE__MSG_INTERRUPT:
		on_interrupt(dev, env->interrupt);
		break;
	case IOREQ__ENVELOPE__MSG_CLAIM:
		on_claim(dev, env->claim);
		break;
	default:
		cut_off(dev, "sent a message only the broker may send");
		break;
	}
}

static void rx_done(void *arg)
{
	struct bdev *dev = arg;
	Ioreq__Envelope *env;
	nng_msg *msg;
	int r;

	r = nng_aio_result(dev->rx);
	if (r == NNG_ECLOSED || r == NNG_ECANCELED)
		return;
	if (r == 0) {
		msg = nng_aio_get_msg(dev->rx);
		wire_arena_reset(&dev->arena);
		r = wire_unpack(nng_msg_body(msg), nng_msg_len(msg), &dev->arena, &env);
		if (r < 0)
			cut_off(dev, r == -EMSGSIZE ? "sent an oversized message" : "sent a malformed message");
		else
			dispatch_msg(dev, env);
		nng_msg_free(msg);
	}
	nng_recv_aio(dev->sock, dev->rx);
}

int rpc_open(struct bdev *dev)
{
	struct broker *b = dev->vm->broker;
	int r;

	r = snprintf(dev->dir, sizeof(dev->dir), "%s/%s.%s", b->runtime_dir, vm_of(dev), name_of(dev));
	/* sun_path is 108 bytes; nng's ipc:// paths must fit it. */
	if (r < 0 || (size_t)r + sizeof("/sock") > 100) {
		log_err("vm %s device %s: socket path under %s is too long", vm_of(dev), name_of(dev),
			b->runtime_dir);
		return -ENAMETOOLONG;
	}
	if (mkdir(dev->dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		log_err("vm %s device %s: cannot create %s: %s", vm_of(dev), name_of(dev), dev->dir, strerror(-r));
		return r;
	}
	snprintf(dev->url, sizeof(dev->url), "ipc://%s/sock", dev->dir);
	unlink(dev->url + strlen("ipc://"));

	r = nng_pair1_open(&dev->sock);
	if (r)
		goto nng_err;
	dev->sock_open = true;
	nng_socket_set_size(dev->sock, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
	/* Room for one request per vCPU and the messages around them, so that a
	 * non-blocking send fails only when the device has stopped reading. */
	nng_socket_set_int(dev->sock, NNG_OPT_SENDBUF, 2 * ACRN_IO_REQUEST_MAX);
	nng_socket_set_int(dev->sock, NNG_OPT_RECVBUF, 2 * ACRN_IO_REQUEST_MAX);
	nng_pipe_notify(dev->sock, NNG_PIPE_EV_ADD_PRE, pipe_event, dev);
	nng_pipe_notify(dev->sock, NNG_PIPE_EV_REM_POST, pipe_event, dev);
	r = nng_aio_alloc(&dev->rx, rx_done, dev);
	if (r)
		goto nng_err;
	r = nng_listen(dev->sock, dev->url, &dev->listener, 0);
	if (r)
		goto nng_err;
	nng_recv_aio(dev->sock, dev->rx);
	return 0;
nng_err:
	log_err("vm %s device %s: cannot listen on %s: %s", vm_of(dev), name_of(dev), dev->url, nng_strerror(r));
	return wire_errno(r);
}

static void close_stream(int fd, int std)
{
	if (fd != std)
		close(fd);
}

static int open_stream(struct bdev *dev, const char *path, int flags, int *ret)
{
	int fd = open(path, flags | O_CLOEXEC, 0644);

	if (fd < 0) {
		fd = -errno;
		log_err("vm %s device %s: cannot open %s: %s", vm_of(dev), name_of(dev), path, strerror(-fd));
		return fd;
	}
	*ret = fd;
	return 0;
}

/* The device's stdin and stdout, opened here: a sandboxed device cannot
 * open anything itself. */
static int open_streams(struct bdev *dev, int *ret_in, int *ret_out)
{
	const struct cfg_device *c = dev->cfg;
	int r;

	*ret_in = 0;
	*ret_out = 1;
	if (!c->input_stdin) {
		r = open_stream(dev, "/dev/null", O_RDONLY, ret_in);
		if (r < 0)
			return r;
	}
	if (!c->output_stdout) {
		r = open_stream(dev, c->output_file ? c->output_file : "/dev/null", O_WRONLY | O_CREAT | O_APPEND,
				ret_out);
		if (r < 0) {
			close_stream(*ret_in, 0);
			return r;
		}
	}
	return 0;
}

int rpc_spawn(struct bdev *dev)
{
	const struct cfg_device *c = dev->cfg;
	char launcher[PATH_MAX + 16];
	const struct devsup_sandbox sb = {
		.launcher = launcher,
		.socket = dev->url + strlen("ipc://"),
	};
	bool strict = c->sandbox == CFG_SANDBOX_STRICT;
	int r, fd_in, fd_out;
	size_t n_args = 0;
	char **argv;
	pid_t pid;

	snprintf(launcher, sizeof(launcher), "%s/ioreq-launch", dev->vm->broker->bindir);
	while (c->args[n_args])
		n_args++;
	argv = calloc(n_args + 6, sizeof(*argv));
	if (!argv)
		return -ENOMEM;
	argv[0] = c->program;
	argv[1] = "--socket";
	argv[2] = dev->url;
	argv[3] = "--name";
	argv[4] = c->name;
	memcpy(&argv[5], c->args, n_args * sizeof(*argv));

	r = open_streams(dev, &fd_in, &fd_out);
	if (r < 0) {
		free(argv);
		return r;
	}
	pthread_mutex_lock(&dev->lock);
	atomic_fetch_add(&dev->gen, 1);
	atomic_store(&dev->state, BDEV_STARTING);
	r = devsup_spawn(argv, fd_in, fd_out, strict ? &sb : NULL, &pid);
	dev->pid = r < 0 ? 0 : pid;
	pthread_mutex_unlock(&dev->lock);
	free(argv);
	close_stream(fd_in, 0);
	close_stream(fd_out, 1);
	if (r < 0) {
		atomic_store(&dev->state, BDEV_DOWN);
		log_err("vm %s device %s: cannot start %s%s%s: %s", vm_of(dev), name_of(dev), c->program,
			strict ? " through " : "", strict ? launcher : "", strerror(-r));
		return r;
	}
	if (!strict)
		log_warn("vm %s device %s: sandbox none: running unconfined", vm_of(dev), name_of(dev));
	log_info("vm %s device %s: started %s (pid %d)", vm_of(dev), name_of(dev), c->program, pid);
	return 0;
}

int rpc_send_request(struct bdev *dev, uint64_t id, unsigned vcpu, const struct acrn_io_request *req,
		     uint32_t range, uint64_t offset)
{
	Ioreq__Request q = IOREQ__REQUEST__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	q.id = id;
	q.vcpu = vcpu;
	q.range = range;
	q.offset = offset;
	switch (req->type) {
	case ACRN_IOREQ_TYPE_PORTIO:
		q.kind = IOREQ__KIND__KIND_PIO;
		q.dir = req->reqs.pio_request.direction;
		q.addr = req->reqs.pio_request.address;
		q.size = req->reqs.pio_request.size;
		q.value = req->reqs.pio_request.value;
		break;
	case ACRN_IOREQ_TYPE_MMIO:
		q.kind = IOREQ__KIND__KIND_MMIO;
		q.dir = req->reqs.mmio_request.direction;
		q.addr = req->reqs.mmio_request.address;
		q.size = req->reqs.mmio_request.size;
		q.value = req->reqs.mmio_request.value;
		break;
	default:
		q.kind = IOREQ__KIND__KIND_PCICFG;
		q.dir = req->reqs.pci_request.direction;
		q.bdf = (req->reqs.pci_request.bus & 0xff) << 8 | (req->reqs.pci_request.dev & 0x1f) << 3 |
			(req->reqs.pci_request.func & 7);
		q.reg = req->reqs.pci_request.reg;
		q.size = req->reqs.pci_request.size;
		q.value = req->reqs.pci_request.value;
		break;
	}
	if (q.dir == IOREQ__DIRECTION__DIR_READ)
		q.value = 0;
	env.msg_case = IOREQ__ENVELOPE__MSG_REQUEST;
	env.request = &q;
	return wire_send(dev->sock, &env, NNG_FLAG_NONBLOCK);
}

void rpc_exited(struct bdev *dev, int status)
{
	char why[128], how[96];
	pid_t pid;

	pthread_mutex_lock(&dev->lock);
	pid = dev->pid;
	dev->pid = 0;
	pthread_mutex_unlock(&dev->lock);
	atomic_fetch_add(&dev->stats.exits, 1);
	snprintf(why, sizeof(why), "pid %d %s", pid, devsup_describe(status, how, sizeof(how)));
	went_down(dev, why);
	if (atomic_load(&dev->state) == BDEV_DOWN)
		log_info("vm %s device %s: %s", vm_of(dev), name_of(dev), why);
}

void rpc_maintain(struct bdev *dev, int64_t now)
{
	const struct cfg_device *c = dev->cfg;
	pid_t pid;

	if (atomic_load(&dev->state) != BDEV_DOWN)
		return;
	pthread_mutex_lock(&dev->lock);
	pid = dev->pid;
	pthread_mutex_unlock(&dev->lock);
	/* One instance at a time: the old one must be collected first. */
	if (pid > 0)
		return;
	if (!dev->restart_at_ns) {
		if (now - dev->window_start_ns >= (int64_t)c->restart_window_ms * 1000000) {
			dev->window_start_ns = now;
			dev->window_restarts = 0;
			dev->backoff_ms = BACKOFF_MIN_MS;
		}
		if (dev->window_restarts >= c->restart_limit) {
			snprintf(dev->failed_why, sizeof(dev->failed_why), "failed %u times within %u ms",
				 dev->window_restarts + 1, c->restart_window_ms);
			atomic_store(&dev->state, BDEV_FAILED);
			log_err("vm %s device %s: %s: given up; its requests get the fallback", vm_of(dev),
				name_of(dev), dev->failed_why);
			vm_fail_device(dev->vm, dev);
			return;
		}
		dev->restart_at_ns = now + (int64_t)dev->backoff_ms * 1000000;
		return;
	}
	if (now < dev->restart_at_ns)
		return;
	dev->restart_at_ns = 0;
	dev->window_restarts++;
	dev->restarts++;
	dev->backoff_ms = dev->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : dev->backoff_ms * 2;
	log_info("vm %s device %s: restarting (restart %u)", vm_of(dev), name_of(dev), dev->restarts);
	if (rpc_spawn(dev) < 0)
		atomic_store(&dev->state, BDEV_DOWN);
}

void rpc_reset(struct bdev *dev)
{
	Ioreq__Reset m = IOREQ__RESET__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	if (atomic_load(&dev->state) != BDEV_READY)
		return;
	env.msg_case = IOREQ__ENVELOPE__MSG_RESET;
	env.reset = &m;
	wire_send(dev->sock, &env, NNG_FLAG_NONBLOCK);
}

void rpc_close(struct bdev *dev)
{
	Ioreq__Shutdown s = IOREQ__SHUTDOWN__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	int prev = atomic_exchange(&dev->state, BDEV_STOPPING);
	pid_t pid;

	if (prev == BDEV_READY) {
		env.msg_case = IOREQ__ENVELOPE__MSG_SHUTDOWN;
		env.shutdown = &s;
		wire_send(dev->sock, &env, NNG_FLAG_NONBLOCK);
	}
	pthread_mutex_lock(&dev->lock);
	pid = dev->pid;
	dev->pid = 0;
	pthread_mutex_unlock(&dev->lock);
	devsup_stop(pid, prev == BDEV_READY ? SHUTDOWN_GRACE_MS : 0);
	if (dev->sock_open) {
		nng_close(dev->sock);
		dev->sock_open = false;
	}
	if (dev->rx) {
		nng_aio_stop(dev->rx);
		nng_aio_free(dev->rx);
		dev->rx = NULL;
	}
	if (dev->dir[0]) {
		unlink(dev->url + strlen("ipc://"));
		rmdir(dev->dir);
	}
}
