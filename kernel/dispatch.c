/* The ACRN HSM's request dispatch rules (drivers/virt/acrn/ioreq.c), in user
 * space. See dispatch.h for the rules and where they differ from the kernel.
 *
 * Two words carry all the cross-thread state, and each has one futex:
 *  - slot->processed, the request's state: the vCPU sleeps on it until
 *    COMPLETE (unless the slot polls);
 *  - d->dflt, the default client's bitmap and flags: its waiter sleeps on it.
 * A vCPU bit in d->dflt is the right to complete that vCPU's request for the
 * default client: dispatch_notify and dispatch_clear complete a slot only
 * after taking its bit, so every request is completed exactly once.
 */
#include "dispatch.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DISPATCH_VCPU_MASK 0xffffu
#define DISPATCH_CLEAR_POLL_MS 10

/* PCI configuration mechanism #1, as handle_cf8cfc() folds it. */
#define PCI_CONF_ADDR_PORT 0xcf8
#define PCI_CONF_DATA_PORT 0xcfc
#define PCI_CONF_ENABLE 0x80000000u
#define PCI_LOWREG_MASK 0xfc
#define PCI_HIGHREG_MASK 0xf00
#define PCI_BUSMAX 0xff
#define PCI_SLOTMAX 0x1f
#define PCI_FUNCMAX 0x7

/* Spins on pause before yielding: a polling slot is meant for vCPUs with a
 * CPU of their own, where the completion is usually a few microseconds away. */
#define DISPATCH_POLL_SPINS 1024

static void dispatch_futex_wait(void *addr, uint32_t val)
{
	/* EAGAIN (the word moved on) and EINTR just make the caller re-check. */
	syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void dispatch_futex_wake(void *addr, int n)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static void dispatch_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static uint32_t dispatch_state(const struct acrn_io_request *req)
{
	return __atomic_load_n(&req->processed, __ATOMIC_ACQUIRE);
}

static void dispatch_set_state(struct acrn_io_request *req, uint32_t state)
{
	__atomic_store_n(&req->processed, state, __ATOMIC_RELEASE);
}

static bool dispatch_has_default(uint32_t v)
{
	return (v & DISPATCH_DEFAULT_EXISTS) && !(v & DISPATCH_DEFAULT_DESTROYING);
}

/* Our last write to the slot, as in ioreq_complete_request(): read
 * completion_polling first, because once the slot is COMPLETE it belongs to
 * the vCPU side again. */
static void dispatch_complete(struct acrn_io_request *req)
{
	bool polling = __atomic_load_n(&req->completion_polling, __ATOMIC_RELAXED);

	dispatch_set_state(req, ACRN_IOREQ_STATE_COMPLETE);
	if (!polling)
		dispatch_futex_wake(&req->processed, INT_MAX);
}

int dispatch_decode(const struct acrn_io_request *req, struct dispatch_access *ret)
{
	const struct acrn_pio_request *pio = &req->reqs.pio_request;
	const struct acrn_mmio_request *mmio = &req->reqs.mmio_request;
	const struct acrn_pci_request *pci = &req->reqs.pci_request;

	switch (req->type) {
	case ACRN_IOREQ_TYPE_PORTIO:
		*ret = (struct dispatch_access){ req->type, pio->direction, pio->address, pio->size, pio->value };
		return 0;
	case ACRN_IOREQ_TYPE_MMIO:
		*ret = (struct dispatch_access){ req->type, mmio->direction, mmio->address, mmio->size, mmio->value };
		return 0;
	case ACRN_IOREQ_TYPE_PCICFG:
		*ret = (struct dispatch_access){ req->type, pci->direction, 0, pci->size, pci->value };
		return 0;
	default:
		return -EINVAL;
	}
}

void dispatch_set_value(struct acrn_io_request *req, uint64_t value)
{
	switch (req->type) {
	case ACRN_IOREQ_TYPE_PORTIO:
		req->reqs.pio_request.value = (uint32_t)value;
		break;
	case ACRN_IOREQ_TYPE_MMIO:
		req->reqs.mmio_request.value = value;
		break;
	case ACRN_IOREQ_TYPE_PCICFG:
		req->reqs.pci_request.value = (uint32_t)value;
		break;
	}
}

/* A request nobody emulates: reads see a floating bus, writes are dropped. */
static void dispatch_complete_ones(struct acrn_io_request *req)
{
	struct dispatch_access a;

	if (!dispatch_decode(req, &a) && a.dir == ACRN_IOREQ_DIR_READ)
		dispatch_set_value(req, dispatch_all_ones(a.size));
	dispatch_complete(req);
}

/* Completes a default-client request whose bit the caller has just taken.
 * The submitter sets the bit before it publishes PROCESSING (see
 * dispatch_to_default), so wait for that store: a COMPLETE written before it
 * would be overwritten and the vCPU would wait forever. The submitter is
 * running, between two stores, so the wait is short. */
static void dispatch_complete_taken(struct acrn_io_request *req, bool ones)
{
	while (dispatch_state(req) == ACRN_IOREQ_STATE_PENDING)
		sched_yield();
	if (ones)
		dispatch_complete_ones(req);
	else
		dispatch_complete(req);
}

int dispatch_init(struct dispatch *d, struct acrn_io_request_buffer *page, unsigned vcpu_num)
{
	if (!page || vcpu_num < 1 || vcpu_num > ACRN_IO_REQUEST_MAX)
		return -EINVAL;
	memset(page, 0, sizeof(*page));
	for (unsigned i = 0; i < ACRN_IO_REQUEST_MAX; i++)
		dispatch_set_state(&page->req_slot[i], ACRN_IOREQ_STATE_FREE);
	d->page = page;
	d->vcpu_num = vcpu_num;
	atomic_init(&d->pci_conf_addr, 0);
	atomic_init(&d->clearing, false);
	atomic_init(&d->dflt, 0);
	d->n_clients = 0;
	memset(d->clients, 0, sizeof(d->clients));
	pthread_rwlock_init(&d->ioeventfd_lock, NULL);
	atomic_init(&d->n_ioeventfds, 0);
	return 0;
}

static struct dispatch_client *dispatch_find_name(struct dispatch *d, const char *name)
{
	for (unsigned i = 0; i < d->n_clients; i++) {
		if (!strncmp(d->clients[i].name, name, sizeof(d->clients[i].name) - 1))
			return &d->clients[i];
	}
	return NULL;
}

int dispatch_add_client(struct dispatch *d, const char *name, uint32_t type, uint64_t start, uint64_t end,
			dispatch_handler_fn handler, void *priv)
{
	struct dispatch_client *c;

	/* Only PORTIO and MMIO ranges are ever matched (in_range()). */
	if (!name || !handler || end < start || (type != ACRN_IOREQ_TYPE_PORTIO && type != ACRN_IOREQ_TYPE_MMIO))
		return -EINVAL;
	c = dispatch_find_name(d, name);
	if (c) {
		if (c->type != type || c->handler != handler || c->priv != priv)
			return -EINVAL;
		if (c->n_ranges == DISPATCH_MAX_CLIENT_RANGES)
			return -ENOSPC;
	} else {
		if (d->n_clients == DISPATCH_MAX_CLIENTS)
			return -ENOSPC;
		/* Newest first, like list_add(): it wins where ranges overlap. */
		memmove(&d->clients[1], &d->clients[0], d->n_clients * sizeof(d->clients[0]));
		d->n_clients++;
		c = &d->clients[0];
		memset(c, 0, sizeof(*c));
		/* Truncated like the kernel's strncpy into name[ACRN_NAME_LEN]. */
		strncpy(c->name, name, sizeof(c->name) - 1);
		c->type = type;
		c->handler = handler;
		c->priv = priv;
	}
	c->ranges[c->n_ranges].start = start;
	c->ranges[c->n_ranges].end = end;
	c->n_ranges++;
	return 0;
}

int dispatch_check_eventfd(int fd)
{
	char path[32], target[32];
	ssize_t n;

	if (fd < 0)
		return -EBADF;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return errno == ENOENT ? -EBADF : -errno;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") ? -EINVAL : 0;
}

bool dispatch_same_eventfd(int a, int b)
{
	pid_t self = getpid();
	long r = syscall(SYS_kcmp, self, self, KCMP_FILE, a, b);

	/* 0: the same file; 1 or 2: ordered, not the same; -1: no kcmp. */
	return r < 0 ? a == b : r == 0;
}

/* hsm_ioeventfd_is_conflict(). */
static bool dispatch_ioeventfd_conflict(struct dispatch *d, const struct dispatch_ioeventfd *e)
{
	for (unsigned i = 0; i < atomic_load(&d->n_ioeventfds); i++) {
		const struct dispatch_ioeventfd *p = &d->ioeventfds[i];

		if (p->addr == e->addr && p->type == e->type && (p->wildcard || e->wildcard || p->data == e->data) &&
		    dispatch_same_eventfd(p->fd, e->fd))
			return true;
	}
	return false;
}

int dispatch_ioeventfd_assign(struct dispatch *d, const struct dispatch_ioeventfd *e)
{
	int r = 0;

	/* acrn_ioeventfd_assign's checks, in its order. */
	if (e->addr + e->len < e->addr)
		return -EINVAL;
	if (e->len != 1 && e->len != 2 && e->len != 4 && e->len != 8)
		return -EINVAL;
	/* The kernel derives the type from a flag; ours must be one of two. */
	if (e->type != ACRN_IOREQ_TYPE_PORTIO && e->type != ACRN_IOREQ_TYPE_MMIO)
		return -EINVAL;
	pthread_rwlock_wrlock(&d->ioeventfd_lock);
	if (dispatch_ioeventfd_conflict(d, e))
		r = -EEXIST;
	else if (atomic_load(&d->n_ioeventfds) == DISPATCH_MAX_IOEVENTFDS)
		r = -ENOSPC;
	else
		d->ioeventfds[atomic_fetch_add(&d->n_ioeventfds, 1)] = *e;
	pthread_rwlock_unlock(&d->ioeventfd_lock);
	return r;
}

int dispatch_ioeventfd_deassign(struct dispatch *d, int fd)
{
	int r = -ENOENT;

	pthread_rwlock_wrlock(&d->ioeventfd_lock);
	for (unsigned i = 0, n = atomic_load(&d->n_ioeventfds); i < n; i++) {
		if (!dispatch_same_eventfd(d->ioeventfds[i].fd, fd))
			continue;
		r = d->ioeventfds[i].fd;
		memmove(&d->ioeventfds[i], &d->ioeventfds[i + 1], (n - i - 1) * sizeof(d->ioeventfds[0]));
		atomic_store(&d->n_ioeventfds, n - 1);
		break;
	}
	pthread_rwlock_unlock(&d->ioeventfd_lock);
	return r;
}

/* The ioeventfd client's share of find_ioreq_client(): a range of the same
 * type holding the whole access. Under the lock. */
static bool dispatch_ioeventfd_in_range(struct dispatch *d, const struct dispatch_access *a)
{
	uint64_t last = a->addr + a->size - 1;

	if (!a->size || last < a->addr)
		return false;
	for (unsigned i = 0; i < atomic_load(&d->n_ioeventfds); i++) {
		const struct dispatch_ioeventfd *p = &d->ioeventfds[i];

		if (p->type == a->type && a->addr >= p->addr && last <= p->addr + p->len - 1)
			return true;
	}
	return false;
}

/* acrn_ioeventfd_handler(): reads return 0, a matching write signals. */
static void dispatch_ioeventfd_handle(struct dispatch *d, struct acrn_io_request *req, const struct dispatch_access *a)
{
	static const uint64_t one = 1;

	if (a->dir == ACRN_IOREQ_DIR_READ) {
		dispatch_set_value(req, 0);
		return;
	}
	for (unsigned i = 0; i < atomic_load(&d->n_ioeventfds); i++) {
		const struct dispatch_ioeventfd *p = &d->ioeventfds[i];

		if (p->type == a->type && p->addr == a->addr && p->len >= a->size && (p->wildcard || p->data == a->value)) {
			/* eventfd_signal(): a write blocks only at a count of
			 * 2^64 - 2, which no guest reaches. */
			(void)!write(p->fd, &one, sizeof(one));
			return;
		}
	}
}

/* True when the ioeventfd client took the request (and completed it). */
static bool dispatch_ioeventfd_take(struct dispatch *d, struct acrn_io_request *req)
{
	struct dispatch_access a;
	bool mine;

	if (!atomic_load_explicit(&d->n_ioeventfds, memory_order_relaxed) || dispatch_decode(req, &a))
		return false;
	pthread_rwlock_rdlock(&d->ioeventfd_lock);
	mine = dispatch_ioeventfd_in_range(d, &a);
	if (mine) {
		__atomic_store_n(&req->kernel_handled, 1, __ATOMIC_RELAXED);
		dispatch_set_state(req, ACRN_IOREQ_STATE_PROCESSING);
		dispatch_ioeventfd_handle(d, req, &a);
	}
	pthread_rwlock_unlock(&d->ioeventfd_lock);
	if (mine)
		dispatch_complete(req);
	return mine;
}

int dispatch_create_default(struct dispatch *d)
{
	uint32_t v = atomic_load(&d->dflt);

	/* The vCPU bits stay: requests a destroyed client left unfinished are
	 * still PROCESSING, and the new client is the one to finish them. */
	do {
		if (v & DISPATCH_CLOSED)
			return -ENODEV;
		if (dispatch_has_default(v))
			return -EEXIST;
	} while (
	    !atomic_compare_exchange_weak(&d->dflt, &v, (v | DISPATCH_DEFAULT_EXISTS) & ~DISPATCH_DEFAULT_DESTROYING));
	return 0;
}

int dispatch_destroy_default(struct dispatch *d)
{
	uint32_t v = atomic_load(&d->dflt);

	/* One atomic step, so a waiter sees either a client or DESTROYING,
	 * never a moment with neither. The vCPU bits stay, so that
	 * dispatch_clear can still complete what the client held. */
	do {
		if (!dispatch_has_default(v))
			return -ENODEV;
	} while (
	    !atomic_compare_exchange_weak(&d->dflt, &v, (v & ~DISPATCH_DEFAULT_EXISTS) | DISPATCH_DEFAULT_DESTROYING));
	dispatch_futex_wake(&d->dflt, INT_MAX);
	return 0;
}

/* handle_cf8cfc(): true when the request was completed here. Like the kernel,
 * any access to port 0xCF8 is the address register (the kernel only warns
 * when it is not 4 bytes wide), and 0xCFC..0xCFF is the data window whatever
 * the access size. */
static bool dispatch_cf8cfc(struct dispatch *d, struct acrn_io_request *req)
{
	struct acrn_pio_request *pio = &req->reqs.pio_request;
	struct acrn_pci_request *pci = &req->reqs.pci_request;
	uint32_t addr, offset;

	if (req->type != ACRN_IOREQ_TYPE_PORTIO)
		return false;
	if (pio->address == PCI_CONF_ADDR_PORT) {
		if (pio->direction == ACRN_IOREQ_DIR_WRITE)
			atomic_store(&d->pci_conf_addr, pio->value);
		else
			pio->value = atomic_load(&d->pci_conf_addr);
		dispatch_complete(req);
		return true;
	}
	if (pio->address < PCI_CONF_DATA_PORT || pio->address > PCI_CONF_DATA_PORT + 3)
		return false;
	addr = atomic_load(&d->pci_conf_addr);
	if (!(addr & PCI_CONF_ENABLE)) {
		if (pio->direction == ACRN_IOREQ_DIR_READ)
			pio->value = 0xffffffff;
		dispatch_complete(req);
		return true;
	}
	/* direction, size and value sit at the same offsets in both request
	 * kinds (the uapi's design rule): only type and the PCI fields change. */
	offset = (uint32_t)(pio->address - PCI_CONF_DATA_PORT);
	req->type = ACRN_IOREQ_TYPE_PCICFG;
	pci->bus = (addr >> 16) & PCI_BUSMAX;
	pci->dev = (addr >> 11) & PCI_SLOTMAX;
	pci->func = (addr >> 8) & PCI_FUNCMAX;
	pci->reg = (addr & PCI_LOWREG_MASK) + ((addr >> 16) & PCI_HIGHREG_MASK) + offset;
	return false;
}

/* find_ioreq_client()'s in_range(): the whole access, not just its first byte.
 * A zero-sized or wrapping access matches no range. */
static bool dispatch_in_range(const struct dispatch_client *c, uint64_t addr, uint64_t size)
{
	uint64_t last = addr + size - 1;

	if (!size || last < addr)
		return false;
	for (unsigned i = 0; i < c->n_ranges; i++) {
		if (addr >= c->ranges[i].start && last <= c->ranges[i].end)
			return true;
	}
	return false;
}

static struct dispatch_client *dispatch_find_client(struct dispatch *d, const struct acrn_io_request *req)
{
	struct dispatch_access a;

	/* PCICFG always goes to the default client: no client has its type. */
	if (dispatch_decode(req, &a))
		return NULL;
	for (unsigned i = 0; i < d->n_clients; i++) {
		if (d->clients[i].type == a.type && dispatch_in_range(&d->clients[i], a.addr, a.size))
			return &d->clients[i];
	}
	return NULL;
}

/* The kernel publishes PROCESSING, then sets the bit. Here the bit comes
 * first: a broker that scans the slots (as acrn-dm does) while another vCPU's
 * request wakes it could otherwise find this slot PROCESSING, finish it and
 * notify before the bit exists, leaving a bit that no request backs and an
 * ATTACH that never blocks again. Seen in this order, a PROCESSING slot
 * always has its bit. */
static void dispatch_to_default(struct dispatch *d, unsigned vcpu, struct acrn_io_request *req)
{
	uint32_t v = atomic_load(&d->dflt);

	__atomic_store_n(&req->kernel_handled, 0, __ATOMIC_RELAXED);
	do {
		if (!dispatch_has_default(v)) {
			/* The kernel would leave it PENDING until a client
			 * comes; a vCPU that can never run again helps no one. */
			dispatch_complete_ones(req);
			return;
		}
	} while (!atomic_compare_exchange_weak(&d->dflt, &v, v | (1u << vcpu)));
	dispatch_set_state(req, ACRN_IOREQ_STATE_PROCESSING);
	dispatch_futex_wake(&d->dflt, INT_MAX);
}

void dispatch_submit(struct dispatch *d, unsigned vcpu)
{
	struct acrn_io_request *req = &d->page->req_slot[vcpu];
	struct dispatch_client *c;

	/* The vCPU's last write: everything it filled in is published with it. */
	dispatch_set_state(req, ACRN_IOREQ_STATE_PENDING);
	if (atomic_load(&d->clearing)) {
		dispatch_complete_ones(req);
		return;
	}
	if (dispatch_cf8cfc(d, req))
		return;
	c = dispatch_find_client(d, req);
	if (!c) {
		/* The oldest in-HSM client, created with the VM. */
		if (!dispatch_ioeventfd_take(d, req))
			dispatch_to_default(d, vcpu, req);
		return;
	}
	__atomic_store_n(&req->kernel_handled, 1, __ATOMIC_RELAXED);
	dispatch_set_state(req, ACRN_IOREQ_STATE_PROCESSING);
	c->handler(c->priv, vcpu, req);
	dispatch_complete(req);
}

void dispatch_wait_complete(struct dispatch *d, unsigned vcpu)
{
	struct acrn_io_request *req = &d->page->req_slot[vcpu];
	bool polling = __atomic_load_n(&req->completion_polling, __ATOMIC_RELAXED);
	unsigned spins = 0;
	uint32_t state;

	while ((state = dispatch_state(req)) != ACRN_IOREQ_STATE_COMPLETE) {
		if (!polling) {
			dispatch_futex_wait(&req->processed, state);
		} else if (spins < DISPATCH_POLL_SPINS) {
			spins++;
			dispatch_cpu_relax();
		} else {
			sched_yield();
		}
	}
	dispatch_set_state(req, ACRN_IOREQ_STATE_FREE);
}

uint64_t dispatch_access(struct dispatch *d, unsigned vcpu, const struct dispatch_access *a, bool polling)
{
	struct acrn_io_request *req = &d->page->req_slot[vcpu];
	struct dispatch_access done;

	req->type = a->type;
	req->completion_polling = polling;
	memset(&req->reqs, 0, sizeof(req->reqs));
	if (a->type == ACRN_IOREQ_TYPE_PORTIO) {
		req->reqs.pio_request.direction = a->dir;
		req->reqs.pio_request.address = a->addr;
		req->reqs.pio_request.size = a->size;
	} else {
		req->reqs.mmio_request.direction = a->dir;
		req->reqs.mmio_request.address = a->addr;
		req->reqs.mmio_request.size = a->size;
	}
	dispatch_set_value(req, a->value);
	dispatch_submit(d, vcpu);
	dispatch_wait_complete(d, vcpu);
	/* Read before the vCPU's next request reuses the slot: it is ours
	 * again since the wait freed it. */
	if (dispatch_decode(req, &done))
		return dispatch_all_ones(a->size);
	return done.value & dispatch_all_ones(a->size);
}

static int dispatch_wait_default(struct dispatch *d, const _Atomic uint32_t *held)
{
	for (;;) {
		/* dflt before *held: a kick that follows a change of *held
		 * then also changes dflt after this load, and the futex wait
		 * below returns at once instead of sleeping on a stale view. */
		uint32_t v = atomic_load(&d->dflt);
		uint32_t h = held ? atomic_load(held) : 0;

		if (!dispatch_has_default(v))
			return -ENODEV;
		if (v & DISPATCH_VCPU_MASK & ~h)
			return 0;
		dispatch_futex_wait(&d->dflt, v);
	}
}

int dispatch_attach(struct dispatch *d)
{
	return dispatch_wait_default(d, NULL);
}

int dispatch_attach_except(struct dispatch *d, const _Atomic uint32_t *held)
{
	return dispatch_wait_default(d, held);
}

void dispatch_kick(struct dispatch *d)
{
	uint32_t v = atomic_load(&d->dflt);
	uint32_t kick;

	do {
		kick = (v + (1u << DISPATCH_KICK_SHIFT)) & DISPATCH_KICK_MASK;
	} while (!atomic_compare_exchange_weak(&d->dflt, &v, (v & ~DISPATCH_KICK_MASK) | kick));
	/* The count always moves: a waiter that read the word before the
	 * request it held was completed and the vCPU's next one assigned
	 * would otherwise find the same word again (the vCPU's bit cleared
	 * and set) and sleep through that request. But with nothing
	 * assigned, nobody is woken: a waiter has nothing to take, and the
	 * next request assigned wakes it itself. The broker kicks after
	 * every completion, and the VM thread would wake for nothing each
	 * time. */
	if (v & DISPATCH_VCPU_MASK)
		dispatch_futex_wake(&d->dflt, INT_MAX);
}

int dispatch_notify(struct dispatch *d, unsigned vcpu)
{
	uint32_t bit = 1u << vcpu;
	uint32_t v;

	if (vcpu >= d->vcpu_num)
		return -EINVAL;
	v = atomic_load(&d->dflt);
	do {
		/* The kernel's NOTIFY does nothing without a default client. */
		if (!dispatch_has_default(v))
			return 0;
		/* Nothing assigned (dispatch_clear finished it already): the
		 * kernel would still write COMPLETE, possibly into the vCPU's
		 * next request. */
		if (!(v & bit))
			return 0;
	} while (!atomic_compare_exchange_weak(&d->dflt, &v, v & ~bit));
	dispatch_complete_taken(&d->page->req_slot[vcpu], false);
	return 0;
}

static uint64_t dispatch_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void dispatch_sleep_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

void dispatch_clear(struct dispatch *d, unsigned timeout_ms)
{
	uint64_t deadline, now;
	uint32_t taken;

	atomic_store(&d->clearing, true);
	/* acrn_ioreq_request_clear() polls every HZ/100 up to ten times, but
	 * only for its in-kernel clients (vm->ioreq_clients never holds the
	 * default one), and ours run inline and never hold a request. The
	 * drain here is for the default client, as dispatch.h promises: the
	 * broker's devices may still answer in time. timeout_ms == 0 is the
	 * kernel's behaviour towards the default client. */
	deadline = dispatch_now_ms() + timeout_ms;
	while (dispatch_pending(d) && (now = dispatch_now_ms()) < deadline)
		dispatch_sleep_ms(deadline - now < DISPATCH_CLEAR_POLL_MS ? deadline - now : DISPATCH_CLEAR_POLL_MS);

	/* Even with the client destroyed: its requests are still PROCESSING,
	 * and this is what lets their vCPUs run again. */
	taken = atomic_fetch_and(&d->dflt, ~DISPATCH_VCPU_MASK) & DISPATCH_VCPU_MASK;
	for (unsigned i = 0; i < d->vcpu_num; i++) {
		if (taken & (1u << i))
			dispatch_complete_taken(&d->page->req_slot[i], true);
	}
	atomic_store(&d->clearing, false);
}

void dispatch_close(struct dispatch *d)
{
	uint32_t v = atomic_load(&d->dflt), gone;

	/* The client and the vCPU bits go in the same step: a vCPU whose
	 * dispatch_to_default came first left its bit for us to take, one
	 * that comes later finds no client and completes its own request. */
	gone = DISPATCH_DEFAULT_EXISTS | DISPATCH_VCPU_MASK;
	while (!atomic_compare_exchange_weak(&d->dflt, &v,
					     (v & ~gone) | DISPATCH_DEFAULT_DESTROYING | DISPATCH_CLOSED))
		;
	dispatch_futex_wake(&d->dflt, INT_MAX);
	for (unsigned i = 0; i < d->vcpu_num; i++) {
		if (v & (1u << i))
			dispatch_complete_taken(&d->page->req_slot[i], true);
	}
}
