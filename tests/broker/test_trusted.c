/* trusted_open: what ioreq-launch may bind into a sandbox, and what not,
 * on real files of each kind, owner and mode; and a symlink swapped while
 * it opens. Needs root (it chowns files to other uids). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "trusted.h"

static char dir[64];
static const struct trusted_owners root = { .uid = 0, .unmapped = (uid_t)-1 };

static const char *path_of(const char *name)
{
	/* Per thread: the symlink swapper uses it too. */
	static __thread char buf[4][256];
	static __thread int next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

static const char *make_file(const char *name, mode_t mode, uid_t uid)
{
	const char *p = path_of(name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "content", 7), 7);
	close(fd);
	assert_int_equal(chown(p, uid, uid), 0);
	assert_int_equal(chmod(p, mode), 0);
	return p;
}

static int setup(void **state)
{
	if (geteuid() != 0) {
		print_message("needs root (to own files as other uids): skipped\n");
		exit(77);
	}
	snprintf(dir, sizeof(dir), "/tmp/ioreq-trusted.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

/* Opens @path; returns the error, with the fd closed. */
static int try_open(const char *path, enum trusted_kind kind, const struct trusted_owners *o, char *why, size_t len)
{
	struct stat st;
	int fd = -1, r;

	why[0] = '\0';
	r = trusted_open(path, kind, o, &fd, &st, why, len);
	if (r == 0) {
		assert_true(fd >= 0);
		/* O_PATH: nothing was opened for reading. */
		assert_int_equal(fcntl(fd, F_GETFL) & O_PATH, O_PATH);
		assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
		close(fd);
	}
	return r;
}

static void test_regular_file(void **state)
{
	const char *p = make_file("lib.so", 0644, 0);
	char why[512], buf[16];
	struct stat st, real;
	int fd, rfd;

	assert_int_equal(trusted_open(p, TRUSTED_FILE, &root, &fd, &st, why, sizeof(why)), 0);
	assert_int_equal(stat(p, &real), 0);
	assert_int_equal(st.st_ino, real.st_ino);
	rfd = trusted_reopen(fd);
	assert_true(rfd >= 0);
	assert_int_equal(read(rfd, buf, sizeof(buf)), 7);
	close(rfd);
	close(fd);
	/* Read-only and executable are fine, as is a symlink to the file. */
	make_file("ro", 0444, 0);
	assert_int_equal(symlink("lib.so", path_of("link")), 0);
	assert_int_equal(trusted_open(path_of("link"), TRUSTED_FILE, &root, &fd, &st, why, sizeof(why)), 0);
	assert_int_equal(st.st_ino, real.st_ino);
	close(fd);
	assert_int_equal(try_open(path_of("ro"), TRUSTED_FILE, &root, why, sizeof(why)), 0);
}

static void test_not_a_regular_file(void **state)
{
	char why[512];

	assert_int_equal(try_open("/", TRUSTED_FILE, &root, why, sizeof(why)), -EISDIR);
	assert_non_null(strstr(why, "is a directory"));
	/* A symlink to /: refused for what it names, and says so. */
	assert_int_equal(symlink("/", path_of("root")), 0);
	assert_int_equal(try_open(path_of("root"), TRUSTED_FILE, &root, why, sizeof(why)), -EISDIR);
	assert_non_null(strstr(why, "resolves to /, which is a directory"));
	assert_int_equal(try_open("/dev/null", TRUSTED_FILE, &root, why, sizeof(why)), -EINVAL);
	/* A FIFO: O_PATH does not block waiting for a writer. */
	assert_int_equal(mkfifo(path_of("fifo"), 0600), 0);
	assert_int_equal(try_open(path_of("fifo"), TRUSTED_FILE, &root, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "not a regular file"));
	assert_int_equal(try_open("/etc/passwd", TRUSTED_DIR, &root, why, sizeof(why)), -ENOTDIR);
}

static void test_absent(void **state)
{
	char why[512];

	assert_int_equal(try_open(path_of("missing"), TRUSTED_FILE, &root, why, sizeof(why)), -ENOENT);
	assert_int_equal(try_open("/etc/passwd/x", TRUSTED_FILE, &root, why, sizeof(why)), -ENOTDIR);
	assert_int_equal(try_open("relative", TRUSTED_FILE, &root, why, sizeof(why)), -EINVAL);
	/* A symlink loop. */
	assert_int_equal(symlink("b", path_of("a")), 0);
	assert_int_equal(symlink("a", path_of("b")), 0);
	assert_int_equal(try_open(path_of("a"), TRUSTED_FILE, &root, why, sizeof(why)), -ELOOP);
}

static void test_owner_and_mode(void **state)
{
	const struct trusted_owners ours = { .uid = 1234, .unmapped = (uid_t)-1 };
	const struct trusted_owners in_userns = { .uid = 0, .unmapped = 4321 };
	char why[512];

	make_file("other", 0755, 1000);
	assert_int_equal(try_open(path_of("other"), TRUSTED_FILE, &root, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "owned by uid 1000"));
	make_file("ours", 0755, 1234);
	assert_int_equal(try_open(path_of("ours"), TRUSTED_FILE, &root, why, sizeof(why)), -EPERM);
	assert_int_equal(try_open(path_of("ours"), TRUSTED_FILE, &ours, why, sizeof(why)), 0);
	/* Root in an unprivileged broker's user namespace shows as the
	 * overflow uid. */
	make_file("unmapped", 0755, 4321);
	assert_int_equal(try_open(path_of("unmapped"), TRUSTED_FILE, &in_userns, why, sizeof(why)), 0);
	assert_int_equal(try_open(path_of("unmapped"), TRUSTED_FILE, &root, why, sizeof(why)), -EPERM);

	make_file("gw", 0664, 0);
	assert_int_equal(try_open(path_of("gw"), TRUSTED_FILE, &root, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "writable by its group or others"));
	make_file("ow", 0646, 0);
	assert_int_equal(try_open(path_of("ow"), TRUSTED_FILE, &root, why, sizeof(why)), -EPERM);
	/* /tmp: a directory anyone may write to. */
	assert_int_equal(try_open("/tmp", TRUSTED_DIR, &root, why, sizeof(why)), -EPERM);
	assert_int_equal(try_open(dir, TRUSTED_DIR, &root, why, sizeof(why)), 0);
}

static void test_devnull(void **state)
{
	char why[512];

	assert_int_equal(try_open("/dev/null", TRUSTED_DEVNULL, &root, why, sizeof(why)), 0);
	assert_int_equal(try_open("/dev/zero", TRUSTED_DEVNULL, &root, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "1:3"));
	assert_int_equal(try_open(make_file("null", 0644, 0), TRUSTED_DEVNULL, &root, why, sizeof(why)), -EINVAL);
}

/* The attacker owns a directory on the way (think RUNPATH=/tmp/x) and
 * flips an entry between a good library, a symlink to a file of its own and
 * a symlink to /: whatever the interleaving, an open that succeeds hands
 * back the good file, since what is checked is the fd, which is also what
 * gets bound.  How often each outcome comes up depends on the scheduler, so
 * the race asserts only that invariant; each state on its own is checked
 * first, without a race. */
static atomic_bool flipping;

static void put_entry(unsigned i)
{
	const char *entry = path_of("flip"), *tmp = path_of("flip.tmp");
	const char *targets[] = { "evil", "/", NULL };
	const char *t = targets[i % 3];

	unlink(tmp);
	if (t ? symlink(t, tmp) == 0 : link(path_of("good"), tmp) == 0)
		rename(tmp, entry);
}

static void *flip(void *arg)
{
	for (unsigned i = 0; atomic_load(&flipping); i++) {
		put_entry(i);
		/* Leave the good file in place long enough to be opened
		 * now and then. */
		if (i % 3 == 2)
			usleep(20);
	}
	return NULL;
}

static void test_symlink_swapped(void **state)
{
	unsigned ok = 0, refused = 0;
	struct stat good, st, again;
	char why[512];
	pthread_t t;
	int fd;

	make_file("good", 0644, 0);
	make_file("evil", 0755, 1000);
	assert_int_equal(stat(path_of("good"), &good), 0);
	assert_int_equal(link(path_of("good"), path_of("flip")), 0);
	/* Each state alone: the good file opens, the others do not. */
	assert_int_equal(trusted_open(path_of("flip"), TRUSTED_FILE, &root, &fd, &st, why, sizeof(why)), 0);
	assert_int_equal(st.st_ino, good.st_ino);
	close(fd);
	put_entry(0);
	assert_int_equal(trusted_open(path_of("flip"), TRUSTED_FILE, &root, &fd, &st, why, sizeof(why)), -EPERM);
	put_entry(1);
	assert_int_equal(trusted_open(path_of("flip"), TRUSTED_FILE, &root, &fd, &st, why, sizeof(why)), -EISDIR);
	put_entry(2);

	atomic_store(&flipping, true);
	assert_int_equal(pthread_create(&t, NULL, flip, NULL), 0);
	for (time_t end = time(NULL) + 3; time(NULL) < end;) {
		if (trusted_open(path_of("flip"), TRUSTED_FILE, &root, &fd, &st, why, sizeof(why)) < 0) {
			refused++;
			continue;
		}
		ok++;
		assert_int_equal(fstat(fd, &again), 0);
		assert_int_equal(st.st_ino, good.st_ino);
		assert_int_equal(again.st_ino, good.st_ino);
		close(fd);
	}
	atomic_store(&flipping, false);
	pthread_join(t, NULL);
	print_message("%u opened, %u refused, none of them anything but the good file\n", ok, refused);
}

static void test_owners_get(void **state)
{
	struct trusted_owners o;
	int status;
	pid_t pid;

	assert_int_equal(trusted_owners_get(&o), 0);
	assert_int_equal(o.uid, geteuid());
	assert_int_equal(o.unmapped, (uid_t)-1);
#ifdef __SANITIZE_THREAD__
	/* Its runtime's thread makes every process multithreaded, and
	 * unshare(CLONE_NEWUSER) refuses those. */
	return;
#endif
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* An unmapped user namespace: every owner is the overflow uid. */
		if (unshare(CLONE_NEWUSER) < 0 || trusted_owners_get(&o) < 0)
			_exit(1);
		_exit(o.unmapped == 65534 ? 0 : 2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(status, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_regular_file),
		cmocka_unit_test(test_not_a_regular_file),
		cmocka_unit_test(test_absent),
		cmocka_unit_test(test_owner_and_mode),
		cmocka_unit_test(test_devnull),
		cmocka_unit_test(test_symlink_swapped),
		cmocka_unit_test(test_owners_get),
	};

	return cmocka_run_group_tests_name("trusted", tests, setup, teardown);
}
