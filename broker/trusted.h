/* Opening a host file that ioreq-launch will put into a device's sandbox.
 *
 * The launcher runs with the broker's privileges on the host's filesystem
 * and binds what it opens into a device's root. A path can be changed under
 * it by anyone who may write to a directory on the way (a RUNPATH into
 * /tmp, a crafted DT_NEEDED), so a path is resolved once with realpath
 * (lstat and readlink: nothing is opened), then opened with
 * openat2(RESOLVE_NO_SYMLINKS) as O_PATH: a symlink swapped in meanwhile
 * makes the open fail, and an O_PATH open has no side effect even on a
 * device node or a FIFO. The file behind the fd is then checked, and it is
 * the fd that gets bound, never the path again. */
#ifndef IOREQ_TRUSTED_H
#define IOREQ_TRUSTED_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

enum trusted_kind {
	TRUSTED_FILE,    /* a regular file: a program, a library, ld.so.cache */
	TRUSTED_DIR,     /* a directory: the broker's socket directory */
	TRUSTED_DEVNULL, /* the character device 1:3, whoever owns it */
};

/* Whose files are trusted: root's and the launcher's own. In a user
 * namespace (an unprivileged broker's) root is not mapped and shows as
 * the overflow uid, like every other unmapped owner: that one is then
 * trusted too, for want of a way to tell them apart. */
struct trusted_owners {
	uid_t uid;      /* the launcher's euid when it started */
	uid_t unmapped; /* the overflow uid in a user namespace, else (uid_t)-1 */
};

/* The owners for this process: its euid, and the overflow uid when
 * /proc/self/uid_map is not the initial namespace's identity map. */
int trusted_owners_get(struct trusted_owners *ret);

/* Opens absolute @path as an O_PATH|O_CLOEXEC fd on the file it names and
 * checks it: of @kind; owned by a trusted owner and writable by neither
 * group nor others (except /dev/null, which is checked by device number).
 * Returns 0 with the fd in *ret_fd and its status in *ret_st; -ENOENT or
 * -ENOTDIR when the path does not exist; another negative errno with the
 * reason in @why, which the errno completes ("is a directory, not a
 * regular file", "is owned by uid 1000, ...", "cannot be resolved"). */
int trusted_open(const char *path, enum trusted_kind kind, const struct trusted_owners *o, int *ret_fd,
		 struct stat *ret_st, char *why, size_t len);

/* A readable (O_RDONLY|O_CLOEXEC) fd on the regular file behind the O_PATH
 * fd @fd, reopened through /proc/self/fd: the same file, not its path. */
int trusted_reopen(int fd);

#endif
