/* libioreq-device: virtio devices over vhost-user (ioreq/virtio.h), the
 * back end of a front end such as QEMU's vhost-user-blk-pci.
 *
 * The front end speaks the vhost-user protocol (QEMU's
 * docs/interop/vhost-user.rst) on a stream socket: it shares its guest
 * memory as fds, programs each ring by its addresses in its own address
 * space, and hands over one eventfd per ring for kicks (guest to device)
 * and one for calls (device to guest). Everything it sends is untrusted: a
 * message that breaks a rule ends the connection, with a log line, and the
 * next front end is accepted; the process never goes down for it.
 *
 * Threads: the calling thread serves the front end and the queues (one
 * poll loop, every handler under v->lock); a second thread serves the
 * broker (ioreq_dev_serve) and, when that returns, sets `stopping` and
 * wakes the loop through v->wake_fd. */
#include "virtio_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "memory.h"

/* The protocol (vhost-user.rst, "Message types", "Protocol features"). */
enum {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
	VU_RESET_DEVICE = 34,
	VU_GET_MAX_MEM_SLOTS = 36,
	VU_MAX_REQUEST,
};

#define VU_VERSION 0x1u
#define VU_FLAG_REPLY 0x4u
#define VU_FLAG_NEED_REPLY 0x8u
#define VU_F_PROTOCOL_FEATURES 30
#define VU_PROTO_F_MQ 0
#define VU_PROTO_F_REPLY_ACK 3
#define VU_PROTO_F_CONFIG 9
#define BIT(n) (UINT64_C(1) << (n))
#define PROTOCOL_FEATURES (BIT(VU_PROTO_F_MQ) | BIT(VU_PROTO_F_REPLY_ACK) | BIT(VU_PROTO_F_CONFIG))
/* SET_VRING_KICK/CALL/ERR: the queue in bits 0-7, "no fd" in bit 8. */
#define VU_VRING_IDX_MASK 0xffu
#define VU_VRING_NOFD 0x100u
/* The front end's memory table holds at most this many regions (QEMU's
 * VHOST_MEMORY_BASELINE_NREGIONS): one fd each, so also the most fds. */
#define VU_MAX_REGIONS 8
#define VU_MAX_FDS VU_MAX_REGIONS
/* The rest of a message must follow its header at once. */
#define VU_PAYLOAD_TIMEOUT_MS 2000

_Static_assert(VU_MAX_REGIONS <= WIRE_MAX_REGIONS, "the memory view holds a full table");

struct vu_header {
	uint32_t request, flags, size;
};

struct vu_region {
	uint64_t gpa, size, uaddr, offset;
};

struct vu_addr {
	uint32_t index, flags;
	uint64_t desc, used, avail, log;
};

struct vu_config {
	uint32_t offset, size, flags;
	uint8_t data[IOREQ_VIRTIO_MAX_CONFIG];
};

union vu_payload {
	uint64_t u64;
	struct {
		uint32_t index, num;
	} state;
	struct vu_addr addr;
	struct {
		uint32_t n, padding;
		struct vu_region r[VU_MAX_REGIONS];
	} mem;
	struct vu_config config;
};

#define VU_CONFIG_HDR (offsetof(struct vu_config, data))

struct vu_msg {
	struct vu_header h;
	union vu_payload p;
	int fds[VU_MAX_FDS];
	size_t n_fds;
};

struct vu_queue {
	unsigned num;                   /* 0: not set */
	struct vu_addr addr;
	bool addr_set, enabled;
	uint16_t base;                  /* where the ring starts again */
	int kick, call, err;
	struct ioreq_vq *vq;            /* while the device runs the ring */
};

/* One mapped region of the front end's memory. */
struct vu_map {
	struct vu_region r;
	void *base;                     /* the mapping, page-aligned */
	size_t len;
	uint8_t *host;                  /* where guest-physical r.gpa is */
};

struct vu {
	int listen_fd;
	bool own_path;                  /* we created it: unlink at the end */
	struct sockaddr_un path;
	int conn;                       /* the front end, or -1 */

	/* The front end's state, forgotten when it goes. */
	uint64_t features;
	bool features_set;
	uint64_t protocol;
	struct vu_map maps[VU_MAX_REGIONS];
	size_t n_maps;
	struct ioreq_mem mem;
	struct vu_queue q[IOREQ_VIRTIO_MAX_QUEUES];
	bool started;                   /* virtio_call_start succeeded */
	bool broken;                    /* a ring broke: serving stops */

	/* The broker's thread. */
	pthread_t broker_thread;
	int broker_status;
	_Atomic bool stopping;
};

static struct vu *vu_of(struct ioreq_virtio *v)
{
	return v->tp;
}

/* ---- the device's side ---- */

/* Sets the device going once a ring is ready: the front end set the
 * features, the memory and at least one ring (address, size, kick,
 * enabled). Rings that get ready later join a running device. */
static bool queue_ready(const struct vu_queue *q)
{
	return q->num && q->addr_set && q->kick >= 0 && q->enabled;
}

/* The guest-physical address of front-end address @ua, or -EFAULT. */
static int ua_to_gpa(const struct vu *u, uint64_t ua, uint64_t *ret)
{
	for (size_t i = 0; i < u->n_maps; i++) {
		const struct vu_region *r = &u->maps[i].r;

		if (ua >= r->uaddr && ua - r->uaddr < r->size) {
			*ret = r->gpa + (ua - r->uaddr);
			return 0;
		}
	}
	return -EFAULT;
}

static int queue_build(struct ioreq_virtio *v, struct vu *u, unsigned i)
{
	struct vu_queue *q = &u->q[i];
	struct ioreq_vq_config c = {
		.size = q->num,
		.event_idx = v->features & BIT(IOREQ_VIRTIO_F_EVENT_IDX),
		.indirect = v->features & BIT(IOREQ_VIRTIO_F_INDIRECT_DESC),
		.start = q->base,
	};
	int r;

	r = ua_to_gpa(u, q->addr.desc, &c.desc);
	if (r == 0)
		r = ua_to_gpa(u, q->addr.avail, &c.avail);
	if (r == 0)
		r = ua_to_gpa(u, q->addr.used, &c.used);
	if (r == 0)
		r = ioreq_vq_new(&u->mem, &c, &q->vq);
	if (r < 0)
		ioreq_virtio_log(v, "vhost-user: ring %u lies outside the memory table: %s", i, strerror(-r));
	return r;
}

static void call_kick(struct ioreq_virtio *v, unsigned i)
{
	struct vu *u = vu_of(v);

	if (u->started && !u->broken && u->q[i].vq)
		virtio_call_kick(v, i, u->q[i].vq);
}

/* Under the lock. Starts the device, or adds the rings that got ready.
 * A negative errno ends the connection. */
static int device_update(struct ioreq_virtio *v, struct vu *u)
{
	unsigned n = v->dev->num_queues;
	bool any = false;
	int r;

	if (!u->features_set || !u->n_maps || u->broken)
		return 0;
	for (unsigned i = 0; i < n; i++)
		any |= queue_ready(&u->q[i]);
	if (!any)
		return 0;
	if (!u->started) {
		v->features = u->features & ~BIT(VU_F_PROTOCOL_FEATURES);
		v->mem = &u->mem;
	}
	for (unsigned i = 0; i < n; i++) {
		if (queue_ready(&u->q[i]) && !u->q[i].vq) {
			r = queue_build(v, u, i);
			if (r < 0)
				goto fail;
		}
	}
	if (!u->started) {
		r = virtio_call_start(v);
		if (r < 0) {
			ioreq_virtio_log(v, "vhost-user: the device refused to start: %s", strerror(-r));
			goto fail;
		}
		u->started = true;
	}
	/* The device just started, or a ring joined: pop what is there. */
	for (unsigned i = 0; i < n; i++)
		call_kick(v, i);
	return 0;
fail:
	if (!u->started) {
		for (unsigned i = 0; i < n; i++)
			u->q[i].vq = ioreq_vq_free(u->q[i].vq);
		v->features = 0;
		v->mem = NULL;
	}
	return r;
}

/* Under the lock: the device forgets every ring (after waiting for or
 * abandoning its work); each ring remembers where it stopped. */
static void device_stop(struct ioreq_virtio *v, struct vu *u)
{
	if (u->started)
		virtio_call_reset(v);
	for (unsigned i = 0; i < v->dev->num_queues; i++) {
		struct vu_queue *q = &u->q[i];

		if (q->vq)
			q->base = ioreq_vq_next_avail(q->vq);
		q->vq = ioreq_vq_free(q->vq);
	}
	u->started = false;
	u->broken = false;
	v->features = 0;
	v->mem = NULL;
}

static int vu_done(struct ioreq_virtio *v, unsigned i)
{
	struct vu *u = vu_of(v);
	uint64_t one = 1;
	int r;

	if (i >= v->dev->num_queues || !u->q[i].vq)
		return -EINVAL;
	r = ioreq_vq_notify_needed(u->q[i].vq);
	if (r > 0 && u->q[i].call >= 0 && write(u->q[i].call, &one, sizeof(one)) < 0 && errno != EAGAIN)
		ioreq_virtio_log(v, "vhost-user: cannot signal ring %u's call eventfd: %s", i, strerror(errno));
	return r;
}

/* vhost-user has no DEVICE_NEEDS_RESET: a broken ring stops the device
 * until the front end stops it (GET_VRING_BASE), resets it or goes. */
static int vu_needs_reset(struct ioreq_virtio *v, int error)
{
	struct vu *u = vu_of(v);

	for (unsigned i = 0; i < v->dev->num_queues; i++) {
		const char *why = u->q[i].vq ? ioreq_vq_broken(u->q[i].vq) : NULL;

		if (why)
			ioreq_virtio_log(v, "vhost-user: ring %u: %s: the device stops until the front end resets it",
					 i, why);
	}
	if (!u->broken)
		ioreq_virtio_log(v, "vhost-user: the device stopped: %s", strerror(-error));
	u->broken = true;
	return error;
}

/* The front end learns of a changed configuration only through a back-end
 * channel (SLAVE_REQ), which is not offered: it reads it again when it
 * asks (GET_CONFIG). */
static void vu_config_changed(struct ioreq_virtio *v)
{
	(void)v;
}

/* ---- one front end ---- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void unmap_all(struct vu *u)
{
	for (size_t i = 0; i < u->n_maps; i++)
		munmap(u->maps[i].base, u->maps[i].len);
	u->n_maps = 0;
	u->mem.n = 0;
}

/* Under the lock: forgets the front end (the device reset first). */
static void conn_end(struct ioreq_virtio *v, struct vu *u)
{
	device_stop(v, u);
	for (unsigned i = 0; i < IOREQ_VIRTIO_MAX_QUEUES; i++) {
		struct vu_queue *q = &u->q[i];

		close_fd(&q->kick);
		close_fd(&q->call);
		close_fd(&q->err);
		*q = (struct vu_queue){ .kick = -1, .call = -1, .err = -1 };
	}
	unmap_all(u);
	u->features = 0;
	u->features_set = false;
	u->protocol = 0;
	close_fd(&u->conn);
}

/* Reads exactly @len bytes of the payload, which must follow promptly. */
static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n = read(fd, p, len);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		n = poll(&pfd, 1, VU_PAYLOAD_TIMEOUT_MS);
		if (n == 0)
			return -ETIMEDOUT;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

static void close_fds(struct vu_msg *m)
{
	for (size_t i = 0; i < m->n_fds; i++)
		close(m->fds[i]);
	m->n_fds = 0;
}

/* Receives one message: 1, 0 at the end of the stream, or a negative
 * errno; @why says what was wrong. The fds come with the header. */
static int msg_recv(int fd, struct vu_msg *m, const char **why)
{
	union {
		char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { &m->h, sizeof(m->h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;
	int r;

	m->n_fds = 0;
	/* Handlers may look at a field before checking the size: zeros. */
	memset(&m->p, 0, sizeof(m->p));
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return -EAGAIN;
	if (n < 0)
		return *why = "cannot read from the front end", -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (m->n_fds < VU_MAX_FDS)
				m->fds[m->n_fds++] = f;
			else
				close(f);
		}
	}
	if (mh.msg_flags & MSG_CTRUNC)
		return *why = "more fds than any message carries", -EPROTO;
	if (n == 0)
		return 0;
	if ((size_t)n < sizeof(m->h)) {
		r = read_full(fd, (uint8_t *)&m->h + n, sizeof(m->h) - (size_t)n);
		if (r < 0)
			return *why = "a truncated header", r;
	}
	if ((m->h.flags & 0x3) != VU_VERSION)
		return *why = "a message of another protocol version", -EPROTO;
	if (m->h.size > sizeof(m->p))
		return *why = "an oversized message", -EMSGSIZE;
	r = read_full(fd, &m->p, m->h.size);
	if (r < 0)
		return *why = "a truncated message", r;
	return 1;
}

static int msg_reply(struct vu *u, const struct vu_msg *m, const void *payload, uint32_t size)
{
	struct vu_header h = { m->h.request, VU_VERSION | VU_FLAG_REPLY, size };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, size } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	size_t want = sizeof(h) + size;
	ssize_t n;

	/* Replies are small: a front end that cannot take one is gone. */
	do
		n = sendmsg(u->conn, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == want ? 0 : -EPIPE;
}

/* The checks every handler shares: a payload of exactly @size bytes (0:
 * none) and exactly @n_fds fds. */
static const char *msg_shape(const struct vu_msg *m, uint32_t size, size_t n_fds)
{
	if (m->h.size != size)
		return "a payload of the wrong size";
	if (m->n_fds != n_fds)
		return "the wrong number of fds";
	return NULL;
}

/* A queue index from the front end. */
static struct vu_queue *queue_at(struct ioreq_virtio *v, struct vu *u, uint32_t i)
{
	return i < v->dev->num_queues ? &u->q[i] : NULL;
}

/* Sets @fd non-blocking: a front end's eventfd is read and written from
 * the loop, which must never wait on it. */
static int nonblock(int fd)
{
	return fcntl(fd, F_SETFL, O_NONBLOCK) < 0 ? -errno : 0;
}

struct vu_ctx {
	struct ioreq_virtio *v;
	struct vu *u;
	struct vu_msg *m;
	const char *why;                /* set on a protocol error */
	uint64_t reply;                 /* REPLY_ACK: 0 or a failure */
	bool replied;                   /* the handler sent its own reply */
};

#define BAD(c, text) ((c)->why = (text), -EPROTO)

static int reply_u64(struct vu_ctx *c, uint64_t val)
{
	c->replied = true;
	return msg_reply(c->u, c->m, &val, sizeof(val));
}

static int on_get_features(struct vu_ctx *c)
{
	if ((c->why = msg_shape(c->m, 0, 0)))
		return -EPROTO;
	return reply_u64(c, c->v->offered | BIT(VU_F_PROTOCOL_FEATURES));
}

static int on_set_features(struct vu_ctx *c)
{
	uint64_t f = c->m->p.u64;

	if ((c->why = msg_shape(c->m, 8, 0)))
		return -EPROTO;
	if (f & ~(c->v->offered | BIT(VU_F_PROTOCOL_FEATURES)))
		return BAD(c, "features the device did not offer");
	/* A running device keeps what it started with. */
	if (c->u->started && (f & ~BIT(VU_F_PROTOCOL_FEATURES)) != c->v->features)
		return BAD(c, "features changed while the device runs");
	c->u->features = f;
	c->u->features_set = true;
	/* Without protocol features there is no SET_VRING_ENABLE: a ring is
	 * enabled as soon as it is set up. */
	if (!(f & BIT(VU_F_PROTOCOL_FEATURES)))
		for (unsigned i = 0; i < c->v->dev->num_queues; i++)
			c->u->q[i].enabled = true;
	return device_update(c->v, c->u) < 0 ? BAD(c, "a ring outside the memory table") : 0;
}

static int on_get_protocol_features(struct vu_ctx *c)
{
	if ((c->why = msg_shape(c->m, 0, 0)))
		return -EPROTO;
	return reply_u64(c, PROTOCOL_FEATURES);
}

static int on_set_protocol_features(struct vu_ctx *c)
{
	if ((c->why = msg_shape(c->m, 8, 0)))
		return -EPROTO;
	if (c->m->p.u64 & ~PROTOCOL_FEATURES)
		return BAD(c, "protocol features the device did not offer");
	c->u->protocol = c->m->p.u64;
	return 0;
}

static int on_nothing(struct vu_ctx *c)
{
	return (c->why = msg_shape(c->m, 0, 0)) ? -EPROTO : 0;
}

/* RESET_OWNER, RESET_DEVICE: back to the state after setup, the memory
 * and the rings' fds forgotten too. */
static int on_reset(struct vu_ctx *c)
{
	int conn = c->u->conn;

	if ((c->why = msg_shape(c->m, 0, 0)))
		return -EPROTO;
	c->u->conn = -1;
	conn_end(c->v, c->u);
	c->u->conn = conn;
	return 0;
}

static int on_get_queue_num(struct vu_ctx *c)
{
	if ((c->why = msg_shape(c->m, 0, 0)))
		return -EPROTO;
	return reply_u64(c, c->v->dev->num_queues);
}

static int on_get_max_mem_slots(struct vu_ctx *c)
{
	if ((c->why = msg_shape(c->m, 0, 0)))
		return -EPROTO;
	return reply_u64(c, VU_MAX_REGIONS);
}

/* Maps region @r from @fd: sealed against shrinking (as the broker's
 * memfds are), so that no pointer into it can ever fault, and wholly
 * inside the file. */
static const char *map_region(const struct vu_region *r, int fd, struct vu_map *ret)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t start, delta;
	struct stat st;
	int seals;
	void *p;

	if (!r->size || r->gpa + (r->size - 1) < r->gpa || r->uaddr + (r->size - 1) < r->uaddr ||
	    r->offset + r->size < r->offset)
		return "an empty or wrapping memory region";
	seals = fcntl(fd, F_GET_SEALS);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || seals < 0 || !(seals & F_SEAL_SHRINK))
		return "a memory region not in a file sealed against shrinking (a memfd with seal=on)";
	if (r->offset + r->size > (uint64_t)st.st_size)
		return "a memory region beyond the end of its file";
	start = r->offset & ~(uint64_t)(page - 1);
	delta = r->offset - start;
	if (r->size > SIZE_MAX - delta)
		return "a memory region too large to map";
	p = mmap(NULL, delta + r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)start);
	if (p == MAP_FAILED)
		return "a memory region that cannot be mapped";
	*ret = (struct vu_map){ *r, p, delta + r->size, (uint8_t *)p + delta };
	return NULL;
}

static int on_set_mem_table(struct vu_ctx *c)
{
	struct vu *u = c->u;
	struct vu_map maps[VU_MAX_REGIONS];
	struct ioreq_mem_region regions[VU_MAX_REGIONS];
	uint8_t *hosts[VU_MAX_REGIONS];
	uint32_t n = c->m->p.mem.n;
	size_t done = 0;
	int r = -EPROTO;

	if (c->m->h.size < 8 || n > VU_MAX_REGIONS || !n)
		return BAD(c, "a memory table of no or too many regions");
	if ((c->why = msg_shape(c->m, 8 + n * (uint32_t)sizeof(struct vu_region), n)))
		return -EPROTO;
	for (; done < n; done++) {
		const struct vu_region *a = &c->m->p.mem.r[done];

		c->why = map_region(a, c->m->fds[done], &maps[done]);
		if (c->why)
			goto fail;
		/* Front-end addresses translate rings: no two regions may
		 * overlap there either. */
		for (size_t j = 0; j < done; j++) {
			const struct vu_region *b = &c->m->p.mem.r[j];

			if (a->uaddr <= b->uaddr + (b->size - 1) && b->uaddr <= a->uaddr + (a->size - 1)) {
				c->why = "memory regions overlapping in the front end's address space";
				munmap(maps[done].base, maps[done].len);
				goto fail;
			}
		}
		regions[done] = (struct ioreq_mem_region){ a->gpa, a->size, false };
		hosts[done] = maps[done].host;
	}
	if (mem_view_init_hosts(&(struct ioreq_mem){ 0 }, regions, hosts, n) < 0) {
		c->why = "memory regions overlapping in guest-physical space";
		goto fail;
	}
	/* New memory under running rings: the device stops, and starts
	 * again over the new table from where each ring stopped. */
	device_stop(c->v, u);
	unmap_all(u);
	memcpy(u->maps, maps, n * sizeof(maps[0]));
	u->n_maps = n;
	mem_view_init_hosts(&u->mem, regions, hosts, n);
	return device_update(c->v, u) < 0 ? BAD(c, "a ring outside the new memory table") : 0;
fail:
	while (done--)
		munmap(maps[done].base, maps[done].len);
	return r;
}

static int on_set_vring_num(struct vu_ctx *c)
{
	struct vu_queue *q = queue_at(c->v, c->u, c->m->p.state.index);
	uint32_t num = c->m->p.state.num;

	if ((c->why = msg_shape(c->m, 8, 0)))
		return -EPROTO;
	if (!q)
		return BAD(c, "a ring index out of range");
	if (q->vq)
		return BAD(c, "a running ring resized");
	if (!num || num > c->v->dev->queue_max_size || (num & (num - 1)))
		return BAD(c, "a ring size that is not a power of 2 up to the device's largest");
	q->num = num;
	return 0;
}

static int on_set_vring_addr(struct vu_ctx *c)
{
	struct vu_queue *q = queue_at(c->v, c->u, c->m->p.addr.index);
	uint64_t gpa;

	if ((c->why = msg_shape(c->m, sizeof(struct vu_addr), 0)))
		return -EPROTO;
	if (!q)
		return BAD(c, "a ring index out of range");
	if (q->vq)
		return BAD(c, "a running ring moved");
	if (ua_to_gpa(c->u, c->m->p.addr.desc, &gpa) < 0 || ua_to_gpa(c->u, c->m->p.addr.avail, &gpa) < 0 ||
	    ua_to_gpa(c->u, c->m->p.addr.used, &gpa) < 0)
		return BAD(c, "a ring outside the memory table");
	q->addr = c->m->p.addr;
	q->addr_set = true;
	return device_update(c->v, c->u) < 0 ? BAD(c, "a ring outside the memory table") : 0;
}

static int on_set_vring_base(struct vu_ctx *c)
{
	struct vu_queue *q = queue_at(c->v, c->u, c->m->p.state.index);

	if ((c->why = msg_shape(c->m, 8, 0)))
		return -EPROTO;
	if (!q)
		return BAD(c, "a ring index out of range");
	if (q->vq)
		return BAD(c, "the base of a running ring");
	if (c->m->p.state.num > UINT16_MAX)
		return BAD(c, "a ring base beyond 16 bits");
	q->base = (uint16_t)c->m->p.state.num;
	return 0;
}

/* Stops the ring: the whole device stops (its work done or abandoned) and
 * every ring waits for its kick fd again; answers where this one stopped. */
static int on_get_vring_base(struct vu_ctx *c)
{
	struct vu_queue *q = queue_at(c->v, c->u, c->m->p.state.index);
	struct {
		uint32_t index, num;
	} st;

	if ((c->why = msg_shape(c->m, 8, 0)))
		return -EPROTO;
	if (!q)
		return BAD(c, "a ring index out of range");
	device_stop(c->v, c->u);
	for (unsigned i = 0; i < c->v->dev->num_queues; i++)
		close_fd(&c->u->q[i].kick);
	st.index = c->m->p.state.index;
	st.num = q->base;
	c->replied = true;
	return msg_reply(c->u, c->m, &st, sizeof(st));
}

/* SET_VRING_KICK, CALL, ERR: @which of the ring's fds. */
static int set_vring_fd(struct vu_ctx *c, size_t which)
{
	uint64_t val = c->m->p.u64;
	bool nofd = val & VU_VRING_NOFD;
	struct vu_queue *q;
	int *slot, r;

	if ((c->why = msg_shape(c->m, 8, nofd ? 0 : 1)))
		return -EPROTO;
	if (val & ~(uint64_t)(VU_VRING_IDX_MASK | VU_VRING_NOFD))
		return BAD(c, "unknown bits in a ring's fd message");
	q = queue_at(c->v, c->u, val & VU_VRING_IDX_MASK);
	if (!q)
		return BAD(c, "a ring index out of range");
	slot = which == 0 ? &q->kick : which == 1 ? &q->call : &q->err;
	if (!nofd && nonblock(c->m->fds[0]) < 0)
		return BAD(c, "a ring fd that cannot be made non-blocking");
	close_fd(slot);
	if (!nofd) {
		*slot = c->m->fds[0];
		c->m->n_fds = 0;
	}
	/* Polling (no kick fd) is not served: the ring waits for one. */
	if (which == 0 && nofd && q->vq)
		return BAD(c, "a running ring left without a kick fd");
	r = which == 0 ? device_update(c->v, c->u) : 0;
	return r < 0 ? BAD(c, "a ring outside the memory table") : 0;
}

static int on_set_vring_kick(struct vu_ctx *c)
{
	return set_vring_fd(c, 0);
}

static int on_set_vring_call(struct vu_ctx *c)
{
	return set_vring_fd(c, 1);
}

static int on_set_vring_err(struct vu_ctx *c)
{
	return set_vring_fd(c, 2);
}

static int on_set_vring_enable(struct vu_ctx *c)
{
	struct vu_queue *q = queue_at(c->v, c->u, c->m->p.state.index);

	if ((c->why = msg_shape(c->m, 8, 0)))
		return -EPROTO;
	if (!q)
		return BAD(c, "a ring index out of range");
	if (c->m->p.state.num > 1)
		return BAD(c, "a ring enabled with neither 0 nor 1");
	/* Disabling one ring of a running device stops the device: it cannot
	 * forget one ring alone. */
	if (!c->m->p.state.num && q->vq)
		device_stop(c->v, c->u);
	q->enabled = c->m->p.state.num;
	return device_update(c->v, c->u) < 0 ? BAD(c, "a ring outside the memory table") : 0;
}

/* GET_CONFIG and SET_CONFIG: [offset, offset + size) of a configuration
 * the front end may see as larger than the device's (zeros past it). */
static const char *config_range(const struct vu_msg *m)
{
	const struct vu_config *cf = &m->p.config;

	if (m->h.size < VU_CONFIG_HDR || m->n_fds)
		return "a malformed configuration message";
	if (cf->size > IOREQ_VIRTIO_MAX_CONFIG || cf->offset > IOREQ_VIRTIO_MAX_CONFIG - cf->size ||
	    m->h.size != VU_CONFIG_HDR + cf->size)
		return "a configuration range out of bounds";
	return NULL;
}

static int on_get_config(struct vu_ctx *c)
{
	struct vu_config out = c->m->p.config;
	unsigned have = c->v->dev->config_size;

	if ((c->why = config_range(c->m)))
		return -EPROTO;
	memset(out.data, 0, out.size);
	if (out.offset < have)
		memcpy(out.data, c->v->config + out.offset, out.size < have - out.offset ? out.size : have - out.offset);
	c->replied = true;
	return msg_reply(c->u, c->m, &out, (uint32_t)(VU_CONFIG_HDR + out.size));
}

static int on_set_config(struct vu_ctx *c)
{
	const struct vu_config *cf = &c->m->p.config;
	unsigned have = c->v->dev->config_size;

	if ((c->why = config_range(c->m)))
		return -EPROTO;
	if (cf->offset + cf->size > have || !c->v->ops->config_write) {
		c->reply = 1;
		return 0;
	}
	/* The device takes writes of up to 8 bytes, as a driver makes them. */
	for (unsigned off = 0; off < cf->size;) {
		unsigned len = cf->size - off < 8 ? cf->size - off : 8;
		uint64_t val = 0;

		for (unsigned b = 0; b < len; b++)
			val |= (uint64_t)cf->data[off + b] << (8 * b);
		c->v->ops->config_write(c->v, cf->offset + off, len, val, c->v->opaque);
		off += len;
	}
	return 0;
}

static int (*const handlers[VU_MAX_REQUEST])(struct vu_ctx *c) = {
	[VU_GET_FEATURES] = on_get_features,
	[VU_SET_FEATURES] = on_set_features,
	[VU_SET_OWNER] = on_nothing,
	[VU_RESET_OWNER] = on_reset,
	[VU_SET_MEM_TABLE] = on_set_mem_table,
	[VU_SET_VRING_NUM] = on_set_vring_num,
	[VU_SET_VRING_ADDR] = on_set_vring_addr,
	[VU_SET_VRING_BASE] = on_set_vring_base,
	[VU_GET_VRING_BASE] = on_get_vring_base,
	[VU_SET_VRING_KICK] = on_set_vring_kick,
	[VU_SET_VRING_CALL] = on_set_vring_call,
	[VU_SET_VRING_ERR] = on_set_vring_err,
	[VU_GET_PROTOCOL_FEATURES] = on_get_protocol_features,
	[VU_SET_PROTOCOL_FEATURES] = on_set_protocol_features,
	[VU_GET_QUEUE_NUM] = on_get_queue_num,
	[VU_SET_VRING_ENABLE] = on_set_vring_enable,
	[VU_GET_CONFIG] = on_get_config,
	[VU_SET_CONFIG] = on_set_config,
	[VU_RESET_DEVICE] = on_reset,
	[VU_GET_MAX_MEM_SLOTS] = on_get_max_mem_slots,
};

/* One message from the front end, under the lock. 0, or a negative errno
 * and the connection ends (logged here). */
static int conn_message(struct ioreq_virtio *v, struct vu *u)
{
	struct vu_msg m;
	struct vu_ctx c = { .v = v, .u = u, .m = &m };
	int r;

	r = msg_recv(u->conn, &m, &c.why);
	if (r == -EAGAIN)
		return 0;
	if (r == 0) {
		close_fds(&m);
		ioreq_virtio_log(v, "vhost-user: the front end went away");
		return -ECONNRESET;
	}
	if (r > 0) {
		if (m.h.request < VU_MAX_REQUEST && handlers[m.h.request])
			r = handlers[m.h.request](&c);
		else
			r = BAD(&c, "an unknown or unsupported request");
	}
	close_fds(&m);
	if (r == 0 && !c.replied && (m.h.flags & VU_FLAG_NEED_REPLY) && (u->protocol & BIT(VU_PROTO_F_REPLY_ACK)))
		r = msg_reply(u, &m, &c.reply, sizeof(c.reply));
	if (r < 0) {
		if (c.why)
			ioreq_virtio_log(v, "vhost-user: %s (request %" PRIu32 "): disconnecting", c.why,
					 m.h.request);
		else
			ioreq_virtio_log(v, "vhost-user: cannot answer the front end: %s: disconnecting",
					 strerror(-r));
	}
	return r;
}

/* ---- the loop ---- */

static void *broker_main(void *arg)
{
	struct ioreq_virtio *v = arg;
	struct vu *u = vu_of(v);
	uint64_t one = 1;
	int r = ioreq_dev_serve(v->broker);

	if (r < 0)
		ioreq_virtio_log(v, "the broker connection failed: %s", strerror(-r));
	u->broker_status = r < 0 ? 1 : 0;
	atomic_store(&u->stopping, true);
	if (write(v->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		ioreq_virtio_log(v, "cannot wake the queue thread: %s", strerror(errno));
	return NULL;
}

/* SOCKET: "fd:N", a listening socket the broker passed, or a path to
 * listen on (for `sandbox: none`). */
static int listen_on(struct vu *u, const char *spec)
{
	char *end;

	if (!strncmp(spec, "fd:", 3)) {
		long fd = strtol(spec + 3, &end, 10);

		if (end == spec + 3 || *end || fd < 3 || fd > INT_MAX)
			return -EINVAL;
		u->listen_fd = (int)fd;
		return 0;
	}
	if (strlen(spec) >= sizeof(u->path.sun_path))
		return -ENAMETOOLONG;
	u->path.sun_family = AF_UNIX;
	strcpy(u->path.sun_path, spec);
	u->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (u->listen_fd < 0)
		return -errno;
	unlink(spec);
	if (bind(u->listen_fd, (struct sockaddr *)&u->path, sizeof(u->path)) < 0 || listen(u->listen_fd, 1) < 0) {
		int r = -errno;

		close_fd(&u->listen_fd);
		return r;
	}
	u->own_path = true;
	return 0;
}

static void conn_accept(struct ioreq_virtio *v, struct vu *u)
{
	int fd = accept4(u->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			ioreq_virtio_log(v, "vhost-user: accept: %s", strerror(errno));
		return;
	}
	u->conn = fd;
	ioreq_virtio_log(v, "vhost-user: a front end connected");
}

/* A kick eventfd: drained, then the device pops. A "kick fd" that reads
 * as anything but an eventfd's counter (a pipe at its end, a socket)
 * would have the loop spin: it ends the connection. */
static int queue_kicked(struct ioreq_virtio *v, struct vu *u, unsigned i)
{
	uint64_t n;
	ssize_t k = read(u->q[i].kick, &n, sizeof(n));

	if (k != sizeof(n) && !(k < 0 && errno == EAGAIN)) {
		ioreq_virtio_log(v, "vhost-user: ring %u's kick fd is no eventfd: disconnecting", i);
		return -EPROTO;
	}
	call_kick(v, i);
	return 0;
}

enum { P_WAKE, P_WATCH, P_SOCK, P_QUEUES };

static int vu_loop(struct ioreq_virtio *v, struct vu *u)
{
	struct pollfd pfd[P_QUEUES + IOREQ_VIRTIO_MAX_QUEUES];
	unsigned qidx[IOREQ_VIRTIO_MAX_QUEUES];
	unsigned n = v->dev->num_queues;

	while (!atomic_load(&u->stopping)) {
		size_t k = P_QUEUES;

		pfd[P_WAKE] = (struct pollfd){ v->wake_fd, POLLIN, 0 };
		pfd[P_WATCH] = (struct pollfd){ v->watch_fd, POLLIN, 0 };
		pfd[P_SOCK] = (struct pollfd){ u->conn >= 0 ? u->conn : u->listen_fd, POLLIN, 0 };
		for (unsigned i = 0; i < n; i++) {
			if (u->started && !u->broken && u->q[i].vq && u->q[i].kick >= 0) {
				qidx[k - P_QUEUES] = i;
				pfd[k++] = (struct pollfd){ u->q[i].kick, POLLIN, 0 };
			}
		}
		if (poll(pfd, k, -1) < 0) {
			if (errno == EINTR)
				continue;
			ioreq_virtio_log(v, "poll: %s", strerror(errno));
			return -errno;
		}
		pthread_mutex_lock(&v->lock);
		if (pfd[P_WAKE].revents) {
			uint64_t kicks = virtio_take_kicks(v);

			for (unsigned i = 0; i < n; i++)
				if (kicks & BIT(i))
					call_kick(v, i);
		}
		if (pfd[P_WATCH].revents)
			virtio_call_event(v);
		/* The fds below were the ones polled: nothing changed them
		 * since, the lock was not released. */
		for (size_t j = P_QUEUES; j < k && u->conn >= 0; j++) {
			if (pfd[j].revents && queue_kicked(v, u, qidx[j - P_QUEUES]) < 0) {
				conn_end(v, u);
				pfd[P_SOCK].revents = 0;
			}
		}
		if (pfd[P_SOCK].revents) {
			if (u->conn < 0)
				conn_accept(v, u);
			else if (conn_message(v, u) < 0)
				conn_end(v, u);
		}
		pthread_mutex_unlock(&v->lock);
	}
	return 0;
}

static int vhost_user_serve(struct ioreq_virtio *v)
{
	struct vu *u = calloc(1, sizeof(*u));
	int r, status;

	if (!u) {
		ioreq_virtio_log(v, "out of memory");
		return 1;
	}
	u->conn = u->listen_fd = -1;
	for (unsigned i = 0; i < IOREQ_VIRTIO_MAX_QUEUES; i++)
		u->q[i] = (struct vu_queue){ .kick = -1, .call = -1, .err = -1 };
	v->tp = u;
	r = listen_on(u, v->args->vhost_user);
	if (r < 0) {
		ioreq_virtio_log(v, "--vhost-user %s: cannot listen: %s", v->args->vhost_user, strerror(-r));
		free(u);
		v->tp = NULL;
		return r == -EINVAL ? 2 : 1;
	}
	r = pthread_create(&u->broker_thread, NULL, broker_main, v);
	if (r) {
		ioreq_virtio_log(v, "cannot start the broker thread: %s", strerror(r));
		status = 1;
		goto out;
	}
	status = vu_loop(v, u) < 0 ? 1 : 0;
	pthread_mutex_lock(&v->lock);
	conn_end(v, u);
	pthread_mutex_unlock(&v->lock);
	/* The loop ends only once the broker thread is done, or on a poll
	 * failure that leaves it serving until the broker stops it. */
	pthread_join(u->broker_thread, NULL);
	if (u->broker_status)
		status = 1;
out:
	if (u->own_path)
		unlink(u->path.sun_path);
	close_fd(&u->listen_fd);
	v->tp = NULL;
	free(u);
	return status;
}

/* The broker's requests: a vhost-user device has no ranges of its own. */
static const struct ioreq_dev_ops vhost_user_dev_ops = { 0 };

const struct virtio_transport vhost_user_transport = {
	.name = "vhost-user",
	.dev_ops = &vhost_user_dev_ops,
	.serve = vhost_user_serve,
	.done = vu_done,
	.needs_reset = vu_needs_reset,
	.config_changed = vu_config_changed,
};
