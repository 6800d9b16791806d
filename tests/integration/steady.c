#include "steady.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

int steady_run_vm(struct run *r, const char *script, const char *devices)
{
	const char *args[] = { "--config", NULL, "--exit-with-vms", NULL };

	harness_write("cpu0.txt", "%s", script);
	harness_write("cpu1.txt", STEADY_SCRIPT);
	args[1] = harness_write("v.yaml",
				"broker: { runtime_dir: %s/run }\n"
				"vms:\n"
				"  - name: v\n"
				"    backend: sim\n"
				"    vcpus: 2\n"
				"    scripts: [cpu0.txt, cpu1.txt]\n"
				"    devices:\n" STEADY_DEVICE "%s",
				harness_tmpdir(), devices);
	harness_run(r, args, 120);
	if (r->status)
		fprintf(stderr, "broker exited %d:\n%s\n", r->status, harness_log(r));
	return r->status;
}

void steady_assert(const struct run *r)
{
	assert_int_equal(harness_stat(r, "vm v device ram:", " mmio"), 6000);
	assert_int_equal(harness_stat(r, "vm v device ram:", " fallbacks"), 0);
}

const char *steady_once(void)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/once", harness_tmpdir());
	return path;
}
