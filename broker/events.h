/* The event bus: every change of state of a device or a VM, for
 * `ioreqctl events`. One per process, a bounded ring of the latest
 * EVENTS_RING events: publishing copies one event under a short lock and
 * never waits for a reader; a reader that falls more than the ring behind
 * loses the oldest and is told how many. */
#ifndef IOREQ_EVENTS_H
#define IOREQ_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENTS_RING 256

struct event {
	uint64_t seq;     /* from 1, one more for each event */
	int64_t time_ns;  /* CLOCK_REALTIME */
	char vm[32];
	char device[32];  /* "" for a change of the VM itself */
	char from[16], to[16];
	char reason[128];
	unsigned restarts;
};

/* @device NULL: the VM's own state changed. Any thread; never blocks on a reader. */
void events_publish(const char *vm, const char *device, const char *from, const char *to, const char *reason,
		    unsigned restarts);

/* Copies the events from sequence number @after + 1 on, oldest first, up
 * to @n; returns how many. *@ret_lost: how many after @after are gone from
 * the ring already. */
size_t events_read(uint64_t after, struct event *out, size_t n, uint64_t *ret_lost);

/* Waits up to @timeout_ms for an event after @after; whether there is one. */
bool events_wait(uint64_t after, int timeout_ms);

/* The sequence number of the latest event (0: none yet). */
uint64_t events_last(void);

#endif
