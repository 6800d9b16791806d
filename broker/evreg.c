#include "evreg.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"

/* The ports where a guest reaches PCI configuration space: the HSM keeps
 * 0xCF8 and folds 0xCFC-0xCFF into PCICFG requests, so a doorbell there
 * would shadow that path. */
#define PCI_CONFIG_PORTS_FIRST 0xcf8
#define PCI_CONFIG_PORTS_LAST 0xcff

/* Relayed irqfds collected per epoll_wait. */
#define RELAY_BATCH 16

struct entry {
	void *owner;
	struct evreg_spec spec;
	int fd;                /* ours */
	enum evreg_path path;
	uint64_t id;           /* for the relay's epoll */
};

struct evreg_set {
	char vm[64];
	struct entry *v;
	size_t n, cap;
	uint64_t next_id;
	struct hsm_vm *hsm;    /* the guest they are applied to, or NULL */
	size_t relayed_io;     /* relayed ioeventfds: evreg_doorbell's fast path */
	int epfd;              /* the relayed irqfds */
};

/* ---- checks ---- */

static bool granted_line(const struct cfg_device *c, uint32_t line)
{
	for (size_t i = 0; i < c->n_irqs; i++)
		if (c->irqs[i] == line)
			return true;
	return false;
}

static int check_ioeventfd(const struct evreg_spec *s, const struct rangemap *maps, const void *owner,
			   const char **why)
{
	const struct rangemap_entry *e;
	uint64_t last;

	if (s->type != ACRN_IOREQ_TYPE_PORTIO && s->type != ACRN_IOREQ_TYPE_MMIO) {
		*why = "a doorbell is a port or an MMIO address";
		return -EINVAL;
	}
	if (s->size != 1 && s->size != 2 && s->size != 4 && s->size != 8) {
		*why = "a doorbell is 1, 2, 4 or 8 bytes wide";
		return -EINVAL;
	}
	last = s->addr + (s->size - 1);
	if (last < s->addr || (s->type == ACRN_IOREQ_TYPE_PORTIO && (last > 0xffff || s->size > 4))) {
		*why = "no access reaches that address";
		return -EINVAL;
	}
	if (s->datamatch && s->size < 8 && s->value >> (s->size * 8)) {
		*why = "its value is wider than the access";
		return -EINVAL;
	}
	if (s->type == ACRN_IOREQ_TYPE_PORTIO && s->addr <= PCI_CONFIG_PORTS_LAST && last >= PCI_CONFIG_PORTS_FIRST) {
		*why = "the PCI configuration ports are the HSM's";
		return -EPERM;
	}
	/* Wholly inside one range of its own: a doorbell elsewhere would eat
	 * writes meant for another device, or for nobody. */
	e = rangemap_find(&maps[s->type], s->addr, last);
	if (!e || e->owner != owner) {
		*why = "outside its ranges";
		return -EPERM;
	}
	return 0;
}

int evreg_check(const struct evreg_spec *s, const struct cfg_device *c, const struct rangemap *maps, const void *owner,
		const char **why)
{
	switch (s->kind) {
	case EVREG_IOEVENTFD:
		return check_ioeventfd(s, maps, owner, why);
	case EVREG_IRQFD:
		if (s->msi ? !c->msi : !granted_line(c, s->line)) {
			*why = s->msi ? "MSI not granted" : "IRQ line not granted";
			return -EPERM;
		}
		return 0;
	}
	*why = "unknown kind";
	return -EINVAL;
}

/* ---- the guest's side ---- */

static struct hsm_ioeventfd to_ioeventfd(const struct entry *e)
{
	return (struct hsm_ioeventfd){
		.fd = e->fd,
		.type = e->spec.type,
		.addr = e->spec.addr,
		.size = e->spec.size,
		.datamatch = e->spec.datamatch,
		.data = e->spec.value,
	};
}

static struct hsm_irqfd to_irqfd(const struct entry *e)
{
	return (struct hsm_irqfd){
		.fd = e->fd,
		.msi = e->spec.msi,
		.gsi = e->spec.line,
		.msi_addr = e->spec.msi_addr,
		.msi_data = e->spec.msi_data,
	};
}

static int hsm_assign(struct hsm_vm *hsm, const struct entry *e, bool deassign)
{
	struct hsm_ioeventfd io = to_ioeventfd(e);
	struct hsm_irqfd irq = to_irqfd(e);

	return e->spec.kind == EVREG_IOEVENTFD ? hsm_ioeventfd(hsm, &io, deassign) : hsm_irqfd(hsm, &irq, deassign);
}

static int relay_start(struct evreg_set *s, struct entry *e)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = e->id };

	if (e->spec.kind == EVREG_IOEVENTFD) {
		s->relayed_io++;
	} else if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, e->fd, &ev) < 0) {
		return -errno;
	}
	e->path = EVREG_RELAYED;
	return 0;
}

static void relay_stop(struct evreg_set *s, struct entry *e)
{
	if (e->spec.kind == EVREG_IOEVENTFD)
		s->relayed_io--;
	else
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, e->fd, NULL);
	e->path = EVREG_PENDING;
}

/* Serves @e with the attached guest: in the HSM if it can, else relayed.
 * With @strict, only -EOPNOTSUPP falls back to the relay: another refusal
 * is the answer (a new registration); without, it is logged and relayed (a
 * registration the device was promised before this guest existed). */
static int apply(struct evreg_set *s, struct entry *e, bool strict)
{
	int r = hsm_assign(s->hsm, e, false);

	if (r == 0) {
		e->path = EVREG_IN_HSM;
		return 0;
	}
	if (r != -EOPNOTSUPP) {
		if (strict)
			return r;
		log_warn("vm %s: the guest refused an %s (%s): relaying it", s->vm,
			 e->spec.kind == EVREG_IOEVENTFD ? "ioeventfd" : "irqfd", strerror(-r));
	}
	return relay_start(s, e);
}

static void unapply(struct evreg_set *s, struct entry *e)
{
	int r;

	switch (e->path) {
	case EVREG_IN_HSM:
		r = hsm_assign(s->hsm, e, true);
		if (r < 0)
			log_warn("vm %s: cannot take an %s off the guest: %s", s->vm,
				 e->spec.kind == EVREG_IOEVENTFD ? "ioeventfd" : "irqfd", strerror(-r));
		e->path = EVREG_PENDING;
		break;
	case EVREG_RELAYED:
		relay_stop(s, e);
		break;
	case EVREG_PENDING:
		break;
	}
}

void evreg_attach(struct evreg_set *s, struct hsm_vm *hsm)
{
	s->hsm = hsm;
	for (size_t i = 0; i < s->n; i++)
		apply(s, &s->v[i], false);
}

void evreg_detach(struct evreg_set *s)
{
	if (!s->hsm)
		return;
	for (size_t i = 0; i < s->n; i++)
		unapply(s, &s->v[i]);
	s->hsm = NULL;
}

/* ---- the set ---- */

int evreg_set_new(const char *vm, struct evreg_set **ret)
{
	struct evreg_set *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	snprintf(s->vm, sizeof(s->vm), "%s", vm);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		int r = -errno;

		free(s);
		return r;
	}
	*ret = s;
	return 0;
}

struct evreg_set *evreg_set_free(struct evreg_set *s)
{
	if (!s)
		return NULL;
	evreg_remove_owner(s, NULL);
	close(s->epfd);
	free(s->v);
	free(s);
	return NULL;
}

/* Both wait for the same guest write. */
static bool same_doorbell(const struct evreg_spec *a, const struct evreg_spec *b)
{
	return a->kind == EVREG_IOEVENTFD && b->kind == EVREG_IOEVENTFD && a->type == b->type && a->addr == b->addr &&
	       a->size == b->size && (!a->datamatch || !b->datamatch || a->value == b->value);
}

int evreg_add(struct evreg_set *s, void *owner, const struct evreg_spec *spec, int fd, enum evreg_path *ret_path,
	      const char **why)
{
	struct entry *e;
	int r;

	for (size_t i = 0; i < s->n; i++) {
		const struct entry *o = &s->v[i];

		if (o->owner == owner && o->spec.kind == spec->kind && o->spec.index == spec->index) {
			*why = "it registered that eventfd already";
			return -EEXIST;
		}
		if (same_doorbell(&o->spec, spec)) {
			*why = "another doorbell waits for that write";
			return -EEXIST;
		}
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		struct entry *v = realloc(s->v, cap * sizeof(*v));

		if (!v) {
			*why = "out of memory";
			return -ENOMEM;
		}
		s->v = v;
		s->cap = cap;
	}
	e = &s->v[s->n];
	*e = (struct entry){ .owner = owner, .spec = *spec, .path = EVREG_PENDING, .id = ++s->next_id };
	/* Our own copy: the device's instance and its fds may go first. */
	e->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (e->fd < 0) {
		*why = "cannot copy its eventfd";
		return -errno;
	}
	if (s->hsm) {
		r = apply(s, e, true);
		if (r < 0) {
			*why = "the hypervisor refused it";
			close(e->fd);
			return r;
		}
	}
	s->n++;
	*ret_path = e->path;
	return 0;
}

static void remove_at(struct evreg_set *s, size_t i)
{
	struct entry *e = &s->v[i];

	if (s->hsm)
		unapply(s, e);
	close(e->fd);
	s->v[i] = s->v[--s->n];
}

int evreg_remove(struct evreg_set *s, const void *owner, enum evreg_kind kind, uint32_t index)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].owner == owner && s->v[i].spec.kind == kind && s->v[i].spec.index == index) {
			remove_at(s, i);
			return 0;
		}
	}
	return -ENOENT;
}

void evreg_remove_owner(struct evreg_set *s, const void *owner)
{
	for (size_t i = s->n; i-- > 0;)
		if (!owner || s->v[i].owner == owner)
			remove_at(s, i);
}

void evreg_remove_inside(struct evreg_set *s, const void *owner, uint32_t type, uint64_t start, uint64_t end)
{
	for (size_t i = s->n; i-- > 0;) {
		const struct evreg_spec *sp = &s->v[i].spec;

		if (s->v[i].owner == owner && sp->kind == EVREG_IOEVENTFD && sp->type == type && sp->addr <= end &&
		    sp->addr + (sp->size - 1) >= start)
			remove_at(s, i);
	}
}

/* ---- the relay ---- */

static void signal_fd(int fd)
{
	uint64_t one = 1;
	ssize_t n;

	/* Non-blocking: a counter the device let fill up (EAGAIN) already
	 * says "rung"; nothing else can fail here that anyone could act on. */
	n = write(fd, &one, sizeof(one));
	(void)n;
}

bool evreg_doorbell(struct evreg_set *s, const struct access *a)
{
	if (!s->relayed_io || !a->write || a->type == ACRN_IOREQ_TYPE_PCICFG)
		return false;
	for (size_t i = 0; i < s->n; i++) {
		const struct entry *e = &s->v[i];
		const struct evreg_spec *sp = &e->spec;

		if (e->path != EVREG_RELAYED || sp->kind != EVREG_IOEVENTFD || sp->type != a->type ||
		    sp->addr != a->addr || sp->size != a->size || (sp->datamatch && sp->value != a->value))
			continue;
		signal_fd(e->fd);
		return true;
	}
	return false;
}

int evreg_relay_fd(const struct evreg_set *s)
{
	return s->epfd;
}

static void inject(struct evreg_set *s, const struct entry *e)
{
	uint64_t count;
	int r;

	/* Non-blocking (devsup makes them so): the device may have read it
	 * back itself, and the event thread must never wait for it. */
	if (read(e->fd, &count, sizeof(count)) != sizeof(count) || !s->hsm)
		return;
	if (e->spec.msi)
		r = hsm_inject_msi(s->hsm, e->spec.msi_addr, e->spec.msi_data);
	else
		r = hsm_set_irqline(s->hsm, e->spec.line, HSM_IRQ_PULSE_HIGH);
	if (r < 0)
		log_warn("vm %s: a relayed irqfd failed to inject: %s", s->vm, strerror(-r));
	else
		log_debug("vm %s: irqfd %" PRIu32 ": %s relayed", s->vm, e->spec.index, e->spec.msi ? "MSI" : "IRQ pulse");
}

void evreg_relay(struct evreg_set *s)
{
	struct epoll_event ev[RELAY_BATCH];
	int n;

	do {
		n = epoll_wait(s->epfd, ev, RELAY_BATCH, 0);
		for (int k = 0; k < n; k++) {
			for (size_t i = 0; i < s->n; i++) {
				if (s->v[i].id == ev[k].data.u64 && s->v[i].path == EVREG_RELAYED) {
					inject(s, &s->v[i]);
					break;
				}
			}
		}
	} while (n == RELAY_BATCH);
}
