/* The HSM layer's common part: the backend table, and the ioeventfd and
 * irqfd registrations, which every backend keeps the same way. */
#include "hsm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acrn.h"
#include "dispatch.h"
#include "guestmem.h"
#include "kvm.h"
#include "sim.h"

static const struct hsm_ops *const backends[] = {
	[HSM_BACKEND_SIM] = &sim_ops,
	[HSM_BACKEND_KVM] = &kvm_ops,
	[HSM_BACKEND_ACRN] = &acrn_ops,
};

/* One registered eventfd. The caller's fd number is its name; ours is a
 * copy, so that a caller that closes its own cannot leave a backend
 * writing into whatever file gets that number next. */
struct hsm_reg {
	int caller;
	int fd;
	bool irq;
	union {
		struct hsm_ioeventfd e;
		struct hsm_irqfd f;
	};
};

struct hsm_fds {
	/* Serialises registrations, and the backend calls they make. */
	pthread_mutex_t lock;
	size_t n, cap;
	struct hsm_reg *regs;
};

const struct hsm_ops *hsm_backend_ops(enum hsm_backend b)
{
	if ((unsigned)b >= sizeof(backends) / sizeof(backends[0]))
		return NULL;
	return backends[b];
}

int hsm_create(enum hsm_backend b, const struct hsm_vm_params *p, struct hsm_vm **ret)
{
	const struct hsm_ops *ops = hsm_backend_ops(b);

	if (!ops)
		return -EOPNOTSUPP;
	if (p->vcpus < 1 || p->vcpus > ACRN_IO_REQUEST_MAX)
		return -EINVAL;
	return ops->create(p, ret);
}

struct hsm_vm *hsm_destroy(struct hsm_vm *vm)
{
	if (vm)
		vm->ops->destroy(vm);
	return NULL;
}

int hsm_vm_init(struct hsm_vm *vm, const struct hsm_ops *ops, unsigned vcpus)
{
	vm->ops = ops;
	vm->vcpu_num = vcpus;
	vm->mem_fd = -1;
	vm->fds = calloc(1, sizeof(*vm->fds));
	if (!vm->fds)
		return -ENOMEM;
	pthread_mutex_init(&vm->fds->lock, NULL);
	return 0;
}

void hsm_vm_release(struct hsm_vm *vm)
{
	struct hsm_fds *fds = vm->fds;

	if (fds) {
		for (size_t i = 0; i < fds->n; i++)
			close(fds->regs[i].fd);
		pthread_mutex_destroy(&fds->lock);
		free(fds->regs);
		free(fds);
		vm->fds = NULL;
	}
	guestmem_release(vm);
}

/* ---- registrations ---- */

static struct hsm_reg *hsm_find(struct hsm_fds *fds, int caller)
{
	for (size_t i = 0; i < fds->n; i++)
		if (fds->regs[i].caller == caller)
			return &fds->regs[i];
	return NULL;
}

static bool hsm_same_ioeventfd(const struct hsm_ioeventfd *a, const struct hsm_ioeventfd *b)
{
	return a->type == b->type && a->addr == b->addr && a->size == b->size && a->datamatch == b->datamatch &&
	       (!a->datamatch || a->data == b->data);
}

static bool hsm_same_irqfd(const struct hsm_irqfd *a, const struct hsm_irqfd *b)
{
	if (a->msi != b->msi)
		return false;
	return a->msi ? a->msi_addr == b->msi_addr && a->msi_data == b->msi_data : a->gsi == b->gsi;
}

/* Two doorbells one write could ring: the kernels refuse (KVM) or signal
 * only the first (ACRN); here it is an error on every backend. */
static bool hsm_doorbell_clash(struct hsm_fds *fds, const struct hsm_ioeventfd *e)
{
	for (size_t i = 0; i < fds->n; i++) {
		const struct hsm_reg *r = &fds->regs[i];

		if (!r->irq && r->e.type == e->type && r->e.addr == e->addr &&
		    (!r->e.datamatch || !e->datamatch || r->e.data == e->data))
			return true;
	}
	return false;
}

static bool hsm_overlaps_ram(const struct hsm_vm *vm, uint64_t addr, uint64_t size)
{
	for (unsigned i = 0; i < vm->n_regions; i++) {
		const struct hsm_mem_region *m = &vm->regions[i];

		if (addr < m->gpa + m->size && m->gpa < addr + size)
			return true;
	}
	return false;
}

static int hsm_check_ioeventfd(const struct hsm_vm *vm, const struct hsm_ioeventfd *e)
{
	if (e->type == ACRN_IOREQ_TYPE_PORTIO) {
		if (e->size != 1 && e->size != 2 && e->size != 4)
			return -EINVAL;
		if (e->addr > 0xffff || e->addr + e->size - 1 > 0xffff)
			return -EINVAL;
	} else if (e->type == ACRN_IOREQ_TYPE_MMIO) {
		if (e->size != 1 && e->size != 2 && e->size != 4 && e->size != 8)
			return -EINVAL;
		if (e->addr + e->size - 1 < e->addr)
			return -EINVAL;
		/* RAM never exits: the doorbell would never ring. */
		if (hsm_overlaps_ram(vm, e->addr, e->size))
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (e->datamatch && e->size < 8 && e->data > dispatch_all_ones(e->size))
		return -EINVAL;
	return 0;
}

/* Assign or deassign @want (an ioeventfd or an irqfd, as @irq says),
 * named by @caller, through @op. */
static int hsm_register(struct hsm_vm *vm, bool irq, int caller, const void *want, bool deassign)
{
	struct hsm_fds *fds = vm->fds;
	struct hsm_reg *reg;
	int fd = -1, r;

	pthread_mutex_lock(&fds->lock);
	reg = hsm_find(fds, caller);
	if (deassign) {
		if (!reg || reg->irq != irq ||
		    !(irq ? hsm_same_irqfd(&reg->f, want) : hsm_same_ioeventfd(&reg->e, want))) {
			r = -ENOENT;
			goto out;
		}
		r = irq ? vm->ops->irqfd(vm, &reg->f, reg->fd, true) : vm->ops->ioeventfd(vm, &reg->e, reg->fd, true);
		if (r < 0)
			goto out;
		close(reg->fd);
		*reg = fds->regs[--fds->n];
		goto out;
	}
	if (reg || (!irq && hsm_doorbell_clash(fds, want))) {
		r = -EEXIST;
		goto out;
	}
	if (fds->n == fds->cap) {
		size_t cap = fds->cap ? 2 * fds->cap : 16;
		struct hsm_reg *regs = realloc(fds->regs, cap * sizeof(*regs));

		if (!regs) {
			r = -ENOMEM;
			goto out;
		}
		fds->regs = regs;
		fds->cap = cap;
	}
	fd = fcntl(caller, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = irq ? vm->ops->irqfd(vm, want, fd, false) : vm->ops->ioeventfd(vm, want, fd, false);
	if (r < 0) {
		close(fd);
		goto out;
	}
	reg = &fds->regs[fds->n++];
	reg->caller = caller;
	reg->fd = fd;
	reg->irq = irq;
	if (irq)
		reg->f = *(const struct hsm_irqfd *)want;
	else
		reg->e = *(const struct hsm_ioeventfd *)want;
out:
	pthread_mutex_unlock(&fds->lock);
	return r;
}

int hsm_ioeventfd(struct hsm_vm *vm, const struct hsm_ioeventfd *e, bool deassign)
{
	int r;

	if (!vm->ops->ioeventfd)
		return -EOPNOTSUPP;
	if (!deassign) {
		r = dispatch_check_eventfd(e->fd);
		if (!r)
			r = hsm_check_ioeventfd(vm, e);
		if (r)
			return r;
	}
	return hsm_register(vm, false, e->fd, e, deassign);
}

int hsm_irqfd(struct hsm_vm *vm, const struct hsm_irqfd *f, bool deassign)
{
	int r;

	if (!vm->ops->irqfd)
		return -EOPNOTSUPP;
	if (!deassign) {
		r = dispatch_check_eventfd(f->fd);
		if (r)
			return r;
	}
	return hsm_register(vm, true, f->fd, f, deassign);
}
