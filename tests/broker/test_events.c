/* The event bus: order, the bounded ring and what a late reader is told,
 * waiting, and publishers that never wait for readers. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "events.h"

static void test_ring(void **state)
{
	static struct event e[EVENTS_RING];
	uint64_t first = events_last(), lost;
	size_t n;
	char name[16];

	assert_int_equal(events_read(first, e, EVENTS_RING, &lost), 0);
	assert_int_equal(lost, 0);
	events_publish("vm0", "dev", "ready", "down", "pid 1 killed by signal 9", 2);
	events_publish("vm0", NULL, "running", "exited", "status 0", 0);
	n = events_read(first, e, EVENTS_RING, &lost);
	assert_int_equal(n, 2);
	assert_int_equal(lost, 0);
	assert_int_equal(e[0].seq, first + 1);
	assert_string_equal(e[0].vm, "vm0");
	assert_string_equal(e[0].device, "dev");
	assert_string_equal(e[0].from, "ready");
	assert_string_equal(e[0].to, "down");
	assert_string_equal(e[0].reason, "pid 1 killed by signal 9");
	assert_int_equal(e[0].restarts, 2);
	assert_true(e[0].time_ns > 0);
	assert_string_equal(e[1].device, "");
	/* a reader more than the ring behind loses the oldest, and knows it */
	for (int i = 0; i < EVENTS_RING + 10; i++) {
		snprintf(name, sizeof(name), "d%d", i);
		events_publish("vm0", name, "starting", "ready", "", 0);
	}
	n = events_read(first, e, EVENTS_RING, &lost);
	assert_int_equal(n, EVENTS_RING);
	assert_int_equal(lost, 12);
	assert_string_equal(e[0].device, "d10");
	assert_int_equal(e[EVENTS_RING - 1].seq, events_last());
	/* one at a time, from where it left */
	n = events_read(events_last() - 1, e, 1, &lost);
	assert_int_equal(n, 1);
	assert_int_equal(lost, 0);
	assert_int_equal(e[0].seq, events_last());
}

static void *publisher(void *arg)
{
	for (int i = 0; i < 2000; i++)
		events_publish("vm1", "dev", "down", "starting", "restarting", (unsigned)i);
	return NULL;
}

/* Readers and publishers at once (ThreadSanitizer watches); a waiting
 * reader wakes for the next event, and times out without one. */
static void test_concurrent(void **state)
{
	static struct event e[EVENTS_RING];
	uint64_t after = events_last(), lost, seen = 0, total_lost = 0;
	pthread_t t[2];

	assert_false(events_wait(after, 10));
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, publisher, NULL), 0);
	while (seen + total_lost < 4000) {
		size_t n;

		events_wait(after, 100);
		n = events_read(after, e, EVENTS_RING, &lost);
		total_lost += lost;
		/* in order, none twice, the lost ones skipped */
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(e[i].seq, after + lost + 1 + i);
			assert_string_equal(e[i].vm, "vm1");
		}
		if (n)
			after = e[n - 1].seq;
		seen += n;
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(seen + total_lost, 4000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring),
		cmocka_unit_test(test_concurrent),
	};

	return cmocka_run_group_tests_name("events", tests, NULL, NULL);
}
