#include "hsm.h"

#include <errno.h>
#include <stddef.h>

#include "acrn.h"
#include "kvm.h"
#include "sim.h"

static const struct hsm_ops *const backends[] = {
	[HSM_BACKEND_SIM] = &sim_ops,
	[HSM_BACKEND_KVM] = &kvm_ops,
	[HSM_BACKEND_ACRN] = &acrn_ops,
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
