#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <asm/ioctls.h>
#include <unistd.h>

#include <linux/landlock.h>
#include <seccomp.h>

static bool wanted(void)
{
	const char *v = getenv("IOREQ_SANDBOX");

	return v && !strcmp(v, "strict");
}

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>

/* LeakSanitizer checks at exit by stopping the world with clone, ptrace and
 * /proc: a sandboxed device has none of them (ioreq-launch's seccomp
 * baseline refuses ptrace from the start; ours kills). It asks this hook
 * first; unconfined devices and the library's tests are still checked. */
int __lsan_is_turned_off(void)
{
	return wanted();
}
#endif

#ifdef __SANITIZE_THREAD__
const char *__tsan_default_options(void);

/* ThreadSanitizer sleeps a second at exit to catch late races: every
 * device stop would take that second. The broker does the same. */
const char *__tsan_default_options(void)
{
	return "atexit_sleep_ms=0";
}
#endif

/* ---- Landlock ---- */

/* The headers here stop at ABI 2; the later rights are the kernel's uAPI
 * values (include/uapi/linux/landlock.h). */
#define FS_TRUNCATE (1ULL << 14)  /* ABI 3 */
#define FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */

/* Every filesystem right @abi knows: handled and granted nowhere, all are
 * denied. */
static uint64_t fs_rights(int abi)
{
	uint64_t r = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;

	if (abi >= 2)
		r |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		r |= FS_TRUNCATE;
	if (abi >= 5)
		r |= FS_IOCTL_DEV;
	return r;
}

int sandbox_restrict_fs(void)
{
	struct landlock_ruleset_attr attr;
	int abi, fd, r = 0;

	if (!wanted())
		return 0;
	/* ioreq-launch started us non-dumpable already (an unreadable
	 * executable); this holds should a device be started otherwise: no
	 * process of our uid may ptrace us or take our fds (pidfd_getfd). */
	if (prctl(PR_SET_DUMPABLE, 0) < 0)
		return -errno;
	/* Landlock and seccomp both require it of an unprivileged process. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	/* Not built in, disabled at boot, or refused by a seccomp filter of the
	 * broker's (a systemd unit's SystemCallFilter= without landlock_*): the
	 * empty root and our own seccomp filter remain. */
	if (abi < 0)
		return errno == ENOSYS || errno == EOPNOTSUPP || errno == EPERM ? 0 : -errno;
	attr.handled_access_fs = fs_rights(abi);
	fd = syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (fd < 0)
		return -errno;
	if (syscall(SYS_landlock_restrict_self, fd, 0) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* ---- seccomp ---- */

/* What a connected device does, measured with strace -f on every device
 * program under the broker (nng 1.5.2, glibc 2.36; the sim, control,
 * devices and kvm integration suites), plus their obvious companions
 * (marked +): nng's threads moving messages and waking each other, memory,
 * time, a thread started by a device (uart, rtc), exiting; and the data
 * plane (ioreq-test-dplane under test_integration_dataplane): its files at
 * an offset and their durability, a thread waiting on its doorbells. Guest
 * memory needs nothing more: it is mapped (without PROT_EXEC, as any
 * mapping here) before the filter goes on. */
static const int allowed[] = {
	/* I/O on the fds it has: the socket, eventfds, stdin/stdout */
	SCMP_SYS(read), SCMP_SYS(readv), SCMP_SYS(write), SCMP_SYS(writev) /* + */, SCMP_SYS(sendmsg),
	SCMP_SYS(recvmsg) /* + */, SCMP_SYS(close), SCMP_SYS(shutdown), SCMP_SYS(epoll_wait), SCMP_SYS(epoll_ctl),
	/* threads (clone: see below) */
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(madvise), SCMP_SYS(exit),
	SCMP_SYS(sched_yield) /* + */, SCMP_SYS(gettid) /* + */, SCMP_SYS(getpid) /* + */,
	SCMP_SYS(getppid) /* + */,
	/* memory (mmap, mprotect: see below) */
	SCMP_SYS(munmap), SCMP_SYS(brk) /* + */, SCMP_SYS(mremap) /* + */,
	/* the data plane: files and doorbells */
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(preadv) /* + */, SCMP_SYS(pwritev) /* + */,
	SCMP_SYS(fdatasync), SCMP_SYS(fsync) /* + */, SCMP_SYS(poll), SCMP_SYS(ppoll) /* + */,
	/* virtio devices (ioreq-dev-virtio-*): discard and write-zeroes on the
	 * image, a block device's size, an eventfd for their workers' completions */
	SCMP_SYS(fallocate), SCMP_SYS(lseek), SCMP_SYS(eventfd2),
	/* vhost-user (--vhost-user fd:N): the next front end on the listening
	 * socket the broker passed (its guest memory and eventfds come with
	 * its messages, through recvmsg) */
	SCMP_SYS(accept4),
	/* time, chance */
	SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep) /* + */, SCMP_SYS(clock_gettime) /* + vDSO fallback */,
	SCMP_SYS(gettimeofday) /* + */, SCMP_SYS(getrandom),
	/* signals, exiting */
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigaction) /* + abort */, SCMP_SYS(rt_sigreturn) /* + */,
	SCMP_SYS(restart_syscall) /* + */, SCMP_SYS(exit_group),
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* The sanitizers, in a thread started after the lock: an alternate
	 * signal stack, pthread_getattr_np; ThreadSanitizer's fstat makes the
	 * fstat call itself where glibc's is newfstatat (a vhost-user front
	 * end's memory, a virtio-blk image) */
	SCMP_SYS(sigaltstack), SCMP_SYS(sched_getaffinity), SCMP_SYS(fstat),
#endif
};

/* Refused rather than fatal: library code tries these now and then (the
 * rtc device's libc reads /etc/localtime; nng redials after a disconnect)
 * and copes with an error. Every other call outside the allow-list kills
 * the process: ptrace, mount, modules, keyrings, kill, fork... */
static const int refused[] = {
	SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(openat2), SCMP_SYS(creat),
	SCMP_SYS(socket), SCMP_SYS(socketpair),
	SCMP_SYS(execve), SCMP_SYS(execveat),
};

/* A thread shares everything with its creator; no other clone is allowed. */
#define THREAD_FLAGS (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD)
#define NS_FLAGS \
	(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

static int add_rules(scmp_filter_ctx ctx)
{
	int r;

	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), refused[i], 0);
		if (r < 0)
			return r;
	}
	/* glibc tries clone3 first and falls back to clone on ENOSYS; clone's
	 * flags are a register, which seccomp can check, clone3's are not. */
	r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, THREAD_FLAGS | NS_FLAGS, THREAD_FLAGS));
	/* No new executable memory. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/* nng names the threads it starts (pthread_setname_np on itself). */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
	/* glibc's fstat (stdio sizing its buffer) is fstatat(fd, "", AT_EMPTY_PATH);
	 * given a path instead, it sees what its root holds and no more. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(newfstatat), 1,
				     SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH));
	/* Whether a file it was given is O_DIRECT: its flags, and no more. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1, SCMP_A1(SCMP_CMP_EQ, F_GETFL));
	/* vhost-user: whether a front end's memory fd is sealed against
	 * shrinking, and its eventfds made non-blocking; no other fcntl. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1, SCMP_A1(SCMP_CMP_EQ, F_GET_SEALS));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 2, SCMP_A1(SCMP_CMP_EQ, F_SETFL),
				     SCMP_A2(SCMP_CMP_EQ, O_NONBLOCK));
#ifdef __SANITIZE_THREAD__
	/* ThreadSanitizer asks whether a descriptor is a terminal (TCGETS) when
	 * the console device reads its stdin; the answer reveals nothing. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, TCGETS));
#endif
	/* Signals to its own threads only (abort, raise). */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_EQ, getpid()));
	return r;
}

int sandbox_lock(void)
{
	scmp_filter_ctx ctx;
	int r;

	if (!wanted())
		return 0;
	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return -ENOMEM;
	/* nng's threads exist already: the filter goes on all of them at once.
	 * Another architecture's calls are as foreign as an unlisted one. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r == 0)
		r = add_rules(ctx);
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}
