#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *log_prefix = "ioreq-brokerd";
static int log_level = LOG_INFO;

void log_set_prefix(const char *prefix)
{
	log_prefix = prefix;
}

void log_set_level(int level)
{
	log_level = level;
}

void log_msg(int level, const char *fmt, ...)
{
	/* Under systemd, stderr goes to the journal, which understands <N>. */
	static int journal = -1;
	char line[1024];
	va_list ap;
	int n;

	if (level > log_level)
		return;
	if (journal < 0)
		journal = getenv("JOURNAL_STREAM") != NULL;
	if (journal)
		n = snprintf(line, sizeof(line), "<%d>%s: ", level, log_prefix);
	else
		n = snprintf(line, sizeof(line), "%s: ", log_prefix);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	/* One write per line so lines from several threads do not interleave. */
	fprintf(stderr, "%s\n", line);
}
