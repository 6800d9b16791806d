/* libFuzzer: every message a device can send goes through wire_unpack. */
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct wire_arena arena;
	Ioreq__Envelope *env;

	wire_arena_reset(&arena);
	if (wire_unpack(data, size, &arena, &env) == 0 && env->msg_case == IOREQ__ENVELOPE__MSG_WELCOME)
		/* Validated lists are safe to walk. */
		for (size_t i = 0; i < env->welcome->n_ranges; i++)
			(void)env->welcome->ranges[i]->start;
	return 0;
}
