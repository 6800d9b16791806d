/* A KVM VM whose exits go through a dispatcher: see kvmvm.h.
 *
 * Teardown order (kvmvm_free, after the caller closed the dispatcher): stop
 * every vCPU, join every vCPU thread, and only then unmap and close what the
 * vCPUs used. Any thread may kick every vCPU (kvmvm_stop), so no vCPU's
 * kvm_run page may go while another vCPU thread still runs. */
#include "kvmvm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dispatch.h"

/* Kicks a vCPU thread out of KVM_RUN: its handler does nothing, the EINTR
 * is the point. */
#define KVMVM_KICK_SIGNAL SIGRTMIN

#define KVMVM_MAX_CPUID_ENTRIES 256
/* GSIs above the irqchip's pins, routed to the MSIs of irqfds. */
#define KVMVM_MAX_MSI_ROUTES 256

struct kvmvm;

struct kvmvm_cpu {
	struct kvmvm *k;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool created; /* pthread_create succeeded: join it */
	/* Set by the thread itself before it first looks at `stopping`, so a
	 * stopper either sees it running (and signals it) or the thread sees
	 * `stopping`. Guarded by kick_lock for the stopper. */
	pthread_t self;
	_Atomic bool running;
};

/* An irqfd's MSI: its own GSI. */
struct kvmvm_msi_route {
	int fd; /* -1: free */
	uint64_t addr;
	uint32_t data;
};

struct kvmvm {
	char name[32];
	struct dispatch *d;
	bool polling;
	hsm_report_fn report;
	void (*crashed)(void *opaque);
	void *opaque;
	int kvm_fd, vm_fd;
	size_t run_size;
	unsigned slots;
	struct kvm_cpuid2 *cpuid;
	_Atomic bool stopping;
	_Atomic bool crash_told;
	pthread_mutex_t kick_lock;
	unsigned vcpus;
	struct kvmvm_cpu cpus[ACRN_IO_REQUEST_MAX];
	struct kvmvm_msi_route msi[KVMVM_MAX_MSI_ROUTES];
};

static void kvmvm_report(struct kvmvm *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void kvmvm_report(struct kvmvm *k, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	if (!k->report)
		return;
	n = snprintf(line, sizeof(line), "vm %s: ", k->name);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	k->report(k->opaque, line);
}

static void kvmvm_kick_handler(int sig)
{
}

static void kvmvm_install_kick(void)
{
	/* KVM_RUN returns EINTR all the same (it is never restarted); the rest
	 * of what a vCPU thread does, the broker's logging included, must not
	 * notice the kick. */
	struct sigaction sa = { .sa_handler = kvmvm_kick_handler, .sa_flags = SA_RESTART };

	sigemptyset(&sa.sa_mask);
	sigaction(KVMVM_KICK_SIGNAL, &sa, NULL);
}

void kvmvm_stop(struct kvmvm *k)
{
	atomic_store(&k->stopping, true);
	pthread_mutex_lock(&k->kick_lock);
	for (unsigned i = 0; i < k->vcpus; i++) {
		struct kvmvm_cpu *c = &k->cpus[i];

		if (c->run)
			__atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		if (atomic_load(&c->running))
			pthread_kill(c->self, KVMVM_KICK_SIGNAL);
	}
	pthread_mutex_unlock(&k->kick_lock);
}

/* ---- the exit path: one access through the HSM ---- */

/* Posts one access in the vCPU's slot, as the hypervisor would, and waits
 * for its completion. Returns the value of a read. */
static uint64_t kvmvm_access(struct kvmvm_cpu *c, uint32_t type, bool write, uint64_t addr, uint32_t size,
			     uint64_t value)
{
	struct dispatch_access a = {
		.type = type,
		.dir = write ? ACRN_IOREQ_DIR_WRITE : ACRN_IOREQ_DIR_READ,
		.addr = addr,
		.size = size,
		.value = value,
	};

	return dispatch_access(c->k->d, c->index, &a, c->k->polling);
}

/* String I/O (rep ins/outs) comes as one exit with count elements side by
 * side in the data area: one request each, in order. */
static void kvmvm_pio(struct kvmvm_cpu *c)
{
	struct kvm_run *run = c->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;
	uint32_t size = run->io.size;

	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		uint64_t v = 0;

		if (write)
			memcpy(&v, data, size);
		v = kvmvm_access(c, ACRN_IOREQ_TYPE_PORTIO, write, run->io.port, size, v);
		if (!write)
			memcpy(data, &v, size);
	}
}

/* KVM splits an access that crosses a page into fragments of any length up
 * to 8: each becomes the naturally sized requests that cover it. */
static void kvmvm_mmio(struct kvmvm_cpu *c)
{
	struct kvm_run *run = c->run;
	uint32_t len = run->mmio.len, done = 0;

	while (done < len) {
		uint32_t size = len - done >= 8 ? 8 : len - done >= 4 ? 4 : len - done >= 2 ? 2 : 1;
		uint64_t v = 0;

		if (run->mmio.is_write)
			memcpy(&v, run->mmio.data + done, size);
		v = kvmvm_access(c, ACRN_IOREQ_TYPE_MMIO, run->mmio.is_write, run->mmio.phys_addr + done, size, v);
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

static const char *kvmvm_exit_name(uint32_t reason)
{
	if (reason < sizeof(exit_names) / sizeof(exit_names[0]) && exit_names[reason])
		return exit_names[reason];
	return "an unknown exit";
}

/* The guest cannot go on: say why, where, and stop the VM. */
static void kvmvm_crash(struct kvmvm_cpu *c, const char *what)
{
	struct kvmvm *k = c->k;
	struct kvm_regs regs;
	char rip[32] = "an unknown rip";

	if (ioctl(c->fd, KVM_GET_REGS, &regs) == 0)
		snprintf(rip, sizeof(rip), "rip 0x%llx", (unsigned long long)regs.rip);
	kvmvm_report(k, "vcpu %u: %s at %s; stopping the VM", c->index, what, rip);
	kvmvm_stop(k);
	if (!atomic_exchange(&k->crash_told, true) && k->crashed)
		k->crashed(k->opaque);
}

static void kvmvm_unexpected(struct kvmvm_cpu *c)
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
		snprintf(what, sizeof(what), "unexpected exit %s (%u)", kvmvm_exit_name(run->exit_reason),
			 run->exit_reason);
		break;
	}
	kvmvm_crash(c, what);
}

/* Runs the vCPU until the VM stops. */
static void kvmvm_run(struct kvmvm_cpu *c)
{
	struct kvmvm *k = c->k;

	while (!atomic_load(&k->stopping)) {
		if (ioctl(c->fd, KVM_RUN, 0) < 0) {
			char what[96];

			if (errno == EINTR || errno == EAGAIN)
				continue;
			snprintf(what, sizeof(what), "KVM_RUN failed: %s", strerror(errno));
			kvmvm_crash(c, what);
			return;
		}
		switch (c->run->exit_reason) {
		case KVM_EXIT_IO:
			kvmvm_pio(c);
			break;
		case KVM_EXIT_MMIO:
			kvmvm_mmio(c);
			break;
		default:
			/* HLT included: with the in-kernel LAPIC, KVM waits
			 * for the interrupt itself and never exits for it. */
			kvmvm_unexpected(c);
			return;
		}
	}
}

static void *kvmvm_cpu_main(void *arg)
{
	struct kvmvm_cpu *c = arg;
	sigset_t kick;

	sigemptyset(&kick);
	sigaddset(&kick, KVMVM_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	c->self = pthread_self();
	atomic_store(&c->running, true);
	kvmvm_run(c);
	/* Under kick_lock: a stopper that saw `running` signals a thread
	 * that still exists. */
	pthread_mutex_lock(&c->k->kick_lock);
	atomic_store(&c->running, false);
	pthread_mutex_unlock(&c->k->kick_lock);
	return NULL;
}

/* ---- building the VM ---- */

static int kvmvm_open(struct kvmvm *k)
{
	int r;

	k->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->kvm_fd < 0) {
		r = -errno;
		kvmvm_report(k, "/dev/kvm: %s: the kvm backend needs KVM", strerror(-r));
		return r;
	}
	if (ioctl(k->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		kvmvm_report(k, "/dev/kvm: unsupported KVM API version");
		return -ENOTSUP;
	}
	k->vm_fd = ioctl(k->kvm_fd, KVM_CREATE_VM, 0);
	if (k->vm_fd < 0) {
		r = -errno;
		kvmvm_report(k, "/dev/kvm: cannot create a VM: %s", strerror(-r));
		return r;
	}
	r = ioctl(k->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (r < (int)sizeof(struct kvm_run)) {
		kvmvm_report(k, "/dev/kvm: bad vCPU mmap size");
		return -ENOTSUP;
	}
	k->run_size = r;
	return 0;
}

static int kvmvm_setup_irqchip(struct kvmvm *k)
{
	struct kvm_pit_config pit = { .flags = 0 };
	int r;

	/* Both before any vCPU, so every vCPU gets an in-kernel LAPIC. */
	if (ioctl(k->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		r = -errno;
		kvmvm_report(k, "KVM_CREATE_IRQCHIP: %s", strerror(-r));
		return r;
	}
	if (ioctl(k->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		r = -errno;
		kvmvm_report(k, "KVM_CREATE_PIT2: %s", strerror(-r));
		return r;
	}
	return 0;
}

static int kvmvm_get_cpuid(struct kvmvm *k)
{
	int r;

	k->cpuid = calloc(1, sizeof(*k->cpuid) + KVMVM_MAX_CPUID_ENTRIES * sizeof(k->cpuid->entries[0]));
	if (!k->cpuid)
		return -ENOMEM;
	k->cpuid->nent = KVMVM_MAX_CPUID_ENTRIES;
	if (ioctl(k->kvm_fd, KVM_GET_SUPPORTED_CPUID, k->cpuid) < 0) {
		r = -errno;
		kvmvm_report(k, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-r));
		return r;
	}
	return 0;
}

static int kvmvm_cpu_create(struct kvmvm *k, struct kvmvm_cpu *c)
{
	void *run;
	int r;

	c->fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, (unsigned long)c->index);
	if (c->fd < 0) {
		r = -errno;
		goto fail;
	}
	run = mmap(NULL, k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (run == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	c->run = run;
	if (ioctl(c->fd, KVM_SET_CPUID2, k->cpuid) == 0)
		return 0;
	r = -errno;
fail:
	kvmvm_report(k, "vcpu %u: cannot set it up: %s", c->index, strerror(-r));
	return r;
}

int kvmvm_create(const struct kvmvm_params *p, struct kvmvm **ret)
{
	static pthread_once_t kick_once = PTHREAD_ONCE_INIT;
	struct kvmvm *k;
	int r;

	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	snprintf(k->name, sizeof(k->name), "%s", p->name);
	k->d = p->d;
	k->polling = p->polling;
	k->report = p->report;
	k->crashed = p->crashed;
	k->opaque = p->opaque;
	k->vcpus = p->vcpus;
	k->kvm_fd = k->vm_fd = -1;
	for (unsigned i = 0; i < ACRN_IO_REQUEST_MAX; i++) {
		k->cpus[i].k = k;
		k->cpus[i].index = i;
		k->cpus[i].fd = -1;
	}
	for (unsigned i = 0; i < KVMVM_MAX_MSI_ROUTES; i++)
		k->msi[i].fd = -1;
	pthread_mutex_init(&k->kick_lock, NULL);
	pthread_once(&kick_once, kvmvm_install_kick);
	r = kvmvm_open(k);
	if (!r)
		r = kvmvm_setup_irqchip(k);
	if (!r)
		r = kvmvm_get_cpuid(k);
	for (unsigned i = 0; !r && i < k->vcpus; i++)
		r = kvmvm_cpu_create(k, &k->cpus[i]);
	if (r) {
		kvmvm_free(k);
		return r;
	}
	*ret = k;
	return 0;
}

int kvmvm_map(struct kvmvm *k, uint64_t gpa, uint64_t size, void *host)
{
	struct kvm_userspace_memory_region region = {
		.slot = k->slots,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)host,
	};
	int r;

	if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		r = -errno;
		kvmvm_report(k, "KVM_SET_USER_MEMORY_REGION 0x%llx+0x%llx: %s", (unsigned long long)gpa,
			     (unsigned long long)size, strerror(-r));
		return r;
	}
	k->slots++;
	return 0;
}

int kvmvm_get_sregs(struct kvmvm *k, unsigned vcpu, struct kvm_sregs *sregs)
{
	return ioctl(k->cpus[vcpu].fd, KVM_GET_SREGS, sregs) < 0 ? -errno : 0;
}

int kvmvm_set_state(struct kvmvm *k, unsigned vcpu, const struct kvm_regs *regs, const struct kvm_sregs *sregs)
{
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
	int fd = k->cpus[vcpu].fd;

	/* With the in-kernel LAPIC, vCPUs other than 0 would wait for INIT/SIPI. */
	if (ioctl(fd, KVM_SET_SREGS, sregs) < 0 || ioctl(fd, KVM_SET_REGS, regs) < 0 ||
	    ioctl(fd, KVM_SET_MP_STATE, &mp) < 0) {
		int r = -errno;

		kvmvm_report(k, "vcpu %u: cannot set its registers: %s", vcpu, strerror(-r));
		return r;
	}
	return 0;
}

int kvmvm_start(struct kvmvm *k)
{
	int r;

	for (unsigned i = 0; i < k->vcpus; i++) {
		r = -pthread_create(&k->cpus[i].thread, NULL, kvmvm_cpu_main, &k->cpus[i]);
		if (r) {
			kvmvm_stop(k);
			return r;
		}
		k->cpus[i].created = true;
	}
	return 0;
}

int kvmvm_irq_line(struct kvmvm *k, uint32_t gsi, uint32_t level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = level };

	/* The default routing covers the IOAPIC's pins (the PIC's are 0..15). */
	if (gsi >= KVM_IOAPIC_NUM_PINS)
		return -EINVAL;
	return ioctl(k->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

int kvmvm_msi(struct kvmvm *k, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};

	/* > 0 delivered, 0 blocked by the guest: both are the guest's business. */
	return ioctl(k->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

int kvmvm_ioeventfd(struct kvmvm *k, const struct hsm_ioeventfd *e, int fd, bool deassign)
{
	struct kvm_ioeventfd io = {
		.datamatch = e->data,
		.addr = e->addr,
		.len = e->size,
		.fd = fd,
		.flags = (e->type == ACRN_IOREQ_TYPE_PORTIO ? KVM_IOEVENTFD_FLAG_PIO : 0) |
			 (e->datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) | (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0),
	};
	int r;

	if (ioctl(k->vm_fd, KVM_IOEVENTFD, &io) == 0)
		return 0;
	r = -errno;
	kvmvm_report(k, "KVM_IOEVENTFD %s 0x%llx size %u: %s", deassign ? "deassign" : "assign",
		     (unsigned long long)e->addr, e->size, strerror(-r));
	return r;
}

/* KVM_SET_GSI_ROUTING replaces the whole table: the irqchip's own routes
 * (KVM_CREATE_IRQCHIP's: GSI 0..15 to the PICs and the IOAPIC, 16..23 to
 * the IOAPIC) and one MSI route per irqfd that has one, at GSI 24 + i. */
static int kvmvm_set_routing(struct kvmvm *k)
{
	struct kvm_irq_routing *rt;
	unsigned n = 0;
	int r = 0;

	rt = calloc(1, sizeof(*rt) + (16 * 2 + 8 + KVMVM_MAX_MSI_ROUTES) * sizeof(rt->entries[0]));
	if (!rt)
		return -ENOMEM;
	for (uint32_t gsi = 0; gsi < KVM_IOAPIC_NUM_PINS; gsi++) {
		rt->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = gsi,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi },
		};
		if (gsi < 16)
			rt->entries[n++] = (struct kvm_irq_routing_entry){
				.gsi = gsi,
				.type = KVM_IRQ_ROUTING_IRQCHIP,
				.u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
					       .pin = gsi % 8 },
			};
	}
	for (unsigned i = 0; i < KVMVM_MAX_MSI_ROUTES; i++) {
		if (k->msi[i].fd < 0)
			continue;
		rt->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = KVM_IOAPIC_NUM_PINS + i,
			.type = KVM_IRQ_ROUTING_MSI,
			.u.msi = { .address_lo = (uint32_t)k->msi[i].addr,
				   .address_hi = (uint32_t)(k->msi[i].addr >> 32),
				   .data = k->msi[i].data },
		};
	}
	rt->nr = n;
	if (ioctl(k->vm_fd, KVM_SET_GSI_ROUTING, rt) < 0) {
		r = -errno;
		kvmvm_report(k, "KVM_SET_GSI_ROUTING: %s", strerror(-r));
	}
	free(rt);
	return r;
}

static int kvmvm_irqfd_ioctl(struct kvmvm *k, int fd, uint32_t gsi, bool deassign)
{
	struct kvm_irqfd irqfd = { .fd = (uint32_t)fd, .gsi = gsi, .flags = deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0 };
	int r;

	if (ioctl(k->vm_fd, KVM_IRQFD, &irqfd) == 0)
		return 0;
	r = -errno;
	kvmvm_report(k, "KVM_IRQFD %s gsi %u: %s", deassign ? "deassign" : "assign", gsi, strerror(-r));
	return r;
}

int kvmvm_irqfd(struct kvmvm *k, const struct hsm_irqfd *f, int fd, bool deassign)
{
	unsigned i;
	int r;

	if (!f->msi) {
		if (f->gsi >= KVM_IOAPIC_NUM_PINS)
			return -EINVAL;
		return kvmvm_irqfd_ioctl(k, fd, f->gsi, deassign);
	}
	if (deassign) {
		for (i = 0; i < KVMVM_MAX_MSI_ROUTES && k->msi[i].fd != fd; i++)
			;
		if (i == KVMVM_MAX_MSI_ROUTES)
			return -ENOENT;
		r = kvmvm_irqfd_ioctl(k, fd, KVM_IOAPIC_NUM_PINS + i, true);
		if (r)
			return r;
		k->msi[i].fd = -1;
		/* A stale route to nobody is harmless: no failure to report. */
		kvmvm_set_routing(k);
		return 0;
	}
	for (i = 0; i < KVMVM_MAX_MSI_ROUTES && k->msi[i].fd >= 0; i++)
		;
	if (i == KVMVM_MAX_MSI_ROUTES)
		return -ENOSPC;
	k->msi[i] = (struct kvmvm_msi_route){ .fd = fd, .addr = f->msi_addr, .data = f->msi_data };
	r = kvmvm_set_routing(k);
	if (!r)
		r = kvmvm_irqfd_ioctl(k, fd, KVM_IOAPIC_NUM_PINS + i, false);
	if (r)
		k->msi[i].fd = -1;
	return r;
}

struct kvmvm *kvmvm_free(struct kvmvm *k)
{
	if (!k)
		return NULL;
	/* One kick is enough: immediate_exit stays set, so a vCPU that enters
	 * KVM_RUN after it returns at once, and one inside is signalled. */
	kvmvm_stop(k);
	for (unsigned i = 0; i < k->vcpus; i++) {
		if (k->cpus[i].created)
			pthread_join(k->cpus[i].thread, NULL);
		k->cpus[i].created = false;
	}
	/* No vCPU thread is left to kick another: their pages can go. */
	for (unsigned i = 0; i < k->vcpus; i++) {
		struct kvmvm_cpu *c = &k->cpus[i];

		if (c->run)
			munmap(c->run, k->run_size);
		c->run = NULL;
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
	}
	if (k->vm_fd >= 0)
		close(k->vm_fd);
	if (k->kvm_fd >= 0)
		close(k->kvm_fd);
	pthread_mutex_destroy(&k->kick_lock);
	free(k->cpuid);
	free(k);
	return NULL;
}
