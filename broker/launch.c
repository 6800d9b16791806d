/* ioreq-launch: puts one device program in its sandbox, then becomes it.
 *
 *   ioreq-launch --socket PATH --broker-pidfd FD [--user UID:GID] -- PROGRAM [ARGS...]
 *
 * ioreq-brokerd is multithreaded and nng is not fork-safe, so the broker does
 * no more than clone3 (new mount, pid, ipc, net and uts namespaces; when it
 * is not root, also a user namespace whose root is its own uid) and execute
 * this program. It runs single-threaded, as pid 1 of the new pid namespace,
 * and ends by executing PROGRAM: the device keeps the pid the broker cloned,
 * so the pid the broker authorises on the socket, waits for and kills is the
 * device itself, and when it dies its whole pid namespace dies with it.
 *
 * The steps, in an order each one needs:
 *  1. list what PROGRAM loads (its PT_INTERP, run with --list) while the
 *     host's filesystem is still there;
 *  2. clone read-only mounts of PATH's directory, PROGRAM, its loader and
 *     libraries, /etc/ld.so.cache and /dev/null; open_tree keeps them
 *     detached, so that no later mount can hide their sources;
 *  3. mount an empty tmpfs, put each clone at its own path (the socket's URL
 *     and the loader's search work unchanged), make it read-only, and pivot
 *     into it; the old root is detached;
 *  4. with --user (the broker is root), become that unprivileged host uid;
 *     then enter a user namespace of our own, as uid 65534 with no
 *     capability in any set: the namespaces above belong to the broker's
 *     user namespace, so nothing in them is ours to change;
 *  5. rlimits, no_new_privs, die with the broker, keep fds 0-2 only, exec.
 *
 * Failures are reported on stderr (the broker's) and end with status 127.
 */
#include <elf.h>
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
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>

#include "log.h"

#define LAUNCH_FAILED 127

/* Inside its user namespace every device is nobody. */
#define SANDBOX_ID 65534

/* Where the new root is assembled: any directory will do, since every
 * source was cloned before the tmpfs covers it. */
#define STAGING "/tmp"

/* How each clone is mounted: what the device runs (its program, loader and
 * libraries), what it only reads, and /dev/null, a device node. */
#define ATTR_CODE (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
#define ATTR_DATA (ATTR_CODE | MOUNT_ATTR_NOEXEC)
#define ATTR_NULL (MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC)

/* A device program and the libraries it loads: a few dozen files at most. */
#define MAX_BINDS 64
#define LIST_MAX (64 * 1024)

static const struct rlimit_set {
	int resource;
	rlim_t value;
} limits[] = {
	/* nng takes a dozen fds (epoll, eventfds, the socket); a device none. */
	{ RLIMIT_NOFILE, 64 },
	/* Threads count: nng starts about 14, a device one or two more. */
	{ RLIMIT_NPROC, 64 },
	/* An emulator needs some megabytes; every thread stack and malloc arena
	 * reserves address space, hence the margin. AddressSanitizer reserves
	 * terabytes of shadow: the sanitizer build leaves this one out. */
#ifndef __SANITIZE_ADDRESS__
	{ RLIMIT_AS, 1ULL << 30 },
#endif
	{ RLIMIT_CORE, 0 },
	/* It creates no file; this bounds the UART log the broker hands it. */
	{ RLIMIT_FSIZE, 1ULL << 30 },
};

struct bind {
	char path[PATH_MAX];
	unsigned attr; /* MOUNT_ATTR_* set on the clone */
	int tree;      /* open_tree's detached clone */
	bool dir;
};

struct launch {
	const char *socket;
	const char *program;
	char **argv;
	int broker_pidfd;
	bool set_user;
	uid_t uid;
	gid_t gid;
	int proc_self; /* our /proc/PID, for the id maps after the root is gone */
	struct bind binds[MAX_BINDS];
	size_t n_binds;
};

/* The device's whole environment: the library confines itself on seeing it.
 * Nothing of the broker's (no PATH: a sanitizer has no symbolizer to run). */
static char *const device_env[] = { "IOREQ_SANDBOX=strict", NULL };

static int fail(const struct launch *l, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(const struct launch *l, int err, const char *fmt, ...)
{
	char what[PATH_MAX + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_err("%s: %s: %s", l->program ? l->program : "?", what, strerror(err));
	return -err;
}

/* ---- 1. what PROGRAM loads ---- */

/* The loader named by PROGRAM's PT_INTERP; "" for a static program. */
static int read_interp(struct launch *l, char *interp, size_t len)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	int fd, r = 0;

	interp[0] = '\0';
	fd = open(l->program, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(l, errno, "cannot open");
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(ph)) {
		r = fail(l, ENOEXEC, "not a 64-bit ELF program");
		goto out;
	}
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + (off_t)i * sizeof(ph)) != sizeof(ph)) {
			r = fail(l, ENOEXEC, "truncated program headers");
			goto out;
		}
		if (ph.p_type != PT_INTERP)
			continue;
		if (ph.p_filesz < 2 || ph.p_filesz > len ||
		    pread(fd, interp, ph.p_filesz, ph.p_offset) != (ssize_t)ph.p_filesz ||
		    interp[ph.p_filesz - 1] != '\0' || interp[0] != '/') {
			r = fail(l, ENOEXEC, "bad PT_INTERP");
			goto out;
		}
		break;
	}
out:
	close(fd);
	return r;
}

static int add_bind(struct launch *l, const char *path, size_t len, unsigned attr)
{
	struct bind *b;

	if (len == 0 || len >= sizeof(b->path) || path[0] != '/')
		return fail(l, EINVAL, "cannot use the path '%.*s'", (int)len, path);
	for (size_t i = 0; i < l->n_binds; i++)
		if (strlen(l->binds[i].path) == len && !memcmp(l->binds[i].path, path, len))
			return 0;
	if (l->n_binds == MAX_BINDS)
		return fail(l, E2BIG, "loads too many libraries");
	b = &l->binds[l->n_binds++];
	memcpy(b->path, path, len);
	b->path[len] = '\0';
	b->attr = attr;
	b->tree = -1;
	return 0;
}

/* One line of the loader's list: "\tlibc.so.6 => /lib/.../libc.so.6 (0x...)",
 * "\t/lib64/ld-linux-x86-64.so.2 (0x...)", or the vDSO, which has no file. */
static int parse_list_line(struct launch *l, const char *line, size_t n)
{
	const char *arrow = memmem(line, n, " => ", 4), *end;

	if (arrow) {
		n -= arrow + 4 - line;
		line = arrow + 4;
	} else {
		while (n && (*line == '\t' || *line == ' ')) {
			line++;
			n--;
		}
		if (!n || *line != '/')
			return 0;
	}
	end = memmem(line, n, " (", 2);
	if (!end || *line != '/')
		return fail(l, ENOENT, "cannot find a library: %.*s", (int)n, line);
	return add_bind(l, line, end - line, ATTR_CODE);
}

/* The system loader in list mode maps the libraries and runs none of their
 * code; it reads the host's filesystem, hence before anything else. */
static int list_libraries(struct launch *l)
{
	static char out[LIST_MAX];
	char interp[PATH_MAX];
	char *argv[] = { interp, "--list", (char *)l->program, NULL };
	size_t used = 0;
	int pfd[2], status, r;
	pid_t pid;

	r = read_interp(l, interp, sizeof(interp));
	if (r < 0 || !interp[0])
		return r;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return fail(l, errno, "cannot list its libraries");
	pid = fork();
	if (pid < 0) {
		r = errno;
		close(pfd[0]);
		close(pfd[1]);
		return fail(l, r, "cannot list its libraries");
	}
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		execve(interp, argv, device_env);
		_exit(LAUNCH_FAILED);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t n = read(pfd[0], out + used, sizeof(out) - 1 - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += n;
	}
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return fail(l, ENOEXEC, "%s --list failed", interp);
	r = add_bind(l, interp, strlen(interp), ATTR_CODE);
	for (size_t i = 0; r == 0 && i < used;) {
		char *nl = memchr(out + i, '\n', used - i);
		size_t n = nl ? (size_t)(nl - (out + i)) : used - i;

		r = parse_list_line(l, out + i, n);
		i += n + 1;
	}
	return r;
}

/* ---- 2. and 3. the root ---- */

static int collect_binds(struct launch *l)
{
	static const char null[] = "/dev/null", cache[] = "/etc/ld.so.cache";
	const char *slash = strrchr(l->socket, '/');
	int r;

	/* The socket's directory, not the socket: nng unlinks and binds it anew
	 * when the broker listens again. Sockets ignore read-only mounts. */
	r = add_bind(l, l->socket, slash - l->socket, ATTR_DATA);
	if (r == 0)
		r = add_bind(l, null, strlen(null), ATTR_NULL);
	if (r == 0)
		r = add_bind(l, l->program, strlen(l->program), ATTR_CODE);
	/* The loader then finds each library where --list did. */
	if (r == 0 && access(cache, F_OK) == 0)
		r = add_bind(l, cache, strlen(cache), ATTR_DATA);
	if (r == 0)
		r = list_libraries(l);
	return r;
}

static int clone_tree(struct launch *l, struct bind *b)
{
	struct mount_attr attr = { .attr_set = b->attr };
	struct stat st;

	b->tree = open_tree(AT_FDCWD, b->path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (b->tree < 0)
		return fail(l, errno, "cannot clone a mount of %s", b->path);
	if (mount_setattr(b->tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
		return fail(l, errno, "cannot restrict the mount of %s", b->path);
	if (fstat(b->tree, &st) < 0)
		return fail(l, errno, "cannot stat %s", b->path);
	b->dir = S_ISDIR(st.st_mode);
	return 0;
}

/* mkdir -p of @path's parents (and of @path itself if @dir) under STAGING. */
static int make_mountpoint(const char *path, bool dir)
{
	char buf[sizeof(STAGING) + PATH_MAX];
	int fd;

	snprintf(buf, sizeof(buf), "%s%s", STAGING, path);
	for (char *p = buf + sizeof(STAGING); (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (dir)
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
		r = clone_tree(l, &l->binds[i]);
		if (r < 0)
			return r;
	}
	/* Nothing we mount may propagate back to the host's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return fail(l, errno, "cannot make the mounts private");
	if (mount("tmpfs", STAGING, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=256k") < 0)
		return fail(l, errno, "cannot mount the sandbox's root");
	for (size_t i = 0; i < l->n_binds; i++) {
		struct bind *b = &l->binds[i];

		r = make_mountpoint(b->path, b->dir);
		if (r < 0)
			return fail(l, -r, "cannot make a mount point for %s", b->path);
		snprintf(target, sizeof(target), "%s%s", STAGING, b->path);
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

/* ---- 4. who the device is ---- */

/* The broker runs as root: the device's directory and socket go to the
 * unprivileged uid that will connect to them. */
static int hand_over_socket(struct launch *l)
{
	const char *slash = strrchr(l->socket, '/');
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - l->socket), l->socket);
	if (chown(dir, l->uid, l->gid) < 0 || chown(l->socket, l->uid, l->gid) < 0)
		return fail(l, errno, "cannot hand %s to uid %u", l->socket, (unsigned)l->uid);
	return 0;
}

static int become_user(struct launch *l)
{
	if (setgroups(0, NULL) < 0 || setresgid(l->gid, l->gid, l->gid) < 0 ||
	    setresuid(l->uid, l->uid, l->uid) < 0)
		return fail(l, errno, "cannot become uid %u", (unsigned)l->uid);
	/* Changing uid made us non-dumpable, which gives our /proc files to
	 * root: we could not write our own id maps. */
	if (prctl(PR_SET_DUMPABLE, 1) < 0)
		return fail(l, errno, "cannot stay dumpable");
	return 0;
}

static int write_proc(const struct launch *l, const char *file, const char *text)
{
	ssize_t n = (ssize_t)strlen(text);
	int fd, r = 0;

	fd = openat(l->proc_self, file, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, text, n) != n)
		r = fail(l, errno, "cannot write /proc/self/%s", file);
	if (fd >= 0)
		close(fd);
	return r;
}

/* A user namespace where we are SANDBOX_ID, mapped to whom we are now: an
 * unprivileged process may map exactly its own ids (and no groups). */
static int enter_user_ns(struct launch *l)
{
	char uid_map[32], gid_map[32];
	int r;

	snprintf(uid_map, sizeof(uid_map), "%u %u 1", SANDBOX_ID, (unsigned)geteuid());
	snprintf(gid_map, sizeof(gid_map), "%u %u 1", SANDBOX_ID, (unsigned)getegid());
	if (unshare(CLONE_NEWUSER) < 0)
		return fail(l, errno, "cannot create a user namespace");
	r = write_proc(l, "setgroups", "deny");
	if (r == 0)
		r = write_proc(l, "uid_map", uid_map);
	if (r == 0)
		r = write_proc(l, "gid_map", gid_map);
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

/* ---- 5. the last steps ---- */

static int set_limits(struct launch *l)
{
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		struct rlimit rl = { limits[i].value, limits[i].value };

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

	l->proc_self = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (l->proc_self < 0)
		return fail(l, errno, "cannot open /proc/self");
	if (l->set_user) {
		r = hand_over_socket(l);
		if (r < 0)
			return r;
	}
	r = collect_binds(l);
	if (r < 0)
		return r;
	r = build_root(l);
	if (r < 0)
		return r;
	if (l->set_user) {
		r = become_user(l);
		if (r < 0)
			return r;
	}
	r = enter_user_ns(l);
	if (r < 0)
		return r;
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
	/* The broker handed us 0, 1 and 2; ours are close-on-exec. */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	execve(l->program, l->argv, device_env);
	return fail(l, errno, "cannot execute");
}

static void usage(void)
{
	fprintf(stderr, "usage: ioreq-launch --socket PATH --broker-pidfd FD [--user UID:GID] -- PROGRAM [ARGS...]\n");
	exit(LAUNCH_FAILED);
}

static int parse_args(int argc, char **argv, struct launch *l)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "broker-pidfd", required_argument, NULL, 'p' },
		{ "user", required_argument, NULL, 'u' },
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
			if (sscanf(optarg, "%d%c", &l->broker_pidfd, &end) != 1 || l->broker_pidfd < 3)
				return -EINVAL;
			break;
		case 'u':
			if (sscanf(optarg, "%u:%u%c", &uid, &gid, &end) != 2)
				return -EINVAL;
			l->set_user = true;
			l->uid = uid;
			l->gid = gid;
			break;
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
