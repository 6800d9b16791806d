/* ioreq-launch: puts one device program in its sandbox, then becomes it.
 *
 *   ioreq-launch --socket PATH --broker-pidfd FD [--user UID:GID] [--cgroup-fd FD]... [--pass-fds N]
 *                -- PROGRAM [ARGS...]
 *
 * ioreq-brokerd is multithreaded and nng is not fork-safe, so the broker does
 * no more than clone3 (new mount, pid, ipc, net and uts namespaces; when it
 * is not root, also a user namespace whose root is its own uid) and execute
 * this program. It runs single-threaded, as pid 1 of the new pid namespace,
 * and ends by executing PROGRAM: the device keeps the pid the broker cloned,
 * so the pid the broker authorises on the socket, waits for and kills is the
 * device itself, and when it dies its whole pid namespace dies with it.
 *
 * No code of PROGRAM runs before the last step, which is inside the sandbox:
 * what it loads is found by reading ELF headers (elfdeps.c), never by running
 * its loader, and every file it names is opened as an fd, checked and bound
 * from that fd (trusted.c).
 *
 * The steps, in an order each one needs:
 *  1. a session of our own: the device has no controlling terminal, so none
 *     to type into (TIOCSTI);
 *  2. into the cgroups of --cgroup-fd while we may write there, so that all
 *     that follows is charged to the device;
 *  3. PROGRAM copied into a sealed memfd of mode 0111: the device executes
 *     it but cannot read it, so the kernel starts it non-dumpable (exec's
 *     would_dump()), and what it runs cannot change under it;
 *  4. from that copy's ELF headers, its interpreter, its libraries and
 *     ld.so.cache; each, PATH's directory and /dev/null opened as O_PATH
 *     without following a symlink, and checked: regular files of root or
 *     ours, writable by neither group nor others; PATH's directory likewise;
 *     /dev/null by its device number;
 *  5. with --user (the broker is root), PATH's directory lets that gid in
 *     and its socket goes to that uid;
 *  6. a detached read-only mount cloned from each fd (open_tree), so that no
 *     path is resolved again; an empty tmpfs gets each clone at the path
 *     where ld.so or the kernel opens it (a library at its soname path even
 *     when the host's is a symlink to a versioned file), is made read-only,
 *     and we pivot into it; the old root is detached;
 *  7. a user namespace of our own where the device is uid 65534, mapped to
 *     --user's ids (else to ours): a helper child that is still privileged
 *     outside writes the maps, so that the namespace belongs to us, not to
 *     the device's uid, which then holds no capability over it (a process
 *     of that uid could otherwise ptrace the device); no capability in any
 *     set;
 *  8. rlimits, no_new_privs, die with the broker, keep fds 0-2 and the
 *     --pass-fds block only, the seccomp baseline (baseline.c), execveat of
 *     the memfd.
 *
 * --pass-fds N: fds 3 to 3 + N - 1 are the device's (guest memory, files,
 * eventfds: the broker opened them for it). They are checked first, before
 * anything else is done: each must be open and a regular file (a memfd or a
 * file), a block device or an eventfd, and --broker-pidfd and --cgroup-fd
 * must lie above them. They cross the exec as they are; nothing is bound
 * into the sandbox for them.
 *
 * Failures are reported on stderr (the broker's) and end with status 127.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>

#include "baseline.h"
#include "elfdeps.h"
#include "log.h"
#include "trusted.h"

#define LAUNCH_FAILED 127

/* Inside its user namespace every device is nobody. */
#define SANDBOX_ID 65534

/* Linux 6.3: an executable memfd must say so where vm.memfd_noexec asks. */
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

/* Where the new root is assembled: any directory will do, since every
 * source was cloned before the tmpfs covers it. */
#define STAGING "/tmp"

/* How each clone is mounted: what the device runs (its loader and
 * libraries), what it only reads, and /dev/null, a device node. */
#define ATTR_CODE (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
#define ATTR_DATA (ATTR_CODE | MOUNT_ATTR_NOEXEC)
#define ATTR_NULL (MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC)

/* The interpreter, the libraries, ld.so.cache, PATH's directory, /dev/null. */
#define MAX_BINDS (ELFDEPS_MAX_OBJECTS + 4)
#define MAX_CGROUPS 4
/* The broker's proc.c gives no more (with the pidfd and cgroup fds). */
#define MAX_PASS_FDS 187

static const struct rlimit_set {
	int resource;
	rlim_t value;
} limits[] = {
	/* nng takes a dozen fds (epoll, eventfds, the socket); a device none
	 * (but those passed, which set_limits adds). */
	{ RLIMIT_NOFILE, 64 },
	/* Threads count: nng starts about 14, a device one or two more. */
	{ RLIMIT_NPROC, 64 },
	/* An emulator needs some megabytes; every thread stack and malloc arena
	 * reserves address space, hence the margin. AddressSanitizer reserves
	 * terabytes of shadow: the sanitizer build leaves this one out. */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	{ RLIMIT_AS, 1ULL << 30 },
#endif
	{ RLIMIT_CORE, 0 },
	/* It creates no file; this bounds the UART log the broker hands it. */
	{ RLIMIT_FSIZE, 1ULL << 30 },
};

struct bind {
	const char *path; /* in the sandbox, as ld.so or the kernel spells it */
	char *norm;       /* the same, "." and ".." resolved: the mount point */
	int fd;           /* O_PATH on the checked host file (not ours to close) */
	unsigned attr;    /* MOUNT_ATTR_* set on the clone */
	int tree;         /* open_tree's detached clone */
	bool dir;
	bool walk_only;   /* another spelling of a mounted path: only its
			   * directories are needed */
};

struct launch {
	const char *socket;
	const char *program;
	char **argv;
	int broker_pidfd;
	int cgroups[MAX_CGROUPS];
	size_t n_cgroups;
	unsigned pass_fds;   /* fds 3 .. 3 + pass_fds - 1 go to the device */
	uint64_t mem_bytes;  /* of the memfds among them: the device may map them */
	bool set_user;
	uid_t uid;
	gid_t gid;
	int proc_self; /* our /proc/PID, for the id maps after the root is gone */
	struct trusted_owners owners;
	int exe;       /* the sealed copy of PROGRAM */
	struct elfdeps *deps;
	char sock_dir[PATH_MAX];
	int sock_dir_fd;
	int null_fd;
	struct bind binds[MAX_BINDS];
	size_t n_binds;
};

/* The device's whole environment: the library confines itself on seeing it.
 * Nothing of the broker's (no PATH: a sanitizer has no symbolizer to run). */
static char *const device_env[] = { "IOREQ_SANDBOX=strict", NULL };

static int fail(const struct launch *l, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(const struct launch *l, int err, const char *fmt, ...)
{
	char what[2 * PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_err("%s: %s: %s", l->program ? l->program : "?", what, strerror(err));
	return -err;
}

/* ---- 0. the fds for the device ---- */

/* A listening AF_UNIX stream socket: a device's `vhost_user:` socket,
 * which it accepts front ends on. */
static bool listening_unix(int fd)
{
	int domain = 0, type = 0, listening = 0;
	socklen_t len = sizeof(int);

	return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX &&
	       getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM &&
	       getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening;
}

/* What an fd passed to a device may be; anything else (a directory, a
 * connected socket, a terminal, a pidfd...) is a mistake of the broker's. */
static const char *passed_kind(int fd, struct stat *st)
{
	char link[32], target[64];
	ssize_t n;

	if (fstat(fd, st) < 0)
		return NULL;
	if (S_ISSOCK(st->st_mode))
		return listening_unix(fd) ? "listening socket" : NULL;
	if (S_ISREG(st->st_mode))
		return "file";
	if (S_ISBLK(st->st_mode))
		return "block device";
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return NULL;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") ? NULL : "eventfd";
}

static int check_passed_fds(struct launch *l)
{
	struct stat st;

	if (l->broker_pidfd < 3 + (int)l->pass_fds)
		return fail(l, EINVAL, "--broker-pidfd %d is among the %u fds passed", l->broker_pidfd, l->pass_fds);
	for (size_t i = 0; i < l->n_cgroups; i++)
		if (l->cgroups[i] < 3 + (int)l->pass_fds)
			return fail(l, EINVAL, "--cgroup-fd %d is among the %u fds passed", l->cgroups[i], l->pass_fds);
	for (int fd = 3; fd < 3 + (int)l->pass_fds; fd++) {
		const char *kind = passed_kind(fd, &st);

		if (!kind)
			return fail(l, errno ? errno : EINVAL, "fd %d of the %u passed is no file, block device, eventfd or listening socket",
				    fd, l->pass_fds);
		/* A memfd (it takes seals; no file of a filesystem does) is
		 * guest memory the device maps: its address space must hold it. */
		if (S_ISREG(st.st_mode) && fcntl(fd, F_GET_SEALS) >= 0)
			l->mem_bytes += (uint64_t)st.st_size;
	}
	return 0;
}

/* ---- 1. and 2. the session and the cgroups ---- */

static int join_cgroups(struct launch *l)
{
	for (size_t i = 0; i < l->n_cgroups; i++) {
		int fd = openat(l->cgroups[i], "cgroup.procs", O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, "0", 1) != 1)
			return fail(l, errno, "cannot join the cgroup of fd %d", l->cgroups[i]);
		close(fd);
		close(l->cgroups[i]);
	}
	return 0;
}

/* ---- 3. the program ---- */

static int copy_program(struct launch *l)
{
	const char *base = strrchr(l->program, '/') + 1;
	char why[PATH_MAX + 128];
	struct stat st;
	off_t done = 0;
	int fd, in, r;

	r = trusted_open(l->program, TRUSTED_FILE, &l->owners, &fd, &st, why, sizeof(why));
	if (r < 0)
		return fail(l, -r, "%s", why);
	in = trusted_reopen(fd);
	close(fd);
	if (in < 0)
		return fail(l, -in, "cannot read it");
	l->exe = memfd_create(base, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (l->exe < 0 && errno == EINVAL)
		l->exe = memfd_create(base, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (l->exe < 0) {
		r = fail(l, errno, "cannot create a memfd for it");
		goto out;
	}
	while (done < st.st_size) {
		ssize_t n = sendfile(l->exe, in, NULL, st.st_size - done);

		if (n <= 0) {
			r = fail(l, n < 0 ? errno : EIO, "cannot copy it");
			goto out;
		}
		done += n;
	}
	/* Executable, not readable: the kernel then starts it non-dumpable. */
	if (fchmod(l->exe, 0111) < 0 ||
	    fcntl(l->exe, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
		r = fail(l, errno, "cannot seal its copy");
out:
	close(in);
	return r;
}

/* ---- 4. what goes into the root ---- */

static bool inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && path[n] == '/';
}

static int add_bind(struct launch *l, const char *path, int fd, unsigned attr, bool dir)
{
	char buf[PATH_MAX], *norm;
	struct stat st, other;
	struct bind *b;

	if (elfdeps_normalize(path, buf, sizeof(buf)) < 0 || !strcmp(buf, "/") || fstat(fd, &st) < 0)
		return fail(l, EINVAL, "cannot bind %s", path);
	norm = strdup(buf);
	if (!norm)
		return fail(l, ENOMEM, "cannot bind %s", path);
	for (size_t i = 0; i < l->n_binds; i++) {
		b = &l->binds[i];
		if (!strcmp(b->norm, norm) && fstat(b->fd, &other) == 0 && other.st_dev == st.st_dev &&
		    other.st_ino == st.st_ino) {
			if (!strcmp(b->path, path)) {
				free(norm);
				return 0;
			}
			/* "lib/../lib/x.so": ld.so walks through lib/. */
			dir = false;
			break;
		}
		/* A mount on or under another would hide it, or write into it. */
		if (!strcmp(b->norm, norm) || (b->dir && inside(norm, b->norm)) || (dir && inside(b->norm, norm))) {
			fail(l, EEXIST, "%s and %s cannot both be in the sandbox", path, b->path);
			free(norm);
			return -EEXIST;
		}
	}
	if (l->n_binds == MAX_BINDS) {
		free(norm);
		return fail(l, E2BIG, "too many files to bind");
	}
	l->binds[l->n_binds] = (struct bind){ .path = path, .norm = norm, .fd = fd, .attr = attr, .tree = -1, .dir = dir };
	for (size_t i = 0; i < l->n_binds; i++)
		l->binds[l->n_binds].walk_only |= !strcmp(l->binds[i].norm, norm);
	l->n_binds++;
	return 0;
}

static int open_socket_dir(struct launch *l)
{
	const char *slash = strrchr(l->socket, '/');
	char why[PATH_MAX + 128];
	struct stat st;
	int r;

	/* The socket's directory, not the socket: nng unlinks and binds it anew
	 * when the broker listens again. Sockets ignore read-only mounts. */
	if (slash == l->socket || (size_t)(slash - l->socket) >= sizeof(l->sock_dir) || !strcmp(slash, "/.") ||
	    !strcmp(slash, "/.."))
		return fail(l, EINVAL, "cannot use the socket path %s", l->socket);
	snprintf(l->sock_dir, sizeof(l->sock_dir), "%.*s", (int)(slash - l->socket), l->socket);
	r = trusted_open(l->sock_dir, TRUSTED_DIR, &l->owners, &l->sock_dir_fd, &st, why, sizeof(why));
	if (r < 0)
		return fail(l, -r, "the socket's directory %s %s", l->sock_dir, why);
	return add_bind(l, l->sock_dir, l->sock_dir_fd, ATTR_DATA, true);
}

static int collect_binds(struct launch *l)
{
	char why[PATH_MAX + 256];
	struct stat st;
	int r;

	r = elfdeps_resolve(l->exe, l->program, &elfdeps_system, &l->owners, &l->deps, why, sizeof(why));
	if (r < 0)
		return fail(l, -r, "%s", why);
	r = open_socket_dir(l);
	if (r < 0)
		return r;
	r = trusted_open("/dev/null", TRUSTED_DEVNULL, &l->owners, &l->null_fd, &st, why, sizeof(why));
	if (r < 0)
		return fail(l, -r, "/dev/null %s", why);
	r = add_bind(l, "/dev/null", l->null_fd, ATTR_NULL, false);
	for (size_t i = 0; r == 0 && i < l->deps->n_files; i++) {
		const struct elfdeps_file *f = &l->deps->files[i];

		r = add_bind(l, f->path, f->fd, strcmp(f->path, elfdeps_system.cache) ? ATTR_CODE : ATTR_DATA, false);
	}
	return r;
}

/* ---- 6. the root ---- */

static int clone_tree(struct launch *l, struct bind *b)
{
	struct mount_attr attr = { .attr_set = b->attr };

	b->tree = open_tree(b->fd, "", AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (b->tree < 0)
		return fail(l, errno, "cannot clone a mount of %s", b->path);
	if (mount_setattr(b->tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
		return fail(l, errno, "cannot restrict the mount of %s", b->path);
	return 0;
}

/* Creates under STAGING the directories the kernel walks through for
 * @b->path in the sandbox, where ".." follows a real directory ("$ORIGIN/..":
 * the directory must exist), and the mount point, b->norm. */
static int make_mountpoint(const struct bind *b)
{
	char buf[sizeof(STAGING) + PATH_MAX];
	size_t base = strlen(STAGING), n = base;
	int fd;

	memcpy(buf, STAGING, base + 1);
	for (const char *p = b->path; *p;) {
		const char *end;
		size_t c;

		while (*p == '/')
			p++;
		end = strchrnul(p, '/');
		c = end - p;
		if (!*end)
			break;
		if (c == 2 && p[0] == '.' && p[1] == '.') {
			while (n > base && buf[--n] != '/')
				;
			buf[n] = '\0';
		} else if (c > 0 && !(c == 1 && p[0] == '.')) {
			if (n + 1 + c >= sizeof(buf))
				return -ENAMETOOLONG;
			buf[n++] = '/';
			memcpy(buf + n, p, c);
			n += c;
			buf[n] = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -errno;
		}
		p = end;
	}
	if (b->walk_only)
		return 0;
	snprintf(buf, sizeof(buf), "%s%s", STAGING, b->norm);
	if (b->dir)
		return mkdir(buf, 0755) < 0 && errno != EEXIST ? -errno : 0;
	fd = open(buf, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static int build_root(struct launch *l)
{
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
	char target[sizeof(STAGING) + PATH_MAX];
	int r;

	for (size_t i = 0; i < l->n_binds; i++) {
		r = l->binds[i].walk_only ? 0 : clone_tree(l, &l->binds[i]);
		if (r < 0)
			return r;
	}
	/* Nothing we mount may propagate back to the host's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return fail(l, errno, "cannot make the mounts private");
	if (mount("tmpfs", STAGING, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=256k") < 0)
		return fail(l, errno, "cannot mount the sandbox's root");
	/* The broker's umask (the unit's 0077) would hide the mount points
	 * from the device's uid. */
	umask(0);
	for (size_t i = 0; i < l->n_binds; i++) {
		struct bind *b = &l->binds[i];

		r = make_mountpoint(b);
		if (r < 0)
			return fail(l, -r, "cannot make a mount point for %s", b->path);
		if (b->walk_only)
			continue;
		snprintf(target, sizeof(target), "%s%s", STAGING, b->norm);
		if (move_mount(b->tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
			return fail(l, errno, "cannot mount %s", b->path);
		close(b->tree);
		b->tree = -1;
	}
	if (mount_setattr(AT_FDCWD, STAGING, 0, &ro, sizeof(ro)) < 0)
		return fail(l, errno, "cannot make the sandbox's root read-only");
	/* pivot_root(".", "."): the old root ends up on top of the new one,
	 * where a lazy unmount takes it away. */
	if (chdir(STAGING) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
	    chdir("/") < 0)
		return fail(l, errno, "cannot enter the sandbox's root");
	return 0;
}

/* ---- 5. and 7. who the device is ---- */

/* The broker runs as root: its socket goes to the device's uid, and its
 * directory, still the broker's, lets the device's gid through (and the
 * next instance's, after a restart, with the same check). */
static int hand_over_socket(struct launch *l)
{
	const char *name = strrchr(l->socket, '/') + 1;
	int fd = trusted_reopen(l->sock_dir_fd), r = 0;

	if (fd < 0 || fchown(fd, -1, l->gid) < 0 || fchmod(fd, 0710) < 0 ||
	    fchownat(fd, name, l->uid, l->gid, AT_SYMLINK_NOFOLLOW) < 0)
		r = fail(l, fd < 0 ? -fd : errno, "cannot hand %s to uid %u", l->socket, (unsigned)l->uid);
	if (fd >= 0)
		close(fd);
	return r;
}

/* The helper: still where we were, so allowed to map any of our ids into
 * the namespace we enter; it writes the maps once we are in it. */
static _Noreturn void write_maps(const struct launch *l, int ready)
{
	static const char *const files[] = { "setgroups", "gid_map", "uid_map" };
	const char *text[3];
	char uid_map[32], gid_map[32], c;

	snprintf(uid_map, sizeof(uid_map), "%u %u 1", SANDBOX_ID, (unsigned)(l->set_user ? l->uid : geteuid()));
	snprintf(gid_map, sizeof(gid_map), "%u %u 1", SANDBOX_ID, (unsigned)(l->set_user ? l->gid : getegid()));
	text[0] = "deny";
	text[1] = gid_map;
	text[2] = uid_map;
	/* EOF: the launcher could not unshare and reports it. */
	if (read(ready, &c, 1) != 1)
		_exit(1);
	for (size_t i = 0; i < 3; i++) {
		ssize_t n = (ssize_t)strlen(text[i]);
		int fd = openat(l->proc_self, files[i], O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, text[i], n) != n) {
			fail(l, errno, "cannot write the user namespace's %s", files[i]);
			_exit(1);
		}
		close(fd);
	}
	_exit(0);
}

static int enter_user_ns(struct launch *l)
{
	int p[2], status, r = 0;
	pid_t pid;

	/* The broker's supplementary groups, while we may (an unprivileged
	 * broker's user namespace denies setgroups). */
	if (l->set_user && setgroups(0, NULL) < 0)
		return fail(l, errno, "cannot drop the supplementary groups");
	if (pipe2(p, O_CLOEXEC) < 0)
		return fail(l, errno, "cannot create a pipe");
	pid = fork();
	if (pid == 0) {
		close(p[1]);
		write_maps(l, p[0]);
	}
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		return fail(l, errno, "cannot start a helper");
	}
	if (unshare(CLONE_NEWUSER) < 0)
		r = fail(l, errno, "cannot create a user namespace");
	else if (write(p[1], "", 1) != 1)
		r = fail(l, errno, "cannot wake the helper");
	close(p[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
		r = fail(l, EPERM, "cannot map the user namespace's ids");
	if (r == 0 && (setresgid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID) < 0 ||
		       setresuid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID) < 0))
		r = fail(l, errno, "cannot become uid %u in the user namespace", SANDBOX_ID);
	return r;
}

static int drop_capabilities(struct launch *l)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { 0 };

	/* The bounding set first: dropping needs CAP_SETPCAP, still ours. */
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap) < 0)
			return fail(l, errno, "cannot drop capability %d", cap);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 || syscall(SYS_capset, &hdr, data) < 0)
		return fail(l, errno, "cannot drop the capabilities");
	return 0;
}

/* ---- 8. the last steps ---- */

static int set_limits(struct launch *l)
{
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		rlim_t v = limits[i].value;
		struct rlimit rl;

		/* The passed fds do not count against what it may open, nor
		 * guest memory against the address space it may reserve. */
		if (limits[i].resource == RLIMIT_NOFILE)
			v += l->pass_fds;
		else if (limits[i].resource == RLIMIT_AS)
			v += l->mem_bytes;
		rl = (struct rlimit){ v, v };
		if (setrlimit(limits[i].resource, &rl) < 0)
			return fail(l, errno, "cannot set rlimit %d", limits[i].resource);
	}
	return 0;
}

/* Dies with the broker. The parent-death signal was armed before our exec,
 * but a change of uid disarms it: arm it again, then make sure the broker
 * did not die in between (its pidfd is readable once it has). */
static int tie_to_broker(struct launch *l)
{
	struct pollfd p = { .fd = l->broker_pidfd, .events = POLLIN };

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return fail(l, errno, "cannot set the parent-death signal");
	if (poll(&p, 1, 0) != 0)
		return fail(l, ESRCH, "the broker is gone");
	close(l->broker_pidfd);
	return 0;
}

static int launch(struct launch *l)
{
	int r;

	/* Before anything else, while they are as the broker left them. */
	r = check_passed_fds(l);
	if (r < 0)
		return r;
	/* A process group leader cannot: the broker's clone is none. */
	if (setsid() < 0)
		return fail(l, errno, "cannot start a session");
	r = join_cgroups(l);
	if (r < 0)
		return r;
	l->proc_self = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (l->proc_self < 0)
		return fail(l, errno, "cannot open /proc/self");
	r = trusted_owners_get(&l->owners);
	if (r < 0)
		return fail(l, -r, "cannot read /proc/self/uid_map");
	r = copy_program(l);
	if (r == 0)
		r = collect_binds(l);
	/* Through /proc/self/fd, which the new root does not have. */
	if (r == 0 && l->set_user)
		r = hand_over_socket(l);
	if (r == 0)
		r = build_root(l);
	if (r == 0)
		r = enter_user_ns(l);
	if (r == 0)
		r = drop_capabilities(l);
	if (r < 0)
		return r;
	/* After the user namespace: RLIMIT_NPROC then counts this device's
	 * processes only, not every process of its uid on the host. */
	r = set_limits(l);
	if (r < 0)
		return r;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail(l, errno, "cannot set no_new_privs");
	r = tie_to_broker(l);
	if (r < 0)
		return r;
	umask(077);
	/* The broker handed us 0, 1, 2 and the passed block; ours are
	 * close-on-exec. */
	close_range(3 + l->pass_fds, ~0U, CLOSE_RANGE_CLOEXEC);
	r = baseline_install();
	if (r < 0)
		return fail(l, -r, "cannot install the seccomp baseline");
	execveat(l->exe, "", l->argv, device_env, AT_EMPTY_PATH);
	return fail(l, errno, "cannot execute");
}

static void usage(void)
{
	fprintf(stderr, "usage: ioreq-launch --socket PATH --broker-pidfd FD [--user UID:GID] [--cgroup-fd FD]... "
			"[--pass-fds N] -- PROGRAM [ARGS...]\n");
	exit(LAUNCH_FAILED);
}

static int parse_fd(const char *arg, int *ret)
{
	char end;

	return sscanf(arg, "%d%c", ret, &end) == 1 && *ret >= 3 ? 0 : -EINVAL;
}

static int parse_args(int argc, char **argv, struct launch *l)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "broker-pidfd", required_argument, NULL, 'p' },
		{ "user", required_argument, NULL, 'u' },
		{ "cgroup-fd", required_argument, NULL, 'c' },
		{ "pass-fds", required_argument, NULL, 'f' },
		{ "version", no_argument, NULL, 'V' },
		{},
	};
	unsigned uid, gid;
	char end;
	int opt;

	l->broker_pidfd = -1;
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			l->socket = optarg;
			break;
		case 'p':
			if (parse_fd(optarg, &l->broker_pidfd) < 0)
				return -EINVAL;
			break;
		case 'u':
			if (sscanf(optarg, "%u:%u%c", &uid, &gid, &end) != 2)
				return -EINVAL;
			l->set_user = true;
			l->uid = uid;
			l->gid = gid;
			break;
		case 'c':
			if (l->n_cgroups == MAX_CGROUPS || parse_fd(optarg, &l->cgroups[l->n_cgroups++]) < 0)
				return -EINVAL;
			break;
		case 'f':
			if (sscanf(optarg, "%u%c", &l->pass_fds, &end) != 1 || l->pass_fds > MAX_PASS_FDS)
				return -EINVAL;
			break;
		case 'V':
			printf("ioreq-launch %s\n", IOREQ_VERSION);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	if (!l->socket || l->socket[0] != '/' || l->broker_pidfd < 0 || optind >= argc || argv[optind][0] != '/')
		return -EINVAL;
	l->program = argv[optind];
	l->argv = &argv[optind];
	return 0;
}

int main(int argc, char **argv)
{
	static struct launch l;

	log_set_prefix("ioreq-launch");
	if (parse_args(argc, argv, &l) < 0)
		usage();
	launch(&l);
	return LAUNCH_FAILED;
}
