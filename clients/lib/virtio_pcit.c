/* PLACEHOLDER on branch vhost, so that virtio programs link here: the real
 * virtio-pci transport is the lead's (main's clients/lib/virtio_pcit.c),
 * which replaces this file at the merge. It refuses, clearly. */
#include "virtio_impl.h"

static int virtio_pci_serve(struct ioreq_virtio *v)
{
	ioreq_virtio_log(v, "this build has no virtio-pci transport yet: use --vhost-user");
	return 2;
}

const struct virtio_transport virtio_pci_transport = {
	.name = "virtio-pci",
	.serve = virtio_pci_serve,
};
