#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/sched.h>

extern char **environ;

/* ---- the spawner thread ----
 *
 * A child's parent-death signal fires when the thread that created it
 * exits, not the process; devices are started from every VM's event
 * thread, so every sandboxed device is cloned by one thread that lives as
 * long as the broker. */

struct spawn_job {
	const struct proc_req *req;
	const int *high;        /* req->fds, moved out of the way (place_fds) */
	bool user_ns;           /* the broker is not root */
	pid_t pid;
	int pidfd;
	int result;
	bool done;
};

static struct {
	pthread_once_t once;
	int error;      /* the spawner could not start: every sandboxed launch fails */
	int pidfd;      /* ours: a launcher sees through it whether we died */
	char uid_map[32], gid_map[32];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct spawn_job *job;
} spawner = {
	.once = PTHREAD_ONCE_INIT,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static int write_file(const char *path, const char *text)
{
	ssize_t n = (ssize_t)strlen(text);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -1;
	if (write(fd, text, n) != n)
		r = -1;
	close(fd);
	return r;
}

/* fd @from becomes @to, without close-on-exec. */
static int move_fd(int from, int to)
{
	if (from == to)
		return fcntl(to, F_SETFD, 0);
	return dup2(from, to) < 0 ? -1 : 0;
}

/* The child's fds as @req wants them: its stdio at 0, 1, 2, fds[i] at
 * 3 + i, nothing else across the exec. @high[i] is a close-on-exec copy of
 * fds[i] at 3 + n_fds or above (proc_start made them), so that placing one
 * never overwrites another still to be placed. Only system calls: this runs
 * in the clone of a multithreaded process, and in posix_spawn's child. */
static int place_fds(const struct proc_req *req, const int *high)
{
	for (int i = 0; i < 3; i++)
		if (move_fd(req->stdio[i], i) < 0)
			return -1;
	/* Every fd of the broker is O_CLOEXEC; close the rest anyway, so that
	 * nothing the broker opens by accident reaches a device. */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	for (size_t i = 0; i < req->n_fds; i++)
		if (dup2(high[i], 3 + (int)i) < 0)
			return -1;
	return 0;
}

/* The clone: a copy of a multithreaded process, so nothing but system calls
 * until execve. Failures reach the parent as an errno on @errfd. */
static _Noreturn void launch_child(const struct spawn_job *j, int errfd)
{
	sigset_t none;
	int err;

	/* Out of the way of the fds placed below. */
	if (errfd < 3 + (int)j->req->n_fds)
		errfd = fcntl(errfd, F_DUPFD_CLOEXEC, 3 + (int)j->req->n_fds);
	if (errfd < 0)
		_exit(127);
	if (j->user_ns &&
	    (write_file("/proc/self/setgroups", "deny") < 0 || write_file("/proc/self/uid_map", spawner.uid_map) < 0 ||
	     write_file("/proc/self/gid_map", spawner.gid_map) < 0))
		goto fail;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		goto fail;
	if (place_fds(j->req, j->high) < 0)
		goto fail;
	/* The broker ignores SIGPIPE and blocks the rest; the device must not inherit that. */
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(j->req->argv[0], j->req->argv, environ);
fail:
	err = errno;
	while (write(errfd, &err, sizeof(err)) < 0 && errno == EINTR)
		;
	_exit(127);
}

static int clone_launcher(struct spawn_job *j)
{
	int pidfd = -1, efd[2], err = 0;
	struct clone_args ca = {
		.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS | CLONE_PIDFD |
			 (j->user_ns ? CLONE_NEWUSER : 0),
		.pidfd = (uintptr_t)&pidfd,
		.exit_signal = SIGCHLD,
	};
	ssize_t n;
	long pid;

	if (pipe2(efd, O_CLOEXEC) < 0)
		return -errno;
	pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid == 0)
		launch_child(j, efd[1]);
	close(efd[1]);
	if (pid < 0) {
		err = errno;
		close(efd[0]);
		return -err;
	}
	/* EOF: execve succeeded and closed the pipe. */
	do
		n = read(efd[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	close(efd[0]);
	if (n == sizeof(err)) {
		waitid(P_PIDFD, pidfd, NULL, WEXITED);
		close(pidfd);
		return -err;
	}
	j->pid = (pid_t)pid;
	j->pidfd = pidfd;
	return 0;
}

static void *spawner_thread(void *arg)
{
	pthread_mutex_lock(&spawner.lock);
	for (;;) {
		struct spawn_job *j;

		while (!spawner.job)
			pthread_cond_wait(&spawner.cond, &spawner.lock);
		j = spawner.job;
		spawner.job = NULL;
		pthread_cond_broadcast(&spawner.cond);
		pthread_mutex_unlock(&spawner.lock);
		j->result = clone_launcher(j);
		pthread_mutex_lock(&spawner.lock);
		j->done = true;
		pthread_cond_broadcast(&spawner.cond);
	}
	return NULL;
}

static void start_spawner(void)
{
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;

	snprintf(spawner.uid_map, sizeof(spawner.uid_map), "0 %u 1", (unsigned)geteuid());
	snprintf(spawner.gid_map, sizeof(spawner.gid_map), "0 %u 1", (unsigned)getegid());
	spawner.pidfd = pidfd_open(getpid(), 0);
	if (spawner.pidfd < 0) {
		spawner.error = -errno;
		return;
	}
	/* It never exits (see above), and takes no signal of the broker's. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	spawner.error = -pthread_create(&thread, &attr, spawner_thread, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static int run_spawn_job(struct spawn_job *j)
{
	pthread_mutex_lock(&spawner.lock);
	while (spawner.job)
		pthread_cond_wait(&spawner.cond, &spawner.lock);
	spawner.job = j;
	pthread_cond_broadcast(&spawner.cond);
	while (!j->done)
		pthread_cond_wait(&spawner.cond, &spawner.lock);
	pthread_mutex_unlock(&spawner.lock);
	return j->result;
}

/* An unconfined device (sandbox: none): a plain child in a session of its own. */
static int spawn_plain(const struct proc_req *req, const int *high, pid_t *ret_pid, int *ret_pidfd)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, def;
	pid_t pid;
	int r;

	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGHUP);
	posix_spawnattr_setsigdefault(&attr, &def);
	for (int i = 0; i < 3; i++)
		posix_spawn_file_actions_adddup2(&fa, req->stdio[i], i);
	/* The copies in @high are close-on-exec and above the block: each
	 * dup2 clears close-on-exec on its target and overwrites nothing that
	 * is still to be placed. */
	for (size_t i = 0; i < req->n_fds; i++)
		posix_spawn_file_actions_adddup2(&fa, high[i], 3 + (int)i);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3 + (int)req->n_fds);
	r = -posix_spawn(&pid, req->argv[0], &fa, &attr, req->argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (r < 0)
		return r;
	/* Nobody else reaps our children, so the pid cannot be reused yet. */
	*ret_pidfd = pidfd_open(pid, 0);
	if (*ret_pidfd < 0) {
		r = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return r;
	}
	*ret_pid = pid;
	return 0;
}

/* ---- host ids for device instances ---- */

#define MAX_IDS (1u << 22)

static struct {
	pthread_mutex_t lock;
	uint32_t first, count;
	uint64_t *used;
} ids = { .lock = PTHREAD_MUTEX_INITIALIZER };

void proc_set_ids(uint32_t first, uint32_t count)
{
	pthread_mutex_lock(&ids.lock);
	free(ids.used);
	ids.first = first;
	ids.count = count < MAX_IDS ? count : MAX_IDS;
	ids.used = calloc((ids.count + 63) / 64, sizeof(uint64_t));
	if (!ids.used)
		ids.count = 0;
	pthread_mutex_unlock(&ids.lock);
}

int proc_take_id(uid_t *ret)
{
	int r = -EUSERS;

	pthread_mutex_lock(&ids.lock);
	for (uint32_t w = 0; w < (ids.count + 63) / 64 && r < 0; w++) {
		uint64_t free_bits = ~ids.used[w];
		unsigned b;

		if (!free_bits)
			continue;
		b = (unsigned)__builtin_ctzll(free_bits);
		if (w * 64 + b >= ids.count)
			break;
		ids.used[w] |= 1ull << b;
		*ret = ids.first + w * 64 + b;
		r = 0;
	}
	pthread_mutex_unlock(&ids.lock);
	return r;
}

void proc_give_id(uid_t id)
{
	uint32_t i = id - ids.first;

	pthread_mutex_lock(&ids.lock);
	if (i < ids.count)
		ids.used[i / 64] &= ~(1ull << (i % 64));
	pthread_mutex_unlock(&ids.lock);
}


int proc_broker_pidfd(void)
{
	pthread_once(&spawner.once, start_spawner);
	return spawner.error ? spawner.error : spawner.pidfd;
}

bool proc_in_user_ns(void)
{
	return geteuid() != 0;
}

int proc_start(const struct proc_req *req, pid_t *ret_pid, int *ret_pidfd)
{
	struct spawn_job j = { .req = req, .user_ns = proc_in_user_ns() };
	int high[PROC_MAX_FDS];
	size_t n = 0;
	int r = 0;

	if (req->n_fds > PROC_MAX_FDS)
		return -E2BIG;
	/* Copies above where the block goes: whatever numbers the broker's fds
	 * have, placing the block then overwrites none of them. */
	for (; n < req->n_fds; n++) {
		high[n] = fcntl(req->fds[n], F_DUPFD_CLOEXEC, 3 + (int)req->n_fds);
		if (high[n] < 0) {
			r = -errno;
			goto out;
		}
	}
	j.high = high;
	if (!req->sandboxed) {
		r = spawn_plain(req, high, ret_pid, ret_pidfd);
		goto out;
	}
	r = proc_broker_pidfd();
	if (r < 0)
		goto out;
	r = run_spawn_job(&j);
	if (r == 0) {
		*ret_pid = j.pid;
		*ret_pidfd = j.pidfd;
	}
out:
	while (n > 0)
		close(high[--n]);
	return r;
}

int proc_open_file(const char *path, bool write, bool direct, int *ret, const char **why)
{
	int flags = (write ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY | (direct ? O_DIRECT : 0);
	char proc[32];
	struct stat st;
	int fd, r = 0;

	*why = NULL;
	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
	} else if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
	} else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		*why = "not a regular file or a block device";
		r = -EINVAL;
	}
	if (r == 0) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		*ret = open(proc, flags);
		if (*ret < 0)
			r = -errno;
	}
	close(fd);
	return r;
}
