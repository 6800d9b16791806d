/* ioreq-dev-null: answers every access and remembers nothing but counts.
 *
 * Reads return a fixed pattern truncated to the access size; writes are
 * counted. With --counter-at, a PIO/MMIO read at that range offset returns the
 * number of writes since the VM's last reset, so a test can prove none was lost or delivered
 * twice. --delay-us makes it a slow device, for deadline tests. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ioreq/device.h"

#define PROG "ioreq-dev-null"
/* A delay is a slow device, not a hung one: the broker's deadline is the test. */
#define NULL_MAX_DELAY_US 10000000

struct null_dev {
	const char *name;
	uint64_t pattern;
	bool counter;
	uint64_t counter_at;
	unsigned long delay_us;
	uint64_t writes, reads; /* since it started, for its last words */
	uint64_t counter_writes; /* since the last reset: what --counter-at reads */
};

__attribute__((format(printf, 2, 3))) static void null_log(const struct null_dev *nd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s %s: ", PROG, nd->name ? nd->name : "-");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void delay(unsigned long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int null_access(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value, void *opaque)
{
	struct null_dev *nd = opaque;

	if (nd->delay_us)
		delay(nd->delay_us);
	if (a->write) {
		nd->writes++;
		nd->counter_writes++;
		return 0;
	}
	nd->reads++;
	if (nd->counter && a->kind != IOREQ_PCICFG && a->offset == nd->counter_at)
		*value = nd->counter_writes;
	else
		*value = nd->pattern; /* the library truncates it to the access size */
	return 0;
}

/* A reset VM starts counting again, as it would with a device just powered on. */
static void null_reset(struct ioreq_dev *dev, void *opaque)
{
	struct null_dev *nd = opaque;

	nd->counter_writes = 0;
}

static const struct ioreq_dev_ops null_ops = {
	.pio = null_access,
	.mmio = null_access,
	.pcicfg = null_access,
	.reset = null_reset,
};

static void usage(void)
{
	fprintf(stderr,
		"usage: %s --socket URL --name NAME [--pattern VALUE] [--counter-at OFFSET] [--delay-us N]\n"
		"  --pattern VALUE      what reads return (default 0)\n"
		"  --counter-at OFFSET  reads at this range offset return the number of writes\n"
		"  --delay-us N         wait N microseconds before answering each access\n",
		PROG);
	exit(2);
}

static int parse_u64(const char *opt, const char *s, uint64_t max, uint64_t *ret)
{
	char *end;

	errno = 0;
	*ret = strtoull(s, &end, 0);
	/* strtoull accepts "-1" as UINT64_MAX: refuse signs outright. */
	if (errno || end == s || *end || s[0] == '-' || *ret > max) {
		fprintf(stderr, "%s: bad --%s '%s'\n", PROG, opt, s);
		return -EINVAL;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct null_dev *nd)
{
	static const struct option opts[] = {
		{ "pattern", required_argument, NULL, 'p' },
		{ "counter-at", required_argument, NULL, 'c' },
		{ "delay-us", required_argument, NULL, 'd' },
		{ 0 },
	};
	uint64_t v;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			r = parse_u64("pattern", optarg, UINT64_MAX, &nd->pattern);
			break;
		case 'c':
			r = parse_u64("counter-at", optarg, UINT64_MAX, &nd->counter_at);
			nd->counter = true;
			break;
		case 'd':
			r = parse_u64("delay-us", optarg, NULL_MAX_DELAY_US, &v);
			nd->delay_us = v;
			break;
		default:
			r = -EINVAL;
		}
		if (r < 0)
			return r;
	}
	return optind == argc ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
	struct null_dev nd = { 0 };
	struct ioreq_dev *dev;
	const char *url;
	int r;

	if (ioreq_dev_take_args(&argc, argv, &url, &nd.name) < 0 || parse_args(argc, argv, &nd) < 0)
		usage();

	r = ioreq_dev_connect(url, nd.name, &null_ops, &nd, &dev);
	if (r < 0) {
		null_log(&nd, "cannot connect to %s: %s", url, strerror(-r));
		return 1;
	}
	r = ioreq_dev_serve(dev);
	if (r < 0)
		null_log(&nd, "serving failed: %s", strerror(-r));
	dev = ioreq_dev_close(dev);
	null_log(&nd, "%" PRIu64 " writes, %" PRIu64 " reads", nd.writes, nd.reads);
	return r < 0 ? 1 : 0;
}
