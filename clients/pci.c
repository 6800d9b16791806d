/* ioreq-dev-pci: a PCI function, or the host bridge.
 *
 * The function sits at the BDF of the first granted PCI range. When the
 * guest programs a BAR and enables decoding, the BAR's range is claimed
 * from the broker (tag = the BAR's index), which routes it back here inside
 * the windows YAML grants. INTx drives the first granted IRQ line; MSI is
 * offered when the broker grants it. Everything runs in the serve thread. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ioreq/device.h"
#include "pcidev.h"

#define PROG "ioreq-dev-pci"

struct pci_dev {
	const char *name;
	struct ioreq_dev *dev;
	uint32_t bdf;
	bool has_irq;
	uint32_t irq_line;
	struct pcidev pci;
};

__attribute__((format(printf, 2, 3))) static void pd_log(const struct pci_dev *pd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s %s: ", PROG, pd->name ? pd->name : "-");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- the model's outputs ---- */

static void pd_intx(void *opaque, bool level)
{
	struct pci_dev *pd = opaque;
	int r;

	if (!pd->has_irq)
		return;
	r = ioreq_dev_irq(pd->dev, pd->irq_line, level ? IOREQ_IRQ_ASSERT : IOREQ_IRQ_DEASSERT);
	if (r < 0)
		pd_log(pd, "cannot set IRQ %u: %s", pd->irq_line, strerror(-r));
}

static void pd_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct pci_dev *pd = opaque;
	int r = ioreq_dev_msi(pd->dev, addr, data);

	if (r < 0)
		pd_log(pd, "cannot send MSI 0x%" PRIx64 "/0x%x: %s", addr, data, strerror(-r));
}

static int pd_claim(void *opaque, unsigned bar, bool io, uint64_t start, uint64_t size, bool release)
{
	struct pci_dev *pd = opaque;
	int r = ioreq_dev_claim(pd->dev, io ? IOREQ_PIO : IOREQ_MMIO, start, size, release, bar);

	/* The BAR keeps its value; it just does not decode. */
	if (r < 0)
		pd_log(pd, "BAR%u: cannot %s %s 0x%" PRIx64 "+0x%" PRIx64 ": %s", bar, release ? "release" : "claim",
		       io ? "pio" : "mmio", start, size, strerror(-r));
	return r;
}

static const struct pcidev_ops pd_pci_ops = {
	.intx = pd_intx,
	.msi = pd_msi,
	.claim = pd_claim,
};

/* ---- broker messages ---- */

static int pd_cfg(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	struct pci_dev *pd = opaque;

	if (a->bdf != pd->bdf)
		return -ENOENT;
	if (a->write)
		pcidev_cfg_write(&pd->pci, a->reg, a->size, (uint32_t)a->value);
	else
		*value = pcidev_cfg_read(&pd->pci, a->reg, a->size);
	return 0;
}

/* Only the ranges the BARs claimed reach here; their tag is the BAR. */
static int pd_bar(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	struct pci_dev *pd = opaque;
	unsigned bar = a->range & ~IOREQ_CLAIMED_RANGE;
	bool io = a->kind == IOREQ_PIO;
	uint64_t v = a->value;
	int r;

	if (!(a->range & IOREQ_CLAIMED_RANGE) || bar >= PCIDEV_NBARS ||
	    io != (pd->pci.cfg.bar[bar].kind == PCIDEV_BAR_IO))
		return -ENOENT;
	r = pcidev_bar_access(&pd->pci, bar, a->write, a->offset, a->size, &v);
	if (r < 0)
		return r;
	*value = v;
	return 0;
}

static void pd_claim_result(struct ioreq_dev *dev, uint32_t tag, int error, void *opaque)
{
	struct pci_dev *pd = opaque;
	struct pcidev_claim_op op;

	if (tag >= PCIDEV_NBARS || pcidev_claim_result(&pd->pci, tag, error, &op) < 0) {
		pd_log(pd, "an answer to a claim never made (tag %u)", tag);
		return;
	}
	/* A release the broker did not know about needs no mention. */
	if (error && !op.release)
		pd_log(pd, "BAR%u: the broker refused %s 0x%" PRIx64 "+0x%" PRIx64 ": %s; the BAR does not decode",
		       op.bar, op.io ? "pio" : "mmio", op.start, op.size, strerror(-error));
}

static void pd_reset(struct ioreq_dev *dev, void *opaque)
{
	struct pci_dev *pd = opaque;

	pcidev_reset(&pd->pci);
}

static const struct ioreq_dev_ops pd_ops = {
	.pio = pd_bar,
	.mmio = pd_bar,
	.pcicfg = pd_cfg,
	.reset = pd_reset,
	.claim_result = pd_claim_result,
};

/* ---- command line ---- */

enum pd_id {
	ID_VENDOR,
	ID_DEVICE,
	ID_CLASS,
	ID_REVISION,
	ID_SUBSYSTEM_VENDOR,
	ID_SUBSYSTEM,
	ID_COUNT,
};

static const struct {
	const char *name;
	uint32_t max;
} pd_id_opts[ID_COUNT] = {
	[ID_VENDOR] = { "vendor", 0xffff },
	[ID_DEVICE] = { "device", 0xffff },
	[ID_CLASS] = { "class", 0xffffff },
	[ID_REVISION] = { "revision", 0xff },
	[ID_SUBSYSTEM_VENDOR] = { "subsystem-vendor", 0xffff },
	[ID_SUBSYSTEM] = { "subsystem", 0xffff },
};

/* What the command line asked for; the profile fills in the rest. */
struct pd_args {
	enum pcidev_profile profile;
	uint32_t ids[ID_COUNT];
	bool id_set[ID_COUNT];
	int intx_pin; /* -1: the profile's */
	struct {
		unsigned n;
		enum pcidev_bar_kind kind;
		uint64_t size;
	} bars[PCIDEV_NBARS];
	unsigned n_bars;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: %s --socket URL --name NAME [options]\n"
		"  --profile device|host-bridge   default identity (default: device)\n"
		"  --vendor ID --device ID        hex, 16 bits\n"
		"  --class CODE                   hex, 24 bits (class, subclass, programming interface)\n"
		"  --revision REV                 hex, 8 bits\n"
		"  --subsystem-vendor ID          hex, 16 bits (default: the vendor id; host-bridge: 0)\n"
		"  --subsystem ID                 hex, 16 bits (default: the device id; host-bridge: 0)\n"
		"  --bar N:KIND:SIZE              N 0..5, KIND mem32|mem64|io, SIZE a power of two\n"
		"                                 (suffix K, M or G); mem64 takes N and N+1\n"
		"  --intx-pin A|B|C|D|none        default A for device, none for host-bridge\n",
		PROG);
	exit(2);
}

static int parse_hex(const char *s, uint32_t max, uint32_t *ret)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 16);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int parse_size(const char *s, uint64_t *ret)
{
	static const struct {
		char suffix;
		unsigned shift;
	} units[] = { { 'K', 10 }, { 'M', 20 }, { 'G', 30 } };
	unsigned long long v;
	char *end;
	size_t i;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	if (*end) {
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (toupper((unsigned char)*end) == units[i].suffix)
				break;
		if (i == sizeof(units) / sizeof(units[0]) || end[1] || v > UINT64_MAX >> units[i].shift)
			return -EINVAL;
		v <<= units[i].shift;
	}
	*ret = v;
	return 0;
}

static int parse_bar(const char *s, struct pd_args *args)
{
	static const struct {
		const char *name;
		enum pcidev_bar_kind kind;
	} kinds[] = { { "mem32", PCIDEV_BAR_MEM32 }, { "mem64", PCIDEV_BAR_MEM64 }, { "io", PCIDEV_BAR_IO } };
	char kind[8];
	int n, len = 0;

	if (args->n_bars == PCIDEV_NBARS)
		return -E2BIG;
	if (sscanf(s, "%1d:%7[a-z0-9]:%n", &n, kind, &len) != 2 || !len || n < 0 || n >= PCIDEV_NBARS)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(kind, kinds[i].name))
			continue;
		args->bars[args->n_bars].n = (unsigned)n;
		args->bars[args->n_bars].kind = kinds[i].kind;
		if (parse_size(s + len, &args->bars[args->n_bars].size) < 0)
			return -EINVAL;
		args->n_bars++;
		return 0;
	}
	return -EINVAL;
}

static int parse_pin(const char *s, int *ret)
{
	if (!strcmp(s, "none")) {
		*ret = 0;
		return 0;
	}
	if (strlen(s) != 1 || s[0] < 'A' || s[0] > 'D')
		return -EINVAL;
	*ret = s[0] - 'A' + 1;
	return 0;
}

static int parse_args(int argc, char **argv, struct pd_args *args)
{
	enum { OPT_PROFILE = ID_COUNT, OPT_BAR, OPT_PIN };
	static const struct option opts[] = {
		{ "vendor", required_argument, NULL, ID_VENDOR },
		{ "device", required_argument, NULL, ID_DEVICE },
		{ "class", required_argument, NULL, ID_CLASS },
		{ "revision", required_argument, NULL, ID_REVISION },
		{ "subsystem-vendor", required_argument, NULL, ID_SUBSYSTEM_VENDOR },
		{ "subsystem", required_argument, NULL, ID_SUBSYSTEM },
		{ "profile", required_argument, NULL, OPT_PROFILE },
		{ "bar", required_argument, NULL, OPT_BAR },
		{ "intx-pin", required_argument, NULL, OPT_PIN },
		{ 0 },
	};
	int c, r, idx = 0;

	args->intx_pin = -1;
	while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
		if (c >= 0 && c < ID_COUNT) {
			r = parse_hex(optarg, pd_id_opts[c].max, &args->ids[c]);
			args->id_set[c] = true;
		} else if (c == OPT_PROFILE) {
			r = 0;
			if (!strcmp(optarg, "device"))
				args->profile = PCIDEV_PROFILE_DEVICE;
			else if (!strcmp(optarg, "host-bridge"))
				args->profile = PCIDEV_PROFILE_HOST_BRIDGE;
			else
				r = -EINVAL;
		} else if (c == OPT_BAR) {
			r = parse_bar(optarg, args);
		} else if (c == OPT_PIN) {
			r = parse_pin(optarg, &args->intx_pin);
		} else {
			return -EINVAL;
		}
		if (r < 0) {
			fprintf(stderr, "%s: bad --%s '%s'\n", PROG, opts[idx].name, optarg);
			return r;
		}
	}
	return optind == argc ? 0 : -EINVAL;
}

/* The profile's identity with the command line's changes on top. */
static int build_config(const struct pd_args *args, struct pcidev_config *c)
{
	const uint32_t *id = args->ids;

	pcidev_config_init(c, args->profile);
	if (args->id_set[ID_VENDOR])
		c->vendor = (uint16_t)id[ID_VENDOR];
	if (args->id_set[ID_DEVICE])
		c->device = (uint16_t)id[ID_DEVICE];
	if (args->id_set[ID_CLASS])
		c->class_code = id[ID_CLASS];
	if (args->id_set[ID_REVISION])
		c->revision = (uint8_t)id[ID_REVISION];
	/* A device is its own subsystem unless told otherwise. */
	if (args->profile == PCIDEV_PROFILE_DEVICE) {
		c->subsystem_vendor = c->vendor;
		c->subsystem = c->device;
	}
	if (args->id_set[ID_SUBSYSTEM_VENDOR])
		c->subsystem_vendor = (uint16_t)id[ID_SUBSYSTEM_VENDOR];
	if (args->id_set[ID_SUBSYSTEM])
		c->subsystem = (uint16_t)id[ID_SUBSYSTEM];
	if (args->intx_pin >= 0)
		c->intx_pin = (uint8_t)args->intx_pin;
	for (unsigned i = 0; i < args->n_bars; i++) {
		int r = pcidev_config_bar(c, args->bars[i].n, args->bars[i].kind, args->bars[i].size);

		if (r < 0) {
			fprintf(stderr, "%s: BAR%u: %s\n", PROG, args->bars[i].n,
				r == -EEXIST ? "slot already taken" : "bad size for its kind");
			return r;
		}
	}
	return 0;
}

/* ---- setup ---- */

static int pd_setup(struct pci_dev *pd, struct pcidev_config *cfg)
{
	const struct ioreq_dev_info *info = ioreq_dev_info(pd->dev);
	size_t i;

	for (i = 0; i < info->n_ranges; i++)
		if (info->ranges[i].kind == IOREQ_PCICFG)
			break;
	if (i == info->n_ranges) {
		pd_log(pd, "no PCI function granted");
		return -EINVAL;
	}
	pd->bdf = (uint32_t)info->ranges[i].start;
	pd->has_irq = info->n_irq_lines > 0;
	if (pd->has_irq)
		pd->irq_line = info->irq_lines[0];
	else if (cfg->intx_pin)
		pd_log(pd, "no IRQ line granted: INTx reaches nobody");
	cfg->msi = info->msi;
	return pcidev_init(&pd->pci, cfg, &pd_pci_ops, pd);
}

int main(int argc, char **argv)
{
	struct pci_dev pd = { 0 };
	struct pd_args args = { 0 };
	struct pcidev_config cfg;
	const char *url;
	int r;

	if (ioreq_dev_take_args(&argc, argv, &url, &pd.name) < 0 || parse_args(argc, argv, &args) < 0)
		usage();
	if (build_config(&args, &cfg) < 0)
		return 2;

	r = ioreq_dev_connect(url, pd.name, &pd_ops, &pd, &pd.dev);
	if (r < 0) {
		pd_log(&pd, "cannot connect to %s: %s", url, strerror(-r));
		return 1;
	}
	r = pd_setup(&pd, &cfg);
	if (r < 0)
		goto out;
	r = ioreq_dev_serve(pd.dev);
	if (r < 0)
		pd_log(&pd, "serving failed: %s", strerror(-r));
out:
	pd.dev = ioreq_dev_close(pd.dev);
	return r < 0 ? 1 : 0;
}
