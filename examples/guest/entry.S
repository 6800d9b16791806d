/* The guest's first instructions and its ring crossings.
 *
 * The VMM starts every vCPU here in 64-bit ring 0 with RDI = vCPU index,
 * RSI = vCPU count, RSP = the top of the vCPU's stack (kvm.h). Ring 0 is
 * emulated on KVM-PVM, so it only calls rt_setup and leaves for ring 3. */
#include "rtasm.h"

	.section .text.entry, "ax"
	.globl _start
_start:
	mov	%rdi, %r12
	mov	%rsi, %r13
	mov	%rsp, %r14
	mov	%rsp, %rdx
	call	rt_setup		/* (cpu, ncpus, stack top) */

	/* iretq into ring 3: IOPL 3 so port I/O needs no more exits than
	 * the access itself, interrupts on. */
	pushq	$(RT_SEL_UDATA | 3)
	lea	-RT_KSTACK_SIZE(%r14), %rax
	pushq	%rax
	pushq	$0x3202
	pushq	$(RT_SEL_UCODE | 3)
	pushq	$rt_user_start
	mov	%r12, %rdi
	mov	%r13, %rsi
	iretq

rt_user_start:
	call	rt_user_main		/* (cpu, ncpus): never returns */
	ud2

/* Interrupt and exception entry: one stub per vector pushes a dummy error
 * code where the CPU pushes none, then the vector; rt_trap gets the frame.
 * The CPU aligns RSP to 16 before its 48 bytes (with the error code), so
 * after the vector and 15 registers the call sees an aligned stack. */
.macro	VECTOR n, has_error
	.p2align 4
rt_vector_\n:
	.if	!\has_error
	pushq	$0
	.endif
	pushq	$\n
	jmp	rt_trap_common
.endm

.macro	VECTOR_AUTO n
	.if	\n == 8 || (\n >= 10 && \n <= 14) || \n == 17 || \n == 21 || \n == 29 || \n == 30
	VECTOR	\n, 1
	.else
	VECTOR	\n, 0
	.endif
.endm

	.text
.altmacro
.set	n, 0
.rept	RT_NR_VECTORS
	VECTOR_AUTO %n
	.set	n, n + 1
.endr

rt_trap_common:
	cld
	pushq	%rax
	pushq	%rbx
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%rbp
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	mov	%rsp, %rdi
	call	rt_trap
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rbp
	popq	%rdi
	popq	%rsi
	popq	%rdx
	popq	%rcx
	popq	%rbx
	popq	%rax
	add	$16, %rsp		/* the vector and the error code */
	iretq

/* The stubs' addresses, for rt_setup to build the IDT from. */
.macro	VECTOR_ADDR n
	.quad	rt_vector_\n
.endm

	.section .rodata
	.p2align 3
	.globl	rt_vectors
rt_vectors:
.set	n, 0
.rept	RT_NR_VECTORS
	VECTOR_ADDR %n
	.set	n, n + 1
.endr

	.section .note.GNU-stack, "", @progbits
