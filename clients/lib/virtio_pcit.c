/* libioreq-device: virtio devices over modern virtio-pci, under the broker
 * (ioreq/virtio.h). The register model is virtio_pci.c's; this file is its
 * glue to the broker and to the device's queue thread.
 *
 * Two threads. The serving thread (ioreq_dev_serve) takes the guest's
 * register accesses: configuration space, BAR0. The queue thread waits for
 * doorbells (the queues' ioeventfds, ioreq_virtio_kick's wake-ups, notify
 * writes that came as requests) and for the device's own fd, and calls the
 * device. Both hold v->lock for everything they do to the model or the
 * device, so the model sees one caller at a time and a driver's reset never
 * frees a queue under the device's feet.
 *
 * The data plane. When the driver sets DRIVER_OK, each enabled queue's
 * notify address gets one of the device's `doorbells:` (an ioeventfd): the
 * guest's notify write then signals the queue thread directly and its vCPU
 * goes on at once. Queues beyond the doorbells, and a BAR moved while the
 * device runs, get their notifications as requests until they are bound
 * again. MSI-X messages go out through `irqfds:`, one bound per distinct
 * address and data the first time it is used (the oldest given up when all
 * are taken), else as Interrupt messages; INTx is an Interrupt message
 * (asserted until the driver reads ISR). The device touches guest memory
 * only while the driver lets the function master the bus. */
#include "virtio_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtio_pci.h"

#define BIT(n) (UINT64_C(1) << (n))
#define MAX_IRQFDS 64

struct pcit {
	struct virtio_pci vp;
	const struct ioreq_mem *mem;
	uint32_t bdf;
	bool has_line;
	uint32_t line;
	bool started;                          /* DRIVER_OK seen, start done */
	uint64_t held;                         /* queues kicked while the bus was not ours */
	int doorbell[VIRTIO_PCI_MAX_QUEUES];   /* bound ioeventfd, or -1 */
	struct {
		uint64_t addr;
		uint32_t data;
		int fd;
	} irqfd[MAX_IRQFDS];
	unsigned n_irqfd, next_victim;
	pthread_t thread;
	_Atomic bool stop;
};

static struct pcit *pcit(struct ioreq_virtio *v)
{
	return v->tp;
}

static bool bus_master(struct pcit *t)
{
	return pcidev_cfg_read(&t->vp.pci, PCIDEV_COMMAND, 2) & PCIDEV_CMD_MASTER;
}

/* ---- doorbells ---- */

static void release_doorbells(struct ioreq_virtio *v)
{
	struct pcit *t = pcit(v);

	for (unsigned q = 0; q < v->dev->num_queues; q++) {
		if (t->doorbell[q] >= 0)
			ioreq_dev_eventfd_release(v->broker, t->doorbell[q]);
		t->doorbell[q] = -1;
	}
}

/* Binds the enabled queues' notify addresses inside BAR0 at @bar, as many
 * as the device has doorbells for; the rest keep coming as requests. */
static void bind_doorbells(struct ioreq_virtio *v, uint64_t bar)
{
	struct pcit *t = pcit(v);
	uint64_t one = 1;

	for (unsigned q = 0; q < v->dev->num_queues; q++) {
		uint64_t addr = bar + VIRTIO_PCI_NOTIFY_AT + (uint64_t)q * VIRTIO_PCI_NOTIFY_MULTIPLIER;
		int r;

		if (t->doorbell[q] >= 0 || !virtio_pci_queue(&t->vp, q))
			continue;
		r = ioreq_dev_ioeventfd(v->broker, IOREQ_MMIO, addr, 2, false, 0, &t->doorbell[q]);
		if (r == -ENOSPC)
			break;
		if (r < 0) {
			ioreq_virtio_log(v, "queue %u: no doorbell at 0x%" PRIx64 ": %s; notifications come as requests",
					 q, addr, strerror(-r));
			t->doorbell[q] = -1;
		}
	}
	/* The queue thread polls the new fds from its next round. */
	if (write(v->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		ioreq_virtio_log(v, "cannot wake the queue thread: %s", strerror(errno));
}

/* BAR0's address while the broker routes it here, else 0. */
static uint64_t bar_address(struct pcit *t)
{
	return t->vp.pci.claims[VIRTIO_PCI_BAR].state == PCIDEV_CLAIMED ? t->vp.pci.claims[VIRTIO_PCI_BAR].start : 0;
}

/* ---- the model's outputs ---- */

static void kick_all(struct ioreq_virtio *v)
{
	for (unsigned q = 0; q < v->dev->num_queues; q++)
		ioreq_virtio_kick(v, q);
}

static void on_notify(void *opaque, unsigned queue)
{
	ioreq_virtio_kick(opaque, queue);
}

static int msi_irqfd(struct ioreq_virtio *v, uint64_t addr, uint32_t data)
{
	struct pcit *t = pcit(v);
	const struct ioreq_dev_info *info = ioreq_dev_info(v->broker);
	unsigned i;
	int fd;

	for (i = 0; i < t->n_irqfd; i++)
		if (t->irqfd[i].addr == addr && t->irqfd[i].data == data)
			return t->irqfd[i].fd;
	if (!info->n_irqfds)
		return -1;
	if (t->n_irqfd < info->n_irqfds && t->n_irqfd < MAX_IRQFDS) {
		i = t->n_irqfd;
	} else {
		/* All bound: the driver moved its vectors; give up the oldest. */
		i = t->next_victim;
		t->next_victim = (t->next_victim + 1) % t->n_irqfd;
		ioreq_dev_eventfd_release(v->broker, t->irqfd[i].fd);
		t->irqfd[i] = t->irqfd[--t->n_irqfd];
		i = t->n_irqfd;
	}
	if (ioreq_dev_irqfd_msi(v->broker, addr, data, &fd) < 0)
		return -1;
	t->irqfd[i].addr = addr;
	t->irqfd[i].data = data;
	t->irqfd[i].fd = fd;
	t->n_irqfd++;
	return fd;
}

static void on_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct ioreq_virtio *v = opaque;
	uint64_t one = 1;
	int fd = msi_irqfd(v, addr, data), r;

	if (fd >= 0 && write(fd, &one, sizeof(one)) == sizeof(one))
		return;
	r = ioreq_dev_msi(v->broker, addr, data);
	if (r < 0)
		ioreq_virtio_log(v, "cannot send MSI 0x%" PRIx64 "/0x%x: %s", addr, data, strerror(-r));
}

static void on_intx(void *opaque, bool level)
{
	struct ioreq_virtio *v = opaque;
	struct pcit *t = pcit(v);
	int r;

	if (!t->has_line)
		return;
	r = ioreq_dev_irq(v->broker, t->line, level ? IOREQ_IRQ_ASSERT : IOREQ_IRQ_DEASSERT);
	if (r < 0)
		ioreq_virtio_log(v, "cannot set IRQ %u: %s", t->line, strerror(-r));
}

static int on_claim(void *opaque, unsigned bar, bool io, uint64_t start, uint64_t size, bool release)
{
	struct ioreq_virtio *v = opaque;
	int r = ioreq_dev_claim(v->broker, io ? IOREQ_PIO : IOREQ_MMIO, start, size, release, bar);

	if (r < 0)
		ioreq_virtio_log(v, "BAR%u: cannot %s 0x%" PRIx64 "+0x%" PRIx64 ": %s", bar, release ? "release" : "claim",
				 start, size, strerror(-r));
	return r;
}

/* The driver's reset, or the end: the device lets go of its queues. The
 * doorbells are given back unless the broker is gone (or going: then it
 * drops them itself). */
static void stop_device(struct ioreq_virtio *v, bool release)
{
	struct pcit *t = pcit(v);

	if (t->started)
		virtio_call_reset(v);
	t->started = false;
	t->held = 0;
	v->features = 0;
	v->mem = NULL;
	if (release)
		release_doorbells(v);
}

static void start_device(struct ioreq_virtio *v)
{
	struct pcit *t = pcit(v);
	uint64_t bar = bar_address(t);
	int r;

	v->features = virtio_pci_features(&t->vp);
	v->mem = t->mem;
	t->started = true;
	if (bar)
		bind_doorbells(v, bar);
	r = virtio_call_start(v);
	if (r < 0) {
		ioreq_virtio_log(v, "the device refused to start: %s", strerror(-r));
		virtio_pci_needs_reset(&t->vp, r);
		return;
	}
	kick_all(v);
}

static void on_status(void *opaque, uint8_t status)
{
	struct ioreq_virtio *v = opaque;
	struct pcit *t = pcit(v);

	if (!status) {
		stop_device(v, true);
		return;
	}
	if ((status & VIRTIO_STATUS_DRIVER_OK) && !(status & VIRTIO_STATUS_NEEDS_RESET) && !t->started)
		start_device(v);
}

static void on_config_write(void *opaque, unsigned offset, unsigned size, uint64_t value)
{
	struct ioreq_virtio *v = opaque;

	if (v->ops->config_write)
		v->ops->config_write(v, offset, size, value, v->opaque);
}

static const struct virtio_pci_ops model_ops = {
	.notify = on_notify,
	.msi = on_msi,
	.intx = on_intx,
	.claim = on_claim,
	.status = on_status,
	.config_write = on_config_write,
};

/* ---- the broker's requests (serving thread) ---- */

static int pcit_cfg(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	struct ioreq_virtio *v = opaque;
	struct pcit *t = pcit(v);

	if (a->bdf != t->bdf)
		return -ENOENT;
	pthread_mutex_lock(&v->lock);
	if (a->write) {
		virtio_pci_cfg_write(&t->vp, a->reg, a->size, (uint32_t)a->value);
		/* Bus mastering back on: what was kicked meanwhile. */
		if (t->held && bus_master(t)) {
			for (unsigned q = 0; q < v->dev->num_queues; q++)
				if (t->held & BIT(q))
					ioreq_virtio_kick(v, q);
			t->held = 0;
		}
	} else {
		*value = virtio_pci_cfg_read(&t->vp, a->reg, a->size);
	}
	pthread_mutex_unlock(&v->lock);
	return 0;
}

/* Only the range BAR0's claim routes here (its tag is the BAR). */
static int pcit_bar(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	struct ioreq_virtio *v = opaque;
	uint64_t val = a->value;
	int r;

	if (a->range != (IOREQ_CLAIMED_RANGE | VIRTIO_PCI_BAR))
		return -ENOENT;
	pthread_mutex_lock(&v->lock);
	r = virtio_pci_bar_access(&pcit(v)->vp, VIRTIO_PCI_BAR, a->write, a->offset, a->size, &val);
	pthread_mutex_unlock(&v->lock);
	if (r == 0 && !a->write)
		*value = val;
	return r;
}

static void pcit_claim_result(struct ioreq_dev *dev, uint32_t tag, int error, void *opaque)
{
	struct ioreq_virtio *v = opaque;
	struct pcit *t = pcit(v);
	struct pcidev_claim_op op;

	pthread_mutex_lock(&v->lock);
	if (tag >= PCIDEV_NBARS || virtio_pci_claim_result(&t->vp, tag, error, &op) < 0) {
		ioreq_virtio_log(v, "an answer to a claim never made (tag %u)", tag);
	} else if (error && !op.release) {
		ioreq_virtio_log(v, "BAR%u: the broker refused mmio 0x%" PRIx64 "+0x%" PRIx64 ": %s; the BAR does not decode",
				 op.bar, op.start, op.size, strerror(-error));
	} else if (op.release) {
		/* The broker dropped the doorbells inside it. */
		release_doorbells(v);
	} else if (t->started) {
		bind_doorbells(v, op.start);
	}
	pthread_mutex_unlock(&v->lock);
}

static void pcit_reset(struct ioreq_dev *dev, void *opaque)
{
	struct ioreq_virtio *v = opaque;

	pthread_mutex_lock(&v->lock);
	virtio_pci_reset(&pcit(v)->vp);
	pthread_mutex_unlock(&v->lock);
}

static const struct ioreq_dev_ops pcit_dev_ops = {
	.mmio = pcit_bar,
	.pcicfg = pcit_cfg,
	.reset = pcit_reset,
	.claim_result = pcit_claim_result,
};

/* ---- the queue thread ---- */

/* The doorbells that rang, and the queues kicked otherwise. */
static uint64_t rung(struct ioreq_virtio *v, const struct pollfd *p, const int *queue_of, unsigned n)
{
	uint64_t mask = 0, count;

	for (unsigned i = 0; i < n; i++) {
		if (!(p[i].revents & POLLIN))
			continue;
		if (queue_of[i] < 0) {
			mask |= virtio_take_kicks(v);
		} else if (queue_of[i] < IOREQ_VIRTIO_MAX_QUEUES) {
			if (read(p[i].fd, &count, sizeof(count)) == sizeof(count))
				mask |= BIT(queue_of[i]);
		}
	}
	return mask;
}

static void serve_queues(struct ioreq_virtio *v, uint64_t mask)
{
	struct pcit *t = pcit(v);

	if (!t->started || (t->vp.status & VIRTIO_STATUS_NEEDS_RESET))
		return;
	if (!bus_master(t)) {
		t->held |= mask;
		return;
	}
	for (unsigned q = 0; q < v->dev->num_queues; q++) {
		struct ioreq_vq *vq = virtio_pci_queue(&t->vp, q);

		if ((mask & BIT(q)) && vq && !(t->vp.status & VIRTIO_STATUS_NEEDS_RESET))
			virtio_call_kick(v, q, vq);
	}
}

#define WATCH_SLOT IOREQ_VIRTIO_MAX_QUEUES

static void *queue_thread(void *arg)
{
	struct ioreq_virtio *v = arg;
	struct pcit *t = pcit(v);

	while (!atomic_load(&t->stop)) {
		struct pollfd p[IOREQ_VIRTIO_MAX_QUEUES + 2];
		int queue_of[IOREQ_VIRTIO_MAX_QUEUES + 2];
		unsigned n = 0;
		uint64_t mask;

		pthread_mutex_lock(&v->lock);
		p[n] = (struct pollfd){ .fd = v->wake_fd, .events = POLLIN };
		queue_of[n++] = -1;
		if (v->watch_fd >= 0) {
			p[n] = (struct pollfd){ .fd = v->watch_fd, .events = POLLIN };
			queue_of[n++] = WATCH_SLOT;
		}
		for (unsigned q = 0; q < v->dev->num_queues; q++) {
			if (t->doorbell[q] >= 0) {
				p[n] = (struct pollfd){ .fd = t->doorbell[q], .events = POLLIN };
				queue_of[n++] = (int)q;
			}
		}
		pthread_mutex_unlock(&v->lock);

		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			ioreq_virtio_log(v, "poll: %s", strerror(errno));
			break;
		}
		pthread_mutex_lock(&v->lock);
		mask = rung(v, p, queue_of, n);
		serve_queues(v, mask);
		if (v->watch_fd >= 0 && (p[1].revents & POLLIN))
			virtio_call_event(v);
		pthread_mutex_unlock(&v->lock);
	}
	return NULL;
}

/* ---- the transport ---- */

static int pcit_done(struct ioreq_virtio *v, unsigned q)
{
	return virtio_pci_queue_done(&pcit(v)->vp, q);
}

static int pcit_needs_reset(struct ioreq_virtio *v, int error)
{
	struct pcit *t = pcit(v);

	if (!(t->vp.status & VIRTIO_STATUS_NEEDS_RESET)) {
		const char *why = NULL;

		for (unsigned q = 0; q < v->dev->num_queues && !why; q++)
			if (virtio_pci_queue(&t->vp, q))
				why = ioreq_vq_broken(virtio_pci_queue(&t->vp, q));
		ioreq_virtio_log(v, "the device needs a reset: %s", why ? why : strerror(-error));
	}
	return virtio_pci_needs_reset(&t->vp, error);
}

static void pcit_config_changed(struct ioreq_virtio *v)
{
	virtio_pci_set_config(&pcit(v)->vp, 0, v->config, v->dev->config_size);
}

/* What the YAML must give a virtio-pci device: a PCI function, the guest's
 * RAM; an IRQ line or MSIs. */
static int check_grants(struct ioreq_virtio *v, struct pcit *t)
{
	const struct ioreq_dev_info *info = ioreq_dev_info(v->broker);
	size_t i;

	for (i = 0; i < info->n_ranges && info->ranges[i].kind != IOREQ_PCICFG; i++)
		;
	if (i == info->n_ranges || !t->mem) {
		ioreq_virtio_log(v, "needs a PCI function (`pci:`), `memory: guest`, and `windows:` for its BAR");
		return -EINVAL;
	}
	t->bdf = (uint32_t)info->ranges[i].start;
	t->has_line = info->n_irq_lines > 0;
	t->line = t->has_line ? info->irq_lines[0] : 0;
	if (!t->has_line && !info->msi) {
		ioreq_virtio_log(v, "needs an IRQ line (`irqs:`) or MSIs (`msi: true`)");
		return -EINVAL;
	}
	return 0;
}

static int pcit_serve(struct ioreq_virtio *v)
{
	struct pcit *t = calloc(1, sizeof(*t));
	struct virtio_pci_config cfg = {
		.device_type = v->dev->type,
		.features = v->offered,
		.num_queues = v->dev->num_queues,
		.queue_max_size = v->dev->queue_max_size,
		.config_size = v->dev->config_size,
	};
	int r;

	if (!t)
		return 1;
	for (unsigned q = 0; q < VIRTIO_PCI_MAX_QUEUES; q++)
		t->doorbell[q] = -1;
	t->mem = ioreq_dev_memory(v->broker);
	pthread_mutex_lock(&v->lock);
	v->tp = t;
	r = check_grants(v, t);
	if (r == 0)
		r = virtio_pci_init(&t->vp, &cfg, t->mem, &model_ops, v);
	if (r == 0)
		memcpy(t->vp.config, v->config, v->dev->config_size);
	pthread_mutex_unlock(&v->lock);
	if (r == 0) {
		r = -pthread_create(&t->thread, NULL, queue_thread, v);
		if (r == 0) {
			r = ioreq_dev_serve(v->broker);
			atomic_store(&t->stop, true);
			ioreq_virtio_kick(v, 0);
			pthread_join(t->thread, NULL);
		}
		pthread_mutex_lock(&v->lock);
		stop_device(v, false);
		virtio_pci_fini(&t->vp);
		pthread_mutex_unlock(&v->lock);
	}
	if (r < 0)
		ioreq_virtio_log(v, "%s", strerror(-r));
	v->tp = NULL;
	free(t);
	return r == -EINVAL ? 2 : r < 0 ? 1 : 0;
}

const struct virtio_transport virtio_pci_transport = {
	.name = "virtio-pci",
	.dev_ops = &pcit_dev_ops,
	.serve = pcit_serve,
	.done = pcit_done,
	.needs_reset = pcit_needs_reset,
	.config_changed = pcit_config_changed,
};
