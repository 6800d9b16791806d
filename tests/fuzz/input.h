/* What the structure-aware fuzz targets read their choices from: the
 * fuzzer's bytes, consumed front to back; past the end, zeros. */
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct input {
	const uint8_t *p;
	size_t left;
};

static inline uint64_t in_bytes(struct input *in, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n && in->left; i++, in->left--)
		v |= (uint64_t)*in->p++ << (8 * i);
	return v;
}

static inline uint8_t in_u8(struct input *in)
{
	return (uint8_t)in_bytes(in, 1);
}

/* An address or length where the bugs live: small, near the top of the
 * address space, near @near (a boundary the target knows), or anything. */
static inline uint64_t in_addr(struct input *in, uint64_t near)
{
	switch (in_u8(in) & 3) {
	case 0:
		return in_bytes(in, 2);
	case 1:
		return UINT64_MAX - in_bytes(in, 2);
	case 2:
		return near + (uint64_t)(int64_t)(int16_t)in_bytes(in, 2);
	default:
		return in_bytes(in, 8);
	}
}

#endif
