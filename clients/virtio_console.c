/* ioreq-dev-virtio-console: a virtio console with one port (virtio 1.x,
 * section 5.3), no multiport.
 *
 * Queue 1 (transmitq) carries what the guest writes: it goes to the
 * device's stdout (`output:` in its YAML: the broker's stdout or a file),
 * or with --output log to its stderr, which the broker logs line by line,
 * tagged with the VM and device and rate-limited. VIRTIO_CONSOLE_F_EMERG_WRITE
 * lets a driver write single characters through the configuration (emerg_wr)
 * before its queues work, as Linux's early console does.
 *
 * Queue 0 (receiveq) carries input to the guest: with --input stdin, the
 * device's stdin (`input: stdin`: the broker's, a terminal, pipe or socket),
 * with --input file:N the YAML's file N, read once to its end. A reader
 * thread fills a buffer of --buffer bytes (4 KiB); the queue thread hands it
 * to the guest's receive buffers as they come, and the reader waits while the
 * buffer is full, so a guest that does not read holds the input back rather
 * than losing it.
 *
 * Usage: ioreq-dev-virtio-console --socket URL --name NAME
 *        [--output stdout|log] [--input stdin|file:N] [--vhost-user SOCKET] */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ioreq/virtio.h"

#define PROG "ioreq-dev-virtio-console"
#define QUEUE_SIZE 64
#define MAX_IOV 64
#define RX 0
#define TX 1
#define CONSOLE_F_EMERG_WRITE 2
#define CFG_EMERG_WR 8
#define CFG_SIZE 12
#define IN_BUF 4096
#define LOG_LINE 256

struct console {
	struct ioreq_virtio *v;
	bool to_log;
	const char *input;         /* NULL, "stdin" or "file:N" */
	int in_fd;
	int ready_fd;              /* eventfd: the reader added input */

	/* The log's line in the making (queue thread) */
	char line[LOG_LINE];
	size_t line_len;

	/* Input: a ring the reader fills and the queue thread drains. */
	pthread_mutex_t lock;
	pthread_cond_t room;
	uint8_t buf[IN_BUF];
	size_t head, len;
	bool quit;
	pthread_t reader;

	_Atomic uint64_t out_bytes, in_bytes;
};

/* ---- output ---- */

static void out_bytes(struct console *c, const uint8_t *p, size_t n)
{
	if (!c->to_log) {
		while (n) {
			ssize_t k = write(STDOUT_FILENO, p, n);

			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				return;
			p += k;
			n -= (size_t)k;
		}
		return;
	}
	/* To the broker's log, a line at a time (long lines in pieces). */
	for (size_t i = 0; i < n; i++) {
		bool eol = p[i] == '\n';

		if (!eol && p[i] != '\r')
			c->line[c->line_len++] = (char)(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?');
		if (eol || c->line_len == LOG_LINE - 1) {
			ioreq_virtio_log(c->v, "%.*s", (int)c->line_len, c->line);
			c->line_len = 0;
		}
	}
}

static void tx(struct console *c, struct ioreq_virtio *v, struct ioreq_vq *vq)
{
	struct iovec iov[MAX_IOV];
	struct ioreq_vq_chain ch;
	bool pushed = false;
	int k;

	while ((k = ioreq_vq_pop(vq, iov, MAX_IOV, &ch)) > 0) {
		for (unsigned i = 0; i < ch.n_out; i++)
			out_bytes(c, iov[i].iov_base, iov[i].iov_len);
		atomic_fetch_add(&c->out_bytes, ch.out_len);
		k = ioreq_vq_push(vq, ch.head, 0);
		if (k < 0)
			break;
		pushed = true;
	}
	if (k < 0)
		ioreq_virtio_needs_reset(v, k);
	else if (pushed)
		ioreq_virtio_done(v, TX);
}

/* ---- input ---- */

static void rx(struct console *c, struct ioreq_virtio *v, struct ioreq_vq *vq)
{
	struct iovec iov[MAX_IOV];
	struct ioreq_vq_chain ch;
	bool pushed = false;
	int k = 0;

	pthread_mutex_lock(&c->lock);
	while (c->len && (k = ioreq_vq_pop(vq, iov, MAX_IOV, &ch)) > 0) {
		uint32_t done = 0;

		for (unsigned i = ch.n_out; i < ch.n_out + ch.n_in && c->len; i++) {
			uint8_t *dst = iov[i].iov_base;
			size_t room = iov[i].iov_len;

			while (room && c->len) {
				size_t run = IN_BUF - c->head;
				size_t n = c->len < run ? c->len : run;

				n = n < room ? n : room;
				memcpy(dst, c->buf + c->head, n);
				dst += n;
				room -= n;
				done += (uint32_t)n;
				c->head = (c->head + n) % IN_BUF;
				c->len -= n;
			}
		}
		atomic_fetch_add(&c->in_bytes, done);
		k = ioreq_vq_push(vq, ch.head, done);
		if (k < 0)
			break;
		pushed = true;
	}
	pthread_cond_signal(&c->room);
	pthread_mutex_unlock(&c->lock);
	if (k < 0)
		ioreq_virtio_needs_reset(v, k);
	else if (pushed)
		ioreq_virtio_done(v, RX);
}

static void *reader(void *arg)
{
	struct console *c = arg;
	uint8_t chunk[512];
	uint64_t one = 1;

	for (;;) {
		ssize_t n = read(c->in_fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		pthread_mutex_lock(&c->lock);
		for (ssize_t i = 0; i < n && !c->quit; i++) {
			while (c->len == IN_BUF && !c->quit)
				pthread_cond_wait(&c->room, &c->lock);
			c->buf[(c->head + c->len) % IN_BUF] = chunk[i];
			c->len++;
		}
		bool quit = c->quit;
		pthread_mutex_unlock(&c->lock);
		if (quit)
			break;
		/* Through the queue thread (console_event): the device's
		 * handle is the serving call's, and may be gone by now. */
		if (write(c->ready_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			break;
	}
	return NULL;
}

/* ---- the device ---- */

static void console_kick(struct ioreq_virtio *v, unsigned q, struct ioreq_vq *vq, void *opaque)
{
	if (q == TX)
		tx(opaque, v, vq);
	else
		rx(opaque, v, vq);
}

static void console_event(struct ioreq_virtio *v, void *opaque)
{
	struct console *c = opaque;
	uint64_t n;

	if (read(c->ready_fd, &n, sizeof(n)) == sizeof(n))
		ioreq_virtio_kick(v, RX);
}

static void console_config_write(struct ioreq_virtio *v, unsigned offset, unsigned size, uint64_t value, void *opaque)
{
	struct console *c = opaque;
	uint8_t ch = (uint8_t)value;

	if (offset == CFG_EMERG_WR && (ioreq_virtio_features(v) & (UINT64_C(1) << CONSOLE_F_EMERG_WRITE))) {
		out_bytes(c, &ch, 1);
		atomic_fetch_add(&c->out_bytes, 1);
	}
}

static void console_reset(struct ioreq_virtio *v, void *opaque)
{
	struct console *c = opaque;

	if (c->line_len) {
		ioreq_virtio_log(v, "%.*s", (int)c->line_len, c->line);
		c->line_len = 0;
	}
}

static int console_setup(struct ioreq_virtio *v, void *opaque)
{
	struct console *c = opaque;

	c->v = v;
	ioreq_virtio_offer(v, UINT64_C(1) << CONSOLE_F_EMERG_WRITE);
	if (!c->input)
		return 0;
	if (!strcmp(c->input, "stdin")) {
		c->in_fd = STDIN_FILENO;
	} else {
		char *end;
		unsigned long i = strtoul(c->input + 5, &end, 10);
		bool writable;

		if (strncmp(c->input, "file:", 5) || *end || end == c->input + 5 ||
		    ioreq_virtio_file(v, i, &c->in_fd, &writable) < 0) {
			ioreq_virtio_log(v, "--input %s: no such file in its `files:`", c->input);
			return -EINVAL;
		}
	}
	c->ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->ready_fd < 0)
		return -errno;
	if (ioreq_virtio_watch(v, c->ready_fd) < 0 || pthread_create(&c->reader, NULL, reader, c))
		return -EAGAIN;
	return 0;
}

static const struct ioreq_virtio_ops console_ops = {
	.setup = console_setup,
	.kick = console_kick,
	.event = console_event,
	.reset = console_reset,
	.config_write = console_config_write,
};

static const struct ioreq_virtio_device console_device = {
	.prog = PROG,
	.type = IOREQ_VIRTIO_ID_CONSOLE,
	.num_queues = 2,
	.queue_max_size = QUEUE_SIZE,
	.config_size = CFG_SIZE,
	.ops = &console_ops,
};

static void usage(void)
{
	fprintf(stderr,
		"usage: %s --socket URL --name NAME [--output stdout|log] [--input stdin|file:N] [--vhost-user SOCKET]\n",
		PROG);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "input", required_argument, NULL, 'i' },
		{ 0 },
	};
	static struct console c = { .in_fd = -1, .ready_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .room = PTHREAD_COND_INITIALIZER };
	struct ioreq_virtio_args ta;
	int opt, status;

	if (ioreq_virtio_take_args(&argc, argv, &ta) < 0)
		usage();
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			if (strcmp(optarg, "stdout") && strcmp(optarg, "log"))
				usage();
			c.to_log = !strcmp(optarg, "log");
			break;
		case 'i':
			if (strcmp(optarg, "stdin") && strncmp(optarg, "file:", 5))
				usage();
			c.input = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	status = ioreq_virtio_run(&console_device, &ta, &c);
	/* The reader may sit in read(): it goes with the process (it never
	 * touches the device once serving is over: see reader). */
	pthread_mutex_lock(&c.lock);
	c.quit = true;
	pthread_cond_signal(&c.room);
	pthread_mutex_unlock(&c.lock);
	fprintf(stderr, "%s %s: %" PRIu64 " bytes out, %" PRIu64 " bytes in\n", PROG, ta.name,
		atomic_load(&c.out_bytes), atomic_load(&c.in_bytes));
	return status;
}
