/* The device's own part of its sandbox. ioreq-launch (broker/launch.c) put
 * it in its namespaces and empty root, without privileges; what is left can
 * only be done from inside, by the library, once it knows what it needs:
 *
 *  - non-dumpable (ioreq-launch made it so already) and Landlock, before
 *    nng starts its threads (a Landlock domain covers the calling thread
 *    and the threads it starts later): no filesystem access;
 *  - seccomp, once the handshake is done, on every thread at once (TSYNC):
 *    an allow-list of the system calls a serving device makes, stacked on
 *    the launcher's baseline deny-list.
 *
 * All of it applies only to a device started sandboxed, which ioreq-launch marks
 * with IOREQ_SANDBOX=strict in its environment; a device run with
 * `sandbox: none` stays unconfined, to be debugged. */
#ifndef IOREQ_SANDBOX_H
#define IOREQ_SANDBOX_H

/* Non-dumpable; Landlock where the kernel offers it (else nothing). 0 or a
 * negative errno. */
int sandbox_restrict_fs(void);

/* The seccomp allow-list on all threads. 0 or a negative errno. */
int sandbox_lock(void);

#endif
