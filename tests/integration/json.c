#include "json.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *ws(const char *p)
{
	while (*p && isspace((unsigned char)*p))
		p++;
	return p;
}

/* Returns the end of the value at @p, or NULL if it is not valid. */
static const char *skip_value(const char *p);

static const char *skip_string(const char *p)
{
	if (*p != '"')
		return NULL;
	for (p++; *p && *p != '"'; p++)
		if (*p == '\\' && !*++p)
			return NULL;
	return *p == '"' ? p + 1 : NULL;
}

static const char *skip_container(const char *p, char close, bool keys)
{
	p = ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (keys) {
			p = skip_string(ws(p));
			if (!p || *(p = ws(p)) != ':')
				return NULL;
			p++;
		}
		p = skip_value(ws(p));
		if (!p)
			return NULL;
		p = ws(p);
		if (*p == close)
			return p + 1;
		if (*p != ',')
			return NULL;
		p++;
	}
}

static const char *skip_value(const char *p)
{
	p = ws(p);
	if (*p == '{')
		return skip_container(p, '}', true);
	if (*p == '[')
		return skip_container(p, ']', false);
	if (*p == '"')
		return skip_string(p);
	if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	if (*p == '-' || isdigit((unsigned char)*p)) {
		char *end;

		strtod(p, &end);
		return end;
	}
	return NULL;
}

bool json_valid(const char *text)
{
	const char *end = skip_value(text);

	return end && !*ws(end);
}

/* The value named @key (length @n) in the object at @p, or index @key. */
static const char *member(const char *p, const char *key, size_t n)
{
	p = ws(p);
	if (*p == '{') {
		p = ws(p + 1);
		while (*p == '"') {
			const char *k = p + 1, *end = skip_string(p);

			if (!end)
				return NULL;
			p = ws(end);
			if (*p++ != ':')
				return NULL;
			p = ws(p);
			if ((size_t)(end - 1 - k) == n && !strncmp(k, key, n))
				return p;
			p = skip_value(p);
			if (!p || *(p = ws(p)) != ',')
				return NULL;
			p = ws(p + 1);
		}
		return NULL;
	}
	if (*p == '[') {
		long idx = strtol(key, NULL, 10);

		p = ws(p + 1);
		for (long i = 0; *p && *p != ']'; i++) {
			if (i == idx)
				return p;
			p = skip_value(p);
			if (!p || *(p = ws(p)) != ',')
				return NULL;
			p = ws(p + 1);
		}
	}
	return NULL;
}

bool json_get(const char *text, const char *path, char *buf, size_t len)
{
	const char *p = text, *end;

	if (!json_valid(text))
		return false;
	while (*path) {
		size_t n = strcspn(path, ".");

		p = member(p, path, n);
		if (!p)
			return false;
		path += n + (path[n] == '.');
	}
	end = skip_value(p);
	if (!end || (size_t)(end - p) >= len)
		return false;
	memcpy(buf, p, end - p);
	buf[end - p] = '\0';
	return true;
}

long long json_num(const char *text, const char *path)
{
	char buf[64];

	return json_get(text, path, buf, sizeof(buf)) && (buf[0] == '-' || isdigit((unsigned char)buf[0]))
		       ? atoll(buf)
		       : -1;
}

const char *json_str(const char *text, const char *path)
{
	static char buf[512];
	size_t n;

	if (!json_get(text, path, buf, sizeof(buf)) || buf[0] != '"')
		return "";
	n = strlen(buf);
	memmove(buf, buf + 1, n - 2);
	buf[n - 2] = '\0';
	return buf;
}
