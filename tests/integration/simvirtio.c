#include "simvirtio.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

struct harness_script sim_script;
static unsigned avail_idx[2], used_idx[2];

void s(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	harness_script_vline(&sim_script, fmt, ap);
	va_end(ap);
}

void s_reset(void)
{
	harness_script_reset(&sim_script);
	memset(avail_idx, 0, sizeof(avail_idx));
	memset(used_idx, 0, sizeof(used_idx));
}

void s_bar(unsigned type)
{
	s("pci read " BDF " 0x00 4 0x%x", (0x1040 + type) << 16 | 0x1af4);
	s("pci write " BDF " 0x10 4 0x%llx", BAR);
	s("pci write " BDF " 0x14 4 0");
	s("pci write " BDF " 0x04 2 0x6");
}

void s_init(unsigned nq, uint32_t features)
{
	s("mmio write 0x%llx 1 0", COMMON(0x14));
	s("mmio write 0x%llx 1 1", COMMON(0x14));
	s("mmio write 0x%llx 1 3", COMMON(0x14));
	s("mmio write 0x%llx 4 1", COMMON(0x08));
	s("mmio write 0x%llx 4 1", COMMON(0x0c));
	s("mmio write 0x%llx 4 0", COMMON(0x08));
	s("mmio write 0x%llx 4 0x%x", COMMON(0x0c), features);
	s("mmio write 0x%llx 1 0xb", COMMON(0x14));
	s("mmio read 0x%llx 1 0xb", COMMON(0x14));
	for (unsigned q = 0; q < nq; q++) {
		s("mmio write 0x%llx 2 %u", COMMON(0x16), q);
		s("mmio write 0x%llx 2 %u", COMMON(0x18), QSIZE);
		s("mmio write 0x%llx 8 0x%llx", COMMON(0x20), DESC(q));
		s("mmio write 0x%llx 8 0x%llx", COMMON(0x28), AVAIL(q));
		s("mmio write 0x%llx 8 0x%llx", COMMON(0x30), USED(q));
		s("mem write 0x%llx 4 0", AVAIL(q));
		s("mem write 0x%llx 4 0", USED(q));
		s("mmio write 0x%llx 2 1", COMMON(0x1c));
		avail_idx[q] = used_idx[q] = 0;
	}
	s("mmio write 0x%llx 1 0xf", COMMON(0x14));
	s("mmio read 0x%llx 1 0xf", COMMON(0x14));
}

void s_chain(unsigned q, const struct seg *segs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t d = DESC(q) + 16 * i;

		s("mem write 0x%llx 8 0x%llx", (unsigned long long)d, (unsigned long long)segs[i].addr);
		s("mem write 0x%llx 4 %u", (unsigned long long)d + 8, segs[i].len);
		s("mem write 0x%llx 2 %u", (unsigned long long)d + 12,
		  (i + 1 < n ? F_NEXT : 0) | (segs[i].write ? F_WRITE : 0));
		s("mem write 0x%llx 2 %u", (unsigned long long)d + 14, i + 1 < n ? i + 1 : 0);
	}
	s("mem write 0x%llx 2 0", AVAIL(q) + 4 + 2 * (avail_idx[q] % QSIZE));
	avail_idx[q]++;
	s("mem write 0x%llx 2 %u", AVAIL(q) + 2, avail_idx[q] & 0xffff);
	s("mmio write 0x%llx 2 %u", NOTIFY(q), q);
}

void s_used(unsigned q, const char *len)
{
	uint64_t elem = USED(q) + 4 + 8 * (used_idx[q] % QSIZE);

	used_idx[q]++;
	s("mem wait 0x%llx 2 %u 5000", USED(q) + 2, used_idx[q]);
	s("mem read 0x%llx 4 0", (unsigned long long)elem);
	s("mem read 0x%llx 4 %s", (unsigned long long)elem + 4, len);
}

void s_blk(uint32_t type, uint64_t sector, uint32_t len, bool data_in, unsigned status, const char *written)
{
	struct seg segs[3];
	unsigned n = 0;

	s("mem write 0x%llx 4 %u", BUF(0), type);
	s("mem write 0x%llx 4 0", BUF(0) + 4);
	s("mem write 0x%llx 8 %" PRIu64, BUF(0) + 8, sector);
	s("mem write 0x%llx 1 0xff", BUF(0) + 0x100);
	segs[n++] = (struct seg){ BUF(0), 16, false };
	if (len)
		segs[n++] = (struct seg){ BUF(0) + 0x1000, len, data_in };
	segs[n++] = (struct seg){ BUF(0) + 0x100, 1, true };
	s_chain(0, segs, n);
	s_used(0, written);
	s("mem read 0x%llx 1 %u", BUF(0) + 0x100, status);
}

void s_blk_read_write(void)
{
	s_blk(0, 3, 512, true, 0, "513");
	s("mem read 0x%llx 8 0x6464646464646464", BUF(0) + 0x1000);
	s("mem read 0x%llx 8 0x6464646464646464", BUF(0) + 0x1000 + 504);
	s("mem write 0x%llx 8 0x0123456789abcdef", BUF(0) + 0x1000);
	s("mem write 0x%llx 8 0xfedcba9876543210", BUF(0) + 0x1000 + 1016);
	s_blk(1, 5, 1024, false, 0, "1");
	s("mem write 0x%llx 8 0", BUF(0) + 0x1000);
	s_blk(0, 5, 1024, true, 0, "1025");
	s("mem read 0x%llx 8 0x0123456789abcdef", BUF(0) + 0x1000);
	s("mem read 0x%llx 8 0xfedcba9876543210", BUF(0) + 0x1000 + 1016);
}
