/* libioreq-device: split virtqueues (virtio 1.x, section 2.7) served over
 * the guest's RAM, for virtio device programs.
 *
 * The transport (virtio-pci) hands the device the queue the driver
 * programmed: its size, the guest-physical addresses of its descriptor
 * table, available ring and used ring, and the negotiated
 * VIRTIO_F_EVENT_IDX and VIRTIO_F_INDIRECT_DESC. The device then serves it:
 *
 *     struct iovec iov[N];
 *     struct ioreq_vq_chain c;
 *
 *     for (;;) {
 *             ioreq_vq_disable_kicks(vq);          // polling: no doorbells needed
 *             while ((r = ioreq_vq_pop(vq, iov, N, &c)) > 0) {
 *                     // read iov[0, c.n_out), write iov[c.n_out, c.n_out + c.n_in)
 *                     ioreq_vq_push(vq, c.head, bytes_written);
 *             }
 *             if (r < 0)
 *                     break;                       // the device needs a reset
 *             if (ioreq_vq_notify_needed(vq) > 0)
 *                     ring the queue's irqfd;
 *             if (ioreq_vq_enable_kicks(vq) == 0)
 *                     wait for the queue's doorbell;
 *     }
 *
 * Everything in the rings is the guest's: untrusted, and changing under
 * the device. Each index and descriptor is read once into the library's own
 * memory and checked there; every buffer is translated through the
 * bounds-checked view of guest RAM (ioreq_mem_ptr), so a pointer this
 * returns never faults and never reaches outside guest RAM; a chain visits
 * at most the queue's size of descriptors, plus one indirect table's.
 *
 * A violation by the guest breaks the queue. The call returns a negative
 * errno naming it, and every later call on the queue returns the same
 * without reading or writing guest memory; ioreq_vq_broken() says what
 * happened, for the log. The transport then sets DEVICE_NEEDS_RESET, and the
 * driver's reset ends with ioreq_vq_free and, once the driver has set the
 * queue up again, a new ioreq_vq_new.
 *
 *   -EOVERFLOW  the available idx ran more than the queue size ahead
 *   -ENOSPC     a chain made available while the queue size of chains are
 *               already in flight (a head reused before it was used)
 *   -ERANGE     a head or next index outside its table
 *   -ELOOP      a chain longer than its table: a loop
 *   -EFAULT     a buffer not wholly in guest RAM, or wrapping the address
 *               space, or device-writable in RAM the device may only read;
 *               an indirect table not wholly in one region of guest RAM
 *   -EPROTO     VIRTQ_DESC_F_INDIRECT not negotiated, or with F_NEXT
 *   -EMLINK     VIRTQ_DESC_F_INDIRECT inside an indirect table
 *   -EBADMSG    an indirect table of 0 bytes, not a multiple of 16, or of
 *               more than IOREQ_VQ_MAX_SIZE descriptors
 *   -EILSEQ     a device-readable descriptor after a device-writable one
 *   -E2BIG      a chain of more than 2^32 bytes
 *   -ENOBUFS    a chain of more buffers than the caller's iovec array
 *               holds (size it for the segments the device advertises, plus
 *               one per extra region a buffer may cross: see ioreq_vq_pop)
 *
 *   -E2BIG      ... or, over memory not mapped here, of more than 4 MiB
 *   -EIO        memory not mapped here that the broker did not let us
 *               reach (it went, or refused)
 *   -EBUSY      memory not mapped here: a head made available again while
 *               its chain is in flight
 *
 * Threads: a queue is one thread's. Its functions take no lock: call them
 * all from the thread that serves the queue (workers hand their
 * completions back to it). Different queues over the same view of guest
 * RAM may be served by different threads. Over mapped memory they never
 * block. Over memory that is not mapped here (a remote device's:
 * ioreq_mem_mapped) each access to a ring is a round trip to the broker,
 * and the iovecs point to copies of the guest's buffers (read from the
 * guest at ioreq_vq_pop, written back at ioreq_vq_push): the device's code
 * is the same, only slower.
 */
#ifndef IOREQ_VIRTQ_H
#define IOREQ_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ioreq/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest queue size (and indirect table) virtio allows. */
#define IOREQ_VQ_MAX_SIZE 32768u

/* A queue as the driver programmed it. */
struct ioreq_vq_config {
	unsigned size;               /* a power of 2, 1 to IOREQ_VQ_MAX_SIZE */
	uint64_t desc;               /* 16 * size bytes, 16-aligned */
	uint64_t avail;              /* 6 + 2 * size bytes, 2-aligned */
	uint64_t used;               /* 6 + 8 * size bytes, 4-aligned, writable */
	bool event_idx;              /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;               /* VIRTIO_F_INDIRECT_DESC negotiated */
	uint16_t start;              /* the first available index: 0 but for a
				      * queue served again (vhost-user's
				      * SET_VRING_BASE) */
};

/* One chain, as ioreq_vq_pop gives it. */
struct ioreq_vq_chain {
	uint16_t head;               /* the id to give ioreq_vq_push */
	unsigned n_out;              /* iov[0, n_out): device-readable */
	unsigned n_in;               /* iov[n_out, n_out + n_in): device-writable */
	uint64_t out_len, in_len;    /* the bytes of each part */
};

struct ioreq_vq;

/* Sets up a queue over @mem (borrowed: it must outlive the queue) from the
 * driver's @cfg. Each ring must lie wholly in one region of guest RAM, the
 * used ring in one the device may write: it is translated here, once.
 * -EINVAL: a size that is not a power of 2 up to IOREQ_VQ_MAX_SIZE, or a
 * misaligned ring; -EFAULT: a ring outside guest RAM; -ENOMEM. Nothing is
 * written to guest memory. The device's next available index and its used
 * index both start at @cfg->start (0: the driver's rings are empty; else
 * the ring was served before, up to there, with nothing left in flight). */
int ioreq_vq_new(const struct ioreq_mem *mem, const struct ioreq_vq_config *cfg, struct ioreq_vq **ret);

/* Frees @vq; NULL is fine. Returns NULL. Chains in flight are forgotten:
 * call it when the driver resets the device or the queue. */
struct ioreq_vq *ioreq_vq_free(struct ioreq_vq *vq);

/* Takes the next available chain: 1, with *@ret and @iov[0, ret->n_out +
 * ret->n_in) filled; 0 when the driver has made nothing more available; or
 * a negative errno, and the queue is broken. Each guest buffer is one
 * iovec, or one per region of guest RAM where it runs from one region into
 * the next; buffers of 0 bytes have none. The pointers stay valid while
 * @mem does; the guest may change what they point to at any time. At most
 * the queue's size of chains are in flight (popped, not yet pushed). */
int ioreq_vq_pop(struct ioreq_vq *vq, struct iovec *iov, unsigned n_iov, struct ioreq_vq_chain *ret);

/* Gives chain @head back to the driver, @len bytes of it written by the
 * device, and publishes it. -EINVAL (the device's mistake; the queue keeps
 * working) for a head outside the queue or with no chain in flight. */
int ioreq_vq_push(struct ioreq_vq *vq, uint16_t head, uint32_t len);

/* Whether the driver wants an interrupt for what was pushed since the
 * last call: 1 or 0 (by used_event with VIRTIO_F_EVENT_IDX, by
 * VRING_AVAIL_F_NO_INTERRUPT without; never for nothing new). */
int ioreq_vq_notify_needed(struct ioreq_vq *vq);

/* Asks the driver to ring the doorbell when it makes the next chain
 * available: 0, the device may wait for it; 1, chains are available
 * already (pop them: the doorbell may not ring for them). */
int ioreq_vq_enable_kicks(struct ioreq_vq *vq);

/* Tells the driver it need not ring the doorbell while the device pops.
 * With VIRTIO_F_EVENT_IDX it writes nothing: the driver rings once after
 * ioreq_vq_enable_kicks, for the first chain, and no more until the next
 * ioreq_vq_enable_kicks. Returns 0. */
int ioreq_vq_disable_kicks(struct ioreq_vq *vq);

/* The index of the next available entry the device will pop: where a
 * queue stopped now would start again (vhost-user's GET_VRING_BASE). */
uint16_t ioreq_vq_next_avail(const struct ioreq_vq *vq);

/* NULL while @vq works; once broken, what the guest did, in a sentence as
 * stable as the errno. */
const char *ioreq_vq_broken(const struct ioreq_vq *vq);

#ifdef __cplusplus
}
#endif

#endif
