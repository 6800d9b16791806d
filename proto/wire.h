/* The wire codec: one Envelope per nng message, packed without copies and
 * unpacked into a caller-owned arena, validated before anyone reads a field. */
#ifndef IOREQ_WIRE_H
#define IOREQ_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "ioreq.pb-c.h"

/* Most bytes one MemAccess reads or writes. */
#define WIRE_MAX_DMA 16384
/* Largest message either side accepts; set as NNG_OPT_RECVMAXSZ on every
 * socket: a MemAccess or MemResult of WIRE_MAX_DMA bytes and its fields. */
#define WIRE_MAX_MSG (WIRE_MAX_DMA + 1024)
/* Most ranges/windows/lines a Welcome may carry. */
#define WIRE_MAX_LIST 64
/* Longest device or VM name. */
#define WIRE_MAX_NAME 63
/* Most guest RAM regions, files and eventfds (of each kind) a Welcome may
 * carry. */
#define WIRE_MAX_REGIONS 8
#define WIRE_MAX_FILES 16
#define WIRE_MAX_EVENTFDS 64

/* A bump allocator for protobuf-c's unpack: no malloc per message. Reset it
 * (wire_arena_reset) once the unpacked message is no longer used. */
struct wire_arena {
	size_t used;
	_Alignas(16) uint8_t buf[2 * WIRE_MAX_MSG];
};

void wire_arena_reset(struct wire_arena *a);

/* Packs @env into a new nng message and sends it on @sock with @flags
 * (NNG_FLAG_NONBLOCK or 0). On success nng owns the message. Returns 0 or a
 * negative errno. */
int wire_send(nng_socket sock, const Ioreq__Envelope *env, int flags);

/* Receives one message on @sock with @flags and unpacks it into @arena (reset
 * first) as wire_unpack does. Returns 0 or a negative errno (nng's, or
 * wire_unpack's). */
int wire_recv(nng_socket sock, int flags, struct wire_arena *arena, Ioreq__Envelope **ret);

/* What a finished receive @aio brought, unpacked into @arena (reset first)
 * as wire_unpack does; the nng message is freed. 0 with *@ret; -ECANCELED
 * once the socket is closed (do not receive again); -EAGAIN when the
 * receive failed otherwise (receive again); wire_unpack's errors. */
int wire_aio_unpack(nng_aio *aio, struct wire_arena *arena, Ioreq__Envelope **ret);

/* Packs @env into a new nng message in *@ret (the caller owns it). */
int wire_pack(const Ioreq__Envelope *env, nng_msg **ret);

/* Unpacks and validates @len bytes. The result lives in @arena. Returns 0,
 * -EMSGSIZE (too long), or -EBADMSG (not a valid Envelope for this protocol). */
int wire_unpack(const void *buf, size_t len, struct wire_arena *arena, Ioreq__Envelope **ret);

/* Translates an nng error code into a negative errno, once, at the boundary. */
int wire_errno(int nng_err);

/* Access widths the protocol knows: 1, 2, 4, 8. */
static inline int wire_size_ok(uint64_t size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

#endif
