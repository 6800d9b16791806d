/* What the integration suites share: a scratch directory, files in it, and
 * the real ioreq-brokerd started on a config, with its log captured. */
#ifndef IOREQ_TEST_HARNESS_H
#define IOREQ_TEST_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

struct run {
	pid_t pid;
	char log[4096];      /* path of the captured stderr */
	int status;          /* exit status once finished, or -1 */
	double seconds;      /* how long it ran */
};

/* A fresh scratch directory, removed by harness_cleanup. */
const char *harness_tmpdir(void);
void harness_cleanup(void);

/* Writes @text (printf-style) to @name in the scratch directory; returns its path. */
const char *harness_write(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts ioreq-brokerd with @args (NULL-terminated) with stderr and stdout in
 * a log file. */
void harness_start(struct run *r, const char *const *args);

/* Starts any program: @argv[0] is its path. */
void harness_start_argv(struct run *r, const char *const *argv);

/* Runs @argv to completion (60 s at most) and returns its exit status, with
 * what it printed on stdout and stderr in @out. */
int harness_exec(const char *const *argv, char *out, size_t len);

/* Waits up to @timeout_s; on timeout kills the broker and fails the test. */
void harness_wait(struct run *r, double timeout_s);

/* Runs to completion: start + wait. Returns the exit status. */
int harness_run(struct run *r, const char *const *args, double timeout_s);

/* The whole log, NUL-terminated, in a static buffer. */
const char *harness_log(const struct run *r);

/* Waits (up to @timeout_s) for a log line containing @needle; returns the
 * line or NULL. */
const char *harness_wait_log(const struct run *r, const char *needle, double timeout_s);

/* The pid from the broker's "vm VM device DEV: ready (pid N)" line. */
pid_t harness_device_pid(const struct run *r, const char *vm, const char *dev, double timeout_s);

/* The number just before @before on the first log line containing @line_has
 * and, after it, @before,
 * e.g. harness_stat(r, "vm a device ram0:", " fallbacks"); -1 if absent. */
long long harness_stat(const struct run *r, const char *line_has, const char *before);

#endif
