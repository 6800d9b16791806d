#include "devsup.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int devsup_spawn(char *const argv[], int fd_in, int fd_out, pid_t *ret_pid)
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
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
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
