/* Device cgroups on cgroup v2 and on the v1 hybrid layout: see cgroup.h for
 * where they live and what the caller does with them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/xattr.h>

#include "cgroup.h"

enum { CTL_MEMORY = 1, CTL_PIDS = 2, CTL_CPU = 4, CTL_ALL = 7 };

#define MAX_HIER 3             /* v1: memory, pids and cpu in their own hierarchies at most */
#define CPU_PERIOD_US 100000   /* the kernel's default CFS period */
#define V1_PIDS_POLL_MS 1000   /* v1 pids.events never notifies: read it this often */
#define DESTROY_WAIT_MS 2000   /* how long cgroup_destroy waits for killed tasks to leave */
#define NAME_MAX_LEN 64
#define BROKER_DIR "ioreq-broker-"
#define SUPERVISOR "supervisor"

/* One mounted hierarchy that carries some of our controllers. */
struct hier {
	unsigned ctl; /* CTL_* */
	char *mount;  /* mount point */
	char *root;   /* the cgroup at the mount point, as /proc/self/cgroup names cgroups */
	char *own;    /* the broker's own cgroup, as /proc/self/cgroup names it */
	char *base;   /* the directory the broker's directory goes in */
	char *dir;    /* base/ioreq-broker-PID: the devices' groups go here */
	int lockfd;   /* dir, flock()ed while this broker lives */
};

struct cgroup_tree {
	bool v1;
	unsigned n;
	struct hier h[MAX_HIER];
};

struct group_dir {
	unsigned ctl;
	char *path;
	bool present; /* made by us and not removed yet */
};

struct cgroup {
	bool v1;
	unsigned n;
	struct group_dir d[MAX_HIER];
	int epfd;     /* what cgroup_event_fd returns */
	int mem_fd;   /* v2 memory.events, v1 memory.oom_control: both count oom_kill */
	int pids_fd;  /* pids.events: "max N" */
	int oom_efd;  /* v1: eventfd registered for OOM notifications */
	int timer_fd; /* v1: periodic look at pids.events */
	uint64_t memory_max;
	uint32_t pids_max;
	uint64_t oom_kills, pids_events; /* counts already reported */
	char hit[96];
};

/* A process in a group, held by pidfd so that a signal never reaches a recycled pid. */
struct member {
	pid_t pid;
	int fd;
};

static const char *const ctl_names[] = {"memory", "pids", "cpu"};

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_kill(int fd)
{
	return (int)syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
}

static int fail(char *why, size_t len, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return err;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* "a" + "/" + "b"; "b" empty gives "a". NULL when out of memory. */
static char *join(const char *a, const char *b)
{
	char *s;
	size_t la = strlen(a);

	if (!*b)
		return strdup(a);
	while (la > 1 && a[la - 1] == '/')
		la--;
	if (asprintf(&s, "%.*s%s%s", (int)la, a, la == 1 && a[0] == '/' ? "" : "/", b) < 0)
		return NULL;
	return s;
}

/* The rest of @path below @prefix ("" for @prefix itself, no leading slash),
 * or NULL when @path is not @prefix or below it. Compares whole components. */
static const char *under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	while (n > 1 && prefix[n - 1] == '/')
		n--;
	if (n == 1 && prefix[0] == '/')
		n = 0;
	if (strncmp(path, prefix, n) != 0 || (path[n] && path[n] != '/'))
		return NULL;
	while (path[n] == '/')
		n++;
	return path + n;
}

static int read_text(const char *dir, const char *file, char *buf, size_t len)
{
	char *p = join(dir, file);
	ssize_t n;
	int fd, err;

	if (!p)
		return -ENOMEM;
	fd = open(p, O_RDONLY | O_CLOEXEC);
	err = -errno;
	free(p);
	if (fd < 0)
		return err;
	n = read(fd, buf, len - 1);
	err = -errno;
	close(fd);
	if (n < 0)
		return err;
	buf[n] = 0;
	return (int)n;
}

/* O_TRUNC: cgroupfs ignores it, and a fake tree in a plain directory then
 * holds exactly the last value written. */
static int write_text(const char *dir, const char *file, const char *val)
{
	char *p = join(dir, file);
	size_t len = strlen(val);
	ssize_t n;
	int fd, err;

	if (!p)
		return -ENOMEM;
	fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
	err = -errno;
	free(p);
	if (fd < 0)
		return err;
	n = write(fd, val, len);
	err = n < 0 ? -errno : (size_t)n == len ? 0 : -EIO;
	close(fd);
	return err;
}

static bool has_file(const char *dir, const char *file)
{
	char *p = join(dir, file);
	bool ok = p && access(p, F_OK) == 0;

	free(p);
	return ok;
}

/* The number after "@key " on a line of @text (memory.events, pids.events, memory.oom_control). */
static bool key_value(const char *text, const char *key, uint64_t *ret)
{
	size_t n = strlen(key);

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (strncmp(l, key, n) == 0 && l[n] == ' ') {
			*ret = strtoull(l + n + 1, NULL, 10);
			return true;
		}
	return false;
}

static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ' || p[-1] == ',') && (!p[n] || strchr(" ,\n", p[n])))
			return true;
	return false;
}

static unsigned ctl_mask(const char *list)
{
	unsigned m = 0;

	for (unsigned i = 0; i < 3; i++)
		if (has_word(list, ctl_names[i]))
			m |= 1u << i;
	return m;
}

static void ctl_text(unsigned m, char *buf, size_t len)
{
	buf[0] = 0;
	for (unsigned i = 0; i < 3; i++)
		if (m & (1u << i))
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? ", " : "", ctl_names[i]);
}

static const char *denied_hint(bool v1, int err)
{
	if (err != -EACCES && err != -EPERM && err != -EROFS)
		return "";
	return v1 ? " (cgroup v1 cannot be delegated to an unprivileged broker: run it as root, or on cgroup v2 "
		    "with Delegate=yes)"
		  : " (the broker needs a delegated cgroup: Delegate=yes, without ProtectControlGroups=)";
}

/* ---- where the hierarchies are ---------------------------------------- */

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++)
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	*o = 0;
}

struct layout {
	struct hier v2;              /* ctl, mount, root (ctl 0: no cgroup2 mount) */
	struct hier v1[MAX_HIER];
	unsigned nv1, v1_ctl;
};

static void hier_fini(struct hier *h)
{
	free(h->mount);
	free(h->root);
	free(h->own);
	free(h->base);
	free(h->dir);
	close_fd(&h->lockfd);
	*h = (struct hier){.lockfd = -1};
}

static void layout_fini(struct layout *l)
{
	hier_fini(&l->v2);
	for (unsigned i = 0; i < MAX_HIER; i++)
		hier_fini(&l->v1[i]);
}

static int add_mount(struct layout *l, const char *root, const char *mount, const char *type, const char *opts)
{
	struct hier *h;
	unsigned m;

	if (strcmp(type, "cgroup2") == 0) {
		if (l->v2.mount)
			return 0;
		h = &l->v2;
		m = CTL_ALL; /* checked against cgroup.controllers later */
	} else if (strcmp(type, "cgroup") == 0) {
		/* A hierarchy mounted twice, or a controller already seen: keep the first. */
		m = ctl_mask(opts) & ~l->v1_ctl;
		if (!m || l->nv1 == MAX_HIER)
			return 0;
		h = &l->v1[l->nv1++];
		l->v1_ctl |= m;
	} else {
		return 0;
	}
	h->ctl = m;
	h->mount = strdup(mount);
	h->root = strdup(root);
	return h->mount && h->root ? 0 : -ENOMEM;
}

static int read_mounts(const char *path, struct layout *l)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	int r = 0;

	if (!f)
		return -errno;
	while (r == 0 && getline(&line, &cap, f) > 0) {
		char *field[6], *save = NULL, *type, *opts, *tok;
		unsigned n = 0;

		for (tok = strtok_r(line, " \n", &save); tok && n < 6; tok = strtok_r(NULL, " \n", &save))
			field[n++] = tok;
		/* Optional fields run up to "-"; then type, source, super options. */
		while (tok && strcmp(tok, "-") != 0)
			tok = strtok_r(NULL, " \n", &save);
		type = strtok_r(NULL, " \n", &save);
		strtok_r(NULL, " \n", &save);
		opts = strtok_r(NULL, " \n", &save);
		if (n < 5 || !type || !opts)
			continue;
		unescape(field[3]);
		unescape(field[4]);
		r = add_mount(l, field[3], field[4], type, opts);
	}
	free(line);
	fclose(f);
	return r;
}

/* The broker's own cgroup in each hierarchy, from /proc/self/cgroup. */
static int read_own(const char *path, struct layout *l)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	int r = 0;

	if (!f)
		return -errno;
	while (r == 0 && getline(&line, &cap, f) > 0) {
		char *ctl = strchr(line, ':'), *cg = ctl ? strchr(ctl + 1, ':') : NULL;
		struct hier *h = NULL;

		if (!cg)
			continue;
		*ctl++ = 0;
		*cg++ = 0;
		cg[strcspn(cg, "\n")] = 0;
		if (strcmp(line, "0") == 0 && !*ctl) {
			h = &l->v2;
		} else {
			unsigned m = ctl_mask(ctl);

			for (unsigned i = 0; m && i < l->nv1; i++)
				if (l->v1[i].ctl & m)
					h = &l->v1[i];
		}
		if (h && h->mount && !h->own && !(h->own = strdup(cg)))
			r = -ENOMEM;
	}
	free(line);
	fclose(f);
	return r;
}

/* The directory of cgroup @cg in hierarchy @h, or NULL when that mount does not show it. */
static char *cg_dir(const struct hier *h, const char *cg)
{
	const char *rest = under(cg, h->root);

	return rest ? join(h->mount, rest) : NULL;
}

/* ---- v2: whose subtree we may use --------------------------------------- */

static bool owned_by(const char *dir, const char *file, uid_t uid)
{
	char *p = join(dir, file);
	struct stat st;
	bool ok = p && stat(p, &st) == 0 && st.st_uid == uid;

	free(p);
	return ok;
}

/* systemd marks a delegated group with trusted.delegate (root with
 * CAP_SYS_ADMIN can read it) and, since v253, user.delegate. For an
 * unprivileged broker the test that matters is the one the kernel applies:
 * delegation hands the group, its cgroup.procs and its cgroup.subtree_control
 * to the delegatee's uid. */
static bool delegated(const char *dir)
{
	static const char *const attrs[] = {"trusted.delegate", "user.delegate"};
	uid_t uid = geteuid();
	char v[4];

	for (unsigned i = 0; i < 2; i++)
		if (getxattr(dir, attrs[i], v, sizeof(v)) == 1 && v[0] == '1')
			return true;
	return uid != 0 && owned_by(dir, "", uid) && owned_by(dir, "cgroup.procs", uid) &&
	       owned_by(dir, "cgroup.subtree_control", uid);
}

static const char *basename_of(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

static char *parent_of(const char *p)
{
	const char *s = strrchr(p, '/');

	return s && s != p ? strndup(p, (size_t)(s - p)) : strdup("/");
}

/* cgroup v2 lets a group distribute controllers only while it holds no
 * processes; the broker leaves its own group for a leaf of it. Only when it is
 * alone there: other processes belong to whoever started it. */
static int move_into_supervisor(const char *base, char *why, size_t len)
{
	char buf[64], me[24], *sup;
	int r;

	r = read_text(base, "cgroup.procs", buf, sizeof(buf));
	if (r < 0)
		return fail(why, len, r, "cannot read %s/cgroup.procs: %s", base, strerror(-r));
	snprintf(me, sizeof(me), "%d\n", getpid());
	if (*buf && strcmp(buf, me) != 0)
		return fail(why, len, -EBUSY,
			    "the broker's cgroup %s holds other processes besides the broker; "
			    "start it in a cgroup of its own (a unit with Delegate=yes) or set broker.cgroup",
			    base);
	sup = join(base, SUPERVISOR);
	if (!sup)
		return -ENOMEM;
	r = mkdir(sup, 0755) < 0 && errno != EEXIST ? -errno : 0;
	if (r == 0)
		r = write_text(sup, "cgroup.procs", "0");
	if (r < 0)
		fail(why, len, r, "cannot move the broker into %s: %s", sup, strerror(-r));
	free(sup);
	return r;
}

static int check_controllers(const char *dir, char *why, size_t len)
{
	char have[256], miss[32];
	int r = read_text(dir, "cgroup.controllers", have, sizeof(have));

	if (r < 0)
		return fail(why, len, r, "cannot read %s/cgroup.controllers: %s", dir, strerror(-r));
	if (ctl_mask(have) == CTL_ALL)
		return 0;
	ctl_text(CTL_ALL & ~ctl_mask(have), miss, sizeof(miss));
	return fail(why, len, -EOPNOTSUPP,
		    "controllers %s are not available in %s (enable them in its parent's cgroup.subtree_control)",
		    miss, dir);
}

static int enable_controllers(const char *dir, char *why, size_t len)
{
	int r = write_text(dir, "cgroup.subtree_control", "+memory +pids +cpu");

	if (r == -EBUSY)
		return fail(why, len, r,
			    "cannot enable memory, pids and cpu in %s: it holds processes (cgroup v2 lets only "
			    "groups without processes hand controllers to their children)",
			    dir);
	if (r < 0)
		return fail(why, len, r, "cannot enable memory, pids and cpu in %s: %s%s", dir, strerror(-r),
			    denied_hint(false, r));
	return 0;
}

/* ---- the broker's own directory and stale ones ---------------------------- */

/* "ioreq-broker-PID" or "ioreq-broker-PID.N": the pid, or 0. */
static pid_t broker_dir_pid(const char *name)
{
	const char *s = name + strlen(BROKER_DIR);
	char *end;
	long pid;

	if (strncmp(name, BROKER_DIR, strlen(BROKER_DIR)) != 0 || *s < '1' || *s > '9')
		return 0;
	pid = strtol(s, &end, 10);
	if (*end == '.' && end[1] >= '0' && end[1] <= '9')
		strtoul(end + 1, &end, 10);
	return *end || pid <= 0 || pid > INT32_MAX ? 0 : (pid_t)pid;
}

static void rmdir_children(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_type == DT_DIR && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			char *p = join(dir, e->d_name);

			if (p)
				rmdir(p);
			free(p);
		}
	closedir(d);
}

/* A broker's directory is stale when nobody holds its lock and its pid is
 * gone (or is this process: a tree of ours that could not be removed). The
 * pid test covers the moment between another broker's mkdir and its flock. */
static void sweep_stale(const char *base)
{
	DIR *d = opendir(base);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		pid_t pid = broker_dir_pid(e->d_name);
		char *p;
		int fd;

		if (!pid || e->d_type != DT_DIR || !(p = join(base, e->d_name)))
			continue;
		fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    (pid == getpid() || (kill(pid, 0) < 0 && errno == ESRCH))) {
			/* Groups still holding processes stay, and so does their parent. */
			rmdir_children(p);
			rmdir(p);
		}
		if (fd >= 0)
			close(fd);
		free(p);
	}
	closedir(d);
}

/* ioreq-broker-PID in every hierarchy, each locked; a name some other tree
 * holds (a second tree of this process, a broker in another pid namespace)
 * moves on to ioreq-broker-PID.N. */
static int make_broker_dirs(struct cgroup_tree *t, char *why, size_t len)
{
	for (unsigned seq = 0; seq < 64; seq++) {
		bool made[MAX_HIER] = {false};
		char name[48];
		unsigned i;
		int r = 0;

		if (seq)
			snprintf(name, sizeof(name), BROKER_DIR "%d.%u", getpid(), seq);
		else
			snprintf(name, sizeof(name), BROKER_DIR "%d", getpid());
		for (i = 0; i < t->n; i++) {
			struct hier *h = &t->h[i];

			if (!(h->dir = join(h->base, name))) {
				r = -ENOMEM;
				break;
			}
			if (mkdir(h->dir, 0755) < 0) {
				r = -errno;
				break;
			}
			made[i] = true;
			if ((h->lockfd = open(h->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
				r = -errno;
				break;
			}
			if (flock(h->lockfd, LOCK_EX | LOCK_NB) < 0) {
				r = errno == EWOULDBLOCK ? -EEXIST : -errno;
				break;
			}
		}
		if (r == 0)
			return 0;
		if (r != -EEXIST)
			fail(why, len, r, "cannot create %s: %s%s", t->h[i].dir ? t->h[i].dir : name, strerror(-r),
			     denied_hint(t->v1, r));
		for (unsigned j = 0; j < t->n; j++) {
			close_fd(&t->h[j].lockfd);
			if (made[j])
				rmdir(t->h[j].dir);
			free(t->h[j].dir);
			t->h[j].dir = NULL;
		}
		if (r != -EEXIST)
			return r;
	}
	return fail(why, len, -EEXIST, "cannot find a free name for the broker's cgroup in %s", t->h[0].base);
}

/* ---- opening a tree ------------------------------------------------------- */

/* Chooses where the broker's directory goes (see cgroup.h) and whether the
 * broker must first leave that group for its supervisor leaf. */
static int choose_v2_base(struct hier *h, const char *own_dir, const char *configured, bool *move_self, char *why,
			  size_t len)
{
	char *parent = NULL;

	*move_self = false;
	if (configured) {
		if (!under(configured, h->mount))
			return fail(why, len, -EINVAL, "broker.cgroup %s is not in the cgroup v2 hierarchy at %s",
				    configured, h->mount);
		if (mkdir(configured, 0755) < 0 && errno != EEXIST) {
			int err = -errno;

			return fail(why, len, err, "cannot create %s: %s%s", configured, strerror(-err),
				    denied_hint(false, err));
		}
		*move_self = own_dir && strcmp(own_dir, configured) == 0;
		h->base = strdup(configured);
	} else if (own_dir && strcmp(basename_of(own_dir), SUPERVISOR) == 0 && (parent = parent_of(own_dir)) &&
		   delegated(parent)) {
		/* An earlier tree of this broker moved it out of the way already. */
		h->base = parent;
		parent = NULL;
	} else if (own_dir && delegated(own_dir)) {
		*move_self = true;
		h->base = strdup(own_dir);
	} else if (geteuid() == 0) {
		h->base = strdup(h->mount);
	} else {
		free(parent);
		return fail(why, len, -EPERM,
			    "the broker's cgroup %s is not delegated to it (uid %u) and it is not root: run it "
			    "from a unit with Delegate=yes, or set broker.cgroup to a cgroup it owns",
			    h->own ? h->own : "(unknown)", (unsigned)geteuid());
	}
	free(parent);
	return h->base ? 0 : fail(why, len, -ENOMEM, "out of memory");
}

static int open_v2(struct cgroup_tree *t, struct layout *l, const char *configured, char *why, size_t len)
{
	struct hier *h = &t->h[0];
	char *own_dir = NULL;
	bool move_self;
	int r;

	*h = l->v2;
	l->v2 = (struct hier){.lockfd = -1};
	t->n = 1;
	if (h->own && !(own_dir = cg_dir(h, h->own)))
		return fail(why, len, -ENOENT, "the broker's cgroup %s is not visible under %s", h->own, h->mount);
	r = choose_v2_base(h, own_dir, configured, &move_self, why, len);
	if (r == 0)
		r = check_controllers(h->base, why, len);
	if (r == 0 && move_self)
		r = move_into_supervisor(h->base, why, len);
	if (r == 0)
		r = enable_controllers(h->base, why, len);
	if (r == 0) {
		sweep_stale(h->base);
		r = make_broker_dirs(t, why, len);
	}
	if (r == 0)
		r = enable_controllers(h->dir, why, len);
	free(own_dir);
	return r;
}

static int open_v1(struct cgroup_tree *t, struct layout *l, const char *configured, char *why, size_t len)
{
	const char *rel = NULL;
	int r;

	if (configured) {
		for (unsigned i = 0; !rel && i < l->nv1; i++)
			rel = under(configured, l->v1[i].mount);
		if (!rel)
			return fail(why, len, -EINVAL,
				    "broker.cgroup %s is not in the memory, pids or cpu cgroup v1 hierarchy", configured);
	}
	for (unsigned i = 0; i < l->nv1; i++) {
		struct hier *h = &t->h[t->n++];

		*h = l->v1[i];
		l->v1[i] = (struct hier){.lockfd = -1};
		if (rel) {
			h->base = join(h->mount, rel);
			if (h->base && mkdir(h->base, 0755) < 0 && errno != EEXIST) {
				int err = -errno;

				return fail(why, len, err, "cannot create %s: %s%s", h->base, strerror(-err),
					    denied_hint(true, err));
			}
		} else if (!h->own) {
			return fail(why, len, -ENOENT, "/proc/self/cgroup does not name the broker's cgroup under %s",
				    h->mount);
		} else if (!(h->base = cg_dir(h, h->own))) {
			return fail(why, len, -ENOENT, "the broker's cgroup %s is not visible under %s", h->own,
				    h->mount);
		}
		if (!h->base)
			return -ENOMEM;
		sweep_stale(h->base);
	}
	r = make_broker_dirs(t, why, len);
	return r;
}

int cgroup_tree_open_at(const char *mountinfo, const char *proc_cgroup, const char *configured,
			struct cgroup_tree **ret, char *why, size_t len)
{
	struct layout l = {.v2.lockfd = -1};
	struct cgroup_tree *t;
	char have[256] = "", *conf = NULL;
	int r;

	for (unsigned i = 0; i < MAX_HIER; i++)
		l.v1[i].lockfd = -1;
	if (configured && (configured[0] != '/' || strstr(configured, "/..") || strstr(configured, "/./") ||
			   strstr(configured, "//")))
		return fail(why, len, -EINVAL, "broker.cgroup %s is not an absolute, normalised path", configured);
	t = calloc(1, sizeof(*t));
	if (!t || (configured && !(conf = strdup(configured)))) {
		free(t);
		return fail(why, len, -ENOMEM, "out of memory");
	}
	/* Compared with the broker's own directory below: no trailing slash. */
	for (size_t n = conf ? strlen(conf) : 0; n > 1 && conf[n - 1] == '/'; n--)
		conf[n - 1] = 0;
	configured = conf;
	for (unsigned i = 0; i < MAX_HIER; i++)
		t->h[i].lockfd = -1;
	r = read_mounts(mountinfo, &l);
	if (r == 0)
		r = read_own(proc_cgroup, &l);
	if (r < 0) {
		fail(why, len, r, "cannot read %s and %s: %s", mountinfo, proc_cgroup, strerror(-r));
		goto err;
	}
	/* v2 when its root offers our controllers; else the hybrid layout's v1 hierarchies. */
	if (l.v2.mount)
		read_text(l.v2.mount, "cgroup.controllers", have, sizeof(have));
	if (l.v2.mount && ctl_mask(have) == CTL_ALL) {
		r = open_v2(t, &l, configured, why, len);
	} else if (l.v1_ctl == CTL_ALL) {
		t->v1 = true;
		r = open_v1(t, &l, configured, why, len);
	} else {
		char miss[32];

		ctl_text(CTL_ALL & ~l.v1_ctl, miss, sizeof(miss));
		have[strcspn(have, "\n")] = 0;
		r = fail(why, len, -EOPNOTSUPP,
			 "no cgroup hierarchy offers the memory, pids and cpu controllers (cgroup v2 %s%s%s%s; "
			 "cgroup v1 lacks %s)",
			 l.v2.mount ? "at " : "not mounted", l.v2.mount ? l.v2.mount : "",
			 l.v2.mount ? " offers: " : "", l.v2.mount ? (*have ? have : "none") : "", miss);
	}
	if (r < 0)
		goto err;
	layout_fini(&l);
	free(conf);
	*ret = t;
	return 0;
err:
	layout_fini(&l);
	free(conf);
	cgroup_tree_close(t);
	return r;
}

int cgroup_tree_open(const char *configured, struct cgroup_tree **ret, char *why, size_t len)
{
	return cgroup_tree_open_at("/proc/self/mountinfo", "/proc/self/cgroup", configured, ret, why, len);
}

/* ---- one device's group ------------------------------------------------- */

static struct cgroup *group_alloc(const struct cgroup_tree *t, const char *name)
{
	struct cgroup *cg = calloc(1, sizeof(*cg));

	if (!cg)
		return NULL;
	cg->v1 = t->v1;
	cg->epfd = cg->mem_fd = cg->pids_fd = cg->oom_efd = cg->timer_fd = -1;
	for (unsigned i = 0; i < t->n; i++) {
		cg->d[cg->n].ctl = t->h[i].ctl;
		if (!(cg->d[cg->n++].path = join(t->h[i].dir, name)))
			return cgroup_destroy(cg);
	}
	return cg;
}

static const char *dir_of(const struct cgroup *cg, unsigned ctl)
{
	for (unsigned i = 0; i < cg->n; i++)
		if (cg->d[i].ctl & ctl)
			return cg->d[i].path;
	return NULL;
}

static int set_limits(struct cgroup *cg, const struct cgroup_limits *lim)
{
	const char *mem = dir_of(cg, CTL_MEMORY), *pids = dir_of(cg, CTL_PIDS), *cpu = dir_of(cg, CTL_CPU);
	char v[48];
	int r = 0;

	if (lim->memory_max) {
		snprintf(v, sizeof(v), "%" PRIu64, lim->memory_max);
		r = write_text(mem, cg->v1 ? "memory.limit_in_bytes" : "memory.max", v);
		/* No swap: a limit that swap could stretch is no limit. */
		if (r == 0 && cg->v1 && has_file(mem, "memory.memsw.limit_in_bytes"))
			r = write_text(mem, "memory.memsw.limit_in_bytes", v);
		if (r == 0 && !cg->v1 && has_file(mem, "memory.swap.max"))
			r = write_text(mem, "memory.swap.max", "0");
	}
	/* One OOM kill takes the whole device, not one of its processes. */
	if (r == 0 && !cg->v1 && has_file(mem, "memory.oom.group"))
		r = write_text(mem, "memory.oom.group", "1");
	if (r == 0 && lim->pids_max) {
		snprintf(v, sizeof(v), "%" PRIu32, lim->pids_max);
		r = write_text(pids, "pids.max", v);
	}
	if (r == 0 && lim->cpu_percent) {
		uint64_t quota = (uint64_t)lim->cpu_percent * CPU_PERIOD_US / 100;

		if (cg->v1) {
			snprintf(v, sizeof(v), "%d", CPU_PERIOD_US);
			r = write_text(cpu, "cpu.cfs_period_us", v);
			snprintf(v, sizeof(v), "%" PRIu64, quota);
			if (r == 0)
				r = write_text(cpu, "cpu.cfs_quota_us", v);
		} else {
			snprintf(v, sizeof(v), "%" PRIu64 " %d", quota, CPU_PERIOD_US);
			r = write_text(cpu, "cpu.max", v);
		}
	}
	return r;
}

static int open_counter(const char *dir, const char *file, int *ret_fd)
{
	char *p = join(dir, file), buf[256];

	if (!p)
		return -ENOMEM;
	*ret_fd = open(p, O_RDONLY | O_CLOEXEC);
	free(p);
	if (*ret_fd < 0)
		return -errno;
	/* kernfs reports EPOLLPRI until the file is read once after a change. */
	return pread(*ret_fd, buf, sizeof(buf), 0) < 0 ? -errno : 0;
}

static int watch(int epfd, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events};

	/* EPERM: a file that cannot be polled, which only a fake tree in a plain
	 * directory has; cgroup_limit_hit still reads it. */
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno != EPERM)
		return -errno;
	return 0;
}

static int setup_events(struct cgroup *cg)
{
	const char *mem = dir_of(cg, CTL_MEMORY), *pids = dir_of(cg, CTL_PIDS);
	char reg[64];
	int r;

	cg->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (cg->epfd < 0)
		return -errno;
	r = open_counter(mem, cg->v1 ? "memory.oom_control" : "memory.events", &cg->mem_fd);
	if (r == 0)
		r = open_counter(pids, "pids.events", &cg->pids_fd);
	if (r == 0)
		r = watch(cg->epfd, cg->pids_fd, EPOLLPRI);
	if (r < 0 || !cg->v1)
		return r < 0 ? r : watch(cg->epfd, cg->mem_fd, EPOLLPRI);

	/* v1: the memory controller signals an eventfd on OOM ... */
	cg->oom_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (cg->oom_efd < 0)
		return -errno;
	snprintf(reg, sizeof(reg), "%d %d", cg->oom_efd, cg->mem_fd);
	r = write_text(mem, "cgroup.event_control", reg);
	if (r == 0)
		r = watch(cg->epfd, cg->oom_efd, EPOLLIN);
	if (r < 0 || !cg->pids_max)
		return r;
	/* ... but v1 pids.events never notifies (checked on 6.18): look at it periodically. */
	cg->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (cg->timer_fd < 0)
		return -errno;
	struct itimerspec its = {
		.it_value = {.tv_sec = V1_PIDS_POLL_MS / 1000, .tv_nsec = V1_PIDS_POLL_MS % 1000 * 1000000L},
		.it_interval = {.tv_sec = V1_PIDS_POLL_MS / 1000, .tv_nsec = V1_PIDS_POLL_MS % 1000 * 1000000L},
	};
	if (timerfd_settime(cg->timer_fd, 0, &its, NULL) < 0)
		return -errno;
	return watch(cg->epfd, cg->timer_fd, EPOLLIN);
}

static bool valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > NAME_MAX_LEN || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

int cgroup_create(struct cgroup_tree *t, const char *name, const struct cgroup_limits *lim, struct cgroup **ret)
{
	static const struct cgroup_limits none;
	struct cgroup *cg;
	int r = 0;

	if (!t || !name || !valid_name(name))
		return -EINVAL;
	cg = group_alloc(t, name);
	if (!cg)
		return -ENOMEM;
	if (!lim)
		lim = &none;
	cg->memory_max = lim->memory_max;
	cg->pids_max = lim->pids_max;
	for (unsigned i = 0; r == 0 && i < cg->n; i++) {
		r = mkdir(cg->d[i].path, 0755) < 0 ? -errno : 0;
		cg->d[i].present = r == 0;
	}
	if (r == 0)
		r = set_limits(cg, lim);
	if (r == 0)
		r = setup_events(cg);
	if (r < 0) {
		cgroup_destroy(cg);
		return r;
	}
	*ret = cg;
	return 0;
}

int cgroup_open_fds(const struct cgroup *cg, int *fds, size_t max, size_t *ret_n)
{
	if (max < cg->n)
		return -ENOBUFS;
	for (unsigned i = 0; i < cg->n; i++) {
		fds[i] = open(cg->d[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fds[i] < 0) {
			int r = -errno;

			while (i--)
				close(fds[i]);
			return r;
		}
	}
	*ret_n = cg->n;
	return 0;
}

int cgroup_event_fd(const struct cgroup *cg)
{
	return cg->epfd;
}

static bool counter(int fd, const char *key, uint64_t *val)
{
	char buf[512];
	ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;

	if (n < 0)
		return false;
	buf[n] = 0;
	return key_value(buf, key, val);
}

static void drain(int fd)
{
	uint64_t v;
	ssize_t n = fd >= 0 ? read(fd, &v, sizeof(v)) : 0;

	(void)n; /* EAGAIN: nothing to drain */
}

const char *cgroup_limit_hit(struct cgroup *cg)
{
	uint64_t v;
	size_t n = 0;

	/* Re-arm: the eventfd and the timer poll readable until read, the
	 * kernfs files (read below) until read after a change. */
	drain(cg->oom_efd);
	drain(cg->timer_fd);
	cg->hit[0] = 0;
	if (counter(cg->mem_fd, "oom_kill", &v) && v > cg->oom_kills) {
		cg->oom_kills = v;
		if (cg->memory_max)
			n += (size_t)snprintf(cg->hit, sizeof(cg->hit), "memory.max %" PRIu64 " (OOM kill)",
					      cg->memory_max);
		else
			n += (size_t)snprintf(cg->hit, sizeof(cg->hit), "memory (OOM kill)");
	}
	if (counter(cg->pids_fd, "max", &v) && v > cg->pids_events) {
		cg->pids_events = v;
		snprintf(cg->hit + n, sizeof(cg->hit) - n, "%spids.max %" PRIu32, n ? ", " : "", cg->pids_max);
	}
	return cg->hit[0] ? cg->hit : NULL;
}

/* ---- killing and removing ------------------------------------------------- */

static int add_pid(pid_t **v, size_t *n, size_t *cap, pid_t pid)
{
	for (size_t i = 0; i < *n; i++)
		if ((*v)[i] == pid)
			return 0;
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		pid_t *nv = realloc(*v, c * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = pid;
	return 0;
}

/* Every pid listed in the group's cgroup.procs files (each hierarchy, for v1). */
static int list_pids(const struct cgroup *cg, pid_t **ret, size_t *ret_n)
{
	pid_t *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	for (unsigned i = 0; r == 0 && i < cg->n; i++) {
		char *p;
		FILE *f;
		int pid;

		if (!cg->d[i].present)
			continue;
		p = join(cg->d[i].path, "cgroup.procs");
		f = p ? fopen(p, "re") : NULL;
		free(p);
		if (!f) {
			r = errno == ENOENT ? 0 : -errno;
			continue;
		}
		while (r == 0 && fscanf(f, "%d", &pid) == 1)
			r = add_pid(&v, &n, &cap, pid);
		fclose(f);
	}
	if (r < 0) {
		free(v);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static bool listed(const pid_t *v, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == pid)
			return true;
	return false;
}

/* Pidfds of the group's processes. A pid still listed after its pidfd was
 * opened names the process the pidfd holds, so nothing recycled is kept. */
static int members(const struct cgroup *cg, struct member **ret, size_t *ret_n)
{
	struct member *m = NULL;
	pid_t *before = NULL, *after = NULL;
	size_t nb = 0, na = 0, n = 0;
	int r;

	r = list_pids(cg, &before, &nb);
	if (r < 0 || nb == 0)
		goto out;
	m = calloc(nb, sizeof(*m));
	if (!m) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nb; i++) {
		int fd = pidfd_open_(before[i]);

		if (fd >= 0)
			m[n++] = (struct member){before[i], fd};
	}
	r = list_pids(cg, &after, &na);
	for (size_t i = 0; i < n; i++)
		if (r < 0 || !listed(after, na, m[i].pid))
			close_fd(&m[i].fd);
out:
	free(before);
	free(after);
	if (r < 0) {
		free(m);
		return r;
	}
	*ret = m;
	*ret_n = m ? n : 0;
	return 0;
}

static void members_free(struct member *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close_fd(&m[i].fd);
	free(m);
}

/* A killed process cannot fork any more (fork fails with a fatal signal
 * pending), so a pass that finds nobody new has found everyone. */
static int kill_listed(struct cgroup *cg)
{
	pid_t *done = NULL;
	size_t ndone = 0, cap = 0;
	int r = -EAGAIN;

	for (unsigned pass = 0; pass < 64; pass++) {
		struct member *m;
		size_t n, fresh = 0;

		r = members(cg, &m, &n);
		if (r < 0)
			break;
		for (size_t i = 0; r == 0 && i < n; i++) {
			if (m[i].fd < 0 || listed(done, ndone, m[i].pid))
				continue;
			if (pidfd_kill(m[i].fd) < 0 && errno != ESRCH)
				r = -errno;
			else
				r = add_pid(&done, &ndone, &cap, m[i].pid);
			fresh++;
		}
		members_free(m, n);
		if (r < 0 || !fresh)
			break;
		r = -EAGAIN;
	}
	free(done);
	return r;
}

int cgroup_kill(struct cgroup *cg)
{
	if (!cg->v1) {
		int r = cg->d[0].present ? write_text(cg->d[0].path, "cgroup.kill", "1") : 0;

		/* cgroup.kill came with Linux 5.14. */
		if (r != -ENOENT)
			return r;
	}
	return kill_listed(cg);
}

/* v2: cgroup.events says "populated 0" once the last task has left, and
 * notifies the change. */
static int wait_unpopulated(const struct cgroup *cg, uint64_t deadline)
{
	uint64_t populated = 1;
	int fd, r = 0;

	if (open_counter(cg->d[0].path, "cgroup.events", &fd) < 0)
		return -ENOENT;
	while (counter(fd, "populated", &populated) && populated) {
		struct pollfd p = {.fd = fd, .events = POLLPRI};
		uint64_t now = now_ms();

		if (now >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
	}
	close(fd);
	return r;
}

/* v1 has no such notification: wait on the pidfds of what is listed. */
static int wait_members(const struct cgroup *cg, uint64_t deadline)
{
	struct member *m = NULL;
	size_t n = 0;
	int r = members(cg, &m, &n);

	for (size_t i = 0; r == 0 && i < n; i++) {
		struct pollfd p = {.fd = m[i].fd, .events = POLLIN};
		uint64_t now = now_ms();

		if (m[i].fd < 0)
			continue;
		if (now >= deadline || poll(&p, 1, (int)(deadline - now)) == 0)
			r = -ETIMEDOUT;
	}
	/* Listed no more but not yet released by the kernel: a brief pause, bounded by the caller. */
	if (r == 0 && n == 0)
		poll(NULL, 0, 1);
	members_free(m, n);
	return r;
}

/* rmdir every directory still present: 0, or the first error (-EBUSY while
 * tasks are still leaving). */
static int remove_dirs(struct cgroup *cg)
{
	int r = 0;

	for (unsigned i = 0; i < cg->n; i++) {
		if (!cg->d[i].present)
			continue;
		if (rmdir(cg->d[i].path) == 0 || errno == ENOENT)
			cg->d[i].present = false;
		else if (r == 0)
			r = -errno;
	}
	return r;
}

struct cgroup *cgroup_destroy(struct cgroup *cg)
{
	uint64_t deadline = now_ms() + DESTROY_WAIT_MS;

	if (!cg)
		return NULL;
	close_fd(&cg->epfd);
	close_fd(&cg->timer_fd);
	close_fd(&cg->oom_efd);
	close_fd(&cg->mem_fd);
	close_fd(&cg->pids_fd);
	for (int r = remove_dirs(cg); r == -EBUSY && now_ms() < deadline; r = remove_dirs(cg)) {
		if (cgroup_kill(cg) < 0)
			break;
		if (cg->v1 || wait_unpopulated(cg, deadline) == -ENOENT)
			wait_members(cg, deadline);
	}
	for (unsigned i = 0; i < cg->n; i++)
		free(cg->d[i].path);
	free(cg);
	return NULL;
}

struct cgroup_tree *cgroup_tree_close(struct cgroup_tree *t)
{
	DIR *d;
	struct dirent *e;

	if (!t)
		return NULL;
	/* Groups the caller left behind: kill and remove them like cgroup_destroy. */
	if (t->n && t->h[0].dir && (d = opendir(t->h[0].dir))) {
		while ((e = readdir(d)))
			if (e->d_type == DT_DIR && valid_name(e->d_name)) {
				struct cgroup *cg = group_alloc(t, e->d_name);

				for (unsigned i = 0; cg && i < cg->n; i++)
					cg->d[i].present = true;
				cgroup_destroy(cg);
			}
		closedir(d);
	}
	for (unsigned i = 0; i < t->n; i++) {
		if (t->h[i].dir && t->h[i].lockfd >= 0)
			rmdir(t->h[i].dir);
		hier_fini(&t->h[i]);
	}
	free(t);
	return NULL;
}
