/* virtio over PCI, modern (virtio 1.x, section 4.1; non-transitional): the
 * transport's registers, without I/O of its own.
 *
 * The function is a pcidev (pcidev.h: header, BAR sizing, claims) with
 * vendor 1af4, device 1040 + the virtio device type, revision 1, and a
 * capability list the transport serves itself:
 *
 *     common, notify, ISR, device (when it has a config), PCI_CFG
 *     vendor capabilities (cfg_type 1..5), then MSI-X
 *
 * all pointing into one 64-bit memory BAR (BAR 0, VIRTIO_PCI_BAR_SIZE):
 *
 *     0x0000  common configuration (struct virtio_pci_common_cfg)
 *     0x1000  ISR status (read to clear)
 *     0x2000  the device's configuration
 *     0x3000  notify: queue N at N * VIRTIO_PCI_NOTIFY_MULTIPLIER
 *     0x4000  MSI-X table, one vector per queue plus one for config
 *     0x5000  MSI-X pending bits
 *
 * Each of those sits in a page of its own, so a device may bind an ioeventfd
 * to a queue's notify address and leave the rest to the model.
 *
 * Everything the driver writes is untrusted. Common configuration fields
 * take only their natural width (64-bit fields: 4 bytes per half, or all 8
 * at once); any other access reads 0 and its writes vanish. A driver that
 * breaks the rules costs itself its device (DEVICE_NEEDS_RESET), never the
 * device program its memory.
 *
 * Device status: bits are set in the spec's order (ACKNOWLEDGE, DRIVER,
 * FEATURES_OK, DRIVER_OK; FAILED at any time) and cleared only by writing
 * 0, which resets the device: features, queues (ioreq_vq_free) and vectors
 * back to their power-on state (the MSI-X table is the PCI function's and
 * stays). A write that clears a bit is ignored; a bit set out of order
 * stays clear. FEATURES_OK stays clear unless the driver's features
 * are a subset of the device's and include VIRTIO_F_VERSION_1; from then
 * on driver_feature is read-only.
 *
 * Queues: queue_size, queue_msix_vector and the three ring addresses are
 * writable until the queue is enabled. Writing 1 to queue_enable, between
 * FEATURES_OK and DRIVER_OK, sets the queue up with ioreq_vq_new over guest
 * RAM (VIRTIO_F_EVENT_IDX and VIRTIO_F_INDIRECT_DESC as negotiated); a
 * queue it refuses (a size not a power of 2, above the maximum, rings
 * misaligned or outside RAM) puts the device in DEVICE_NEEDS_RESET.
 *
 * Interrupts: with MSI-X enabled, a queue or config interrupt is the
 * message of its vector (none for VIRTIO_PCI_NO_VECTOR); a masked vector,
 * or the whole function masked, sets its pending bit instead and the
 * message goes out when it is unmasked. Without MSI-X, the ISR bit is set
 * and INTx asserted until the driver reads ISR.
 *
 * Not thread-safe: the owner serialises every call, and serves the queues
 * from the same thread or hands their results back to it. */
#ifndef IOREQ_VIRTIO_PCI_H
#define IOREQ_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "ioreq/virtq.h"
#include "pcidev.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + the virtio device type */

/* Device types (virtio 1.x, section 5). */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4

/* Feature bits the transport knows of. */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* device_status */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

/* ISR status */
#define VIRTIO_ISR_QUEUE 1
#define VIRTIO_ISR_CONFIG 2

#define VIRTIO_PCI_NO_VECTOR 0xffff

/* Vendor capability: cfg_type, and the layout of struct virtio_pci_cap. */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5
#define VIRTIO_PCI_CAP_VNDR 0x09 /* PCI capability id: vendor specific */
#define VIRTIO_PCI_CAP_TYPE 3
#define VIRTIO_PCI_CAP_BAR 4
#define VIRTIO_PCI_CAP_OFFSET 8
#define VIRTIO_PCI_CAP_LENGTH 12
#define VIRTIO_PCI_CAP_MULTIPLIER 16 /* notify only */
#define VIRTIO_PCI_CAP_CFG_DATA 16   /* PCI_CFG only */

/* struct virtio_pci_common_cfg */
#define VIRTIO_PCI_COMMON_DFSELECT 0x00
#define VIRTIO_PCI_COMMON_DF 0x04
#define VIRTIO_PCI_COMMON_GFSELECT 0x08
#define VIRTIO_PCI_COMMON_GF 0x0c
#define VIRTIO_PCI_COMMON_MSIX 0x10
#define VIRTIO_PCI_COMMON_NUMQ 0x12
#define VIRTIO_PCI_COMMON_STATUS 0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15
#define VIRTIO_PCI_COMMON_Q_SELECT 0x16
#define VIRTIO_PCI_COMMON_Q_SIZE 0x18
#define VIRTIO_PCI_COMMON_Q_MSIX 0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE 0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF 0x1e
#define VIRTIO_PCI_COMMON_Q_DESC 0x20
#define VIRTIO_PCI_COMMON_Q_AVAIL 0x28
#define VIRTIO_PCI_COMMON_Q_USED 0x30
#define VIRTIO_PCI_COMMON_SIZE 0x38

/* MSI-X: the capability, and a table entry. */
#define VIRTIO_PCI_CAP_ID_MSIX 0x11
#define VIRTIO_PCI_MSIX_CONTROL 2
#define VIRTIO_PCI_MSIX_TABLE 4
#define VIRTIO_PCI_MSIX_PBA 8
#define VIRTIO_PCI_MSIX_ENABLE 0x8000
#define VIRTIO_PCI_MSIX_MASKALL 0x4000
#define VIRTIO_PCI_MSIX_ENTRY_SIZE 16
#define VIRTIO_PCI_MSIX_ENTRY_CTRL 12
#define VIRTIO_PCI_MSIX_ENTRY_MASKED 1

/* BAR 0's layout. */
#define VIRTIO_PCI_BAR 0
#define VIRTIO_PCI_BAR_SIZE 0x8000
#define VIRTIO_PCI_COMMON_AT 0x0000
#define VIRTIO_PCI_ISR_AT 0x1000
#define VIRTIO_PCI_DEVICE_AT 0x2000
#define VIRTIO_PCI_NOTIFY_AT 0x3000
#define VIRTIO_PCI_MSIX_TABLE_AT 0x4000
#define VIRTIO_PCI_MSIX_PBA_AT 0x5000
#define VIRTIO_PCI_NOTIFY_MULTIPLIER 4
#define VIRTIO_PCI_MAX_CONFIG 0x1000

/* Queues, and with one MSI-X vector each plus config's, what fits a page of
 * table. */
#define VIRTIO_PCI_MAX_QUEUES 64

struct virtio_pci_config {
	uint16_t device_type;       /* VIRTIO_ID_*: the PCI device id is 0x1040 + this */
	uint16_t subsystem_vendor;  /* 0: VIRTIO_PCI_VENDOR */
	uint16_t subsystem;         /* 0: 0x1040 + device_type */
	uint32_t class_code;        /* 0: the device type's (net, storage, communication, other) */
	uint64_t features;          /* offered; VIRTIO_F_VERSION_1 is added */
	unsigned num_queues;        /* 1 to VIRTIO_PCI_MAX_QUEUES */
	uint16_t queue_max_size;    /* every queue's: a power of 2, at most IOREQ_VQ_MAX_SIZE */
	unsigned config_size;       /* the device's configuration, at most VIRTIO_PCI_MAX_CONFIG bytes */
};

/* How the model reaches the device program; every member but claim may be
 * NULL. */
struct virtio_pci_ops {
	/* The driver rang queue @queue's doorbell (an enabled queue only). */
	void (*notify)(void *opaque, unsigned queue);
	/* Interrupts: an MSI-X message, or the INTx level. */
	void (*msi)(void *opaque, uint64_t addr, uint32_t data);
	void (*intx)(void *opaque, bool level);
	/* BAR claims, as pcidev_ops.claim; answered by virtio_pci_claim_result. */
	int (*claim)(void *opaque, unsigned bar, bool io, uint64_t start, uint64_t size, bool release);
	/* device_status changed; 0 is a reset, reported before the queues
	 * are freed: drop every reference to them. */
	void (*status)(void *opaque, uint8_t status);
	/* The driver wrote @size bytes at @offset of the device's
	 * configuration (inside it); the model stores nothing. */
	void (*config_write)(void *opaque, unsigned offset, unsigned size, uint64_t value);
};

enum virtio_pci_ring { VIRTIO_PCI_DESC, VIRTIO_PCI_AVAIL, VIRTIO_PCI_USED, VIRTIO_PCI_NRINGS };

struct virtio_pci_queue {
	uint16_t size, vector;
	uint64_t ring[VIRTIO_PCI_NRINGS]; /* guest-physical addresses */
	struct ioreq_vq *vq;              /* set while the queue is enabled */
};

struct virtio_pci {
	struct pcidev pci;
	struct virtio_pci_config cfg;
	const struct virtio_pci_ops *ops;
	void *opaque;
	const struct ioreq_mem *mem;

	/* Capabilities from PCIDEV_MSI_CAP up, and the bits a guest may write. */
	uint8_t caps[PCIDEV_CFG_SIZE], caps_wmask[PCIDEV_CFG_SIZE];
	unsigned pci_cfg_cap, msix_cap;

	/* virtio state: what a write of 0 to device_status resets */
	uint64_t driver_features;
	uint32_t dfselect, gfselect;
	uint16_t config_vector, queue_sel;
	uint8_t status, generation, isr;
	struct virtio_pci_queue queues[VIRTIO_PCI_MAX_QUEUES];
	uint8_t config[VIRTIO_PCI_MAX_CONFIG];

	/* MSI-X: addr lo, addr hi, data, control per vector */
	uint32_t msix_table[VIRTIO_PCI_MAX_QUEUES + 1][4];
	uint64_t msix_pending[(VIRTIO_PCI_MAX_QUEUES + 1 + 63) / 64];
};

/* Powers the function on; @cfg is copied, @ops and @mem (guest RAM, for the
 * queues; NULL: no queue can be enabled) borrowed. -EINVAL when @cfg does
 * not describe a device. */
int virtio_pci_init(struct virtio_pci *vp, const struct virtio_pci_config *cfg, const struct ioreq_mem *mem,
		    const struct virtio_pci_ops *ops, void *opaque);

/* Back to power-on: a device reset, then the PCI function's (pcidev_reset). */
void virtio_pci_reset(struct virtio_pci *vp);

/* Frees the queues. */
void virtio_pci_fini(struct virtio_pci *vp);

/* A configuration access (pcidev_cfg_read/write). */
uint32_t virtio_pci_cfg_read(struct virtio_pci *vp, unsigned reg, unsigned size);
void virtio_pci_cfg_write(struct virtio_pci *vp, unsigned reg, unsigned size, uint32_t value);

/* An access of @size (1, 2, 4 or 8) bytes at @offset into BAR @bar. -ENOENT
 * for a BAR the function does not have. */
int virtio_pci_bar_access(struct virtio_pci *vp, unsigned bar, bool write, uint64_t offset, unsigned size,
			  uint64_t *value);

/* As pcidev_claim_result. */
int virtio_pci_claim_result(struct virtio_pci *vp, unsigned bar, int error, struct pcidev_claim_op *ret_op);

/* The features both sides agreed on: 0 until FEATURES_OK. */
uint64_t virtio_pci_features(const struct virtio_pci *vp);

/* Queue @queue, NULL unless it is enabled. */
struct ioreq_vq *virtio_pci_queue(struct virtio_pci *vp, unsigned queue);

/* The device pushed to @queue: interrupts the driver if the queue asks for
 * it (ioreq_vq_notify_needed). Returns 1 when it did, 0 when it was not
 * needed, -ENOENT for a queue not enabled, or the negative errno of a
 * broken queue, after virtio_pci_needs_reset. */
int virtio_pci_queue_done(struct virtio_pci *vp, unsigned queue);

/* An ioreq_vq_* call returned @error (negative): the device needs a reset
 * (DEVICE_NEEDS_RESET, a new config_generation, and a config interrupt
 * once DRIVER_OK). Returns @error. */
int virtio_pci_needs_reset(struct virtio_pci *vp, int error);

/* Sets @len bytes of the device's configuration at @offset: a new
 * config_generation, and a config interrupt once DRIVER_OK. -EINVAL
 * outside config_size. */
int virtio_pci_set_config(struct virtio_pci *vp, unsigned offset, const void *buf, unsigned len);

#endif
