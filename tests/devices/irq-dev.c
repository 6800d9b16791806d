/* ioreq-test-irq-dev: a device that raises interrupts on command, for the
 * kvm integration tests.
 *
 * A PIO/MMIO write of 1 asserts its first granted IRQ line, 0 deasserts it,
 * 2 pulses it; a read returns how many commands it has carried out. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ioreq/device.h"

#define PROG "ioreq-test-irq-dev"

struct irq_dev {
	uint32_t line;
	uint64_t done;
};

static int irq_access(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	static const enum ioreq_irq_op ops[] = { IOREQ_IRQ_DEASSERT, IOREQ_IRQ_ASSERT, IOREQ_IRQ_PULSE };
	struct irq_dev *d = opaque;
	int r;

	if (!a->write) {
		*value = d->done;
		return 0;
	}
	if (a->value >= sizeof(ops) / sizeof(ops[0]))
		return -EINVAL;
	r = ioreq_dev_irq(dev, d->line, ops[a->value]);
	if (r < 0)
		fprintf(stderr, "%s: irq %u: %s\n", PROG, d->line, strerror(-r));
	else
		d->done++;
	return 0;
}

static const struct ioreq_dev_ops irq_ops = {
	.pio = irq_access,
	.mmio = irq_access,
};

int main(int argc, char **argv)
{
	struct irq_dev d = { 0 };
	const char *url, *name;
	struct ioreq_dev *dev;
	int r;

	if (ioreq_dev_take_args(&argc, argv, &url, &name) < 0 || argc != 1) {
		fprintf(stderr, "usage: %s --socket URL --name NAME\n", PROG);
		return 2;
	}
	r = ioreq_dev_connect(url, name, &irq_ops, &d, &dev);
	if (r < 0) {
		fprintf(stderr, "%s: cannot connect to %s: %s\n", PROG, url, strerror(-r));
		return 1;
	}
	if (!ioreq_dev_info(dev)->n_irq_lines) {
		fprintf(stderr, "%s: no IRQ line granted\n", PROG);
		ioreq_dev_close(dev);
		return 1;
	}
	d.line = ioreq_dev_info(dev)->irq_lines[0];
	r = ioreq_dev_serve(dev);
	ioreq_dev_close(dev);
	return r < 0 ? 1 : 0;
}
