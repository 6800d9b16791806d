/* ioreq-dev-uart: a 16550A serial port.
 *
 * The registers sit at the start of the first granted range (ports, e.g.
 * 0x3f8+8); the interrupt drives the first granted IRQ line. Transmitted
 * bytes go to stdout unbuffered; bytes read from stdin arrive at the
 * receiver, as fast as the guest empties the FIFO. The broker hands both
 * fds over (YAML `output:` and `input:`). The model is shared by the serve
 * thread and the stdin reader, under one mutex. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ioreq/device.h"
#include "uart16550.h"

#define PROG "ioreq-dev-uart"

struct uart_dev {
	const char *name;
	struct ioreq_dev *dev;
	bool has_irq;
	uint32_t irq_line;

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t room;  /* the guest may have emptied some of the RX FIFO */
	struct uart uart;
	bool closing;         /* the connection is going away: no more interrupts */
};

__attribute__((format(printf, 2, 3))) static void ud_log(const struct uart_dev *ud, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s %s: ", PROG, ud->name ? ud->name : "-");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- the model's outputs (called with the lock held) ---- */

static void ud_irq(void *opaque, bool level)
{
	struct uart_dev *ud = opaque;
	int r;

	if (!ud->has_irq || ud->closing)
		return;
	r = ioreq_dev_irq(ud->dev, ud->irq_line, level ? IOREQ_IRQ_ASSERT : IOREQ_IRQ_DEASSERT);
	if (r < 0)
		ud_log(ud, "cannot set IRQ %u: %s", ud->irq_line, strerror(-r));
}

/* One write(2) per byte: whoever reads the output sees each byte as soon
 * as the guest sends it. A broken output loses the byte, like a line
 * without a listener. */
static void ud_tx(void *opaque, uint8_t byte)
{
	ssize_t n;

	do
		n = write(STDOUT_FILENO, &byte, 1);
	while (n < 0 && errno == EINTR);
}

static const struct uart_ops ud_uart_ops = {
	.irq = ud_irq,
	.tx = ud_tx,
};

/* ---- guest accesses ---- */

/* The UART is an 8-bit device: a wider access is split into byte accesses
 * at consecutive registers, as the bus would, little endian. */
static int ud_pio(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	struct uart_dev *ud = opaque;
	uint64_t v = 0;

	if (a->range != 0 || a->offset >= UART_NREGS || a->size > UART_NREGS - a->offset)
		return -ENOENT;
	pthread_mutex_lock(&ud->lock);
	for (unsigned i = 0; i < a->size; i++) {
		unsigned reg = (unsigned)a->offset + i;

		if (a->write)
			uart_write(&ud->uart, reg, (uint8_t)(a->value >> (8 * i)));
		else
			v |= (uint64_t)uart_read(&ud->uart, reg) << (8 * i);
	}
	/* Cheaper than working out whether the access freed FIFO space. */
	pthread_cond_signal(&ud->room);
	pthread_mutex_unlock(&ud->lock);
	*value = v;
	return 0;
}

static void ud_reset(struct ioreq_dev *dev, void *opaque)
{
	struct uart_dev *ud = opaque;

	pthread_mutex_lock(&ud->lock);
	uart_reset(&ud->uart);
	pthread_cond_signal(&ud->room);
	pthread_mutex_unlock(&ud->lock);
}

static const struct ioreq_dev_ops ud_ops = {
	.pio = ud_pio,
	.reset = ud_reset,
};

/* ---- input ---- */

/* Feeds stdin to the receiver until EOF (at once for /dev/null), holding
 * back what does not fit until the guest reads it. */
static void *ud_reader(void *arg)
{
	struct uart_dev *ud = arg;
	uint8_t buf[256];

	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
		size_t done = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ud_log(ud, "input: %s", strerror(errno));
		if (n <= 0)
			return NULL;
		pthread_mutex_lock(&ud->lock);
		while (done < (size_t)n && !ud->closing) {
			size_t took = uart_host_rx(&ud->uart, buf + done, (size_t)n - done);

			done += took;
			if (!took)
				pthread_cond_wait(&ud->room, &ud->lock);
		}
		pthread_mutex_unlock(&ud->lock);
	}
}

/* ---- setup ---- */

static void usage(void)
{
	fprintf(stderr, "usage: %s --socket URL --name NAME\n"
			"  a 16550A at the first granted port range, interrupting on the first granted IRQ line\n",
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

static int ud_setup(struct uart_dev *ud)
{
	const struct ioreq_dev_info *info = ioreq_dev_info(ud->dev);

	if (!info->n_ranges || info->ranges[0].kind != IOREQ_PIO || info->ranges[0].size < UART_NREGS)
		return -EINVAL;
	ud->has_irq = info->n_irq_lines > 0;
	if (ud->has_irq)
		ud->irq_line = info->irq_lines[0];
	return 0;
}

int main(int argc, char **argv)
{
	struct uart_dev ud = { .lock = PTHREAD_MUTEX_INITIALIZER, .room = PTHREAD_COND_INITIALIZER };
	const char *url;
	pthread_t reader;
	int r;

	if (ioreq_dev_take_args(&argc, argv, &url, &ud.name) < 0 || parse_args(argc, argv) < 0)
		usage();
	/* An output pipe whose reader went away must not kill the device. */
	signal(SIGPIPE, SIG_IGN);
	uart_init(&ud.uart, &ud_uart_ops, &ud);

	r = ioreq_dev_connect(url, ud.name, &ud_ops, &ud, &ud.dev);
	if (r < 0) {
		ud_log(&ud, "cannot connect to %s: %s", url, strerror(-r));
		return 1;
	}
	r = ud_setup(&ud);
	if (r < 0) {
		ud_log(&ud, "needs a range of at least %d ports as its first range", UART_NREGS);
		goto out;
	}
	r = -pthread_create(&reader, NULL, ud_reader, &ud);
	if (r < 0) {
		ud_log(&ud, "cannot start the input thread: %s", strerror(-r));
		goto out;
	}
	/* The reader may block in read(2) forever: it dies with the process. */
	pthread_detach(reader);
	r = ioreq_dev_serve(ud.dev);
	if (r < 0)
		ud_log(&ud, "serving failed: %s", strerror(-r));
out:
	pthread_mutex_lock(&ud.lock);
	ud.closing = true;
	pthread_cond_signal(&ud.room);
	pthread_mutex_unlock(&ud.lock);
	ud.dev = ioreq_dev_close(ud.dev);
	return r < 0 ? 1 : 0;
}
