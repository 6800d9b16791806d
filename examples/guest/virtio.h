/* A small virtio-pci driver for the guest runtime: modern virtio 1.x
 * (non-transitional) PCI functions on bus 0, split virtqueues in the
 * guest's own memory, MSI-X through the runtime's local APIC vectors
 * (rt_msi_alloc) or polling.
 *
 *     struct vio_dev d;
 *
 *     vio_find(&d, VIO_ID_BLOCK, 0xe1000000)      PCI: BAR0, decoding, caps
 *     vio_setup(&d, features, nq, true)           reset .. DRIVER_OK
 *     vio_submit(&d, q, bufs, n, &head)           a chain, made available
 *     vio_kick(&d, q)                             the doorbell, if wanted
 *     vio_wait(&d, q, head, &len)                 its used entry, checked
 *
 * Everything the device returns is checked before it is believed: a used
 * id that is not a chain in flight, a length above what the chain let the
 * device write, a BAR, capability or queue size out of place. Failures
 * return a negative VIO_E* and leave a sentence in d.err for the log.
 *
 * One vCPU drives a device at a time; waiting for an interrupt (MSI-X)
 * happens on vCPU 0, where the runtime's APIC vectors arrive. */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#define VIO_VENDOR 0x1af4
#define VIO_DEVICE_BASE 0x1040 /* + the device type */
#define VIO_ID_BLOCK 2
#define VIO_ID_CONSOLE 3
#define VIO_ID_RNG 4

/* Feature bits of the transport. */
#define VIO_F_INDIRECT_DESC 28
#define VIO_F_EVENT_IDX 29
#define VIO_F_VERSION_1 32
#define VIO_BIT(n) (UINT64_C(1) << (n))

/* device_status */
#define VIO_S_ACKNOWLEDGE 1
#define VIO_S_DRIVER 2
#define VIO_S_DRIVER_OK 4
#define VIO_S_FEATURES_OK 8
#define VIO_S_NEEDS_RESET 64
#define VIO_S_FAILED 128

/* Errors (negative). */
#define VIO_ENODEV 1   /* no such function, or not a usable virtio one */
#define VIO_EIO 2      /* the device refused a step (status, feature, queue) */
#define VIO_ENOSPC 3   /* not enough free descriptors */
#define VIO_EPROTO 4   /* the device returned something impossible */
#define VIO_ERESET 5   /* the device needs a reset (DEVICE_NEEDS_RESET) */
#define VIO_ETIMEDOUT 6

/* The largest queue the driver sets up (less if the device offers less):
 * its three rings fit one page. */
#define VIO_QUEUE_MAX 64
#define VIO_MAX_QUEUES 4

struct vio_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
#define VIO_DESC_F_NEXT 1
#define VIO_DESC_F_WRITE 2

/* One buffer of a chain: guest-physical (= virtual) address, length, and
 * whether the device writes it (else it reads it). */
struct vio_buf {
	uint64_t addr;
	uint32_t len;
	bool device_writes;
};

#define VIO_BUF_OUT(p, n) ((struct vio_buf){ (uint64_t)(uintptr_t)(p), (uint32_t)(n), false })
#define VIO_BUF_IN(p, n) ((struct vio_buf){ (uint64_t)(uintptr_t)(p), (uint32_t)(n), true })

struct vio_queue {
	/* desc at 0, avail at VIO_AVAIL_AT, used at VIO_USED_AT */
	uint8_t ring[4096] __attribute__((aligned(4096)));
	uint16_t size;          /* 0: not set up */
	uint16_t free_head, num_free;
	uint16_t avail_idx;     /* the next available slot (ours) */
	uint16_t used_seen;     /* the used entries consumed */
	uint16_t kicked;        /* avail_idx at the last vio_kick */
	uint64_t notify;        /* the doorbell's address */
	bool msix;              /* interrupts come (else: poll) */
	/* per head: descriptors in the chain (0: free), bytes the device may write */
	uint16_t chain_len[VIO_QUEUE_MAX];
	uint32_t chain_in[VIO_QUEUE_MAX];
	/* a used entry read early, kept for whoever waits for its head */
	uint32_t done_len[VIO_QUEUE_MAX];
	bool done[VIO_QUEUE_MAX];
};

struct vio_dev {
	uint32_t bdf;
	uint16_t type;
	uint64_t bar;                       /* BAR0's address */
	uint64_t common, isr, device, notify_base;
	uint32_t notify_mult, device_len;
	unsigned msix_cap, msix_vectors;    /* 0: no MSI-X capability */
	uint64_t features;                  /* negotiated */
	unsigned nq;
	uint64_t msi_addr;                  /* its APIC vector's message, once allocated */
	uint32_t msi_data;
	volatile unsigned events;           /* bumped by every MSI-X message */
	const char *err;
	char errbuf[96];
	struct vio_queue q[VIO_MAX_QUEUES];
};

/* Finds the first function of device @type on bus 0, places BAR0 (64-bit)
 * at @bar_addr, enables memory decoding and bus mastering, and reads the
 * capabilities. Nothing of the virtio device is touched yet. */
int vio_find(struct vio_dev *d, uint16_t type, uint64_t bar_addr);

/* The same for the function at @bdf (RT_BDF), whatever its type. */
int vio_probe(struct vio_dev *d, uint32_t bdf, uint64_t bar_addr);

/* Resets the device and brings it to DRIVER_OK: ACKNOWLEDGE, DRIVER,
 * features (VERSION_1 and what of @want the device offers), FEATURES_OK
 * (read back), @nq queues, MSI-X when @msix and the device has it (a
 * vector each for the configuration and every queue), else polling. Can be
 * called again: a new reset and the same again. */
int vio_setup(struct vio_dev *d, uint64_t want, unsigned nq, bool msix);

/* Writes 0 to device_status and waits for it to read 0. */
int vio_reset(struct vio_dev *d);

uint8_t vio_status(struct vio_dev *d);

/* The device's configuration: @len (1, 2, 4 or 8) bytes at @off, read again
 * until config_generation holds still around it. */
uint64_t vio_config(struct vio_dev *d, unsigned off, unsigned len);

/* Makes a chain of @n buffers available (the device-readable ones first),
 * its head in *@ret_head; vio_kick tells the device. */
int vio_submit(struct vio_dev *d, unsigned q, const struct vio_buf *bufs, unsigned n, uint16_t *ret_head);

/* Rings queue @q's doorbell unless the device said it need not. */
void vio_kick(struct vio_dev *d, unsigned q);

/* Waits for chain @head to come back used (an MSI-X interrupt, or polling)
 * and gives its length; frees its descriptors. VIO_ERESET when the device
 * set DEVICE_NEEDS_RESET instead, VIO_EPROTO for a used entry that breaks
 * the rules, VIO_ETIMEDOUT after @spins empty polls (0: no limit). */
int vio_wait(struct vio_dev *d, unsigned q, uint16_t head, uint32_t *ret_len, unsigned spins);

/* vio_submit, vio_kick, vio_wait. */
int vio_transfer(struct vio_dev *d, unsigned q, const struct vio_buf *bufs, unsigned n, uint32_t *ret_len);

#endif
