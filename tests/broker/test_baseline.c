/* The launcher's seccomp baseline, installed in a child: every listed call
 * is refused, each with arguments that would otherwise have failed in
 * another way (or worked), and what a device needs to start still works:
 * threads (glibc falls back from clone3 to clone), fork, files, memory. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/sched.h>

#include <cmocka.h>

#include "baseline.h"

/* Runs @fn in a child under the baseline; returns its wait status. */
static int in_child(int (*fn)(void))
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (baseline_install() < 0)
			_exit(100);
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static unsigned failures;

static void expect(const char *what, long r, int err)
{
	if (r == -1 && errno == err)
		return;
	fprintf(stderr, "%s: %ld (%s), expected %s\n", what, r, r == -1 ? strerror(errno) : "success", strerror(err));
	failures++;
}

#define DENIED(call) expect(#call, (long)(call), EPERM)

static int refused_calls(void)
{
	char buf[16];

	/* Each would fail otherwise with EFAULT, EINVAL or EBADF, or work. */
	DENIED(syscall(SYS_io_uring_setup, 1, NULL));
	DENIED(syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0));
	DENIED(syscall(SYS_io_uring_register, -1, 0, NULL, 0));
	DENIED(unshare(CLONE_NEWUSER));
	DENIED(unshare(CLONE_NEWNS));
	DENIED(setns(-1, 0));
	DENIED(syscall(SYS_mount, NULL, NULL, NULL, 0, NULL));
	DENIED(syscall(SYS_umount2, NULL, 0));
	DENIED(syscall(SYS_pivot_root, NULL, NULL));
	DENIED(syscall(SYS_chroot, NULL));
	DENIED(syscall(SYS_open_tree, -1, NULL, 0));
	DENIED(syscall(SYS_move_mount, -1, NULL, -1, NULL, 0));
	DENIED(syscall(SYS_fsopen, NULL, 0));
	DENIED(syscall(SYS_fsconfig, -1, 0, NULL, NULL, 0));
	DENIED(syscall(SYS_fsmount, -1, 0, 0));
	DENIED(syscall(SYS_fspick, -1, NULL, 0));
	DENIED(syscall(SYS_mount_setattr, -1, NULL, 0, NULL, 0));
	DENIED(syscall(SYS_bpf, 0, NULL, 0));
	DENIED(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
	DENIED(syscall(SYS_userfaultfd, 0));
	DENIED(syscall(SYS_keyctl, 0, 0, 0, 0, 0));
	DENIED(syscall(SYS_add_key, NULL, NULL, NULL, 0, 0));
	DENIED(syscall(SYS_request_key, NULL, NULL, NULL, 0));
	DENIED(syscall(SYS_ptrace, PTRACE_TRACEME, 0, NULL, NULL));
	DENIED(syscall(SYS_process_vm_readv, getppid(), NULL, 0, NULL, 0, 0));
	DENIED(syscall(SYS_process_vm_writev, getppid(), NULL, 0, NULL, 0, 0));
	DENIED(syscall(SYS_pidfd_getfd, -1, 0, 0));
	DENIED(syscall(SYS_init_module, NULL, 0, NULL));
	DENIED(syscall(SYS_finit_module, -1, NULL, 0));
	DENIED(syscall(SYS_delete_module, NULL, 0));
	DENIED(syscall(SYS_kexec_load, 0, 0, NULL, 0));
	DENIED(syscall(SYS_kexec_file_load, -1, -1, 0, NULL, 0));
	DENIED(syscall(SYS_reboot, 0, 0, 0, NULL));
	DENIED(syscall(SYS_swapon, NULL, 0));
	DENIED(syscall(SYS_swapoff, NULL));
	DENIED(syscall(SYS_acct, NULL));
	DENIED(syscall(SYS_quotactl, 0, NULL, 0, NULL));
	DENIED(syscall(SYS_quotactl_fd, -1, 0, 0, NULL));
	/* Namespaces through clone: refused; clone3 pretends not to exist. */
	DENIED(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0));
	DENIED(syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, 0));
	DENIED(syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, 0));
	expect("clone3", syscall(SYS_clone3, NULL, 0), ENOSYS);
	/* Typing into a terminal, whatever the upper half of the register. */
	DENIED(syscall(SYS_ioctl, 0, TIOCSTI, buf));
	DENIED(syscall(SYS_ioctl, 0, TIOCSTI | (1UL << 32), buf));
	DENIED(syscall(SYS_ioctl, 0, TIOCLINUX, buf));
	DENIED(personality(PER_LINUX32));
	DENIED(personality(PER_LINUX | ADDR_NO_RANDOMIZE));
	return failures ? 1 : 0;
}

static void test_refused(void **state)
{
	assert_int_equal(in_child(refused_calls), 0);
}

static void *thread(void *arg)
{
	return arg;
}

/* A device's start: threads, fork, files, memory, reading the personality. */
static int allowed_calls(void)
{
	static int marker;
	void *p, *ret = NULL;
	pthread_t t;
	char buf[4];
	int fd, status;
	pid_t pid;

	if (pthread_create(&t, NULL, thread, &marker) != 0 || pthread_join(t, &ret) != 0 || ret != &marker)
		return 1;
	pid = fork();
	if (pid == 0)
		_exit(7);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 7)
		return 2;
	fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, sizeof(buf)) != sizeof(buf))
		return 3;
	close(fd);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || munmap(p, 4096) < 0)
		return 4;
	if (personality(0xffffffff) < 0)
		return 5;
	/* A harmless ioctl on something that is not a terminal. */
	if (ioctl(0, FIONREAD, &status) < 0 && errno == EPERM)
		return 6;
	return 0;
}

static void test_allowed(void **state)
{
	assert_int_equal(in_child(allowed_calls), 0);
}

/* x32 numbers and i386's int 0x80 reach another architecture's table:
 * killed, not refused. */
static int x32_getpid(void)
{
	syscall(0x40000000 | SYS_getpid);
	return 1;
}

static int i386_getpid(void)
{
	long r = 20; /* i386's getpid */

	__asm__ volatile("int $0x80" : "+a"(r) : : "memory");
	return 1;
}

static void test_foreign_architectures_killed(void **state)
{
	int status = in_child(x32_getpid);

	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
	status = in_child(i386_getpid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_foreign_architectures_killed),
	};

	return cmocka_run_group_tests_name("baseline", tests, NULL, NULL);
}
