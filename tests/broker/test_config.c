/* cfg_load: one valid file checked field by field, then a table of bad files,
 * each with the exact "LINE:COL: message" it must produce. Programs and
 * scripts live in a private temporary directory so that the suite depends on
 * nothing else being built. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

/* Short fixed sizes, so that -Wformat-truncation can prove the joins fit. */
static char tmp[128];	  /* realpath of the temporary directory */
static char bindir[256];  /* tmp/bin: ioreq-dev-test (0755), notexec (0644) */
static char pathdir[256]; /* tmp/path, the whole $PATH: ioreq-dev-inpath, ioreq-dev-test */
static char yaml[256];	  /* tmp/case.yaml, rewritten by every case */

static void put_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(p, mode), 0);
}

static void rm_tree(const char *dir, const char *const *names, size_t n)
{
	char p[512];

	for (size_t i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

static int setup(void **state)
{
	char t[] = "/tmp/test_config.XXXXXX";
	char p[512], *real;

	if (!mkdtemp(t) || !(real = realpath(t, NULL)))
		return -1;
	if (strlen(real) >= sizeof(tmp)) {
		free(real);
		return -1;
	}
	strcpy(tmp, real);
	free(real);
	snprintf(bindir, sizeof(bindir), "%s/bin", tmp);
	snprintf(pathdir, sizeof(pathdir), "%s/path", tmp);
	snprintf(yaml, sizeof(yaml), "%s/case.yaml", tmp);
	if (mkdir(bindir, 0755) || mkdir(pathdir, 0755))
		return -1;
	snprintf(p, sizeof(p), "%s/sub", tmp);
	if (mkdir(p, 0755))
		return -1;
	put_file(bindir, "ioreq-dev-test", "#!/bin/sh\n", 0755);
	put_file(bindir, "notexec", "#!/bin/sh\n", 0644);
	put_file(pathdir, "ioreq-dev-inpath", "#!/bin/sh\n", 0755);
	put_file(pathdir, "ioreq-dev-test", "#!/bin/sh\n", 0755);
	put_file(tmp, "a.txt", "script a\n", 0644);
	put_file(tmp, "b.txt", "script b\n", 0644);
	put_file(tmp, "img.elf", "\177ELF\n", 0644);
	/* Deterministic lookups, whatever the caller's environment. */
	return setenv("PATH", pathdir, 1);
}

static int teardown(void **state)
{
	static const char *const bin[] = { "ioreq-dev-test", "notexec" };
	static const char *const path[] = { "ioreq-dev-inpath", "ioreq-dev-test" };
	static const char *const top[] = { "a.txt", "b.txt", "img.elf", "case.yaml" };
	char p[512];

	rm_tree(bindir, bin, 2);
	rm_tree(pathdir, path, 2);
	snprintf(p, sizeof(p), "%s/sub", tmp);
	rmdir(p);
	rm_tree(tmp, top, 4);
	return 0;
}

static int load(const char *text, struct cfg **c, char *err, size_t errlen)
{
	put_file(tmp, "case.yaml", text, 0644);
	return cfg_load(yaml, bindir, c, err, errlen);
}

static struct cfg *load_ok(const char *text)
{
	struct cfg *c = NULL;
	char err[512];
	int r = load(text, &c, err, sizeof(err));

	if (r)
		fail_msg("unexpected error %d: %s\n%s", r, err, text);
	assert_non_null(c);
	return c;
}

static char *in_tmp(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmp, name);
	return buf;
}

static const char full_yaml[] = "# every key, every range form\n"
				"broker:\n"
				"  runtime_dir: /run/ioreq-test\n"
				"  deadline_ms: 0x100\n"
				"vms:\n"
				"  - name: Vm_0.a-b\n"
				"    backend: sim\n"
				"    vcpus: 3\n"
				"    scripts: [a.txt, ~, \"" /* absolute path follows */;

static void test_full(void **state)
{
	char text[4096], p[512];
	struct cfg *c;
	struct cfg_vm *vm;
	struct cfg_device *d;

	snprintf(text, sizeof(text),
		 "%s%s/b.txt\"]\n"
		 "    devices:\n"
		 "      - name: uart0\n"
		 "        program: ioreq-dev-test\n"
		 "        args: [\"--size\", 64, \"\", x y]\n"
		 "        pio: [\"0x3f8+8\", \"0x60..0x64\", {start: 0x70, size: 2}, {start: 0x80, end: 0x8f}, "
		 "\" 0x90 + 1 \"]\n"
		 "        mmio: [\"0xfe000000+0x1000\", \"0xffffffffffffff00..0xffffffffffffffff\"]\n"
		 "        pci: [\"00:01.0\", \"0000:ff:1f.7\"]\n"
		 "        irqs: [4, 0, 255]\n"
		 "        msi: true\n"
		 "        deadline_ms: 200\n"
		 "        sandbox: none\n"
		 "      - name: ram\n"
		 "        program: ./bin/ioreq-dev-test\n"
		 "        pio: [\"0x65..0x6f\"]\n"
		 "        mmio: [{start: 0xfe001000, size: 0x1000}]\n"
		 "  - name: vm1\n"
		 "    backend: acrn\n"
		 "    vcpus: 16\n"
		 "    devices: []\n",
		 full_yaml, tmp);
	c = load_ok(text);

	assert_string_equal(c->path, yaml);
	assert_string_equal(c->runtime_dir, "/run/ioreq-test");
	assert_int_equal(c->deadline_ms, 256);
	assert_int_equal(c->n_vms, 2);

	vm = &c->vms[0];
	assert_string_equal(vm->name, "Vm_0.a-b");
	assert_int_equal(vm->backend, CFG_BACKEND_SIM);
	assert_int_equal(vm->vcpus, 3);
	assert_int_equal(vm->mark.line, 6);
	assert_int_equal(vm->mark.col, 5);
	assert_non_null(vm->scripts);
	assert_string_equal(vm->scripts[0], in_tmp(p, sizeof(p), "a.txt"));
	assert_null(vm->scripts[1]);
	assert_string_equal(vm->scripts[2], in_tmp(p, sizeof(p), "b.txt"));
	assert_int_equal(vm->n_devices, 2);

	d = &vm->devices[0];
	assert_string_equal(d->name, "uart0");
	snprintf(p, sizeof(p), "%s/ioreq-dev-test", bindir); /* bindir wins over $PATH */
	assert_string_equal(d->program, p);
	assert_string_equal(d->args[0], "--size");
	assert_string_equal(d->args[1], "64");
	assert_string_equal(d->args[2], "");
	assert_string_equal(d->args[3], "x y");
	assert_null(d->args[4]);
	assert_int_equal(d->n_pio, 5);
	assert_int_equal(d->pio[0].start, 0x3f8);
	assert_int_equal(d->pio[0].end, 0x3ff);
	assert_int_equal(d->pio[1].start, 0x60);
	assert_int_equal(d->pio[1].end, 0x64);
	assert_int_equal(d->pio[2].start, 0x70);
	assert_int_equal(d->pio[2].end, 0x71);
	assert_int_equal(d->pio[3].start, 0x80);
	assert_int_equal(d->pio[3].end, 0x8f);
	assert_int_equal(d->pio[4].start, 0x90);
	assert_int_equal(d->pio[4].end, 0x90);
	assert_int_equal(d->pio[0].mark.line, 14);
	assert_int_equal(d->pio[0].mark.col, 15);
	assert_int_equal(d->n_mmio, 2);
	assert_int_equal(d->mmio[0].start, 0xfe000000);
	assert_int_equal(d->mmio[0].end, 0xfe000fff);
	assert_true(d->mmio[1].start == 0xffffffffffffff00ull);
	assert_true(d->mmio[1].end == UINT64_MAX);
	assert_int_equal(d->n_pci, 2);
	assert_int_equal(d->pci[0].start, 0x0008);
	assert_int_equal(d->pci[0].end, 0x0008);
	assert_int_equal(d->pci[1].start, 0xffff);
	assert_int_equal(d->pci[1].end, 0xffff);
	assert_int_equal(d->n_irqs, 3);
	assert_int_equal(d->irqs[0], 4);
	assert_int_equal(d->irqs[1], 0);
	assert_int_equal(d->irqs[2], 255);
	assert_true(d->msi);
	assert_int_equal(d->deadline_ms, 200);
	assert_int_equal(d->sandbox, CFG_SANDBOX_NONE);
	assert_int_equal(d->mark.line, 11);
	assert_int_equal(d->mark.col, 9);

	d = &vm->devices[1];
	assert_string_equal(d->name, "ram");
	snprintf(p, sizeof(p), "%s/ioreq-dev-test", bindir);
	assert_string_equal(d->program, p);
	assert_non_null(d->args);
	assert_null(d->args[0]);
	assert_int_equal(d->n_pio, 1);
	assert_int_equal(d->pio[0].start, 0x65);
	assert_int_equal(d->pio[0].end, 0x6f);
	assert_int_equal(d->n_mmio, 1);
	assert_int_equal(d->mmio[0].start, 0xfe001000);
	assert_int_equal(d->mmio[0].end, 0xfe001fff);
	assert_int_equal(d->n_pci, 0);
	assert_int_equal(d->n_irqs, 0);
	assert_false(d->msi);
	assert_int_equal(d->deadline_ms, 256); /* broker's */

	vm = &c->vms[1];
	assert_string_equal(vm->name, "vm1");
	assert_int_equal(vm->backend, CFG_BACKEND_ACRN);
	assert_int_equal(vm->vcpus, 16);
	assert_null(vm->scripts);
	assert_int_equal(vm->n_devices, 0);

	assert_null(cfg_free(c));
}

static void test_defaults(void **state)
{
	struct cfg *c =
	    load_ok("vms:\n"
		    "  - {name: s, backend: sim, vcpus: 2, devices: [{name: d, program: ioreq-dev-inpath}]}\n");
	struct cfg_device *d = &c->vms[0].devices[0];
	char p[512];

	assert_null(c->runtime_dir);
	assert_int_equal(c->deadline_ms, 500);
	/* sim always has one script slot per vCPU; none given: all idle */
	assert_non_null(c->vms[0].scripts);
	assert_null(c->vms[0].scripts[0]);
	assert_null(c->vms[0].scripts[1]);
	snprintf(p, sizeof(p), "%s/ioreq-dev-inpath", pathdir); /* found through $PATH */
	assert_string_equal(d->program, p);
	assert_non_null(d->args);
	assert_null(d->args[0]);
	assert_int_equal(d->n_pio + d->n_mmio + d->n_pci + d->n_irqs, 0);
	assert_false(d->msi);
	assert_int_equal(d->deadline_ms, 500);
	/* Every device is sandboxed unless its entry says otherwise. */
	assert_int_equal(d->sandbox, CFG_SANDBOX_STRICT);
	assert_int_equal(d->n_win_pio + d->n_win_mmio, 0);
	assert_false(d->output_stdout);
	assert_null(d->output_file);
	assert_false(d->input_stdin);
	assert_true(c->vms[0].autostart);
	assert_int_equal(d->on_failure, CFG_ON_FAILURE_FALLBACK);
	assert_int_equal(d->restart_limit, 5);
	assert_int_equal(d->restart_window_ms, 60000);
	assert_int_equal(d->max_inflight, 16);
	assert_int_equal(d->max_msg_rate, 10000);
	assert_int_equal(c->device_id_first, 458752);
	assert_int_equal(c->device_id_count, 65536);
	assert_null(c->cgroup);
	assert_true(d->memory_max == 256ull << 20);
	assert_int_equal(d->pids_max, 64);
	assert_int_equal(d->cpu_max, 100);
	assert_int_equal(d->max_claims, 16);
	assert_int_equal(d->max_violations, 100);
	cfg_free(c);
}

/* The data plane's keys: files as paths or mappings (relative to the file,
 * kept in order, not opened yet), memory, eventfds; none by default. */
static void test_data_plane(void **state)
{
	struct cfg *c = load_ok("vms:\n"
				"  - name: v\n"
				"    backend: acrn\n"
				"    vcpus: 1\n"
				"    devices:\n"
				"      - name: blk\n"
				"        program: ioreq-dev-test\n"
				"        memory: guest\n"
				"        files: [disk.img, {path: /dev/null, mode: rw, direct: true}, {path: sub/x, mode: ro}]\n"
				"        doorbells: 64\n"
				"        irqfds: 3\n"
				"      - name: rng\n"
				"        program: ioreq-dev-test\n"
				"        memory: read-only\n"
				"        vhost_user: rng.sock\n"
				"      - {name: plain, program: ioreq-dev-test}\n");
	const struct cfg_device *d = &c->vms[0].devices[0];
	char p[512];

	assert_int_equal(d->memory, CFG_MEMORY_GUEST);
	assert_int_equal(d->n_files, 3);
	assert_string_equal(d->files[0].path, in_tmp(p, sizeof(p), "disk.img"));
	assert_false(d->files[0].write);
	assert_false(d->files[0].direct);
	assert_int_equal(d->files[0].mark.line, 9);
	assert_int_equal(d->files[0].mark.col, 17);
	assert_string_equal(d->files[1].path, "/dev/null");
	assert_true(d->files[1].write);
	assert_true(d->files[1].direct);
	assert_int_equal(d->files[1].mark.col, 27);
	assert_string_equal(d->files[2].path, in_tmp(p, sizeof(p), "sub/x"));
	assert_false(d->files[2].write);
	assert_int_equal(d->doorbells, 64);
	assert_int_equal(d->irqfds, 3);
	/* Run-time errors about an entry name the file. */
	assert_ptr_equal(d->config_path, c->path);
	assert_int_equal(c->vms[0].devices[1].memory, CFG_MEMORY_READ_ONLY);
	assert_string_equal(c->vms[0].devices[1].vhost_user, in_tmp(p, sizeof(p), "rng.sock"));
	assert_null(d->vhost_user);
	d = &c->vms[0].devices[2];
	assert_int_equal(d->memory, CFG_MEMORY_NONE);
	assert_int_equal(d->n_files, 0);
	assert_int_equal(d->doorbells + d->irqfds, 0);
	cfg_free(c);
}

/* The keys of the device sandbox's ids and cgroup limits, at their bounds. */
/* remote: entries: files relative to the configuration, a fingerprint in
 * openssl's spelling stored as plain hex, the defaults. */
static void test_remote(void **state)
{
	struct cfg *c = load_ok("vms:\n"
				"  - name: v\n"
				"    backend: acrn\n"
				"    vcpus: 1\n"
				"    devices:\n"
				"      - name: a\n"
				"        mmio: [\"0x1000+8\"]\n"
				"        remote:\n"
				"          listen: tls+tcp://10.0.0.1:7000\n"
				"          certificate: tls/broker.pem\n"
				"          key: tls/broker.key\n"
				"          ca: tls/ca.pem\n"
				"          peer_name: a.example\n"
				"          fingerprint: \"SHA256:0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:"
				"0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9\"\n"
				"      - name: b\n"
				"        pio: [\"0x80+4\"]\n"
				"        remote: { listen: \"tcp://127.0.0.1:7001\", insecure: true, timeout_ms: 900 }\n");
	const struct cfg_device *d = &c->vms[0].devices[0];
	char p[512];

	assert_null(d->program);
	assert_string_equal(d->remote.listen, "tls+tcp://10.0.0.1:7000");
	assert_string_equal(d->remote.certificate, in_tmp(p, sizeof(p), "tls/broker.pem"));
	assert_string_equal(d->remote.key, in_tmp(p, sizeof(p), "tls/broker.key"));
	assert_string_equal(d->remote.ca, in_tmp(p, sizeof(p), "tls/ca.pem"));
	assert_string_equal(d->remote.peer_name, "a.example");
	assert_string_equal(d->remote.fingerprint, "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9");
	assert_false(d->remote.insecure);
	assert_int_equal(d->remote.timeout_ms, 3000);
	d = &c->vms[0].devices[1];
	assert_true(d->remote.insecure);
	assert_int_equal(d->remote.timeout_ms, 900);
	assert_null(d->remote.certificate);
	cfg_free(c);
}

static void test_limits(void **state)
{
	struct cfg *c = load_ok("broker:\n"
				"  device_ids: 3000000000..3000000999\n"
				"  cgroup: /sys/fs/cgroup/ioreq.slice\n"
				"vms:\n"
				"  - name: v\n"
				"    backend: acrn\n"
				"    vcpus: 1\n"
				"    devices:\n"
				"      - {name: a, program: ioreq-dev-test, memory_max: 1024G, pids_max: 4096, cpu_max: 250%,\n"
				"         max_claims: 0, max_violations: 100000}\n"
				"      - {name: b, program: ioreq-dev-test, memory_max: 4194304, pids_max: 16, cpu_max: 1,\n"
				"         max_claims: 256, max_violations: 1}\n"
				"      - {name: c, program: ioreq-dev-test, memory_max: 4096K, cpu_max: 102400%}\n");
	struct cfg_device *d = c->vms[0].devices;

	assert_true(c->device_id_first == 3000000000u);
	assert_int_equal(c->device_id_count, 1000);
	assert_string_equal(c->cgroup, "/sys/fs/cgroup/ioreq.slice");
	assert_true(d[0].memory_max == 1ull << 40);
	assert_int_equal(d[0].pids_max, 4096);
	assert_int_equal(d[0].cpu_max, 250);
	assert_int_equal(d[0].max_claims, 0);
	assert_int_equal(d[0].max_violations, 100000);
	assert_true(d[1].memory_max == 4ull << 20);
	assert_int_equal(d[1].pids_max, 16);
	assert_int_equal(d[1].cpu_max, 1);
	assert_int_equal(d[1].max_claims, 256);
	assert_int_equal(d[1].max_violations, 1);
	assert_true(d[2].memory_max == 4ull << 20);
	assert_int_equal(d[2].cpu_max, 102400);
	cfg_free(c);

	/* START+COUNT, up to the last usable id */
	c = load_ok("broker: {device_ids: 4294967195+100}\nvms: [{name: v, backend: acrn, vcpus: 1}]\n");
	assert_true(c->device_id_first == 4294967195u);
	assert_int_equal(c->device_id_count, 100);
	cfg_free(c);
}

/* A device instance must never run as somebody else: a range holding an
 * existing user's uid, or a group's gid, is refused at the value, naming it.
 * 65534 (nobody, nogroup on Debian) where it exists, else whatever is there. */
static void test_device_ids_taken(void **state)
{
	char text[256], want[512], err[512];
	struct passwd *pw = getpwuid(65534);
	struct group *gr;
	struct cfg *c;
	uid_t uid;

	if (!pw) {
		setpwent();
		while ((pw = getpwent()) && (pw->pw_uid == 0 || pw->pw_uid > 0xfffffffeu))
			;
		endpwent();
	}
	if (!pw)
		skip();
	/* the first user in passwd order with that uid is the one named */
	uid = pw->pw_uid;
	setpwent();
	while ((pw = getpwent()) && pw->pw_uid != uid)
		;
	snprintf(want, sizeof(want), "%s:2:15: 'device_ids' %u..%u contains user '%s' (uid %u)", yaml,
		 (unsigned)uid - 1, (unsigned)uid + 1, pw->pw_name, (unsigned)uid);
	endpwent();
	snprintf(text, sizeof(text), "broker:\n  device_ids: %u..%u\nvms: [{name: v, backend: acrn, vcpus: 1}]\n",
		 (unsigned)uid - 1, (unsigned)uid + 1);
	assert_int_equal(load(text, &c, err, sizeof(err)), -EINVAL);
	assert_null(c);
	assert_string_equal(err, want);

	/* a group whose gid no user has as uid */
	setgrent();
	while ((gr = getgrent()) && (gr->gr_gid == 0 || gr->gr_gid > 0xfffffffeu || getpwuid(gr->gr_gid)))
		;
	if (gr) {
		snprintf(want, sizeof(want), "%s:1:22: 'device_ids' %u..%u contains group '%s' (gid %u)", yaml,
			 (unsigned)gr->gr_gid, (unsigned)gr->gr_gid, gr->gr_name, (unsigned)gr->gr_gid);
		snprintf(text, sizeof(text), "broker: {device_ids: %u+1}\nvms: [{name: v, backend: acrn, vcpus: 1}]\n",
			 (unsigned)gr->gr_gid);
	}
	endgrent();
	if (!gr)
		return;
	assert_int_equal(load(text, &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, want);
}

/* The keys of the kvm and acrn backends, windows, and a device's streams. */
/* `memory` on every backend: a sim VM has RAM only if it says so, the
 * others 64M unless they say. */
static void test_memory_per_backend(void **state)
{
	struct cfg *c = load_ok("vms:\n"
				"  - {name: s, backend: sim, vcpus: 1}\n"
				"  - {name: m, backend: sim, vcpus: 1, memory: 2M}\n"
				"  - {name: k, backend: kvm, vcpus: 1, image: img.elf}\n"
				"  - {name: a, backend: acrn, vcpus: 1}\n");

	assert_int_equal(c->vms[0].memory, 0);
	assert_int_equal(c->vms[1].memory, 2ull << 20);
	assert_int_equal(c->vms[2].memory, 64ull << 20);
	assert_int_equal(c->vms[3].memory, 64ull << 20);
	cfg_free(c);
}

static void test_backend_keys(void **state)
{
	struct cfg *c;
	char p[512];

	c = load_ok("vms:\n"
		    "  - name: k\n"
		    "    backend: kvm\n"
		    "    vcpus: 2\n"
		    "    memory: 128M\n"
		    "    image: img.elf\n"
		    "    exit_port: 0x501\n"
		    "    autostart: false\n"
		    "    devices:\n"
		    "      - name: d\n"
		    "        program: ioreq-dev-test\n"
		    "        windows: {mmio: [\"0xc0000000+0x100000\"], pio: [\"0xc000..0xcfff\"]}\n"
		    "        output: uart.log\n"
		    "        input: stdin\n"
		    "  - {name: a, backend: acrn, vcpus: 1, memory: 1G, completion_polling: true}\n");
	assert_int_equal(c->vms[0].memory, 128ull << 20);
	snprintf(p, sizeof(p), "%s/img.elf", tmp);
	assert_string_equal(c->vms[0].image, p);
	assert_int_equal(c->vms[0].exit_port, 0x501);
	assert_false(c->vms[0].autostart);
	assert_int_equal(c->vms[0].devices[0].n_win_mmio, 1);
	assert_int_equal(c->vms[0].devices[0].win_mmio[0].end, 0xc00fffff);
	assert_int_equal(c->vms[0].devices[0].win_pio[0].start, 0xc000);
	snprintf(p, sizeof(p), "%s/uart.log", tmp);
	assert_string_equal(c->vms[0].devices[0].output_file, p);
	assert_true(c->vms[0].devices[0].input_stdin);
	assert_int_equal(c->vms[1].memory, 1ull << 30);
	assert_true(c->vms[1].completion_polling);
	assert_int_equal(c->vms[1].exit_port, 0xf4);
	cfg_free(c);
}

/* broker: may come after the VMs and still sets the devices' default. */
static void test_deadline_order(void **state)
{
	struct cfg *c = load_ok("vms:\n"
				"  - {name: k, backend: acrn, vcpus: 1, devices: [{name: d, program: ioreq-dev-test}]}\n"
				"broker: {deadline_ms: 42}\n");

	assert_int_equal(c->deadline_ms, 42);
	assert_int_equal(c->vms[0].devices[0].deadline_ms, 42);
	cfg_free(c);
}

/* Every VM has its own guest address spaces: identical ranges are fine. */
static void test_same_ranges_two_vms(void **state)
{
	static const char text[] = "vms:\n"
				   "  - name: a\n"
				   "    backend: acrn\n"
				   "    vcpus: 1\n"
				   "    devices: &devs\n"
				   "      - name: uart\n"
				   "        program: ioreq-dev-test\n"
				   "        pio: [\"0x3f8+8\"]\n"
				   "        mmio: [\"0xfe000000+0x1000\"]\n"
				   "        pci: [\"00:01.0\"]\n"
				   "        irqs: [4]\n"
				   "  - name: b\n"
				   "    backend: acrn\n"
				   "    vcpus: 1\n"
				   "    devices: *devs\n";
	struct cfg *c = load_ok(text);

	assert_int_equal(c->n_vms, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(c->vms[i].devices[0].pio[0].start, 0x3f8);
		assert_int_equal(c->vms[i].devices[0].mmio[0].start, 0xfe000000);
		assert_int_equal(c->vms[i].devices[0].pci[0].start, 8);
	}
	cfg_free(c);
}

struct bad {
	const char *yaml;
	const char *err; /* after "FILE:" */
};

#define VM "vms:\n  - name: vm0\n    backend: acrn\n    vcpus: 1\n"		  /* lines 1-4 */
#define DEV VM "    devices:\n      - name: a\n        program: ioreq-dev-test\n" /* lines 5-7 */
#define DEV_B "      - name: b\n        program: ioreq-dev-test\n"
#define REMOTE VM "    devices:\n      - name: a\n        mmio: [\"0x1000+8\"]\n        remote: { listen: " /* 5-8 */

static const struct bad bad[] = {
	/* YAML itself */
	{ "vms: [a, b\n", "2:1: did not find expected ',' or ']' (while parsing a flow sequence at 1:6)" },
	{ "vms:\n  - name: a\n   x\n",
	  "3:4: did not find expected '-' indicator (while parsing a block collection at 2:3)" },
	{ "vms: *nope\n", "1:6: found undefined alias" },
	{ VM "---\nvms: []\n", "6:1: only one YAML document is allowed" },
	/* node types */
	{ "- vms\n", "1:1: expected a mapping for top level" },
	{ "vms: {a: 1}\n", "1:6: expected a sequence for 'vms'" },
	{ "vms: []\n", "1:6: 'vms' must not be empty" },
	{ "broker: [1]\n" VM, "1:9: expected a mapping for broker" },
	{ "vms: [vm0]\n", "1:7: expected a mapping for vm" },
	{ VM "    devices: a\n", "5:14: expected a sequence for 'devices'" },
	{ VM "    devices: [a]\n", "5:15: expected a mapping for device" },
	{ "vms:\n  - name: [vm0]\n", "2:11: expected a string for 'name'" },
	{ "vms:\n  - name: ~\n", "2:11: expected a string for 'name'" },
	{ "vms:\n  - ? [a]\n    : 1\n", "2:7: expected a string key in vm" },
	{ DEV "        args: [[a]]\n", "8:16: expected a string for 'args'" },
	{ DEV "        pio: \"0x60+1\"\n", "8:14: expected a sequence for 'pio'" },
	{ DEV "        pio: [[1]]\n", "8:15: expected a pio range (START+SIZE, START..END or {start, size|end})" },
	{ DEV "        pci: [{}]\n", "8:15: expected a PCI address (BB:DD.F)" },
	{ "broker: {runtime_dir: run}\n" VM, "1:23: 'runtime_dir' must be an absolute path" },
	/* unknown keys, at every level */
	{ VM "colour: blue\n", "5:1: unknown key 'colour' in top level" },
	{ "broker: {deadline: 5}\n" VM, "1:10: unknown key 'deadline' in broker (did you mean 'deadline_ms'?)" },
	{ "broker: {deadine_ms: 5}\n" VM, "1:10: unknown key 'deadine_ms' in broker (did you mean 'deadline_ms'?)" },
	{ DEV "        on_falure: hold\n", "8:9: unknown key 'on_falure' in device (did you mean 'on_failure'?)" },
	{ VM "    colour: blue\n", "5:5: unknown key 'colour' in vm" },
	{ DEV "        policy: hold\n", "8:9: unknown key 'policy' in device" },
	{ DEV "        pio: [{start: 1, len: 2}]\n", "8:26: unknown key 'len' in range" },
	/* duplicate keys */
	{ "broker: {}\nbroker: {}\n" VM, "2:1: duplicate key 'broker'" },
	{ VM "    vcpus: 2\n", "5:5: duplicate key 'vcpus'" },
	{ DEV "        program: ioreq-dev-test\n", "8:9: duplicate key 'program'" },
	/* missing keys: at the mapping that lacks them */
	{ "broker: {}\n", "1:1: missing required key 'vms' in top level" },
	{ "vms:\n  - backend: kvm\n    vcpus: 1\n", "2:5: missing required key 'name' in vm" },
	{ "vms:\n  - name: a\n    vcpus: 1\n", "2:5: missing required key 'backend' in vm" },
	{ "vms:\n  - name: a\n    backend: kvm\n", "2:5: missing required key 'vcpus' in vm" },
	{ VM "    devices:\n      - program: ioreq-dev-test\n", "6:9: missing required key 'name' in device" },
	{ VM "    devices:\n      - name: a\n", "6:9: device 'a' needs either program or remote" },
	{ DEV "        pio: [{size: 2}]\n", "8:15: missing required key 'start' in range" },
	/* VMs */
	{ "vms:\n  - name: a\n    backend: xen\n    vcpus: 1\n",
	  "3:14: unknown backend 'xen' (expected sim, kvm or acrn)" },
	{ "vms:\n  - name: a\n    backend: kvm\n    vcpus: 0\n", "4:12: 'vcpus' must be between 1 and 16" },
	{ "vms:\n  - name: a\n    backend: kvm\n    vcpus: 17\n", "4:12: 'vcpus' must be between 1 and 16" },
	{ "vms:\n  - name: a\n    backend: kvm\n    vcpus: -1\n", "4:12: expected an unsigned integer for 'vcpus'" },
	{ "vms:\n  - name: a\n    backend: kvm\n    vcpus: 2x\n", "4:12: expected an unsigned integer for 'vcpus'" },
	{ "vms:\n  - name: a\n    backend: kvm\n    vcpus: 0x\n", "4:12: expected an unsigned integer for 'vcpus'" },
	{ "vms:\n  - name: a\n    backend: kvm\n    vcpus: 18446744073709551616\n",
	  "4:12: expected an unsigned integer for 'vcpus'" },
	{ "vms:\n  - name: a\n    backend: sim\n    vcpus: 2\n    scripts: [a.txt]\n",
	  "5:14: expected 2 scripts (one per vCPU), got 1" },
	{ "vms:\n  - name: a\n    scripts: [a.txt]\n    backend: acrn\n    vcpus: 1\n",
	  "3:14: 'scripts' is not valid with backend acrn" },
	{ "vms:\n  - name: a\n    backend: sim\n    vcpus: 2\n    scripts: [~, missing.txt]\n",
	  "5:18: cannot read script 'missing.txt': No such file or directory" },
	{ "vms:\n  - name: a\n    backend: sim\n    vcpus: 1\n    scripts: [sub]\n",
	  "5:15: script 'sub' is not a regular file" },
	{ "vms:\n  - name: a\n    backend: sim\n    vcpus: 1\n    scripts: [{a: 1}]\n",
	  "5:15: expected a script path or null" },
	{ VM "  - name: vm0\n    backend: sim\n    vcpus: 1\n", "5:11: duplicate VM name 'vm0' (first at 2:5)" },
	{ "vms:\n  - name: vm 0\n", "2:11: invalid name 'vm 0' (1 to 31 characters from A-Z a-z 0-9 _ . -)" },
	{ "vms:\n  - name: abcdefghijklmnopqrstuvwxyz012345\n",
	  "2:11: invalid name 'abcdefghijklmnopqrstuvwxyz012345' (1 to 31 characters from A-Z a-z 0-9 _ . -)" },
	{ "vms:\n  - name: \"\"\n", "2:11: invalid name '' (1 to 31 characters from A-Z a-z 0-9 _ . -)" },
	/* devices */
	{ DEV DEV_B "      - name: a\n        program: ioreq-dev-test\n",
	  "10:15: duplicate device name 'a' (first at 6:9)" },
	{ VM "    devices:\n      - name: a\n        program: ioreq-dev-nope\n",
	  "7:18: program 'ioreq-dev-nope' not found" },
	{ VM "    devices:\n      - name: a\n        program: notexec\n", "7:18: program 'notexec' not found" },
	{ VM "    devices:\n      - name: a\n        program: bin/notexec\n",
	  "7:18: program 'bin/notexec' is not an executable file" },
	{ VM "    devices:\n      - name: a\n        program: ./bin\n",
	  "7:18: program './bin' is not an executable file" },
	{ VM "    devices:\n      - name: a\n        program: /nonexistent/x\n",
	  "7:18: program '/nonexistent/x' not found" },
	{ DEV "        msi: yes\n", "8:14: expected a boolean (true or false) for 'msi'" },
	{ DEV "        deadline_ms: 600001\n", "8:22: 'deadline_ms' must be between 1 and 600000" },
	{ "broker:\n  deadline_ms: 0\n" VM, "2:16: 'deadline_ms' must be between 1 and 600000" },
	{ DEV "        irqs: [4, 256]\n", "8:19: 'irqs' must be between 0 and 255" },
	{ DEV "        irqs: [4, 5, 4]\n", "8:22: duplicate irq 4" },
	{ DEV "        irqs: [x]\n", "8:16: expected an unsigned integer for 'irqs'" },
	/* ranges */
	{ DEV "        pio: [\"0x60-0x64\"]\n",
	  "8:15: invalid pio range '0x60-0x64' (expected START+SIZE, START..END or {start, size|end})" },
	{ DEV "        pio: [\"0x60+\"]\n",
	  "8:15: invalid pio range '0x60+' (expected START+SIZE, START..END or {start, size|end})" },
	{ DEV "        mmio: [0x1000]\n",
	  "8:16: invalid mmio range '0x1000' (expected START+SIZE, START..END or {start, size|end})" },
	{ DEV "        pio: [\"0x60+0\"]\n", "8:15: empty pio range (size 0)" },
	{ DEV "        pio: [{start: 0x60, size: 0}]\n", "8:15: empty pio range (size 0)" },
	{ DEV "        pio: [\"0x64..0x60\"]\n", "8:15: pio range end 0x60 is below its start 0x64" },
	{ DEV "        mmio: [\"0xffffffffffffffff+2\"]\n", "8:16: mmio range 0xffffffffffffffff+0x2 wraps around" },
	{ DEV "        mmio: [{start: 0xfffffffffffff000, size: 0x2000}]\n",
	  "8:16: mmio range 0xfffffffffffff000+0x2000 wraps around" },
	{ DEV "        pio: [\"0xfff0+0x20\"]\n", "8:15: pio range 0xfff0..0x1000f goes beyond 0xffff" },
	{ DEV "        pio: [{start: 0x10000, end: 0x10000}]\n",
	  "8:15: pio range 0x10000..0x10000 goes beyond 0xffff" },
	{ DEV "        pio: [{start: 1, size: 1, end: 1}]\n", "8:15: a range needs exactly one of 'size' and 'end'" },
	{ DEV "        pio: [{start: 1}]\n", "8:15: a range needs exactly one of 'size' and 'end'" },
	{ DEV "        pio: [{start: -1, size: 1}]\n", "8:23: expected an unsigned integer for 'start'" },
	{ DEV "        pio: [\"0x60..0x6f\"]\n" DEV_B "        pio: [\"0x3f8+8\", \"0x60..0x64\"]\n",
	  "11:26: pio range 0x60..0x64 of device 'b' overlaps 0x60..0x6f of device 'a'" },
	{ DEV "        mmio: [\"0xfe000000+0x1000\", \"0xfe000fff+1\"]\n",
	  "8:37: mmio range 0xfe000fff..0xfe000fff of device 'a' overlaps 0xfe000000..0xfe000fff of device 'a'" },
	/* PCI */
	{ DEV "        pci: [\"00:20.0\"]\n", "8:15: PCI device number 0x20 out of range (max 0x1f)" },
	{ DEV "        pci: [\"00:01.8\"]\n", "8:15: PCI function 8 out of range (max 7)" },
	{ DEV "        pci: [\"0001:00:01.0\"]\n", "8:15: PCI segment 0001 is not supported (only 0000)" },
	{ DEV "        pci: [\"0:1.0\"]\n",
	  "8:15: invalid PCI address '0:1.0' (expected BB:DD.F or 0000:BB:DD.F, hex)" },
	{ DEV "        pci: [\"00:01.0 \"]\n",
	  "8:15: invalid PCI address '00:01.0 ' (expected BB:DD.F or 0000:BB:DD.F, hex)" },
	{ DEV "        pci: [\"00:01.0\"]\n" DEV_B "        pci: [\"0000:00:01.0\"]\n",
	  "11:15: duplicate PCI address 00:01.0 of device 'b' (already claimed by device 'a')" },
	/* windows, output, input */
	{ DEV "        windows: {pio: [\"0xc000+0x100\"], dma: []}\n", "8:42: unknown key 'dma' in windows" },
	{ DEV "        windows: {mmio: [\"0x10..0x1\"]}\n",
	  "8:26: mmio window range end 0x1 is below its start 0x10" },
	{ DEV "        windows: {pio: [\"0xff00+0x200\"]}\n",
	  "8:25: pio window range 0xff00..0x100ff goes beyond 0xffff" },
	{ DEV "        output: \"\"\n", "8:17: 'output' must be stdout or a file name" },
	{ DEV "        input: /dev/tty\n", "8:16: unknown input '/dev/tty' (expected stdin)" },
	{ DEV "        sandbox: loose\n", "8:18: unknown sandbox 'loose' (expected none or strict)" },
	{ DEV "        on_failure: retry\n", "8:21: unknown on_failure 'retry' (expected fallback, hold or stop-vm)" },
	{ DEV "        max_inflight: 17\n", "8:23: 'max_inflight' must be between 1 and 16" },
	{ DEV "        restart_window_ms: 0\n", "8:28: 'restart_window_ms' must be between 1 and 86400000" },
	/* backend-specific VM keys */
	{ "vms:\n  - name: a\n    backend: sim\n    vcpus: 1\n    image: a.txt\n",
	  "2:5: 'image' is not valid with backend sim" },
	{ "vms:\n  - name: a\n    backend: sim\n    vcpus: 1\n    exit_port: 0xf4\n",
	  "2:5: 'exit_port' is not valid with backend sim" },
	{ "vms:\n  - name: a\n    backend: sim\n    vcpus: 1\n    completion_polling: true\n",
	  "2:5: 'completion_polling' is not valid with backend sim" },
	{ "vms:\n  - name: a\n    backend: kvm\n    vcpus: 1\n", "2:5: missing required key 'image' in vm (backend kvm)" },
	{ "vms:\n  - name: a\n    backend: kvm\n    vcpus: 1\n    image: nope.elf\n",
	  "5:12: cannot read image 'nope.elf': No such file or directory" },
	{ VM "    memory: 12X\n", "5:13: expected a size (bytes, or with K, M or G) for 'memory'" },
	{ VM "    memory: 4K\n", "5:13: 'memory' must be a multiple of 4K between 1M and 64G" },
	{ VM "    memory: 1048577\n", "5:13: 'memory' must be a multiple of 4K between 1M and 64G" },
	{ VM "    autostart: maybe\n", "5:16: expected a boolean (true or false) for 'autostart'" },
	/* the device sandbox: its ids and cgroup */
	{ "broker:\n  device_ids: 0+10\n" VM, "2:15: 'device_ids' must not contain 0 (root)" },
	{ "broker:\n  device_ids: 0..9\n" VM, "2:15: 'device_ids' must not contain 0 (root)" },
	{ "broker:\n  device_ids: 4294967290+10\n" VM, "2:15: 'device_ids' must end at or below 4294967294" },
	{ "broker:\n  device_ids: 4294967200..4294967295\n" VM, "2:15: 'device_ids' must end at or below 4294967294" },
	{ "broker:\n  device_ids: 0xffffffffffffffff+2\n" VM, "2:15: 'device_ids' must end at or below 4294967294" },
	{ "broker:\n  device_ids: 70000+0\n" VM, "2:15: empty 'device_ids' range (count 0)" },
	{ "broker:\n  device_ids: 70000..60000\n" VM, "2:15: 'device_ids' range end 60000 is below its start 70000" },
	{ "broker:\n  device_ids: 70000\n" VM,
	  "2:15: invalid 'device_ids' range (expected START+COUNT or START..END)" },
	{ "broker:\n  device_ids: [1]\n" VM, "2:15: invalid 'device_ids' range (expected START+COUNT or START..END)" },
	{ "broker:\n  cgroup: ioreq\n" VM, "2:11: 'cgroup' must be an absolute path" },
	{ DEV "        memory_max: 3M\n", "8:21: 'memory_max' must be between 4M and 1024G" },
	{ DEV "        memory_max: 1025G\n", "8:21: 'memory_max' must be between 4M and 1024G" },
	{ DEV "        memory_max: 1T\n", "8:21: expected a size (bytes, or with K, M or G) for 'memory_max'" },
	{ DEV "        pids_max: 15\n", "8:19: 'pids_max' must be between 16 and 4096" },
	{ DEV "        pids_max: 4097\n", "8:19: 'pids_max' must be between 16 and 4096" },
	{ DEV "        cpu_max: 0%\n", "8:18: 'cpu_max' must be between 1% and 102400%" },
	{ DEV "        cpu_max: 102401\n", "8:18: 'cpu_max' must be between 1% and 102400%" },
	{ DEV "        cpu_max: 50 %\n", "8:18: expected a percentage (N% or N) for 'cpu_max'" },
	{ DEV "        cpu_max: 1.5\n", "8:18: expected a percentage (N% or N) for 'cpu_max'" },
	{ DEV "        max_claims: 257\n", "8:21: 'max_claims' must be between 0 and 256" },
	{ DEV "        max_claims: 16M\n", "8:21: expected an unsigned integer for 'max_claims'" },
	{ DEV "        max_violations: 0\n", "8:25: 'max_violations' must be between 1 and 100000" },
	{ DEV "        max_violations: 100001\n", "8:25: 'max_violations' must be between 1 and 100000" },
	/* the data plane */
	{ DEV "        memory: rw\n", "8:17: unknown memory 'rw' (expected guest or read-only)" },
	{ DEV "        memory: [guest]\n", "8:17: expected a string for 'memory'" },
	{ DEV "        files: disk.img\n", "8:16: expected a sequence for 'files'" },
	{ DEV "        files: [[disk.img]]\n", "8:17: expected a mapping for file" },
	{ DEV "        files: [\"\"]\n", "8:17: 'path' must not be empty" },
	{ DEV "        files: [~]\n", "8:17: expected a string for 'path'" },
	{ DEV "        files: [{mode: rw}]\n", "8:17: missing required key 'path' in file" },
	{ DEV "        files: [{path: a, mode: wo}]\n", "8:33: unknown mode 'wo' (expected ro or rw)" },
	{ DEV "        files: [{path: a, direct: yes}]\n", "8:35: expected a boolean (true or false) for 'direct'" },
	{ DEV "        files: [{path: a, owner: me}]\n", "8:27: unknown key 'owner' in file" },
	{ DEV "        files: [{path: a, path: b}]\n", "8:27: duplicate key 'path'" },
	{ DEV "        files: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q]\n",
	  "8:16: 'files' has 17 entries, more than 16" },
	{ DEV "        vhost_user: \"\"\n", "8:21: 'vhost_user' must not be empty" },
	{ DEV "        vhost_user: [a.sock]\n", "8:21: expected a string for 'vhost_user'" },
	{ DEV "        vhost_user: /" "0123456789012345678901234567890123456789012345678901234567890123456789"
	      "0123456789012345678901234567890123456789\n",
	  "8:21: 'vhost_user': /0123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789 is longer than a socket path may be (107 bytes)" },
	{ DEV "        vhost_user: a.sock\n" DEV_B "        vhost_user: a.sock\n",
	  "11:21: 'vhost_user': another device's socket already (at 8:21)" },
	{ DEV "        doorbells: 65\n", "8:20: 'doorbells' must be between 0 and 64" },
	{ DEV "        doorbells: -1\n", "8:20: expected an unsigned integer for 'doorbells'" },
	{ DEV "        irqfds: 65\n", "8:17: 'irqfds' must be between 0 and 64" },
	{ DEV "        irqfds: 2K\n", "8:17: expected an unsigned integer for 'irqfds'" },
	/* remote devices (issue 18) */
	{ DEV "        remote: { listen: \"tcp://10.0.0.1:7000\", insecure: true }\n",
	  "6:9: device 'a' needs either program or remote" },
	{ REMOTE "tcp://10.0.0.1:7000 }\n", "8:17: remote: plain tcp:// is refused unless insecure: true (it has no identity)" },
	{ REMOTE "tls+tcp://10.0.0.1:7000, insecure: true }\n",
	  "8:17: remote: insecure: true is for tcp:// addresses only" },
	{ REMOTE "tls+tcp://10.0.0.1:7000, ca: ca.pem, peer_name: d }\n",
	  "8:17: remote: tls+tcp:// needs the broker's certificate and key" },
	{ REMOTE "tls+tcp://10.0.0.1:7000, certificate: b.pem, key: b.key, ca: ca.pem }\n",
	  "8:17: remote: ca and peer_name go together (which CA, and which name it vouches for)" },
	{ REMOTE "tls+tcp://10.0.0.1:7000, certificate: b.pem, key: b.key }\n",
	  "8:17: remote: the device needs an identity: ca and peer_name, or fingerprint" },
	{ REMOTE "tcp://10.0.0.1:7000, insecure: true, ca: ca.pem }\n",
	  "8:17: remote: certificates need a tls+tcp:// address" },
	{ REMOTE "tls+tcp://10.0.0.1, certificate: b.pem, key: b.key, fingerprint: \"sha256:00\" }\n",
	  "8:27: 'listen' needs a port from 1 to 65535" },
	{ REMOTE "http://10.0.0.1:80 }\n", "8:27: 'listen' must be tls+tcp://ADDRESS:PORT (or tcp:// with insecure: true)" },
	{ REMOTE "tls+tcp://10.0.0.1:7000, certificate: b.pem, key: b.key, fingerprint: \"sha256:00\" }\n",
	  "8:97: 'fingerprint' must be sha256: and the certificate's 32-byte SHA-256 in hex" },
	{ REMOTE "tcp://10.0.0.1:7000, insecure: true }\n        files: [ disk.img ]\n",
	  "6:9: device 'a': files and vhost_user are not available to a remote device (its runner gives it files of "
	  "its own host: ioreq-remote --file)" },
};

static void test_bad(void **state)
{
	static struct cfg sentinel;
	char err[512], want[1024];
	unsigned failed = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cfg *c = &sentinel; /* must be reset to NULL */
		int r = load(bad[i].yaml, &c, err, sizeof(err));

		snprintf(want, sizeof(want), "%s:%s", yaml, bad[i].err);
		if (r >= 0 || c || strcmp(err, want)) {
			print_error("row %zu: r=%d\n--- yaml\n%s--- want\n%s\n--- got\n%s\n", i, r, bad[i].yaml, want,
				    err);
			failed++;
		}
		if (c != &sentinel)
			cfg_free(c);
	}
	assert_int_equal(failed, 0);
}

/* cfg_check: every error of a file, in document order; cfg_load the first. */
static char reports[8][512];
static size_t n_reports;

static void collect(void *opaque, const char *msg)
{
	assert_true(n_reports < 8);
	snprintf(reports[n_reports++], sizeof(reports[0]), "%s", msg + strlen(yaml) + 1);
}

static void test_check_every_error(void **state)
{
	static const char text[] = "broker:\n"
				   "  deadine_ms: 5\n"           /* 2: a typo */
				   "  cgroup: relative\n"         /* 3: a bad value beside it */
				   "vms:\n"
				   "  - name: a\n"
				   "    backend: sim\n"
				   "    vcpus: 99\n"              /* 7 */
				   "    devices:\n"
				   "      - name: d\n"
				   "        program: ioreq-dev-test\n"
				   "        pio: [\"0x10+0\"]\n"    /* 11 */
				   "        on_falure: hold\n"    /* 12 */
				   "      - name: d\n"            /* 13: a duplicate, after a bad sibling */
				   "        program: ioreq-dev-test\n"
				   "  - name: \"bad name!\"\n"  /* 15 */
				   "    backend: sim\n"
				   "    vcpus: 1\n";
	static const char *const want[] = {
		"2:3: unknown key 'deadine_ms' in broker (did you mean 'deadline_ms'?)",
		"3:11: 'cgroup' must be an absolute path",
		"7:12: 'vcpus' must be between 1 and 16",
		"11:15: empty pio range (size 0)",
		"12:9: unknown key 'on_falure' in device (did you mean 'on_failure'?)",
		"13:15: duplicate device name 'd' (first at 9:9)",
		"15:11: invalid name 'bad name!' (1 to 31 characters from A-Z a-z 0-9 _ . -)",
	};
	struct cfg *c = NULL;
	size_t errors;
	char err[512];

	put_file(tmp, "case.yaml", text, 0644);
	n_reports = 0;
	assert_int_equal(cfg_check(yaml, bindir, 20, collect, NULL, &c, &errors), -EINVAL);
	assert_null(c);
	assert_int_equal(errors, sizeof(want) / sizeof(want[0]));
	assert_int_equal(n_reports, errors);
	for (size_t i = 0; i < n_reports; i++)
		assert_string_equal(reports[i], want[i]);
	/* the first few only, but all of them counted */
	n_reports = 0;
	assert_int_equal(cfg_check(yaml, bindir, 2, collect, NULL, &c, &errors), -EINVAL);
	assert_int_equal(n_reports, 2);
	assert_int_equal(errors, sizeof(want) / sizeof(want[0]));
	/* a normal load stops at the first */
	assert_int_equal(load(text, &c, err, sizeof(err)), -EINVAL);
	assert_null(c);
	assert_string_equal(err + strlen(yaml) + 1, want[0]);
	/* a good file: no error, and the configuration */
	n_reports = 0;
	put_file(tmp, "case.yaml", "vms:\n  - {name: a, backend: sim, vcpus: 1}\n", 0644);
	assert_int_equal(cfg_check(yaml, bindir, 20, collect, NULL, &c, &errors), 0);
	assert_int_equal(errors, 0);
	assert_non_null(c);
	c = cfg_free(c);
}

/* Errors without a position in the file: "FILE: message". */
static void test_file_errors(void **state)
{
	struct cfg *c;
	char err[512], want[512];

	assert_int_equal(cfg_load("/nonexistent/x.yaml", bindir, &c, err, sizeof(err)), -ENOENT);
	assert_null(c);
	assert_string_equal(err, "/nonexistent/x.yaml: No such file or directory");

	assert_int_equal(load("# nothing\n", &c, err, sizeof(err)), -EINVAL);
	assert_null(c);
	snprintf(want, sizeof(want), "%s: empty configuration", yaml);
	assert_string_equal(err, want);

	/* invalid UTF-8: the reader knows an offset only */
	assert_int_equal(load("vms: \xff\n", &c, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: invalid leading UTF-8 octet at byte 5", yaml);
	assert_string_equal(err, want);
}

/* A short or absent buffer is never overrun. */
static void test_err_buffer(void **state)
{
	struct cfg *c;
	char err[8];

	memset(err, 'x', sizeof(err));
	assert_int_equal(load("vms: []\n", &c, err, 4), -EINVAL);
	assert_int_equal(strlen(err), 3);
	assert_int_equal(err[4], 'x');
	assert_int_equal(load("vms: []\n", &c, NULL, 0), -EINVAL);
	assert_null(c);
}

/* Reload keeps a running VM only if cfg_vm_equal finds nothing changed: every
 * key counts, a key set to its default does not, nor does where things sit in the file. */
static void test_vm_equal(void **state)
{
	static const char base[] = "vms:\n"
				   "  - name: v\n"
				   "    backend: kvm\n"
				   "    vcpus: 1\n"
				   "    image: img.elf\n"
				   "%s"
				   "    devices:\n"
				   "      - name: d\n"
				   "        program: ioreq-dev-test\n"
				   "        pio: [\"0x60+4\"]\n"
				   "        windows: {mmio: [\"0xc0000000+0x1000\"]}\n"
				   "%s";
	static const struct {
		const char *vm, *dev, *what; /* what: NULL if equal */
	} cases[] = {
		{ "", "", NULL },
		{ "# a comment moves every mark\n", "", NULL },
		{ "", "        restart_limit: 5\n        max_inflight: 16\n        sandbox: strict\n", NULL },
		{ "", "        max_msg_rate: 9999\n", "device 'd' changed" },
		{ "", "        on_failure: hold\n", "device 'd' changed" },
		{ "", "        memory_max: 256M\n        pids_max: 64\n        cpu_max: 100%\n", NULL },
		{ "", "        max_claims: 16\n        max_violations: 100\n", NULL },
		{ "", "        memory_max: 128M\n", "device 'd' changed" },
		{ "", "        pids_max: 65\n", "device 'd' changed" },
		{ "", "        cpu_max: 50%\n", "device 'd' changed" },
		{ "", "        max_claims: 0\n", "device 'd' changed" },
		{ "", "        max_violations: 99\n", "device 'd' changed" },
		{ "", "        args: [x]\n", "device 'd' changed" },
		{ "", "        deadline_ms: 499\n", "device 'd' changed" },
		{ "", "        output: stdout\n", "device 'd' changed" },
		{ "", "        input: stdin\n", "device 'd' changed" },
		{ "", "        memory: guest\n", "device 'd' changed" },
		{ "", "        files: []\n        doorbells: 0\n        irqfds: 0\n", NULL },
		{ "", "        files: [a]\n", "device 'd' changed" },
		{ "", "        doorbells: 1\n", "device 'd' changed" },
		{ "", "        irqfds: 1\n", "device 'd' changed" },
		{ "", "      - {name: e, program: ioreq-dev-test}\n", "devices added" },
		{ "    memory: 128M\n", "", "memory" },
		{ "    exit_port: 0x501\n", "", "exit_port" },
		{ "    autostart: false\n", "", "autostart" },
	};
	struct cfg *a, *b;
	char text[1024], what[64];

	snprintf(text, sizeof(text), base, "", "");
	a = load_ok(text);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), base, cases[i].vm, cases[i].dev);
		b = load_ok(text);
		strcpy(what, "-");
		if (cfg_vm_equal(&a->vms[0], &b->vms[0], what, sizeof(what)) != !cases[i].what ||
		    (cases[i].what && strcmp(what, cases[i].what)))
			fail_msg("case %zu: want %s, got %s\n%s", i, cases[i].what ? cases[i].what : "equal", what, text);
		/* and the other way round */
		if (cfg_vm_equal(&b->vms[0], &a->vms[0], NULL, 0) != !cases[i].what)
			fail_msg("case %zu reversed\n%s", i, text);
		cfg_free(b);
	}
	/* Files compare entry by entry, in order. */
	{
		static const char *const files[][2] = {
			{ "[a, {path: b, mode: rw}]", NULL },
			{ "[a, {path: b, mode: ro}]", "device 'd' changed" },
			{ "[a, {path: b, mode: rw, direct: true}]", "device 'd' changed" },
			{ "[{path: b, mode: rw}, a]", "device 'd' changed" },
			{ "[a, {path: c, mode: rw}]", "device 'd' changed" },
		};
		struct cfg *f0;

		snprintf(what, sizeof(what), "        files: %s\n", files[0][0]);
		snprintf(text, sizeof(text), base, "", what);
		f0 = load_ok(text);
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			snprintf(what, sizeof(what), "        files: %s\n", files[i][0]);
			snprintf(text, sizeof(text), base, "", what);
			b = load_ok(text);
			strcpy(what, "-");
			if (cfg_vm_equal(&f0->vms[0], &b->vms[0], what, sizeof(what)) != !files[i][1] ||
			    (files[i][1] && strcmp(what, files[i][1])))
				fail_msg("files case %zu: want %s, got %s", i, files[i][1] ? files[i][1] : "equal", what);
			cfg_free(b);
		}
		cfg_free(f0);
	}
	snprintf(text, sizeof(text), base, "", "");
	b = load_ok(text);
	b->vms[0].devices[0].win_mmio[0].end++;
	assert_false(cfg_vm_equal(&a->vms[0], &b->vms[0], what, sizeof(what)));
	assert_string_equal(what, "device 'd' changed");
	cfg_free(b);
	cfg_free(a);
}

static char *read_file(const char *path)
{
	char *text = NULL, buf[4096];
	size_t len, n;
	FILE *in = fopen(path, "re"), *out = open_memstream(&text, &len);

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
	return text;
}

/* README.md's reference is what the loader's tables print, so it cannot
 * drift from the code: edit the tables in config.c, then paste the output of
 * `ioreq-brokerd --print-config-reference` between the markers. */
static void test_reference_in_readme(void **state)
{
	static const char begin[] = "<!-- BEGIN config-reference", end[] = "<!-- END config-reference -->";
	char *readme = read_file(IOREQ_SRCDIR "/README.md"), *ref = NULL, *a, *b;
	size_t len, line = 1;
	FILE *f = open_memstream(&ref, &len);

	assert_non_null(f);
	assert_int_equal(cfg_print_reference(f, CFG_REF_MARKDOWN), 0);
	assert_int_equal(fclose(f), 0);
	a = strstr(readme, begin);
	assert_non_null(a);
	a = strchr(a, '\n');
	assert_non_null(a);
	b = strstr(++a, end);
	assert_non_null(b);
	for (size_t i = 0; i < len && a + i < b; i++) {
		if (a[i] != ref[i])
			fail_msg("README.md's configuration reference differs from the loader's at its line %zu: "
				 "paste the output of `ioreq-brokerd --print-config-reference` between the markers",
				 line);
		line += ref[i] == '\n';
	}
	if ((size_t)(b - a) != len)
		fail_msg("README.md's configuration reference differs from the loader's in length (%zu, want %zu): "
			 "paste the output of `ioreq-brokerd --print-config-reference` between the markers",
			 (size_t)(b - a), len);
	/* every row documents its key */
	assert_null(strstr(ref, "|  |"));
	free(ref);
	free(readme);
}

static void test_free_and_names(void **state)
{
	assert_null(cfg_free(NULL));
	assert_string_equal(cfg_backend_name(CFG_BACKEND_SIM), "sim");
	assert_string_equal(cfg_backend_name(CFG_BACKEND_KVM), "kvm");
	assert_string_equal(cfg_backend_name(CFG_BACKEND_ACRN), "acrn");
	assert_string_equal(cfg_backend_name((enum cfg_backend)42), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_remote),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_data_plane),
		cmocka_unit_test(test_device_ids_taken),
		cmocka_unit_test(test_vm_equal),
		cmocka_unit_test(test_reference_in_readme),
		cmocka_unit_test(test_backend_keys),
		cmocka_unit_test(test_memory_per_backend),
		cmocka_unit_test(test_deadline_order),
		cmocka_unit_test(test_same_ranges_two_vms),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_check_every_error),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_err_buffer),
		cmocka_unit_test(test_free_and_names),
	};

	return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
