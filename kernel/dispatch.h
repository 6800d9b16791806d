/* The ACRN HSM's request dispatch rules, as one portable module.
 *
 * This is what drivers/virt/acrn/ioreq.c does between the hypervisor's upcall
 * and the default client (see ../shared/REFERENCE.md): it owns one VM's 16-slot
 * request page and routes each PENDING slot to an in-HSM client or to the one
 * default client. The kvm and sim backends and the fake ACRN HSM used in tests
 * all go through it, so every backend follows the same rules:
 *
 *  - a slot goes FREE -> PENDING -> PROCESSING -> COMPLETE -> FREE; the vCPU
 *    side (the "hypervisor") writes PENDING and FREE, the dispatcher writes
 *    PROCESSING and COMPLETE;
 *  - while the VM is clearing (dispatch_clear), new requests complete at once;
 *  - port 0xCF8 is kept here (any width: the kernel only warns when it is
 *    not 4 bytes); 0xCFC..0xCFF complete at once (reads 0xFFFFFFFF) unless
 *    bit 31 of 0xCF8 is set, in which case the slot is rewritten in place
 *    into a PCICFG request;
 *  - the newest in-HSM client with a range of the same type containing the
 *    whole access [addr, addr + size - 1] takes it (kernel_handled = 1);
 *    PCICFG always goes to the default client (kernel_handled = 0);
 *  - the HSM's own ioeventfd client (drivers/virt/acrn/ioeventfd.c) is the
 *    oldest in-HSM client: every other one wins over it. An access inside
 *    one of its registrations' ranges is its own: a read returns 0, a write
 *    signals the first registration with the same type, the same address,
 *    a length of at least the access's and (without datamatch) any value or
 *    (with it) the same value; any other write is dropped;
 *  - the default client waits level-triggered (dispatch_attach) and finishes
 *    each request with dispatch_notify; destroying it wakes its waiter.
 *
 * Differences from the kernel, on purpose: in-HSM client handlers run inline
 * in the vCPU's thread (the kernel uses a kthread per client: same result, one
 * thread hand-off less), and a request with no default client to take it
 * completes at once with all ones instead of staying PENDING forever.
 * Requests completed without a client (clearing, no default client, the end
 * of dispatch_clear) read all ones; the kernel leaves the value as it was.
 * A vCPU's bit is set before its slot turns PROCESSING (the kernel does it
 * after), and only the one who takes the bit back (dispatch_notify or
 * dispatch_clear) completes the slot, so each request completes exactly once.
 */
#ifndef IOREQ_DISPATCH_H
#define IOREQ_DISPATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/acrn.h>

#define DISPATCH_MAX_CLIENTS 8
/* The kernel's list has no bound; 64 doorbells for each of a few devices. */
#define DISPATCH_MAX_IOEVENTFDS 256
#define DISPATCH_MAX_CLIENT_RANGES 8
/* CLEAR_VM_IOREQ's drain budget in the kernel: 10 x HZ/100. */
#define DISPATCH_CLEAR_TIMEOUT_MS 100

/* An in-HSM client's handler: emulate @req (a PORTIO or MMIO slot) in place,
 * writing the value of a read into it. Runs in the requesting vCPU's thread. */
typedef void (*dispatch_handler_fn)(void *priv, unsigned vcpu, struct acrn_io_request *req);

struct dispatch_client {
	char name[16];
	uint32_t type; /* ACRN_IOREQ_TYPE_PORTIO or _MMIO */
	unsigned n_ranges;
	struct {
		uint64_t start, end; /* inclusive */
	} ranges[DISPATCH_MAX_CLIENT_RANGES];
	dispatch_handler_fn handler;
	void *priv;
};

/* One registration of the ioeventfd client: ACRN_IOCTL_IOEVENTFD's
 * arguments as drivers/virt/acrn/ioeventfd.c keeps them. */
struct dispatch_ioeventfd {
	int fd;        /* an eventfd, the caller's: open until deassigned */
	uint32_t type; /* ACRN_IOREQ_TYPE_PORTIO or _MMIO */
	uint64_t addr;
	uint32_t len;  /* 1, 2, 4 or 8 */
	bool wildcard; /* no datamatch: any value */
	uint64_t data;
};

/* The default client's word, also its futex: bits 0..15 are the kernel's
 * ioreqs_map (one per vCPU with a request for it, set until NOTIFY or CLEAR
 * takes it), bits 16..28 count dispatch_kick calls (wrapping), plus: */
#define DISPATCH_KICK_SHIFT 16
#define DISPATCH_KICK_MASK (0x1fffu << DISPATCH_KICK_SHIFT)
#define DISPATCH_CLOSED (1u << 29)
#define DISPATCH_DEFAULT_EXISTS (1u << 30)
#define DISPATCH_DEFAULT_DESTROYING (1u << 31)

struct dispatch {
	struct acrn_io_request_buffer *page;
	unsigned vcpu_num;
	_Atomic uint32_t pci_conf_addr;
	_Atomic bool clearing;
	_Atomic uint32_t dflt;
	/* Newest first, like the kernel's list_add. Only changed before the VM runs. */
	unsigned n_clients;
	struct dispatch_client clients[DISPATCH_MAX_CLIENTS];
	/* The ioeventfd client's registrations in assignment order (the
	 * kernel's list_add_tail), changed at any time: vCPUs read them under
	 * the lock, and skip it while there are none. */
	pthread_rwlock_t ioeventfd_lock;
	_Atomic unsigned n_ioeventfds;
	struct dispatch_ioeventfd ioeventfds[DISPATCH_MAX_IOEVENTFDS];
};

/* Sets up @d for @page (every slot FREE) and @vcpu_num vCPUs (1..16). */
int dispatch_init(struct dispatch *d, struct acrn_io_request_buffer *page, unsigned vcpu_num);

/* Adds an in-HSM client (newest first) with one range [start, end] of @type,
 * or a further range to the client of the same @name (which must have the
 * same type, handler and priv). Call before any vCPU runs.
 * -EINVAL: type not PORTIO/MMIO, end < start, no name or handler, or a name
 * taken with other settings; -ENOSPC: too many clients or ranges. */
int dispatch_add_client(struct dispatch *d, const char *name, uint32_t type, uint64_t start, uint64_t end,
			dispatch_handler_fn handler, void *priv);

/* 0 if @fd is an open eventfd; -EBADF if it is not open, -EINVAL if it is
 * something else (eventfd_ctx_fdget's answers). */
int dispatch_check_eventfd(int fd);

/* Whether @a and @b are the same eventfd (the same open file, as the
 * kernel compares eventfd contexts; the same number where kcmp is missing). */
bool dispatch_same_eventfd(int a, int b);

/* ACRN_IOCTL_IOEVENTFD assign, callable at any time: -EINVAL for a length
 * other than 1, 2, 4 or 8, a range that wraps or a type not PORTIO/MMIO;
 * -EEXIST when a registration of the same eventfd, address and type has
 * the same data or either is a wildcard; -ENOSPC past
 * DISPATCH_MAX_IOEVENTFDS. @e->fd is not checked here (dispatch_check_eventfd). */
int dispatch_ioeventfd_assign(struct dispatch *d, const struct dispatch_ioeventfd *e);

/* Deassign: removes the first registration of @fd's eventfd. Returns its
 * fd (the caller's again, no vCPU uses it any more), or -ENOENT (where the
 * kernel returns 0 and does nothing). */
int dispatch_ioeventfd_deassign(struct dispatch *d, int fd);

/* CREATE_IOREQ_CLIENT: -EEXIST when there is one already, -ENODEV once
 * the dispatcher is closed. Requests that a destroyed client left
 * PROCESSING are handed to the new one. */
int dispatch_create_default(struct dispatch *d);

/* DESTROY_IOREQ_CLIENT: wakes a blocked dispatch_attach with -ENODEV.
 * -ENODEV if there is none. Requests it still holds stay PROCESSING, as in
 * the kernel, until dispatch_clear or a new client's notify finishes them. */
int dispatch_destroy_default(struct dispatch *d);

/* The vCPU side: slot[@vcpu] has been filled (type and reqs); publish it as
 * PENDING and dispatch it. Returns when the request is COMPLETE (handled in
 * the HSM) or PROCESSING for the default client. */
void dispatch_submit(struct dispatch *d, unsigned vcpu);

/* The vCPU side: waits until slot[@vcpu] is COMPLETE (spinning when the slot
 * asked for completion_polling, sleeping otherwise), then frees it. */
void dispatch_wait_complete(struct dispatch *d, unsigned vcpu);

/* ATTACH_IOREQ_CLIENT: blocks until a request is assigned to the default
 * client (level-triggered: returns at once while any is unfinished).
 * 0, or -ENODEV when the client does not exist or is being destroyed. */
int dispatch_attach(struct dispatch *d);

/* Like dispatch_attach, but waits for a request of a vCPU not in *@held (a
 * vCPU bitmap the caller owns, re-read on every wake-up; NULL holds none): an
 * edge the kernel does not offer, used by our own backends so that a broker
 * with requests in flight does not spin on them. */
int dispatch_attach_except(struct dispatch *d, const _Atomic uint32_t *held);

/* Wakes dispatch_attach_except to re-read its @held: call after clearing a
 * bit in it. Bumps the kick count in the futex word, so a waiter that read
 * @held just before the change cannot sleep through the wake-up; wakes
 * nobody while no request is assigned to the default client (then there
 * is nothing to wake for). */
void dispatch_kick(struct dispatch *d);

/* NOTIFY_REQUEST_FINISH for @vcpu: -EINVAL if vcpu >= vcpu_num. Marks the
 * slot COMPLETE and wakes the vCPU unless it polls. Like the kernel it does
 * not look at the slot's state, and does nothing (returning 0) without a
 * default client; unlike it, it also does nothing when no request of @vcpu
 * is assigned (dispatch_clear already finished it). */
int dispatch_notify(struct dispatch *d, unsigned vcpu);

/* CLEAR_VM_IOREQ: new requests complete at once; the default client gets
 * @timeout_ms (polled every 10 ms; 0: none) to finish what it holds; the rest
 * is completed here (reads with all ones), even after the client was
 * destroyed. */
void dispatch_clear(struct dispatch *d, unsigned timeout_ms);

/* One access, whatever the kind of request that carries it: the only
 * decode of a slot's union in kernel/. */
struct dispatch_access {
	uint32_t type;  /* ACRN_IOREQ_TYPE_PORTIO, _MMIO or _PCICFG */
	uint32_t dir;   /* ACRN_IOREQ_DIR_READ or _WRITE */
	uint64_t addr;  /* the port or the guest-physical address; 0 for PCICFG */
	uint64_t size;  /* bytes, as the slot says (not checked here) */
	uint64_t value; /* written, or read */
};

/* Reads @req's access by its type. -EINVAL, with *@ret untouched, for a
 * type the HSM does not produce. */
int dispatch_decode(const struct acrn_io_request *req, struct dispatch_access *ret);

/* Stores the value of a read into @req's field for its type, truncated to
 * that field (32 bits for PORTIO and PCICFG). Unknown types are left alone. */
void dispatch_set_value(struct acrn_io_request *req, uint64_t value);

/* The vCPU side of one access, as the hypervisor posts it for an exit:
 * fills slot[@vcpu] with @a (PORTIO or MMIO; @polling becomes the slot's
 * completion_polling), submits it, waits for its completion and frees the
 * slot. Returns what a read returned, masked to @a->size and read back by
 * the slot's final type (the HSM rewrites a 0xCFC access into PCICFG); for
 * a write, whatever the slot holds then. */
uint64_t dispatch_access(struct dispatch *d, unsigned vcpu, const struct dispatch_access *a, bool polling);

/* DESTROY_VM, as the vCPU side needs it: in one atomic step the default
 * client goes for good (a blocked dispatch_attach returns -ENODEV, and
 * dispatch_create_default fails from now on) and what it held is taken; that
 * is completed with all ones, and so is every request submitted later. Once
 * it returns no vCPU can block in dispatch_wait_complete again, so a backend
 * can join its vCPU threads without a retry loop. */
void dispatch_close(struct dispatch *d);

/* The vCPUs with a request waiting for the default client. */
static inline uint32_t dispatch_pending(struct dispatch *d)
{
	return atomic_load(&d->dflt) & 0xffffu;
}

/* All ones of an access of @size bytes (1, 2, 4 or 8). */
static inline uint64_t dispatch_all_ones(uint64_t size)
{
	return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

#endif
