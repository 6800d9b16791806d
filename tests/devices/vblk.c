/* ioreq-test-vblk: the smallest virtio-blk device (virtio 1.x, 5.2) over
 * file 0 of its YAML entry, on ioreq/virtio.h: a test device for the
 * transports (test_vhost_user, test_integration_vhost_user), not the
 * project's block device. Requests are served synchronously on the queue
 * thread: IN, OUT, FLUSH and GET_ID; anything else is UNSUPP. */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ioreq/virtio.h"

#define BLK_F_SEG_MAX 2
#define BLK_F_FLUSH 9
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2
#define SECTOR 512
#define SEG_MAX 126
#define HDR 16
/* A chain's buffers: the segments, the header and status, and one more
 * per region a buffer may cross. */
#define MAX_IOV (SEG_MAX + 2 + 8)
#define CFG_SIZE 16 /* capacity, size_max, seg_max */

struct vblk {
	int fd;
	bool writable;
	uint64_t sectors;
};

/* Copies @len bytes at @off of @iov[0, n) into @buf: the bytes copied. */
static size_t iov_read(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t k = iov[i].iov_len - off < len - done ? iov[i].iov_len - off : len - done;

		memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + off, k);
		done += k;
		off = 0;
	}
	return done;
}

/* @iov[0, n) without its first @skip bytes and its last @trim, into @out. */
static unsigned iov_slice(const struct iovec *iov, unsigned n, size_t skip, size_t trim, struct iovec *out)
{
	size_t total = 0, want;
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (total < skip + trim)
		return 0;
	want = total - skip - trim;
	for (unsigned i = 0; i < n && want; i++) {
		size_t len = iov[i].iov_len;
		uint8_t *p = iov[i].iov_base;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		p += skip;
		len -= skip;
		skip = 0;
		if (len > want)
			len = want;
		out[k++] = (struct iovec){ p, len };
		want -= len;
	}
	return k;
}

static uint8_t serve(struct vblk *b, const struct iovec *iov, const struct ioreq_vq_chain *c, uint32_t *written)
{
	struct {
		uint32_t type, reserved;
		uint64_t sector;
	} h;
	struct iovec data[MAX_IOV];
	unsigned nd;
	uint64_t bytes, sector;
	ssize_t n;

	*written = 0;
	if (c->out_len < HDR || iov_read(iov, c->n_out, 0, &h, HDR) != HDR || !c->in_len)
		return BLK_S_IOERR;
	sector = le64toh(h.sector);
	switch (le32toh(h.type)) {
	case BLK_T_IN:
		nd = iov_slice(iov + c->n_out, c->n_in, 0, 1, data);
		bytes = c->in_len - 1;
		if (bytes % SECTOR || sector > b->sectors || bytes / SECTOR > b->sectors - sector)
			return BLK_S_IOERR;
		n = bytes ? preadv(b->fd, data, (int)nd, (off_t)(sector * SECTOR)) : 0;
		if (n < 0 || (uint64_t)n != bytes)
			return BLK_S_IOERR;
		*written = (uint32_t)bytes;
		return BLK_S_OK;
	case BLK_T_OUT:
		nd = iov_slice(iov, c->n_out, HDR, 0, data);
		bytes = c->out_len - HDR;
		if (!b->writable || bytes % SECTOR || sector > b->sectors || bytes / SECTOR > b->sectors - sector)
			return BLK_S_IOERR;
		n = bytes ? pwritev(b->fd, data, (int)nd, (off_t)(sector * SECTOR)) : 0;
		return n >= 0 && (uint64_t)n == bytes ? BLK_S_OK : BLK_S_IOERR;
	case BLK_T_FLUSH:
		return fdatasync(b->fd) == 0 ? BLK_S_OK : BLK_S_IOERR;
	case BLK_T_GET_ID:
		nd = iov_slice(iov + c->n_out, c->n_in, 0, 1, data);
		if (nd && data[0].iov_len) {
			size_t k = data[0].iov_len < 20 ? data[0].iov_len : 20;

			memset(data[0].iov_base, 0, k);
			memcpy(data[0].iov_base, "ioreq-test-vblk", k < 15 ? k : 15);
			*written = (uint32_t)k;
		}
		return BLK_S_OK;
	default:
		return BLK_S_UNSUPP;
	}
}

static void vblk_kick(struct ioreq_virtio *v, unsigned q, struct ioreq_vq *vq, void *opaque)
{
	struct vblk *b = opaque;
	struct iovec iov[MAX_IOV];
	struct ioreq_vq_chain c;
	int r;

	do {
		ioreq_vq_disable_kicks(vq);
		while ((r = ioreq_vq_pop(vq, iov, MAX_IOV, &c)) > 0) {
			uint32_t written;
			uint8_t status = serve(b, iov, &c, &written);

			/* The status is the last byte the driver gave. */
			if (c.n_in) {
				struct iovec *last = &iov[c.n_out + c.n_in - 1];

				((uint8_t *)last->iov_base)[last->iov_len - 1] = status;
			}
			ioreq_vq_push(vq, c.head, c.n_in ? written + 1 : 0);
		}
		if (r < 0) {
			ioreq_virtio_needs_reset(v, r);
			return;
		}
		ioreq_virtio_done(v, q);
	} while (ioreq_vq_enable_kicks(vq) == 1);
}

static int vblk_setup(struct ioreq_virtio *v, void *opaque)
{
	struct vblk *b = opaque;
	struct stat st;
	uint8_t cfg[CFG_SIZE] = { 0 };
	uint64_t cap;
	uint32_t seg = htole32(SEG_MAX);
	int r;

	r = ioreq_virtio_file(v, 0, &b->fd, &b->writable);
	if (r < 0) {
		ioreq_virtio_log(v, "no image: the YAML entry needs files: [IMAGE]");
		return -EINVAL;
	}
	if (fstat(b->fd, &st) < 0)
		return -errno;
	b->sectors = (uint64_t)st.st_size / SECTOR;
	cap = htole64(b->sectors);
	memcpy(cfg, &cap, 8);
	memcpy(cfg + 12, &seg, 4);
	ioreq_virtio_offer(v, (UINT64_C(1) << BLK_F_SEG_MAX) | (UINT64_C(1) << BLK_F_FLUSH));
	return ioreq_virtio_set_config(v, 0, cfg, sizeof(cfg));
}

static const struct ioreq_virtio_ops vblk_ops = {
	.setup = vblk_setup,
	.kick = vblk_kick,
};

static const struct ioreq_virtio_device vblk_device = {
	.prog = "ioreq-test-vblk",
	.type = IOREQ_VIRTIO_ID_BLOCK,
	.num_queues = 1,
	.queue_max_size = 256,
	.config_size = CFG_SIZE,
	.ops = &vblk_ops,
};

int main(int argc, char **argv)
{
	struct ioreq_virtio_args args;
	struct vblk b = { .fd = -1 };

	if (ioreq_virtio_take_args(&argc, argv, &args) < 0 || argc != 1) {
		fprintf(stderr, "usage: ioreq-test-vblk --socket URL --name NAME [--vhost-user SOCKET]\n");
		return 2;
	}
	return ioreq_virtio_run(&vblk_device, &args, &b);
}
