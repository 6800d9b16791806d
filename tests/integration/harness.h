/* What the integration suites share: a scratch directory, files in it, and
 * the real ioreq-brokerd started on a config, with its log captured.
 *
 * A suite registers each test with harness_test(fn) and ends main with
 * harness_run_group(name, tests). Then:
 *  - when a test fails (an assertion, a signal, a harness timeout), the
 *    harness prints the whole log of every program it started in that test,
 *    once, after killing what still runs; passing tests print nothing. A
 *    failure message therefore names what went wrong and leaves the log to
 *    the harness (cmocka's print_error cuts text at 1 KiB);
 *  - a test that cannot run here calls harness_skip(why); the executable
 *    then exits 77 (CTest's SKIP_RETURN_CODE) unless a test failed, so a
 *    missing /dev/kvm shows as "Skipped", never as "Passed". */
#ifndef IOREQ_TEST_HARNESS_H
#define IOREQ_TEST_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* What harness_test wraps: the suite's test function, and how it ended. */
struct harness_case {
	void (*fn)(void **state);
	void *state;
	bool returned; /* fn returned: it neither failed nor skipped */
	bool skipped;
};

void harness_case_run(void **state);
int harness_case_teardown(void **state);

/* A cmocka test entry for @f: runs it, then dumps the logs if it failed
 * and cleans up (harness_cleanup). Use inside a function (main): the
 * bookkeeping lives in a compound literal of that scope. */
#define harness_test(f)                                                                                    \
	{                                                                                                  \
		.name = #f, .test_func = harness_case_run, .teardown_func = harness_case_teardown,         \
		.initial_state = &(struct harness_case){ .fn = (f) },                                       \
	}

/* Runs @tests (an array) and returns the exit status for CTest: 1 if any
 * test failed, else 77 if any called harness_skip, else 0. */
#define harness_run_group(name, tests) harness_exit_status(cmocka_run_group_tests_name(name, tests, NULL, NULL))
int harness_exit_status(int failures);

/* This test cannot run here: prints why (printf-style) and skips it. */
void harness_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Skips the test (harness_skip, which does not return) unless /dev/kvm is
 * there and usable. */
void harness_need_kvm(void);

/* Whether the broker the tests start gives devices a request ring: the
 * default, unless the suite runs with IOREQ_TRANSPORT=nng. */
bool harness_ring(void);

/* A file that belongs with the logs (a fake's report, a device's output):
 * printed with them if the current test fails. */
void harness_keep_log(const char *label, const char *path);

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

/* A vCPU script, built a line at a time. */
struct harness_script {
	size_t len;
	char text[65536];
};

/* Appends a line (printf-style, @ap) to @sc; a script that outgrows its
 * buffer fails the test. */
void harness_script_vline(struct harness_script *sc, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
void harness_script_reset(struct harness_script *sc);

/* Writes @len bytes of @data to @name in the scratch directory; returns its path. */
const char *harness_write_bytes(const char *name, const void *data, size_t len);

/* What the file @name in the temporary directory holds (a device's
 * output...), up to 64 KiB; "" when it is missing. Valid until the next
 * call. */
const char *harness_read(const char *name);

/* Starts ioreq-brokerd with @args (NULL-terminated) with stderr and stdout in
 * a log file. */
void harness_start(struct run *r, const char *const *args);

/* Programs started from now on read @path as their stdin (NULL: they
 * inherit the test's again, as they do after harness_cleanup). */
void harness_set_stdin(const char *path);

/* Starts any program: @argv[0] is its path. */
void harness_start_argv(struct run *r, const char *const *argv);

/* Runs @argv to completion (60 s at most) and returns its exit status, with
 * what it printed on stdout and stderr in @out. */
int harness_exec(const char *const *argv, char *out, size_t len);

/* Runs ioreqctl --socket @sock and the arguments after it (up to a NULL),
 * like harness_exec: its exit status, what it printed in @out. */
int harness_ioreqctl(const char *sock, char *out, size_t len, ...);

/* Waits up to @timeout_s; on timeout kills the program and fails the test. */
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
