#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

static char tmpdir[256];
/* What harness_start_argv started, killed by harness_cleanup if a failed
 * test left it running. */
static pid_t started[64];
static unsigned n_started;

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

void harness_cleanup(void)
{
	for (unsigned i = 0; i < n_started; i++) {
		if (waitpid(started[i], NULL, WNOHANG) == 0) {
			kill(started[i], SIGKILL);
			waitpid(started[i], NULL, 0);
		}
	}
	n_started = 0;
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	tmpdir[0] = '\0';
}

const char *harness_write(const char *name, const char *fmt, ...)
{
	static char path[8][512];
	static int next;
	char *p = path[next++ % 8];
	va_list ap;
	FILE *f;

	snprintf(p, sizeof(path[0]), "%s/%s", harness_tmpdir(), name);
	f = fopen(p, "w");
	assert_non_null(f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
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

void harness_start_argv(struct run *r, const char *const *argv)
{
	static int seq;
	posix_spawn_file_actions_t fa;
	int rc;

	snprintf(r->log, sizeof(r->log), "%s/broker-%d.log", harness_tmpdir(), seq++);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, r->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	rc = posix_spawn(&r->pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	assert_int_equal(rc, 0);
	if (n_started < sizeof(started) / sizeof(started[0]))
		started[n_started++] = r->pid;
	r->status = -1;
	r->seconds = now();
}

void harness_wait(struct run *r, double timeout_s)
{
	double start = r->seconds;
	int status;

	for (;;) {
		pid_t p = waitpid(r->pid, &status, WNOHANG);

		if (p == r->pid)
			break;
		if (now() - start > timeout_s) {
			kill(r->pid, SIGKILL);
			waitpid(r->pid, &status, 0);
			print_error("broker did not finish in %.0f s; its log:\n%s\n", timeout_s, harness_log(r));
			fail();
		}
		usleep(5000);
	}
	r->seconds = now() - start;
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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
	unlink(r.log);
	return r.status;
}
