/* The sim backend: scripted vCPUs that post requests through the dispatcher
 * and wait for completion like real ones, for tests and benchmarks without a
 * hypervisor.
 *
 * A script is text, one statement per line, '#' starts a comment:
 *
 *   pio  read|write  ADDR SIZE VALUE      port I/O (ADDR <= 0xffff)
 *   mmio read|write  ADDR SIZE VALUE      memory-mapped I/O
 *   pci  read|write  BB:DD.F REG SIZE VALUE
 *                                         config space through 0xCF8/0xCFC
 *                                         (two port accesses, as a guest does)
 *   repeat N ... end                      run the statements between N times
 *                                         (nesting up to 4 deep)
 *   sleep MS                              pause the vCPU
 *   irq LINE 0|1                          wait (up to 1 s) until the VM's IRQ
 *                                         line has that level
 *
 * SIZE is 1, 2, 4 or 8. For a write, VALUE is what is written; for a read,
 * what must come back ("any" to accept anything). VALUE may be "seq": vcpu <<
 * 48 | the iteration of the innermost repeat, so every access of a long run
 * is distinct. Numbers are decimal or 0x hex. A read that does not return its
 * value is reported with the script's file and line, and makes the VM's exit
 * status non-zero.
 */
#ifndef IOREQ_SIM_H
#define IOREQ_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "hsm.h"

#define SIM_MAX_SCRIPT_BYTES (1u << 20)
#define SIM_MAX_OPS 65536
#define SIM_MAX_DEPTH 4
#define SIM_IRQ_LINES 256

extern const struct hsm_ops sim_ops;

struct sim_script;

/* Parses @len bytes of @text; @name is used in messages. On error returns
 * -EINVAL and writes "NAME:LINE: message" into @err. */
int sim_script_parse(const char *text, size_t len, const char *name, struct sim_script **ret, char *err,
		     size_t errlen);

/* Reads and parses the file at @path. */
int sim_script_load(const char *path, struct sim_script **ret, char *err, size_t errlen);

struct sim_script *sim_script_free(struct sim_script *s);

/* How many accesses the script performs when run (repeats expanded). */
uint64_t sim_script_accesses(const struct sim_script *s);

/* Counters of a sim VM, for tests. */
struct sim_stats {
	uint64_t accesses;
	uint64_t mismatches;
	uint64_t irq_ops;
	uint64_t msis;
};

void sim_vm_stats(struct hsm_vm *vm, struct sim_stats *ret);

#endif
