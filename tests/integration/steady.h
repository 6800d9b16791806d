/* The misbehaving-device tests' VM: "v", two sim vCPUs. vCPU 0 runs the
 * test's script against the devices it gives; vCPU 1 writes and reads back
 * a well-behaved ioreq-dev-ram all along (STEADY_SCRIPT), so that a test
 * can assert that nothing a bad device does reaches its neighbour. */
#ifndef IOREQ_TEST_STEADY_H
#define IOREQ_TEST_STEADY_H

#include "harness.h"

#define MISBEHAVE IOREQ_TESTDIR "/ioreq-test-misbehave"

/* vCPU 1's script and device (a YAML list entry). */
#define STEADY_SCRIPT "repeat 3000\n  mmio write 0x2000 8 seq\n  mmio read 0x2000 8 seq\nend\n"
#define STEADY_DEVICE "      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x2000+8\"] }\n"

/* Runs the VM with @script on vCPU 0 and @devices (YAML list entries) next
 * to the steady one, until it exits; returns the broker's exit status. */
int steady_run_vm(struct run *r, const char *script, const char *devices);

/* The steady device saw all its 6000 accesses, none with the fallback. */
void steady_assert(const struct run *r);

/* A path for misbehave's --once: the first instance misbehaves, the
 * restarted one behaves. */
const char *steady_once(void);

#endif
