/* libFuzzer: the YAML loader on arbitrary files. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	char err[512];
	struct cfg *c = NULL;
	FILE *f;

	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/ioreq-fuzz-config.%d.yaml", (int)getpid());
	f = fopen(path, "w");
	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	if (cfg_load(path, "/nonexistent", &c, err, sizeof(err)) == 0)
		cfg_free(c);
	return 0;
}
