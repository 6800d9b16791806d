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
 * Handlers run one at a time, and only while ioreq_dev_serve runs: in its
 * thread (messages from the broker: a reset, claim results, and requests
 * over the socket) or in the library's request-ring thread (requests the
 * broker posts in the shared-memory ring it gives each device, the fast
 * path), each vCPU's requests in the order the guest made them. Every
 * function returns 0 or a negative errno.
 *
 * The data plane. What the device's YAML grants reaches it as fds the broker
 * opened (from fd 3 on; the program never opens anything itself, and in its
 * sandbox it could not):
 *
 *  - `memory: guest` or `read-only`: the guest's RAM. ioreq_dev_memory()
 *    gives a view of it; ioreq_mem_ptr/ioreq_mem_read/ioreq_mem_write
 *    translate guest-physical ranges, and refuse any that is not wholly
 *    guest RAM (or, for a write, is read-only) instead of faulting;
 *  - `files:`: ioreq_dev_file() gives each fd, in the YAML's order; use
 *    pread/pwrite/preadv/pwritev, fsync/fdatasync on them;
 *  - `doorbells: N`: eventfds that a guest write to one of the device's own
 *    addresses signals, with no request and no round trip: the vCPU goes on
 *    at once (ioreq_dev_ioeventfd);
 *  - `irqfds: N`: eventfds that inject a granted interrupt when the device
 *    writes them (ioreq_dev_irqfd_line, ioreq_dev_irqfd_msi).
 *
 * The eventfds are non-blocking (one open file, shared with the broker,
 * which must never wait on them): wait for a doorbell with poll() and read
 * it; ring an irqfd by writing 1 to it (an 8-byte integer).
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

/* A region of the guest's RAM: guest-physical [gpa, gpa + size). */
struct ioreq_mem_region {
	uint64_t gpa, size;
	bool read_only;       /* this device may not write it */
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
	/* The data plane: the guest's RAM (none: 0 regions), how many files,
	 * doorbells and irqfds it was given. */
	size_t n_mem_regions;
	const struct ioreq_mem_region *mem_regions;
	size_t n_files;
	size_t n_doorbells;
	size_t n_irqfds;
};

/* Removes "--socket URL" and "--name NAME" from argv (anywhere before "--"),
 * shifting the rest down and updating *argc. -EINVAL if either is missing.
 * A "--version" before "--" prints "PROGRAM VERSION" (the library's, which is
 * the project's) and exits 0, so every device program answers it alike. */
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

/* ---- guest memory ---- */

struct ioreq_mem;

/* The device's view of the guest's RAM, or NULL if it was given none. Valid
 * until ioreq_dev_close. */
const struct ioreq_mem *ioreq_dev_memory(const struct ioreq_dev *dev);

/* A pointer to guest-physical [@gpa, @gpa + @len), or NULL unless that range
 * lies wholly inside one region of guest RAM (no overflow, no hole, not
 * across two regions) and, with @write, the region is writable, and the
 * memory is mapped here (ioreq_mem_mapped). A range of 0 bytes has no
 * pointer. The guest may change the memory at any time: read what you
 * check once, into memory of your own. Any thread. */
void *ioreq_mem_ptr(const struct ioreq_mem *m, uint64_t gpa, uint64_t len, bool write);

/* Whether the guest's memory is mapped into this process. A remote
 * device's is not (no memory crosses hosts): ioreq_mem_ptr gives it no
 * pointers, and ioreq_mem_read and ioreq_mem_write copy through the broker
 * instead, in messages of up to 16 KiB, each a network round trip. The
 * library's virtqueues (ioreq/virtq.h) do that by themselves. */
bool ioreq_mem_mapped(const struct ioreq_mem *m);

/* Copies @len bytes from or to guest-physical @gpa: 0, or -EFAULT (and
 * nothing copied) unless the range lies wholly inside one region (and,
 * for a write, a writable one). 0 bytes: 0. Unmapped memory (a remote
 * device's): also -ETIMEDOUT or -ECONNRESET when the broker does not
 * answer, and a write is in guest memory when it returns. */
int ioreq_mem_read(const struct ioreq_mem *m, uint64_t gpa, void *buf, size_t len);
int ioreq_mem_write(const struct ioreq_mem *m, uint64_t gpa, const void *buf, size_t len);

/* ---- files ---- */

/* File @i of the YAML's `files:` (0-based): its fd and whether it is open
 * for writing. -ENOENT if there is no such file. The fd is the process's:
 * the library never closes it. */
int ioreq_dev_file(const struct ioreq_dev *dev, size_t i, int *ret_fd, bool *ret_writable);

/* ---- doorbells and irqfds ----
 *
 * Each asks the broker to bind one of the device's free eventfds and waits
 * for its answer (up to 10 s: -ETIMEDOUT): from a handler, from another
 * thread, or before ioreq_dev_serve, all the same (requests that arrive
 * meanwhile wait for ioreq_dev_serve). On success *@ret_fd is the eventfd.
 * The broker refuses (-EPERM) what lies outside the device's ranges or
 * grants, and (-EEXIST) a second doorbell on the same write; -ENOSPC: all
 * of the device's eventfds of that kind are bound. A binding lasts until
 * ioreq_dev_eventfd_release, the end of the device's process, or (a
 * doorbell) the release of the claimed range it lies in. */

/* A guest write of @size bytes (1, 2, 4, 8) to @addr (@kind IOREQ_PIO or
 * IOREQ_MMIO, inside one of the device's ranges), of @value only if
 * @datamatch, signals the eventfd instead of becoming a request. */
int ioreq_dev_ioeventfd(struct ioreq_dev *dev, enum ioreq_kind kind, uint64_t addr, unsigned size, bool datamatch,
			uint64_t value, int *ret_fd);

/* Writing the eventfd pulses granted IRQ line @line. */
int ioreq_dev_irqfd_line(struct ioreq_dev *dev, uint32_t line, int *ret_fd);

/* Writing the eventfd injects the MSI @addr/@data (if MSIs are granted). */
int ioreq_dev_irqfd_msi(struct ioreq_dev *dev, uint64_t addr, uint32_t data, int *ret_fd);

/* Unbinds eventfd @fd (from one of the three above): it can be bound again. */
int ioreq_dev_eventfd_release(struct ioreq_dev *dev, int fd);

/* Closes the connection and frees @dev; NULL is fine. Returns NULL. The
 * fds the device was given stay open. */
struct ioreq_dev *ioreq_dev_close(struct ioreq_dev *dev);

#ifdef __cplusplus
}
#endif

#endif
