/* The device supervisor's process side: start a device program, stop it,
 * learn when it exits.
 *
 * nng is not fork-safe and the broker is multithreaded, so a child only ever
 * executes: a device without a sandbox is started with posix_spawn; a
 * sandboxed one with clone3 into new namespaces, executing ioreq-launch
 * (broker/launch.c), which builds the sandbox and executes the device in
 * the same process. Either way the pid returned is the device's own, as this
 * process sees it. */
#ifndef IOREQ_DEVSUP_H
#define IOREQ_DEVSUP_H

#include <stdbool.h>
#include <sys/types.h>

/* What a sandboxed device needs from the host. */
struct devsup_sandbox {
	const char *launcher; /* ioreq-launch */
	const char *socket;   /* its ipc socket: the directory holding it is all
			       * of the host's filesystem the device sees */
};

/* Starts @argv[0] with @argv, @fd_in as its stdin and @fd_out as its
 * stdout; it shares the broker's stderr and keeps no other fd. With @sb, in
 * its sandbox (see ioreq-launch): it runs as the broker's uid, or as nobody
 * when the broker is root, and dies with the broker. Without, as a plain
 * child. Either way in a session of its own, without a controlling
 * terminal. Returns 0 with the pid in *ret_pid, or a negative errno. */
int devsup_spawn(char *const argv[], int fd_in, int fd_out, const struct devsup_sandbox *sb, pid_t *ret_pid);

/* Collects one exited child without blocking: 0 with *ret_pid and its wait
 * status, -EAGAIN when none has exited, -ECHILD when there are none. */
int devsup_reap(pid_t *ret_pid, int *ret_status);

/* Gives @pid @grace_ms to exit by itself, then SIGTERM, then SIGKILL;
 * collects it. */
void devsup_stop(pid_t pid, unsigned grace_ms);

/* "exited with status 3", "killed by signal 31 (Bad system call)". */
const char *devsup_describe(int status, char *buf, size_t len);

#endif
