/* ioreq-dev-rtc: an MC146818 CMOS real-time clock.
 *
 * The index and data ports are the first two ports of the first granted
 * range (0x70+2 on a PC); the interrupt drives the first granted IRQ line
 * (8 on a PC). Time is the host's CLOCK_REALTIME, in UTC. A timer thread
 * raises the periodic, alarm and update-ended interrupts on time; it and
 * the serve thread share the model under one mutex. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ioreq/device.h"
#include "mc146818.h"

#define PROG "ioreq-dev-rtc"
#define RTC_PORTS 2

struct rtc_dev {
	const char *name;
	struct ioreq_dev *dev;
	bool has_irq;
	uint32_t irq_line;

	pthread_mutex_t lock;  /* guards everything below */
	pthread_cond_t changed; /* the registers changed: the next event may be sooner */
	struct rtc rtc;
	bool closing;
};

__attribute__((format(printf, 2, 3))) static void rd_log(const struct rtc_dev *rd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s %s: ", PROG, rd->name ? rd->name : "-");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- the model's inputs and outputs (called with the lock held) ---- */

static int64_t rd_now(void *opaque)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void rd_irq(void *opaque, bool level)
{
	struct rtc_dev *rd = opaque;
	int r;

	if (!rd->has_irq || rd->closing)
		return;
	r = ioreq_dev_irq(rd->dev, rd->irq_line, level ? IOREQ_IRQ_ASSERT : IOREQ_IRQ_DEASSERT);
	if (r < 0)
		rd_log(rd, "cannot set IRQ %u: %s", rd->irq_line, strerror(-r));
}

static const struct rtc_ops rd_rtc_ops = {
	.irq = rd_irq,
	.now = rd_now,
};

/* ---- guest accesses ---- */

/* An 8-bit device: a word access is an index write followed by a data
 * access, as the bus splits it. */
static int rd_pio(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	struct rtc_dev *rd = opaque;
	uint64_t v = 0;

	if (a->range != 0 || a->offset >= RTC_PORTS || a->size > RTC_PORTS - a->offset)
		return -ENOENT;
	pthread_mutex_lock(&rd->lock);
	for (unsigned i = 0; i < a->size; i++) {
		unsigned port = (unsigned)a->offset + i;

		if (a->write)
			rtc_io_write(&rd->rtc, port, (uint8_t)(a->value >> (8 * i)));
		else
			v |= (uint64_t)rtc_io_read(&rd->rtc, port) << (8 * i);
	}
	pthread_cond_signal(&rd->changed);
	pthread_mutex_unlock(&rd->lock);
	*value = v;
	return 0;
}

static void rd_reset(struct ioreq_dev *dev, void *opaque)
{
	struct rtc_dev *rd = opaque;

	pthread_mutex_lock(&rd->lock);
	rtc_reset(&rd->rtc);
	pthread_cond_signal(&rd->changed);
	pthread_mutex_unlock(&rd->lock);
}

static const struct ioreq_dev_ops rd_ops = {
	.pio = rd_pio,
	.reset = rd_reset,
};

/* ---- the timer ---- */

/* Sleeps until the model's next event (CLOCK_REALTIME, the condition
 * variable's clock and the model's) or until a register changes. */
static void *rd_timer(void *arg)
{
	struct rtc_dev *rd = arg;

	pthread_mutex_lock(&rd->lock);
	while (!rd->closing) {
		int64_t next;

		rtc_sync(&rd->rtc);
		next = rtc_next_event(&rd->rtc);
		if (next == INT64_MAX) {
			pthread_cond_wait(&rd->changed, &rd->lock);
		} else {
			struct timespec ts = { .tv_sec = next / 1000000000, .tv_nsec = next % 1000000000 };

			pthread_cond_timedwait(&rd->changed, &rd->lock, &ts);
		}
	}
	pthread_mutex_unlock(&rd->lock);
	return NULL;
}

/* ---- setup ---- */

static void usage(void)
{
	fprintf(stderr, "usage: %s --socket URL --name NAME\n"
			"  an MC146818 RTC at the first granted port range (index, data), interrupting on the\n"
			"  first granted IRQ line\n",
		PROG);
	exit(2);
}

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};

	if (getopt_long(argc, argv, "", opts, NULL) != -1)
		return -EINVAL;
	return optind == argc ? 0 : -EINVAL;
}

static int rd_setup(struct rtc_dev *rd)
{
	const struct ioreq_dev_info *info = ioreq_dev_info(rd->dev);

	if (!info->n_ranges || info->ranges[0].kind != IOREQ_PIO || info->ranges[0].size < RTC_PORTS)
		return -EINVAL;
	rd->has_irq = info->n_irq_lines > 0;
	if (rd->has_irq)
		rd->irq_line = info->irq_lines[0];
	return 0;
}

int main(int argc, char **argv)
{
	struct rtc_dev rd = { .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER };
	const char *url;
	pthread_t timer;
	bool timer_started = false;
	int r;

	if (ioreq_dev_take_args(&argc, argv, &url, &rd.name) < 0 || parse_args(argc, argv) < 0)
		usage();
	rtc_init(&rd.rtc, &rd_rtc_ops, &rd);

	r = ioreq_dev_connect(url, rd.name, &rd_ops, &rd, &rd.dev);
	if (r < 0) {
		rd_log(&rd, "cannot connect to %s: %s", url, strerror(-r));
		return 1;
	}
	r = rd_setup(&rd);
	if (r < 0) {
		rd_log(&rd, "needs a range of at least %d ports as its first range", RTC_PORTS);
		goto out;
	}
	r = -pthread_create(&timer, NULL, rd_timer, &rd);
	if (r < 0) {
		rd_log(&rd, "cannot start the timer thread: %s", strerror(-r));
		goto out;
	}
	timer_started = true;
	r = ioreq_dev_serve(rd.dev);
	if (r < 0)
		rd_log(&rd, "serving failed: %s", strerror(-r));
out:
	pthread_mutex_lock(&rd.lock);
	rd.closing = true;
	pthread_cond_signal(&rd.changed);
	pthread_mutex_unlock(&rd.lock);
	if (timer_started)
		pthread_join(timer, NULL);
	rd.dev = ioreq_dev_close(rd.dev);
	return r < 0 ? 1 : 0;
}
