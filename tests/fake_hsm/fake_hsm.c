/* A fake /dev/acrn_hsm for tests, loaded with LD_PRELOAD: ACRN cannot run
 * on the test machines, so this stands in for the HSM driver and the
 * hypervisor behind it, built from the project's own dispatcher
 * (kernel/dispatch.c) and scripted vCPUs (kernel/sim.c).
 *
 * It intercepts open/openat of "/dev/acrn_hsm" (handing out a memfd, so that
 * close and fcntl work), ioctl and close on those fds; everything else goes
 * to libc. Each open file is one VM, as in the driver. The ioctls follow
 * drivers/virt/acrn/hsm.c, with the checks the driver makes:
 *  - every ioctl but CREATE_VM returns -EINVAL before CREATE_VM succeeded
 *    (and after DESTROY_VM);
 *  - CREATE_VM: reserved0/reserved1 must be 0 (-EINVAL); a second
 *    CREATE_VM finds the request page set (-EEXIST inside the driver),
 *    returns -EINVAL and leaves the file without a VM, as the driver does;
 *  - CREATE_IOREQ_CLIENT: -EEXIST when the default client exists;
 *  - ATTACH_IOREQ_CLIENT: -ENODEV without a client or once it is destroyed;
 *    level-triggered; a signal ends it with 0, possibly with nothing pending;
 *  - NOTIFY_REQUEST_FINISH: reserved must be 0 (-EINVAL); without a client,
 *    0 and nothing done; vcpu (truncated to u16, as the driver does) must be
 *    below vcpu_num (-EINVAL);
 *  - DESTROY_IOREQ_CLIENT: 0 even without a client;
 *  - SET_MEMSEG: type RAM or MMIO (-EINVAL); RAM must be mapped and
 *    writable (pin_user_pages with FOLL_WRITE: -EFAULT) and at most 256
 *    mappings (-ENOMEM);
 *  - SET_VCPU_REGS: every reserved field 0 (-EINVAL); the hypervisor
 *    refuses (-EPERM) a running VM, a vcpu_id it did not create, and a
 *    CR0 or CR4 with reserved bits (is_valid_cr0_cr4: CR0.NE set, nothing
 *    outside PE MP EM TS ET NE WP AM NW CD PG; CR4 nothing outside the bits
 *    a guest may set, VMXE included);
 *  - IOEVENTFD: reserved 0 (-EINVAL), then acrn_ioeventfd_config: a length
 *    of 1, 2, 4 or 8 and no wrap (-EINVAL), an eventfd (-EBADF, -EINVAL),
 *    no conflict (-EEXIST); deassign by eventfd, 0 even when it finds none;
 *    the dispatcher's ioeventfd client does the rest (dispatch.h);
 *  - IRQFD: an eventfd (-EBADF, -EINVAL), the same eventfd twice -EBUSY,
 *    injected at once if already written; deassign by eventfd, 0 even when
 *    it finds none; the MSI is injected from the eventfd (kernel/irqfd.h);
 *  - unknown ioctls: -ENOTTY; so are those the broker does not use
 *    (UNSET_MEMSEG, ASSIGN_PCIDEV, ...), so that a broker that starts to use
 *    one fails loudly here until the fake learns it;
 * and those the hypervisor makes: START_VM only for a created (or reset)
 * VM, RESET_VM and DESTROY_VM only for a paused one (its -1 reaches user
 * space as -EPERM; a refused DESTROY_VM has already destroyed the client).
 * Stricter than the driver, to catch broker bugs, and marked "fake:" in
 * the log: the request page and RAM must be whole, mapped pages (the driver
 * would silently use the page around them), a NOTIFY for a vCPU with
 * nothing pending or with another VM's vmid is flagged, and SET_VCPU_REGS
 * refuses (-EINVAL) a cs_ar with its reserved bits 11:8 set, on which VM
 * entry would fail (the hypervisor would stop).
 *
 * The broker's request page becomes the dispatcher's page, the broker's
 * RAM (SET_MEMSEG's vma_base, in this process) the guest's. The vCPUs are
 * either scripted or real:
 *  - with FAKE_HSM_SCRIPTS, they run the scripts it names (paths separated
 *    by ':', an empty entry for an idle vCPU; the same for every VM) from
 *    START_VM on; their mem statements see the RAM of the VM's SET_MEMSEGs
 *    (checked at START_VM: -EINVAL, reported, for a statement outside it);
 *    PAUSE_VM stops them before their next access, RESET_VM makes them
 *    start over;
 *  - without, if SET_VCPU_REGS set the boot vCPU's registers, START_VM
 *    runs the guest on /dev/kvm as the hypervisor would: the SET_MEMSEGs as
 *    its memory, the registers as the hypervisor's set_vcpu_regs applies
 *    them (data segments flat, TR and LDTR its defaults), the other vCPUs
 *    waiting for INIT/SIPI, the irqchip of KVM, every PIO and MMIO exit
 *    through the dispatcher. START_VM fails (-ENODEV, "fake:") without
 *    /dev/kvm; PAUSE_VM stops the guest for good and RESET_VM is refused
 *    (-EOPNOTSUPP, "fake:"): the fake cannot reset a KVM guest;
 *  - otherwise they idle.
 * completion_polling from CREATE_VM's vm_flag is honoured: every request
 * asks for polling, NOTIFY then wakes nobody and the vCPU spins.
 * FAKE_HSM_VCPU_NUM, if set, is the vCPU count "the hypervisor's
 * configuration" gives every VM; otherwise CREATE_VM's vcpu_num is taken.
 *
 * Every ioctl is recorded in FAKE_HSM_LOG, one line each, written when it
 * returns: "hsmN NAME ARGS = RESULT", N counting opens from 1, plus "hsmN
 * OPEN ..." and "hsmN CLOSE". FAKE_HSM_RESULT gets each script mismatch as
 * the sim backend reports it, and when every vCPU of a VM has reached the
 * end of its script: "hsmN vm NAME: scripts ended: A accesses, M
 * mismatches, completion by polling|notification" (stderr if unset).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/acrn.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include <sys/stat.h>

#include "acrn.h"
#include "dispatch.h"
#include "irqfd.h"
#include "kvmvm.h"
#include "sim.h"

#define FAKE_EXPORT __attribute__((visibility("default")))
#define FAKE_PATH ACRN_HSM_PATH
#define FAKE_MAX_FDS 4096
#define FAKE_PAGE 4096ull
/* ACRN_MEM_MAPPING_MAX in the driver. */
#define FAKE_MAX_MAPPINGS 256
#define FAKE_LINE 512
#define FAKE_MAX_IRQFDS 256

/* The hypervisor's view of the VM. */
enum fake_state {
	FAKE_CREATED,
	FAKE_RUNNING,
	FAKE_PAUSED,
};

struct fake_vm {
	unsigned serial;
	int refs; /* under fake_lock: the table's and each ioctl's */
	/* Serialises everything but ATTACH and NOTIFY, which the dispatcher
	 * makes safe on their own, as the driver's locks do. */
	pthread_mutex_t lock;
	bool valid; /* vmid != ACRN_INVALID_VMID */
	bool has_buf;
	uint16_t vmid;
	char name[17];
	enum fake_state state;
	bool polling;
	bool scripted; /* FAKE_HSM_SCRIPTS named scripts */
	unsigned mappings;
	/* RAM, as SET_MEMSEG mapped it. */
	struct sim_mem_region ram[FAKE_MAX_MAPPINGS];
	/* SET_VCPU_REGS, per vCPU; only the boot vCPU's run. */
	bool has_regs[ACRN_IO_REQUEST_MAX];
	struct acrn_regs regs[ACRN_IO_REQUEST_MAX];
	struct dispatch d;
	struct sim_cpus *cpus;
	/* The guest, when it runs on /dev/kvm: published once it is whole,
	 * for the irqfd relay's thread, which reads it without the lock. */
	struct kvmvm *_Atomic kvm;
	/* The HSM's references to the eventfds of its irqfds (the relay's). */
	struct irqfd_relay *irqfds;
	unsigned n_irqfds;
	int irqfd_fds[FAKE_MAX_IRQFDS];
};

static struct {
	int (*open)(const char *, int, ...);
	int (*open64)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*openat64)(int, const char *, int, ...);
	int (*close)(int);
	int (*ioctl)(int, unsigned long, ...);
} real;

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_vm *fake_fds[FAKE_MAX_FDS];
static unsigned fake_opens;
static int fake_log_fd = -1, fake_result_fd = -1;

/* Resolved before main: the intercepted calls themselves must not need
 * dlsym, which may allocate, in a process that is already sandboxed. */
__attribute__((constructor)) static void fake_init(void)
{
	/* The fake belongs to this process: the device processes it spawns,
	 * each in a sandbox with a root of its own, must not try to load it. */
	unsetenv("LD_PRELOAD");
	real.open = dlsym(RTLD_NEXT, "open");
	real.open64 = dlsym(RTLD_NEXT, "open64");
	real.openat = dlsym(RTLD_NEXT, "openat");
	real.openat64 = dlsym(RTLD_NEXT, "openat64");
	real.close = dlsym(RTLD_NEXT, "close");
	real.ioctl = dlsym(RTLD_NEXT, "ioctl");
}

/* ---- output ---- */

/* Under fake_lock, at the first open of the device. */
static int fake_open_output(const char *var)
{
	const char *path = getenv(var);

	if (!path || !*path)
		return -1;
	return real.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/* One write per line: lines of concurrent ioctls never interleave. A line
 * that cannot be written has nobody to be told about: the test sees it
 * missing. */
static void fake_write(int fd, const char *line)
{
	(void)!write(fd, line, strlen(line));
}

static void fake_log(const struct fake_vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fake_log(const struct fake_vm *vm, const char *fmt, ...)
{
	char line[FAKE_LINE];
	va_list ap;
	int n;

	if (fake_log_fd < 0)
		return;
	n = snprintf(line, sizeof(line) - 1, "hsm%u ", vm->serial);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - 1 - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	line[n] = '\0';
	fake_write(fake_log_fd, line);
}

static void fake_result(void *opaque, const char *text)
{
	const struct fake_vm *vm = opaque;
	char line[FAKE_LINE];

	snprintf(line, sizeof(line), "hsm%u %.*s\n", vm->serial, FAKE_LINE - 16, text);
	fake_write(fake_result_fd >= 0 ? fake_result_fd : STDERR_FILENO, line);
}

/* The scripted vCPUs all reached the end of their scripts. */
static void fake_scripts_ended(void *opaque, int status)
{
	struct fake_vm *vm = opaque;
	struct sim_stats st;
	char line[FAKE_LINE];

	sim_cpus_stats(vm->cpus, &st);
	snprintf(line, sizeof(line),
		 "vm %s: scripts ended: %" PRIu64 " accesses, %" PRIu64 " mismatches, completion by %s", vm->name,
		 st.accesses, st.mismatches, vm->polling ? "polling" : "notification");
	fake_result(vm, line);
}

/* ---- the fd table ---- */

static struct fake_vm *fake_get(int fd)
{
	struct fake_vm *vm = NULL;

	if (fd < 0 || fd >= FAKE_MAX_FDS)
		return NULL;
	pthread_mutex_lock(&fake_lock);
	if (fake_fds[fd]) {
		vm = fake_fds[fd];
		vm->refs++;
	}
	pthread_mutex_unlock(&fake_lock);
	return vm;
}

/* What the driver's release and the hypervisor's shutdown leave behind:
 * nothing. The vCPUs stop first, so that nothing touches the broker's
 * page once it may unmap it. */
/* acrn_ioeventfd_deinit and acrn_irqfd_deinit: once it returns, nothing
 * signals or reads the eventfds the VM held. */
static void fake_drop_eventfds(struct fake_vm *vm)
{
	vm->irqfds = irqfd_relay_free(vm->irqfds);
	while (vm->n_irqfds)
		close(vm->irqfd_fds[--vm->n_irqfds]);
	for (int fd; (fd = atomic_load(&vm->d.n_ioeventfds) ? vm->d.ioeventfds[0].fd : -1) >= 0;)
		close(dispatch_ioeventfd_deassign(&vm->d, fd));
}

/* The vCPUs, scripted or on KVM, stop for good and are joined; whatever
 * they wait for, and whatever they post from now on, completes at once. */
static void fake_stop_guest(struct fake_vm *vm)
{
	if (vm->kvm)
		kvmvm_stop(vm->kvm);
	vm->cpus = sim_cpus_free(vm->cpus);
	dispatch_close(&vm->d);
	vm->kvm = kvmvm_free(vm->kvm);
}

static void fake_release(struct fake_vm *vm)
{
	fake_drop_eventfds(vm);
	fake_stop_guest(vm);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

static void fake_put(struct fake_vm *vm)
{
	bool last;

	pthread_mutex_lock(&fake_lock);
	last = --vm->refs == 0;
	pthread_mutex_unlock(&fake_lock);
	if (last)
		fake_release(vm);
}

/* ---- the ioctls ---- */

/* What the log line of one ioctl says besides its name and result. */
struct fake_call {
	char args[192];
	char remark[160];
};

static void fake_remark(struct fake_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fake_remark(struct fake_call *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->remark, sizeof(c->remark), fmt, ap);
	va_end(ap);
}

/* The broker's memory, as pin_user_pages would find it: mapped. */
static bool fake_mapped(uint64_t addr, uint64_t len)
{
	unsigned char vec[64];

	/* mincore fails with ENOMEM on any unmapped page of the range. */
	for (uint64_t off = 0; off < len; off += sizeof(vec) * FAKE_PAGE) {
		uint64_t n = len - off < sizeof(vec) * FAKE_PAGE ? len - off : sizeof(vec) * FAKE_PAGE;

		if (mincore((void *)(uintptr_t)(addr + off), n, vec) < 0)
			return false;
	}
	return true;
}

static void fake_irqfd_inject(void *opaque, const struct hsm_irqfd *f);

static int fake_load_scripts(struct fake_vm *vm)
{
	const char *env = getenv("FAKE_HSM_SCRIPTS");
	const char *paths[ACRN_IO_REQUEST_MAX] = { 0 };
	struct sim_cpus_params p = {
		.name = vm->name,
		.d = &vm->d,
		.scripts = paths,
		.completion_polling = vm->polling,
		.on_stop = fake_scripts_ended,
		.report = fake_result,
		.opaque = vm,
	};
	char *list = NULL;
	unsigned n = 0;
	int r;

	if (env) {
		vm->scripted = true;
		list = strdup(env);
		if (!list)
			return -ENOMEM;
		/* strsep, not strtok: an empty entry is an idle vCPU. */
		for (char *s = list, *t; (t = strsep(&s, ":")) && n < ACRN_IO_REQUEST_MAX; n++)
			paths[n] = *t ? t : NULL;
	}
	if (n > vm->d.vcpu_num) {
		fake_result(vm, "FAKE_HSM_SCRIPTS names more scripts than the VM has vCPUs");
		free(list);
		return -EINVAL;
	}
	r = sim_cpus_create(&p, &vm->cpus);
	free(list);
	return r;
}

static int fake_create_vm(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	struct acrn_vm_creation *cv = (struct acrn_vm_creation *)arg;
	const char *env = getenv("FAKE_HSM_VCPU_NUM");
	unsigned vcpus;
	int r;

	if (!cv)
		return -EFAULT;
	memcpy(vm->name, &cv->uuid, sizeof(cv->uuid));
	vm->name[sizeof(cv->uuid)] = '\0';
	snprintf(c->args, sizeof(c->args), "name=%s vcpu_num=%u vm_flag=0x%" PRIx64 " cpu_affinity=0x%" PRIx64, vm->name,
		 cv->vcpu_num, (uint64_t)cv->vm_flag, (uint64_t)cv->cpu_affinity);
	if (cv->reserved0 | cv->reserved1)
		return -EINVAL;
	/* acrn_vm_create: the hypervisor makes a VM and the driver overwrites
	 * this file's vmid with it before acrn_ioreq_init finds the page set
	 * (-EEXIST); then it destroys that VM and the vmid is invalid. */
	if (vm->has_buf) {
		vm->valid = false;
		fake_remark(c, "a request page is set: -EEXIST in the driver");
		return -EINVAL;
	}
	if (cv->ioreq_buf % FAKE_PAGE || !fake_mapped(cv->ioreq_buf, FAKE_PAGE)) {
		fake_remark(c, "fake: ioreq_buf not a mapped page");
		return -EINVAL;
	}
	vcpus = env ? (unsigned)atoi(env) : cv->vcpu_num;
	if (vcpus < 1 || vcpus > ACRN_IO_REQUEST_MAX)
		return -EINVAL;
	/* HC_SET_IOREQ_BUFFER: every slot FREE. */
	r = dispatch_init(&vm->d, (struct acrn_io_request_buffer *)(uintptr_t)cv->ioreq_buf, vcpus);
	if (r < 0)
		return r;
	vm->polling = cv->vm_flag & ACRN_GUEST_FLAG_IO_COMPLETION_POLLING;
	/* acrn_irqfd_init: the HSM's irqfds of this VM. */
	r = irqfd_relay_create(fake_irqfd_inject, vm, &vm->irqfds);
	if (r < 0)
		return r;
	r = fake_load_scripts(vm);
	if (r < 0)
		return -EINVAL;
	vm->vmid = vm->serial;
	vm->valid = true;
	vm->has_buf = true;
	vm->state = FAKE_CREATED;
	cv->vmid = vm->vmid;
	cv->vcpu_num = vcpus;
	return 0;
}

/* pin_user_pages(FOLL_WRITE) needs every page of the range in a writable
 * mapping: /proc/self/maps says which are. */
static bool fake_writable(uint64_t addr, uint64_t len)
{
	FILE *f = fopen("/proc/self/maps", "re");
	uint64_t at = addr, end = addr + len;
	char line[512];

	if (!f)
		return false;
	while (at < end && fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;
		char perms[8];

		if (sscanf(line, "%llx-%llx %7s", &lo, &hi, perms) != 3)
			continue;
		if (at >= lo && at < hi) {
			if (perms[1] != 'w')
				break;
			at = hi;
		}
	}
	fclose(f);
	return at >= end;
}

static int fake_set_memseg(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	const struct acrn_vm_memmap *m = (const struct acrn_vm_memmap *)arg;

	if (!m)
		return -EFAULT;
	snprintf(c->args, sizeof(c->args), "type=%u gpa=0x%" PRIx64 " len=0x%" PRIx64 " attr=0x%x", m->type, (uint64_t)m->user_vm_pa,
		 (uint64_t)m->len, m->attr);
	if (m->type == ACRN_MEMMAP_MMIO)
		return 0;
	if (m->type != ACRN_MEMMAP_RAM)
		return -EINVAL;
	if (!m->len || m->len % FAKE_PAGE || m->vma_base % FAKE_PAGE || m->user_vm_pa % FAKE_PAGE) {
		fake_remark(c, "fake: not whole pages");
		return -EINVAL;
	}
	if (!fake_mapped(m->vma_base, m->len) || !fake_writable(m->vma_base, m->len))
		return -EFAULT;
	if (vm->mappings == FAKE_MAX_MAPPINGS)
		return -ENOMEM;
	vm->ram[vm->mappings++] = (struct sim_mem_region){
		.gpa = m->user_vm_pa,
		.size = m->len,
		.host = (uint8_t *)(uintptr_t)m->vma_base,
	};
	return 0;
}

/* The hypervisor's is_valid_cr0_cr4: no reserved bit, CR0.NE on (VMX's
 * fixed bit; PE and PG are the guest's), CR4.VMXE off. */
#define FAKE_CR0_BITS 0xe005003full /* PE MP EM TS ET NE WP AM NW CD PG */
#define FAKE_CR0_NE 0x20ull
#define FAKE_CR4_BITS 0x17f1fffull /* VME..UMIP LA57, FSGSBASE PCIDE OSXSAVE KL SMEP SMAP PKE, PKS */
#define FAKE_CR4_VMXE 0x2000ull

static bool fake_reserved_clear(const struct acrn_vcpu_regs *r)
{
	const struct acrn_regs *v = &r->vcpu_regs;

	for (size_t i = 0; i < sizeof(r->reserved) / sizeof(r->reserved[0]); i++)
		if (r->reserved[i])
			return false;
	for (size_t i = 0; i < sizeof(v->reserved_32) / sizeof(v->reserved_32[0]); i++)
		if (v->reserved_32[i])
			return false;
	for (size_t i = 0; i < sizeof(v->reserved_64) / sizeof(v->reserved_64[0]); i++)
		if (v->reserved_64[i])
			return false;
	for (size_t i = 0; i < sizeof(v->gdt.reserved) / sizeof(v->gdt.reserved[0]); i++)
		if (v->gdt.reserved[i] | v->idt.reserved[i])
			return false;
	return true;
}

static int fake_set_vcpu_regs(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	const struct acrn_vcpu_regs *r = (const struct acrn_vcpu_regs *)arg;
	const struct acrn_regs *v;

	if (!r)
		return -EFAULT;
	v = &r->vcpu_regs;
	snprintf(c->args, sizeof(c->args),
		 "vcpu=%u rip=0x%" PRIx64 " rsp=0x%" PRIx64 " rdi=%" PRIu64 " rsi=%" PRIu64 " rflags=0x%" PRIx64
		 " cr0=0x%" PRIx64 " cr3=0x%" PRIx64 " cr4=0x%" PRIx64 " efer=0x%" PRIx64 " cs=0x%x/0x%x/0x%x ds=0x%x"
		 " gdt=0x%" PRIx64 "/%u",
		 r->vcpu_id, (uint64_t)v->rip, (uint64_t)v->gprs.rsp, (uint64_t)v->gprs.rdi, (uint64_t)v->gprs.rsi,
		 (uint64_t)v->rflags, (uint64_t)v->cr0, (uint64_t)v->cr3, (uint64_t)v->cr4, (uint64_t)v->ia32_efer,
		 v->cs_sel, v->cs_ar, v->cs_limit, v->ds_sel, (uint64_t)v->gdt.base, v->gdt.limit);
	if (!fake_reserved_clear(r))
		return -EINVAL;
	/* hcall_set_vcpu_regs: not while running, not a vCPU it has not. */
	if (vm->state == FAKE_RUNNING) {
		fake_remark(c, "the hypervisor sets registers only of a VM that is not running");
		return -EPERM;
	}
	if (r->vcpu_id >= vm->d.vcpu_num)
		return -EPERM;
	if ((v->cr0 & ~FAKE_CR0_BITS) || !(v->cr0 & FAKE_CR0_NE) || (v->cr4 & ~FAKE_CR4_BITS) || (v->cr4 & FAKE_CR4_VMXE)) {
		fake_remark(c, "CR0 or CR4 not valid for a guest");
		return -EPERM;
	}
	if (v->cs_ar & 0xf00) {
		fake_remark(c, "fake: cs_ar bits 11:8 are reserved: VM entry would fail");
		return -EINVAL;
	}
	vm->regs[r->vcpu_id] = *v;
	vm->has_regs[r->vcpu_id] = true;
	return 0;
}

/* A segment register as the hypervisor loads it: VMX access rights. */
static struct kvm_segment fake_segment(uint16_t sel, uint64_t base, uint32_t limit, uint32_t ar)
{
	return (struct kvm_segment){
		.base = base,
		.limit = limit,
		.selector = sel,
		.type = ar & 0xf,
		.s = (ar >> 4) & 1,
		.dpl = (ar >> 5) & 3,
		.present = (ar >> 7) & 1,
		.avl = (ar >> 12) & 1,
		.l = (ar >> 13) & 1,
		.db = (ar >> 14) & 1,
		.g = (ar >> 15) & 1,
		.unusable = (ar >> 16) & 1,
	};
}

/* acrn-hypervisor's set_vcpu_regs, onto KVM's vCPU state. */
static int fake_kvm_regs(struct fake_vm *vm, struct kvmvm *k, unsigned vcpu)
{
	const struct acrn_regs *v = &vm->regs[vcpu];
	bool pe = v->cr0 & 1;
	uint32_t data_ar = pe ? 0xc093 : 0x0093, limit = pe ? 0xffffffff : 0xffff;
	struct kvm_sregs sregs;
	struct kvm_regs regs = {
		.rax = v->gprs.rax, .rcx = v->gprs.rcx, .rdx = v->gprs.rdx, .rbx = v->gprs.rbx,
		.rsp = v->gprs.rsp, .rbp = v->gprs.rbp, .rsi = v->gprs.rsi, .rdi = v->gprs.rdi,
		.r8 = v->gprs.r8, .r9 = v->gprs.r9, .r10 = v->gprs.r10, .r11 = v->gprs.r11,
		.r12 = v->gprs.r12, .r13 = v->gprs.r13, .r14 = v->gprs.r14, .r15 = v->gprs.r15,
		.rip = v->rip,
		.rflags = v->rflags ? v->rflags & ~0x8d5ull : 0x2,
	};
	int r = kvmvm_get_sregs(k, vcpu, &sregs);

	if (r)
		return r;
	sregs.cs = fake_segment(v->cs_sel, v->cs_base, v->cs_limit, v->cs_ar);
	sregs.ss = fake_segment(v->ss_sel, 0, limit, data_ar);
	sregs.ds = fake_segment(v->ds_sel, 0, limit, data_ar);
	sregs.es = fake_segment(v->es_sel, 0, limit, data_ar);
	sregs.fs = fake_segment(v->fs_sel, 0, limit, data_ar);
	sregs.gs = fake_segment(v->gs_sel, 0, limit, data_ar);
	sregs.ldt = fake_segment(v->ldt_sel, 0, 0xffff, 0x82);
	sregs.tr = fake_segment(v->tr_sel, 0, 0xffff, 0x8b);
	sregs.gdt.base = v->gdt.base;
	sregs.gdt.limit = v->gdt.limit;
	sregs.idt.base = v->idt.base;
	sregs.idt.limit = v->idt.limit;
	sregs.cr0 = v->cr0;
	sregs.cr3 = v->cr3;
	sregs.cr4 = v->cr4;
	sregs.efer = v->ia32_efer;
	return kvmvm_set_state(k, vcpu, &regs, &sregs);
}

/* A vCPU of the guest run on KVM could not go on (reported already). */
static void fake_kvm_crashed(void *opaque)
{
	fake_result(opaque, "fake: the guest crashed");
}

/* The guest on /dev/kvm: its memory the broker's, the boot vCPU's
 * registers the broker's, the other vCPUs waiting for INIT/SIPI. */
static int fake_run_kvm(struct fake_vm *vm, struct fake_call *c)
{
	struct kvmvm_params p = {
		.name = vm->name,
		.d = &vm->d,
		.vcpus = vm->d.vcpu_num,
		.polling = vm->polling,
		.report = fake_result,
		.crashed = fake_kvm_crashed,
		.opaque = vm,
	};
	int r;

	struct kvmvm *k = NULL;

	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		fake_remark(c, "fake: cannot run the guest: /dev/kvm: %s", strerror(errno));
		return -ENODEV;
	}
	r = kvmvm_create(&p, &k);
	for (unsigned i = 0; !r && i < vm->mappings; i++)
		r = kvmvm_map(k, vm->ram[i].gpa, vm->ram[i].size, vm->ram[i].host);
	if (!r)
		r = fake_kvm_regs(vm, k, 0);
	if (!r)
		r = kvmvm_start(k);
	if (r) {
		fake_remark(c, "fake: cannot run the guest on /dev/kvm");
		kvmvm_free(k);
		return -ENODEV;
	}
	vm->kvm = k;
	return 0;
}

static int fake_start_vm(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	int r;

	if (vm->state != FAKE_CREATED)
		return -EPERM;
	if (!vm->scripted && vm->has_regs[0]) {
		r = fake_run_kvm(vm, c);
	} else {
		r = sim_cpus_set_memory(vm->cpus, vm->ram, vm->mappings);
		if (r)
			fake_remark(c, "fake: a script's mem statement is outside the VM's RAM");
		else
			r = sim_cpus_start(vm->cpus);
	}
	if (!r)
		vm->state = FAKE_RUNNING;
	return r;
}

static int fake_pause_vm(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	vm->state = FAKE_PAUSED;
	if (vm->kvm)
		kvmvm_stop(vm->kvm);
	sim_cpus_pause(vm->cpus);
	return 0;
}

static int fake_reset_vm(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	if (vm->state != FAKE_PAUSED)
		return -EPERM;
	if (vm->kvm) {
		fake_remark(c, "fake: cannot reset a guest run on /dev/kvm");
		return -EOPNOTSUPP;
	}
	vm->state = FAKE_CREATED;
	sim_cpus_reset(vm->cpus);
	return 0;
}

/* acrn_vm_destroy. */
static int fake_destroy_vm(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	/* acrn_ioeventfd_deinit, acrn_irqfd_deinit and acrn_ioreq_deinit run
	 * before the hypercall, whatever it says. */
	fake_drop_eventfds(vm);
	dispatch_destroy_default(&vm->d);
	vm->has_buf = false;
	/* The VM lives on in the hypervisor, and so do its vCPUs. */
	if (vm->state != FAKE_PAUSED) {
		fake_remark(c, "the hypervisor destroys only a paused VM");
		return -EPERM;
	}
	fake_stop_guest(vm);
	vm->valid = false;
	return 0;
}

/* eventfd_ctx_fdget(): -EBADF, -EINVAL, or the HSM's own reference. */
static int fake_eventfd_get(int fd)
{
	int r = dispatch_check_eventfd(fd);

	if (r)
		return r;
	r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return r < 0 ? -errno : r;
}

static int fake_ioeventfd(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	const struct acrn_ioeventfd *a = (const struct acrn_ioeventfd *)arg;
	struct dispatch_ioeventfd e;
	int fd, r;

	if (!a)
		return -EFAULT;
	snprintf(c->args, sizeof(c->args), "fd=%d flags=0x%x addr=0x%" PRIx64 " len=%u data=0x%" PRIx64, (int)a->fd,
		 a->flags, (uint64_t)a->addr, a->len, (uint64_t)a->data);
	if (a->reserved)
		return -EINVAL;
	if (!vm->has_buf) {
		fake_remark(c, "fake: after DESTROY_VM");
		return -EINVAL;
	}
	if (a->flags & ACRN_IOEVENTFD_FLAG_DEASSIGN) {
		fd = fake_eventfd_get((int)a->fd);
		if (fd < 0)
			return fd;
		r = dispatch_ioeventfd_deassign(&vm->d, fd);
		if (r >= 0)
			close(r);
		else
			fake_remark(c, "no such ioeventfd");
		close(fd);
		return 0;
	}
	/* acrn_ioeventfd_assign checks the range before the fd. */
	if (a->addr + a->len < a->addr || (a->len != 1 && a->len != 2 && a->len != 4 && a->len != 8))
		return -EINVAL;
	fd = fake_eventfd_get((int)a->fd);
	if (fd < 0)
		return fd;
	e = (struct dispatch_ioeventfd){
		.fd = fd,
		.type = a->flags & ACRN_IOEVENTFD_FLAG_PIO ? ACRN_IOREQ_TYPE_PORTIO : ACRN_IOREQ_TYPE_MMIO,
		.addr = a->addr,
		.len = a->len,
		.wildcard = !(a->flags & ACRN_IOEVENTFD_FLAG_DATAMATCH),
		.data = a->flags & ACRN_IOEVENTFD_FLAG_DATAMATCH ? a->data : 0,
	};
	r = dispatch_ioeventfd_assign(&vm->d, &e);
	if (r)
		close(fd);
	return r;
}

/* An irqfd's eventfd was written: acrn_msi_inject. */
static void fake_irqfd_inject(void *opaque, const struct hsm_irqfd *f)
{
	struct fake_vm *vm = opaque;
	struct kvmvm *k = vm->kvm;

	if (k)
		kvmvm_msi(k, f->msi_addr, f->msi_data);
	else
		sim_cpus_inject_msi(vm->cpus, f->msi_addr, f->msi_data);
}

static int fake_irqfd(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	const struct acrn_irqfd *a = (const struct acrn_irqfd *)arg;
	struct hsm_irqfd f;
	int fd, r;

	if (!a)
		return -EFAULT;
	snprintf(c->args, sizeof(c->args), "fd=%d flags=0x%x addr=0x%" PRIx64 " data=0x%" PRIx64, a->fd, a->flags,
		 (uint64_t)a->msi.msi_addr, (uint64_t)a->msi.msi_data);
	if (!vm->irqfds) {
		fake_remark(c, "fake: after DESTROY_VM");
		return -EINVAL;
	}
	fd = fake_eventfd_get(a->fd);
	if (fd < 0)
		return fd;
	if (a->flags & ACRN_IRQFD_FLAG_DEASSIGN) {
		r = irqfd_relay_del(vm->irqfds, fd);
		close(fd);
		if (r < 0) {
			fake_remark(c, "no such irqfd");
			return 0;
		}
		for (unsigned i = 0; i < vm->n_irqfds; i++)
			if (vm->irqfd_fds[i] == r)
				vm->irqfd_fds[i] = vm->irqfd_fds[--vm->n_irqfds];
		close(r);
		return 0;
	}
	if (vm->n_irqfds == FAKE_MAX_IRQFDS) {
		close(fd);
		return -ENOMEM;
	}
	f = (struct hsm_irqfd){ .fd = fd, .msi = true, .msi_addr = a->msi.msi_addr, .msi_data = (uint32_t)a->msi.msi_data };
	r = irqfd_relay_add(vm->irqfds, &f);
	if (r) {
		close(fd);
		return r == -EEXIST ? -EBUSY : r;
	}
	vm->irqfd_fds[vm->n_irqfds++] = fd;
	return 0;
}

static int fake_create_client(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	return dispatch_create_default(&vm->d);
}

static int fake_destroy_client(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	dispatch_destroy_default(&vm->d);
	return 0;
}

static bool fake_has_client(uint32_t dflt)
{
	return (dflt & DISPATCH_DEFAULT_EXISTS) && !(dflt & DISPATCH_DEFAULT_DESTROYING);
}

/* acrn_ioreq_client_wait: wait_event_interruptible, its result ignored, so
 * a signal ends it with 0 (dispatch_attach would wait on). */
static int fake_attach(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	for (;;) {
		uint32_t v = atomic_load(&vm->d.dflt);

		if (!fake_has_client(v))
			return -ENODEV;
		if (dispatch_pending(&vm->d))
			return 0;
		if (syscall(SYS_futex, &vm->d.dflt, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0) < 0 && errno == EINTR)
			return 0;
	}
}

static int fake_notify(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	const struct acrn_ioreq_notify *n = (const struct acrn_ioreq_notify *)arg;
	uint16_t vcpu;

	if (!n)
		return -EFAULT;
	snprintf(c->args, sizeof(c->args), "vcpu=%u", n->vcpu);
	if (n->reserved)
		return -EINVAL;
	if (!fake_has_client(atomic_load(&vm->d.dflt))) {
		fake_remark(c, "no client");
		return 0;
	}
	/* acrn_ioreq_request_default_complete takes a u16. */
	vcpu = (uint16_t)n->vcpu;
	if (vcpu >= vm->d.vcpu_num)
		return -EINVAL;
	if (n->vmid != vm->vmid)
		fake_remark(c, "fake: vmid %u is not this VM's %u", n->vmid, vm->vmid);
	if (!(dispatch_pending(&vm->d) & 1u << vcpu))
		fake_remark(c, "fake: nothing pending");
	return dispatch_notify(&vm->d, vcpu);
}

static int fake_clear(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	/* The driver lets only its in-kernel clients drain; what the default
	 * client holds is completed at once. */
	dispatch_clear(&vm->d, 0);
	return 0;
}

static int fake_set_irqline(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	uint32_t gsi = (uint32_t)arg, op = (uint32_t)((uint64_t)arg >> 32);
	int r;

	snprintf(c->args, sizeof(c->args), "gsi=%u op=%u", gsi, op);
	if (!vm->kvm)
		return sim_cpus_set_irqline(vm->cpus, gsi, (enum hsm_irq_op)op);
	/* The vIOAPIC's pin as levels; a pulse is two. */
	if (op > HSM_IRQ_PULSE_LOW)
		return -EINVAL;
	r = kvmvm_irq_line(vm->kvm, gsi, op == HSM_IRQ_ASSERT || op == HSM_IRQ_PULSE_HIGH);
	if (!r && (op == HSM_IRQ_PULSE_HIGH || op == HSM_IRQ_PULSE_LOW))
		r = kvmvm_irq_line(vm->kvm, gsi, op == HSM_IRQ_PULSE_LOW);
	return r;
}

static int fake_inject_msi(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	const struct acrn_msi_entry *msi = (const struct acrn_msi_entry *)arg;

	if (!msi)
		return -EFAULT;
	snprintf(c->args, sizeof(c->args), "addr=0x%" PRIx64 " data=0x%" PRIx64, (uint64_t)msi->msi_addr, (uint64_t)msi->msi_data);
	if (vm->kvm)
		return kvmvm_msi(vm->kvm, msi->msi_addr, (uint32_t)msi->msi_data);
	sim_cpus_inject_msi(vm->cpus, msi->msi_addr, msi->msi_data);
	return 0;
}

typedef int (*fake_ioctl_fn)(struct fake_vm *vm, unsigned long arg, struct fake_call *c);

static const struct {
	unsigned long req;
	const char *name;
	fake_ioctl_fn fn;
	bool unlocked; /* blocks, or is on the hot path: the dispatcher keeps it safe */
} fake_ioctls[] = {
	{ ACRN_IOCTL_CREATE_VM, "CREATE_VM", fake_create_vm, false },
	{ ACRN_IOCTL_DESTROY_VM, "DESTROY_VM", fake_destroy_vm, false },
	{ ACRN_IOCTL_START_VM, "START_VM", fake_start_vm, false },
	{ ACRN_IOCTL_PAUSE_VM, "PAUSE_VM", fake_pause_vm, false },
	{ ACRN_IOCTL_RESET_VM, "RESET_VM", fake_reset_vm, false },
	{ ACRN_IOCTL_SET_MEMSEG, "SET_MEMSEG", fake_set_memseg, false },
	{ ACRN_IOCTL_SET_VCPU_REGS, "SET_VCPU_REGS", fake_set_vcpu_regs, false },
	{ ACRN_IOCTL_IOEVENTFD, "IOEVENTFD", fake_ioeventfd, false },
	{ ACRN_IOCTL_IRQFD, "IRQFD", fake_irqfd, false },
	{ ACRN_IOCTL_CREATE_IOREQ_CLIENT, "CREATE_IOREQ_CLIENT", fake_create_client, false },
	{ ACRN_IOCTL_ATTACH_IOREQ_CLIENT, "ATTACH_IOREQ_CLIENT", fake_attach, true },
	{ ACRN_IOCTL_DESTROY_IOREQ_CLIENT, "DESTROY_IOREQ_CLIENT", fake_destroy_client, false },
	{ ACRN_IOCTL_NOTIFY_REQUEST_FINISH, "NOTIFY_REQUEST_FINISH", fake_notify, true },
	{ ACRN_IOCTL_CLEAR_VM_IOREQ, "CLEAR_VM_IOREQ", fake_clear, false },
	{ ACRN_IOCTL_SET_IRQLINE, "SET_IRQLINE", fake_set_irqline, false },
	{ ACRN_IOCTL_INJECT_MSI, "INJECT_MSI", fake_inject_msi, false },
};

static int fake_ioctl(struct fake_vm *vm, unsigned long req, unsigned long arg)
{
	struct fake_call c = { "", "" };
	char unknown[32];
	const char *name = NULL;
	int r = -ENOTTY;

	for (size_t i = 0; i < sizeof(fake_ioctls) / sizeof(fake_ioctls[0]); i++) {
		if (fake_ioctls[i].req != req)
			continue;
		name = fake_ioctls[i].name;
		/* The driver's first check, for every ioctl, known or not. */
		if (!vm->valid && req != ACRN_IOCTL_CREATE_VM) {
			r = -EINVAL;
		} else if (fake_ioctls[i].unlocked) {
			r = fake_ioctls[i].fn(vm, arg, &c);
		} else {
			pthread_mutex_lock(&vm->lock);
			r = fake_ioctls[i].fn(vm, arg, &c);
			pthread_mutex_unlock(&vm->lock);
		}
		break;
	}
	if (!name) {
		snprintf(unknown, sizeof(unknown), "0x%lx", req);
		name = unknown;
		if (!vm->valid)
			r = -EINVAL;
	}
	fake_log(vm, "%s%s%s = %s%s%s%s%s", name, *c.args ? " " : "", c.args, r < 0 ? "-" : "",
		 r < 0 ? strerrorname_np(-r) : "0", *c.remark ? " (" : "", c.remark, *c.remark ? ")" : "");
	return r;
}

/* ---- the intercepted calls ---- */

static int fake_open(int flags)
{
	struct fake_vm *vm;
	int fd, r;

	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		errno = ENOMEM;
		return -1;
	}
	fd = memfd_create("fake-acrn-hsm", flags & O_CLOEXEC ? MFD_CLOEXEC : 0);
	if (fd < 0 || fd >= FAKE_MAX_FDS) {
		r = fd < 0 ? errno : EMFILE;
		if (fd >= 0)
			real.close(fd);
		free(vm);
		errno = r;
		return -1;
	}
	pthread_mutex_init(&vm->lock, NULL);
	vm->refs = 1;
	pthread_mutex_lock(&fake_lock);
	if (!fake_opens) {
		fake_log_fd = fake_open_output("FAKE_HSM_LOG");
		fake_result_fd = fake_open_output("FAKE_HSM_RESULT");
	}
	vm->serial = ++fake_opens;
	fake_fds[fd] = vm;
	pthread_mutex_unlock(&fake_lock);
	fake_log(vm, "OPEN %s%s", (flags & O_ACCMODE) == O_RDWR ? "O_RDWR" : "not-O_RDWR",
		 flags & O_CLOEXEC ? "|O_CLOEXEC" : "");
	return fd;
}

/* Whatever entry the program's libc calls take: open64 and openat64 are
 * what a build with _FILE_OFFSET_BITS=64 calls. */
#define FAKE_OPEN(fn, ...)                                                                                    \
	{                                                                                                     \
		mode_t mode = 0;                                                                              \
		va_list ap;                                                                                   \
                                                                                                              \
		if (flags & (O_CREAT | O_TMPFILE)) {                                                          \
			va_start(ap, flags);                                                                  \
			mode = va_arg(ap, mode_t);                                                            \
			va_end(ap);                                                                           \
		}                                                                                             \
		if (!strcmp(path, FAKE_PATH))                                                                 \
			return fake_open(flags);                                                              \
		return real.fn(__VA_ARGS__, mode);                                                            \
	}

FAKE_EXPORT int open(const char *path, int flags, ...)
{
	FAKE_OPEN(open, path, flags)
}

FAKE_EXPORT int open64(const char *path, int flags, ...)
{
	FAKE_OPEN(open64, path, flags)
}

FAKE_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	FAKE_OPEN(openat, dirfd, path, flags)
}

FAKE_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	FAKE_OPEN(openat64, dirfd, path, flags)
}

FAKE_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	struct fake_vm *vm;
	unsigned long arg;
	va_list ap;
	int r;

	va_start(ap, req);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	vm = fake_get(fd);
	if (!vm)
		return real.ioctl(fd, req, arg);
	r = fake_ioctl(vm, req, arg);
	fake_put(vm);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return r;
}

/* The driver's release: the VM goes when the last reference does (an
 * ioctl still running holds one, as it holds the file in the kernel). */
FAKE_EXPORT int close(int fd)
{
	struct fake_vm *vm = NULL;

	if (fd >= 0 && fd < FAKE_MAX_FDS) {
		pthread_mutex_lock(&fake_lock);
		vm = fake_fds[fd];
		fake_fds[fd] = NULL;
		pthread_mutex_unlock(&fake_lock);
	}
	if (vm) {
		fake_log(vm, "CLOSE");
		fake_put(vm);
	}
	return real.close(fd);
}
