/* Operator-facing logging: one line per event on stderr (the journal under
 * systemd, which reads the <N> level prefix), naming the VM and device. */
#ifndef IOREQ_LOG_H
#define IOREQ_LOG_H

#include <syslog.h>

void log_set_prefix(const char *prefix);
void log_set_level(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
