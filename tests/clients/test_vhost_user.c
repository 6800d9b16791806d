/* The vhost-user transport (clients/lib/vhost_user.c) against a front end
 * written here: the protocol from the spec (QEMU's
 * docs/interop/vhost-user.rst), guest memory in a sealed memfd, eventfds
 * for kicks and calls. One honest session sets a ring up and has a request
 * served; then hostile front ends, each of which must see its connection
 * end while the device goes on serving the next one.
 *
 * The device is a small echo device of the test's own on ioreq/virtio.h,
 * run by the real ioreq_virtio_run in a thread; the broker connection is a
 * link-time fake (the ioreq_dev_* below): ioreq_dev_serve returns when the
 * test says so, as on the broker's Shutdown. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "ioreq/virtio.h"
#include "virtio_impl.h"

/* ---- the fake broker connection ---- */

/* The other transport is not this test's: never chosen (--vhost-user is). */
const struct virtio_transport virtio_pci_transport = { .name = "virtio-pci" };

static int stop_pipe[2] = { -1, -1 };

int ioreq_dev_take_args(int *argc, char **argv, const char **ret_url, const char **ret_name)
{
	(void)argc, (void)argv;
	*ret_url = "fake://";
	*ret_name = "echo0";
	return 0;
}

int ioreq_dev_connect(const char *url, const char *name, const struct ioreq_dev_ops *ops, void *opaque,
		      struct ioreq_dev **ret)
{
	(void)url, (void)name, (void)ops, (void)opaque;
	*ret = (struct ioreq_dev *)&stop_pipe;
	return 0;
}

int ioreq_dev_serve(struct ioreq_dev *dev)
{
	char c;

	(void)dev;
	return read(stop_pipe[0], &c, 1) == 1 ? 0 : -EIO;
}

struct ioreq_dev *ioreq_dev_close(struct ioreq_dev *dev)
{
	(void)dev;
	return NULL;
}

int ioreq_dev_file(const struct ioreq_dev *dev, size_t i, int *ret_fd, bool *ret_writable)
{
	(void)dev, (void)i, (void)ret_fd, (void)ret_writable;
	return -ENOENT;
}

/* ---- the device: echoes each chain's readable bytes into its writable ones ---- */

#define ECHO_QUEUES 2
#define ECHO_CONFIG "echo-config-bytes"

static _Atomic unsigned resets, starts;

static void echo_kick(struct ioreq_virtio *v, unsigned q, struct ioreq_vq *vq, void *opaque)
{
	struct iovec iov[16];
	struct ioreq_vq_chain c;
	int r;

	(void)opaque;
	while ((r = ioreq_vq_pop(vq, iov, 16, &c)) > 0) {
		uint8_t buf[256];
		size_t n = 0;

		for (unsigned i = 0; i < c.n_out && n < sizeof(buf); i++) {
			size_t k = iov[i].iov_len < sizeof(buf) - n ? iov[i].iov_len : sizeof(buf) - n;

			memcpy(buf + n, iov[i].iov_base, k);
			n += k;
		}
		if (c.n_in && iov[c.n_out].iov_len >= n)
			memcpy(iov[c.n_out].iov_base, buf, n);
		ioreq_vq_push(vq, c.head, c.n_in ? (uint32_t)n : 0);
	}
	if (r < 0)
		ioreq_virtio_needs_reset(v, r);
	else
		ioreq_virtio_done(v, q);
}

static int echo_setup(struct ioreq_virtio *v, void *opaque)
{
	(void)opaque;
	return ioreq_virtio_set_config(v, 0, ECHO_CONFIG, sizeof(ECHO_CONFIG));
}

static int echo_start(struct ioreq_virtio *v, void *opaque)
{
	(void)v, (void)opaque;
	starts++;
	return 0;
}

static void echo_reset(struct ioreq_virtio *v, void *opaque)
{
	(void)v, (void)opaque;
	resets++;
}

static const struct ioreq_virtio_ops echo_ops = {
	.setup = echo_setup,
	.start = echo_start,
	.kick = echo_kick,
	.reset = echo_reset,
};

static const struct ioreq_virtio_device echo_device = {
	.prog = "test-echo",
	.type = IOREQ_VIRTIO_ID_CONSOLE,
	.num_queues = ECHO_QUEUES,
	.queue_max_size = 64,
	.config_size = sizeof(ECHO_CONFIG),
	.ops = &echo_ops,
};

/* ---- the front end ---- */

#define GET_FEATURES 1
#define SET_FEATURES 2
#define SET_OWNER 3
#define SET_MEM_TABLE 5
#define SET_VRING_NUM 8
#define SET_VRING_ADDR 9
#define SET_VRING_BASE 10
#define GET_VRING_BASE 11
#define SET_VRING_KICK 12
#define SET_VRING_CALL 13
#define GET_PROTOCOL_FEATURES 15
#define SET_PROTOCOL_FEATURES 16
#define GET_QUEUE_NUM 17
#define SET_VRING_ENABLE 18
#define GET_CONFIG 24
#define F_PROTOCOL_FEATURES (1ull << 30)
#define PROTO_REPLY_ACK (1ull << 3)
#define NEED_REPLY 0x8u

/* The guest: 1 MiB of RAM in a memfd, at guest-physical 0 and mapped by
 * the "front end" at UA; a hole, then a second region of 64 KiB. */
#define RAM (1u << 20)
#define UA 0x7f0000000000ull
#define R2_GPA 0x40000000ull
#define R2_UA 0x7f1000000000ull
#define R2_SIZE 0x10000u
#define DESC 0x1000ull
#define AVAIL 0x2000ull
#define USED 0x3000ull
#define BUF_OUT 0x10000ull
#define BUF_IN 0x11000ull
#define QSIZE 8

static pthread_t device_thread;
static int device_status = -1;
static int listen_fd = -1, memfd = -1;
static uint8_t *ram;
static char sock_path[108];

struct hdr {
	uint32_t request, flags, size;
};

struct region {
	uint64_t gpa, size, ua, offset;
};

static void *device_main(void *arg)
{
	static char argv0[] = "test-echo", spec[32];
	char *argv[] = { argv0, NULL };
	int argc = 1;
	struct ioreq_virtio_args args;

	(void)arg;
	assert_int_equal(ioreq_virtio_take_args(&argc, argv, &args), 0);
	snprintf(spec, sizeof(spec), "fd:%d", listen_fd);
	args.vhost_user = spec;
	device_status = ioreq_virtio_run(&echo_device, &args, NULL);
	return NULL;
}

static int setup(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	(void)state;
	if (pipe2(stop_pipe, O_CLOEXEC) < 0)
		return -1;
	memfd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (memfd < 0 || ftruncate(memfd, RAM + R2_SIZE) < 0 ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		return -1;
	ram = mmap(NULL, RAM + R2_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (ram == MAP_FAILED)
		return -1;
	snprintf(sock_path, sizeof(sock_path), "/tmp/test_vhost_user.%d", (int)getpid());
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	unlink(sock_path);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(listen_fd, 4) < 0)
		return -1;
	return pthread_create(&device_thread, NULL, device_main, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	if (write(stop_pipe[1], "x", 1) != 1)
		return -1;
	pthread_join(device_thread, NULL);
	unlink(sock_path);
	munmap(ram, RAM + R2_SIZE);
	close(memfd);
	close(stop_pipe[0]);
	close(stop_pipe[1]);
	/* The transport closed the listening socket it was given. */
	return device_status == 0 ? 0 : -1;
}

static int fe_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { 5, 0 };

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* A hung device fails the test instead of hanging it. */
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	return fd;
}

/* Sends a message: header + @payload, @fds attached. */
static void fe_send_raw(int fd, uint32_t req, uint32_t flags, uint32_t size, const void *payload, size_t len,
			const int *fds, size_t n_fds)
{
	struct hdr h = { req, flags, size };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
	union {
		char buf[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (n_fds) {
		struct cmsghdr *c;

		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
	}
	assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)(sizeof(h) + len));
}

static void fe_send(int fd, uint32_t req, const void *payload, uint32_t len, const int *fds, size_t n_fds)
{
	fe_send_raw(fd, req, 0x1, len, payload, len, fds, n_fds);
}

/* Receives the reply to @req into @payload (exactly @len bytes). */
static void fe_reply(int fd, uint32_t req, void *payload, uint32_t len)
{
	struct hdr h;

	assert_int_equal(recv(fd, &h, sizeof(h), MSG_WAITALL), sizeof(h));
	assert_int_equal(h.request, req);
	assert_int_equal(h.flags, 0x5);
	assert_int_equal(h.size, len);
	assert_int_equal(recv(fd, payload, len, MSG_WAITALL), (ssize_t)len);
}

static uint64_t fe_get_u64(int fd, uint32_t req)
{
	uint64_t v;

	fe_send(fd, req, NULL, 0, NULL, 0);
	fe_reply(fd, req, &v, sizeof(v));
	return v;
}

/* The device ended the connection: end of stream, no more replies (or a
 * reset, when it closed with some of our message unread). */
static void assert_closed(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, 0);

	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
	close(fd);
}

static void fe_mem_table(int fd)
{
	struct {
		uint32_t n, pad;
		struct region r[2];
	} m = { 2, 0, { { 0, RAM, UA, 0 }, { R2_GPA, R2_SIZE, R2_UA, RAM } } };
	int fds[2] = { memfd, memfd };

	fe_send(fd, SET_MEM_TABLE, &m, sizeof(m), fds, 2);
}

static void fe_u64(int fd, uint32_t req, uint64_t v, const int *fds, size_t n)
{
	fe_send(fd, req, &v, sizeof(v), fds, n);
}

static void fe_state(int fd, uint32_t req, uint32_t index, uint32_t num)
{
	uint32_t s[2] = { index, num };

	fe_send(fd, req, s, sizeof(s), NULL, 0);
}

static void fe_addr(int fd, uint32_t index, uint64_t desc, uint64_t used, uint64_t avail)
{
	struct {
		uint32_t index, flags;
		uint64_t desc, used, avail, log;
	} a = { index, 0, desc, used, avail, 0 };

	fe_send(fd, SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

/* Everything up to a working ring 0, as QEMU does it; the kick and call
 * eventfds in @kick, @call. Returns the features the device offered. */
static uint64_t fe_setup(int fd, int *kick, int *call, bool ack)
{
	uint64_t f, pf, ackv;

	f = fe_get_u64(fd, GET_FEATURES);
	assert_true(f & F_PROTOCOL_FEATURES);
	assert_true(f & (1ull << 32));
	pf = fe_get_u64(fd, GET_PROTOCOL_FEATURES);
	assert_true(pf & PROTO_REPLY_ACK);
	fe_u64(fd, SET_PROTOCOL_FEATURES, ack ? PROTO_REPLY_ACK : 0, NULL, 0);
	assert_int_equal(fe_get_u64(fd, GET_QUEUE_NUM), ECHO_QUEUES);
	fe_send(fd, SET_OWNER, NULL, 0, NULL, 0);
	fe_u64(fd, SET_FEATURES, (1ull << 32) | F_PROTOCOL_FEATURES, NULL, 0);
	if (ack) {
		/* REPLY_ACK: the memory table is acknowledged. */
		struct {
			uint32_t n, pad;
			struct region r[2];
		} m = { 2, 0, { { 0, RAM, UA, 0 }, { R2_GPA, R2_SIZE, R2_UA, RAM } } };
		int fds[2] = { memfd, memfd };

		fe_send_raw(fd, SET_MEM_TABLE, 0x1 | NEED_REPLY, sizeof(m), &m, sizeof(m), fds, 2);
		fe_reply(fd, SET_MEM_TABLE, &ackv, sizeof(ackv));
		assert_int_equal(ackv, 0);
	} else {
		fe_mem_table(fd);
	}
	memset(ram, 0, 0x4000);
	fe_state(fd, SET_VRING_NUM, 0, QSIZE);
	fe_state(fd, SET_VRING_BASE, 0, 0);
	fe_addr(fd, 0, UA + DESC, UA + USED, UA + AVAIL);
	*kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	*call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fe_u64(fd, SET_VRING_KICK, 0, kick, 1);
	fe_u64(fd, SET_VRING_CALL, 0, call, 1);
	fe_state(fd, SET_VRING_ENABLE, 0, 1);
	return f;
}

static void put(uint64_t gpa, const void *p, size_t n)
{
	memcpy(ram + gpa, p, n);
}

/* Publishes one chain: @out readable bytes, then 64 writable, as avail
 * entry @idx. */
static void fe_publish(uint16_t idx, const char *out)
{
	uint64_t a0 = htole64(BUF_OUT), a1 = htole64(BUF_IN);
	uint32_t l0 = htole32((uint32_t)strlen(out)), l1 = htole32(64);
	uint16_t f0 = htole16(1), f1 = htole16(2), n0 = htole16(1), head = 0, next_idx = htole16(idx + 1);

	put(BUF_OUT, out, strlen(out));
	put(DESC, &a0, 8);
	put(DESC + 8, &l0, 4);
	put(DESC + 12, &f0, 2);
	put(DESC + 14, &n0, 2);
	put(DESC + 16, &a1, 8);
	put(DESC + 24, &l1, 4);
	put(DESC + 28, &f1, 2);
	put(AVAIL + 4 + 2 * (idx % QSIZE), &head, 2);
	/* The driver's release, paired with the device's acquire. */
	__atomic_store_n((uint16_t *)(ram + AVAIL + 2), next_idx, __ATOMIC_RELEASE);
}

static void kick_it(int kick)
{
	uint64_t one = 1;

	assert_int_equal(write(kick, &one, 8), 8);
}

static void wait_call(int call)
{
	struct pollfd p = { call, POLLIN, 0 };
	uint64_t n;

	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(read(call, &n, 8), 8);
}

/* The device still serves: a new front end gets its features. */
static void assert_device_alive(void)
{
	int fd = fe_connect();

	assert_true(fe_get_u64(fd, GET_FEATURES) & F_PROTOCOL_FEATURES);
	close(fd);
}

static void test_honest(void **state)
{
	int fd = fe_connect(), kick, call;
	uint16_t used_idx;
	uint32_t base[2];
	struct {
		uint32_t offset, size, flags;
		char data[32];
	} cfg = { 0, 32, 0, { 0 } };
	unsigned s0 = starts;

	(void)state;
	fe_setup(fd, &kick, &call, true);
	/* The configuration, past the device's end zero-filled. */
	fe_send(fd, GET_CONFIG, &cfg, sizeof(cfg), NULL, 0);
	memset(cfg.data, 0x55, sizeof(cfg.data));
	fe_reply(fd, GET_CONFIG, &cfg, sizeof(cfg));
	assert_string_equal(cfg.data, ECHO_CONFIG);
	assert_int_equal(cfg.data[31], 0);

	fe_publish(0, "hello vhost-user");
	kick_it(kick);
	wait_call(call);
	memcpy(&used_idx, ram + USED + 2, 2);
	assert_int_equal(le16toh(used_idx), 1);
	assert_memory_equal(ram + BUF_IN, "hello vhost-user", 16);
	assert_int_equal(starts, s0 + 1);

	/* Stopped: the next avail index comes back, and the ring starts again
	 * from it. */
	fe_state(fd, GET_VRING_BASE, 0, 0);
	fe_reply(fd, GET_VRING_BASE, base, sizeof(base));
	assert_int_equal(base[0], 0);
	assert_int_equal(base[1], 1);
	fe_state(fd, SET_VRING_BASE, 0, 1);
	fe_u64(fd, SET_VRING_KICK, 0, &kick, 1);
	fe_publish(1, "again");
	kick_it(kick);
	wait_call(call);
	memcpy(&used_idx, ram + USED + 2, 2);
	assert_int_equal(le16toh(used_idx), 2);
	assert_memory_equal(ram + BUF_IN, "again", 5);
	assert_int_equal(starts, s0 + 2);
	close(fd);
	close(kick);
	close(call);
	assert_device_alive();
}

/* A front end that goes away with a request in flight: the device resets
 * and takes the next. */
static void test_disconnect_mid_request(void **state)
{
	int fd = fe_connect(), kick, call;
	unsigned r0;

	(void)state;
	fe_setup(fd, &kick, &call, false);
	/* A header that promises a payload it never sends. */
	fe_publish(0, "in flight");
	kick_it(kick);
	r0 = resets;
	fe_send_raw(fd, SET_VRING_NUM, 0x1, 8, NULL, 0, NULL, 0);
	close(fd);
	close(kick);
	close(call);
	assert_device_alive();
	assert_true(resets > r0);
}

/* ---- hostile front ends ---- */

static void oversized(int fd)
{
	fe_send_raw(fd, SET_MEM_TABLE, 0x1, 4096, NULL, 0, NULL, 0);
}

static void wrong_version(int fd)
{
	fe_send_raw(fd, GET_FEATURES, 0x2, 0, NULL, 0, NULL, 0);
}

static void fd_where_none(int fd)
{
	fe_send(fd, GET_FEATURES, NULL, 0, &memfd, 1);
}

static void two_kick_fds(int fd)
{
	int fds[2] = { memfd, memfd };

	fe_u64(fd, SET_VRING_KICK, 0, fds, 2);
}

static void too_many_fds(int fd)
{
	int fds[12];

	for (int i = 0; i < 12; i++)
		fds[i] = memfd;
	fe_u64(fd, SET_VRING_CALL, 0, fds, 12);
}

static void table_fewer_fds(int fd)
{
	struct {
		uint32_t n, pad;
		struct region r[2];
	} m = { 2, 0, { { 0, RAM, UA, 0 }, { R2_GPA, R2_SIZE, R2_UA, RAM } } };

	fe_send(fd, SET_MEM_TABLE, &m, sizeof(m), &memfd, 1);
}

static void table_of(int fd, const struct region *r, uint32_t n)
{
	struct {
		uint32_t n, pad;
		struct region r[16];
	} m = { n, 0, { { 0 } } };
	int fds[16];

	for (uint32_t i = 0; i < n && i < 16; i++) {
		m.r[i] = r[i];
		fds[i] = memfd;
	}
	fe_send(fd, SET_MEM_TABLE, &m, 8 + (n < 16 ? n : 16) * (uint32_t)sizeof(struct region), fds, n < 8 ? n : 8);
}

static void regions_overlap(int fd)
{
	const struct region r[] = { { 0, RAM, UA, 0 }, { RAM - 0x1000, 0x2000, R2_UA, 0 } };

	table_of(fd, r, 2);
}

static void regions_overlap_ua(int fd)
{
	const struct region r[] = { { 0, 0x1000, UA, 0 }, { R2_GPA, 0x1000, UA + 0x800, 0 } };

	table_of(fd, r, 2);
}

static void region_wraps(int fd)
{
	const struct region r[] = { { UINT64_MAX - 0xfff, 0x2000, UA, 0 } };

	table_of(fd, r, 1);
}

static void region_past_file(int fd)
{
	const struct region r[] = { { 0, RAM, UA, R2_SIZE + 0x1000 } };

	table_of(fd, r, 1);
}

static void region_empty(int fd)
{
	const struct region r[] = { { 0, 0, UA, 0 } };

	table_of(fd, r, 1);
}

static void too_many_regions(int fd)
{
	struct region r[9];

	for (int i = 0; i < 9; i++)
		r[i] = (struct region){ (uint64_t)i << 20, 0x1000, UA + ((uint64_t)i << 20), 0 };
	table_of(fd, r, 9);
}

static void region_unsealed(int fd)
{
	struct {
		uint32_t n, pad;
		struct region r[1];
	} m = { 1, 0, { { 0, 0x1000, UA, 0 } } };
	int plain = memfd_create("unsealed", MFD_CLOEXEC);

	assert_int_equal(ftruncate(plain, 0x1000), 0);
	fe_send(fd, SET_MEM_TABLE, &m, sizeof(m), &plain, 1);
	close(plain);
}

static void ring_outside(int fd)
{
	fe_mem_table(fd);
	fe_addr(fd, 0, UA + DESC, UA + RAM + 0x100, UA + AVAIL);
}

static void ring_across_hole(int fd)
{
	int kick = eventfd(0, EFD_CLOEXEC);

	fe_u64(fd, SET_FEATURES, (1ull << 32), NULL, 0);
	fe_mem_table(fd);
	fe_state(fd, SET_VRING_NUM, 0, QSIZE);
	/* The used ring starts in RAM and runs past its end. */
	fe_addr(fd, 0, UA + DESC, UA + RAM - 8, UA + AVAIL);
	fe_u64(fd, SET_VRING_KICK, 0, &kick, 1);
	close(kick);
	fe_state(fd, SET_VRING_ENABLE, 0, 1);
}

static void index_out_of_range(int fd)
{
	fe_state(fd, SET_VRING_NUM, ECHO_QUEUES, QSIZE);
}

static void kick_index_out_of_range(int fd)
{
	int e = eventfd(0, EFD_CLOEXEC);

	fe_u64(fd, SET_VRING_KICK, 0xff, &e, 1);
	close(e);
}

static void ring_size_bad(int fd)
{
	fe_state(fd, SET_VRING_NUM, 0, 48);
}

static void features_not_offered(int fd)
{
	fe_u64(fd, SET_FEATURES, 1ull << 63, NULL, 0);
}

static void unknown_request(int fd)
{
	fe_send(fd, 99, NULL, 0, NULL, 0);
}

static void short_payload(int fd)
{
	uint32_t x = 0;

	fe_send(fd, SET_FEATURES, &x, sizeof(x), NULL, 0);
}

static void config_out_of_range(int fd)
{
	struct {
		uint32_t offset, size, flags;
		char data[8];
	} c = { 250, 8, 0, { 0 } };

	fe_send(fd, GET_CONFIG, &c, sizeof(c), NULL, 0);
}

/* A running ring whose "kick eventfd" is a pipe at its end: always
 * readable, never a counter. */
static void kick_not_eventfd(int fd)
{
	int kick, call, p[2];

	fe_setup(fd, &kick, &call, false);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[1]);
	fe_u64(fd, SET_VRING_KICK, 0, &p[0], 1);
	close(p[0]);
	close(kick);
	close(call);
}

static const struct {
	const char *name;
	void (*send)(int fd);
} hostile[] = {
	{ "kick fd not an eventfd", kick_not_eventfd },
	{ "oversized", oversized },
	{ "wrong version", wrong_version },
	{ "fd where none", fd_where_none },
	{ "two kick fds", two_kick_fds },
	{ "too many fds", too_many_fds },
	{ "table with fewer fds", table_fewer_fds },
	{ "regions overlapping", regions_overlap },
	{ "regions overlapping in user space", regions_overlap_ua },
	{ "region wrapping", region_wraps },
	{ "region past its file", region_past_file },
	{ "region empty", region_empty },
	{ "too many regions", too_many_regions },
	{ "region unsealed", region_unsealed },
	{ "ring outside memory", ring_outside },
	{ "ring across the end of a region", ring_across_hole },
	{ "queue index out of range", index_out_of_range },
	{ "kick index out of range", kick_index_out_of_range },
	{ "ring size not a power of 2", ring_size_bad },
	{ "features not offered", features_not_offered },
	{ "unknown request", unknown_request },
	{ "short payload", short_payload },
	{ "config out of range", config_out_of_range },
};

static void test_hostile(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		int fd = fe_connect();

		print_message("hostile: %s\n", hostile[i].name);
		hostile[i].send(fd);
		assert_closed(fd);
		assert_device_alive();
	}
}

/* A guest that breaks its ring: the device stops serving it (no
 * NEEDS_RESET in vhost-user) but the connection and the process stay. */
static void test_broken_ring(void **state)
{
	int fd = fe_connect(), kick, call;
	uint16_t bad = htole16(QSIZE + 3), idx = htole16(1), used;

	(void)state;
	fe_setup(fd, &kick, &call, false);
	put(AVAIL + 4, &bad, 2);
	put(AVAIL + 2, &idx, 2);
	kick_it(kick);
	/* Still answering, the ring untouched. */
	assert_true(fe_get_u64(fd, GET_FEATURES) & F_PROTOCOL_FEATURES);
	memcpy(&used, ram + USED + 2, 2);
	assert_int_equal(used, 0);
	close(fd);
	close(kick);
	close(call);
	assert_device_alive();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_honest),
		cmocka_unit_test(test_disconnect_mid_request),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_broken_ring),
	};

	return cmocka_run_group_tests_name("vhost_user", tests, setup, teardown);
}
