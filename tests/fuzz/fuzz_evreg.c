/* libFuzzer: the broker's validation of a device's registrations
 * (broker/evreg.c), the only thing between a device's Register and the
 * guest's ioeventfds and irqfds. A random VM (ranges of two devices in
 * the PIO, MMIO and PCI maps, each device's IRQ lines and MSI grant), then
 * random registrations from either, each checked against a model: a
 * doorbell is accepted exactly when it is a port or MMIO access of 1, 2,
 * 4 or 8 bytes (ports: at most 4, below 0x10000), its value fits the
 * access, it avoids the PCI configuration ports, and it lies wholly inside
 * one range of the device's own; an irqfd exactly when its line (or MSI)
 * is granted. What is accepted is added to a set and removed again in
 * random ways, with real eventfds, so ASan sees the set's bookkeeping. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "evreg.h"
#include "input.h"

#define MAX_RANGES 8
#define MAX_LINES 4
#define MAX_OPS 64
#define TYPES 3 /* ACRN_IOREQ_TYPE_PORTIO, _MMIO, _PCICFG */

struct model_range {
	uint32_t type;
	uint64_t start, end;
	int dev;
};

struct vm {
	struct rangemap maps[TYPES];
	struct model_range ranges[MAX_RANGES];
	size_t n_ranges;
	struct cfg_device cfg[2];
	uint32_t lines[2][MAX_LINES];
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool model_inside(const struct vm *vm, int dev, uint32_t type, uint64_t first, uint64_t last)
{
	for (size_t i = 0; i < vm->n_ranges; i++) {
		const struct model_range *r = &vm->ranges[i];

		if (r->dev == dev && r->type == type && r->start <= first && last <= r->end)
			return true;
	}
	return false;
}

static bool model_ok(const struct vm *vm, int dev, const struct evreg_spec *s)
{
	uint64_t last = s->addr + (s->size - 1);

	if (s->kind == EVREG_IRQFD) {
		if (s->msi)
			return vm->cfg[dev].msi;
		for (size_t i = 0; i < vm->cfg[dev].n_irqs; i++)
			if (vm->cfg[dev].irqs[i] == s->line)
				return true;
		return false;
	}
	if (s->type != ACRN_IOREQ_TYPE_PORTIO && s->type != ACRN_IOREQ_TYPE_MMIO)
		return false;
	if (s->size != 1 && s->size != 2 && s->size != 4 && s->size != 8)
		return false;
	if (last < s->addr)
		return false;
	if (s->type == ACRN_IOREQ_TYPE_PORTIO && (last > 0xffff || s->size > 4 || (s->addr <= 0xcff && last >= 0xcf8)))
		return false;
	if (s->datamatch && s->size < 8 && s->value >> (8 * s->size))
		return false;
	return model_inside(vm, dev, s->type, s->addr, last);
}

static void make_vm(struct vm *vm, struct input *in, void *const owners[2])
{
	size_t n = in_u8(in) % (MAX_RANGES + 1);

	for (size_t i = 0; i < n; i++) {
		struct model_range *r = &vm->ranges[vm->n_ranges];

		r->type = in_u8(in) % TYPES;
		r->dev = in_u8(in) & 1;
		r->start = in_addr(in, 0xcf8);
		r->end = r->start + in_addr(in, 8);
		if (r->end < r->start)
			continue;
		/* Overlaps are refused here as in the broker: only what the
		 * map holds is the model's. */
		if (rangemap_add(&vm->maps[r->type], r->start, r->end, owners[r->dev], (uint32_t)i, NULL) == 0)
			vm->n_ranges++;
	}
	for (int d = 0; d < 2; d++) {
		vm->cfg[d].n_irqs = in_u8(in) % (MAX_LINES + 1);
		for (size_t i = 0; i < vm->cfg[d].n_irqs; i++)
			vm->lines[d][i] = in_u8(in) % 32;
		vm->cfg[d].irqs = vm->lines[d];
		vm->cfg[d].msi = in_u8(in) & 1;
	}
}

static void random_spec(struct evreg_spec *s, struct input *in, const struct vm *vm)
{
	const struct model_range *near = vm->n_ranges ? &vm->ranges[in_u8(in) % vm->n_ranges] : NULL;
	uint8_t how = in_u8(in);

	*s = (struct evreg_spec){ .index = in_u8(in) % 4 };
	if (how & 1) {
		s->kind = EVREG_IRQFD;
		s->msi = how & 2;
		s->line = in_u8(in) % 40;
		s->msi_addr = 0xfee00000;
		s->msi_data = in_u8(in);
		return;
	}
	s->kind = EVREG_IOEVENTFD;
	s->type = how & 4 && near ? near->type : in_u8(in) % (TYPES + 1);
	s->addr = in_addr(in, near ? ((how & 8) ? near->end : near->start) : 0xcf8);
	s->size = (uint32_t)in_bytes(in, 1) % 10;
	s->datamatch = how & 16;
	s->value = in_addr(in, 0xff);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int dev_a, dev_b;
	void *const owners[2] = { &dev_a, &dev_b };
	struct input in = { data, size };
	struct evreg_set *set;
	struct vm vm = { 0 };
	int efd;

	make_vm(&vm, &in, owners);
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0 || evreg_set_new("fuzz", &set) < 0)
		abort();
	for (unsigned op = 0; op < MAX_OPS && in.left; op++) {
		int dev = in_u8(&in) & 1;
		enum evreg_path path;
		struct evreg_spec s;
		const char *why = NULL;
		int r;

		switch (in_u8(&in) % 8) {
		case 0:
			evreg_remove(set, owners[dev], in_u8(&in) & 1 ? EVREG_IRQFD : EVREG_IOEVENTFD, in_u8(&in) % 4);
			continue;
		case 1:
			evreg_remove_owner(set, owners[dev]);
			continue;
		case 2: {
			const struct model_range *m = vm.n_ranges ? &vm.ranges[in_u8(&in) % vm.n_ranges] : NULL;

			if (m)
				evreg_remove_inside(set, owners[m->dev], m->type, m->start, m->end);
			continue;
		}
		default:
			break;
		}
		random_spec(&s, &in, &vm);
		r = evreg_check(&s, &vm.cfg[dev], vm.maps, owners[dev], &why);
		if ((r == 0) != model_ok(&vm, dev, &s) || (r < 0 && (!why || (r != -EINVAL && r != -EPERM))))
			abort();
		/* Accepted: wholly inside one of its own ranges, or its grants. */
		if (r == 0 && s.kind == EVREG_IOEVENTFD && !model_inside(&vm, dev, s.type, s.addr, s.addr + s.size - 1))
			abort();
		if (r == 0) {
			r = evreg_add(set, owners[dev], &s, efd, &path, &why);
			if ((r < 0 && r != -EEXIST) || (r == 0 && path != EVREG_PENDING))
				abort();
		}
	}
	set = evreg_set_free(set);
	close(efd);
	for (int t = 0; t < TYPES; t++)
		rangemap_fini(&vm.maps[t]);
	return 0;
}
