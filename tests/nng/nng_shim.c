/* A workaround for nng 1.5.2 (Debian 12), tested by nng_repro.c; the broker
 * carries the same two functions, always on.
 *
 * nng 1.5.2 goes wrong when it learns that the peer is gone in two places:
 *
 * - Its ipc transport sends the SP header as soon as it accepts. If the peer
 *   has already closed, sendmsg() fails with EPIPE, which becomes NNG_ECLOSED
 *   (posix_debug.c:86); the negotiation hands that to the listener's pending
 *   accept (ipc.c:274-282), the listener takes it for its own close and
 *   never accepts again (listener.c, listener_accept_cb, case NNG_ECLOSED).
 *   nanomsg/nng#1518, fixed in 1.6.0 (9248ed74).
 * - A failed send makes pair1 close the pipe (pair.c:427-431). If the pipe's
 *   receive is between two reads of a message at that moment, its next read
 *   is refused without completing (aio.c nni_aio_begin on a closed aio,
 *   posix_ipcconn.c:292), pair1's receive stays queued, and the one reaper
 *   thread of the process waits for it forever (pipe.c:75): from then on no
 *   pipe of the process is ever freed (fds leak) and nng_close hangs. Fixed
 *   in 1.9.0 (aac4dc36, nanomsg/nng#1813).
 *
 * An end of stream during the handshake is also costly: NNG_ECONNSHUT makes
 * the listener pause 100 ms (listener.c, the default case), during which
 * negotiated connections wait, and those whose peer has gone make the poll
 * thread spin on EPOLLHUP (posix_pollq_epoll.c:109-114, 279-292).
 *
 * Defining sendmsg() and readv() in the executable interposes on libnng's
 * calls to them (the executable comes first in the symbol search order).
 * When a call from libnng finds the peer gone, sendmsg() reports the data as
 * sent (it is lost either way; the pending receive then sees the end of the
 * stream and closes the pipe from the receive side, where neither bug
 * lives), and readv() reports ECONNRESET instead of an end of stream, which
 * the listener survives without a pause. Calls from anywhere else (our code,
 * libsystemd) keep the kernel's answers. This assumes a shared libnng. */
#include "nng_shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <nng/nng.h>

static atomic_bool enabled;

void nng_shim_enable(void)
{
	atomic_store(&enabled, true);
}

bool nng_shim_enabled(void)
{
	return atomic_load(&enabled);
}

static bool called_from_nng(const void *ret)
{
	Dl_info caller, nng;

	return atomic_load(&enabled) && dladdr(ret, &caller) && dladdr((const void *)nng_close, &nng) &&
	       caller.dli_fbase == nng.dli_fbase;
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	long r = syscall(SYS_sendmsg, fd, msg, flags);
	size_t len = 0;

	if (r >= 0 || (errno != EPIPE && errno != ECONNRESET) || !called_from_nng(__builtin_return_address(0)))
		return r;
	for (size_t i = 0; i < msg->msg_iovlen; i++)
		len += msg->msg_iov[i].iov_len;
	return (ssize_t)len;
}

ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	long r = syscall(SYS_readv, fd, iov, iovcnt);

	if (r == 0 && iovcnt > 0 && called_from_nng(__builtin_return_address(0))) {
		errno = ECONNRESET;
		return -1;
	}
	return r;
}
