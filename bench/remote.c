/* A device served remotely: the in-process broker (brokerpath.c) with its
 * device behind the real ioreq-remote, which runs ioreq-dev-null in its
 * sandbox as the broker would, and the connection between them over
 * tls+tcp:// with mutual TLS:
 *
 *   vCPU -> broker -> TLS over TCP -> ioreq-remote -> nng ipc ->
 *   ioreq-dev-null -> and back the same way
 *
 * The orchestrator makes the certificates (openssl; without it, plain
 * tcp:// with insecure: true) and, as root with ip, two network namespaces
 * joined by a veth pair; a worker runs the broker on 127.0.0.1, or in the
 * broker's namespace with the runner in the other. */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The veth pair's addresses, inside the namespaces only. */
#define ADDR_B "10.77.93.1"
#define ADDR_D "10.77.93.2"
#define VETH_PORT 7700
/* The sandboxed device's uid when the runner is root. */
#define DEVICE_UID "64898"

static char made_ns[2][32]; /* what remote_env_down deletes */

static void drop_namespaces(void)
{
	char cmd[256];

	for (size_t i = 0; i < 2; i++)
		if (made_ns[i][0]) {
			snprintf(cmd, sizeof(cmd), "ip netns del %1$s 2>/dev/null || ! test -e /run/netns/%1$s", made_ns[i]);
			if (system(cmd) != 0)
				fprintf(stderr, "ioreq-bench: cannot delete the network namespace %s\n", made_ns[i]);
			made_ns[i][0] = '\0';
		}
}

/* The CA, the broker's certificate (name "broker") and the device's
 * ("dev0.remote"), in @dir. */
static int make_certs(const char *dir)
{
	char cmd[1600];

	snprintf(cmd, sizeof(cmd),
		 "(set -e; mkdir -p %s; cd %s;"
		 " key() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key"
		 "   -out $1.csr -subj \"/CN=$2\"; };"
		 " sign() { openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $1.pem -days 2 $2; };"
		 " openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key"
		 "   -out ca.pem -days 2 -subj /CN=ca;"
		 " printf 'subjectAltName=DNS:broker\\n' > ext;"
		 " key broker broker; sign broker '-extfile ext'; key dev dev0.remote; sign dev) >/dev/null 2>&1",
		 dir, dir);
	return system(cmd) == 0 ? 0 : -EIO;
}

/* The namespaces (unique per process) and the veth pair between them. */
static int make_network(struct remote_env *e, char *why, size_t len)
{
	static bool at_exit;
	char cmd[1024];

	if (geteuid() != 0 || system("command -v ip >/dev/null 2>&1") != 0) {
		snprintf(why, len, "veth: needs root and ip (iproute2)");
		return -EPERM;
	}
	snprintf(e->ns_b, sizeof(e->ns_b), "ioreq-bench-b%d", (int)getpid());
	snprintf(e->ns_d, sizeof(e->ns_d), "ioreq-bench-d%d", (int)getpid());
	if (!at_exit && atexit(drop_namespaces) == 0)
		at_exit = true;
	snprintf(made_ns[0], sizeof(made_ns[0]), "%s", e->ns_b);
	snprintf(made_ns[1], sizeof(made_ns[1]), "%s", e->ns_d);
	snprintf(cmd, sizeof(cmd),
		 "(set -e; ip netns add %1$s; ip netns add %2$s;"
		 " ip link add vb netns %1$s type veth peer name vd netns %2$s;"
		 " ip -n %1$s addr add " ADDR_B "/24 dev vb; ip -n %2$s addr add " ADDR_D "/24 dev vd;"
		 " for n in %1$s %2$s; do ip -n $n link set lo up; done;"
		 " ip -n %1$s link set vb up; ip -n %2$s link set vd up) >/dev/null 2>&1",
		 e->ns_b, e->ns_d);
	if (system(cmd) != 0) {
		snprintf(why, len, "veth: cannot make the network namespaces (ip netns add, veth)");
		drop_namespaces();
		return -EIO;
	}
	return 0;
}

void remote_env_up(const struct bench_ctx *c, struct remote_env *e)
{
	*e = (struct remote_env){ 0 };
	snprintf(e->runner, sizeof(e->runner), "%s/ioreq-remote", c->bindir);
	if (access(e->runner, X_OK) < 0) {
		snprintf(e->why, sizeof(e->why), "%.200s: %s", e->runner, strerror(errno));
		return;
	}
	/* Without openssl (or should it fail), tcp://: the rows say so. */
	snprintf(e->certs, sizeof(e->certs), "%s/certs", c->tmp);
	if (system("command -v openssl >/dev/null 2>&1") != 0 || make_certs(e->certs) < 0)
		e->certs[0] = '\0';
	make_network(e, e->why_veth, sizeof(e->why_veth));
}

void remote_env_down(struct remote_env *e)
{
	drop_namespaces();
}

/* ---- the worker's side ---- */

/* A port nobody listens on at 127.0.0.1 now (the kernel's choice). */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

	if (fd < 0)
		return -errno;
	r = bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0
		    ? -errno
		    : ntohs(a.sin_port);
	close(fd);
	return r;
}

/* Moves this thread (the worker's only one yet) into the named namespace. */
static int enter_netns(const char *name)
{
	char path[96];
	int fd, r = 0;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET) < 0)
		r = -errno;
	close(fd);
	return r;
}

int remote_runner_start(const struct worker_args *a, const char *dir, const char *const *device, const char *file,
			char *yaml, size_t len, pid_t *ret)
{
	char url[64], runner[4200], ca[300], cert[300], key[300], rdir[300], dev[4200];
	char *argv[32] = { (char *)a->exe, "--pong-exec", runner, "--broker", url, "--name", "dev0",
			   "--runtime-dir", rdir };
	char ns_b[32] = "", ns_d[32] = "";
	size_t k = 9;
	int port = VETH_PORT, r;

	if (a->netns && sscanf(a->netns, "%31[^:]:%31s", ns_b, ns_d) != 2)
		return -EINVAL;
	if (!a->netns && (port = free_port()) < 0)
		return port;
	snprintf(url, sizeof(url), "%s://%s:%d", a->certs ? "tls+tcp" : "tcp", a->netns ? ADDR_B : "127.0.0.1", port);
	snprintf(runner, sizeof(runner), "%s/ioreq-remote", a->bindir);
	snprintf(rdir, sizeof(rdir), "%s/remote", dir);
	snprintf(dev, sizeof(dev), "%s/%s", a->bindir, device[0]);
	if (a->certs) {
		snprintf(ca, sizeof(ca), "%s/ca.pem", a->certs);
		snprintf(cert, sizeof(cert), "%s/dev.pem", a->certs);
		snprintf(key, sizeof(key), "%s/dev.key", a->certs);
		argv[k++] = "--ca";
		argv[k++] = ca;
		argv[k++] = "--cert";
		argv[k++] = cert;
		argv[k++] = "--key";
		argv[k++] = key;
		argv[k++] = "--broker-name";
		argv[k++] = "broker";
		snprintf(yaml, len,
			 "listen: \"%s\", certificate: %s/broker.pem, key: %s/broker.key, ca: %s, peer_name: dev0.remote", url,
			 a->certs, a->certs, ca);
	} else {
		argv[k++] = "--insecure";
		snprintf(yaml, len, "listen: \"%s\", insecure: true", url);
	}
	if (geteuid() == 0) {
		argv[k++] = "--user";
		argv[k++] = DEVICE_UID;
	}
	if (file) {
		argv[k++] = "--file";
		argv[k++] = (char *)file;
	}
	argv[k++] = "--";
	argv[k++] = dev;
	for (size_t i = 1; device[i] && k < sizeof(argv) / sizeof(argv[0]) - 1; i++)
		argv[k++] = (char *)device[i];
	argv[k] = NULL;
	/* The runner starts in its namespace, then this thread goes into the
	 * broker's, before the broker starts a thread. It dials until the
	 * broker listens. */
	if (a->netns && (r = enter_netns(ns_d)) < 0)
		return r;
	r = bench_spawn(argv, NULL, -1, -1, -1, ret);
	if (r == 0 && a->netns)
		r = enter_netns(ns_b);
	return r;
}

void remote_runner_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	bench_wait(pid, 5000);
}
