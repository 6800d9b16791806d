/* The kvm backend on its own, with the guests of tests/guests/.
 *
 * Guest RAM, doorbells and irqfds (issue 15): the guest's RAM is the memfd
 * the VM exposes (sealed, one region), and what the guest writes there a
 * mapping of that memfd sees; an ioeventfd takes a guest's write without a
 * trip to the default client, by the HSM's rules; an irqfd's eventfd
 * written raises the guest's line or MSI.
 *
 * The VM taken down while its guest is busy. Issue 14: stopping a
 * running guest crashed the broker in about one stop in six, because the
 * teardown unmapped a joined vCPU's kvm_run page and then wrote into it
 * while kicking a vCPU that was still running.
 *
 * Each round boots tests/guests/busy on VCPUS vCPUs (every one of them
 * exits to the VMM without end), serves their requests from a default
 * client of its own until each vCPU has had WARM requests done, and stops
 * the VM at once, in one of three ways that the broker and a crashing
 * broker can produce. Needs /dev/kvm: without it the executable exits 77. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dispatch.h"
#include "hsm.h"
#include "kvm.h"

#define IMAGE IOREQ_BINDIR "/guests/busy.elf"
#define VCPUS 4
/* Enough for the old teardown to crash in every run (measured:
 * see the commit that fixed it). */
#define ROUNDS 60
/* Requests each vCPU has had done before the stop. */
#define WARM 4
/* Booting is ring-0 code, which KVM-PVM emulates slowly. */
#define BOOT_S 60
/* A stop that takes longer has hung. */
#define STOP_S 20

enum stop_mode {
	/* The broker's order: the client answers until it is destroyed, then
	 * the VM goes. */
	STOP_SERVING,
	/* The client holds every request from the warm-up on, so the vCPUs
	 * are blocked in the HSM when it is destroyed. */
	STOP_HELD,
	/* hsm_destroy with the default client still there and every vCPU
	 * waiting for it: what a broker that lost its VM thread would do. */
	STOP_LIVE_CLIENT,
	STOP_MODES,
};

struct round {
	struct hsm_vm *vm;
	enum stop_mode mode;
	pthread_t client;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned done[VCPUS];
	bool warm;
	_Atomic uint32_t held;
	_Atomic int stops;
	_Atomic int reports;
	char report[512];
};

static void on_stop(void *opaque, int status)
{
	struct round *rd = opaque;

	atomic_fetch_add(&rd->stops, 1);
}

static void on_report(void *opaque, const char *line)
{
	struct round *rd = opaque;

	if (atomic_fetch_add(&rd->reports, 1) == 0)
		snprintf(rd->report, sizeof(rd->report), "%s", line);
}

static bool all_warm(const struct round *rd)
{
	for (unsigned v = 0; v < VCPUS; v++)
		if (rd->done[v] < WARM)
			return false;
	return true;
}

/* Reads see zero; writes are dropped. */
static void answer(struct acrn_io_request *req)
{
	struct dispatch_access a;

	if (!dispatch_decode(req, &a) && a.dir == ACRN_IOREQ_DIR_READ)
		dispatch_set_value(req, 0);
}

/* The default client, scanning the slots as acrn-dm does. */
static void *client_main(void *arg)
{
	struct round *rd = arg;
	struct hsm_vm *vm = rd->vm;
	bool warm = false;

	while (hsm_attach(vm, &rd->held) == 0) {
		if (warm && rd->mode == STOP_LIVE_CLIENT)
			break;
		for (unsigned v = 0; v < VCPUS; v++) {
			struct acrn_io_request *req = &vm->page->req_slot[v];

			if (__atomic_load_n(&req->processed, __ATOMIC_ACQUIRE) != ACRN_IOREQ_STATE_PROCESSING ||
			    __atomic_load_n(&req->kernel_handled, __ATOMIC_RELAXED) || (atomic_load(&rd->held) & (1u << v)))
				continue;
			if (warm) {
				atomic_fetch_or(&rd->held, 1u << v);
				continue;
			}
			answer(req);
			assert_int_equal(hsm_complete(vm, v), 0);
			pthread_mutex_lock(&rd->lock);
			rd->done[v]++;
			if (all_warm(rd) && !rd->warm) {
				rd->warm = true;
				pthread_cond_signal(&rd->cond);
			}
			/* Only the holding modes stop answering. */
			warm = rd->warm && rd->mode != STOP_SERVING;
			pthread_mutex_unlock(&rd->lock);
		}
	}
	return NULL;
}

static void wait_warm(struct round *rd)
{
	struct timespec until;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += BOOT_S;
	pthread_mutex_lock(&rd->lock);
	while (!rd->warm && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&rd->cond, &rd->lock, &until);
	pthread_mutex_unlock(&rd->lock);
	if (!rd->warm) {
		print_error("the guest did not get %u requests done on each of %u vCPUs within %d s%s%s\n", WARM,
			    VCPUS, BOOT_S, rd->report[0] ? "; it reported: " : "", rd->report);
		fail();
	}
}

static void stop(struct round *rd)
{
	/* A teardown that hangs fails here, not at CTest's timeout. */
	alarm(STOP_S);
	if (rd->mode != STOP_LIVE_CLIENT)
		assert_int_equal(hsm_destroy_client(rd->vm), 0);
	pthread_join(rd->client, NULL);
	rd->vm = hsm_destroy(rd->vm);
	alarm(0);
}

static void one_round(enum stop_mode mode, unsigned jitter_us)
{
	struct round rd = { .mode = mode };
	struct hsm_vm_params p = {
		.name = "busy",
		.vcpus = VCPUS,
		.memory = 16 << 20,
		.image = IMAGE,
		.exit_port = 0xf4,
		.on_stop = on_stop,
		.report = on_report,
		.opaque = &rd,
	};
	struct timespec jitter = { .tv_nsec = (long)jitter_us * 1000 };

	pthread_mutex_init(&rd.lock, NULL);
	pthread_cond_init(&rd.cond, NULL);
	assert_int_equal(hsm_create(HSM_BACKEND_KVM, &p, &rd.vm), 0);
	assert_int_equal(hsm_create_client(rd.vm), 0);
	assert_int_equal(pthread_create(&rd.client, NULL, client_main, &rd), 0);
	assert_int_equal(hsm_start(rd.vm), 0);
	wait_warm(&rd);
	/* Land the stop anywhere in the vCPUs' exit loop. */
	nanosleep(&jitter, NULL);
	stop(&rd);
	/* The guest never stops by itself, and nothing went wrong inside. */
	assert_int_equal(atomic_load(&rd.stops), 0);
	if (atomic_load(&rd.reports)) {
		print_error("the backend reported: %s\n", rd.report);
		fail();
	}
	pthread_cond_destroy(&rd.cond);
	pthread_mutex_destroy(&rd.lock);
}

/* Stopped the broker's way, and twice as hard, many times over. */
static void test_stop_busy_guest(void **state)
{
	for (unsigned i = 0; i < ROUNDS; i++)
		one_round(i % STOP_MODES, (unsigned)rand() % 2000);
}

/* Created and destroyed without ever running, and destroyed before its
 * vCPUs got anything done. */
static void test_stop_before_running(void **state)
{
	struct hsm_vm_params p = { .name = "idle", .vcpus = VCPUS, .memory = 16 << 20, .image = IMAGE };
	struct hsm_vm *vm;

	assert_int_equal(hsm_create(HSM_BACKEND_KVM, &p, &vm), 0);
	hsm_destroy(vm);
	assert_int_equal(hsm_create(HSM_BACKEND_KVM, &p, &vm), 0);
	assert_int_equal(hsm_start(vm), 0);
	hsm_destroy(vm);
}

/* ---- guest RAM, doorbells and irqfds ---- */

#define GUESTS IOREQ_BINDIR "/guests/"
#define RUN_S 30
#define GUEST_RAM (16ull << 20)

/* A VM of one vCPU, and a default client that hands each request to the
 * test's serve(), which fills in what a read returns. */
struct run {
	struct hsm_vm *vm;
	pthread_t client;
	_Atomic uint32_t held;
	void (*serve)(struct run *r, struct dispatch_access *a, struct acrn_io_request *req);
	void *priv;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopped;
	int status;
	_Atomic int reports;
	char report[512];
	/* What reached the default client, by port / MMIO address. */
	_Atomic unsigned to_client;
};

static void run_on_stop(void *opaque, int status)
{
	struct run *r = opaque;

	pthread_mutex_lock(&r->lock);
	r->stopped = true;
	r->status = status;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void run_on_report(void *opaque, const char *line)
{
	struct run *r = opaque;

	if (atomic_fetch_add(&r->reports, 1) == 0)
		snprintf(r->report, sizeof(r->report), "%s", line);
}

static void *run_client(void *arg)
{
	struct run *r = arg;
	struct hsm_vm *vm = r->vm;

	while (hsm_attach(vm, &r->held) == 0) {
		struct acrn_io_request *req = &vm->page->req_slot[0];
		struct dispatch_access a;

		if (__atomic_load_n(&req->processed, __ATOMIC_ACQUIRE) != ACRN_IOREQ_STATE_PROCESSING ||
		    __atomic_load_n(&req->kernel_handled, __ATOMIC_RELAXED))
			continue;
		assert_int_equal(dispatch_decode(req, &a), 0);
		atomic_fetch_add(&r->to_client, 1);
		r->serve(r, &a, req);
		assert_int_equal(hsm_complete(vm, 0), 0);
	}
	return NULL;
}

/* The VM with @image, its client attached, not started. */
static void run_create(struct run *r, const char *image, void *serve, void *priv)
{
	struct hsm_vm_params p = {
		.name = "dataplane",
		.vcpus = 1,
		.memory = GUEST_RAM,
		.image = image,
		.exit_port = 0xf4,
		.on_stop = run_on_stop,
		.report = run_on_report,
	};

	memset(r, 0, sizeof(*r));
	r->serve = serve;
	r->priv = priv;
	p.opaque = r;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	assert_int_equal(hsm_create(HSM_BACKEND_KVM, &p, &r->vm), 0);
	assert_int_equal(hsm_create_client(r->vm), 0);
	assert_int_equal(pthread_create(&r->client, NULL, run_client, r), 0);
}

/* Starts the guest and waits for its exit status. */
static int run_guest(struct run *r)
{
	struct timespec until;
	int status;

	assert_int_equal(hsm_start(r->vm), 0);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += RUN_S;
	pthread_mutex_lock(&r->lock);
	while (!r->stopped && pthread_cond_timedwait(&r->cond, &r->lock, &until) != ETIMEDOUT)
		;
	status = r->stopped ? r->status : -1;
	pthread_mutex_unlock(&r->lock);
	if (status) {
		print_error("the guest %s%s%s\n", status < 0 ? "did not stop in time" : "failed",
			    r->report[0] ? "; the VM reported: " : "", r->report);
		fail();
	}
	return status;
}

static void run_destroy(struct run *r)
{
	assert_int_equal(hsm_destroy_client(r->vm), 0);
	pthread_join(r->client, NULL);
	r->vm = hsm_destroy(r->vm);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
}

/* tests/guests/memory.c's layout. */
#define MEM_BUF 0x400000ull
#define MEM_REPLY 0x401000ull
#define MEM_WORDS 1024

/* The guest's READY: look at its RAM through a mapping of our own. */
static void serve_memory(struct run *r, struct dispatch_access *a, struct acrn_io_request *req)
{
	struct hsm_vm *vm = r->vm;
	uint32_t *ram;

	if (a->type != ACRN_IOREQ_TYPE_PORTIO || a->addr != 0x500 || a->dir != ACRN_IOREQ_DIR_WRITE) {
		if (a->dir == ACRN_IOREQ_DIR_READ)
			dispatch_set_value(req, ~0ull);
		return;
	}
	ram = mmap(NULL, vm->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->mem_fd, 0);
	assert_true(ram != MAP_FAILED);
	for (unsigned i = 0; i < MEM_WORDS; i++) {
		assert_int_equal(ram[MEM_BUF / 4 + i], 0x5a000000u | i);
		ram[MEM_REPLY / 4 + i] = 0xa5000000u | i;
	}
	munmap(ram, vm->mem_size);
	*(bool *)r->priv = true;
}

/* Guest RAM is one sealed memfd mapped at 0: what the guest writes a
 * mapping of it sees, what the mapping writes the guest reads. */
static void test_memory_shared(void **state)
{
	struct run r;
	bool checked = false;
	int seals;

	run_create(&r, GUESTS "memory.elf", serve_memory, &checked);
	assert_true(r.vm->mem_fd >= 0);
	assert_int_equal(r.vm->mem_size, GUEST_RAM);
	assert_int_equal(r.vm->n_regions, 1);
	assert_int_equal(r.vm->regions[0].gpa, 0);
	assert_int_equal(r.vm->regions[0].size, GUEST_RAM);
	assert_int_equal(r.vm->regions[0].offset, 0);
	/* A device that holds the memfd can neither shrink nor grow it. */
	seals = fcntl(r.vm->mem_fd, F_GET_SEALS);
	assert_int_equal(seals, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	assert_int_equal(ftruncate(r.vm->mem_fd, GUEST_RAM / 2), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(r.vm->mem_fd, GUEST_RAM * 2), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fallocate(r.vm->mem_fd, 0, GUEST_RAM, 4096), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fcntl(r.vm->mem_fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
	assert_int_equal(errno, EPERM);
	run_guest(&r);
	assert_true(checked);
	run_destroy(&r);
}

/* tests/guests/doorbell.c's ports and counts. */
#define DB_PIO 0x600
#define DB_MATCH 0x608
#define DB_MMIO 0xd0000000ull
#define DB_REPORT 0x620
#define DB_N 100

struct doorbells {
	unsigned at_pio, at_pio_next, at_mmio, at_match, other;
	unsigned reported, reports[2];
};

/* Everything that reaches the default client is counted; reads see 0x1234. */
static void serve_doorbell(struct run *r, struct dispatch_access *a, struct acrn_io_request *req)
{
	struct doorbells *d = r->priv;

	if (a->dir == ACRN_IOREQ_DIR_READ) {
		dispatch_set_value(req, 0x1234);
		return;
	}
	if (a->type == ACRN_IOREQ_TYPE_PORTIO && a->addr == DB_REPORT && d->reported < 2)
		d->reports[d->reported++] = (unsigned)a->value;
	else if (a->type == ACRN_IOREQ_TYPE_PORTIO && a->addr == DB_PIO)
		d->at_pio++;
	else if (a->type == ACRN_IOREQ_TYPE_PORTIO && a->addr == DB_PIO + 1)
		d->at_pio_next++;
	else if (a->type == ACRN_IOREQ_TYPE_PORTIO && a->addr == DB_MATCH)
		d->at_match++;
	else if (a->type == ACRN_IOREQ_TYPE_MMIO && a->addr == DB_MMIO)
		d->at_mmio++;
	else
		d->other++;
}

static uint64_t drain(int efd)
{
	uint64_t n = 0;

	if (read(efd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

/* The guest's doorbell writes reach the eventfds and never the default
 * client (the vCPU waits for nobody); a datamatch doorbell ignores other
 * values, and the HSM keeps them; reads of a doorbell return 0; deassigned,
 * every access reaches the client again. */
static void test_ioeventfd(void **state)
{
	int pio = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), mmio = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int match = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct hsm_ioeventfd e_pio = { .fd = pio, .type = ACRN_IOREQ_TYPE_PORTIO, .addr = DB_PIO, .size = 2 };
	struct hsm_ioeventfd e_mmio = { .fd = mmio, .type = ACRN_IOREQ_TYPE_MMIO, .addr = DB_MMIO, .size = 4 };
	struct hsm_ioeventfd e_match = {
		.fd = match, .type = ACRN_IOREQ_TYPE_PORTIO, .addr = DB_MATCH, .size = 4, .datamatch = true, .data = 7
	};
	struct doorbells d = { 0 };
	struct run r;

	run_create(&r, GUESTS "doorbell.elf", serve_doorbell, &d);
	assert_int_equal(hsm_ioeventfd(r.vm, &e_pio, false), 0);
	assert_int_equal(hsm_ioeventfd(r.vm, &e_mmio, false), 0);
	assert_int_equal(hsm_ioeventfd(r.vm, &e_match, false), 0);
	run_guest(&r);
	assert_int_equal(drain(pio), DB_N);
	assert_int_equal(drain(mmio), DB_N);
	assert_int_equal(drain(match), 3);
	/* Only the two reports reached the client: each reads 0. */
	assert_int_equal(atomic_load(&r.to_client), 2);
	assert_int_equal(d.reported, 2);
	assert_int_equal(d.reports[0], 0);
	assert_int_equal(d.reports[1], 0);
	run_destroy(&r);

	/* Assigned and deassigned again: the client sees it all. */
	memset(&d, 0, sizeof(d));
	run_create(&r, GUESTS "doorbell.elf", serve_doorbell, &d);
	assert_int_equal(hsm_ioeventfd(r.vm, &e_pio, false), 0);
	assert_int_equal(hsm_ioeventfd(r.vm, &e_mmio, false), 0);
	assert_int_equal(hsm_ioeventfd(r.vm, &e_match, false), 0);
	assert_int_equal(hsm_ioeventfd(r.vm, &e_pio, true), 0);
	assert_int_equal(hsm_ioeventfd(r.vm, &e_mmio, true), 0);
	assert_int_equal(hsm_ioeventfd(r.vm, &e_match, true), 0);
	assert_int_equal(hsm_ioeventfd(r.vm, &e_match, true), -ENOENT);
	run_guest(&r);
	assert_int_equal(drain(pio) + drain(mmio) + drain(match), 0);
	assert_int_equal(d.at_pio, DB_N);
	assert_int_equal(d.at_mmio, DB_N);
	assert_int_equal(d.at_match, 5);
	assert_int_equal(d.at_pio_next, 1);
	assert_int_equal(d.other, 0);
	assert_int_equal(d.reports[0], 0x1234);
	assert_int_equal(d.reports[1], 0x1234);
	run_destroy(&r);
	close(pio);
	close(mmio);
	close(match);
}

/* tests/guests/interrupts.c. */
#define IRQ_RING 0x630
#define IRQ_LINE 5
#define IRQ_VECTOR 0x40

struct irqfds {
	int line, msi;
};

static void serve_interrupts(struct run *r, struct dispatch_access *a, struct acrn_io_request *req)
{
	const struct irqfds *f = r->priv;
	static const uint64_t one = 1;

	if (a->dir == ACRN_IOREQ_DIR_READ) {
		dispatch_set_value(req, ~0ull);
		return;
	}
	if (a->type != ACRN_IOREQ_TYPE_PORTIO || a->addr != IRQ_RING)
		return;
	assert_int_equal(write(a->value == 1 ? f->line : f->msi, &one, sizeof(one)), sizeof(one));
}

/* Writing an irqfd's eventfd raises the guest's line (an edge through the
 * PIC) or its MSI (a vector of its LAPIC): its handlers run. */
static void test_irqfd(void **state)
{
	struct irqfds f = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
	struct hsm_irqfd line = { .fd = f.line, .gsi = IRQ_LINE };
	struct hsm_irqfd msi = { .fd = f.msi, .msi = true, .msi_addr = 0xfee00000, .msi_data = IRQ_VECTOR };
	struct run r;

	run_create(&r, GUESTS "interrupts.elf", serve_interrupts, &f);
	assert_int_equal(hsm_irqfd(r.vm, &line, false), 0);
	assert_int_equal(hsm_irqfd(r.vm, &msi, false), 0);
	run_guest(&r);
	/* Deassigned, and not twice. */
	assert_int_equal(hsm_irqfd(r.vm, &msi, true), 0);
	assert_int_equal(hsm_irqfd(r.vm, &line, true), 0);
	assert_int_equal(hsm_irqfd(r.vm, &line, true), -ENOENT);
	run_destroy(&r);
	close(f.line);
	close(f.msi);
}

/* What KVM has no room for: a GSI past the IOAPIC's pins; a doorbell in
 * RAM, which never exits. */
static void test_bad_registrations(void **state)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	struct hsm_irqfd line = { .fd = efd, .gsi = 24 };
	struct hsm_ioeventfd ram = { .fd = efd, .type = ACRN_IOREQ_TYPE_MMIO, .addr = 0x100000, .size = 4 };
	struct run r;

	run_create(&r, GUESTS "memory.elf", serve_memory, NULL);
	assert_int_equal(hsm_irqfd(r.vm, &line, false), -EINVAL);
	assert_int_equal(hsm_ioeventfd(r.vm, &ram, false), -EINVAL);
	line.gsi = 23;
	assert_int_equal(hsm_irqfd(r.vm, &line, false), 0);
	assert_int_equal(hsm_irqfd(r.vm, &line, false), -EEXIST);
	run_destroy(&r);
	close(efd);
}

/* Why /dev/kvm cannot be used here, or NULL. */
static const char *kvm_unusable(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	const char *why = NULL;

	if (fd < 0)
		return strerror(errno);
	if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		why = "not a KVM device";
	close(fd);
	return why;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory_shared),
		cmocka_unit_test(test_ioeventfd),
		cmocka_unit_test(test_irqfd),
		cmocka_unit_test(test_bad_registrations),
		cmocka_unit_test(test_stop_busy_guest),
		cmocka_unit_test(test_stop_before_running),
	};
	const char *why = kvm_unusable();

	if (why) {
		printf("skipped: /dev/kvm: %s: the kvm backend needs KVM\n", why);
		return 77;
	}
	srand((unsigned)time(NULL));
	return cmocka_run_group_tests_name("kvm backend", tests, NULL, NULL);
}
