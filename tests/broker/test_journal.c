/* journal: the fields a log line carries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "journal.h"

static void test_fields(void **state)
{
	static const struct {
		const char *msg, *vm, *device, *request_id;
	} cases[] = {
		{ "vm alpha device regs: ready (pid 12)", "alpha", "regs", "" },
		{ "vm beta: stopped with status 0", "beta", "", "" },
		{ "vm a.b-c_1 device d: request 4711 of vcpu 1 missed its 500 ms deadline", "a.b-c_1", "d", "4711" },
		{ "vm alpha vcpu 1 a.txt:7: pio read", "alpha", "", "" },
		{ "control: serving /run/ioreq-broker/control", "", "", "" },
		{ "reload: the request of nobody", "", "", "" },
		{ "vm : nothing", "", "", "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct journal_fields f;

		journal_fields_of(cases[i].msg, &f);
		assert_string_equal(f.vm, cases[i].vm);
		assert_string_equal(f.device, cases[i].device);
		assert_string_equal(f.request_id, cases[i].request_id);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
	};

	return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
