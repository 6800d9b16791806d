/* The acrn backend: the real ACRN HSM (/dev/acrn_hsm), driven the way ACRN's
 * device model, acrn-dm, drives it.
 *
 *   create         guest RAM (guestmem.h) and, with an image, the image
 *                  loaded as boot.h says; open (one VM per open file),
 *                  CREATE_VM with the request page and the VM's name,
 *                  SET_MEMSEG (RAM, its vma_base the memfd's mapping) per
 *                  region, with an image SET_VCPU_REGS for the boot vCPU
 *   create_client  CREATE_IOREQ_CLIENT
 *   start          START_VM
 *   attach         ATTACH_IOREQ_CLIENT, until a request the broker does not
 *                  hold is PROCESSING (see acrn.c for the cost)
 *   complete       NOTIFY_REQUEST_FINISH {vmid, 0, vcpu}
 *   set_irqline    SET_IRQLINE (gsi | op << 32, by value), inject_msi INJECT_MSI
 *   pause, clear,  PAUSE_VM, CLEAR_VM_IOREQ, RESET_VM: acrn-dm's reset is
 *   reset          pause, clear, reset the devices, reset, start; with an
 *                  image reset also reloads it (RAM zeroed first) and sets
 *                  the boot vCPU's registers again, as acrn-dm does
 *   ioeventfd      IOEVENTFD (the HSM's ioeventfd client)
 *   irqfd          IRQFD for an MSI; -EOPNOTSUPP for a GSI line, which the
 *                  HSM has no irqfd for
 *   destroy_client PAUSE_VM unless paused, DESTROY_IOREQ_CLIENT (acrn-dm's
 *                  shutdown: no vCPU may post a request nobody will take)
 *   destroy        PAUSE_VM unless paused (the hypervisor destroys only a
 *                  paused VM), DESTROY_VM, close, unmap
 *
 * Every failed ioctl is reported through the VM's report callback with the
 * ioctl's name, the VM's name and errno, and returned.
 *
 * The hypervisor finds a post-launched VM's configuration (its pCPUs, hence
 * its vCPU count) by name: the VM must be declared in the ACRN scenario under
 * the same name, with as many pCPUs as the broker's configuration has vCPUs.
 */
#ifndef IOREQ_ACRN_H
#define IOREQ_ACRN_H

#include "hsm.h"

#define ACRN_HSM_PATH "/dev/acrn_hsm"

/* CREATE_VM's vm_flag bit for completion polling: the vCPU spins until its
 * slot is COMPLETE and NOTIFY_REQUEST_FINISH makes no hypercall.
 * <linux/acrn.h> passes vm_flag to the hypervisor without naming its bits;
 * this is GUEST_FLAG_IO_COMPLETION_POLLING of the hypervisor's public
 * header (acrn-hypervisor hypervisor/include/public/acrn_common.h). */
#define ACRN_GUEST_FLAG_IO_COMPLETION_POLLING (1ull << 2)

/* The longest name CREATE_VM carries: 16 bytes with the NUL
 * (MAX_VM_NAME_LEN in acrn-hypervisor; acrn-dm refuses longer names). */
#define ACRN_VM_NAME_MAX 15

/* Guest RAM sits at 0 up to this limit, the rest from ACRN_HIGHMEM_BASE,
 * leaving the 32-bit PCI hole free as acrn-dm does. */
#define ACRN_LOWMEM_LIMIT 0x80000000ull
#define ACRN_HIGHMEM_BASE 0x100000000ull

/* The boot vCPU's code segment in 64-bit mode, in the VMX access-rights
 * format the hypervisor loads cs_ar into (acrn-hypervisor set_vcpu_regs):
 * type 0xb (execute/read, accessed), S, DPL 0, present, L (bit 13), G
 * (bit 15); bits 11:8 are reserved and must be 0. */
#define ACRN_CS_AR_CODE64 0xa09bu

extern const struct hsm_ops acrn_ops;

#endif
