/* What the test guests share: a failed check prints where and why over the
 * UART and makes guest_main return the line number, the VM's exit status. */
#ifndef GUEST_CHECK_H
#define GUEST_CHECK_H

#include "rt.h"

#define CHECK_EQ(got, want)                                                                                 \
	do {                                                                                                \
		uint64_t got_ = (got), want_ = (want);                                                      \
		if (got_ != want_) {                                                                        \
			rt_printf("%s:%d: %s is 0x%lx, expected 0x%lx\n", __FILE__, __LINE__, #got, got_, want_); \
			return __LINE__;                                                                    \
		}                                                                                           \
	} while (0)

#endif
