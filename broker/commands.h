/* What the control socket's commands do: status, vms, devices, stats,
 * vm start|stop|reset and reload, answered from the broker's state. */
#ifndef IOREQ_COMMANDS_H
#define IOREQ_COMMANDS_H

#include "control.h"

/* A control_fn; @opaque is the struct broker. */
void commands_handle(void *opaque, const Ioreqctl__CtlRequest *q, struct control_reply *r);

#endif
