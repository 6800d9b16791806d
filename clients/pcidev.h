/* A conventional PCI function: the configuration space and BAR model,
 * without I/O of its own.
 *
 * A type-0 header (256 bytes) with the identity the configuration gives,
 * command/status, up to six BARs (32-bit memory, 64-bit memory taking two
 * slots, I/O) with the all-ones sizing protocol, an interrupt pin and line,
 * and, when MSI is granted, one MSI capability (64-bit, one vector). Bits a
 * guest may not change ignore its writes; registers that do not exist read 0.
 *
 * Decoding: a BAR is decoded while its command bit (I/O or memory space) is
 * set and it holds an address other than 0 and other than its sizing value.
 * Whenever that changes, the model asks its owner to release the old range
 * and claim the new one. The owner reports the answers, in the order the
 * requests were made, through pcidev_claim_result.
 *
 * BAR0, whatever its kind, holds a small register block (PCIDEV_REG_*);
 * the other BARs read 0 and ignore writes. A doorbell write raises an MSI
 * when MSI is enabled, else asserts INTx (status bit 3) unless the command
 * register disables it or the function has no pin.
 *
 * Not thread-safe: the owner serialises every call. */
#ifndef IOREQ_PCIDEV_H
#define IOREQ_PCIDEV_H

#include <stdbool.h>
#include <stdint.h>

#define PCIDEV_NBARS 6
#define PCIDEV_CFG_SIZE 256

/* Configuration space offsets. */
#define PCIDEV_VENDOR 0x00
#define PCIDEV_DEVICE 0x02
#define PCIDEV_COMMAND 0x04
#define PCIDEV_STATUS 0x06
#define PCIDEV_REVISION 0x08
#define PCIDEV_CLASS 0x09 /* 24 bits: programming interface, subclass, class */
#define PCIDEV_CACHE_LINE 0x0c
#define PCIDEV_HEADER_TYPE 0x0e
#define PCIDEV_BAR0 0x10
#define PCIDEV_SUBSYSTEM_VENDOR 0x2c
#define PCIDEV_SUBSYSTEM 0x2e
#define PCIDEV_CAP_PTR 0x34
#define PCIDEV_INT_LINE 0x3c
#define PCIDEV_INT_PIN 0x3d
#define PCIDEV_MSI_CAP 0x40 /* where the MSI capability lives, when present */
#define PCIDEV_MSI_CONTROL (PCIDEV_MSI_CAP + 2)
#define PCIDEV_MSI_ADDR_LO (PCIDEV_MSI_CAP + 4)
#define PCIDEV_MSI_ADDR_HI (PCIDEV_MSI_CAP + 8)
#define PCIDEV_MSI_DATA (PCIDEV_MSI_CAP + 12)

#define PCIDEV_CMD_IO 0x0001
#define PCIDEV_CMD_MEM 0x0002
#define PCIDEV_CMD_MASTER 0x0004
#define PCIDEV_CMD_INTX_DISABLE 0x0400
#define PCIDEV_STATUS_INTX 0x0008
#define PCIDEV_STATUS_CAP_LIST 0x0010
#define PCIDEV_CAP_ID_MSI 0x05
#define PCIDEV_MSI_ENABLE 0x0001
#define PCIDEV_MSI_64BIT 0x0080

/* The BAR0 register block: 32-bit registers, accessed 1, 2, 4 or 8 bytes
 * at a time at any offset. */
#define PCIDEV_REG_SCRATCH 0x00        /* eight scratch registers, 0x00..0x1c */
#define PCIDEV_REG_DOORBELL 0x20       /* write anything: interrupt */
#define PCIDEV_REG_IRQ_STATUS 0x24     /* read: 1 while INTx is pending; write 1: acknowledge */
#define PCIDEV_REG_DOORBELL_COUNT 0x28 /* read: doorbell writes so far */
#define PCIDEV_NSCRATCH 8

enum pcidev_bar_kind {
	PCIDEV_BAR_NONE,
	PCIDEV_BAR_MEM32,
	PCIDEV_BAR_MEM64, /* takes slots N and N + 1 */
	PCIDEV_BAR_IO,
};

enum pcidev_profile {
	PCIDEV_PROFILE_DEVICE,      /* 1234:0001 (subsystem the same), class ff0000, INTA */
	PCIDEV_PROFILE_HOST_BRIDGE, /* 8086:1237 rev 2 (what PC firmware expects at 00:00.0), class 060000, no pin */
};

struct pcidev_bar_config {
	enum pcidev_bar_kind kind;
	uint64_t size;
};

struct pcidev_config {
	uint16_t vendor, device, subsystem_vendor, subsystem;
	uint32_t class_code; /* 24 bits */
	uint8_t revision;
	uint8_t intx_pin;    /* 0: none, 1..4: INTA#..INTD# */
	bool msi;            /* offer an MSI capability */
	/* A capability list its owner serves from PCIDEV_MSI_CAP up (0: none;
	 * not with @msi): the header points at it and the model never sees
	 * accesses there. */
	uint8_t cap_ptr;
	struct pcidev_bar_config bar[PCIDEV_NBARS];
};

/* The identity of @profile, without BARs or MSI. */
void pcidev_config_init(struct pcidev_config *c, enum pcidev_profile profile);

/* Declares BAR @n. Sizes are powers of two: memory 16 bytes to 2 GiB
 * (mem64: to 2^63), I/O 4 to 256 bytes. -EINVAL for a bad kind or size,
 * -EEXIST when the slot (or, for mem64, the next one) is taken. */
int pcidev_config_bar(struct pcidev_config *c, unsigned n, enum pcidev_bar_kind kind, uint64_t size);

/* How the model reaches the outside; intx and msi may be NULL. */
struct pcidev_ops {
	/* The INTx output changed level. */
	void (*intx)(void *opaque, bool level);
	void (*msi)(void *opaque, uint64_t addr, uint32_t data);
	/* Asks for [start, start + size) of PIO (@io) or MMIO space to be
	 * routed to BAR @bar, or no longer (@release). Returns 0 when the
	 * request went out (an answer will follow) or a negative errno when it
	 * was refused at once. */
	int (*claim)(void *opaque, unsigned bar, bool io, uint64_t start, uint64_t size, bool release);
};

/* A claim or release the owner asked for, as pcidev_claim_result reports it. */
struct pcidev_claim_op {
	unsigned bar;
	bool io, release;
	uint64_t start, size;
};

#define PCIDEV_MAX_UNANSWERED 64

enum pcidev_claim_state {
	PCIDEV_UNCLAIMED,
	PCIDEV_CLAIMED, /* asked for, not refused (yet) */
	PCIDEV_REFUSED, /* refused: not asked again until the address changes */
};

struct pcidev {
	struct pcidev_config cfg;
	const struct pcidev_ops *ops;
	void *opaque;

	uint8_t regs[PCIDEV_CFG_SIZE];
	uint8_t wmask[PCIDEV_CFG_SIZE]; /* the bits a guest may write */
	struct {
		enum pcidev_claim_state state;
		uint64_t start;
	} claims[PCIDEV_NBARS];
	/* Claims and releases not answered yet, oldest first. */
	struct pcidev_claim_op unanswered[PCIDEV_MAX_UNANSWERED];
	unsigned n_unanswered;

	uint32_t scratch[PCIDEV_NSCRATCH];
	uint32_t doorbells;
	bool intx_pending;
	bool intx_level; /* what the output was last set to */
};

/* Powers the function on; @cfg is copied, @ops borrowed. -EINVAL when @cfg
 * does not describe a function (a bad BAR or pin). */
int pcidev_init(struct pcidev *d, const struct pcidev_config *cfg, const struct pcidev_ops *ops, void *opaque);

/* Back to the power-on state: decoding off (claimed ranges released),
 * registers cleared, INTx lowered. */
void pcidev_reset(struct pcidev *d);

/* The owner's own interrupt condition (an owner that serves its BARs
 * itself, and never calls pcidev_bar_access, has no doorbell): INTx is
 * pending while @pending, and asserted unless the command register disables
 * it. */
void pcidev_set_intx(struct pcidev *d, bool pending);

/* A configuration access of @size (1, 2 or 4) bytes at @reg; beyond the
 * 256 bytes, reads are 0 and writes vanish. */
uint32_t pcidev_cfg_read(struct pcidev *d, unsigned reg, unsigned size);
void pcidev_cfg_write(struct pcidev *d, unsigned reg, unsigned size, uint32_t value);

/* An access of @size (1, 2, 4 or 8) bytes at @offset into BAR @bar.
 * -ENOENT for a BAR the function does not have. */
int pcidev_bar_access(struct pcidev *d, unsigned bar, bool write, uint64_t offset, unsigned size, uint64_t *value);

/* The answer to the oldest unanswered claim or release of BAR @bar (0 or a
 * negative errno), which is copied to @ret_op. -ENOENT when none was
 * expected. */
int pcidev_claim_result(struct pcidev *d, unsigned bar, int error, struct pcidev_claim_op *ret_op);

#endif
