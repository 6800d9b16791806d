/* ioreq-dev-ram: a register file that reads back what was written.
 *
 * The granted PIO and MMIO ranges are laid end to end in one byte array, in
 * Welcome order: range i starts at the sum of the sizes of the PIO/MMIO
 * ranges before it. Accesses of 1, 2, 4 or 8 bytes at any offset are little
 * endian; one that leaves its range or the array is not handled. Every
 * granted PCI function gets a 4 KiB configuration space of plain RAM. Reset
 * clears everything. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ioreq/device.h"

#define PROG "ioreq-dev-ram"
#define RAM_MAX (UINT64_C(64) << 20)
#define CFG_SPACE 4096

struct ram {
	const char *name;
	uint64_t size;    /* --size, 0: the sum of the ranges */
	uint8_t *mem;
	uint8_t *cfg;
	uint64_t cfg_size;
	uint64_t *base;   /* per Welcome range: where it starts in mem, or cfg for PCICFG */
	const struct ioreq_dev_info *info;
};

__attribute__((format(printf, 2, 3))) static void ram_log(const struct ram *ram, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s %s: ", PROG, ram->name ? ram->name : "-");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Does [off, off + len) fit in [0, size)? */
static bool fits(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

static void rw(uint8_t *p, const struct ioreq_access *a, uint64_t *value)
{
	uint64_t v = 0;

	if (a->write) {
		for (unsigned i = 0; i < a->size; i++)
			p[i] = (uint8_t)(a->value >> (8 * i));
		return;
	}
	for (unsigned i = 0; i < a->size; i++)
		v |= (uint64_t)p[i] << (8 * i);
	*value = v;
}

static int ram_io(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	struct ram *ram = opaque;
	const struct ioreq_range *r;
	uint64_t at;

	/* Ranges claimed later have no place in the file. */
	if (a->range >= ram->info->n_ranges)
		return -ENOENT;
	r = &ram->info->ranges[a->range];
	if (r->kind != a->kind || !fits(a->offset, a->size, r->size))
		return -ERANGE;
	at = add_sat(ram->base[a->range], a->offset);
	if (!fits(at, a->size, ram->size))
		return -ERANGE;
	rw(ram->mem + at, a, value);
	return 0;
}

static int ram_cfg(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	struct ram *ram = opaque;

	if (!fits(a->reg, a->size, CFG_SPACE))
		return -ERANGE;
	for (size_t i = 0; i < ram->info->n_ranges; i++) {
		const struct ioreq_range *r = &ram->info->ranges[i];
		uint64_t at;

		if (r->kind != IOREQ_PCICFG || a->bdf < r->start || a->bdf - r->start >= r->size)
			continue;
		at = ram->base[i] + (a->bdf - r->start) * CFG_SPACE + a->reg;
		rw(ram->cfg + at, a, value);
		return 0;
	}
	return -ENOENT;
}

static void ram_reset(struct ioreq_dev *dev, void *opaque)
{
	struct ram *ram = opaque;

	memset(ram->mem, 0, ram->size);
	memset(ram->cfg, 0, ram->cfg_size);
}

static const struct ioreq_dev_ops ram_ops = {
	.pio = ram_io,
	.mmio = ram_io,
	.pcicfg = ram_cfg,
	.reset = ram_reset,
};

/* Lays the granted ranges out and allocates the file. */
static int ram_setup(struct ram *ram, const struct ioreq_dev_info *info)
{
	uint64_t total = 0;

	ram->info = info;
	ram->base = calloc(info->n_ranges ? info->n_ranges : 1, sizeof(*ram->base));
	if (!ram->base)
		return -ENOMEM;
	for (size_t i = 0; i < info->n_ranges; i++) {
		const struct ioreq_range *r = &info->ranges[i];

		if (r->kind == IOREQ_PCICFG) {
			/* Bounded like the file, so that the products below cannot wrap. */
			if (r->size > RAM_MAX / CFG_SPACE || ram->cfg_size + r->size * CFG_SPACE > RAM_MAX)
				return -EFBIG;
			ram->base[i] = ram->cfg_size;
			ram->cfg_size += r->size * CFG_SPACE;
		} else {
			ram->base[i] = total;
			total = add_sat(total, r->size);
		}
	}
	if (!ram->size) {
		ram->size = total;
		if (total > RAM_MAX) {
			ram_log(ram, "ranges span %" PRIu64 " bytes; serving the first %" PRIu64, total, RAM_MAX);
			ram->size = RAM_MAX;
		}
	}
	/* calloc(0) may return NULL: keep one byte so NULL means out of memory. */
	ram->mem = calloc(ram->size ? ram->size : 1, 1);
	ram->cfg = calloc(ram->cfg_size ? ram->cfg_size : 1, 1);
	if (!ram->mem || !ram->cfg)
		return -ENOMEM;
	return 0;
}

static void ram_free(struct ram *ram)
{
	free(ram->base);
	free(ram->mem);
	free(ram->cfg);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: %s --socket URL --name NAME [--size BYTES]\n"
		"  --size BYTES  register file size (default: the sum of the granted ranges, at most %" PRIu64 ")\n",
		PROG, RAM_MAX);
	exit(2);
}

static int parse_args(int argc, char **argv, struct ram *ram)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			errno = 0;
			ram->size = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end || !ram->size || ram->size > RAM_MAX || optarg[0] == '-') {
				fprintf(stderr, "%s: bad --size '%s'\n", PROG, optarg);
				return -EINVAL;
			}
			break;
		default:
			return -EINVAL;
		}
	}
	return optind == argc ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
	struct ram ram = { 0 };
	struct ioreq_dev *dev = NULL;
	const char *url;
	int r;

	if (ioreq_dev_take_args(&argc, argv, &url, &ram.name) < 0 || parse_args(argc, argv, &ram) < 0)
		usage();

	r = ioreq_dev_connect(url, ram.name, &ram_ops, &ram, &dev);
	if (r < 0) {
		ram_log(&ram, "cannot connect to %s: %s", url, strerror(-r));
		return 1;
	}
	r = ram_setup(&ram, ioreq_dev_info(dev));
	if (r < 0) {
		ram_log(&ram, "cannot hold the granted ranges: %s", strerror(-r));
		goto out;
	}
	r = ioreq_dev_serve(dev);
	if (r < 0)
		ram_log(&ram, "serving failed: %s", strerror(-r));
out:
	dev = ioreq_dev_close(dev);
	ram_free(&ram);
	return r < 0 ? 1 : 0;
}
