/* Operator-facing logging: one line per event, naming the VM and device.
 * On stderr by default (with the journal's <N> level prefix when stderr is
 * the journal's stream); a sink (log_set_sink) may take the lines instead,
 * as the broker's journal.c does to send them with fields. */
#ifndef IOREQ_LOG_H
#define IOREQ_LOG_H

#include <stdbool.h>
#include <syslog.h>

void log_set_prefix(const char *prefix);
void log_set_level(int level);

/* Whether @level would be logged. */
bool log_enabled(int level);

/* Takes each line (without the prefix) instead of stderr: @err is the
 * positive errno the line is about, or 0. */
typedef void log_sink_fn(int level, int err, const char *prefix, const char *msg);
void log_set_sink(log_sink_fn *fn);

/* Whether stderr is the journal's stream: JOURNAL_STREAM names its device
 * and inode (systemd.exec(5)), so a stderr redirected elsewhere is not. */
bool log_stderr_is_journal(void);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same, about the positive errno @err (the journal's ERRNO=). */
void log_msg_errno(int level, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
