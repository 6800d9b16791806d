/* The broker's lines to the journal with fields, when it runs under
 * systemd: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, and VM=, DEVICE=,
 * REQUEST_ID=, ERRNO= where the line has them ("vm VM device DEVICE: ...",
 * "request N", log_msg_errno). */
#ifndef IOREQ_JOURNAL_H
#define IOREQ_JOURNAL_H

#include <stddef.h>

/* The fields of @msg: the VM and device it names at its start, the request
 * it is about; "" when it has none. */
struct journal_fields {
	char vm[32], device[32], request_id[24];
};

void journal_fields_of(const char *msg, struct journal_fields *ret);

/* A log_sink_fn: sends the line to the journal with its fields. */
void journal_sink(int level, int err, const char *prefix, const char *msg);

#endif
