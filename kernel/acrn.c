/* The acrn backend: see acrn.h for the ioctl each op makes and in what order.
 *
 * Waiting for requests. ATTACH_IOREQ_CLIENT is the HSM's only wait, and it is
 * level-triggered: it returns at once while any request of the default
 * client is unfinished, and a signal makes it return 0 with nothing pending.
 * The broker holds requests while devices work on them, so a plain ATTACH
 * loop would spin. acrn_attach therefore returns only for a PROCESSING
 * request of a vCPU the broker does not hold. When only held ones are there
 * it sleeps on its kick word, which hsm_kick bumps whenever the broker lets
 * go of one, and asks ATTACH again after a bounded time, because the HSM
 * gives no edge for a new request of another vCPU. That bound is the price:
 * a request that arrives while another vCPU's is held can wait up to
 * ACRN_POLL_MIN_US (about two device round trips) if it comes soon after
 * the broker took one, up to ACRN_POLL_MAX_US once a slow device has held
 * one for a while; with fast devices the held request's own completion
 * wakes the thread first. It costs at most about a thousand ATTACH calls a
 * second, and only while requests are held.
 */
#include "acrn.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "boot.h"
#include "guestmem.h"

#define ACRN_PAGE_SIZE 4096u
#define ACRN_POLL_MIN_US 100
#define ACRN_POLL_MAX_US 1000

struct acrn_hsm_vm {
	struct hsm_vm base;
	char name[64];
	int fd;
	uint16_t vmid;
	bool created; /* DESTROY_VM is owed */
	bool paused;  /* by PAUSE_VM, until START_VM */
	char *image;  /* NULL: the hypervisor's configuration boots it */
	uint64_t entry;
	/* With an image: the port that stops the VM (acrn_exit_port). */
	bool has_exit_port;
	uint16_t exit_port;
	atomic_bool ended;
	hsm_stop_fn on_stop;
	/* Bumped by acrn_kick: the futex acrn_attach sleeps on. */
	_Atomic uint32_t kick;
	hsm_report_fn report;
	void *opaque;
};

static struct acrn_hsm_vm *to_acrn(struct hsm_vm *vm)
{
	return (struct acrn_hsm_vm *)vm;
}

static void acrn_report(struct acrn_hsm_vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void acrn_report(struct acrn_hsm_vm *vm, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	if (!vm->report)
		return;
	n = snprintf(line, sizeof(line), "vm %s: ", vm->name);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	vm->report(vm->opaque, line);
}

/* One ioctl on the VM's file; a failure is reported under @name. */
static int acrn_ioctl(struct acrn_hsm_vm *vm, unsigned long req, const char *name, unsigned long arg)
{
	int r;

	if (ioctl(vm->fd, req, arg) == 0)
		return 0;
	r = -errno;
	acrn_report(vm, "%s: %s", name, strerror(-r));
	return r;
}

/* The ioctl's macro name is what the operator reads in the report. */
#define ACRN_IOCTL(vm, req, arg) acrn_ioctl(vm, req, #req, (unsigned long)(arg))

static int acrn_pause(struct hsm_vm *base)
{
	struct acrn_hsm_vm *vm = to_acrn(base);
	int r = ACRN_IOCTL(vm, ACRN_IOCTL_PAUSE_VM, 0);

	if (r == 0)
		vm->paused = true;
	return r;
}

static void acrn_destroy(struct hsm_vm *base)
{
	struct acrn_hsm_vm *vm = to_acrn(base);
	bool destroyed = true;

	if (vm->created) {
		/* The hypervisor destroys only a paused VM; acrn-dm pauses too. */
		if (!vm->paused)
			acrn_pause(base);
		destroyed = ACRN_IOCTL(vm, ACRN_IOCTL_DESTROY_VM, 0) == 0;
	}
	/* Closing releases the VM in the HSM, which unpins the request page
	 * and guest RAM and drops its references to the eventfds. */
	if (vm->fd >= 0)
		close(vm->fd);
	/* A hypervisor VM that outlived DESTROY_VM may still write into the
	 * request page and RAM, which the HSM has unpinned: keep them ours,
	 * leaked. */
	if (destroyed)
		hsm_vm_release(&vm->base);
	if (vm->base.page != MAP_FAILED && destroyed)
		munmap(vm->base.page, ACRN_PAGE_SIZE);
	free(vm->image);
	free(vm);
}

/* Guest RAM, laid out as acrn-dm does: [0, 2 GiB), the rest from 4 GiB,
 * leaving the 32-bit PCI hole free. */
static int acrn_create_ram(struct acrn_hsm_vm *vm, uint64_t size)
{
	uint64_t low = size < ACRN_LOWMEM_LIMIT ? size : ACRN_LOWMEM_LIMIT;
	char note[256];
	int r;

	r = guestmem_create(&vm->base, vm->name, size, note, sizeof(note));
	if (note[0])
		acrn_report(vm, "%s", note);
	if (!r)
		r = guestmem_add_region(&vm->base, 0, low, 0);
	if (!r && size > low)
		r = guestmem_add_region(&vm->base, ACRN_HIGHMEM_BASE, size - low, low);
	return r;
}

/* acrn-dm's vm_map_memseg_vma: each region, read-write-execute, its pages
 * those of our shared mapping of the memfd (the HSM pins them). */
static int acrn_map_ram(struct acrn_hsm_vm *vm)
{
	int r = 0;

	for (unsigned i = 0; i < vm->base.n_regions && !r; i++) {
		const struct hsm_mem_region *m = &vm->base.regions[i];
		struct acrn_vm_memmap mm = {
			.type = ACRN_MEMMAP_RAM,
			.attr = ACRN_MEM_ACCESS_RWX,
			.user_vm_pa = m->gpa,
			.vma_base = (uintptr_t)vm->base.mem + m->offset,
			.len = m->size,
		};

		r = ACRN_IOCTL(vm, ACRN_IOCTL_SET_MEMSEG, &mm);
	}
	return r;
}

/* The image into the RAM at 0 (zeroed first: a reset starts from what the
 * guest ABI promises, not from the last run's memory). */
static int acrn_load_image(struct acrn_hsm_vm *vm)
{
	const struct hsm_mem_region *low = &vm->base.regions[0];
	char why[256];
	int r;

	memset(vm->base.mem, 0, vm->base.mem_size);
	r = boot_load(vm->image, vm->base.mem + low->offset, low->size, 1, &vm->entry, why, sizeof(why));
	if (r)
		acrn_report(vm, "%s", why);
	return r;
}

/* SET_VCPU_REGS for the boot vCPU: boot.h's 64-bit state, in the form the
 * hypervisor's set_vcpu_regs takes (it gives the data segments flat
 * protected-mode attributes itself; the other vCPUs wait for INIT/SIPI,
 * hence RSI = 1). */
static int acrn_set_boot_regs(struct acrn_hsm_vm *vm)
{
	struct acrn_vcpu_regs regs = { .vcpu_id = 0 };
	struct acrn_regs *r = &regs.vcpu_regs;
	struct boot_regs b;

	boot_regs(vm->entry, vm->base.regions[0].size, 0, 1, &b);
	r->gprs.rsp = b.rsp;
	r->gprs.rdi = b.rdi;
	r->gprs.rsi = b.rsi;
	r->gdt.base = b.gdt_base;
	r->gdt.limit = b.gdt_limit;
	r->rip = b.rip;
	r->cs_base = 0;
	r->cr0 = b.cr0;
	r->cr3 = b.cr3;
	r->cr4 = b.cr4;
	r->ia32_efer = b.efer;
	r->rflags = b.rflags;
	r->cs_ar = ACRN_CS_AR_CODE64;
	r->cs_limit = 0xffffffff;
	r->cs_sel = b.sel_code;
	r->ss_sel = r->ds_sel = r->es_sel = r->fs_sel = r->gs_sel = b.sel_data;
	return ACRN_IOCTL(vm, ACRN_IOCTL_SET_VCPU_REGS, &regs);
}

static int acrn_open(struct acrn_hsm_vm *vm)
{
	int r;

	vm->fd = open(ACRN_HSM_PATH, O_RDWR | O_CLOEXEC);
	if (vm->fd >= 0)
		return 0;
	r = -errno;
	if (r == -ENOENT)
		acrn_report(vm, ACRN_HSM_PATH ": %s: the acrn backend needs an ACRN Service VM", strerror(-r));
	else
		acrn_report(vm, ACRN_HSM_PATH ": %s", strerror(-r));
	return r;
}

static int acrn_create_vm(struct acrn_hsm_vm *vm, const struct hsm_vm_params *p)
{
	struct acrn_vm_creation cv = {
		/* Ignored by the hypervisor, which takes the count from the
		 * VM's configuration: checked below. */
		.vcpu_num = p->vcpus,
		.vm_flag = p->completion_polling ? ACRN_GUEST_FLAG_IO_COMPLETION_POLLING : 0,
		/* The HSM pins this page and hands it to the hypervisor. */
		.ioreq_buf = (uintptr_t)vm->base.page,
		/* 0: the pCPUs of the VM's configuration. */
		.cpu_affinity = 0,
	};
	int r;

	/* The 16 bytes once called uuid carry the name the hypervisor looks the
	 * VM's configuration up by (acrn-dm writes it there too). */
	memcpy(&cv.uuid, p->name, strlen(p->name));
	r = ACRN_IOCTL(vm, ACRN_IOCTL_CREATE_VM, &cv);
	if (r < 0)
		return r;
	vm->created = true;
	vm->vmid = cv.vmid;
	if (cv.vcpu_num != p->vcpus) {
		acrn_report(vm,
			    "the hypervisor gave it %u vCPUs, the configuration asks for %u (the count is the number "
			    "of pCPUs of the VM in the ACRN scenario)",
			    cv.vcpu_num, p->vcpus);
		return -EINVAL;
	}
	return 0;
}

static int acrn_create(const struct hsm_vm_params *p, struct hsm_vm **ret)
{
	struct acrn_hsm_vm *vm;
	int r;

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->base.page = MAP_FAILED;
	vm->fd = -1;
	vm->report = p->report;
	vm->on_stop = p->on_stop;
	vm->opaque = p->opaque;
	vm->has_exit_port = p->image != NULL;
	vm->exit_port = p->exit_port;
	snprintf(vm->name, sizeof(vm->name), "%s", p->name);
	r = hsm_vm_init(&vm->base, &acrn_ops, p->vcpus);
	if (r)
		goto err;
	if (strlen(p->name) > ACRN_VM_NAME_MAX) {
		acrn_report(vm, "ACRN takes names of at most %d characters: the hypervisor finds the VM's configuration by name",
			    ACRN_VM_NAME_MAX);
		r = -ENAMETOOLONG;
		goto err;
	}
	if (!p->memory || p->memory % ACRN_PAGE_SIZE) {
		acrn_report(vm, "guest RAM must be a non-zero multiple of %u bytes", ACRN_PAGE_SIZE);
		r = -EINVAL;
		goto err;
	}
	/* mmap: the request page must be page-aligned, since the HSM pins the
	 * whole page that contains it. */
	vm->base.page = mmap(NULL, ACRN_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vm->base.page == MAP_FAILED) {
		r = -errno;
		acrn_report(vm, "cannot map the request page: %s", strerror(-r));
		goto err;
	}
	r = acrn_create_ram(vm, p->memory);
	if (r < 0)
		goto err;
	/* The image first: a bad one is reported even where ACRN is missing. */
	if (p->image) {
		vm->image = strdup(p->image);
		r = vm->image ? acrn_load_image(vm) : -ENOMEM;
		if (r < 0)
			goto err;
	}
	r = acrn_open(vm);
	if (r < 0)
		goto err;
	r = acrn_create_vm(vm, p);
	if (r < 0)
		goto err;
	r = acrn_map_ram(vm);
	if (r == 0 && vm->image)
		r = acrn_set_boot_regs(vm);
	if (r < 0)
		goto err;
	*ret = &vm->base;
	return 0;
err:
	acrn_destroy(&vm->base);
	return r;
}

static int acrn_create_client(struct hsm_vm *base)
{
	return ACRN_IOCTL(to_acrn(base), ACRN_IOCTL_CREATE_IOREQ_CLIENT, 0);
}

static int acrn_start(struct hsm_vm *base)
{
	struct acrn_hsm_vm *vm = to_acrn(base);
	int r = ACRN_IOCTL(vm, ACRN_IOCTL_START_VM, 0);

	if (r == 0)
		vm->paused = false;
	return r;
}

/* acrn-dm's vm_system_reset after the devices: RESET_VM, then the software
 * reloaded and the boot vCPU's registers set again (the hypervisor's reset
 * put it back in real mode at the reset vector). */
static int acrn_reset(struct hsm_vm *base)
{
	struct acrn_hsm_vm *vm = to_acrn(base);
	int r = ACRN_IOCTL(vm, ACRN_IOCTL_RESET_VM, 0);

	/* Created again, not paused: destroying it now takes a PAUSE_VM. */
	if (r == 0) {
		vm->paused = false;
		atomic_store(&vm->ended, false);
	}
	if (r == 0 && vm->image)
		r = acrn_load_image(vm);
	if (r == 0 && vm->image)
		r = acrn_set_boot_regs(vm);
	return r;
}

static int acrn_complete(struct hsm_vm *base, unsigned vcpu)
{
	struct acrn_hsm_vm *vm = to_acrn(base);
	struct acrn_ioreq_notify n = { .vmid = vm->vmid, .vcpu = vcpu };

	return ACRN_IOCTL(vm, ACRN_IOCTL_NOTIFY_REQUEST_FINISH, &n);
}

/* The exit port of a VM booted from an image (the kvm backend's, kvm.h):
 * no device sees exit_port .. exit_port + 3; reads there return all ones,
 * and a write at exit_port stops the VM with the value written as its
 * status. Served here, on the thread that takes requests, before the broker
 * sees them: true when @req (vCPU @v's, not held) was one and is complete. */
static bool acrn_exit_port(struct acrn_hsm_vm *vm, unsigned v, struct acrn_io_request *req)
{
	struct acrn_pio_request *pio = &req->reqs.pio_request;

	if (!vm->has_exit_port || req->type != ACRN_IOREQ_TYPE_PORTIO || pio->address < vm->exit_port ||
	    pio->address > (uint64_t)vm->exit_port + 3)
		return false;
	if (pio->direction == ACRN_IOREQ_DIR_READ)
		pio->value = pio->size >= 4 ? UINT32_MAX : (1u << 8 * pio->size) - 1;
	else if (pio->address == vm->exit_port && !atomic_exchange(&vm->ended, true) && vm->on_stop)
		vm->on_stop(vm->opaque, (int)pio->value);
	acrn_complete(&vm->base, v);
	return true;
}

/* What the slots hold for the broker: a request it does not hold yet (1),
 * only requests it holds (0), or nothing at all (-1). */
static int acrn_scan(struct acrn_hsm_vm *vm, const _Atomic uint32_t *held)
{
	uint32_t h = atomic_load(held);
	int found = -1;

	for (unsigned v = 0; v < vm->base.vcpu_num; v++) {
		struct acrn_io_request *req = &vm->base.page->req_slot[v];

		/* acrn-dm's rule: PROCESSING and not taken by an in-HSM client. */
		if (__atomic_load_n(&req->processed, __ATOMIC_ACQUIRE) != ACRN_IOREQ_STATE_PROCESSING ||
		    __atomic_load_n(&req->kernel_handled, __ATOMIC_RELAXED))
			continue;
		if (!(h & 1u << v) && acrn_exit_port(vm, v, req))
			continue;
		if (!(h & 1u << v))
			return 1;
		found = 0;
	}
	return found;
}

static int acrn_attach(struct hsm_vm *base, const _Atomic uint32_t *held)
{
	struct acrn_hsm_vm *vm = to_acrn(base);
	long poll_us = ACRN_POLL_MIN_US;

	for (;;) {
		struct timespec ts;
		uint32_t kick;
		int found;

		if (ioctl(vm->fd, ACRN_IOCTL_ATTACH_IOREQ_CLIENT, 0) < 0) {
			int r = -errno;

			/* -ENODEV: the client was destroyed, the broker's cue to stop. */
			if (r != -ENODEV)
				acrn_report(vm, "ACRN_IOCTL_ATTACH_IOREQ_CLIENT: %s", strerror(-r));
			return r;
		}
		/* The kick count before *held: a kick after a change of *held
		 * then also changes it, and the wait below does not sleep. */
		kick = atomic_load(&vm->kick);
		found = acrn_scan(vm, held);
		if (found > 0)
			return 0;
		/* Nothing at all (a signal): ATTACH blocks again. */
		if (found < 0)
			continue;
		ts.tv_sec = 0;
		ts.tv_nsec = poll_us * 1000;
		syscall(SYS_futex, &vm->kick, FUTEX_WAIT_PRIVATE, kick, &ts, NULL, 0);
		poll_us = poll_us * 2 < ACRN_POLL_MAX_US ? poll_us * 2 : ACRN_POLL_MAX_US;
	}
}

static void acrn_kick(struct hsm_vm *base)
{
	struct acrn_hsm_vm *vm = to_acrn(base);

	atomic_fetch_add(&vm->kick, 1);
	syscall(SYS_futex, &vm->kick, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static int acrn_set_irqline(struct hsm_vm *base, uint32_t gsi, enum hsm_irq_op op)
{
	/* A u64 by value, not a pointer: gsi low, operation high. */
	return ACRN_IOCTL(to_acrn(base), ACRN_IOCTL_SET_IRQLINE, (uint64_t)op << 32 | gsi);
}

static int acrn_inject_msi(struct hsm_vm *base, uint64_t addr, uint64_t data)
{
	struct acrn_msi_entry msi = { .msi_addr = addr, .msi_data = data };

	return ACRN_IOCTL(to_acrn(base), ACRN_IOCTL_INJECT_MSI, &msi);
}

static int acrn_clear(struct hsm_vm *base)
{
	return ACRN_IOCTL(to_acrn(base), ACRN_IOCTL_CLEAR_VM_IOREQ, 0);
}

static int acrn_destroy_client(struct hsm_vm *base)
{
	struct acrn_hsm_vm *vm = to_acrn(base);

	/* acrn-dm pauses first: afterwards no vCPU posts a request that
	 * nobody would take. */
	if (!vm->paused)
		acrn_pause(base);
	return ACRN_IOCTL(vm, ACRN_IOCTL_DESTROY_IOREQ_CLIENT, 0);
}

static int acrn_ioeventfd(struct hsm_vm *base, const struct hsm_ioeventfd *e, int fd, bool deassign)
{
	struct acrn_ioeventfd io = {
		.fd = (uint32_t)fd,
		.flags = (e->type == ACRN_IOREQ_TYPE_PORTIO ? ACRN_IOEVENTFD_FLAG_PIO : 0) |
			 (e->datamatch ? ACRN_IOEVENTFD_FLAG_DATAMATCH : 0) | (deassign ? ACRN_IOEVENTFD_FLAG_DEASSIGN : 0),
		.addr = e->addr,
		.len = e->size,
		.data = e->data,
	};

	return ACRN_IOCTL(to_acrn(base), ACRN_IOCTL_IOEVENTFD, &io);
}

/* The HSM injects only MSIs from an eventfd (drivers/virt/acrn/irqfd.c). */
static int acrn_irqfd(struct hsm_vm *base, const struct hsm_irqfd *f, int fd, bool deassign)
{
	struct acrn_irqfd irq = {
		.fd = fd,
		.flags = deassign ? ACRN_IRQFD_FLAG_DEASSIGN : 0,
		.msi = { .msi_addr = f->msi_addr, .msi_data = f->msi_data },
	};

	if (!f->msi)
		return -EOPNOTSUPP;
	return ACRN_IOCTL(to_acrn(base), ACRN_IOCTL_IRQFD, &irq);
}

const struct hsm_ops acrn_ops = {
	.name = "acrn",
	.create = acrn_create,
	.create_client = acrn_create_client,
	.start = acrn_start,
	.pause = acrn_pause,
	.reset = acrn_reset,
	.attach = acrn_attach,
	.kick = acrn_kick,
	.complete = acrn_complete,
	.set_irqline = acrn_set_irqline,
	.inject_msi = acrn_inject_msi,
	.clear = acrn_clear,
	.destroy_client = acrn_destroy_client,
	.destroy = acrn_destroy,
	.ioeventfd = acrn_ioeventfd,
	.irqfd = acrn_irqfd,
};
