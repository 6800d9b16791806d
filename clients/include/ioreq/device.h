/* libioreq-device: write a device emulator for ioreq-broker.
 *
 * A device is a plain program. The broker starts it as
 *
 *     PROGRAM --socket URL --name NAME [the device's own arguments...]
 *
 * and the program connects back, says hello, and serves guest accesses:
 *
 *     struct ioreq_dev *dev;
 *     ioreq_dev_take_args(&argc, argv, &url, &name);   // strips the two options
 *     ioreq_dev_connect(url, name, &ops, state, &dev); // handshake done
 *     ioreq_dev_serve(dev);                            // until Shutdown
 *     ioreq_dev_close(dev);
 *
 * Handlers run one at a time in the thread that calls ioreq_dev_serve, in the
 * order the broker sent the requests. Every function returns 0 or a negative
 * errno.
 */
#ifndef IOREQ_DEVICE_H
#define IOREQ_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ioreq_kind {
	IOREQ_PIO = 0,
	IOREQ_MMIO = 1,
	IOREQ_PCICFG = 2,
};

enum ioreq_irq_op {
	IOREQ_IRQ_ASSERT = 0,
	IOREQ_IRQ_DEASSERT = 1,
	IOREQ_IRQ_PULSE = 2,
};

/* Marks ioreq_access.range as a claimed range (the rest is the claim's tag). */
#define IOREQ_CLAIMED_RANGE 0x80000000u

/* One guest access, as the handler sees it. */
struct ioreq_access {
	uint64_t id;
	unsigned vcpu;
	enum ioreq_kind kind;
	bool write;
	unsigned size;     /* 1, 2, 4 or 8 */
	uint64_t value;    /* writes: the value written */
	uint64_t addr;     /* PIO/MMIO: guest address */
	uint64_t offset;   /* PIO/MMIO: addr - start of the matched range */
	unsigned range;    /* PIO/MMIO: index into ioreq_dev_info()->ranges, or
			    * IOREQ_CLAIMED_RANGE | tag for a range the device
			    * claimed with ioreq_dev_claim */
	uint32_t bdf;      /* PCICFG: bus << 8 | dev << 3 | fn */
	uint32_t reg;      /* PCICFG: register offset */
};

struct ioreq_dev;

/* Return 0 with *value set for reads, or a negative errno when the access
 * is not handled (the guest then reads all ones). */
typedef int (*ioreq_access_fn)(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value,
			       void *opaque);

struct ioreq_dev_ops {
	ioreq_access_fn pio;
	ioreq_access_fn mmio;
	ioreq_access_fn pcicfg;
	/* The VM is being reset: return to the power-on state. */
	void (*reset)(struct ioreq_dev *dev, void *opaque);
	/* The broker's answer to ioreq_dev_claim (0 or a negative errno). */
	void (*claim_result)(struct ioreq_dev *dev, uint32_t tag, int error, void *opaque);
};

struct ioreq_range {
	enum ioreq_kind kind;
	uint64_t start, size; /* PCICFG: start is a BDF */
};

/* What the broker granted, from its Welcome. Valid until ioreq_dev_close. */
struct ioreq_dev_info {
	const char *vm;
	const char *device;
	size_t n_ranges;
	const struct ioreq_range *ranges;
	size_t n_windows;
	const struct ioreq_range *windows;
	size_t n_irq_lines;
	const uint32_t *irq_lines;
	bool msi;
};

/* Removes "--socket URL" and "--name NAME" from argv (anywhere before "--"),
 * shifting the rest down and updating *argc. -EINVAL if either is missing. */
int ioreq_dev_take_args(int *argc, char **argv, const char **ret_url, const char **ret_name);

/* Dials @url, sends Hello and waits for Welcome. @ops is borrowed for the
 * lifetime of the device. */
int ioreq_dev_connect(const char *url, const char *name, const struct ioreq_dev_ops *ops, void *opaque,
		      struct ioreq_dev **ret);

const struct ioreq_dev_info *ioreq_dev_info(const struct ioreq_dev *dev);

/* Serves requests until the broker says Shutdown (returns 0) or the
 * connection fails (negative errno). */
int ioreq_dev_serve(struct ioreq_dev *dev);

/* Drives a granted IRQ line. Safe from handlers and from other threads. */
int ioreq_dev_irq(struct ioreq_dev *dev, uint32_t line, enum ioreq_irq_op op);

/* Injects an MSI, if granted. */
int ioreq_dev_msi(struct ioreq_dev *dev, uint64_t addr, uint32_t data);

/* Asks the broker to route [start, start + size) of @kind to this device
 * (or to stop, with @release). The answer arrives through ops->claim_result
 * with @tag. */
int ioreq_dev_claim(struct ioreq_dev *dev, enum ioreq_kind kind, uint64_t start, uint64_t size, bool release,
		    uint32_t tag);

/* Closes the connection and frees @dev; NULL is fine. Returns NULL. */
struct ioreq_dev *ioreq_dev_close(struct ioreq_dev *dev);

#ifdef __cplusplus
}
#endif

#endif
