/* The workaround for nng 1.5.2 under test (nng_shim.c), switchable so that
 * the reproducer can measure with and without it. */
#ifndef IOREQ_NNG_SHIM_H
#define IOREQ_NNG_SHIM_H

#include <stdbool.h>

void nng_shim_enable(void);
bool nng_shim_enabled(void);

#endif
