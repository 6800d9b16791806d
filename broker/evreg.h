/* A VM's eventfd registrations: the ioeventfds and irqfds its devices bind
 * their eventfds to (Register, proto/ioreq.proto).
 *
 * Each is applied to the guest with hsm_ioeventfd / hsm_irqfd, so that
 * neither a doorbell nor an interrupt goes through the broker. Where the
 * backend cannot (-EOPNOTSUPP), the broker relays it: a guest write that
 * matches a relayed ioeventfd signals its eventfd from the VM thread and
 * completes at once, without a round trip to the device (evreg_doorbell);
 * a relayed irqfd is read on the VM's event thread, which injects its
 * interrupt (evreg_relay).
 *
 * A registration belongs to a device (an opaque owner) and holds its own
 * copy of the eventfd. It lives until the device releases it, the
 * device's instance goes down (evreg_remove_owner), or the range it lies in
 * stops being the device's (evreg_remove_inside). The set outlives guests:
 * evreg_attach applies every registration to a new guest, evreg_detach
 * takes them all off it before it goes.
 *
 * Locking is the caller's: vm.c holds its routes lock, for writing around
 * every change, for reading around evreg_doorbell and evreg_relay. */
#ifndef IOREQ_EVREG_H
#define IOREQ_EVREG_H

#include <stdbool.h>
#include <stdint.h>

#include "access.h"
#include "config.h"
#include "hsm.h"
#include "rangemap.h"

enum evreg_kind {
	EVREG_IOEVENTFD,
	EVREG_IRQFD,
};

/* What a device asks for, as the broker reads it off the wire. */
struct evreg_spec {
	enum evreg_kind kind;
	uint32_t index;     /* which of the device's eventfds of that kind */
	/* ioeventfd */
	uint32_t type;      /* ACRN_IOREQ_TYPE_PORTIO or _MMIO (_PCICFG is refused) */
	uint64_t addr;
	uint32_t size;      /* 1, 2, 4 or 8 */
	bool datamatch;
	uint64_t value;
	/* irqfd */
	bool msi;
	uint32_t line;
	uint64_t msi_addr;
	uint32_t msi_data;
};

/* Whether @owner, configured by @c and routed to by @maps (the VM's, by
 * ACRN_IOREQ_TYPE_*), may register @s: an ioeventfd wholly inside one of
 * its own ranges (configured or claimed), never on the PCI configuration
 * ports; an irqfd on one of its IRQ lines, or an MSI if it may send them.
 * 0, or a negative errno with *@why. (The index is checked by whoever holds
 * the eventfds.) */
int evreg_check(const struct evreg_spec *s, const struct cfg_device *c, const struct rangemap *maps, const void *owner,
		const char **why);

struct evreg_set;

/* @vm names the VM in the log. */
int evreg_set_new(const char *vm, struct evreg_set **ret);

/* Detaches and removes everything; NULL is fine. Returns NULL. */
struct evreg_set *evreg_set_free(struct evreg_set *s);

/* How a registration serves once added. */
enum evreg_path {
	EVREG_PENDING, /* no guest yet: applied when one is attached */
	EVREG_IN_HSM,  /* the backend serves it */
	EVREG_RELAYED, /* the broker does */
};

/* Registers @spec (checked) for @owner with a copy of @fd. -EEXIST if the
 * owner registered that eventfd already, or another registration waits for
 * the same write; the backend's error if it refuses it (other than
 * -EOPNOTSUPP: then it is relayed); *@why says why. *@ret_path: how it
 * serves. */
int evreg_add(struct evreg_set *s, void *owner, const struct evreg_spec *spec, int fd, enum evreg_path *ret_path,
	      const char **why);

/* Removes @owner's registration of its eventfd @index of @kind: 0 or -ENOENT. */
int evreg_remove(struct evreg_set *s, const void *owner, enum evreg_kind kind, uint32_t index);

/* Removes every registration of @owner (NULL: of everyone). */
void evreg_remove_owner(struct evreg_set *s, const void *owner);

/* Removes @owner's ioeventfds of @type that lie in [@start, @end]: a range
 * it gave back. */
void evreg_remove_inside(struct evreg_set *s, const void *owner, uint32_t type, uint64_t start, uint64_t end);

/* Applies every registration to @hsm (a guest that has just been created). */
void evreg_attach(struct evreg_set *s, struct hsm_vm *hsm);

/* Takes every registration off the attached guest, before it goes. */
void evreg_detach(struct evreg_set *s);

/* The VM thread, for a write the HSM handed to the broker: whether it
 * matches a relayed ioeventfd, whose eventfd it then signalled. The request
 * is then complete as far as the device is concerned. */
bool evreg_doorbell(struct evreg_set *s, const struct access *a);

/* Readable when a relayed irqfd was written: call evreg_relay (event thread). */
int evreg_relay_fd(const struct evreg_set *s);

/* Injects the interrupts of the relayed irqfds that were written since the
 * last call (one per eventfd, however many writes: they coalesce, as in the
 * kernel). */
void evreg_relay(struct evreg_set *s);

#endif
