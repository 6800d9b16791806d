/* vhost-user with a guest nobody here wrote: QEMU (TCG) boots Debian's
 * Linux kernel with a vhost-user-blk-pci disk whose back end is a virtio
 * device program started, sandboxed, by the real ioreq-brokerd from a YAML
 * (`vhost_user: SOCK`, `files: [IMAGE]`). The guest's own virtio-blk
 * driver makes an ext2 filesystem on the disk, writes files, syncs,
 * remounts and reads them back, and prints a marker; the host then reads
 * the image with debugfs, without mounting it.
 *
 * What it needs comes from ./build.sh test (deploy/install-deps.sh
 * --qemu): qemu-system-x86_64, busybox (static), debugfs, and the kernel of
 * linux-image-amd64 unpacked into $IOREQ_CACHE (default
 * ~/.cache/ioreq-broker)/linux. Without them it skips, saying which. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MARKER "IOREQ-VHOST-USER-DONE"
#define BOOT_TIMEOUT_S 90
#define IMAGE_MB 32
/* What the guest needs beyond the kernel's built-ins (Debian's 6.1 has
 * these as modules): the disk, its PCI transport, the filesystem and the
 * checksum ext4 asks for at mount. Their dependencies are found in the
 * modules themselves. */
static const char *const wanted_modules[] = { "virtio_pci", "virtio_blk", "crc32c_generic", "ext4" };

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The first executable @name in $PATH (or the sbin directories, where
 * debugfs lives), into @buf; false if none. */
static bool find_program(const char *name, char *buf, size_t len)
{
	const char *path = getenv("PATH");
	char dirs[4096];

	snprintf(dirs, sizeof(dirs), "%s:/usr/local/sbin:/usr/sbin:/sbin", path ? path : "/usr/bin:/bin");
	for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(buf, len, "%s/%s", d, name);
		if (access(buf, X_OK) == 0)
			return true;
	}
	return false;
}

/* The unpacked kernel: its vmlinuz and its modules directory. */
static bool find_kernel(char *vmlinuz, size_t vlen, char *moddir, size_t mlen)
{
	const char *cache = getenv("IOREQ_CACHE"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char base[2048], pat[2100];
	glob_t g;
	bool ok;

	if (cache)
		snprintf(base, sizeof(base), "%s/linux", cache);
	else if (xdg)
		snprintf(base, sizeof(base), "%s/ioreq-broker/linux", xdg);
	else
		snprintf(base, sizeof(base), "%s/.cache/ioreq-broker/linux", home ? home : "/root");
	snprintf(pat, sizeof(pat), "%s/boot/vmlinuz-*", base);
	if (glob(pat, 0, NULL, &g) != 0)
		return false;
	snprintf(vmlinuz, vlen, "%s", g.gl_pathv[0]);
	globfree(&g);
	snprintf(pat, sizeof(pat), "%s/lib/modules/*/modules.order", base);
	if (glob(pat, 0, NULL, &g) != 0)
		return false;
	ok = strlen(g.gl_pathv[0]) < mlen;
	snprintf(moddir, mlen, "%.*s", (int)(strlen(g.gl_pathv[0]) - strlen("/modules.order")), g.gl_pathv[0]);
	globfree(&g);
	return ok;
}

/* A whole file into a new buffer (NUL-terminated); NULL if unreadable. */
static char *slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
		buf[n] = '\0';
		if (ret_len)
			*ret_len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

struct modules {
	char order[64][64]; /* names, dependencies first */
	size_t n;
};

/* Module @name's path relative to @moddir, from modules.order. */
static bool module_path(const char *order, const char *name, char *buf, size_t len)
{
	char needle[80];
	const char *p;

	snprintf(needle, sizeof(needle), "/%s.ko", name);
	for (p = strstr(order, needle); p; p = strstr(p + 1, needle)) {
		const char *end = p + strlen(needle), *start = p;

		if (*end != '\n' && *end != '\0')
			continue;
		while (start > order && start[-1] != '\n')
			start--;
		snprintf(buf, len, "%.*s", (int)(end - start), start);
		return true;
	}
	return false;
}

/* Adds @name after its dependencies (the "depends=" of its .modinfo). */
static void add_module(struct modules *m, const char *moddir, const char *order, const char *name, int depth)
{
	char rel[256], path[4096], deps[512];
	const char *d = NULL;
	char *ko;
	size_t len;

	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->order[i], name))
			return;
	assert_true(depth < 16);
	if (!module_path(order, name, rel, sizeof(rel))) {
		print_error("module %s is not in %s/modules.order\n", name, moddir);
		fail();
	}
	snprintf(path, sizeof(path), "%s/%s", moddir, rel);
	ko = slurp(path, &len);
	assert_non_null(ko);
	for (size_t i = 0; i + 8 < len; i++) {
		if (!memcmp(ko + i, "depends=", 8) && (i == 0 || ko[i - 1] == '\0')) {
			d = ko + i + 8;
			break;
		}
	}
	snprintf(deps, sizeof(deps), "%s", d ? d : "");
	free(ko);
	for (char *save, *dep = strtok_r(deps, ",", &save); dep; dep = strtok_r(NULL, ",", &save))
		add_module(m, moddir, order, dep, depth + 1);
	assert_true(m->n < 64);
	snprintf(m->order[m->n++], sizeof(m->order[0]), "%s", name);
}

static void run_ok(const char *const *argv)
{
	char out[4096];
	int st = harness_exec(argv, out, sizeof(out));

	if (st != 0) {
		print_error("%s exited %d: %s\n", argv[0], st, out);
		fail();
	}
}

/* The initramfs: busybox, the modules, and /init, the guest's whole test. */
static void make_initramfs(const char *dir, const char *busybox, const char *moddir, char *ret, size_t len)
{
	struct modules m = { .n = 0 };
	char root[2048], path[4096], loads[2048] = "", cmd[8192], *order;
	size_t n = 0;

	snprintf(root, sizeof(root), "%s/initramfs", dir);
	snprintf(path, sizeof(path), "%s/modules.order", moddir);
	order = slurp(path, NULL);
	assert_non_null(order);
	for (size_t i = 0; i < sizeof(wanted_modules) / sizeof(wanted_modules[0]); i++)
		add_module(&m, moddir, order, wanted_modules[i], 0);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cd '%s' && mkdir bin lib proc sys dev mnt && cp '%s' bin/busybox",
		 root, root, busybox);
	run_ok((const char *const[]){ "/bin/sh", "-c", cmd, NULL });
	for (size_t i = 0; i < m.n; i++) {
		char rel[256];

		assert_true(module_path(order, m.order[i], rel, sizeof(rel)));
		snprintf(cmd, sizeof(cmd), "cp '%s/%s' '%s/lib/'", moddir, rel, root);
		run_ok((const char *const[]){ "/bin/sh", "-c", cmd, NULL });
		n += (size_t)snprintf(loads + n, sizeof(loads) - n, " %s", m.order[i]);
		assert_true(n < sizeof(loads));
	}
	free(order);
	/* The guest's side: a filesystem made, written, synced, remounted and
	 * read back by the guest's own virtio-blk driver; the big file's sum
	 * printed for the host to compare. */
	snprintf(path, sizeof(path), "%s/init", root);
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fprintf(f,
			"#!/bin/busybox sh\n"
			"/bin/busybox --install -s /bin\n"
			"mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n"
			"for m in%s; do insmod /lib/$m.ko || echo \"guest: insmod $m failed\"; done\n"
			"for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; sleep 0.2; done\n"
			"fail() { echo \"guest: FAILED: $*\"; reboot -f; }\n"
			/* The second boot only reads what the first one left. */
			"if ! grep -q ioreq_check /proc/cmdline; then\n"
			"  mke2fs -q /dev/vda || fail mke2fs\n"
			"  mount -t ext2 /dev/vda /mnt || fail mount\n"
			"  echo 'written by the guest over vhost-user' > /mnt/hello.txt || fail write\n"
			"  mkdir /mnt/dir && seq 1 2000 > /mnt/dir/numbers || fail write\n"
			"  dd if=/dev/urandom of=/mnt/big bs=4096 count=1024 2>/dev/null || fail dd\n"
			"  sync; umount /mnt || fail umount\n"
			"  echo 3 > /proc/sys/vm/drop_caches\n"
			"fi\n"
			"mount -t ext2 -o ro /dev/vda /mnt || fail remount\n"
			"cat /mnt/hello.txt\n"
			"echo \"guest: big $(md5sum < /mnt/big)\"\n"
			"echo \"guest: numbers $(md5sum < /mnt/dir/numbers)\"\n"
			"umount /mnt\n"
			"echo " MARKER "\n"
			"reboot -f\n",
			loads);
		fclose(f);
		assert_int_equal(chmod(path, 0755), 0);
	}
	snprintf(ret, len, "%s/initramfs.cpio", dir);
	snprintf(cmd, sizeof(cmd), "cd '%s' && find . | '%s' cpio -o -H newc > '%s' 2>/dev/null", root, busybox, ret);
	run_ok((const char *const[]){ "/bin/sh", "-c", cmd, NULL });
}

/* The md5 the guest printed after "guest: @what ". */
static bool guest_sum(const char *serial, const char *what, char sum[33])
{
	char needle[64];
	const char *p;

	snprintf(needle, sizeof(needle), "guest: %s ", what);
	p = strstr(serial, needle);
	if (!p || strlen(p + strlen(needle)) < 32)
		return false;
	memcpy(sum, p + strlen(needle), 32);
	sum[32] = '\0';
	return true;
}

/* The md5 of file @file of the ext2 image, read by debugfs. */
static void host_sum(const char *debugfs, const char *image, const char *dir, const char *file, char sum[33])
{
	char cmd[8192], out[4096];
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' -R 'dump %s %s/dumped' '%s' >/dev/null 2>&1 && md5sum < '%s/dumped'", debugfs,
		 file, dir, image, dir);
	st = harness_exec((const char *const[]){ "/bin/sh", "-c", cmd, NULL }, out, sizeof(out));
	if (st != 0 || strlen(out) < 32) {
		print_error("debugfs dump %s: %s\n", file, out);
		fail();
	}
	memcpy(sum, out, 32);
	sum[32] = '\0';
}

/* Boots the guest once (@extra on its command line) until it prints the
 * marker and powers off: returns how long that took, its console in
 * *@ret_serial (to free). */
static double boot(const char *qemu, const char *vmlinuz, const char *initrd, const char *sock, const char *dir,
		   const char *extra, char **ret_serial)
{
	char serial_path[2048], serial_arg[2100], chardev[2200], append[256];
	struct run vm;
	double t0 = now_s();
	char *serial;

	/* TCG: /dev/kvm here, where there is one, is KVM-PVM, on which a Linux
	 * kernel (ring 0) crawls (REFERENCE.md). The guest's RAM is a shared
	 * memfd (sealed, by default), as vhost-user needs. */
	snprintf(serial_path, sizeof(serial_path), "%s/serial%s.log", dir, *extra ? "-2" : "");
	snprintf(serial_arg, sizeof(serial_arg), "file:%s", serial_path);
	snprintf(chardev, sizeof(chardev), "socket,id=c0,path=%s", sock);
	snprintf(append, sizeof(append), "console=ttyS0 panic=-1 quiet %s", extra);
	harness_keep_log("guest serial console", serial_path);
	harness_start_argv(&vm, (const char *const[]){
					qemu, "-accel", "tcg", "-m", "256M", "-smp", "1", "-nodefaults", "-display", "none",
					"-monitor", "none", "-no-reboot", "-object",
					"memory-backend-memfd,id=mem,size=256M,share=on", "-machine", "q35,memory-backend=mem",
					"-chardev", chardev, "-device", "vhost-user-blk-pci,chardev=c0,num-queues=1", "-kernel",
					vmlinuz, "-initrd", initrd, "-append", append, "-serial", serial_arg, NULL });
	harness_wait(&vm, BOOT_TIMEOUT_S);
	serial = slurp(serial_path, NULL);
	assert_non_null(serial);
	if (!strstr(serial, MARKER) || strstr(serial, "guest: FAILED")) {
		print_error("the guest did not finish (QEMU exited %d)\n", vm.status);
		free(serial);
		fail();
	}
	assert_non_null(strstr(serial, "written by the guest over vhost-user"));
	*ret_serial = serial;
	return now_s() - t0;
}

/* The device program: the project's virtio-blk. */
static const char *blk_program(void)
{
	return IOREQ_BINDIR "/ioreq-dev-virtio-blk";
}

static void test_qemu_blk(void **state)
{
	char qemu[1024], busybox[1024], debugfs[1024], vmlinuz[2048], moddir[2048], initrd[4096];
	char image[2048], sock[2048], cmd[8192], out[4096], gsum[33], hsum[33];
	struct run broker;
	const char *dir, *config, *log;
	double t_boot, t_boot2, t_test = now_s();
	char *serial, *serial2;
	struct stat st;
	int fd;

	if (!find_program("qemu-system-x86_64", qemu, sizeof(qemu)))
		harness_skip("no qemu-system-x86_64 (./build.sh test installs it: deploy/install-deps.sh --qemu)");
	if (!find_program("busybox", busybox, sizeof(busybox)))
		harness_skip("no busybox (./build.sh test installs busybox-static)");
	if (!find_program("debugfs", debugfs, sizeof(debugfs)))
		harness_skip("no debugfs (e2fsprogs)");
	if (!find_kernel(vmlinuz, sizeof(vmlinuz), moddir, sizeof(moddir)))
		harness_skip("no unpacked Debian kernel in the cache (deploy/install-deps.sh --qemu unpacks it)");
	/* busybox must be static: the initramfs holds no libraries. */
	snprintf(cmd, sizeof(cmd), "'%s' --list | grep -qx mke2fs && ! ldd '%s' >/dev/null 2>&1", busybox, busybox);
	if (harness_exec((const char *const[]){ "/bin/sh", "-c", cmd, NULL }, out, sizeof(out)) != 0)
		harness_skip("%s is not a static busybox with mke2fs (install busybox-static)", busybox);

	dir = harness_tmpdir();
	make_initramfs(dir, busybox, moddir, initrd, sizeof(initrd));
	snprintf(image, sizeof(image), "%s/disk.img", dir);
	fd = open(image, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)IMAGE_MB << 20), 0);
	close(fd);
	snprintf(sock, sizeof(sock), "%s/vhost.sock", dir);
	config = harness_write("vm.yaml",
			       "vms:\n"
			       "  - name: host\n"
			       "    backend: sim\n"
			       "    vcpus: 1\n"
			       "    devices:\n"
			       "      - name: disk\n"
			       "        program: %s\n"
			       "        vhost_user: vhost.sock\n"
			       "        files: [{path: disk.img, mode: rw}]\n",
			       blk_program());
	harness_start(&broker, (const char *const[]){ "--config", config, NULL });
	assert_non_null(harness_wait_log(&broker, "device disk: ready", 10));
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	t_boot = boot(qemu, vmlinuz, initrd, sock, dir, "", &serial);
	/* The host's view of the image, the filesystem unmounted. */
	snprintf(cmd, sizeof(cmd), "'%s' -R 'cat /hello.txt' '%s' 2>/dev/null", debugfs, image);
	assert_int_equal(harness_exec((const char *const[]){ "/bin/sh", "-c", cmd, NULL }, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "written by the guest over vhost-user"));
	assert_true(guest_sum(serial, "big", gsum));
	host_sum(debugfs, image, dir, "/big", hsum);
	assert_string_equal(gsum, hsum);
	assert_true(guest_sum(serial, "numbers", gsum));
	host_sum(debugfs, image, dir, "/dir/numbers", hsum);
	assert_string_equal(gsum, hsum);

	/* A second QEMU on the same socket: the same device process takes it
	 * (no restart) and the guest reads what the first one wrote. */
	t_boot2 = boot(qemu, vmlinuz, initrd, sock, dir, "ioreq_check", &serial2);
	assert_true(guest_sum(serial2, "big", hsum));
	assert_true(guest_sum(serial, "big", gsum));
	assert_string_equal(gsum, hsum);
	free(serial);
	free(serial2);
	log = harness_log(&broker);
	assert_non_null(strstr(strstr(log, "vhost-user: the front end went away") + 1, "the front end went away"));
	assert_null(strstr(log, "restarting"));

	/* The VM's stop removes the socket. */
	assert_int_equal(kill(broker.pid, SIGTERM), 0);
	harness_wait(&broker, 15);
	assert_int_equal(broker.status, 0);
	assert_int_equal(stat(sock, &st), -1);
	printf("vhost-user (%s): QEMU boot to marker %.1f s, again %.1f s; the whole test %.1f s\n",
	       strrchr(blk_program(), '/') + 1, t_boot, t_boot2, now_s() - t_test);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_qemu_blk),
	};

	return harness_run_group("vhost_user", tests);
}
