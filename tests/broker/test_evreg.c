/* evreg.c: a VM's ioeventfd and irqfd registrations, against a fake guest
 * whose ioeventfd/irqfd ops the test controls (served, refused, or
 * -EOPNOTSUPP: relayed by the broker), with real eventfds.
 *
 * What a device may bind: doorbells only wholly inside its own ranges,
 * irqfds only on its lines or MSI, each eventfd once; and everything it
 * bound goes (off the guest, fds closed) when it goes. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "evreg.h"

/* ---- a guest ---- */

struct fake {
	struct hsm_vm base;
	int io_ret, irq_ret;        /* what assigning answers */
	int assigned_io, assigned_irq; /* now */
	unsigned pulses, msis;
	uint32_t last_gsi;
	enum hsm_irq_op last_op;
	uint64_t last_msi_addr, last_msi_data;
};

static struct fake *fake_of(struct hsm_vm *vm)
{
	return (struct fake *)vm;
}

static int fake_ioeventfd(struct hsm_vm *vm, const struct hsm_ioeventfd *e, int fd, bool deassign)
{
	struct fake *f = fake_of(vm);

	if (deassign) {
		assert_true(f->assigned_io > 0);
		f->assigned_io--;
		return 0;
	}
	if (f->io_ret == 0)
		f->assigned_io++;
	return f->io_ret;
}

static int fake_irqfd(struct hsm_vm *vm, const struct hsm_irqfd *irq, int fd, bool deassign)
{
	struct fake *f = fake_of(vm);

	if (deassign) {
		assert_true(f->assigned_irq > 0);
		f->assigned_irq--;
		return 0;
	}
	if (f->irq_ret == 0)
		f->assigned_irq++;
	return f->irq_ret;
}

static int fake_irqline(struct hsm_vm *vm, uint32_t gsi, enum hsm_irq_op op)
{
	struct fake *f = fake_of(vm);

	f->pulses++;
	f->last_gsi = gsi;
	f->last_op = op;
	return 0;
}

static int fake_msi(struct hsm_vm *vm, uint64_t addr, uint64_t data)
{
	struct fake *f = fake_of(vm);

	f->msis++;
	f->last_msi_addr = addr;
	f->last_msi_data = data;
	return 0;
}

static const struct hsm_ops fake_ops = {
	.name = "fake",
	.ioeventfd = fake_ioeventfd,
	.irqfd = fake_irqfd,
	.set_irqline = fake_irqline,
	.inject_msi = fake_msi,
};

/* ---- two devices and their routes ---- */

static int dev_a, dev_b; /* owners: their addresses */
static uint32_t lines_a[] = { 5 };
static struct cfg_device cfg_a = { .name = "a", .irqs = lines_a, .n_irqs = 1, .msi = false };
static struct cfg_device cfg_b = { .name = "b", .msi = true };

struct fixture {
	struct rangemap maps[3];
	struct evreg_set *s;
	struct fake guest;
	int fds[4];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	rangemap_add(&f->maps[ACRN_IOREQ_TYPE_MMIO], 0x1000, 0x1fff, &dev_a, 0, NULL);
	rangemap_add(&f->maps[ACRN_IOREQ_TYPE_MMIO], 0x8000, 0x8fff, &dev_a, 0x80000000, NULL); /* a claim */
	rangemap_add(&f->maps[ACRN_IOREQ_TYPE_MMIO], 0x2000, 0x2fff, &dev_b, 0, NULL);
	rangemap_add(&f->maps[ACRN_IOREQ_TYPE_PORTIO], 0x60, 0x63, &dev_a, 1, NULL);
	rangemap_add(&f->maps[ACRN_IOREQ_TYPE_PORTIO], 0xcf0, 0xcff, &dev_a, 2, NULL);
	rangemap_add(&f->maps[ACRN_IOREQ_TYPE_MMIO], UINT64_MAX - 0xfff, UINT64_MAX, &dev_b, 1, NULL);
	if (hsm_vm_init(&f->guest.base, &fake_ops, 1) < 0)
		return -1;
	for (size_t i = 0; i < 4; i++)
		f->fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (evreg_set_new("vm0", &f->s) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	f->s = evreg_set_free(f->s);
	for (size_t t = 0; t < 3; t++)
		rangemap_fini(&f->maps[t]);
	for (size_t i = 0; i < 4; i++)
		close(f->fds[i]);
	hsm_vm_release(&f->guest.base);
	free(f);
	return 0;
}

static struct evreg_spec io(uint32_t index, uint32_t type, uint64_t addr, uint32_t size)
{
	return (struct evreg_spec){ .kind = EVREG_IOEVENTFD, .index = index, .type = type, .addr = addr, .size = size };
}

static struct evreg_spec irq(uint32_t index, uint32_t line)
{
	return (struct evreg_spec){ .kind = EVREG_IRQFD, .index = index, .line = line };
}

static int check(struct fixture *f, const struct evreg_spec *s, const struct cfg_device *c, const void *owner)
{
	const char *why = NULL;
	int r = evreg_check(s, c, f->maps, owner, &why);

	if (r < 0)
		assert_non_null(why);
	return r;
}

static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* ---- what may be bound ---- */

static void test_doorbell_inside_own_ranges(void **state)
{
	struct fixture *f = *state;
	struct evreg_spec s;

	s = io(0, ACRN_IOREQ_TYPE_MMIO, 0x1000, 4);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), 0);
	s = io(0, ACRN_IOREQ_TYPE_MMIO, 0x1ff8, 8);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), 0);
	s = io(0, ACRN_IOREQ_TYPE_MMIO, 0x8010, 2); /* inside a range it claimed */
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), 0);
	s = io(0, ACRN_IOREQ_TYPE_PORTIO, 0x60, 4);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), 0);
	s = io(0, ACRN_IOREQ_TYPE_MMIO, UINT64_MAX - 7, 8); /* the very top, b's */
	assert_int_equal(check(f, &s, &cfg_b, &dev_b), 0);
}

static void test_doorbell_outside(void **state)
{
	struct fixture *f = *state;
	struct evreg_spec s;

	/* across the end of its range */
	s = io(0, ACRN_IOREQ_TYPE_MMIO, 0x1ffc, 8);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EPERM);
	/* another device's range */
	s = io(0, ACRN_IOREQ_TYPE_MMIO, 0x2000, 4);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EPERM);
	/* nobody's */
	s = io(0, ACRN_IOREQ_TYPE_MMIO, 0x3000, 4);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EPERM);
	/* its port range is not an MMIO range */
	s = io(0, ACRN_IOREQ_TYPE_MMIO, 0x60, 1);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EPERM);
	s = io(0, ACRN_IOREQ_TYPE_PORTIO, 0x62, 4);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EPERM);
	/* the PCI configuration ports, even inside its own range */
	s = io(0, ACRN_IOREQ_TYPE_PORTIO, 0xcfc, 4);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EPERM);
	s = io(0, ACRN_IOREQ_TYPE_PORTIO, 0xcf6, 4);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EPERM);
	s = io(0, ACRN_IOREQ_TYPE_PORTIO, 0xcf4, 4);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), 0);
}

static void test_doorbell_malformed(void **state)
{
	struct fixture *f = *state;
	struct evreg_spec s;

	s = io(0, ACRN_IOREQ_TYPE_PCICFG, 0x8, 4);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EINVAL);
	s = io(0, ACRN_IOREQ_TYPE_MMIO, 0x1000, 3);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EINVAL);
	s = io(0, ACRN_IOREQ_TYPE_MMIO, 0x1000, 0);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EINVAL);
	s = io(0, ACRN_IOREQ_TYPE_PORTIO, 0x60, 8); /* no 8-byte port access */
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EINVAL);
	s = io(0, ACRN_IOREQ_TYPE_PORTIO, 0xfffe, 4);
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EINVAL);
	s = io(0, ACRN_IOREQ_TYPE_MMIO, UINT64_MAX - 1, 4); /* wraps */
	assert_int_equal(check(f, &s, &cfg_b, &dev_b), -EINVAL);
	s = io(0, ACRN_IOREQ_TYPE_MMIO, 0x1000, 1);
	s.datamatch = true;
	s.value = 0x100; /* no 1-byte write carries it */
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EINVAL);
	s.value = 0xff;
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), 0);
}

static void test_irqfd_grants(void **state)
{
	struct fixture *f = *state;
	struct evreg_spec s = irq(0, 5);

	assert_int_equal(check(f, &s, &cfg_a, &dev_a), 0);
	s.line = 6;
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EPERM);
	s.line = 5;
	assert_int_equal(check(f, &s, &cfg_b, &dev_b), -EPERM); /* b has no lines */
	s.msi = true;
	assert_int_equal(check(f, &s, &cfg_a, &dev_a), -EPERM); /* a has no MSI */
	assert_int_equal(check(f, &s, &cfg_b, &dev_b), 0);
}

/* ---- the set ---- */

static int add(struct fixture *f, void *owner, struct evreg_spec s, int fd, enum evreg_path *path)
{
	enum evreg_path p;
	const char *why = NULL;
	int r = evreg_add(f->s, owner, &s, fd, path ? path : &p, &why);

	if (r < 0)
		assert_non_null(why);
	return r;
}

/* Each of a device's eventfds once; one doorbell per write. */
static void test_once(void **state)
{
	struct fixture *f = *state;
	struct evreg_spec s;

	assert_int_equal(add(f, &dev_a, io(0, ACRN_IOREQ_TYPE_MMIO, 0x1000, 4), f->fds[0], NULL), 0);
	/* the same eventfd again, elsewhere */
	assert_int_equal(add(f, &dev_a, io(0, ACRN_IOREQ_TYPE_MMIO, 0x1010, 4), f->fds[0], NULL), -EEXIST);
	/* another eventfd on the same write */
	assert_int_equal(add(f, &dev_a, io(1, ACRN_IOREQ_TYPE_MMIO, 0x1000, 4), f->fds[1], NULL), -EEXIST);
	/* the same address with another width is another write */
	assert_int_equal(add(f, &dev_a, io(1, ACRN_IOREQ_TYPE_MMIO, 0x1000, 2), f->fds[1], NULL), 0);
	/* with datamatch: distinct values are distinct writes, but not against a wildcard */
	s = io(2, ACRN_IOREQ_TYPE_MMIO, 0x1000, 2);
	s.datamatch = true;
	s.value = 1;
	assert_int_equal(add(f, &dev_a, s, f->fds[2], NULL), -EEXIST);
	s = io(2, ACRN_IOREQ_TYPE_MMIO, 0x1100, 4);
	s.datamatch = true;
	s.value = 1;
	assert_int_equal(add(f, &dev_a, s, f->fds[2], NULL), 0);
	s.index = 3;
	s.value = 2;
	assert_int_equal(add(f, &dev_a, s, f->fds[3], NULL), 0);
	/* irqfds have indexes of their own */
	assert_int_equal(add(f, &dev_a, irq(0, 5), f->fds[0], NULL), 0);
	assert_int_equal(add(f, &dev_a, irq(0, 5), f->fds[1], NULL), -EEXIST);
	assert_int_equal(evreg_remove(f->s, &dev_a, EVREG_IRQFD, 0), 0);
	assert_int_equal(evreg_remove(f->s, &dev_a, EVREG_IRQFD, 0), -ENOENT);
	assert_int_equal(evreg_remove(f->s, &dev_b, EVREG_IOEVENTFD, 0), -ENOENT);
	assert_int_equal(add(f, &dev_a, irq(0, 5), f->fds[1], NULL), 0);
}

/* Registered before the guest exists: applied when it does, taken off
 * when it goes, applied again to the next one. */
static void test_guest_comes_and_goes(void **state)
{
	struct fixture *f = *state;
	enum evreg_path path;

	assert_int_equal(add(f, &dev_a, io(0, ACRN_IOREQ_TYPE_MMIO, 0x1000, 4), f->fds[0], &path), 0);
	assert_int_equal(path, EVREG_PENDING);
	assert_int_equal(add(f, &dev_a, irq(0, 5), f->fds[1], &path), 0);
	evreg_attach(f->s, &f->guest.base);
	assert_int_equal(f->guest.assigned_io, 1);
	assert_int_equal(f->guest.assigned_irq, 1);
	assert_int_equal(add(f, &dev_b, irq(0, 0), f->fds[2], &path), 0);
	assert_int_equal(path, EVREG_IN_HSM);
	assert_int_equal(f->guest.assigned_irq, 2);
	evreg_detach(f->s);
	assert_int_equal(f->guest.assigned_io + f->guest.assigned_irq, 0);
	evreg_attach(f->s, &f->guest.base);
	assert_int_equal(f->guest.assigned_io + f->guest.assigned_irq, 3);
	evreg_detach(f->s);
}

/* The guest refuses one outright: not kept, no fd left behind. */
static void test_refused(void **state)
{
	struct fixture *f = *state;
	long fds = open_fds();

	evreg_attach(f->s, &f->guest.base);
	f->guest.io_ret = -EINVAL;
	assert_int_equal(add(f, &dev_a, io(0, ACRN_IOREQ_TYPE_MMIO, 0x1000, 4), f->fds[0], NULL), -EINVAL);
	assert_int_equal(open_fds(), fds);
	f->guest.io_ret = 0;
	assert_int_equal(add(f, &dev_a, io(0, ACRN_IOREQ_TYPE_MMIO, 0x1000, 4), f->fds[0], NULL), 0);
	evreg_detach(f->s);
}

static uint64_t take(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* A backend without ioeventfds: the broker rings the doorbell for the
 * writes that match it, and only for those. */
static void test_doorbell_relay(void **state)
{
	struct fixture *f = *state;
	struct access w = { .type = ACRN_IOREQ_TYPE_MMIO, .write = true, .size = 4, .addr = 0x1000, .value = 7 };
	struct access a;
	struct evreg_spec s = io(1, ACRN_IOREQ_TYPE_MMIO, 0x1010, 2);
	enum evreg_path path;

	f->guest.io_ret = -EOPNOTSUPP;
	evreg_attach(f->s, &f->guest.base);
	assert_false(evreg_doorbell(f->s, &w)); /* nothing relayed yet */
	assert_int_equal(add(f, &dev_a, io(0, ACRN_IOREQ_TYPE_MMIO, 0x1000, 4), f->fds[0], &path), 0);
	assert_int_equal(path, EVREG_RELAYED);
	s.datamatch = true;
	s.value = 0x42;
	assert_int_equal(add(f, &dev_a, s, f->fds[1], &path), 0);

	assert_true(evreg_doorbell(f->s, &w));
	assert_true(evreg_doorbell(f->s, &w));
	assert_int_equal(take(f->fds[0]), 2);
	a = w;
	a.write = false;
	assert_false(evreg_doorbell(f->s, &a));
	a = w;
	a.size = 2;
	assert_false(evreg_doorbell(f->s, &a));
	a = w;
	a.addr = 0x1004;
	assert_false(evreg_doorbell(f->s, &a));
	a = w;
	a.type = ACRN_IOREQ_TYPE_PORTIO;
	assert_false(evreg_doorbell(f->s, &a));
	a = (struct access){ .type = ACRN_IOREQ_TYPE_MMIO, .write = true, .size = 2, .addr = 0x1010, .value = 0x41 };
	assert_false(evreg_doorbell(f->s, &a));
	a.value = 0x42;
	assert_true(evreg_doorbell(f->s, &a));
	assert_int_equal(take(f->fds[1]), 1);
	assert_int_equal(take(f->fds[0]), 0);

	/* Once taken off the guest, the broker rings nothing. */
	evreg_detach(f->s);
	assert_false(evreg_doorbell(f->s, &w));
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/* A backend without irqfds: the event thread injects for the device, once
 * per batch of writes. */
static void test_irqfd_relay(void **state)
{
	struct fixture *f = *state;
	struct evreg_spec m = irq(1, 0);
	uint64_t one = 1;

	f->guest.irq_ret = -EOPNOTSUPP;
	evreg_attach(f->s, &f->guest.base);
	assert_int_equal(add(f, &dev_a, irq(0, 5), f->fds[0], NULL), 0);
	m.msi = true;
	m.msi_addr = 0xfee00000;
	m.msi_data = 0x4041;
	assert_int_equal(add(f, &dev_b, m, f->fds[1], NULL), 0);
	assert_false(readable(evreg_relay_fd(f->s)));

	for (int i = 0; i < 3; i++)
		assert_int_equal(write(f->fds[0], &one, sizeof(one)), sizeof(one));
	assert_true(readable(evreg_relay_fd(f->s)));
	evreg_relay(f->s);
	assert_int_equal(f->guest.pulses, 1);
	assert_int_equal(f->guest.last_gsi, 5);
	assert_int_equal(f->guest.last_op, HSM_IRQ_PULSE_HIGH);
	assert_false(readable(evreg_relay_fd(f->s)));

	assert_int_equal(write(f->fds[1], &one, sizeof(one)), sizeof(one));
	evreg_relay(f->s);
	assert_int_equal(f->guest.msis, 1);
	assert_true(f->guest.last_msi_addr == 0xfee00000);
	assert_int_equal(f->guest.last_msi_data, 0x4041);

	/* A device that reads its irqfd back before the broker does: nothing
	 * to inject, and the event thread does not wait for it. */
	assert_int_equal(write(f->fds[0], &one, sizeof(one)), sizeof(one));
	assert_int_equal(take(f->fds[0]), 1);
	evreg_relay(f->s);
	assert_int_equal(f->guest.pulses, 1);

	/* Gone from the guest: no longer relayed. */
	evreg_detach(f->s);
	assert_int_equal(write(f->fds[0], &one, sizeof(one)), sizeof(one));
	assert_false(readable(evreg_relay_fd(f->s)));
	evreg_relay(f->s);
	assert_int_equal(f->guest.pulses, 1);
}

/* An instance that goes takes all it bound with it: off the guest, and
 * the broker's copies of its eventfds closed; the other device keeps its. */
static void test_remove_owner(void **state)
{
	struct fixture *f = *state;
	long fds = open_fds();

	f->guest.irq_ret = -EOPNOTSUPP;
	evreg_attach(f->s, &f->guest.base);
	assert_int_equal(add(f, &dev_a, io(0, ACRN_IOREQ_TYPE_MMIO, 0x1000, 4), f->fds[0], NULL), 0);
	assert_int_equal(add(f, &dev_a, io(1, ACRN_IOREQ_TYPE_PORTIO, 0x60, 1), f->fds[1], NULL), 0);
	assert_int_equal(add(f, &dev_a, irq(0, 5), f->fds[2], NULL), 0);
	assert_int_equal(add(f, &dev_b, io(0, ACRN_IOREQ_TYPE_MMIO, 0x2000, 4), f->fds[3], NULL), 0);
	/* The broker's copy of each, and the HSM layer's own of the three
	 * in the guest (the irqfd is relayed). */
	assert_int_equal(open_fds(), fds + 4 + 3);
	assert_int_equal(f->guest.assigned_io, 3);
	evreg_remove_owner(f->s, &dev_a);
	assert_int_equal(open_fds(), fds + 1 + 1);
	assert_int_equal(f->guest.assigned_io, 1);
	/* Its next instance may bind the same again. */
	assert_int_equal(add(f, &dev_a, io(0, ACRN_IOREQ_TYPE_MMIO, 0x1000, 4), f->fds[0], NULL), 0);
	evreg_remove_owner(f->s, NULL);
	assert_int_equal(open_fds(), fds);
	assert_int_equal(f->guest.assigned_io, 0);
	evreg_detach(f->s);
}

/* A range given back takes the doorbells inside it along. */
static void test_remove_inside(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(add(f, &dev_a, io(0, ACRN_IOREQ_TYPE_MMIO, 0x8000, 4), f->fds[0], NULL), 0);
	assert_int_equal(add(f, &dev_a, io(1, ACRN_IOREQ_TYPE_MMIO, 0x8ffc, 4), f->fds[1], NULL), 0);
	assert_int_equal(add(f, &dev_a, io(2, ACRN_IOREQ_TYPE_MMIO, 0x1000, 4), f->fds[2], NULL), 0);
	evreg_remove_inside(f->s, &dev_a, ACRN_IOREQ_TYPE_PORTIO, 0x8000, 0x8fff);
	evreg_remove_inside(f->s, &dev_b, ACRN_IOREQ_TYPE_MMIO, 0x8000, 0x8fff);
	assert_int_equal(evreg_remove(f->s, &dev_a, EVREG_IOEVENTFD, 1), 0);
	assert_int_equal(add(f, &dev_a, io(1, ACRN_IOREQ_TYPE_MMIO, 0x8ffc, 4), f->fds[1], NULL), 0);
	evreg_remove_inside(f->s, &dev_a, ACRN_IOREQ_TYPE_MMIO, 0x8000, 0x8fff);
	assert_int_equal(evreg_remove(f->s, &dev_a, EVREG_IOEVENTFD, 0), -ENOENT);
	assert_int_equal(evreg_remove(f->s, &dev_a, EVREG_IOEVENTFD, 1), -ENOENT);
	assert_int_equal(evreg_remove(f->s, &dev_a, EVREG_IOEVENTFD, 2), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_doorbell_inside_own_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_doorbell_outside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_doorbell_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_irqfd_grants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_comes_and_goes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_doorbell_relay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_irqfd_relay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_inside, setup, teardown),
	};

	return cmocka_run_group_tests_name("evreg", tests, NULL, NULL);
}
