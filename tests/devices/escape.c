/* ioreq-test-escape: a device that tries to leave its sandbox, for the
 * sandbox tests. It plays a compromised emulator: a guest read of its
 * range at one of the offsets below makes one attempt and answers with the
 * outcome, 0 when the attempt was refused (whatever refused it) and 1 when
 * it worked, so that the guest's script checks every probe.
 *
 * The sandbox refuses some calls with an error and kills the process on
 * others (seccomp's KILL_PROCESS). The probes at 0x24 and up are of the
 * second kind: each is meant for a device instance of its own, whose read
 * then completes with the fallback (all ones) and whose exit the broker
 * logs as "killed by signal 31".
 *
 *   --host-pid PID      a process of the host (kill probe)
 *   --write-path PATH   a file outside the sandbox to create
 *   --tcp-port PORT     a listener on 127.0.0.1
 *   --abstract NAME     a listener on the abstract AF_UNIX socket @NAME
 *   --irq-denied LINE   an IRQ line the device was not granted
 *   --connect-delay-ms  wait this long before connecting to the broker
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "ioreq/device.h"

#define PROG "ioreq-test-escape"

struct escape {
	pid_t host_pid;
	const char *write_path;
	unsigned tcp_port;
	const char *abstract;
	uint32_t irq_denied;
	unsigned connect_delay_ms;
};

static uint64_t open_passwd(struct ioreq_dev *dev, const struct escape *e)
{
	int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static uint64_t inet_socket(struct ioreq_dev *dev, const struct escape *e)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* Seccomp answers execve with EPERM; without it, the device is replaced by
 * a shell that exits, and the read gets the fallback instead of 0. */
static uint64_t exec_shell(struct ioreq_dev *dev, const struct escape *e)
{
	char *const argv[] = { "sh", "-c", "exit 0", NULL };

	execv("/bin/sh", argv);
	return 0;
}

static uint64_t write_outside(struct ioreq_dev *dev, const struct escape *e)
{
	int fd = open(e->write_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static uint64_t connect_to(const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r;

	if (fd < 0)
		return 0;
	r = connect(fd, sa, len);
	close(fd);
	return r == 0;
}

static uint64_t reach_tcp(struct ioreq_dev *dev, const struct escape *e)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(e->tcp_port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};

	return connect_to((const struct sockaddr *)&sin, sizeof(sin));
}

/* Abstract sockets belong to a network namespace: nothing of the host's is
 * reachable from the device's. */
static uint64_t reach_abstract(struct ioreq_dev *dev, const struct escape *e)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t n = strlen(e->abstract);

	if (n + 1 > sizeof(sun.sun_path))
		return 1;
	memcpy(sun.sun_path + 1, e->abstract, n);
	return connect_to((const struct sockaddr *)&sun, offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* The library refuses a line it was not granted before sending anything;
 * a compromised device is not bound by that: it rewrites its copy of the
 * grant. Only the broker's check stands between it and the guest. */
static uint64_t raise_denied(struct ioreq_dev *dev, const struct escape *e)
{
	const struct ioreq_dev_info *info = ioreq_dev_info(dev);
	uint32_t *lines = (uint32_t *)info->irq_lines, saved;
	int r;

	if (!info->n_irq_lines)
		return 1;
	saved = lines[0];
	lines[0] = e->irq_denied;
	r = ioreq_dev_irq(dev, e->irq_denied, IOREQ_IRQ_ASSERT);
	lines[0] = saved;
	return r < 0;
}

static uint64_t raise_granted(struct ioreq_dev *dev, const struct escape *e)
{
	const struct ioreq_dev_info *info = ioreq_dev_info(dev);

	if (!info->n_irq_lines)
		return 1;
	return ioreq_dev_irq(dev, info->irq_lines[0], IOREQ_IRQ_ASSERT) < 0;
}

/* 1 inside its own pid namespace. */
static uint64_t own_pid(struct ioreq_dev *dev, const struct escape *e)
{
	return (uint64_t)getpid();
}

/* Stops the broker when it works: detach at once. */
static uint64_t trace_parent(struct ioreq_dev *dev, const struct escape *e)
{
	pid_t parent = getppid();

	if (ptrace(PTRACE_ATTACH, parent, NULL, NULL) < 0)
		return 0;
	waitpid(parent, NULL, __WALL);
	ptrace(PTRACE_DETACH, parent, NULL, NULL);
	return 1;
}

static uint64_t signal_host(struct ioreq_dev *dev, const struct escape *e)
{
	return kill(e->host_pid, 0) == 0;
}

static uint64_t (*const probes[])(struct ioreq_dev *, const struct escape *) = {
	open_passwd,   /* 0x00 */
	inet_socket,   /* 0x04 */
	exec_shell,    /* 0x08 */
	write_outside, /* 0x0c */
	reach_tcp,     /* 0x10 */
	reach_abstract, /* 0x14 */
	raise_denied,  /* 0x18 */
	raise_granted, /* 0x1c */
	own_pid,       /* 0x20 */
	trace_parent,  /* 0x24: killed */
	signal_host,   /* 0x28: killed */
};

static int escape_access(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	size_t i = a->offset / 4;

	if (a->write || a->offset % 4 || i >= sizeof(probes) / sizeof(probes[0]))
		return -EINVAL;
	*value = probes[i](dev, opaque);
	return 0;
}

static const struct ioreq_dev_ops escape_ops = {
	.pio = escape_access,
	.mmio = escape_access,
};

static int parse_args(int argc, char **argv, struct escape *e)
{
	static const struct option opts[] = {
		{ "host-pid", required_argument, NULL, 'p' },
		{ "write-path", required_argument, NULL, 'w' },
		{ "tcp-port", required_argument, NULL, 't' },
		{ "abstract", required_argument, NULL, 'a' },
		{ "irq-denied", required_argument, NULL, 'i' },
		{ "connect-delay-ms", required_argument, NULL, 'd' },
		{},
	};
	int opt;

	e->write_path = "/tmp/ioreq-escaped";
	e->abstract = "ioreq-escape";
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			e->host_pid = atoi(optarg);
			break;
		case 'w':
			e->write_path = optarg;
			break;
		case 't':
			e->tcp_port = (unsigned)atoi(optarg);
			break;
		case 'a':
			e->abstract = optarg;
			break;
		case 'i':
			e->irq_denied = (uint32_t)atoi(optarg);
			break;
		case 'd':
			e->connect_delay_ms = (unsigned)atoi(optarg);
			break;
		default:
			return -EINVAL;
		}
	}
	return optind == argc ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
	struct escape e = { 0 };
	const char *url, *name;
	struct ioreq_dev *dev;
	int r;

	if (ioreq_dev_take_args(&argc, argv, &url, &name) < 0 || parse_args(argc, argv, &e) < 0) {
		fprintf(stderr, "usage: %s --socket URL --name NAME [probe options]\n", PROG);
		return 2;
	}
	usleep(e.connect_delay_ms * 1000);
	r = ioreq_dev_connect(url, name, &escape_ops, &e, &dev);
	if (r < 0) {
		fprintf(stderr, "%s: cannot connect to %s: %s\n", PROG, url, strerror(-r));
		return 1;
	}
	r = ioreq_dev_serve(dev);
	ioreq_dev_close(dev);
	return r < 0 ? 1 : 0;
}
