#include "devsup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "clock.h"
#include "events.h"
#include "log.h"
#include "proc.h"
#include "ring.h"
#include "rpc.h"
#include "tlsid.h"
#include "wire.h"

#define SHUTDOWN_GRACE_MS 1000
#define KILL_WAIT_MS 5000
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000
#define VIOLATION_WINDOW_NS (60 * 1000000000LL)
/* Lines a device may put in the broker's log per window: its own output
 * and the broker's lines about it. */
#define LOG_WINDOW_NS (10 * 1000000000LL)
#define LOG_BURST 100
#define LOG_LINE_MAX 256

/* ---- a device ---- */

/* A pipe the broker reads: a device's stdout or stderr, logged line by line
 * (or, for a terminal the broker would not hand out, copied to it). */
struct reader {
	int fd;
	int copy_to;            /* -1: log it */
	struct loop_source *src;
	char buf[LOG_LINE_MAX];
	size_t used;
};

/* What an instance is given besides its socket: fds 3, 4, ... in the
 * device, in this order (proto/ioreq.proto's Welcome says which is what). */
#define BLOCK_MAX (1 + WIRE_MAX_FILES + 2 * WIRE_MAX_EVENTFDS)

/* How often something happened within the current second. */
struct rate {
	int64_t start_ns;
	unsigned count;
};

/* One process serving the device. Its fields belong to the event thread,
 * except pid (under the device's lock, for devsup_info); the block is set
 * before the process exists and read by the socket's callbacks, which end
 * before it is closed (finish_instance). */
struct instance {
	pid_t pid;
	int pidfd;
	uid_t uid;              /* (uid_t)-1: none taken */
	struct cgroup *cg;
	struct loop_source *pid_src, *cg_src;
	struct reader out, err;
	int stdin_copy;         /* the device's stdin pipe, fed from ours; -1 */
	struct loop_source *stdin_src;
	bool reaped;
	/* The broker's copies of what the device got at 3 + i: the guest's
	 * memory (when it has), its files, its doorbells, its irqfds. */
	int block[BLOCK_MAX];
	size_t n_block;
	size_t files0, doorbells0, irqfds0; /* where each kind starts in it */
	struct devsup_memory mem;           /* as given; mem.fd < 0: none */
	/* Its request ring: where the ring's fds are in the device (0: it
	 * was given none), whether it takes requests there (its Hello), and
	 * its reply doorbell's watch. */
	unsigned ring_fd0;
	bool ring_on;
	struct loop_source *ring_src;
	int ring_watch;         /* watch_ring's result */
	/* A remote instance's doorbells, which the broker reads and relays
	 * as Signal messages (its eventfds stay here). */
	struct doorbell {
		struct devsup *d;
		uint32_t index;
		struct loop_source *src;
	} bells[WIRE_MAX_EVENTFDS];
};

/* The instance's generation and its state in one word, so that an event of
 * an old instance can never change the state of a new one. */
#define LIFE(gen, state) ((uint64_t)(gen) << 32 | (uint32_t)(state))
#define LIFE_GEN(w) ((uint32_t)((w) >> 32))
#define LIFE_STATE(w) ((enum devsup_state)(uint32_t)(w))

struct devsup {
	struct devsup_params p;
	const struct cfg_device *cfg;
	char dir[PATH_MAX];
	char sock[108];
	struct rpc *rpc;
	struct ring *ring;         /* transport: ring; NULL: nng only */
	_Atomic uint64_t life;
	bool stopping;             /* event thread: no restart */
	bool asked_to_exit;        /* event thread: Shutdown sent */
	struct instance inst;
	struct devsup_memory mem;  /* event thread: the guest's RAM; mem.fd < 0: none */
	int vhost_user;            /* its `vhost_user:` listening socket, from start to stop; -1 */
	int timer;                 /* handshake deadline, or restart time */
	struct loop_source *timer_src;
	/* A remote device (remote:): who it must be, and the heartbeat that
	 * tells a silent network from a quiet device. Times in ns. */
	struct tlsid *tls;
	int beat;                  /* every third of remote.timeout_ms; -1 */
	struct loop_source *beat_src;
	_Atomic uint64_t ping_seq, ping_sent, last_pong, rtt;
	struct loop_job kill_job;
	_Atomic uint32_t kill_gen;     /* the instance kill_job is for */

	/* Restarts: event thread. */
	unsigned backoff_ms;
	int64_t window_start_ns;
	unsigned window_restarts;

	/* Message rate: the receive callback (one at a time); reply
	 * doorbells that bring nothing: the VM's reply thread. */
	struct rate msg_rate, ring_rate;
	/* A remote device's reads of guest memory, as they go out: the
	 * receive callback's (one at a time). */
	uint8_t dma_buf[WIRE_MAX_DMA];

	pthread_mutex_t lock;      /* what follows */
	pid_t pid;
	uid_t uid;
	unsigned restarts;
	char failure[96];
	int64_t violations_start_ns;
	unsigned violations_now;
	int64_t log_start_ns;
	unsigned log_lines, log_suppressed;

	_Atomic uint64_t exits, interrupts, denied_interrupts, violations, throttled;
	_Atomic uint64_t dma_accesses, dma_bytes; /* a remote device's MemAccess */
	_Atomic uint64_t ring_requests, socket_requests; /* the VM thread's */
};

static const char *const state_names[] = {
	[DEVSUP_STOPPED] = "stopped",
	[DEVSUP_STARTING] = "starting",
	[DEVSUP_READY] = "ready",
	[DEVSUP_DOWN] = "down",
	[DEVSUP_FAILED] = "failed",
};

const char *devsup_state_name(enum devsup_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}

static const char *const policies[] = {
	[CFG_ON_FAILURE_FALLBACK] = "its requests complete with the fallback",
	[CFG_ON_FAILURE_HOLD] = "its requests wait for its restart",
	[CFG_ON_FAILURE_STOP_VM] = "stopping the VM",
};

static uint32_t gen_of(const struct devsup *d)
{
	return LIFE_GEN(atomic_load(&d->life));
}

enum devsup_state devsup_state(const struct devsup *d)
{
	return LIFE_STATE(atomic_load(&d->life));
}

uint32_t devsup_ready_gen(const struct devsup *d)
{
	uint64_t w = atomic_load(&d->life);

	return LIFE_STATE(w) == DEVSUP_READY ? LIFE_GEN(w) : 0;
}

/* ---- logging, rate-limited per device ---- */

/* Whether a line may go to the log now. *@ret_suppressed: how many were
 * dropped in the window that just ended; *@ret_first_dropped: this is the
 * first line of the window to be dropped. */
static bool log_allowed(struct devsup *d, unsigned *ret_suppressed, bool *ret_first_dropped)
{
	int64_t now = clock_now_ns();
	bool ok;

	pthread_mutex_lock(&d->lock);
	*ret_suppressed = 0;
	if (now - d->log_start_ns >= LOG_WINDOW_NS) {
		*ret_suppressed = d->log_suppressed;
		d->log_start_ns = now;
		d->log_lines = 0;
		d->log_suppressed = 0;
	}
	ok = d->log_lines < LOG_BURST;
	if (ok)
		d->log_lines++;
	*ret_first_dropped = !ok && d->log_suppressed++ == 0;
	pthread_mutex_unlock(&d->lock);
	return ok;
}

static void log_suppressed(struct devsup *d, unsigned n)
{
	if (n)
		log_warn("vm %s device %s: %u messages suppressed", d->p.vm, d->cfg->name, n);
}

void devsup_log(struct devsup *d, int level, const char *fmt, ...)
{
	unsigned suppressed;
	bool first_dropped;
	char text[512];
	va_list ap;

	if (!log_allowed(d, &suppressed, &first_dropped)) {
		if (first_dropped)
			log_warn("vm %s device %s: more than %u messages in %lld s: suppressing the rest of them",
				 d->p.vm, d->cfg->name, LOG_BURST, LOG_WINDOW_NS / 1000000000LL);
		return;
	}
	log_suppressed(d, suppressed);
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_msg(level, "vm %s device %s: %s", d->p.vm, d->cfg->name, text);
}

/* What was held back, said before the instance's end is. */
static void flush_suppressed(struct devsup *d)
{
	unsigned n;

	pthread_mutex_lock(&d->lock);
	n = d->log_suppressed;
	d->log_suppressed = 0;
	pthread_mutex_unlock(&d->lock);
	log_suppressed(d, n);
}

/* Tells the event bus (ioreqctl events) that the device went @from @to. */
static void moved(struct devsup *d, enum devsup_state from, enum devsup_state to, const char *why)
{
	unsigned restarts;

	pthread_mutex_lock(&d->lock);
	restarts = d->restarts;
	pthread_mutex_unlock(&d->lock);
	events_publish(d->p.vm, d->cfg->name, state_names[from], state_names[to], why, restarts);
}

/* ---- going down, once per instance ---- */

static void went_down(struct devsup *d, uint32_t gen, const char *why)
{
	uint64_t w = atomic_load(&d->life);

	do {
		if (LIFE_GEN(w) != gen || (LIFE_STATE(w) != DEVSUP_STARTING && LIFE_STATE(w) != DEVSUP_READY))
			return;
	} while (!atomic_compare_exchange_weak(&d->life, &w, LIFE(gen, DEVSUP_DOWN)));
	moved(d, LIFE_STATE(w), DEVSUP_DOWN, why);
	log_warn("vm %s device %s: %s; %s", d->p.vm, d->cfg->name, why, policies[d->cfg->on_failure]);
	d->p.events->down(d->p.opaque, gen, why);
	/* The process goes on the event thread, which owns its pidfd. */
	atomic_store(&d->kill_gen, gen);
	loop_post(d->p.loop, &d->kill_job);
}

void devsup_cut_off(struct devsup *d, uint32_t gen, const char *why)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "%s: cut off", why);
	went_down(d, gen, msg);
}

void devsup_violation(struct devsup *d, uint32_t gen, const char *why)
{
	int64_t now = clock_now_ns();
	unsigned n;

	atomic_fetch_add(&d->violations, 1);
	pthread_mutex_lock(&d->lock);
	if (now - d->violations_start_ns >= VIOLATION_WINDOW_NS) {
		d->violations_start_ns = now;
		d->violations_now = 0;
	}
	n = ++d->violations_now;
	pthread_mutex_unlock(&d->lock);
	devsup_log(d, LOG_WARNING, "%s", why);
	if (n > d->cfg->max_violations) {
		char msg[96];

		snprintf(msg, sizeof(msg), "more than %u protocol violations within a minute", d->cfg->max_violations);
		devsup_cut_off(d, gen, msg);
	}
}

/* ---- the device's socket ---- */

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

/* The data plane's part of @w: which of the device's fds is what. */
struct welcome_fds {
	Ioreq__Memory mem;
	Ioreq__MemRegion rv[WIRE_MAX_REGIONS], *rp[WIRE_MAX_REGIONS];
	Ioreq__FileFd fv[WIRE_MAX_FILES], *fp[WIRE_MAX_FILES];
	int32_t doorbells[WIRE_MAX_EVENTFDS], irqfds[WIRE_MAX_EVENTFDS];
	Ioreq__Ring ring;
};

static void fill_fds(const struct devsup *d, Ioreq__Welcome *w, struct welcome_fds *f)
{
	const struct instance *in = &d->inst;
	const struct cfg_device *c = d->cfg;
	bool remote = c->remote.listen;

	/* A remote device gets no fd: its memory and eventfds stay here and
	 * it reaches them through messages (Welcome: fd -1). */
	if (in->mem.fd >= 0) {
		ioreq__memory__init(&f->mem);
		f->mem.fd = remote ? -1 : 3;
		f->mem.size = remote ? 0 : in->mem.size;
		for (size_t i = 0; i < in->mem.n_regions; i++) {
			ioreq__mem_region__init(&f->rv[i]);
			f->rv[i].gpa = in->mem.regions[i].gpa;
			f->rv[i].size = in->mem.regions[i].size;
			f->rv[i].offset = remote ? 0 : in->mem.regions[i].offset;
			f->rv[i].read_only = c->memory == CFG_MEMORY_READ_ONLY;
			f->rp[i] = &f->rv[i];
		}
		f->mem.n_regions = in->mem.n_regions;
		f->mem.regions = f->rp;
		w->memory = &f->mem;
	}
	for (size_t i = 0; i < c->n_files; i++) {
		ioreq__file_fd__init(&f->fv[i]);
		f->fv[i].fd = (int32_t)(3 + in->files0 + i);
		f->fv[i].writable = c->files[i].write;
		f->fv[i].direct = c->files[i].direct;
		f->fp[i] = &f->fv[i];
	}
	w->n_files = c->n_files;
	w->files = f->fp;
	for (uint32_t i = 0; i < c->doorbells; i++)
		f->doorbells[i] = remote ? -1 : (int32_t)(3 + in->doorbells0 + i);
	w->n_doorbells = c->doorbells;
	w->doorbells = f->doorbells;
	for (uint32_t i = 0; i < c->irqfds; i++)
		f->irqfds[i] = remote ? -1 : (int32_t)(3 + in->irqfds0 + i);
	w->n_irqfds = c->irqfds;
	w->irqfds = f->irqfds;
	if (in->ring_on) {
		ioreq__ring__init(&f->ring);
		f->ring.fd = (int32_t)in->ring_fd0;
		f->ring.doorbell = (int32_t)in->ring_fd0 + 1;
		f->ring.reply_doorbell = (int32_t)in->ring_fd0 + 2;
		f->ring.slots = d->p.vcpus;
		f->ring.poll_us = c->poll_us;
		w->ring = &f->ring;
	}
}

static int send_welcome(struct devsup *d, uint32_t gen)
{
	static const Ioreq__Kind kinds[] = { IOREQ__KIND__KIND_PIO, IOREQ__KIND__KIND_MMIO, IOREQ__KIND__KIND_PCICFG };
	const struct cfg_device *c = d->cfg;
	const struct cfg_range *ranges[] = { c->pio, c->mmio, c->pci }, *windows[] = { c->win_pio, c->win_mmio };
	const size_t n_ranges[] = { c->n_pio, c->n_mmio, c->n_pci }, n_windows[] = { c->n_win_pio, c->n_win_mmio };
	Ioreq__Range rv[WIRE_MAX_LIST], *rp[WIRE_MAX_LIST], wv[WIRE_MAX_LIST], *wp[WIRE_MAX_LIST];
	Ioreq__Welcome w = IOREQ__WELCOME__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	struct welcome_fds fds;

	if (c->n_pio + c->n_mmio + c->n_pci > WIRE_MAX_LIST || c->n_win_pio + c->n_win_mmio > WIRE_MAX_LIST ||
	    c->n_irqs > WIRE_MAX_LIST)
		return -E2BIG;
	w.version = IOREQ__VERSION__VERSION_CURRENT;
	w.vm = (char *)d->p.vm;
	w.device = c->name;
	/* Ranges in the order of their tags (vm.c). */
	w.n_ranges = fill_ranges(rv, rp, ranges, n_ranges, kinds, 3);
	w.ranges = rp;
	w.n_windows = fill_ranges(wv, wp, windows, n_windows, kinds, 2);
	w.windows = wp;
	w.n_irq_lines = c->n_irqs;
	w.irq_lines = c->irqs;
	w.msi = c->msi;
	fill_fds(d, &w, &fds);
	env.msg_case = IOREQ__ENVELOPE__MSG_WELCOME;
	env.welcome = &w;
	return rpc_send(d->rpc, gen, &env);
}

static void on_hello(struct devsup *d, uint32_t gen, const Ioreq__Hello *h)
{
	uint64_t starting = LIFE(gen, DEVSUP_STARTING);

	if (h->version != IOREQ__VERSION__VERSION_CURRENT) {
		devsup_cut_off(d, gen, "speaks another protocol version");
		return;
	}
	if (strcmp(h->device, d->cfg->name)) {
		devsup_cut_off(d, gen, "introduced itself under another name");
		return;
	}
	if (LIFE_STATE(atomic_load(&d->life)) != DEVSUP_STARTING) {
		devsup_cut_off(d, gen, "said hello twice");
		return;
	}
	atomic_store(&d->last_pong, (uint64_t)clock_now_ns());
	/* Its ring, if it takes requests there and was given one. */
	d->inst.ring_on = h->ring && d->inst.ring_fd0;
	if (send_welcome(d, gen) < 0) {
		devsup_cut_off(d, gen, "could not be welcomed");
		return;
	}
	if (d->inst.ring_on)
		ring_enable(d->ring, gen);
	if (!atomic_compare_exchange_strong(&d->life, &starting, LIFE(gen, DEVSUP_READY)))
		return;
	moved(d, DEVSUP_STARTING, DEVSUP_READY, "");
	if (d->cfg->remote.listen) {
		char peer[64], subject[160] = "";

		rpc_peer(d->rpc, peer, sizeof(peer));
		if (d->tls)
			tlsid_subject(d->tls, subject, sizeof(subject));
		log_info("vm %s device %s: ready (remote, %s%s%s%s)", d->p.vm, d->cfg->name, peer,
			 d->tls ? ", certificate \"" : ", insecure", subject, d->tls ? "\"" : "");
	} else {
		log_info("vm %s device %s: ready (pid %d)", d->p.vm, d->cfg->name, d->pid);
	}
	d->p.events->ready(d->p.opaque, gen);
}

static bool granted_line(const struct cfg_device *c, uint32_t line)
{
	for (size_t i = 0; i < c->n_irqs; i++)
		if (c->irqs[i] == line)
			return true;
	return false;
}

static void on_interrupt(struct devsup *d, uint32_t gen, const Ioreq__Interrupt *irq)
{
	bool msi = irq->op == IOREQ__IRQ_OP__IRQ_MSI;
	int r;

	atomic_fetch_add(&d->interrupts, 1);
	if (msi ? !d->cfg->msi : !granted_line(d->cfg, irq->line)) {
		char why[64];

		atomic_fetch_add(&d->denied_interrupts, 1);
		if (msi)
			snprintf(why, sizeof(why), "MSI not granted; ignored");
		else
			snprintf(why, sizeof(why), "IRQ line %u not granted; ignored", irq->line);
		devsup_violation(d, gen, why);
		return;
	}
	r = d->p.events->interrupt(d->p.opaque, irq);
	if (r < 0)
		devsup_log(d, LOG_ERR, "interrupt failed: %s", strerror(-r));
}

static void on_claim(struct devsup *d, uint32_t gen, const Ioreq__Claim *claim)
{
	static const uint32_t types[] = {
		[IOREQ__KIND__KIND_PIO] = ACRN_IOREQ_TYPE_PORTIO,
		[IOREQ__KIND__KIND_MMIO] = ACRN_IOREQ_TYPE_MMIO,
		[IOREQ__KIND__KIND_PCICFG] = ACRN_IOREQ_TYPE_PCICFG,
	};
	Ioreq__ClaimResult res = IOREQ__CLAIM_RESULT__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	const char *why = NULL;

	/* Applied before the device's next message (its reply to the guest's
	 * BAR write) is read: routing has changed when the vCPU resumes. */
	res.tag = claim->tag;
	res.error = d->p.events->claim(d->p.opaque, gen, types[claim->range->kind], claim->range->start,
				       claim->range->size, claim->release, claim->tag, &why);
	env.msg_case = IOREQ__ENVELOPE__MSG_CLAIM_RESULT;
	env.claim_result = &res;
	rpc_send(d->rpc, gen, &env);
	if (res.error < 0) {
		char msg[160];

		snprintf(msg, sizeof(msg), "refused a %s of %s 0x%" PRIx64 "..0x%" PRIx64 ": %s",
			 claim->release ? "release" : "claim", access_type_name(types[claim->range->kind]),
			 claim->range->start, claim->range->start + claim->range->size - 1, why ? why : "");
		devsup_violation(d, gen, msg);
	} else {
		log_info("vm %s device %s: %s %s 0x%" PRIx64 "..0x%" PRIx64, d->p.vm, d->cfg->name,
			 claim->release ? "released" : "claimed", access_type_name(types[claim->range->kind]),
			 claim->range->start, claim->range->start + claim->range->size - 1);
	}
}

static const uint32_t kind_types[] = {
	[IOREQ__KIND__KIND_PIO] = ACRN_IOREQ_TYPE_PORTIO,
	[IOREQ__KIND__KIND_MMIO] = ACRN_IOREQ_TYPE_MMIO,
	[IOREQ__KIND__KIND_PCICFG] = ACRN_IOREQ_TYPE_PCICFG,
};

/* "doorbell 2 (mmio 0xfe001000 size 4)", "irqfd 0 (IRQ 5)"; a release
 * says only which eventfd. */
static void describe_reg(const struct evreg_spec *s, bool release, char *buf, size_t len)
{
	if (release)
		snprintf(buf, len, "%s %" PRIu32, s->kind == EVREG_IOEVENTFD ? "doorbell" : "irqfd", s->index);
	else if (s->kind == EVREG_IOEVENTFD)
		snprintf(buf, len, "doorbell %" PRIu32 " (%s 0x%" PRIx64 " size %" PRIu32 "%s)", s->index,
			 access_type_name(s->type), s->addr, s->size, s->datamatch ? " with datamatch" : "");
	else if (s->msi)
		snprintf(buf, len, "irqfd %" PRIu32 " (MSI)", s->index);
	else
		snprintf(buf, len, "irqfd %" PRIu32 " (IRQ %" PRIu32 ")", s->index, s->line);
}

static void on_register(struct devsup *d, uint32_t gen, const Ioreq__Register *reg)
{
	const struct instance *in = &d->inst;
	Ioreq__RegisterResult res = IOREQ__REGISTER_RESULT__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	struct evreg_spec spec;
	const char *why = NULL;
	char what[96], msg[224];
	size_t first;
	uint32_t n;

	if (reg->what_case == IOREQ__REGISTER__WHAT_IOEVENTFD) {
		const Ioreq__Ioeventfd *io = reg->ioeventfd;

		/* wire_unpack checked the kind, the size and the wrap. */
		spec = (struct evreg_spec){ .kind = EVREG_IOEVENTFD, .index = io->index, .type = kind_types[io->kind],
					    .addr = io->addr, .size = io->size, .datamatch = io->datamatch,
					    .value = io->value };
		n = d->cfg->doorbells;
		first = in->doorbells0;
	} else {
		const Ioreq__Irqfd *irq = reg->irqfd;

		spec = (struct evreg_spec){ .kind = EVREG_IRQFD, .index = irq->index, .msi = irq->msi,
					    .line = irq->line, .msi_addr = irq->msi_addr, .msi_data = irq->msi_data };
		n = d->cfg->irqfds;
		first = in->irqfds0;
	}
	res.tag = reg->tag;
	if (spec.index >= n) {
		/* Only the eventfds it was given: it names them by index,
		 * never by an fd number of its own. */
		why = "it was given no such eventfd";
		res.error = -EBADF;
	} else {
		res.error = d->p.events->registration(d->p.opaque, gen, &spec, in->block[first + spec.index], reg->release,
						      &why);
	}
	env.msg_case = IOREQ__ENVELOPE__MSG_REGISTRATION_RESULT;
	env.registration_result = &res;
	rpc_send(d->rpc, gen, &env);
	describe_reg(&spec, reg->release, what, sizeof(what));
	if (res.error < 0) {
		snprintf(msg, sizeof(msg), "refused a %s of %s: %s", reg->release ? "release" : "registration", what,
			 why ? why : strerror(-res.error));
		devsup_violation(d, gen, msg);
	} else {
		devsup_log(d, LOG_INFO, "%s %s%s%s", reg->release ? "released" : "registered", what, why ? ": " : "",
			   why ? why : "");
	}
}

/* A reply to request @id, over nng or from the ring. */
static void answer(struct devsup *d, uint32_t gen, uint64_t id, uint64_t value, bool ok)
{
	int r = d->p.events->reply(d->p.opaque, gen, id, value, ok);

	if (r == -ENOENT)
		devsup_violation(d, gen, "replied to a request that is not in flight (late or duplicate)");
	else if (r == -ERANGE)
		devsup_cut_off(d, gen, "replied with a value wider than the access");
	else if (r < 0)
		devsup_cut_off(d, gen, "replied to a request it was never sent");
}

static void on_reply(struct devsup *d, uint32_t gen, const Ioreq__Reply *rep)
{
	answer(d, gen, rep->id, rep->value, rep->status == IOREQ__STATUS__STATUS_OK);
}

/* Interrupts, claims and registrations beyond max_msg_rate per second are
 * dropped, and so are reply doorbells that bring no reply; a device that
 * keeps sending at four times its rate is cut off. */
static bool within_rate(struct devsup *d, uint32_t gen, struct rate *m, const char *what)
{
	int64_t now = clock_now_ns();
	unsigned rate = d->cfg->max_msg_rate;
	char why[96];

	if (now - m->start_ns >= 1000000000) {
		m->start_ns = now;
		m->count = 0;
	}
	if (++m->count <= rate)
		return true;
	atomic_fetch_add(&d->throttled, 1);
	if (m->count == rate + 1) {
		snprintf(why, sizeof(why), "more than %u %s a second; dropping them", rate, what);
		devsup_violation(d, gen, why);
	}
	if (m->count > 4 * rate) {
		snprintf(why, sizeof(why), "flooded the broker with %s", what);
		devsup_cut_off(d, gen, why);
	}
	return false;
}

/* A remote device reads or writes guest memory: checked against its
 * grant and the guest's RAM here, whatever its library checked already;
 * always answered (its thread waits), a refusal also counted as a
 * violation (a device that speaks the protocol never sends one). */
static void on_mem_access(struct devsup *d, uint32_t gen, const Ioreq__MemAccess *a)
{
	Ioreq__MemResult res = IOREQ__MEM_RESULT__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	size_t len = a->write ? a->data.len : a->len;
	const char *why = NULL;
	char msg[128];

	res.tag = a->tag;
	if (!d->cfg->remote.listen) {
		why = "asked for guest memory through messages (a local device maps it)";
		res.error = -EPERM;
	} else if (d->inst.mem.fd < 0) {
		why = "asked for guest memory it was not given";
		res.error = -EPERM;
	} else if (a->write && d->cfg->memory != CFG_MEMORY_GUEST) {
		why = "wrote to read-only guest memory";
		res.error = -EACCES;
	} else {
		/* wire_unpack bounded len by WIRE_MAX_DMA, the size of dma_buf. */
		res.error = d->p.events->guest_copy(d->p.opaque, a->gpa, a->write ? a->data.data : d->dma_buf, len,
						    a->write);
		if (res.error < 0)
			why = a->write ? "wrote outside guest RAM" : "read outside guest RAM";
	}
	if (res.error == 0 && !a->write) {
		res.data.data = d->dma_buf;
		res.data.len = len;
	}
	/* Counted after the copy: a seq_cst read-modify-write, which also
	 * keeps this write from passing a later read of guest memory (the
	 * device's next MemAccess, say the driver's used_event after the used
	 * idx): x86 reorders only a store with a later load. */
	atomic_fetch_add(&d->dma_accesses, 1);
	atomic_fetch_add(&d->dma_bytes, res.error ? 0 : len);
	env.msg_case = IOREQ__ENVELOPE__MSG_MEM_RESULT;
	env.mem_result = &res;
	if (rpc_send(d->rpc, gen, &env) < 0)
		devsup_cut_off(d, gen, "does not take the answers to its memory accesses");
	if (why) {
		snprintf(msg, sizeof(msg), "%s (%zu bytes at 0x%" PRIx64 ")", why, len, a->gpa);
		devsup_violation(d, gen, msg);
	}
}

/* A remote device wrote one of its irqfds: the broker writes its own copy,
 * which the HSM watches if it is bound (and which keeps the count until it
 * is, as a local device's would). */
static void on_signal(struct devsup *d, uint32_t gen, const Ioreq__Signal *sig)
{
	const struct instance *in = &d->inst;

	if (!d->cfg->remote.listen || !sig->irqfd || sig->index >= d->cfg->irqfds) {
		devsup_violation(d, gen, "signalled an irqfd it was not given as a message");
		return;
	}
	if (write(in->block[in->irqfds0 + sig->index], &sig->count, sizeof(sig->count)) < 0 && errno != EAGAIN)
		devsup_log(d, LOG_WARNING, "cannot signal irqfd %" PRIu32 ": %s", sig->index, strerror(errno));
}

/* The runner answered a ping: the link is up; the round trip of the last
 * ping, if this answers it. */
static void on_pong(struct devsup *d, const Ioreq__Pong *p)
{
	uint64_t now = (uint64_t)clock_now_ns();

	atomic_store(&d->last_pong, now);
	if (p->seq == atomic_load(&d->ping_seq))
		atomic_store(&d->rtt, now - atomic_load(&d->ping_sent));
}

static void on_message(void *opaque, uint32_t gen, const Ioreq__Envelope *env)
{
	struct devsup *d = opaque;
	uint64_t w = atomic_load(&d->life);

	if (LIFE_GEN(w) != gen)
		return;
	if (env->msg_case == IOREQ__ENVELOPE__MSG_HELLO) {
		on_hello(d, gen, env->hello);
		return;
	}
	if (LIFE_STATE(w) != DEVSUP_READY) {
		if (LIFE_STATE(w) == DEVSUP_STARTING)
			devsup_cut_off(d, gen, "sent a message before its hello");
		return;
	}
	if (env->msg_case == IOREQ__ENVELOPE__MSG_PONG && d->cfg->remote.listen) {
		on_pong(d, env->pong);
		return;
	}
	/* Each memory access is answered, one at a time: no flood to fear. */
	if (env->msg_case == IOREQ__ENVELOPE__MSG_MEM_ACCESS) {
		on_mem_access(d, gen, env->mem_access);
		return;
	}
	if (env->msg_case != IOREQ__ENVELOPE__MSG_REPLY && !within_rate(d, gen, &d->msg_rate, "messages"))
		return;
	switch (env->msg_case) {
	case IOREQ__ENVELOPE__MSG_REPLY:
		on_reply(d, gen, env->reply);
		break;
	case IOREQ__ENVELOPE__MSG_INTERRUPT:
		on_interrupt(d, gen, env->interrupt);
		break;
	case IOREQ__ENVELOPE__MSG_CLAIM:
		on_claim(d, gen, env->claim);
		break;
	case IOREQ__ENVELOPE__MSG_REGISTRATION:
		on_register(d, gen, env->registration);
		break;
	case IOREQ__ENVELOPE__MSG_SIGNAL:
		on_signal(d, gen, env->signal);
		break;
	default:
		devsup_cut_off(d, gen, "sent a message only the broker may send");
		break;
	}
}

static void on_garbage(void *opaque, uint32_t gen, const char *why)
{
	devsup_cut_off(opaque, gen, why);
}

static void on_refused(void *opaque, uint32_t gen, const char *who)
{
	struct devsup *d = opaque;

	if (gen != gen_of(d))
		return;
	if (d->cfg->remote.listen)
		devsup_log(d, LOG_WARNING, "refused a connection from %s: the device is connected already", who);
	else
		devsup_log(d, LOG_WARNING, "refused a connection from %s: not the device it started", who);
}

static void on_closed(void *opaque, uint32_t gen)
{
	went_down(opaque, gen, "disconnected");
}

static void on_ring(void *opaque, uint32_t events);

/* On the reply thread: its instance's reply doorbell, from its start to
 * its end (the event thread waits for each). */
static void watch_ring(void *arg)
{
	struct devsup *d = arg;
	int memfd, doorbell, reply_doorbell;

	ring_fds(d->ring, &memfd, &doorbell, &reply_doorbell);
	d->inst.ring_watch = loop_add(d->p.replies, reply_doorbell, EPOLLIN, on_ring, d, &d->inst.ring_src);
}

static void unwatch_ring(void *arg)
{
	struct devsup *d = arg;

	d->inst.ring_src = loop_remove(d->p.replies, d->inst.ring_src);
}

static const struct rpc_events rpc_events = {
	.message = on_message,
	.garbage = on_garbage,
	.refused = on_refused,
	.closed = on_closed,
};

/* Cuts off an instance that corrupted its ring, or hands over the replies
 * it wrote there. */
static void ring_answers(struct devsup *d, uint32_t gen, int r, const struct ring_reply *v, size_t n,
			 const char *why)
{
	if (r == -EPROTO) {
		devsup_cut_off(d, gen, why);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (!v[i].sent)
			answer(d, gen, v[i].id, v[i].value, v[i].ok);
}

/* The request path, from the VM thread. In the ring, the hand-offs from
 * the vCPU's exit to the device and back are the fewest the HSM allows:
 * the HSM wakes the VM thread (1), which posts and rings the device's
 * eventfd if it sleeps (2: its serving thread wakes); the device rings the
 * reply doorbell (3: this VM's event thread wakes, collects, completes),
 * and the completion wakes the vCPU (4). The HSM's own two are the floor;
 * (2) and (3) go when both sides poll (poll_us): the VM thread then waits
 * for the reply itself, and completes it. Over nng, each of (2) and (3)
 * is several: nng's own threads pass the message on. */
int devsup_send(struct devsup *d, uint32_t gen, uint64_t id, unsigned vcpu, const struct access *a, uint32_t tag,
		uint64_t offset)
{
	struct ring_reply rep[RING_SLOTS];
	const char *why = NULL;
	size_t n;
	int r;

	if (d->ring) {
		r = ring_post(d->ring, gen, vcpu, id, a, tag, offset);
		if (r == -ESTALE)
			return r;
		if (r == 0)
			atomic_fetch_add_explicit(&d->ring_requests, 1, memory_order_relaxed);
		if (r == 0 && d->cfg->poll_us) {
			r = ring_wait(d->ring, vcpu, id, clock_now_ns() + (int64_t)d->cfg->poll_us * 1000, rep, &n, &why);
			ring_answers(d, gen, r, rep, n, why);
			return 0;
		}
		if (r == 0)
			return 0;
		/* No ring in this instance, or the slot still held by a
		 * request it never answered: over nng. */
	}
	atomic_fetch_add_explicit(&d->socket_requests, 1, memory_order_relaxed);
	return rpc_send_request(d->rpc, gen, id, vcpu, a, tag, offset);
}

/* The device rang its reply doorbell (the VM's reply thread). */
static void on_ring(void *opaque, uint32_t events)
{
	struct devsup *d = opaque;
	struct ring_reply v[RING_SLOTS];
	uint32_t gen = gen_of(d);
	const char *why = NULL;
	size_t n;
	int r;

	r = ring_collect(d->ring, v, &n, &why);
	if (r == 0 && !n) {
		/* (Also when the VM thread took the reply while polling.) */
		within_rate(d, gen, &d->ring_rate, "empty reply doorbells");
		return;
	}
	ring_answers(d, gen, r, v, n, why);
}

void devsup_reset(struct devsup *d)
{
	Ioreq__Reset m = IOREQ__RESET__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	uint32_t gen = devsup_ready_gen(d);

	if (!gen)
		return;
	/* Through the ring where there is one: then no request posted after
	 * the reset can be served before it. */
	if (d->ring && ring_reset(d->ring, gen) != -ENOTCONN)
		return;
	env.msg_case = IOREQ__ENVELOPE__MSG_RESET;
	env.reset = &m;
	rpc_send(d->rpc, gen, &env);
}

/* ---- the instance's pipes ---- */

static void emit_line(struct devsup *d, const char *line, size_t n)
{
	devsup_log(d, LOG_INFO, "%.*s", (int)n, line);
}

/* Logs every whole line in @r's buffer; a line longer than the buffer is
 * logged in pieces. With @all, also what is left. */
static void flush_lines(struct devsup *d, struct reader *r, bool all)
{
	size_t start = 0;

	for (size_t i = 0; i < r->used; i++) {
		if (r->buf[i] != '\n')
			continue;
		emit_line(d, r->buf + start, i - start);
		start = i + 1;
	}
	if (start == 0 && r->used == sizeof(r->buf))
		all = true;
	if (all && start < r->used) {
		emit_line(d, r->buf + start, r->used - start);
		start = r->used;
	}
	memmove(r->buf, r->buf + start, r->used - start);
	r->used -= start;
}

/* Reads what the pipe holds now; false at end of file. */
static bool drain_reader(struct devsup *d, struct reader *r)
{
	for (;;) {
		char tmp[4096];
		ssize_t n;

		if (r->copy_to >= 0) {
			n = read(r->fd, tmp, sizeof(tmp));
			if (n > 0) {
				/* A terminal we copy to: what cannot be written now is dropped. */
				if (write(r->copy_to, tmp, n) < 0 && errno != EAGAIN)
					r->copy_to = -1;
				continue;
			}
		} else {
			n = read(r->fd, r->buf + r->used, sizeof(r->buf) - r->used);
			if (n > 0) {
				r->used += n;
				flush_lines(d, r, false);
				continue;
			}
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		flush_lines(d, r, true);
		return false;
	}
}

static void reader_close(struct devsup *d, struct reader *r)
{
	if (r->fd >= 0) {
		drain_reader(d, r);
		r->src = loop_remove(d->p.loop, r->src);
		close(r->fd);
	}
	r->fd = -1;
	r->used = 0;
}

static void on_out(void *opaque, uint32_t events)
{
	struct devsup *d = opaque;

	if (!drain_reader(d, &d->inst.out))
		reader_close(d, &d->inst.out);
}

static void on_err(void *opaque, uint32_t events)
{
	struct devsup *d = opaque;

	if (!drain_reader(d, &d->inst.err))
		reader_close(d, &d->inst.err);
}

static void on_stdin(void *opaque, uint32_t events)
{
	struct devsup *d = opaque;
	char tmp[4096];
	ssize_t n = read(STDIN_FILENO, tmp, sizeof(tmp));

	if (n > 0 && write(d->inst.stdin_copy, tmp, n) >= 0)
		return;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	d->inst.stdin_src = loop_remove(d->p.loop, d->inst.stdin_src);
	close(d->inst.stdin_copy);
	d->inst.stdin_copy = -1;
}

/* The read end of a new pipe, non-blocking, watched by the loop; the
 * write end goes to the device in *@ret_theirs. */
static int open_reader(struct devsup *d, struct reader *r, int copy_to, loop_fd_fn fn, int *ret_theirs)
{
	int p[2], e;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	e = loop_add(d->p.loop, p[0], EPOLLIN, fn, d, &r->src);
	if (e < 0) {
		close(p[0]);
		close(p[1]);
		return e;
	}
	r->fd = p[0];
	r->copy_to = copy_to;
	r->used = 0;
	*ret_theirs = p[1];
	return 0;
}

/* The device's stdin, stdout and stderr (@fds, to close after the spawn).
 * A device never gets a terminal of the broker's: what it would read from
 * or write to one is copied through a pipe instead. Everything else it
 * writes goes to the broker's log. */
static int open_stdio(struct devsup *d, int fds[3])
{
	const struct cfg_device *c = d->cfg;
	struct instance *in = &d->inst;
	int r, p[2];

	fds[0] = fds[1] = fds[2] = -1;
	if (c->input_stdin && isatty(STDIN_FILENO)) {
		if (pipe2(p, O_CLOEXEC) < 0)
			return -errno;
		fcntl(p[1], F_SETFL, O_NONBLOCK);
		fds[0] = p[0];
		in->stdin_copy = p[1];
		r = loop_add(d->p.loop, STDIN_FILENO, EPOLLIN, on_stdin, d, &in->stdin_src);
		if (r < 0)
			return r;
	} else {
		fds[0] = c->input_stdin ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3) : open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fds[0] < 0)
			return -errno;
	}
	if (c->output_stdout && !isatty(STDOUT_FILENO)) {
		fds[1] = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	} else if (c->output_file) {
		fds[1] = open(c->output_file, O_WRONLY | O_CREAT | O_APPEND | O_NOCTTY | O_CLOEXEC, 0644);
	} else {
		r = open_reader(d, &in->out, c->output_stdout ? STDOUT_FILENO : -1, on_out, &fds[1]);
		if (r < 0)
			return r;
	}
	if (fds[1] < 0)
		return -errno;
	return open_reader(d, &in->err, -1, on_err, &fds[2]);
}

/* ---- an instance's life (event thread) ---- */

static void arm_timer(struct devsup *d, int64_t ms_from_now)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = ms_from_now / 1000, .tv_nsec = ms_from_now % 1000 * 1000000 },
	};

	timerfd_settime(d->timer, 0, &its, NULL);
}

static void disarm_timer(struct devsup *d)
{
	struct itimerspec its = { 0 };

	timerfd_settime(d->timer, 0, &its, NULL);
}

static void on_exit_event(void *opaque, uint32_t events);

static int start_cgroup(struct devsup *d, int *fds, size_t max, size_t *ret_n)
{
	const struct cgroup_limits lim = {
		.memory_max = d->cfg->memory_max,
		.pids_max = d->cfg->pids_max,
		.cpu_percent = d->cfg->cpu_max,
	};
	char name[96];
	int r;

	*ret_n = 0;
	if (!d->p.cgroups)
		return 0;
	snprintf(name, sizeof(name), "%s.%s.%u", d->p.vm, d->cfg->name, gen_of(d));
	r = cgroup_create(d->p.cgroups, name, &lim, &d->inst.cg);
	if (r == 0)
		r = cgroup_open_fds(d->inst.cg, fds, max, ret_n);
	return r;
}

/* ---- what an instance is given ---- */

static void close_block(struct instance *in)
{
	for (size_t i = 0; i < in->n_block; i++)
		close(in->block[i]);
	in->n_block = 0;
}

/* Fills the instance's block: what the device gets from fd 3 on. Failures
 * are the configuration's, logged at its entry. */
static int open_block(struct devsup *d, struct instance *in)
{
	const struct cfg_device *c = d->cfg;
	const char *why;
	char proc[32];
	int r, fd = -1;

	in->mem.fd = -1;
	if (c->memory != CFG_MEMORY_NONE) {
		if (d->mem.fd < 0) {
			devsup_log(d, LOG_ERR, "%s:%d:%d: memory: the VM has no guest memory", c->config_path,
				   c->mark.line, c->mark.col);
			return -ENODEV;
		}
		in->mem = d->mem;
	}
	/* Its own open file, read-only where it must not write: the device
	 * can then neither map it writable nor write to it. A remote device
	 * gets none: it reaches the memory through us (on_mem_access). */
	if (c->memory != CFG_MEMORY_NONE && !c->remote.listen) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", d->mem.fd);
		fd = open(proc, (c->memory == CFG_MEMORY_READ_ONLY ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			devsup_log(d, LOG_ERR, "cannot reopen the guest's memory: %s", strerror(-r));
			return r;
		}
		in->block[in->n_block++] = fd;
	}
	in->files0 = in->n_block;
	for (size_t i = 0; i < c->n_files; i++) {
		const struct cfg_file *f = &c->files[i];

		r = proc_open_file(f->path, f->write, f->direct, &fd, &why);
		if (r < 0) {
			devsup_log(d, LOG_ERR, "%s:%d:%d: cannot open %s %s%s: %s", c->config_path, f->mark.line,
				   f->mark.col, f->path, f->write ? "read-write" : "read-only",
				   f->direct ? " with O_DIRECT" : "", why ? why : strerror(-r));
			return r;
		}
		in->block[in->n_block++] = fd;
	}
	/* Non-blocking, for both sides (it is one open file): the broker
	 * relays through them and must never wait on what a device does to
	 * them; a device polls them. */
	in->doorbells0 = in->n_block;
	for (uint32_t i = 0; i < c->doorbells + c->irqfds; i++) {
		if (i == c->doorbells)
			in->irqfds0 = in->n_block;
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0) {
			r = -errno;
			devsup_log(d, LOG_ERR, "cannot create its eventfds: %s", strerror(-r));
			return r;
		}
		in->block[in->n_block++] = fd;
	}
	if (!c->irqfds)
		in->irqfds0 = in->n_block;
	return 0;
}

#define MAX_ARGS 64
#define MAX_CGROUP_FDS 4

/* Spawns the instance's process: through ioreq-launch into its sandbox,
 * or (sandbox: none) as a plain child. Either way the device gets the
 * block at fds 3, 4, ...; the launcher also gets the broker's pidfd and
 * the cgroup fds, after it. */
static int spawn_instance(struct devsup *d, const int stdio[3], const int *cg_fds, size_t n_cg)
{
	const struct cfg_device *c = d->cfg;
	struct instance *in = &d->inst;
	bool strict = c->sandbox == CFG_SANDBOX_STRICT;
	char pidfd[16], user[32], npass[16], fdnum[MAX_CGROUP_FDS][16], url[sizeof(d->sock) + 8], *argv[MAX_ARGS];
	char vhost[24];
	int fds[BLOCK_MAX + 3 + 2 + MAX_CGROUP_FDS];
	struct proc_req req = { .argv = argv, .stdio = { stdio[0], stdio[1], stdio[2] }, .fds = fds,
				 .sandboxed = strict };
	size_t k = 0, n_args = 0, n_pass;
	int r;

	while (c->args[n_args])
		n_args++;
	if (n_args + 20 + 2 * MAX_CGROUP_FDS > MAX_ARGS || n_cg > MAX_CGROUP_FDS)
		return -E2BIG;
	for (size_t i = 0; i < in->n_block; i++)
		fds[req.n_fds++] = in->block[i];
	/* Its ring's page and doorbells, fresh for each instance. */
	if (d->ring) {
		in->ring_fd0 = (unsigned)(3 + req.n_fds);
		ring_fds(d->ring, &fds[req.n_fds], &fds[req.n_fds + 1], &fds[req.n_fds + 2]);
		req.n_fds += 3;
	}
	/* The vhost-user socket comes last of what the device gets: the
	 * broker keeps it across instances, it is no part of the block. */
	if (d->vhost_user >= 0) {
		snprintf(vhost, sizeof(vhost), "fd:%u", (unsigned)(3 + req.n_fds));
		fds[req.n_fds++] = d->vhost_user;
	}
	n_pass = req.n_fds;
	if (strict) {
		r = proc_broker_pidfd();
		if (r < 0)
			return r;
		snprintf(pidfd, sizeof(pidfd), "%u", (unsigned)(3 + req.n_fds));
		fds[req.n_fds++] = r;
		argv[k++] = (char *)d->p.launcher;
		argv[k++] = "--socket";
		argv[k++] = d->sock;
		argv[k++] = "--broker-pidfd";
		argv[k++] = pidfd;
		if (in->uid != (uid_t)-1) {
			snprintf(user, sizeof(user), "%u:%u", (unsigned)in->uid, (unsigned)in->uid);
			argv[k++] = "--user";
			argv[k++] = user;
		}
		for (size_t i = 0; i < n_cg; i++) {
			snprintf(fdnum[i], sizeof(fdnum[i]), "%u", (unsigned)(3 + req.n_fds));
			fds[req.n_fds++] = cg_fds[i];
			argv[k++] = "--cgroup-fd";
			argv[k++] = fdnum[i];
		}
		if (n_pass) {
			snprintf(npass, sizeof(npass), "%u", (unsigned)n_pass);
			argv[k++] = "--pass-fds";
			argv[k++] = npass;
		}
		argv[k++] = "--";
	}
	snprintf(url, sizeof(url), "ipc://%s", d->sock);
	argv[k++] = c->program;
	argv[k++] = "--socket";
	argv[k++] = url;
	argv[k++] = "--name";
	argv[k++] = c->name;
	if (d->vhost_user >= 0) {
		argv[k++] = "--vhost-user";
		argv[k++] = vhost;
	}
	for (size_t i = 0; i < n_args; i++)
		argv[k++] = c->args[i];
	argv[k] = NULL;
	r = proc_start(&req, &in->pid, &in->pidfd);
	if (r < 0)
		return r;
	pthread_mutex_lock(&d->lock);
	d->pid = in->pid;
	d->uid = in->uid;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

/* Unconfined devices join their cgroup from here, after the fact. */
static void join_cgroup(pid_t pid, const int *fds, size_t n)
{
	char text[16];

	snprintf(text, sizeof(text), "%d", pid);
	for (size_t i = 0; i < n; i++) {
		int fd = openat(fds[i], "cgroup.procs", O_WRONLY | O_CLOEXEC);

		if (fd >= 0) {
			if (write(fd, text, strlen(text)) < 0)
				log_warn("cannot move pid %d into its cgroup: %s", pid, strerror(errno));
			close(fd);
		}
	}
}

static void on_limit(void *opaque, uint32_t events)
{
	struct devsup *d = opaque;
	const char *what = d->inst.cg ? cgroup_limit_hit(d->inst.cg) : NULL;
	char why[160];

	if (!what)
		return;
	snprintf(why, sizeof(why), "exceeded its %s", what);
	devsup_cut_off(d, gen_of(d), why);
}

static void finish_instance(struct devsup *d);

/* A remote instance's doorbell rang (the guest wrote its address): the
 * count goes to the device as a Signal, which its library writes to an
 * eventfd of its own. Event thread. */
static void on_doorbell(void *opaque, uint32_t events)
{
	struct doorbell *b = opaque;
	struct devsup *d = b->d;
	Ioreq__Signal sig = IOREQ__SIGNAL__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	uint32_t gen = devsup_ready_gen(d);
	uint64_t count;

	if (read(d->inst.block[d->inst.doorbells0 + b->index], &count, sizeof(count)) != sizeof(count) || !gen)
		return;
	sig.index = b->index;
	sig.count = count;
	env.msg_case = IOREQ__ENVELOPE__MSG_SIGNAL;
	env.signal = &sig;
	rpc_send(d->rpc, gen, &env);
}

/* A remote instance is a connection: the broker listens for the runner,
 * whose TLS handshake proves who it is (tlsid.c); no handshake deadline,
 * as a runner may connect whenever its host is up. */
static int start_remote(struct devsup *d, uint32_t gen)
{
	const char *url = d->cfg->remote.listen;
	struct instance *in = &d->inst;
	int r = 0;

	in->reaped = false;
	for (uint32_t i = 0; i < d->cfg->doorbells && r == 0; i++) {
		in->bells[i] = (struct doorbell){ .d = d, .index = i };
		r = loop_add(d->p.loop, in->block[in->doorbells0 + i], EPOLLIN, on_doorbell, &in->bells[i],
			     &in->bells[i].src);
	}
	if (r == 0)
		r = rpc_listen_remote(d->rpc, url, d->tls ? tlsid_config(d->tls) : NULL, gen);
	if (r < 0) {
		devsup_log(d, LOG_ERR, "cannot listen on %s: %s", url, strerror(-r));
		atomic_store(&d->life, LIFE(gen, DEVSUP_DOWN));
		d->inst.reaped = true;
		finish_instance(d);
		return r;
	}
	log_info("vm %s device %s: listening on %s for its runner%s", d->p.vm, d->cfg->name, url,
		 d->tls ? "" : " (insecure: anyone who connects is the device)");
	return 0;
}

/* Starts instance gen + 1. On failure it is down, and the caller decides
 * about a restart; *@ret_given is set when what it is given (files, the
 * guest's memory) is what failed. */
static int start_instance(struct devsup *d, bool *ret_given)
{
	uint32_t gen = gen_of(d) + 1;
	struct instance *in = &d->inst;
	int stdio[3] = { -1, -1, -1 }, cg_fds[MAX_CGROUP_FDS];
	enum devsup_state was;
	size_t n_cg = 0;
	int r;

	*in = (struct instance){ .pidfd = -1, .uid = (uid_t)-1, .stdin_copy = -1, .out.fd = -1, .err.fd = -1,
				 .mem.fd = -1 };
	*ret_given = false;
	/* Starting before anything can connect: its hello must find it so. */
	was = LIFE_STATE(atomic_exchange(&d->life, LIFE(gen, DEVSUP_STARTING)));
	moved(d, was, DEVSUP_STARTING, was == DEVSUP_DOWN ? "restarting" : "starting");
	/* Fresh ones for each instance: nothing of the last one's (an eventfd
	 * it may have registered) reaches this one. */
	r = open_block(d, in);
	if (r < 0) {
		*ret_given = true;
		goto fail;
	}
	if (d->cfg->remote.listen)
		return start_remote(d, gen);
	if (d->ring) {
		r = ring_open(d->ring, gen, d->p.vcpus, d->cfg->poll_us);
		if (r == 0) {
			loop_call(d->p.replies, watch_ring, d);
			r = d->inst.ring_watch;
		}
		if (r < 0) {
			devsup_log(d, LOG_ERR, "cannot create its request ring: %s", strerror(-r));
			goto fail;
		}
	}
	r = rpc_listen(d->rpc, d->sock, gen);
	if (r < 0) {
		devsup_log(d, LOG_ERR, "cannot listen on %s: %s", d->sock, strerror(-r));
		goto fail;
	}
	if (d->cfg->sandbox == CFG_SANDBOX_STRICT && !proc_in_user_ns()) {
		r = proc_take_id(&in->uid);
		if (r < 0) {
			devsup_log(d, LOG_ERR, "no free uid left in the device id range");
			goto fail;
		}
	}
	r = start_cgroup(d, cg_fds, sizeof(cg_fds) / sizeof(cg_fds[0]), &n_cg);
	if (r < 0) {
		devsup_log(d, LOG_ERR, "cannot create its cgroup: %s", strerror(-r));
		goto fail;
	}
	r = open_stdio(d, stdio);
	if (r < 0) {
		devsup_log(d, LOG_ERR, "cannot open its stdin, stdout or stderr: %s", strerror(-r));
		goto fail;
	}
	r = spawn_instance(d, stdio, cg_fds, n_cg);
	if (r < 0) {
		devsup_log(d, LOG_ERR, "cannot start %s: %s", d->cfg->program, strerror(-r));
		goto fail;
	}
	rpc_expect(d->rpc, in->pid);
	if (d->cfg->sandbox != CFG_SANDBOX_STRICT)
		join_cgroup(in->pid, cg_fds, n_cg);
	for (int i = 0; i < 3; i++)
		close(stdio[i]);
	for (size_t i = 0; i < n_cg; i++)
		close(cg_fds[i]);
	r = loop_add(d->p.loop, in->pidfd, EPOLLIN, on_exit_event, d, &in->pid_src);
	if (r == 0 && in->cg && cgroup_event_fd(in->cg) >= 0)
		r = loop_add(d->p.loop, cgroup_event_fd(in->cg), EPOLLPRI | EPOLLIN, on_limit, d, &in->cg_src);
	if (r < 0) {
		/* Without its pidfd watched we would never see it exit. */
		pidfd_send_signal(in->pidfd, SIGKILL, NULL, 0);
		devsup_log(d, LOG_ERR, "cannot watch pid %d: %s", in->pid, strerror(-r));
		went_down(d, gen, "could not be watched");
		return r;
	}
	if (d->cfg->sandbox != CFG_SANDBOX_STRICT)
		log_warn("vm %s device %s: sandbox none: running unconfined", d->p.vm, d->cfg->name);
	log_info("vm %s device %s: started %s (pid %d)", d->p.vm, d->cfg->name, d->cfg->program, in->pid);
	log_debug("vm %s device %s: instance %u on %s, uid %d", d->p.vm, d->cfg->name, gen, d->sock,
		  in->uid == (uid_t)-1 ? -1 : (int)in->uid);
	arm_timer(d, DEVSUP_HANDSHAKE_MS);
	return 0;
fail:
	for (int i = 0; i < 3; i++)
		if (stdio[i] >= 0)
			close(stdio[i]);
	for (size_t i = 0; i < n_cg; i++)
		close(cg_fds[i]);
	atomic_store(&d->life, LIFE(gen, DEVSUP_DOWN));
	moved(d, DEVSUP_STARTING, DEVSUP_DOWN, "could not start");
	in->reaped = true;
	finish_instance(d);
	return r;
}

/* Everything of the instance, once its process is gone (or never was). */
static void finish_instance(struct devsup *d)
{
	struct instance *in = &d->inst;

	in->pid_src = loop_remove(d->p.loop, in->pid_src);
	in->cg_src = loop_remove(d->p.loop, in->cg_src);
	in->stdin_src = loop_remove(d->p.loop, in->stdin_src);
	if (in->stdin_copy >= 0)
		close(in->stdin_copy);
	in->stdin_copy = -1;
	reader_close(d, &in->out);
	reader_close(d, &in->err);
	if (in->pidfd >= 0)
		close(in->pidfd);
	in->pidfd = -1;
	/* Its process is gone, so no message of it can still be on the way
	 * (nng_close would wait for one: upstream nng#1543). */
	rpc_shut(d->rpc);
	for (uint32_t i = 0; i < d->cfg->doorbells; i++)
		in->bells[i].src = loop_remove(d->p.loop, in->bells[i].src);
	close_block(in);
	if (d->ring) {
		loop_call(d->p.replies, unwatch_ring, d);
		ring_close(d->ring);
	}
	in->cg = cgroup_destroy(in->cg);
	if (in->uid != (uid_t)-1)
		proc_give_id(in->uid);
	in->uid = (uid_t)-1;
	pthread_mutex_lock(&d->lock);
	d->pid = 0;
	pthread_mutex_unlock(&d->lock);
}

static const char *describe(int code, int status, char *buf, size_t len)
{
	if (code == CLD_EXITED)
		snprintf(buf, len, "exited with status %d", status);
	else
		snprintf(buf, len, "killed by signal %d (%s)", status, strsignal(status));
	return buf;
}

/* Restart with exponential backoff, or give up past the restart limit
 * within the window. */
static void schedule_restart(struct devsup *d)
{
	const struct cfg_device *c = d->cfg;
	int64_t now = clock_now_ns();
	uint64_t w = atomic_load(&d->life);

	if (d->stopping || LIFE_STATE(w) != DEVSUP_DOWN)
		return;
	if (now - d->window_start_ns >= (int64_t)c->restart_window_ms * 1000000) {
		d->window_start_ns = now;
		d->window_restarts = 0;
		d->backoff_ms = BACKOFF_MIN_MS;
	}
	if (d->window_restarts >= c->restart_limit) {
		pthread_mutex_lock(&d->lock);
		snprintf(d->failure, sizeof(d->failure), "failed %u times within %u ms", d->window_restarts + 1,
			 c->restart_window_ms);
		pthread_mutex_unlock(&d->lock);
		atomic_store(&d->life, LIFE(LIFE_GEN(w), DEVSUP_FAILED));
		moved(d, DEVSUP_DOWN, DEVSUP_FAILED, d->failure);
		log_err("vm %s device %s: %s: given up; its requests get the fallback", d->p.vm, c->name, d->failure);
		d->p.events->failed(d->p.opaque);
			return;
	}
	arm_timer(d, d->backoff_ms);
}

static void restart(struct devsup *d)
{
	bool given;

	d->window_restarts++;
	d->backoff_ms = d->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d->backoff_ms * 2;
	pthread_mutex_lock(&d->lock);
	d->restarts++;
	pthread_mutex_unlock(&d->lock);
	log_info("vm %s device %s: restarting (restart %u)", d->p.vm, d->cfg->name, d->restarts);
	if (start_instance(d, &given) < 0)
		schedule_restart(d);
}

/* The instance's process ended: collect it, say why, clean up, restart. */
static void collect(struct devsup *d)
{
	struct instance *in = &d->inst;
	siginfo_t si = { 0 };
	const char *limit;
	char why[256], how[96];

	if (in->pidfd < 0 || waitid(P_PIDFD, in->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return;
	in->reaped = true;
	atomic_fetch_add(&d->exits, 1);
	disarm_timer(d);
	/* Its last words before the news of its end. */
	reader_close(d, &in->out);
	reader_close(d, &in->err);
	flush_suppressed(d);
	limit = in->cg ? cgroup_limit_hit(in->cg) : NULL;
	snprintf(why, sizeof(why), "pid %d %s%s%s", in->pid, describe(si.si_code, si.si_status, how, sizeof(how)),
		 limit ? ": exceeded its " : "", limit ? limit : "");
	if (LIFE_STATE(atomic_load(&d->life)) == DEVSUP_DOWN || d->stopping)
		log_info("vm %s device %s: %s", d->p.vm, d->cfg->name, why);
	went_down(d, gen_of(d), why);
	finish_instance(d);
	schedule_restart(d);
}

static void on_exit_event(void *opaque, uint32_t events)
{
	collect(opaque);
}

/* A remote instance that went down: its connection goes (the runner
 * then restarts the device and dials again), the next one is listened
 * for after the backoff. */
static void end_remote(struct devsup *d)
{
	if (d->inst.reaped)
		return;
	atomic_fetch_add(&d->exits, 1);
	finish_instance(d);
	d->inst.reaped = true;
	schedule_restart(d);
}

static void on_kill(void *arg)
{
	struct devsup *d = arg;

	if (atomic_load(&d->kill_gen) != gen_of(d))
		return;
	if (d->cfg->remote.listen)
		end_remote(d);
	else if (d->inst.pidfd >= 0 && !d->inst.reaped)
		pidfd_send_signal(d->inst.pidfd, SIGKILL, NULL, 0);
}

/* Every third of timeout_ms: a ping to a ready runner, or the end of one
 * that has not answered for timeout_ms (a partition, a dead host). */
static void on_beat(void *opaque, uint32_t events)
{
	struct devsup *d = opaque;
	uint32_t timeout = d->cfg->remote.timeout_ms, gen = devsup_ready_gen(d);
	Ioreq__Ping ping = IOREQ__PING__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	uint64_t now = (uint64_t)clock_now_ns(), ticks;
	char why[96];

	if (read(d->beat, &ticks, sizeof(ticks)) < 0 || !gen)
		return;
	if (now - atomic_load(&d->last_pong) > (uint64_t)timeout * 1000000) {
		snprintf(why, sizeof(why), "no answer for %u ms (network partition, or the runner is gone)", timeout);
		went_down(d, gen, why);
		return;
	}
	ping.seq = atomic_fetch_add(&d->ping_seq, 1) + 1;
	ping.timeout_ms = timeout;
	atomic_store(&d->ping_sent, now);
	env.msg_case = IOREQ__ENVELOPE__MSG_PING;
	env.ping = &ping;
	rpc_send(d->rpc, gen, &env);
}

static void on_timer(void *opaque, uint32_t events)
{
	struct devsup *d = opaque;
	uint64_t ticks;
	char why[64];

	if (read(d->timer, &ticks, sizeof(ticks)) < 0)
		return;
	switch (devsup_state(d)) {
	case DEVSUP_STARTING:
		snprintf(why, sizeof(why), "no handshake within %u ms", DEVSUP_HANDSHAKE_MS);
		went_down(d, gen_of(d), why);
		break;
	case DEVSUP_DOWN:
		if (d->inst.reaped && !d->stopping)
			restart(d);
		break;
	default:
		break;
	}
}

static void on_tls_refused(void *opaque, const char *why)
{
	devsup_log(opaque, LOG_WARNING, "%s", why);
}

/* A remote device's identity, its files read once, before anything can
 * connect. Failures are the configuration's. */
static int remote_identity(struct devsup *d)
{
	const struct cfg_remote *rm = &d->cfg->remote;
	const struct tlsid_spec spec = { .certificate = rm->certificate, .key = rm->key, .ca = rm->ca,
					 .peer_name = rm->peer_name, .fingerprint = rm->fingerprint,
					 .refused = on_tls_refused, .opaque = d };
	const char *why;
	int r;

	if (!rm->listen || !rm->certificate)
		return 0;
	r = tlsid_new(&spec, &d->tls, &why);
	if (r < 0)
		log_err("%s:%d:%d: vm %s device %s: remote: %s", d->cfg->config_path, d->cfg->mark.line, d->cfg->mark.col,
			d->p.vm, d->cfg->name, why);
	return r;
}

int devsup_new(const struct devsup_params *p, struct devsup **ret)
{
	struct devsup *d = calloc(1, sizeof(*d));
	int r;

	if (!d)
		return -ENOMEM;
	d->p = *p;
	d->cfg = p->cfg;
	d->inst = (struct instance){ .pidfd = -1, .uid = (uid_t)-1, .stdin_copy = -1, .out.fd = -1, .err.fd = -1,
				     .reaped = true, .mem.fd = -1 };
	d->mem.fd = -1;
	d->vhost_user = -1;
	d->timer = -1;
	d->beat = -1;
	d->uid = (uid_t)-1;
	d->backoff_ms = BACKOFF_MIN_MS;
	d->kill_job = (struct loop_job){ .fn = on_kill, .arg = d };
	pthread_mutex_init(&d->lock, NULL);
	atomic_init(&d->life, LIFE(0, DEVSUP_STOPPED));
	r = snprintf(d->dir, sizeof(d->dir), "%s/%s.%s", p->runtime_dir, p->vm, p->cfg->name);
	/* sun_path is 108 bytes; nng's ipc:// paths must fit it. */
	if (r < 0 || (size_t)r + sizeof("/sock") > sizeof(d->sock)) {
		log_err("vm %s device %s: socket path under %s is too long", p->vm, p->cfg->name, p->runtime_dir);
		r = -ENAMETOOLONG;
		goto err;
	}
	snprintf(d->sock, sizeof(d->sock), "%.*s/sock", (int)(sizeof(d->sock) - sizeof("/sock")), d->dir);
	d->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->timer < 0) {
		r = -errno;
		goto err;
	}
	r = rpc_new(&rpc_events, d, &d->rpc);
	if (r == 0 && cfg_device_has_ring(p->cfg))
		r = ring_new(&d->ring);
	if (r == 0)
		r = loop_add(p->loop, d->timer, EPOLLIN, on_timer, d, &d->timer_src);
	if (r == 0 && p->cfg->remote.listen) {
		d->beat = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		r = d->beat < 0 ? -errno : loop_add(p->loop, d->beat, EPOLLIN, on_beat, d, &d->beat_src);
	}
	if (r == 0)
		r = remote_identity(d);
	if (r < 0)
		goto err;
	*ret = d;
	return 0;
err:
	devsup_free(d);
	return r;
}

/* The device's `vhost_user:` socket: listening from the VM's start to its
 * stop, whatever becomes of the instances that accept on it (QEMU
 * reconnects to the same path). A stale socket file is replaced; anything
 * else at the path is refused. Mode 0600: the broker's user connects, or
 * root; another front end's user needs the operator's chown. */
static int vhost_user_listen(struct devsup *d)
{
	const char *path = d->cfg->vhost_user;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (!path || d->vhost_user >= 0)
		return 0;
	/* The loader checked the length. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			r = -EEXIST;
			goto fail;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 || listen(fd, 1) < 0) {
		r = -errno;
		close(fd);
		unlink(path);
		goto fail;
	}
	d->vhost_user = fd;
	return 0;
fail:
	log_err("%s:%d:%d: vm %s device %s: cannot listen on vhost_user %s: %s", d->cfg->config_path,
		d->cfg->mark.line, d->cfg->mark.col, d->p.vm, d->cfg->name, path,
		r == -EEXIST ? "something other than a socket is there" : strerror(-r));
	return r;
}

/* A remote device's heartbeat, from its start to its stop. */
static void remote_setup(struct devsup *d)
{
	uint64_t period_ns = (uint64_t)d->cfg->remote.timeout_ms * 1000000 / 3;
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)(period_ns / 1000000000),
						.tv_nsec = (long)(period_ns % 1000000000) } };

	if (!d->cfg->remote.listen)
		return;
	its.it_interval = its.it_value;
	timerfd_settime(d->beat, 0, &its, NULL);
}

static void vhost_user_close(struct devsup *d)
{
	if (d->vhost_user < 0)
		return;
	close(d->vhost_user);
	d->vhost_user = -1;
	unlink(d->cfg->vhost_user);
}

int devsup_start(struct devsup *d)
{
	bool given;
	int r;

	if (mkdir(d->dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		log_err("vm %s device %s: cannot create %s: %s", d->p.vm, d->cfg->name, d->dir, strerror(-r));
		return r;
	}
	r = vhost_user_listen(d);
	if (r < 0)
		return r;
	remote_setup(d);
	d->stopping = false;
	d->window_start_ns = clock_now_ns();
	d->window_restarts = 0;
	d->backoff_ms = BACKOFF_MIN_MS;
	pthread_mutex_lock(&d->lock);
	d->failure[0] = '\0';
	pthread_mutex_unlock(&d->lock);
	/* One that cannot start now is retried, with backoff, up to its limit;
	 * unless what it is given is missing: the configuration is wrong. */
	r = start_instance(d, &given);
	if (r < 0 && given) {
		atomic_store(&d->life, LIFE(gen_of(d), DEVSUP_STOPPED));
		d->stopping = true;
		return r;
	}
	if (r < 0)
		schedule_restart(d);
	return 0;
}

void devsup_set_memory(struct devsup *d, const struct devsup_memory *m)
{
	if (m)
		d->mem = *m;
	else
		d->mem = (struct devsup_memory){ .fd = -1 };
}

void devsup_ask_stop(struct devsup *d)
{
	Ioreq__Shutdown s = IOREQ__SHUTDOWN__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	uint64_t w = atomic_load(&d->life);

	d->stopping = true;
	d->asked_to_exit = false;
	disarm_timer(d);
	/* Stopped, not down: its leaving is no news, and restarts nothing. */
	while (LIFE_STATE(w) != DEVSUP_STOPPED &&
	       !atomic_compare_exchange_weak(&d->life, &w, LIFE(LIFE_GEN(w), DEVSUP_STOPPED)))
		;
	if (LIFE_STATE(w) != DEVSUP_STOPPED)
		moved(d, LIFE_STATE(w), DEVSUP_STOPPED, "stopped");
	if (LIFE_STATE(w) != DEVSUP_READY)
		return;
	env.msg_case = IOREQ__ENVELOPE__MSG_SHUTDOWN;
	env.shutdown = &s;
	d->asked_to_exit = rpc_send(d->rpc, LIFE_GEN(w), &env) == 0;
}

/* Waits up to @ms for the instance's process to end. */
static bool wait_exit(struct devsup *d, unsigned ms)
{
	struct pollfd p = { .fd = d->inst.pidfd, .events = POLLIN };

	return d->inst.pidfd < 0 || poll(&p, 1, (int)ms) > 0;
}

void devsup_stop(struct devsup *d)
{
	struct instance *in = &d->inst;

	if (!d->stopping)
		devsup_ask_stop(d);
	if (d->beat >= 0)
		timerfd_settime(d->beat, 0, &(struct itimerspec){ 0 }, NULL);
	if (d->cfg->remote.listen) {
		/* Its connection goes: rpc_shut gives the runner a moment to
		 * close it after the Shutdown. */
		if (!in->reaped)
			finish_instance(d);
		in->reaped = true;
	} else if (!in->reaped && !wait_exit(d, d->asked_to_exit ? SHUTDOWN_GRACE_MS : 0)) {
		pidfd_send_signal(in->pidfd, SIGTERM, NULL, 0);
		if (!wait_exit(d, 200)) {
			pidfd_send_signal(in->pidfd, SIGKILL, NULL, 0);
			wait_exit(d, KILL_WAIT_MS);
		}
	}
	if (!in->reaped)
		collect(d);
	if (!in->reaped) {
		/* Unkillable (stuck in the kernel): it is someone else's now. */
		log_err("vm %s device %s: pid %d does not die; abandoning it", d->p.vm, d->cfg->name, in->pid);
		finish_instance(d);
	}
	vhost_user_close(d);
	rmdir(d->dir);
}

struct devsup *devsup_free(struct devsup *d)
{
	if (!d)
		return NULL;
	if (devsup_state(d) != DEVSUP_STOPPED || !d->inst.reaped)
		devsup_stop(d);
	if (d->timer_src)
		d->timer_src = loop_remove(d->p.loop, d->timer_src);
	if (d->beat_src)
		d->beat_src = loop_remove(d->p.loop, d->beat_src);
	if (d->beat >= 0)
		close(d->beat);
	d->rpc = rpc_free(d->rpc);
	d->tls = tlsid_free(d->tls);
	d->ring = ring_free(d->ring);
	if (d->timer >= 0)
		close(d->timer);
	pthread_mutex_destroy(&d->lock);
	free(d);
	return NULL;
}

void devsup_info(const struct devsup *d, struct devsup_info *ret)
{
	struct devsup *m = (struct devsup *)d;

	pthread_mutex_lock(&m->lock);
	*ret = (struct devsup_info){
		.state = devsup_state(d),
		.pid = d->pid,
		.uid = d->uid,
		.restarts = d->restarts,
		.exits = atomic_load(&m->exits),
		.interrupts = atomic_load(&m->interrupts),
		.denied_interrupts = atomic_load(&m->denied_interrupts),
		.violations = atomic_load(&m->violations),
		.throttled = atomic_load(&m->throttled),
		.ring_requests = atomic_load(&m->ring_requests),
		.socket_requests = atomic_load(&m->socket_requests),
	};
	snprintf(ret->failure, sizeof(ret->failure), "%s", d->failure);
	pthread_mutex_unlock(&m->lock);
	ret->remote = d->cfg->remote.listen != NULL;
	if (ret->remote) {
		rpc_peer(m->rpc, ret->peer, sizeof(ret->peer));
		if (m->tls && ret->peer[0])
			tlsid_subject(m->tls, ret->subject, sizeof(ret->subject));
		ret->rtt_ns = atomic_load(&m->rtt);
		ret->dma_accesses = atomic_load(&m->dma_accesses);
		ret->dma_bytes = atomic_load(&m->dma_bytes);
	}
}
