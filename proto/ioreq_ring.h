/* The request ring: the fast path between the broker and one device
 * instance, beside its nng socket (which stays the control channel).
 *
 * A sealed memfd of RING_SIZE bytes, created by the broker for each
 * instance and given to it with two eventfds (Welcome.ring): a header and
 * one slot per vCPU. A slot moves through the states of the HSM's own
 * request page:
 *
 *   FREE --broker posts--> PENDING --device takes--> PROCESSING
 *        --device answers--> COMPLETE --broker collects--> FREE
 *
 * The broker writes a slot's request half, then its state (release); the
 * device reads the state (acquire), then the request. The device writes the
 * reply half, then the state (release); the broker reads the state
 * (acquire), then each reply field exactly once. Everything the device can
 * write is untrusted: the broker keeps its own record of what it posted
 * and never reads back the request half.
 *
 * A VM reset is a counter in the header (reset_seq), not a message: see
 * there.
 *
 * Doorbells, each an eventfd, rung only when the other side sleeps:
 *  - the broker rings `doorbell` after posting if device_waiting is set;
 *  - the device rings `reply_doorbell` after answering unless
 *    broker_polling is set.
 * Each side publishes its flag, then looks at the slots again before it
 * sleeps (all sequentially consistent): either the poster sees the flag,
 * or the sleeper sees the slot. Nothing is lost, and nobody makes a
 * syscall while the other side is awake. */
#ifndef IOREQ_RING_H
#define IOREQ_RING_H

#include <stdatomic.h>
#include <stdint.h>

#define RING_MAGIC UINT64_C(0x31474e4951455249) /* "IREQING1" */
#define RING_VERSION 1
#define RING_SLOTS 16    /* ACRN_IO_REQUEST_MAX: one per vCPU */
#define RING_SIZE 4096
/* The longest either side spins before it sleeps (ring_header.poll_us). */
#define RING_POLL_US_MAX 1000

enum ring_state {
	RING_FREE = 0,
	RING_PENDING = 1,
	RING_PROCESSING = 2,
	RING_COMPLETE = 3,
};

/* How a device answered (struct ring_slot.status). */
enum ring_status {
	RING_OK = 0,
	RING_UNHANDLED = 1, /* the broker completes it with the fallback */
	/* Answered with a Reply on the socket instead, after messages the
	 * handler sent there (a Claim, an Interrupt): one channel keeps them
	 * in order, so the claim is in place before the vCPU goes on. The
	 * slot is free again. */
	RING_SENT = 2,
};

struct ring_slot {
	/* The request: the broker's, written before PENDING. The fields
	 * mean what Ioreq__Request's do (proto/ioreq.proto). */
	uint64_t id;
	uint64_t addr;
	uint64_t offset;
	uint64_t value;
	uint32_t range;
	uint32_t bdf;
	uint32_t reg;
	uint8_t kind;      /* Ioreq__Kind */
	uint8_t write;
	uint8_t size;
	uint8_t pad0;
	_Alignas(64) _Atomic uint32_t state;
	/* The reply: the device's, written before COMPLETE. */
	_Atomic uint32_t status;   /* enum ring_status */
	_Atomic uint64_t reply_id; /* the id it answers */
	_Atomic uint64_t reply;    /* the value read */
};

struct ring_header {
	uint64_t magic;
	uint32_t version;
	uint32_t slots;   /* in use: the VM's vCPUs */
	uint32_t poll_us; /* how long the device may spin before it sleeps */
	_Alignas(64) _Atomic uint32_t device_waiting; /* the device's */
	_Alignas(64) _Atomic uint32_t broker_polling; /* the broker's */
	/* The broker's: bumped for each VM reset, instead of a Reset message,
	 * before the vCPUs go on. The device resets before it serves any
	 * request it sees after the bump (the request's PENDING comes later
	 * in the broker's order), so nothing posted after a reset reaches the
	 * device before it. */
	_Atomic uint32_t reset_seq;
};

struct ring_page {
	_Alignas(64) struct ring_header h;
	_Alignas(64) struct ring_slot slot[RING_SLOTS];
};

/* One turn of a side that spins on the page (poll_us). */
static inline void ring_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

_Static_assert(sizeof(struct ring_slot) == 128, "a slot is two cache lines: request, then state and reply");
_Static_assert(sizeof(struct ring_page) <= RING_SIZE, "the ring fits its page");

#endif
