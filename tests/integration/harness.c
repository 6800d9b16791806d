#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/kvm.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

static char tmpdir[256];

/* Every program harness_start_argv started in the current test, and every
 * file harness_keep_log named: printed if the test fails; the programs
 * still running are killed by harness_cleanup. */
#define MAX_LOGGED 256
enum logged_state {
	LOGGED_FILE,    /* not a program */
	LOGGED_RUNNING, /* not reaped yet */
	LOGGED_EXITED,  /* reaped: status */
	LOGGED_KILLED,  /* killed by the harness after the test */
};
static struct logged {
	char label[200];
	char path[512];
	pid_t pid;
	enum logged_state state;
	int status;
} logged[MAX_LOGGED];
static unsigned n_logged;

static struct harness_case *current;
static unsigned n_skipped;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

const char *harness_tmpdir(void)
{
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/ioreq-test.XXXXXX");
		assert_non_null(mkdtemp(tmpdir));
	}
	return tmpdir;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static struct logged *logged_add(const char *label, const char *path)
{
	struct logged *l;

	if (n_logged == MAX_LOGGED)
		return NULL;
	l = &logged[n_logged++];
	snprintf(l->label, sizeof(l->label), "%s", label);
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->pid = 0;
	l->state = LOGGED_FILE;
	l->status = -1;
	return l;
}

static struct logged *logged_find(pid_t pid)
{
	for (unsigned i = 0; i < n_logged; i++)
		if (logged[i].pid == pid && logged[i].state != LOGGED_FILE)
			return &logged[i];
	return NULL;
}

/* A failed test may leave programs running: they go before their logs
 * are read, so that the logs are whole. */
static void kill_leftovers(void)
{
	for (unsigned i = 0; i < n_logged; i++) {
		struct logged *l = &logged[i];
		int status;

		if (l->state != LOGGED_RUNNING)
			continue;
		if (waitpid(l->pid, &status, WNOHANG) == 0) {
			kill(l->pid, SIGKILL);
			waitpid(l->pid, &status, 0);
			l->state = LOGGED_KILLED;
		} else {
			l->state = LOGGED_EXITED;
			l->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
	}
}

static void dump_file(const char *path)
{
	char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;
	char last = '\n';

	if (!f) {
		fprintf(stderr, "(cannot open %s: %s)\n", path, strerror(errno));
		return;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		fwrite(buf, 1, n, stderr);
		last = buf[n - 1];
	}
	fclose(f);
	if (last != '\n')
		fputc('\n', stderr);
}

/* The whole of every log of the test, straight to stderr (print_error
 * would cut it at 1 KiB). */
static void dump_logs(void)
{
	fprintf(stderr, "---- the test failed: the whole log of each program it started follows ----\n");
	for (unsigned i = 0; i < n_logged; i++) {
		const struct logged *l = &logged[i];

		switch (l->state) {
		case LOGGED_FILE:
			fprintf(stderr, "---- %s ----\n", l->label);
			break;
		case LOGGED_EXITED:
			fprintf(stderr, "---- log of %s (pid %d, exit status %d) ----\n", l->label, (int)l->pid, l->status);
			break;
		case LOGGED_RUNNING:
		case LOGGED_KILLED:
			fprintf(stderr, "---- log of %s (pid %d, still running: killed by the harness) ----\n", l->label,
				(int)l->pid);
			break;
		}
		dump_file(l->path);
		fprintf(stderr, "---- end of %s ----\n", l->label);
	}
	if (n_logged == MAX_LOGGED)
		fprintf(stderr, "---- (the harness keeps the first %d logs only) ----\n", MAX_LOGGED);
	fflush(stderr);
}

/* What harness_set_stdin chose, or "": inherit. */
static char stdin_path[4096];

void harness_cleanup(void)
{
	kill_leftovers();
	n_logged = 0;
	stdin_path[0] = '\0';
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	tmpdir[0] = '\0';
}

void harness_case_run(void **state)
{
	struct harness_case *c = *state;

	current = c;
	c->returned = false;
	c->skipped = false;
	c->fn(&c->state);
	c->returned = true;
}

int harness_case_teardown(void **state)
{
	struct harness_case *c = *state;

	/* Neither returned nor skipped: an assertion, fail() or a signal
	 * jumped out of it. */
	if (!c->returned && !c->skipped) {
		kill_leftovers();
		dump_logs();
	}
	harness_cleanup();
	current = NULL;
	return 0;
}

int harness_exit_status(int failures)
{
	if (failures)
		return 1;
	return n_skipped ? 77 : 0;
}

void harness_skip(const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	print_message("skipped: %s\n", why);
	n_skipped++;
	if (current)
		current->skipped = true;
	skip();
}

const char *harness_read(const char *name)
{
	static char buf[1 << 16];
	char path[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", harness_tmpdir(), name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

bool harness_ring(void)
{
	const char *t = getenv("IOREQ_TRANSPORT");

	return !t || strcmp(t, "nng");
}

void harness_need_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	const char *why;

	if (fd < 0) {
		why = strerror(errno);
	} else {
		why = ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION ? NULL : "not a KVM device";
		close(fd);
	}
	if (why)
		harness_skip("/dev/kvm: %s: this test needs KVM", why);
}

void harness_keep_log(const char *label, const char *path)
{
	logged_add(label, path);
}

/* @name in the scratch directory, opened for writing; its path in *@ret
 * (one of 8, reused in turn). */
static FILE *scratch_file(const char *name, const char **ret)
{
	static char path[8][512];
	static int next;
	char *p = path[next++ % 8];
	FILE *f;

	snprintf(p, sizeof(path[0]), "%s/%s", harness_tmpdir(), name);
	f = fopen(p, "we");
	assert_non_null(f);
	*ret = p;
	return f;
}

const char *harness_write(const char *name, const char *fmt, ...)
{
	const char *p;
	FILE *f = scratch_file(name, &p);
	va_list ap;

	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	assert_int_equal(fclose(f), 0);
	return p;
}

void harness_script_vline(struct harness_script *sc, const char *fmt, va_list ap)
{
	sc->len += (size_t)vsnprintf(sc->text + sc->len, sizeof(sc->text) - sc->len, fmt, ap);
	assert_true(sc->len < sizeof(sc->text) - 1);
	sc->text[sc->len++] = '\n';
	sc->text[sc->len] = '\0';
}

void harness_script_reset(struct harness_script *sc)
{
	sc->len = 0;
	sc->text[0] = '\0';
}

const char *harness_write_bytes(const char *name, const void *data, size_t len)
{
	const char *p;
	FILE *f = scratch_file(name, &p);

	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return p;
}

void harness_start(struct run *r, const char *const *args)
{
	const char *argv[40];
	size_t n = 0;

	/* IOREQ_VALGRIND=1: the broker runs under memcheck, and any error or
	 * definite leak makes it exit 99. */
	if (getenv("IOREQ_VALGRIND")) {
		static const char *const vg[] = { "/usr/bin/valgrind", "-q", "--error-exitcode=99",
						  "--leak-check=full", "--errors-for-leak-kinds=definite" };

		for (size_t i = 0; i < sizeof(vg) / sizeof(vg[0]); i++)
			argv[n++] = vg[i];
	}
	argv[n++] = IOREQ_BINDIR "/ioreq-brokerd";
	while (*args && n < 39)
		argv[n++] = *args++;
	argv[n] = NULL;
	harness_start_argv(r, argv);
}

/* "name arg arg ..." with the program's directory left out. */
static void label_of(const char *const *argv, char *buf, size_t len)
{
	const char *base = strrchr(argv[0], '/');
	size_t n = (size_t)snprintf(buf, len, "%s", base ? base + 1 : argv[0]);

	for (size_t i = 1; argv[i] && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, " %s", argv[i]);
}

void harness_set_stdin(const char *path)
{
	snprintf(stdin_path, sizeof(stdin_path), "%s", path ? path : "");
}

void harness_start_argv(struct run *r, const char *const *argv)
{
	static int seq;
	posix_spawn_file_actions_t fa;
	struct logged *l;
	char label[200];
	int rc;

	snprintf(r->log, sizeof(r->log), "%s/run-%d.log", harness_tmpdir(), seq++);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, r->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (*stdin_path)
		posix_spawn_file_actions_addopen(&fa, 0, stdin_path, O_RDONLY, 0);
	rc = posix_spawn(&r->pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	assert_int_equal(rc, 0);
	label_of(argv, label, sizeof(label));
	l = logged_add(label, r->log);
	if (l) {
		l->pid = r->pid;
		l->state = LOGGED_RUNNING;
	}
	r->status = -1;
	r->seconds = now();
}

/* True once @pid has exited (not reaped), false after @timeout_s. */
static bool exited_within(pid_t pid, double timeout_s)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	double until = now() + timeout_s;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;

	assert_true(fd >= 0);
	do {
		double left = until - now();

		n = poll(&p, 1, left > 0 ? (int)(left * 1000) + 1 : 0);
	} while (n < 0 && errno == EINTR);
	close(fd);
	return n > 0;
}

/* What a program that hangs is doing: each thread's name, state and
 * kernel stack, and with gdb installed, every thread's own stack. */
static void report_hang(pid_t pid)
{
	char cmd[512];

	print_error("---- what pid %d is doing ----\n", (int)pid);
	fflush(stdout);
	fflush(stderr);
	snprintf(cmd, sizeof(cmd),
		 "for t in /proc/%d/task/*; do echo \"thread $(cat $t/comm) ($(cut -d' ' -f3 $t/stat)):\"; "
		 "cat $t/stack 2>/dev/null; done >&2; "
		 "ps -eo pid,ppid,stat,etime,comm | awk -v p=%d 'NR == 1 || $1 == p || $2 == p' >&2; "
		 "command -v gdb >/dev/null && timeout 60 gdb -batch -nx -p %d -ex 'thread apply all bt' 1>&2",
		 (int)pid, (int)pid, (int)pid);
	if (system(cmd) < 0)
		print_error("cannot run the shell: %s\n", strerror(errno));
}

void harness_wait(struct run *r, double timeout_s)
{
	double start = r->seconds;
	struct logged *l = logged_find(r->pid);
	int status;

	/* From now: a test that worked with the program for a while still
	 * gives it the whole time to finish. */
	if (!exited_within(r->pid, timeout_s)) {
		print_error("%s did not finish in %.0f s\n", l ? l->label : "the program", timeout_s);
		report_hang(r->pid);
		fail();
	}
	assert_int_equal(waitpid(r->pid, &status, 0), r->pid);
	r->seconds = now() - start;
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (l) {
		l->state = LOGGED_EXITED;
		l->status = r->status;
	}
}

int harness_run(struct run *r, const char *const *args, double timeout_s)
{
	harness_start(r, args);
	harness_wait(r, timeout_s);
	return r->status;
}

const char *harness_log(const struct run *r)
{
	static char buf[1 << 20];
	size_t n = 0;
	FILE *f = fopen(r->log, "r");

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

const char *harness_wait_log(const struct run *r, const char *needle, double timeout_s)
{
	double until = now() + timeout_s;

	do {
		const char *log = harness_log(r), *hit = strstr(log, needle);

		if (hit) {
			while (hit > log && hit[-1] != '\n')
				hit--;
			return hit;
		}
		usleep(5000);
	} while (now() < until);
	return NULL;
}

pid_t harness_device_pid(const struct run *r, const char *vm, const char *dev, double timeout_s)
{
	char needle[256];
	const char *line, *pid;

	snprintf(needle, sizeof(needle), "vm %s device %s: ready (pid ", vm, dev);
	line = harness_wait_log(r, needle, timeout_s);
	if (!line)
		return -1;
	pid = strstr(line, "(pid ");
	return (pid_t)atoi(pid + 5);
}

long long harness_stat(const struct run *r, const char *line_has, const char *before)
{
	const char *log = harness_log(r);

	for (const char *line = log; *line;) {
		const char *end = strchr(line, '\n'), *has = strstr(line, line_has), *p;

		if (!end)
			end = line + strlen(line);
		p = has && has < end ? strstr(has, before) : NULL;
		if (p && p < end) {
			/* The number is the word just before @before. */
			while (p > line && p[-1] == ' ')
				p--;
			while (p > line && p[-1] >= '0' && p[-1] <= '9')
				p--;
			return atoll(p);
		}
		line = *end ? end + 1 : end;
	}
	return -1;
}

int harness_exec(const char *const *argv, char *out, size_t len)
{
	struct run r;
	const char *log;

	harness_start_argv(&r, argv);
	harness_wait(&r, 60);
	log = harness_log(&r);
	snprintf(out, len, "%s", log);
	/* The log stays: if the test fails, it is printed with the others. */
	return r.status;
}

int harness_ioreqctl(const char *sock, char *out, size_t len, ...)
{
	const char *argv[16] = { IOREQ_BINDIR "/ioreqctl", "--socket", sock };
	size_t n = 3;
	va_list ap;

	va_start(ap, len);
	for (const char *a = va_arg(ap, const char *); a && n < 15; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return harness_exec(argv, out, len);
}
