/* ioreq-dev-virtio-blk: a virtio block device (virtio 1.x, section 5.2) on a
 * raw image the broker opens (`files:`, the first one; read-only unless
 * `mode: rw`; `direct: true` for O_DIRECT). The device never opens a path.
 *
 * Requests: read, write, flush, get-id, discard and write-zeroes (the last
 * two punch or zero the image's blocks with fallocate; offered only on a
 * writable image). A request is parsed and checked on the queue thread and
 * its I/O done by one of --workers threads (default 4) with preadv/pwritev
 * straight between the image and the guest's buffers, so several requests
 * are in flight; each completion comes back to the queue thread, which
 * publishes it. No allocation per request: one slot per queue entry.
 *
 * Everything in a request is the guest's: a header not 16 bytes in
 * device-readable buffers, a status byte missing, data not a whole number
 * of sectors, or reaching past the end of the image, completes with
 * VIRTIO_BLK_S_IOERR (UNSUPP for an unknown type); a broken chain breaks
 * the queue (the device needs a reset). With O_DIRECT, guest buffers that
 * are not aligned for the image go through an aligned bounce buffer.
 *
 * Usage: ioreq-dev-virtio-blk --socket URL --name NAME [--workers N]
 *        [--serial ID] [--vhost-user SOCKET] */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ioreq/virtio.h"

#define PROG "ioreq-dev-virtio-blk"
#define QUEUE_SIZE 256
#define SEG_MAX 64             /* data buffers per request the driver may use */
#define MAX_IOV (SEG_MAX + 8)  /* and header, status, region crossings */
#define SECTOR 512u
#define MAX_WORKERS 16
#define ID_BYTES 20
#define BOUNCE (128u << 10)
#define MAX_DISCARD_SECTORS (1u << 22) /* 2 GiB per segment */
#define MAX_DISCARD_SEG 1

/* Feature bits (5.2.3) */
#define BLK_F_SEG_MAX 2
#define BLK_F_RO 5
#define BLK_F_BLK_SIZE 6
#define BLK_F_FLUSH 9
#define BLK_F_DISCARD 13
#define BLK_F_WRITE_ZEROES 14

/* Request types and status (5.2.6) */
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_T_DISCARD 11
#define BLK_T_WRITE_ZEROES 13
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2
#define WZ_F_UNMAP 1

/* struct virtio_blk_config (5.2.4), the fields this device sets */
#define CFG_CAPACITY 0
#define CFG_SEG_MAX 12
#define CFG_BLK_SIZE 20
#define CFG_MAX_DISCARD_SECTORS 36
#define CFG_MAX_DISCARD_SEG 40
#define CFG_DISCARD_ALIGNMENT 44
#define CFG_MAX_WZ_SECTORS 48
#define CFG_MAX_WZ_SEG 52
#define CFG_WZ_MAY_UNMAP 56
#define CFG_SIZE 60

#define BIT(n) (UINT64_C(1) << (n))

struct req {
	uint16_t head;
	uint32_t type;
	uint64_t sector;
	struct iovec iov[MAX_IOV];
	unsigned n_iov;             /* the data: iov[0, n_iov) */
	uint64_t len;               /* their bytes */
	uint8_t *status;            /* the guest's status byte */
	uint8_t seg[16];            /* discard/write-zeroes: the segment */
	uint32_t written;           /* bytes the device wrote to the guest */
	uint8_t result;
	struct req *next;           /* on the work or done list */
};

struct blk {
	struct ioreq_virtio *v;
	const char *serial;
	unsigned n_workers;
	int fd;
	bool writable, direct;
	uint64_t sectors;

	/* On the queue thread */
	struct ioreq_vq *vq;
	struct req slots[QUEUE_SIZE];
	struct req *free_list;
	unsigned inflight;
	bool starved;               /* it stopped popping: no free slot */

	/* Shared with the workers */
	pthread_mutex_t lock;
	pthread_cond_t work_cond;
	struct req *work_head, **work_tail;
	struct req *done_head, **done_tail;
	unsigned busy;              /* requests given to the workers, not done */
	bool quit;
	int done_fd;                /* eventfd: completions to publish */
	pthread_t workers[MAX_WORKERS];
	unsigned n_started;

	_Atomic uint64_t reads, writes, bytes_read, bytes_written, flushes, errors;
};

static void le_put(uint8_t *p, unsigned n, uint64_t v)
{
	for (unsigned i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t le_get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

/* Copies @len bytes out of @iov[0, @n) from byte @skip on: false if short. */
static bool iov_read(const struct iovec *iov, unsigned n, uint64_t skip, void *buf, size_t len)
{
	uint8_t *out = buf;

	for (unsigned i = 0; i < n && len; i++) {
		size_t k;

		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		k = iov[i].iov_len - skip < len ? iov[i].iov_len - skip : len;
		memcpy(out, (uint8_t *)iov[i].iov_base + skip, k);
		out += k;
		len -= k;
		skip = 0;
	}
	return !len;
}

/* Drops the first @skip bytes of @iov[0, *n) in place (a header). */
static void iov_advance(struct iovec *iov, unsigned *n, uint64_t skip)
{
	unsigned i = 0, j = 0;

	while (i < *n && skip >= iov[i].iov_len)
		skip -= iov[i++].iov_len;
	if (i < *n) {
		iov[i].iov_base = (uint8_t *)iov[i].iov_base + skip;
		iov[i].iov_len -= skip;
	}
	while (i < *n)
		iov[j++] = iov[i++];
	*n = j;
}

/* Cuts @iov[0, *n) to its first @len bytes (the status byte's buffer). */
static void iov_truncate(struct iovec *iov, unsigned *n, uint64_t len)
{
	unsigned i = 0;

	while (i < *n && len >= iov[i].iov_len)
		len -= iov[i++].iov_len;
	if (i < *n && len)
		iov[i++].iov_len = len;
	*n = i;
}

/* The last byte of the device-writable part: the status. */
static uint8_t *last_byte(const struct iovec *iov, unsigned n)
{
	while (n && !iov[n - 1].iov_len)
		n--;
	return n ? (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len - 1 : NULL;
}

/* ---- I/O, on a worker ---- */

static bool io_aligned(const struct iovec *iov, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) % 4096)
			return false;
	return true;
}

/* All of @len bytes at @off, or a negative errno (short at the end: -EIO). */
static int rw_all(struct blk *b, bool write, struct iovec *iov, unsigned n, uint64_t off, uint64_t len)
{
	while (len) {
		ssize_t k = write ? pwritev(b->fd, iov, (int)n, (off_t)off) : preadv(b->fd, iov, (int)n, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		off += (uint64_t)k;
		len -= (uint64_t)k;
		iov_advance(iov, &n, (uint64_t)k);
	}
	return 0;
}

/* O_DIRECT with guest buffers not aligned: through @bounce, a chunk at a time. */
static int rw_bounce(struct blk *b, bool write, struct iovec *iov, unsigned n, uint64_t off, uint64_t len,
		     uint8_t *bounce)
{
	uint64_t done = 0;

	while (done < len) {
		size_t k = len - done < BOUNCE ? (size_t)(len - done) : BOUNCE;
		struct iovec one = { bounce, k };
		int r;

		if (write && !iov_read(iov, n, done, bounce, k))
			return -EIO;
		r = rw_all(b, write, &one, 1, off + done, k);
		if (r < 0)
			return r;
		if (!write) {
			/* Into the guest's buffers, from byte @done on. */
			uint64_t skip = done;
			const uint8_t *src = bounce;
			size_t left = k;

			for (unsigned i = 0; i < n && left; i++) {
				size_t m;

				if (skip >= iov[i].iov_len) {
					skip -= iov[i].iov_len;
					continue;
				}
				m = iov[i].iov_len - skip < left ? iov[i].iov_len - skip : left;
				memcpy((uint8_t *)iov[i].iov_base + skip, src, m);
				src += m;
				left -= m;
				skip = 0;
			}
		}
		done += k;
	}
	return 0;
}

static uint8_t do_rw(struct blk *b, struct req *q, uint8_t *bounce)
{
	bool write = q->type == BLK_T_OUT;
	uint64_t off = q->sector * SECTOR;
	int r;

	if (!q->len)
		return BLK_S_OK;
	if (b->direct && !io_aligned(q->iov, q->n_iov))
		r = rw_bounce(b, write, q->iov, q->n_iov, off, q->len, bounce);
	else
		r = rw_all(b, write, q->iov, q->n_iov, off, q->len);
	if (r < 0)
		return BLK_S_IOERR;
	if (!write)
		q->written = (uint32_t)q->len;
	atomic_fetch_add(write ? &b->writes : &b->reads, 1);
	atomic_fetch_add(write ? &b->bytes_written : &b->bytes_read, q->len);
	return BLK_S_OK;
}

static uint8_t do_discard(struct blk *b, struct req *q)
{
	uint64_t sector = le_get(q->seg, 8);
	uint32_t n = (uint32_t)le_get(q->seg + 8, 4), flags = (uint32_t)le_get(q->seg + 12, 4);
	int mode;

	if (n > MAX_DISCARD_SECTORS || sector > b->sectors || n > b->sectors - sector)
		return BLK_S_IOERR;
	if (q->type == BLK_T_DISCARD ? flags != 0 : (flags & ~WZ_F_UNMAP))
		return BLK_S_UNSUPP;
	if (!n)
		return BLK_S_OK;
	/* Discard and unmapping zeroes punch a hole; plain write-zeroes keeps
	 * the blocks allocated. Either way the range reads as zeroes. */
	mode = q->type == BLK_T_DISCARD || (flags & WZ_F_UNMAP) ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
								 : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	if (fallocate(b->fd, mode, (off_t)(sector * SECTOR), (off_t)n * SECTOR) < 0)
		return BLK_S_IOERR;
	return BLK_S_OK;
}

static uint8_t do_request(struct blk *b, struct req *q, uint8_t *bounce)
{
	switch (q->type) {
	case BLK_T_IN:
	case BLK_T_OUT:
		return do_rw(b, q, bounce);
	case BLK_T_FLUSH:
		atomic_fetch_add(&b->flushes, 1);
		return fdatasync(b->fd) < 0 ? BLK_S_IOERR : BLK_S_OK;
	case BLK_T_DISCARD:
	case BLK_T_WRITE_ZEROES:
		return do_discard(b, q);
	}
	return BLK_S_UNSUPP;
}

static void *worker(void *arg)
{
	struct blk *b = arg;
	uint8_t *bounce = NULL;
	uint64_t one = 1;

	if (b->direct && posix_memalign((void **)&bounce, 4096, BOUNCE))
		bounce = NULL;
	pthread_mutex_lock(&b->lock);
	for (;;) {
		struct req *q;

		while (!b->work_head && !b->quit)
			pthread_cond_wait(&b->work_cond, &b->lock);
		if (b->quit)
			break;
		q = b->work_head;
		b->work_head = q->next;
		if (!b->work_head)
			b->work_tail = &b->work_head;
		pthread_mutex_unlock(&b->lock);

		q->result = b->direct && !bounce && !io_aligned(q->iov, q->n_iov) ? BLK_S_IOERR : do_request(b, q, bounce);

		pthread_mutex_lock(&b->lock);
		q->next = NULL;
		/* One wake-up per batch: a list that was not empty has one
		 * pending already (reap reads the eventfd before it takes it). */
		if (!b->done_head && write(b->done_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			ioreq_virtio_log(b->v, "cannot signal a completion: %s", strerror(errno));
		*b->done_tail = q;
		b->done_tail = &q->next;
		b->busy--;
	}
	pthread_mutex_unlock(&b->lock);
	free(bounce);
	return NULL;
}

/* ---- requests, on the queue thread ---- */

/* Publishes request @q: its status, the bytes written. */
static int complete(struct blk *b, struct req *q)
{
	int r;

	if (q->result != BLK_S_OK)
		atomic_fetch_add(&b->errors, 1);
	*q->status = q->result;
	r = ioreq_vq_push(b->vq, q->head, q->written + 1);
	q->next = b->free_list;
	b->free_list = q;
	b->inflight--;
	return r;
}

/* Parses the chain @c into @q: what the workers will do, or a status to
 * give at once. Returns true when the request goes to a worker. */
static bool parse(struct blk *b, struct req *q, struct iovec *iov, const struct ioreq_vq_chain *c)
{
	uint8_t hdr[16];
	unsigned n_out = c->n_out, n_in = c->n_in;
	struct iovec *in = iov + c->n_out;

	q->head = c->head;
	q->written = 0;
	q->n_iov = 0;
	q->len = 0;
	if (!iov_read(iov, n_out, 0, hdr, sizeof(hdr))) {
		q->result = BLK_S_IOERR;
		return false;
	}
	q->type = (uint32_t)le_get(hdr, 4);
	q->sector = le_get(hdr + 8, 8);
	q->result = BLK_S_IOERR;

	switch (q->type) {
	case BLK_T_IN:
		/* The data, then the status in the last writable byte. */
		if (c->out_len != sizeof(hdr) || (c->in_len - 1) % SECTOR)
			return false;
		memcpy(q->iov, in, n_in * sizeof(*in));
		q->n_iov = n_in;
		q->len = c->in_len - 1;
		iov_truncate(q->iov, &q->n_iov, q->len);
		break;
	case BLK_T_OUT:
		if ((c->out_len - sizeof(hdr)) % SECTOR || c->in_len != 1 || !b->writable)
			return false;
		memcpy(q->iov, iov, n_out * sizeof(*iov));
		q->n_iov = n_out;
		iov_advance(q->iov, &q->n_iov, sizeof(hdr));
		q->len = c->out_len - sizeof(hdr);
		break;
	case BLK_T_FLUSH:
		return c->in_len == 1;
	case BLK_T_GET_ID: {
		uint8_t id[ID_BYTES] = { 0 };
		size_t want = c->in_len - 1 < ID_BYTES ? (size_t)(c->in_len - 1) : ID_BYTES;
		struct iovec data[MAX_IOV];
		unsigned n = n_in;

		memcpy(data, in, n_in * sizeof(*in));
		iov_truncate(data, &n, c->in_len - 1);
		memcpy(id, b->serial, strnlen(b->serial, sizeof(id)));
		for (unsigned i = 0, done = 0; i < n && done < want; i++) {
			size_t k = data[i].iov_len < want - done ? data[i].iov_len : want - done;

			memcpy(data[i].iov_base, id + done, k);
			done += (unsigned)k;
		}
		q->written = (uint32_t)want;
		q->result = BLK_S_OK;
		return false;
	}
	case BLK_T_DISCARD:
	case BLK_T_WRITE_ZEROES:
		/* One segment per request (max_discard_seg, max_write_zeroes_seg). */
		if (!b->writable || c->in_len != 1 || c->out_len != sizeof(hdr) + sizeof(q->seg) ||
		    !iov_read(iov, n_out, sizeof(hdr), q->seg, sizeof(q->seg)))
			return false;
		return true;
	default:
		q->result = BLK_S_UNSUPP;
		return false;
	}
	/* Reads and writes: whole sectors inside the image. */
	if (q->sector > b->sectors || q->len / SECTOR > b->sectors - q->sector)
		return false;
	return true;
}

/* Hands @n parsed requests, @first to @last, to the workers: one lock, and
 * a wake-up per request rather than all the workers for each. */
static void dispatch(struct blk *b, struct req *first, struct req *last, unsigned n)
{
	if (!n)
		return;
	pthread_mutex_lock(&b->lock);
	last->next = NULL;
	*b->work_tail = first;
	b->work_tail = &last->next;
	b->busy += n;
	for (unsigned i = 0; i < n && i < b->n_workers; i++)
		pthread_cond_signal(&b->work_cond);
	pthread_mutex_unlock(&b->lock);
}

/* Takes what the driver made available, as long as there are slots, with
 * the driver's notifications off meanwhile (the device is looking anyway;
 * the transport turns them on again after the kick). A queue that ran out
 * of slots is kicked again when a request completes. */
static void blk_kick(struct ioreq_virtio *v, unsigned qi, struct ioreq_vq *vq, void *opaque)
{
	struct blk *b = opaque;
	struct iovec iov[MAX_IOV];
	struct ioreq_vq_chain c;
	struct req *first = NULL, *last = NULL;
	unsigned n = 0;
	bool pushed = false;
	int k = 0;

	b->vq = vq;
	ioreq_vq_disable_kicks(vq);
	while (b->free_list && (k = ioreq_vq_pop(vq, iov, MAX_IOV, &c)) > 0) {
		struct req *q = b->free_list;

		/* A status byte is the least a request has. */
		q->status = c.in_len ? last_byte(iov + c.n_out, c.n_in) : NULL;
		if (!q->status) {
			k = -EBADMSG;
			break;
		}
		b->free_list = q->next;
		b->inflight++;
		if (!parse(b, q, iov, &c)) {
			k = complete(b, q);
			if (k < 0)
				break;
			pushed = true;
			continue;
		}
		if (last)
			last->next = q;
		else
			first = q;
		last = q;
		n++;
	}
	b->starved = !b->free_list;
	dispatch(b, first, last, n);
	if (k < 0) {
		ioreq_virtio_needs_reset(v, k);
		return;
	}
	if (pushed)
		ioreq_virtio_done(v, qi);
}

/* Takes the workers' completions; with @publish, gives them to the guest. */
static void reap(struct blk *b, bool publish)
{
	struct req *list;
	uint64_t n;
	bool pushed = false;

	if (read(b->done_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		ioreq_virtio_log(b->v, "completions: %s", strerror(errno));
	pthread_mutex_lock(&b->lock);
	list = b->done_head;
	b->done_head = NULL;
	b->done_tail = &b->done_head;
	pthread_mutex_unlock(&b->lock);
	while (list) {
		struct req *q = list;

		list = q->next;
		if (publish) {
			if (complete(b, q) == 0)
				pushed = true;
		} else {
			q->next = b->free_list;
			b->free_list = q;
			b->inflight--;
		}
	}
	if (pushed)
		ioreq_virtio_done(b->v, 0);
	/* The queue stopped for want of slots: there are some now. */
	if (publish && b->starved && b->free_list) {
		b->starved = false;
		ioreq_virtio_kick(b->v, 0);
	}
}

static void blk_event(struct ioreq_virtio *v, void *opaque)
{
	struct blk *b = opaque;

	reap(b, b->vq != NULL);
}

/* The driver's reset: wait for the workers' requests, publish none. */
static void blk_reset(struct ioreq_virtio *v, void *opaque)
{
	struct blk *b = opaque;

	pthread_mutex_lock(&b->lock);
	/* Requests no worker took yet are dropped: done, never published. */
	while (b->work_head) {
		struct req *q = b->work_head;

		b->work_head = q->next;
		q->next = NULL;
		*b->done_tail = q;
		b->done_tail = &q->next;
		b->busy--;
	}
	b->work_tail = &b->work_head;
	pthread_mutex_unlock(&b->lock);
	for (;;) {
		reap(b, false);
		pthread_mutex_lock(&b->lock);
		bool idle = !b->busy;
		pthread_mutex_unlock(&b->lock);
		if (idle)
			break;
		struct timespec ts = { .tv_nsec = 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	b->vq = NULL;
	b->starved = false;
}

static int blk_start(struct ioreq_virtio *v, void *opaque)
{
	struct blk *b = opaque;

	b->vq = NULL;
	return 0;
}

static int blk_setup(struct ioreq_virtio *v, void *opaque)
{
	struct blk *b = opaque;
	uint8_t cfg[CFG_SIZE] = { 0 };
	struct stat st;
	uint64_t features = BIT(BLK_F_SEG_MAX) | BIT(BLK_F_BLK_SIZE) | BIT(BLK_F_FLUSH);
	int r, flags;

	b->v = v;
	r = ioreq_virtio_file(v, 0, &b->fd, &b->writable);
	if (r < 0) {
		ioreq_virtio_log(v, "needs its image in `files:`");
		return -EINVAL;
	}
	flags = fcntl(b->fd, F_GETFL);
	b->direct = flags >= 0 && (flags & O_DIRECT);
	if (fstat(b->fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(b->fd, 0, SEEK_END);

		if (end < 0)
			return -errno;
		st.st_size = end;
	}
	b->sectors = (uint64_t)st.st_size / SECTOR;
	if (!b->writable)
		features |= BIT(BLK_F_RO);
	else if (S_ISREG(st.st_mode))
		features |= BIT(BLK_F_DISCARD) | BIT(BLK_F_WRITE_ZEROES);
	ioreq_virtio_offer(v, features);

	le_put(cfg + CFG_CAPACITY, 8, b->sectors);
	le_put(cfg + CFG_SEG_MAX, 4, SEG_MAX);
	le_put(cfg + CFG_BLK_SIZE, 4, b->direct ? 4096 : SECTOR);
	le_put(cfg + CFG_MAX_DISCARD_SECTORS, 4, MAX_DISCARD_SECTORS);
	le_put(cfg + CFG_MAX_DISCARD_SEG, 4, MAX_DISCARD_SEG);
	le_put(cfg + CFG_DISCARD_ALIGNMENT, 4, 1);
	le_put(cfg + CFG_MAX_WZ_SECTORS, 4, MAX_DISCARD_SECTORS);
	le_put(cfg + CFG_MAX_WZ_SEG, 4, MAX_DISCARD_SEG);
	cfg[CFG_WZ_MAY_UNMAP] = 1;
	ioreq_virtio_set_config(v, 0, cfg, sizeof(cfg));

	b->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->done_fd < 0)
		return -errno;
	r = ioreq_virtio_watch(v, b->done_fd);
	for (unsigned i = 0; i < b->n_workers && r == 0; i++) {
		r = -pthread_create(&b->workers[i], NULL, worker, b);
		if (r == 0)
			b->n_started++;
	}
	if (r == 0)
		ioreq_virtio_log(v, "%" PRIu64 " sectors, %s%s, %u workers", b->sectors, b->writable ? "read-write" : "read-only",
				 b->direct ? ", O_DIRECT" : "", b->n_workers);
	return r;
}

static const struct ioreq_virtio_ops blk_ops = {
	.setup = blk_setup,
	.start = blk_start,
	.kick = blk_kick,
	.event = blk_event,
	.reset = blk_reset,
};

static const struct ioreq_virtio_device blk_device = {
	.prog = PROG,
	.type = IOREQ_VIRTIO_ID_BLOCK,
	.num_queues = 1,
	.queue_max_size = QUEUE_SIZE,
	.config_size = CFG_SIZE,
	.ops = &blk_ops,
};

static void usage(void)
{
	fprintf(stderr, "usage: %s --socket URL --name NAME [--workers 1..%d] [--serial ID] [--vhost-user SOCKET]\n",
		PROG, MAX_WORKERS);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "workers", required_argument, NULL, 'w' },
		{ "serial", required_argument, NULL, 's' },
		{ 0 },
	};
	static struct blk b = {
		.n_workers = 4,
		.fd = -1,
		.done_fd = -1,
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.work_cond = PTHREAD_COND_INITIALIZER,
	};
	struct ioreq_virtio_args ta;
	int c, status;

	if (ioreq_virtio_take_args(&argc, argv, &ta) < 0)
		usage();
	b.serial = ta.name;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'w':
			b.n_workers = (unsigned)strtoul(optarg, &end, 10);
			if (*end || !b.n_workers || b.n_workers > MAX_WORKERS)
				usage();
			break;
		case 's':
			b.serial = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	b.work_tail = &b.work_head;
	b.done_tail = &b.done_head;
	for (unsigned i = 0; i < QUEUE_SIZE; i++) {
		b.slots[i].next = b.free_list;
		b.free_list = &b.slots[i];
	}
	status = ioreq_virtio_run(&blk_device, &ta, &b);
	pthread_mutex_lock(&b.lock);
	b.quit = true;
	pthread_cond_broadcast(&b.work_cond);
	pthread_mutex_unlock(&b.lock);
	for (unsigned i = 0; i < b.n_started; i++)
		pthread_join(b.workers[i], NULL);
	fprintf(stderr, "%s %s: %" PRIu64 " reads (%" PRIu64 " bytes), %" PRIu64 " writes (%" PRIu64 " bytes), %" PRIu64
			" flushes, %" PRIu64 " errors\n",
		PROG, ta.name, atomic_load(&b.reads), atomic_load(&b.bytes_read), atomic_load(&b.writes),
		atomic_load(&b.bytes_written), atomic_load(&b.flushes), atomic_load(&b.errors));
	return status;
}
