/* The HSM layer: what the broker needs from the kernel side, one interface
 * for every backend, modelled on the ACRN HSM ioctls.
 *
 *   hsm_create         open + CREATE_VM (with the VM's 16-slot request page)
 *   hsm_create_client  CREATE_IOREQ_CLIENT (the default client)
 *   hsm_start          START_VM
 *   hsm_pause          PAUSE_VM: the vCPUs stop (a request in flight stays)
 *   hsm_reset          RESET_VM: the vCPUs start over at the next hsm_start
 *   hsm_attach         ATTACH_IOREQ_CLIENT: block until a slot is PROCESSING
 *                      for the default client; -ENODEV once it is destroyed
 *   hsm_complete       NOTIFY_REQUEST_FINISH for one vCPU's slot
 *   hsm_set_irqline    SET_IRQLINE, hsm_inject_msi INJECT_MSI
 *   hsm_clear          CLEAR_VM_IOREQ (reset-time drain)
 *   hsm_destroy_client DESTROY_IOREQ_CLIENT: wakes hsm_attach with -ENODEV
 *   hsm_destroy        DESTROY_VM + close
 *   hsm_ioeventfd      IOEVENTFD: a guest write signals an eventfd, no exit
 *   hsm_irqfd          IRQFD: an eventfd written injects an interrupt
 *
 * Guest RAM is one memfd on every backend (hsm_vm.mem_fd), its size sealed
 * and every page allocated when the VM is created, mapped into
 * guest-physical space as hsm_vm.regions: kvm one region [0, memory); acrn
 * [0, min(memory, 2 GiB)) and the rest from 4 GiB; sim [0, memory), or
 * none without memory.
 *
 * The broker reads slots exactly like acrn-dm: processed == PROCESSING &&
 * !kernel_handled, dispatched by type. The request representation is the
 * kernel's own struct acrn_io_request.
 *
 * Reset, as acrn-dm does it: hsm_pause, hsm_clear, reset the devices,
 * hsm_reset, hsm_start. Between hsm_pause and hsm_clear the broker finishes
 * what it holds and takes nothing new: once hsm_clear has completed a
 * request, a late hsm_complete of that vCPU would complete its next one
 * (the kernel does not check).
 */
#ifndef IOREQ_HSM_H
#define IOREQ_HSM_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/acrn.h>

enum hsm_backend {
	HSM_BACKEND_SIM,
	HSM_BACKEND_KVM,
	HSM_BACKEND_ACRN,
};

/* SET_IRQLINE operations (the high 32 bits of its argument). */
enum hsm_irq_op {
	HSM_IRQ_ASSERT = 0,
	HSM_IRQ_DEASSERT = 1,
	HSM_IRQ_PULSE_HIGH = 2,
	HSM_IRQ_PULSE_LOW = 3,
};

struct hsm_vm;

/* Called once, from a backend thread, when the guest has stopped by itself
 * (sim: every script ran; kvm: the exit port). @status is the VM's exit
 * status: 0 for success. */
typedef void (*hsm_stop_fn)(void *opaque, int status);

/* Operator-facing text from the backend (a sim access that did not return
 * what its script expected, a guest that crashed). */
typedef void (*hsm_report_fn)(void *opaque, const char *line);

struct hsm_vm_params {
	const char *name;
	unsigned vcpus;
	/* sim: one script path per vCPU, NULL for an idle vCPU. */
	const char *const *scripts;
	/* Guest RAM in bytes, a multiple of 4 KiB; sim: 0 for none. */
	uint64_t memory;
	/* kvm: the static ELF64 guest image (acrn: optional; without one the
	 * VM's vCPUs start wherever the hypervisor's configuration says), and
	 * (kvm) the port that stops the VM. */
	const char *image;
	uint16_t exit_port;
	/* acrn: vCPUs poll for completion (ACRN_VM_FLAG... IO_COMPLETION_POLLING). */
	bool completion_polling;
	hsm_stop_fn on_stop;
	hsm_report_fn report;
	void *opaque;
};

/* Guest RAM: one memfd (size sealed: F_SEAL_SHRINK | F_SEAL_GROW |
 * F_SEAL_SEAL, and fallocate'd at creation so that no device's cgroup is
 * charged for first touches), mapped into guest-physical space as regions. */
#define HSM_MAX_MEM_REGIONS 4
struct hsm_mem_region {
	uint64_t gpa, size; /* guest-physical range */
	uint64_t offset;    /* where it starts in the memfd */
};

/* A guest write of @size bytes (PIO: 1, 2, 4; MMIO: 1, 2, 4, 8) to @addr
 * signals @fd, and the vCPU goes on at once. With @datamatch, only writes
 * of @data. The HSM's rules (drivers/virt/acrn/ioeventfd.c) hold on every
 * backend: every other access inside [addr, addr + size) is the HSM's too,
 * and reaches no device: reads return 0, writes of another value (or
 * narrower ones elsewhere in the range) are dropped, and a narrower write
 * at @addr itself signals. */
struct hsm_ioeventfd {
	int fd;
	uint32_t type; /* ACRN_IOREQ_TYPE_PORTIO or ACRN_IOREQ_TYPE_MMIO */
	uint64_t addr;
	uint32_t size;
	bool datamatch;
	uint64_t data;
};

/* Writing @fd injects the interrupt: a GSI line (a pulse: an edge) or an MSI. */
struct hsm_irqfd {
	int fd;
	bool msi;
	uint32_t gsi;
	uint64_t msi_addr;
	uint32_t msi_data;
};

struct hsm_ops {
	const char *name;
	int (*create)(const struct hsm_vm_params *p, struct hsm_vm **ret);
	int (*create_client)(struct hsm_vm *vm);
	int (*start)(struct hsm_vm *vm);
	/* Optional (NULL: -EOPNOTSUPP). */
	int (*pause)(struct hsm_vm *vm);
	int (*reset)(struct hsm_vm *vm);
	int (*attach)(struct hsm_vm *vm, const _Atomic uint32_t *held);
	void (*kick)(struct hsm_vm *vm);
	int (*complete)(struct hsm_vm *vm, unsigned vcpu);
	int (*set_irqline)(struct hsm_vm *vm, uint32_t gsi, enum hsm_irq_op op);
	int (*inject_msi)(struct hsm_vm *vm, uint64_t addr, uint64_t data);
	int (*clear)(struct hsm_vm *vm);
	int (*destroy_client)(struct hsm_vm *vm);
	void (*destroy)(struct hsm_vm *vm);
	/* Optional (NULL: -EOPNOTSUPP). Called by hsm_ioeventfd and
	 * hsm_irqfd, serialised, with the arguments checked and @fd the HSM
	 * layer's own copy of the eventfd (open until after the deassign). */
	int (*ioeventfd)(struct hsm_vm *vm, const struct hsm_ioeventfd *e, int fd, bool deassign);
	int (*irqfd)(struct hsm_vm *vm, const struct hsm_irqfd *f, int fd, bool deassign);
};

struct hsm_fds;

/* What every backend's VM starts with. */
struct hsm_vm {
	const struct hsm_ops *ops;
	struct acrn_io_request_buffer *page;
	unsigned vcpu_num;
	/* Backends that run the HSM's rules in this process (sim, kvm): their
	 * dispatcher, behind the hsm_local_* ops below. NULL for acrn. */
	struct dispatch *local;
	/* Guest RAM (guestmem.h): -1 when the VM has none (sim without memory). */
	int mem_fd;
	uint64_t mem_size;
	uint8_t *mem; /* the backend's own shared mapping of all of mem_fd */
	unsigned n_regions;
	struct hsm_mem_region regions[HSM_MAX_MEM_REGIONS];
	/* The ioeventfd and irqfd registrations (hsm.c). */
	struct hsm_fds *fds;
};

/* For backends: @vm's common part, before anything can fail (no RAM, no
 * registrations). -ENOMEM. */
int hsm_vm_init(struct hsm_vm *vm, const struct hsm_ops *ops, unsigned vcpus);

/* For backends, last in their destroy, once nothing of theirs can touch
 * guest RAM or a registered eventfd any more: closes and unmaps them. */
void hsm_vm_release(struct hsm_vm *vm);

/* The default client's ops of a backend with a local dispatcher: the
 * ioctls of the ACRN HSM, as dispatch.h implements them (hsm_local.c). */
int hsm_local_create_client(struct hsm_vm *vm);
int hsm_local_attach(struct hsm_vm *vm, const _Atomic uint32_t *held);
void hsm_local_kick(struct hsm_vm *vm);
int hsm_local_complete(struct hsm_vm *vm, unsigned vcpu);
int hsm_local_clear(struct hsm_vm *vm);
int hsm_local_destroy_client(struct hsm_vm *vm);
/* The ioeventfd op: the dispatcher's in-HSM ioeventfd client. */
int hsm_local_ioeventfd(struct hsm_vm *vm, const struct hsm_ioeventfd *e, int fd, bool deassign);

/* NULL when @b is not built into this binary. */
const struct hsm_ops *hsm_backend_ops(enum hsm_backend b);

int hsm_create(enum hsm_backend b, const struct hsm_vm_params *p, struct hsm_vm **ret);

static inline int hsm_create_client(struct hsm_vm *vm)
{
	return vm->ops->create_client(vm);
}

static inline int hsm_start(struct hsm_vm *vm)
{
	return vm->ops->start(vm);
}

static inline int hsm_pause(struct hsm_vm *vm)
{
	return vm->ops->pause ? vm->ops->pause(vm) : -EOPNOTSUPP;
}

static inline int hsm_reset(struct hsm_vm *vm)
{
	return vm->ops->reset ? vm->ops->reset(vm) : -EOPNOTSUPP;
}

/* @held: vCPUs whose PROCESSING request the caller already holds, re-read
 * on every wake-up. Returns once a request of another vCPU is there: the
 * kernel's ATTACH is level-triggered, and a broker with requests in flight
 * must not spin on them. */
static inline int hsm_attach(struct hsm_vm *vm, const _Atomic uint32_t *held)
{
	return vm->ops->attach(vm, held);
}

/* Wakes hsm_attach to re-read @held: call after clearing a bit in it. */
static inline void hsm_kick(struct hsm_vm *vm)
{
	vm->ops->kick(vm);
}

static inline int hsm_complete(struct hsm_vm *vm, unsigned vcpu)
{
	return vm->ops->complete(vm, vcpu);
}

static inline int hsm_set_irqline(struct hsm_vm *vm, uint32_t gsi, enum hsm_irq_op op)
{
	return vm->ops->set_irqline(vm, gsi, op);
}

static inline int hsm_inject_msi(struct hsm_vm *vm, uint64_t addr, uint64_t data)
{
	return vm->ops->inject_msi(vm, addr, data);
}

static inline int hsm_clear(struct hsm_vm *vm)
{
	return vm->ops->clear(vm);
}

static inline int hsm_destroy_client(struct hsm_vm *vm)
{
	return vm->ops->destroy_client(vm);
}

/* Registers (or with @deassign, removes) an ioeventfd or an irqfd.
 * Callable from any thread while the VM exists. The HSM layer keeps its own
 * copy of @e->fd / @f->fd while registered, so the caller may close its
 * own; the registration is known by that fd number (deassign with the same
 * number and the same arguments). Each fd is registered once, as an
 * ioeventfd or an irqfd. Returns
 *   0;
 *   -EOPNOTSUPP  the backend cannot (acrn: an irqfd on a GSI line; the
 *                caller relays that eventfd itself);
 *   -EEXIST      assign: the fd is registered already, or (ioeventfd)
 *                another one has the same type and address and a value
 *                that can match the same write;
 *   -ENOENT      deassign: no registration of that fd with these arguments;
 *   -EBADF       assign: the fd is not open;
 *   -EINVAL      assign: not an eventfd; a bad type, size or range (a port
 *                range past 0xffff, MMIO inside guest RAM, a range that
 *                wraps, a datamatch value wider than the size); a GSI the
 *                backend has no line for (kvm: 0..23, sim: 0..255);
 *   or what the kernel answered (reported through the VM's report). */
int hsm_ioeventfd(struct hsm_vm *vm, const struct hsm_ioeventfd *e, bool deassign);
int hsm_irqfd(struct hsm_vm *vm, const struct hsm_irqfd *f, bool deassign);

/* Stops the guest and frees everything; NULL is fine. Returns NULL. */
struct hsm_vm *hsm_destroy(struct hsm_vm *vm);

#endif
