/* libFuzzer: what a control-socket client sends, unpacked as the broker does. */
#include <stddef.h>
#include <stdint.h>

#include "control.pb-c.h"

#define CTL_MAX_MSG 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Ioreqctl__CtlRequest *q;

	if (size > CTL_MAX_MSG)
		return 0;
	q = ioreqctl__ctl_request__unpack(NULL, size, data);
	if (q)
		ioreqctl__ctl_request__free_unpacked(q, NULL);
	return 0;
}
