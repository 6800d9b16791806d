/* ioreqctl against a running broker: every subcommand, human and --json,
 * checked against what the broker really did; reload; socket activation. */
#include <errno.h>
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
#include "json.h"

static char out[1 << 16];
static char sock[512];

/* ioreqctl --socket SOCK ARGS...; returns its exit status, output in out. */
#define ctl(...) harness_ioreqctl(sock, out, sizeof(out), __VA_ARGS__)

static const char *config(const char *name, const char *vms)
{
	snprintf(sock, sizeof(sock), "%s/run/control", harness_tmpdir());
	return harness_write(name, "broker: { runtime_dir: %s/run }\nvms:\n%s", harness_tmpdir(), vms);
}

/* A VM that runs until stopped: a long, slow loop. */
#define FOREVER "repeat 1000000\n  pio write 0x60 1 1\n  sleep 5\nend\n"

static void test_subcommands(void **state)
{
	struct run r;
	const char *args[] = { "--config", NULL, NULL };

	harness_write("once.txt", "repeat 250\n  mmio write 0x1000 4 seq\n  mmio read 0x1000 4 seq\nend\n"
				  "pio read 0x700 2 0xffff\n");
	harness_write("forever.txt", FOREVER);
	args[1] = config("c.yaml", "  - name: once\n"
				   "    backend: sim\n"
				   "    vcpus: 1\n"
				   "    scripts: [once.txt]\n"
				   "    devices:\n"
				   "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x1000+0x100\"], pci: [\"00:03.0\"] }\n"
				   "  - name: loop\n"
				   "    backend: sim\n"
				   "    vcpus: 1\n"
				   "    scripts: [forever.txt]\n"
				   "    devices:\n"
				   "      - { name: sink, program: ioreq-dev-null, pio: [\"0x60..0x63\"] }\n"
				   "  - name: later\n"
				   "    backend: sim\n"
				   "    vcpus: 1\n"
				   "    autostart: false\n"
				   "    scripts: [once.txt]\n"
				   "    devices:\n"
				   "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x1000+0x100\"] }\n");
	harness_start(&r, args);
	assert_non_null(harness_wait_log(&r, "vm once: stopped with status 0", 30));
	assert_non_null(harness_wait_log(&r, "vm loop: started", 30));

	/* status: human and JSON agree with the configuration */
	assert_int_equal(ctl("status", NULL), 0);
	assert_non_null(strstr(out, "vms:     3 (1 running)"));
	assert_int_equal(ctl("status", "--json", NULL), 0);
	assert_true(json_valid(out));
	assert_int_equal(ctl("--json", "status", NULL), 0);
	assert_true(json_valid(out));
	assert_int_equal(json_num(out, "broker.pid"), r.pid);
	assert_int_equal(json_num(out, "broker.vms_total"), 3);
	assert_int_equal(json_num(out, "broker.vms_running"), 1);
	assert_string_equal(json_str(out, "vms.0.state"), "exited");
	assert_string_equal(json_str(out, "vms.1.state"), "running");
	assert_string_equal(json_str(out, "vms.2.state"), "stopped");

	/* devices: ranges and pids, as the broker routes them */
	assert_int_equal(ctl("--json", "devices", "once", NULL), 0);
	assert_string_equal(json_str(out, "devices.0.name"), "ram");
	assert_string_equal(json_str(out, "devices.0.state"), "ready");
	assert_true(json_num(out, "devices.0.pid") > 0);
	assert_int_equal(kill((pid_t)json_num(out, "devices.0.pid"), 0), 0);
	assert_string_equal(json_str(out, "devices.0.ranges.0.kind"), "mmio");
	assert_int_equal(json_num(out, "devices.0.ranges.0.start"), 0x1000);
	assert_int_equal(json_num(out, "devices.0.ranges.0.end"), 0x10ff);
	assert_int_equal(json_num(out, "devices.0.ranges.1.start"), 3 << 3);
	assert_int_equal(ctl("devices", "once", NULL), 0);
	assert_non_null(strstr(out, "mmio 0x1000-0x10ff, pci 00:03.0"));

	/* stats: exactly what the script did */
	assert_int_equal(ctl("--json", "stats", "once", NULL), 0);
	assert_int_equal(json_num(out, "stats.0.requests"), 501);
	assert_int_equal(json_num(out, "stats.0.unclaimed"), 1);
	assert_int_equal(json_num(out, "stats.0.devices.0.mmio"), 500);
	assert_int_equal(json_num(out, "stats.0.devices.0.replies"), 500);
	assert_int_equal(json_num(out, "stats.0.devices.0.fallbacks"), 0);
	assert_true(json_num(out, "stats.0.devices.0.p50_ns") > 0);
	assert_true(json_num(out, "stats.0.devices.0.p99_ns") >= json_num(out, "stats.0.devices.0.p50_ns"));
	assert_int_equal(ctl("stats", "once", "ram", NULL), 0);
	assert_non_null(strstr(out, "vm once: 501 requests, 1 unclaimed"));

	/* vm start / stop / reset */
	assert_int_equal(ctl("vm", "start", "later", NULL), 0);
	assert_non_null(harness_wait_log(&r, "vm later: stopped with status 0", 30));
	assert_int_equal(ctl("--json", "stats", "later", NULL), 0);
	assert_int_equal(json_num(out, "stats.0.devices.0.mmio"), 500);
	assert_int_equal(ctl("vm", "stop", "loop", NULL), 0);
	assert_int_equal(ctl("--json", "vms", "loop", NULL), 0);
	assert_string_equal(json_str(out, "vms.0.state"), "stopped");
	assert_int_equal(ctl("vm", "stop", "loop", NULL), 1);
	assert_non_null(strstr(out, "not running"));
	assert_int_equal(ctl("vm", "start", "loop", NULL), 0);
	assert_int_equal(ctl("vm", "start", "loop", NULL), 1);
	assert_non_null(strstr(out, "already running"));
	assert_int_equal(ctl("vm", "reset", "loop", NULL), 0);
	assert_int_equal(ctl("--json", "vms", "loop", NULL), 0);
	assert_string_equal(json_str(out, "vms.0.state"), "running");

	/* exit codes that mean something */
	assert_int_equal(ctl("vm", "start", "nosuch", NULL), 1);
	assert_non_null(strstr(out, "no VM named 'nosuch'"));
	assert_int_equal(ctl("frobnicate", NULL), 2);
	assert_int_equal(ctl("stats", "a", "b", "c", NULL), 2);
	{
		const char *argv[] = { IOREQ_BINDIR "/ioreqctl", "--socket", "/nonexistent/control", "status", NULL };

		assert_int_equal(harness_exec(argv, out, sizeof(out)), 3);
	}
	if (geteuid() == 0) {
		/* The socket is 0600 without a control group: nobody else gets in. */
		const char *argv[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
				       IOREQ_BINDIR "/ioreqctl", "--socket", sock, "status", NULL };

		assert_int_equal(harness_exec(argv, out, sizeof(out)), 4);
	}

	kill(r.pid, SIGTERM);
	harness_wait(&r, 30);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(harness_log(&r), "Terminated: stopping"));
}

/* reload adds and removes a device of a stopped VM while another VM keeps
 * running untouched, and refuses to change a running VM. */
static void test_reload(void **state)
{
	static const char steady[] = "  - name: steady\n"
				     "    backend: sim\n"
				     "    vcpus: 1\n"
				     "    scripts: [forever.txt]\n"
				     "    devices:\n"
				     "      - { name: sink, program: ioreq-dev-null, pio: [\"0x60..0x63\"] }\n";
	const char *args[] = { "--config", NULL, NULL };
	char vms[2048];
	long long pid, before;
	struct run r;

	harness_write("forever.txt", FOREVER);
	harness_write("edit.txt", "pio read 0x70 1 0x5a\n");
	snprintf(vms, sizeof(vms),
		 "%s  - name: edit\n"
		 "    backend: sim\n"
		 "    vcpus: 1\n"
		 "    autostart: false\n"
		 "    scripts: [edit.txt]\n"
		 "    devices:\n"
		 "      - { name: old, program: ioreq-dev-null, pio: [\"0x70+1\"] }\n",
		 steady);
	args[1] = config("r.yaml", vms);
	harness_start(&r, args);
	assert_non_null(harness_wait_log(&r, "vm steady: started", 30));
	assert_int_equal(ctl("--json", "devices", "steady", NULL), 0);
	pid = json_num(out, "devices.0.pid");
	assert_int_equal(ctl("--json", "stats", "steady", NULL), 0);
	before = json_num(out, "stats.0.requests");

	/* edit: device "old" goes, "new" comes, at another port and answering 0x5a */
	snprintf(vms, sizeof(vms),
		 "%s  - name: edit\n"
		 "    backend: sim\n"
		 "    vcpus: 1\n"
		 "    autostart: false\n"
		 "    scripts: [edit.txt]\n"
		 "    devices:\n"
		 "      - { name: new, program: ioreq-dev-null, pio: [\"0x70+1\"], args: [--pattern, \"0x5a\"] }\n",
		 steady);
	config("r.yaml", vms);
	assert_int_equal(ctl("reload", NULL), 0);
	assert_non_null(strstr(out, "1 changed"));
	assert_int_equal(ctl("--json", "devices", "edit", NULL), 0);
	assert_string_equal(json_str(out, "devices.0.name"), "new");
	assert_int_equal(json_num(out, "devices.1.pid"), -1);
	assert_int_equal(ctl("vm", "start", "edit", NULL), 0);
	assert_non_null(harness_wait_log(&r, "vm edit: stopped with status 0", 30));

	/* steady never noticed: same device process, still serving */
	assert_int_equal(ctl("--json", "devices", "steady", NULL), 0);
	assert_int_equal(json_num(out, "devices.0.pid"), pid);
	usleep(100 * 1000);
	assert_int_equal(ctl("--json", "stats", "steady", NULL), 0);
	assert_true(json_num(out, "stats.0.requests") > before);
	assert_int_equal(json_num(out, "stats.0.fallbacks"), 0);

	/* a change to a running VM is refused, with the reason, and nothing changes */
	snprintf(vms, sizeof(vms), "%s", steady);
	*strstr(vms, "0x60..0x63") = '\0';
	strcat(vms, "0x60..0x67\"] }\n");
	config("r.yaml", vms);
	assert_int_equal(ctl("reload", NULL), 1);
	assert_non_null(strstr(out, "vm steady is running and its configuration changed (device 'sink' changed)"));
	assert_int_equal(ctl("--json", "vms", NULL), 0);
	assert_string_equal(json_str(out, "vms.1.name"), "edit");

	/* a broken file is refused with its error */
	harness_write("r.yaml", "vms: [\n");
	assert_int_equal(ctl("reload", NULL), 1);
	assert_non_null(strstr(out, "r.yaml:2:1:"));

	kill(r.pid, SIGTERM);
	harness_wait(&r, 30);
	assert_int_equal(r.status, 0);
}

/* The first ioreqctl status starts the broker through socket activation,
 * which then answers it. */
static void test_socket_activation(void **state)
{
	const char *activate = "/usr/bin/systemd-socket-activate";
	const char *cfg;
	char fdname[] = "--fdname=control";
	struct run r;

	if (access(activate, X_OK) < 0)
		harness_skip("%s is not installed (package systemd)", activate);
	harness_write("forever.txt", FOREVER);
	cfg = config("a.yaml", "  - name: on-demand\n"
			       "    backend: sim\n"
			       "    vcpus: 1\n"
			       "    scripts: [forever.txt]\n"
			       "    devices:\n"
			       "      - { name: sink, program: ioreq-dev-null, pio: [\"0x60..0x63\"] }\n");
	snprintf(sock, sizeof(sock), "%s/activate.sock", harness_tmpdir());
	{
		const char *argv[] = { activate, "-l", sock, "--seqpacket", fdname, "--",
				       IOREQ_BINDIR "/ioreq-brokerd", "--config", cfg, NULL };

		harness_start_argv(&r, argv);
	}
	/* Nothing runs until someone connects. */
	for (int i = 0; i < 200 && access(sock, F_OK) < 0; i++)
		usleep(10 * 1000);
	assert_null(strstr(harness_log(&r), "vm on-demand"));
	assert_int_equal(ctl("--json", "status", NULL), 0);
	assert_int_equal(json_num(out, "broker.pid"), r.pid);
	assert_int_equal(json_num(out, "broker.vms_total"), 1);
	assert_non_null(harness_wait_log(&r, "control: serving the socket systemd passed", 10));
	assert_non_null(harness_wait_log(&r, "vm on-demand: started", 30));
	kill(r.pid, SIGTERM);
	harness_wait(&r, 30);
	assert_int_equal(r.status, 0);
}

/* --version everywhere, and "did you mean" for what ioreqctl does not know. */
static void test_command_line(void **state)
{
	static const char *const programs[] = {
		"ioreq-brokerd", "ioreqctl", "ioreq-launch", "ioreq-dev-null", "ioreq-dev-ram", "ioreq-dev-uart",
		"ioreq-dev-rtc", "ioreq-dev-pci", "ioreq-dev-dma", "ioreq-dev-virtio-blk", "ioreq-dev-virtio-rng",
		"ioreq-dev-virtio-console", "ioreq-bench", "ioreq-remote",
	};
	static const struct {
		const char *args[4];
		const char *says;
	} typos[] = {
		{ { "stauts" }, "unknown command 'stauts' (did you mean 'status'?)" },
		{ { "devics", "vm1" }, "unknown command 'devics' (did you mean 'devices'?)" },
		{ { "frobnicate" }, "unknown command 'frobnicate'\n" },
		{ { "vm", "rest", "a" }, "unknown vm command 'rest' (did you mean 'reset'?)" },
		{ { "--jsn", "status" }, "unknown option '--jsn' (did you mean '--json'?)" },
		{ { "status", "--sockt=x" }, "unknown option '--sockt=x' (did you mean '--socket'?)" },
		{ { "status", "--socket" }, "option '--socket' needs an argument" },
	};
	char expect[128];

	for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); i++) {
		char path[512];
		const char *argv[] = { path, "--version", NULL };

		snprintf(path, sizeof(path), "%s/%s", IOREQ_BINDIR, programs[i]);
		snprintf(expect, sizeof(expect), "%s %s\n", programs[i], IOREQ_VERSION);
		assert_int_equal(harness_exec(argv, out, sizeof(out)), 0);
		assert_string_equal(out, expect);
	}
	snprintf(sock, sizeof(sock), "%s/nothing", harness_tmpdir());
	for (size_t i = 0; i < sizeof(typos) / sizeof(typos[0]); i++) {
		const char *const *a = typos[i].args;

		assert_int_equal(ctl(a[0], a[1], a[2], a[3], NULL), 2);
		if (!strstr(out, typos[i].says))
			fail_msg("ioreqctl %s %s: said \"%s\", not \"%s\"", a[0], a[1] ? a[1] : "", out, typos[i].says);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_subcommands),
		harness_test(test_command_line),
		harness_test(test_reload),
		harness_test(test_socket_activation),
	};

	return harness_run_group("integration-control", tests);
}
