#include "wire.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "ioreq_ring.h"

void wire_arena_reset(struct wire_arena *a)
{
	a->used = 0;
}

static void *arena_alloc(void *data, size_t size)
{
	struct wire_arena *a = data;
	size_t at = (a->used + 15) & ~(size_t)15;

	if (size > sizeof(a->buf) || at > sizeof(a->buf) - size)
		return NULL;
	a->used = at + size;
	return a->buf + at;
}

static void arena_free(void *data, void *ptr)
{
	/* Everything goes at once in wire_arena_reset. */
}

int wire_errno(int nng_err)
{
	switch (nng_err) {
	case 0:
		return 0;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EINVAL:
		return -EINVAL;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECLOSED:
		return -EBADF;
	case NNG_EAGAIN:
		return -EAGAIN;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ECONNSHUT:
	case NNG_ECONNRESET:
		return -ECONNRESET;
	case NNG_ECANCELED:
		return -ECANCELED;
	case NNG_ENOENT:
		return -ENOENT;
	case NNG_EPERM:
		return -EPERM;
	case NNG_EADDRINUSE:
		return -EADDRINUSE;
	case NNG_ESTATE:
		return -EBUSY;
	case NNG_ENOTSUP:
		return -ENOTSUP;
	case NNG_EADDRINVAL:
		return -EADDRNOTAVAIL;
	case NNG_EPEERAUTH:
		return -EACCES;
	default:
		if (nng_err & NNG_ESYSERR)
			return -(nng_err & ~NNG_ESYSERR);
		return -EIO;
	}
}

int wire_pack(const Ioreq__Envelope *env, nng_msg **ret)
{
	size_t len = ioreq__envelope__get_packed_size(env);
	nng_msg *msg;
	int r;

	if (len > WIRE_MAX_MSG)
		return -EMSGSIZE;
	r = nng_msg_alloc(&msg, len);
	if (r)
		return wire_errno(r);
	ioreq__envelope__pack(env, nng_msg_body(msg));
	*ret = msg;
	return 0;
}

int wire_send(nng_socket sock, const Ioreq__Envelope *env, int flags)
{
	nng_msg *msg;
	int r;

	r = wire_pack(env, &msg);
	if (r < 0)
		return r;
	r = nng_sendmsg(sock, msg, flags);
	if (r) {
		nng_msg_free(msg);
		return wire_errno(r);
	}
	return 0;
}

int wire_recv(nng_socket sock, int flags, struct wire_arena *arena, Ioreq__Envelope **ret)
{
	nng_msg *msg;
	int r;

	r = nng_recvmsg(sock, &msg, flags);
	if (r)
		return wire_errno(r);
	wire_arena_reset(arena);
	r = wire_unpack(nng_msg_body(msg), nng_msg_len(msg), arena, ret);
	nng_msg_free(msg);
	return r;
}

/* protobuf-c keeps proto3 enums open: any integer arrives. */
int wire_aio_unpack(nng_aio *aio, struct wire_arena *arena, Ioreq__Envelope **ret)
{
	int r = nng_aio_result(aio);
	nng_msg *msg;

	if (r == NNG_ECLOSED || r == NNG_ECANCELED)
		return -ECANCELED;
	if (r)
		return -EAGAIN;
	msg = nng_aio_get_msg(aio);
	wire_arena_reset(arena);
	r = wire_unpack(nng_msg_body(msg), nng_msg_len(msg), arena, ret);
	nng_msg_free(msg);
	return r;
}

static int kind_ok(Ioreq__Kind k)
{
	return k == IOREQ__KIND__KIND_PIO || k == IOREQ__KIND__KIND_MMIO || k == IOREQ__KIND__KIND_PCICFG;
}

static int name_ok(const char *s)
{
	return s && strnlen(s, WIRE_MAX_NAME + 1) <= WIRE_MAX_NAME;
}

static int range_ok(const Ioreq__Range *r)
{
	return r && kind_ok(r->kind) && r->size > 0 && r->start + r->size - 1 >= r->start;
}

static int ranges_ok(size_t n, Ioreq__Range *const *v)
{
	if (n > WIRE_MAX_LIST)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!range_ok(v[i]))
			return 0;
	return 1;
}

/* fds a device is given start at 3 (after stdin, stdout and stderr);
 * eventfds may all be -1 instead (their signals travel as messages). */
static int fds_ok(size_t n, const int32_t *v, size_t max)
{
	bool none = n && v[0] == -1;

	if (n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (none ? v[i] != -1 : v[i] < 3)
			return 0;
	return 1;
}

/* Each region a non-empty range of guest-physical space that does not
 * wrap, backed wholly by the memfd (with no memfd, fd -1: size and
 * offsets 0). (Overlaps are the device library's to refuse: it builds its
 * view from them.) */
static int memory_ok(const Ioreq__Memory *m)
{
	bool mapped;

	if (!m)
		return 1;
	mapped = m->fd != -1;
	if ((mapped && m->fd < 3) || (!mapped && m->size) || m->n_regions > WIRE_MAX_REGIONS)
		return 0;
	for (size_t i = 0; i < m->n_regions; i++) {
		const Ioreq__MemRegion *r = m->regions[i];

		if (!r || !r->size || r->gpa + (r->size - 1) < r->gpa)
			return 0;
		if (mapped ? r->offset > m->size || r->size > m->size - r->offset : r->offset != 0)
			return 0;
	}
	return 1;
}

/* Never more than WIRE_MAX_DMA bytes, never a range that wraps. */
static int mem_access_ok(const Ioreq__MemAccess *a)
{
	uint64_t len = a->write ? a->data.len : a->len;

	return len && len <= WIRE_MAX_DMA && a->gpa + (len - 1) >= a->gpa && (a->write || !a->data.len);
}

static int ring_ok(const Ioreq__Ring *r)
{
	return !r || (r->fd >= 3 && r->doorbell >= 3 && r->reply_doorbell >= 3 && r->slots >= 1 &&
		      r->slots <= RING_SLOTS && r->poll_us <= RING_POLL_US_MAX);
}

static int files_ok(size_t n, Ioreq__FileFd *const *v)
{
	if (n > WIRE_MAX_FILES)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!v[i] || v[i]->fd < 3)
			return 0;
	return 1;
}

static int register_ok(const Ioreq__Register *r)
{
	const Ioreq__Ioeventfd *io = r->ioeventfd;

	switch (r->what_case) {
	case IOREQ__REGISTER__WHAT_IOEVENTFD:
		return kind_ok(io->kind) && wire_size_ok(io->size) && io->addr + (io->size - 1) >= io->addr;
	case IOREQ__REGISTER__WHAT_IRQFD:
		return 1;
	default:
		return 0;
	}
}

static int validate(const Ioreq__Envelope *e)
{
	switch (e->msg_case) {
	case IOREQ__ENVELOPE__MSG_HELLO:
		return name_ok(e->hello->device) && e->hello->device[0];
	case IOREQ__ENVELOPE__MSG_WELCOME: {
		const Ioreq__Welcome *w = e->welcome;
		return name_ok(w->vm) && name_ok(w->device) && ranges_ok(w->n_ranges, w->ranges) &&
		       ranges_ok(w->n_windows, w->windows) && w->n_irq_lines <= WIRE_MAX_LIST && memory_ok(w->memory) &&
		       files_ok(w->n_files, w->files) && fds_ok(w->n_doorbells, w->doorbells, WIRE_MAX_EVENTFDS) &&
		       fds_ok(w->n_irqfds, w->irqfds, WIRE_MAX_EVENTFDS) && ring_ok(w->ring);
	}
	case IOREQ__ENVELOPE__MSG_REQUEST: {
		const Ioreq__Request *q = e->request;
		return kind_ok(q->kind) && (q->dir == IOREQ__DIRECTION__DIR_READ || q->dir == IOREQ__DIRECTION__DIR_WRITE) &&
		       wire_size_ok(q->size);
	}
	case IOREQ__ENVELOPE__MSG_REPLY:
		return e->reply->status == IOREQ__STATUS__STATUS_OK || e->reply->status == IOREQ__STATUS__STATUS_UNHANDLED;
	case IOREQ__ENVELOPE__MSG_INTERRUPT:
		return e->interrupt->op >= IOREQ__IRQ_OP__IRQ_ASSERT && e->interrupt->op <= IOREQ__IRQ_OP__IRQ_MSI;
	case IOREQ__ENVELOPE__MSG_CLAIM:
		return range_ok(e->claim->range);
	case IOREQ__ENVELOPE__MSG_REGISTRATION:
		return register_ok(e->registration);
	case IOREQ__ENVELOPE__MSG_CLAIM_RESULT:
	case IOREQ__ENVELOPE__MSG_REGISTRATION_RESULT:
	case IOREQ__ENVELOPE__MSG_RESET:
	case IOREQ__ENVELOPE__MSG_SHUTDOWN:
	case IOREQ__ENVELOPE__MSG_PONG:
		return 1;
	case IOREQ__ENVELOPE__MSG_PING:
		return e->ping->timeout_ms > 0;
	case IOREQ__ENVELOPE__MSG_MEM_ACCESS:
		return mem_access_ok(e->mem_access);
	case IOREQ__ENVELOPE__MSG_MEM_RESULT:
		return e->mem_result->data.len <= WIRE_MAX_DMA;
	case IOREQ__ENVELOPE__MSG_SIGNAL:
		return e->signal->index < WIRE_MAX_EVENTFDS && e->signal->count > 0;
	default:
		return 0;
	}
}

int wire_unpack(const void *buf, size_t len, struct wire_arena *arena, Ioreq__Envelope **ret)
{
	ProtobufCAllocator alloc = { .alloc = arena_alloc, .free = arena_free, .allocator_data = arena };
	Ioreq__Envelope *e;

	if (len > WIRE_MAX_MSG)
		return -EMSGSIZE;
	e = ioreq__envelope__unpack(&alloc, len, buf);
	if (!e)
		return -EBADMSG;
	if (!validate(e))
		return -EBADMSG;
	*ret = e;
	return 0;
}
