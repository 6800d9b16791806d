/* ioreq-test-hostile: a device program that links nothing of ours and
 * never confines itself, for the sandbox tests. It plays a compromised or
 * malicious device binary: at start, before anything else, it tries what
 * the launcher's sandbox must refuse on its own, each attempt in a child of
 * its own so that one success cannot help the next, and reports one line
 * per attempt on stderr (the broker's log):
 *
 *   ioreq-test-hostile NAME: PROBE: refused (REASON)
 *   ioreq-test-hostile NAME: PROBE: WORKED
 *
 * then "ioreq-test-hostile NAME: done", and exits 0, or with --stay waits
 * to be killed (for a look from outside).
 *
 *   --socket URL --name NAME  what the broker passes (only NAME is used)
 *   --host-file PATH          a host file it must not see
 *   --stay                    wait after the probes
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/userfaultfd.h>

#define PROG "ioreq-test-hostile"

static const char *name = "?";
static const char *host_file;

/* Each returns 0 when the attempt worked, else an errno. */

static int uring(void)
{
	struct io_uring_params p = { 0 };
	long fd = syscall(SYS_io_uring_setup, 1, &p);

	return fd < 0 ? errno : 0;
}

static int unshare_user(void)
{
	return unshare(CLONE_NEWUSER) < 0 ? errno : 0;
}

static int clone_user(void)
{
	long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);

	if (pid == 0)
		_exit(0);
	if (pid < 0)
		return errno;
	waitpid((pid_t)pid, NULL, 0);
	return 0;
}

/* Over / only in a mount namespace of its own, so that a success (run
 * unsandboxed, as root) changes nothing for anyone else. */
static int do_mount(void)
{
	const char *target = "/";

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0 && unshare(CLONE_NEWNS) < 0)
		target = "/nonexistent-ioreq-test-hostile";
	return mount("tmpfs", target, "tmpfs", 0, NULL) < 0 ? errno : 0;
}

static int do_bpf(void)
{
	union bpf_attr attr = {
		.map_type = BPF_MAP_TYPE_ARRAY,
		.key_size = 4,
		.value_size = 4,
		.max_entries = 1,
	};

	return syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)) < 0 ? errno : 0;
}

/* A process of its own uid, which it could otherwise trace at will. */
static int do_ptrace(void)
{
	pid_t pid = fork();
	int r = 0;

	if (pid == 0) {
		pause();
		_exit(0);
	}
	if (pid < 0)
		return errno;
	if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0)
		r = errno;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return r;
}

static int uffd(void)
{
	/* User-mode only: what an unprivileged process may ask for. */
	return syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY) < 0 ? errno : 0;
}

static int open_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int host_passwd(void)
{
	return open_path("/etc/passwd");
}

static int host_given(void)
{
	return host_file ? open_path(host_file) : ENOENT;
}

/* Typing into whatever terminal it was handed, or is attached to. */
static int sti(int fd)
{
	char c = '!';

	return ioctl(fd, TIOCSTI, &c) < 0 ? errno : 0;
}

static int sti_0(void)
{
	return sti(0);
}

static int sti_1(void)
{
	return sti(1);
}

static int sti_2(void)
{
	return sti(2);
}

static int sti_tty(void)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC), r;

	if (fd < 0)
		return errno;
	r = sti(fd);
	close(fd);
	return r;
}

static const struct probe {
	const char *name;
	int (*fn)(void);
} probes[] = {
	{ "io_uring_setup", uring },
	{ "unshare(CLONE_NEWUSER)", unshare_user },
	{ "clone(CLONE_NEWUSER)", clone_user },
	{ "mount", do_mount },
	{ "bpf", do_bpf },
	{ "ptrace", do_ptrace },
	{ "userfaultfd", uffd },
	{ "open /etc/passwd", host_passwd },
	{ "open the host file", host_given },
	{ "TIOCSTI on fd 0", sti_0 },
	{ "TIOCSTI on fd 1", sti_1 },
	{ "TIOCSTI on fd 2", sti_2 },
	{ "TIOCSTI on /dev/tty", sti_tty },
};

static void run(const struct probe *p)
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(p->fn() & 0xff);
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		fprintf(stderr, "%s %s: %s: cannot tell (%s)\n", PROG, name, p->name, strerror(errno));
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		fprintf(stderr, "%s %s: %s: WORKED\n", PROG, name, p->name);
	else if (WIFEXITED(status))
		fprintf(stderr, "%s %s: %s: refused (%s)\n", PROG, name, p->name, strerror(WEXITSTATUS(status)));
	else
		fprintf(stderr, "%s %s: %s: refused (killed by signal %d)\n", PROG, name, p->name, WTERMSIG(status));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ "host-file", required_argument, NULL, 'f' },
		{ "stay", no_argument, NULL, 'w' },
		{},
	};
	int opt, stay = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			break;
		case 'n':
			name = optarg;
			break;
		case 'f':
			host_file = optarg;
			break;
		case 'w':
			stay = 1;
			break;
		default:
			fprintf(stderr, "usage: %s [--name NAME] [--host-file PATH] [--stay]\n", PROG);
			return 2;
		}
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		run(&probes[i]);
	fprintf(stderr, "%s %s: done\n", PROG, name);
	while (stay)
		pause();
	return 0;
}
