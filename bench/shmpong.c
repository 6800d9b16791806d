/* The reference points of the request ring (proto/ioreq_ring.h), between
 * two processes sharing one page, each a single thread:
 *
 *  - shm-spin: both sides spin on the page, nobody sleeps (the limit of
 *    the ring when the device and the broker poll; needs two CPUs);
 *  - shm-eventfd: the ring's own protocol with both sides always asleep
 *    between messages: a flag says "I sleep", the other side rings that
 *    side's eventfd (two wake-ups per round trip, like raw AF_UNIX, with
 *    no socket buffer behind them).
 *
 * Each sample is one round trip as the pinging side sees it. */
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ioreq_ring.h"

struct side {
	_Alignas(64) _Atomic uint64_t seq; /* what this side wrote last */
	_Atomic uint32_t waiting;          /* this side sleeps on its eventfd */
};

struct shm_page {
	struct side ping, pong;
	_Atomic bool quit;
};

/* Waits until @peer's seq is @want: spinning, or sleeping on @fd with
 * @self's waiting flag up (the ring's order: flag, look, sleep). */
static bool wait_for(struct side *self, const struct side *peer, uint64_t want, int fd, const _Atomic bool *quit)
{
	uint64_t ticks;

	while (atomic_load(&peer->seq) != want) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (atomic_load_explicit(quit, memory_order_relaxed))
			return false;
		if (fd < 0) {
			ring_cpu_relax();
			continue;
		}
		atomic_store(&self->waiting, 1);
		if (atomic_load(&peer->seq) != want)
			poll(&p, 1, 100);
		atomic_store(&self->waiting, 0);
		(void)!read(fd, &ticks, sizeof(ticks));
	}
	return true;
}

static void post(struct side *self, const struct side *peer, uint64_t seq, int peer_fd)
{
	static const uint64_t one = 1;

	atomic_store(&self->seq, seq);
	if (peer_fd >= 0 && atomic_load(&peer->waiting))
		(void)!write(peer_fd, &one, sizeof(one));
}

static void pong(struct shm_page *p, int my_fd, int ping_fd)
{
	for (uint64_t seq = 1;; seq++) {
		if (!wait_for(&p->pong, &p->ping, seq, my_fd, &p->quit))
			_exit(0);
		post(&p->pong, &p->ping, seq, ping_fd);
	}
}

int pp_shm_worker(const struct worker_args *a, bool spin)
{
	struct shm_page *p;
	int to_ping = -1, to_pong = -1, r = 0;
	uint64_t *ns, seq = 0;
	struct meter m;
	cpu_set_t cpus;
	pid_t pid;

	if (spin && (sched_getaffinity(0, sizeof(cpus), &cpus) < 0 || CPU_COUNT(&cpus) < 2)) {
		fprintf(stderr, "ioreq-bench: spinning on both sides needs two CPUs\n");
		return -EXDEV;
	}
	p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ns = calloc(a->iters ? a->iters : 1, sizeof(*ns));
	if (p == MAP_FAILED || !ns) {
		free(ns);
		return -ENOMEM;
	}
	if (!spin) {
		to_ping = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		to_pong = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}
	/* This worker has no thread but this one yet: a plain fork is safe. */
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pong(p, to_pong, to_ping);
	}
	if (pid < 0) {
		r = -errno;
		goto out;
	}
	for (unsigned i = 0; i < a->warmup && !r; i++) {
		post(&p->ping, &p->pong, ++seq, to_pong);
		r = wait_for(&p->ping, &p->pong, seq, to_ping, &p->quit) ? 0 : -EIO;
	}
	meter_start(&m, pid);
	for (unsigned i = 0; i < a->iters && !r; i++) {
		int64_t t0 = bench_now_ns();

		post(&p->ping, &p->pong, ++seq, to_pong);
		r = wait_for(&p->ping, &p->pong, seq, to_ping, &p->quit) ? 0 : -EIO;
		ns[i] = (uint64_t)(bench_now_ns() - t0);
	}
	if (!r) {
		meter_print(&m, a->iters);
		latency_print(ns, a->iters);
	}
	atomic_store(&p->quit, true);
	post(&p->ping, &p->pong, ++seq, to_pong);
	bench_wait(pid, 5000);
out:
	if (to_ping >= 0)
		close(to_ping);
	if (to_pong >= 0)
		close(to_pong);
	munmap(p, sizeof(*p));
	free(ns);
	return r;
}
