#include "elfdeps.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gelf.h>
#include <libelf.h>

/* What ld.so accepts on this machine (sysdeps/unix/sysv/linux/x86_64). */
#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#define CACHE_FLAGS 0x0303 /* FLAG_ELF_LIBC6 | FLAG_X8664_LIB64 */
static const char *const system_dirs[] = { "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib",
					    NULL };
#else
#error "elfdeps: describe this architecture's ld.so (machine, cache flags, default directories)"
#endif

const struct elfdeps_search elfdeps_system = { .cache = "/etc/ld.so.cache", .dirs = system_dirs };

/* Strings read from an object: DT_NEEDED names and paths, DT_RPATH lists. */
#define MAX_STRING 16384
/* ldconfig writes tens of kilobytes. */
#define MAX_CACHE (64 << 20)
/* The kernel's own bound for an executable's program headers. */
#define MAX_PHDRS (65536 / sizeof(Elf64_Phdr))

/* A positive result of parse(): another class or machine, which ld.so skips. */
#define OTHER_ARCH 1

/* ---- /etc/ld.so.cache, glibc's new format (elf/dl-cache.h) ---- */

#define CACHE_MAGIC "glibc-ld.so.cache1.1"
#define CACHE_LITTLE_ENDIAN 2
#define CACHE_HWCAP_EXTENSION (1ULL << 62)

struct cache_header {
	char magic[sizeof(CACHE_MAGIC) - 1];
	uint32_t nlibs;
	uint32_t len_strings;
	uint8_t flags; /* endianness: 0 unset, 2 little, 3 big */
	uint8_t pad[3];
	uint32_t extension_offset;
	uint32_t unused[3];
};

struct cache_entry {
	int32_t flags;
	uint32_t key, value; /* offsets from the start of the file */
	uint32_t osversion;
	uint64_t hwcap;
};

struct cache {
	char *data;
	size_t size;
	uint32_t nlibs;
};

/* ---- the objects ---- */

struct object {
	char *path;     /* as ld.so spells it; NULL for the program */
	char *origin;   /* $ORIGIN; NULL for the program: unknown in the sandbox */
	char *soname;
	char *rpath;    /* NULL when absent, or overridden by a runpath */
	char *runpath;
	char **needed;
	size_t n_needed;
	char **names;   /* the DT_NEEDED names it was loaded under */
	size_t n_names;
	int loader;     /* the object whose DT_NEEDED loaded it; -1 */
	unsigned depth;
	bool nodeflib;
	dev_t dev;
	ino_t ino;
};

struct resolver {
	const struct elfdeps_search *s;
	const struct trusted_owners *owners;
	const char *name;
	struct object objs[ELFDEPS_MAX_OBJECTS + 1]; /* [0]: the program */
	size_t n_objs;
	int interp; /* its index, -1 */
	struct cache cache;
	struct elfdeps *out;
	/* The program's DT_RPATH/DT_RUNPATH entry dropped for its $ORIGIN. */
	char dropped[128];
	char *why;
	size_t len;
};

static int fail(struct resolver *rs, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct resolver *rs, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rs->why, rs->len, fmt, ap);
	va_end(ap);
	return err;
}

static const char *display(const struct resolver *rs, const struct object *ob)
{
	return ob->path ? ob->path : rs->name;
}

/* ---- paths ---- */

int elfdeps_normalize(const char *path, char *out, size_t len)
{
	size_t n = 0;

	if (path[0] != '/')
		return -EINVAL;
	for (const char *p = path; *p;) {
		const char *end;
		size_t c;

		while (*p == '/')
			p++;
		end = strchrnul(p, '/');
		c = end - p;
		if (c == 0 || (c == 1 && p[0] == '.')) {
			/* nothing */
		} else if (c == 2 && p[0] == '.' && p[1] == '.') {
			while (n > 0 && out[--n] != '/')
				;
		} else {
			if (c > NAME_MAX || n + 1 + c >= len)
				return -ENAMETOOLONG;
			out[n++] = '/';
			memcpy(out + n, p, c);
			n += c;
		}
		p = end;
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return 0;
}

/* The length of "$NAME" or "${NAME}" at @p (which points at '$'), or 0:
 * glibc's is_dst(). */
static size_t dst(const char *p, const char *name)
{
	size_t n = strlen(name);

	p++;
	if (*p == '{')
		return !strncmp(p + 1, name, n) && p[1 + n] == '}' ? n + 3 : 0;
	if (strncmp(p, name, n) || isalnum((unsigned char)p[n]) || p[n] == '_')
		return 0;
	return n + 1;
}

/* @in (@n bytes) with its dynamic string tokens expanded for @ob, into
 * @out. 1 when it uses the unknown $ORIGIN of the program (the entry is
 * unusable), 0, or a negative errno. */
static int expand(struct resolver *rs, const struct object *ob, const char *in, size_t n, char *out, size_t len)
{
	size_t used = 0;

	for (size_t i = 0; i < n;) {
		const char *piece = in + i;
		size_t take = 1, skip;

		if (in[i] == '$' && (skip = dst(in + i, "ORIGIN"))) {
			if (!ob->origin)
				return 1;
			piece = ob->origin;
			take = strlen(ob->origin);
			i += skip;
		} else if (in[i] == '$' && (dst(in + i, "LIB") || dst(in + i, "PLATFORM"))) {
			return fail(rs, -EOPNOTSUPP, "%s uses $LIB or $PLATFORM in '%.*s', which ioreq-launch does not resolve",
				    display(rs, ob), (int)n, in);
		} else {
			i++;
		}
		if (used + take >= len)
			return fail(rs, -ENAMETOOLONG, "%s: '%.*s' expands to too long a path", display(rs, ob), (int)n, in);
		memcpy(out + used, piece, take);
		used += take;
	}
	out[used] = '\0';
	return 0;
}

/* ---- reading one object ---- */

static int read_string(struct resolver *rs, Elf *e, const char *what, uint64_t strtab, uint64_t strsz,
		       uint64_t off, char **ret)
{
	uint64_t n = strsz - off;
	Elf_Data *d;
	const char *end;

	if (off >= strsz)
		return fail(rs, -ENOEXEC, "its %s string lies outside its string table", what);
	if (n > MAX_STRING)
		n = MAX_STRING;
	d = elf_getdata_rawchunk(e, (int64_t)(strtab + off), n, ELF_T_BYTE);
	if (!d)
		return fail(rs, -ENOEXEC, "its %s string lies outside the file", what);
	end = memchr(d->d_buf, '\0', n);
	if (!end)
		return fail(rs, -ENOEXEC, "its %s string is not terminated within %u bytes", what, MAX_STRING);
	*ret = strdup(d->d_buf);
	return *ret ? 0 : -ENOMEM;
}

/* The file offset of virtual address @addr, and how many bytes of the
 * segment's file image follow it. */
static int vaddr_offset(const Elf64_Phdr *ph, size_t phnum, uint64_t addr, uint64_t *ret_off, uint64_t *ret_avail)
{
	for (size_t i = 0; i < phnum; i++) {
		if (ph[i].p_type == PT_LOAD && addr >= ph[i].p_vaddr && addr - ph[i].p_vaddr < ph[i].p_filesz) {
			*ret_off = ph[i].p_offset + (addr - ph[i].p_vaddr);
			*ret_avail = ph[i].p_filesz - (addr - ph[i].p_vaddr);
			return 0;
		}
	}
	return -ENOEXEC;
}

struct dyninfo {
	uint64_t strtab, strsz, soname, rpath, runpath, flags_1;
	bool has_strtab, has_soname, has_rpath, has_runpath, filter;
	uint64_t *needed;
	size_t n_needed;
};

static int read_dynamic(struct resolver *rs, Elf *e, const Elf64_Phdr *dyn, struct dyninfo *di)
{
	size_t n = dyn->p_filesz / sizeof(Elf64_Dyn);
	Elf_Data *d;

	if (n > ELFDEPS_MAX_DYNAMIC)
		return fail(rs, -E2BIG, "it has more than %u dynamic entries", ELFDEPS_MAX_DYNAMIC);
	if (n == 0)
		return 0;
	d = elf_getdata_rawchunk(e, (int64_t)dyn->p_offset, n * sizeof(Elf64_Dyn), ELF_T_DYN);
	if (!d)
		return fail(rs, -ENOEXEC, "its dynamic section lies outside the file");
	di->needed = calloc(n, sizeof(*di->needed));
	if (!di->needed)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const Elf64_Dyn *dy = (const Elf64_Dyn *)d->d_buf + i;

		switch (dy->d_tag) {
		case DT_NULL:
			return 0;
		case DT_NEEDED:
			di->needed[di->n_needed++] = dy->d_un.d_val;
			break;
		case DT_STRTAB:
			di->strtab = dy->d_un.d_ptr;
			di->has_strtab = true;
			break;
		case DT_STRSZ:
			di->strsz = dy->d_un.d_val;
			break;
		case DT_SONAME:
			di->soname = dy->d_un.d_val;
			di->has_soname = true;
			break;
		case DT_RPATH:
			di->rpath = dy->d_un.d_val;
			di->has_rpath = true;
			break;
		case DT_RUNPATH:
			di->runpath = dy->d_un.d_val;
			di->has_runpath = true;
			break;
		case DT_FLAGS_1:
			di->flags_1 = dy->d_un.d_val;
			break;
		case DT_FILTER:
		case DT_AUXILIARY:
			di->filter = true;
			break;
		}
	}
	return 0;
}

static int read_strings(struct resolver *rs, Elf *e, const Elf64_Phdr *ph, size_t phnum, const struct dyninfo *di,
			struct object *ob)
{
	uint64_t strtab, avail;
	int r = 0;

	if (di->filter)
		return fail(rs, -EOPNOTSUPP, "it is a filter (DT_FILTER or DT_AUXILIARY), which ioreq-launch does not resolve");
	if (!di->n_needed && !di->has_soname && !di->has_rpath && !di->has_runpath)
		return 0;
	if (!di->has_strtab || vaddr_offset(ph, phnum, di->strtab, &strtab, &avail) < 0)
		return fail(rs, -ENOEXEC, "its string table is not in a loaded segment");
	if (di->strsz > avail)
		return fail(rs, -ENOEXEC, "its string table overruns its segment");
	ob->needed = calloc(di->n_needed ? di->n_needed : 1, sizeof(*ob->needed));
	if (!ob->needed)
		return -ENOMEM;
	for (size_t i = 0; r == 0 && i < di->n_needed; i++) {
		r = read_string(rs, e, "DT_NEEDED", strtab, di->strsz, di->needed[i], &ob->needed[i]);
		ob->n_needed += r == 0;
	}
	if (r == 0 && di->has_soname)
		r = read_string(rs, e, "DT_SONAME", strtab, di->strsz, di->soname, &ob->soname);
	/* glibc (elf/get-dynamic-info.h): "Only RUNPATH or RPATH". */
	if (r == 0 && di->has_runpath)
		r = read_string(rs, e, "DT_RUNPATH", strtab, di->strsz, di->runpath, &ob->runpath);
	else if (r == 0 && di->has_rpath)
		r = read_string(rs, e, "DT_RPATH", strtab, di->strsz, di->rpath, &ob->rpath);
	return r;
}

/* Reads the object at readable @fd into @ob: the program (@interp receives
 * its PT_INTERP, "" when static) or a library. OTHER_ARCH when it is an ELF
 * object for another class or machine; an error sets rs->why to a reason
 * that the caller prefixes with the file's name. */
static int parse(struct resolver *rs, int fd, struct object *ob, char *interp, size_t interp_len)
{
	struct dyninfo di = { 0 };
	bool dynamic = false;
	const Elf64_Ehdr *eh;
	const Elf64_Phdr *ph;
	size_t phnum;
	Elf *e;
	int r = 0;

	e = elf_begin(fd, ELF_C_READ, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF) {
		r = fail(rs, -ENOEXEC, "it is not an ELF file");
		goto out;
	}
	if (gelf_getclass(e) != ELFCLASS64) {
		r = OTHER_ARCH;
		goto out;
	}
	eh = elf64_getehdr(e);
	if (!eh) {
		r = fail(rs, -ENOEXEC, "its ELF header is truncated");
		goto out;
	}
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != HOST_MACHINE) {
		r = OTHER_ARCH;
		goto out;
	}
	if (eh->e_ident[EI_VERSION] != EV_CURRENT ||
	    (eh->e_ident[EI_OSABI] != ELFOSABI_SYSV && eh->e_ident[EI_OSABI] != ELFOSABI_GNU)) {
		r = fail(rs, -ENOEXEC, "its ELF header is not one ld.so accepts");
		goto out;
	}
	if (eh->e_type != ET_DYN && (interp == NULL || eh->e_type != ET_EXEC)) {
		r = fail(rs, -ENOEXEC, "it is not a %s", interp ? "program" : "shared library");
		goto out;
	}
	if (elf_getphdrnum(e, &phnum) < 0 || phnum > MAX_PHDRS || !(ph = elf64_getphdr(e))) {
		r = fail(rs, -ENOEXEC, "its program headers are truncated or too many");
		goto out;
	}
	if (interp)
		interp[0] = '\0';
	for (size_t i = 0; r == 0 && i < phnum; i++) {
		if (ph[i].p_type == PT_INTERP && interp && !interp[0]) {
			Elf_Data *d = NULL;

			/* The kernel's rule: NUL-terminated within p_filesz. */
			if (ph[i].p_filesz >= 2 && ph[i].p_filesz <= interp_len)
				d = elf_getdata_rawchunk(e, (int64_t)ph[i].p_offset, ph[i].p_filesz, ELF_T_BYTE);
			if (!d || ((const char *)d->d_buf)[ph[i].p_filesz - 1] != '\0' || !*(const char *)d->d_buf)
				r = fail(rs, -ENOEXEC, "its PT_INTERP is truncated, empty or too long");
			else
				memcpy(interp, d->d_buf, ph[i].p_filesz);
		} else if (ph[i].p_type == PT_DYNAMIC && !dynamic) {
			dynamic = true;
			r = read_dynamic(rs, e, &ph[i], &di);
		}
	}
	if (r == 0)
		r = read_strings(rs, e, ph, phnum, &di, ob);
	ob->nodeflib = di.flags_1 & DF_1_NODEFLIB;
out:
	free(di.needed);
	elf_end(e);
	return r;
}

/* ---- the cache ---- */

static const char *cache_string(const struct cache *c, uint32_t off)
{
	return off < c->size && memchr(c->data + off, '\0', c->size - off) ? c->data + off : NULL;
}

static int cache_load(struct resolver *rs, int fd, size_t size)
{
	struct cache *c = &rs->cache;
	struct cache_header h;
	ssize_t n;

	if (size < sizeof(h) || size > MAX_CACHE)
		return fail(rs, -EINVAL, "%s has an unexpected size (%zu bytes)", rs->s->cache, size);
	c->data = malloc(size);
	if (!c->data)
		return -ENOMEM;
	n = pread(fd, c->data, size, 0);
	if (n != (ssize_t)size)
		return fail(rs, n < 0 ? -errno : -EIO, "cannot read %s", rs->s->cache);
	c->size = size;
	memcpy(&h, c->data, sizeof(h));
	if (memcmp(h.magic, CACHE_MAGIC, sizeof(h.magic)))
		return fail(rs, -EINVAL, "%s is not in glibc's format \"%s\"", rs->s->cache, CACHE_MAGIC);
	if (h.flags != 0 && h.flags != CACHE_LITTLE_ENDIAN)
		return fail(rs, -EINVAL, "%s is for another byte order", rs->s->cache);
	if (h.nlibs > (size - sizeof(h)) / sizeof(struct cache_entry))
		return fail(rs, -EINVAL, "%s is truncated", rs->s->cache);
	c->nlibs = h.nlibs;
	return 0;
}

/* The path the cache gives for @name, or NULL. ld.so takes the first entry
 * for its machine (glibc's search_cache); it would prefer a hwcap entry,
 * which is not modelled here: refused. */
static int cache_lookup(struct resolver *rs, const char *name, const char **ret)
{
	const struct cache *c = &rs->cache;

	*ret = NULL;
	for (uint32_t i = 0; i < c->nlibs; i++) {
		struct cache_entry en;
		const char *key, *value;

		memcpy(&en, c->data + sizeof(struct cache_header) + (size_t)i * sizeof(en), sizeof(en));
		key = cache_string(c, en.key);
		value = cache_string(c, en.value);
		if (!key || !value)
			return fail(rs, -EINVAL, "%s: entry %u lies outside the file", rs->s->cache, i);
		if (strcmp(key, name) || en.flags != CACHE_FLAGS)
			continue;
		if (en.hwcap)
			return fail(rs, -EOPNOTSUPP,
				    "%s: %s has a hwcap entry (%s), which ioreq-launch does not resolve",
				    rs->s->cache, name, value);
		if (!*ret)
			*ret = value;
	}
	return 0;
}

static int open_cache(struct resolver *rs)
{
	struct stat st;
	char why[256];
	int fd, rfd, r;

	if (!rs->s->cache)
		return 0;
	r = trusted_open(rs->s->cache, TRUSTED_FILE, rs->owners, &fd, &st, why, sizeof(why));
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return fail(rs, r, "%s %s", rs->s->cache, why);
	rfd = trusted_reopen(fd);
	if (rfd < 0) {
		close(fd);
		return fail(rs, rfd, "cannot read %s", rs->s->cache);
	}
	r = cache_load(rs, rfd, (size_t)st.st_size);
	close(rfd);
	if (r < 0) {
		close(fd);
		return r;
	}
	/* ld.so in the sandbox reads this very file. */
	rs->out->files[rs->out->n_files].path = strdup(rs->s->cache);
	if (!rs->out->files[rs->out->n_files].path) {
		close(fd);
		return -ENOMEM;
	}
	rs->out->files[rs->out->n_files++].fd = fd;
	return 0;
}

/* ---- the search ---- */

static void object_clear(struct object *ob)
{
	free(ob->path);
	free(ob->origin);
	free(ob->soname);
	free(ob->rpath);
	free(ob->runpath);
	for (size_t i = 0; i < ob->n_needed; i++)
		free(ob->needed[i]);
	free(ob->needed);
	for (size_t i = 0; i < ob->n_names; i++)
		free(ob->names[i]);
	free(ob->names);
}


static int add_name(struct object *ob, const char *name)
{
	char **names = realloc(ob->names, (ob->n_names + 1) * sizeof(*names));

	if (!names)
		return -ENOMEM;
	ob->names = names;
	names[ob->n_names] = strdup(name);
	if (!names[ob->n_names])
		return -ENOMEM;
	ob->n_names++;
	return 0;
}

/* _dl_name_match_p, and the DT_SONAME comparison of _dl_map_object. */
static int find_loaded(const struct resolver *rs, const char *name)
{
	for (size_t i = 1; i < rs->n_objs; i++) {
		const struct object *ob = &rs->objs[i];

		if (!strcmp(ob->path, name) || (ob->soname && !strcmp(ob->soname, name)))
			return (int)i;
		for (size_t k = 0; k < ob->n_names; k++)
			if (!strcmp(ob->names[k], name))
				return (int)i;
	}
	return -1;
}

/* Records @fd to be mounted at @path; a path already recorded keeps its fd. */
static int add_file(struct resolver *rs, const char *path, int fd)
{
	struct elfdeps *out = rs->out;

	for (size_t i = 0; i < out->n_files; i++) {
		if (!strcmp(out->files[i].path, path)) {
			close(fd);
			return 0;
		}
	}
	/* Bounded by the objects: one path per name searched. */
	if (out->n_files > ELFDEPS_MAX_OBJECTS) {
		close(fd);
		return fail(rs, -E2BIG, "it loads more than %u libraries", ELFDEPS_MAX_OBJECTS);
	}
	out->files[out->n_files].path = strdup(path);
	if (!out->files[out->n_files].path) {
		close(fd);
		return -ENOMEM;
	}
	out->files[out->n_files++].fd = fd;
	return 0;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

/* Tries @path (absolute, as ld.so spells it) for @name needed by object
 * @loader. 1 with the object's index in *ret when it is there (loaded now,
 * or already under another path), 0 when it is not (or is for another
 * machine), a negative errno. */
static int try_path(struct resolver *rs, const char *path, const char *name, int loader, int *ret)
{
	const struct object *by = &rs->objs[loader];
	char norm[PATH_MAX], why[PATH_MAX + 128];
	struct object *ob;
	struct stat st;
	int fd, rfd, r;

	r = elfdeps_normalize(path, norm, sizeof(norm));
	if (r < 0)
		return fail(rs, r, "library %s (needed by %s): cannot use the path %s", name, display(rs, by), path);
	r = trusted_open(norm, TRUSTED_FILE, rs->owners, &fd, &st, why, sizeof(why));
	if (r == -ENOENT || r == -ENOTDIR)
		return 0;
	if (r < 0)
		return fail(rs, r, "library %s (needed by %s): %s %s", name, display(rs, by), path, why);
	for (size_t i = 1; i < rs->n_objs; i++) {
		if (rs->objs[i].dev == st.st_dev && rs->objs[i].ino == st.st_ino) {
			r = add_name(&rs->objs[i], name);
			if (r == 0)
				r = add_file(rs, path, fd);
			else
				close(fd);
			*ret = (int)i;
			return r < 0 ? r : 1;
		}
	}
	if (rs->n_objs == ELFDEPS_MAX_OBJECTS + 1) {
		close(fd);
		return fail(rs, -E2BIG, "it loads more than %u libraries", ELFDEPS_MAX_OBJECTS);
	}
	rfd = trusted_reopen(fd);
	if (rfd < 0) {
		close(fd);
		return fail(rs, rfd, "library %s (needed by %s): cannot read %s", name, display(rs, by), path);
	}
	ob = &rs->objs[rs->n_objs];
	*ob = (struct object){ .loader = loader, .depth = by->depth + 1, .dev = st.st_dev, .ino = st.st_ino };
	r = parse(rs, rfd, ob, NULL, 0);
	close(rfd);
	if (r != 0) {
		object_clear(ob);
		*ob = (struct object){ 0 };
		close(fd);
		if (r == OTHER_ARCH)
			return 0;
		if (r != -ENOMEM) {
			char reason[256];

			snprintf(reason, sizeof(reason), "%s", rs->why);
			fail(rs, r, "library %s (needed by %s): %s: %s", name, display(rs, by), path, reason);
		}
		return r;
	}
	/* Counted from here on, so that what it holds is freed. */
	rs->n_objs++;
	ob->path = strdup(path);
	ob->origin = ob->path ? dir_of(ob->path) : NULL;
	r = ob->origin ? add_name(ob, name) : -ENOMEM;
	if (r == 0)
		r = add_file(rs, path, fd);
	else
		close(fd);
	*ret = (int)rs->n_objs - 1;
	return r < 0 ? r : 1;
}

/* Tries each directory of the colon-separated @list (a DT_RPATH or
 * DT_RUNPATH of object @owner) for @name. As try_path. */
static int try_list(struct resolver *rs, int owner, const char *list, const char *name, int loader, int *ret)
{
	const struct object *ob = &rs->objs[owner];
	char dir[PATH_MAX], path[PATH_MAX];

	for (const char *p = list; p;) {
		const char *end = strchrnul(p, ':');
		size_t n;
		int r;

		r = expand(rs, ob, p, end - p, dir, sizeof(dir));
		if (r < 0)
			return r;
		/* ld.so drops an entry it cannot expand. */
		if (r == 1 && !rs->dropped[0])
			snprintf(rs->dropped, sizeof(rs->dropped), "%.*s", (int)(end - p), p);
		p = *end ? end + 1 : NULL;
		if (r == 1)
			continue;
		/* Trailing slashes go (fillin_rpath); an empty entry is the
		 * working directory, which is / in the sandbox, as is the base
		 * of a relative one. */
		n = strlen(dir);
		while (n > 1 && dir[n - 1] == '/')
			dir[--n] = '\0';
		if (snprintf(path, sizeof(path), "%s%s/%s", dir[0] == '/' ? "" : "/", strcmp(dir, "/") ? dir : "",
			     name) >= (int)sizeof(path))
			return fail(rs, -ENAMETOOLONG, "library %s: a search path of %s is too long", name,
				    display(rs, ob));
		r = try_path(rs, path, name, loader, ret);
		if (r != 0)
			return r;
	}
	return 0;
}

static int check_name(struct resolver *rs, const char *name, const struct object *by)
{
	if (!name[0] || !strcmp(name, ".") || !strcmp(name, ".."))
		return fail(rs, -EINVAL, "%s needs a library named '%s', which is not a file name", display(rs, by), name);
	if (!strchr(name, '/') && strlen(name) > NAME_MAX)
		return fail(rs, -ENAMETOOLONG, "%s needs a library with too long a name", display(rs, by));
	if (strchr(name, '/') && name[0] != '/')
		return fail(rs, -EINVAL, "%s needs %s, a relative path", display(rs, by), name);
	return 0;
}

/* _dl_map_object for @name, needed by object @loader (its dynamic string
 * tokens expanded, not loaded yet). */
static int search(struct resolver *rs, const char *name, int loader)
{
	const struct object *by = &rs->objs[loader];
	char path[PATH_MAX];
	const char *cached;
	int idx, r;

	if (by->depth + 1 > ELFDEPS_MAX_DEPTH)
		return fail(rs, -ELOOP, "libraries nest more than %u deep (%s needed by %s)", ELFDEPS_MAX_DEPTH, name,
			    display(rs, by));
	if (strchr(name, '/')) {
		r = try_path(rs, name, name, loader, &idx);
		goto out;
	}
	if (!by->runpath) {
		for (int l = loader; l >= 0; l = rs->objs[l].loader) {
			if (!rs->objs[l].rpath)
				continue;
			r = try_list(rs, l, rs->objs[l].rpath, name, loader, &idx);
			if (r != 0)
				goto out;
		}
	}
	if (by->runpath) {
		r = try_list(rs, loader, by->runpath, name, loader, &idx);
		if (r != 0)
			goto out;
	}
	r = 0;
	if (by->nodeflib)
		goto out;
	r = cache_lookup(rs, name, &cached);
	if (r == 0 && cached)
		r = try_path(rs, cached, name, loader, &idx);
	for (size_t i = 0; r == 0 && rs->s->dirs[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", rs->s->dirs[i], name);
		r = try_path(rs, path, name, loader, &idx);
	}
out:
	if (r == 0)
		return fail(rs, -ENOENT, "cannot find library %s (needed by %s)%s%s%s", name, display(rs, by),
			    rs->dropped[0] ? "; the program's search path entry " : "", rs->dropped,
			    rs->dropped[0] ? " is unusable in the sandbox, which has no /proc to tell its $ORIGIN" : "");
	return r < 0 ? r : 0;
}

/* One DT_NEEDED entry of object @loader (dl-deps.c: expanded, then loaded
 * unless a loaded object answers to the name). */
static int need(struct resolver *rs, const char *raw, int loader)
{
	const struct object *by = &rs->objs[loader];
	char name[PATH_MAX];
	int r;

	r = expand(rs, by, raw, strlen(raw), name, sizeof(name));
	if (r == 1)
		return fail(rs, -ENOENT, "%s needs %s, but its $ORIGIN is unknown in the sandbox (it has no /proc)",
			    display(rs, by), raw);
	if (r == 0)
		r = check_name(rs, name, by);
	if (r < 0 || find_loaded(rs, name) >= 0)
		return r;
	return search(rs, name, loader);
}

/* The interpreter, which the kernel opens at its PT_INTERP path. */
static int add_interp(struct resolver *rs, const char *interp)
{
	char norm[PATH_MAX], why[PATH_MAX + 128];
	struct object *ob = &rs->objs[rs->n_objs];
	struct stat st;
	int fd, rfd, r;

	if (interp[0] != '/' || elfdeps_normalize(interp, norm, sizeof(norm)) < 0)
		return fail(rs, -EINVAL, "its interpreter %s is not an absolute path", interp);
	r = trusted_open(norm, TRUSTED_FILE, rs->owners, &fd, &st, why, sizeof(why));
	if (r < 0)
		return fail(rs, r, "its interpreter %s %s", interp, why);
	rfd = trusted_reopen(fd);
	if (rfd < 0) {
		close(fd);
		return fail(rs, rfd, "cannot read its interpreter %s", interp);
	}
	*ob = (struct object){ .loader = -1, .dev = st.st_dev, .ino = st.st_ino };
	r = parse(rs, rfd, ob, NULL, 0);
	close(rfd);
	if (r == OTHER_ARCH)
		r = fail(rs, -ENOEXEC, "it is for another machine");
	if (r == 0) {
		ob->path = strdup(interp);
		r = ob->path ? 0 : -ENOMEM;
	}
	rs->interp = (int)rs->n_objs++;
	if (r < 0) {
		char reason[256];

		close(fd);
		snprintf(reason, sizeof(reason), "%s", rs->why);
		return r == -ENOMEM ? r : fail(rs, r, "its interpreter %s: %s", interp, reason);
	}
	return add_file(rs, interp, fd);
}

struct elfdeps *elfdeps_free(struct elfdeps *d)
{
	if (!d)
		return NULL;
	for (size_t i = 0; i < d->n_files; i++) {
		free(d->files[i].path);
		close(d->files[i].fd);
	}
	free(d->files);
	free(d);
	return NULL;
}

static int resolve(struct resolver *rs, int fd)
{
	char interp[PATH_MAX];
	int r;

	rs->objs[0].loader = -1;
	rs->n_objs = 1;
	r = parse(rs, fd, &rs->objs[0], interp, sizeof(interp));
	if (r == OTHER_ARCH)
		return fail(rs, -ENOEXEC, "it is not a program for this machine");
	if (r < 0 || !interp[0])
		return r;
	r = add_interp(rs, interp);
	if (r == 0)
		r = open_cache(rs);
	/* Breadth-first, as _dl_map_object_deps loads them. The interpreter
	 * needs nothing. */
	for (size_t i = 0; r == 0 && i < rs->n_objs; i++) {
		for (size_t k = 0; r == 0 && (int)i != rs->interp && k < rs->objs[i].n_needed; k++)
			r = need(rs, rs->objs[i].needed[k], (int)i);
	}
	return r;
}

int elfdeps_resolve(int fd, const char *name, const struct elfdeps_search *s, const struct trusted_owners *o,
		    struct elfdeps **ret, char *why, size_t len)
{
	struct resolver *rs;
	int r;

	if (elf_version(EV_CURRENT) == EV_NONE) {
		snprintf(why, len, "libelf: %s", elf_errmsg(-1));
		return -ENOSYS;
	}
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	*rs = (struct resolver){ .s = s, .owners = o, .name = name, .interp = -1, .why = why, .len = len };
	rs->out = calloc(1, sizeof(*rs->out));
	if (rs->out)
		rs->out->files = calloc(ELFDEPS_MAX_OBJECTS + 2, sizeof(*rs->out->files));
	r = rs->out && rs->out->files ? resolve(rs, fd) : -ENOMEM;
	if (r == -ENOMEM)
		snprintf(why, len, "out of memory");
	for (size_t i = 0; i < rs->n_objs; i++)
		object_clear(&rs->objs[i]);
	free(rs->cache.data);
	if (r < 0)
		rs->out = elfdeps_free(rs->out);
	*ret = rs->out;
	free(rs);
	return r;
}
