/* The acrn backend (kernel/acrn.c) against the fake /dev/acrn_hsm
 * (tests/fake_hsm/, loaded with LD_PRELOAD by ctest): the ioctl sequences of
 * start, requests, reset and shutdown as acrn-dm makes them, attach's
 * behaviour with held requests, completion polling, interrupts, the errors
 * reported; and the fake's own argument checks, which stand for the
 * driver's. With --no-device (and no fake), the missing device's message. */
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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "acrn.h"
#include "hsm.h"

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
static void broker_start(struct broker *b, const struct hsm_vm_params *p, int hold_vcpu)
{
	memset(b, 0, sizeof(*b));
	atomic_store(&b->hold_vcpu, hold_vcpu);
	n_reports = 0;
	assert_int_equal(hsm_create(HSM_BACKEND_ACRN, p, &b->vm), 0);
	assert_int_equal(hsm_create_client(b->vm), 0);
	assert_int_equal(pthread_create(&b->thread, NULL, broker_main, b), 0);
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

/* RAM above 2 GiB goes above 4 GiB, as acrn-dm lays it out. */
static void test_memory_split(void **state)
{
	struct hsm_vm_params p = params("big", 1, false);
	struct hsm_vm *vm;
	unsigned serial;

	unsetenv("FAKE_HSM_SCRIPTS");
	p.memory = 3ull << 30;
	assert_int_equal(hsm_create(HSM_BACKEND_ACRN, &p, &vm), 0);
	serial = last_serial();
	hsm_destroy(vm);
	assert_int_equal(count_lines(serial, "SET_MEMSEG type=0 gpa=0x0 len=0x80000000 attr=0x7 = 0"), 1);
	assert_int_equal(count_lines(serial, "SET_MEMSEG type=0 gpa=0x100000000 len=0x40000000 attr=0x7 = 0"), 1);
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
	};
	const struct CMUnitTest without_fake[] = {
		cmocka_unit_test(test_no_device),
	};
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
	r = cmocka_run_group_tests_name("acrn against the fake HSM", with_fake, NULL, NULL);
	nftw(tmpdir, rm_file, 8, FTW_DEPTH | FTW_PHYS);
	return r;
}
