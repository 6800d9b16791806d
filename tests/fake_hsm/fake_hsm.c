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
 *  - SET_MEMSEG: type RAM or MMIO (-EINVAL); RAM must be mapped (-EFAULT)
 *    and at most 256 mappings (-ENOMEM);
 *  - unknown ioctls: -ENOTTY; so are those the broker does not use
 *    (SET_VCPU_REGS, IOEVENTFD, IRQFD, ...), so that a broker that starts
 *    to use one fails loudly here until the fake learns it;
 * and those the hypervisor makes: START_VM only for a created (or reset)
 * VM, RESET_VM and DESTROY_VM only for a paused one (its -1 reaches user
 * space as -EPERM; a refused DESTROY_VM has already destroyed the client).
 * Stricter than the driver, to catch broker bugs, and marked "fake:" in
 * the log: the request page and RAM must be whole, mapped pages (the driver
 * would silently use the page around them), and a NOTIFY for a vCPU with
 * nothing pending or with another VM's vmid is flagged.
 *
 * The broker's request page becomes the dispatcher's page. vCPUs run the
 * scripts named in FAKE_HSM_SCRIPTS (paths separated by ':', an empty entry
 * for an idle vCPU; the same for every VM), from START_VM on; PAUSE_VM
 * stops them before their next access, RESET_VM makes them start over.
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

#include "acrn.h"
#include "dispatch.h"
#include "sim.h"

#define FAKE_EXPORT __attribute__((visibility("default")))
#define FAKE_PATH ACRN_HSM_PATH
#define FAKE_MAX_FDS 4096
#define FAKE_PAGE 4096ull
/* ACRN_MEM_MAPPING_MAX in the driver. */
#define FAKE_MAX_MAPPINGS 256
#define FAKE_LINE 512

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
	unsigned mappings;
	struct dispatch d;
	struct sim_cpus *cpus;
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
static void fake_release(struct fake_vm *vm)
{
	vm->cpus = sim_cpus_free(vm->cpus);
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
	if (!fake_mapped(m->vma_base, m->len))
		return -EFAULT;
	if (vm->mappings == FAKE_MAX_MAPPINGS)
		return -ENOMEM;
	vm->mappings++;
	return 0;
}

static int fake_start_vm(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	if (vm->state != FAKE_CREATED)
		return -EPERM;
	vm->state = FAKE_RUNNING;
	return sim_cpus_start(vm->cpus);
}

static int fake_pause_vm(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	vm->state = FAKE_PAUSED;
	sim_cpus_pause(vm->cpus);
	return 0;
}

static int fake_reset_vm(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	if (vm->state != FAKE_PAUSED)
		return -EPERM;
	vm->state = FAKE_CREATED;
	sim_cpus_reset(vm->cpus);
	return 0;
}

/* acrn_vm_destroy. */
static int fake_destroy_vm(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	/* acrn_ioreq_deinit runs before the hypercall, whatever it says. */
	dispatch_destroy_default(&vm->d);
	vm->has_buf = false;
	/* The VM lives on in the hypervisor, and so do its vCPUs. */
	if (vm->state != FAKE_PAUSED) {
		fake_remark(c, "the hypervisor destroys only a paused VM");
		return -EPERM;
	}
	vm->cpus = sim_cpus_free(vm->cpus);
	vm->valid = false;
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

	snprintf(c->args, sizeof(c->args), "gsi=%u op=%u", gsi, op);
	return sim_cpus_set_irqline(vm->cpus, gsi, (enum hsm_irq_op)op);
}

static int fake_inject_msi(struct fake_vm *vm, unsigned long arg, struct fake_call *c)
{
	const struct acrn_msi_entry *msi = (const struct acrn_msi_entry *)arg;

	if (!msi)
		return -EFAULT;
	snprintf(c->args, sizeof(c->args), "addr=0x%" PRIx64 " data=0x%" PRIx64, (uint64_t)msi->msi_addr, (uint64_t)msi->msi_data);
	sim_cpus_inject_msi(vm->cpus);
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
