/* The sim backend: scripted vCPUs that post requests through the dispatcher
 * and wait for completion like real ones, for tests and benchmarks without a
 * hypervisor. A VM with memory has guest RAM like any other backend's (one
 * region [0, memory) of a sealed memfd), which its scripts and its devices
 * share.
 *
 * A script is text, one statement per line, '#' starts a comment:
 *
 *   pio  read|write  ADDR SIZE VALUE      port I/O (ADDR <= 0xffff)
 *   mmio read|write  ADDR SIZE VALUE      memory-mapped I/O
 *   pci  read|write  BB:DD.F REG SIZE VALUE
 *                                         config space through 0xCF8/0xCFC
 *                                         (two port accesses, as a guest does)
 *   mem  write GPA SIZE VALUE             a store to guest RAM, no exit
 *   mem  read  GPA SIZE VALUE             a load from guest RAM, checked
 *   mem  wait  GPA SIZE VALUE MS          loads until it reads VALUE, for at
 *                                         most MS (1..60000) milliseconds: a
 *                                         driver polling for what a device
 *                                         writes without an interrupt (after
 *                                         an ioeventfd doorbell the vCPU has
 *                                         nothing else to wait for)
 *   mem  load  GPA FILE                   the file's bytes at GPA (FILE
 *                                         relative to the script's directory,
 *                                         at most SIM_MAX_LOAD_BYTES)
 *   repeat N ... end                      run the statements between N times
 *                                         (nesting up to 4 deep)
 *   sleep MS                              pause the vCPU
 *   irq LINE 0|1                          wait (up to 1 s) until the VM's IRQ
 *                                         line has that level
 *   irq LINE edge                         wait (up to 1 s) for a rising edge
 *                                         of the line (an assert, a pulse, an
 *                                         irqfd) and take it: each edge is
 *                                         taken once, by one vCPU
 *   msi ADDR DATA                         the same for an MSI with that
 *                                         address and data
 *
 * SIZE is 1, 2, 4 or 8. For a write, VALUE is what is written; for a read,
 * what must come back ("any" to accept anything). VALUE may be "seq": vcpu <<
 * 48 | the iteration of the innermost repeat, so every access of a long run
 * is distinct. Numbers are decimal or 0x hex. A read that does not return its
 * value, and a wait that times out, is reported with the script's file and
 * line, and makes the VM's exit status non-zero. A mem statement whose range
 * is not all inside one RAM region is an error when the VM is created, with
 * the script's file and line. Stores and loads of naturally aligned
 * accesses are single (atomic) accesses, as on a CPU.
 */
#ifndef IOREQ_SIM_H
#define IOREQ_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsm.h"

struct dispatch;

#define SIM_MAX_SCRIPT_BYTES (1u << 20)
#define SIM_MAX_LOAD_BYTES (16u << 20)
#define SIM_MAX_OPS 65536
#define SIM_MAX_DEPTH 4
#define SIM_IRQ_LINES 256

extern const struct hsm_ops sim_ops;

struct sim_script;

/* Parses @len bytes of @text; @name is used in messages, and its directory
 * is where mem load finds its files. On error returns -EINVAL and writes
 * "NAME:LINE: message" into @err. Reads no file: a mem load's bytes are
 * read by sim_script_load. */
int sim_script_parse(const char *text, size_t len, const char *name, struct sim_script **ret, char *err,
		     size_t errlen);

/* Reads and parses the file at @path, and reads the files its mem load
 * statements name (a missing or oversized one: "PATH:LINE: ..."). */
int sim_script_load(const char *path, struct sim_script **ret, char *err, size_t errlen);

struct sim_script *sim_script_free(struct sim_script *s);

/* How many accesses the script performs when run (repeats expanded). */
uint64_t sim_script_accesses(const struct sim_script *s);

/* Counters of scripted vCPUs, for tests. */
struct sim_stats {
	uint64_t accesses;
	uint64_t mismatches;
	uint64_t irq_ops;
	uint64_t msis;
	uint64_t mem_ops; /* mem statements run */
};

/* Guest RAM as the scripted vCPUs see it: where each region's bytes are. */
struct sim_mem_region {
	uint64_t gpa, size;
	uint8_t *host;
};
#define SIM_MAX_MEM_REGIONS 256

void sim_vm_stats(struct hsm_vm *vm, struct sim_stats *ret);

/* The scripted vCPUs of one VM: a thread per vCPU that runs its script,
 * posting each access into its slot of the dispatcher's page as a hypervisor
 * does for an exit, and waiting for the completion. The sim backend and the
 * fake ACRN HSM of the tests (tests/fake_hsm/) both run their vCPUs here.
 *
 * Run control follows the hypervisor's VM states:
 *   start  START_VM: the vCPUs run (the first call creates their threads);
 *   pause  PAUSE_VM: each vCPU stops before its next access; one that waits
 *          for a completion keeps waiting (CLEAR_VM_IOREQ completes it);
 *   reset  RESET_VM: each vCPU starts its script over once it runs again,
 *          also a vCPU whose script had already ended.
 * The sim backend maps its hsm ops onto these one to one. */
struct sim_cpus;

struct sim_cpus_params {
	const char *name;               /* the VM's, for reports */
	struct dispatch *d;             /* initialised; d->vcpu_num vCPUs */
	const char *const *scripts;     /* d->vcpu_num paths, NULL for an idle vCPU; NULL: all idle */
	bool completion_polling;        /* every request asks to be polled for (ACRN's polling mode) */
	/* When every vCPU has reached the end of its script: status 0 if
	 * every read returned what its script expected. At most once (not
	 * again after a reset), and not once sim_cpus_free has begun. */
	hsm_stop_fn on_stop;
	hsm_report_fn report;           /* mismatches, script errors */
	void *opaque;
};

/* Loads the scripts; nothing runs yet. A script that does not load is
 * reported and returns its error. */
int sim_cpus_create(const struct sim_cpus_params *p, struct sim_cpus **ret);

/* Guest RAM (@n regions, copied), before the first start: every mem
 * statement of every script must lie inside one region, else the first
 * that does not is reported ("PATH:LINE: ...") and -EINVAL returned. A
 * VM's scripts with mem statements do not start without it. */
int sim_cpus_set_memory(struct sim_cpus *c, const struct sim_mem_region *r, unsigned n);

/* The caller serialises these three. */
int sim_cpus_start(struct sim_cpus *c);
void sim_cpus_pause(struct sim_cpus *c);
void sim_cpus_reset(struct sim_cpus *c);

/* SET_IRQLINE, as the irq statement sees it: -EINVAL for a line beyond
 * SIM_IRQ_LINES or an unknown operation. An assert of a low line and a
 * pulse are edges. */
int sim_cpus_set_irqline(struct sim_cpus *c, uint32_t gsi, enum hsm_irq_op op);

/* INJECT_MSI: counted, and pending for the msi statement (the first
 * SIM_MSI_KINDS distinct address/data pairs; later ones are only counted). */
#define SIM_MSI_KINDS 64
void sim_cpus_inject_msi(struct sim_cpus *c, uint64_t addr, uint64_t data);

void sim_cpus_stats(struct sim_cpus *c, struct sim_stats *ret);

/* Stops the vCPUs for good, closes the dispatcher (dispatch_close: what
 * they wait for and whatever they post from now on completes at once), and
 * joins them: once it returns, nothing touches the page. The dispatcher
 * takes no default client again. NULL is fine; returns NULL. */
struct sim_cpus *sim_cpus_free(struct sim_cpus *c);

#endif
