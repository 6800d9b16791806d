/* ioreq-test-dplane: a device that uses the data plane on command, for the
 * data-plane tests (tests/integration/test_dataplane.c, test_devsup.c).
 *
 * Before connecting it prints the fds it was started with ("fds: 0 1 2 3:reg
 * 4:anon ..."): only 0-2 and the block the broker passes may be there.
 * Once connected, what it was given ("given: memory R files F doorbells D
 * irqfds I"), then it serves its first range (PIO or MMIO) as registers:
 *
 *   offset 0x00  write: run command V; read: the last command's result
 *                (a negative errno as a two's complement)
 *   offset 0x08, 0x10, 0x18  ARG0, ARG1, ARG2 (MMIO 8 bytes; PIO: 4, at
 *                offsets 4, 8 and 12 instead)
 *
 *   1 copy ARG2 bytes of guest memory from ARG0 to ARG1
 *   2 result = the 8 bytes of guest memory at ARG0
 *   3 write ARG1 (8 bytes) to guest memory at ARG0
 *   4 result = the 8 bytes at offset ARG1 of file ARG0
 *   5 write ARG2 (8 bytes) at offset ARG1 of file ARG0, then fdatasync
 *   6 result = the doorbell rings seen so far (a thread polls them)
 *   7 ring irqfd ARG0 (the eventfd number) once
 *   8 bind a doorbell (from this handler): ARG0 kind (0 PIO, 1 MMIO),
 *     ARG1 address, ARG2 size | datamatch << 8 | value << 32;
 *     result = its eventfd or the error
 *   9 bind an irqfd on IRQ line ARG0 (ARG0 = 0xffffffff: MSI); result as 8
 *  10 unbind eventfd ARG0
 *  11 result = 1 if guest memory at ARG0 (ARG1 bytes) has a pointer for
 *     writing, 0 if only for reading, -EFAULT if none
 *  12 result = how many writes reached other offsets (say, a doorbell's
 *     address with a value its datamatch does not match)
 *  13 result = 0 if guest memory's fd ARG0 maps writable (then unmapped),
 *     else the errno of mmap(PROT_WRITE, MAP_SHARED); ARG1 = 1: of
 *     reopening /proc/self/fd/ARG0 for writing instead
 *
 * Doorbell rings are read by a thread, and by command 6 before it counts
 * them: the count covers every ring of a write that completed before it.
 *
 * --bind-at-start binds, once connected, a doorbell on the 4 bytes at its
 * first range's start + 0x40 and an irqfd on its first IRQ line, and says
 * "bound" (or why not). --copy-on-ring: for every doorbell ring it reads,
 * it runs command 1 (copy, with the arguments then in its registers), then
 * rings the irqfd it bound last (at start or by command 9): a driver's
 * "go" and the device's "done", with no request either way.
 *
 * Every line it prints goes to its stdout (the test gives it a file).
 *
 * With --raw it skips the library and speaks the protocol itself, to send
 * what the library never would: after the Welcome, one Register per --reg
 * (io:INDEX:pio|mmio|pci:ADDR:SIZE, irq:INDEX:LINE, msi:INDEX, or
 * release-io:INDEX), printing "reg N: ERROR" for each answer, then serves
 * reads with 0. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>

#include "ioreq/device.h"
#include "wire.h"

#define PROG "ioreq-test-dplane"
#define MAX_REGS 16
#define MAX_DOORBELLS 64

/* The handler and the doorbell thread share it under @lock. */
struct dp {
	struct ioreq_dev *dev;
	pthread_mutex_t lock;
	uint64_t arg[3];
	int64_t result;
	uint64_t others;
	uint64_t rings;
	int doorbells[MAX_DOORBELLS];
	int n_doorbells;
	int irqfd;  /* the last one bound, or -1 */
	bool copy_on_ring;
};

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void print_fds(void)
{
	char line[2048];
	size_t n = 0;

	n += (size_t)snprintf(line + n, sizeof(line) - n, "fds:");
	for (int fd = 0; fd < 1024 && n < sizeof(line) - 32; fd++) {
		struct stat st;
		const char *kind;

		if (fcntl(fd, F_GETFD) < 0)
			continue;
		if (fd < 3 || fstat(fd, &st) < 0)
			kind = NULL;
		else if (S_ISREG(st.st_mode))
			kind = "reg";
		else if (S_ISBLK(st.st_mode))
			kind = "blk";
		else if (!(st.st_mode & S_IFMT))
			kind = "anon";
		else
			kind = "other";
		n += (size_t)snprintf(line + n, sizeof(line) - n, kind ? " %d:%s" : " %d", fd, kind);
	}
	out("%s", line);
}

/* ---- through the library ---- */

static int64_t run(struct dp *d, uint64_t cmd);

/* Reads every doorbell (they are non-blocking) into the count: how many
 * rings it read. Under the lock. */
static uint64_t drain(struct dp *d)
{
	uint64_t v, n = 0;

	for (int i = 0; i < d->n_doorbells; i++)
		if (read(d->doorbells[i], &v, sizeof(v)) == sizeof(v))
			n += v;
	d->rings += n;
	return n;
}

static void *poller(void *arg)
{
	struct dp *d = arg;

	for (;;) {
		struct pollfd p[MAX_DOORBELLS];
		uint64_t one = 1;
		int n;

		pthread_mutex_lock(&d->lock);
		n = d->n_doorbells;
		for (int i = 0; i < n; i++)
			p[i] = (struct pollfd){ .fd = d->doorbells[i], .events = POLLIN };
		pthread_mutex_unlock(&d->lock);
		/* A bound doorbell is seen within one timeout. */
		if (poll(p, (nfds_t)n, 20) <= 0)
			continue;
		pthread_mutex_lock(&d->lock);
		if (drain(d) && d->copy_on_ring) {
			int64_t r = run(d, 1);

			if (r < 0)
				out("copy on ring: %s", strerror((int)-r));
			if (d->irqfd < 0 || write(d->irqfd, &one, sizeof(one)) != sizeof(one))
				out("copy on ring: no irqfd to ring");
		}
		pthread_mutex_unlock(&d->lock);
	}
	return NULL;
}

static int64_t try_write_memory(int fd, bool reopen)
{
	char proc[32];
	void *p;

	if (reopen) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		fd = open(proc, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		close(fd);
		return 0;
	}
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	munmap(p, 4096);
	return 0;
}

static int64_t run(struct dp *d, uint64_t cmd)
{
	const struct ioreq_mem *m = ioreq_dev_memory(d->dev);
	uint64_t v = 0, *a = d->arg;
	bool writable;
	int r, fd;

	switch (cmd) {
	case 1: {
		char *buf = malloc(a[2] ? a[2] : 1);

		r = buf ? ioreq_mem_read(m, a[0], buf, a[2]) : -ENOMEM;
		if (r == 0)
			r = ioreq_mem_write(m, a[1], buf, a[2]);
		free(buf);
		return r;
	}
	case 2:
		r = ioreq_mem_read(m, a[0], &v, sizeof(v));
		return r < 0 ? r : (int64_t)v;
	case 3:
		return ioreq_mem_write(m, a[0], &a[1], sizeof(a[1]));
	case 4:
		r = ioreq_dev_file(d->dev, a[0], &fd, NULL);
		if (r == 0 && pread(fd, &v, sizeof(v), (off_t)a[1]) != sizeof(v))
			r = -errno;
		return r < 0 ? r : (int64_t)v;
	case 5:
		r = ioreq_dev_file(d->dev, a[0], &fd, &writable);
		if (r == 0 && (pwrite(fd, &a[2], sizeof(a[2]), (off_t)a[1]) != sizeof(a[2]) || fdatasync(fd) < 0))
			r = -errno;
		return r;
	case 6:
		drain(d);
		return (int64_t)d->rings;
	case 7:
		v = 1;
		return write((int)a[0], &v, sizeof(v)) == sizeof(v) ? 0 : -errno;
	case 8:
		r = ioreq_dev_ioeventfd(d->dev, a[0] ? IOREQ_MMIO : IOREQ_PIO, a[1], a[2] & 0xff, (a[2] >> 8) & 1,
					a[2] >> 32, &fd);
		if (r < 0)
			return r;
		if (d->n_doorbells < MAX_DOORBELLS)
			d->doorbells[d->n_doorbells++] = fd;
		return fd;
	case 9:
		if (a[0] == 0xffffffff)
			r = ioreq_dev_irqfd_msi(d->dev, 0xfee00000, 0x41, &fd);
		else
			r = ioreq_dev_irqfd_line(d->dev, (uint32_t)a[0], &fd);
		if (r < 0)
			return r;
		d->irqfd = fd;
		return fd;
	case 10:
		return ioreq_dev_eventfd_release(d->dev, (int)a[0]);
	case 11:
		if (ioreq_mem_ptr(m, a[0], a[1], true))
			return 1;
		return ioreq_mem_ptr(m, a[0], a[1], false) ? 0 : -EFAULT;
	case 12:
		return (int64_t)d->others;
	case 13:
		return try_write_memory((int)a[0], a[1] == 1);
	}
	return -EINVAL;
}

static int dp_access(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	struct dp *d = opaque;
	unsigned stride = a->kind == IOREQ_PIO ? 4 : 8;
	uint64_t reg = a->offset / stride;

	if (a->range != 0 || a->offset % stride)
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	if (!a->write) {
		*value = reg == 0 ? (uint64_t)d->result : reg <= 3 ? d->arg[reg - 1] : 0;
	} else if (reg == 0) {
		d->result = run(d, a->value);
		out("cmd %" PRIu64 ": %" PRId64, a->value, d->result);
	} else if (reg <= 3) {
		d->arg[reg - 1] = a->value;
	} else {
		d->others++;
	}
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static const struct ioreq_dev_ops dp_ops = {
	.pio = dp_access,
	.mmio = dp_access,
};

/* A doorbell and an irqfd, before serving: from the main thread, which
 * receives for itself until the answers come. */
static void bind_at_start(struct dp *d)
{
	const struct ioreq_dev_info *info = ioreq_dev_info(d->dev);
	int r, fd;

	if (!info->n_ranges || !info->n_irq_lines) {
		out("bind failed: no range or no IRQ line");
		return;
	}
	r = ioreq_dev_ioeventfd(d->dev, info->ranges[0].kind, info->ranges[0].start + 0x40, 4, false, 0, &fd);
	if (r < 0) {
		out("bind failed: doorbell: %s", strerror(-r));
		return;
	}
	pthread_mutex_lock(&d->lock);
	d->doorbells[d->n_doorbells++] = fd;
	pthread_mutex_unlock(&d->lock);
	r = ioreq_dev_irqfd_line(d->dev, info->irq_lines[0], &fd);
	if (r < 0) {
		out("bind failed: irqfd: %s", strerror(-r));
		return;
	}
	pthread_mutex_lock(&d->lock);
	d->irqfd = fd;
	pthread_mutex_unlock(&d->lock);
	out("bound: doorbell %d irqfd %d", d->doorbells[0], fd);
}

static int library(const char *url, const char *name, bool bind, bool copy_on_ring)
{
	static struct dp d = { .lock = PTHREAD_MUTEX_INITIALIZER, .irqfd = -1 };
	const struct ioreq_dev_info *info;
	pthread_t t;
	int r;

	r = ioreq_dev_connect(url, name, &dp_ops, &d, &d.dev);
	if (r < 0) {
		fprintf(stderr, "%s: cannot connect to %s: %s\n", PROG, url, strerror(-r));
		return 1;
	}
	info = ioreq_dev_info(d.dev);
	out("given: memory %zu files %zu doorbells %zu irqfds %zu", info->n_mem_regions, info->n_files,
	    info->n_doorbells, info->n_irqfds);
	for (size_t i = 0; i < info->n_mem_regions; i++)
		out("region %zu: 0x%" PRIx64 "+0x%" PRIx64 "%s", i, info->mem_regions[i].gpa, info->mem_regions[i].size,
		    info->mem_regions[i].read_only ? " read-only" : "");
	d.copy_on_ring = copy_on_ring;
	if (bind)
		bind_at_start(&d);
	if (pthread_create(&t, NULL, poller, &d) == 0)
		pthread_detach(t);
	r = ioreq_dev_serve(d.dev);
	ioreq_dev_close(d.dev);
	return r < 0 ? 1 : 0;
}

/* ---- the protocol, raw ---- */

static int send_register(nng_socket s, const char *spec, uint32_t tag)
{
	Ioreq__Ioeventfd io = IOREQ__IOEVENTFD__INIT;
	Ioreq__Irqfd irq = IOREQ__IRQFD__INIT;
	Ioreq__Register reg = IOREQ__REGISTER__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	char kind[8];
	unsigned idx, line, size;
	unsigned long long addr;

	reg.tag = tag;
	if (sscanf(spec, "io:%u:%7[a-z]:%llx:%u", &idx, kind, &addr, &size) == 4) {
		io.index = idx;
		io.kind = !strcmp(kind, "pio") ? IOREQ__KIND__KIND_PIO :
			  !strcmp(kind, "mmio") ? IOREQ__KIND__KIND_MMIO : IOREQ__KIND__KIND_PCICFG;
		io.addr = addr;
		io.size = size;
		reg.what_case = IOREQ__REGISTER__WHAT_IOEVENTFD;
		reg.ioeventfd = &io;
	} else if (sscanf(spec, "release-io:%u", &idx) == 1) {
		io.index = idx;
		io.size = 1;
		reg.release = true;
		reg.what_case = IOREQ__REGISTER__WHAT_IOEVENTFD;
		reg.ioeventfd = &io;
	} else if (sscanf(spec, "irq:%u:%u", &idx, &line) == 2) {
		irq.index = idx;
		irq.line = line;
		reg.what_case = IOREQ__REGISTER__WHAT_IRQFD;
		reg.irqfd = &irq;
	} else if (sscanf(spec, "msi:%u", &idx) == 1) {
		irq.index = idx;
		irq.msi = true;
		reg.what_case = IOREQ__REGISTER__WHAT_IRQFD;
		reg.irqfd = &irq;
	} else {
		return -1;
	}
	env.msg_case = IOREQ__ENVELOPE__MSG_REGISTRATION;
	env.registration = &reg;
	return wire_send(s, &env, 0);
}

static int raw(const char *url, const char *name, const char *const *regs, size_t n_regs)
{
	static struct wire_arena arena;
	Ioreq__Hello h = IOREQ__HELLO__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT, *in;
	size_t answered = 0;
	nng_socket s;

	if (nng_pair1_open(&s) || nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG) || nng_dial(s, url, NULL, 0))
		return 1;
	h.version = IOREQ__VERSION__VERSION_CURRENT;
	h.device = (char *)name;
	env.msg_case = IOREQ__ENVELOPE__MSG_HELLO;
	env.hello = &h;
	if (wire_send(s, &env, 0) < 0 || wire_recv(s, 0, &arena, &in) < 0 ||
	    in->msg_case != IOREQ__ENVELOPE__MSG_WELCOME)
		return 1;
	out("given: doorbells %zu irqfds %zu", in->welcome->n_doorbells, in->welcome->n_irqfds);
	for (size_t i = 0; i < n_regs; i++)
		if (send_register(s, regs[i], (uint32_t)i) < 0)
			out("reg %zu: cannot send %s", i, regs[i]);
	for (;;) {
		Ioreq__Reply rep = IOREQ__REPLY__INIT;

		if (wire_recv(s, 0, &arena, &in) < 0)
			return 1;
		switch (in->msg_case) {
		case IOREQ__ENVELOPE__MSG_REGISTRATION_RESULT:
			out("reg %" PRIu32 ": %d", in->registration_result->tag, in->registration_result->error);
			if (++answered == n_regs)
				out("all answered");
			break;
		case IOREQ__ENVELOPE__MSG_REQUEST:
			rep.id = in->request->id;
			env = (Ioreq__Envelope)IOREQ__ENVELOPE__INIT;
			env.msg_case = IOREQ__ENVELOPE__MSG_REPLY;
			env.reply = &rep;
			wire_send(s, &env, 0);
			break;
		case IOREQ__ENVELOPE__MSG_SHUTDOWN:
			return 0;
		default:
			break;
		}
	}
}

int main(int argc, char **argv)
{
	const char *url, *name, *regs[MAX_REGS];
	size_t n_regs = 0;
	bool use_raw = false, bind = false, copy_on_ring = false;

	if (ioreq_dev_take_args(&argc, argv, &url, &name) < 0) {
		fprintf(stderr, "usage: %s --socket URL --name NAME [--bind-at-start] [--copy-on-ring] [--raw [--reg SPEC]...]\n",
			PROG);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--raw"))
			use_raw = true;
		else if (!strcmp(argv[i], "--bind-at-start"))
			bind = true;
		else if (!strcmp(argv[i], "--copy-on-ring"))
			copy_on_ring = true;
		else if (!strcmp(argv[i], "--reg") && i + 1 < argc && n_regs < MAX_REGS)
			regs[n_regs++] = argv[++i];
		else
			return 2;
	}
	print_fds();
	return use_raw ? raw(url, name, regs, n_regs) : library(url, name, bind, copy_on_ring);
}
