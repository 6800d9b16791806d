/* The shipped sim examples, as a user runs them: the demo's last line says
 * how it went, and `ioreqctl vm reset` of every VM of every example runs its
 * scripts again with every access answered as the first time (a device that
 * kept state across the reset would fail the second run). */
#include <dirent.h>
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

#define EXAMPLES IOREQ_SRCDIR "/examples/sim"

static char out[1 << 16];

/* How many log lines of @r contain @needle. */
static int count_lines(const struct run *r, const char *needle)
{
	const char *p = harness_log(r);
	int n = 0;

	while ((p = strstr(p, needle))) {
		n++;
		p += strlen(needle);
	}
	return n;
}

/* Waits up to @timeout_s for @n lines containing @needle. */
static bool wait_lines(const struct run *r, const char *needle, int n, double timeout_s)
{
	for (double t = 0; t < timeout_s; t += 0.05) {
		if (count_lines(r, needle) >= n)
			return true;
		usleep(50000);
	}
	return false;
}

#define ctl(sock, ...) harness_ioreqctl(sock, out, sizeof(out), __VA_ARGS__)

static void test_sim_demo_says_ok(void **state)
{
	const char *args[] = { "--config", EXAMPLES "/two-vms.yaml", "--exit-with-vms", NULL };
	struct run r;
	const char *log, *last;

	assert_int_equal(harness_run(&r, args, 60), 0);
	log = harness_log(&r);
	last = strrchr(log, '\n');
	/* the last line, not the empty remainder after the final newline */
	while (last > log && last[-1] != '\n')
		last--;
	assert_non_null(strstr(last, "ok: every VM stopped with status 0"));
}

/* --check reports every error, up to 20, then how many more. */
static void test_check_reports_every_error(void **state)
{
	char text[2048] = "broker:\n", want[64];
	const char *args[] = { "--check", NULL, NULL };
	struct run r;

	for (int i = 0; i < 25; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "  key%d: 1\n", i);
	strcat(text, "vms:\n  - {name: a, backend: sim, vcpus: 1}\n");
	args[1] = harness_write("bad.yaml", "%s", text);
	assert_int_equal(harness_run(&r, args, 30), 2);
	snprintf(want, sizeof(want), "bad.yaml:%d:3: unknown key 'key%d' in broker", 21, 19);
	assert_non_null(strstr(harness_log(&r), want));
	assert_null(strstr(harness_log(&r), "key20"));
	assert_non_null(strstr(harness_log(&r), "bad.yaml: 5 more errors"));
	assert_int_equal(count_lines(&r, "unknown key"), 20);
}

/* Every VM of @file runs its scripts to the end, is reset, and runs them
 * again to the end with status 0. */
static void reset_each_vm(const char *file)
{
	const char *args[] = { "--config", file, NULL };
	char sock[512], line[160];
	const char *l;
	struct run r;

	harness_start(&r, args);
	l = harness_wait_log(&r, "control: serving ", 30);
	assert_non_null(l);
	snprintf(sock, sizeof(sock), "%.*s", (int)strcspn(strstr(l, "serving ") + 8, "\n"), strstr(l, "serving ") + 8);
	assert_int_equal(ctl(sock, "--json", "vms", NULL), 0);
	for (int i = 0;; i++) {
		char path[32], name[64];


		snprintf(path, sizeof(path), "vms.%d.name", i);
		snprintf(name, sizeof(name), "%s", json_str(out, path));
		if (!*name)
			break;
		snprintf(line, sizeof(line), "vm %s: stopped with status ", name);
		if (!wait_lines(&r, line, 1, 60))
			fail_msg("%s: vm %s did not finish its scripts", file, name);
		assert_int_equal(ctl(sock, "vm", "reset", name, NULL), 0);
		if (!wait_lines(&r, line, 2, 60))
			fail_msg("%s: vm %s did not finish its scripts again after a reset", file, name);
		snprintf(line, sizeof(line), "vm %s: stopped with status 0", name);
		if (count_lines(&r, line) != 2)
			fail_msg("%s: vm %s failed before or after its reset", file, name);
		assert_int_equal(ctl(sock, "--json", "vms", NULL), 0);
	}
	kill(r.pid, SIGTERM);
	harness_wait(&r, 30);
	assert_int_equal(r.status, 0);
}

static void test_reset_every_sim_example(void **state)
{
	struct dirent **names;
	int n = scandir(EXAMPLES, &names, NULL, alphasort), tried = 0;

	assert_true(n > 0);
	for (int i = 0; i < n; i++) {
		size_t len = strlen(names[i]->d_name);
		char file[1024];

		if (len > 5 && !strcmp(names[i]->d_name + len - 5, ".yaml")) {
			snprintf(file, sizeof(file), "%s/%s", EXAMPLES, names[i]->d_name);
			reset_each_vm(file);
			tried++;
		}
		free(names[i]);
	}
	free(names);
	assert_true(tried >= 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_sim_demo_says_ok),
		harness_test(test_check_reports_every_error),
		harness_test(test_reset_every_sim_example),
	};

	return harness_run_group("examples", tests);
}
