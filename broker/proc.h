/* Starting device processes, and the host identities they run as.
 *
 * nng is not fork-safe and the broker is multithreaded, so a child only
 * ever executes. A sandboxed device is cloned (clone3) into new mount, pid,
 * ipc, net and uts namespaces (and a user namespace when the broker is not
 * root) and executes ioreq-launch (launch.c), which builds the sandbox and
 * then becomes the device in the same process; an unconfined one is
 * posix_spawn'ed into a session of its own. Either way the caller gets the
 * device's pid (as this process sees it) and a pidfd: processes are waited
 * for, signalled and reaped through pidfds only, so a pid is never reused
 * under us. */
#ifndef IOREQ_PROC_H
#define IOREQ_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Most fds a child gets besides 0, 1 and 2. */
#define PROC_MAX_FDS 192

struct proc_req {
	char *const *argv;  /* argv[0] is the path executed */
	int stdio[3];       /* its fds 0, 1 and 2 */
	const int *fds;     /* its fds 3, 4, ...: fds[i] becomes 3 + i; it gets no other */
	size_t n_fds;       /* up to PROC_MAX_FDS */
	bool sandboxed;     /* cloned into namespaces (argv: ioreq-launch's) */
};

/* Starts @req. 0 with *@ret_pid and *@ret_pidfd (O_CLOEXEC), or a
 * negative errno (the execve's, if that is what failed). */
int proc_start(const struct proc_req *req, pid_t *ret_pid, int *ret_pidfd);

/* The broker's pidfd for ioreq-launch's --broker-pidfd (a launcher sees
 * through it whether the broker died before it could arm its parent-death
 * signal), or a negative errno. */
int proc_broker_pidfd(void);

/* A file for a device (a local device's `files:`, a remote one's --file),
 * opened with our rights: read-write with @write, O_DIRECT with @direct.
 * The path is the operator's: symbolic links are followed. What it names
 * is looked at before it is opened (O_PATH), so that nothing but a regular
 * file or a block device is ever opened for a device (opening a character
 * device can do something by itself, a watchdog or a tape; a FIFO can
 * block), and it is then opened from that handle (/proc/self/fd), never by
 * its path again: a path swapped in between cannot slip anything else in.
 * 0 with *@ret, or a negative errno, with *@why where errno does not say it. */
int proc_open_file(const char *path, bool write, bool direct, int *ret, const char **why);

/* Whether children are cloned into a user namespace of their own (the
 * broker is not root). */
bool proc_in_user_ns(void);

/* Host uids (= gids) for device instances: [@first, @first + @count).
 * Once, before any device starts. */
void proc_set_ids(uint32_t first, uint32_t count);

/* Takes a free id of the range, lowest first: 0 or -EUSERS. */
int proc_take_id(uid_t *ret);

/* Gives @id back once nothing runs as it any more. */
void proc_give_id(uid_t id);

#endif
