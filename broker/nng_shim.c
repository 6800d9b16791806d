/* Works around two bugs of nng 1.5.2 (Debian 12's libnng1) that start when
 * nng learns that a peer is gone; tests/nng/README.md has the evidence.
 *
 * - The ipc transport sends its SP header as soon as it accepts. If the
 *   peer has already closed (a device killed while connecting), sendmsg()
 *   fails with EPIPE, which nng maps to NNG_ECLOSED; the negotiation hands
 *   that to the listener's pending accept, which takes it for its own close
 *   and never accepts again: the device's next instance can never connect,
 *   and every connection that completes the handshake afterwards is parked
 *   with its fd while the poll thread spins on its EPOLLHUP
 *   (nanomsg/nng#1518, fixed in 1.6.0).
 * - A failed send makes pair1 close the pipe. If the pipe's receive is
 *   between two reads of a message at that moment (a device killed while
 *   it sends), its next read is refused without completing and nng's one
 *   reaper thread waits for it forever: from then on no pipe of the broker
 *   is ever freed (an fd per connection attempt), pair1 refuses every new
 *   instance because the old pipe never leaves, and nng_close hangs
 *   (nanomsg/nng#1813, fixed in 1.9.0).
 *
 * And an end of stream during the handshake makes the listener pause for
 * 100 ms per connection, while the connections negotiated meanwhile wait.
 *
 * Defining sendmsg() and readv() in the executable interposes on libnng's
 * calls (the executable comes first in the symbol search order; nm -D shows
 * both as defined in ioreq-brokerd). When a call from libnng finds the peer
 * gone, sendmsg() reports the data as sent (it is lost either way, and the
 * pending receive then sees the end of the stream and closes the pipe from
 * the receive side, where neither bug lives), and readv() reports
 * ECONNRESET instead of the end of the stream, which the listener survives
 * without a pause. Calls from anywhere else (libsystemd, our own code) get
 * the kernel's answers. Remove this file once the broker builds against
 * nng 1.9.0 or later.
 *
 * What it cannot cover: a local close while a message is arriving (pipes
 * must be refused in ADD_PRE, never later, and nng_close must wait until
 * the device's pipe is gone: rpc_shut), and a device that stops reading,
 * floods, and dies while the broker's writes are blocked (the error then
 * comes from epoll, not from sendmsg). */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <nng/nng.h>

/* Only on the error paths, so the cost of dladdr() does not matter. */
static bool called_from_nng(const void *ret)
{
	Dl_info caller, nng;

	return dladdr(ret, &caller) && dladdr((const void *)nng_close, &nng) && caller.dli_fbase == nng.dli_fbase;
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
