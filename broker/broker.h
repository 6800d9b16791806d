/* The broker as a whole: its VMs, the runtime directory, and the
 * housekeeping thread that collects exited devices and expires deadlines. */
#ifndef IOREQ_BROKER_H
#define IOREQ_BROKER_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"

struct bvm;

struct broker {
	const struct cfg *cfg;
	char runtime_dir[PATH_MAX];
	bool own_runtime_dir;  /* created by us: removed at exit */
	struct bvm **vms;
	size_t n_vms;
	_Atomic unsigned vms_running;
	pthread_t housekeeper;
	bool housekeeper_started;
	_Atomic bool quit;
};

/* Creates every VM of @cfg (nothing runs yet). */
int broker_create(const struct cfg *cfg, struct broker **ret);

/* Starts the devices and the VMs. */
int broker_start(struct broker *b);

/* Stops everything; returns the exit status for --exit-with-vms: 0 when
 * every VM stopped by itself with status 0. NULL is fine. */
int broker_destroy(struct broker *b);

/* Called by a VM that stopped by itself. */
void broker_vm_stopped(struct broker *b, struct bvm *vm);

/* The number of VMs still running. */
unsigned broker_vms_running(struct broker *b);

#endif
