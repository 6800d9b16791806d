/* The inside of libioreq-device's virtio devices (ioreq/virtio.h): what
 * the device-facing code (virtio.c) shares with its two transports,
 * virtio-pci under the broker (virtio_pcit.c) and vhost-user
 * (vhost_user.c). */
#ifndef IOREQ_VIRTIO_IMPL_H
#define IOREQ_VIRTIO_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ioreq/device.h"
#include "ioreq/virtio.h"

struct virtio_transport {
	const char *name;                     /* "virtio-pci", "vhost-user" */
	/* What the broker's requests go to (its opaque is the ioreq_virtio). */
	const struct ioreq_dev_ops *dev_ops;
	/* Serves the device after setup until the broker says Shutdown:
	 * returns the program's exit status (0, 1, 2 as ioreq_virtio_run). */
	int (*serve)(struct ioreq_virtio *v);
	/* The lock is held for the three below. */
	int (*done)(struct ioreq_virtio *v, unsigned q);
	int (*needs_reset)(struct ioreq_virtio *v, int error);
	void (*config_changed)(struct ioreq_virtio *v);
};

extern const struct virtio_transport virtio_pci_transport, vhost_user_transport;

struct ioreq_virtio {
	const struct ioreq_virtio_device *dev;
	const struct ioreq_virtio_ops *ops;
	void *opaque;
	const char *name;
	const struct ioreq_virtio_args *args;
	const struct virtio_transport *t;
	void *tp;                        /* the transport's own state */
	struct ioreq_dev *broker;        /* the connection to the broker */

	/* Held around every callback and every transport state change. */
	pthread_mutex_t lock;
	bool in_setup;
	const struct ioreq_mem *mem;     /* the transport's, from start to reset */
	uint64_t offered;                /* device features, transport's included */
	uint64_t features;               /* accepted: 0 until start */
	uint8_t config[IOREQ_VIRTIO_MAX_CONFIG];
	int watch_fd;                    /* ioreq_virtio_watch's, or -1 */

	/* ioreq_virtio_kick from any thread: the queues' bits, and an
	 * eventfd the transport's queue thread polls (non-blocking). */
	_Atomic uint64_t kicked;
	int wake_fd;
};

/* Under the lock: the device's callbacks, each guarding a NULL member. */
void virtio_call_kick(struct ioreq_virtio *v, unsigned q, struct ioreq_vq *vq);
int virtio_call_start(struct ioreq_virtio *v);
void virtio_call_reset(struct ioreq_virtio *v);
void virtio_call_event(struct ioreq_virtio *v);

/* The queue thread, on wake_fd readable: reads it and returns the queues
 * ioreq_virtio_kick asked for since the last call. */
uint64_t virtio_take_kicks(struct ioreq_virtio *v);

#endif
