/* The broker's configuration: one YAML file, loaded strictly.
 *
 * Schema (a key not listed here is an error; so is a key given twice):
 *
 *   broker:                            optional mapping
 *     runtime_dir: /run/ioreq-broker   optional absolute path; NULL when absent
 *     control_socket: /run/ioreq-broker/control   optional absolute path
 *     control_group: ioreq             optional: who else may use the control socket
 *     deadline_ms: 500                 optional, 1..600000 (CFG_DEFAULT_DEADLINE_MS)
 *   vms:                               required, non-empty sequence
 *     - name: vm0                      required, [A-Za-z0-9_.-]{1,31}, unique
 *       backend: sim                   required: sim | kvm | acrn
 *       vcpus: 2                       required, 1..CFG_MAX_VCPUS
 *       scripts: [a.txt, ~]            sim only, one entry per vCPU: a readable
 *                                      file (relative to this file's directory,
 *                                      or absolute) or null for an idle vCPU
 *       memory: 64M                    kvm, acrn: guest RAM (bytes, K, M, G)
 *       image: guest.elf               kvm, required: a readable file
 *       exit_port: 0xf4                kvm: the port that stops the VM
 *       completion_polling: false      acrn: vCPUs poll for completion
 *       autostart: true                start with the broker
 *       devices:                       optional sequence
 *         - name: ram0                 required, same charset, unique in the VM
 *           program: ioreq-dev-ram     required; a bare name is looked up in
 *                                      bindir, then in $PATH; a name with a '/'
 *                                      is relative to this file's directory
 *           args: ["--size", "64"]     optional sequence of strings
 *           pio: ["0x3f8+8", "0x60..0x64", {start: 0x70, size: 2},
 *                 {start: 0x80, end: 0x8f}]    ports, end <= 0xffff
 *           mmio: ["0xfe000000+0x1000"]        same forms, must not wrap
 *           pci: ["00:01.0", "0000:00:02.1"]   BB:DD.F, hex, segment 0000 only
 *           irqs: [4]                  0..255, no duplicates
 *           msi: false                 optional boolean (true | false)
 *           deadline_ms: 200           1..600000, default broker.deadline_ms
 *           sandbox: strict            strict (default) | none
 *           windows: {pio: [...], mmio: [...]}   where it may claim ranges
 *           output: stdout | FILE      its stdout (default /dev/null)
 *           on_failure: fallback       fallback | hold | stop-vm
 *           restart_limit: 5           restarts within restart_window_ms (60000)
 *                                      before the device is marked failed
 *           max_inflight: 16           requests in flight at once (1..16)
 *           max_msg_rate: 10000        interrupts and claims per second
 *           input: stdin               its stdin (default /dev/null)
 *
 * Integers are decimal or 0x-prefixed hex. START..END is inclusive. Ranges of
 * one VM must not overlap, whichever devices declare them; two VMs may use the
 * same ranges. Script and program paths are stored resolved (realpath).
 *
 * Errors are "FILE:LINE:COLUMN: message": a bad value is reported at the value,
 * an unknown or duplicate key at the key, a missing key at the mapping that
 * lacks it. The first error in document order wins and nothing is returned. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define CFG_MAX_DEADLINE_MS 600000
#define CFG_NAME_MAX 31
#define CFG_PIO_MAX 0xffffu
#define CFG_IRQ_MAX 255

struct loader {
	const char *path;     /* as given, for messages */
	char *dir;            /* resolved directory of the file */
	const char *bindir;   /* may be NULL */
	char *err;
	size_t errlen;
	yaml_document_t doc;
	struct cfg *cfg;
	struct cfg_vm *vm;    /* VM being parsed */
	yaml_node_t *scripts; /* its scripts: checked once backend and vcpus are known */
};

struct field;

typedef int (*field_parse_fn)(struct loader *l, const struct field *f, yaml_node_t *val, void *obj);

/* One key of a mapping. Handlers of plain values store at @off in the object
 * (integers checked against @min..@max); others find what they need in @arg. */
struct field {
	const char *key;
	field_parse_fn parse;
	bool required;
	size_t off;
	uint64_t min, max;
	const void *arg;
};

struct schema {
	const char *what; /* "unknown key 'x' in <what>" */
	const struct field *fields;
	size_t n;
};

#define SCHEMA(w, f) { .what = (w), .fields = (f), .n = ARRAY_SIZE(f) }

/* A kind of address range a device claims, and where a device keeps it. */
struct range_kind {
	const char *name;
	uint64_t max;
	size_t arr, n; /* offsetof the array and its length in struct cfg_device */
	bool bdf;
};

static const char *const backend_names[] = {
	[CFG_BACKEND_SIM] = "sim",
	[CFG_BACKEND_KVM] = "kvm",
	[CFG_BACKEND_ACRN] = "acrn",
};

static const char *const sandbox_names[] = {
	[CFG_SANDBOX_NONE] = "none",
	[CFG_SANDBOX_STRICT] = "strict",
};

/* ---- errors ---- */

static struct cfg_mark node_mark(const yaml_node_t *n)
{
	return (struct cfg_mark){ .line = (int)n->start_mark.line + 1, .col = (int)n->start_mark.column + 1 };
}

__attribute__((format(printf, 3, 0))) static void verr(struct loader *l, const struct cfg_mark *m, const char *fmt, va_list ap)
{
	int n;

	if (!l->err || !l->errlen)
		return;
	if (m)
		n = snprintf(l->err, l->errlen, "%s:%d:%d: ", l->path, m->line, m->col);
	else
		n = snprintf(l->err, l->errlen, "%s: ", l->path);
	if (n >= 0 && (size_t)n < l->errlen)
		vsnprintf(l->err + n, l->errlen - n, fmt, ap);
}

__attribute__((format(printf, 3, 4))) static int fail_at(struct loader *l, struct cfg_mark m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(l, &m, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

__attribute__((format(printf, 3, 4))) static int fail(struct loader *l, const yaml_node_t *n, const char *fmt, ...)
{
	struct cfg_mark m = node_mark(n);
	va_list ap;

	va_start(ap, fmt);
	verr(l, &m, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* For errors that have no position in the file. */
__attribute__((format(printf, 3, 4))) static int fail_file(struct loader *l, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(l, NULL, fmt, ap);
	va_end(ap);
	return r;
}

static int oom(struct loader *l)
{
	return fail_file(l, -ENOMEM, "out of memory");
}

/* ---- node helpers ---- */

static yaml_node_t *node_at(struct loader *l, yaml_node_item_t i)
{
	return yaml_document_get_node(&l->doc, i);
}

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* libyaml does not resolve implicit tags, so the plain spellings of null are
 * recognised here (YAML 1.2 core schema), as is an empty plain scalar. */
static bool is_null(const yaml_node_t *n)
{
	static const char *const spellings[] = { "", "~", "null", "Null", "NULL" };
	size_t i;

	if (n->type != YAML_SCALAR_NODE)
		return false;
	if (n->tag && !strcmp((const char *)n->tag, YAML_NULL_TAG))
		return true;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (i = 0; i < ARRAY_SIZE(spellings); i++)
		if (!strcmp(scalar(n), spellings[i]))
			return true;
	return false;
}

/* A scalar usable as a C string: not null, no embedded NUL. */
static bool is_string(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE && !is_null(n) && strlen(scalar(n)) == n->data.scalar.length;
}

static int get_string(struct loader *l, const yaml_node_t *n, const char *key, const char **ret)
{
	*ret = NULL;
	if (!is_string(n))
		return fail(l, n, "expected a string for '%s'", key);
	*ret = scalar(n);
	return 0;
}

static int get_seq(struct loader *l, const yaml_node_t *n, const char *key, size_t *ret_n)
{
	*ret_n = 0;
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(l, n, "expected a sequence for '%s'", key);
	*ret_n = n->data.sequence.items.top - n->data.sequence.items.start;
	return 0;
}

static yaml_node_t *seq_item(struct loader *l, const yaml_node_t *seq, size_t i)
{
	return node_at(l, seq->data.sequence.items.start[i]);
}

static void *alloc_array(size_t n, size_t size)
{
	return calloc(n ? n : 1, size);
}

/* Decimal or 0x hex, nothing else: no sign, no blanks, no octal. */
static bool parse_u64(const char *s, size_t len, uint64_t *ret)
{
	unsigned base = 10;
	uint64_t v = 0;
	size_t i = 0;

	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (i == len)
		return false;
	for (; i < len; i++) {
		unsigned d;

		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (base == 16 && s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else if (base == 16 && s[i] >= 'A' && s[i] <= 'F')
			d = s[i] - 'A' + 10;
		else
			return false;
		if (v > (UINT64_MAX - d) / base)
			return false;
		v = v * base + d;
	}
	*ret = v;
	return true;
}

static int get_uint(struct loader *l, const yaml_node_t *n, uint64_t *ret)
{
	if (!is_string(n) || !parse_u64(scalar(n), n->data.scalar.length, ret))
		return fail(l, n, "expected an unsigned integer");
	return 0;
}

/* ---- the mapping walker ---- */

/* Calls the handler of every key of @map in document order, then checks that
 * the required keys were there. @ret_seen (optional) gets a bit per field. */
static int walk_map(struct loader *l, yaml_node_t *map, const struct schema *s, void *obj, uint32_t *ret_seen)
{
	yaml_node_pair_t *p;
	uint32_t seen = 0;
	size_t i;
	int r;

	if (map->type != YAML_MAPPING_NODE)
		return fail(l, map, "expected a mapping for %s", s->what);
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(l, p->key), *v = node_at(l, p->value);

		if (!is_string(k))
			return fail(l, k, "expected a string key in %s", s->what);
		for (i = 0; i < s->n; i++)
			if (!strcmp(scalar(k), s->fields[i].key))
				break;
		if (i == s->n)
			return fail(l, k, "unknown key '%s' in %s", scalar(k), s->what);
		if (seen & (UINT32_C(1) << i))
			return fail(l, k, "duplicate key '%s'", scalar(k));
		seen |= UINT32_C(1) << i;
		r = s->fields[i].parse(l, &s->fields[i], v, obj);
		if (r < 0)
			return r;
	}
	for (i = 0; i < s->n; i++)
		if (s->fields[i].required && !(seen & (UINT32_C(1) << i)))
			return fail(l, map, "missing required key '%s' in %s", s->fields[i].key, s->what);
	if (ret_seen)
		*ret_seen = seen;
	return 0;
}

/* ---- generic handlers ---- */

static int parse_u32(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	uint64_t v;
	int r;

	r = get_uint(l, val, &v);
	if (r < 0)
		return r;
	if (v < f->min || v > f->max)
		return fail(l, val, "'%s' must be between %" PRIu64 " and %" PRIu64, f->key, f->min, f->max);
	*(uint32_t *)((char *)obj + f->off) = (uint32_t)v;
	return 0;
}

static int parse_u64_field(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	return get_uint(l, val, (uint64_t *)((char *)obj + f->off));
}

static int parse_bool(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	bool *b = (bool *)((char *)obj + f->off);

	if (is_string(val) && !strcmp(scalar(val), "true"))
		*b = true;
	else if (is_string(val) && !strcmp(scalar(val), "false"))
		*b = false;
	else
		return fail(l, val, "expected a boolean (true or false) for '%s'", f->key);
	return 0;
}

static int parse_name(struct loader *l, const struct field *f, yaml_node_t *val, char **ret)
{
	const char *s;
	size_t n;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
	if (n == 0 || n > CFG_NAME_MAX || s[n])
		return fail(l, val, "invalid name '%s' (1 to %d characters from A-Z a-z 0-9 _ . -)", s,
			    CFG_NAME_MAX);
	*ret = strdup(s);
	return *ret ? 0 : oom(l);
}

/* Index of @s in @names, or -1. */
static int lookup_name(const char *const *names, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], s))
			return (int)i;
	return -1;
}

/* ---- files ---- */

static char *join_path(const char *dir, size_t dirlen, const char *name)
{
	size_t n = strlen(name);
	char *p = malloc(dirlen + 1 + n + 1);

	if (!p)
		return NULL;
	memcpy(p, dir, dirlen);
	p[dirlen] = '/';
	memcpy(p + dirlen + 1, name, n + 1);
	return p;
}

/* Resolves @p, relative to the configuration's directory unless absolute. */
static int resolve(struct loader *l, const char *p, char **ret)
{
	char *joined = NULL;
	int r = 0;

	if (p[0] != '/') {
		joined = join_path(l->dir, strlen(l->dir), p);
		if (!joined)
			return -ENOMEM;
		p = joined;
	}
	*ret = realpath(p, NULL);
	if (!*ret)
		r = -errno;
	free(joined);
	return r;
}

/* 0 with *ret resolved if @p is an executable regular file; -ENOENT if it is
 * missing, -EACCES if it is not executable. */
static int exec_file(const char *p, char **ret)
{
	struct stat st;

	if (stat(p, &st) < 0)
		return errno == ENOMEM ? -ENOMEM : -ENOENT;
	if (!S_ISREG(st.st_mode) || access(p, X_OK) < 0)
		return -EACCES;
	*ret = realpath(p, NULL);
	return *ret ? 0 : -errno;
}

/* 0 and *ret set if @dir contains an executable @name, else -ENOENT (like
 * execvp, a match that cannot be executed does not stop the search). */
static int try_dir(const char *dir, size_t dirlen, const char *name, char **ret)
{
	char *p = join_path(dir, dirlen, name);
	int r;

	if (!p)
		return -ENOMEM;
	r = exec_file(p, ret);
	free(p);
	return r == -EACCES ? -ENOENT : r;
}

/* bindir first, then $PATH. Empty $PATH entries (the current directory) are
 * skipped: the broker must not run whatever is in its working directory. */
static int search_program(struct loader *l, const char *name, char **ret)
{
	const char *dir, *end;
	int r;

	if (l->bindir && *l->bindir) {
		r = try_dir(l->bindir, strlen(l->bindir), name, ret);
		if (r != -ENOENT)
			return r;
	}
	for (dir = getenv("PATH"); dir; dir = *end ? end + 1 : NULL) {
		end = strchrnul(dir, ':');
		if (end == dir)
			continue;
		r = try_dir(dir, end - dir, name, ret);
		if (r != -ENOENT)
			return r;
	}
	return -ENOENT;
}

/* ---- broker ---- */

/* An absolute path, stored at @off. */
static int parse_abs_path(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	char **dst = (char **)((char *)obj + f->off);
	const char *s;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	if (s[0] != '/')
		return fail(l, val, "'%s' must be an absolute path", f->key);
	*dst = strdup(s);
	return *dst ? 0 : oom(l);
}

static int parse_group(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg *c = obj;
	const char *s;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	if (!*s)
		return fail(l, val, "'%s' must name a group", f->key);
	c->control_group = strdup(s);
	return c->control_group ? 0 : oom(l);
}

static const struct field broker_fields[] = {
	{ .key = "runtime_dir", .parse = parse_abs_path, .off = offsetof(struct cfg, runtime_dir) },
	{ .key = "control_socket", .parse = parse_abs_path, .off = offsetof(struct cfg, control_socket) },
	{ .key = "control_group", .parse = parse_group },
	{ .key = "deadline_ms",
	  .parse = parse_u32,
	  .off = offsetof(struct cfg, deadline_ms),
	  .min = 1,
	  .max = CFG_MAX_DEADLINE_MS },
};

static const struct schema broker_schema = SCHEMA("broker", broker_fields);

static int parse_broker(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	return walk_map(l, val, &broker_schema, obj, NULL);
}

/* ---- ranges ---- */

static const struct range_kind pio_kind = {
	.name = "pio",
	.max = CFG_PIO_MAX,
	.arr = offsetof(struct cfg_device, pio),
	.n = offsetof(struct cfg_device, n_pio),
};

static const struct range_kind mmio_kind = {
	.name = "mmio",
	.max = UINT64_MAX,
	.arr = offsetof(struct cfg_device, mmio),
	.n = offsetof(struct cfg_device, n_mmio),
};

static const struct range_kind pci_kind = {
	.name = "pci",
	.arr = offsetof(struct cfg_device, pci),
	.n = offsetof(struct cfg_device, n_pci),
	.bdf = true,
};

static const struct range_kind *const range_kinds[] = { &pio_kind, &mmio_kind, &pci_kind };

static const struct range_kind win_pio_kind = {
	.name = "pio window",
	.max = CFG_PIO_MAX,
	.arr = offsetof(struct cfg_device, win_pio),
	.n = offsetof(struct cfg_device, n_win_pio),
};

static const struct range_kind win_mmio_kind = {
	.name = "mmio window",
	.max = UINT64_MAX,
	.arr = offsetof(struct cfg_device, win_mmio),
	.n = offsetof(struct cfg_device, n_win_mmio),
};

static struct cfg_range **dev_ranges(struct cfg_device *d, const struct range_kind *k, size_t **ret_n)
{
	*ret_n = (size_t *)((char *)d + k->n);
	return (struct cfg_range **)((char *)d + k->arr);
}

struct range_spec {
	uint64_t start, size, end;
};

static const struct field range_fields[] = {
	{ .key = "start", .parse = parse_u64_field, .required = true, .off = offsetof(struct range_spec, start) },
	{ .key = "size", .parse = parse_u64_field, .off = offsetof(struct range_spec, size) },
	{ .key = "end", .parse = parse_u64_field, .off = offsetof(struct range_spec, end) },
};

static const struct schema range_schema = SCHEMA("range", range_fields);

#define RANGE_FORMS "START+SIZE, START..END or {start, size|end}"
#define RANGE_SIZE_BIT (UINT32_C(1) << 1)
#define RANGE_END_BIT (UINT32_C(1) << 2)

static bool parse_u64_trim(const char *s, size_t len, uint64_t *ret)
{
	while (len && *s == ' ') {
		s++;
		len--;
	}
	while (len && s[len - 1] == ' ')
		len--;
	return parse_u64(s, len, ret);
}

/* "START+SIZE" or "START..END". */
static bool parse_range_string(const char *s, uint64_t *start, uint64_t *n, bool *is_size)
{
	const char *sep = strstr(s, "..");
	size_t seplen = 2;

	*is_size = !sep;
	if (!sep) {
		sep = strchr(s, '+');
		seplen = 1;
	}
	return sep && parse_u64_trim(s, sep - s, start) && parse_u64_trim(sep + seplen, strlen(sep + seplen), n);
}

static int parse_range(struct loader *l, const struct range_kind *k, yaml_node_t *n, struct cfg_range *ret)
{
	uint64_t start, end;

	if (n->type == YAML_MAPPING_NODE) {
		struct range_spec rs = { 0 };
		uint32_t seen;
		int r;

		r = walk_map(l, n, &range_schema, &rs, &seen);
		if (r < 0)
			return r;
		if (!(seen & RANGE_SIZE_BIT) == !(seen & RANGE_END_BIT))
			return fail(l, n, "a range needs exactly one of 'size' and 'end'");
		start = rs.start;
		if (seen & RANGE_SIZE_BIT) {
			if (!rs.size)
				return fail(l, n, "empty %s range (size 0)", k->name);
			if (rs.size - 1 > UINT64_MAX - start)
				return fail(l, n, "%s range 0x%" PRIx64 "+0x%" PRIx64 " wraps around", k->name, start,
					    rs.size);
			end = start + (rs.size - 1);
		} else {
			end = rs.end;
		}
	} else if (is_string(n)) {
		uint64_t v;
		bool is_size;

		if (!parse_range_string(scalar(n), &start, &v, &is_size))
			return fail(l, n, "invalid %s range '%s' (expected " RANGE_FORMS ")", k->name, scalar(n));
		if (is_size && !v)
			return fail(l, n, "empty %s range (size 0)", k->name);
		if (is_size && v - 1 > UINT64_MAX - start)
			return fail(l, n, "%s range 0x%" PRIx64 "+0x%" PRIx64 " wraps around", k->name, start, v);
		end = is_size ? start + (v - 1) : v;
	} else {
		return fail(l, n, "expected a %s range (" RANGE_FORMS ")", k->name);
	}
	if (end < start)
		return fail(l, n, "%s range end 0x%" PRIx64 " is below its start 0x%" PRIx64, k->name, end, start);
	if (end > k->max)
		return fail(l, n, "%s range 0x%" PRIx64 "..0x%" PRIx64 " goes beyond 0x%" PRIx64, k->name, start, end,
			    k->max);
	ret->start = start;
	ret->end = end;
	ret->mark = node_mark(n);
	return 0;
}

/* "BB:DD.F" or "SSSS:BB:DD.F", hex, as lspci prints them. */
static int parse_bdf(struct loader *l, yaml_node_t *n, struct cfg_range *ret)
{
	static const char shape[] = "hhhh:hh:hh.h";
	unsigned seg = 0, bus, dev, fn;
	const char *s, *t;
	size_t len, i;

	if (!is_string(n))
		return fail(l, n, "expected a PCI address (BB:DD.F)");
	s = scalar(n);
	len = strlen(s);
	t = len == 7 ? shape + 5 : shape;
	if (len != 7 && len != 12)
		goto bad;
	for (i = 0; i < len; i++)
		if (t[i] == 'h' ? !isxdigit((unsigned char)s[i]) : s[i] != t[i])
			goto bad;
	if (len == 12 && sscanf(s, "%4x:", &seg) != 1)
		goto bad;
	if (sscanf(s + len - 7, "%2x:%2x.%1x", &bus, &dev, &fn) != 3)
		goto bad;
	if (seg)
		return fail(l, n, "PCI segment %04x is not supported (only 0000)", seg);
	if (dev > 0x1f)
		return fail(l, n, "PCI device number 0x%x out of range (max 0x1f)", dev);
	if (fn > 7)
		return fail(l, n, "PCI function %u out of range (max 7)", fn);
	ret->start = ret->end = bus << 8 | dev << 3 | fn;
	ret->mark = node_mark(n);
	return 0;
bad:
	return fail(l, n, "invalid PCI address '%s' (expected BB:DD.F or 0000:BB:DD.F, hex)", s);
}

static int parse_ranges(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	const struct range_kind *k = f->arg;
	struct cfg_range **arr;
	size_t i, n, *count;
	int r;

	r = get_seq(l, val, f->key, &n);
	if (r < 0)
		return r;
	arr = dev_ranges(obj, k, &count);
	*arr = alloc_array(n, sizeof(**arr));
	if (!*arr)
		return oom(l);
	*count = n;
	for (i = 0; i < n; i++) {
		yaml_node_t *e = seq_item(l, val, i);

		r = k->bdf ? parse_bdf(l, e, &(*arr)[i]) : parse_range(l, k, e, &(*arr)[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static void format_range(char *buf, size_t len, const struct range_kind *k, const struct cfg_range *r)
{
	if (k->bdf)
		snprintf(buf, len, "%02x:%02x.%x", (unsigned)(r->start >> 8), (unsigned)(r->start >> 3) & 0x1f,
			 (unsigned)r->start & 7);
	else
		snprintf(buf, len, "0x%" PRIx64 "..0x%" PRIx64, r->start, r->end);
}

/* The first range declared before @r (devices 0..@di of @vm, @r belonging to
 * device @di) that overlaps it. Quadratic: configurations are small, and
 * "first in document order" is what the operator wants to read. */
static const struct cfg_range *find_overlap(struct cfg_vm *vm, size_t di, const struct range_kind *k,
					    const struct cfg_range *r, const struct cfg_device **ret_dev)
{
	size_t d, i, *n;

	for (d = 0; d <= di; d++) {
		struct cfg_range *v = *dev_ranges(&vm->devices[d], k, &n);

		for (i = 0; i < *n && &v[i] != r; i++) {
			if (v[i].start <= r->end && r->start <= v[i].end) {
				*ret_dev = &vm->devices[d];
				return &v[i];
			}
		}
	}
	return NULL;
}

static int overlap_error(struct loader *l, const struct range_kind *k, const struct cfg_device *dev,
			 const struct cfg_range *r, const struct cfg_device *other, const struct cfg_range *o)
{
	char a[48], b[48];

	format_range(a, sizeof(a), k, r);
	format_range(b, sizeof(b), k, o);
	if (k->bdf)
		return fail_at(l, r->mark, "duplicate PCI address %s of device '%s' (already claimed by device '%s')",
			       a, dev->name, other->name);
	return fail_at(l, r->mark, "%s range %s of device '%s' overlaps %s of device '%s'", k->name, a, dev->name,
		       b, other->name);
}

/* Runs once device @di is complete, so that the messages can name it. */
static int check_overlaps(struct loader *l, struct cfg_vm *vm, size_t di)
{
	struct cfg_device *dev = &vm->devices[di];
	size_t ki, i, *n;

	for (ki = 0; ki < ARRAY_SIZE(range_kinds); ki++) {
		const struct range_kind *k = range_kinds[ki];
		struct cfg_range *v = *dev_ranges(dev, k, &n);

		for (i = 0; i < *n; i++) {
			const struct cfg_device *other;
			const struct cfg_range *o = find_overlap(vm, di, k, &v[i], &other);

			if (o)
				return overlap_error(l, k, dev, &v[i], other, o);
		}
	}
	return 0;
}

/* ---- devices ---- */

static int parse_dev_name(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_device *dev = obj;
	struct cfg_device *d;
	int r;

	r = parse_name(l, f, val, &dev->name);
	if (r < 0)
		return r;
	for (d = l->vm->devices; d < dev; d++)
		if (!strcmp(d->name, dev->name))
			return fail(l, val, "duplicate device name '%s' (first at %d:%d)", dev->name, d->mark.line,
				    d->mark.col);
	return 0;
}

static int parse_program(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_device *dev = obj;
	const char *s;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	if (strchr(s, '/')) {
		char *p;

		r = resolve(l, s, &p);
		if (r == 0) {
			r = exec_file(p, &dev->program);
			free(p);
		}
	} else {
		r = search_program(l, s, &dev->program);
	}
	if (r == -ENOMEM)
		return oom(l);
	if (r == -EACCES)
		return fail(l, val, "program '%s' is not an executable file", s);
	if (r < 0)
		return fail(l, val, "program '%s' not found", s);
	return 0;
}

static int parse_args(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_device *dev = obj;
	size_t i, n;
	int r;

	r = get_seq(l, val, f->key, &n);
	if (r < 0)
		return r;
	dev->args = calloc(n + 1, sizeof(*dev->args));
	if (!dev->args)
		return oom(l);
	for (i = 0; i < n; i++) {
		yaml_node_t *e = seq_item(l, val, i);
		const char *s;

		r = get_string(l, e, f->key, &s);
		if (r < 0)
			return r;
		dev->args[i] = strdup(s);
		if (!dev->args[i])
			return oom(l);
	}
	return 0;
}

static int parse_irqs(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_device *dev = obj;
	size_t i, j, n;
	int r;

	r = get_seq(l, val, f->key, &n);
	if (r < 0)
		return r;
	dev->irqs = alloc_array(n, sizeof(*dev->irqs));
	if (!dev->irqs)
		return oom(l);
	for (i = 0; i < n; i++) {
		yaml_node_t *e = seq_item(l, val, i);
		uint64_t v;

		r = get_uint(l, e, &v);
		if (r < 0)
			return r;
		if (v > CFG_IRQ_MAX)
			return fail(l, e, "irq %" PRIu64 " out of range (0..%d)", v, CFG_IRQ_MAX);
		for (j = 0; j < i; j++)
			if (dev->irqs[j] == v)
				return fail(l, e, "duplicate irq %" PRIu64, v);
		dev->irqs[i] = (uint32_t)v;
		dev->n_irqs = i + 1;
	}
	return 0;
}

static int parse_sandbox(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_device *dev = obj;
	const char *s;
	int r, i;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	i = lookup_name(sandbox_names, ARRAY_SIZE(sandbox_names), s);
	if (i < 0)
		return fail(l, val, "unknown sandbox '%s' (expected strict or none)", s);
	dev->sandbox = (enum cfg_sandbox)i;
	return 0;
}

static const char *const on_failure_names[] = {
	[CFG_ON_FAILURE_FALLBACK] = "fallback",
	[CFG_ON_FAILURE_HOLD] = "hold",
	[CFG_ON_FAILURE_STOP_VM] = "stop-vm",
};

static int parse_on_failure(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_device *dev = obj;
	const char *s;
	int r, i;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	i = lookup_name(on_failure_names, ARRAY_SIZE(on_failure_names), s);
	if (i < 0)
		return fail(l, val, "unknown on_failure '%s' (expected fallback, hold or stop-vm)", s);
	dev->on_failure = (enum cfg_on_failure)i;
	return 0;
}

static const struct field window_fields[] = {
	{ .key = "pio", .parse = parse_ranges, .arg = &win_pio_kind },
	{ .key = "mmio", .parse = parse_ranges, .arg = &win_mmio_kind },
};

static const struct schema window_schema = SCHEMA("windows", window_fields);

static int parse_windows(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	return walk_map(l, val, &window_schema, obj, NULL);
}

/* "stdout" (the broker's) or a file, created if needed, relative to this file. */
static int parse_output(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_device *dev = obj;
	const char *s;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	if (!strcmp(s, "stdout")) {
		dev->output_stdout = true;
		return 0;
	}
	if (!*s)
		return fail(l, val, "'%s' must be stdout or a file name", f->key);
	if (s[0] == '/')
		dev->output_file = strdup(s);
	else if (asprintf(&dev->output_file, "%s/%s", l->dir, s) < 0)
		dev->output_file = NULL;
	return dev->output_file ? 0 : oom(l);
}

static int parse_input(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_device *dev = obj;
	const char *s;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	if (strcmp(s, "stdin"))
		return fail(l, val, "'%s' must be stdin", f->key);
	dev->input_stdin = true;
	return 0;
}

static const struct field device_fields[] = {
	{ .key = "name", .parse = parse_dev_name, .required = true },
	{ .key = "program", .parse = parse_program, .required = true },
	{ .key = "args", .parse = parse_args },
	{ .key = "pio", .parse = parse_ranges, .arg = &pio_kind },
	{ .key = "mmio", .parse = parse_ranges, .arg = &mmio_kind },
	{ .key = "pci", .parse = parse_ranges, .arg = &pci_kind },
	{ .key = "irqs", .parse = parse_irqs },
	{ .key = "msi", .parse = parse_bool, .off = offsetof(struct cfg_device, msi) },
	/* 0 until the end of the file: broker.deadline_ms may come later */
	{ .key = "deadline_ms",
	  .parse = parse_u32,
	  .off = offsetof(struct cfg_device, deadline_ms),
	  .min = 1,
	  .max = CFG_MAX_DEADLINE_MS },
	{ .key = "sandbox", .parse = parse_sandbox },
	{ .key = "windows", .parse = parse_windows },
	{ .key = "on_failure", .parse = parse_on_failure },
	{ .key = "restart_limit",
	  .parse = parse_u32,
	  .off = offsetof(struct cfg_device, restart_limit),
	  .max = 1000 },
	{ .key = "restart_window_ms",
	  .parse = parse_u32,
	  .off = offsetof(struct cfg_device, restart_window_ms),
	  .min = 1,
	  .max = 86400000 },
	{ .key = "max_inflight",
	  .parse = parse_u32,
	  .off = offsetof(struct cfg_device, max_inflight),
	  .min = 1,
	  .max = CFG_MAX_VCPUS },
	{ .key = "max_msg_rate",
	  .parse = parse_u32,
	  .off = offsetof(struct cfg_device, max_msg_rate),
	  .min = 1,
	  .max = 10000000 },
	{ .key = "output", .parse = parse_output },
	{ .key = "input", .parse = parse_input },
};

static const struct schema device_schema = SCHEMA("device", device_fields);

static int parse_devices(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_vm *vm = obj;
	size_t i, n;
	int r;

	r = get_seq(l, val, f->key, &n);
	if (r < 0)
		return r;
	vm->devices = alloc_array(n, sizeof(*vm->devices));
	if (!vm->devices)
		return oom(l);
	vm->n_devices = n;
	for (i = 0; i < n; i++) {
		yaml_node_t *e = seq_item(l, val, i);
		struct cfg_device *dev = &vm->devices[i];

		dev->mark = node_mark(e);
		dev->sandbox = CFG_SANDBOX_STRICT;
		dev->restart_limit = CFG_DEFAULT_RESTART_LIMIT;
		dev->restart_window_ms = CFG_DEFAULT_RESTART_WINDOW_MS;
		dev->max_inflight = CFG_DEFAULT_MAX_INFLIGHT;
		dev->max_msg_rate = CFG_DEFAULT_MAX_MSG_RATE;
		r = walk_map(l, e, &device_schema, dev, NULL);
		if (r < 0)
			return r;
		if (!dev->args) {
			dev->args = calloc(1, sizeof(*dev->args));
			if (!dev->args)
				return oom(l);
		}
		r = check_overlaps(l, vm, i);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- VMs ---- */

static int parse_vm_name(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_vm *vm = obj;
	struct cfg_vm *v;
	int r;

	r = parse_name(l, f, val, &vm->name);
	if (r < 0)
		return r;
	for (v = l->cfg->vms; v < vm; v++)
		if (!strcmp(v->name, vm->name))
			return fail(l, val, "duplicate VM name '%s' (first at %d:%d)", vm->name, v->mark.line,
				    v->mark.col);
	return 0;
}

static int parse_backend(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_vm *vm = obj;
	const char *s;
	int r, i;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	i = lookup_name(backend_names, ARRAY_SIZE(backend_names), s);
	if (i < 0)
		return fail(l, val, "unknown backend '%s' (expected sim, kvm or acrn)", s);
	vm->backend = (enum cfg_backend)i;
	return 0;
}

static int parse_scripts(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	l->scripts = val;
	return 0;
}

static int load_script(struct loader *l, yaml_node_t *n, char **ret)
{
	struct stat st;
	const char *s;
	int r;

	if (is_null(n))
		return 0;
	if (!is_string(n))
		return fail(l, n, "expected a script path or null");
	s = scalar(n);
	r = resolve(l, s, ret);
	if (r == -ENOMEM)
		return oom(l);
	if (r == 0 && (stat(*ret, &st) < 0 || access(*ret, R_OK) < 0))
		r = -errno;
	if (r < 0)
		return fail(l, n, "cannot read script '%s': %s", s, strerror(-r));
	if (!S_ISREG(st.st_mode))
		return fail(l, n, "script '%s' is not a regular file", s);
	return 0;
}

/* Runs once the whole VM mapping is read: scripts depend on backend and vcpus. */
static int load_scripts(struct loader *l, struct cfg_vm *vm)
{
	yaml_node_t *s = l->scripts;
	size_t i, n;
	int r;

	if (vm->backend != CFG_BACKEND_SIM) {
		if (s)
			return fail(l, s, "'scripts' is only valid with backend sim");
		return 0;
	}
	/* sim always gets one entry per vCPU, idle unless a script says otherwise */
	vm->scripts = calloc(vm->vcpus, sizeof(*vm->scripts));
	if (!vm->scripts)
		return oom(l);
	if (!s)
		return 0;
	r = get_seq(l, s, "scripts", &n);
	if (r < 0)
		return r;
	if (n != vm->vcpus)
		return fail(l, s, "expected %u scripts (one per vCPU), got %zu", vm->vcpus, n);
	for (i = 0; i < n; i++) {
		r = load_script(l, seq_item(l, s, i), &vm->scripts[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Bytes, or with a K, M or G suffix; whole pages. */
static int parse_memory(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_vm *vm = obj;
	const char *s;
	uint64_t v, mult = 1;
	size_t len;

	if (!is_string(val))
		return fail(l, val, "expected a size for '%s' (bytes, or with K, M or G)", f->key);
	s = scalar(val);
	len = strlen(s);
	if (len > 1 && strchr("KMG", s[len - 1])) {
		mult = s[len - 1] == 'K' ? 1ull << 10 : s[len - 1] == 'M' ? 1ull << 20 : 1ull << 30;
		len--;
	}
	if (!parse_u64(s, len, &v) || v > (64ull << 30) / mult)
		return fail(l, val, "expected a size for '%s' (bytes, or with K, M or G)", f->key);
	v *= mult;
	if (v < (1ull << 20) || v % 4096)
		return fail(l, val, "'%s' must be at least 1M and a multiple of 4K", f->key);
	vm->memory = v;
	return 0;
}

static int parse_image(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_vm *vm = obj;
	const char *s;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	r = resolve(l, s, &vm->image);
	if (r == -ENOMEM)
		return oom(l);
	if (r == 0 && access(vm->image, R_OK) < 0)
		r = -errno;
	if (r < 0)
		return fail(l, val, "cannot read image '%s': %s", s, strerror(-r));
	return 0;
}

/* Keys that only some backends take, by their index in vm_fields. */
enum {
	VM_KEY_SCRIPTS = 3,
	VM_KEY_MEMORY = 5,
	VM_KEY_IMAGE,
	VM_KEY_EXIT_PORT,
	VM_KEY_POLLING,
};

static const struct {
	unsigned key;
	const char *name;
	uint32_t backends; /* bit per enum cfg_backend */
} backend_keys[] = {
	{ VM_KEY_MEMORY, "memory", 1u << CFG_BACKEND_KVM | 1u << CFG_BACKEND_ACRN },
	{ VM_KEY_IMAGE, "image", 1u << CFG_BACKEND_KVM },
	{ VM_KEY_EXIT_PORT, "exit_port", 1u << CFG_BACKEND_KVM },
	{ VM_KEY_POLLING, "completion_polling", 1u << CFG_BACKEND_ACRN },
};

static int check_backend_keys(struct loader *l, yaml_node_t *map, struct cfg_vm *vm, uint32_t seen)
{
	for (size_t i = 0; i < ARRAY_SIZE(backend_keys); i++)
		if (seen & (UINT32_C(1) << backend_keys[i].key) && !(backend_keys[i].backends & 1u << vm->backend))
			return fail(l, map, "'%s' is not valid with backend %s", backend_keys[i].name,
				    backend_names[vm->backend]);
	if (vm->backend == CFG_BACKEND_KVM && !vm->image)
		return fail(l, map, "missing required key 'image' in vm (backend kvm)");
	return 0;
}

static const struct field vm_fields[] = {
	{ .key = "name", .parse = parse_vm_name, .required = true },
	{ .key = "backend", .parse = parse_backend, .required = true },
	{ .key = "vcpus",
	  .parse = parse_u32,
	  .required = true,
	  .off = offsetof(struct cfg_vm, vcpus),
	  .min = 1,
	  .max = CFG_MAX_VCPUS },
	{ .key = "scripts", .parse = parse_scripts },
	{ .key = "devices", .parse = parse_devices },
	{ .key = "memory", .parse = parse_memory },
	{ .key = "image", .parse = parse_image },
	{ .key = "exit_port", .parse = parse_u32, .off = offsetof(struct cfg_vm, exit_port), .max = CFG_PIO_MAX },
	{ .key = "completion_polling", .parse = parse_bool, .off = offsetof(struct cfg_vm, completion_polling) },
	{ .key = "autostart", .parse = parse_bool, .off = offsetof(struct cfg_vm, autostart) },
};

static const struct schema vm_schema = SCHEMA("vm", vm_fields);

static int parse_vms(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg *c = obj;
	size_t i, n;
	int r;

	r = get_seq(l, val, f->key, &n);
	if (r < 0)
		return r;
	if (!n)
		return fail(l, val, "'vms' must not be empty");
	c->vms = calloc(n, sizeof(*c->vms));
	if (!c->vms)
		return oom(l);
	c->n_vms = n;
	for (i = 0; i < n; i++) {
		yaml_node_t *e = seq_item(l, val, i);
		struct cfg_vm *vm = &c->vms[i];

		uint32_t seen;

		vm->mark = node_mark(e);
		vm->exit_port = CFG_DEFAULT_EXIT_PORT;
		vm->memory = CFG_DEFAULT_MEMORY;
		vm->autostart = true;
		l->vm = vm;
		l->scripts = NULL;
		r = walk_map(l, e, &vm_schema, vm, &seen);
		if (r < 0)
			return r;
		r = check_backend_keys(l, e, vm, seen);
		if (r < 0)
			return r;
		r = load_scripts(l, vm);
		if (r < 0)
			return r;
	}
	l->vm = NULL;
	return 0;
}

/* ---- the file ---- */

static const struct field top_fields[] = {
	{ .key = "broker", .parse = parse_broker },
	{ .key = "vms", .parse = parse_vms, .required = true },
};

static const struct schema top_schema = SCHEMA("top level", top_fields);

static int yaml_failed(struct loader *l, const yaml_parser_t *p)
{
	struct cfg_mark m = { (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1 };
	const char *problem = p->problem ? p->problem : "invalid YAML";

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		return oom(l);
	case YAML_READER_ERROR:
		/* the reader knows a byte offset, not a line */
		return fail_file(l, -EINVAL, "%s at byte %zu", problem, p->problem_offset);
	default:
		if (p->context)
			return fail_at(l, m, "%s (%s at %d:%d)", problem, p->context, (int)p->context_mark.line + 1,
				       (int)p->context_mark.column + 1);
		return fail_at(l, m, "%s", problem);
	}
}

/* Reads the one document of the file into l->doc, which the caller deletes
 * on success only. A second document is an error rather than ignored: it
 * would be configuration that silently does nothing. */
static int load_document(struct loader *l, FILE *f)
{
	yaml_document_t extra;
	yaml_parser_t p;
	yaml_node_t *root;
	int r = 0;

	if (!yaml_parser_initialize(&p))
		return oom(l);
	yaml_parser_set_input_file(&p, f);
	/* on failure, libyaml leaves nothing to delete */
	if (!yaml_parser_load(&p, &l->doc)) {
		r = yaml_failed(l, &p);
		goto out_parser;
	}
	if (!yaml_document_get_root_node(&l->doc)) {
		r = fail_file(l, -EINVAL, "empty configuration");
		goto out_doc;
	}
	if (!yaml_parser_load(&p, &extra)) {
		r = yaml_failed(l, &p);
		goto out_doc;
	}
	root = yaml_document_get_root_node(&extra);
	if (root)
		r = fail(l, root, "only one YAML document is allowed");
	yaml_document_delete(&extra);
	if (r < 0)
		goto out_doc;
	yaml_parser_delete(&p);
	return 0;
out_doc:
	yaml_document_delete(&l->doc);
out_parser:
	yaml_parser_delete(&p);
	return r;
}

static int config_dir(struct loader *l)
{
	char *copy = strdup(l->path);
	int r = 0;

	if (!copy)
		return oom(l);
	l->dir = realpath(dirname(copy), NULL);
	if (!l->dir)
		r = errno == ENOMEM ? oom(l) : fail_file(l, -errno, "cannot resolve directory: %s", strerror(errno));
	free(copy);
	return r;
}

static void apply_defaults(struct cfg *c)
{
	size_t i, j;

	for (i = 0; i < c->n_vms; i++)
		for (j = 0; j < c->vms[i].n_devices; j++)
			if (!c->vms[i].devices[j].deadline_ms)
				c->vms[i].devices[j].deadline_ms = c->deadline_ms;
}

int cfg_load(const char *path, const char *bindir, struct cfg **ret, char *err, size_t errlen)
{
	struct loader l = { .path = path, .bindir = bindir, .err = err, .errlen = errlen };
	struct stat st;
	FILE *f;
	int r;

	*ret = NULL;
	if (err && errlen)
		err[0] = '\0';
	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		return fail_file(&l, r, "%s", strerror(-r));
	}
	/* fopen takes a directory, and libyaml would call it an input error */
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		r = fail_file(&l, -EISDIR, "%s", strerror(EISDIR));
		goto out_file;
	}
	r = load_document(&l, f);
	if (r < 0)
		goto out_file;
	r = config_dir(&l);
	if (r < 0)
		goto out;
	l.cfg = calloc(1, sizeof(*l.cfg));
	if (!l.cfg || !(l.cfg->path = strdup(path))) {
		r = oom(&l);
		goto out;
	}
	l.cfg->deadline_ms = CFG_DEFAULT_DEADLINE_MS;
	r = walk_map(&l, yaml_document_get_root_node(&l.doc), &top_schema, l.cfg, NULL);
	if (r < 0)
		goto out;
	apply_defaults(l.cfg);
	*ret = l.cfg;
	l.cfg = NULL;
out:
	cfg_free(l.cfg);
	free(l.dir);
	yaml_document_delete(&l.doc);
out_file:
	fclose(f);
	return r;
}

static void device_free(struct cfg_device *d)
{
	char **a;

	free(d->name);
	free(d->program);
	for (a = d->args; a && *a; a++)
		free(*a);
	free(d->args);
	free(d->pio);
	free(d->mmio);
	free(d->pci);
	free(d->irqs);
	free(d->win_pio);
	free(d->win_mmio);
	free(d->output_file);
}

static void vm_free(struct cfg_vm *vm)
{
	size_t i;

	free(vm->name);
	for (i = 0; vm->scripts && i < vm->vcpus; i++)
		free(vm->scripts[i]);
	free(vm->scripts);
	free(vm->image);
	for (i = 0; i < vm->n_devices; i++)
		device_free(&vm->devices[i]);
	free(vm->devices);
}

struct cfg *cfg_free(struct cfg *c)
{
	size_t i;

	if (!c)
		return NULL;
	for (i = 0; i < c->n_vms; i++)
		vm_free(&c->vms[i]);
	free(c->vms);
	free(c->runtime_dir);
	free(c->control_socket);
	free(c->control_group);
	free(c->path);
	free(c);
	return NULL;
}

const char *cfg_backend_name(enum cfg_backend b)
{
	if ((size_t)b >= ARRAY_SIZE(backend_names) || !backend_names[b])
		return "unknown";
	return backend_names[b];
}

/* ---- comparing (reload) ---- */

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool ranges_eq(const struct cfg_range *a, size_t na, const struct cfg_range *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].start != b[i].start || a[i].end != b[i].end)
			return false;
	return true;
}

static bool device_eq(const struct cfg_device *a, const struct cfg_device *b)
{
	size_t i;

	if (!str_eq(a->name, b->name) || !str_eq(a->program, b->program) || a->msi != b->msi ||
	    a->deadline_ms != b->deadline_ms || a->sandbox != b->sandbox || a->output_stdout != b->output_stdout ||
	    a->on_failure != b->on_failure || a->restart_limit != b->restart_limit ||
	    a->restart_window_ms != b->restart_window_ms || a->max_inflight != b->max_inflight ||
	    a->max_msg_rate != b->max_msg_rate ||
	    !str_eq(a->output_file, b->output_file) || a->input_stdin != b->input_stdin || a->n_irqs != b->n_irqs)
		return false;
	for (i = 0; a->args[i] && b->args[i]; i++)
		if (strcmp(a->args[i], b->args[i]))
			return false;
	if (a->args[i] || b->args[i])
		return false;
	if (a->n_irqs && memcmp(a->irqs, b->irqs, a->n_irqs * sizeof(*a->irqs)))
		return false;
	return ranges_eq(a->pio, a->n_pio, b->pio, b->n_pio) && ranges_eq(a->mmio, a->n_mmio, b->mmio, b->n_mmio) &&
	       ranges_eq(a->pci, a->n_pci, b->pci, b->n_pci) &&
	       ranges_eq(a->win_pio, a->n_win_pio, b->win_pio, b->n_win_pio) &&
	       ranges_eq(a->win_mmio, a->n_win_mmio, b->win_mmio, b->n_win_mmio);
}

__attribute__((format(printf, 3, 4))) static bool differs(char *what, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (what && len) {
		va_start(ap, fmt);
		vsnprintf(what, len, fmt, ap);
		va_end(ap);
	}
	return false;
}

bool cfg_vm_equal(const struct cfg_vm *a, const struct cfg_vm *b, char *what, size_t len)
{
	if (a->backend != b->backend)
		return differs(what, len, "%s", "backend");
	if (a->vcpus != b->vcpus)
		return differs(what, len, "%s", "vcpus");
	for (unsigned i = 0; a->scripts && i < a->vcpus; i++)
		if (!str_eq(a->scripts[i], b->scripts[i]))
			return differs(what, len, "%s", "scripts");
	if (a->memory != b->memory || !str_eq(a->image, b->image) || a->exit_port != b->exit_port ||
	    a->completion_polling != b->completion_polling)
		return differs(what, len, "%s", "backend settings");
	if (a->autostart != b->autostart)
		return differs(what, len, "%s", "autostart");
	for (size_t i = 0; i < a->n_devices; i++) {
		const struct cfg_device *d = NULL;

		for (size_t j = 0; j < b->n_devices; j++)
			if (!strcmp(a->devices[i].name, b->devices[j].name))
				d = &b->devices[j];
		if (!d)
			return differs(what, len, "device '%s' removed", a->devices[i].name);
		if (!device_eq(&a->devices[i], d))
			return differs(what, len, "device '%s' changed", a->devices[i].name);
	}
	if (a->n_devices != b->n_devices)
		return differs(what, len, "%s", "devices added");
	return true;
}
