/* One cgroup per device instance, with memory, pids and CPU limits, so that a
 * device cannot take memory (memfd included), tasks or CPU time from the host
 * or from another VM's devices.
 *
 * Where the groups live (cgroup_tree_open):
 * - cgroup v2 (the target), one directory per group:
 *   - @configured (`broker.cgroup`): that directory (created if missing; the
 *     memory, pids and cpu controllers must be available in it);
 *   - else, when the broker's own cgroup is delegated to it (systemd
 *     Delegate=yes: the xattr trusted.delegate or user.delegate is "1", or the
 *     group and its cgroup.procs and cgroup.subtree_control belong to the
 *     broker's uid), that group: the broker moves its processes into
 *     OWN/supervisor first, since v2 lets only groups without processes
 *     distribute controllers;
 *   - else, as root, the top of the hierarchy (/sys/fs/cgroup);
 *   - else it fails with -EPERM and a reason in @why.
 * - cgroup v1 hybrid (memory, pids and cpu each in their own hierarchy; the v2
 *   mount has none of them): one directory per hierarchy, under the broker's
 *   own cgroup in each, or under @configured, a directory in any one of those
 *   hierarchies whose path relative to its mount is used in all three.
 *   v1 cannot be delegated safely: an unprivileged broker fails with -EACCES.
 * In that place each broker makes ioreq-broker-PID (ioreq-broker-PID.N for a
 * second tree of the same process), locked with flock, and puts the devices'
 * groups in it. Groups of brokers that died (the lock is free and PID gone)
 * are removed when cgroup_tree_open finds them empty.
 *
 * What the caller does when cgroup_tree_open fails: log @why once and run the
 * devices without cgroup limits (their rlimits and namespaces still apply), or
 * refuse to start them if the operator asked for limits to be enforced.
 *
 * Limits: v2 memory.max (memory.swap.max 0, memory.oom.group 1), pids.max,
 * cpu.max; v1 memory.limit_in_bytes (and memory.memsw.limit_in_bytes),
 * pids.max, cpu.cfs_quota_us/cpu.cfs_period_us. A device over memory.max is
 * OOM-killed by the kernel; a device at pids.max only fails to fork, so the
 * caller kills it (cgroup_kill) when cgroup_limit_hit names pids.max.
 *
 * A tree does not change after cgroup_tree_open, so groups may be created
 * in it from several threads at once (each VM's event thread); a group
 * belongs to the one thread that created it. A group does not point to its
 * tree: they may be freed in any order. */
#ifndef IOREQ_CGROUP_H
#define IOREQ_CGROUP_H

#include <stddef.h>
#include <stdint.h>

struct cgroup_limits {
	uint64_t memory_max;  /* bytes; 0: no limit */
	uint32_t pids_max;    /* tasks (threads count); 0: no limit */
	uint32_t cpu_percent; /* of one CPU (100 = one full CPU); 0: no limit */
};

struct cgroup_tree; /* where this broker keeps its devices' groups */
struct cgroup;      /* one device instance's group (v2: one dir; v1: one per controller) */

/* @configured: the `broker.cgroup` setting (NULL: choose, see above).
 * Errors carry an operator-facing reason in @why (never NULL on error). */
int cgroup_tree_open(const char *configured, struct cgroup_tree **ret, char *why, size_t len);

/* Removes the broker's directories (with any group left in them, killing what
 * still runs there). NULL ok; returns NULL. */
struct cgroup_tree *cgroup_tree_close(struct cgroup_tree *t);

/* @name: unique among this broker's live groups, [A-Za-z0-9_.-], at most 64
 * characters (-EINVAL otherwise; -EEXIST when taken). Creates the group and
 * sets the limits; a limit the kernel refuses fails the call. */
int cgroup_create(struct cgroup_tree *t, const char *name, const struct cgroup_limits *lim,
		  struct cgroup **ret);

/* Directory fds (O_RDONLY | O_DIRECTORY | O_CLOEXEC) for the launcher's
 * --cgroup-fd, one per hierarchy (v2: 1, v1: up to 3), owned by the caller
 * after the call. -ENOBUFS when @max is too small. The launcher joins by
 * writing "0" into cgroup.procs under each while it is still root (v1) or
 * still holds the broker's uid (delegated v2). */
int cgroup_open_fds(const struct cgroup *cg, int *fds, size_t max, size_t *ret_n);

/* An fd that polls readable (EPOLLIN) when a limit may have been hit: an epoll
 * fd over v2 memory.events and pids.events (kernfs EPOLLPRI), or over v1's
 * memory OOM eventfd and, since v1 pids.events does not notify, a 1 s timer.
 * It stays readable until cgroup_limit_hit is called; a wake-up may be
 * spurious (memory.events also changes when reclaim succeeds). Owned by @cg. */
int cgroup_event_fd(const struct cgroup *cg);

/* After the event fd fired, or after the device died: which limit was hit
 * since the last call, as text ("memory.max 268435456 (OOM kill)",
 * "pids.max 64", or both joined by ", "), or NULL. Re-arms the event fd. The
 * text lives in @cg until the next call. */
const char *cgroup_limit_hit(struct cgroup *cg);

/* SIGKILL everything in the group (v2 cgroup.kill where the kernel has it;
 * else every pid listed in cgroup.procs, by pidfd, until a pass finds no new
 * one). Does not wait for the processes to exit. */
int cgroup_kill(struct cgroup *cg);

/* Kills what is left, waits (at most about 2 s) until the kernel has let the
 * processes go, and removes the directories. A directory still busy after
 * that is removed by cgroup_tree_close or by the next broker's stale-group
 * sweep. NULL ok; returns NULL. */
struct cgroup *cgroup_destroy(struct cgroup *cg);

/* Tests only: cgroup_tree_open, reading the mount table and the broker's own
 * cgroup from these files instead of /proc/self/mountinfo and
 * /proc/self/cgroup (a fake cgroup v2 tree laid out in a temporary directory). */
int cgroup_tree_open_at(const char *mountinfo, const char *proc_cgroup, const char *configured,
			struct cgroup_tree **ret, char *why, size_t len);

#endif
