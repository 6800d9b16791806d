/* The control socket that ioreqctl talks to: AF_UNIX SOCK_SEQPACKET, one
 * protobuf CtlRequest per connection, answered by one CtlReply.
 *
 * Under systemd the socket is the one the .socket unit passed (named
 * "control"); otherwise the broker creates it. Access: the socket file is
 * 0660 root:control_group, and each connection's peer credentials are
 * checked again: root, the broker's own user, or a member of the group. */
#ifndef IOREQ_CONTROL_H
#define IOREQ_CONTROL_H

struct broker;
struct control;

/* @path: where to create the socket when systemd did not pass one. */
int control_open(struct broker *b, const char *path, const char *group, struct control **ret);

/* Stops serving and removes the socket it created; NULL is fine. */
struct control *control_close(struct control *c);

/* Where the control socket is. */
const char *control_path(const struct control *c);

#endif
