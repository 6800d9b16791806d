/* The kvm backend: real guest code on /dev/kvm (kvmvm.h), every port-I/O and
 * MMIO exit turned into an ioreq slot and routed by the ACRN HSM's rules
 * (dispatch.h).
 *
 * The guest ABI is boot.h's, with:
 *
 *  - RAM is one region [0, memory), memory at most KVM_RAM_MAX: the 32-bit
 *    MMIO hole above it and everything else is unbacked, so guest accesses
 *    there exit as MMIO.
 *  - Every vCPU starts at the image's entry at once (RSI = the VM's vCPU
 *    count).
 *  - The in-kernel irqchip (8259 PICs, IOAPIC, a LAPIC per vCPU) and PIT
 *    exist from the start; PIC interrupts reach vCPU 0 (its LINT0 is ExtINT).
 *  - A 1-, 2- or 4-byte write to the VM's exit port stops the VM with the
 *    value written as its exit status. The port's client covers exit_port ..
 *    exit_port + 3, so those ports never reach a device; reads return all
 *    ones.
 *  - ioeventfds are KVM_IOEVENTFDs (a matching write never leaves the
 *    kernel) and registrations of the dispatcher's ioeventfd client, which
 *    takes the rest of their ranges by the HSM's rules; irqfds are
 *    KVM_IRQFDs, an MSI's through a GSI routed to it.
 */
#ifndef IOREQ_KVM_H
#define IOREQ_KVM_H

#include "hsm.h"

#define KVM_RAM_MAX 0xc0000000ull

/* The status a VM stops with when its guest crashed (see the report). */
#define KVM_CRASH_STATUS 255

extern const struct hsm_ops kvm_ops;

#endif
