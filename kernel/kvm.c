/* The kvm backend: guest RAM (guestmem.h), the image booted as boot.h says,
 * a KVM VM whose exits go through this VM's dispatcher (kvmvm.h), and the
 * exit port as an in-HSM client.
 *
 * Stopping: whoever stops the VM (the exit port, a crash, hsm_destroy) stops
 * every vCPU (kvmvm_stop). A vCPU waiting for its request sleeps in the
 * dispatcher; hsm_destroy closes the dispatcher, which completes those and
 * every later request at once, before it joins the vCPU threads. */
#include "kvm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot.h"
#include "dispatch.h"
#include "guestmem.h"
#include "kvmvm.h"

struct kvm_guest {
	struct hsm_vm base;
	char name[32];
	struct dispatch d;
	struct kvmvm *k;
	uint64_t entry;
	uint16_t exit_port;
	hsm_stop_fn on_stop;
	hsm_report_fn report;
	void *opaque;
	_Atomic bool ended; /* on_stop was called, or will never be */
};

static struct kvm_guest *to_guest(struct hsm_vm *vm)
{
	return (struct kvm_guest *)vm;
}

static void kvm_report(struct kvm_guest *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void kvm_report(struct kvm_guest *g, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	if (!g->report)
		return;
	n = snprintf(line, sizeof(line), "vm %s: ", g->name);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	g->report(g->opaque, line);
}

/* The guest stopped by itself: tell the broker once. */
static void kvm_end(struct kvm_guest *g, int status)
{
	if (atomic_exchange(&g->ended, true))
		return;
	kvmvm_stop(g->k);
	if (g->on_stop)
		g->on_stop(g->opaque, status);
}

static void kvm_crashed(void *opaque)
{
	kvm_end(opaque, KVM_CRASH_STATUS);
}

/* The in-HSM client of the exit port: a write there stops the VM. */
static void kvm_exit_port(void *priv, unsigned vcpu, struct acrn_io_request *req)
{
	struct kvm_guest *g = priv;
	struct acrn_pio_request *pio = &req->reqs.pio_request;

	if (pio->direction == ACRN_IOREQ_DIR_READ)
		pio->value = (uint32_t)dispatch_all_ones(pio->size);
	else if (pio->address == g->exit_port)
		kvm_end(g, (int)pio->value);
}

static int kvm_setup_memory(struct kvm_guest *g, uint64_t size)
{
	char note[256];
	int r;

	if (size > KVM_RAM_MAX || size % 4096 || !size) {
		kvm_report(g, "memory 0x%llx: must be a non-zero multiple of 4K and stay below 0x%llx",
			   (unsigned long long)size, KVM_RAM_MAX);
		return -EINVAL;
	}
	r = guestmem_create(&g->base, g->name, size, note, sizeof(note));
	if (note[0])
		kvm_report(g, "%s", note);
	if (!r)
		r = guestmem_add_region(&g->base, 0, size, 0);
	return r;
}

/* 64-bit mode from the first instruction: the state boot.h promises. */
static int kvm_cpu_init_state(struct kvm_guest *g, unsigned vcpu)
{
	struct kvm_segment code = {
		.limit = 0xffffffff,
		.selector = BOOT_SEL_CODE,
		.type = 11, /* execute/read, accessed */
		.present = 1,
		.s = 1,
		.l = 1,
		.g = 1,
	};
	struct kvm_segment data = {
		.limit = 0xffffffff,
		.selector = BOOT_SEL_DATA,
		.type = 3, /* read/write, accessed */
		.present = 1,
		.db = 1,
		.s = 1,
		.g = 1,
	};
	struct boot_regs b;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	int r;

	boot_regs(g->entry, g->base.mem_size, vcpu, g->base.vcpu_num, &b);
	r = kvmvm_get_sregs(g->k, vcpu, &sregs);
	if (r)
		return r;
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.gdt.base = b.gdt_base;
	sregs.gdt.limit = b.gdt_limit;
	sregs.cr0 = b.cr0;
	sregs.cr3 = b.cr3;
	sregs.cr4 = b.cr4;
	sregs.efer = b.efer;
	regs = (struct kvm_regs){ .rip = b.rip, .rsp = b.rsp, .rdi = b.rdi, .rsi = b.rsi, .rflags = b.rflags };
	return kvmvm_set_state(g->k, vcpu, &regs, &sregs);
}

static void kvm_destroy(struct hsm_vm *base)
{
	struct kvm_guest *g = to_guest(base);

	/* No on_stop once the broker takes the VM down. */
	atomic_store(&g->ended, true);
	if (g->k)
		kvmvm_stop(g->k);
	/* What a vCPU waits for, and whatever it posts on its way out (the
	 * rest of a string I/O or an MMIO split), completes at once. */
	dispatch_close(&g->d);
	g->k = kvmvm_free(g->k);
	hsm_vm_release(&g->base);
	free(g->base.page);
	free(g);
}

static int kvm_create(const struct hsm_vm_params *p, struct hsm_vm **ret)
{
	struct kvmvm_params kp = {
		.name = p->name,
		.vcpus = p->vcpus,
		.report = p->report,
		.crashed = kvm_crashed,
	};
	struct kvm_guest *g;
	char why[256];
	int r;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->exit_port = p->exit_port;
	g->on_stop = p->on_stop;
	g->report = p->report;
	g->opaque = p->opaque;
	snprintf(g->name, sizeof(g->name), "%s", p->name);
	r = hsm_vm_init(&g->base, &kvm_ops, p->vcpus);
	if (r)
		goto err;
	g->base.page = aligned_alloc(4096, sizeof(*g->base.page));
	if (!g->base.page) {
		r = -ENOMEM;
		goto err;
	}
	g->base.local = &g->d;
	r = dispatch_init(&g->d, g->base.page, p->vcpus);
	if (r)
		goto err;
	/* Four ports, so that 2- and 4-byte writes fall inside its range. */
	r = dispatch_add_client(&g->d, "exit", ACRN_IOREQ_TYPE_PORTIO, p->exit_port,
				p->exit_port > 0xfffc ? 0xffff : p->exit_port + 3u, kvm_exit_port, g);
	if (r)
		goto err;
	if (!p->image) {
		kvm_report(g, "no guest image");
		r = -EINVAL;
		goto err;
	}
	/* The image first: a bad one is reported even where KVM is missing. */
	r = kvm_setup_memory(g, p->memory);
	if (r)
		goto err;
	r = boot_load(p->image, g->base.mem, g->base.mem_size, p->vcpus, &g->entry, why, sizeof(why));
	if (r) {
		kvm_report(g, "%s", why);
		goto err;
	}
	kp.d = &g->d;
	kp.opaque = g;
	r = kvmvm_create(&kp, &g->k);
	if (!r)
		r = kvmvm_map(g->k, 0, g->base.mem_size, g->base.mem);
	for (unsigned i = 0; !r && i < p->vcpus; i++)
		r = kvm_cpu_init_state(g, i);
	if (r)
		goto err;
	*ret = &g->base;
	return 0;
err:
	kvm_destroy(&g->base);
	return r;
}

static int kvm_start(struct hsm_vm *base)
{
	return kvmvm_start(to_guest(base)->k);
}

static int kvm_set_irqline(struct hsm_vm *base, uint32_t gsi, enum hsm_irq_op op)
{
	/* SET_IRQLINE's operations as levels; a pulse is two. */
	static const struct {
		uint8_t first, second, pulse;
	} levels[] = {
		[HSM_IRQ_ASSERT] = { 1, 0, 0 },
		[HSM_IRQ_DEASSERT] = { 0, 0, 0 },
		[HSM_IRQ_PULSE_HIGH] = { 1, 0, 1 },
		[HSM_IRQ_PULSE_LOW] = { 0, 1, 1 },
	};
	struct kvm_guest *g = to_guest(base);
	int r;

	if (op > HSM_IRQ_PULSE_LOW)
		return -EINVAL;
	r = kvmvm_irq_line(g->k, gsi, levels[op].first);
	if (!r && levels[op].pulse)
		r = kvmvm_irq_line(g->k, gsi, levels[op].second);
	return r;
}

static int kvm_inject_msi(struct hsm_vm *base, uint64_t addr, uint64_t data)
{
	if (data > UINT32_MAX)
		return -EINVAL;
	return kvmvm_msi(to_guest(base)->k, addr, (uint32_t)data);
}

/* KVM takes the writes that match in the kernel; the dispatcher's client
 * takes the rest of the range, as the HSM would. */
static int kvm_ioeventfd(struct hsm_vm *base, const struct hsm_ioeventfd *e, int fd, bool deassign)
{
	struct kvm_guest *g = to_guest(base);
	int r;

	if (deassign) {
		r = kvmvm_ioeventfd(g->k, e, fd, true);
		if (!r)
			hsm_local_ioeventfd(base, e, fd, true);
		return r;
	}
	r = hsm_local_ioeventfd(base, e, fd, false);
	if (r)
		return r;
	r = kvmvm_ioeventfd(g->k, e, fd, false);
	if (r)
		hsm_local_ioeventfd(base, e, fd, true);
	return r;
}

static int kvm_irqfd(struct hsm_vm *base, const struct hsm_irqfd *f, int fd, bool deassign)
{
	return kvmvm_irqfd(to_guest(base)->k, f, fd, deassign);
}

const struct hsm_ops kvm_ops = {
	.name = "kvm",
	.create = kvm_create,
	.create_client = hsm_local_create_client,
	.start = kvm_start,
	.attach = hsm_local_attach,
	.kick = hsm_local_kick,
	.complete = hsm_local_complete,
	.set_irqline = kvm_set_irqline,
	.inject_msi = kvm_inject_msi,
	.clear = hsm_local_clear,
	.destroy_client = hsm_local_destroy_client,
	.destroy = kvm_destroy,
	.ioeventfd = kvm_ioeventfd,
	.irqfd = kvm_irqfd,
};
