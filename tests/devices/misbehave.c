/* A device that misbehaves on command, for the reliability tests. It speaks
 * the wire protocol itself (not through libioreq-device, which would not let
 * it lie) and serves reads of its ranges with --pattern until its --mode
 * says otherwise:
 *
 *   serve            behave (the default)
 *   crash-hello      exit 3 before connecting
 *   crash-request N  abort() on receiving request N (holding it)
 *   hang             never reply
 *   reply-twice      reply to every request twice
 *   reply-unknown    reply to an id the broker never issued
 *   wide-value       reply to reads with a value wider than the access
 *   garbage          send bytes that are no Envelope, on request N
 *   oversized        send a message above the size limit, on request N
 *   irq-flood        on request N, send 100000 interrupts on its first line
 *   claim-outside    claim 0x1000 bytes at 0x10000000, then serve; reads
 *                    of offset 4 return 100 + the broker's answer (0 or
 *                    a negative errno)
 *   reconnect N      on request N, hand the connection to another process:
 *                    start a copy of itself that dials the same socket and
 *                    says hello under the same name, then hang up
 *   claim-crash N    claim 0x1000 bytes at 0x10000000 (give it that window),
 *                    serve, and abort() on request N
 *   chatter N        on request N, write 10000 lines to stderr
 *   irq-denied N     on request N, send 5000 interrupts on line 200,
 *                    which no device is granted
 *   claim-flood N    on request N, claim 64 ranges of 0x1000 at 0xe0000000
 *                    (give it that window) and then release each twice
 *   memfd-bomb N     on request N, write 2 GiB into a memfd, 1 MiB at a time
 *   fork-bomb N      on request N, fork until fork fails, then serve on
 *   mem-lie N        (a remote device with memory: read-only and irqfds:
 *                    1) on request N, read 16 bytes outside 16 MiB of
 *                    RAM, write at 0x1000, read 8 bytes at 0x1000, signal
 *                    irqfd 5 and a doorbell (the broker's to signal); answer
 *                    request N with bit 0 set if the first came back
 *                    -EFAULT, bit 1 if the write came back -EACCES, bit 2
 *                    if the read came back with 8 bytes; later requests
 *                    with those 8 bytes
 *
 * The ring-* modes take their requests from the request ring (they say so
 * in their Hello) and lie there, on request N of the ring:
 *
 *   ring-wrong-id    answer with the id of another request
 *   ring-bad-state   write a state that does not exist
 *   ring-bad-status  answer with a status that does not exist
 *   ring-free        set the slot FREE instead of answering
 *   ring-scribble    fill the whole page with 0xa5, then ring
 *   ring-bell-flood  ring the reply doorbell 200000 times with nothing
 *                    answered, then answer
 *   ring-hang        take it (PROCESSING) and never answer: the vCPU's
 *                    next requests come over the socket, and are served
 *   ring-late        answer only after --delay-ms (past its deadline)
 *   ring-truncate    try to shrink and grow the ring's memfd, then serve
 *   ring-serve       behave, in the ring
 *
 * Every misbehaviour answers the request it happened on, if it lives.
 *
 * With --once FILE the misbehaviour happens only if FILE does not exist
 * yet (it is created): the restarted instance behaves. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>

#include "ioreq_ring.h"
#include "wire.h"

extern char **environ;

static const char *mode = "serve";
static unsigned long delay_ms = 500;
static unsigned long nth = 1;
static uint64_t pattern = 0x11;
static int32_t claim_error = 1;

static uint64_t mask(uint64_t v, uint32_t size)
{
	return size >= 8 ? v : v & ((1ull << (size * 8)) - 1);
}

/* A device dials once; the stranger of --child keeps trying, so that it
 * reaches the broker's socket even between two instances of the device. */
static int dial(const char *url, nng_socket *s, bool keep_trying)
{
	if (nng_pair1_open(s) || nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG))
		return -1;
	nng_socket_set_ms(*s, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(*s, NNG_OPT_RECONNMAXT, 100);
	return nng_dial(*s, url, NULL, keep_trying ? NNG_FLAG_NONBLOCK : 0) ? -1 : 0;
}

/* The ring of the Welcome, for the ring-* modes. */
static struct {
	struct ring_page *page;
	int fd, bell, reply_bell;
	unsigned slots;
} ring;

static int hello(nng_socket s, const char *name, struct wire_arena *a)
{
	Ioreq__Hello h = IOREQ__HELLO__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT, *in;
	const Ioreq__Ring *g;

	h.version = IOREQ__VERSION__VERSION_CURRENT;
	h.device = (char *)name;
	h.ring = !strncmp(mode, "ring-", 5);
	env.msg_case = IOREQ__ENVELOPE__MSG_HELLO;
	env.hello = &h;
	if (wire_send(s, &env, 0) < 0 || wire_recv(s, 0, a, &in) < 0)
		return -1;
	if (in->msg_case != IOREQ__ENVELOPE__MSG_WELCOME)
		return -1;
	g = in->welcome->ring;
	if (h.ring && g) {
		ring.page = mmap(NULL, RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
		if (ring.page == MAP_FAILED)
			return -1;
		ring.fd = g->fd;
		ring.bell = g->doorbell;
		ring.reply_bell = g->reply_doorbell;
		ring.slots = g->slots;
	}
	return 0;
}

static void reply(nng_socket s, uint64_t id, uint64_t value)
{
	Ioreq__Reply r = IOREQ__REPLY__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	r.id = id;
	r.value = value;
	env.msg_case = IOREQ__ENVELOPE__MSG_REPLY;
	env.reply = &r;
	wire_send(s, &env, 0);
}

static const char *self, *url, *name;
static uint64_t mem_lie_data;

/* Someone else (a child, another pid) takes over the device's identity. */
static void reconnect_as_child(nng_socket s)
{
	char *argv[] = { (char *)self, "--socket", (char *)url, "--name", (char *)name, "--child", "1", NULL };
	pid_t pid;

	posix_spawn(&pid, self, NULL, NULL, argv, environ);
	nng_close(s);
	pause();
}

static void send_claim(nng_socket s, uint64_t start, bool release, uint32_t tag)
{
	Ioreq__Range range = IOREQ__RANGE__INIT;
	Ioreq__Claim c = IOREQ__CLAIM__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	range.kind = IOREQ__KIND__KIND_MMIO;
	range.start = start;
	range.size = 0x1000;
	c.range = &range;
	c.release = release;
	c.tag = tag;
	env.msg_case = IOREQ__ENVELOPE__MSG_CLAIM;
	env.claim = &c;
	wire_send(s, &env, 0);
}

static void send_irqs(nng_socket s, uint32_t line, unsigned n)
{
	Ioreq__Interrupt irq = IOREQ__INTERRUPT__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	irq.op = IOREQ__IRQ_OP__IRQ_PULSE;
	irq.line = line;
	env.msg_case = IOREQ__ENVELOPE__MSG_INTERRUPT;
	env.interrupt = &irq;
	for (unsigned i = 0; i < n; i++)
		if (wire_send(s, &env, 0) < 0)
			break;
}

/* Past memory_max the kernel kills us before this returns. */
static void memfd_bomb(void)
{
	static char chunk[1 << 20];
	int fd = memfd_create("bomb", MFD_CLOEXEC);

	memset(chunk, 0x5a, sizeof(chunk));
	for (int i = 0; fd >= 0 && i < 2048; i++)
		if (write(fd, chunk, sizeof(chunk)) != sizeof(chunk))
			break;
}

/* Children that wait, until fork fails (pids_max). */
static void fork_bomb(void)
{
	for (int i = 0; i < 100000; i++) {
		pid_t pid = fork();

		if (pid < 0)
			return;
		if (pid == 0) {
			pause();
			_exit(0);
		}
	}
}

static void send_mem(nng_socket s, uint32_t tag, uint64_t gpa, uint32_t len, bool write)
{
	static uint8_t data[8];
	Ioreq__MemAccess a = IOREQ__MEM_ACCESS__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	a.tag = tag;
	a.gpa = gpa;
	a.write = write;
	if (write)
		a.data = (ProtobufCBinaryData){ sizeof(data), data };
	else
		a.len = len;
	env.msg_case = IOREQ__ENVELOPE__MSG_MEM_ACCESS;
	env.mem_access = &a;
	wire_send(s, &env, 0);
}

static void send_signal(nng_socket s, bool irqfd, uint32_t index)
{
	Ioreq__Signal sig = IOREQ__SIGNAL__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	sig.irqfd = irqfd;
	sig.index = index;
	sig.count = 1;
	env.msg_case = IOREQ__ENVELOPE__MSG_SIGNAL;
	env.signal = &sig;
	wire_send(s, &env, 0);
}

/* mem-lie: every MemAccess is answered, the lies with their errors. */
static uint64_t mem_lie(nng_socket s, struct wire_arena *a, uint64_t *ret_data)
{
	uint64_t bits = 0;
	Ioreq__Envelope *in;

	send_mem(s, 1, 16ull << 20, 16, false);
	send_mem(s, 2, 0x1000, 0, true);
	send_mem(s, 3, 0x1000, 8, false);
	send_signal(s, true, 5);
	send_signal(s, false, 0);
	for (unsigned got = 0; got < 3 && wire_recv(s, 0, a, &in) == 0;) {
		const Ioreq__MemResult *r = in->mem_result;

		if (in->msg_case != IOREQ__ENVELOPE__MSG_MEM_RESULT)
			continue;
		got++;
		if (r->tag == 1 && r->error == -EFAULT && !r->data.len)
			bits |= 1;
		if (r->tag == 2 && r->error == -EACCES)
			bits |= 2;
		if (r->tag == 3 && !r->error && r->data.len == 8) {
			bits |= 4;
			memcpy(ret_data, r->data.data, 8);
		}
	}
	return bits;
}

static void misbehave(nng_socket s, const Ioreq__Request *q)
{
	if (!strcmp(mode, "chatter")) {
		for (int i = 0; i < 10000; i++)
			fprintf(stderr, "chatter line %d\n", i);
		fflush(stderr);
	} else if (!strcmp(mode, "irq-denied")) {
		send_irqs(s, 200, 5000);
	} else if (!strcmp(mode, "claim-flood")) {
		for (uint32_t i = 0; i < 64; i++)
			send_claim(s, 0xe0000000 + i * 0x1000ull, false, i);
		for (uint32_t i = 0; i < 64; i++) {
			send_claim(s, 0xe0000000 + i * 0x1000ull, true, i);
			send_claim(s, 0xe0000000 + i * 0x1000ull, true, i);
		}
	} else if (!strcmp(mode, "memfd-bomb")) {
		memfd_bomb();
	} else if (!strcmp(mode, "fork-bomb")) {
		fork_bomb();
	}
	if (!strcmp(mode, "reconnect"))
		reconnect_as_child(s);
	if (!strcmp(mode, "crash-request") || !strcmp(mode, "claim-crash"))
		abort();
	if (!strcmp(mode, "garbage")) {
		static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x42, 0x00 };

		nng_send(s, (void *)junk, sizeof(junk), 0);
	} else if (!strcmp(mode, "oversized")) {
		static uint8_t big[WIRE_MAX_MSG * 2];

		nng_send(s, big, sizeof(big), 0);
	} else if (!strcmp(mode, "irq-flood")) {
		send_irqs(s, 5, 100000);
	}
	reply(s, q->id, mask(pattern, q->size));
}


static int serve(nng_socket s, struct wire_arena *a)
{
	Ioreq__Envelope *in;
	unsigned long n = 0;

	for (;;) {
		const Ioreq__Request *q;

		if (wire_recv(s, 0, a, &in) < 0)
			return 1;
		if (in->msg_case == IOREQ__ENVELOPE__MSG_SHUTDOWN)
			return 0;
		if (in->msg_case == IOREQ__ENVELOPE__MSG_CLAIM_RESULT) {
			claim_error = in->claim_result->error;
			continue;
		}
		if (in->msg_case != IOREQ__ENVELOPE__MSG_REQUEST)
			continue;
		q = in->request;
		n++;
		if (n == nth && !strcmp(mode, "mem-lie")) {
			uint64_t id = q->id, data = 0, bits = mem_lie(s, a, &data);

			reply(s, id, bits);
			mem_lie_data = data;
			continue;
		}
		if (!strcmp(mode, "mem-lie") && n > nth) {
			reply(s, q->id, mem_lie_data);
			continue;
		}
		if (n == nth && strcmp(mode, "serve") && strcmp(mode, "hang") && strcmp(mode, "reply-twice") &&
		    strcmp(mode, "reply-unknown") && strcmp(mode, "wide-value") && strcmp(mode, "claim-outside")) {
			misbehave(s, q);
			continue;
		}
		if (!strcmp(mode, "hang"))
			continue;
		if (!strcmp(mode, "reply-unknown")) {
			reply(s, q->id + (1000000ull << 4), 0);
			continue;
		}
		if (!strcmp(mode, "wide-value") && q->dir == IOREQ__DIRECTION__DIR_READ) {
			reply(s, q->id, mask(~0ull, q->size) + 1 + mask(pattern, q->size));
			continue;
		}
		if (!strcmp(mode, "claim-outside") && q->offset == 4) {
			/* 100 + the errno: distinct from the fallback's all ones */
			reply(s, q->id, (uint32_t)(100 + claim_error));
			continue;
		}
		reply(s, q->id, q->dir == IOREQ__DIRECTION__DIR_READ ? mask(pattern, q->size) : 0);
		if (!strcmp(mode, "reply-twice"))
			reply(s, q->id, mask(pattern, q->size));
	}
}

static void ring_bell(void)
{
	uint64_t one = 1;

	(void)!write(ring.reply_bell, &one, sizeof(one));
}

static void ring_answer(struct ring_slot *sl, uint64_t id, uint32_t status, uint32_t state)
{
	atomic_store(&sl->reply_id, id);
	atomic_store(&sl->reply, sl->write ? 0 : mask(pattern, sl->size));
	atomic_store(&sl->status, status);
	atomic_store(&sl->state, state);
	ring_bell();
}

/* Lies about request @n (the nth), in slot @sl. */
static void ring_misbehave(struct ring_slot *sl)
{
	uint64_t id = sl->id;

	if (!strcmp(mode, "ring-wrong-id")) {
		ring_answer(sl, id + 16, RING_OK, RING_COMPLETE);
	} else if (!strcmp(mode, "ring-bad-state")) {
		ring_answer(sl, id, RING_OK, 7);
	} else if (!strcmp(mode, "ring-bad-status")) {
		ring_answer(sl, id, 9, RING_COMPLETE);
	} else if (!strcmp(mode, "ring-free")) {
		ring_answer(sl, id, RING_OK, RING_FREE);
	} else if (!strcmp(mode, "ring-scribble")) {
		memset(ring.page, 0xa5, RING_SIZE);
		ring_bell();
	} else if (!strcmp(mode, "ring-bell-flood")) {
		for (int i = 0; i < 200000; i++)
			ring_bell();
		ring_answer(sl, id, RING_OK, RING_COMPLETE);
	} else if (!strcmp(mode, "ring-hang")) {
		atomic_store(&sl->state, RING_PROCESSING);
	} else if (!strcmp(mode, "ring-late")) {
		nanosleep(&(struct timespec){ .tv_sec = (time_t)(delay_ms / 1000), .tv_nsec = (long)(delay_ms % 1000) * 1000000 },
			  NULL);
		ring_answer(sl, id, RING_OK, RING_COMPLETE);
	} else if (!strcmp(mode, "ring-truncate")) {
		if (ftruncate(ring.fd, 0) == 0 || ftruncate(ring.fd, 1 << 20) == 0)
			fprintf(stderr, "misbehave: the ring's memfd changed its size\n");
		ring_answer(sl, id, RING_OK, RING_COMPLETE);
	} else {
		ring_answer(sl, id, RING_OK, RING_COMPLETE);
	}
}

/* Requests from the ring (and over the socket, where the broker sends
 * them while a slot is held), until a Shutdown; then it prints how many
 * came each way ("ring N socket M"). */
static int serve_ring(nng_socket s, struct wire_arena *a)
{
	unsigned long n = 0, on_socket = 0;
	int rx = -1;

	if (nng_socket_get_int(s, NNG_OPT_RECVFD, &rx))
		return 1;
	for (;;) {
		struct pollfd p[2] = { { .fd = ring.bell, .events = POLLIN }, { .fd = rx, .events = POLLIN } };
		Ioreq__Envelope *in;
		uint64_t ticks;

		while (wire_recv(s, NNG_FLAG_NONBLOCK, a, &in) == 0) {
			if (in->msg_case == IOREQ__ENVELOPE__MSG_SHUTDOWN) {
				printf("ring %lu socket %lu\n", n, on_socket);
				return 0;
			}
			if (in->msg_case == IOREQ__ENVELOPE__MSG_REQUEST && ++on_socket)
				reply(s, in->request->id, in->request->dir == IOREQ__DIRECTION__DIR_READ ?
								  mask(pattern, in->request->size) : 0);
		}
		for (unsigned v = 0; v < ring.slots; v++) {
			struct ring_slot *sl = &ring.page->slot[v];

			if (atomic_load(&sl->state) != RING_PENDING)
				continue;
			if (++n == nth)
				ring_misbehave(sl);
			else
				ring_answer(sl, sl->id, RING_OK, RING_COMPLETE);
		}
		atomic_store(&ring.page->h.device_waiting, 1);
		poll(p, 2, 20);
		atomic_store(&ring.page->h.device_waiting, 0);
		(void)!read(ring.bell, &ticks, sizeof(ticks));
	}
}

int main(int argc, char **argv)
{
	static struct wire_arena arena;
	const char *once = NULL;
	bool child = false;
	nng_socket s;

	self = argv[0];
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--socket"))
			url = argv[i + 1];
		else if (!strcmp(argv[i], "--name"))
			name = argv[i + 1];
		else if (!strcmp(argv[i], "--mode"))
			mode = argv[i + 1];
		else if (!strcmp(argv[i], "--nth"))
			nth = strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--pattern"))
			pattern = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--once"))
			once = argv[i + 1];
		else if (!strcmp(argv[i], "--child"))
			child = true;
		else if (!strcmp(argv[i], "--delay-ms"))
			delay_ms = strtoul(argv[i + 1], NULL, 0);
	}
	if (!url || !name)
		return 2;
	if (once) {
		int fd = open(once, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);

		if (fd < 0)
			mode = strncmp(mode, "ring-", 5) ? "serve" : "ring-serve";
		else
			close(fd);
	}
	if (!strcmp(mode, "crash-hello"))
		return 3;
	if (dial(url, &s, child) < 0)
		return 1;
	if (child) {
		/* The broker must refuse this process: it is not the one it started. */
		nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 2000);
		nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 2000);
		if (hello(s, name, &arena) == 0) {
			fprintf(stderr, "misbehave %s: accepted in another process's place\n", name);
			return 4;
		}
		return 0;
	}
	if (hello(s, name, &arena) < 0)
		return 1;
	if (!strcmp(mode, "claim-outside") || !strcmp(mode, "claim-crash"))
		send_claim(s, 0x10000000, false, 7);
	if (ring.page)
		return serve_ring(s, &arena);
	return serve(s, &arena);
}
