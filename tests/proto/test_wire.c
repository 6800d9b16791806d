#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wire.h"

static struct wire_arena arena;

static size_t pack(const Ioreq__Envelope *env, uint8_t *buf)
{
	nng_msg *msg;
	size_t len;

	assert_int_equal(wire_pack(env, &msg), 0);
	len = nng_msg_len(msg);
	memcpy(buf, nng_msg_body(msg), len);
	nng_msg_free(msg);
	return len;
}

static void test_request_round_trip(void **state)
{
	Ioreq__Request q = IOREQ__REQUEST__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT, *out;
	uint8_t buf[WIRE_MAX_MSG];
	size_t len;

	q.id = 0x123456789abcdef0ull;
	q.vcpu = 15;
	q.kind = IOREQ__KIND__KIND_MMIO;
	q.dir = IOREQ__DIRECTION__DIR_WRITE;
	q.addr = 0xfee00000;
	q.size = 8;
	q.value = ~0ull;
	q.range = 3;
	q.offset = 0x40;
	env.msg_case = IOREQ__ENVELOPE__MSG_REQUEST;
	env.request = &q;
	len = pack(&env, buf);

	wire_arena_reset(&arena);
	assert_int_equal(wire_unpack(buf, len, &arena, &out), 0);
	assert_int_equal(out->msg_case, IOREQ__ENVELOPE__MSG_REQUEST);
	assert_int_equal(out->request->id, q.id);
	assert_int_equal(out->request->vcpu, 15);
	assert_int_equal(out->request->kind, IOREQ__KIND__KIND_MMIO);
	assert_int_equal(out->request->dir, IOREQ__DIRECTION__DIR_WRITE);
	assert_int_equal(out->request->addr, 0xfee00000);
	assert_int_equal(out->request->size, 8);
	assert_int_equal(out->request->value, ~0ull);
	assert_int_equal(out->request->range, 3);
	assert_int_equal(out->request->offset, 0x40);
	/* Unpacking used the arena, not malloc. */
	assert_true(arena.used > 0);
}

static void test_welcome_round_trip(void **state)
{
	Ioreq__Range r0 = IOREQ__RANGE__INIT, r1 = IOREQ__RANGE__INIT, *ranges[] = { &r0, &r1 };
	Ioreq__Welcome w = IOREQ__WELCOME__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT, *out;
	uint32_t irqs[] = { 4, 8 };
	uint8_t buf[WIRE_MAX_MSG];
	size_t len;

	r0.kind = IOREQ__KIND__KIND_PIO;
	r0.start = 0x3f8;
	r0.size = 8;
	r1.kind = IOREQ__KIND__KIND_PCICFG;
	r1.start = 0x08;
	r1.size = 1;
	w.version = IOREQ__VERSION__VERSION_CURRENT;
	w.vm = "vm0";
	w.device = "uart0";
	w.n_ranges = 2;
	w.ranges = ranges;
	w.n_irq_lines = 2;
	w.irq_lines = irqs;
	w.msi = 1;
	env.msg_case = IOREQ__ENVELOPE__MSG_WELCOME;
	env.welcome = &w;
	len = pack(&env, buf);

	wire_arena_reset(&arena);
	assert_int_equal(wire_unpack(buf, len, &arena, &out), 0);
	assert_string_equal(out->welcome->vm, "vm0");
	assert_string_equal(out->welcome->device, "uart0");
	assert_int_equal(out->welcome->n_ranges, 2);
	assert_int_equal(out->welcome->ranges[0]->start, 0x3f8);
	assert_int_equal(out->welcome->ranges[1]->kind, IOREQ__KIND__KIND_PCICFG);
	assert_int_equal(out->welcome->n_irq_lines, 2);
	assert_int_equal(out->welcome->irq_lines[1], 8);
	assert_true(out->welcome->msi);
}

/* Unpacks what @env packs into: 0 or wire_unpack's error. */
static int round_trip(const Ioreq__Envelope *env, Ioreq__Envelope **out)
{
	uint8_t buf[WIRE_MAX_MSG];
	size_t len = pack(env, buf);

	wire_arena_reset(&arena);
	return wire_unpack(buf, len, &arena, out);
}

/* A Welcome with the data plane: guest memory, files and eventfds. */
static void test_welcome_data_plane(void **state)
{
	Ioreq__MemRegion lo = IOREQ__MEM_REGION__INIT, hi = IOREQ__MEM_REGION__INIT, *regions[] = { &lo, &hi };
	Ioreq__Memory mem = IOREQ__MEMORY__INIT;
	Ioreq__FileFd f0 = IOREQ__FILE_FD__INIT, *files[] = { &f0 };
	Ioreq__Welcome w = IOREQ__WELCOME__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT, *out;
	int32_t doorbells[] = { 5, 6 }, irqfds[] = { 7 };

	lo.size = 0x80000000;
	hi.gpa = 0x100000000;
	hi.size = 0x40000000;
	hi.offset = 0x80000000;
	hi.read_only = 1;
	mem.fd = 3;
	mem.size = 0xc0000000;
	mem.n_regions = 2;
	mem.regions = regions;
	f0.fd = 4;
	f0.writable = 1;
	w.version = IOREQ__VERSION__VERSION_CURRENT;
	w.vm = "vm0";
	w.device = "blk";
	w.memory = &mem;
	w.n_files = 1;
	w.files = files;
	w.n_doorbells = 2;
	w.doorbells = doorbells;
	w.n_irqfds = 1;
	w.irqfds = irqfds;
	env.msg_case = IOREQ__ENVELOPE__MSG_WELCOME;
	env.welcome = &w;
	assert_int_equal(round_trip(&env, &out), 0);
	assert_non_null(out->welcome->memory);
	assert_int_equal(out->welcome->memory->fd, 3);
	assert_int_equal(out->welcome->memory->n_regions, 2);
	assert_int_equal(out->welcome->memory->regions[1]->gpa, 0x100000000);
	assert_true(out->welcome->memory->regions[1]->read_only);
	assert_int_equal(out->welcome->n_files, 1);
	assert_true(out->welcome->files[0]->writable);
	assert_int_equal(out->welcome->n_doorbells, 2);
	assert_int_equal(out->welcome->doorbells[1], 6);
	assert_int_equal(out->welcome->irqfds[0], 7);

	/* A region that wraps guest-physical space, or lies (partly) past the
	 * end of the memfd, or is empty: the broker never sends one. */
	hi.gpa = UINT64_MAX - 0xfff;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	hi.gpa = 0x100000000;
	hi.offset = 0x80000001;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	hi.offset = UINT64_MAX;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	hi.offset = 0x80000000;
	hi.size = 0;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	hi.size = 0x40000000;
	/* fds 0-2 are stdio, never given as anything else */
	mem.fd = 2;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	mem.fd = 3;
	f0.fd = 0;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	f0.fd = 4;
	doorbells[1] = -1;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	doorbells[1] = 6;
	assert_int_equal(round_trip(&env, &out), 0);

	/* A remote device's: no memfd (fd -1, size 0, offsets 0), eventfds
	 * all -1, never some of each. */
	mem.fd = -1;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	mem.size = 0;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	hi.offset = 0;
	assert_int_equal(round_trip(&env, &out), 0);
	doorbells[0] = doorbells[1] = irqfds[0] = -1;
	assert_int_equal(round_trip(&env, &out), 0);
	assert_int_equal(out->welcome->doorbells[1], -1);
	doorbells[1] = 6;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	doorbells[0] = 5;
	doorbells[1] = -1;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
}

/* DMA for a remote device: at most WIRE_MAX_DMA bytes, never none, never
 * wrapping guest-physical space; a read carries no data. Signals name an
 * eventfd that can exist, and a count. */
static void test_mem_access(void **state)
{
	static uint8_t data[WIRE_MAX_DMA + 1];
	Ioreq__MemAccess a = IOREQ__MEM_ACCESS__INIT;
	Ioreq__MemResult res = IOREQ__MEM_RESULT__INIT;
	Ioreq__Signal sig = IOREQ__SIGNAL__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT, *out;

	env.msg_case = IOREQ__ENVELOPE__MSG_MEM_ACCESS;
	env.mem_access = &a;
	a.tag = 7;
	a.gpa = 0x1000;
	a.len = WIRE_MAX_DMA;
	assert_int_equal(round_trip(&env, &out), 0);
	assert_int_equal(out->mem_access->len, WIRE_MAX_DMA);
	a.len = WIRE_MAX_DMA + 1;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	a.len = 0;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	a.len = 16;
	a.gpa = UINT64_MAX - 7;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	a.gpa = 0x1000;
	a.data = (ProtobufCBinaryData){ 4, data };
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	a.write = true;
	assert_int_equal(round_trip(&env, &out), 0);
	assert_int_equal(out->mem_access->data.len, 4);
	a.data.len = WIRE_MAX_DMA;
	assert_int_equal(round_trip(&env, &out), 0);
	a.data.len = 0;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);

	env.msg_case = IOREQ__ENVELOPE__MSG_MEM_RESULT;
	env.mem_result = &res;
	res.data = (ProtobufCBinaryData){ WIRE_MAX_DMA, data };
	assert_int_equal(round_trip(&env, &out), 0);
	res.data.len = WIRE_MAX_DMA + 1;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);

	env.msg_case = IOREQ__ENVELOPE__MSG_SIGNAL;
	env.signal = &sig;
	sig.index = WIRE_MAX_EVENTFDS - 1;
	sig.count = 1;
	assert_int_equal(round_trip(&env, &out), 0);
	sig.index = WIRE_MAX_EVENTFDS;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	sig.index = 0;
	sig.count = 0;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
}

static void test_register(void **state)
{
	Ioreq__Ioeventfd io = IOREQ__IOEVENTFD__INIT;
	Ioreq__Irqfd irq = IOREQ__IRQFD__INIT;
	Ioreq__Register reg = IOREQ__REGISTER__INIT;
	Ioreq__RegisterResult res = IOREQ__REGISTER_RESULT__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT, *out;

	env.msg_case = IOREQ__ENVELOPE__MSG_REGISTRATION;
	env.registration = &reg;
	/* It must say what it registers. */
	assert_int_equal(round_trip(&env, &out), -EBADMSG);

	io.index = 1;
	io.kind = IOREQ__KIND__KIND_MMIO;
	io.addr = 0xfe001000;
	io.size = 4;
	io.datamatch = 1;
	io.value = 7;
	reg.tag = 42;
	reg.what_case = IOREQ__REGISTER__WHAT_IOEVENTFD;
	reg.ioeventfd = &io;
	assert_int_equal(round_trip(&env, &out), 0);
	assert_int_equal(out->registration->tag, 42);
	assert_int_equal(out->registration->what_case, IOREQ__REGISTER__WHAT_IOEVENTFD);
	assert_int_equal(out->registration->ioeventfd->addr, 0xfe001000);
	assert_int_equal(out->registration->ioeventfd->value, 7);

	/* Widths the protocol does not know, kinds that do not exist, and
	 * ranges that wrap are malformed (what lies outside the device's
	 * ranges is the broker's to refuse). */
	io.size = 3;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	io.size = 0;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	io.size = 8;
	io.kind = 9;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	io.kind = IOREQ__KIND__KIND_MMIO;
	io.addr = UINT64_MAX - 3;
	assert_int_equal(round_trip(&env, &out), -EBADMSG);
	io.addr = UINT64_MAX - 7;
	assert_int_equal(round_trip(&env, &out), 0);

	irq.index = 2;
	irq.msi = 1;
	irq.msi_addr = 0xfee00000;
	irq.msi_data = 0x4021;
	reg.what_case = IOREQ__REGISTER__WHAT_IRQFD;
	reg.irqfd = &irq;
	reg.release = 1;
	assert_int_equal(round_trip(&env, &out), 0);
	assert_true(out->registration->release);
	assert_int_equal(out->registration->irqfd->msi_data, 0x4021);

	res.tag = 42;
	res.error = -EPERM;
	env.msg_case = IOREQ__ENVELOPE__MSG_REGISTRATION_RESULT;
	env.registration_result = &res;
	assert_int_equal(round_trip(&env, &out), 0);
	assert_int_equal(out->registration_result->error, -EPERM);
}

static void test_truncated_rejected(void **state)
{
	Ioreq__Reply rep = IOREQ__REPLY__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT, *out;
	uint8_t buf[WIRE_MAX_MSG];
	size_t len;

	rep.id = 0xffffffffffffull;
	rep.value = 0x1122334455667788ull;
	env.msg_case = IOREQ__ENVELOPE__MSG_REPLY;
	env.reply = &rep;
	len = pack(&env, buf);
	/* Every proper prefix cuts a field or the envelope short. */
	for (size_t n = 1; n < len; n++) {
		wire_arena_reset(&arena);
		assert_int_equal(wire_unpack(buf, n, &arena, &out), -EBADMSG);
	}
}

static void test_oversized_rejected(void **state)
{
	static uint8_t big[WIRE_MAX_MSG + 1];
	Ioreq__Envelope *out;

	wire_arena_reset(&arena);
	assert_int_equal(wire_unpack(big, sizeof(big), &arena, &out), -EMSGSIZE);
}

static void test_oversized_not_packed(void **state)
{
	static char name[WIRE_MAX_MSG + 10];
	Ioreq__Hello h = IOREQ__HELLO__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	nng_msg *msg;

	memset(name, 'a', sizeof(name) - 1);
	h.version = 1;
	h.device = name;
	env.msg_case = IOREQ__ENVELOPE__MSG_HELLO;
	env.hello = &h;
	assert_int_equal(wire_pack(&env, &msg), -EMSGSIZE);
}

static void test_invalid_fields_rejected(void **state)
{
	Ioreq__Request q = IOREQ__REQUEST__INIT;
	Ioreq__Hello h = IOREQ__HELLO__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT, *out;
	uint8_t buf[WIRE_MAX_MSG];
	size_t len;

	/* An empty envelope carries nothing. */
	len = pack(&env, buf);
	wire_arena_reset(&arena);
	assert_int_equal(wire_unpack(buf, len, &arena, &out), -EBADMSG);

	/* Access width 3 does not exist. */
	q.size = 3;
	env.msg_case = IOREQ__ENVELOPE__MSG_REQUEST;
	env.request = &q;
	len = pack(&env, buf);
	wire_arena_reset(&arena);
	assert_int_equal(wire_unpack(buf, len, &arena, &out), -EBADMSG);

	/* Neither does kind 7. */
	q.size = 4;
	q.kind = 7;
	len = pack(&env, buf);
	wire_arena_reset(&arena);
	assert_int_equal(wire_unpack(buf, len, &arena, &out), -EBADMSG);

	/* A hello needs a name of sane length. */
	h.device = "";
	env.msg_case = IOREQ__ENVELOPE__MSG_HELLO;
	env.hello = &h;
	len = pack(&env, buf);
	wire_arena_reset(&arena);
	assert_int_equal(wire_unpack(buf, len, &arena, &out), -EBADMSG);
}

static void test_garbage_rejected(void **state)
{
	uint8_t buf[256];
	Ioreq__Envelope *out;
	uint32_t x = 12345;
	int accepted = 0;

	/* Random bytes almost never form a valid envelope, and never crash. */
	for (int round = 0; round < 2000; round++) {
		size_t len = 1 + round % sizeof(buf);

		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245 + 12345;
			buf[i] = x >> 16;
		}
		wire_arena_reset(&arena);
		accepted += wire_unpack(buf, len, &arena, &out) == 0;
	}
	assert_true(accepted < 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_round_trip),
		cmocka_unit_test(test_welcome_round_trip),
		cmocka_unit_test(test_welcome_data_plane),
		cmocka_unit_test(test_register),
		cmocka_unit_test(test_mem_access),
		cmocka_unit_test(test_truncated_rejected),
		cmocka_unit_test(test_oversized_rejected),
		cmocka_unit_test(test_oversized_not_packed),
		cmocka_unit_test(test_invalid_fields_rejected),
		cmocka_unit_test(test_garbage_rejected),
	};

	return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
