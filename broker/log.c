#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *log_prefix = "ioreq-brokerd";
static int log_level = LOG_INFO;
static log_sink_fn *log_sink;

void log_set_prefix(const char *prefix)
{
	log_prefix = prefix;
}

void log_set_level(int level)
{
	log_level = level;
}

bool log_enabled(int level)
{
	return level <= log_level;
}

void log_set_sink(log_sink_fn *fn)
{
	log_sink = fn;
}

bool log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	       (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* Under systemd, stderr goes to the journal, which understands <N>. */
static bool journal;
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;

static void find_journal(void)
{
	journal = log_stderr_is_journal();
}

__attribute__((format(printf, 3, 0))) static void vlog(int level, int err, const char *fmt, va_list ap)
{
	char line[1024];
	int n;

	if (level > log_level)
		return;
	if (log_sink) {
		vsnprintf(line, sizeof(line), fmt, ap);
		log_sink(level, err, log_prefix, line);
		return;
	}
	pthread_once(&journal_once, find_journal);
	if (journal)
		n = snprintf(line, sizeof(line), "<%d>%s: ", level, log_prefix);
	else
		n = snprintf(line, sizeof(line), "%s: ", log_prefix);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	/* One write per line so lines from several threads do not interleave. */
	fprintf(stderr, "%s\n", line);
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, 0, fmt, ap);
	va_end(ap);
}

void log_msg_errno(int level, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, err, fmt, ap);
	va_end(ap);
}
