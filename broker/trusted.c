#include "trusted.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/openat2.h>

/* What a user namespace's own files show for an owner it does not map. */
#define OVERFLOW_UID_DEFAULT 65534

static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

int trusted_owners_get(struct trusted_owners *ret)
{
	unsigned inside, outside, count;
	char buf[256];
	int r;

	ret->uid = geteuid();
	ret->unmapped = (uid_t)-1;
	r = read_small("/proc/self/uid_map", buf, sizeof(buf));
	if (r < 0)
		return r;
	if (sscanf(buf, "%u %u %u", &inside, &outside, &count) == 3 && inside == 0 && outside == 0 &&
	    count == 4294967295U)
		return 0;
	ret->unmapped = OVERFLOW_UID_DEFAULT;
	if (read_small("/proc/sys/kernel/overflowuid", buf, sizeof(buf)) == 0)
		ret->unmapped = (uid_t)strtoul(buf, NULL, 10);
	return 0;
}

static int check(const struct stat *st, enum trusted_kind kind, const struct trusted_owners *o, char *why,
		 size_t len)
{
	switch (kind) {
	case TRUSTED_FILE:
		if (S_ISREG(st->st_mode))
			break;
		snprintf(why, len, "is %s, not a regular file", S_ISDIR(st->st_mode) ? "a directory" : "special");
		return S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
	case TRUSTED_DIR:
		if (S_ISDIR(st->st_mode))
			break;
		snprintf(why, len, "is not a directory");
		return -ENOTDIR;
	case TRUSTED_DEVNULL:
		/* A device node's owner and mode say nothing about what it
		 * reaches: its number does. */
		if (S_ISCHR(st->st_mode) && st->st_rdev == makedev(1, 3))
			return 0;
		snprintf(why, len, "is not the null device (character device 1:3)");
		return -EINVAL;
	}
	if (st->st_uid != 0 && st->st_uid != o->uid && st->st_uid != o->unmapped) {
		snprintf(why, len, "is owned by uid %u, neither root nor uid %u", (unsigned)st->st_uid, (unsigned)o->uid);
		return -EPERM;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, len, "is writable by its group or others (mode %04o)", (unsigned)(st->st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int trusted_open(const char *path, enum trusted_kind kind, const struct trusted_owners *o, int *ret_fd,
		 struct stat *ret_st, char *why, size_t len)
{
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_NO_SYMLINKS,
	};
	char *real, more[128];
	int fd, r;

	if (path[0] != '/') {
		snprintf(why, len, "is not an absolute path");
		return -EINVAL;
	}
	real = realpath(path, NULL);
	if (!real) {
		r = -errno;
		snprintf(why, len, "cannot be resolved");
		return r;
	}
	fd = (int)syscall(SYS_openat2, AT_FDCWD, real, &how, sizeof(how));
	if (fd < 0) {
		r = -errno;
		/* ELOOP: a symlink appeared where realpath found none. */
		snprintf(why, len, "%s %s", r == -ELOOP ? "changed while being opened, at" : "cannot be opened as", real);
		free(real);
		return r;
	}
	if (fstat(fd, ret_st) < 0) {
		r = -errno;
		snprintf(more, sizeof(more), "cannot be examined");
	} else {
		r = check(ret_st, kind, o, more, sizeof(more));
	}
	if (r < 0) {
		if (strcmp(real, path))
			snprintf(why, len, "resolves to %s, which %s", real, more);
		else
			snprintf(why, len, "%s", more);
		close(fd);
	} else {
		*ret_fd = fd;
	}
	free(real);
	return r;
}

int trusted_reopen(int fd)
{
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	return r < 0 ? -errno : r;
}
