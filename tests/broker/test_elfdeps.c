/* elfdeps: what a program loads, found without executing anything.
 *
 * On real programs (ours in build/bin and build/tests, and system ones) the
 * answer must be what `ld.so --list` prints for them, run here on these
 * trusted binaries only. On ELF files this test writes itself, every hostile
 * shape the launcher may be handed: bad PT_INTERP, DT_NEEDED names that try
 * to reach / or a directory, loops, huge counts, truncated headers, and the
 * search rules (DT_RPATH, DT_RUNPATH, $ORIGIN, DF_1_NODEFLIB, the cache). */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "elfdeps.h"

#define LDSO "/lib64/ld-linux-x86-64.so.2"

static char dir[64];
static const struct trusted_owners root = { .uid = 0, .unmapped = (uid_t)-1 };
static const char *const no_dirs[] = { NULL };
/* Only what the objects name: the host's cache and directories stay out. */
static const struct elfdeps_search bare = { .cache = NULL, .dirs = no_dirs };

static const char *at(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *at(const char *fmt, ...)
{
	static char buf[8][PATH_MAX + 64];
	static int next;
	char *p = buf[next++ % 8], rel[PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(p, PATH_MAX + 64, "%s/%s", dir, rel);
	return p;
}

static int setup(void **state)
{
	if (geteuid() != 0) {
		print_message("needs root (files owned by other uids): skipped\n");
		exit(77);
	}
	umask(022);
	snprintf(dir, sizeof(dir), "/tmp/ioreq-elfdeps.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

/* ---- crafted ELF files ---- */

struct spec {
	const char *interp;
	uint64_t interp_size; /* p_filesz; 0: the string and its NUL */
	const char *const *needed;
	size_t n_needed;
	const char *soname, *rpath, *runpath;
	uint16_t type, machine;
	uint64_t flags_1;
	bool filter;
	size_t truncate; /* write only this many bytes; 0: all */
};

#define NEEDED(...) \
	.needed = (const char *const[]){ __VA_ARGS__ }, \
	.n_needed = sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *)

/* A minimal object: one PT_LOAD mapping the whole file at address 0, then
 * PT_INTERP and PT_DYNAMIC, as a linker lays them out. Never executed. */
static const char *write_elf(const char *path, const struct spec *s)
{
	size_t nph = 2 + (s->interp != NULL), cap = 3 * PATH_MAX + (s->interp ? strlen(s->interp) : 0);
	size_t off, strtab, strsz, interp_off = 0, dyn_off;
	uint64_t *str = calloc(s->n_needed + 3, sizeof(*str));
	uint8_t *buf;
	Elf64_Ehdr *eh;
	Elf64_Phdr *ph;
	Elf64_Dyn *dyn;
	size_t k = 0;
	FILE *f;

	for (size_t i = 0; i < s->n_needed; i++)
		cap += strlen(s->needed[i]) + 1 + sizeof(Elf64_Dyn);
	buf = calloc(1, cap);
	assert_non_null(buf);
	eh = (Elf64_Ehdr *)buf;
	ph = (Elf64_Phdr *)(buf + sizeof(*eh));
	assert_non_null(str);
	off = sizeof(*eh) + nph * sizeof(*ph);
	if (s->interp) {
		interp_off = off;
		strcpy((char *)buf + off, s->interp);
		off += s->interp_size ? s->interp_size : strlen(s->interp) + 1;
	}
	strtab = off;
	buf[off++] = '\0';
#define ADD_STR(x) (memcpy(buf + off, (x), strlen(x) + 1), off += strlen(x) + 1, off - strlen(x) - 1 - strtab)
	for (size_t i = 0; i < s->n_needed; i++)
		str[i] = ADD_STR(s->needed[i]);
	str[s->n_needed] = s->soname ? ADD_STR(s->soname) : 0;
	str[s->n_needed + 1] = s->rpath ? ADD_STR(s->rpath) : 0;
	str[s->n_needed + 2] = s->runpath ? ADD_STR(s->runpath) : 0;
#undef ADD_STR
	strsz = off - strtab;
	off = (off + 7) & ~(size_t)7;
	dyn_off = off;
	dyn = (Elf64_Dyn *)(buf + off);
	for (size_t i = 0; i < s->n_needed; i++)
		dyn[k++] = (Elf64_Dyn){ DT_NEEDED, { str[i] } };
	if (s->soname)
		dyn[k++] = (Elf64_Dyn){ DT_SONAME, { str[s->n_needed] } };
	if (s->rpath)
		dyn[k++] = (Elf64_Dyn){ DT_RPATH, { str[s->n_needed + 1] } };
	if (s->runpath)
		dyn[k++] = (Elf64_Dyn){ DT_RUNPATH, { str[s->n_needed + 2] } };
	if (s->flags_1)
		dyn[k++] = (Elf64_Dyn){ DT_FLAGS_1, { s->flags_1 } };
	if (s->filter)
		dyn[k++] = (Elf64_Dyn){ DT_FILTER, { str[s->n_needed] } };
	dyn[k++] = (Elf64_Dyn){ DT_STRTAB, { strtab } };
	dyn[k++] = (Elf64_Dyn){ DT_STRSZ, { strsz } };
	dyn[k++] = (Elf64_Dyn){ DT_NULL, { 0 } };
	off += k * sizeof(*dyn);

	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = s->type ? s->type : ET_DYN;
	eh->e_machine = s->machine ? s->machine : EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = nph;
	k = 0;
	ph[k++] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R, .p_filesz = off, .p_memsz = off, .p_align = 4096 };
	if (s->interp)
		ph[k++] = (Elf64_Phdr){ .p_type = PT_INTERP, .p_flags = PF_R, .p_offset = interp_off, .p_vaddr = interp_off,
					.p_filesz = s->interp_size ? s->interp_size : strlen(s->interp) + 1, .p_align = 1 };
	ph[k++] = (Elf64_Phdr){ .p_type = PT_DYNAMIC, .p_flags = PF_R, .p_offset = dyn_off, .p_vaddr = dyn_off,
				.p_filesz = (off - dyn_off), .p_memsz = (off - dyn_off), .p_align = 8 };

	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, s->truncate ? s->truncate : off, f), s->truncate ? s->truncate : off);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
	free(buf);
	free(str);
	return path;
}

/* A library needing @needed (NULL-terminated list) in @d, with @runpath. */
static const char *lib(const char *path, const char *runpath, const char *const *needed)
{
	size_t n = 0;

	while (needed && needed[n])
		n++;
	return write_elf(path, &(struct spec){ .needed = needed, .n_needed = n, .runpath = runpath });
}

static void mkdirs(const char *path)
{
	assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
}

/* ---- running the resolver ---- */

static int resolve(const char *path, const struct elfdeps_search *s, struct elfdeps **ret, char *why, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	assert_true(fd >= 0);
	why[0] = '\0';
	r = elfdeps_resolve(fd, path, s, &root, ret, why, len);
	close(fd);
	if (r == 0)
		assert_non_null(*ret);
	else
		assert_null(*ret);
	return r;
}

/* Resolves, expecting failure @err with @text in the reason. */
static void refused(const char *path, const struct elfdeps_search *s, int err, const char *text)
{
	struct elfdeps *d = NULL;
	char why[1024];
	int r = resolve(path, s, &d, why, sizeof(why));

	if (r != err || !strstr(why, text))
		print_error("%s: got %d (%s), expected %d with \"%s\"\n", path, r, why, err, text);
	assert_int_equal(r, err);
	assert_non_null(strstr(why, text));
}

static bool has(const struct elfdeps *d, const char *path)
{
	for (size_t i = 0; i < d->n_files; i++)
		if (!strcmp(d->files[i].path, path))
			return true;
	return false;
}

static struct elfdeps *resolved(const char *path, const struct elfdeps_search *s)
{
	struct elfdeps *d = NULL;
	char why[1024];
	int r = resolve(path, s, &d, why, sizeof(why));

	if (r != 0)
		print_error("%s: %s (%d)\n", path, why, r);
	assert_int_equal(r, 0);
	for (size_t i = 0; i < d->n_files; i++) {
		struct stat st;

		/* Every fd is an O_PATH fd on a regular file. */
		assert_int_equal(fstat(d->files[i].fd, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		assert_int_equal(fcntl(d->files[i].fd, F_GETFL) & O_PATH, O_PATH);
	}
	return d;
}

/* ---- real programs against ld.so --list ---- */

/* What `ld.so --list PROGRAM` prints, as paths, sorted; the vDSO has none. */
static size_t ldso_list(const char *program, char **out, size_t max)
{
	char cmd[PATH_MAX + 64], line[PATH_MAX + 128];
	size_t n = 0;
	FILE *p;

	/* What the device's environment holds: nothing (no LD_LIBRARY_PATH,
	 * no LD_PRELOAD). */
	snprintf(cmd, sizeof(cmd), "env -i %s --list '%s'", LDSO, program);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		char *s = strstr(line, " => "), *end;

		s = s ? s + 4 : line + strspn(line, " \t");
		if (*s != '/')
			continue;
		end = strstr(s, " (");
		assert_non_null(end);
		assert_true(n < max);
		out[n++] = strndup(s, end - s);
	}
	assert_int_equal(pclose(p), 0);
	return n;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_interp(const char *path)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool found = false;

	if (fd < 0)
		return false;
	if (pread(fd, &eh, sizeof(eh), 0) == sizeof(eh) && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
	    eh.e_ident[EI_CLASS] == ELFCLASS64)
		for (unsigned i = 0; !found && i < eh.e_phnum; i++)
			found = pread(fd, &ph, sizeof(ph), eh.e_phoff + i * sizeof(ph)) == sizeof(ph) &&
				ph.p_type == PT_INTERP;
	close(fd);
	return found;
}

static void compare_with_ldso(const char *program)
{
	char *want[256], *got[256];
	size_t n_want, n_got = 0;
	struct elfdeps *d = resolved(program, &elfdeps_system);

	n_want = ldso_list(program, want, 256);
	for (size_t i = 0; i < d->n_files; i++)
		if (strcmp(d->files[i].path, elfdeps_system.cache))
			got[n_got++] = d->files[i].path;
	assert_true(has(d, elfdeps_system.cache));
	qsort(want, n_want, sizeof(*want), cmp);
	qsort(got, n_got, sizeof(*got), cmp);
	if (n_want != n_got) {
		print_error("%s: ld.so lists %zu files, elfdeps %zu\n", program, n_want, n_got);
		for (size_t i = 0; i < n_got; i++)
			print_error("  elfdeps: %s\n", got[i]);
	}
	assert_int_equal(n_want, n_got);
	for (size_t i = 0; i < n_want; i++) {
		assert_string_equal(want[i], got[i]);
		free(want[i]);
	}
	print_message("%s: %zu files, as ld.so lists them\n", program, n_got);
	elfdeps_free(d);
}

static void compare_dir(const char *path, unsigned *count)
{
	DIR *d = opendir(path);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char p[PATH_MAX];
		struct stat st;

		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		if (stat(p, &st) < 0 || !S_ISREG(st.st_mode) || !has_interp(p))
			continue;
		compare_with_ldso(p);
		(*count)++;
	}
	closedir(d);
}

/* ld.so reads /etc/ld.so.preload, which the sandbox does not have. */
static bool ldso_comparable(void)
{
	if (access("/etc/ld.so.preload", F_OK) < 0)
		return true;
	print_message("/etc/ld.so.preload exists: ld.so --list would list more than the sandbox loads; skipped\n");
	return false;
}

static void test_our_programs(void **state)
{
	unsigned n = 0;

	if (!ldso_comparable())
		return;
	compare_dir(IOREQ_BINDIR, &n);
	compare_dir(IOREQ_BINDIR "/../tests", &n);
	assert_true(n >= 8);
}

static void test_system_programs(void **state)
{
	static const char *const programs[] = {
		"/bin/true", "/bin/ls", "/usr/bin/cmake", "/usr/bin/ssh", "/usr/bin/gdb", "/usr/bin/valgrind",
		"/usr/bin/systemd-analyze", "/usr/bin/clang-14", "/usr/lib/llvm-14/bin/clang",
	};
	unsigned n = 0;

	if (!ldso_comparable())
		return;
	for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); i++) {
		if (access(programs[i], X_OK) < 0 || !has_interp(programs[i]))
			continue;
		/* clang's own RUNPATH is $ORIGIN/../lib: in the sandbox ld.so
		 * cannot use it, while --list here can; its libraries are in
		 * the cache too, so both find the same files. */
		compare_with_ldso(programs[i]);
		n++;
	}
	assert_true(n >= 2);
}

/* Mounted at the soname path ld.so opens, with an fd on the versioned file
 * the host's symlink names. */
static void test_soname_symlink(void **state)
{
	struct elfdeps *d;
	struct stat st, real;

	mkdirs(at("l"));
	lib(at("l/libv.so.1.2.3"), NULL, NULL);
	assert_int_equal(symlink("libv.so.1.2.3", at("l/libv.so.1")), 0);
	write_elf(at("prog"), &(struct spec){ .interp = LDSO, .runpath = at("l"), NEEDED("libv.so.1") });
	d = resolved(at("prog"), &bare);
	assert_int_equal(d->n_files, 2);
	assert_string_equal(d->files[0].path, LDSO);
	assert_string_equal(d->files[1].path, at("l/libv.so.1"));
	assert_int_equal(fstat(d->files[1].fd, &st), 0);
	assert_int_equal(stat(at("l/libv.so.1.2.3"), &real), 0);
	assert_int_equal(st.st_ino, real.st_ino);
	elfdeps_free(d);
}

static void test_static_program(void **state)
{
	struct elfdeps *d;

	write_elf(at("static"), &(struct spec){ .type = ET_EXEC });
	d = resolved(at("static"), &elfdeps_system);
	assert_int_equal(d->n_files, 0);
	elfdeps_free(d);
}

/* ---- PT_INTERP ---- */

static void test_bad_interp(void **state)
{
	/* A script that leaves a marker if it ever runs. */
	FILE *f = fopen(at("interp.sh"), "w");
	char big[PATH_MAX + 10];

	assert_non_null(f);
	fprintf(f, "#!/bin/sh\ntouch %s\n", at("ran"));
	fclose(f);
	assert_int_equal(chmod(at("interp.sh"), 0755), 0);
	write_elf(at("p1"), &(struct spec){ .interp = at("interp.sh"), NEEDED("libc.so.6") });
	refused(at("p1"), &elfdeps_system, -ENOEXEC, "is not an ELF file");
	assert_int_equal(access(at("ran"), F_OK), -1);

	write_elf(at("p2"), &(struct spec){ .interp = "lib64/ld-linux-x86-64.so.2" });
	refused(at("p2"), &elfdeps_system, -EINVAL, "not an absolute path");
	write_elf(at("p3"), &(struct spec){ .interp = "/" });
	refused(at("p3"), &elfdeps_system, -EISDIR, "is a directory");
	assert_int_equal(symlink("/", at("root")), 0);
	write_elf(at("p4"), &(struct spec){ .interp = at("root") });
	refused(at("p4"), &elfdeps_system, -EISDIR, "resolves to /, which is a directory");
	write_elf(at("p5"), &(struct spec){ .interp = at("missing") });
	refused(at("p5"), &elfdeps_system, -ENOENT, "cannot be resolved");
	/* Not terminated within p_filesz, empty, longer than the file. */
	write_elf(at("p6"), &(struct spec){ .interp = LDSO, .interp_size = strlen(LDSO) });
	refused(at("p6"), &elfdeps_system, -ENOEXEC, "PT_INTERP");
	write_elf(at("p7"), &(struct spec){ .interp = "", .interp_size = 4 });
	refused(at("p7"), &elfdeps_system, -ENOEXEC, "PT_INTERP");
	memset(big, 'a', sizeof(big));
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	write_elf(at("p8"), &(struct spec){ .interp = big });
	refused(at("p8"), &elfdeps_system, -ENOEXEC, "PT_INTERP");
	/* An interpreter for another machine. */
	write_elf(at("arm.so"), &(struct spec){ .machine = EM_AARCH64 });
	write_elf(at("p9"), &(struct spec){ .interp = at("arm.so") });
	refused(at("p9"), &elfdeps_system, -ENOEXEC, "another machine");
}

/* ---- DT_NEEDED ---- */

static void test_needed_names(void **state)
{
	mkdirs(at("l"));
	/* Straight at /, at a relative path out of the sandbox's /, at a file
	 * that is no library, at nothing. */
	write_elf(at("n1"), &(struct spec){ .interp = LDSO, NEEDED("/") });
	refused(at("n1"), &bare, -EISDIR, "is a directory");
	write_elf(at("n2"), &(struct spec){ .interp = LDSO, NEEDED("../../etc/passwd") });
	refused(at("n2"), &bare, -EINVAL, "a relative path");
	write_elf(at("n3"), &(struct spec){ .interp = LDSO, NEEDED("/etc/passwd") });
	refused(at("n3"), &bare, -ENOEXEC, "is not an ELF file");
	write_elf(at("n4"), &(struct spec){ .interp = LDSO, NEEDED("..") });
	refused(at("n4"), &bare, -EINVAL, "not a file name");
	write_elf(at("n5"), &(struct spec){ .interp = LDSO, NEEDED("") });
	refused(at("n5"), &bare, -EINVAL, "not a file name");
	write_elf(at("n6"), &(struct spec){ .interp = LDSO, NEEDED("libnothing.so.9") });
	refused(at("n6"), &elfdeps_system, -ENOENT, "cannot find library libnothing.so.9 (needed by ");
	/* What broke the --list parser: a name that reads like its output. */
	write_elf(at("n7"), &(struct spec){ .interp = LDSO, NEEDED("libx.so => / (0x0)") });
	refused(at("n7"), &elfdeps_system, -EINVAL, "needs libx.so => / (0x0), a relative path");
	/* A name that resolves to a directory, and a symlink to /. */
	mkdirs(at("l/libdir.so"));
	assert_int_equal(symlink("/", at("l/libroot.so")), 0);
	write_elf(at("n8"), &(struct spec){ .interp = LDSO, .runpath = at("l"), NEEDED("libdir.so") });
	refused(at("n8"), &bare, -EISDIR, "is a directory");
	write_elf(at("n9"), &(struct spec){ .interp = LDSO, .runpath = at("l"), NEEDED("libroot.so") });
	refused(at("n9"), &bare, -EISDIR, "resolves to /, which is a directory");
	/* A device node, a FIFO: never opened for reading. */
	write_elf(at("n10"), &(struct spec){ .interp = LDSO, NEEDED("/dev/watchdog") });
	refused(at("n10"), &bare, -ENOENT, "cannot find library /dev/watchdog");
	assert_int_equal(mkfifo(at("l/libfifo.so"), 0644), 0);
	write_elf(at("n11"), &(struct spec){ .interp = LDSO, .runpath = at("l"), NEEDED("libfifo.so") });
	refused(at("n11"), &bare, -EINVAL, "not a regular file");
	write_elf(at("n12"), &(struct spec){ .interp = LDSO, NEEDED("/dev/zero") });
	refused(at("n12"), &bare, -EINVAL, "not a regular file");
}

static void test_untrusted_library(void **state)
{
	mkdirs(at("u"));
	lib(at("u/libother.so"), NULL, NULL);
	assert_int_equal(chown(at("u/libother.so"), 1000, 1000), 0);
	lib(at("u/libgw.so"), NULL, NULL);
	assert_int_equal(chmod(at("u/libgw.so"), 0775), 0);
	write_elf(at("t1"), &(struct spec){ .interp = LDSO, .runpath = at("u"), NEEDED("libother.so") });
	refused(at("t1"), &bare, -EPERM, "owned by uid 1000");
	write_elf(at("t2"), &(struct spec){ .interp = LDSO, .runpath = at("u"), NEEDED("libgw.so") });
	refused(at("t2"), &bare, -EPERM, "writable by its group or others");
}

static void test_loops(void **state)
{
	struct elfdeps *d;

	mkdirs(at("l"));
	/* A needs B needs A; C needs itself: each loaded once. */
	lib(at("l/liba.so"), at("l"), (const char *const[]){ "libb.so", NULL });
	lib(at("l/libb.so"), at("l"), (const char *const[]){ "liba.so", NULL });
	lib(at("l/libc-self.so"), at("l"), (const char *const[]){ "libc-self.so", NULL });
	write_elf(at("prog"), &(struct spec){ .interp = LDSO, .runpath = at("l"), NEEDED("liba.so", "libc-self.so") });
	d = resolved(at("prog"), &bare);
	assert_int_equal(d->n_files, 4);
	assert_true(has(d, at("l/liba.so")) && has(d, at("l/libb.so")) && has(d, at("l/libc-self.so")));
	elfdeps_free(d);
	/* A symlink loop. */
	assert_int_equal(symlink("libloop2.so", at("l/libloop1.so")), 0);
	assert_int_equal(symlink("libloop1.so", at("l/libloop2.so")), 0);
	write_elf(at("loop"), &(struct spec){ .interp = LDSO, .runpath = at("l"), NEEDED("libloop1.so") });
	refused(at("loop"), &bare, -ELOOP, "libloop1.so");
}

static void test_huge_counts(void **state)
{
	enum { MANY = ELFDEPS_MAX_DYNAMIC + 10 };
	const char **names = calloc(MANY, sizeof(*names));
	char name[64];
	struct elfdeps *d;

	assert_non_null(names);
	mkdirs(at("h"));
	lib(at("h/libone.so"), NULL, NULL);
	for (size_t i = 0; i < MANY; i++)
		names[i] = "libone.so";
	/* Thousands of entries naming one library: one library. */
	write_elf(at("same"), &(struct spec){ .interp = LDSO, .runpath = at("h"), .needed = names, .n_needed = 4000 });
	d = resolved(at("same"), &bare);
	assert_int_equal(d->n_files, 2);
	elfdeps_free(d);
	/* More dynamic entries than any real object has. */
	write_elf(at("many"), &(struct spec){ .interp = LDSO, .runpath = at("h"), .needed = names, .n_needed = MANY });
	refused(at("many"), &bare, -E2BIG, "more than 4096 dynamic entries");
	/* More libraries than the cap. */
	for (size_t i = 0; i < ELFDEPS_MAX_OBJECTS + 1; i++) {
		snprintf(name, sizeof(name), "h/libn%zu.so", i);
		lib(at("%s", name), NULL, NULL);
		names[i] = strdup(name + 2);
	}
	write_elf(at("wide"), &(struct spec){ .interp = LDSO, .runpath = at("h"), .needed = names,
					      .n_needed = ELFDEPS_MAX_OBJECTS + 1 });
	refused(at("wide"), &bare, -E2BIG, "more than 128 libraries");
	for (size_t i = 0; i < ELFDEPS_MAX_OBJECTS + 1; i++)
		free((char *)names[i]);
	/* Deeper than the cap: each library needs the next. */
	for (int i = 0; i < ELFDEPS_MAX_DEPTH + 2; i++) {
		char next[32];

		snprintf(name, sizeof(name), "h/libd%d.so", i);
		snprintf(next, sizeof(next), "libd%d.so", i + 1);
		lib(at("%s", name), at("h"), i == ELFDEPS_MAX_DEPTH + 1 ? NULL : (const char *const[]){ next, NULL });
	}
	write_elf(at("deep"), &(struct spec){ .interp = LDSO, .runpath = at("h"), NEEDED("libd0.so") });
	refused(at("deep"), &bare, -ELOOP, "nest more than 16 deep");
	free(names);
}

static void test_truncated(void **state)
{
	struct spec s = { .interp = LDSO, NEEDED("libc.so.6") };
	const size_t ehdr = sizeof(Elf64_Ehdr), phdrs = ehdr + 3 * sizeof(Elf64_Phdr);
	struct stat st;

	s.truncate = 10;
	refused(write_elf(at("t1"), &s), &elfdeps_system, -ENOEXEC, "not an ELF file");
	s.truncate = ehdr - 4;
	refused(write_elf(at("t2"), &s), &elfdeps_system, -ENOEXEC, "");
	s.truncate = ehdr + 20;
	refused(write_elf(at("t3"), &s), &elfdeps_system, -ENOEXEC, "program headers");
	/* PT_INTERP lies past the end. */
	s.truncate = phdrs + 4;
	refused(write_elf(at("t4"), &s), &elfdeps_system, -ENOEXEC, "PT_INTERP");
	/* The dynamic section, then the string table, past the end. */
	s = (struct spec){ .interp = LDSO, NEEDED("libc.so.6") };
	write_elf(at("full"), &s);
	assert_int_equal(stat(at("full"), &st), 0);
	for (size_t n = phdrs + strlen(LDSO) + 1; n < (size_t)st.st_size; n += 3) {
		struct elfdeps *d = NULL;
		char why[512];

		s.truncate = n;
		write_elf(at("t5"), &s);
		if (resolve(at("t5"), &elfdeps_system, &d, why, sizeof(why)) == 0)
			print_error("truncated to %zu bytes: resolved\n", n);
		assert_null(d);
	}
	/* A program for another machine. */
	write_elf(at("arm"), &(struct spec){ .interp = LDSO, .machine = EM_AARCH64 });
	refused(at("arm"), &elfdeps_system, -ENOEXEC, "not a program for this machine");
}

/* ---- the search ---- */

static void test_other_machine_skipped(void **state)
{
	char rp[2 * PATH_MAX];
	struct elfdeps *d;

	mkdirs(at("arm"));
	mkdirs(at("x86"));
	write_elf(at("arm/libm2.so"), &(struct spec){ .machine = EM_AARCH64 });
	lib(at("x86/libm2.so"), NULL, NULL);
	snprintf(rp, sizeof(rp), "%s:%s", at("arm"), at("x86"));
	write_elf(at("prog"), &(struct spec){ .interp = LDSO, .runpath = rp, NEEDED("libm2.so") });
	d = resolved(at("prog"), &bare);
	assert_true(has(d, at("x86/libm2.so")));
	assert_false(has(d, at("arm/libm2.so")));
	elfdeps_free(d);
}

/* DT_RPATH is inherited down the loading chain, DT_RUNPATH is not, and an
 * object with both has only its DT_RUNPATH. */
static void test_rpath_runpath(void **state)
{
	struct elfdeps *d;

	mkdirs(at("a"));
	mkdirs(at("b"));
	lib(at("a/libz.so"), NULL, NULL);
	lib(at("b/liby.so"), NULL, (const char *const[]){ "libz.so", NULL });
	/* The program's RPATH finds libz for liby. */
	{
		char rp[2 * PATH_MAX];

		snprintf(rp, sizeof(rp), "%s:%s", at("b"), at("a"));
		write_elf(at("r1"), &(struct spec){ .interp = LDSO, .rpath = rp, NEEDED("liby.so") });
		d = resolved(at("r1"), &bare);
		assert_true(has(d, at("a/libz.so")));
		elfdeps_free(d);
		/* Its RUNPATH does not. */
		write_elf(at("r2"), &(struct spec){ .interp = LDSO, .runpath = rp, NEEDED("liby.so") });
		refused(at("r2"), &bare, -ENOENT, "cannot find library libz.so (needed by ");
		/* Both: RUNPATH only. */
		write_elf(at("r3"), &(struct spec){ .interp = LDSO, .rpath = rp, .runpath = at("b"), NEEDED("liby.so") });
		refused(at("r3"), &bare, -ENOENT, "cannot find library libz.so");
	}
	/* DF_1_NODEFLIB: no cache, no default directories. */
	write_elf(at("r4"), &(struct spec){ .interp = LDSO, .flags_1 = DF_1_NODEFLIB, NEEDED("libc.so.6") });
	refused(at("r4"), &elfdeps_system, -ENOENT, "cannot find library libc.so.6");
	write_elf(at("r5"), &(struct spec){ .interp = LDSO, NEEDED("libc.so.6") });
	d = resolved(at("r5"), &elfdeps_system);
	assert_true(has(d, "/lib/x86_64-linux-gnu/libc.so.6"));
	elfdeps_free(d);
}

static void test_origin(void **state)
{
	struct elfdeps *d;

	mkdirs(at("o"));
	mkdirs(at("o/lib"));
	mkdirs(at("o/sub"));
	/* A library's $ORIGIN is where it was found; ".." is kept as ld.so
	 * spells the path. */
	lib(at("o/sub/libs.so"), NULL, NULL);
	lib(at("o/lib/libo.so"), "$ORIGIN/../sub", (const char *const[]){ "libs.so", NULL });
	write_elf(at("prog"), &(struct spec){ .interp = LDSO, .runpath = at("o/lib"), NEEDED("libo.so") });
	d = resolved(at("prog"), &bare);
	assert_true(has(d, at("o/lib/../sub/libs.so")));
	elfdeps_free(d);
	lib(at("o/lib/libo2.so"), "${ORIGIN}/../sub", (const char *const[]){ "libs.so", NULL });
	write_elf(at("prog2"), &(struct spec){ .interp = LDSO, .runpath = at("o/lib"), NEEDED("libo2.so") });
	d = resolved(at("prog2"), &bare);
	assert_true(has(d, at("o/lib/../sub/libs.so")));
	elfdeps_free(d);
	/* The program's own $ORIGIN is unknown in the sandbox: its entry is
	 * dropped, and the message says why. */
	write_elf(at("o/prog3"), &(struct spec){ .interp = LDSO, .runpath = "$ORIGIN/lib", NEEDED("libo.so") });
	refused(at("o/prog3"), &bare, -ENOENT, "$ORIGIN/lib is unusable in the sandbox");
	write_elf(at("o/prog4"), &(struct spec){ .interp = LDSO, NEEDED("$ORIGIN/lib/libo.so") });
	refused(at("o/prog4"), &bare, -ENOENT, "$ORIGIN is unknown in the sandbox");
	/* $LIB and $PLATFORM are not guessed. */
	write_elf(at("o/prog5"), &(struct spec){ .interp = LDSO, .runpath = "/usr/$LIB", NEEDED("libo.so") });
	refused(at("o/prog5"), &bare, -EOPNOTSUPP, "$LIB or $PLATFORM");
	/* A DT_NEEDED path from a library's $ORIGIN. */
	lib(at("o/lib/libo3.so"), NULL, (const char *const[]){ "$ORIGIN/../sub/libs.so", NULL });
	write_elf(at("prog6"), &(struct spec){ .interp = LDSO, .runpath = at("o/lib"), NEEDED("libo3.so") });
	d = resolved(at("prog6"), &bare);
	assert_true(has(d, at("o/lib/../sub/libs.so")));
	elfdeps_free(d);
}

/* One file under two names is one object, mounted at both paths. */
static void test_same_file_two_names(void **state)
{
	struct elfdeps *d;

	mkdirs(at("s"));
	lib(at("s/libreal.so.1"), NULL, NULL);
	assert_int_equal(symlink("libreal.so.1", at("s/libalias.so")), 0);
	write_elf(at("prog"), &(struct spec){ .interp = LDSO, .runpath = at("s"), NEEDED("libreal.so.1", "libalias.so") });
	d = resolved(at("prog"), &bare);
	assert_int_equal(d->n_files, 3);
	assert_true(has(d, at("s/libreal.so.1")) && has(d, at("s/libalias.so")));
	elfdeps_free(d);
}

static void test_filter_refused(void **state)
{
	mkdirs(at("f"));
	write_elf(at("f/libfilter.so"), &(struct spec){ .soname = "libfilter.so", .filter = true });
	write_elf(at("prog"), &(struct spec){ .interp = LDSO, .runpath = at("f"), NEEDED("libfilter.so") });
	refused(at("prog"), &bare, -EOPNOTSUPP, "DT_FILTER");
}

/* ---- ld.so.cache ---- */

struct entry {
	const char *key, *value;
	int32_t flags;
	uint64_t hwcap;
};

static const char *write_cache(const char *path, const struct entry *e, size_t n, size_t truncate)
{
	char buf[8192] = "glibc-ld.so.cache1.1";
	size_t strings = 48 + n * 24, off = strings;
	uint32_t nlibs = n;
	FILE *f;

	memcpy(buf + 20, &nlibs, 4);
	buf[28] = 2; /* little-endian */
	for (size_t i = 0; i < n; i++) {
		uint32_t key = off, value;
		uint8_t *en = (uint8_t *)buf + 48 + i * 24;

		strcpy(buf + off, e[i].key);
		off += strlen(e[i].key) + 1;
		value = off;
		strcpy(buf + off, e[i].value);
		off += strlen(e[i].value) + 1;
		memcpy(en, &e[i].flags, 4);
		memcpy(en + 4, &key, 4);
		memcpy(en + 8, &value, 4);
		memcpy(en + 16, &e[i].hwcap, 8);
	}
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, truncate ? truncate : off, f), truncate ? truncate : off);
	fclose(f);
	return path;
}

static void test_cache(void **state)
{
	const char *const dirs[] = { NULL };
	struct elfdeps_search s = { .dirs = dirs };
	char cache[PATH_MAX];
	struct elfdeps *d;

	snprintf(cache, sizeof(cache), "%s", at("ld.so.cache"));
	s.cache = cache;
	mkdirs(at("c"));
	lib(at("c/libcached.so.2"), NULL, NULL);
	lib(at("c/libother.so.2"), NULL, NULL);
	write_elf(at("prog"), &(struct spec){ .interp = LDSO, NEEDED("libcached.so.2") });
	/* The first entry for this machine wins; other flags are skipped. */
	write_cache(s.cache,
		    (const struct entry[]){ { "libcached.so.2", at("c/libother.so.2"), 0x0003, 0 },
					    { "libcached.so.2", at("c/libcached.so.2"), 0x0303, 0 },
					    { "libcached.so.2", at("c/libother.so.2"), 0x0303, 0 } },
		    3, 0);
	d = resolved(at("prog"), &s);
	assert_true(has(d, at("c/libcached.so.2")));
	assert_false(has(d, at("c/libother.so.2")));
	/* The cache is mounted too: ld.so reads the same file. */
	assert_true(has(d, s.cache));
	elfdeps_free(d);
	/* hwcap entries would be preferred by ld.so: refused. */
	write_cache(s.cache,
		    (const struct entry[]){ { "libcached.so.2", at("c/libother.so.2"), 0x0303, 1ULL << 62 },
					    { "libcached.so.2", at("c/libcached.so.2"), 0x0303, 0 } },
		    2, 0);
	refused(at("prog"), &s, -EOPNOTSUPP, "hwcap");
	/* Damaged: truncated entries, strings out of the file, bad magic. */
	write_cache(s.cache, (const struct entry[]){ { "libcached.so.2", at("c/libcached.so.2"), 0x0303, 0 } }, 1, 60);
	refused(at("prog"), &s, -EINVAL, "truncated");
	write_cache(s.cache, (const struct entry[]){ { "libcached.so.2", at("c/libcached.so.2"), 0x0303, 0 } }, 1,
		    48 + 24 + 4);
	refused(at("prog"), &s, -EINVAL, "outside the file");
	write_cache(s.cache, NULL, 0, 0);
	{
		int fd = open(s.cache, O_WRONLY | O_CLOEXEC);

		assert_int_equal(pwrite(fd, "ld.so-1.7.0", 11, 0), 11);
		close(fd);
	}
	refused(at("prog"), &s, -EINVAL, "not in glibc's format");
	/* Not trusted: refused, not skipped. */
	write_cache(s.cache, NULL, 0, 0);
	assert_int_equal(chmod(s.cache, 0666), 0);
	refused(at("prog"), &s, -EPERM, "writable by its group or others");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_our_programs),
		cmocka_unit_test(test_system_programs),
		cmocka_unit_test_setup_teardown(test_soname_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_static_program, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_interp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_needed_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_untrusted_library, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_machine_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rpath_runpath, setup, teardown),
		cmocka_unit_test_setup_teardown(test_origin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_file_two_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filter_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
	};

	return cmocka_run_group_tests_name("elfdeps", tests, NULL, NULL);
}
