/* The kvm backend: one thread per vCPU runs KVM_RUN; each PIO or MMIO exit is
 * posted in the vCPU's slot of the request page and goes through the
 * dispatcher exactly as the ACRN hypervisor's upcall goes through the HSM, so
 * the broker cannot tell this backend from the real one. The guest ABI is in
 * kvm.h.
 *
 * Stopping: whoever stops the VM (the exit port, a crash, hsm_destroy) sets
 * `stopping`, sets every vCPU's immediate_exit (for a thread about to enter
 * KVM_RUN) and signals the threads that run (for those inside it). A vCPU
 * waiting for its request sleeps in the dispatcher; hsm_destroy closes the
 * dispatcher, which completes those and every later request at once.
 *
 * Teardown order (hsm_destroy): stop every vCPU, close the dispatcher, join
 * every vCPU thread, and only then unmap and close what the vCPUs used. Any
 * thread may kick every vCPU (kvm_end), so no vCPU's kvm_run page may go
 * while another vCPU thread still runs.
 */
#include "kvm.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dispatch.h"

/* Kicks a vCPU thread out of KVM_RUN: its handler does nothing, the EINTR
 * is the point. */
#define KVM_KICK_SIGNAL SIGRTMIN

#define KVM_MAX_CPUID_ENTRIES 256
#define KVM_MAX_PHDRS 64

/* Page-table entry bits. */
#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_PS 0x80ull

#define CR0_PE 0x1ull
#define CR0_MP 0x2ull
#define CR0_ET 0x10ull
#define CR0_NE 0x20ull
#define CR0_PG 0x80000000ull
#define CR4_PAE 0x20ull
#define EFER_LME 0x100ull
#define EFER_LMA 0x400ull

#define PAGE_2M (2ull << 20)

struct kvm_guest;

struct kvm_cpu {
	struct kvm_guest *g;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool created;          /* pthread_create succeeded: join it */
	/* Set by the thread itself before it first looks at `stopping`, so a
	 * stopper either sees it running (and signals it) or the thread sees
	 * `stopping`. Guarded by kick_lock for the stopper. */
	pthread_t self;
	_Atomic bool running;
};

struct kvm_guest {
	struct hsm_vm base;
	char name[32];
	struct dispatch d;
	struct acrn_io_request_buffer *page;
	int kvm_fd, vm_fd;
	size_t run_size;
	uint8_t *ram;
	uint64_t ram_size;
	uint64_t entry;
	uint16_t exit_port;
	struct kvm_cpuid2 *cpuid;
	hsm_stop_fn on_stop;
	hsm_report_fn report;
	void *opaque;
	_Atomic bool stopping;
	_Atomic bool ended;     /* on_stop was called, or will never be */
	pthread_mutex_t kick_lock;
	struct kvm_cpu cpus[ACRN_IO_REQUEST_MAX];
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

static void kvm_kick_handler(int sig)
{
}

static void kvm_install_kick(void)
{
	/* KVM_RUN returns EINTR all the same (it is never restarted); the rest
	 * of what a vCPU thread does, the broker's logging included, must not
	 * notice the kick. */
	struct sigaction sa = { .sa_handler = kvm_kick_handler, .sa_flags = SA_RESTART };

	sigemptyset(&sa.sa_mask);
	sigaction(KVM_KICK_SIGNAL, &sa, NULL);
}

/* Makes every vCPU leave guest mode soon and not enter it again. */
static void kvm_stop_cpus(struct kvm_guest *g)
{
	atomic_store(&g->stopping, true);
	pthread_mutex_lock(&g->kick_lock);
	for (unsigned i = 0; i < g->base.vcpu_num; i++) {
		struct kvm_cpu *c = &g->cpus[i];

		if (c->run)
			__atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		if (atomic_load(&c->running))
			pthread_kill(c->self, KVM_KICK_SIGNAL);
	}
	pthread_mutex_unlock(&g->kick_lock);
}

/* The guest stopped by itself: tell the broker once. */
static void kvm_end(struct kvm_guest *g, int status)
{
	if (atomic_exchange(&g->ended, true))
		return;
	kvm_stop_cpus(g);
	if (g->on_stop)
		g->on_stop(g->opaque, status);
}

/* ---- the exit path: one access through the HSM ---- */

/* Posts one access in the vCPU's slot, as the hypervisor would, and waits
 * for its completion. Returns the value of a read. */
static uint64_t kvm_cpu_access(struct kvm_cpu *c, uint32_t type, bool write, uint64_t addr, uint32_t size,
			       uint64_t value)
{
	struct dispatch_access a = {
		.type = type,
		.dir = write ? ACRN_IOREQ_DIR_WRITE : ACRN_IOREQ_DIR_READ,
		.addr = addr,
		.size = size,
		.value = value,
	};

	return dispatch_access(&c->g->d, c->index, &a, false);
}

/* String I/O (rep ins/outs) comes as one exit with count elements side by
 * side in the data area: one request each, in order. */
static void kvm_cpu_pio(struct kvm_cpu *c)
{
	struct kvm_run *run = c->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;
	uint32_t size = run->io.size;

	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		uint64_t v = 0;

		if (write)
			memcpy(&v, data, size);
		v = kvm_cpu_access(c, ACRN_IOREQ_TYPE_PORTIO, write, run->io.port, size, v);
		if (!write)
			memcpy(data, &v, size);
	}
}

/* KVM splits an access that crosses a page into fragments of any length up
 * to 8: each becomes the naturally sized requests that cover it. */
static void kvm_cpu_mmio(struct kvm_cpu *c)
{
	struct kvm_run *run = c->run;
	uint32_t len = run->mmio.len, done = 0;

	while (done < len) {
		uint32_t size = len - done >= 8 ? 8 : len - done >= 4 ? 4 : len - done >= 2 ? 2 : 1;
		uint64_t v = 0;

		if (run->mmio.is_write)
			memcpy(&v, run->mmio.data + done, size);
		v = kvm_cpu_access(c, ACRN_IOREQ_TYPE_MMIO, run->mmio.is_write, run->mmio.phys_addr + done, size, v);
		if (!run->mmio.is_write)
			memcpy(run->mmio.data + done, &v, size);
		done += size;
	}
}

#define EXIT_NAME(x) [x] = #x
static const char *const exit_names[] = {
	EXIT_NAME(KVM_EXIT_UNKNOWN),
	EXIT_NAME(KVM_EXIT_EXCEPTION),
	EXIT_NAME(KVM_EXIT_IO),
	EXIT_NAME(KVM_EXIT_HYPERCALL),
	EXIT_NAME(KVM_EXIT_DEBUG),
	EXIT_NAME(KVM_EXIT_HLT),
	EXIT_NAME(KVM_EXIT_MMIO),
	EXIT_NAME(KVM_EXIT_IRQ_WINDOW_OPEN),
	EXIT_NAME(KVM_EXIT_SHUTDOWN),
	EXIT_NAME(KVM_EXIT_FAIL_ENTRY),
	EXIT_NAME(KVM_EXIT_INTR),
	EXIT_NAME(KVM_EXIT_SET_TPR),
	EXIT_NAME(KVM_EXIT_TPR_ACCESS),
	EXIT_NAME(KVM_EXIT_NMI),
	EXIT_NAME(KVM_EXIT_INTERNAL_ERROR),
	EXIT_NAME(KVM_EXIT_SYSTEM_EVENT),
	EXIT_NAME(KVM_EXIT_X86_RDMSR),
	EXIT_NAME(KVM_EXIT_X86_WRMSR),
};

static const char *kvm_exit_name(uint32_t reason)
{
	if (reason < sizeof(exit_names) / sizeof(exit_names[0]) && exit_names[reason])
		return exit_names[reason];
	return "an unknown exit";
}

/* The guest cannot go on: say why, where, and stop the VM. */
static void kvm_cpu_crash(struct kvm_cpu *c, const char *what)
{
	struct kvm_regs regs;
	char rip[32] = "an unknown rip";

	if (ioctl(c->fd, KVM_GET_REGS, &regs) == 0)
		snprintf(rip, sizeof(rip), "rip 0x%llx", (unsigned long long)regs.rip);
	kvm_report(c->g, "vcpu %u: %s at %s; stopping the VM", c->index, what, rip);
	kvm_end(c->g, KVM_CRASH_STATUS);
}

static void kvm_cpu_unexpected(struct kvm_cpu *c)
{
	struct kvm_run *run = c->run;
	char what[160];

	switch (run->exit_reason) {
	case KVM_EXIT_SHUTDOWN:
		snprintf(what, sizeof(what), "triple fault (KVM_EXIT_SHUTDOWN)");
		break;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what), "entry failed (KVM_EXIT_FAIL_ENTRY, hardware reason 0x%llx)",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof(what), "KVM could not emulate (KVM_EXIT_INTERNAL_ERROR, suberror %u)",
			 run->internal.suberror);
		break;
	default:
		snprintf(what, sizeof(what), "unexpected exit %s (%u)", kvm_exit_name(run->exit_reason),
			 run->exit_reason);
		break;
	}
	kvm_cpu_crash(c, what);
}

/* Runs the vCPU until the VM stops. */
static void kvm_cpu_run(struct kvm_cpu *c)
{
	struct kvm_guest *g = c->g;

	while (!atomic_load(&g->stopping)) {
		if (ioctl(c->fd, KVM_RUN, 0) < 0) {
			char what[96];

			if (errno == EINTR || errno == EAGAIN)
				continue;
			snprintf(what, sizeof(what), "KVM_RUN failed: %s", strerror(errno));
			kvm_cpu_crash(c, what);
			return;
		}
		switch (c->run->exit_reason) {
		case KVM_EXIT_IO:
			kvm_cpu_pio(c);
			break;
		case KVM_EXIT_MMIO:
			kvm_cpu_mmio(c);
			break;
		default:
			/* HLT included: with the in-kernel LAPIC, KVM waits
			 * for the interrupt itself and never exits for it. */
			kvm_cpu_unexpected(c);
			return;
		}
	}
}

static void *kvm_cpu_main(void *arg)
{
	struct kvm_cpu *c = arg;
	sigset_t kick;

	sigemptyset(&kick);
	sigaddset(&kick, KVM_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	c->self = pthread_self();
	atomic_store(&c->running, true);
	kvm_cpu_run(c);
	/* Under kick_lock: a stopper that saw `running` signals a thread
	 * that still exists. */
	pthread_mutex_lock(&c->g->kick_lock);
	atomic_store(&c->running, false);
	pthread_mutex_unlock(&c->g->kick_lock);
	return NULL;
}

/* ---- building the VM ---- */

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

static int kvm_open(struct kvm_guest *g)
{
	int r;

	g->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (g->kvm_fd < 0) {
		r = -errno;
		kvm_report(g, "/dev/kvm: %s: the kvm backend needs KVM", strerror(-r));
		return r;
	}
	if (ioctl(g->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		kvm_report(g, "/dev/kvm: unsupported KVM API version");
		return -ENOTSUP;
	}
	g->vm_fd = ioctl(g->kvm_fd, KVM_CREATE_VM, 0);
	if (g->vm_fd < 0) {
		r = -errno;
		kvm_report(g, "/dev/kvm: cannot create a VM: %s", strerror(-r));
		return r;
	}
	r = ioctl(g->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (r < (int)sizeof(struct kvm_run)) {
		kvm_report(g, "/dev/kvm: bad vCPU mmap size");
		return -ENOTSUP;
	}
	g->run_size = r;
	return 0;
}

/* A flat GDT and page tables that identity-map the low 4 GiB with 2 MiB
 * pages (the CPU here offers no 1 GiB pages), user-accessible so the guest's
 * ring 3 can use them unchanged. */
static void kvm_build_tables(struct kvm_guest *g)
{
	uint64_t *gdt = (uint64_t *)(g->ram + KVM_GDT_ADDR);
	uint64_t *pml4 = (uint64_t *)(g->ram + KVM_PML4_ADDR);
	uint64_t *pdpt = pml4 + 512;
	uint64_t *pd = pdpt + 512;

	gdt[0] = 0;
	gdt[KVM_SEL_CODE / 8] = 0x00af9a000000ffffull; /* 64-bit code, DPL 0 */
	gdt[KVM_SEL_DATA / 8] = 0x00cf92000000ffffull; /* data, DPL 0 */
	pml4[0] = (KVM_PML4_ADDR + 0x1000) | PTE_P | PTE_RW | PTE_US;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (KVM_PML4_ADDR + 0x2000 + i * 0x1000) | PTE_P | PTE_RW | PTE_US;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i * PAGE_2M) | PTE_P | PTE_RW | PTE_US | PTE_PS;
}

static int kvm_setup_memory(struct kvm_guest *g, uint64_t size)
{
	int r;

	if (size > KVM_RAM_MAX || size % 4096 ||
	    size < KVM_RESERVED_END + (uint64_t)g->base.vcpu_num * KVM_STACK_SIZE) {
		kvm_report(g, "memory 0x%llx: must be a multiple of 4K, hold the stacks and stay below 0x%llx",
			   (unsigned long long)size, KVM_RAM_MAX);
		return -EINVAL;
	}
	g->ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (g->ram == MAP_FAILED) {
		g->ram = NULL;
		r = -errno;
		kvm_report(g, "cannot map %llu bytes of guest memory: %s", (unsigned long long)size, strerror(-r));
		return r;
	}
	g->ram_size = size;
	kvm_build_tables(g);
	return 0;
}

static int kvm_map_memory(struct kvm_guest *g)
{
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = g->ram_size,
		.userspace_addr = (uintptr_t)g->ram,
	};
	int r;

	if (ioctl(g->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		r = -errno;
		kvm_report(g, "KVM_SET_USER_MEMORY_REGION: %s", strerror(-r));
		return r;
	}
	return 0;
}

static int kvm_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENOEXEC;
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

static int kvm_check_ehdr(const Elf64_Ehdr *eh)
{
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64 || eh->e_type != ET_EXEC ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) || !eh->e_phnum || eh->e_phnum > KVM_MAX_PHDRS)
		return -ENOEXEC;
	return 0;
}

/* Copies the image's PT_LOAD segments to their physical addresses: between
 * the VMM's tables and the stacks. The rest of RAM is already zero. */
static int kvm_load_image(struct kvm_guest *g, const char *path)
{
	uint64_t top = g->ram_size - (uint64_t)g->base.vcpu_num * KVM_STACK_SIZE;
	Elf64_Phdr ph[KVM_MAX_PHDRS];
	const char *why = "not a static ELF64 x86-64 executable";
	unsigned loaded = 0;
	Elf64_Ehdr eh;
	struct stat st;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		kvm_report(g, "image %s: %s", path, strerror(-r));
		return r;
	}
	r = fstat(fd, &st) < 0 ? -errno : 0;
	if (!r)
		r = kvm_pread_all(fd, &eh, sizeof(eh), 0);
	if (!r)
		r = kvm_check_ehdr(&eh);
	if (!r)
		r = kvm_pread_all(fd, ph, eh.e_phnum * sizeof(ph[0]), eh.e_phoff);
	for (unsigned i = 0; !r && i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];

		if (p->p_type != PT_LOAD || !p->p_memsz)
			continue;
		if (p->p_filesz > p->p_memsz || p->p_offset + p->p_filesz < p->p_offset ||
		    p->p_offset + p->p_filesz > (uint64_t)st.st_size) {
			r = -ENOEXEC;
			break;
		}
		if (p->p_paddr < KVM_RESERVED_END || p->p_paddr > top || p->p_memsz > top - p->p_paddr) {
			kvm_report(g, "image %s: segment 0x%llx..0x%llx outside RAM for images 0x%llx..0x%llx", path,
				   (unsigned long long)p->p_paddr, (unsigned long long)(p->p_paddr + p->p_memsz - 1),
				   KVM_RESERVED_END, (unsigned long long)top - 1);
			why = NULL;
			r = -ENOEXEC;
			break;
		}
		r = kvm_pread_all(fd, g->ram + p->p_paddr, p->p_filesz, p->p_offset);
		loaded++;
	}
	close(fd);
	if (!r && (!loaded || eh.e_entry < KVM_RESERVED_END || eh.e_entry >= top))
		r = -ENOEXEC;
	if (r < 0) {
		if (why)
			kvm_report(g, "image %s: %s", path, r == -ENOEXEC ? why : strerror(-r));
		return r;
	}
	g->entry = eh.e_entry;
	return 0;
}

static int kvm_setup_irqchip(struct kvm_guest *g)
{
	struct kvm_pit_config pit = { .flags = 0 };
	int r;

	/* Both before any vCPU, so every vCPU gets an in-kernel LAPIC. */
	if (ioctl(g->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		r = -errno;
		kvm_report(g, "KVM_CREATE_IRQCHIP: %s", strerror(-r));
		return r;
	}
	if (ioctl(g->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		r = -errno;
		kvm_report(g, "KVM_CREATE_PIT2: %s", strerror(-r));
		return r;
	}
	return 0;
}

static int kvm_get_cpuid(struct kvm_guest *g)
{
	int r;

	g->cpuid = calloc(1, sizeof(*g->cpuid) + KVM_MAX_CPUID_ENTRIES * sizeof(g->cpuid->entries[0]));
	if (!g->cpuid)
		return -ENOMEM;
	g->cpuid->nent = KVM_MAX_CPUID_ENTRIES;
	if (ioctl(g->kvm_fd, KVM_GET_SUPPORTED_CPUID, g->cpuid) < 0) {
		r = -errno;
		kvm_report(g, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-r));
		return r;
	}
	return 0;
}

static void kvm_code_segment(struct kvm_segment *s)
{
	*s = (struct kvm_segment){
		.limit = 0xffffffff,
		.selector = KVM_SEL_CODE,
		.type = 11, /* execute/read, accessed */
		.present = 1,
		.s = 1,
		.l = 1,
		.g = 1,
	};
}

static void kvm_data_segment(struct kvm_segment *s)
{
	*s = (struct kvm_segment){
		.limit = 0xffffffff,
		.selector = KVM_SEL_DATA,
		.type = 3, /* read/write, accessed */
		.present = 1,
		.db = 1,
		.s = 1,
		.g = 1,
	};
}

/* 64-bit mode from the first instruction: the state kvm.h promises. */
static int kvm_cpu_init_state(struct kvm_guest *g, struct kvm_cpu *c)
{
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
	struct kvm_sregs sregs;
	struct kvm_regs regs = {
		.rip = g->entry,
		.rsp = g->ram_size - (uint64_t)c->index * KVM_STACK_SIZE,
		.rdi = c->index,
		.rsi = g->base.vcpu_num,
		.rflags = 0x2,
	};

	if (ioctl(c->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	kvm_code_segment(&sregs.cs);
	kvm_data_segment(&sregs.ds);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.gdt.base = KVM_GDT_ADDR;
	sregs.gdt.limit = 3 * 8 - 1;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_PG;
	sregs.cr3 = KVM_PML4_ADDR;
	sregs.cr4 = CR4_PAE;
	sregs.efer = EFER_LME | EFER_LMA;
	/* With the in-kernel LAPIC, vCPUs other than 0 would wait for INIT/SIPI. */
	if (ioctl(c->fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(c->fd, KVM_SET_REGS, &regs) < 0 ||
	    ioctl(c->fd, KVM_SET_MP_STATE, &mp) < 0)
		return -errno;
	return 0;
}

static int kvm_cpu_create(struct kvm_guest *g, struct kvm_cpu *c)
{
	void *run;
	int r;

	c->fd = ioctl(g->vm_fd, KVM_CREATE_VCPU, (unsigned long)c->index);
	if (c->fd < 0) {
		r = -errno;
		goto fail;
	}
	run = mmap(NULL, g->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (run == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	c->run = run;
	r = ioctl(c->fd, KVM_SET_CPUID2, g->cpuid) < 0 ? -errno : 0;
	if (!r)
		r = kvm_cpu_init_state(g, c);
	if (!r)
		return 0;
fail:
	kvm_report(g, "vcpu %u: cannot set it up: %s", c->index, strerror(-r));
	return r;
}

static void kvm_destroy(struct hsm_vm *base)
{
	struct kvm_guest *g = to_guest(base);

	/* No on_stop once the broker takes the VM down. */
	atomic_store(&g->ended, true);
	/* One kick is enough: immediate_exit stays set, so a vCPU that
	 * enters KVM_RUN after it returns at once, and one inside is
	 * signalled. */
	kvm_stop_cpus(g);
	/* What a vCPU waits for, and whatever it posts on its way out (the
	 * rest of a string I/O or an MMIO split), completes at once. */
	dispatch_close(&g->d);
	for (unsigned i = 0; i < g->base.vcpu_num; i++) {
		if (g->cpus[i].created)
			pthread_join(g->cpus[i].thread, NULL);
		g->cpus[i].created = false;
	}
	/* No vCPU thread is left to kick another: their pages can go. */
	for (unsigned i = 0; i < g->base.vcpu_num; i++) {
		struct kvm_cpu *c = &g->cpus[i];

		if (c->run)
			munmap(c->run, g->run_size);
		c->run = NULL;
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
	}
	if (g->vm_fd >= 0)
		close(g->vm_fd);
	if (g->kvm_fd >= 0)
		close(g->kvm_fd);
	if (g->ram)
		munmap(g->ram, g->ram_size);
	pthread_mutex_destroy(&g->kick_lock);
	free(g->cpuid);
	free(g->page);
	free(g);
}

static int kvm_create(const struct hsm_vm_params *p, struct hsm_vm **ret)
{
	static pthread_once_t kick_once = PTHREAD_ONCE_INIT;
	struct kvm_guest *g;
	int r;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->base.ops = &kvm_ops;
	g->base.vcpu_num = p->vcpus;
	g->kvm_fd = g->vm_fd = -1;
	for (unsigned i = 0; i < ACRN_IO_REQUEST_MAX; i++) {
		g->cpus[i].g = g;
		g->cpus[i].index = i;
		g->cpus[i].fd = -1;
	}
	g->exit_port = p->exit_port;
	g->on_stop = p->on_stop;
	g->report = p->report;
	g->opaque = p->opaque;
	snprintf(g->name, sizeof(g->name), "%s", p->name);
	pthread_mutex_init(&g->kick_lock, NULL);
	pthread_once(&kick_once, kvm_install_kick);

	g->page = aligned_alloc(4096, sizeof(*g->page));
	if (!g->page) {
		r = -ENOMEM;
		goto err;
	}
	g->base.page = g->page;
	g->base.local = &g->d;
	r = dispatch_init(&g->d, g->page, p->vcpus);
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
	if (!r)
		r = kvm_load_image(g, p->image);
	if (!r)
		r = kvm_open(g);
	if (!r)
		r = kvm_map_memory(g);
	if (!r)
		r = kvm_setup_irqchip(g);
	if (!r)
		r = kvm_get_cpuid(g);
	for (unsigned i = 0; !r && i < p->vcpus; i++)
		r = kvm_cpu_create(g, &g->cpus[i]);
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
	struct kvm_guest *g = to_guest(base);
	int r;

	for (unsigned i = 0; i < g->base.vcpu_num; i++) {
		r = -pthread_create(&g->cpus[i].thread, NULL, kvm_cpu_main, &g->cpus[i]);
		if (r) {
			kvm_stop_cpus(g);
			return r;
		}
		g->cpus[i].created = true;
	}
	return 0;
}

static int kvm_irq_line(struct kvm_guest *g, uint32_t gsi, uint32_t level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = level };

	return ioctl(g->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
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

	/* The default routing covers the IOAPIC's pins (the PIC's are 0..15). */
	if (gsi >= KVM_IOAPIC_NUM_PINS || op > HSM_IRQ_PULSE_LOW)
		return -EINVAL;
	r = kvm_irq_line(g, gsi, levels[op].first);
	if (!r && levels[op].pulse)
		r = kvm_irq_line(g, gsi, levels[op].second);
	return r;
}

static int kvm_inject_msi(struct hsm_vm *base, uint64_t addr, uint64_t data)
{
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = (uint32_t)data,
	};

	if (data > UINT32_MAX)
		return -EINVAL;
	/* > 0 delivered, 0 blocked by the guest: both are the guest's business. */
	return ioctl(to_guest(base)->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
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
};
