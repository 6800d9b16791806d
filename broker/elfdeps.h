/* What a dynamically linked program loads, found by reading ELF headers the
 * way glibc's ld.so searches: nothing of the program is executed.
 *
 * ld.so runs inside the device's sandbox, whose root holds only what
 * ioreq-launch mounts there. So the answer is, for the interpreter
 * (PT_INTERP, opened by the kernel), every library and /etc/ld.so.cache, the
 * path at which ld.so will open it in the sandbox and an O_PATH fd on the
 * checked host file (trusted.h) to mount there. The search follows glibc
 * 2.36's elf/dl-load.c and elf/dl-deps.c:
 *
 *  - breadth-first from the program; a name already loaded (as requested,
 *    by path or by DT_SONAME) is not searched again, and a file already
 *    loaded under another path is the same object;
 *  - a DT_NEEDED with a slash is a path; otherwise: the DT_RPATH of the
 *    object that needs it and of the objects that loaded it, up to the
 *    program, unless the needing object has a DT_RUNPATH (an object with
 *    both has only its DT_RUNPATH); never LD_LIBRARY_PATH (the device's
 *    environment has none); the needing object's DT_RUNPATH;
 *    /etc/ld.so.cache ("glibc-ld.so.cache1.1"); the default directories;
 *    the last two not for an object marked DF_1_NODEFLIB;
 *  - a candidate of another ELF class or machine is skipped, as ld.so does;
 *    anything else wrong with the first candidate found is an error.
 *  - $ORIGIN (${ORIGIN}) of a library is the directory of the path it was
 *    found at. The program runs from a memfd in a root without /proc, where
 *    ld.so cannot know its $ORIGIN: like ld.so, the answer drops its
 *    DT_RPATH/DT_RUNPATH entries that use it (and says so if a library is
 *    then missing); a DT_NEEDED of the program that uses it is an error;
 *  - relative search directories are relative to the sandbox's working
 *    directory, /.
 *
 * Refused with a message rather than guessed: $LIB and $PLATFORM, cache
 * entries for glibc-hwcaps or legacy hwcap subdirectories, DT_FILTER and
 * DT_AUXILIARY, a relative PT_INTERP or DT_NEEDED path. Not modelled, as it
 * cannot matter: glibc-hwcaps subdirectories of search directories, which
 * do not exist in the sandbox. Bounded: ELFDEPS_MAX_OBJECTS libraries,
 * ELFDEPS_MAX_DEPTH levels, ELFDEPS_MAX_DYNAMIC dynamic entries each. */
#ifndef IOREQ_ELFDEPS_H
#define IOREQ_ELFDEPS_H

#include <stddef.h>

#include "trusted.h"

#define ELFDEPS_MAX_OBJECTS 128 /* the interpreter and the libraries */
#define ELFDEPS_MAX_DEPTH 16    /* program -> library -> library ... */
#define ELFDEPS_MAX_DYNAMIC 4096

/* Where ld.so looks besides what the objects name. */
struct elfdeps_search {
	const char *cache;        /* ld.so.cache; NULL: none */
	const char *const *dirs;  /* the default directories, NULL-terminated */
};

/* This system's, as `ld.so --help` lists them. */
extern const struct elfdeps_search elfdeps_system;

struct elfdeps_file {
	char *path; /* absolute, as ld.so (the kernel, for the interpreter)
		     * spells it: it may hold "." and ".." from $ORIGIN/..;
		     * resolved in the sandbox, its directories are real */
	int fd;     /* O_PATH|O_CLOEXEC on the checked host file */
};

struct elfdeps {
	struct elfdeps_file *files; /* the interpreter, ld.so.cache, then
				     * the libraries in load order */
	size_t n_files;
};

/* Resolves what the ELF program open (readable) at @fd loads; @name names
 * it in messages. Returns 0 and a list in *ret (nothing for a static
 * program), or a negative errno with the reason in @why, e.g. "cannot find
 * library libfoo.so.1 (needed by /usr/lib/libbar.so.2)". */
int elfdeps_resolve(int fd, const char *name, const struct elfdeps_search *s, const struct trusted_owners *o,
		    struct elfdeps **ret, char *why, size_t len);

/* @path with "//", "." and ".." resolved lexically, as the kernel resolves
 * them in the sandbox, where every directory is real: "/a/b/../c" is
 * "/a/c" and "/.." is "/". 0 or -EINVAL (relative), -ENAMETOOLONG. */
int elfdeps_normalize(const char *path, char *out, size_t len);

/* Closes the fds; NULL is fine. Returns NULL. */
struct elfdeps *elfdeps_free(struct elfdeps *d);

#endif
