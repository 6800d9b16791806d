/* The device supervisor's process side: start a device program, stop it,
 * learn when it exits. nng is not fork-safe and the broker is multithreaded,
 * so children are started with posix_spawn (vfork + immediate exec). */
#ifndef IOREQ_DEVSUP_H
#define IOREQ_DEVSUP_H

#include <stdbool.h>
#include <sys/types.h>

/* Starts @argv[0] with @argv, @fd_in as its stdin and @fd_out as its
 * stdout; it shares the broker's stderr and keeps no other fd. Returns 0 with
 * the pid in *ret_pid, or a negative errno. */
int devsup_spawn(char *const argv[], int fd_in, int fd_out, pid_t *ret_pid);

/* Collects one exited child without blocking: 0 with *ret_pid and its wait
 * status, -EAGAIN when none has exited, -ECHILD when there are none. */
int devsup_reap(pid_t *ret_pid, int *ret_status);

/* Gives @pid @grace_ms to exit by itself, then SIGTERM, then SIGKILL;
 * collects it. */
void devsup_stop(pid_t pid, unsigned grace_ms);

/* "exited with status 3", "killed by signal 9 (Killed)". */
const char *devsup_describe(int status, char *buf, size_t len);

#endif
