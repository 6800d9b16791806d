/* libFuzzer: the broker's reading of a device's request ring
 * (broker/ring.c), the only code in the broker that reads memory a device
 * writes. A hostile device shares the page and, between any two of the
 * broker's steps, writes whatever bytes it likes anywhere in it: random
 * bytes at random offsets, or replies that look right (the posted id, a
 * neighbour's id, a stale one) with any state and status. The broker posts,
 * collects, and waits for replies as the VM thread does, against a model:
 *
 *  - a post succeeds exactly when the broker's own record has the slot free;
 *  - a collected reply answers a request that is in flight in that ring,
 *    and each request is answered at most once;
 *  - -EPROTO (the device is cut off) ends the instance: the next one gets a
 *    fresh page, which the old page can no longer reach.
 *
 * ASan watches every access; nothing of what the device writes may make the
 * broker read outside its record or the page. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clock.h"
#include "input.h"
#include "ring.h"

#define MAX_OPS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct model {
	unsigned slots;
	uint64_t inflight[RING_SLOTS]; /* the id posted in each slot, until answered */
	uint64_t next_id;
	uint32_t gen;
};

static struct ring_page *map_page(struct ring *r)
{
	int m, db, rdb;
	void *p;

	ring_fds(r, &m, &db, &rdb);
	p = mmap(NULL, RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
	if (p == MAP_FAILED)
		abort();
	return p;
}

/* Each reply must answer what is in flight, once. */
static void check_replies(struct model *m, const struct ring_reply *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned slot = (unsigned)(v[i].id & 15);

		if (slot >= m->slots || !m->inflight[slot] || m->inflight[slot] != v[i].id)
			abort();
		m->inflight[slot] = 0;
	}
}

static void new_instance(struct ring *r, struct model *m, struct ring_page **page)
{
	if (*page)
		munmap(*page, RING_SIZE);
	m->gen++;
	memset(m->inflight, 0, sizeof(m->inflight));
	if (ring_open(r, m->gen, m->slots, 0) < 0)
		abort();
	ring_enable(r, m->gen);
	*page = map_page(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct model m = { .slots = 1 + in_u8(&in) % RING_SLOTS, .next_id = 1 };
	struct ring_page *page = NULL;
	struct ring *r;

	if (ring_new(&r) < 0)
		abort();
	new_instance(r, &m, &page);
	for (unsigned op = 0; op < MAX_OPS && in.left; op++) {
		unsigned v = in_u8(&in) % RING_SLOTS;
		struct ring_reply rep[RING_SLOTS];
		const char *why = NULL;
		struct access a = { .type = in_u8(&in) % 3, .write = in_u8(&in) & 1, .size = 4, .addr = 0x1000,
				    .bdf = 8, .value = 0x55 };
		struct ring_slot *s = &page->slot[v];
		size_t n;
		int e;

		switch (in_u8(&in) % 6) {
		case 0: { /* the VM thread posts */
			uint64_t id = m.next_id++ << 4 | v;

			e = ring_post(r, m.gen, v, id, &a, 0, 0);
			if (v >= m.slots ? e != -ENOTCONN : m.inflight[v] ? e != -EBUSY : e != 0)
				abort();
			if (e == 0)
				m.inflight[v] = id;
			break;
		}
		case 1: { /* the device writes bytes anywhere */
			size_t at = in_bytes(&in, 2) % RING_SIZE, len = 1 + in_u8(&in) % 16;

			for (size_t i = 0; i < len && at + i < RING_SIZE; i++)
				((volatile uint8_t *)page)[at + i] = in_u8(&in);
			break;
		}
		case 2: { /* the device answers, or seems to */
			uint64_t ids[] = { m.inflight[v], m.inflight[(v + 1) % RING_SLOTS], in_bytes(&in, 8),
					   m.inflight[v] + 16 };

			atomic_store(&s->reply_id, ids[in_u8(&in) % 4]);
			atomic_store(&s->reply, in_bytes(&in, 8));
			atomic_store(&s->status, in_u8(&in) % 3);
			atomic_store(&s->state, in_u8(&in) % 5 ? RING_COMPLETE : in_u8(&in));
			break;
		}
		case 3: /* the reply doorbell: the event thread collects */
			e = ring_collect(r, rep, &n, &why);
			if (e == -EPROTO) {
				if (!why || n)
					abort();
				new_instance(r, &m, &page);
			} else if (e == 0) {
				check_replies(&m, rep, n);
			} else {
				abort();
			}
			break;
		case 4: /* the VM thread polls, briefly */
			e = ring_wait(r, v, m.inflight[v], clock_now_ns() + (in_u8(&in) & 1) * 1000, rep, &n, &why);
			if (e == 0)
				check_replies(&m, rep, n);
			else if (e == -EPROTO && !n && why)
				new_instance(r, &m, &page);
			else
				abort();
			break;
		default: /* the instance goes (a crash, a restart) */
			new_instance(r, &m, &page);
			break;
		}
	}
	munmap(page, RING_SIZE);
	ring_free(r);
	return 0;
}
