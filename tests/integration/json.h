/* Just enough JSON for tests to check what ioreqctl --json printed: the
 * value at a path like "stats.0.devices.1.pio" (object keys and array
 * indexes separated by dots). The whole text must be valid JSON. */
#ifndef IOREQ_TEST_JSON_H
#define IOREQ_TEST_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Is @text one valid JSON value (and nothing else)? */
bool json_valid(const char *text);

/* The raw text of the value at @path (a number, true, a "string" with its
 * quotes...) copied into @buf; false if there is none. */
bool json_get(const char *text, const char *path, char *buf, size_t len);

/* The number at @path, or -1. */
long long json_num(const char *text, const char *path);

/* The string at @path without quotes (no escapes decoded), or "". */
const char *json_str(const char *text, const char *path);

#endif
