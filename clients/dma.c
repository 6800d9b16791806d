/* ioreq-dev-dma: a DMA engine that copies between two buffers of guest
 * memory, the data plane end to end in one small device.
 *
 * Registers, 32 bits each, at the start of its first port range:
 *
 *   0x00 SRC_LO  0x04 SRC_HI   guest-physical source
 *   0x08 DST_LO  0x0c DST_HI   guest-physical destination
 *   0x10 LEN     bytes to move (at most DMA_MAX_LEN)
 *   0x14 OP      0: copy, 1: copy with every byte inverted
 *   0x18 STATUS  read: 0 never started, 1 done, or the negative errno of the
 *                last transfer (-EFAULT: a buffer is not all guest RAM)
 *   0x1c COUNT   read: transfers done
 *   0x20 DOORBELL  write (1 byte): start a transfer
 *
 * The guest sets up a transfer through ordinary register accesses (requests
 * through the broker), then rings the doorbell. With `doorbells: 1` in its
 * YAML the doorbell is an ioeventfd: the guest's write signals an eventfd
 * this device waits on, and the vCPU goes on at once; without, the write
 * arrives as a request like any other. When the transfer is done the device
 * raises its first granted line: through an irqfd with `irqfds: 1`, else as
 * an Interrupt message. It needs `memory: guest`.
 *
 * The guest may change the registers and the buffers at any time: a
 * transfer works on a copy of the registers taken when the doorbell rang,
 * and on buffers it checked once. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ioreq/device.h"

#define PROG "ioreq-dev-dma"
#define DMA_MAX_LEN (16u << 20)

enum {
	REG_SRC_LO = 0x00,
	REG_SRC_HI = 0x04,
	REG_DST_LO = 0x08,
	REG_DST_HI = 0x0c,
	REG_LEN = 0x10,
	REG_OP = 0x14,
	REG_STATUS = 0x18,
	REG_COUNT = 0x1c,
	REG_DOORBELL = 0x20,
	REG_END = 0x24,
};

/* The setup registers, SRC_LO to OP, as the guest wrote them. */
#define N_SETUP (REG_OP / 4 + 1)

struct transfer {
	uint64_t src, dst;
	uint32_t len, op;
};

struct dma_dev {
	const char *name;
	struct ioreq_dev *dev;
	const struct ioreq_mem *mem;
	uint64_t base;           /* the first port of its first range */
	uint32_t line;           /* its first granted IRQ line */
	int doorbell;            /* the ioeventfd, or -1 */
	int irqfd;               /* the irqfd, or -1 */
	pthread_mutex_t lock;    /* the registers */
	uint32_t setup[N_SETUP];
	int32_t status;
	uint32_t count;
	pthread_t worker;
	bool worker_started;
	_Atomic bool stop;
};

__attribute__((format(printf, 2, 3))) static void dma_log(const struct dma_dev *d, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s %s: ", PROG, d->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Guest memory not mapped here (a remote device's): the source read whole
 * into a copy of ours, then written to the destination, each in the
 * broker's messages. */
static int move_copied(const struct dma_dev *d, const struct transfer *t)
{
	uint8_t *buf = malloc(t->len);
	int r;

	if (!buf)
		return -ENOMEM;
	r = ioreq_mem_read(d->mem, t->src, buf, t->len);
	for (uint32_t i = 0; r == 0 && t->op == 1 && i < t->len; i++)
		buf[i] = (uint8_t)~buf[i];
	if (r == 0)
		r = ioreq_mem_write(d->mem, t->dst, buf, t->len);
	free(buf);
	return r;
}

/* One transfer, on what was checked once: both buffers wholly guest RAM. */
static int move(const struct dma_dev *d, const struct transfer *t)
{
	const uint8_t *src;
	uint8_t *dst;

	if (t->len > DMA_MAX_LEN || t->op > 1)
		return -EINVAL;
	if (!t->len)
		return 0;
	if (!ioreq_mem_mapped(d->mem))
		return move_copied(d, t);
	src = ioreq_mem_ptr(d->mem, t->src, t->len, false);
	dst = ioreq_mem_ptr(d->mem, t->dst, t->len, true);
	if (!src || !dst)
		return -EFAULT;
	if (t->op == 0) {
		memmove(dst, src, t->len);
		return 0;
	}
	/* Byte by byte, front to back: overlapping buffers get what they ask for. */
	for (uint32_t i = 0; i < t->len; i++)
		dst[i] = (uint8_t)~src[i];
	return 0;
}

static void interrupt(struct dma_dev *d)
{
	uint64_t one = 1;

	if (d->irqfd >= 0) {
		if (write(d->irqfd, &one, sizeof(one)) != sizeof(one))
			dma_log(d, "irqfd: %s", strerror(errno));
		return;
	}
	ioreq_dev_irq(d->dev, d->line, IOREQ_IRQ_PULSE);
}

static void ring(struct dma_dev *d)
{
	struct transfer t;
	int r;

	pthread_mutex_lock(&d->lock);
	t = (struct transfer){
		.src = (uint64_t)d->setup[REG_SRC_HI / 4] << 32 | d->setup[REG_SRC_LO / 4],
		.dst = (uint64_t)d->setup[REG_DST_HI / 4] << 32 | d->setup[REG_DST_LO / 4],
		.len = d->setup[REG_LEN / 4],
		.op = d->setup[REG_OP / 4],
	};
	pthread_mutex_unlock(&d->lock);
	r = move(d, &t);
	pthread_mutex_lock(&d->lock);
	d->status = r < 0 ? r : 1;
	d->count++;
	pthread_mutex_unlock(&d->lock);
	interrupt(d);
}

/* The doorbell's eventfd: each signal is one ring (an eventfd counts them). */
static void *worker(void *arg)
{
	struct dma_dev *d = arg;
	struct pollfd p = { .fd = d->doorbell, .events = POLLIN };

	while (!atomic_load(&d->stop)) {
		uint64_t rings;

		if (poll(&p, 1, 200) <= 0)
			continue;
		if (read(d->doorbell, &rings, sizeof(rings)) != sizeof(rings))
			continue;
		while (rings--)
			ring(d);
	}
	return NULL;
}

static int dma_pio(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	struct dma_dev *d = opaque;
	bool setup = a->offset < N_SETUP * 4;
	int r = 0;

	if (a->range != 0)
		return -ENOENT;
	if (a->offset == REG_DOORBELL && a->write) {
		/* No ioeventfd: the doorbell came as a request. */
		ring(d);
		return 0;
	}
	if (a->size != 4 || a->offset % 4)
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	if (setup && a->write)
		d->setup[a->offset / 4] = (uint32_t)a->value;
	else if (setup)
		*value = d->setup[a->offset / 4];
	else if (a->offset == REG_STATUS && !a->write)
		*value = (uint32_t)d->status;
	else if (a->offset == REG_COUNT && !a->write)
		*value = d->count;
	else
		r = -EINVAL;
	pthread_mutex_unlock(&d->lock);
	return r;
}

static void dma_reset(struct ioreq_dev *dev, void *opaque)
{
	struct dma_dev *d = opaque;

	pthread_mutex_lock(&d->lock);
	memset(d->setup, 0, sizeof(d->setup));
	d->status = 0;
	d->count = 0;
	pthread_mutex_unlock(&d->lock);
}

static const struct ioreq_dev_ops dma_ops = {
	.pio = dma_pio,
	.reset = dma_reset,
};

/* The doorbell and the completion interrupt, bound where the YAML gave
 * eventfds for them. */
static int bind_eventfds(struct dma_dev *d)
{
	const struct ioreq_dev_info *info = ioreq_dev_info(d->dev);
	int r;

	d->doorbell = d->irqfd = -1;
	if (info->n_doorbells) {
		r = ioreq_dev_ioeventfd(d->dev, IOREQ_PIO, d->base + REG_DOORBELL, 1, false, 0, &d->doorbell);
		if (r < 0) {
			dma_log(d, "cannot bind the doorbell: %s", strerror(-r));
			return r;
		}
		r = -pthread_create(&d->worker, NULL, worker, d);
		if (r < 0)
			return r;
		d->worker_started = true;
	}
	if (info->n_irqfds) {
		r = ioreq_dev_irqfd_line(d->dev, d->line, &d->irqfd);
		if (r < 0) {
			dma_log(d, "cannot bind the interrupt: %s", strerror(-r));
			return r;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct dma_dev d = { .name = "-", .lock = PTHREAD_MUTEX_INITIALIZER };
	const struct ioreq_dev_info *info;
	const char *url, *name;
	int r;

	if (ioreq_dev_take_args(&argc, argv, &url, &name) < 0 || argc != 1) {
		fprintf(stderr, "usage: %s --socket URL --name NAME\n", PROG);
		return 2;
	}
	d.name = name;
	r = ioreq_dev_connect(url, name, &dma_ops, &d, &d.dev);
	if (r < 0) {
		dma_log(&d, "cannot connect to %s: %s", url, strerror(-r));
		return 1;
	}
	info = ioreq_dev_info(d.dev);
	d.mem = ioreq_dev_memory(d.dev);
	if (!d.mem || !info->n_ranges || info->ranges[0].kind != IOREQ_PIO || info->ranges[0].size < REG_END ||
	    !info->n_irq_lines) {
		dma_log(&d, "needs `memory: guest`, a port range of 0x%x ports and an IRQ line", REG_END);
		ioreq_dev_close(d.dev);
		return 2;
	}
	d.base = info->ranges[0].start;
	d.line = info->irq_lines[0];
	r = bind_eventfds(&d);
	if (r == 0)
		r = ioreq_dev_serve(d.dev);
	atomic_store(&d.stop, true);
	if (d.worker_started)
		pthread_join(d.worker, NULL);
	dma_log(&d, "%" PRIu32 " transfers", d.count);
	ioreq_dev_close(d.dev);
	return r < 0 ? 1 : 0;
}
