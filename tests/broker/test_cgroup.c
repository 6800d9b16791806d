/* The cgroup module on the real hierarchy of this machine (cgroup v2, or the
 * v1 hybrid layout), and on a fake cgroup v2 tree laid out in a temporary
 * directory for the layout the machine does not have. Needs root.
 *
 * The fake tree: mkdir and rmdir are wrapped at link time (-Wl,--wrap); under
 * the fake mount the wrappers play the kernel's part, filling a new directory
 * with the interface files a cgroup v2 directory has and emptying it on rmdir.
 * The test then reads exactly what the module wrote. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <cmocka.h>

#include "cgroup.h"

#define MiB (1024 * 1024)

/* ---- the fake kernel ------------------------------------------------------ */

static char fake[64];        /* the temporary directory; "" outside fake tests */
static char fake_mount[128]; /* fake/cg: the fake cgroup2 mount */
static bool fake_old_kernel; /* no cgroup.kill, no memory.swap.max (Linux < 5.14 without swap) */

int __real_mkdir(const char *path, mode_t mode);
int __wrap_mkdir(const char *path, mode_t mode);
int __real_rmdir(const char *path);
int __wrap_rmdir(const char *path);

/* Whatever a failed assertion left running: every child of this process,
 * which is also the subreaper of their orphans (a fork bomb's). */
static void kill_children(void)
{
	for (int round = 0; round < 10; round++) {
		char p[64];
		int pid, n = 0;
		FILE *f;

		snprintf(p, sizeof(p), "/proc/self/task/%d/children", getpid());
		f = fopen(p, "re");
		while (f && fscanf(f, "%d", &pid) == 1) {
			kill(pid, SIGKILL);
			n++;
		}
		if (f)
			fclose(f);
		if (n)
			poll(NULL, 0, 20);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (!n)
			break;
	}
}

/* waitpid with a deadline: the status, or -1 when @pid still runs after @ms. */
static int reap(pid_t pid, int ms)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0), st = -1;
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (fd >= 0 && poll(&p, 1, ms) == 1 && waitpid(pid, &st, 0) != pid)
		st = -1;
	if (fd >= 0)
		close(fd);
	return st;
}

static bool killed(int st)
{
	return st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

static bool in_fake(const char *path)
{
	size_t n = strlen(fake_mount);

	return fake[0] && strncmp(path, fake_mount, n) == 0 && (path[n] == '/' || !path[n]);
}

static void put(const char *dir, const char *file, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(const char *dir, const char *file, const char *fmt, ...)
{
	char p[PATH_MAX];
	va_list ap;
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	f = fopen(p, "we");
	assert_non_null(f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

/* The file's text without its last newline, or "<errno text>". */
static const char *get(const char *dir, const char *file)
{
	static char buf[4096];
	char p[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(buf, sizeof(buf), "<%s>", strerror(errno));
		return buf;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = 0;
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	return buf;
}

int __wrap_mkdir(const char *path, mode_t mode)
{
	int r = __real_mkdir(path, mode);

	if (r == 0 && in_fake(path)) {
		put(path, "cgroup.procs", "%s", "");
		put(path, "cgroup.controllers", "memory pids cpu\n");
		put(path, "cgroup.subtree_control", "%s", "");
		put(path, "cgroup.events", "populated 0\nfrozen 0\n");
		put(path, "memory.max", "max\n");
		put(path, "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
		put(path, "memory.oom.group", "0\n");
		put(path, "pids.max", "max\n");
		put(path, "pids.events", "max 0\n");
		put(path, "cpu.max", "max 100000\n");
		if (!fake_old_kernel) {
			put(path, "cgroup.kill", "%s", "");
			put(path, "memory.swap.max", "max\n");
		}
	}
	return r;
}

int __wrap_rmdir(const char *path)
{
	DIR *d;
	struct dirent *e;

	if (in_fake(path) && (d = opendir(path))) {
		bool subdirs = false;

		while ((e = readdir(d)))
			subdirs |= e->d_type == DT_DIR && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
		rewinddir(d);
		/* The kernel refuses a group with children or processes. */
		if (subdirs || strcmp(get(path, "cgroup.procs"), "") != 0) {
			closedir(d);
			errno = EBUSY;
			return -1;
		}
		while ((e = readdir(d)))
			if (e->d_type == DT_REG)
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	return __real_rmdir(path);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p); /* libc's own rmdir: not the wrapper */
}

static char own[1024]; /* the broker's cgroup in the fake tree */

static void fake_cgroup_file(const char *cg)
{
	put(fake, "proc_cgroup", "0::%s\n", cg);
}

static int fake_setup(void **state)
{
	char p[PATH_MAX];

	strcpy(fake, "/tmp/test_cgroup.XXXXXX");
	assert_non_null(mkdtemp(fake));
	chmod(fake, 0755); /* the unprivileged tests read it too */
	snprintf(fake_mount, sizeof(fake_mount), "%s/cg", fake);
	put(fake, "mountinfo",
	    "23 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
	    "30 23 0:26 / %s rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n",
	    fake_mount);
	fake_cgroup_file("/system.slice/ioreq-broker.service");
	assert_int_equal(mkdir(fake_mount, 0755), 0);
	put(fake_mount, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
	snprintf(p, sizeof(p), "%s/system.slice", fake_mount);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(own, sizeof(own), "%s/system.slice/ioreq-broker.service", fake_mount);
	assert_int_equal(mkdir(own, 0755), 0);
	put(own, "cgroup.procs", "%d\n", getpid());
	fake_old_kernel = false;
	return 0;
}

static int fake_teardown(void **state)
{
	kill_children();
	nftw(fake, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	fake[0] = 0;
	fake_mount[0] = 0;
	return 0;
}

static int fake_open(const char *configured, struct cgroup_tree **t, char *why, size_t len)
{
	char mi[PATH_MAX], pc[PATH_MAX];

	snprintf(mi, sizeof(mi), "%s/mountinfo", fake);
	snprintf(pc, sizeof(pc), "%s/proc_cgroup", fake);
	return cgroup_tree_open_at(mi, pc, configured, t, why, len);
}

static bool is_dir(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool is_dir(const char *fmt, ...)
{
	char p[PATH_MAX];
	struct stat st;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static const struct cgroup_limits lim64 = {.memory_max = 64 * MiB, .pids_max = 32, .cpu_percent = 20};

/* ---- fake cgroup v2 ----------------------------------------------------------- */

/* Root, the own group not delegated: a top-level group of the broker's own. */
static void test_v2_root_writes(void **state)
{
	struct cgroup_tree *t = NULL;
	struct cgroup *cg = NULL;
	char why[256] = "", bdir[PATH_MAX], dev[PATH_MAX + 64];
	struct stat a, b;
	size_t n = 0;
	int fds[4];

	assert_int_equal(fake_open(NULL, &t, why, sizeof(why)), 0);
	snprintf(bdir, sizeof(bdir), "%s/ioreq-broker-%d", fake_mount, getpid());
	assert_true(is_dir("%s", bdir));
	assert_string_equal(get(fake_mount, "cgroup.subtree_control"), "+memory +pids +cpu");
	assert_string_equal(get(bdir, "cgroup.subtree_control"), "+memory +pids +cpu");
	assert_false(is_dir("%s/supervisor", own)); /* not delegated: the broker stays where it is */
	assert_string_equal(get(own, "cgroup.subtree_control"), "");

	assert_int_equal(cgroup_create(t, "vm0.uart-1", &lim64, &cg), 0);
	snprintf(dev, sizeof(dev), "%s/vm0.uart-1", bdir);
	assert_string_equal(get(dev, "memory.max"), "67108864");
	assert_string_equal(get(dev, "memory.swap.max"), "0");
	assert_string_equal(get(dev, "memory.oom.group"), "1");
	assert_string_equal(get(dev, "pids.max"), "32");
	assert_string_equal(get(dev, "cpu.max"), "20000 100000");

	assert_int_equal(cgroup_open_fds(cg, fds, 0, &n), -ENOBUFS);
	assert_int_equal(cgroup_open_fds(cg, fds, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(fstat(fds[0], &a), 0);
	assert_int_equal(stat(dev, &b), 0);
	assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	assert_true(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
	close(fds[0]);
	assert_true(cgroup_event_fd(cg) >= 0);

	/* What the kernel counts decides, once per change. */
	assert_null(cgroup_limit_hit(cg));
	put(dev, "memory.events", "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\noom_group_kill 1\n");
	assert_string_equal(cgroup_limit_hit(cg), "memory.max 67108864 (OOM kill)");
	assert_null(cgroup_limit_hit(cg));
	put(dev, "pids.events", "max 3\n");
	assert_string_equal(cgroup_limit_hit(cg), "pids.max 32");
	put(dev, "pids.events", "max 4\n");
	put(dev, "memory.events", "oom_kill 2\n");
	assert_string_equal(cgroup_limit_hit(cg), "memory.max 67108864 (OOM kill), pids.max 32");

	assert_int_equal(cgroup_kill(cg), 0);
	assert_string_equal(get(dev, "cgroup.kill"), "1");
	assert_null(cgroup_destroy(cg));
	assert_false(is_dir("%s", dev));
	assert_null(cgroup_tree_close(t));
	assert_false(is_dir("%s", bdir));
}

/* Delegated (systemd's xattr): the broker moves into OWN/supervisor, then OWN distributes. */
static void test_v2_delegated(void **state)
{
	struct cgroup_tree *t1 = NULL, *t2 = NULL;
	struct cgroup *c1 = NULL, *c2 = NULL;
	char why[256] = "", sup[PATH_MAX + 16], me[16];

	assert_int_equal(setxattr(own, "trusted.delegate", "1", 1, 0), 0);
	assert_int_equal(fake_open(NULL, &t1, why, sizeof(why)), 0);
	snprintf(sup, sizeof(sup), "%s/supervisor", own);
	assert_true(is_dir("%s", sup));
	assert_string_equal(get(sup, "cgroup.procs"), "0"); /* "0": the writer itself */
	assert_string_equal(get(own, "cgroup.subtree_control"), "+memory +pids +cpu");
	assert_string_equal(get(fake_mount, "cgroup.subtree_control"), ""); /* nothing outside OWN */
	assert_true(is_dir("%s/ioreq-broker-%d", own, getpid()));

	/* A second tree of the same broker, now running in OWN/supervisor. */
	fake_cgroup_file("/system.slice/ioreq-broker.service/supervisor");
	put(own, "cgroup.procs", "%s", "");
	put(sup, "cgroup.procs", "%d\n", getpid());
	assert_int_equal(fake_open(NULL, &t2, why, sizeof(why)), 0);
	snprintf(me, sizeof(me), "%d", getpid());
	assert_string_equal(get(sup, "cgroup.procs"), me); /* not moved again */
	assert_false(is_dir("%s/supervisor/supervisor", own));
	assert_int_equal(cgroup_create(t1, "dev", &lim64, &c1), 0);
	assert_int_equal(cgroup_create(t2, "dev", &lim64, &c2), 0);
	assert_true(is_dir("%s/ioreq-broker-%d/dev", own, getpid()));
	assert_true(is_dir("%s/ioreq-broker-%d.1/dev", own, getpid())); /* the first name is taken */

	cgroup_destroy(c1);
	cgroup_destroy(c2);
	cgroup_tree_close(t1);
	cgroup_tree_close(t2);
	assert_false(is_dir("%s/ioreq-broker-%d", own, getpid()));
}

static void test_v2_delegated_not_alone(void **state)
{
	struct cgroup_tree *t = NULL;
	char why[256] = "";

	/* systemd >= 253 also sets user.delegate; tmpfs holds user xattrs since Linux 6.6. */
	if (setxattr(own, "user.delegate", "1", 1, 0) < 0)
		assert_int_equal(setxattr(own, "trusted.delegate", "1", 1, 0), 0);
	put(own, "cgroup.procs", "%d\n%d\n", getpid(), getppid());
	assert_int_equal(fake_open(NULL, &t, why, sizeof(why)), -EBUSY);
	assert_non_null(strstr(why, "holds other processes"));
	assert_false(is_dir("%s/supervisor", own));
}

/* Runs @fn as uid/gid 65534 in a child; the child's exit status is fn's result. */
static int as_nobody(int (*fn)(void))
{
	int st;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(99);
		_exit(fn());
	}
	st = reap(pid, 10000);
	assert_true(st != -1);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int open_unprivileged_refused(void)
{
	struct cgroup_tree *t = NULL;
	char why[256] = "";
	int r = fake_open(NULL, &t, why, sizeof(why));

	fprintf(stderr, "unprivileged, not delegated: %s\n", why);
	return r == -EPERM && strstr(why, "Delegate=yes") ? 0 : 1;
}

static int open_unprivileged_delegated(void)
{
	struct cgroup_tree *t = NULL;
	struct cgroup *cg = NULL;
	char why[256] = "";
	int r;

	put(own, "cgroup.procs", "%d\n", getpid());
	r = fake_open(NULL, &t, why, sizeof(why));
	if (r < 0) {
		fprintf(stderr, "unprivileged, delegated: %s\n", why);
		return 2;
	}
	if (!is_dir("%s/supervisor", own) || !is_dir("%s/ioreq-broker-%d", own, getpid()))
		return 3;
	if (cgroup_create(t, "dev", &lim64, &cg) < 0)
		return 4;
	cgroup_destroy(cg);
	cgroup_tree_close(t);
	return is_dir("%s/ioreq-broker-%d", own, getpid()) ? 5 : 0;
}

static void test_v2_unprivileged(void **state)
{
	char p[PATH_MAX + 32];

	assert_int_equal(as_nobody(open_unprivileged_refused), 0);
	/* What systemd does for User= with Delegate=yes: the group and its two files change owner. */
	assert_int_equal(chown(own, 65534, 65534), 0);
	snprintf(p, sizeof(p), "%s/cgroup.procs", own);
	assert_int_equal(chown(p, 65534, 65534), 0);
	snprintf(p, sizeof(p), "%s/cgroup.subtree_control", own);
	assert_int_equal(chown(p, 65534, 65534), 0);
	assert_int_equal(as_nobody(open_unprivileged_delegated), 0);
}

static void test_v2_configured(void **state)
{
	struct cgroup_tree *t = NULL;
	struct cgroup *cg = NULL;
	char why[256] = "", conf[PATH_MAX];

	assert_int_equal(fake_open("relative/path", &t, why, sizeof(why)), -EINVAL);
	assert_int_equal(fake_open("/sys/fs/cgroup/../../etc", &t, why, sizeof(why)), -EINVAL);
	assert_int_equal(fake_open("/elsewhere", &t, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "not in the cgroup v2 hierarchy"));

	snprintf(conf, sizeof(conf), "%s/machine.slice/", fake_mount); /* the trailing slash is dropped */
	assert_int_equal(fake_open(conf, &t, why, sizeof(why)), 0);
	assert_string_equal(get(conf, "cgroup.subtree_control"), "+memory +pids +cpu");
	assert_int_equal(cgroup_create(t, "dev", &lim64, &cg), 0);
	assert_true(is_dir("%s/ioreq-broker-%d/dev", conf, getpid()));
	cgroup_destroy(cg);
	cgroup_tree_close(t);
	assert_false(is_dir("%s/ioreq-broker-%d", conf, getpid()));
	assert_true(is_dir("%s", conf)); /* the operator's directory stays */
}

static void test_v2_no_controllers(void **state)
{
	struct cgroup_tree *t = NULL;
	char why[256] = "";

	put(fake_mount, "cgroup.controllers", "cpu io hugetlb\n");
	assert_int_equal(fake_open(NULL, &t, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "no cgroup hierarchy offers the memory, pids and cpu controllers"));
	assert_non_null(strstr(why, "cpu io hugetlb"));
}

static pid_t dead_pid(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	return pid;
}

static void test_v2_stale_swept(void **state)
{
	struct cgroup_tree *t = NULL;
	char why[256] = "", stale[PATH_MAX], busy[PATH_MAX], live[PATH_MAX];
	pid_t dead = dead_pid();

	/* A crashed broker's groups, one of them still holding a process, and a live broker's. */
	snprintf(stale, sizeof(stale), "%s/ioreq-broker-%d", fake_mount, dead);
	assert_int_equal(mkdir(stale, 0755), 0);
	snprintf(busy, sizeof(busy), "%s/ioreq-broker-%d.3", fake_mount, dead);
	assert_int_equal(mkdir(busy, 0755), 0);
	strcat(busy, "/dev");
	assert_int_equal(mkdir(busy, 0755), 0);
	put(busy, "cgroup.procs", "12345\n");
	strcat(stale, "/dev");
	assert_int_equal(mkdir(stale, 0755), 0);
	snprintf(live, sizeof(live), "%s/ioreq-broker-%d", fake_mount, getppid());
	assert_int_equal(mkdir(live, 0755), 0);

	assert_int_equal(fake_open(NULL, &t, why, sizeof(why)), 0);
	assert_false(is_dir("%s/ioreq-broker-%d", fake_mount, dead));
	assert_true(is_dir("%s", busy)); /* not empty: left alone */
	assert_true(is_dir("%s", live));
	cgroup_tree_close(t);
}

/* Linux < 5.14: no cgroup.kill; every listed pid is killed through a pidfd. */
static void test_v2_kill_without_cgroup_kill(void **state)
{
	struct cgroup_tree *t = NULL;
	struct cgroup *cg = NULL;
	char why[256] = "", dev[PATH_MAX];
	pid_t victim;

	fake_old_kernel = true;
	assert_int_equal(fake_open(NULL, &t, why, sizeof(why)), 0);
	assert_int_equal(cgroup_create(t, "dev", &lim64, &cg), 0);
	snprintf(dev, sizeof(dev), "%s/ioreq-broker-%d/dev", fake_mount, getpid());
	assert_string_equal(get(dev, "memory.swap.max"), "<No such file or directory>");
	victim = fork();
	if (victim == 0) {
		pause();
		_exit(0);
	}
	put(dev, "cgroup.procs", "%d\n", victim);
	assert_int_equal(cgroup_kill(cg), 0);
	assert_true(killed(reap(victim, 5000)));
	put(dev, "cgroup.procs", "%s", ""); /* the fake kernel lets it go */
	cgroup_destroy(cg);
	assert_false(is_dir("%s", dev));
	cgroup_tree_close(t);
}

static void test_names(void **state)
{
	struct cgroup_tree *t = NULL;
	struct cgroup *a = NULL, *b = NULL;
	char why[256] = "", long_name[80];

	assert_int_equal(fake_open(NULL, &t, why, sizeof(why)), 0);
	memset(long_name, 'a', 65);
	long_name[65] = 0;
	assert_int_equal(cgroup_create(t, "", NULL, &a), -EINVAL);
	assert_int_equal(cgroup_create(t, "..", NULL, &a), -EINVAL);
	assert_int_equal(cgroup_create(t, "a/b", NULL, &a), -EINVAL);
	assert_int_equal(cgroup_create(t, "a b", NULL, &a), -EINVAL);
	assert_int_equal(cgroup_create(t, long_name, NULL, &a), -EINVAL);
	assert_int_equal(cgroup_create(t, "dev", NULL, &a), 0);
	assert_int_equal(cgroup_create(t, "dev", NULL, &b), -EEXIST);
	cgroup_destroy(a);
	/* A group the caller forgot is removed with its tree. */
	assert_int_equal(cgroup_create(t, "forgotten", NULL, &b), 0);
	cgroup_tree_close(t);
	assert_false(is_dir("%s/ioreq-broker-%d", fake_mount, getpid()));
	cgroup_destroy(b); /* after its tree: frees, its directory went with the tree */
}

/* ---- the real hierarchy of this machine ----------------------------------- */

static struct cgroup_tree *tree;
static const char *layout = "?";

static int real_setup(void **state)
{
	char why[256];

	return cgroup_tree_open(NULL, &tree, why, sizeof(why));
}

static int real_teardown(void **state)
{
	kill_children();
	tree = cgroup_tree_close(tree);
	return 0;
}

struct fds {
	int fd[4];
	size_t n;
	char path[4][PATH_MAX];
};

static void get_fds(const struct cgroup *cg, struct fds *f)
{
	char p[64];

	assert_int_equal(cgroup_open_fds(cg, f->fd, 4, &f->n), 0);
	for (size_t i = 0; i < f->n; i++) {
		ssize_t n;

		snprintf(p, sizeof(p), "/proc/self/fd/%d", f->fd[i]);
		n = readlink(p, f->path[i], sizeof(f->path[i]) - 1);
		assert_true(n > 0);
		f->path[i][n] = 0;
	}
}

static void put_fds(struct fds *f)
{
	for (size_t i = 0; i < f->n; i++)
		close(f->fd[i]);
}

static bool v2(const struct fds *f)
{
	return faccessat(f->fd[0], "cgroup.controllers", F_OK, 0) == 0;
}

/* The controllers field /proc/PID/cgroup shows for the hierarchy of fd @i. */
static const char *hierarchy_of(const struct fds *f, size_t i)
{
	if (v2(f))
		return "";
	if (faccessat(f->fd[i], "memory.limit_in_bytes", F_OK, 0) == 0)
		return "memory";
	if (faccessat(f->fd[i], "pids.max", F_OK, 0) == 0)
		return "pids";
	return "cpu";
}

static const char *get_at(const struct fds *f, const char *file)
{
	for (size_t i = 0; i < f->n; i++) {
		char p[PATH_MAX + 64];

		snprintf(p, sizeof(p), "%s/%s", f->path[i], file);
		if (access(p, F_OK) == 0)
			return get(f->path[i], file);
	}
	return "<none>";
}

/* What the launcher does, in a forked child, then @fn. */
static pid_t spawn(const struct fds *f, void (*fn)(int), int arg)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid)
		return pid;
	for (size_t i = 0; f && i < f->n; i++) {
		int fd = openat(f->fd[i], "cgroup.procs", O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, "0", 1) != 1)
			_exit(100);
		close(fd);
	}
	fn(arg);
	_exit(0);
}

static int procs_count(const struct fds *f)
{
	int n = 0, pid;

	for (size_t i = 0; i < f->n; i++) {
		char p[PATH_MAX + 16];
		FILE *fp;

		snprintf(p, sizeof(p), "%s/cgroup.procs", f->path[i]);
		fp = fopen(p, "re");
		if (!fp)
			continue;
		while (fscanf(fp, "%d", &pid) == 1)
			n++;
		fclose(fp);
	}
	return n;
}

static void reap_orphans(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static void sleep_ms(int ms)
{
	poll(NULL, 0, ms);
}

static void test_real_limits_readback(void **state)
{
	struct cgroup *cg = NULL;
	struct fds f;

	assert_int_equal(cgroup_create(tree, "readback", &lim64, &cg), 0);
	get_fds(cg, &f);
	layout = v2(&f) ? "cgroup v2" : "cgroup v1 hybrid";
	fprintf(stderr, "layout: %s, %zu fd(s): %s%s%s\n", layout, f.n, f.path[0], f.n > 1 ? " ..." : "", "");
	if (v2(&f)) {
		assert_int_equal(f.n, 1);
		assert_string_equal(get_at(&f, "memory.max"), "67108864");
		assert_string_equal(get_at(&f, "pids.max"), "32");
		assert_string_equal(get_at(&f, "cpu.max"), "20000 100000");
		assert_string_equal(get_at(&f, "memory.oom.group"), "1");
	} else {
		assert_int_equal(f.n, 3);
		assert_string_equal(get_at(&f, "memory.limit_in_bytes"), "67108864");
		if (strcmp(get_at(&f, "memory.memsw.limit_in_bytes"), "<none>") != 0)
			assert_string_equal(get_at(&f, "memory.memsw.limit_in_bytes"), "67108864");
		assert_string_equal(get_at(&f, "pids.max"), "32");
		assert_string_equal(get_at(&f, "cpu.cfs_quota_us"), "20000");
		assert_string_equal(get_at(&f, "cpu.cfs_period_us"), "100000");
	}
	put_fds(&f);
	cgroup_destroy(cg);
}

static void wait_for_signal(int fd)
{
	char c;

	assert_int_equal(read(fd, &c, 1), 1);
}

static int sync_fd[2];

static void tell_and_pause(int unused)
{
	if (write(sync_fd[1], "x", 1) != 1)
		_exit(1);
	pause();
}

/* The launcher's join through the fds lands the child in every hierarchy's group. */
static void test_real_join(void **state)
{
	struct cgroup *cg = NULL;
	struct fds f;
	char p[64], line[PATH_MAX];
	size_t matched = 0;
	FILE *fp;
	pid_t pid;

	assert_int_equal(cgroup_create(tree, "join", &lim64, &cg), 0);
	get_fds(cg, &f);
	assert_int_equal(pipe2(sync_fd, O_CLOEXEC), 0);
	pid = spawn(&f, tell_and_pause, 0);
	wait_for_signal(sync_fd[0]);
	snprintf(p, sizeof(p), "/proc/%d/cgroup", pid);
	fp = fopen(p, "re");
	assert_non_null(fp);
	/* Each fd's hierarchy has a line naming the group: "0::PATH" (v2) or "N:CONTROLLER:PATH". */
	while (fgets(line, sizeof(line), fp)) {
		char *ctls = strchr(line, ':') + 1, *cgpath = strchr(ctls, ':') + 1;
		size_t n;

		cgpath[-1] = 0;
		cgpath[strcspn(cgpath, "\n")] = 0;
		n = strlen(cgpath);
		for (size_t i = 0; i < f.n; i++) {
			size_t m = strlen(f.path[i]);

			if (strcmp(ctls, hierarchy_of(&f, i)) == 0 && m >= n &&
			    strcmp(f.path[i] + m - n, cgpath) == 0 && n > 5 && strcmp(cgpath + n - 5, "/join") == 0)
				matched++;
		}
	}
	fclose(fp);
	assert_int_equal(matched, f.n);
	assert_int_equal(procs_count(&f), (int)f.n);
	assert_int_equal(cgroup_kill(cg), 0);
	assert_true(killed(reap(pid, 5000)));
	close(sync_fd[0]);
	close(sync_fd[1]);
	put_fds(&f);
	cgroup_destroy(cg);
}

/* The attack of issue 13: memory that no rlimit counts. */
static void eat_memfd(int limit_rlimits)
{
	int fd = memfd_create("hog", MFD_CLOEXEC);

	if (limit_rlimits) {
		struct rlimit rl = {64 * MiB, 64 * MiB};

		setrlimit(RLIMIT_AS, &rl);
		setrlimit(RLIMIT_DATA, &rl);
	}
	if (fd < 0 || fallocate(fd, 0, 0, 256 * MiB) < 0)
		_exit(3);
	_exit(0);
}

static void test_real_memfd_oom(void **state)
{
	struct cgroup *cg = NULL;
	struct pollfd pfd;
	const char *hit;
	struct fds f;
	int st;
	pid_t pid;

	/* Without a cgroup, RLIMIT_AS and RLIMIT_DATA of 64 MiB do not stop 256 MiB of memfd. */
	pid = spawn(NULL, eat_memfd, 1);
	st = reap(pid, 10000);
	assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);

	assert_int_equal(cgroup_create(tree, "memfd", &lim64, &cg), 0);
	get_fds(cg, &f);
	pfd = (struct pollfd){.fd = cgroup_event_fd(cg), .events = POLLIN};
	pid = spawn(&f, eat_memfd, 0);
	st = reap(pid, 10000);
	assert_true(st != -1);
	fprintf(stderr, "memfd child: %s %d\n", WIFSIGNALED(st) ? "signal" : "exit",
		WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	assert_true(killed(st));
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	hit = cgroup_limit_hit(cg);
	assert_non_null(hit);
	fprintf(stderr, "limit hit: %s\n", hit);
	assert_string_equal(hit, "memory.max 67108864 (OOM kill)");
	assert_null(cgroup_limit_hit(cg));
	put_fds(&f);
	cgroup_destroy(cg);
}

static void fork_bomb(int unused)
{
	for (;;) {
		pid_t p = fork();

		if (p == 0)
			for (;;)
				pause();
		if (p < 0)
			break;
	}
	for (;;)
		pause();
}

static void test_real_fork_bomb(void **state)
{
	static const struct cgroup_limits lim = {.memory_max = 256 * MiB, .pids_max = 16, .cpu_percent = 100};
	struct cgroup *cg = NULL;
	struct pollfd pfd;
	const char *hit = NULL;
	struct fds f;
	int i;
	pid_t pid;

	assert_int_equal(cgroup_create(tree, "bomb", &lim, &cg), 0);
	get_fds(cg, &f);
	pfd = (struct pollfd){.fd = cgroup_event_fd(cg), .events = POLLIN};
	pid = spawn(&f, fork_bomb, 0);
	/* The event fd fires (v1: its timer) and names pids.max; spurious wake-ups name nothing. */
	for (i = 0; i < 10 && !hit; i++)
		if (poll(&pfd, 1, 2000) == 1)
			hit = cgroup_limit_hit(cg);
	assert_non_null(hit);
	fprintf(stderr, "limit hit: %s, %d processes in the group\n", hit, procs_count(&f) / (int)f.n);
	assert_string_equal(hit, "pids.max 16");
	/* Tasks count, threads too: a sanitizer's runtime thread in each child
	 * leaves room for fewer processes. */
	assert_true(procs_count(&f) / (int)f.n >= 8 && procs_count(&f) / (int)f.n <= 16);

	assert_int_equal(cgroup_kill(cg), 0);
	assert_true(killed(reap(pid, 5000)));
	for (i = 0; i < 200 && procs_count(&f); i++)
		sleep_ms(10);
	assert_int_equal(procs_count(&f), 0);
	reap_orphans();
	put_fds(&f);
	cgroup_destroy(cg);
}

static void *spin(void *arg)
{
	for (volatile unsigned long x = 0;; x++)
		;
	return NULL;
}

/* Four spinning threads for one second of wall time; the CPU time used goes to the pipe. */
static void burn(int wfd)
{
	struct timespec one = {1, 0}, cpu;
	pthread_t th;

	for (int i = 0; i < 4; i++)
		pthread_create(&th, NULL, spin, NULL);
	clock_nanosleep(CLOCK_MONOTONIC, 0, &one, NULL);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	if (write(wfd, &cpu, sizeof(cpu)) != sizeof(cpu))
		_exit(1);
	_exit(0);
}

static double burn_cpu(const struct fds *f)
{
	struct timespec cpu;
	int p[2];
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = spawn(f, burn, p[1]);
	assert_int_equal(read(p[0], &cpu, sizeof(cpu)), sizeof(cpu));
	reap(pid, 5000);
	close(p[0]);
	close(p[1]);
	return (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9;
}

static void test_real_cpu(void **state)
{
	static const struct cgroup_limits lim = {.memory_max = 256 * MiB, .pids_max = 64, .cpu_percent = 20};
	struct cgroup *cg = NULL;
	struct fds f;
	double free_cpu, capped;

	free_cpu = burn_cpu(NULL);
	assert_int_equal(cgroup_create(tree, "cpu", &lim, &cg), 0);
	get_fds(cg, &f);
	capped = burn_cpu(&f);
	fprintf(stderr, "4 spinning threads for 1 s: %.3f s of CPU without a cgroup, %.3f s with cpu 20%%\n",
		free_cpu, capped);
	assert_true(capped >= 0.05 && capped <= 0.40);
	put_fds(&f);
	cgroup_destroy(cg);
}

/* Destroy removes the group however it ended, and closing the tree leaves nothing. */
static void test_real_destroy_leaves_nothing(void **state)
{
	struct cgroup_tree *t = NULL;
	struct cgroup *cg = NULL;
	char why[256], bdir[4][PATH_MAX];
	struct fds f;
	pid_t pid;

	assert_int_equal(cgroup_tree_open(NULL, &t, why, sizeof(why)), 0);
	assert_int_equal(cgroup_create(t, "busy", &lim64, &cg), 0);
	get_fds(cg, &f);
	for (size_t i = 0; i < f.n; i++) {
		strcpy(bdir[i], f.path[i]);
		*strrchr(bdir[i], '/') = 0;
	}
	assert_int_equal(pipe2(sync_fd, O_CLOEXEC), 0);
	pid = spawn(&f, tell_and_pause, 0);
	wait_for_signal(sync_fd[0]);
	close(sync_fd[0]);
	close(sync_fd[1]);
	put_fds(&f);
	cgroup_destroy(cg); /* with a live process in it */
	assert_true(killed(reap(pid, 5000)));
	for (size_t i = 0; i < f.n; i++)
		assert_false(is_dir("%s", f.path[i]));
	/* A group still there when the tree closes goes with it. */
	assert_int_equal(cgroup_create(t, "forgotten", &lim64, &cg), 0);
	cgroup_tree_close(t);
	for (size_t i = 0; i < f.n; i++)
		assert_false(is_dir("%s", bdir[i]));
	cgroup_destroy(cg);
}

static void crash_with_a_tree(int wfd)
{
	struct cgroup_tree *t = NULL;
	struct cgroup *cg = NULL;
	char why[256];

	if (cgroup_tree_open(NULL, &t, why, sizeof(why)) < 0 || cgroup_create(t, "dev", &lim64, &cg) < 0)
		_exit(1);
	if (write(wfd, "x", 1) != 1)
		_exit(2);
	pause(); /* killed by the test: nothing is cleaned up */
}

static void test_real_two_trees(void **state)
{
	struct cgroup_tree *t2 = NULL, *t3 = NULL;
	struct cgroup *a = NULL, *b = NULL;
	char why[256], other[PATH_MAX];
	struct fds fa, fb;
	pid_t pid;

	/* Two trees of one process, each with a group of the same name. */
	assert_int_equal(cgroup_tree_open(NULL, &t2, why, sizeof(why)), 0);
	assert_int_equal(cgroup_create(tree, "dev", &lim64, &a), 0);
	assert_int_equal(cgroup_create(t2, "dev", &lim64, &b), 0);
	get_fds(a, &fa);
	get_fds(b, &fb);
	assert_true(fa.n > 0 && fa.n == fb.n);
	for (size_t i = 0; i < fa.n; i++)
		assert_string_not_equal(fa.path[i], fb.path[i]);

	/* Another broker at the same time, which then crashes. */
	assert_int_equal(pipe2(sync_fd, O_CLOEXEC), 0);
	pid = spawn(NULL, crash_with_a_tree, sync_fd[1]);
	wait_for_signal(sync_fd[0]);
	close(sync_fd[0]);
	close(sync_fd[1]);
	strcpy(other, fa.path[0]);
	snprintf(strrchr(other, '/'), sizeof(other) - (size_t)(strrchr(other, '/') - other), "/../ioreq-broker-%d/dev",
		 pid);
	assert_true(is_dir("%s", other));
	kill(pid, SIGKILL);
	assert_true(killed(reap(pid, 5000)));
	assert_true(is_dir("%s", other)); /* left behind */

	/* The next broker to start sweeps it away. */
	assert_int_equal(cgroup_tree_open(NULL, &t3, why, sizeof(why)), 0);
	assert_false(is_dir("%s", other));
	for (size_t i = 0; i < fa.n; i++) {
		assert_true(is_dir("%s", fa.path[i]));
		assert_true(is_dir("%s", fb.path[i]));
	}
	put_fds(&fa);
	put_fds(&fb);
	cgroup_destroy(a);
	cgroup_destroy(b);
	cgroup_tree_close(t2);
	cgroup_tree_close(t3);
}

static int open_real_unprivileged(void)
{
	struct cgroup_tree *t = NULL;
	char why[256] = "";
	int r = cgroup_tree_open(NULL, &t, why, sizeof(why));

	fprintf(stderr, "unprivileged here: %d %s\n", r, why);
	cgroup_tree_close(t);
	return r < 0 && why[0] ? 0 : 1;
}

static void test_real_unprivileged_refused(void **state)
{
	assert_int_equal(as_nobody(open_real_unprivileged), 0);
}

int main(void)
{
	const struct CMUnitTest fake_tests[] = {
		cmocka_unit_test_setup_teardown(test_v2_root_writes, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_delegated, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_delegated_not_alone, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_unprivileged, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_configured, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_no_controllers, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_stale_swept, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_v2_kill_without_cgroup_kill, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_names, fake_setup, fake_teardown),
	};
	const struct CMUnitTest real_tests[] = {
		cmocka_unit_test_setup_teardown(test_real_limits_readback, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_join, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_memfd_oom, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_fork_bomb, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_cpu, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_destroy_leaves_nothing, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_two_trees, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_unprivileged_refused, real_setup, real_teardown),
	};
	struct cgroup_tree *probe = NULL;
	char why[256];
	int failed;

	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: test_cgroup needs root (it creates cgroups and changes uid)\n");
		return 77;
	}
	/* Killed fork-bomb children are orphans: collect them here. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	failed = cmocka_run_group_tests_name("cgroup v2 (fake tree)", fake_tests, NULL, NULL);
	if (cgroup_tree_open(NULL, &probe, why, sizeof(why)) < 0) {
		fprintf(stderr, "SKIP: no usable cgroup hierarchy here, real cgroup tests not run: %s\n", why);
		return failed ? failed : 77;
	}
	cgroup_tree_close(probe);
	return failed + cmocka_run_group_tests_name("cgroup (this machine's hierarchy)", real_tests, NULL, NULL);
}
