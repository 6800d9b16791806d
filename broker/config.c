/* The broker's configuration: one YAML file, loaded strictly.
 *
 * The schema is the field tables near the end of this file, one per mapping
 * (top level, broker, vm, device, windows, range). A row is all there is to
 * know about a key: its parser and where the value goes, the backends that
 * take it, whether it is required, its range and default, and its line in the
 * reference. The code around them is generic: set_defaults() applies the
 * defaults, walk_map() the rules on keys, free_obj() and first_difference()
 * free and compare (reload), and cfg_print_reference() prints the reference
 * that README.md carries (test_config fails when the two differ).
 *
 * Errors are "FILE:LINE:COLUMN: message": a bad value is reported at the value,
 * an unknown or duplicate key at the key, a missing key, or one the VM's
 * backend does not take, at the mapping that lacks or has it. The first error
 * in document order wins and nothing is returned; cfg_check goes on past an
 * error to the next key or element (not into checks of the mapping as a
 * whole, which a bad key would only confuse) and reports every one. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml.h>

#include "ioreq_ring.h"
#include "suggest.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define NAME_LEN_MAX 31
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
#define DEADLINE_MS_MAX 600000
#define PIO_MAX 0xffffu
#define ID_MAX 0xfffffffeu /* (uid_t)-1 means "unchanged" to setresuid and chown */
#define KEYS_MAX 32        /* keys of one mapping: walk_map's bookkeeping */
#define ALL 0xff           /* every backend */
#define BACKEND(b) (1u << CFG_BACKEND_##b)
#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GIB (1ull << 30)

struct list;

#define CFG_MAX_SOCKETS 256

struct loader {
	const char *path;   /* as given, for messages */
	char *dir;          /* resolved directory of the file */
	const char *bindir; /* may be NULL */
	char *err;
	size_t errlen;
	/* cfg_check: every error goes to report (the first max of them) and the
	 * loader goes on with the next key or element; else the first one wins. */
	cfg_report_fn *report;
	void *report_opaque;
	size_t max_reports, n_errors;
	yaml_document_t doc;
	/* The sequence whose element is being read: names are unique in it, and
	 * a device's ranges must not overlap its elder siblings'. */
	const struct list *list;
	char *elems;
	/* Every `vhost_user:` socket so far, in any VM: one device each. */
	struct seen_socket {
		char *path;
		struct cfg_mark mark;
	} sockets[CFG_MAX_SOCKETS];
	size_t n_sockets;
};

struct field;
typedef int parse_fn(struct loader *l, const struct field *f, yaml_node_t *val, void *obj);

/* How a stored value is freed and compared. */
enum kind {
	K_NUM,     /* .size bytes at .off, compared as they are */
	K_STR,     /* char * */
	K_STRV,    /* NULL-terminated char ** */
	K_ARRAY,   /* array at .off of .stride-byte elements, compared on their first .size bytes;
		    * its length (size_t) at .n_off */
	K_SCRIPTS, /* struct cfg_vm's char *[vcpus] */
	K_OUTPUT,  /* struct cfg_device's output_file (at .off) and output_stdout */
	K_MAP,     /* a nested mapping stored in the same object; .arg is its schema */
	K_LIST,    /* a sequence of mappings, like K_ARRAY; .arg is its struct list */
};

enum unit { U_NUM, U_HEX, U_SIZE, U_PERCENT };

/* One key of a mapping. */
struct field {
	const char *key;
	parse_fn *parse;
	enum kind kind;
	size_t off, size, n_off, stride;
	uint64_t min, max, def, align; /* numbers; lists: .min is the least length */
	enum unit unit;
	const void *arg;                /* the parser's */
	uint8_t backends;               /* vm keys: the backends that take it; 0: all */
	uint8_t required;               /* the backends that need it; ALL: every one */
	bool late;                      /* parsed after the other keys, and also when absent */
	const char *value, *dflt, *doc; /* the reference's columns, where not derived */
};

struct schema {
	const char *what;  /* "unknown key 'x' in <what>" */
	const char *title; /* its heading in the reference */
	const struct field *fields;
	size_t n;
	uint8_t (*backend)(const void *obj); /* the bit of a read object's backend */
	int (*finish)(struct loader *l, yaml_node_t *map, void *obj);
};

/* Also a compile-time check that walk_map can keep track of every key. */
#define SCHEMA(f) .fields = (f), .n = ARRAY_SIZE(f) + 0 * sizeof(char[ARRAY_SIZE(f) <= KEYS_MAX ? 1 : -1])

struct list {
	const struct schema *schema;
	size_t size, mark_off; /* of an element, and where its struct cfg_mark is */
	const char *what;      /* "duplicate <what> name" */
	/* An element may also be a plain scalar: the value of this key. */
	const struct field *scalar;
	/* Compared element by element, in order (else by the caller). */
	bool ordered;
};

struct names {
	const char *const *v; /* by value; NULL: not a valid spelling */
	size_t n;
};

/* A kind of address range a device claims. */
struct range_kind {
	const char *name;
	uint64_t max;
	bool bdf;       /* PCI functions */
	bool exclusive; /* may not overlap another range of the VM */
};

static const char *const backend_v[] = {
	[CFG_BACKEND_SIM] = "sim",
	[CFG_BACKEND_KVM] = "kvm",
	[CFG_BACKEND_ACRN] = "acrn",
};

static const char *backend_of_mask(unsigned mask)
{
	return cfg_backend_name((enum cfg_backend)__builtin_ctz(mask));
}

/* ---- errors ---- */

static struct cfg_mark node_mark(const yaml_node_t *n)
{
	return (struct cfg_mark){ .line = (int)n->start_mark.line + 1, .col = (int)n->start_mark.column + 1 };
}

__attribute__((format(printf, 3, 0))) static void verr(struct loader *l, const struct cfg_mark *m, const char *fmt,
							va_list ap)
{
	char line[1024], *err = l->err;
	size_t len = l->errlen;
	int n;

	if (l->report) {
		err = line;
		len = sizeof(line);
		if (++l->n_errors > l->max_reports)
			return;
	}
	if (!err || !len)
		return;
	if (m)
		n = snprintf(err, len, "%s:%d:%d: ", l->path, m->line, m->col);
	else
		n = snprintf(err, len, "%s: ", l->path);
	if (n >= 0 && (size_t)n < len)
		vsnprintf(err + n, len - n, fmt, ap);
	if (l->report)
		l->report(l->report_opaque, line);
}

/* After error @r: whether to stop here. Only cfg_check goes on (to the next
 * key or element), and never without memory; *first keeps the first error. */
static bool stop_at(struct loader *l, int r, int *first)
{
	if (!*first)
		*first = r;
	return !l->report || r == -ENOMEM;
}

__attribute__((format(printf, 3, 4))) static int fail_at(struct loader *l, struct cfg_mark m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(l, &m, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

#define fail(l, n, ...) fail_at(l, node_mark(n), __VA_ARGS__)

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

/* ---- nodes and plain values ---- */

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

	if (n->type != YAML_SCALAR_NODE)
		return false;
	if (n->tag && !strcmp((const char *)n->tag, YAML_NULL_TAG))
		return true;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(spellings); i++)
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

static void *at(const void *obj, size_t off)
{
	return (char *)obj + off;
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
		else if (base == 16 && isxdigit((unsigned char)s[i]))
			d = (s[i] | 0x20) - 'a' + 10;
		else
			return false;
		if (v > (UINT64_MAX - d) / base)
			return false;
		v = v * base + d;
	}
	*ret = v;
	return true;
}

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

/* "START+N" (*is_size) or "START..END". */
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

/* "a, b or c"; NULL entries are skipped. */
static void join_names(char *buf, size_t len, const struct names *nm)
{
	size_t total = 0, k = 0, used = 0;

	for (size_t i = 0; i < nm->n; i++)
		total += nm->v[i] != NULL;
	buf[0] = '\0';
	for (size_t i = 0; i < nm->n && used < len; i++) {
		if (!nm->v[i])
			continue;
		used += snprintf(buf + used, len - used, "%s%s", !k ? "" : k == total - 1 ? " or " : ", ", nm->v[i]);
		k++;
	}
}

/* ---- numbers ---- */

static int parse_ids(struct loader *l, const struct field *f, yaml_node_t *val, void *obj);

static void store(const struct field *f, void *obj, uint64_t v)
{
	void *p = at(obj, f->off);

	if (f->parse == parse_ids) { /* a pair of uint32_t: first << 32 | count */
		((struct cfg *)obj)->device_id_first = (uint32_t)(v >> 32);
		((struct cfg *)obj)->device_id_count = (uint32_t)v;
	} else if (f->size == sizeof(bool)) {
		*(bool *)p = v;
	} else if (f->size == sizeof(uint32_t)) { /* also the enums */
		*(uint32_t *)p = (uint32_t)v;
	} else {
		*(uint64_t *)p = v;
	}
}

static void format_num(char *buf, size_t len, const struct field *f, uint64_t v)
{
	static const char suffix[] = "GMK";

	for (int i = 0; f->unit == U_SIZE && v && i < 3; i++) {
		unsigned shift = 30 - 10 * i;

		if (!(v & ((1ull << shift) - 1))) {
			snprintf(buf, len, "%" PRIu64 "%c", v >> shift, suffix[i]);
			return;
		}
	}
	if (f->unit == U_HEX)
		snprintf(buf, len, "0x%" PRIx64, v);
	else
		snprintf(buf, len, "%" PRIu64 "%s", v, f->unit == U_PERCENT ? "%" : "");
}

static const char *const unit_text[] = {
	[U_NUM] = "an unsigned integer",
	[U_HEX] = "an unsigned integer",
	[U_SIZE] = "a size (bytes, or with K, M or G)",
	[U_PERCENT] = "a percentage (N% or N)",
};

/* A number in @f's unit and range. */
static int get_number(struct loader *l, const struct field *f, const yaml_node_t *n, uint64_t *ret)
{
	static const char suffix[] = "KMG";
	const char *s, *p;
	uint64_t v, mult = 1;
	size_t len;

	if (!is_string(n))
		goto bad;
	s = scalar(n);
	len = n->data.scalar.length;
	if (f->unit == U_SIZE && len > 1 && (p = memchr(suffix, s[len - 1], 3))) {
		mult = 1ull << (10 * (p - suffix + 1));
		len--;
	} else if (f->unit == U_PERCENT && len > 1 && s[len - 1] == '%') {
		len--;
	}
	if (!parse_u64(s, len, &v) || v > UINT64_MAX / mult)
		goto bad;
	v *= mult;
	if (v < f->min || v > f->max || (f->align && v % f->align)) {
		char lo[32], hi[32], al[32];

		format_num(lo, sizeof(lo), f, f->min);
		format_num(hi, sizeof(hi), f, f->max);
		format_num(al, sizeof(al), f, f->align);
		if (f->align)
			return fail(l, n, "'%s' must be a multiple of %s between %s and %s", f->key, al, lo, hi);
		return fail(l, n, "'%s' must be between %s and %s", f->key, lo, hi);
	}
	*ret = v;
	return 0;
bad:
	return fail(l, n, "expected %s for '%s'", unit_text[f->unit], f->key);
}

static int parse_uint(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	uint64_t v;
	int r = get_number(l, f, val, &v);

	if (r == 0)
		store(f, obj, v);
	return r;
}

static int parse_bool(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	if (!is_string(val) || (strcmp(scalar(val), "true") && strcmp(scalar(val), "false")))
		return fail(l, val, "expected a boolean (true or false) for '%s'", f->key);
	store(f, obj, scalar(val)[0] == 't');
	return 0;
}

/* One of the spellings in @f->arg, stored as its index. */
static int parse_enum(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	const struct names *nm = f->arg;
	const char *s;
	char list[64];
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nm->n; i++) {
		if (nm->v[i] && !strcmp(nm->v[i], s)) {
			store(f, obj, i);
			return 0;
		}
	}
	join_names(list, sizeof(list), nm);
	return fail(l, val, "unknown %s '%s' (expected %s)", f->key, s, list);
}

/* ---- strings and files ---- */

static int store_string(struct loader *l, const struct field *f, void *obj, const char *s)
{
	char **dst = at(obj, f->off);

	*dst = strdup(s);
	return *dst ? 0 : oom(l);
}

static int parse_str(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	const char *s;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	if (!*s)
		return fail(l, val, "'%s' must not be empty", f->key);
	return store_string(l, f, obj, s);
}

static int parse_path(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	const char *s;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	if (s[0] != '/')
		return fail(l, val, "'%s' must be an absolute path", f->key);
	return store_string(l, f, obj, s);
}

/* Unique among the elements of the sequence being read. */
static int parse_name(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	const char *s;
	size_t n;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	n = strspn(s, NAME_CHARS);
	if (n == 0 || n > NAME_LEN_MAX || s[n])
		return fail(l, val, "invalid name '%s' (1 to %d characters from A-Z a-z 0-9 _ . -)", s, NAME_LEN_MAX);
	for (char *e = l->elems; e < (char *)obj; e += l->list->size) {
		const struct cfg_mark *m = at(e, l->list->mark_off);

		const char *elder = *(char **)at(e, f->off);

		if (elder && !strcmp(elder, s)) /* NULL: its name was wrong (cfg_check goes on) */
			return fail(l, val, "duplicate %s name '%s' (first at %d:%d)", l->list->what, s, m->line,
				    m->col);
	}
	return store_string(l, f, obj, s);
}

/* Resolves @p, relative to the configuration's directory unless absolute. */
/* @p as written, relative to this file unless absolute: a new string, or
 * NULL without memory. */
static char *relative_to_file(const struct loader *l, const char *p)
{
	char *joined;

	if (p[0] == '/')
		return strdup(p);
	return asprintf(&joined, "%s/%s", l->dir, p) < 0 ? NULL : joined;
}

static int resolve(struct loader *l, const char *p, char **ret)
{
	char *joined = relative_to_file(l, p);
	int r = 0;

	if (!joined)
		return -ENOMEM;
	*ret = realpath(joined, NULL);
	if (!*ret)
		r = -errno;
	free(joined);
	return r;
}

/* A readable regular file named by @n, resolved into *@ret. */
static int load_file(struct loader *l, const char *what, const yaml_node_t *n, char **ret)
{
	const char *s = scalar(n);
	struct stat st;
	int r;

	r = resolve(l, s, ret);
	if (r == -ENOMEM)
		return oom(l);
	if (r == 0 && (stat(*ret, &st) < 0 || access(*ret, R_OK) < 0))
		r = -errno;
	if (r < 0)
		return fail(l, n, "cannot read %s '%s': %s", what, s, strerror(-r));
	if (!S_ISREG(st.st_mode))
		return fail(l, n, "%s '%s' is not a regular file", what, s);
	return 0;
}

static int parse_image(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	const char *s;
	int r;

	r = get_string(l, val, f->key, &s);
	return r < 0 ? r : load_file(l, "image", val, at(obj, f->off));
}

/* Late: needs backend and vcpus. sim always gets one entry per vCPU, idle
 * (NULL) unless a script is given. */
static int parse_scripts(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	struct cfg_vm *vm = obj;
	size_t n;
	int r;

	if (vm->backend != CFG_BACKEND_SIM)
		return 0;
	vm->scripts = calloc(vm->vcpus, sizeof(*vm->scripts));
	if (!vm->scripts)
		return oom(l);
	if (!val)
		return 0;
	r = get_seq(l, val, f->key, &n);
	if (r < 0)
		return r;
	if (n != vm->vcpus)
		return fail(l, val, "expected %u scripts (one per vCPU), got %zu", vm->vcpus, n);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = seq_item(l, val, i);

		if (is_null(e))
			continue;
		if (!is_string(e))
			return fail(l, e, "expected a script path or null");
		r = load_file(l, "script", e, &vm->scripts[i]);
		if (r < 0)
			return r;
	}
	return 0;
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
	char *p;
	int r;

	if (asprintf(&p, "%.*s/%s", (int)dirlen, dir, name) < 0)
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

static int parse_program(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	char **dst = at(obj, f->off);
	const char *s;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	if (strchr(s, '/')) {
		char *p;

		r = resolve(l, s, &p);
		if (r == 0) {
			r = exec_file(p, dst);
			free(p);
		}
	} else {
		r = search_program(l, s, dst);
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
	char ***dst = at(obj, f->off);
	const char *s;
	size_t n;
	int r;

	r = get_seq(l, val, f->key, &n);
	if (r < 0)
		return r;
	*dst = calloc(n + 1, sizeof(**dst));
	if (!*dst)
		return oom(l);
	for (size_t i = 0; i < n; i++) {
		r = get_string(l, seq_item(l, val, i), f->key, &s);
		if (r < 0)
			return r;
		(*dst)[i] = strdup(s);
		if (!(*dst)[i])
			return oom(l);
	}
	return 0;
}

/* "output: stdout" (the broker's) or a file, created if needed, relative to this file. */
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
	dev->output_file = relative_to_file(l, s);
	return dev->output_file ? 0 : oom(l);
}

/* A file the broker opens at each instance start, not now: it need not
 * exist yet. Relative to this file. */
static int parse_data_file(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	char **dst = at(obj, f->off);
	const char *s;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	if (!*s)
		return fail(l, val, "'%s' must not be empty", f->key);
	*dst = relative_to_file(l, s);
	return *dst ? 0 : oom(l);
}

/* `vhost_user:`: a socket path, relative to this file, that fits a
 * sockaddr_un once joined. */
static int parse_vhost_user(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	char **dst = at(obj, f->off);
	int r = parse_data_file(l, f, val, obj);

	if (r < 0)
		return r;
	if (strlen(*dst) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
		return fail(l, val, "'%s': %s is longer than a socket path may be (107 bytes)", f->key, *dst);
	/* Two devices on one socket: the second's start would take it from the first. */
	for (size_t i = 0; i < l->n_sockets; i++)
		if (!strcmp(l->sockets[i].path, *dst))
			return fail(l, val, "'%s': another device's socket already (at %d:%d)", f->key,
				    l->sockets[i].mark.line, l->sockets[i].mark.col);
	if (l->n_sockets == CFG_MAX_SOCKETS)
		return fail(l, val, "'%s': more than %d vhost-user sockets", f->key, CFG_MAX_SOCKETS);
	l->sockets[l->n_sockets++] = (struct seen_socket){ *dst, node_mark(val) };
	return 0;
}

/* `remote.fingerprint`: "sha256:" and 64 hex digits, pairs optionally
 * separated by colons (openssl x509 -fingerprint -sha256 prints them so);
 * stored as 64 lowercase hex digits. */
static int parse_fingerprint(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	char **dst = at(obj, f->off), hex[65];
	const char *s, *p;
	size_t n = 0;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	p = !strncasecmp(s, "sha256:", 7) ? s + 7 : s;
	for (; *p && n < 64; p++) {
		if (*p == ':' && n % 2 == 0 && n)
			continue;
		if (!isxdigit((unsigned char)*p))
			break;
		hex[n++] = (char)tolower((unsigned char)*p);
	}
	if (n != 64 || *p)
		return fail(l, val, "'%s' must be sha256: and the certificate's 32-byte SHA-256 in hex", f->key);
	hex[64] = '\0';
	*dst = strdup(hex);
	return *dst ? 0 : oom(l);
}

/* `remote.listen`: the address the broker listens on for the device's runner. */
static int parse_listen(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	const char *s, *port;
	int r;

	r = get_string(l, val, f->key, &s);
	if (r < 0)
		return r;
	if (strncmp(s, "tls+tcp://", 10) && strncmp(s, "tcp://", 6))
		return fail(l, val, "'%s' must be tls+tcp://ADDRESS:PORT (or tcp:// with insecure: true)", f->key);
	port = strrchr(s, ':');
	if (!port || port < strstr(s, "://") + 3 || !port[1] || strspn(port + 1, "0123456789") != strlen(port + 1) ||
	    atoi(port + 1) < 1 || atoi(port + 1) > 65535)
		return fail(l, val, "'%s' needs a port from 1 to 65535", f->key);
	return store_string(l, f, obj, s);
}

/* ---- device ids ---- */

/* The first user, then group, whose id is in @first..@last, named in @buf. */
static bool id_taken(uint32_t first, uint32_t last, char *buf, size_t len)
{
	struct passwd *pw;
	struct group *gr;
	bool taken = false;

	setpwent();
	while (!taken && (pw = getpwent()))
		if (pw->pw_uid >= first && pw->pw_uid <= last)
			taken = snprintf(buf, len, "user '%s' (uid %u)", pw->pw_name, (unsigned)pw->pw_uid) > 0;
	endpwent();
	setgrent();
	while (!taken && (gr = getgrent()))
		if (gr->gr_gid >= first && gr->gr_gid <= last)
			taken = snprintf(buf, len, "group '%s' (gid %u)", gr->gr_name, (unsigned)gr->gr_gid) > 0;
	endgrent();
	return taken;
}

/* Ids that must belong to nobody else: a device instance running as an
 * existing user could reach that user's files and processes. */
static int parse_ids(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	uint64_t start, n, end;
	bool is_count;
	char who[320];

	if (!is_string(val) || !parse_range_string(scalar(val), &start, &n, &is_count))
		return fail(l, val, "invalid '%s' range (expected %s)", f->key, f->value);
	if (is_count && !n)
		return fail(l, val, "empty '%s' range (count 0)", f->key);
	if (is_count ? start > ID_MAX || n - 1 > ID_MAX - start : n > ID_MAX)
		return fail(l, val, "'%s' must end at or below %u", f->key, ID_MAX);
	end = is_count ? start + n - 1 : n;
	if (end < start)
		return fail(l, val, "'%s' range end %" PRIu64 " is below its start %" PRIu64, f->key, end, start);
	if (start == 0)
		return fail(l, val, "'%s' must not contain 0 (root)", f->key);
	if (id_taken((uint32_t)start, (uint32_t)end, who, sizeof(who)))
		return fail(l, val, "'%s' %" PRIu64 "..%" PRIu64 " contains %s", f->key, start, end, who);
	store(f, obj, start << 32 | (end - start + 1));
	return 0;
}

/* ---- mappings and sequences ---- */

static void set_defaults(const struct schema *s, void *obj)
{
	for (const struct field *f = s->fields; f < s->fields + s->n; f++) {
		if (f->kind == K_MAP)
			set_defaults(f->arg, obj);
		else if (f->def)
			store(f, obj, f->def);
	}
}

/* "unknown key", with the schema's nearest key when it looks like a typo of it. */
static int unknown_key(struct loader *l, const yaml_node_t *k, const struct schema *s)
{
	struct suggest sg;

	suggest_init(&sg, scalar(k));
	for (size_t i = 0; i < s->n; i++)
		suggest_add(&sg, s->fields[i].key);
	if (suggest_best(&sg))
		return fail(l, k, "unknown key '%s' in %s (did you mean '%s'?)", scalar(k), s->what, suggest_best(&sg));
	return fail(l, k, "unknown key '%s' in %s", scalar(k), s->what);
}

/* Parses every key of @map in document order (late keys last), then checks
 * the keys against the object's backend and the required ones. @ret_seen
 * (optional) gets a bit per field. */
static int walk_map(struct loader *l, yaml_node_t *map, const struct schema *s, void *obj, uint32_t *ret_seen)
{
	yaml_node_t *vals[KEYS_MAX] = { 0 };
	const struct field *f;
	unsigned backend;
	uint32_t seen = 0;
	size_t i;
	int r, bad = 0;

	if (map->type != YAML_MAPPING_NODE)
		return fail(l, map, "expected a mapping for %s", s->what);
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(l, p->key), *v = node_at(l, p->value);

		if (!is_string(k)) {
			r = fail(l, k, "expected a string key in %s", s->what);
			if (stop_at(l, r, &bad))
				return r;
			continue;
		}
		for (i = 0; i < s->n && strcmp(scalar(k), s->fields[i].key); i++)
			;
		if (i == s->n || vals[i]) {
			r = i == s->n ? unknown_key(l, k, s) : fail(l, k, "duplicate key '%s'", scalar(k));
			if (stop_at(l, r, &bad))
				return r;
			continue;
		}
		vals[i] = v;
		seen |= UINT32_C(1) << i;
		if (!s->fields[i].late && (r = s->fields[i].parse(l, &s->fields[i], v, obj)) < 0 && stop_at(l, r, &bad))
			return r;
	}
	/* What follows judges the keys together: not on a half-read mapping. */
	if (bad)
		return bad;
	backend = s->backend ? s->backend(obj) : ALL;
	for (i = 0, f = s->fields; i < s->n; i++, f++) {
		r = 0;
		if (vals[i] && f->backends && !(f->backends & backend))
			r = fail(l, f->late ? vals[i] : map, "'%s' is not valid with backend %s", f->key,
				 backend_of_mask(backend));
		else if (!vals[i] && f->required == ALL)
			r = fail(l, map, "missing required key '%s' in %s", f->key, s->what);
		else if (!vals[i] && (f->required & backend))
			r = fail(l, map, "missing required key '%s' in %s (backend %s)", f->key, s->what,
				 backend_of_mask(backend));
		if (r < 0 && stop_at(l, r, &bad))
			return r;
	}
	if (bad)
		return bad;
	for (i = 0, f = s->fields; i < s->n; i++, f++)
		if (f->late && (r = f->parse(l, f, vals[i], obj)) < 0 && stop_at(l, r, &bad))
			return r;
	if (bad)
		return bad;
	if (ret_seen)
		*ret_seen = seen;
	return s->finish ? s->finish(l, map, obj) : 0;
}

static int parse_map(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	return walk_map(l, val, f->arg, obj, NULL);
}

/* A sequence of mappings into an array at f->off, its length at f->n_off. */
static int parse_list(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	const struct list *li = f->arg, *saved_list = l->list;
	char *saved_elems = l->elems, *arr;
	size_t n;
	int r, bad = 0;

	r = get_seq(l, val, f->key, &n);
	if (r < 0)
		return r;
	if (n < f->min)
		return fail(l, val, "'%s' must not be empty", f->key);
	if (f->max && n > f->max)
		return fail(l, val, "'%s' has %zu entries, more than %" PRIu64, f->key, n, f->max);
	arr = calloc(n ? n : 1, li->size);
	if (!arr)
		return oom(l);
	*(void **)at(obj, f->off) = arr;
	*(size_t *)at(obj, f->n_off) = n;
	l->list = li;
	l->elems = arr;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = seq_item(l, val, i);
		char *elem = arr + i * li->size;

		*(struct cfg_mark *)at(elem, li->mark_off) = node_mark(e);
		set_defaults(li->schema, elem);
		if (li->scalar && e->type == YAML_SCALAR_NODE)
			r = li->scalar->parse(l, li->scalar, e, elem);
		else
			r = walk_map(l, e, li->schema, elem, NULL);
		if (r < 0 && stop_at(l, r, &bad))
			break;
	}
	l->list = saved_list;
	l->elems = saved_elems;
	return bad;
}

/* A sequence of scalars into an array of f->stride-byte elements at f->off,
 * its length at f->n_off, @item parsing each. */
static int parse_array(struct loader *l, const struct field *f, yaml_node_t *val, void *obj,
		       int (*item)(struct loader *l, const struct field *f, yaml_node_t *n, char *arr, size_t i))
{
	size_t n, *count = at(obj, f->n_off);
	char **arr = at(obj, f->off);
	int r;

	r = get_seq(l, val, f->key, &n);
	if (r < 0)
		return r;
	*arr = calloc(n ? n : 1, f->stride);
	if (!*arr)
		return oom(l);
	for (size_t i = 0; i < n; i++) {
		r = item(l, f, seq_item(l, val, i), *arr, i);
		if (r < 0)
			return r;
		*count = i + 1;
	}
	return 0;
}

static int irq_item(struct loader *l, const struct field *f, yaml_node_t *n, char *arr, size_t i)
{
	uint32_t *irqs = (uint32_t *)arr;
	uint64_t v;
	int r;

	r = get_number(l, f, n, &v);
	if (r < 0)
		return r;
	for (size_t j = 0; j < i; j++)
		if (irqs[j] == v)
			return fail(l, n, "duplicate irq %" PRIu64, v);
	irqs[i] = (uint32_t)v;
	return 0;
}

static int parse_irqs(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	return parse_array(l, f, val, obj, irq_item);
}

/* ---- ranges ---- */

struct range_spec {
	uint64_t start, size, end;
};

#define RANGE_FORMS "START+SIZE, START..END or {start, size|end}"
#define U64(m) .parse = parse_uint, .kind = K_NUM, .off = offsetof(struct range_spec, m), .size = 8, .max = UINT64_MAX

static const struct field range_fields[] = {
	{ "start", U64(start), .required = ALL },
	{ "size", U64(size) },
	{ "end", U64(end) },
};
#define RANGE_SIZE_BIT (UINT32_C(1) << 1)
#define RANGE_END_BIT (UINT32_C(1) << 2)

static const struct schema range_schema = { "range", NULL, SCHEMA(range_fields) };

static int parse_range(struct loader *l, const struct range_kind *k, yaml_node_t *n, struct cfg_range *ret)
{
	uint64_t start, v, end;
	bool is_size;

	if (n->type == YAML_MAPPING_NODE) {
		struct range_spec rs = { 0 };
		uint32_t seen;
		int r;

		r = walk_map(l, n, &range_schema, &rs, &seen);
		if (r < 0)
			return r;
		if (!(seen & RANGE_SIZE_BIT) == !(seen & RANGE_END_BIT))
			return fail(l, n, "a range needs exactly one of 'size' and 'end'");
		is_size = seen & RANGE_SIZE_BIT;
		start = rs.start;
		v = is_size ? rs.size : rs.end;
	} else if (!is_string(n)) {
		return fail(l, n, "expected a %s range (" RANGE_FORMS ")", k->name);
	} else if (!parse_range_string(scalar(n), &start, &v, &is_size)) {
		return fail(l, n, "invalid %s range '%s' (expected " RANGE_FORMS ")", k->name, scalar(n));
	}
	if (is_size && !v)
		return fail(l, n, "empty %s range (size 0)", k->name);
	if (is_size && v - 1 > UINT64_MAX - start)
		return fail(l, n, "%s range 0x%" PRIx64 "+0x%" PRIx64 " wraps around", k->name, start, v);
	end = is_size ? start + (v - 1) : v;
	if (end < start)
		return fail(l, n, "%s range end 0x%" PRIx64 " is below its start 0x%" PRIx64, k->name, end, start);
	if (end > k->max)
		return fail(l, n, "%s range 0x%" PRIx64 "..0x%" PRIx64 " goes beyond 0x%" PRIx64, k->name, start, end,
			    k->max);
	*ret = (struct cfg_range){ .start = start, .end = end, .mark = node_mark(n) };
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

static int range_item(struct loader *l, const struct field *f, yaml_node_t *n, char *arr, size_t i)
{
	const struct range_kind *k = f->arg;
	struct cfg_range *r = (struct cfg_range *)arr + i;

	return k->bdf ? parse_bdf(l, n, r) : parse_range(l, k, n, r);
}

static int parse_ranges(struct loader *l, const struct field *f, yaml_node_t *val, void *obj)
{
	return parse_array(l, f, val, obj, range_item);
}

static void format_range(char *buf, size_t len, const struct range_kind *k, const struct cfg_range *r)
{
	if (k->bdf)
		snprintf(buf, len, "%02x:%02x.%x", (unsigned)(r->start >> 8), (unsigned)(r->start >> 3) & 0x1f,
			 (unsigned)r->start & 7);
	else
		snprintf(buf, len, "0x%" PRIx64 "..0x%" PRIx64, r->start, r->end);
}

/* @r of @dev against the ranges of the same field declared before it, in
 * this device and its elder siblings. Quadratic: configurations are small,
 * and "first in document order" is what the operator wants to read. */
static int check_overlap(struct loader *l, const struct field *f, const struct cfg_device *dev,
			 const struct cfg_range *r)
{
	const struct range_kind *k = f->arg;
	char a[48], b[48];

	for (const struct cfg_device *d = (const void *)l->elems; d <= dev; d++) {
		const struct cfg_range *v = *(struct cfg_range **)at(d, f->off);
		size_t n = *(size_t *)at(d, f->n_off);

		for (size_t i = 0; i < n && &v[i] != r; i++) {
			if (v[i].start > r->end || r->start > v[i].end)
				continue;
			format_range(a, sizeof(a), k, r);
			format_range(b, sizeof(b), k, &v[i]);
			if (!d->name) /* its name was wrong (cfg_check goes on) */
				continue;
			if (k->bdf)
				return fail_at(l, r->mark, "duplicate PCI address %s of device '%s' (already claimed by "
					       "device '%s')", a, dev->name, d->name);
			return fail_at(l, r->mark, "%s range %s of device '%s' overlaps %s of device '%s'", k->name, a,
				       dev->name, b, d->name);
		}
	}
	return 0;
}

/* ---- the schema ---- */

#define AT(T, m) .off = offsetof(T, m), .size = sizeof(((T *)0)->m)
#define NUM(T, m, lo, hi, d) .parse = parse_uint, .kind = K_NUM, AT(T, m), .min = (lo), .max = (hi), .def = (d)
#define BOOL(T, m, d) .parse = parse_bool, .kind = K_NUM, AT(T, m), .def = (d)
#define ENUM(T, m, v, d) \
	.parse = parse_enum, .kind = K_NUM, AT(T, m), .arg = &(const struct names){ v, ARRAY_SIZE(v) }, .def = (d)
#define STR(T, m, fn) .parse = (fn), .kind = K_STR, AT(T, m)
#define LIST(T, m, li) \
	.parse = parse_list, .kind = K_LIST, .off = offsetof(T, m), .n_off = offsetof(T, n_##m), .arg = (li)
#define RANGES(m, ...)                                                                                  \
	.parse = parse_ranges, .kind = K_ARRAY, .off = offsetof(DEV, m), .n_off = offsetof(DEV, n_##m), \
	.size = offsetof(struct cfg_range, mark), .stride = sizeof(struct cfg_range),                  \
	.arg = &(const struct range_kind){ __VA_ARGS__ }
#define DEV struct cfg_device
#define VM struct cfg_vm
#define NAME_TEXT "1 to 31 of A-Z a-z 0-9 _ . -"

_Static_assert(sizeof(enum cfg_backend) == sizeof(uint32_t) && sizeof(enum cfg_sandbox) == sizeof(uint32_t) &&
		       sizeof(enum cfg_on_failure) == sizeof(uint32_t) && sizeof(enum cfg_transport) == sizeof(uint32_t),
	       "enums are stored as uint32_t");
_Static_assert(offsetof(struct cfg, device_id_count) == offsetof(struct cfg, device_id_first) + sizeof(uint32_t),
	       "device_ids are compared as one 8-byte value");

static const char *const sandbox_v[] = { [CFG_SANDBOX_NONE] = "none", [CFG_SANDBOX_STRICT] = "strict" };
static const char *const on_failure_v[] = {
	[CFG_ON_FAILURE_FALLBACK] = "fallback",
	[CFG_ON_FAILURE_HOLD] = "hold",
	[CFG_ON_FAILURE_STOP_VM] = "stop-vm",
};
static const char *const transport_v[] = { [CFG_TRANSPORT_RING] = "ring", [CFG_TRANSPORT_NNG] = "nng" };
static const char *const input_v[] = { [true] = "stdin" };
static const char *const memory_v[] = { [CFG_MEMORY_GUEST] = "guest", [CFG_MEMORY_READ_ONLY] = "read-only" };
static const char *const file_mode_v[] = { [false] = "ro", [true] = "rw" };

/* fds a device instance may be given: ioreq-launch adds them to its
 * RLIMIT_NOFILE, the Welcome lists them. */
#define FILES_MAX 16
#define EVENTFDS_MAX 64

static const struct field file_fields[] = {
	{ "path", STR(struct cfg_file, path, parse_data_file), .required = ALL, .value = "file",
	  .doc = "opened by the broker with its own rights at each instance start (following symbolic links); a "
		 "regular file or a block device; relative to this file" },
	{ "mode", ENUM(struct cfg_file, write, file_mode_v, false), .doc = "ro: read-only, rw: read-write" },
	{ "direct", BOOL(struct cfg_file, direct, false), .doc = "opened with O_DIRECT (no page cache)" },
};

static const struct schema file_schema = {
	"file", "`vms[].devices[].files[]`: files it is given, as fds in this order", SCHEMA(file_fields)
};
static const struct list file_list = { &file_schema, sizeof(struct cfg_file), offsetof(struct cfg_file, mark), "file",
				       .scalar = &file_fields[0], .ordered = true };

static const struct field window_fields[] = {
	{ "pio", RANGES(win_pio, .name = "pio window", .max = PIO_MAX), .value = "list of port ranges",
	  .dflt = "none", .doc = "port ranges its BARs may be placed in" },
	{ "mmio", RANGES(win_mmio, .name = "mmio window", .max = UINT64_MAX), .value = "list of address ranges",
	  .dflt = "none", .doc = "MMIO ranges its BARs may be placed in" },
};

static const struct schema window_schema = {
	"windows", "`vms[].devices[].windows`: where a device may claim ranges at run time", SCHEMA(window_fields)
};

static const struct field remote_fields[] = {
	{ "listen", STR(DEV, remote.listen, parse_listen), .required = ALL, .value = "tls+tcp://ADDRESS:PORT",
	  .doc = "where the broker listens for the device's runner (ioreq-remote); tcp:// only with insecure" },
	{ "certificate", STR(DEV, remote.certificate, parse_data_file), .value = "file", .dflt = "none",
	  .doc = "the broker's own certificate (PEM), which the runner checks; required with tls+tcp://; relative to "
		 "this file" },
	{ "key", STR(DEV, remote.key, parse_data_file), .value = "file", .dflt = "none",
	  .doc = "the private key of certificate (PEM, unencrypted)" },
	{ "ca", STR(DEV, remote.ca, parse_data_file), .value = "file", .dflt = "none",
	  .doc = "the CA certificates (PEM) that must have signed the device's certificate; with peer_name" },
	{ "peer_name", STR(DEV, remote.peer_name, parse_str), .value = "string", .dflt = "none",
	  .doc = "the name the device's certificate must carry, as its subject's CN or a DNS subjectAltName; with ca" },
	{ "fingerprint", STR(DEV, remote.fingerprint, parse_fingerprint), .value = "sha256:HEX", .dflt = "none",
	  .doc = "or (and) the SHA-256 of the device's certificate (DER), as openssl x509 -fingerprint -sha256 "
		 "prints it: that certificate only, signed by anyone; still refused once expired" },
	{ "insecure", BOOL(DEV, remote.insecure, false),
	  .doc = "allow a tcp:// address: no encryption and no identity, anyone who connects is the device (tests "
		 "only)" },
	{ "timeout_ms", NUM(DEV, remote.timeout_ms, 100, 600000, 3000),
	  .doc = "silence from the runner (it answers a ping every third of it) after which the connection is "
		 "dropped and the device is down" },
};

/* Which identity: a CA and a name, or a fingerprint; plain TCP only when
 * asked for by name. */
static int remote_finish(struct loader *l, yaml_node_t *map, void *obj)
{
	const struct cfg_remote *rm = &((struct cfg_device *)obj)->remote;
	bool tls = !strncmp(rm->listen, "tls+", 4);

	if (!tls && !rm->insecure)
		return fail(l, map, "remote: plain tcp:// is refused unless insecure: true (it has no identity)");
	if (!tls && (rm->certificate || rm->key || rm->ca || rm->peer_name || rm->fingerprint))
		return fail(l, map, "remote: certificates need a tls+tcp:// address");
	if (tls && rm->insecure)
		return fail(l, map, "remote: insecure: true is for tcp:// addresses only");
	if (tls && (!rm->certificate || !rm->key))
		return fail(l, map, "remote: tls+tcp:// needs the broker's certificate and key");
	if (tls && !!rm->ca != !!rm->peer_name)
		return fail(l, map, "remote: ca and peer_name go together (which CA, and which name it vouches for)");
	if (tls && !rm->ca && !rm->fingerprint)
		return fail(l, map, "remote: the device needs an identity: ca and peer_name, or fingerprint");
	return 0;
}

static const struct schema remote_schema = {
	"remote", "`vms[].devices[].remote`: a device on another host, over mutual TLS (README: Remote devices)",
	SCHEMA(remote_fields), .finish = remote_finish
};

static const struct field device_fields[] = {
	{ "name", STR(DEV, name, parse_name), .required = ALL, .value = NAME_TEXT, .doc = "unique within the VM" },
	{ "program", STR(DEV, program, parse_program), .value = "program name or path", .dflt = "none",
	  .doc = "a bare name is looked up next to ioreq-brokerd, then in $PATH; a path with a / is relative to "
		 "this file; either program or remote" },
	{ "remote", .parse = parse_map, .kind = K_MAP, .arg = &remote_schema, .value = "mapping (below)",
	  .dflt = "none", .doc = "the device runs on another host and connects (below); either program or remote" },
	{ "args", .parse = parse_args, .kind = K_STRV, AT(DEV, args), .value = "list of strings", .dflt = "none",
	  .doc = "the program's own arguments" },
	{ "pio", RANGES(pio, .name = "pio", .max = PIO_MAX, .exclusive = true),
	  .value = "list of port ranges (up to 0xffff)", .dflt = "none", .doc = "port ranges it serves" },
	{ "mmio", RANGES(mmio, .name = "mmio", .max = UINT64_MAX, .exclusive = true), .value = "list of address ranges",
	  .dflt = "none", .doc = "MMIO ranges it serves" },
	{ "pci", RANGES(pci, .name = "pci", .bdf = true, .exclusive = true), .value = "list of PCI functions",
	  .dflt = "none", .doc = "PCI functions whose configuration space it serves" },
	{ "irqs", .parse = parse_irqs, .kind = K_ARRAY, .off = offsetof(DEV, irqs), .n_off = offsetof(DEV, n_irqs),
	  .size = sizeof(uint32_t), .stride = sizeof(uint32_t), .max = 255, .value = "list of 0..255, no duplicates",
	  .dflt = "none", .doc = "IRQ lines (GSIs) it may drive" },
	{ "msi", BOOL(DEV, msi, false), .doc = "may it inject MSIs" },
	{ "windows", .parse = parse_map, .kind = K_MAP, .arg = &window_schema, .value = "mapping (below)",
	  .dflt = "none", .doc = "where it may claim ranges at run time (PCI BARs)" },
	{ "memory", ENUM(DEV, memory, memory_v, CFG_MEMORY_NONE), .dflt = "none",
	  .doc = "the guest's RAM, as an fd it maps: read-write (guest) or not (read-only)" },
	{ "files", LIST(DEV, files, &file_list), .max = FILES_MAX, .value = "list of up to 16 files or mappings (below)",
	  .dflt = "none", .doc = "files it is given as fds, in this order: a path (read-only) or {path, mode, direct}" },
	{ "doorbells", NUM(DEV, doorbells, 0, EVENTFDS_MAX, 0),
	  .doc = "eventfds it may bind to guest writes inside its ranges (ioeventfds): a write signals it, the vCPU "
		 "goes on at once" },
	{ "irqfds", NUM(DEV, irqfds, 0, EVENTFDS_MAX, 0),
	  .doc = "eventfds it may bind to its IRQ lines or MSIs (irqfds): a write injects the interrupt" },
	{ "vhost_user", STR(DEV, vhost_user, parse_vhost_user), .value = "socket path", .dflt = "none",
	  .doc = "a virtio device (ioreq/virtio.h) serves a vhost-user front end (QEMU's -chardev socket,path=...) "
		 "there instead of the VM's bus: the broker listens on it (relative to this file; mode 0600; a stale "
		 "socket is replaced) from the VM's start to its stop, across restarts, and passes it as "
		 "--vhost-user fd:N" },
	/* 0 until the end of the file: broker.deadline_ms may come later */
	{ "deadline_ms", NUM(DEV, deadline_ms, 1, DEADLINE_MS_MAX, 0), .dflt = "broker.deadline_ms",
	  .doc = "how long a request waits for its reply before it completes with the fallback" },
	{ "transport", ENUM(DEV, transport, transport_v, CFG_TRANSPORT_DEFAULT), .dflt = "ring",
	  .doc = "how requests reach it: a request ring in shared memory (nng when its program has none), or its nng "
		 "socket only (IOREQ_TRANSPORT in the broker's environment changes the default)" },
	{ "poll_us", NUM(DEV, poll_us, 0, RING_POLL_US_MAX, 0),
	  .doc = "microseconds: how long it and the broker spin on its ring for the next request or reply before they sleep: "
		 "lower latency for CPU time" },
	{ "sandbox", ENUM(DEV, sandbox, sandbox_v, CFG_SANDBOX_STRICT),
	  .doc = "strict: its own namespaces, uid, cgroup and seccomp filter; none: a plain child, for debugging" },
	{ "on_failure", ENUM(DEV, on_failure, on_failure_v, CFG_ON_FAILURE_FALLBACK),
	  .doc = "when it fails, its requests complete with the fallback, wait for its restart, or the VM stops" },
	{ "restart_limit", NUM(DEV, restart_limit, 0, 1000, 5),
	  .doc = "restarts within restart_window_ms before it is marked failed" },
	{ "restart_window_ms", NUM(DEV, restart_window_ms, 1, 86400000, 60000), .doc = "see restart_limit" },
	{ "max_inflight", NUM(DEV, max_inflight, 1, CFG_MAX_VCPUS, 16),
	  .doc = "requests in flight at once; more complete with the fallback" },
	{ "max_msg_rate", NUM(DEV, max_msg_rate, 1, 10000000, 10000),
	  .doc = "messages per second it may send beyond replies (interrupts, claims, registrations)" },
	{ "max_claims", NUM(DEV, max_claims, 0, 256, 16), .doc = "BAR ranges an instance may hold at once" },
	{ "max_violations", NUM(DEV, max_violations, 1, 100000, 100),
	  .doc = "soft protocol violations (late or duplicate replies, denied interrupts, refused claims or "
		 "registrations, messages over max_msg_rate) an instance may commit within a minute before it is cut "
		 "off" },
	{ "memory_max", NUM(DEV, memory_max, 4 * MIB, 1024 * GIB, 256 * MIB), .unit = U_SIZE,
	  .doc = "memory limit of an instance's cgroup" },
	{ "pids_max", NUM(DEV, pids_max, 16, 4096, 64), .doc = "tasks (threads count) limit of an instance's cgroup" },
	{ "cpu_max", NUM(DEV, cpu_max, 1, 100 * 1024, 100), .unit = U_PERCENT,
	  .doc = "CPU limit of an instance's cgroup, in percent of one CPU" },
	{ "output", .parse = parse_output, .kind = K_OUTPUT, AT(DEV, output_file), .value = "stdout or a file",
	  .dflt = "/dev/null", .doc = "its stdout: the broker's, or a file (appended, relative to this file)" },
	{ "input", ENUM(DEV, input_stdin, input_v, false), .dflt = "/dev/null", .doc = "its stdin: the broker's" },
};

/* Runs once a device is complete, so that overlap messages can name it. */
static int device_finish(struct loader *l, yaml_node_t *map, void *obj)
{
	struct cfg_device *dev = obj;
	int r;

	if (!dev->args && !(dev->args = calloc(1, sizeof(*dev->args))))
		return oom(l);
	if (!dev->program == !dev->remote.listen)
		return fail(l, map, "device '%s' needs either program or remote", dev->name);
	/* A file or a socket of this host cannot cross to another (guest
	 * memory and eventfds can, as messages: devsup.c). */
	if (dev->remote.listen && (dev->n_files || dev->vhost_user))
		return fail(l, map, "device '%s': files and vhost_user are not available to a remote device (its runner "
				    "gives it files of its own host: ioreq-remote --file)", dev->name);
	for (const struct field *f = device_fields; f < device_fields + ARRAY_SIZE(device_fields); f++) {
		const struct cfg_range *v;

		if (f->parse != parse_ranges || !((const struct range_kind *)f->arg)->exclusive)
			continue;
		v = *(struct cfg_range **)at(dev, f->off);
		for (size_t i = 0; i < *(size_t *)at(dev, f->n_off); i++)
			if ((r = check_overlap(l, f, dev, &v[i])) < 0)
				return r;
	}
	return 0;
}

static const struct schema device_schema = {
	"device", "`vms[].devices[]`: each device", SCHEMA(device_fields), .finish = device_finish
};
static const struct list device_list = { &device_schema, sizeof(DEV), offsetof(DEV, mark), "device", NULL, false };

static const struct field vm_fields[] = {
	{ "name", STR(VM, name, parse_name), .required = ALL, .value = NAME_TEXT, .doc = "unique among the VMs" },
	{ "backend", ENUM(VM, backend, backend_v, 0), .required = ALL,
	  .doc = "the hypervisor: sim (scripted vCPUs), kvm (/dev/kvm), acrn (/dev/acrn_hsm)" },
	{ "vcpus", NUM(VM, vcpus, 1, CFG_MAX_VCPUS, 0), .required = ALL, .doc = "how many vCPUs it has" },
	{ "autostart", BOOL(VM, autostart, true), .doc = "start with the broker (else: `ioreqctl vm start`)" },
	{ "scripts", .parse = parse_scripts, .kind = K_SCRIPTS, .off = offsetof(VM, scripts), .late = true,
	  .backends = BACKEND(SIM), .value = "list of files or ~, one per vCPU", .dflt = "every vCPU idle",
	  .doc = "each vCPU's script (~: idle), relative to this file" },
	{ "memory", NUM(VM, memory, MIB, 64 * GIB, 0), .unit = U_SIZE, .align = 4 * KIB, .dflt = "64M; sim: none",
	  .doc = "guest RAM (a sealed memfd; sim: for the scripts' mem statements and the devices)" },
	{ "image", STR(VM, image, parse_image), .backends = BACKEND(KVM) | BACKEND(ACRN), .required = BACKEND(KVM),
	  .value = "file", .dflt = "acrn: none (the hypervisor's configuration boots the VM)",
	  .doc = "the guest, a static ELF64 executable, relative to this file; loaded at its addresses, its entry in 64-bit mode" },
	{ "exit_port", NUM(VM, exit_port, 0, PIO_MAX, 0xf4), .unit = U_HEX, .backends = BACKEND(KVM) | BACKEND(ACRN),
	  .doc = "a write of V to this port stops the VM with status V (acrn: only with an image)" },
	{ "completion_polling", BOOL(VM, completion_polling, false), .backends = BACKEND(ACRN),
	  .doc = "vCPUs poll for completion (ACRN's polling mode)" },
	{ "devices", LIST(VM, devices, &device_list), .value = "list of mappings (below)", .dflt = "none",
	  .doc = "the device processes that serve this VM" },
};

static uint8_t vm_backend(const void *obj)
{
	return 1u << ((const struct cfg_vm *)obj)->backend;
}

/* A sim VM has RAM only if it says so; the others 64M unless they say. */
static int vm_finish(struct loader *l, yaml_node_t *map, void *obj)
{
	VM *vm = obj;

	if (!vm->memory && vm->backend != CFG_BACKEND_SIM)
		vm->memory = 64 * MIB;
	return 0;
}

static const struct schema vm_schema = {
	"vm", "`vms[]`: each VM", SCHEMA(vm_fields), .backend = vm_backend, .finish = vm_finish
};
static const struct list vm_list = { &vm_schema, sizeof(VM), offsetof(VM, mark), "VM", NULL, false };

static const struct field broker_fields[] = {
	{ "runtime_dir", STR(struct cfg, runtime_dir, parse_path), .value = "absolute path",
	  .dflt = "$RUNTIME_DIRECTORY, else a private directory under $XDG_RUNTIME_DIR or /tmp",
	  .doc = "where the devices' sockets live" },
	{ "control_socket", STR(struct cfg, control_socket, parse_path), .value = "absolute path",
	  .dflt = "RUNTIME_DIR/control", .doc = "the socket ioreqctl talks to" },
	{ "control_group", STR(struct cfg, control_group, parse_str), .value = "group name", .dflt = "none",
	  .doc = "who may use the control socket besides root and the broker's own user" },
	{ "deadline_ms", NUM(struct cfg, deadline_ms, 1, DEADLINE_MS_MAX, 500),
	  .doc = "the devices' default request deadline" },
	{ "device_ids", .parse = parse_ids, .kind = K_NUM, .off = offsetof(struct cfg, device_id_first),
	  .size = 2 * sizeof(uint32_t), .def = 458752ull << 32 | 65536, .value = "START+COUNT or START..END",
	  .doc = "host uids (each also the gid) for device instances, one each; must not contain 0 or an existing "
		 "user or group" },
	{ "cgroup", STR(struct cfg, cgroup, parse_path), .value = "absolute path", .dflt = "chosen by the broker",
	  .doc = "the cgroup under which each device instance gets its own" },
};

static const struct schema broker_schema = { "broker", "`broker`: the broker's own settings", SCHEMA(broker_fields) };

static const struct field top_fields[] = {
	{ "broker", .parse = parse_map, .kind = K_MAP, .arg = &broker_schema, .value = "mapping (below)",
	  .dflt = "all defaults", .doc = "the broker's own settings" },
	{ "vms", LIST(struct cfg, vms, &vm_list), .min = 1, .required = ALL, .value = "list of mappings (below)",
	  .doc = "the VMs, at least one" },
};

static const struct schema top_schema = { "top level", "The file", SCHEMA(top_fields) };

/* ---- the file ---- */

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

/* The suite runs once more over nng alone by setting IOREQ_TRANSPORT=nng. */
static enum cfg_transport default_transport(void)
{
	const char *v = getenv("IOREQ_TRANSPORT");

	return v && !strcmp(v, "nng") ? CFG_TRANSPORT_NNG : CFG_TRANSPORT_RING;
}

static int load(struct loader *l, struct cfg **ret)
{
	struct cfg *c = NULL;
	struct stat st;
	FILE *f;
	int r;

	*ret = NULL;
	f = fopen(l->path, "re");
	if (!f) {
		r = -errno;
		return fail_file(l, r, "%s", strerror(-r));
	}
	/* fopen takes a directory, and libyaml would call it an input error */
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		r = fail_file(l, -EISDIR, "%s", strerror(EISDIR));
		goto out_file;
	}
	r = load_document(l, f);
	if (r < 0)
		goto out_file;
	r = config_dir(l);
	if (r < 0)
		goto out;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(l->path))) {
		r = oom(l);
		goto out;
	}
	set_defaults(&top_schema, c);
	r = walk_map(l, yaml_document_get_root_node(&l->doc), &top_schema, c, NULL);
	if (r < 0)
		goto out;
	/* The one default that is another key's value, known only now. */
	for (size_t i = 0; i < c->n_vms; i++) {
		for (size_t j = 0; j < c->vms[i].n_devices; j++) {
			if (!c->vms[i].devices[j].deadline_ms)
				c->vms[i].devices[j].deadline_ms = c->deadline_ms;
			if (!c->vms[i].devices[j].transport)
				c->vms[i].devices[j].transport = default_transport();
			c->vms[i].devices[j].config_path = c->path;
		}
	}
	*ret = c;
	c = NULL;
out:
	cfg_free(c);
	free(l->dir);
	yaml_document_delete(&l->doc);
out_file:
	fclose(f);
	return r;
}

int cfg_load(const char *path, const char *bindir, struct cfg **ret, char *err, size_t errlen)
{
	struct loader l = { .path = path, .bindir = bindir, .err = err, .errlen = errlen };

	if (err && errlen)
		err[0] = '\0';
	return load(&l, ret);
}

int cfg_check(const char *path, const char *bindir, size_t max_reports, cfg_report_fn *report, void *opaque,
	      struct cfg **ret, size_t *ret_errors)
{
	struct loader l = {
		.path = path, .bindir = bindir, .report = report, .report_opaque = opaque, .max_reports = max_reports
	};
	int r = load(&l, ret);

	*ret_errors = l.n_errors;
	return r;
}

/* ---- freeing and comparing, by the tables ---- */

static void free_obj(const struct schema *s, void *obj)
{
	for (const struct field *f = s->fields; f < s->fields + s->n; f++) {
		char **p = at(obj, f->off);

		switch (f->kind) {
		case K_STRV:
			for (char **a = (char **)*p; a && *a; a++)
				free(*a);
			free(*p);
			break;
		case K_SCRIPTS:
			for (unsigned i = 0; *p && i < ((struct cfg_vm *)obj)->vcpus; i++)
				free(((char **)*p)[i]);
			free(*p);
			break;
		case K_STR:
		case K_ARRAY:
		case K_OUTPUT:
			free(*p);
			break;
		case K_MAP:
			free_obj(f->arg, obj);
			break;
		case K_LIST: {
			const struct list *li = f->arg;

			for (size_t i = 0; i < *(size_t *)at(obj, f->n_off); i++)
				free_obj(li->schema, *p + i * li->size);
			free(*p);
			break;
		}
		case K_NUM:
			break;
		}
	}
}

struct cfg *cfg_free(struct cfg *c)
{
	if (!c)
		return NULL;
	free_obj(&top_schema, c);
	free(c->path);
	free(c);
	return NULL;
}

const char *cfg_backend_name(enum cfg_backend b)
{
	if ((size_t)b >= ARRAY_SIZE(backend_v) || !backend_v[b])
		return "unknown";
	return backend_v[b];
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static const struct field *first_difference(const struct schema *s, const void *a, const void *b);

static bool field_eq(const struct field *f, const void *a, const void *b)
{
	char *const *pa = at(a, f->off), *const *pb = at(b, f->off);
	size_t n = 0;

	switch (f->kind) {
	case K_NUM:
		return !memcmp(pa, pb, f->size);
	case K_OUTPUT:
		if (((const struct cfg_device *)a)->output_stdout != ((const struct cfg_device *)b)->output_stdout)
			return false;
		/* fall through */
	case K_STR:
		return str_eq(*pa, *pb);
	case K_STRV:
		for (; ((char **)*pa)[n] && ((char **)*pb)[n]; n++)
			if (strcmp(((char **)*pa)[n], ((char **)*pb)[n]))
				return false;
		return !((char **)*pa)[n] && !((char **)*pb)[n];
	case K_SCRIPTS: /* vcpus and backend compared before */
		for (unsigned i = 0; *pa && i < ((const struct cfg_vm *)a)->vcpus; i++)
			if (!str_eq(((char **)*pa)[i], ((char **)*pb)[i]))
				return false;
		return true;
	case K_ARRAY:
		n = *(size_t *)at(a, f->n_off);
		if (n != *(size_t *)at(b, f->n_off))
			return false;
		for (size_t i = 0; i < n; i++)
			if (memcmp(*pa + i * f->stride, *pb + i * f->stride, f->size))
				return false;
		return true;
	case K_MAP:
		return !first_difference(f->arg, a, b);
	case K_LIST: {
		const struct list *li = f->arg;

		if (!li->ordered) /* by the caller */
			return true;
		n = *(size_t *)at(a, f->n_off);
		if (n != *(size_t *)at(b, f->n_off))
			return false;
		for (size_t i = 0; i < n; i++)
			if (first_difference(li->schema, *pa + i * li->size, *pb + i * li->size))
				return false;
		return true;
	}
	}
	return false;
}

/* The first key of @s whose values in @a and @b differ, or NULL. */
static const struct field *first_difference(const struct schema *s, const void *a, const void *b)
{
	for (const struct field *f = s->fields; f < s->fields + s->n; f++)
		if (!field_eq(f, a, b))
			return f;
	return NULL;
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
	const struct field *f = first_difference(&vm_schema, a, b);

	if (f)
		return differs(what, len, "%s", f->key);
	for (size_t i = 0; i < a->n_devices; i++) {
		const struct cfg_device *d = NULL;

		for (size_t j = 0; j < b->n_devices && !d; j++)
			if (!strcmp(a->devices[i].name, b->devices[j].name))
				d = &b->devices[j];
		if (!d)
			return differs(what, len, "device '%s' removed", a->devices[i].name);
		if (first_difference(&device_schema, &a->devices[i], d))
			return differs(what, len, "device '%s' changed", a->devices[i].name);
	}
	if (a->n_devices != b->n_devices)
		return differs(what, len, "%s", "devices added");
	return true;
}

/* ---- the reference ---- */

/* @s as Markdown (as it is written) or scdoc (no backticks; its markup
 * characters escaped). */
static void put_text(FILE *out, const char *s, enum cfg_ref_format fmt)
{
	if (fmt == CFG_REF_MARKDOWN) {
		fputs(s, out);
		return;
	}
	for (; *s; s++) {
		if (*s == '`')
			continue;
		if (*s == '_' || *s == '*' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
}

static void backends_of(char *buf, size_t len, unsigned mask)
{
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned b = 0; b < ARRAY_SIZE(backend_v) && n < len; b++)
		if (mask & 1u << b)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", backend_v[b]);
}

/* The value and default columns of @f. */
static void field_columns(const struct field *f, char *value, char *dflt, size_t len)
{
	char b[32], c[32], a[32];

	if (f->value) {
		snprintf(value, len, "%s", f->value);
	} else if (f->parse == parse_bool) {
		snprintf(value, len, "true, false");
	} else if (f->parse == parse_enum) {
		join_names(value, len, f->arg);
	} else {
		format_num(b, sizeof(b), f, f->min);
		format_num(c, sizeof(c), f, f->max);
		format_num(a, sizeof(a), f, f->align);
		snprintf(value, len, "%s..%s%s%s", b, c, f->align ? ", a multiple of " : "", f->align ? a : "");
	}
	if (f->required == ALL) {
		snprintf(dflt, len, "required");
	} else if (f->required) {
		backends_of(a, sizeof(a), f->required);
		snprintf(dflt, len, "required with %s", a);
	} else if (f->dflt) {
		snprintf(dflt, len, "%s", f->dflt);
	} else if (f->parse == parse_ids) {
		snprintf(dflt, len, "%" PRIu64 "+%" PRIu64, f->def >> 32, f->def & UINT32_MAX);
	} else if (f->parse == parse_bool) {
		snprintf(dflt, len, "%s", f->def ? "true" : "false");
	} else if (f->parse == parse_enum) {
		snprintf(dflt, len, "%s", ((const struct names *)f->arg)->v[f->def]);
	} else {
		format_num(dflt, len, f, f->def);
	}
}

static void print_field(FILE *out, const struct field *f, bool backends, enum cfg_ref_format fmt)
{
	char value[256], dflt[256], which[32] = "all";

	field_columns(f, value, dflt, sizeof(value));
	if (f->backends)
		backends_of(which, sizeof(which), f->backends);
	if (fmt == CFG_REF_MARKDOWN) {
		fprintf(out, "| `%s` | %s | %s | ", f->key, value, dflt);
		if (backends)
			fprintf(out, "%s | ", which);
		fprintf(out, "%s |\n", f->doc ? f->doc : "");
		return;
	}
	/* scdoc: a definition list, too wide a table for a terminal */
	fputc('*', out);
	put_text(out, f->key, fmt);
	fputs("*\n\tValue: ", out);
	put_text(out, value, fmt);
	fputs(". Default: ", out);
	put_text(out, dflt, fmt);
	if (backends) {
		fputs(". Backends: ", out);
		put_text(out, which, fmt);
	}
	fputs(".\n", out);
	if (f->doc && *f->doc) {
		fprintf(out, "\t%c", toupper((unsigned char)f->doc[0]));
		put_text(out, f->doc + 1, fmt);
		fputs(".\n", out);
	}
	fputs("\n", out);
}

static void print_schema(FILE *out, const struct schema *s, enum cfg_ref_format fmt)
{
	bool backends = false;

	for (const struct field *f = s->fields; f < s->fields + s->n; f++)
		backends |= f->backends != 0;
	if (fmt == CFG_REF_MARKDOWN) {
		fprintf(out, "\n#### %s\n\n| key | value | default |%s meaning |\n| --- | --- | --- |%s --- |\n",
			s->title, backends ? " backends |" : "", backends ? " --- |" : "");
	} else {
		fputs("## ", out);
		put_text(out, s->title, fmt);
		fputs("\n\n", out);
	}
	for (const struct field *f = s->fields; f < s->fields + s->n; f++)
		print_field(out, f, backends, fmt);
	for (const struct field *f = s->fields; f < s->fields + s->n; f++) {
		if (f->kind == K_MAP)
			print_schema(out, f->arg, fmt);
		else if (f->kind == K_LIST)
			print_schema(out, ((const struct list *)f->arg)->schema, fmt);
	}
}

int cfg_print_reference(FILE *out, enum cfg_ref_format fmt)
{
	put_text(out,
		 "Every key, from the loader's own tables (`ioreq-brokerd --print-config-reference`).\n"
		 "Integers are decimal or 0x hex; sizes are bytes or take a K, M or G suffix. An address\n"
		 "range is \"START+SIZE\", \"START..END\" (inclusive), {start: S, size: N} or {start: S, end: E};\n"
		 "a PCI function is BB:DD.F or 0000:BB:DD.F (hex). Relative paths are relative to the\n"
		 "configuration file's directory.\n",
		 fmt);
	if (fmt == CFG_REF_SCDOC)
		fputs("\n", out);
	print_schema(out, &top_schema, fmt);
	return fflush(out) || ferror(out) ? -EIO : 0;
}
