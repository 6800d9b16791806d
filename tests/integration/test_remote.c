/* Remote devices (issue 18): the broker in one network namespace, the
 * device's runner (ioreq-remote) in another, joined by a veth pair whose
 * addresses exist only inside them; certificates made here with openssl.
 *
 * Needs root (namespaces, veth), ip and openssl; skips (77) without them.
 * Built twice: test_integration_remote (identity, serving, partition,
 * reconnection, memory through messages, lies) and
 * test_integration_remote_netem (delay against deadlines, loss),
 * which skips where the kernel has no netem qdisc, so that the first never
 * shows as skipped for want of it. Remote devices always use nng: the
 * IOREQ_TRANSPORT=nng variant would run the same, and skips. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "simvirtio.h"

#define BIN IOREQ_BINDIR
#define ADDR_B "10.77.0.1"
#define ADDR_D "10.77.0.2"
#define PORT "7700"
/* A uid of the device's own on the runner's host. */
#define DEVICE_UID "64900"

static char ns_b[32], ns_d[32]; /* the broker's and the device's namespaces */
static char certs[1024];         /* where the certificates are */

/* Runs @fmt through sh; its status, its output (and stderr) in @out. */
static int sh(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sh(char *out, size_t len, const char *fmt, ...)
{
	char cmd[4096], ignored[4096];
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return harness_exec(argv, out ? out : ignored, out ? len : sizeof(ignored));
}

static void drop_namespaces(void)
{
	if (ns_b[0])
		sh(NULL, 0, "ip netns del %s; ip netns del %s", ns_b, ns_d);
	if (certs[0])
		sh(NULL, 0, "rm -rf %s", certs);
}

/* Two namespaces and a veth pair between them. NULL or why not. */
static const char *make_network(void)
{
	static char why[512];

	if (geteuid() != 0)
		return "needs root (network namespaces, veth)";
	if (sh(NULL, 0, "command -v ip && command -v openssl"))
		return "needs ip (iproute2) and openssl";
	snprintf(ns_b, sizeof(ns_b), "ioreq-b%d", (int)getpid());
	snprintf(ns_d, sizeof(ns_d), "ioreq-d%d", (int)getpid());
	atexit(drop_namespaces);
	if (sh(why, sizeof(why),
	       "set -e; ip netns add %1$s; ip netns add %2$s;"
	       " ip link add vb netns %1$s type veth peer name vd netns %2$s;"
	       " ip -n %1$s addr add " ADDR_B "/24 dev vb; ip -n %2$s addr add " ADDR_D "/24 dev vd;"
	       " for n in %1$s %2$s; do ip -n $n link set lo up; done;"
	       " ip -n %1$s link set vb up; ip -n %2$s link set vd up",
	       ns_b, ns_d))
		return why;
	return NULL;
}

/* A CA, the broker's certificate (name "broker"), the device's ("ram.remote"),
 * and the bad ones: another CA's, another name's, an expired one. */
static const char *make_certs(void)
{
	static char why[1024];

	if (sh(why, sizeof(why),
	       "set -e; d=$(mktemp -d /tmp/ioreq-certs.XXXXXX); cd $d;"
	       " key() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key"
	       "   -out $1.csr -subj \"/CN=$2\" 2>/dev/null; };"
	       " ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key"
	       "   -out $1.pem -days 2 -subj \"/CN=$1\" 2>/dev/null; };"
	       " sign() { openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -out $3.pem"
	       "   -days $4 $5 2>/dev/null; };"
	       " ca ca; ca otherca; printf 'subjectAltName=DNS:broker\\n' > ext;"
	       " key broker broker; sign broker ca broker 2 '-extfile ext';"
	       " key dev ram.remote; sign dev ca dev 2;"
	       " key other ram.remote; sign other otherca other 2;"
	       " key wrongname someone.else; sign wrongname ca wrongname 2;"
	       " sign dev ca expired -1; cp dev.key expired.key;"
	       " key self ram.remote; openssl x509 -req -in self.csr -signkey self.key -out self.pem -days 2 2>/dev/null;"
	       " printf %%s $d"))
		return why;
	snprintf(certs, sizeof(certs), "%s", why);
	return NULL;
}

/* The broker, in its namespace, on a VM of 16 MiB whose vCPU runs @script,
 * with @devices (YAML list entries). */
static void start_vm(struct run *r, const char *script, const char *devices)
{
	const char *path;
	const char *argv[] = { "/usr/sbin/ip", "netns", "exec", ns_b, BIN "/ioreq-brokerd", "--config", NULL,
			       "--exit-with-vms", NULL };

	harness_write("cpu0.txt", "%s", script);
	path = harness_write("v.yaml",
			     "broker: { runtime_dir: %s/run }\n"
			     "vms:\n"
			     "  - name: v\n"
			     "    backend: sim\n"
			     "    vcpus: 1\n"
			     "    memory: 16M\n"
			     "    scripts: [cpu0.txt]\n"
			     "    devices:\n%s",
			     harness_tmpdir(), devices);
	argv[6] = path;
	harness_start_argv(r, argv);
	assert_non_null(harness_wait_log(r, "listening on ", 10));
}

/* ... whose device "ram" (mmio 0x2000+8) is remote with @remote (the
 * entries of its YAML flow mapping) and @extra device keys. */
static void start_broker(struct run *r, const char *script, const char *remote, const char *extra)
{
	static char devices[8192];

	snprintf(devices, sizeof(devices),
		 "      - name: ram\n"
		 "        mmio: [\"0x2000+8\"]\n"
		 "%s"
		 "        remote: { %s }\n",
		 extra, remote);
	start_vm(r, script, devices);
}

/* A tls+tcp:// entry whose device is known by @identity. */
#define TLS_REMOTE(identity)                                                                                   \
	"listen: \"tls+tcp://" ADDR_B ":" PORT "\", certificate: %1$s/broker.pem, key: %1$s/broker.key, " identity
#define CA_NAME TLS_REMOTE("ca: %1$s/ca.pem, peer_name: ram.remote")

/* The runner in the device's namespace for device @name, with
 * certificate @cert (and its key @key), then @tail: more options, "--",
 * the program and its arguments. */
static void start_runner_for(struct run *r, const char *name, const char *cert, const char *key,
			     const char *const *tail)
{
	static char ca[1100], c[1100], k[1100], dir[300];
	const char *argv[64] = { "/usr/sbin/ip", "netns", "exec", ns_d, BIN "/ioreq-remote",
				 "--broker", "tls+tcp://" ADDR_B ":" PORT, "--name", name, "--ca", ca, "--cert", c,
				 "--key", k, "--broker-name", "broker", "--user", DEVICE_UID, "--runtime-dir", dir };
	size_t n = 0;

	while (argv[n])
		n++;
	for (size_t i = 0; tail[i] && n < 63; i++)
		argv[n++] = tail[i];
	snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
	snprintf(c, sizeof(c), "%s/%s", certs, cert);
	snprintf(k, sizeof(k), "%s/%s", certs, key);
	snprintf(dir, sizeof(dir), "%s/remote", harness_tmpdir());
	harness_start_argv(r, argv);
}

/* ... serving ioreq-dev-ram. */
static void start_runner(struct run *r, const char *cert, const char *key)
{
	static const char *const ram[] = { "--", BIN "/ioreq-dev-ram", NULL };

	start_runner_for(r, "ram", cert, key, ram);
}

static void ca_name(char *buf, size_t len)
{
	snprintf(buf, len, CA_NAME, certs);
}

#ifndef REMOTE_NETEM
/* A VM runs with its device in the other namespace, over mutual TLS: every
 * request answered by the device, none by the fallback; ioreqctl shows
 * where it is and who it is. */
static void test_serves(void **state)
{
	char remote[4200], out[8192], sock[512];
	struct run b, d;
	const char *ctl[] = { BIN "/ioreqctl", "--socket", sock, "devices", NULL };

	ca_name(remote, sizeof(remote));
	start_broker(&b,
		     "sleep 300\n"
		     "repeat 200\n  mmio write 0x2000 8 seq\n  mmio read 0x2000 8 seq\nend\n"
		     "sleep 1500\n",
		     remote, "        on_failure: hold\n        deadline_ms: 10000\n");
	start_runner(&d, "dev.pem", "dev.key");
	assert_non_null(harness_wait_log(&b, "ready (remote, " ADDR_D ":", 10));
	assert_non_null(harness_wait_log(&b, "certificate \"CN=ram.remote\")", 1));
	assert_non_null(harness_wait_log(&b, "vm v: started", 10));
	/* Its round trip is known after the first pings (every second). */
	usleep(1200 * 1000);
	snprintf(sock, sizeof(sock), "%s/run/control", harness_tmpdir());
	assert_int_equal(harness_exec(ctl, out, sizeof(out)), 0);
	assert_non_null(strstr(out, ADDR_D ":"));
	assert_non_null(strstr(out, "CN=ram.remote"));
	harness_wait(&b, 30);
	assert_int_equal(b.status, 0);
	assert_int_equal(harness_stat(&b, "vm v device ram:", " mmio"), 400);
	assert_int_equal(harness_stat(&b, "vm v device ram:", " fallbacks"), 0);
}

/* Whoever cannot prove to be the device is refused in the handshake, with
 * a line that says why; the device itself then connects. */
static void test_refused(void **state)
{
	static const struct {
		const char *cert, *key, *why;
	} bad[] = {
		{ "other.pem", "other.key", "certificate \"CN=ram.remote\"): its certificate is not signed by the configured CA" },
		{ "wrongname.pem", "wrongname.key",
		  "certificate \"CN=someone.else\"): its certificate does not carry the expected name" },
		{ "expired.pem", "expired.key", "certificate \"CN=ram.remote\"): its certificate has expired" },
	};
	char remote[4200], addr[64];
	const char *plain[] = { "/usr/sbin/ip", "netns", "exec", ns_d, BIN "/ioreq-remote", "--broker",
				"tcp://" ADDR_B ":" PORT, "--insecure", "--name", "ram", "--sandbox", "none",
				"--runtime-dir", addr, "--", BIN "/ioreq-dev-ram", NULL };
	struct run b, d[4], good;

	ca_name(remote, sizeof(remote));
	start_broker(&b, "sleep 6000\nmmio write 0x2000 8 0x5a\nmmio read 0x2000 8 0x5a\n", remote,
		     "        on_failure: hold\n        deadline_ms: 10000\n");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		start_runner(&d[i], bad[i].cert, bad[i].key);
		if (!harness_wait_log(&b, bad[i].why, 10))
			fail_msg("no refusal of %s", bad[i].cert);
		kill(d[i].pid, SIGKILL);
	}
	/* Plain TCP to a TLS listener: no handshake, no device. */
	snprintf(addr, sizeof(addr), "%s/plain", harness_tmpdir());
	harness_start_argv(&d[3], plain);
	if (!harness_wait_log(&b, "refused a connection: its TLS handshake failed", 10))
		fail_msg("no refusal of plain TCP");
	kill(d[3].pid, SIGKILL);
	assert_null(strstr(harness_log(&b), "ready (remote"));
	start_runner(&good, "dev.pem", "dev.key");
	assert_non_null(harness_wait_log(&b, "ready (remote, ", 10));
	harness_wait(&b, 30);
	assert_int_equal(b.status, 0);
	assert_int_equal(harness_stat(&b, "vm v device ram:", " fallbacks"), 0);
}

/* A pinned fingerprint: that certificate, self-signed here, is the device;
 * the CA-signed one with the same name is not. */
static void test_fingerprint(void **state)
{
	char fp[256], remote[4200];
	struct run b, d, good;

	assert_int_equal(sh(fp, sizeof(fp), "openssl x509 -in %s/self.pem -noout -fingerprint -sha256 | cut -d= -f2 | tr -d '\\n'",
			    certs),
			 0);
	snprintf(remote, sizeof(remote), TLS_REMOTE("fingerprint: \"sha256:%2$s\""), certs, fp);
	start_broker(&b, "sleep 4000\nmmio write 0x2000 8 0x5a\nmmio read 0x2000 8 0x5a\n", remote,
		     "        on_failure: hold\n        deadline_ms: 10000\n");
	start_runner(&d, "dev.pem", "dev.key");
	assert_non_null(harness_wait_log(&b, "its certificate's fingerprint is not the pinned one", 10));
	kill(d.pid, SIGKILL);
	start_runner(&good, "self.pem", "self.key");
	assert_non_null(harness_wait_log(&b, "ready (remote, ", 10));
	harness_wait(&b, 30);
	assert_int_equal(b.status, 0);
}

/* insecure: true: plain TCP, no identity; whoever connects is the device. */
static void test_insecure(void **state)
{
	char dir[300];
	const char *runner[] = { "/usr/sbin/ip", "netns", "exec", ns_d, BIN "/ioreq-remote", "--broker",
				 "tcp://" ADDR_B ":" PORT, "--insecure", "--name", "ram", "--user", DEVICE_UID,
				 "--runtime-dir", dir, "--", BIN "/ioreq-dev-ram", NULL };
	struct run b, d;

	start_broker(&b, "sleep 300\nrepeat 50\n  mmio write 0x2000 8 seq\n  mmio read 0x2000 8 seq\nend\n",
		     "listen: \"tcp://" ADDR_B ":" PORT "\", insecure: true",
		     "        on_failure: hold\n        deadline_ms: 10000\n");
	assert_non_null(harness_wait_log(&b, "(insecure: anyone who connects is the device)", 1));
	snprintf(dir, sizeof(dir), "%s/remote", harness_tmpdir());
	harness_start_argv(&d, runner);
	assert_non_null(harness_wait_log(&b, "ready (remote, " ADDR_D ":", 10));
	assert_non_null(harness_wait_log(&b, ", insecure)", 1));
	harness_wait(&b, 30);
	assert_int_equal(b.status, 0);
	assert_int_equal(harness_stat(&b, "vm v device ram:", " fallbacks"), 0);
}

/* The network goes away while the vCPU's requests are in flight: each one
 * completes by its deadline with the fallback, the broker hears nothing
 * for timeout_ms and takes the device for dead, the runner likewise; once
 * the link is back the runner reconnects with a fresh device, which
 * serves again. */
static void test_partition(void **state)
{
	char remote[4200];
	struct run b, d;

	ca_name(remote, sizeof(remote));
	strcat(remote, ", timeout_ms: 600");
	start_broker(&b,
		     "sleep 300\n"
		     "repeat 100\n  mmio write 0x2000 8 seq\n  mmio read 0x2000 8 any\n  sleep 20\nend\n"
		     "sleep 6000\n"
		     "mmio write 0x2000 8 0x77\nmmio read 0x2000 8 0x77\n",
		     remote, "        deadline_ms: 200\n");
	start_runner(&d, "dev.pem", "dev.key");
	assert_non_null(harness_wait_log(&b, "ready (remote, ", 10));
	assert_non_null(harness_wait_log(&b, "vm v: started", 10));
	usleep(800 * 1000);
	assert_int_equal(sh(NULL, 0, "ip -n %s link set vd down", ns_d), 0);
	assert_non_null(harness_wait_log(&b, "no answer for 600 ms (network partition, or the runner is gone)", 5));
	usleep(500 * 1000);
	assert_int_equal(sh(NULL, 0, "ip -n %s link set vd up", ns_d), 0);
	assert_non_null(harness_wait_log(&b, "restarting (restart 1)", 10));
	harness_wait(&b, 40);
	assert_int_equal(b.status, 0);
	/* Connected twice: before and after the partition. */
	assert_non_null(strstr(strstr(harness_log(&b), "ready (remote, ") + 1, "ready (remote, "));
	assert_true(harness_stat(&b, "vm v device ram:", " fallbacks") > 0);
	assert_true(harness_stat(&b, "vm v device ram:", " expired") > 0);
	assert_non_null(strstr(harness_log(&d), "no ping from the broker"));
}


/* A DMA engine on the other host (clients/dma.c): the guest's memory
 * through MemAccess messages, its doorbell and irqfd as Signals, the same
 * device program as a local one. 4 KiB copied, then 1 MiB inverted (64
 * messages of 16 KiB each way), then a source outside the guest's RAM,
 * which the device's library refuses without asking the broker. */
static void test_dma(void **state)
{
	static const char *const dma[] = { "--", BIN "/ioreq-dev-dma", NULL };
	char devices[8192], remote[4200], out[8192] = "", sock[512];
	const char *ctl[] = { BIN "/ioreqctl", "--socket", sock, "devices", NULL };
	struct run b, d;

	snprintf(remote, sizeof(remote), TLS_REMOTE("ca: %1$s/ca.pem, peer_name: ram.remote"), certs);
	snprintf(devices, sizeof(devices),
		 "      - name: dma\n"
		 "        pio: [\"0x520+0x24\"]\n"
		 "        irqs: [10]\n"
		 "        memory: guest\n"
		 "        doorbells: 1\n"
		 "        irqfds: 1\n"
		 "        on_failure: hold\n"
		 "        deadline_ms: 20000\n"
		 "        remote: { %s }\n",
		 remote);
	s_reset();
	s("mem write 0x10000 8 0x0123456789abcdef");
	s("mem write 0x10ff8 8 0xfedcba9876543210");
	s("pio write 0x520 4 0x10000");
	s("pio write 0x524 4 0");
	s("pio write 0x528 4 0x20000");
	s("pio write 0x52c 4 0");
	s("pio write 0x530 4 4096");
	s("pio write 0x534 4 0");
	s("pio write 0x540 1 1");
	s("irq 10 edge");
	s("pio read 0x538 4 1");
	s("mem read 0x20000 8 0x0123456789abcdef");
	s("mem read 0x20ff8 8 0xfedcba9876543210");
	s("mem write 0x100000 8 0x1111111111111111");
	s("mem write 0x1ffff8 8 0x2222222222222222");
	s("pio write 0x520 4 0x100000");
	s("pio write 0x528 4 0x300000");
	s("pio write 0x530 4 0x100000");
	s("pio write 0x534 4 1");
	s("pio write 0x540 1 1");
	s("irq 10 edge");
	s("pio read 0x538 4 1");
	s("pio read 0x53c 4 2");
	s("mem read 0x300000 8 0xeeeeeeeeeeeeeeee");
	s("mem read 0x380000 8 0xffffffffffffffff");
	s("mem read 0x3ffff8 8 0xdddddddddddddddd");
	s("pio write 0x520 4 0x2000000");
	s("pio write 0x540 1 1");
	s("irq 10 edge");
	s("pio read 0x538 4 0xfffffff2");
	s("sleep 3000");
	start_vm(&b, sim_script.text, devices);
	start_runner_for(&d, "dma", "dev.pem", "dev.key", dma);
	/* ioreqctl counts what moved: 4 KiB and 1 MiB, each read and
	 * written, in 2 + 128 messages; the refused one never left. */
	snprintf(sock, sizeof(sock), "%s/run/control", harness_tmpdir());
	for (int i = 0; i < 100 && !strstr(out, "130 memory accesses (2056.0 KiB)"); i++) {
		usleep(100 * 1000);
		harness_exec(ctl, out, sizeof(out));
	}
	assert_non_null(strstr(out, "130 memory accesses (2056.0 KiB)"));
	harness_wait(&b, 60);
	assert_int_equal(b.status, 0);
	assert_non_null(strstr(harness_log(&b), "registered doorbell 0 (pio 0x540 size 1)"));
	assert_non_null(strstr(harness_log(&b), "registered irqfd 0 (IRQ 10)"));
	assert_int_equal(harness_stat(&b, "vm v device dma:", " fallbacks"), 0);
	assert_int_equal(harness_stat(&b, "vm v device dma:", " bad replies"), 0);
	/* The doorbells rang as Signals, not requests: 11 register writes
	 * and 4 reads came as requests. */
	assert_int_equal(harness_stat(&b, "vm v device dma:", " pio"), 15);
}

/* virtio-blk on the other host, its image a file there (ioreq-remote
 * --file-rw), its queues in guest memory it reaches through messages:
 * the device program and its virtqueues unchanged. A read, a write of two
 * sectors read back, then a descriptor outside guest RAM, which costs the
 * guest its queue (DEVICE_NEEDS_RESET) and nothing else. */
static void test_virtio_blk(void **state)
{
	char devices[8192], remote[4200], image[600], sector[512];
	const char *const blk[] = { "--file-rw", image, "--", BIN "/ioreq-dev-virtio-blk", NULL };
	struct seg bad[] = { { BUF(0), 16, false }, { 0x40000000, 512, true }, { BUF(0) + 0x100, 1, true } };
	struct run b, d;
	FILE *f;

	snprintf(image, sizeof(image), "%s/disk.img", harness_tmpdir());
	f = fopen(image, "w");
	assert_non_null(f);
	for (int i = 0; i < 64; i++) {
		memset(sector, 'a' + i % 26, sizeof(sector));
		assert_int_equal(fwrite(sector, 1, sizeof(sector), f), sizeof(sector));
	}
	fclose(f);
	/* The device's uid on its host must be able to open it: the runner
	 * opens it, as root, before the device exists. */
	snprintf(remote, sizeof(remote), TLS_REMOTE("ca: %1$s/ca.pem, peer_name: ram.remote"), certs);
	snprintf(devices, sizeof(devices),
		 "      - name: disk\n"
		 "        pci: [\"" BDF "\"]\n"
		 "        windows: { mmio: [\"0xe1000000+0x1000000\"] }\n"
		 "        msi: true\n"
		 "        memory: guest\n"
		 "        doorbells: 1\n"
		 "        on_failure: hold\n"
		 "        deadline_ms: 20000\n"
		 "        remote: { %s }\n",
		 remote);
	s_reset();
	s_bar(2);
	s_init(1, 0);
	s("mmio read 0x%llx 8 64", DEVCFG(0));
	s_blk_read_write();
	s("mem write 0x%llx 4 0", BUF(0));
	s("mem write 0x%llx 8 0", BUF(0) + 8);
	s_chain(0, bad, 3);
	s("mmio read 0x%llx 1 0x4f until 5000", COMMON(0x14));
	start_vm(&b, sim_script.text, devices);
	start_runner_for(&d, "disk", "dev.pem", "dev.key", blk);
	harness_wait(&b, 90);
	assert_int_equal(b.status, 0);
	assert_non_null(strstr(harness_log(&b), "registered doorbell 0"));
	assert_int_equal(harness_stat(&b, "vm v device disk:", " fallbacks"), 0);
	/* The image on the device's host holds the guest's two sectors. */
	f = fopen(image, "r");
	assert_non_null(f);
	assert_int_equal(fseek(f, 5 * 512, SEEK_SET), 0);
	assert_int_equal(fread(sector, 1, 8, f), 8);
	fclose(f);
	assert_memory_equal(sector, "\xef\xcd\xab\x89\x67\x45\x23\x01", 8);
}

/* A remote device that lies about memory: reads outside the guest's RAM,
 * writes to RAM it may only read, signals eventfds that are not its own.
 * Each MemAccess is answered (with its error), each lie counted and named;
 * the guest's memory is unchanged, and its honest read works. (Past
 * max_violations it would be cut off, as any device.) */
static void test_lies(void **state)
{
	static const char *const lie[] = { "--", IOREQ_TESTDIR "/ioreq-test-misbehave", "--mode", "mem-lie", "--nth",
					   "1", NULL };
	char devices[8192], remote[4200];
	struct run b, d;

	snprintf(remote, sizeof(remote), TLS_REMOTE("ca: %1$s/ca.pem, peer_name: ram.remote"), certs);
	snprintf(devices, sizeof(devices),
		 "      - name: liar\n"
		 "        mmio: [\"0x2000+8\"]\n"
		 "        memory: read-only\n"
		 "        irqs: [5]\n"
		 "        irqfds: 1\n"
		 "        on_failure: hold\n"
		 "        deadline_ms: 20000\n"
		 "        max_violations: 10\n"
		 "        remote: { %s }\n",
		 remote);
	start_vm(&b,
		 "mem write 0x1000 8 0x1122334455667788\n"
		 "mmio read 0x2000 8 7\n"
		 "mmio read 0x2000 8 0x1122334455667788\n"
		 "mem read 0x1000 8 0x1122334455667788\n",
		 devices);
	start_runner_for(&d, "liar", "dev.pem", "dev.key", lie);
	harness_wait(&b, 60);
	assert_int_equal(b.status, 0);
	assert_non_null(strstr(harness_log(&b), "read outside guest RAM (16 bytes at 0x1000000)"));
	assert_non_null(strstr(harness_log(&b), "wrote to read-only guest memory (8 bytes at 0x1000)"));
	assert_non_null(strstr(harness_log(&b), "signalled an irqfd it was not given as a message"));
	assert_null(strstr(harness_log(&b), "cut off"));
	assert_int_equal(harness_stat(&b, "vm v device liar:", " fallbacks"), 0);
}

#else
/* Both ends of the veth pair through netem with @how, or the test skips. */
static void netem(const char *how)
{
	char why[512];

	if (sh(why, sizeof(why), "ip netns exec %s tc qdisc replace dev vd root netem %s && "
				 "ip netns exec %s tc qdisc replace dev vb root netem %s", ns_d, how, ns_b, how))
		harness_skip("tc netem is not available here: %s", why);
}

/* Delay against deadlines (netem): 100 ms each way. A device whose
 * deadline is shorter than the round trip gets every request completed
 * by its deadline with the fallback; a longer deadline gets answers. */
static void test_netem_delay(void **state)
{
	char remote[4200];
	struct run b, d;

	netem("delay 100ms");
	ca_name(remote, sizeof(remote));
	start_broker(&b,
		     "sleep 300\n"
		     "repeat 5\n  mmio read 0x2000 8 any\nend\n",
		     remote, "        deadline_ms: 100\n        on_failure: hold\n");
	start_runner(&d, "dev.pem", "dev.key");
	harness_wait(&b, 40);
	assert_int_equal(b.status, 0);
	assert_int_equal(harness_stat(&b, "vm v device ram:", " expired"), 5);
	/* The runner reconnects to this second broker on its own: time for
	 * its backoff and the handshakes, 200 ms a round trip. */
	start_broker(&b,
		     "sleep 3000\n"
		     "repeat 5\n  mmio write 0x2000 8 seq\n  mmio read 0x2000 8 seq\nend\n",
		     remote, "        deadline_ms: 2000\n        on_failure: hold\n");
	harness_wait(&b, 40);
	assert_int_equal(b.status, 0);
	assert_int_equal(harness_stat(&b, "vm v device ram:", " fallbacks"), 0);
}

/* Loss (netem): 10% of the packets each way. TCP retransmits under TLS;
 * with deadlines and a heartbeat timeout above its retransmission times,
 * every request is answered by the device, once. */
static void test_netem_loss(void **state)
{
	char remote[4200];
	struct run b, d;

	netem("loss 10%");
	ca_name(remote, sizeof(remote));
	strcat(remote, ", timeout_ms: 15000");
	start_broker(&b,
		     "sleep 300\n"
		     "repeat 20\n  mmio write 0x2000 8 seq\n  mmio read 0x2000 8 seq\nend\n",
		     remote, "        deadline_ms: 20000\n        on_failure: hold\n");
	start_runner(&d, "dev.pem", "dev.key");
	harness_wait(&b, 120);
	assert_int_equal(b.status, 0);
	assert_int_equal(harness_stat(&b, "vm v device ram:", " mmio"), 40);
	assert_int_equal(harness_stat(&b, "vm v device ram:", " fallbacks"), 0);
	assert_int_equal(harness_stat(&b, "vm v device ram:", " bad replies"), 0);
}

#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
#ifdef REMOTE_NETEM
		harness_test(test_netem_delay),
		harness_test(test_netem_loss),
#else
		harness_test(test_serves),
		harness_test(test_refused),
		harness_test(test_fingerprint),
		harness_test(test_insecure),
		harness_test(test_partition),
		harness_test(test_dma),
		harness_test(test_virtio_blk),
		harness_test(test_lies),
#endif
	};
	const char *why;
	const char *t = getenv("IOREQ_TRANSPORT");

	if (t && !strcmp(t, "nng")) {
		printf("skipped: remote devices use nng either way; the default run covers them\n");
		return 77;
	}
	why = make_network();
	if (!why)
		why = make_certs();
	if (why) {
		printf("skipped: %s\n", why);
		return 77;
	}
	return harness_run_group("remote", tests);
}
