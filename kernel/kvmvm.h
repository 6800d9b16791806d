/* A KVM VM whose vCPU exits go through a dispatcher: the hypervisor half
 * of the kvm backend, and of the fake ACRN HSM of the tests when it runs a
 * guest (tests/fake_hsm/). Each vCPU has a thread that runs KVM_RUN; each
 * PIO or MMIO exit is posted in the vCPU's slot of the dispatcher's page and
 * goes through it exactly as the ACRN hypervisor's upcall goes through the
 * HSM; the vCPU waits for its completion, then writes a read's value back.
 *
 * The in-kernel irqchip (8259 PICs, IOAPIC, a LAPIC per vCPU) and PIT exist
 * from the start; PIC interrupts reach vCPU 0 (its LINT0 is ExtINT). A vCPU
 * whose state was not set waits for INIT/SIPI, as the LAPIC makes it.
 *
 * Stopping: kvmvm_stop sets `stopping`, every vCPU's immediate_exit (for a
 * thread about to enter KVM_RUN) and signals the threads that run (for
 * those inside it). A vCPU waiting for its request sleeps in the
 * dispatcher: whoever stops the VM for good closes the dispatcher
 * (dispatch_close) before kvmvm_free joins the threads. */
#ifndef IOREQ_KVMVM_H
#define IOREQ_KVMVM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "hsm.h"

struct dispatch;
struct kvmvm;

struct kvmvm_params {
	const char *name; /* for reports: "vm NAME: ..." */
	struct dispatch *d;
	unsigned vcpus;
	bool polling; /* every request asks to be polled for */
	hsm_report_fn report;
	/* Once, from a vCPU thread, when a vCPU cannot go on (reported first:
	 * a triple fault, an unexpected exit); every vCPU is stopping then. */
	void (*crashed)(void *opaque);
	void *opaque;
};

/* Opens /dev/kvm, makes the VM with its irqchip and PIT and @p->vcpus
 * vCPUs, with the host's CPUID. Failures are reported. */
int kvmvm_create(const struct kvmvm_params *p, struct kvmvm **ret);

/* Guest-physical [@gpa, @gpa + @size) is @host (the next memory slot). */
int kvmvm_map(struct kvmvm *k, uint64_t gpa, uint64_t size, void *host);

/* vCPU @vcpu's state: @sregs starts as KVM_GET_SREGS gave it; the caller
 * changes what it sets. */
int kvmvm_get_sregs(struct kvmvm *k, unsigned vcpu, struct kvm_sregs *sregs);

/* Sets the state and makes the vCPU runnable (not waiting for a SIPI). */
int kvmvm_set_state(struct kvmvm *k, unsigned vcpu, const struct kvm_regs *regs, const struct kvm_sregs *sregs);

/* Starts a thread per vCPU. Call once. */
int kvmvm_start(struct kvmvm *k);

/* Makes every vCPU leave guest mode soon and never enter it again. Any
 * thread, any number of times. */
void kvmvm_stop(struct kvmvm *k);

/* KVM_IRQ_LINE. -EINVAL beyond the IOAPIC's pins. */
int kvmvm_irq_line(struct kvmvm *k, uint32_t gsi, uint32_t level);

/* KVM_SIGNAL_MSI: 0 delivered or blocked by the guest. */
int kvmvm_msi(struct kvmvm *k, uint64_t addr, uint32_t data);

/* KVM_IOEVENTFD for @e (checked by the caller), signalling @fd. */
int kvmvm_ioeventfd(struct kvmvm *k, const struct hsm_ioeventfd *e, int fd, bool deassign);

/* KVM_IRQFD: a line by its GSI, an MSI through a GSI routed to it
 * (KVM_SET_GSI_ROUTING). -EINVAL for a GSI past the IOAPIC's pins. */
int kvmvm_irqfd(struct kvmvm *k, const struct hsm_irqfd *f, int fd, bool deassign);

/* Joins the vCPU threads (stopping them first; none may be waiting for a
 * request any more: close the dispatcher) and frees everything. NULL is
 * fine; returns NULL. */
struct kvmvm *kvmvm_free(struct kvmvm *k);

#endif
