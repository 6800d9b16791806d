/* The kvm backend: real guest code on /dev/kvm, every port-I/O and MMIO exit
 * turned into an ioreq slot and routed by the ACRN HSM's rules (dispatch.h).
 *
 * The guest ABI (README.md, "Guests on the kvm backend"):
 *
 *  - RAM is [0, memory), at most KVM_RAM_MAX: the 32-bit MMIO hole above it
 *    and everything else is unbacked, so guest accesses there exit as MMIO.
 *  - The image is a static ELF64 x86-64 executable; its PT_LOAD segments are
 *    copied to their physical addresses (p_paddr), the rest of each segment
 *    (BSS) is zero, as is all other RAM. Segments must lie inside
 *    [KVM_RESERVED_END, memory - vcpus * KVM_STACK_SIZE).
 *  - [0, KVM_RESERVED_END) holds what the VMM sets up: a GDT at KVM_GDT_ADDR
 *    (null, 64-bit code KVM_SEL_CODE, data KVM_SEL_DATA), page tables at
 *    KVM_PML4_ADDR.. that identity-map the low 4 GiB with 2 MiB pages, every
 *    level present, writable and user-accessible (U), so ring 3 can use
 *    them as they are. The guest may replace all of it.
 *  - Every vCPU starts at e_entry at once, in 64-bit ring 0 (EFER.LME|LMA,
 *    CR0.PE|PG, CR4.PAE, CR3 = KVM_PML4_ADDR), RFLAGS = 0x2 (interrupts off),
 *    RDI = its index, RSI = the vCPU count, RSP = the top of its own stack:
 *    vCPU i's stack is the KVM_STACK_SIZE bytes below memory - i * KVM_STACK_SIZE.
 *  - The in-kernel irqchip (8259 PICs, IOAPIC, a LAPIC per vCPU) and PIT
 *    exist from the start; PIC interrupts reach vCPU 0 (its LINT0 is ExtINT).
 *  - A 1-, 2- or 4-byte write to the VM's exit port stops the VM with the
 *    value written as its exit status. The port's client covers exit_port ..
 *    exit_port + 3, so those ports never reach a device; reads return all
 *    ones.
 */
#ifndef IOREQ_KVM_H
#define IOREQ_KVM_H

#include "hsm.h"

#define KVM_GDT_ADDR 0x1000ull
#define KVM_PML4_ADDR 0x2000ull
#define KVM_RESERVED_END 0x8000ull
#define KVM_SEL_CODE 0x08
#define KVM_SEL_DATA 0x10
#define KVM_STACK_SIZE 0x10000ull
#define KVM_RAM_MAX 0xc0000000ull

/* The status a VM stops with when its guest crashed (see the report). */
#define KVM_CRASH_STATUS 255

extern const struct hsm_ops kvm_ops;

#endif
