/* ioreq-bench-dev: the device of ioreq-bench's data-plane figures, its
 * registers and shared page as dplane.h describes them. It needs
 * `memory: guest`, `doorbells: 3`, `irqfds: 1` and `irqs: [DP_IRQ_LINE]`,
 * its first range a PIO one at DP_PORT.
 *
 * The doorbells have a thread of their own (ioreq_dev_serve keeps the
 * main one): it sleeps in poll() on the three eventfds, as a device does
 * whose guest rings it without a round trip. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dplane.h"
#include "ioreq/device.h"

#define PROG "ioreq-bench-dev"

enum { BELL_ACK, BELL_IRQFD, BELL_IRQMSG, BELLS };

struct bench_dev {
	const char *name;
	struct ioreq_dev *dev;
	const struct ioreq_mem *mem;
	uint8_t *shared; /* DP_SHARED, one page; NULL: memory not mapped (remote) */
	uint8_t *buf;    /* where copies go */
	uint32_t copy_size;
	int bell[BELLS];
	int irqfd;
	uint32_t rings;
};

__attribute__((format(printf, 2, 3))) static void bd_log(const struct bench_dev *bd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s %s: ", PROG, bd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A remote device's stores are MemAccess writes, done when they return. */
static void store32(struct bench_dev *bd, unsigned off, uint32_t v)
{
	if (bd->shared)
		__atomic_store_n((uint32_t *)(bd->shared + off), v, __ATOMIC_RELEASE);
	else
		ioreq_mem_write(bd->mem, DP_SHARED + off, &v, sizeof(v));
}

static void store64(struct bench_dev *bd, unsigned off, uint64_t v)
{
	if (bd->shared)
		__atomic_store_n((uint64_t *)(bd->shared + off), v, __ATOMIC_RELEASE);
	else
		ioreq_mem_write(bd->mem, DP_SHARED + off, &v, sizeof(v));
}

static int bd_pio(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	struct bench_dev *bd = opaque;
	uint64_t t0;
	int r;

	if (a->range != 0 || a->size != 4)
		return -EINVAL;
	switch (a->offset) {
	case DP_COPY:
		if (a->write) {
			if (a->value > DP_COPY_MAX)
				return -EINVAL;
			bd->copy_size = (uint32_t)a->value;
			return 0;
		}
		t0 = now_ns();
		r = ioreq_mem_read(bd->mem, DP_SRC, bd->buf, bd->copy_size);
		*value = now_ns() - t0;
		/* The copy must happen, and before the second stamp. */
		__asm__ volatile("" : : "r"(bd->buf) : "memory");
		return r;
	case DP_WRITE:
		if (!a->write)
			return -EINVAL;
		store32(bd, DP_WRITTEN, (uint32_t)a->value);
		return 0;
	}
	return -EINVAL;
}

static const struct ioreq_dev_ops bd_ops = {
	.pio = bd_pio,
};

static void ring(struct bench_dev *bd, int which, uint64_t count)
{
	uint64_t one = 1;

	switch (which) {
	case BELL_ACK:
		bd->rings += (uint32_t)count;
		store32(bd, DP_ACK, bd->rings);
		break;
	case BELL_IRQFD:
		store64(bd, DP_T0, now_ns());
		if (write(bd->irqfd, &one, sizeof(one)) != sizeof(one))
			bd_log(bd, "irqfd: %s", strerror(errno));
		break;
	case BELL_IRQMSG:
		store64(bd, DP_T0, now_ns());
		ioreq_dev_irq(bd->dev, DP_IRQ_LINE, IOREQ_IRQ_PULSE);
		break;
	}
}

static void *doorbells(void *arg)
{
	struct bench_dev *bd = arg;
	struct pollfd p[BELLS];

	for (int i = 0; i < BELLS; i++)
		p[i] = (struct pollfd){ .fd = bd->bell[i], .events = POLLIN };
	for (;;) {
		if (poll(p, BELLS, -1) < 0 && errno != EINTR) {
			bd_log(bd, "poll: %s", strerror(errno));
			return NULL;
		}
		for (int i = 0; i < BELLS; i++) {
			uint64_t count;

			/* Non-blocking: a ring that another wake-up consumed reads EAGAIN. */
			if ((p[i].revents & POLLIN) && read(p[i].fd, &count, sizeof(count)) == sizeof(count))
				ring(bd, i, count);
		}
	}
}

/* Binds the doorbells and the irqfd, starts their thread, says it is ready. */
static int bd_setup(struct bench_dev *bd)
{
	static const unsigned at[BELLS] = { DP_BELL_ACK, DP_BELL_IRQFD, DP_BELL_IRQMSG };
	const struct ioreq_dev_info *info = ioreq_dev_info(bd->dev);
	pthread_t t;
	bool ok;
	char c;
	int r;

	bd->mem = ioreq_dev_memory(bd->dev);
	bd->shared = ioreq_mem_ptr(bd->mem, DP_SHARED, 4096, true);
	if (ioreq_mem_mapped(bd->mem))
		ok = bd->shared && ioreq_mem_ptr(bd->mem, DP_SRC, DP_COPY_MAX, false);
	else /* a remote device's: the last byte of each, through the broker */
		ok = bd->mem && ioreq_mem_read(bd->mem, DP_SHARED + 4095, &c, 1) == 0 &&
		     ioreq_mem_read(bd->mem, DP_SRC + DP_COPY_MAX - 1, &c, 1) == 0;
	if (!ok) {
		bd_log(bd, "needs `memory: guest` of at least " DP_MEMORY);
		return -EINVAL;
	}
	if (!info->n_ranges || info->ranges[0].kind != IOREQ_PIO || info->ranges[0].size < 0x20) {
		bd_log(bd, "needs a first range of 0x20 ports (pio: [\"" DP_PORT_RANGE "\"])");
		return -EINVAL;
	}
	bd->buf = malloc(DP_COPY_MAX);
	if (!bd->buf)
		return -ENOMEM;
	/* Its pages are the device's before the first timed copy. */
	memset(bd->buf, 0, DP_COPY_MAX);
	for (int i = 0; i < BELLS; i++) {
		r = ioreq_dev_ioeventfd(bd->dev, IOREQ_PIO, info->ranges[0].start + at[i], 4, false, 0, &bd->bell[i]);
		if (r < 0) {
			bd_log(bd, "doorbell at +0x%x: %s", at[i], strerror(-r));
			return r;
		}
	}
	r = ioreq_dev_irqfd_line(bd->dev, DP_IRQ_LINE, &bd->irqfd);
	if (r < 0) {
		bd_log(bd, "irqfd on line %u: %s", DP_IRQ_LINE, strerror(-r));
		return r;
	}
	r = -pthread_create(&t, NULL, doorbells, bd);
	if (r < 0) {
		bd_log(bd, "doorbell thread: %s", strerror(-r));
		return r;
	}
	pthread_detach(t);
	store32(bd, DP_READY, DP_READY_MAGIC);
	return 0;
}

int main(int argc, char **argv)
{
	static struct bench_dev bd;
	const char *url;
	int r;

	if (ioreq_dev_take_args(&argc, argv, &url, &bd.name) < 0 || argc != 1) {
		fprintf(stderr, "usage: %s --socket URL --name NAME\n", PROG);
		return 2;
	}
	r = ioreq_dev_connect(url, bd.name, &bd_ops, &bd, &bd.dev);
	if (r < 0) {
		fprintf(stderr, "%s %s: cannot connect to %s: %s\n", PROG, bd.name, url, strerror(-r));
		return 1;
	}
	r = bd_setup(&bd);
	if (r == 0)
		r = ioreq_dev_serve(bd.dev);
	ioreq_dev_close(bd.dev);
	return r < 0 ? 1 : 0;
}
