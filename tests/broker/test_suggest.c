/* suggest: the distance, and when a candidate is near enough to suggest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "suggest.h"

static void test_distance(void **state)
{
	static const struct {
		const char *a, *b;
		size_t d;
	} cases[] = {
		{ "", "", 0 },
		{ "abc", "abc", 0 },
		{ "", "abc", 3 },
		{ "abc", "", 3 },
		{ "deadine_ms", "deadline_ms", 1 },  /* insertion */
		{ "deadlinee_ms", "deadline_ms", 1 }, /* deletion */
		{ "stetus", "status", 1 },            /* substitution */
		{ "stauts", "status", 1 },            /* two neighbours swapped */
		{ "ca", "abc", 3 },                   /* optimal string alignment, not full Damerau */
		{ "kitten", "sitting", 3 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t d = suggest_distance(cases[i].a, cases[i].b);

		if (d != cases[i].d)
			fail_msg("'%s' to '%s': %zu, not %zu", cases[i].a, cases[i].b, d, cases[i].d);
	}
	{
		char longer[SUGGEST_MAX_LEN + 2];

		memset(longer, 'a', sizeof(longer) - 1);
		longer[sizeof(longer) - 1] = '\0';
		assert_int_equal(suggest_distance(longer, "a"), SIZE_MAX);
	}
}

static const char *best(const char *word, const char *const *cands)
{
	static struct suggest s;

	suggest_init(&s, word);
	for (; *cands; cands++)
		suggest_add(&s, *cands);
	return suggest_best(&s);
}

static void test_best(void **state)
{
	static const char *const keys[] = { "deadline_ms", "device_ids", "runtime_dir", "cgroup", NULL };
	static const char *const cmds[] = { "status", "vms", "devices", "stats", "reload", "vm", NULL };

	assert_string_equal(best("deadine_ms", keys), "deadline_ms");
	assert_string_equal(best("deadline", keys), "deadline_ms");
	assert_string_equal(best("cgruop", keys), "cgroup");
	assert_null(best("colour", keys));      /* nothing near */
	assert_null(best("deadline_ms", keys)); /* itself is no typo */
	assert_string_equal(best("stauts", cmds), "status");
	assert_string_equal(best("stat", cmds), "stats"); /* the nearest, not the first */
	assert_string_equal(best("devics", cmds), "devices");
	assert_string_equal(best("vn", cmds), "vm");
	assert_null(best("x", cmds));
	assert_null(best("frobnicate", cmds));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_distance),
		cmocka_unit_test(test_best),
	};

	return cmocka_run_group_tests_name("suggest", tests, NULL, NULL);
}
