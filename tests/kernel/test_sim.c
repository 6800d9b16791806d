/* The sim backend's guest RAM, doorbells and irqfds (issue 15), and the HSM
 * layer's registrations (kernel/hsm.c), which every backend shares: a VM's
 * RAM is a sealed memfd its scripts and a device mapping share; the
 * scripts' mem statements, checked against RAM when the VM is created; an
 * ioeventfd takes a script's write without the default client; an irqfd
 * written is an edge or an MSI the script waits for; and every bad
 * registration gets its documented error. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dispatch.h"
#include "hsm.h"
#include "sim.h"

#define RAM (1ull << 20)
#define DONE_S 10

static char tmpdir[64];

static const char *write_file(const char *name, const char *text, size_t len)
{
	static char path[8][192];
	static unsigned next;
	char *p = path[next++ % 8];
	FILE *f;

	snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
	f = fopen(p, "we");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
	return p;
}

static const char *script(const char *name, const char *text)
{
	return write_file(name, text, strlen(text));
}

/* ---- a sim VM and a default client of the test's ---- */

struct vm {
	struct hsm_vm *hsm;
	pthread_t client;
	bool has_client;
	_Atomic uint32_t held;
	void (*serve)(struct vm *v, struct dispatch_access *a, struct acrn_io_request *req);
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopped;
	int status;
	unsigned n_reports;
	char reports[8][512];
	_Atomic unsigned to_client;
	_Atomic unsigned port80;
};

static void on_stop(void *opaque, int status)
{
	struct vm *v = opaque;

	pthread_mutex_lock(&v->lock);
	v->stopped = true;
	v->status = status;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

static void on_report(void *opaque, const char *line)
{
	struct vm *v = opaque;

	pthread_mutex_lock(&v->lock);
	if (v->n_reports < 8)
		snprintf(v->reports[v->n_reports++], sizeof(v->reports[0]), "%s", line);
	pthread_mutex_unlock(&v->lock);
}

static void *client_main(void *arg)
{
	struct vm *v = arg;

	while (hsm_attach(v->hsm, &v->held) == 0) {
		for (unsigned i = 0; i < v->hsm->vcpu_num; i++) {
			struct acrn_io_request *req = &v->hsm->page->req_slot[i];
			struct dispatch_access a;

			if (__atomic_load_n(&req->processed, __ATOMIC_ACQUIRE) != ACRN_IOREQ_STATE_PROCESSING ||
			    __atomic_load_n(&req->kernel_handled, __ATOMIC_RELAXED))
				continue;
			assert_int_equal(dispatch_decode(req, &a), 0);
			atomic_fetch_add(&v->to_client, 1);
			if (a.type == ACRN_IOREQ_TYPE_PORTIO && a.addr == 0x80)
				atomic_fetch_add(&v->port80, 1);
			if (v->serve)
				v->serve(v, &a, req);
			else if (a.dir == ACRN_IOREQ_DIR_READ)
				dispatch_set_value(req, 0x1234);
			assert_int_equal(hsm_complete(v->hsm, i), 0);
		}
	}
	return NULL;
}

/* hsm_create's result; on success the client runs, the vCPUs do not. */
static int vm_create(struct vm *v, uint64_t memory, unsigned vcpus, const char *const *scripts)
{
	struct hsm_vm_params p = {
		.name = "simvm",
		.vcpus = vcpus,
		.scripts = scripts,
		.memory = memory,
		.on_stop = on_stop,
		.report = on_report,
		.opaque = v,
	};
	int r;

	memset(v, 0, sizeof(*v));
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	r = hsm_create(HSM_BACKEND_SIM, &p, &v->hsm);
	if (r)
		return r;
	assert_int_equal(hsm_create_client(v->hsm), 0);
	assert_int_equal(pthread_create(&v->client, NULL, client_main, v), 0);
	v->has_client = true;
	return 0;
}

/* Waits for the scripts to end; their status (0: every check held). */
static int vm_wait(struct vm *v)
{
	struct timespec until;
	int status;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += DONE_S;
	pthread_mutex_lock(&v->lock);
	while (!v->stopped && pthread_cond_timedwait(&v->cond, &v->lock, &until) != ETIMEDOUT)
		;
	status = v->stopped ? v->status : -1;
	pthread_mutex_unlock(&v->lock);
	if (status) {
		print_error("the scripts %s; reports:\n", status < 0 ? "did not end" : "failed");
		for (unsigned i = 0; i < v->n_reports; i++)
			print_error("  %s\n", v->reports[i]);
	}
	return status;
}

static void vm_destroy(struct vm *v)
{
	if (v->has_client) {
		assert_int_equal(hsm_destroy_client(v->hsm), 0);
		pthread_join(v->client, NULL);
	}
	v->hsm = hsm_destroy(v->hsm);
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
}

/* ---- guest RAM ---- */

/* At port 0x80, look at RAM through a mapping of our own, as a device would,
 * and leave a reply at 0x3000. */
static void serve_memory(struct vm *v, struct dispatch_access *a, struct acrn_io_request *req)
{
	uint8_t *ram;

	if (a->type != ACRN_IOREQ_TYPE_PORTIO || a->addr != 0x80)
		return;
	ram = mmap(NULL, v->hsm->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->hsm->mem_fd, 0);
	assert_true(ram != MAP_FAILED);
	assert_int_equal(*(uint32_t *)(ram + 0x1000), 0x11223344);
	assert_memory_equal(ram + 0x2003, "loaded!", 7);
	*(uint32_t *)(ram + 0x3000) = 0xcafe;
	munmap(ram, v->hsm->mem_size);
}

/* A sim VM's RAM is one sealed memfd at 0 that scripts and a mapping of
 * the memfd share: stores, loads, a file loaded (relative to the script),
 * what the "device" wrote read back. */
static void test_memory(void **state)
{
	const char *s[1];
	struct sim_stats st;
	struct stat st_mem;
	struct vm v;

	write_file("data.bin", "loaded!", 7);
	s[0] = script("mem.txt", "mem write 0x1000 4 0x11223344\n"
				 "mem read 0x1000 4 0x11223344\n"
				 "mem read 0x1001 2 0x2233\n"
				 "mem load 0x2003 data.bin\n"
				 "mem read 0x2003 1 0x6c\n"
				 "pio write 0x80 1 1\n"
				 "mem read 0x3000 4 0xcafe\n"
				 "repeat 3\n  mem write 0xfff00 8 seq\n  mem read 0xfff00 8 seq\nend\n"
				 "mem read 0xffff8 8 0\n");
	assert_int_equal(vm_create(&v, RAM, 1, s), 0);
	v.serve = serve_memory;
	assert_true(v.hsm->mem_fd >= 0);
	assert_non_null(v.hsm->mem);
	assert_int_equal(v.hsm->mem_size, RAM);
	assert_int_equal(v.hsm->n_regions, 1);
	assert_int_equal(v.hsm->regions[0].gpa, 0);
	assert_int_equal(v.hsm->regions[0].size, RAM);
	assert_int_equal(v.hsm->regions[0].offset, 0);
	assert_int_equal(fcntl(v.hsm->mem_fd, F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	/* Size sealed: a holder of the fd cannot cut pages from under the
	 * guest (a SIGBUS for the broker) or grow the VM. */
	assert_int_equal(ftruncate(v.hsm->mem_fd, RAM - 4096), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(v.hsm->mem_fd, RAM + 4096), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fallocate(v.hsm->mem_fd, 0, 0, 2 * RAM), -1);
	assert_int_equal(errno, EPERM);
	/* Every page allocated already: nothing to charge a device for later. */
	assert_int_equal(fstat(v.hsm->mem_fd, &st_mem), 0);
	assert_true((uint64_t)st_mem.st_blocks * 512 >= RAM);
	assert_int_equal(hsm_start(v.hsm), 0);
	assert_int_equal(vm_wait(&v), 0);
	sim_vm_stats(v.hsm, &st);
	assert_int_equal(st.mem_ops, 13);
	assert_int_equal(st.accesses, 1);
	assert_int_equal(st.mismatches, 0);
	vm_destroy(&v);
}

/* A VM without memory has none; a mem statement then fails at creation. */
static void test_no_memory(void **state)
{
	const char *s[1] = { script("nomem.txt", "pio write 0x80 1 1\n\nmem write 0x10 4 1\n") };
	char want[256];
	struct vm v;

	assert_int_equal(vm_create(&v, 0, 1, NULL), 0);
	assert_int_equal(v.hsm->mem_fd, -1);
	assert_null(v.hsm->mem);
	assert_int_equal(v.hsm->mem_size, 0);
	assert_int_equal(v.hsm->n_regions, 0);
	vm_destroy(&v);

	assert_int_equal(vm_create(&v, 0, 1, s), -EINVAL);
	snprintf(want, sizeof(want), "%s:3: mem write 0x10 (4 bytes) is not inside guest RAM (the VM has none)", s[0]);
	assert_int_equal(v.n_reports, 1);
	assert_string_equal(v.reports[0], want);
	pthread_cond_destroy(&v.cond);
	pthread_mutex_destroy(&v.lock);
}

/* Out of RAM by one byte, or by a file's length: an error at creation with
 * the script's file and line, before any vCPU runs. */
static void test_out_of_ram(void **state)
{
	static const struct {
		const char *text, *what;
	} cases[] = {
		{ "mem read 0xffffd 4 0\n", "2: mem read 0xffffd (4 bytes)" },
		{ "mem write 0x100000 1 0\n", "2: mem write 0x100000 (1 bytes)" },
		{ "mem wait 0xffffffffffff0000 8 1 10\n", "2: mem wait 0xffffffffffff0000 (8 bytes)" },
		{ "mem load 0xffffc data.bin\n", "2: mem load 0xffffc (7 bytes)" },
	};
	char want[256], text[256];

	write_file("data.bin", "loaded!", 7);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *s[2] = { NULL, NULL };
		struct vm v;

		snprintf(text, sizeof(text), "mem write 0 8 0\n%s", cases[i].text);
		s[1] = script("oor.txt", text);
		assert_int_equal(vm_create(&v, RAM, 2, s), -EINVAL);
		snprintf(want, sizeof(want), "%s:%s is not inside guest RAM", s[1], cases[i].what);
		assert_int_equal(v.n_reports, 1);
		assert_string_equal(v.reports[0], want);
		pthread_cond_destroy(&v.cond);
		pthread_mutex_destroy(&v.lock);
	}
}

/* The new statements' syntax errors, with the line. */
static void test_parse_errors(void **state)
{
	static const struct {
		const char *text, *err;
	} cases[] = {
		{ "mem\n", "t:1: expected: mem write|read|wait|load ..." },
		{ "mem poke 0 1 1\n", "t:1: expected: mem write|read|wait|load, not 'poke'" },
		{ "mem write 0 4\n", "t:1: expected: mem write GPA SIZE VALUE" },
		{ "mem read 0 3 0\n", "t:1: bad size '3': 1, 2, 4 or 8" },
		{ "mem write 0 1 0x100\n", "t:1: value 0x100 does not fit in 1 bytes" },
		{ "mem write 0 4 any\n", "t:1: 'any' is only for reads" },
		{ "mem read 0xffffffffffffffff 2 0\n", "t:1: access wraps around" },
		{ "mem wait 0 4 1\n", "t:1: expected: mem wait GPA SIZE VALUE MS" },
		{ "mem wait 0 4 any 10\n", "t:1: 'any' is not something to wait for" },
		{ "mem wait 0 4 1 0\n", "t:1: bad timeout '0': 1..60000 ms" },
		{ "mem wait 0 4 1 60001\n", "t:1: bad timeout '60001': 1..60000 ms" },
		{ "\nmem load 0\n", "t:2: expected: mem load GPA FILE" },
		{ "irq 5 rise\n", "t:1: bad level 'rise': 0, 1 or edge" },
		{ "msi 0xfee00000\n", "t:1: expected: msi ADDR DATA (DATA < 2^32)" },
		{ "msi 0xfee00000 0x100000000\n", "t:1: expected: msi ADDR DATA (DATA < 2^32)" },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sim_script *s = NULL;

		err[0] = '\0';
		assert_int_equal(sim_script_parse(cases[i].text, strlen(cases[i].text), "t", &s, err, sizeof(err)),
				 -EINVAL);
		assert_string_equal(err, cases[i].err);
		assert_null(s);
	}
}

/* A missing file to load, and one too large, with the script's line. */
static void test_load_errors(void **state)
{
	const char *path = script("load.txt", "# first\nmem load 0 missing.bin\n");
	struct sim_script *s = NULL;
	char err[512], want[512];
	int fd;

	assert_int_equal(sim_script_load(path, &s, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s:2: mem load %s/missing.bin: No such file or directory", path, tmpdir);
	assert_string_equal(err, want);
	assert_null(s);

	fd = open(write_file("big.bin", "", 0), O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SIM_MAX_LOAD_BYTES + 1), 0);
	close(fd);
	path = script("load.txt", "mem load 0 big.bin\n");
	assert_int_equal(sim_script_load(path, &s, err, sizeof(err)), -EFBIG);
	snprintf(want, sizeof(want), "%s:1: mem load %s/big.bin: larger than %u bytes", path, tmpdir, SIM_MAX_LOAD_BYTES);
	assert_string_equal(err, want);
}

/* A mem read that does not hold is a mismatch like an access's. */
static void test_mem_mismatch(void **state)
{
	const char *s[1] = { script("mm.txt", "mem write 0x40 2 0xbeef\nmem read 0x40 2 0xbeee\n") };
	char want[256];
	struct vm v;

	assert_int_equal(vm_create(&v, RAM, 1, s), 0);
	assert_int_equal(hsm_start(v.hsm), 0);
	assert_int_equal(vm_wait(&v), 1);
	snprintf(want, sizeof(want), "vm simvm vcpu 0 %s:2: mem read 0x40 size 2 returned 0xbeef, expected 0xbeee", s[0]);
	assert_int_equal(v.n_reports, 1);
	assert_string_equal(v.reports[0], want);
	vm_destroy(&v);
}

struct poke {
	struct vm *v;
	uint64_t off;
	uint32_t value;
	unsigned after_ms;
};

static void *poke_main(void *arg)
{
	struct poke *p = arg;
	uint8_t *ram = mmap(NULL, p->v->hsm->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, p->v->hsm->mem_fd, 0);

	assert_true(ram != MAP_FAILED);
	usleep(p->after_ms * 1000);
	__atomic_store_n((uint32_t *)(ram + p->off), p->value, __ATOMIC_RELEASE);
	munmap(ram, p->v->hsm->mem_size);
	return NULL;
}

/* mem wait sees what another process writes into the memfd, and reports
 * what it still reads when it gives up. */
static void test_mem_wait(void **state)
{
	const char *s[1] = { script("wait.txt", "mem wait 0x100 4 0x77 5000\nmem wait 0x200 4 0x1 50\n") };
	struct poke p;
	pthread_t t;
	char want[256];
	struct vm v;

	assert_int_equal(vm_create(&v, RAM, 1, s), 0);
	p = (struct poke){ &v, 0x100, 0x77, 50 };
	assert_int_equal(pthread_create(&t, NULL, poke_main, &p), 0);
	assert_int_equal(hsm_start(v.hsm), 0);
	assert_int_equal(vm_wait(&v), 1);
	pthread_join(t, NULL);
	snprintf(want, sizeof(want), "vm simvm vcpu 0 %s:2: mem wait 0x200 size 4: still 0x0 after 50 ms, expected 0x1",
		 s[0]);
	assert_int_equal(v.n_reports, 1);
	assert_string_equal(v.reports[0], want);
	vm_destroy(&v);
}

/* Port 0x80 reads 0 for its first 5 reads, then 0x11: a device that is
 * not ready yet. */
static void serve_late(struct vm *v, struct dispatch_access *a, struct acrn_io_request *req)
{
	if (a->dir == ACRN_IOREQ_DIR_READ)
		dispatch_set_value(req, atomic_load(&v->port80) > 5 ? 0x11 : 0);
}

/* "until MS" polls a register as a driver does: again and again until it
 * reads the value, reporting a mismatch only when the time is up, and
 * only reads may wait. */
static void test_read_until(void **state)
{
	const char *s[1] = { script("until.txt", "pio read 0x80 1 0x11 until 5000\npio read 0x80 1 0x12 until 30\n") };
	static const struct {
		const char *text, *err;
	} bad[] = {
		{ "pio write 0x80 1 1 until 10\n", "t:1: only a read waits 'until'" },
		{ "pio read 0x80 1 any until 10\n", "t:1: 'until' waits for a value: not 'any'" },
		{ "pio read 0x80 1 1 until 0\n", "t:1: expected: until MS (1..60000)" },
		{ "pio read 0x80 1 1 till 9\n", "t:1: expected: pio read|write ADDR SIZE VALUE [until MS]" },
	};
	char want[256], err[256];
	struct vm v;

	assert_int_equal(vm_create(&v, 0, 1, s), 0);
	v.serve = serve_late;
	assert_int_equal(hsm_start(v.hsm), 0);
	assert_int_equal(vm_wait(&v), 1);
	assert_true(atomic_load(&v.port80) >= 7);
	snprintf(want, sizeof(want), "vm simvm vcpu 0 %s:2: pio read 0x80 size 1 returned 0x11, expected 0x12", s[0]);
	assert_int_equal(v.n_reports, 1);
	assert_string_equal(v.reports[0], want);
	vm_destroy(&v);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sim_script *sc = NULL;

		assert_int_equal(sim_script_parse(bad[i].text, strlen(bad[i].text), "t", &sc, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, bad[i].err);
	}
}

/* ---- doorbells and irqfds ---- */

static uint64_t drain(int efd)
{
	uint64_t n = 0;

	if (read(efd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

/* Doorbells reach their eventfds and never the default client (the vCPU
 * waits for nobody), by the HSM's rules: a datamatch doorbell ignores other
 * values, a narrower write at the doorbell rings it, one elsewhere in its
 * range is dropped, reads return 0; deassigned, the client sees it all. */
static void test_ioeventfd(void **state)
{
	int pio = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), mmio = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int match = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), mmio_copy, reuse;
	struct hsm_ioeventfd e_pio = { .fd = pio, .type = ACRN_IOREQ_TYPE_PORTIO, .addr = 0x600, .size = 2 };
	struct hsm_ioeventfd e_mmio = { .fd = mmio, .type = ACRN_IOREQ_TYPE_MMIO, .addr = 0xd0000000, .size = 4 };
	struct hsm_ioeventfd e_match = {
		.fd = match, .type = ACRN_IOREQ_TYPE_PORTIO, .addr = 0x608, .size = 4, .datamatch = true, .data = 7
	};
	const char *s[1] = { script("bells.txt", "repeat 50\n  pio write 0x600 2 seq\n  mmio write 0xd0000000 4 seq\nend\n"
						 "pio write 0x608 4 7\npio write 0x608 4 8\npio write 0x608 2 7\n"
						 "pio write 0x601 1 1\npio read 0x600 2 0\nmmio read 0xd0000000 4 0\n"
						 "pio write 0x600 1 9\n"
						 "pio write 0x80 1 1\n") };
	struct vm v;

	assert_int_equal(vm_create(&v, 0, 1, s), 0);
	assert_int_equal(hsm_ioeventfd(v.hsm, &e_pio, false), 0);
	assert_int_equal(hsm_ioeventfd(v.hsm, &e_mmio, false), 0);
	assert_int_equal(hsm_ioeventfd(v.hsm, &e_match, false), 0);
	/* The HSM rings its own copy: not whatever gets the caller's number. */
	mmio_copy = dup(mmio);
	close(mmio);
	reuse = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_int_equal(reuse, mmio);
	mmio = mmio_copy;
	assert_int_equal(hsm_start(v.hsm), 0);
	assert_int_equal(vm_wait(&v), 0);
	assert_int_equal(drain(reuse), 0);
	close(reuse);
	/* 50 and the narrower write at the doorbell itself (the HSM matches a
	 * length of at least the access's); not the one at 0x601. */
	assert_int_equal(drain(pio), 51);
	assert_int_equal(drain(mmio), 50);
	/* 7 in 4 bytes, and 7 in 2 (the narrower write again); not 8. */
	assert_int_equal(drain(match), 2);
	assert_int_equal(atomic_load(&v.to_client), 1);
	vm_destroy(&v);

	/* Deassigned: every access reaches the client, which answers. */
	s[0] = script("bells2.txt", "pio write 0x600 2 1\npio read 0x600 2 0x1234\n");
	assert_int_equal(vm_create(&v, 0, 1, s), 0);
	assert_int_equal(hsm_ioeventfd(v.hsm, &e_pio, false), 0);
	assert_int_equal(hsm_ioeventfd(v.hsm, &e_pio, true), 0);
	assert_int_equal(hsm_start(v.hsm), 0);
	assert_int_equal(vm_wait(&v), 0);
	assert_int_equal(drain(pio), 0);
	assert_int_equal(atomic_load(&v.to_client), 2);
	vm_destroy(&v);
	close(pio);
	close(mmio);
	close(match);
}

static void kick(int efd)
{
	static const uint64_t one = 1;

	assert_int_equal(write(efd, &one, sizeof(one)), sizeof(one));
}

/* An irqfd written is an edge on its line or an MSI, which the scripts
 * take; one written before it is assigned injects at once; deassigned, a
 * write injects nothing. The HSM holds its own copy of the eventfd. */
static void test_irqfd(void **state)
{
	int line = eventfd(0, EFD_CLOEXEC), msi = eventfd(0, EFD_CLOEXEC), early = eventfd(0, EFD_CLOEXEC);
	int early_copy = dup(early), reuse;
	struct hsm_irqfd f_line = { .fd = line, .gsi = 5 };
	struct hsm_irqfd f_msi = { .fd = msi, .msi = true, .msi_addr = 0xfee00000, .msi_data = 0x41 };
	struct hsm_irqfd f_early = { .fd = early, .gsi = 9 };
	const char *s[2] = { script("irq0.txt", "irq 5 edge\nirq 9 edge\npio write 0x80 1 1\nirq 5 edge\n"),
			     script("irq1.txt", "msi 0xfee00000 0x41\npio write 0x80 1 2\n") };
	struct sim_stats st;
	struct vm v;

	kick(early);
	assert_int_equal(vm_create(&v, 0, 2, s), 0);
	assert_int_equal(hsm_irqfd(v.hsm, &f_line, false), 0);
	assert_int_equal(hsm_irqfd(v.hsm, &f_msi, false), 0);
	assert_int_equal(hsm_irqfd(v.hsm, &f_early, false), 0);
	/* The caller's own copy can go: the HSM keeps one while registered,
	 * and an eventfd that gets the number next is not the irqfd. */
	close(early);
	reuse = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(reuse, early);
	kick(reuse);
	assert_int_equal(hsm_start(v.hsm), 0);
	kick(line);
	kick(msi);
	/* The second edge on line 5 only after vCPU 0 took the first. */
	for (int i = 0; i < 1000 && atomic_load(&v.port80) < 2; i++)
		usleep(1000);
	kick(line);
	assert_int_equal(vm_wait(&v), 0);
	sim_vm_stats(v.hsm, &st);
	assert_int_equal(st.msis, 1);
	assert_int_equal(st.irq_ops, 3);
	/* Deassigned by the number it was assigned with, though closed. */
	assert_int_equal(hsm_irqfd(v.hsm, &f_early, true), 0);
	assert_int_equal(hsm_irqfd(v.hsm, &f_msi, true), 0);
	kick(msi);
	kick(early_copy);
	usleep(20 * 1000);
	sim_vm_stats(v.hsm, &st);
	assert_int_equal(st.msis, 1);
	assert_int_equal(st.irq_ops, 3);
	vm_destroy(&v);
	close(line);
	close(msi);
	close(early_copy);
	close(reuse);
}

/* Every error hsm_ioeventfd and hsm_irqfd document. */
static void test_bad_registrations(void **state)
{
	int efd = eventfd(0, EFD_CLOEXEC), other = eventfd(0, EFD_CLOEXEC), third = eventfd(0, EFD_CLOEXEC);
	/* A number nothing here opens: fds are taken lowest first. */
	int closed = 900, pipefd[2];
	struct hsm_ioeventfd e = { .fd = efd, .type = ACRN_IOREQ_TYPE_PORTIO, .addr = 0x600, .size = 2 };
	struct hsm_ioeventfd b;
	struct hsm_irqfd f = { .fd = other, .gsi = 3 };
	struct vm v;

	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	assert_int_equal(fcntl(closed, F_GETFD), -1);
	assert_int_equal(vm_create(&v, RAM, 1, NULL), 0);

	b = e, b.fd = -1;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EBADF);
	b = e, b.fd = closed;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EBADF);
	b = e, b.fd = pipefd[0];
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EINVAL);
	b = e, b.type = ACRN_IOREQ_TYPE_PCICFG;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EINVAL);
	b = e, b.size = 3;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EINVAL);
	b = e, b.size = 8;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EINVAL);
	b = e, b.addr = 0xffff;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EINVAL);
	b = e, b.addr = 0x10000, b.size = 1;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EINVAL);
	b = e, b.datamatch = true, b.data = 0x10000;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EINVAL);
	b = e, b.type = ACRN_IOREQ_TYPE_MMIO, b.addr = ~0ull - 2, b.size = 4;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EINVAL);
	/* In RAM: no access there ever exits. */
	b = e, b.type = ACRN_IOREQ_TYPE_MMIO, b.addr = RAM - 2, b.size = 4;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EINVAL);
	b = e, b.type = ACRN_IOREQ_TYPE_MMIO, b.addr = RAM, b.size = 8;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), 0);
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, true), 0);

	assert_int_equal(hsm_ioeventfd(v.hsm, &e, false), 0);
	/* The same fd again, in any role. */
	assert_int_equal(hsm_ioeventfd(v.hsm, &e, false), -EEXIST);
	b = e, b.addr = 0x700;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EEXIST);
	f.fd = efd;
	assert_int_equal(hsm_irqfd(v.hsm, &f, false), -EEXIST);
	f.fd = other;
	/* Another fd that one write could ring as well. */
	b = e, b.fd = other;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EEXIST);
	b = e, b.fd = other, b.datamatch = true, b.data = 1;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EEXIST);
	/* Two values of one doorbell are two doorbells. */
	assert_int_equal(hsm_ioeventfd(v.hsm, &e, true), 0);
	e.datamatch = true, e.data = 1;
	assert_int_equal(hsm_ioeventfd(v.hsm, &e, false), 0);
	b = e, b.fd = other, b.data = 2;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), 0);
	b.fd = third, b.datamatch = false;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, false), -EEXIST);
	/* Deassign: only what is there, with its own arguments. */
	b = e, b.data = 2;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, true), -ENOENT);
	b = e, b.fd = third;
	assert_int_equal(hsm_ioeventfd(v.hsm, &b, true), -ENOENT);
	assert_int_equal(hsm_irqfd(v.hsm, &(struct hsm_irqfd){ .fd = efd, .gsi = 3 }, true), -ENOENT);
	assert_int_equal(hsm_ioeventfd(v.hsm, &e, true), 0);
	assert_int_equal(hsm_ioeventfd(v.hsm, &e, true), -ENOENT);

	/* irqfds: an eventfd, a line the sim has. */
	f.fd = third;
	f.gsi = SIM_IRQ_LINES;
	assert_int_equal(hsm_irqfd(v.hsm, &f, false), -EINVAL);
	f.gsi = 3;
	f.fd = pipefd[1];
	assert_int_equal(hsm_irqfd(v.hsm, &f, false), -EINVAL);
	f.fd = closed;
	assert_int_equal(hsm_irqfd(v.hsm, &f, false), -EBADF);
	f.fd = third;
	assert_int_equal(hsm_irqfd(v.hsm, &f, false), 0);
	assert_int_equal(hsm_irqfd(v.hsm, &f, false), -EEXIST);
	f.gsi = 4;
	assert_int_equal(hsm_irqfd(v.hsm, &f, true), -ENOENT);
	f.gsi = 3;
	assert_int_equal(hsm_irqfd(v.hsm, &f, true), 0);
	vm_destroy(&v);
	close(efd);
	close(other);
	close(third);
	close(pipefd[0]);
	close(pipefd[1]);
}

static int rm_file(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory),
		cmocka_unit_test(test_no_memory),
		cmocka_unit_test(test_out_of_ram),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_mem_mismatch),
		cmocka_unit_test(test_mem_wait),
		cmocka_unit_test(test_read_until),
		cmocka_unit_test(test_ioeventfd),
		cmocka_unit_test(test_irqfd),
		cmocka_unit_test(test_bad_registrations),
	};
	int r;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ioreq-sim.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	r = cmocka_run_group_tests_name("sim backend: RAM, doorbells, irqfds", tests, NULL, NULL);
	nftw(tmpdir, rm_file, 8, FTW_DEPTH | FTW_PHYS);
	return r;
}
