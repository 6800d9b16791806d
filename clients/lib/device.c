/* libioreq-device: the device side of the broker's wire protocol.
 *
 * One nng pair1 socket dialled to the broker. The thread in ioreq_dev_serve
 * receives one Envelope at a time into a per-device arena, runs the handler
 * and sends the Reply; interrupts and claims may be sent from any thread,
 * since nng_sendmsg is thread-safe.
 *
 * A device serves exactly one broker connection, the one its Welcome came
 * on: once that pipe is gone the broker (or its view of this device) is gone
 * with it. The device then sends nothing more and serves nothing more:
 * ioreq_dev_serve returns -ECONNRESET. A broker back at the same path did
 * not welcome this device.
 *
 * Before the Welcome, a lost connection is not the end: the broker may drop
 * a connection it cannot take yet (its pair1 socket still busy with a peer
 * it is refusing). The dialer dials again, and the Hello goes again on the
 * new pipe, once per pipe (a broker cuts off a device that says Hello
 * twice).
 *
 * One thread at a time receives (the one that holds dev->receiving): the
 * serving thread, or one waiting for the answer to its registration. Each
 * hands over what is not its own: a serving thread the RegisterResults to
 * their waiters, a waiter the rest (requests...) to the serving thread,
 * still packed, in dev->deferred. A registration made from a handler thus
 * receives for itself while its handler runs, and the requests it takes
 * meanwhile are served when the handler returns. A remote device's memory
 * accesses (memory.h) wait for their MemResults the same way.
 *
 * A remote device gets no fds from the broker (Welcome: -1): it reads and
 * writes guest memory through MemAccess messages, and its doorbells and
 * irqfds are eventfds of its own that the library joins to the broker's by
 * Signal messages: a doorbell's as it arrives (by whichever thread
 * receives), an irqfd's from a thread that watches them (relay_irqfds). The
 * device sees the same API either way. */
#include "ioreq/device.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>

#include "devring.h"
#include "memory.h"
#include "sandbox.h"
#include "wire.h"

/* How long to wait for the broker's Welcome: it answers at once unless it is wedged. */
#define DEV_WELCOME_MS 10000
/* A broker that dropped our connection during the handshake takes the next
 * one at once; one that is gone never does. The dialer tries at 100, 300
 * and 700 ms (DEV_RECONN_*) within this. */
#define DEV_REJOIN_MS 1000
/* A send only blocks while the previous message is still being written to
 * the pipe; this long means the broker stopped reading. */
#define DEV_SEND_MS 1000
/* The dialer redials after a disconnect; those pipes carry nothing (see pipe_added). */
#define DEV_RECONN_MIN_MS 100
#define DEV_RECONN_MAX_MS 1000
/* The broker answers a registration or a memory access at once: this long
 * means it will not. */
#define DEV_ANSWER_MS 10000
/* A remote device's memory accesses on the way at once (pieces of one
 * ioreq_mem_read or ioreq_mem_write): a network round trip for each
 * WIRE_MAX_DMA bytes would bound it to 16 KiB per round trip. Well within
 * the broker's send queue. */
#define DEV_DMA_WINDOW 8
/* Messages a registration's waiter may hold for the serving thread: more
 * than the broker has reason to send meanwhile (a request per vCPU, a
 * reset, claim results, a shutdown). */
#define DEV_DEFER_MAX 64

/* A thread waiting for the answer to its Register or MemAccess (on its
 * stack). */
struct reg_wait {
	uint32_t tag;
	int error;
	bool done;
	void *buf;              /* a read's: where its bytes go, len of them */
	size_t len;
	struct reg_wait *next;
};

/* One of the device's eventfds of a kind, as the Welcome gave them. */
struct eventfds {
	size_t n;
	bool own;               /* ours, not the broker's (a remote device's): closed with it */
	int fd[WIRE_MAX_EVENTFDS];
	bool bound[WIRE_MAX_EVENTFDS]; /* under dev->lock */
};

struct ioreq_dev {
	nng_socket sock;
	bool sock_open;
	/* The one receive operation, reused: abortable from the pipe callback,
	 * unlike nng_recvmsg, and no allocation per message. */
	nng_aio *rx;
	atomic_bool gone;      /* the broker's pipe went: stays set */

	/* The pipes, as nng's pipe callbacks report them. */
	pthread_mutex_t lock;
	pthread_cond_t changed; /* live or the counts moved (CLOCK_MONOTONIC) */
	bool lock_init;
	uint32_t live;          /* the pipe between its ADD_POST and REM_POST, or 0 */
	unsigned events;        /* ADD_POST and REM_POST events */
	uint32_t pipe_id;       /* the pipe the Welcome came on; 0 until then */
	/* Receiving and handing over (under lock, see above). */
	bool receiving;
	struct reg_wait *waits;
	nng_msg *deferred[DEV_DEFER_MAX];
	size_t defer_first, defer_n;
	uint32_t next_tag;

	const struct ioreq_dev_ops *ops;
	void *opaque;

	struct ioreq_dev_info info;
	char name[WIRE_MAX_NAME + 1];
	char vm[WIRE_MAX_NAME + 1];
	struct ioreq_range ranges[WIRE_MAX_LIST];
	struct ioreq_range windows[WIRE_MAX_LIST];
	uint32_t irq_lines[WIRE_MAX_LIST];

	/* The data plane, from the Welcome. */
	struct ioreq_mem mem;
	uint8_t *mem_base;          /* the memfd's mapping; NULL: no guest memory */
	uint64_t mem_size;
	struct ioreq_mem_region mem_regions[WIRE_MAX_REGIONS];
	size_t n_files;
	int file_fd[WIRE_MAX_FILES];
	bool file_writable[WIRE_MAX_FILES];
	struct eventfds doorbells, irqfds;
	/* A remote device's irqfds, relayed by a thread that relay_stop wakes. */
	pthread_t relay;
	int relay_stop;         /* eventfd; -1: no relay thread */
	/* The request ring (Welcome.ring), served by a thread of its own
	 * while ioreq_dev_serve runs; NULL: requests come as messages only. */
	struct devring *ring;
	/* Handlers run one at a time: the serving thread's or the ring's. */
	pthread_mutex_t serve_lock;

	/* The serving thread's (and the handshake's). */
	struct wire_arena arena;
};

/* The public enums are the wire's values, so they convert by a cast. */
_Static_assert(IOREQ_PIO == (int)IOREQ__KIND__KIND_PIO && IOREQ_MMIO == (int)IOREQ__KIND__KIND_MMIO &&
		       IOREQ_PCICFG == (int)IOREQ__KIND__KIND_PCICFG,
	       "enum ioreq_kind differs from the wire");
_Static_assert(IOREQ_IRQ_ASSERT == (int)IOREQ__IRQ_OP__IRQ_ASSERT &&
		       IOREQ_IRQ_DEASSERT == (int)IOREQ__IRQ_OP__IRQ_DEASSERT &&
		       IOREQ_IRQ_PULSE == (int)IOREQ__IRQ_OP__IRQ_PULSE,
	       "enum ioreq_irq_op differs from the wire");

/* ---- command line ---- */

/* Matches argv[i] against "--opt VALUE" or "--opt=VALUE". Returns how many
 * entries it spans (0: not this option), or -EINVAL without a value. */
static int match_opt(int argc, char **argv, int i, const char *opt, const char **val)
{
	size_t n = strlen(opt);

	if (strncmp(argv[i], opt, n))
		return 0;
	if (argv[i][n] == '=') {
		*val = argv[i] + n + 1;
		return **val ? 1 : -EINVAL;
	}
	if (argv[i][n])
		return 0;
	if (i + 1 >= argc || !argv[i + 1][0])
		return -EINVAL;
	*val = argv[i + 1];
	return 2;
}

/* Every device program answers --version (before any "--") the same way. */
static void print_version(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--version")) {
			const char *slash = strrchr(argv[0], '/');

			printf("%s %s\n", slash ? slash + 1 : argv[0], IOREQ_VERSION);
			exit(0);
		}
	}
}

/* One pass over argv; with @compact, also drops what it took. Two passes keep
 * argv untouched when the options are wrong. */
static int scan_args(int *argc, char **argv, bool compact, const char **url, const char **name)
{
	int i = 1, j = 1;

	*url = *name = NULL;
	while (i < *argc) {
		const char *val = NULL;
		const char **slot = url;
		int n;

		if (!strcmp(argv[i], "--"))
			break;
		n = match_opt(*argc, argv, i, "--socket", &val);
		if (!n) {
			slot = name;
			n = match_opt(*argc, argv, i, "--name", &val);
		}
		if (n < 0)
			return n;
		if (n) {
			if (*slot) /* given twice: which one did the caller mean? */
				return -EINVAL;
			*slot = val;
			i += n;
			continue;
		}
		if (compact)
			argv[j] = argv[i];
		i++;
		j++;
	}
	if (!*url || !*name)
		return -EINVAL;
	if (compact) {
		while (i < *argc)
			argv[j++] = argv[i++];
		argv[j] = NULL;
		*argc = j;
	}
	return 0;
}

int ioreq_dev_take_args(int *argc, char **argv, const char **ret_url, const char **ret_name)
{
	const char *url, *name;
	int r;

	if (!argc || !argv || *argc < 1)
		return -EINVAL;
	print_version(*argc, argv);
	r = scan_args(argc, argv, false, &url, &name);
	if (r < 0)
		return r;
	scan_args(argc, argv, true, &url, &name);
	*ret_url = url;
	*ret_name = name;
	return 0;
}

/* ---- transport ---- */

/* From a pipe callback, where nng_close is forbidden: wake the receiver
 * instead. The flag is set first: dev_recv checks it after starting its
 * receive, so an abort that finds nothing to abort is never lost. */
static void mark_gone(struct ioreq_dev *dev)
{
	atomic_store(&dev->gone, true);
	nng_aio_abort(dev->rx, NNG_ECONNSHUT);
}

/* Pipe events run in nng's threads. Before the Welcome each one wakes the
 * handshake (the condition variable, and an abort of its receive: nng's
 * cancel path takes only the socket's own locks, never dev->lock); after
 * it, only the Welcome's pipe matters. */
static void pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct ioreq_dev *dev = arg;
	uint32_t id = nng_pipe_id(p);
	bool handshaking, lost = false;

	pthread_mutex_lock(&dev->lock);
	handshaking = !dev->pipe_id;
	switch (ev) {
	case NNG_PIPE_EV_ADD_PRE:
		/* After the Welcome the dialer dials again only once the
		 * broker's pipe is gone, so another pipe means the broker
		 * left. This runs before nng can send on the new pipe.
		 * (Refusing it with nng_pipe_close would be neater, but nng
		 * 1.5.2 leaks pipes refused here.) */
		lost = !handshaking && id != dev->pipe_id;
		break;
	case NNG_PIPE_EV_ADD_POST:
		dev->live = id;
		dev->events++;
		break;
	case NNG_PIPE_EV_REM_POST:
		if (dev->live == id)
			dev->live = 0;
		dev->events++;
		lost = !handshaking && id == dev->pipe_id;
		break;
	default:
		break;
	}
	/* Under the lock, so that the wake-up cannot land after the
	 * handshake took its Welcome, on the first receive of serving. */
	if (handshaking && ev != NNG_PIPE_EV_ADD_PRE)
		nng_aio_abort(dev->rx, NNG_ECONNSHUT);
	pthread_cond_broadcast(&dev->changed);
	pthread_mutex_unlock(&dev->lock);
	if (lost)
		mark_gone(dev);
}

/* Starts the one receive, with @timeout; a receive that must not start
 * (gone, or the pipes moved past @events during the handshake) is aborted
 * with NNG_ECONNSHUT, after it started: so that an abort from a pipe
 * callback is never lost between the check and the start. Returns nng's
 * result; the message is left in dev->rx. */
static int dev_recv_aio(struct ioreq_dev *dev, nng_duration timeout, const unsigned *events)
{
	bool moved = false;

	nng_aio_set_timeout(dev->rx, timeout);
	nng_recv_aio(dev->sock, dev->rx);
	if (events) {
		pthread_mutex_lock(&dev->lock);
		moved = dev->events != *events;
		pthread_mutex_unlock(&dev->lock);
	}
	if (moved || atomic_load(&dev->gone))
		nng_aio_abort(dev->rx, NNG_ECONNSHUT);
	nng_aio_wait(dev->rx);
	return nng_aio_result(dev->rx);
}

static nng_msg *dev_take_msg(struct ioreq_dev *dev, uint32_t *ret_pipe)
{
	nng_msg *msg = nng_aio_get_msg(dev->rx);

	nng_aio_set_msg(dev->rx, NULL);
	*ret_pipe = nng_pipe_id(nng_msg_get_pipe(msg));
	return msg;
}

/* Unpacks @msg (freed) into dev->arena (valid until the next). */
static int dev_unpack(struct ioreq_dev *dev, nng_msg *msg, Ioreq__Envelope **ret)
{
	int r;

	wire_arena_reset(&dev->arena);
	r = wire_unpack(nng_msg_body(msg), nng_msg_len(msg), &dev->arena, ret);
	nng_msg_free(msg);
	/* The broker is trusted to speak the protocol: anything else is a bug there. */
	return r < 0 ? -EPROTO : 0;
}

/* Receives one message from the broker that welcomed us, still packed.
 * Only the thread that holds dev->receiving. */
static int dev_recv_msg(struct ioreq_dev *dev, nng_duration timeout, nng_msg **ret)
{
	uint32_t pipe;
	nng_msg *msg;
	int r;

	r = dev_recv_aio(dev, timeout, NULL);
	if (r) {
		if (atomic_load(&dev->gone))
			return -ECONNRESET;
		r = wire_errno(r);
		return r < 0 ? r : -EIO;
	}
	msg = dev_take_msg(dev, &pipe);
	/* A message sent before the loss is still the broker's; one from a
	 * pipe the dialer made since is not, whatever it says. */
	if (pipe != dev->pipe_id) {
		nng_msg_free(msg);
		return -ECONNRESET;
	}
	*ret = msg;
	return 0;
}

/* Messages other than replies this thread sent: a request from the ring
 * whose handler sent one is answered on the socket too, after it. */
static _Thread_local unsigned sent_by_thread;

static int dev_send(struct ioreq_dev *dev, const Ioreq__Envelope *env)
{
	int r;

	if (env->msg_case != IOREQ__ENVELOPE__MSG_REPLY)
		sent_by_thread++;
	/* pair1 sends on whatever pipe is up: the flag is what keeps anything
	 * from reaching a broker that did not welcome us (a redial takes a
	 * connect and a handshake, far longer than this check-then-send). */
	if (atomic_load(&dev->gone))
		return -ECONNRESET;
	r = wire_send(dev->sock, env, 0);
	if (r < 0 && atomic_load(&dev->gone))
		return -ECONNRESET;
	return r;
}

/* ---- handshake ---- */

static size_t copy_ranges(struct ioreq_range *dst, size_t n, Ioreq__Range *const *src)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (struct ioreq_range){
			.kind = (enum ioreq_kind)src[i]->kind,
			.start = src[i]->start,
			.size = src[i]->size,
		};
	return n;
}

/* Maps the guest's memory: all of the memfd, shared, writable only if a
 * region is. The memfd must be sealed against shrinking, or the mapping
 * could fault one day. */
static int map_memory(struct ioreq_dev *dev, const Ioreq__Memory *m)
{
	uint64_t offsets[WIRE_MAX_REGIONS];
	bool writable = false;
	struct stat st;
	void *base;
	int seals, r;

	for (size_t i = 0; i < m->n_regions; i++) {
		dev->mem_regions[i] = (struct ioreq_mem_region){
			.gpa = m->regions[i]->gpa,
			.size = m->regions[i]->size,
			.read_only = m->regions[i]->read_only,
		};
		offsets[i] = m->regions[i]->offset;
		writable |= !m->regions[i]->read_only;
	}
	seals = fcntl(m->fd, F_GET_SEALS);
	if (fstat(m->fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != m->size || seals < 0 ||
	    !(seals & F_SEAL_SHRINK) || m->size > SIZE_MAX)
		return -EPROTO;
	base = mmap(NULL, m->size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, m->fd, 0);
	if (base == MAP_FAILED)
		return -errno;
	r = mem_view_init(&dev->mem, base, m->size, dev->mem_regions, offsets, m->n_regions);
	if (r < 0) {
		munmap(base, m->size);
		return -EPROTO;
	}
	dev->mem_base = base;
	dev->mem_size = m->size;
	dev->info.n_mem_regions = m->n_regions;
	dev->info.mem_regions = dev->mem_regions;
	return 0;
}

/* Whether @fd is open, for writing if @write (else for reading only). */
static bool fd_mode_ok(int fd, bool write)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_ACCMODE) == (write ? O_RDWR : O_RDONLY);
}

static int dev_mem_access(struct ioreq_dev *dev, uint64_t gpa, void *buf, size_t len, bool write);

/* The Welcome's eventfds of a kind: the ones given (checked), or -1 (all
 * of them, wire.c: a remote device's) for ones of our own. */
static int take_eventfds(struct eventfds *e, size_t n, const int32_t *fds)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i] == -1) {
			e->fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (e->fd[i] < 0)
				return -errno;
			e->n = i + 1;
			e->own = true;
			continue;
		}
		if (!fd_mode_ok(fds[i], true) || !(fcntl(fds[i], F_GETFL) & O_NONBLOCK))
			return -EPROTO;
		e->fd[i] = fds[i];
	}
	e->n = n;
	return 0;
}

static int send_signal(struct ioreq_dev *dev, uint32_t index, uint64_t count)
{
	Ioreq__Signal sig = IOREQ__SIGNAL__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	sig.irqfd = true;
	sig.index = index;
	sig.count = count;
	env.msg_case = IOREQ__ENVELOPE__MSG_SIGNAL;
	env.signal = &sig;
	return dev_send(dev, &env);
}

/* A remote device's irqfds: what the device writes to them goes to the
 * broker, which writes its own (bound) copy. Until ioreq_dev_close. */
static void *relay_irqfds(void *arg)
{
	struct ioreq_dev *dev = arg;
	struct pollfd p[WIRE_MAX_EVENTFDS + 1];
	size_t n = dev->irqfds.n;

	for (size_t i = 0; i < n; i++)
		p[i] = (struct pollfd){ .fd = dev->irqfds.fd[i], .events = POLLIN };
	p[n] = (struct pollfd){ .fd = dev->relay_stop, .events = POLLIN };
	while (poll(p, n + 1, -1) >= 0 || errno == EINTR) {
		if (p[n].revents)
			break;
		for (size_t i = 0; i < n; i++) {
			uint64_t count;

			if (p[i].revents && read(p[i].fd, &count, sizeof(count)) == sizeof(count) &&
			    send_signal(dev, (uint32_t)i, count) == -ECONNRESET)
				return NULL;
		}
	}
	return NULL;
}

static int start_relay(struct ioreq_dev *dev)
{
	int r;

	dev->relay_stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (dev->relay_stop < 0)
		return -errno;
	r = -pthread_create(&dev->relay, NULL, relay_irqfds, dev);
	if (r < 0) {
		close(dev->relay_stop);
		dev->relay_stop = -1;
	}
	return r;
}

static void stop_relay(struct ioreq_dev *dev)
{
	uint64_t one = 1;

	if (dev->relay_stop < 0)
		return;
	if (write(dev->relay_stop, &one, sizeof(one)) == sizeof(one))
		pthread_join(dev->relay, NULL);
	close(dev->relay_stop);
	dev->relay_stop = -1;
}

/* The broker says a remote device's doorbell @index was signalled. Under lock. */
static int signal_doorbell(struct ioreq_dev *dev, const Ioreq__Signal *sig)
{
	if (sig->irqfd || sig->index >= dev->doorbells.n || !dev->doorbells.own)
		return -EPROTO;
	/* Non-blocking: a count that would overflow is one the device has
	 * not read yet anyway. */
	if (write(dev->doorbells.fd[sig->index], &sig->count, sizeof(sig->count)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

/* The fds the Welcome names must be the ones this process was given, as
 * it says they are: a broker that gets this wrong is a bug to catch here,
 * before the device uses them. */
static int take_data_plane(struct ioreq_dev *dev, const Ioreq__Welcome *w)
{
	int r;

	if (w->memory && w->memory->fd == -1) {
		/* No memfd: a remote device's memory, reached by messages. */
		for (size_t i = 0; i < w->memory->n_regions; i++)
			dev->mem_regions[i] = (struct ioreq_mem_region){
				.gpa = w->memory->regions[i]->gpa,
				.size = w->memory->regions[i]->size,
				.read_only = w->memory->regions[i]->read_only,
			};
		if (mem_view_init_remote(&dev->mem, dev->mem_regions, w->memory->n_regions, dev, dev_mem_access) < 0)
			return -EPROTO;
		dev->info.n_mem_regions = w->memory->n_regions;
		dev->info.mem_regions = dev->mem_regions;
	} else if (w->memory) {
		r = map_memory(dev, w->memory);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < w->n_files; i++) {
		if (!fd_mode_ok(w->files[i]->fd, w->files[i]->writable))
			return -EPROTO;
		dev->file_fd[i] = w->files[i]->fd;
		dev->file_writable[i] = w->files[i]->writable;
	}
	dev->n_files = w->n_files;
	r = take_eventfds(&dev->doorbells, w->n_doorbells, w->doorbells);
	if (r == 0)
		r = take_eventfds(&dev->irqfds, w->n_irqfds, w->irqfds);
	if (r == 0 && dev->irqfds.own)
		r = start_relay(dev);
	if (r == 0 && w->ring) {
		const Ioreq__Ring *g = w->ring;

		if (!fd_mode_ok(g->fd, true) || !fd_mode_ok(g->doorbell, true) || !fd_mode_ok(g->reply_doorbell, true))
			return -EPROTO;
		r = devring_open(g, &dev->ring);
	}
	dev->info.n_files = dev->n_files;
	dev->info.n_doorbells = dev->doorbells.n;
	dev->info.n_irqfds = dev->irqfds.n;
	return r;
}

/* The arena is reused by the next message: keep our own copy of the grant. */
static int take_welcome(struct ioreq_dev *dev, const Ioreq__Envelope *env)
{
	struct ioreq_dev_info *info = &dev->info;
	const Ioreq__Welcome *w;

	if (env->msg_case != IOREQ__ENVELOPE__MSG_WELCOME)
		return -EPROTO;
	w = env->welcome;
	/* A Welcome for another device means we dialled the wrong socket. */
	if (w->version != IOREQ__VERSION__VERSION_CURRENT || strcmp(w->device, dev->name))
		return -EPROTO;

	/* wire_unpack bounded the names and lists by the sizes of these arrays. */
	strcpy(dev->vm, w->vm);
	info->vm = dev->vm;
	info->device = dev->name;
	info->n_ranges = copy_ranges(dev->ranges, w->n_ranges, w->ranges);
	info->ranges = dev->ranges;
	info->n_windows = copy_ranges(dev->windows, w->n_windows, w->windows);
	info->windows = dev->windows;
	for (size_t i = 0; i < w->n_irq_lines; i++)
		dev->irq_lines[i] = w->irq_lines[i];
	info->n_irq_lines = w->n_irq_lines;
	info->irq_lines = dev->irq_lines;
	info->msi = w->msi;
	return take_data_plane(dev, w);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One wait for a pipe event, under dev->lock: false once @until_ms
 * (CLOCK_MONOTONIC) has passed. */
static bool dev_wait(struct ioreq_dev *dev, uint64_t until_ms)
{
	struct timespec ts = { .tv_sec = (time_t)(until_ms / 1000), .tv_nsec = (long)(until_ms % 1000) * 1000000 };

	return pthread_cond_timedwait(&dev->changed, &dev->lock, &ts) != ETIMEDOUT;
}

/* Says Hello on dev->live, or on no pipe at all (-EAGAIN: that pipe is
 * going). Called with dev->lock held, which makes that exact: pair1 has one
 * pipe at a time, dev->live stays its pipe until its REM_POST (which waits
 * for the lock) lets nng stop it, and no later pipe can start before its
 * ADD_PRE (which waits too) has run. A non-blocking send neither waits nor
 * runs pipe callbacks in this thread. */
static int send_hello(struct ioreq_dev *dev)
{
	Ioreq__Hello hello = IOREQ__HELLO__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	hello.version = IOREQ__VERSION__VERSION_CURRENT;
	hello.device = dev->name;
	hello.ring = true;
	env.msg_case = IOREQ__ENVELOPE__MSG_HELLO;
	env.hello = &hello;
	/* Now or never: pair1 would otherwise keep the Hello for whichever
	 * pipe comes next, where it could follow the Hello we send there. */
	return wire_send(dev->sock, &env, NNG_FLAG_NONBLOCK);
}

/* Hello on each new pipe until a Welcome comes back on the pipe that
 * carried our Hello; *@ret is that message, unpacked. */
static int dev_handshake(struct ioreq_dev *dev, Ioreq__Envelope **ret)
{
	const uint64_t end = now_ms() + DEV_WELCOME_MS;
	uint32_t hello_on = 0;

	for (;;) {
		uint64_t until = end, now = now_ms();
		unsigned events;
		uint32_t live, pipe;
		nng_msg *msg;
		bool ours;
		int r;

		if (now >= end)
			return -ETIMEDOUT;
		/* The first pipe comes from the dial; after a loss, a broker
		 * that is still there takes the redial at once. */
		if (hello_on && now + DEV_REJOIN_MS < until)
			until = now + DEV_REJOIN_MS;
		pthread_mutex_lock(&dev->lock);
		while (!dev->live && dev_wait(dev, until))
			;
		live = dev->live;
		events = dev->events;
		r = 0;
		if (live && live != hello_on) {
			r = send_hello(dev);
			if (!r)
				hello_on = live;
			while (r == -EAGAIN && dev->events == events && dev_wait(dev, end))
				; /* @live is on its way out */
		}
		pthread_mutex_unlock(&dev->lock);
		if (!live)
			return hello_on ? -ECONNRESET : -ETIMEDOUT;
		if (r == -EAGAIN)
			continue;
		if (r < 0)
			return r;

		now = now_ms();
		if (now >= end)
			return -ETIMEDOUT;
		r = dev_recv_aio(dev, (nng_duration)(end - now), &events);
		if (r == NNG_ECONNSHUT) /* a pipe came or went: look again */
			continue;
		if (r) {
			r = wire_errno(r);
			return r < 0 ? r : -EIO;
		}
		msg = dev_take_msg(dev, &pipe);
		/* The Welcome counts only on the pipe it answers, and only if
		 * that pipe is still up: from here on losing it is the end. */
		pthread_mutex_lock(&dev->lock);
		ours = pipe == hello_on && dev->live == hello_on;
		if (ours)
			dev->pipe_id = hello_on;
		pthread_mutex_unlock(&dev->lock);
		if (!ours) {
			nng_msg_free(msg);
			continue;
		}
		return dev_unpack(dev, msg, ret);
	}
}

static int dev_open(struct ioreq_dev *dev, const char *url)
{
	pthread_condattr_t ca;
	int r;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&dev->lock, NULL);
	pthread_mutex_init(&dev->serve_lock, NULL);
	r = -pthread_cond_init(&dev->changed, &ca);
	pthread_condattr_destroy(&ca);
	if (r) {
		pthread_mutex_destroy(&dev->serve_lock);
		pthread_mutex_destroy(&dev->lock);
		return r;
	}
	dev->lock_init = true;

	r = nng_pair1_open(&dev->sock);
	if (r)
		return wire_errno(r);
	dev->sock_open = true;

	r = nng_aio_alloc(&dev->rx, NULL, NULL);
	if (r)
		return wire_errno(r);

	if ((r = nng_socket_set_size(dev->sock, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG)) ||
	    (r = nng_socket_set_ms(dev->sock, NNG_OPT_SENDTIMEO, DEV_SEND_MS)) ||
	    (r = nng_socket_set_ms(dev->sock, NNG_OPT_RECONNMINT, DEV_RECONN_MIN_MS)) ||
	    (r = nng_socket_set_ms(dev->sock, NNG_OPT_RECONNMAXT, DEV_RECONN_MAX_MS)) ||
	    (r = nng_pipe_notify(dev->sock, NNG_PIPE_EV_ADD_PRE, pipe_event, dev)) ||
	    (r = nng_pipe_notify(dev->sock, NNG_PIPE_EV_ADD_POST, pipe_event, dev)) ||
	    (r = nng_pipe_notify(dev->sock, NNG_PIPE_EV_REM_POST, pipe_event, dev)))
		return wire_errno(r);

	/* Synchronous: fails at once if nobody listens, instead of retrying. */
	r = nng_dial(dev->sock, url, NULL, 0);
	return wire_errno(r);
}

int ioreq_dev_connect(const char *url, const char *name, const struct ioreq_dev_ops *ops, void *opaque,
		      struct ioreq_dev **ret)
{
	Ioreq__Envelope *in;
	struct ioreq_dev *dev;
	int r;

	if (!url || !name || !name[0] || strlen(name) > WIRE_MAX_NAME || !ops || !ret)
		return -EINVAL;

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	strcpy(dev->name, name);
	dev->relay_stop = -1;
	dev->ops = ops;
	dev->opaque = opaque;

	/* Before nng starts its threads, so that they inherit it. */
	r = sandbox_restrict_fs();
	if (r < 0)
		goto err;
	r = dev_open(dev, url);
	if (r < 0)
		goto err;

	r = dev_handshake(dev, &in);
	if (r < 0)
		goto err;
	r = take_welcome(dev, in);
	if (r < 0)
		goto err;
	/* Connected: from now on the device only serves. */
	r = sandbox_lock();
	if (r < 0)
		goto err;

	*ret = dev;
	return 0;

err:
	ioreq_dev_close(dev);
	return r;
}

const struct ioreq_dev_info *ioreq_dev_info(const struct ioreq_dev *dev)
{
	return &dev->info;
}

const struct ioreq_mem *ioreq_dev_memory(const struct ioreq_dev *dev)
{
	return dev->info.n_mem_regions ? &dev->mem : NULL;
}

int ioreq_dev_file(const struct ioreq_dev *dev, size_t i, int *ret_fd, bool *ret_writable)
{
	if (i >= dev->n_files)
		return -ENOENT;
	*ret_fd = dev->file_fd[i];
	if (ret_writable)
		*ret_writable = dev->file_writable[i];
	return 0;
}

struct ioreq_dev *ioreq_dev_close(struct ioreq_dev *dev)
{
	if (!dev)
		return NULL;
	/* It sends on the socket. */
	stop_relay(dev);
	/* nng_close waits for the pipe callbacks, which use dev->rx. */
	if (dev->sock_open)
		nng_close(dev->sock);
	if (dev->rx)
		nng_aio_free(dev->rx);
	while (dev->defer_n) {
		nng_msg_free(dev->deferred[dev->defer_first]);
		dev->defer_first = (dev->defer_first + 1) % DEV_DEFER_MAX;
		dev->defer_n--;
	}
	if (dev->mem_base)
		munmap(dev->mem_base, dev->mem_size);
	for (size_t i = 0; dev->doorbells.own && i < dev->doorbells.n; i++)
		close(dev->doorbells.fd[i]);
	for (size_t i = 0; dev->irqfds.own && i < dev->irqfds.n; i++)
		close(dev->irqfds.fd[i]);
	dev->ring = devring_free(dev->ring);
	if (dev->lock_init) {
		pthread_cond_destroy(&dev->changed);
		pthread_mutex_destroy(&dev->serve_lock);
		pthread_mutex_destroy(&dev->lock);
	}
	free(dev);
	return NULL;
}

/* ---- serving ---- */

static uint64_t size_mask(unsigned size)
{
	return size >= 8 ? UINT64_MAX : (UINT64_C(1) << (size * 8)) - 1;
}

static ioreq_access_fn handler_for(const struct ioreq_dev_ops *ops, enum ioreq_kind kind)
{
	switch (kind) {
	case IOREQ_PIO:
		return ops->pio;
	case IOREQ_MMIO:
		return ops->mmio;
	case IOREQ_PCICFG:
		return ops->pcicfg;
	}
	return NULL;
}

/* Runs the handler of @a's kind; the caller holds serve_lock. */
static int handle(struct ioreq_dev *dev, const struct ioreq_access *a, uint64_t *value)
{
	ioreq_access_fn fn = handler_for(dev->ops, a->kind);

	return fn ? fn(dev, a, value, dev->opaque) : -EOPNOTSUPP;
}

static int send_reply(struct ioreq_dev *dev, uint64_t id, bool write, unsigned size, int r, uint64_t value)
{
	Ioreq__Reply reply = IOREQ__REPLY__INIT;
	Ioreq__Envelope out = IOREQ__ENVELOPE__INIT;

	reply.id = id;
	reply.status = r < 0 ? IOREQ__STATUS__STATUS_UNHANDLED : IOREQ__STATUS__STATUS_OK;
	if (r >= 0 && !write)
		reply.value = value & size_mask(size);
	out.msg_case = IOREQ__ENVELOPE__MSG_REPLY;
	out.reply = &reply;
	return dev_send(dev, &out);
}

/* A request from the ring, in the ring's thread. A handler that sent the
 * broker a message (a claim, an interrupt) has its reply follow it on the
 * socket, so that the broker acts on the message before the vCPU goes on. */
static int ring_request(void *opaque, const struct ioreq_access *a, uint64_t *value)
{
	struct ioreq_dev *dev = opaque;
	unsigned sent = sent_by_thread;
	int r;

	pthread_mutex_lock(&dev->serve_lock);
	r = handle(dev, a, value);
	pthread_mutex_unlock(&dev->serve_lock);
	if (sent_by_thread != sent)
		return send_reply(dev, a->id, a->write, a->size, r, *value) < 0 ? r : DEVRING_SENT;
	if (r >= 0)
		*value &= size_mask(a->size);
	return r < 0 ? r : 0;
}

/* A VM reset, told in the ring (its reset_seq), in the ring's thread. */
static void ring_reset(void *opaque)
{
	struct ioreq_dev *dev = opaque;

	pthread_mutex_lock(&dev->serve_lock);
	if (dev->ops->reset)
		dev->ops->reset(dev, dev->opaque);
	pthread_mutex_unlock(&dev->serve_lock);
}

/* Return values of the on_* handlers: 0 to go on, 1 when serving is over, or
 * a negative errno. */
static int on_request(struct ioreq_dev *dev, const Ioreq__Envelope *env)
{
	const Ioreq__Request *q = env->request;
	/* wire_unpack checked kind, direction and size. */
	struct ioreq_access a = {
		.id = q->id,
		.vcpu = q->vcpu,
		.kind = (enum ioreq_kind)q->kind,
		.write = q->dir == IOREQ__DIRECTION__DIR_WRITE,
		.size = q->size,
		.value = q->dir == IOREQ__DIRECTION__DIR_WRITE ? q->value & size_mask(q->size) : 0,
		.addr = q->addr,
		.offset = q->offset,
		.range = q->range,
		.bdf = q->bdf,
		.reg = q->reg,
	};
	uint64_t value = 0;
	int r = handle(dev, &a, &value);

	return send_reply(dev, q->id, a.write, a.size, r, value);
}

static int on_reset(struct ioreq_dev *dev, const Ioreq__Envelope *env)
{
	if (dev->ops->reset)
		dev->ops->reset(dev, dev->opaque);
	return 0;
}

static int on_claim_result(struct ioreq_dev *dev, const Ioreq__Envelope *env)
{
	const Ioreq__ClaimResult *c = env->claim_result;

	if (c->error > 0 || c->error < -4095)
		return -EPROTO;
	if (dev->ops->claim_result)
		dev->ops->claim_result(dev, c->tag, c->error, dev->opaque);
	return 0;
}

static int on_shutdown(struct ioreq_dev *dev, const Ioreq__Envelope *env)
{
	return 1;
}

/* What the broker may send once the handshake is done; the rest is a protocol error. */
static int (*const serve_table[])(struct ioreq_dev *, const Ioreq__Envelope *) = {
	[IOREQ__ENVELOPE__MSG_REQUEST] = on_request,
	[IOREQ__ENVELOPE__MSG_RESET] = on_reset,
	[IOREQ__ENVELOPE__MSG_CLAIM_RESULT] = on_claim_result,
	[IOREQ__ENVELOPE__MSG_SHUTDOWN] = on_shutdown,
};

/* ---- receiving, for whoever waits ---- */

/* An answer to its waiter (gone after a timeout: then dropped), with a
 * read's bytes, exactly as many as it asked for. Under lock. */
static int hand_result(struct ioreq_dev *dev, uint32_t tag, int error, const ProtobufCBinaryData *data)
{
	if (error > 0 || error < -4095)
		return -EPROTO;
	for (struct reg_wait *w = dev->waits; w; w = w->next) {
		if (w->tag != tag || w->done)
			continue;
		if ((!error && w->buf) != (data && data->len))
			return -EPROTO;
		if (data && data->len) {
			if (data->len != w->len)
				return -EPROTO;
			memcpy(w->buf, data->data, w->len);
		}
		w->error = error;
		w->done = true;
		pthread_cond_broadcast(&dev->changed);
		break;
	}
	return 0;
}

/* What no handler serves, done by whichever thread received it: answers
 * to waiters, a remote device's doorbells. 0 if it was that, 1 if @env is
 * the serving thread's, or -EPROTO. Under lock. */
static int take_own(struct ioreq_dev *dev, const Ioreq__Envelope *env)
{
	switch (env->msg_case) {
	case IOREQ__ENVELOPE__MSG_REGISTRATION_RESULT:
		return hand_result(dev, env->registration_result->tag, env->registration_result->error, NULL);
	case IOREQ__ENVELOPE__MSG_MEM_RESULT:
		return hand_result(dev, env->mem_result->tag, env->mem_result->error, &env->mem_result->data);
	case IOREQ__ENVELOPE__MSG_SIGNAL:
		return signal_doorbell(dev, env->signal);
	default:
		return 1;
	}
}

/* The serving thread's next message, unpacked into its arena: one a
 * waiter took for it, or one it receives itself once nobody else does. An
 * answer it receives goes to its waiter before it lets go of receiving
 * (take_own): a waiter that then finds nobody receiving has its answer
 * already, or it is still to come. */
static int next_env(struct ioreq_dev *dev, Ioreq__Envelope **ret)
{
	nng_msg *msg;
	int r;

	pthread_mutex_lock(&dev->lock);
	for (;;) {
		while (!dev->defer_n && dev->receiving)
			pthread_cond_wait(&dev->changed, &dev->lock);
		if (dev->defer_n) {
			msg = dev->deferred[dev->defer_first];
			dev->defer_first = (dev->defer_first + 1) % DEV_DEFER_MAX;
			dev->defer_n--;
			pthread_mutex_unlock(&dev->lock);
			return dev_unpack(dev, msg, ret);
		}
		dev->receiving = true;
		pthread_mutex_unlock(&dev->lock);
		r = dev_recv_msg(dev, NNG_DURATION_INFINITE, &msg);
		if (r == 0)
			r = dev_unpack(dev, msg, ret);
		pthread_mutex_lock(&dev->lock);
		if (r == 0)
			r = take_own(dev, *ret);
		dev->receiving = false;
		pthread_cond_broadcast(&dev->changed);
		if (r != 0)
			break;
	}
	pthread_mutex_unlock(&dev->lock);
	return r < 0 ? r : 0;
}

int ioreq_dev_serve(struct ioreq_dev *dev)
{
	int r = dev->ring ? devring_start(dev->ring, ring_request, ring_reset, dev) : 0;

	while (r == 0) {
		Ioreq__Envelope *env;
		unsigned c;

		r = next_env(dev, &env);
		if (r < 0)
			break;
		/* (Answers and signals never get here: see take_own.) */
		c = env->msg_case;
		if (c >= sizeof(serve_table) / sizeof(serve_table[0]) || !serve_table[c]) {
			r = -EPROTO;
			break;
		}
		pthread_mutex_lock(&dev->serve_lock);
		r = serve_table[c](dev, env);
		pthread_mutex_unlock(&dev->serve_lock);
	}
	if (dev->ring)
		devring_stop(dev->ring);
	return r < 0 ? r : 0;
}

/* ---- device-initiated messages ---- */

int ioreq_dev_irq(struct ioreq_dev *dev, uint32_t line, enum ioreq_irq_op op)
{
	Ioreq__Interrupt irq = IOREQ__INTERRUPT__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	size_t i;

	if (op != IOREQ_IRQ_ASSERT && op != IOREQ_IRQ_DEASSERT && op != IOREQ_IRQ_PULSE)
		return -EINVAL;
	for (i = 0; i < dev->info.n_irq_lines; i++)
		if (dev->irq_lines[i] == line)
			break;
	if (i == dev->info.n_irq_lines)
		return -EPERM;

	irq.op = (Ioreq__IrqOp)op;
	irq.line = line;
	env.msg_case = IOREQ__ENVELOPE__MSG_INTERRUPT;
	env.interrupt = &irq;
	return dev_send(dev, &env);
}

int ioreq_dev_msi(struct ioreq_dev *dev, uint64_t addr, uint32_t data)
{
	Ioreq__Interrupt irq = IOREQ__INTERRUPT__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	if (!dev->info.msi)
		return -EPERM;
	irq.op = IOREQ__IRQ_OP__IRQ_MSI;
	irq.msi_addr = addr;
	irq.msi_data = data;
	env.msg_case = IOREQ__ENVELOPE__MSG_INTERRUPT;
	env.interrupt = &irq;
	return dev_send(dev, &env);
}

int ioreq_dev_claim(struct ioreq_dev *dev, enum ioreq_kind kind, uint64_t start, uint64_t size, bool release,
		    uint32_t tag)
{
	Ioreq__Range range = IOREQ__RANGE__INIT;
	Ioreq__Claim claim = IOREQ__CLAIM__INIT;
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;

	/* Windows are the broker's to enforce (and to report): a claim outside
	 * them is sent all the same and refused there. */
	if ((kind != IOREQ_PIO && kind != IOREQ_MMIO && kind != IOREQ_PCICFG) || !size ||
	    start + size - 1 < start)
		return -EINVAL;

	range.kind = (Ioreq__Kind)kind;
	range.start = start;
	range.size = size;
	claim.range = &range;
	claim.release = release;
	claim.tag = tag;
	env.msg_case = IOREQ__ENVELOPE__MSG_CLAIM;
	env.claim = &claim;
	return dev_send(dev, &env);
}

/* ---- doorbells and irqfds ---- */

/* While nobody else receives: receives one message (waiting up to
 * @wait_ms); what take_own does not take goes to the serving thread.
 * Called and returns with the lock held. */
static int receive_for(struct ioreq_dev *dev, int64_t wait_ms)
{
	struct wire_arena *arena;
	Ioreq__Envelope *env;
	nng_msg *msg;
	int r;

	dev->receiving = true;
	pthread_mutex_unlock(&dev->lock);
	r = dev_recv_msg(dev, (nng_duration)wait_ms, &msg);
	arena = r == 0 ? malloc(sizeof(*arena)) : NULL;
	if (r == 0 && !arena) {
		nng_msg_free(msg);
		r = -ENOMEM;
	}
	if (r == 0) {
		/* Unpacked here only to see what it is: the serving thread
		 * unpacks its own messages into its own arena. */
		wire_arena_reset(arena);
		r = wire_unpack(nng_msg_body(msg), nng_msg_len(msg), arena, &env) < 0 ? -EPROTO : 0;
	}
	pthread_mutex_lock(&dev->lock);
	dev->receiving = false;
	pthread_cond_broadcast(&dev->changed);
	if (r == 0)
		r = take_own(dev, env);
	if (r == 1) {
		dev->deferred[(dev->defer_first + dev->defer_n) % DEV_DEFER_MAX] = msg;
		dev->defer_n++;
		r = 0;
	} else if (r == 0 || r == -EPROTO) {
		nng_msg_free(msg);
	}
	free(arena);
	return r == -ETIMEDOUT ? 0 : r;
}

/* A waiter for the next tag, linked where answers find it. */
static uint32_t expect(struct ioreq_dev *dev, struct reg_wait *w, void *buf, size_t len)
{
	*w = (struct reg_wait){ .buf = buf, .len = len };
	pthread_mutex_lock(&dev->lock);
	w->tag = ++dev->next_tag;
	w->next = dev->waits;
	dev->waits = w;
	pthread_mutex_unlock(&dev->lock);
	return w->tag;
}

/* @w's answer, unless @r (its send's result) failed already: received by
 * this thread, or handed to it by whoever receives, within
 * DEV_ANSWER_MS; then @w is unlinked. */
static int await(struct ioreq_dev *dev, struct reg_wait *w, int r)
{
	const uint64_t end = now_ms() + DEV_ANSWER_MS;
	struct reg_wait **p;

	pthread_mutex_lock(&dev->lock);
	while (r == 0 && !w->done) {
		uint64_t now = now_ms();

		if (now >= end) {
			r = -ETIMEDOUT;
		} else if (!dev->receiving && dev->defer_n < DEV_DEFER_MAX) {
			r = receive_for(dev, (int64_t)(end - now));
		} else {
			/* Someone receives (and will hand us our result), or
			 * the serving thread has to catch up first. */
			dev_wait(dev, end);
		}
	}
	for (p = &dev->waits; *p != w; p = &(*p)->next)
		;
	*p = w->next;
	pthread_mutex_unlock(&dev->lock);
	return r < 0 ? r : w->error;
}

static int register_wait(struct ioreq_dev *dev, Ioreq__Register *reg)
{
	Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
	struct reg_wait w;

	env.msg_case = IOREQ__ENVELOPE__MSG_REGISTRATION;
	env.registration = reg;
	reg->tag = expect(dev, &w, NULL, 0);
	return await(dev, &w, dev_send(dev, &env));
}

/* Guest memory through the broker (memory.h), in pieces of at most
 * WIRE_MAX_DMA, up to DEV_DMA_WINDOW of them on the way at once (the broker
 * does them in order); it returns once every one is answered: a write is
 * then in guest memory. */
static int dev_mem_access(struct ioreq_dev *dev, uint64_t gpa, void *buf, size_t len, bool write)
{
	struct reg_wait w[DEV_DMA_WINDOW];
	size_t sent = 0, first = 0, n_out = 0;
	int r = 0;

	while (n_out || (r == 0 && sent < len)) {
		size_t n = len - sent < WIRE_MAX_DMA ? len - sent : WIRE_MAX_DMA, k;
		uint8_t *at = (uint8_t *)buf + sent;
		Ioreq__MemAccess a = IOREQ__MEM_ACCESS__INIT;
		Ioreq__Envelope env = IOREQ__ENVELOPE__INIT;
		int answer;

		if (r == 0 && sent < len && n_out < DEV_DMA_WINDOW) {
			k = (first + n_out) % DEV_DMA_WINDOW;
			a.gpa = gpa + sent;
			a.write = write;
			if (write)
				a.data = (ProtobufCBinaryData){ n, at };
			else
				a.len = (uint32_t)n;
			env.msg_case = IOREQ__ENVELOPE__MSG_MEM_ACCESS;
			env.mem_access = &a;
			a.tag = expect(dev, &w[k], write ? NULL : at, write ? 0 : n);
			r = dev_send(dev, &env);
			if (r < 0) {
				await(dev, &w[k], r);
				continue;
			}
			n_out++;
			sent += n;
			continue;
		}
		/* The window is full, or all is sent, or something failed:
		 * the oldest answer (each waiter must go before we return). */
		answer = await(dev, &w[first], 0);
		if (r == 0)
			r = answer;
		first = (first + 1) % DEV_DMA_WINDOW;
		n_out--;
	}
	return r;
}

/* Takes a free eventfd of @e: its index, or -ENOSPC. */
static int take_eventfd(struct ioreq_dev *dev, struct eventfds *e)
{
	int r = -ENOSPC;

	pthread_mutex_lock(&dev->lock);
	for (size_t i = 0; i < e->n && r < 0; i++) {
		if (!e->bound[i]) {
			e->bound[i] = true;
			r = (int)i;
		}
	}
	pthread_mutex_unlock(&dev->lock);
	return r;
}

static void put_eventfd(struct ioreq_dev *dev, struct eventfds *e, size_t i)
{
	pthread_mutex_lock(&dev->lock);
	e->bound[i] = false;
	pthread_mutex_unlock(&dev->lock);
}

/* Binds eventfd @i of @e as @reg says, or gives it back. */
static int bind_eventfd(struct ioreq_dev *dev, struct eventfds *e, int i, Ioreq__Register *reg, int *ret_fd)
{
	int r = register_wait(dev, reg);

	if (r < 0) {
		put_eventfd(dev, e, (size_t)i);
		return r;
	}
	*ret_fd = e->fd[i];
	return 0;
}

int ioreq_dev_ioeventfd(struct ioreq_dev *dev, enum ioreq_kind kind, uint64_t addr, unsigned size, bool datamatch,
			uint64_t value, int *ret_fd)
{
	Ioreq__Ioeventfd io = IOREQ__IOEVENTFD__INIT;
	Ioreq__Register reg = IOREQ__REGISTER__INIT;
	int i;

	/* What lies outside its ranges is the broker's to refuse (and to
	 * report); only what cannot be said on the wire stops here. */
	if ((kind != IOREQ_PIO && kind != IOREQ_MMIO) || !wire_size_ok(size) || addr + (size - 1) < addr)
		return -EINVAL;
	i = take_eventfd(dev, &dev->doorbells);
	if (i < 0)
		return i;
	io.index = (uint32_t)i;
	io.kind = (Ioreq__Kind)kind;
	io.addr = addr;
	io.size = size;
	io.datamatch = datamatch;
	io.value = value;
	reg.what_case = IOREQ__REGISTER__WHAT_IOEVENTFD;
	reg.ioeventfd = &io;
	return bind_eventfd(dev, &dev->doorbells, i, &reg, ret_fd);
}

static int irqfd(struct ioreq_dev *dev, bool msi, uint32_t line, uint64_t addr, uint32_t data, int *ret_fd)
{
	Ioreq__Irqfd irq = IOREQ__IRQFD__INIT;
	Ioreq__Register reg = IOREQ__REGISTER__INIT;
	int i = take_eventfd(dev, &dev->irqfds);

	if (i < 0)
		return i;
	irq.index = (uint32_t)i;
	irq.msi = msi;
	irq.line = line;
	irq.msi_addr = addr;
	irq.msi_data = data;
	reg.what_case = IOREQ__REGISTER__WHAT_IRQFD;
	reg.irqfd = &irq;
	return bind_eventfd(dev, &dev->irqfds, i, &reg, ret_fd);
}

int ioreq_dev_irqfd_line(struct ioreq_dev *dev, uint32_t line, int *ret_fd)
{
	return irqfd(dev, false, line, 0, 0, ret_fd);
}

int ioreq_dev_irqfd_msi(struct ioreq_dev *dev, uint64_t addr, uint32_t data, int *ret_fd)
{
	return irqfd(dev, true, 0, addr, data, ret_fd);
}

/* The bound eventfd @fd: its kind and index, or false. */
static bool find_bound(struct ioreq_dev *dev, int fd, struct eventfds **ret_e, size_t *ret_i)
{
	struct eventfds *kinds[] = { &dev->doorbells, &dev->irqfds };
	bool found = false;

	pthread_mutex_lock(&dev->lock);
	for (size_t k = 0; k < 2 && !found; k++) {
		for (size_t i = 0; i < kinds[k]->n && !found; i++) {
			if (kinds[k]->fd[i] == fd && kinds[k]->bound[i]) {
				*ret_e = kinds[k];
				*ret_i = i;
				found = true;
			}
		}
	}
	pthread_mutex_unlock(&dev->lock);
	return found;
}

int ioreq_dev_eventfd_release(struct ioreq_dev *dev, int fd)
{
	Ioreq__Ioeventfd io = IOREQ__IOEVENTFD__INIT;
	Ioreq__Irqfd irq = IOREQ__IRQFD__INIT;
	Ioreq__Register reg = IOREQ__REGISTER__INIT;
	struct eventfds *e;
	size_t i;
	int r;

	if (!find_bound(dev, fd, &e, &i))
		return -ENOENT;
	reg.release = true;
	if (e == &dev->doorbells) {
		/* Only the index counts in a release; the rest must still
		 * be well-formed. */
		io.index = (uint32_t)i;
		io.size = 1;
		reg.what_case = IOREQ__REGISTER__WHAT_IOEVENTFD;
		reg.ioeventfd = &io;
	} else {
		irq.index = (uint32_t)i;
		reg.what_case = IOREQ__REGISTER__WHAT_IRQFD;
		reg.irqfd = &irq;
	}
	r = register_wait(dev, &reg);
	/* -ENOENT: the broker dropped it already (its range was released). */
	if (r == 0 || r == -ENOENT)
		put_eventfd(dev, e, i);
	return r;
}
