#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
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

/* Under systemd, stderr goes to the journal, which understands <N>. */
static bool journal;
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;

static void find_journal(void)
{
	journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_msg(int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (level > log_level)
		return;
	pthread_once(&journal_once, find_journal);
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
