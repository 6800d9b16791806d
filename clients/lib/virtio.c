/* libioreq-device: a virtio device's side of the library (ioreq/virtio.h),
 * the part both transports share. */
#include "virtio_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define BIT(n) (UINT64_C(1) << (n))
/* What every transport does itself, offered whatever the device says. */
#define TRANSPORT_FEATURES \
	(BIT(IOREQ_VIRTIO_F_VERSION_1) | BIT(IOREQ_VIRTIO_F_EVENT_IDX) | BIT(IOREQ_VIRTIO_F_INDIRECT_DESC))

int ioreq_virtio_take_args(int *argc, char **argv, struct ioreq_virtio_args *ret)
{
	int i, j;

	if (!argc || !argv || !ret || *argc < 1)
		return -EINVAL;
	*ret = (struct ioreq_virtio_args){ 0 };
	for (i = j = 1; i < *argc; i++) {
		if (!strcmp(argv[i], "--")) {
			while (i < *argc)
				argv[j++] = argv[i++];
			break;
		}
		if (!strncmp(argv[i], "--vhost-user=", 13)) {
			ret->vhost_user = argv[i] + 13;
			continue;
		}
		if (!strcmp(argv[i], "--vhost-user")) {
			if (i + 1 == *argc)
				return -EINVAL;
			ret->vhost_user = argv[++i];
			continue;
		}
		argv[j++] = argv[i];
	}
	*argc = j;
	argv[j] = NULL;
	return ioreq_dev_take_args(argc, argv, &ret->url, &ret->name);
}

void ioreq_virtio_log(const struct ioreq_virtio *v, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s %s: ", v->dev->prog, v->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int check_device(const struct ioreq_virtio_device *d)
{
	if (!d || !d->prog || !d->ops || !d->ops->kick || !d->type)
		return -EINVAL;
	if (!d->num_queues || d->num_queues > IOREQ_VIRTIO_MAX_QUEUES)
		return -EINVAL;
	if (!d->queue_max_size || d->queue_max_size > IOREQ_VQ_MAX_SIZE || (d->queue_max_size & (d->queue_max_size - 1)))
		return -EINVAL;
	return d->config_size <= IOREQ_VIRTIO_MAX_CONFIG ? 0 : -EINVAL;
}

int ioreq_virtio_run(const struct ioreq_virtio_device *dev, const struct ioreq_virtio_args *args, void *opaque)
{
	struct ioreq_virtio v = {
		.dev = dev,
		.ops = dev ? dev->ops : NULL,
		.opaque = opaque,
		.name = args && args->name ? args->name : "-",
		.args = args,
		.t = args && args->vhost_user ? &vhost_user_transport : &virtio_pci_transport,
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.watch_fd = -1,
	};
	int r, status;

	if (check_device(dev) < 0 || !args || !args->url) {
		fprintf(stderr, "%s: not a virtio device description, or no broker to connect to\n",
			dev && dev->prog ? dev->prog : "ioreq_virtio_run");
		return 2;
	}
	v.offered = dev->features | TRANSPORT_FEATURES;
	v.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v.wake_fd < 0) {
		ioreq_virtio_log(&v, "eventfd: %s", strerror(errno));
		return 1;
	}
	r = ioreq_dev_connect(args->url, args->name, v.t->dev_ops, &v, &v.broker);
	if (r < 0) {
		ioreq_virtio_log(&v, "cannot connect to %s: %s", args->url, strerror(-r));
		close(v.wake_fd);
		return 1;
	}
	status = 0;
	if (v.ops->setup) {
		pthread_mutex_lock(&v.lock);
		v.in_setup = true;
		r = v.ops->setup(&v, opaque);
		v.in_setup = false;
		pthread_mutex_unlock(&v.lock);
		if (r < 0) {
			ioreq_virtio_log(&v, "cannot set the device up: %s", strerror(-r));
			status = r == -EINVAL ? 2 : 1;
		}
	}
	if (!status)
		status = v.t->serve(&v);
	ioreq_dev_close(v.broker);
	close(v.wake_fd);
	return status;
}

const char *ioreq_virtio_name(const struct ioreq_virtio *v)
{
	return v->name;
}

const struct ioreq_mem *ioreq_virtio_memory(const struct ioreq_virtio *v)
{
	return v->mem;
}

int ioreq_virtio_file(const struct ioreq_virtio *v, size_t i, int *ret_fd, bool *ret_writable)
{
	return ioreq_dev_file(v->broker, i, ret_fd, ret_writable);
}

void ioreq_virtio_offer(struct ioreq_virtio *v, uint64_t features)
{
	if (v->in_setup)
		v->offered |= features;
}

uint64_t ioreq_virtio_features(const struct ioreq_virtio *v)
{
	return v->features;
}

int ioreq_virtio_set_config(struct ioreq_virtio *v, unsigned offset, const void *buf, unsigned len)
{
	if (offset > v->dev->config_size || len > v->dev->config_size - offset)
		return -EINVAL;
	memcpy(v->config + offset, buf, len);
	if (!v->in_setup && v->t->config_changed)
		v->t->config_changed(v);
	return 0;
}

int ioreq_virtio_done(struct ioreq_virtio *v, unsigned q)
{
	return v->t->done(v, q);
}

int ioreq_virtio_needs_reset(struct ioreq_virtio *v, int error)
{
	return v->t->needs_reset(v, error);
}

int ioreq_virtio_watch(struct ioreq_virtio *v, int fd)
{
	if (!v->in_setup || fd < 0)
		return -EINVAL;
	if (v->watch_fd >= 0)
		return -EBUSY;
	v->watch_fd = fd;
	return 0;
}

void ioreq_virtio_kick(struct ioreq_virtio *v, unsigned q)
{
	uint64_t one = 1;

	if (q >= v->dev->num_queues)
		return;
	atomic_fetch_or(&v->kicked, BIT(q));
	/* Non-blocking: a full counter has a wake-up pending already. */
	if (write(v->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		ioreq_virtio_log(v, "cannot wake the queue thread: %s", strerror(errno));
}

uint64_t virtio_take_kicks(struct ioreq_virtio *v)
{
	uint64_t n;

	if (read(v->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		ioreq_virtio_log(v, "wake-up eventfd: %s", strerror(errno));
	return atomic_exchange(&v->kicked, 0);
}

/* The device takes what queue @q has. Then the driver is asked to ring
 * again for what comes next (with VIRTIO_F_EVENT_IDX a driver rings only
 * past the avail_event a device last wrote: a device that never wrote it
 * would hear from its driver once). Chains that came meanwhile, which the
 * driver may not ring for, are taken at once, as long as the device takes
 * any: one that stopped on purpose (out of slots, budget, input) kicks
 * itself again when it can (ioreq_virtio_kick). */
void virtio_call_kick(struct ioreq_virtio *v, unsigned q, struct ioreq_vq *vq)
{
	for (;;) {
		uint16_t before = ioreq_vq_next_avail(vq);

		v->ops->kick(v, q, vq, v->opaque);
		if (ioreq_vq_broken(vq) || ioreq_vq_enable_kicks(vq) <= 0 || ioreq_vq_next_avail(vq) == before)
			return;
	}
}

int virtio_call_start(struct ioreq_virtio *v)
{
	return v->ops->start ? v->ops->start(v, v->opaque) : 0;
}

void virtio_call_reset(struct ioreq_virtio *v)
{
	if (v->ops->reset)
		v->ops->reset(v, v->opaque);
}

void virtio_call_event(struct ioreq_virtio *v)
{
	if (v->ops->event)
		v->ops->event(v, v->opaque);
}
