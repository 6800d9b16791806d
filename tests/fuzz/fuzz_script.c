/* libFuzzer: the sim script reader. */
#include <stddef.h>
#include <stdint.h>

#include "sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sim_script *s = NULL;
	char err[256];

	if (sim_script_parse((const char *)data, size, "fuzz", &s, err, sizeof(err)) == 0) {
		(void)sim_script_accesses(s);
		sim_script_free(s);
	}
	return 0;
}
