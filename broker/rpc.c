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

/* The device broke the protocol: it is cut off at once and never trusted
 * again; what it held completes with the fallback. */
static void cut_off(struct bdev *dev, const char *why)
{
	int prev = atomic_exchange(&dev->state, BDEV_DOWN);

	if (prev == BDEV_STOPPING) {
		atomic_store(&dev->state, BDEV_STOPPING);
		return;
	}
	log_err("vm %s device %s: %s; cutting it off", vm_of(dev), name_of(dev), why);
	vm_fail_device(dev->vm, dev);
	pthread_mutex_lock(&dev->lock);
	if (dev->pid > 0)
		kill(dev->pid, SIGKILL);
	pthread_mutex_unlock(&dev->lock);
}

static void pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	struct bdev *dev = arg;
	uint64_t peer = 0;
	pid_t expected;

	if (ev == NNG_PIPE_EV_ADD_PRE) {
		/* The kernel's SO_PEERCRED, so a process cannot claim another's pid. */
		nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &peer);
		pthread_mutex_lock(&dev->lock);
		expected = dev->pid;
		pthread_mutex_unlock(&dev->lock);
		if (peer != (uint64_t)expected || expected <= 0 || atomic_load(&dev->state) != BDEV_STARTING) {
			log_warn("vm %s device %s: refused a connection from pid %" PRIu64 ": not the device it started",
				 vm_of(dev), name_of(dev), peer);
			nng_pipe_close(pipe);
		}
		return;
	}
	if (ev == NNG_PIPE_EV_REM_POST) {
		int prev = atomic_load(&dev->state);

		/* Only the accepted connection counts; a refused one never got that far. */
		if ((prev == BDEV_READY || prev == BDEV_STARTING) &&
		    atomic_compare_exchange_strong(&dev->state, &prev, BDEV_DOWN)) {
			log_warn("vm %s device %s: disconnected; its requests complete with the fallback",
				 vm_of(dev), name_of(dev));
			vm_fail_device(dev->vm, dev);
		}
	}
}

static int send_welcome(struct bdev *dev)
{
	const struct cfg_device *c = dev->cfg;
	size_t n = c->n_pio + c->n_mmio + c->n_pci;
	Ioreq__Range ranges[WIRE_MAX_LIST], *rp[WIRE_MAX_LIST];
	Ioreq__Welcome w = IOREQ__WELCOME__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	const struct {
		Ioreq__Kind kind;
		const struct cfg_range *v;
		size_t n;
	} lists[] = {
		{ IOREQ__KIND__KIND_PIO, c->pio, c->n_pio },
		{ IOREQ__KIND__KIND_MMIO, c->mmio, c->n_mmio },
		{ IOREQ__KIND__KIND_PCICFG, c->pci, c->n_pci },
	};
	size_t k = 0;

	if (n > WIRE_MAX_LIST || c->n_irqs > WIRE_MAX_LIST)
		return -E2BIG;
	for (size_t l = 0; l < 3; l++) {
		for (size_t i = 0; i < lists[l].n; i++, k++) {
			ioreq__range__init(&ranges[k]);
			ranges[k].kind = lists[l].kind;
			ranges[k].start = lists[l].v[i].start;
			ranges[k].size = lists[l].v[i].end - lists[l].v[i].start + 1;
			rp[k] = &ranges[k];
		}
	}
	w.version = IOREQ__VERSION__VERSION_CURRENT;
	w.vm = (char *)vm_of(dev);
	w.device = (char *)name_of(dev);
	w.n_ranges = n;
	w.ranges = rp;
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
	if (atomic_compare_exchange_strong(&dev->state, &starting, BDEV_READY))
		log_info("vm %s device %s: ready (pid %d)", vm_of(dev), name_of(dev), dev->pid);
	else
		cut_off(dev, "said hello twice");
}

static void on_reply(struct bdev *dev, const Ioreq__Reply *rep)
{
	struct bvm *vm = dev->vm;
	unsigned vcpu = rep->id & 15;
	bool fallback = rep->status != IOREQ__STATUS__STATUS_OK;

	/* A device completes only what was sent to it. A reply that finds
	 * nothing is late (the deadline won) or a duplicate: counted, dropped. */
	if (vcpu >= vm->vcpus || atomic_load(&vm->inflight[vcpu].dev) != dev ||
	    !vm_complete(vm, vcpu, rep->id, rep->value, fallback))
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
	int r, fd_in, fd_out;
	size_t n_args = 0;
	char **argv;
	pid_t pid;

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
	atomic_store(&dev->state, BDEV_STARTING);
	r = devsup_spawn(argv, fd_in, fd_out, &pid);
	dev->pid = r < 0 ? 0 : pid;
	pthread_mutex_unlock(&dev->lock);
	free(argv);
	close_stream(fd_in, 0);
	close_stream(fd_out, 1);
	if (r < 0) {
		atomic_store(&dev->state, BDEV_DOWN);
		log_err("vm %s device %s: cannot start %s: %s", vm_of(dev), name_of(dev), c->program, strerror(-r));
		return r;
	}
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
	char why[96];
	pid_t pid;

	pthread_mutex_lock(&dev->lock);
	pid = dev->pid;
	dev->pid = 0;
	pthread_mutex_unlock(&dev->lock);
	atomic_fetch_add(&dev->stats.exits, 1);
	if (atomic_load(&dev->state) == BDEV_STOPPING)
		return;
	atomic_store(&dev->state, BDEV_DOWN);
	log_warn("vm %s device %s: pid %d %s; its requests complete with the fallback", vm_of(dev), name_of(dev),
		 pid, devsup_describe(status, why, sizeof(why)));
	vm_fail_device(dev->vm, dev);
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
