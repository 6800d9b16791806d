/* libioreq-device: virtio devices over vhost-user. Not in this build yet:
 * the transport refuses, clearly, and the program exits. */
#include "virtio_impl.h"

static int vhost_user_serve(struct ioreq_virtio *v)
{
	ioreq_virtio_log(v, "--vhost-user: this build has no vhost-user transport yet");
	return 2;
}

const struct virtio_transport vhost_user_transport = {
	.name = "vhost-user",
	.serve = vhost_user_serve,
};
