/* Constants shared by the runtime's assembly and C. */
#ifndef GUEST_RTASM_H
#define GUEST_RTASM_H

/* GDT selectors; the kernel ones match the VMM's (kvm.h), so the runtime's
 * GDT can replace the VMM's without reloading CS. TSS i is at RT_SEL_TSS +
 * 16 * i. */
#define RT_SEL_KCODE 0x08
#define RT_SEL_KDATA 0x10
#define RT_SEL_UDATA 0x18
#define RT_SEL_UCODE 0x20
#define RT_SEL_TSS 0x28

/* The top of each vCPU's stack that ring 0 uses (TSS.rsp0). */
#define RT_KSTACK_SIZE 0x4000

/* Vectors with a stub: the 32 exceptions, the 16 PIC lines (0x20..0x2f)
 * and 16 MSI vectors (0x30..0x3f) that the local APIC delivers. */
#define RT_NR_VECTORS 64
#define RT_IRQ_VECTOR 0x20
#define RT_MSI_VECTOR 0x30
#define RT_MSI_VECTORS 16
/* The runtime's few ring-0 services are entered from ring 3 with int3 (RDI
 * = which): KVM-PVM answers `int $n` in ring 3 with #UD, but delivers #BP
 * through a DPL-3 gate. No guest uses breakpoints. */
#define RT_SYSCALL_VECTOR 3
#define RT_SYS_WAIT 1 /* RSI = flag: halt until it is non-zero */
#define RT_SYS_PARK 2 /* halt for good */

#endif
