/* The device supervisor: one configured device of a VM, through the
 * successive instances (processes) that serve it.
 *
 * devsup owns everything an instance holds: its process (a pidfd), its
 * host uid, its cgroup, its socket (rpc.c), its log pipes, its handshake,
 * its restart with backoff. When an instance goes down it says so once,
 * through the down() event, so that its owner (the VM) releases what the
 * instance held there (claims, requests), and then kills, reaps and frees
 * the rest itself.
 *
 * Threads: everything that changes an instance's life runs on the VM's
 * event thread (the loop given at creation). Events from the device's
 * socket arrive on nng's threads, replies in its request ring on the VM's
 * reply thread (never busy with anything else, so that neither a stop's
 * drain nor a restart on the event thread holds them up); devsup_send is
 * called from the VM thread. An instance is named by its generation, which grows by one at
 * each start: events and sends carry it, so nothing meant for one instance
 * reaches the next. */
#ifndef IOREQ_DEVSUP_H
#define IOREQ_DEVSUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "access.h"
#include "config.h"
#include "evreg.h"
#include "ioreq.pb-c.h"
#include "loop.h"
#include "wire.h"

struct cgroup_tree;

/* A device instance that has not finished its handshake this long after
 * its start is killed (and restarted by its policy). */
#define DEVSUP_HANDSHAKE_MS 10000

/* The guest's RAM, as an instance given `memory:` receives it. */
struct devsup_memory {
	int fd;            /* the guest's memfd (not ours) */
	uint64_t size;     /* its size */
	size_t n_regions;
	struct devsup_mem_region {
		uint64_t gpa, size, offset;
	} regions[WIRE_MAX_REGIONS];
};

enum devsup_state {
	DEVSUP_STOPPED,  /* not started, or stopped on purpose */
	DEVSUP_STARTING, /* spawned, no handshake yet */
	DEVSUP_READY,    /* serving */
	DEVSUP_DOWN,     /* gone; a restart is scheduled */
	DEVSUP_FAILED,   /* restarted too often: given up */
};

/* What a device's owner hears. Called without devsup's locks held. */
struct devsup_events {
	/* Instance @gen finished its handshake. */
	void (*ready)(void *opaque, uint32_t gen);
	/* Instance @gen went down (exited, disconnected, cut off, no
	 * handshake): release what it held. Any thread, once per instance. */
	void (*down)(void *opaque, uint32_t gen, const char *why);
	/* A reply: 0 if it completed a request, -ENOENT if it found none (late,
	 * duplicate, or never sent to this instance: a soft violation), any
	 * other negative errno for a lie (the instance is cut off). */
	int (*reply)(void *opaque, uint32_t gen, uint64_t id, uint64_t value, bool ok);
	/* A granted interrupt to deliver; an error is logged. */
	int (*interrupt)(void *opaque, const Ioreq__Interrupt *irq);
	/* A claim or release of a range, @tag the device's name for it (it
	 * comes back in requests to the range): 0 or a negative errno, which
	 * the device is told; @why says why it was refused. */
	int (*claim)(void *opaque, uint32_t gen, uint32_t type, uint64_t start, uint64_t size, bool release,
		     uint32_t tag, const char **why);
	/* The device was given up (its restart limit): its requests must get
	 * the fallback from now on. */
	void (*failed)(void *opaque);
	/* Instance @gen registers one of its eventfds (@fd: the broker's copy,
	 * valid during the call; its index is checked) or, with @release,
	 * takes it back: 0 or a negative errno, which the device is told.
	 * @why says why it was refused, or how it is served. */
	int (*registration)(void *opaque, uint32_t gen, const struct evreg_spec *spec, int fd, bool release,
			    const char **why);
	/* A remote device's DMA: copies @len bytes from guest-physical @gpa
	 * to @buf, or (@write) from @buf there. 0, or -EFAULT unless the
	 * range lies wholly in one region of the guest's RAM (or when the
	 * guest is gone). Any thread. */
	int (*guest_copy)(void *opaque, uint64_t gpa, void *buf, size_t len, bool write);
};

/* What a device needs from its broker and VM. */
struct devsup_params {
	const struct cfg_device *cfg;
	const char *vm;             /* the VM's name, for logs and the Welcome */
	unsigned vcpus;             /* the VM's: one slot each in the device's request ring */
	const char *runtime_dir;    /* the device's socket goes in RUNTIME_DIR/VM.DEVICE/ */
	const char *launcher;       /* ioreq-launch */
	struct loop *loop;          /* the VM's event thread */
	struct loop *replies;       /* the VM's thread for replies in rings (transport: ring) */
	struct cgroup_tree *cgroups; /* NULL: no cgroup limits here */
	const struct devsup_events *events;
	void *opaque;
};

struct devsup;

int devsup_new(const struct devsup_params *p, struct devsup **ret);

/* Stops the device if it runs (event thread, or before the loop runs);
 * NULL is fine. Returns NULL. */
struct devsup *devsup_free(struct devsup *d);

/* Starts an instance; restarts follow by themselves until devsup_stop,
 * also when this first one cannot start. A negative errno only when the
 * device cannot be set up at all: its directory, or what an instance is
 * given (a file, the guest's memory; logged with the configuration's
 * FILE:LINE:COLUMN), and then nothing runs. Event thread. */
int devsup_start(struct devsup *d);

/* The guest's RAM from now on (NULL: there is none), for the instances
 * started from now on: @m is copied, its fd borrowed until the next call.
 * Event thread. */
void devsup_set_memory(struct devsup *d, const struct devsup_memory *m);

/* Asks the instance to exit (Shutdown); devsup_stop then waits for it. */
void devsup_ask_stop(struct devsup *d);

/* Stops the device for good: lets it exit (up to a grace period after
 * devsup_ask_stop), then kills and reaps it. Event thread. */
void devsup_stop(struct devsup *d);

/* Tells a ready instance that the VM is being reset. */
void devsup_reset(struct devsup *d);

/* The generation of the instance that is ready, or 0. Any thread. */
uint32_t devsup_ready_gen(const struct devsup *d);

enum devsup_state devsup_state(const struct devsup *d);

/* Sends request @id to instance @gen; -ESTALE when that instance is gone,
 * another negative errno when it cannot take it (it stopped reading). */
int devsup_send(struct devsup *d, uint32_t gen, uint64_t id, unsigned vcpu, const struct access *a, uint32_t tag,
		uint64_t offset);

/* Cuts the instance @gen off for @why: never trusted again. Any thread. */
void devsup_cut_off(struct devsup *d, uint32_t gen, const char *why);

/* Counts a soft protocol violation of instance @gen; past the device's
 * max_violations in a minute the instance is cut off. Logs @why, rate
 * limited. Any thread. */
void devsup_violation(struct devsup *d, uint32_t gen, const char *why);

/* Logs a line about this device, rate-limited per device (at most a burst
 * of lines per window, then one line saying how many were suppressed). */
void devsup_log(struct devsup *d, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct devsup_info {
	enum devsup_state state;
	pid_t pid;          /* 0 when none runs */
	uid_t uid;          /* the instance's host uid; (uid_t)-1 when not set */
	unsigned restarts;
	char failure[96];    /* why it was given up, or "" */
	uint64_t exits;
	uint64_t interrupts, denied_interrupts;
	uint64_t violations;
	uint64_t throttled;  /* messages over max_msg_rate */
	uint64_t ring_requests, socket_requests; /* how requests were sent */
	/* A remote device: its runner's address ("" while not connected), the
	 * subject of the certificate it was accepted with, the last ping's
	 * round trip (0: none yet); its reconnections are its restarts. */
	bool remote;
	char peer[64];
	char subject[160];
	uint64_t rtt_ns;
	uint64_t dma_accesses, dma_bytes; /* its MemAccess messages, the bytes moved */
};

void devsup_info(const struct devsup *d, struct devsup_info *ret);

const char *devsup_state_name(enum devsup_state s);

#endif
