#include "sim.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "guestmem.h"
#include "irqfd.h"

enum sim_op_kind {
	SIM_ACCESS,
	SIM_PCI,
	SIM_REPEAT,
	SIM_END,
	SIM_SLEEP,
	SIM_IRQ,
	SIM_IRQ_EDGE,
	SIM_MSI,
	SIM_MEM_WRITE,
	SIM_MEM_READ,
	SIM_MEM_WAIT,
	SIM_MEM_LOAD,
};

enum sim_value {
	SIM_VALUE_LITERAL,
	SIM_VALUE_SEQ,
	SIM_VALUE_ANY,
};

struct sim_op {
	uint8_t op;
	uint8_t type; /* ACRN_IOREQ_TYPE_* for SIM_ACCESS */
	uint8_t dir;
	uint8_t size;
	uint8_t value_mode;
	uint32_t line;
	/* repeat count, sleep ms, irq line, pci reg, mem wait ms, mem load's
	 * index; end: index of its repeat */
	uint32_t arg;
	uint64_t addr; /* pci: bdf; msi: its address; mem: the GPA */
	uint64_t value; /* msi: its data */
};

/* A mem load's file: its path at parse time, its bytes once loaded. */
struct sim_load {
	char *path;
	unsigned line;
	uint8_t *data;
	size_t len;
};

struct sim_script {
	char *name;
	size_t n_loads;
	struct sim_load *loads;
	size_t n_ops;
	struct sim_op ops[];
};

/* ---- script parsing ---- */

struct parser {
	const char *name;
	unsigned line;
	char *err;
	size_t errlen;
};

static int perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int perr(struct parser *p, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(p->err, p->errlen, "%s:%u: ", p->name, p->line);

	if (n >= 0 && (size_t)n < p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	*ret = strtoull(s, &end, 0);
	if (errno || *end)
		return -EINVAL;
	return 0;
}

static int parse_bdf(const char *s, uint64_t *ret)
{
	unsigned bus, dev, fn;
	int n = 0;

	if (sscanf(s, "%2x:%2x.%1x%n", &bus, &dev, &fn, &n) != 3 || s[n] || dev > 31 || fn > 7)
		return -EINVAL;
	*ret = bus << 8 | dev << 3 | fn;
	return 0;
}

static int parse_value(struct parser *p, const char *s, struct sim_op *op)
{
	if (!strcmp(s, "seq")) {
		op->value_mode = SIM_VALUE_SEQ;
		return 0;
	}
	if (!strcmp(s, "any")) {
		if (op->dir != ACRN_IOREQ_DIR_READ)
			return perr(p, "'any' is only for reads");
		op->value_mode = SIM_VALUE_ANY;
		return 0;
	}
	op->value_mode = SIM_VALUE_LITERAL;
	if (parse_u64(s, &op->value))
		return perr(p, "bad value '%s'", s);
	if (op->size < 8 && op->value > dispatch_all_ones(op->size))
		return perr(p, "value %s does not fit in %u bytes", s, op->size);
	return 0;
}

static int parse_dir(struct parser *p, const char *s, struct sim_op *op)
{
	if (!strcmp(s, "read"))
		op->dir = ACRN_IOREQ_DIR_READ;
	else if (!strcmp(s, "write"))
		op->dir = ACRN_IOREQ_DIR_WRITE;
	else
		return perr(p, "expected read or write, not '%s'", s);
	return 0;
}

static int parse_size(struct parser *p, const char *s, struct sim_op *op)
{
	uint64_t size;

	if (parse_u64(s, &size) || (size != 1 && size != 2 && size != 4 && size != 8))
		return perr(p, "bad size '%s': 1, 2, 4 or 8", s);
	op->size = size;
	return 0;
}

/* "pio|mmio DIR ADDR SIZE VALUE [until MS]" */
static int parse_access(struct parser *p, char **w, int n, struct sim_op *op)
{
	uint64_t ms;
	int r;

	if (n != 5 && !(n == 7 && !strcmp(w[5], "until")))
		return perr(p, "expected: %s read|write ADDR SIZE VALUE [until MS]", w[0]);
	op->op = SIM_ACCESS;
	op->type = !strcmp(w[0], "pio") ? ACRN_IOREQ_TYPE_PORTIO : ACRN_IOREQ_TYPE_MMIO;
	r = parse_dir(p, w[1], op);
	if (r)
		return r;
	if (parse_u64(w[2], &op->addr))
		return perr(p, "bad address '%s'", w[2]);
	r = parse_size(p, w[3], op);
	if (r)
		return r;
	if (op->type == ACRN_IOREQ_TYPE_PORTIO && (op->size > 4 || op->addr + op->size - 1 > 0xffff))
		return perr(p, "port access beyond 0xffff or wider than 4 bytes");
	if (op->addr + op->size - 1 < op->addr)
		return perr(p, "access wraps around");
	if (n == 7) {
		if (op->dir != ACRN_IOREQ_DIR_READ)
			return perr(p, "only a read waits 'until'");
		if (parse_u64(w[6], &ms) || !ms || ms > 60000)
			return perr(p, "expected: until MS (1..60000)");
		op->arg = (uint32_t)ms;
	}
	r = parse_value(p, w[4], op);
	if (!r && n == 7 && op->value_mode != SIM_VALUE_LITERAL)
		return perr(p, "'until' waits for a value: not '%s'", w[4]);
	return r;
}

/* "pci DIR BB:DD.F REG SIZE VALUE" */
static int parse_pci(struct parser *p, char **w, int n, struct sim_op *op)
{
	uint64_t reg;
	int r;

	if (n != 6)
		return perr(p, "expected: pci read|write BB:DD.F REG SIZE VALUE");
	op->op = SIM_PCI;
	r = parse_dir(p, w[1], op);
	if (r)
		return r;
	if (parse_bdf(w[2], &op->addr))
		return perr(p, "bad BDF '%s'", w[2]);
	if (parse_u64(w[3], &reg) || reg > 0xfff)
		return perr(p, "bad register '%s'", w[3]);
	op->arg = reg;
	r = parse_size(p, w[4], op);
	if (r)
		return r;
	if (op->size > 4 || (reg & 3) + op->size > 4)
		return perr(p, "a config access must stay inside one dword");
	return parse_value(p, w[5], op);
}

/* A mem load's path: relative to the script's directory. */
static char *load_path(const char *script, const char *file)
{
	const char *slash = strrchr(script, '/');
	char *path;

	if (file[0] == '/' || !slash)
		return strdup(file);
	if (asprintf(&path, "%.*s/%s", (int)(slash - script), script, file) < 0)
		return NULL;
	return path;
}

/* "mem write|read GPA SIZE VALUE", "mem wait GPA SIZE VALUE MS", "mem load GPA FILE" */
static int parse_mem(struct parser *p, char **w, int n, struct sim_op *op, struct sim_script *sc)
{
	struct sim_load *loads;
	uint64_t ms;
	int r;

	if (n < 2)
		return perr(p, "expected: mem write|read|wait|load ...");
	if (!strcmp(w[1], "load")) {
		if (n != 4 || parse_u64(w[2], &op->addr))
			return perr(p, "expected: mem load GPA FILE");
		loads = realloc(sc->loads, (sc->n_loads + 1) * sizeof(*loads));
		if (!loads)
			return -ENOMEM;
		sc->loads = loads;
		loads[sc->n_loads] = (struct sim_load){ .path = load_path(p->name, w[3]), .line = p->line };
		if (!loads[sc->n_loads].path)
			return -ENOMEM;
		op->op = SIM_MEM_LOAD;
		op->arg = sc->n_loads++;
		return 0;
	}
	if (!strcmp(w[1], "write")) {
		op->op = SIM_MEM_WRITE;
		op->dir = ACRN_IOREQ_DIR_WRITE;
	} else if (!strcmp(w[1], "read")) {
		op->op = SIM_MEM_READ;
		op->dir = ACRN_IOREQ_DIR_READ;
	} else if (!strcmp(w[1], "wait")) {
		op->op = SIM_MEM_WAIT;
		op->dir = ACRN_IOREQ_DIR_READ;
	} else {
		return perr(p, "expected: mem write|read|wait|load, not '%s'", w[1]);
	}
	if (n != (op->op == SIM_MEM_WAIT ? 6 : 5))
		return perr(p, op->op == SIM_MEM_WAIT ? "expected: mem wait GPA SIZE VALUE MS"
						     : "expected: mem %s GPA SIZE VALUE", w[1]);
	if (parse_u64(w[2], &op->addr))
		return perr(p, "bad address '%s'", w[2]);
	r = parse_size(p, w[3], op);
	if (r)
		return r;
	if (op->addr + op->size - 1 < op->addr)
		return perr(p, "access wraps around");
	r = parse_value(p, w[4], op);
	if (r)
		return r;
	if (op->op == SIM_MEM_WAIT) {
		if (op->value_mode == SIM_VALUE_ANY)
			return perr(p, "'any' is not something to wait for");
		if (parse_u64(w[5], &ms) || ms < 1 || ms > 60000)
			return perr(p, "bad timeout '%s': 1..60000 ms", w[5]);
		op->arg = ms;
	}
	return 0;
}

static int parse_line(struct parser *p, char *s, struct sim_script *sc, unsigned *stack, unsigned *depth)
{
	struct sim_op *op = &sc->ops[sc->n_ops];
	char *w[8], *save = NULL;
	uint64_t v;
	int n = 0, r;

	for (char *t = strtok_r(s, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
		if (t[0] == '#')
			break;
		if (n == 8)
			return perr(p, "too many words");
		w[n++] = t;
	}
	if (!n)
		return 0;
	if (sc->n_ops == SIM_MAX_OPS)
		return perr(p, "more than %u statements", SIM_MAX_OPS);
	memset(op, 0, sizeof(*op));
	op->line = p->line;

	if (!strcmp(w[0], "pio") || !strcmp(w[0], "mmio")) {
		r = parse_access(p, w, n, op);
	} else if (!strcmp(w[0], "pci")) {
		r = parse_pci(p, w, n, op);
	} else if (!strcmp(w[0], "repeat")) {
		if (n != 2 || parse_u64(w[1], &v) || v < 1 || v > UINT32_MAX)
			return perr(p, "expected: repeat N (1..%u)", UINT32_MAX);
		if (*depth == SIM_MAX_DEPTH)
			return perr(p, "repeat nested deeper than %d", SIM_MAX_DEPTH);
		op->op = SIM_REPEAT;
		op->arg = v;
		stack[(*depth)++] = sc->n_ops;
		r = 0;
	} else if (!strcmp(w[0], "end")) {
		if (n != 1)
			return perr(p, "expected: end");
		if (!*depth)
			return perr(p, "'end' without 'repeat'");
		op->op = SIM_END;
		op->arg = stack[--(*depth)];
		r = 0;
	} else if (!strcmp(w[0], "sleep")) {
		if (n != 2 || parse_u64(w[1], &v) || v > 60000)
			return perr(p, "expected: sleep MS (0..60000)");
		op->op = SIM_SLEEP;
		op->arg = v;
		r = 0;
	} else if (!strcmp(w[0], "irq")) {
		if (n != 3 || parse_u64(w[1], &v) || v >= SIM_IRQ_LINES)
			return perr(p, "expected: irq LINE 0|1|edge (LINE < %d)", SIM_IRQ_LINES);
		op->op = SIM_IRQ;
		op->arg = v;
		if (!strcmp(w[2], "edge"))
			op->op = SIM_IRQ_EDGE;
		else if (parse_u64(w[2], &op->value) || op->value > 1)
			return perr(p, "bad level '%s': 0, 1 or edge", w[2]);
		r = 0;
	} else if (!strcmp(w[0], "msi")) {
		if (n != 3 || parse_u64(w[1], &op->addr) || parse_u64(w[2], &op->value) || op->value > UINT32_MAX)
			return perr(p, "expected: msi ADDR DATA (DATA < 2^32)");
		op->op = SIM_MSI;
		r = 0;
	} else if (!strcmp(w[0], "mem")) {
		r = parse_mem(p, w, n, op, sc);
	} else {
		return perr(p, "unknown statement '%s'", w[0]);
	}
	if (!r)
		sc->n_ops++;
	return r;
}

int sim_script_parse(const char *text, size_t len, const char *name, struct sim_script **ret, char *err,
		     size_t errlen)
{
	struct parser p = { .name = name, .err = err, .errlen = errlen };
	unsigned stack[SIM_MAX_DEPTH], depth = 0;
	struct sim_script *sc;
	char *buf, *line, *save = NULL;
	int r = 0;

	if (len > SIM_MAX_SCRIPT_BYTES)
		return perr(&p, "script larger than %u bytes", SIM_MAX_SCRIPT_BYTES);
	if (memchr(text, '\0', len))
		return perr(&p, "script contains a NUL byte");
	buf = strndup(text, len);
	sc = calloc(1, sizeof(*sc) + SIM_MAX_OPS * sizeof(struct sim_op));
	if (!buf || !sc) {
		r = -ENOMEM;
		goto out;
	}
	sc->name = strdup(name);
	if (!sc->name) {
		r = -ENOMEM;
		goto out;
	}
	/* strtok_r would merge empty lines and lose the count. */
	for (line = buf; line; line = save) {
		save = strchr(line, '\n');
		if (save)
			*save++ = '\0';
		p.line++;
		r = parse_line(&p, line, sc, stack, &depth);
		if (r)
			goto out;
	}
	if (depth) {
		r = perr(&p, "'repeat' without 'end'");
		goto out;
	}
	/* Give back what the script does not use. */
	*ret = realloc(sc, sizeof(*sc) + sc->n_ops * sizeof(struct sim_op)) ?: sc;
	sc = NULL;
out:
	free(buf);
	sim_script_free(sc);
	return r;
}

/* A mem load's bytes; errors name the script's line. */
static int load_file(const char *script, struct sim_load *l, char *err, size_t errlen)
{
	struct stat st;
	size_t done = 0;
	int fd, r = 0;

	fd = open(l->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, errlen, "%s:%u: mem load %s: not a regular file", script, l->line, l->path);
		goto out;
	}
	if ((uint64_t)st.st_size > SIM_MAX_LOAD_BYTES) {
		r = -EFBIG;
		snprintf(err, errlen, "%s:%u: mem load %s: larger than %u bytes", script, l->line, l->path,
			 SIM_MAX_LOAD_BYTES);
		goto out;
	}
	l->len = (size_t)st.st_size;
	l->data = malloc(l->len ? l->len : 1);
	if (!l->data) {
		r = -ENOMEM;
		goto out;
	}
	while (done < l->len) {
		ssize_t n = read(fd, l->data + done, l->len - done);

		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		done += n;
	}
out:
	if (r && r != -EINVAL && r != -EFBIG)
		snprintf(err, errlen, "%s:%u: mem load %s: %s", script, l->line, l->path, strerror(-r));
	if (fd >= 0)
		close(fd);
	return r;
}

int sim_script_load(const char *path, struct sim_script **ret, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	text = malloc(SIM_MAX_SCRIPT_BYTES + 1);
	if (!text) {
		fclose(f);
		return -ENOMEM;
	}
	len = fread(text, 1, SIM_MAX_SCRIPT_BYTES + 1, f);
	fclose(f);
	r = sim_script_parse(text, len, path, ret, err, errlen);
	free(text);
	if (r)
		return r;
	for (size_t i = 0; i < (*ret)->n_loads && !r; i++)
		r = load_file(path, &(*ret)->loads[i], err, errlen);
	if (r)
		*ret = sim_script_free(*ret);
	return r;
}

struct sim_script *sim_script_free(struct sim_script *s)
{
	if (s) {
		for (size_t i = 0; i < s->n_loads; i++) {
			free(s->loads[i].path);
			free(s->loads[i].data);
		}
		free(s->loads);
		free(s->name);
		free(s);
	}
	return NULL;
}

uint64_t sim_script_accesses(const struct sim_script *s)
{
	uint64_t mult[SIM_MAX_DEPTH + 1] = { 1 }, total = 0;
	unsigned depth = 0;

	for (size_t i = 0; i < s->n_ops; i++) {
		const struct sim_op *op = &s->ops[i];

		if (op->op == SIM_REPEAT) {
			mult[depth + 1] = mult[depth] * op->arg;
			depth++;
		} else if (op->op == SIM_END) {
			depth--;
		} else if (op->op == SIM_ACCESS) {
			total += mult[depth];
		} else if (op->op == SIM_PCI) {
			total += 2 * mult[depth];
		}
	}
	return total;
}

/* ---- scripted vCPUs ---- */

/* The vCPUs' run-control word, also their futex: RUN while started and not
 * paused, STOP for good, and above them the reset generation. */
#define CTL_RUN 1u
#define CTL_STOP 2u
#define CTL_GEN_SHIFT 2

/* What a statement tells the script loop. */
enum step {
	STEP_GO,    /* carry on */
	STEP_RESET, /* the VM was reset: start the script over */
	STEP_STOP,  /* the VM is going away */
};

struct sim_cpu {
	struct sim_cpus *cpus;
	unsigned index;
	pthread_t thread;
	bool started;
	struct sim_script *script;
	uint32_t gen;      /* the reset generation this run belongs to */
	unsigned reported; /* mismatches of this run */
};

struct sim_cpus {
	char name[64];
	struct dispatch *d;
	bool polling;
	hsm_stop_fn on_stop;
	hsm_report_fn report;
	void *opaque;
	_Atomic uint32_t ctl;
	bool threads; /* created; sim_cpus_start's callers serialise it */
	/* ended moves with the generation under this lock, so that a reset
	 * racing with the end of a script neither loses nor double-counts it. */
	pthread_mutex_t lock;
	unsigned ended; /* vCPUs at the end of their script in this generation */
	bool stopped;   /* on_stop was called in this generation */
	_Atomic uint64_t accesses, mismatches, irq_ops, msis, mem_ops;
	uint64_t mismatches_before; /* at the last reset: the new run's status counts from here */
	/* Line levels, each its own futex word so the irq statement can wait;
	 * and the rising edges not taken yet, likewise. */
	_Atomic uint32_t irq_level[SIM_IRQ_LINES];
	_Atomic uint32_t irq_edges[SIM_IRQ_LINES];
	/* MSIs not taken yet, by address and data; msi_seq (a futex) moves
	 * with every one injected. Kinds are only added, under msi_lock. */
	pthread_mutex_t msi_lock;
	_Atomic uint32_t msi_seq;
	_Atomic unsigned n_msi_kinds;
	struct {
		uint64_t addr, data;
		_Atomic uint32_t pending;
	} msi_kinds[SIM_MSI_KINDS];
	/* Guest RAM (sim_cpus_set_memory). */
	bool mem_set;
	unsigned n_mem;
	struct sim_mem_region *mem;
	struct sim_cpu cpu[ACRN_IO_REQUEST_MAX];
};

#define MAX_REPORTS_PER_VCPU 20
/* How often a read with 'until' asks again. */
#define UNTIL_POLL_MS 10

static uint32_t ctl_gen(uint32_t v)
{
	return v >> CTL_GEN_SHIFT;
}

/* @ms < 0: no timeout. EAGAIN, EINTR and timeouts all make the caller look again. */
static void futex_wait_ms(_Atomic uint32_t *word, uint32_t val, int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, ms < 0 ? NULL : &ts, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wakes every vCPU wherever it waits, to look at the run control again. */
static void cpus_wake(struct sim_cpus *s)
{
	futex_wake_all(&s->ctl);
	for (unsigned i = 0; i < SIM_IRQ_LINES; i++) {
		futex_wake_all(&s->irq_level[i]);
		futex_wake_all(&s->irq_edges[i]);
	}
	atomic_fetch_add(&s->msi_seq, 1);
	futex_wake_all(&s->msi_seq);
}

/* Where the run control leaves this vCPU: stopped, reset since its run
 * began, or free to go on. */
static enum step cpu_check(struct sim_cpu *c, uint32_t v)
{
	if (v & CTL_STOP)
		return STEP_STOP;
	return ctl_gen(v) == c->gen ? STEP_GO : STEP_RESET;
}

/* Before each access: a paused vCPU waits here. */
static enum step cpu_wait_run(struct sim_cpu *c)
{
	for (;;) {
		uint32_t v = atomic_load(&c->cpus->ctl);
		enum step st = cpu_check(c, v);

		if (st != STEP_GO || (v & CTL_RUN))
			return st;
		futex_wait_ms(&c->cpus->ctl, v, -1);
	}
}

/* After its script: the vCPU idles until a reset or the end. */
static enum step cpu_wait_reset(struct sim_cpu *c)
{
	for (;;) {
		uint32_t v = atomic_load(&c->cpus->ctl);
		enum step st = cpu_check(c, v);

		if (st != STEP_GO)
			return st;
		futex_wait_ms(&c->cpus->ctl, v, -1);
	}
}

static void vcpu_report(struct sim_cpu *c, const struct sim_op *op, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void vcpu_report(struct sim_cpu *c, const struct sim_op *op, const char *fmt, ...)
{
	struct sim_cpus *s = c->cpus;
	char line[512];
	va_list ap;
	int n;

	atomic_fetch_add(&s->mismatches, 1);
	if (!s->report || c->reported++ >= MAX_REPORTS_PER_VCPU)
		return;
	n = snprintf(line, sizeof(line), "vm %s vcpu %u %s:%u: ", s->name, c->index, c->script->name, op->line);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	s->report(s->opaque, line);
}

/* One access through the HSM, as the hypervisor would post it for an exit;
 * *@ret is what a read returned. */
static enum step vcpu_access(struct sim_cpu *c, uint32_t type, uint32_t dir, uint64_t addr, uint32_t size,
			     uint64_t value, uint64_t *ret)
{
	struct sim_cpus *s = c->cpus;
	struct dispatch_access a = { .type = type, .dir = dir, .addr = addr, .size = size, .value = value };
	enum step st = cpu_wait_run(c);

	if (st != STEP_GO)
		return st;
	/* The hypervisor marks every request of a VM in polling mode. */
	*ret = dispatch_access(s->d, c->index, &a, s->polling);
	atomic_fetch_add_explicit(&s->accesses, 1, memory_order_relaxed);
	return STEP_GO;
}

static const char *const type_names[] = {
	[ACRN_IOREQ_TYPE_PORTIO] = "pio",
	[ACRN_IOREQ_TYPE_MMIO] = "mmio",
	[ACRN_IOREQ_TYPE_PCICFG] = "pci",
};

static void check_read(struct sim_cpu *c, const struct sim_op *op, uint64_t expect, uint64_t got)
{
	if (op->dir != ACRN_IOREQ_DIR_READ || op->value_mode == SIM_VALUE_ANY || got == expect)
		return;
	if (op->op == SIM_PCI)
		vcpu_report(c, op, "pci read %02x:%02x.%x reg 0x%x size %u returned 0x%" PRIx64 ", expected 0x%" PRIx64,
			    (unsigned)(op->addr >> 8), (unsigned)(op->addr >> 3) & 31, (unsigned)op->addr & 7, op->arg,
			    op->size, got, expect);
	else
		vcpu_report(c, op, "%s read 0x%" PRIx64 " size %u returned 0x%" PRIx64 ", expected 0x%" PRIx64,
			    type_names[op->type], op->addr, op->size, got, expect);
}

/* A sleep that a stop or a reset cuts short. */
static enum step run_sleep(struct sim_cpu *c, unsigned ms)
{
	int64_t deadline = now_ms() + ms;

	for (;;) {
		uint32_t v = atomic_load(&c->cpus->ctl);
		int64_t left = deadline - now_ms();
		enum step st = cpu_check(c, v);

		if (st != STEP_GO || left <= 0)
			return st;
		futex_wait_ms(&c->cpus->ctl, v, left);
	}
}

static enum step run_access(struct sim_cpu *c, const struct sim_op *op, uint64_t iter)
{
	uint64_t value = op->value, got;
	enum step st;

	if (op->value_mode == SIM_VALUE_SEQ)
		value = ((uint64_t)c->index << 48 | iter) & dispatch_all_ones(op->size);

	if (op->op == SIM_PCI) {
		uint32_t bdf = op->addr, reg = op->arg;
		uint32_t cf8 = 1u << 31 | (bdf >> 8) << 16 | (bdf & 0xff) << 8 | (reg & 0xfc) | (reg & 0xf00) << 16;

		st = vcpu_access(c, ACRN_IOREQ_TYPE_PORTIO, ACRN_IOREQ_DIR_WRITE, 0xcf8, 4, cf8, &got);
		if (st == STEP_GO)
			st = vcpu_access(c, ACRN_IOREQ_TYPE_PORTIO, op->dir, 0xcfc + (reg & 3), op->size, value, &got);
	} else {
		st = vcpu_access(c, op->type, op->dir, op->addr, op->size, value, &got);
		/* "until MS": as a driver polls a status register, again every
		 * UNTIL_POLL_MS until the value comes back; a mismatch only
		 * once the time is up. */
		for (int64_t deadline = now_ms() + op->arg; op->arg && st == STEP_GO && got != value;) {
			if (now_ms() >= deadline)
				break;
			st = run_sleep(c, UNTIL_POLL_MS);
			if (st == STEP_GO)
				st = vcpu_access(c, op->type, op->dir, op->addr, op->size, value, &got);
		}
	}
	if (st == STEP_GO)
		check_read(c, op, value, got);
	return st;
}

static enum step run_irq_wait(struct sim_cpu *c, const struct sim_op *op)
{
	_Atomic uint32_t *level = &c->cpus->irq_level[op->arg];
	int64_t deadline = now_ms() + 1000;
	uint32_t v;

	while ((v = atomic_load(level)) != op->value) {
		int64_t left = deadline - now_ms();
		enum step st = cpu_check(c, atomic_load(&c->cpus->ctl));

		if (st != STEP_GO)
			return st;
		if (left <= 0) {
			vcpu_report(c, op, "irq line %u stayed at %u, expected %u", op->arg, v, (unsigned)op->value);
			return STEP_GO;
		}
		futex_wait_ms(level, v, left);
	}
	return STEP_GO;
}

/* Takes one from *@count if there is one. */
static bool take_one(_Atomic uint32_t *count)
{
	uint32_t v = atomic_load(count);

	while (v)
		if (atomic_compare_exchange_weak(count, &v, v - 1))
			return true;
	return false;
}

static enum step run_irq_edge(struct sim_cpu *c, const struct sim_op *op)
{
	_Atomic uint32_t *edges = &c->cpus->irq_edges[op->arg];
	int64_t deadline = now_ms() + 1000;

	while (!take_one(edges)) {
		int64_t left = deadline - now_ms();
		enum step st = cpu_check(c, atomic_load(&c->cpus->ctl));

		if (st != STEP_GO)
			return st;
		if (left <= 0) {
			vcpu_report(c, op, "no edge on irq line %u within 1 s", op->arg);
			return STEP_GO;
		}
		/* 0: a wake-up that comes after the check is not slept through. */
		futex_wait_ms(edges, 0, left);
	}
	return STEP_GO;
}

static _Atomic uint32_t *msi_pending(struct sim_cpus *s, uint64_t addr, uint64_t data)
{
	unsigned n = atomic_load_explicit(&s->n_msi_kinds, memory_order_acquire);

	for (unsigned i = 0; i < n; i++)
		if (s->msi_kinds[i].addr == addr && s->msi_kinds[i].data == data)
			return &s->msi_kinds[i].pending;
	return NULL;
}

static enum step run_msi(struct sim_cpu *c, const struct sim_op *op)
{
	struct sim_cpus *s = c->cpus;
	int64_t deadline = now_ms() + 1000;

	for (;;) {
		uint32_t seq = atomic_load(&s->msi_seq);
		_Atomic uint32_t *pending = msi_pending(s, op->addr, op->value);
		int64_t left = deadline - now_ms();
		enum step st = cpu_check(c, atomic_load(&s->ctl));

		if (st != STEP_GO)
			return st;
		if (pending && take_one(pending))
			return STEP_GO;
		if (left <= 0) {
			vcpu_report(c, op, "no msi 0x%" PRIx64 " data 0x%" PRIx64 " within 1 s", op->addr, op->value);
			return STEP_GO;
		}
		futex_wait_ms(&s->msi_seq, seq, left);
	}
}

/* Where guest-physical [@gpa, @gpa + @len) is, all inside one region. */
static uint8_t *mem_at(const struct sim_cpus *s, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < s->n_mem; i++) {
		const struct sim_mem_region *m = &s->mem[i];

		if (gpa >= m->gpa && gpa - m->gpa < m->size && len <= m->size - (gpa - m->gpa))
			return m->host + (gpa - m->gpa);
	}
	return NULL;
}

/* One store or load as a CPU makes it: a single access when aligned. */
static void mem_store(uint8_t *p, unsigned size, uint64_t v)
{
	if ((uintptr_t)p % size) {
		memcpy(p, &v, size);
		return;
	}
	switch (size) {
	case 1:
		__atomic_store_n(p, (uint8_t)v, __ATOMIC_RELEASE);
		break;
	case 2:
		__atomic_store_n((uint16_t *)p, (uint16_t)v, __ATOMIC_RELEASE);
		break;
	case 4:
		__atomic_store_n((uint32_t *)p, (uint32_t)v, __ATOMIC_RELEASE);
		break;
	default:
		__atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE);
		break;
	}
}

static uint64_t mem_load(const uint8_t *p, unsigned size)
{
	uint64_t v = 0;

	if ((uintptr_t)p % size) {
		memcpy(&v, p, size);
		return v;
	}
	switch (size) {
	case 1:
		return __atomic_load_n(p, __ATOMIC_ACQUIRE);
	case 2:
		return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
	case 4:
		return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
	default:
		return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
	}
}

static const char *const mem_names[] = {
	[SIM_MEM_WRITE] = "write",
	[SIM_MEM_READ] = "read",
	[SIM_MEM_WAIT] = "wait",
	[SIM_MEM_LOAD] = "load",
};

/* The mem statements; their ranges were checked against RAM before the
 * vCPUs started. */
static enum step run_mem(struct sim_cpu *c, const struct sim_op *op, uint64_t iter)
{
	struct sim_cpus *s = c->cpus;
	const struct sim_load *l = op->op == SIM_MEM_LOAD ? &c->script->loads[op->arg] : NULL;
	uint64_t value = op->value, got;
	int64_t deadline;
	enum step st = cpu_wait_run(c);
	uint8_t *p;

	if (st != STEP_GO)
		return st;
	atomic_fetch_add_explicit(&s->mem_ops, 1, memory_order_relaxed);
	p = mem_at(s, op->addr, l ? l->len : op->size);
	if (op->value_mode == SIM_VALUE_SEQ)
		value = ((uint64_t)c->index << 48 | iter) & dispatch_all_ones(op->size);
	switch (op->op) {
	case SIM_MEM_LOAD:
		memcpy(p, l->data, l->len);
		break;
	case SIM_MEM_WRITE:
		mem_store(p, op->size, value);
		break;
	case SIM_MEM_READ:
		got = mem_load(p, op->size);
		if (op->value_mode != SIM_VALUE_ANY && got != value)
			vcpu_report(c, op, "mem read 0x%" PRIx64 " size %u returned 0x%" PRIx64 ", expected 0x%" PRIx64,
				    op->addr, op->size, got, value);
		break;
	case SIM_MEM_WAIT:
		/* Polling, as a driver without an interrupt does: RAM
		 * written by another process has no wake-up to sleep on. */
		deadline = now_ms() + op->arg;
		while ((got = mem_load(p, op->size)) != value) {
			if (now_ms() >= deadline) {
				vcpu_report(c, op,
					    "mem wait 0x%" PRIx64 " size %u: still 0x%" PRIx64 " after %u ms, expected 0x%" PRIx64,
					    op->addr, op->size, got, op->arg, value);
				break;
			}
			st = run_sleep(c, 1);
			if (st != STEP_GO)
				return st;
		}
		break;
	}
	return STEP_GO;
}

/* Runs the script from its first statement; STEP_GO once it has ended. */
static enum step run_script(struct sim_cpu *c)
{
	const struct sim_script *s = c->script;
	uint64_t iter[SIM_MAX_DEPTH + 1] = { 0 }, left[SIM_MAX_DEPTH + 1];
	unsigned depth = 0;
	enum step st = STEP_GO;

	for (size_t pc = 0; pc < s->n_ops && st == STEP_GO; pc++) {
		const struct sim_op *op = &s->ops[pc];

		switch (op->op) {
		case SIM_ACCESS:
		case SIM_PCI:
			st = run_access(c, op, iter[depth]);
			break;
		case SIM_REPEAT:
			depth++;
			iter[depth] = 0;
			left[depth] = op->arg;
			break;
		case SIM_END:
			/* A loop without accesses still notices a stop or a reset. */
			st = cpu_check(c, atomic_load_explicit(&c->cpus->ctl, memory_order_relaxed));
			if (--left[depth]) {
				iter[depth]++;
				pc = op->arg; /* the loop body starts after its repeat */
			} else {
				depth--;
			}
			break;
		case SIM_SLEEP:
			st = run_sleep(c, op->arg);
			break;
		case SIM_IRQ:
			st = run_irq_wait(c, op);
			break;
		case SIM_IRQ_EDGE:
			st = run_irq_edge(c, op);
			break;
		case SIM_MSI:
			st = run_msi(c, op);
			break;
		case SIM_MEM_WRITE:
		case SIM_MEM_READ:
		case SIM_MEM_WAIT:
		case SIM_MEM_LOAD:
			st = run_mem(c, op, iter[depth]);
			break;
		}
	}
	return st;
}

/* The vCPU reached the end of its script; the last one stops the VM. */
static void cpu_ended(struct sim_cpu *c)
{
	struct sim_cpus *s = c->cpus;
	uint64_t before = 0;
	bool last = false;

	if (c->reported > MAX_REPORTS_PER_VCPU && s->report) {
		char line[160];

		snprintf(line, sizeof(line), "vm %s vcpu %u: %u more mismatches not shown", s->name, c->index,
			 c->reported - MAX_REPORTS_PER_VCPU);
		s->report(s->opaque, line);
	}
	pthread_mutex_lock(&s->lock);
	/* After a reset this run counts for nothing: the vCPU starts over. */
	if (ctl_gen(atomic_load(&s->ctl)) == c->gen && ++s->ended == s->d->vcpu_num && !s->stopped) {
		s->stopped = true;
		last = true;
		before = s->mismatches_before;
	}
	pthread_mutex_unlock(&s->lock);
	if (last && s->on_stop && !(atomic_load(&s->ctl) & CTL_STOP))
		s->on_stop(s->opaque, atomic_load(&s->mismatches) > before ? 1 : 0);
}

static void *cpu_main(void *arg)
{
	struct sim_cpu *c = arg;
	enum step st;

	do {
		c->gen = ctl_gen(atomic_load(&c->cpus->ctl));
		c->reported = 0;
		st = c->script ? run_script(c) : STEP_GO;
		if (st == STEP_GO) {
			cpu_ended(c);
			st = cpu_wait_reset(c);
		}
	} while (st != STEP_STOP);
	return NULL;
}

int sim_cpus_create(const struct sim_cpus_params *p, struct sim_cpus **ret)
{
	struct sim_cpus *s;
	char err[256];
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snprintf(s->name, sizeof(s->name), "%s", p->name);
	s->d = p->d;
	s->polling = p->completion_polling;
	s->on_stop = p->on_stop;
	s->report = p->report;
	s->opaque = p->opaque;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->msi_lock, NULL);
	for (unsigned i = 0; i < s->d->vcpu_num; i++) {
		s->cpu[i].cpus = s;
		s->cpu[i].index = i;
		if (!p->scripts || !p->scripts[i])
			continue;
		r = sim_script_load(p->scripts[i], &s->cpu[i].script, err, sizeof(err));
		if (r < 0) {
			if (s->report)
				s->report(s->opaque, err);
			sim_cpus_free(s);
			return r;
		}
	}
	*ret = s;
	return 0;
}

/* Whether a mem statement of @sc falls outside RAM: its op, or NULL. */
static const struct sim_op *mem_outside(const struct sim_cpus *s, const struct sim_script *sc)
{
	for (size_t i = 0; i < sc->n_ops; i++) {
		const struct sim_op *op = &sc->ops[i];
		uint64_t len;

		if (op->op < SIM_MEM_WRITE || op->op > SIM_MEM_LOAD)
			continue;
		len = op->op == SIM_MEM_LOAD ? sc->loads[op->arg].len : op->size;
		if (!mem_at(s, op->addr, len))
			return op;
	}
	return NULL;
}

int sim_cpus_set_memory(struct sim_cpus *s, const struct sim_mem_region *r, unsigned n)
{
	struct sim_mem_region *copy = NULL;
	char line[512];

	if (n > SIM_MAX_MEM_REGIONS)
		return -EINVAL;
	if (n && !(copy = malloc(n * sizeof(*copy))))
		return -ENOMEM;
	if (n)
		memcpy(copy, r, n * sizeof(*copy));
	free(s->mem);
	s->mem = copy;
	s->n_mem = n;
	for (unsigned i = 0; i < s->d->vcpu_num; i++) {
		const struct sim_script *sc = s->cpu[i].script;
		const struct sim_op *op = sc ? mem_outside(s, sc) : NULL;
		uint64_t len;

		if (!op)
			continue;
		len = op->op == SIM_MEM_LOAD ? sc->loads[op->arg].len : op->size;
		snprintf(line, sizeof(line), "%s:%u: mem %s 0x%" PRIx64 " (%" PRIu64 " bytes) is not inside guest RAM%s",
			 sc->name, op->line, mem_names[op->op], op->addr, len, n ? "" : " (the VM has none)");
		if (s->report)
			s->report(s->opaque, line);
		return -EINVAL;
	}
	s->mem_set = true;
	return 0;
}

int sim_cpus_start(struct sim_cpus *s)
{
	int r;

	/* A script's RAM is checked before it runs: run_mem trusts it. */
	if (!s->mem_set) {
		for (unsigned i = 0; i < s->d->vcpu_num; i++)
			if (s->cpu[i].script && mem_outside(s, s->cpu[i].script))
				return -EINVAL;
	}

	atomic_fetch_or(&s->ctl, CTL_RUN);
	futex_wake_all(&s->ctl);
	if (s->threads)
		return 0;
	s->threads = true;
	for (unsigned i = 0; i < s->d->vcpu_num; i++) {
		r = -pthread_create(&s->cpu[i].thread, NULL, cpu_main, &s->cpu[i]);
		if (r)
			return r;
		s->cpu[i].started = true;
	}
	return 0;
}

void sim_cpus_pause(struct sim_cpus *s)
{
	atomic_fetch_and(&s->ctl, ~CTL_RUN);
}

void sim_cpus_reset(struct sim_cpus *s)
{
	/* Interrupts the old run did not take are gone with it. */
	for (unsigned i = 0; i < SIM_IRQ_LINES; i++)
		atomic_store(&s->irq_edges[i], 0);
	for (unsigned i = 0; i < atomic_load(&s->n_msi_kinds); i++)
		atomic_store(&s->msi_kinds[i].pending, 0);
	pthread_mutex_lock(&s->lock);
	/* A VM whose scripts had ended runs them again and stops again. */
	s->ended = 0;
	s->stopped = false;
	s->mismatches_before = atomic_load(&s->mismatches);
	atomic_fetch_add(&s->ctl, 1u << CTL_GEN_SHIFT);
	pthread_mutex_unlock(&s->lock);
	cpus_wake(s);
}

int sim_cpus_set_irqline(struct sim_cpus *s, uint32_t gsi, enum hsm_irq_op op)
{
	uint32_t old;

	if (gsi >= SIM_IRQ_LINES || op > HSM_IRQ_PULSE_LOW)
		return -EINVAL;
	atomic_fetch_add(&s->irq_ops, 1);
	/* A pulse leaves the line where it ends; both pulses rise once. */
	old = atomic_exchange(&s->irq_level[gsi], op == HSM_IRQ_ASSERT || op == HSM_IRQ_PULSE_LOW);
	futex_wake_all(&s->irq_level[gsi]);
	if (op == HSM_IRQ_PULSE_HIGH || op == HSM_IRQ_PULSE_LOW || (op == HSM_IRQ_ASSERT && !old)) {
		atomic_fetch_add(&s->irq_edges[gsi], 1);
		futex_wake_all(&s->irq_edges[gsi]);
	}
	return 0;
}

void sim_cpus_inject_msi(struct sim_cpus *s, uint64_t addr, uint64_t data)
{
	_Atomic uint32_t *pending;

	atomic_fetch_add(&s->msis, 1);
	pending = msi_pending(s, addr, data);
	if (!pending) {
		pthread_mutex_lock(&s->msi_lock);
		pending = msi_pending(s, addr, data);
		if (!pending && atomic_load(&s->n_msi_kinds) < SIM_MSI_KINDS) {
			unsigned i = atomic_load(&s->n_msi_kinds);

			s->msi_kinds[i].addr = addr;
			s->msi_kinds[i].data = data;
			pending = &s->msi_kinds[i].pending;
			atomic_store_explicit(&s->n_msi_kinds, i + 1, memory_order_release);
		}
		pthread_mutex_unlock(&s->msi_lock);
	}
	if (pending)
		atomic_fetch_add(pending, 1);
	atomic_fetch_add(&s->msi_seq, 1);
	futex_wake_all(&s->msi_seq);
}

void sim_cpus_stats(struct sim_cpus *s, struct sim_stats *ret)
{
	ret->accesses = atomic_load(&s->accesses);
	ret->mismatches = atomic_load(&s->mismatches);
	ret->irq_ops = atomic_load(&s->irq_ops);
	ret->msis = atomic_load(&s->msis);
	ret->mem_ops = atomic_load(&s->mem_ops);
}

struct sim_cpus *sim_cpus_free(struct sim_cpus *s)
{
	if (!s)
		return NULL;
	atomic_fetch_or(&s->ctl, CTL_STOP);
	cpus_wake(s);
	/* A vCPU waiting for its request, or posting one more on its way to
	 * the stop, is completed at once from here on. */
	dispatch_close(s->d);
	for (unsigned i = 0; i < s->d->vcpu_num; i++) {
		if (s->cpu[i].started)
			pthread_join(s->cpu[i].thread, NULL);
	}
	for (unsigned i = 0; i < s->d->vcpu_num; i++)
		sim_script_free(s->cpu[i].script);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->msi_lock);
	free(s->mem);
	free(s);
	return NULL;
}

/* ---- the sim backend: a dispatcher and scripted vCPUs ---- */

struct sim_vm {
	struct hsm_vm base;
	struct dispatch d;
	struct sim_cpus *cpus;
	struct irqfd_relay *irqfds;
	hsm_report_fn report;
	void *opaque;
	char name[64];
};

static struct sim_vm *to_sim(struct hsm_vm *vm)
{
	return (struct sim_vm *)vm;
}

static void sim_destroy(struct hsm_vm *base)
{
	struct sim_vm *vm = to_sim(base);

	/* Nothing injects, then no vCPU runs: the registered eventfds and
	 * RAM can go. */
	vm->irqfds = irqfd_relay_free(vm->irqfds);
	sim_cpus_free(vm->cpus);
	hsm_vm_release(&vm->base);
	free(vm->base.page);
	free(vm);
}

/* An irqfd was written: the line's edge, or the MSI. */
static void sim_irqfd_inject(void *opaque, const struct hsm_irqfd *f)
{
	struct sim_vm *vm = opaque;

	if (f->msi)
		sim_cpus_inject_msi(vm->cpus, f->msi_addr, f->msi_data);
	else
		sim_cpus_set_irqline(vm->cpus, f->gsi, HSM_IRQ_PULSE_HIGH);
}

static int sim_setup_memory(struct sim_vm *vm, uint64_t size)
{
	struct sim_mem_region r = { 0 };
	char note[256];
	int err;

	if (size) {
		err = guestmem_create(&vm->base, vm->name, size, note, sizeof(note));
		if (note[0] && vm->report) {
			char line[340];

			snprintf(line, sizeof(line), "vm %.64s: %.256s", vm->name, note);
			vm->report(vm->opaque, line);
		}
		if (err)
			return err;
		err = guestmem_add_region(&vm->base, 0, size, 0);
		if (err)
			return err;
		r = (struct sim_mem_region){ .gpa = 0, .size = size, .host = vm->base.mem };
	}
	return sim_cpus_set_memory(vm->cpus, &r, size ? 1 : 0);
}

static int sim_create(const struct hsm_vm_params *p, struct hsm_vm **ret)
{
	struct sim_cpus_params cp = {
		.name = p->name,
		.scripts = p->scripts,
		.completion_polling = p->completion_polling,
		.on_stop = p->on_stop,
		.report = p->report,
		.opaque = p->opaque,
	};
	struct sim_vm *vm;
	int r;

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->report = p->report;
	vm->opaque = p->opaque;
	snprintf(vm->name, sizeof(vm->name), "%s", p->name);
	r = hsm_vm_init(&vm->base, &sim_ops, p->vcpus);
	if (r)
		goto err;
	vm->base.page = aligned_alloc(4096, sizeof(*vm->base.page));
	if (!vm->base.page) {
		r = -ENOMEM;
		goto err;
	}
	vm->base.local = &vm->d;
	r = dispatch_init(&vm->d, vm->base.page, p->vcpus);
	if (r)
		goto err;
	cp.d = &vm->d;
	r = sim_cpus_create(&cp, &vm->cpus);
	if (!r)
		r = sim_setup_memory(vm, p->memory);
	if (!r)
		r = irqfd_relay_create(sim_irqfd_inject, vm, &vm->irqfds);
	if (r)
		goto err;
	*ret = &vm->base;
	return 0;
err:
	sim_destroy(&vm->base);
	return r;
}

static int sim_start(struct hsm_vm *vm)
{
	return sim_cpus_start(to_sim(vm)->cpus);
}

static int sim_pause(struct hsm_vm *vm)
{
	sim_cpus_pause(to_sim(vm)->cpus);
	return 0;
}

static int sim_reset(struct hsm_vm *vm)
{
	sim_cpus_reset(to_sim(vm)->cpus);
	return 0;
}

static int sim_set_irqline(struct hsm_vm *vm, uint32_t gsi, enum hsm_irq_op op)
{
	return sim_cpus_set_irqline(to_sim(vm)->cpus, gsi, op);
}

static int sim_inject_msi(struct hsm_vm *vm, uint64_t addr, uint64_t data)
{
	sim_cpus_inject_msi(to_sim(vm)->cpus, addr, data);
	return 0;
}

static int sim_irqfd(struct hsm_vm *base, const struct hsm_irqfd *f, int fd, bool deassign)
{
	struct sim_vm *vm = to_sim(base);
	struct hsm_irqfd mine = *f;
	int r;

	if (!f->msi && f->gsi >= SIM_IRQ_LINES)
		return -EINVAL;
	if (deassign) {
		r = irqfd_relay_del(vm->irqfds, fd);
		return r < 0 ? r : 0;
	}
	mine.fd = fd;
	return irqfd_relay_add(vm->irqfds, &mine);
}

void sim_vm_stats(struct hsm_vm *vm, struct sim_stats *ret)
{
	sim_cpus_stats(to_sim(vm)->cpus, ret);
}

const struct hsm_ops sim_ops = {
	.name = "sim",
	.create = sim_create,
	.create_client = hsm_local_create_client,
	.start = sim_start,
	.pause = sim_pause,
	.reset = sim_reset,
	.attach = hsm_local_attach,
	.kick = hsm_local_kick,
	.complete = hsm_local_complete,
	.set_irqline = sim_set_irqline,
	.inject_msi = sim_inject_msi,
	.clear = hsm_local_clear,
	.destroy_client = hsm_local_destroy_client,
	.destroy = sim_destroy,
	.ioeventfd = hsm_local_ioeventfd,
	.irqfd = sim_irqfd,
};
