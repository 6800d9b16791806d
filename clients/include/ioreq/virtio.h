/* libioreq-device: write a virtio device once, serve it over either
 * transport.
 *
 * A virtio device program describes its device (type, features, queues,
 * configuration) and handles its queues; the library supplies the
 * transport:
 *
 *  - virtio-pci (modern, virtio 1.x) under the broker: the program serves
 *    the PCI function the YAML gives it (`pci:`, `windows:`, `memory:
 *    guest`, `msi:` or `irqs:`); queue notifications come through
 *    ioeventfds and MSI-X messages go out through irqfds where the YAML
 *    grants `doorbells:` and `irqfds:`, through the broker where it does not;
 *  - vhost-user (`--vhost-user SOCKET`): the program serves a vhost-user
 *    front end (QEMU's vhost-user-blk-pci, cloud-hypervisor, crosvm) on
 *    SOCKET, a path or `fd:N` (a listening socket the broker passed), with
 *    the front end's guest memory, kick and call eventfds.
 *
 * Either way the program is started by the broker, in its sandbox, and gets
 * its files from the broker (`files:`). Its main is
 *
 *     struct ioreq_virtio_args ta;
 *
 *     if (ioreq_virtio_take_args(&argc, argv, &ta) < 0)
 *             usage();
 *     ...parse the device's own options...
 *     return ioreq_virtio_run(&my_device, &ta, &state);
 *
 * Threads. Every callback runs on the device's queue thread, one at a time,
 * with the transport's lock held; the ioreq_virtio_* calls below that take
 * a struct ioreq_virtio are made from inside a callback, unless they say
 * otherwise. Work the device hands to threads of its own comes back through
 * the fd it gave ioreq_virtio_watch: its event callback then pushes the
 * results. Every function returns 0 or a negative errno unless it says
 * otherwise. */
#ifndef IOREQ_VIRTIO_H
#define IOREQ_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "ioreq/device.h"
#include "ioreq/virtq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Device types (virtio 1.x, section 5). */
#define IOREQ_VIRTIO_ID_NET 1
#define IOREQ_VIRTIO_ID_BLOCK 2
#define IOREQ_VIRTIO_ID_CONSOLE 3
#define IOREQ_VIRTIO_ID_RNG 4

/* Feature bits every transport handles itself (offered, when they are
 * not in a device's features, all the same). */
#define IOREQ_VIRTIO_F_INDIRECT_DESC 28
#define IOREQ_VIRTIO_F_EVENT_IDX 29
#define IOREQ_VIRTIO_F_VERSION_1 32

/* The most queues a device may have. */
#define IOREQ_VIRTIO_MAX_QUEUES 64
/* The largest device configuration. */
#define IOREQ_VIRTIO_MAX_CONFIG 256

struct ioreq_virtio;

struct ioreq_virtio_ops {
	/* Once, before the driver sees the device: read the files, set the
	 * configuration (ioreq_virtio_set_config), offer features
	 * (ioreq_virtio_offer), watch an fd (ioreq_virtio_watch). A negative
	 * errno ends the program. May be NULL. */
	int (*setup)(struct ioreq_virtio *v, void *opaque);
	/* The driver is ready (DRIVER_OK) with ioreq_virtio_features(): the
	 * queues it enabled may be served. A negative errno refuses: the
	 * device needs a reset. May be NULL. */
	int (*start)(struct ioreq_virtio *v, void *opaque);
	/* Queue @q may have chains available (its doorbell rang, or the
	 * device just started): pop them. @vq is valid until reset. */
	void (*kick)(struct ioreq_virtio *v, unsigned q, struct ioreq_vq *vq, void *opaque);
	/* The fd given to ioreq_virtio_watch is readable. May be NULL. */
	void (*event)(struct ioreq_virtio *v, void *opaque);
	/* The driver reset the device, or the front end went away: wait for
	 * or abandon the work in flight and forget every queue; the transport
	 * frees them when this returns. Back to the state after setup. May be
	 * NULL. */
	void (*reset)(struct ioreq_virtio *v, void *opaque);
	/* The driver wrote @size bytes of @value at @offset of the device's
	 * configuration (inside config_size); the device stores what it
	 * accepts with ioreq_virtio_set_config. May be NULL: read-only. */
	void (*config_write)(struct ioreq_virtio *v, unsigned offset, unsigned size, uint64_t value, void *opaque);
};

struct ioreq_virtio_device {
	const char *prog;            /* the program's name, for logs */
	uint16_t type;               /* IOREQ_VIRTIO_ID_* */
	uint64_t features;           /* device features offered (setup may add) */
	unsigned num_queues;         /* 1 to IOREQ_VIRTIO_MAX_QUEUES */
	uint16_t queue_max_size;     /* a power of 2 up to IOREQ_VQ_MAX_SIZE */
	unsigned config_size;        /* 0 to IOREQ_VIRTIO_MAX_CONFIG */
	const struct ioreq_virtio_ops *ops;
};

/* The transport's options, as ioreq_virtio_take_args found them. */
struct ioreq_virtio_args {
	const char *url, *name;      /* --socket, --name: the broker */
	const char *vhost_user;      /* --vhost-user SOCKET, or NULL: virtio-pci */
};

/* Removes "--socket URL", "--name NAME" and "--vhost-user SOCKET" from argv
 * (before any "--"), as ioreq_dev_take_args. -EINVAL without the first two. */
int ioreq_virtio_take_args(int *argc, char **argv, struct ioreq_virtio_args *ret);

/* Connects to the broker, sets the device up and serves it until the
 * broker says Shutdown. Returns the program's exit status: 0, 1 on
 * failure (logged on stderr), 2 for a YAML entry that does not give the
 * device what it needs (logged). @dev and @opaque are borrowed. */
int ioreq_virtio_run(const struct ioreq_virtio_device *dev, const struct ioreq_virtio_args *args, void *opaque);

/* ---- from callbacks ---- */

/* The device's name (the YAML's), for logs. Any thread. */
const char *ioreq_virtio_name(const struct ioreq_virtio *v);

/* The guest's RAM: every chain's buffers lie in it. NULL before start. */
const struct ioreq_mem *ioreq_virtio_memory(const struct ioreq_virtio *v);

/* File @i of the YAML's `files:`, as ioreq_dev_file. Any thread. */
int ioreq_virtio_file(const struct ioreq_virtio *v, size_t i, int *ret_fd, bool *ret_writable);

/* setup only: offers @features too (device feature bits). */
void ioreq_virtio_offer(struct ioreq_virtio *v, uint64_t features);

/* The features the driver accepted: 0 before start. */
uint64_t ioreq_virtio_features(const struct ioreq_virtio *v);

/* Sets @len bytes of the device's configuration at @offset; after setup
 * the driver is told it changed. -EINVAL outside config_size. */
int ioreq_virtio_set_config(struct ioreq_virtio *v, unsigned offset, const void *buf, unsigned len);

/* The device pushed to queue @q: interrupts the driver if the queue asks
 * for it. 1 when it did, 0 when not needed; a broken queue's negative errno
 * after ioreq_virtio_needs_reset. */
int ioreq_virtio_done(struct ioreq_virtio *v, unsigned q);

/* An ioreq_vq_* call failed with @error: the device stops serving its
 * queues and tells the driver it needs a reset (DEVICE_NEEDS_RESET). The
 * reason is logged. Returns @error. */
int ioreq_virtio_needs_reset(struct ioreq_virtio *v, int error);

/* setup only: the event callback runs whenever @fd is readable (the device
 * reads it). One fd per device. */
int ioreq_virtio_watch(struct ioreq_virtio *v, int fd);

/* Queue @q's doorbell, as if the driver rang it: kick runs for it soon.
 * Any thread (a device that stopped popping to let the guest drain). */
void ioreq_virtio_kick(struct ioreq_virtio *v, unsigned q);

/* Logs "PROG NAME: message" on stderr, which the broker logs. Any thread. */
__attribute__((format(printf, 2, 3))) void ioreq_virtio_log(const struct ioreq_virtio *v, const char *fmt, ...);

#ifdef __cplusplus
}
#endif

#endif
