/* The acrn backend (kernel/acrn.c) against the fake /dev/acrn_hsm
 * (tests/fake_hsm/, loaded with LD_PRELOAD by ctest): the ioctl sequences of
 * start, requests, reset and shutdown as acrn-dm makes them, attach's
 * behaviour with held requests, completion polling, interrupts, the errors
 * reported; guest RAM (a memfd, SET_MEMSEG of its mapping), the boot of a
 * guest image (its bytes in RAM, SET_VCPU_REGS), ioeventfds and irqfds; and
 * the fake's own argument checks, which stand for the driver's and the
 * hypervisor's. With --kvm, the fake runs the booted images on /dev/kvm
 * (exit 77 without it). With --no-device (and no fake), the missing
 * device's message. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <elf.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "acrn.h"
#include "boot.h"
#include "dispatch.h"
#include "hsm.h"

#define GUESTS IOREQ_BINDIR "/guests/"

#define MAX_LINES 64
/* How long anything that should happen may take. */
#define DONE_MS 5000

static char tmpdir[64], log_path[128], result_path[128];
static char reports[16][512];
static unsigned n_reports;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_report(void *opaque, const char *line)
{
	if (n_reports < 16)
		snprintf(reports[n_reports++], sizeof(reports[0]), "%s", line);
}

/* The whole file, NUL-terminated; the caller frees it. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	size_t len = 0, size = 1 << 16;
	char *buf = malloc(size);

	assert_non_null(buf);
	while (f) {
		len += fread(buf + len, 1, size - 1 - len, f);
		if (len < size - 1)
			break;
		size *= 2;
		buf = realloc(buf, size);
		assert_non_null(buf);
	}
	if (f)
		fclose(f);
	buf[len] = '\0';
	return buf;
}

static const char *write_script(const char *name, const char *text)
{
	static char path[4][192];
	static unsigned next;
	char *p = path[next++ % 4];
	FILE *f;

	snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
	f = fopen(p, "we");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

/* ---- the fake's log ---- */

/* The number the fake gave the latest open of the device. */
static unsigned last_serial(void)
{
	char *log = slurp(log_path), *p = log;
	unsigned serial = 0, s;

	while ((p = strstr(p, " OPEN "))) {
		const char *line = p;

		while (line > log && line[-1] != '\n')
			line--;
		if (sscanf(line, "hsm%u ", &s) == 1)
			serial = s;
		p++;
	}
	free(log);
	return serial;
}

static bool is_request_line(const char *l)
{
	return !strncmp(l, "ATTACH_IOREQ_CLIENT", 19) || !strncmp(l, "NOTIFY_REQUEST_FINISH", 21);
}

/* The log lines of VM @serial (without "hsmN "), but those @leave_out
 * picks. */
static unsigned log_lines(unsigned serial, bool (*leave_out)(const char *), char lines[][256], unsigned max)
{
	char *log = slurp(log_path), *save = NULL, prefix[16];
	unsigned n = 0;

	snprintf(prefix, sizeof(prefix), "hsm%u ", serial);
	for (char *l = strtok_r(log, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, prefix, strlen(prefix)))
			continue;
		l += strlen(prefix);
		if (leave_out && leave_out(l))
			continue;
		assert_true(n < max);
		snprintf(lines[n++], 256, "%s", l);
	}
	free(log);
	return n;
}

/* How many lines of VM @serial start with @prefix; the last in @last. */
static unsigned count_lines_last(unsigned serial, const char *prefix, char *last, size_t len)
{
	char *log = slurp(log_path), *save = NULL, head[16];
	unsigned count = 0;

	snprintf(head, sizeof(head), "hsm%u ", serial);
	for (char *l = strtok_r(log, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, head, strlen(head)) || strncmp(l + strlen(head), prefix, strlen(prefix)))
			continue;
		count++;
		if (last)
			snprintf(last, len, "%s", l + strlen(head));
	}
	free(log);
	return count;
}

static unsigned count_lines(unsigned serial, const char *prefix)
{
	return count_lines_last(serial, prefix, NULL, 0);
}

/* How many lines of VM @serial start with @prefix and contain @part. */
static unsigned count_lines_with(unsigned serial, const char *prefix, const char *part)
{
	char *log = slurp(log_path), *save = NULL, head[16];
	unsigned count = 0;

	snprintf(head, sizeof(head), "hsm%u ", serial);
	for (char *l = strtok_r(log, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		if (!strncmp(l, head, strlen(head)) && !strncmp(l + strlen(head), prefix, strlen(prefix)) &&
		    strstr(l, part))
			count++;
	free(log);
	return count;
}

/* The ioctls of VM @serial, requests left out, are exactly @expect. */
static void assert_sequence(unsigned serial, const char *const *expect)
{
	char lines[MAX_LINES][256];
	unsigned n = log_lines(serial, is_request_line, lines, MAX_LINES), i;

	for (i = 0; expect[i]; i++) {
		if (i >= n || strcmp(lines[i], expect[i])) {
			print_error("line %u: expected \"%s\", got \"%s\"\n", i, expect[i], i < n ? lines[i] : "(none)");
			fail();
		}
	}
	assert_int_equal(n, i);
}

/* Waits for the fake's "scripts ended" line of VM @serial, which must
 * begin with @expect. */
static void wait_scripts_ended(unsigned serial, const char *expect)
{
	int64_t until = now_ms() + DONE_MS;
	char head[16], *res;
	const char *hit;

	snprintf(head, sizeof(head), "hsm%u vm ", serial);
	for (;;) {
		res = slurp(result_path);
		for (hit = strstr(res, head); hit && !strstr(hit, "scripts ended"); hit = strstr(hit + 1, head))
			;
		if (hit || now_ms() > until)
			break;
		free(res);
		usleep(2000);
	}
	/* The line without its "hsmN ". */
	if (!hit || strncmp(hit + strcspn(hit, " ") + 1, expect, strlen(expect))) {
		print_error("the fake's result:\n%s\nexpected: hsm%u %s...\n", res, serial, expect);
		free(res);
		fail();
	}
	free(res);
}

/* ---- a small broker: a VM thread as broker/vm.c has, and a device ---- */

struct broker {
	struct hsm_vm *vm;
	pthread_t thread;
	_Atomic uint32_t held;
	_Atomic int hold_vcpu;    /* requests of this vCPU are held, not completed */
	_Atomic unsigned wakeups; /* hsm_attach returns */
	_Atomic unsigned handled[ACRN_IO_REQUEST_MAX];
	_Atomic unsigned port80_writes;
	_Atomic bool saw_polling;
	_Atomic int attach_result;
	_Atomic unsigned errors; /* failed completions: asserted by the test thread */
	uint8_t ram[4096]; /* MMIO 0x1000..0x1fff */
};

static void emulate(struct broker *b, struct acrn_io_request *req)
{
	if (req->type == ACRN_IOREQ_TYPE_MMIO) {
		struct acrn_mmio_request *m = &req->reqs.mmio_request;

		if (m->address < 0x1000 || m->address + m->size > 0x2000) {
			m->value = ~0ull;
		} else if (m->direction == ACRN_IOREQ_DIR_WRITE) {
			memcpy(&b->ram[m->address - 0x1000], &m->value, m->size);
		} else {
			m->value = 0;
			memcpy(&m->value, &b->ram[m->address - 0x1000], m->size);
		}
	} else if (req->type == ACRN_IOREQ_TYPE_PORTIO) {
		struct acrn_pio_request *p = &req->reqs.pio_request;

		if (p->address == 0x80 && p->direction == ACRN_IOREQ_DIR_WRITE)
			atomic_fetch_add(&b->port80_writes, 1);
		else if (p->direction == ACRN_IOREQ_DIR_READ)
			p->value = p->address == 0x80 ? atomic_load(&b->port80_writes) : ~0u;
	}
}

static void *broker_main(void *arg)
{
	struct broker *b = arg;
	struct acrn_io_request_buffer *page = b->vm->page;
	int r;

	while ((r = hsm_attach(b->vm, &b->held)) == 0) {
		uint32_t held = atomic_load(&b->held);

		atomic_fetch_add(&b->wakeups, 1);
		for (unsigned v = 0; v < b->vm->vcpu_num; v++) {
			struct acrn_io_request *req = &page->req_slot[v];

			if (held & 1u << v || __atomic_load_n(&req->processed, __ATOMIC_ACQUIRE) != ACRN_IOREQ_STATE_PROCESSING ||
			    __atomic_load_n(&req->kernel_handled, __ATOMIC_RELAXED))
				continue;
			if (req->completion_polling)
				atomic_store(&b->saw_polling, true);
			emulate(b, req);
			atomic_fetch_add(&b->handled[v], 1);
			if ((int)v == atomic_load(&b->hold_vcpu)) {
				atomic_fetch_or(&b->held, 1u << v);
				continue;
			}
			if (hsm_complete(b->vm, v))
				atomic_fetch_add(&b->errors, 1);
		}
	}
	atomic_store(&b->attach_result, r);
	return NULL;
}

/* What the broker does when a device answers a held request. */
static void broker_release(struct broker *b, unsigned vcpu)
{
	assert_int_equal(hsm_complete(b->vm, vcpu), 0);
	atomic_fetch_and(&b->held, ~(1u << vcpu));
	hsm_kick(b->vm);
}

static struct hsm_vm_params params(const char *name, unsigned vcpus, bool polling)
{
	struct hsm_vm_params p = {
		.name = name,
		.vcpus = vcpus,
		.memory = 64ull << 20,
		.completion_polling = polling,
		.report = on_report,
	};

	return p;
}

/* @hold_vcpu: hold the requests of this vCPU (-1: none). */
/* The VM and its client; the vCPUs not started. */
static void broker_create(struct broker *b, const struct hsm_vm_params *p, int hold_vcpu)
{
	memset(b, 0, sizeof(*b));
	atomic_store(&b->hold_vcpu, hold_vcpu);
	n_reports = 0;
	assert_int_equal(hsm_create(HSM_BACKEND_ACRN, p, &b->vm), 0);
	assert_int_equal(hsm_create_client(b->vm), 0);
	assert_int_equal(pthread_create(&b->thread, NULL, broker_main, b), 0);
}

static void broker_start(struct broker *b, const struct hsm_vm_params *p, int hold_vcpu)
{
	broker_create(b, p, hold_vcpu);
	assert_int_equal(hsm_start(b->vm), 0);
}

/* The broker's shutdown: destroying the client must end the VM thread's
 * attach (-ENODEV), at once. */
static void broker_stop(struct broker *b)
{
	struct timespec ts;

	assert_int_equal(hsm_destroy_client(b->vm), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	assert_int_equal(pthread_timedjoin_np(b->thread, NULL, &ts), 0);
	assert_int_equal(atomic_load(&b->attach_result), -ENODEV);
	assert_int_equal(atomic_load(&b->errors), 0);
	b->vm = hsm_destroy(b->vm);
}

static bool wait_for(_Atomic uint32_t *word, uint32_t bits)
{
	int64_t until = now_ms() + DONE_MS;

	while ((atomic_load(word) & bits) != bits)
		if (now_ms() > until)
			return false;
		else
			usleep(1000);
	return true;
}

/* ---- the backend ---- */

/* Start, requests and shutdown in acrn-dm's order; a held request neither
 * makes attach spin nor hides another vCPU's request. */
static void test_sequence_and_held_requests(void **state)
{
	struct hsm_vm_params p = params("alpha", 2, false);
	const char *const expect[] = {
		"OPEN O_RDWR|O_CLOEXEC",
		"CREATE_VM name=alpha vcpu_num=2 vm_flag=0x0 cpu_affinity=0x0 = 0",
		"SET_MEMSEG type=0 gpa=0x0 len=0x4000000 attr=0x7 = 0",
		"CREATE_IOREQ_CLIENT = 0",
		"START_VM = 0",
		"SET_IRQLINE gsi=5 op=0 = 0",
		"PAUSE_VM = 0",
		"DESTROY_IOREQ_CLIENT = 0",
		"DESTROY_VM = 0",
		"CLOSE",
		NULL,
	};
	char scripts[512], last[256];
	unsigned serial, attaches, wakeups;
	struct broker b;

	snprintf(scripts, sizeof(scripts), "%s:%s",
		 write_script("held0.txt", "mmio write 0x1000 4 0x11223344\nmmio read 0x1000 4 0x11223344\n"),
		 write_script("held1.txt", "irq 5 1\nmmio read 0x1800 8 0\n"));
	setenv("FAKE_HSM_SCRIPTS", scripts, 1);
	broker_start(&b, &p, 0);
	serial = last_serial();
	assert_true(wait_for(&b.held, 1));

	/* Only a held request: attach stays away from the broker, and asks
	 * the HSM about once a millisecond at most. */
	wakeups = atomic_load(&b.wakeups);
	attaches = count_lines(serial, "ATTACH_IOREQ_CLIENT");
	usleep(100 * 1000);
	assert_int_equal(atomic_load(&b.wakeups), wakeups);
	assert_in_range(count_lines(serial, "ATTACH_IOREQ_CLIENT") - attaches, 1, 200);

	/* vCPU 1's request arrives while vCPU 0's is still held. */
	assert_int_equal(hsm_set_irqline(b.vm, 5, HSM_IRQ_ASSERT), 0);
	for (int64_t until = now_ms() + 1000; !atomic_load(&b.handled[1]);)
		assert_true(now_ms() < until);
	assert_int_equal(atomic_load(&b.held), 1);

	atomic_store(&b.hold_vcpu, -1);
	broker_release(&b, 0);
	wait_scripts_ended(serial, "vm alpha: scripts ended: 3 accesses, 0 mismatches, completion by notification");
	broker_stop(&b);

	assert_sequence(serial, expect);
	/* Each request finished once, and the last attach ended with the client. */
	assert_int_equal(count_lines(serial, "NOTIFY_REQUEST_FINISH vcpu=0 = 0"), 2);
	assert_int_equal(count_lines(serial, "NOTIFY_REQUEST_FINISH vcpu=1 = 0"), 1);
	assert_int_equal(count_lines(serial, "NOTIFY_REQUEST_FINISH"), 3);
	assert_true(count_lines(serial, "ATTACH_IOREQ_CLIENT = 0") >= 2);
	count_lines_last(serial, "ATTACH_IOREQ_CLIENT", last, sizeof(last));
	assert_string_equal(last, "ATTACH_IOREQ_CLIENT = -ENODEV");
	assert_int_equal(n_reports, 0);
}

/* completion_polling: the flag reaches CREATE_VM, every request asks to be
 * polled for, and the vCPUs finish without NOTIFY waking them. */
static void test_completion_polling(void **state)
{
	struct hsm_vm_params p = params("rt", 1, true);
	struct broker b;
	unsigned serial;

	setenv("FAKE_HSM_SCRIPTS",
	       write_script("poll.txt", "repeat 200\n  mmio write 0x1008 8 seq\n  mmio read 0x1008 8 seq\nend\n"), 1);
	broker_start(&b, &p, -1);
	serial = last_serial();
	wait_scripts_ended(serial, "vm rt: scripts ended: 400 accesses, 0 mismatches, completion by polling");
	broker_stop(&b);
	assert_true(atomic_load(&b.saw_polling));
	assert_int_equal(count_lines(serial, "CREATE_VM name=rt vcpu_num=1 vm_flag=0x4 cpu_affinity=0x0 = 0"), 1);
	assert_int_equal(count_lines(serial, "NOTIFY_REQUEST_FINISH vcpu=0 = 0"), 400);
}

/* acrn-dm's reset: PAUSE_VM, CLEAR_VM_IOREQ, (devices), RESET_VM, START_VM;
 * the vCPUs start over. */
static void test_reset_sequence(void **state)
{
	struct hsm_vm_params p = params("beta", 2, false);
	const char *const expect[] = {
		"OPEN O_RDWR|O_CLOEXEC",
		"CREATE_VM name=beta vcpu_num=2 vm_flag=0x0 cpu_affinity=0x0 = 0",
		"SET_MEMSEG type=0 gpa=0x0 len=0x4000000 attr=0x7 = 0",
		"CREATE_IOREQ_CLIENT = 0",
		"START_VM = 0",
		"PAUSE_VM = 0",
		"CLEAR_VM_IOREQ = 0",
		"RESET_VM = 0",
		"START_VM = 0",
		"PAUSE_VM = 0",
		"DESTROY_IOREQ_CLIENT = 0",
		"DESTROY_VM = 0",
		"CLOSE",
		NULL,
	};
	const char *loop = "pio write 0x80 1 1\nrepeat 100000\n  mmio write 0x1010 4 seq\n  sleep 1\nend\n";
	char scripts[512];
	unsigned serial, handled;
	struct broker b;

	snprintf(scripts, sizeof(scripts), "%s:%s", write_script("r0.txt", loop), write_script("r1.txt", loop));
	setenv("FAKE_HSM_SCRIPTS", scripts, 1);
	broker_start(&b, &p, -1);
	serial = last_serial();
	for (int64_t until = now_ms() + DONE_MS; atomic_load(&b.handled[0]) < 5 || atomic_load(&b.handled[1]) < 5;)
		assert_true(now_ms() < until);
	assert_int_equal(atomic_load(&b.port80_writes), 2);

	assert_int_equal(hsm_pause(b.vm), 0);
	assert_int_equal(hsm_clear(b.vm), 0);
	/* Paused: the vCPUs, which ask every millisecond, ask nothing more. */
	handled = atomic_load(&b.handled[0]) + atomic_load(&b.handled[1]);
	usleep(50 * 1000);
	assert_int_equal(atomic_load(&b.handled[0]) + atomic_load(&b.handled[1]), handled);
	assert_int_equal(hsm_reset(b.vm), 0);
	assert_int_equal(hsm_start(b.vm), 0);
	/* Both vCPUs ran their scripts from the top again. */
	for (int64_t until = now_ms() + DONE_MS; atomic_load(&b.port80_writes) < 4;)
		assert_true(now_ms() < until);
	broker_stop(&b);
	assert_sequence(serial, expect);
	assert_int_equal(n_reports, 0);
}

static void on_signal(int sig)
{
}

/* A signal ends the HSM's ATTACH with 0 and nothing pending: attach asks
 * again rather than wake the broker for nothing. */
static void test_signal_is_no_request(void **state)
{
	struct hsm_vm_params p = params("sig", 2, false);
	struct sigaction sa = { .sa_handler = on_signal }, old;
	struct broker b;
	unsigned serial;

	unsetenv("FAKE_HSM_SCRIPTS");
	/* No SA_RESTART: the wait in ATTACH ends with the handler. */
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	broker_start(&b, &p, -1);
	serial = last_serial();
	for (int i = 0; i < 3; i++) {
		usleep(20 * 1000);
		assert_int_equal(pthread_kill(b.thread, SIGUSR1), 0);
	}
	usleep(20 * 1000);
	assert_int_equal(atomic_load(&b.wakeups), 0);
	broker_stop(&b);
	sigaction(SIGUSR1, &old, NULL);
	assert_in_range(count_lines(serial, "ATTACH_IOREQ_CLIENT = 0"), 1, 3);
}

/* SET_IRQLINE carries gsi | op << 32 by value (the vCPU sees the level);
 * INJECT_MSI its address and data. */
static void test_interrupts(void **state)
{
	struct hsm_vm_params p = params("irq", 1, false);
	struct broker b;
	unsigned serial;

	setenv("FAKE_HSM_SCRIPTS", write_script("irq.txt", "irq 10 1\nirq 10 0\n"), 1);
	broker_start(&b, &p, -1);
	serial = last_serial();
	assert_int_equal(hsm_set_irqline(b.vm, 10, HSM_IRQ_ASSERT), 0);
	usleep(20 * 1000);
	assert_int_equal(hsm_set_irqline(b.vm, 10, HSM_IRQ_DEASSERT), 0);
	assert_int_equal(hsm_set_irqline(b.vm, 11, HSM_IRQ_PULSE_HIGH), 0);
	assert_int_equal(hsm_inject_msi(b.vm, 0xfee01000, 0x31), 0);
	wait_scripts_ended(serial, "vm irq: scripts ended: 0 accesses, 0 mismatches");
	broker_stop(&b);
	assert_int_equal(count_lines(serial, "SET_IRQLINE gsi=10 op=0 = 0"), 1);
	assert_int_equal(count_lines(serial, "SET_IRQLINE gsi=10 op=1 = 0"), 1);
	assert_int_equal(count_lines(serial, "SET_IRQLINE gsi=11 op=2 = 0"), 1);
	assert_int_equal(count_lines(serial, "INJECT_MSI addr=0xfee01000 data=0x31 = 0"), 1);
}

/* RAM above 2 GiB goes above 4 GiB, as acrn-dm lays it out: two regions
 * of one sealed memfd, each mapped by SET_MEMSEG from our mapping of it. */
static void test_memory_split(void **state)
{
	struct hsm_vm_params p = params("big", 1, false);
	struct hsm_vm *vm;
	unsigned serial;

	unsetenv("FAKE_HSM_SCRIPTS");
	p.memory = (2ull << 30) + (4 << 20);
	assert_int_equal(hsm_create(HSM_BACKEND_ACRN, &p, &vm), 0);
	serial = last_serial();
	assert_true(vm->mem_fd >= 0);
	assert_int_equal(fcntl(vm->mem_fd, F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	assert_int_equal(vm->mem_size, p.memory);
	assert_int_equal(vm->n_regions, 2);
	assert_int_equal(vm->regions[0].gpa, 0);
	assert_int_equal(vm->regions[0].size, 2ull << 30);
	assert_int_equal(vm->regions[0].offset, 0);
	assert_int_equal(vm->regions[1].gpa, 4ull << 30);
	assert_int_equal(vm->regions[1].size, 4 << 20);
	assert_int_equal(vm->regions[1].offset, 2ull << 30);
	hsm_destroy(vm);
	assert_int_equal(count_lines(serial, "SET_MEMSEG type=0 gpa=0x0 len=0x80000000 attr=0x7 = 0"), 1);
	assert_int_equal(count_lines(serial, "SET_MEMSEG type=0 gpa=0x100000000 len=0x400000 attr=0x7 = 0"), 1);
}

/* Every failed ioctl is reported with its name, the VM and errno, and a VM
 * that was created is destroyed again (paused first) when creation fails. */
static void test_errors_reported(void **state)
{
	struct hsm_vm_params p = params("a-name-too-long!", 2, false);
	const char *const expect[] = {
		"OPEN O_RDWR|O_CLOEXEC",
		"CREATE_VM name=gamma vcpu_num=2 vm_flag=0x0 cpu_affinity=0x0 = 0",
		"PAUSE_VM = 0",
		"DESTROY_VM = 0",
		"CLOSE",
		NULL,
	};
	struct broker b;
	struct hsm_vm *vm;

	unsetenv("FAKE_HSM_SCRIPTS");
	n_reports = 0;
	assert_int_equal(hsm_create(HSM_BACKEND_ACRN, &p, &vm), -ENAMETOOLONG);
	assert_int_equal(n_reports, 1);
	assert_string_equal(reports[0], "vm a-name-too-long!: ACRN takes names of at most 15 characters: the "
					"hypervisor finds the VM's configuration by name");

	/* The scenario gives the VM one vCPU; the configuration wants two. */
	setenv("FAKE_HSM_VCPU_NUM", "1", 1);
	p.name = "gamma";
	n_reports = 0;
	assert_int_equal(hsm_create(HSM_BACKEND_ACRN, &p, &vm), -EINVAL);
	unsetenv("FAKE_HSM_VCPU_NUM");
	assert_int_equal(n_reports, 1);
	assert_string_equal(reports[0], "vm gamma: the hypervisor gave it 1 vCPUs, the configuration asks for 2 (the "
					"count is the number of pCPUs of the VM in the ACRN scenario)");
	assert_sequence(last_serial(), expect);

	/* The hypervisor resets only a paused VM. */
	broker_start(&b, &p, -1);
	assert_int_equal(hsm_reset(b.vm), -EPERM);
	assert_int_equal(n_reports, 1);
	assert_string_equal(reports[0], "vm gamma: ACRN_IOCTL_RESET_VM: Operation not permitted");
	assert_int_equal(hsm_create_client(b.vm), -EEXIST);
	assert_string_equal(reports[1], "vm gamma: ACRN_IOCTL_CREATE_IOREQ_CLIENT: File exists");
	broker_stop(&b);
}

/* ---- the fake's checks: what the driver and the hypervisor refuse ---- */

struct raw {
	int fd;
	void *page;
	struct acrn_vm_creation cv;
};

static int xioctl(int fd, unsigned long req, unsigned long arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

static void raw_open(struct raw *r)
{
	r->fd = open(ACRN_HSM_PATH, O_RDWR | O_CLOEXEC);
	assert_true(r->fd >= 0);
	assert_true(fcntl(r->fd, F_GETFD) & FD_CLOEXEC);
	r->page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(r->page != MAP_FAILED);
	memset(&r->cv, 0, sizeof(r->cv));
	memcpy(&r->cv.uuid, "raw", 3);
	r->cv.vcpu_num = 2;
	r->cv.ioreq_buf = (uintptr_t)r->page;
}

static void raw_close(struct raw *r)
{
	assert_int_equal(close(r->fd), 0);
	munmap(r->page, 4096);
}

static void test_fake_vm_lifecycle_checks(void **state)
{
	struct raw r;

	unsetenv("FAKE_HSM_SCRIPTS");
	raw_open(&r);
	/* Nothing but CREATE_VM before CREATE_VM, not even an unknown ioctl. */
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_START_VM, 0), -EINVAL);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_IOREQ_CLIENT, 0), -EINVAL);
	assert_int_equal(xioctl(r.fd, _IO(ACRN_IOCTL_TYPE, 0x14), 0), -EINVAL);
	r.cv.reserved0 = 1;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_VM, (uintptr_t)&r.cv), -EINVAL);
	r.cv.reserved0 = 0;
	r.cv.reserved1 = 1;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_VM, (uintptr_t)&r.cv), -EINVAL);
	r.cv.reserved1 = 0;
	r.cv.ioreq_buf += 64;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_VM, (uintptr_t)&r.cv), -EINVAL);
	r.cv.ioreq_buf -= 64;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_VM, (uintptr_t)&r.cv), 0);
	assert_int_equal(r.cv.vcpu_num, 2);
	assert_int_not_equal(r.cv.vmid, 0xffff);
	assert_int_equal(xioctl(r.fd, _IO(ACRN_IOCTL_TYPE, 0x14), 0), -ENOTTY);
	/* A second CREATE_VM finds the page set and leaves no VM behind. */
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_VM, (uintptr_t)&r.cv), -EINVAL);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_PAUSE_VM, 0), -EINVAL);
	raw_close(&r);

	/* The hypervisor's states: START only once created (or reset),
	 * RESET and DESTROY only once paused. */
	raw_open(&r);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_VM, (uintptr_t)&r.cv), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_RESET_VM, 0), -EPERM);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_START_VM, 0), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_START_VM, 0), -EPERM);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_PAUSE_VM, 0), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_START_VM, 0), -EPERM);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_RESET_VM, 0), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_START_VM, 0), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_DESTROY_VM, 0), -EPERM);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_PAUSE_VM, 0), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_DESTROY_VM, 0), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_START_VM, 0), -EINVAL);
	raw_close(&r);
}

static void test_fake_memseg_checks(void **state)
{
	struct acrn_vm_memmap m = { .type = ACRN_MEMMAP_RAM, .attr = ACRN_MEM_ACCESS_RWX, .len = 1 << 20 };
	struct raw r;
	void *ram;

	unsetenv("FAKE_HSM_SCRIPTS");
	raw_open(&r);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_VM, (uintptr_t)&r.cv), 0);
	ram = mmap(NULL, m.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(ram != MAP_FAILED);
	m.vma_base = (uintptr_t)ram;
	m.type = 7;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_MEMSEG, (uintptr_t)&m), -EINVAL);
	m.type = ACRN_MEMMAP_RAM;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_MEMSEG, (uintptr_t)&m), 0);
	/* Read-only memory cannot be pinned for writing. */
	assert_int_equal(mprotect((char *)ram + (256 << 10), 4096, PROT_READ), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_MEMSEG, (uintptr_t)&m), -EFAULT);
	assert_int_equal(mprotect((char *)ram + (256 << 10), 4096, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_MEMSEG, (uintptr_t)&m), 0);
	/* Unmapped memory cannot be pinned. */
	munmap((char *)ram + (512 << 10), 4096);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_MEMSEG, (uintptr_t)&m), -EFAULT);
	munmap(ram, m.len);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_PAUSE_VM, 0), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_DESTROY_VM, 0), 0);
	raw_close(&r);
}

static void test_fake_client_checks(void **state)
{
	struct acrn_ioreq_notify n = { 0 };
	struct raw r;

	unsetenv("FAKE_HSM_SCRIPTS");
	raw_open(&r);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_VM, (uintptr_t)&r.cv), 0);
	n.vmid = r.cv.vmid;
	/* No client: ATTACH fails, DESTROY and NOTIFY do nothing. */
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_ATTACH_IOREQ_CLIENT, 0), -ENODEV);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_DESTROY_IOREQ_CLIENT, 0), 0);
	n.vcpu = 9;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_NOTIFY_REQUEST_FINISH, (uintptr_t)&n), 0);

	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_IOREQ_CLIENT, 0), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_IOREQ_CLIENT, 0), -EEXIST);
	/* vcpu below vcpu_num, after the driver's truncation to u16. */
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_NOTIFY_REQUEST_FINISH, (uintptr_t)&n), -EINVAL);
	n.vcpu = 2;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_NOTIFY_REQUEST_FINISH, (uintptr_t)&n), -EINVAL);
	n.vcpu = 0x10001;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_NOTIFY_REQUEST_FINISH, (uintptr_t)&n), 0);
	n.vcpu = 1;
	n.reserved = 1;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_NOTIFY_REQUEST_FINISH, (uintptr_t)&n), -EINVAL);
	assert_int_equal(count_lines(last_serial(), "NOTIFY_REQUEST_FINISH vcpu=65537 = 0 (fake: nothing pending)"), 1);

	/* Destroying the client ends ATTACH, and a new one can be made. */
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_DESTROY_IOREQ_CLIENT, 0), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_ATTACH_IOREQ_CLIENT, 0), -ENODEV);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_IOREQ_CLIENT, 0), 0);
	raw_close(&r);
}

/* ---- guest RAM, the boot, doorbells and irqfds ---- */

/* A guest image's entry and PT_LOAD segments, read as boot.c does. */
struct image {
	uint64_t entry;
	unsigned n;
	Elf64_Phdr ph[16];
	char *bytes;
	size_t len;
};

static void image_read(const char *path, struct image *im)
{
	FILE *f = fopen(path, "re");
	Elf64_Ehdr eh;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	im->len = (size_t)ftell(f);
	rewind(f);
	im->bytes = malloc(im->len);
	assert_non_null(im->bytes);
	assert_int_equal(fread(im->bytes, 1, im->len, f), im->len);
	fclose(f);
	memcpy(&eh, im->bytes, sizeof(eh));
	im->entry = eh.e_entry;
	im->n = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, im->bytes + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_LOAD && ph.p_memsz && im->n < 16)
			im->ph[im->n++] = ph;
	}
	assert_true(im->n > 0);
}

/* What the fake (the hypervisor) finds at guest-physical 0 and up: the
 * image's segments at their addresses (BSS zero), the VMM's GDT and page
 * tables (boot.h). */
static void assert_booted_ram(const struct hsm_vm *vm, const struct image *im)
{
	const uint64_t *gdt = (const uint64_t *)(vm->mem + BOOT_GDT_ADDR);
	const uint64_t *pml4 = (const uint64_t *)(vm->mem + BOOT_PML4_ADDR);

	assert_int_equal(gdt[BOOT_SEL_CODE / 8], BOOT_CODE_DESC);
	assert_int_equal(gdt[BOOT_SEL_DATA / 8], BOOT_DATA_DESC);
	assert_int_equal(pml4[0], (BOOT_PML4_ADDR + 0x1000) | 7);
	/* The PD entry of 2 MiB page 3: identity, present, RW, U, PS. */
	assert_int_equal(pml4[512 + 512 + 3], (3ull << 21) | 0x87);
	for (unsigned i = 0; i < im->n; i++) {
		const Elf64_Phdr *ph = &im->ph[i];

		assert_memory_equal(vm->mem + ph->p_paddr, im->bytes + ph->p_offset, ph->p_filesz);
		for (uint64_t b = ph->p_filesz; b < ph->p_memsz; b++)
			assert_int_equal(vm->mem[ph->p_paddr + b], 0);
	}
}

/* The image the kvm backend runs, booted as acrn-dm boots one: in RAM
 * before CREATE_VM (a bad image fails before the HSM is asked), SET_MEMSEG,
 * then SET_VCPU_REGS for the boot vCPU in 64-bit mode (RSI = 1: the other
 * vCPUs wait for INIT/SIPI), then the client. A reset reloads the image
 * into zeroed RAM and sets the registers again. */
static void test_boot_sequence(void **state)
{
	struct hsm_vm_params p = params("boot", 2, false);
	char regs[256], seq_regs[300];
	const char *expect[] = {
		"OPEN O_RDWR|O_CLOEXEC",
		"CREATE_VM name=boot vcpu_num=2 vm_flag=0x0 cpu_affinity=0x0 = 0",
		"SET_MEMSEG type=0 gpa=0x0 len=0x4000000 attr=0x7 = 0",
		seq_regs,
		"CREATE_IOREQ_CLIENT = 0",
		"PAUSE_VM = 0",
		"RESET_VM = 0",
		seq_regs,
		"PAUSE_VM = 0",
		"DESTROY_VM = 0",
		"CLOSE",
		NULL,
	};
	struct image im;
	struct hsm_vm *vm;
	unsigned serial;

	unsetenv("FAKE_HSM_SCRIPTS");
	image_read(GUESTS "memory.elf", &im);
	p.image = GUESTS "memory.elf";
	snprintf(regs, sizeof(regs),
		 "vcpu=0 rip=0x%llx rsp=0x4000000 rdi=0 rsi=1 rflags=0x2 cr0=0x80000033 cr3=0x2000 cr4=0x20 "
		 "efer=0x500 cs=0x8/0xa09b/0xffffffff ds=0x10 gdt=0x1000/23",
		 (unsigned long long)im.entry);
	snprintf(seq_regs, sizeof(seq_regs), "SET_VCPU_REGS %s = 0", regs);
	n_reports = 0;
	assert_int_equal(hsm_create(HSM_BACKEND_ACRN, &p, &vm), 0);
	serial = last_serial();
	assert_int_equal(hsm_create_client(vm), 0);
	assert_booted_ram(vm, &im);
	/* The guest scribbled over its RAM; the reset brings the image back. */
	assert_int_equal(hsm_pause(vm), 0);
	memset(vm->mem + im.ph[0].p_paddr, 0xcc, im.ph[0].p_filesz);
	vm->mem[0x3000000] = 1;
	assert_int_equal(hsm_reset(vm), 0);
	assert_booted_ram(vm, &im);
	assert_int_equal(vm->mem[0x3000000], 0);
	hsm_destroy(vm);
	assert_sequence(serial, expect);
	assert_int_equal(n_reports, 0);

	/* A bad image: reported, and the HSM never opened. */
	p.image = "/etc/hostname";
	assert_int_equal(hsm_create(HSM_BACKEND_ACRN, &p, &vm), -ENOEXEC);
	assert_int_equal(last_serial(), serial);
	assert_int_equal(n_reports, 1);
	assert_string_equal(reports[0], "vm boot: image /etc/hostname: not a static ELF64 x86-64 executable");
	free(im.bytes);
}

static _Atomic int stop_status = -1;
static _Atomic unsigned stops;

static void on_stop(void *opaque, int status)
{
	atomic_store(&stop_status, status);
	atomic_fetch_add(&stops, 1);
}

/* A VM booted from an image has the kvm backend's exit port: the backend
 * answers exit_port .. exit_port + 3 itself (reads all ones, writes beside
 * the port dropped) and a write at the port stops the VM with its value, once;
 * the broker sees none of them. Without an image the port is the guest's
 * like any other. */
static void test_exit_port(void **state)
{
	struct hsm_vm_params p = params("exit", 1, false);
	struct broker b;
	unsigned serial;

	p.image = GUESTS "memory.elf";
	p.exit_port = 0xf4;
	p.on_stop = on_stop;
	setenv("FAKE_HSM_SCRIPTS",
	       write_script("exit.txt", "pio read 0xf4 4 0xffffffff\npio read 0xf7 1 0xff\npio write 0xf5 1 9\n"
					"pio write 0x80 1 1\npio write 0xf4 1 3\npio write 0xf4 1 4\npio write 0x80 1 1\n"),
	       1);
	atomic_store(&stops, 0);
	broker_create(&b, &p, -1);
	serial = last_serial();
	assert_int_equal(hsm_start(b.vm), 0);
	wait_scripts_ended(serial, "vm exit: scripts ended: 7 accesses, 0 mismatches");
	assert_int_equal(atomic_load(&stops), 1);
	assert_int_equal(atomic_load(&stop_status), 3);
	assert_int_equal(atomic_load(&b.handled[0]), 2);
	assert_int_equal(atomic_load(&b.port80_writes), 2);
	broker_stop(&b);

	p.image = NULL;
	setenv("FAKE_HSM_SCRIPTS", write_script("noexit.txt", "pio write 0xf4 1 3\npio read 0xf4 1 0xff\n"), 1);
	atomic_store(&stops, 0);
	broker_create(&b, &p, -1);
	serial = last_serial();
	assert_int_equal(hsm_start(b.vm), 0);
	wait_scripts_ended(serial, "vm exit: scripts ended: 2 accesses, 0 mismatches");
	assert_int_equal(atomic_load(&stops), 0);
	assert_int_equal(atomic_load(&b.handled[0]), 2);
	broker_stop(&b);
}

/* The scripts' mem statements see the RAM the broker gave the HSM: what
 * they store is in the broker's mapping, what a device put there they
 * read; one outside RAM stops START_VM, with its line. */
static void test_scripts_see_ram(void **state)
{
	struct hsm_vm_params p = params("ram", 1, false);
	char want[256], *res;
	struct broker b;
	unsigned serial;
	FILE *f;

	f = fopen(write_script("blob.bin", ""), "we");
	assert_non_null(f);
	fputs("blob!", f);
	fclose(f);
	setenv("FAKE_HSM_SCRIPTS",
	       write_script("ram.txt", "mem write 0x1000 8 0x1122334455667788\nmem load 0x2000 blob.bin\n"
				       "mem read 0x3000 4 0xfeed\npio write 0x80 1 1\n"),
	       1);
	broker_create(&b, &p, -1);
	serial = last_serial();
	/* A device's write, before the guest looks. */
	*(uint32_t *)(b.vm->mem + 0x3000) = 0xfeed;
	assert_int_equal(hsm_start(b.vm), 0);
	wait_scripts_ended(serial, "vm ram: scripts ended: 1 accesses, 0 mismatches");
	/* The broker saw the write that followed the stores: they are ours. */
	assert_int_equal(atomic_load(&b.port80_writes), 1);
	assert_int_equal(*(uint64_t *)(b.vm->mem + 0x1000), 0x1122334455667788ull);
	assert_memory_equal(b.vm->mem + 0x2000, "blob!", 5);
	broker_stop(&b);

	setenv("FAKE_HSM_SCRIPTS", write_script("oor.txt", "pio write 0x80 1 1\nmem read 0x4000000 1 0\n"), 1);
	broker_create(&b, &p, -1);
	serial = last_serial();
	assert_int_equal(hsm_start(b.vm), -EINVAL);
	assert_int_equal(count_lines(serial, "START_VM = -EINVAL (fake: a script's mem statement is outside the VM's RAM)"), 1);
	snprintf(want, sizeof(want), "hsm%u %s/oor.txt:2: mem read 0x4000000 (1 bytes) is not inside guest RAM", serial,
		 tmpdir);
	res = slurp(result_path);
	if (!strstr(res, want)) {
		print_error("the fake's result:\n%s\nexpected: %s\n", res, want);
		fail();
	}
	free(res);
	broker_stop(&b);
}

static uint64_t drain(int efd)
{
	uint64_t n = 0;

	if (read(efd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

/* hsm_ioeventfd and hsm_irqfd become IOEVENTFD and IRQFD with the
 * arguments the driver reads; the doorbells ring without the broker, the
 * MSI reaches the script; an irqfd on a line is refused before the HSM is
 * asked (it has none); deassigns carry the DEASSIGN flag. */
static void test_doorbells_and_irqfds(void **state)
{
	struct hsm_vm_params p = params("bells", 1, false);
	int bell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), match = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int msi = eventfd(0, EFD_CLOEXEC), line = eventfd(0, EFD_CLOEXEC);
	struct hsm_ioeventfd e_bell = { .fd = bell, .type = ACRN_IOREQ_TYPE_PORTIO, .addr = 0x600, .size = 2 };
	struct hsm_ioeventfd e_match = {
		.fd = match, .type = ACRN_IOREQ_TYPE_MMIO, .addr = 0xd0000008, .size = 4, .datamatch = true, .data = 7
	};
	struct hsm_irqfd f_msi = { .fd = msi, .msi = true, .msi_addr = 0xfee00000, .msi_data = 0x45 };
	struct hsm_irqfd f_line = { .fd = line, .gsi = 5 };
	static const uint64_t one = 1;
	struct broker b;
	unsigned serial;

	setenv("FAKE_HSM_SCRIPTS",
	       write_script("bells.txt", "repeat 10\n  pio write 0x600 2 seq\nend\nmmio write 0xd0000008 4 8\n"
					 "mmio write 0xd0000008 4 7\nmsi 0xfee00000 0x45\npio write 0x80 1 1\n"),
	       1);
	broker_create(&b, &p, -1);
	serial = last_serial();
	assert_int_equal(hsm_ioeventfd(b.vm, &e_bell, false), 0);
	assert_int_equal(hsm_ioeventfd(b.vm, &e_match, false), 0);
	assert_int_equal(hsm_irqfd(b.vm, &f_msi, false), 0);
	assert_int_equal(hsm_irqfd(b.vm, &f_line, false), -EOPNOTSUPP);
	assert_int_equal(hsm_start(b.vm), 0);
	assert_int_equal(write(msi, &one, sizeof(one)), sizeof(one));
	wait_scripts_ended(serial, "vm bells: scripts ended: 13 accesses, 0 mismatches");
	assert_int_equal(drain(bell), 10);
	assert_int_equal(drain(match), 1);
	/* Only the last write reached the broker. */
	assert_int_equal(atomic_load(&b.handled[0]), 1);
	assert_int_equal(atomic_load(&b.port80_writes), 1);
	assert_int_equal(hsm_ioeventfd(b.vm, &e_bell, true), 0);
	assert_int_equal(hsm_ioeventfd(b.vm, &e_match, true), 0);
	assert_int_equal(hsm_irqfd(b.vm, &f_msi, true), 0);
	broker_stop(&b);
	assert_int_equal(count_lines_with(serial, "IOEVENTFD", " flags=0x1 addr=0x600 len=2 data=0x0 = 0"), 1);
	assert_int_equal(count_lines_with(serial, "IOEVENTFD", " flags=0x2 addr=0xd0000008 len=4 data=0x7 = 0"), 1);
	assert_int_equal(count_lines_with(serial, "IOEVENTFD", " flags=0x5 addr=0x600 len=2 data=0x0 = 0"), 1);
	assert_int_equal(count_lines_with(serial, "IOEVENTFD", " flags=0x6 addr=0xd0000008 len=4 data=0x7 = 0"), 1);
	assert_int_equal(count_lines_with(serial, "IRQFD", " flags=0x0 addr=0xfee00000 data=0x45 = 0"), 1);
	assert_int_equal(count_lines_with(serial, "IRQFD", " flags=0x1 addr=0xfee00000 data=0x45 = 0"), 1);
	assert_int_equal(count_lines(serial, "IRQFD"), 2);
	close(bell);
	close(match);
	close(msi);
	close(line);
}

/* ---- the fake's checks of the new ioctls ---- */

static void test_fake_vcpu_regs_checks(void **state)
{
	struct acrn_vcpu_regs regs = { .vcpu_id = 0 };
	struct acrn_regs *v = &regs.vcpu_regs;
	struct raw r;

	unsetenv("FAKE_HSM_SCRIPTS");
	raw_open(&r);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_VM, (uintptr_t)&r.cv), 0);
	v->cr0 = 0x80000033;
	v->cr4 = 0x20;
	v->ia32_efer = 0x500;
	v->cs_ar = ACRN_CS_AR_CODE64;
	v->cs_limit = 0xffffffff;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_VCPU_REGS, (uintptr_t)&regs), 0);
	/* The driver: every reserved field 0. */
	regs.reserved[1] = 1;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_VCPU_REGS, (uintptr_t)&regs), -EINVAL);
	regs.reserved[1] = 0;
	v->reserved_64[3] = 1;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_VCPU_REGS, (uintptr_t)&regs), -EINVAL);
	v->reserved_64[3] = 0;
	v->reserved_32[0] = 1;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_VCPU_REGS, (uintptr_t)&regs), -EINVAL);
	v->reserved_32[0] = 0;
	v->idt.reserved[2] = 1;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_VCPU_REGS, (uintptr_t)&regs), -EINVAL);
	v->idt.reserved[2] = 0;
	/* The hypervisor: a vCPU the VM has, a CR0 with NE and no reserved
	 * bit, a CR4 without VMXE. */
	regs.vcpu_id = 2;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_VCPU_REGS, (uintptr_t)&regs), -EPERM);
	regs.vcpu_id = 1;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_VCPU_REGS, (uintptr_t)&regs), 0);
	v->cr0 = 0x80000013;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_VCPU_REGS, (uintptr_t)&regs), -EPERM);
	v->cr0 = 0x180000033ull;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_VCPU_REGS, (uintptr_t)&regs), -EPERM);
	v->cr0 = 0x80000033;
	v->cr4 = 0x2020;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_VCPU_REGS, (uintptr_t)&regs), -EPERM);
	v->cr4 = 0x20;
	/* Stricter than the hypervisor: VM entry would fail on this. */
	v->cs_ar = 0xaf9b;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_VCPU_REGS, (uintptr_t)&regs), -EINVAL);
	v->cs_ar = ACRN_CS_AR_CODE64;
	/* Not while it runs; again once paused. */
	regs.vcpu_id = 0;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_START_VM, 0), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_VCPU_REGS, (uintptr_t)&regs), -EPERM);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_PAUSE_VM, 0), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_SET_VCPU_REGS, (uintptr_t)&regs), 0);
	raw_close(&r);
}

static void test_fake_ioeventfd_checks(void **state)
{
	int efd = eventfd(0, EFD_CLOEXEC), p[2];
	struct acrn_ioeventfd io = { .flags = ACRN_IOEVENTFD_FLAG_PIO, .addr = 0x600, .len = 2 };
	struct raw r;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	unsetenv("FAKE_HSM_SCRIPTS");
	raw_open(&r);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_VM, (uintptr_t)&r.cv), 0);
	io.fd = (uint32_t)efd;
	io.reserved = 1;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IOEVENTFD, (uintptr_t)&io), -EINVAL);
	io.reserved = 0;
	io.len = 3;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IOEVENTFD, (uintptr_t)&io), -EINVAL);
	io.len = 8;
	io.addr = ~0ull - 4;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IOEVENTFD, (uintptr_t)&io), -EINVAL);
	/* The range before the fd, as the driver checks them. */
	io.fd = 900;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IOEVENTFD, (uintptr_t)&io), -EINVAL);
	io.addr = 0x600;
	io.len = 2;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IOEVENTFD, (uintptr_t)&io), -EBADF);
	io.fd = (uint32_t)p[0];
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IOEVENTFD, (uintptr_t)&io), -EINVAL);
	io.fd = (uint32_t)efd;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IOEVENTFD, (uintptr_t)&io), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IOEVENTFD, (uintptr_t)&io), -EEXIST);
	io.flags |= ACRN_IOEVENTFD_FLAG_DATAMATCH;
	io.data = 3;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IOEVENTFD, (uintptr_t)&io), -EEXIST);
	/* Deassign: by eventfd; 0 when there is none; not a bad fd. */
	io.flags = ACRN_IOEVENTFD_FLAG_DEASSIGN;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IOEVENTFD, (uintptr_t)&io), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IOEVENTFD, (uintptr_t)&io), 0);
	assert_int_equal(count_lines_with(last_serial(), "IOEVENTFD", "= 0 (no such ioeventfd)"), 1);
	io.fd = 900;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IOEVENTFD, (uintptr_t)&io), -EBADF);
	raw_close(&r);
	close(efd);
	close(p[0]);
	close(p[1]);
}

static void test_fake_irqfd_checks(void **state)
{
	int efd = eventfd(0, EFD_CLOEXEC), copy = dup(efd), p[2];
	struct acrn_irqfd irq = { .msi = { 0xfee00000, 0x30 } };
	struct raw r;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	unsetenv("FAKE_HSM_SCRIPTS");
	raw_open(&r);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_CREATE_VM, (uintptr_t)&r.cv), 0);
	irq.fd = 900;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IRQFD, (uintptr_t)&irq), -EBADF);
	irq.fd = p[1];
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IRQFD, (uintptr_t)&irq), -EINVAL);
	irq.fd = efd;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IRQFD, (uintptr_t)&irq), 0);
	/* The same eventfd, by any fd. */
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IRQFD, (uintptr_t)&irq), -EBUSY);
	irq.fd = copy;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IRQFD, (uintptr_t)&irq), -EBUSY);
	irq.flags = ACRN_IRQFD_FLAG_DEASSIGN;
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IRQFD, (uintptr_t)&irq), 0);
	assert_int_equal(xioctl(r.fd, ACRN_IOCTL_IRQFD, (uintptr_t)&irq), 0);
	assert_int_equal(count_lines_with(last_serial(), "IRQFD", "= 0 (no such irqfd)"), 1);
	raw_close(&r);
	close(efd);
	close(copy);
	close(p[0]);
	close(p[1]);
}

/* ---- the booted image, run by the fake on /dev/kvm (--kvm) ---- */

#define RUN_S 30

/* A broker for a real guest: the exit port, the UART, and the test's own
 * ports through serve(). */
struct guest_run {
	struct hsm_vm *vm;
	pthread_t thread;
	_Atomic uint32_t held;
	void (*serve)(struct guest_run *g, struct dispatch_access *a, struct acrn_io_request *req);
	void *priv;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool exited;
	int status;
	size_t uart_len;
	char uart[4096];
};

static void guest_access(struct guest_run *g, struct acrn_io_request *req)
{
	struct dispatch_access a;

	assert_int_equal(dispatch_decode(req, &a), 0);
	if (a.type == ACRN_IOREQ_TYPE_PORTIO && a.addr == 0xf4 && a.dir == ACRN_IOREQ_DIR_WRITE) {
		pthread_mutex_lock(&g->lock);
		g->exited = true;
		g->status = (int)a.value;
		pthread_cond_signal(&g->cond);
		pthread_mutex_unlock(&g->lock);
	} else if (a.type == ACRN_IOREQ_TYPE_PORTIO && a.addr == 0x3f8 && a.dir == ACRN_IOREQ_DIR_WRITE) {
		if (g->uart_len + 1 < sizeof(g->uart))
			g->uart[g->uart_len++] = (char)a.value;
	} else if (a.type == ACRN_IOREQ_TYPE_PORTIO && a.addr == 0x3fd && a.dir == ACRN_IOREQ_DIR_READ) {
		dispatch_set_value(req, 0x60); /* transmitter empty */
	} else if (g->serve) {
		g->serve(g, &a, req);
	} else if (a.dir == ACRN_IOREQ_DIR_READ) {
		dispatch_set_value(req, ~0ull);
	}
}

static void *guest_broker(void *arg)
{
	struct guest_run *g = arg;

	while (hsm_attach(g->vm, &g->held) == 0) {
		for (unsigned v = 0; v < g->vm->vcpu_num; v++) {
			struct acrn_io_request *req = &g->vm->page->req_slot[v];

			if (__atomic_load_n(&req->processed, __ATOMIC_ACQUIRE) != ACRN_IOREQ_STATE_PROCESSING ||
			    __atomic_load_n(&req->kernel_handled, __ATOMIC_RELAXED))
				continue;
			guest_access(g, req);
			assert_int_equal(hsm_complete(g->vm, v), 0);
		}
	}
	return NULL;
}

/* An acrn VM of two vCPUs booting @image, its broker running. */
static void guest_create(struct guest_run *g, const char *image, void *serve, void *priv)
{
	struct hsm_vm_params p = params("kvmboot", 2, false);

	unsetenv("FAKE_HSM_SCRIPTS");
	memset(g, 0, sizeof(*g));
	g->serve = serve;
	g->priv = priv;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	p.image = image;
	n_reports = 0;
	assert_int_equal(hsm_create(HSM_BACKEND_ACRN, &p, &g->vm), 0);
	assert_int_equal(hsm_create_client(g->vm), 0);
	assert_int_equal(pthread_create(&g->thread, NULL, guest_broker, g), 0);
}

/* Starts it and waits for the status the guest writes to its exit port. */
static void guest_run(struct guest_run *g)
{
	struct timespec until;
	char *res;

	assert_int_equal(hsm_start(g->vm), 0);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += RUN_S;
	pthread_mutex_lock(&g->lock);
	while (!g->exited && pthread_cond_timedwait(&g->cond, &g->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&g->lock);
	if (!g->exited || g->status) {
		res = slurp(result_path);
		print_error("the guest %s (status %d); its UART:\n%.*s\nthe fake's result:\n%s\n",
			    g->exited ? "failed" : "did not exit", g->status, (int)g->uart_len, g->uart, res);
		free(res);
		fail();
	}
}

static void guest_destroy(struct guest_run *g)
{
	assert_int_equal(hsm_destroy_client(g->vm), 0);
	pthread_join(g->thread, NULL);
	g->vm = hsm_destroy(g->vm);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
	assert_int_equal(n_reports, 0);
}

/* tests/guests/memory.c: its BUF and REPLY, through a mapping of the memfd
 * of our own, as a device would have it. */
static void serve_memory(struct guest_run *g, struct dispatch_access *a, struct acrn_io_request *req)
{
	uint32_t *ram;

	if (a->dir == ACRN_IOREQ_DIR_READ) {
		dispatch_set_value(req, ~0ull);
		return;
	}
	if (a->type != ACRN_IOREQ_TYPE_PORTIO || a->addr != 0x500)
		return;
	ram = mmap(NULL, g->vm->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, g->vm->mem_fd, 0);
	assert_true(ram != MAP_FAILED);
	for (unsigned i = 0; i < 1024; i++) {
		assert_int_equal(ram[0x400000 / 4 + i], 0x5a000000u | i);
		ram[0x401000 / 4 + i] = 0xa5000000u | i;
	}
	munmap(ram, g->vm->mem_size);
	*(bool *)g->priv = true;
}

/* The image boots from the registers SET_VCPU_REGS gave, in the RAM
 * SET_MEMSEG mapped: what it writes a mapping of the memfd sees and the
 * other way round; only the boot vCPU runs. */
static void test_kvm_boot_memory(void **state)
{
	struct guest_run g;
	bool checked = false;

	guest_create(&g, GUESTS "memory.elf", serve_memory, &checked);
	guest_run(&g);
	assert_true(checked);
	guest_destroy(&g);
}

struct ring {
	int msi;
};

/* tests/guests/interrupts.c: the line through SET_IRQLINE (the HSM has no
 * irqfd for one: the broker relays it), the MSI through its irqfd. */
static void serve_interrupts(struct guest_run *g, struct dispatch_access *a, struct acrn_io_request *req)
{
	const struct ring *r = g->priv;
	static const uint64_t one = 1;

	if (a->dir == ACRN_IOREQ_DIR_READ) {
		dispatch_set_value(req, ~0ull);
		return;
	}
	if (a->type != ACRN_IOREQ_TYPE_PORTIO || a->addr != 0x630)
		return;
	if (a->value == 1)
		assert_int_equal(hsm_set_irqline(g->vm, 5, HSM_IRQ_PULSE_HIGH), 0);
	else
		assert_int_equal(write(r->msi, &one, sizeof(one)), sizeof(one));
}

static void test_kvm_boot_interrupts(void **state)
{
	struct ring r = { eventfd(0, EFD_CLOEXEC) };
	struct hsm_irqfd msi = { .fd = r.msi, .msi = true, .msi_addr = 0xfee00000, .msi_data = 0x40 };
	struct hsm_irqfd line = { .fd = r.msi, .gsi = 5 };
	struct guest_run g;

	guest_create(&g, GUESTS "interrupts.elf", serve_interrupts, &r);
	assert_int_equal(hsm_irqfd(g.vm, &line, false), -EOPNOTSUPP);
	assert_int_equal(hsm_irqfd(g.vm, &msi, false), 0);
	guest_run(&g);
	guest_destroy(&g);
	close(r.msi);
}

struct bells {
	unsigned to_broker, reports[2], n_reports;
};

static void serve_doorbell(struct guest_run *g, struct dispatch_access *a, struct acrn_io_request *req)
{
	struct bells *b = g->priv;

	b->to_broker++;
	if (a->dir == ACRN_IOREQ_DIR_READ)
		dispatch_set_value(req, 0x1234);
	else if (a->type == ACRN_IOREQ_TYPE_PORTIO && a->addr == 0x620 && b->n_reports < 2)
		b->reports[b->n_reports++] = (unsigned)a->value;
}

/* tests/guests/doorbell.c: its doorbells ring the eventfds from the HSM's
 * ioeventfd client, and nothing but its two reports reaches the broker. */
static void test_kvm_boot_doorbell(void **state)
{
	int pio = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), mmio = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int match = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct hsm_ioeventfd e_pio = { .fd = pio, .type = ACRN_IOREQ_TYPE_PORTIO, .addr = 0x600, .size = 2 };
	struct hsm_ioeventfd e_mmio = { .fd = mmio, .type = ACRN_IOREQ_TYPE_MMIO, .addr = 0xd0000000, .size = 4 };
	struct hsm_ioeventfd e_match = {
		.fd = match, .type = ACRN_IOREQ_TYPE_PORTIO, .addr = 0x608, .size = 4, .datamatch = true, .data = 7
	};
	struct bells b = { 0 };
	struct guest_run g;

	guest_create(&g, GUESTS "doorbell.elf", serve_doorbell, &b);
	assert_int_equal(hsm_ioeventfd(g.vm, &e_pio, false), 0);
	assert_int_equal(hsm_ioeventfd(g.vm, &e_mmio, false), 0);
	assert_int_equal(hsm_ioeventfd(g.vm, &e_match, false), 0);
	guest_run(&g);
	assert_int_equal(drain(pio), 100);
	assert_int_equal(drain(mmio), 100);
	assert_int_equal(drain(match), 3);
	assert_int_equal(b.to_broker, 2);
	assert_int_equal(b.reports[0], 0);
	assert_int_equal(b.reports[1], 0);
	guest_destroy(&g);
	close(pio);
	close(mmio);
	close(match);
}

/* Why the fake cannot run guests on /dev/kvm here, or NULL. */
static const char *kvm_unusable(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return strerror(errno);
	close(fd);
	return NULL;
}

/* ---- without the fake ---- */

static void test_no_device(void **state)
{
	struct hsm_vm_params p = params("alpha", 1, false);
	struct hsm_vm *vm;

	n_reports = 0;
	assert_int_equal(hsm_create(HSM_BACKEND_ACRN, &p, &vm), -ENOENT);
	assert_int_equal(n_reports, 1);
	assert_string_equal(reports[0],
			    "vm alpha: /dev/acrn_hsm: No such file or directory: the acrn backend needs an ACRN Service VM");
}

static int rm_file(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest with_fake[] = {
		cmocka_unit_test(test_fake_vm_lifecycle_checks),
		cmocka_unit_test(test_fake_memseg_checks),
		cmocka_unit_test(test_fake_client_checks),
		cmocka_unit_test(test_sequence_and_held_requests),
		cmocka_unit_test(test_completion_polling),
		cmocka_unit_test(test_reset_sequence),
		cmocka_unit_test(test_signal_is_no_request),
		cmocka_unit_test(test_interrupts),
		cmocka_unit_test(test_memory_split),
		cmocka_unit_test(test_errors_reported),
		cmocka_unit_test(test_boot_sequence),
		cmocka_unit_test(test_scripts_see_ram),
		cmocka_unit_test(test_exit_port),
		cmocka_unit_test(test_doorbells_and_irqfds),
		cmocka_unit_test(test_fake_vcpu_regs_checks),
		cmocka_unit_test(test_fake_ioeventfd_checks),
		cmocka_unit_test(test_fake_irqfd_checks),
	};
	const struct CMUnitTest without_fake[] = {
		cmocka_unit_test(test_no_device),
	};
	const struct CMUnitTest on_kvm[] = {
		cmocka_unit_test(test_kvm_boot_memory),
		cmocka_unit_test(test_kvm_boot_interrupts),
		cmocka_unit_test(test_kvm_boot_doorbell),
	};
	bool kvm = argc > 1 && !strcmp(argv[1], "--kvm");
	const char *why;
	int r;

	if (argc > 1 && !strcmp(argv[1], "--no-device")) {
		/* CTest's SKIP_RETURN_CODE: a skip, not a pass. */
		if (access(ACRN_HSM_PATH, F_OK) == 0) {
			printf("skipped: %s exists: this test needs a machine without an ACRN Service VM\n",
			       ACRN_HSM_PATH);
			return 77;
		}
		return cmocka_run_group_tests_name("acrn without a device", without_fake, NULL, NULL);
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ioreq-acrn.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	/* The fake opens its log and result files at the first open of the device. */
	snprintf(log_path, sizeof(log_path), "%s/hsm.log", tmpdir);
	snprintf(result_path, sizeof(result_path), "%s/result", tmpdir);
	setenv("FAKE_HSM_LOG", log_path, 1);
	setenv("FAKE_HSM_RESULT", result_path, 1);
	if (kvm && (why = kvm_unusable())) {
		printf("skipped: /dev/kvm: %s: the fake HSM runs the booted guests on KVM\n", why);
		rmdir(tmpdir);
		return 77;
	}
	if (kvm)
		r = cmocka_run_group_tests_name("acrn guests booted on the fake HSM's KVM", on_kvm, NULL, NULL);
	else
		r = cmocka_run_group_tests_name("acrn against the fake HSM", with_fake, NULL, NULL);
	nftw(tmpdir, rm_file, 8, FTW_DEPTH | FTW_PHYS);
	return r;
}
