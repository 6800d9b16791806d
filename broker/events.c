#include "events.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static struct event ring[EVENTS_RING];
static uint64_t last; /* the latest event's seq; it sits at ring[last % EVENTS_RING] */

void events_publish(const char *vm, const char *device, const char *from, const char *to, const char *reason,
		    unsigned restarts)
{
	struct event e = { .restarts = restarts };
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	e.time_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	snprintf(e.vm, sizeof(e.vm), "%s", vm);
	snprintf(e.device, sizeof(e.device), "%s", device ? device : "");
	snprintf(e.from, sizeof(e.from), "%s", from);
	snprintf(e.to, sizeof(e.to), "%s", to);
	snprintf(e.reason, sizeof(e.reason), "%s", reason ? reason : "");
	/* Formatted above; under the lock only the copy and the wake-up. */
	pthread_mutex_lock(&lock);
	e.seq = ++last;
	ring[e.seq % EVENTS_RING] = e;
	pthread_cond_broadcast(&more);
	pthread_mutex_unlock(&lock);
}

size_t events_read(uint64_t after, struct event *out, size_t n, uint64_t *ret_lost)
{
	uint64_t oldest;
	size_t k = 0;

	pthread_mutex_lock(&lock);
	oldest = last >= EVENTS_RING ? last - EVENTS_RING + 1 : 1;
	*ret_lost = after + 1 < oldest ? oldest - after - 1 : 0;
	if (after + 1 < oldest)
		after = oldest - 1;
	for (uint64_t s = after + 1; s <= last && k < n; s++)
		out[k++] = ring[s % EVENTS_RING];
	pthread_mutex_unlock(&lock);
	return k;
}

bool events_wait(uint64_t after, int timeout_ms)
{
	struct timespec until;
	bool any;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&lock);
	while (last <= after && pthread_cond_timedwait(&more, &lock, &until) == 0)
		;
	any = last > after;
	pthread_mutex_unlock(&lock);
	return any;
}

uint64_t events_last(void)
{
	uint64_t s;

	pthread_mutex_lock(&lock);
	s = last;
	pthread_mutex_unlock(&lock);
	return s;
}
