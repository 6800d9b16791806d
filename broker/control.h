/* The control socket that ioreqctl talks to: AF_UNIX SOCK_SEQPACKET, one
 * protobuf CtlRequest per connection, answered by one CtlReply.
 *
 * Under systemd the socket is the one the .socket unit passed (named
 * "control"); otherwise it is created here, unless another process
 * already serves that path. Access: the socket file is 0660
 * root:control_group, and each connection's peer credentials are checked
 * again: root, the broker's own user, or a member of the group.
 *
 * Each connection is served by a thread of its own, so a client that says
 * nothing or a command that takes a while (stopping a VM) delays nobody
 * else; at most CONTROL_MAX_CLIENTS at a time, the next ones wait in the
 * listen backlog. What a command does is the handler's
 * business (commands.c); this module only carries messages. */
#ifndef IOREQ_CONTROL_H
#define IOREQ_CONTROL_H

#include <stddef.h>

#include "control.pb-c.h"

/* Most connections served at once; more wait to be accepted. */
#define CONTROL_MAX_CLIENTS 16
/* The largest reply; a bigger one is answered with -EMSGSIZE instead. */
#define CONTROL_REPLY_MAX (1u << 20)

struct control;

/* A reply being built: the message and everything it points to, freed
 * together once it is sent. */
struct control_reply;

Ioreqctl__CtlReply *control_msg(struct control_reply *r);

/* Zeroed memory for @n objects of @size that lives as long as the reply;
 * NULL when out of memory. */
void *control_alloc(struct control_reply *r, size_t n, size_t size);

/* Sets the reply's error and message; returns @error. */
int control_error(struct control_reply *r, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Sets the reply's message (for a success). */
void control_message(struct control_reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Handles one request; runs on the connection's thread. */
typedef void (*control_fn)(void *opaque, const Ioreqctl__CtlRequest *q, struct control_reply *r);

/* @path: where to create the socket when systemd did not pass one;
 * @group: who else may use it (NULL: root and our user only). */
int control_open(const char *path, const char *group, control_fn fn, void *opaque, struct control **ret);

/* Stops accepting, waits for the connections being served, removes the
 * socket it created; NULL is fine. Returns NULL. */
struct control *control_close(struct control *c);

/* Where the control socket is. */
const char *control_path(const struct control *c);

#endif
