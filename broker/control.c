#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "log.h"

#define CTL_MAX_MSG 4096
/* A client that connects and says nothing is dropped after this long. */
#define CLIENT_TIMEOUT_S 5

struct control {
	control_fn fn;
	void *opaque;
	int fd;
	int wake;            /* eventfd: stop accepting */
	int room;            /* eventfd: a client is done */
	bool created;        /* we made the socket file: remove it at exit */
	gid_t gid;
	bool has_gid;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	unsigned clients;    /* connection threads running */
};

/* ---- replies ---- */

struct block {
	struct block *next;
	_Alignas(16) unsigned char data[];
};

struct control_reply {
	Ioreqctl__CtlReply msg;
	char message[512];
	struct block *blocks;
};

Ioreqctl__CtlReply *control_msg(struct control_reply *r)
{
	return &r->msg;
}

void *control_alloc(struct control_reply *r, size_t n, size_t size)
{
	struct block *b;

	if (size && n > (SIZE_MAX - sizeof(*b)) / size)
		return NULL;
	b = calloc(1, sizeof(*b) + (n ? n : 1) * size);
	if (!b)
		return NULL;
	b->next = r->blocks;
	r->blocks = b;
	return b->data;
}

static void reply_free(struct control_reply *r)
{
	while (r->blocks) {
		struct block *b = r->blocks;

		r->blocks = b->next;
		free(b);
	}
}

int control_error(struct control_reply *r, int error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	r->msg.error = error;
	return error;
}

void control_message(struct control_reply *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
}

/* ---- one connection ---- */

/* Root, our own user, or the configured group (primary or supplementary,
 * as the kernel saw them when the client connected). */
static bool peer_allowed(struct control *c, int fd)
{
	gid_t groups[256];
	socklen_t len = sizeof(struct ucred);
	struct ucred cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	if (cred.uid == 0 || cred.uid == geteuid())
		return true;
	if (!c->has_gid)
		return false;
	if (cred.gid == c->gid)
		return true;
	len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == c->gid)
			return true;
	return false;
}

static void handle(struct control *c, int fd, struct control_reply *r)
{
	uint8_t in[CTL_MAX_MSG];
	Ioreqctl__CtlRequest *q;
	ssize_t n;

	/* Read first, also from a stranger: a socket closed with its request
	 * unread would reset the connection, and lose our answer. */
	n = recv(fd, in, sizeof(in), MSG_TRUNC);
	if (!peer_allowed(c, fd)) {
		control_error(r, -EACCES, "permission denied: root or group membership needed");
		return;
	}
	if (n < 0) {
		control_error(r, -errno, "no request: %s", strerror(errno));
		return;
	}
	if ((size_t)n > sizeof(in)) {
		control_error(r, -EMSGSIZE, "request too large");
		return;
	}
	q = ioreqctl__ctl_request__unpack(NULL, (size_t)n, in);
	if (!q) {
		control_error(r, -EBADMSG, "malformed request");
		return;
	}
	if (log_enabled(LOG_DEBUG)) {
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field(&ioreqctl__ctl_request__descriptor, (unsigned)q->cmd_case);

		log_debug("control: %s from a client", f ? f->name : "an unknown command");
	}
	c->fn(c->opaque, q, r);
	ioreqctl__ctl_request__free_unpacked(q, NULL);
}

static void answer(int fd, struct control_reply *r)
{
	size_t len;
	uint8_t *out;

	r->msg.message = r->message;
	len = ioreqctl__ctl_reply__get_packed_size(&r->msg);
	if (len > CONTROL_REPLY_MAX) {
		/* Said, not dropped: the client learns why it got nothing. */
		size_t was = len;

		reply_free(r);
		ioreqctl__ctl_reply__init(&r->msg);
		control_error(r, -EMSGSIZE, "the reply is too large (%zu bytes, at most %u): ask about fewer VMs", was,
			      CONTROL_REPLY_MAX);
		r->msg.message = r->message;
		len = ioreqctl__ctl_reply__get_packed_size(&r->msg);
	}
	out = malloc(len ? len : 1);
	if (!out) {
		log_warn("control: cannot answer: out of memory");
		return;
	}
	ioreqctl__ctl_reply__pack(&r->msg, out);
	/* A client that hung up before its answer is its own business. */
	if (send(fd, out, len, MSG_NOSIGNAL) < 0)
		log_msg(errno == EPIPE ? LOG_DEBUG : LOG_WARNING, "control: cannot answer: %s", strerror(errno));
	free(out);
}

struct client {
	struct control *c;
	int fd;
};

static void client_done(struct control *c)
{
	pthread_mutex_lock(&c->lock);
	c->clients--;
	pthread_cond_broadcast(&c->idle);
	/* The accepting thread may be waiting for room. Under the lock:
	 * control_close closes the eventfd once no client holds it. */
	eventfd_write(c->room, 1);
	pthread_mutex_unlock(&c->lock);
}

static void *client_thread(void *arg)
{
	struct client *cl = arg;
	struct control_reply r = { 0 };

	ioreqctl__ctl_reply__init(&r.msg);
	handle(cl->c, cl->fd, &r);
	answer(cl->fd, &r);
	reply_free(&r);
	close(cl->fd);
	client_done(cl->c);
	free(cl);
	return NULL;
}

/* One more client, on a thread of its own. */
static void serve(struct control *c, int fd)
{
	struct client *cl = malloc(sizeof(*cl));
	struct control_reply rep = { 0 };
	pthread_attr_t attr;
	pthread_t t;
	int r = -ENOMEM;

	pthread_mutex_lock(&c->lock);
	c->clients++;
	pthread_mutex_unlock(&c->lock);
	if (cl) {
		*cl = (struct client){ .c = c, .fd = fd };
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		r = -pthread_create(&t, &attr, client_thread, cl);
		pthread_attr_destroy(&attr);
		if (r == 0)
			return;
	}
	client_done(c);
	free(cl);
	ioreqctl__ctl_reply__init(&rep.msg);
	control_error(&rep, r, "cannot serve: %s", strerror(-r));
	answer(fd, &rep);
	reply_free(&rep);
	close(fd);
}

static bool has_room(struct control *c)
{
	bool room;

	pthread_mutex_lock(&c->lock);
	room = c->clients < CONTROL_MAX_CLIENTS;
	pthread_mutex_unlock(&c->lock);
	return room;
}

static void *control_thread(void *arg)
{
	struct control *c = arg;
	struct pollfd p[3] = {
		{ .fd = c->wake, .events = POLLIN },
		{ .fd = c->room, .events = POLLIN },
		{ .fd = c->fd, .events = POLLIN },
	};

	for (;;) {
		nfds_t nfds = has_room(c) ? 3 : 2;
		eventfd_t n;
		int fd;

		/* When full, new clients wait in the backlog until one is done.
		 * poll leaves the revents of the fds it was not given as they
		 * were: a connection seen the last time is not one now. */
		p[2].revents = 0;
		if (poll(p, nfds, -1) < 0)
			continue;
		if (p[0].revents)
			break;
		if (p[1].revents)
			eventfd_read(c->room, &n);
		if (!p[2].revents || !has_room(c))
			continue;
		/* The socket does not block: a client that gave up before we
		 * got to it leaves nothing to accept, and we must not wait. */
		fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_sec = CLIENT_TIMEOUT_S },
			   sizeof(struct timeval));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &(struct timeval){ .tv_sec = CLIENT_TIMEOUT_S },
			   sizeof(struct timeval));
		/* A whole reply is one datagram. */
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ CONTROL_REPLY_MAX + 4096 }, sizeof(int));
		serve(c, fd);
	}
	return NULL;
}

/* ---- the socket ---- */

/* The socket systemd passed, if any: the one named "control", or the only one. */
static int inherited_socket(void)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names), fd = -1;

	for (int i = 0; i < n; i++) {
		if (fd < 0 && (n == 1 || (names && !strcmp(names[i], "control"))) &&
		    sd_is_socket_unix(SD_LISTEN_FDS_START + i, SOCK_SEQPACKET, 1, NULL, 0) > 0)
			fd = SD_LISTEN_FDS_START + i;
		else
			close(SD_LISTEN_FDS_START + i);
		if (names)
			free(names[i]);
	}
	free(names);
	return fd;
}

/* Whether something accepts connections at @sa: another broker. */
static bool in_use(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool used;

	if (fd < 0)
		return false;
	used = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	close(fd);
	return used;
}

static int create_socket(struct control *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (in_use(&sa))
		return -EADDRINUSE;
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	unlink(path);
	if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	c->created = true;
	/* Group access only when a group is configured. */
	r = chmod(path, c->has_gid ? 0660 : 0600);
	if (r == 0 && c->has_gid)
		r = chown(path, (uid_t)-1, c->gid);
	if (r < 0)
		return -errno;
	if (listen(c->fd, 64) < 0)
		return -errno;
	return 0;
}

int control_open(const char *path, const char *group, control_fn fn, void *opaque, struct control **ret)
{
	struct control *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	c->fn = fn;
	c->opaque = opaque;
	c->fd = c->wake = c->room = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle, NULL);
	if (group) {
		struct group *g = getgrnam(group);

		if (!g) {
			log_err("control: no group named '%s'", group);
			r = -ENOENT;
			goto err;
		}
		c->gid = g->gr_gid;
		c->has_gid = true;
	}
	c->fd = inherited_socket();
	if (c->fd >= 0) {
		struct sockaddr_un sa;
		socklen_t len = sizeof(sa);

		if (getsockname(c->fd, (struct sockaddr *)&sa, &len) == 0 && len > sizeof(sa_family_t))
			snprintf(c->path, sizeof(c->path), "%s", sa.sun_path);
		log_info("control: serving the socket systemd passed (%s)", c->path);
	} else {
		snprintf(c->path, sizeof(c->path), "%s", path);
		r = create_socket(c, path);
		if (r == -EADDRINUSE) {
			log_err("control: another broker serves %s", path);
			goto err;
		}
		if (r < 0) {
			log_msg_errno(LOG_ERR, -r, "control: cannot create %s: %s", path, strerror(-r));
			goto err;
		}
		log_info("control: serving %s", c->path);
	}
	/* Never blocks in accept: control_close must find the thread in poll. */
	if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0) {
		r = -errno;
		goto err;
	}
	c->wake = eventfd(0, EFD_CLOEXEC);
	c->room = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wake < 0 || c->room < 0) {
		r = -errno;
		goto err;
	}
	r = -pthread_create(&c->thread, NULL, control_thread, c);
	if (r < 0)
		goto err;
	c->thread_started = true;
	*ret = c;
	return 0;
err:
	control_close(c);
	return r;
}

const char *control_path(const struct control *c)
{
	return c->path;
}

struct control *control_close(struct control *c)
{
	if (!c)
		return NULL;
	if (c->thread_started) {
		eventfd_write(c->wake, 1);
		pthread_join(c->thread, NULL);
	}
	pthread_mutex_lock(&c->lock);
	while (c->clients)
		pthread_cond_wait(&c->idle, &c->lock);
	pthread_mutex_unlock(&c->lock);
	if (c->fd >= 0)
		close(c->fd);
	if (c->wake >= 0)
		close(c->wake);
	if (c->room >= 0)
		close(c->room);
	if (c->created)
		unlink(c->path);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->idle);
	free(c);
	return NULL;
}
