#include "devsup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/sched.h>

extern char **environ;

/* ---- sandboxed devices ----
 *
 * A child's parent-death signal fires when the thread that created it
 * exits, not the process; devices are started from control and
 * housekeeping threads too, so every sandboxed device is cloned by one
 * thread that lives as long as the broker. */

#define NOBODY 65534

/* One clone at a time, handed from the caller to the spawner thread. */
struct launch_job {
	char *const *argv; /* ioreq-launch's */
	int fd_in, fd_out;
	pid_t pid;
	int result;
	bool done;
};

static struct {
	pthread_once_t once;
	int error;          /* the spawner could not start: every launch fails */
	int pidfd;          /* ours: a launcher sees through it whether we died */
	bool root;          /* devices then run as nobody's uid */
	uid_t uid;
	gid_t gid;
	/* Not root: the clone gets a user namespace where it is root, mapped
	 * to our uid (the only mapping an unprivileged process may write). */
	char uid_map[32], gid_map[32];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct launch_job *job;
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

/* The clone: a copy of a multithreaded process, so nothing but system calls
 * until execve. Failures reach the parent as an errno on @errfd. */
static _Noreturn void launch_child(const struct launch_job *j, int errfd)
{
	sigset_t none;
	int err;

	if (!spawner.root &&
	    (write_file("/proc/self/setgroups", "deny") < 0 || write_file("/proc/self/uid_map", spawner.uid_map) < 0 ||
	     write_file("/proc/self/gid_map", spawner.gid_map) < 0))
		goto fail;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || dup2(j->fd_in, STDIN_FILENO) < 0 ||
	    dup2(j->fd_out, STDOUT_FILENO) < 0)
		goto fail;
	/* Every fd of the broker is O_CLOEXEC; close the rest anyway, so that
	 * nothing the broker opens by accident reaches a device. */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	if (fcntl(spawner.pidfd, F_SETFD, 0) < 0)
		goto fail;
	/* The broker ignores SIGPIPE and blocks the rest; the device must not inherit that. */
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(j->argv[0], j->argv, environ);
fail:
	err = errno;
	while (write(errfd, &err, sizeof(err)) < 0 && errno == EINTR)
		;
	_exit(127);
}

static int clone_launcher(struct launch_job *j)
{
	struct clone_args ca = {
		.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS |
			 (spawner.root ? 0 : CLONE_NEWUSER),
		.exit_signal = SIGCHLD,
	};
	int efd[2], err = 0;
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
		/* The housekeeper may collect it first: ECHILD is fine. */
		waitpid(pid, NULL, 0);
		return -err;
	}
	j->pid = pid;
	return 0;
}

static void *spawner_thread(void *arg)
{
	pthread_mutex_lock(&spawner.lock);
	for (;;) {
		struct launch_job *j;

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
	struct passwd pw, *found = NULL;
	char buf[1024];
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;

	spawner.root = geteuid() == 0;
	spawner.uid = NOBODY;
	spawner.gid = NOBODY;
	if (spawner.root && getpwnam_r("nobody", &pw, buf, sizeof(buf), &found) == 0 && found) {
		spawner.uid = pw.pw_uid;
		spawner.gid = pw.pw_gid;
	}
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

static int spawn_sandboxed(char *const argv[], int fd_in, int fd_out, const struct devsup_sandbox *sb,
			   pid_t *ret_pid)
{
	char pidfd[16], user[32];
	struct launch_job j = { .fd_in = fd_in, .fd_out = fd_out };
	size_t n_args = 0, k = 0;
	char **largv;

	pthread_once(&spawner.once, start_spawner);
	if (spawner.error)
		return spawner.error;
	while (argv[n_args])
		n_args++;
	largv = calloc(n_args + 9, sizeof(*largv));
	if (!largv)
		return -ENOMEM;
	snprintf(pidfd, sizeof(pidfd), "%d", spawner.pidfd);
	snprintf(user, sizeof(user), "%u:%u", (unsigned)spawner.uid, (unsigned)spawner.gid);
	largv[k++] = (char *)sb->launcher;
	largv[k++] = "--socket";
	largv[k++] = (char *)sb->socket;
	largv[k++] = "--broker-pidfd";
	largv[k++] = pidfd;
	if (spawner.root) {
		largv[k++] = "--user";
		largv[k++] = user;
	}
	largv[k++] = "--";
	memcpy(&largv[k], argv, n_args * sizeof(*argv));
	j.argv = largv;

	pthread_mutex_lock(&spawner.lock);
	while (spawner.job)
		pthread_cond_wait(&spawner.cond, &spawner.lock);
	spawner.job = &j;
	pthread_cond_broadcast(&spawner.cond);
	while (!j.done)
		pthread_cond_wait(&spawner.cond, &spawner.lock);
	pthread_mutex_unlock(&spawner.lock);
	free(largv);
	if (j.result == 0)
		*ret_pid = j.pid;
	return j.result;
}

/* ---- unconfined devices ---- */

static int spawn_plain(char *const argv[], int fd_in, int fd_out, pid_t *ret_pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, def;
	int r;

	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	/* The broker blocks its signals in every thread; the device must not inherit that. */
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	/* A session of its own: no controlling terminal (no /dev/tty, no
	 * signals from the operator's keyboard). */
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGHUP);
	posix_spawnattr_setsigdefault(&attr, &def);
	/* Every fd of the broker is O_CLOEXEC; close the rest anyway, so that
	 * nothing the broker opens by accident reaches a device. */
	posix_spawn_file_actions_adddup2(&fa, fd_in, 0);
	posix_spawn_file_actions_adddup2(&fa, fd_out, 1);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	r = -posix_spawn(ret_pid, argv[0], &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return r;
}

int devsup_spawn(char *const argv[], int fd_in, int fd_out, const struct devsup_sandbox *sb, pid_t *ret_pid)
{
	return sb ? spawn_sandboxed(argv, fd_in, fd_out, sb, ret_pid) : spawn_plain(argv, fd_in, fd_out, ret_pid);
}

int devsup_reap(pid_t *ret_pid, int *ret_status)
{
	pid_t pid = waitpid(-1, ret_status, WNOHANG);

	if (pid < 0)
		return -errno;
	if (pid == 0)
		return -EAGAIN;
	*ret_pid = pid;
	return 0;
}

static bool wait_exit(pid_t pid, unsigned ms)
{
	int status;

	for (unsigned waited = 0;; waited += 2) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		/* ECHILD: the housekeeping thread collected it already. */
		if (r == pid || (r < 0 && errno == ECHILD))
			return true;
		if (waited >= ms)
			return false;
		usleep(2000);
	}
}

void devsup_stop(pid_t pid, unsigned grace_ms)
{
	if (pid <= 0 || wait_exit(pid, grace_ms))
		return;
	kill(pid, SIGTERM);
	if (wait_exit(pid, 200))
		return;
	kill(pid, SIGKILL);
	wait_exit(pid, UINT_MAX);
}

const char *devsup_describe(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "stopped (status 0x%x)", status);
	return buf;
}
