/* The default client's ops for backends that run the HSM's dispatch rules
 * in this process (sim, kvm): each is the ioctl's counterpart in dispatch.h. */
#include "dispatch.h"
#include "hsm.h"

int hsm_local_create_client(struct hsm_vm *vm)
{
	return dispatch_create_default(vm->local);
}

int hsm_local_attach(struct hsm_vm *vm, const _Atomic uint32_t *held)
{
	return dispatch_attach_except(vm->local, held);
}

void hsm_local_kick(struct hsm_vm *vm)
{
	dispatch_kick(vm->local);
}

int hsm_local_complete(struct hsm_vm *vm, unsigned vcpu)
{
	return dispatch_notify(vm->local, vcpu);
}

int hsm_local_clear(struct hsm_vm *vm)
{
	dispatch_clear(vm->local, DISPATCH_CLEAR_TIMEOUT_MS);
	return 0;
}

int hsm_local_destroy_client(struct hsm_vm *vm)
{
	return dispatch_destroy_default(vm->local);
}

/* The dispatcher's own ioeventfd client (drivers/virt/acrn/ioeventfd.c). */
int hsm_local_ioeventfd(struct hsm_vm *vm, const struct hsm_ioeventfd *e, int fd, bool deassign)
{
	struct dispatch_ioeventfd de = {
		.fd = fd,
		.type = e->type,
		.addr = e->addr,
		.len = e->size,
		.wildcard = !e->datamatch,
		.data = e->data,
	};
	int r;

	if (!deassign)
		return dispatch_ioeventfd_assign(vm->local, &de);
	r = dispatch_ioeventfd_deassign(vm->local, fd);
	return r < 0 ? r : 0;
}
