/* libFuzzer: the YAML loader on arbitrary files. Beyond not crashing or
 * leaking, it checks what the loader promises: every error is
 * "FILE:LINE:COLUMN: message" with a position inside the input (or one of the
 * few errors that have none), and a file loads into VMs that cfg_vm_equal
 * finds equal to a second load of the same file. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(const char *path, const char *err, const uint8_t *data, size_t size)
{
	static const char *const unplaced[] = { "empty configuration", "out of memory" };
	size_t plen = strlen(path), lines = 1;
	int line, col, n = 0;

	if (strncmp(err, path, plen) || err[plen] != ':')
		abort();
	err += plen + 1;
	if (sscanf(err, "%d:%d: %n", &line, &col, &n) == 2 && n > 0) {
		/* An upper bound: libyaml also breaks lines at \r, NEL (C2 85),
		 * LS and PS (E2 80 A8/A9), and decodes UTF-16. */
		for (size_t i = 0; i < size; i++)
			lines += data[i] == '\n' || data[i] == '\r' || data[i] == 0x85 || data[i] == 0xa8 || data[i] == 0xa9;
		/* and may point just past the last line */
		if (line < 1 || (size_t)line > lines + 1 || col < 1 || !err[n])
			abort();
		return;
	}
	if (err[0] != ' ' || !err[1])
		abort();
	for (size_t i = 0; i < sizeof(unplaced) / sizeof(unplaced[0]); i++)
		if (!strcmp(err + 1, unplaced[i]))
			return;
	if (!strstr(err, " at byte ")) /* the YAML reader knows an offset only */
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	char err[512], what[128];
	struct cfg *a = NULL, *b = NULL;
	FILE *f;

	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/ioreq-fuzz-config.%d.yaml", (int)getpid());
	f = fopen(path, "w");
	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	if (cfg_load(path, "/nonexistent", &a, err, sizeof(err)) < 0) {
		check_error(path, err, data, size);
		return 0;
	}
	if (cfg_load(path, "/nonexistent", &b, err, sizeof(err)) < 0 || a->n_vms != b->n_vms)
		abort();
	for (size_t i = 0; i < a->n_vms; i++)
		if (!cfg_vm_equal(&a->vms[i], &b->vms[i], what, sizeof(what)))
			abort();
	cfg_free(a);
	cfg_free(b);
	return 0;
}
