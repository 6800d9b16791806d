/* ioreq-dev-virtio-rng: a virtio entropy device (virtio 1.x, section 5.4).
 *
 * One queue of device-writable buffers, each filled whole (up to a second's
 * worth) from getrandom(2) once the VM's budget covers it: --rate BYTES per
 * second (default 1 MiB/s), with a burst of one second's worth. A guest that
 * asks for more waits: its buffers are filled in order as the budget
 * refills (a refill thread kicks the queue). The guest's buffers are
 * written directly, never read.
 *
 * Usage: ioreq-dev-virtio-rng --socket URL --name NAME [--rate BYTES]
 *        [--vhost-user SOCKET] */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ioreq/virtio.h"

#define PROG "ioreq-dev-virtio-rng"
#define QUEUE_SIZE 64
#define MAX_IOV 64

struct rng {
	struct ioreq_virtio *v;
	uint64_t rate;              /* bytes per second */
	double tokens;              /* bytes it may give now */
	struct timespec last;       /* when tokens were last topped up */
	uint64_t given;             /* bytes given so far */
	struct iovec iov[MAX_IOV];  /* the buffer held for want of budget */
	struct ioreq_vq_chain held;
	bool holding;

	/* The refill thread: sleeps while nobody waits, kicks the queue when
	 * the budget allows a starved request again. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool starved, quit, refill_started;
	pthread_t refill;
	int refill_fd;              /* eventfd: the budget allows more */
};

static void top_up(struct rng *r)
{
	struct timespec ts;
	double dt;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	dt = (double)(ts.tv_sec - r->last.tv_sec) + (double)(ts.tv_nsec - r->last.tv_nsec) / 1e9;
	r->last = ts;
	r->tokens += dt * (double)r->rate;
	if (r->tokens > (double)r->rate)
		r->tokens = (double)r->rate;
}

/* Fills @iov[0, @n) with up to @max bytes of entropy: how many. */
static uint64_t fill(const struct iovec *iov, unsigned n, uint64_t max)
{
	uint64_t done = 0;

	for (unsigned i = 0; i < n && done < max; i++) {
		size_t want = iov[i].iov_len < max - done ? iov[i].iov_len : (size_t)(max - done);
		size_t got = 0;

		while (got < want) {
			ssize_t k = getrandom((uint8_t *)iov[i].iov_base + got, want - got, 0);

			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				return done + got;
			got += (size_t)k;
		}
		done += got;
	}
	return done;
}

static const struct timespec refill_period = { .tv_nsec = 20 * 1000 * 1000 };

static void *refill_thread(void *arg)
{
	struct rng *r = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&r->lock);
	while (!r->quit) {
		if (!r->starved) {
			pthread_cond_wait(&r->cond, &r->lock);
			continue;
		}
		r->starved = false;
		pthread_mutex_unlock(&r->lock);
		/* 20 ms of budget is enough for the next buffer, or part of it. */
		nanosleep(&refill_period, NULL);
		/* Through the queue thread (rng_event): the device's handle
		 * is the serving call's, and may be gone by now. */
		if (write(r->refill_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			break;
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* Fills buffers whole (up to a second's budget each), in order: a buffer
 * the budget does not cover yet stays popped, held until it does. */
static void rng_kick(struct ioreq_virtio *v, unsigned q, struct ioreq_vq *vq, void *opaque)
{
	struct rng *r = opaque;
	bool pushed = false;
	int k = 0;

	top_up(r);
	for (;;) {
		uint64_t need, n;

		if (!r->holding) {
			k = ioreq_vq_pop(vq, r->iov, MAX_IOV, &r->held);
			if (k <= 0)
				break;
			r->holding = true;
		}
		/* Device-readable buffers have nothing for us: only the rest is filled. */
		need = r->held.in_len < r->rate ? r->held.in_len : r->rate;
		if (r->tokens < (double)need) {
			pthread_mutex_lock(&r->lock);
			r->starved = true;
			pthread_cond_signal(&r->cond);
			pthread_mutex_unlock(&r->lock);
			break;
		}
		n = fill(r->iov + r->held.n_out, r->held.n_in, need);
		r->tokens -= (double)n;
		r->given += n;
		r->holding = false;
		k = ioreq_vq_push(vq, r->held.head, (uint32_t)n);
		if (k < 0)
			break;
		pushed = true;
	}
	if (k < 0)
		ioreq_virtio_needs_reset(v, k);
	else if (pushed)
		ioreq_virtio_done(v, q);
}

/* The driver's reset: the held buffer went with its queue. */
static void rng_reset(struct ioreq_virtio *v, void *opaque)
{
	struct rng *r = opaque;

	r->holding = false;
}

static void rng_event(struct ioreq_virtio *v, void *opaque)
{
	struct rng *r = opaque;
	uint64_t n;

	if (read(r->refill_fd, &n, sizeof(n)) == sizeof(n))
		ioreq_virtio_kick(v, 0);
}

static int rng_setup(struct ioreq_virtio *v, void *opaque)
{
	struct rng *r = opaque;

	r->v = v;
	clock_gettime(CLOCK_MONOTONIC, &r->last);
	r->tokens = (double)r->rate;
	r->refill_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->refill_fd < 0)
		return -errno;
	if (ioreq_virtio_watch(v, r->refill_fd) < 0)
		return -EINVAL;
	if (pthread_create(&r->refill, NULL, refill_thread, r))
		return -EAGAIN;
	r->refill_started = true;
	return 0;
}

static const struct ioreq_virtio_ops rng_ops = {
	.setup = rng_setup,
	.kick = rng_kick,
	.reset = rng_reset,
	.event = rng_event,
};

static const struct ioreq_virtio_device rng_device = {
	.prog = PROG,
	.type = IOREQ_VIRTIO_ID_RNG,
	.num_queues = 1,
	.queue_max_size = QUEUE_SIZE,
	.ops = &rng_ops,
};

static void usage(void)
{
	fprintf(stderr, "usage: %s --socket URL --name NAME [--rate BYTES] [--vhost-user SOCKET]\n", PROG);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "rate", required_argument, NULL, 'r' }, { 0 } };
	static struct rng r = { .rate = 1 << 20, .refill_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct ioreq_virtio_args ta;
	int c, status;

	if (ioreq_virtio_take_args(&argc, argv, &ta) < 0)
		usage();
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;

		if (c != 'r')
			usage();
		errno = 0;
		r.rate = strtoull(optarg, &end, 0);
		if (errno || *end || !r.rate || r.rate > (1ULL << 32))
			usage();
	}
	if (optind != argc)
		usage();
	status = ioreq_virtio_run(&rng_device, &ta, &r);
	pthread_mutex_lock(&r.lock);
	r.quit = true;
	pthread_cond_signal(&r.cond);
	pthread_mutex_unlock(&r.lock);
	if (r.refill_started)
		pthread_join(r.refill, NULL);
	fprintf(stderr, "%s %s: %" PRIu64 " bytes of entropy given\n", PROG, ta.name, r.given);
	return status;
}
