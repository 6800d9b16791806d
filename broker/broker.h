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
	struct cfg *cfg;
	/* Configurations replaced by a reload. VMs that did not change still
	 * point into them, from threads that take no lock: kept until exit. */
	struct cfg **retired;
	size_t n_retired;
	char bindir[PATH_MAX];
	char runtime_dir[PATH_MAX];
	bool own_runtime_dir;  /* created by us: removed at exit */
	/* Guards the vms array itself (a reload replaces it); held briefly. */
	pthread_mutex_t lock;
	/* Serialises what the operator asks for: control commands, reloads. */
	pthread_mutex_t admin;
	struct bvm **vms;
	size_t n_vms;
	_Atomic unsigned vms_running;
	pthread_t housekeeper;
	bool housekeeper_started;
	_Atomic bool quit;
	int64_t started_ns;
	struct control *control;
};

/* Creates every VM of @cfg (nothing runs yet) and takes @cfg over.
 * @bindir: where reloads look for bare program names. */
int broker_create(struct cfg *cfg, const char *bindir, struct broker **ret);

/* Starts the devices and the VMs. */
int broker_start(struct broker *b);

/* Stops everything; returns the exit status for --exit-with-vms: 0 when
 * every VM stopped by itself with status 0. NULL is fine. */
int broker_destroy(struct broker *b);

/* Called by a VM that stopped by itself. */
void broker_vm_stopped(struct broker *b, struct bvm *vm);

/* The number of VMs still running. */
unsigned broker_vms_running(struct broker *b);

/* One line for systemd's STATUS=: "2/3 VMs running, 5/5 devices ready". */
void broker_summary(struct broker *b, char *buf, size_t len);

/* Re-reads the configuration file: starts added VMs, stops removed ones,
 * refuses changes to a running VM. 0 or a negative errno, with the reason
 * (or what was done) in @why. */
int broker_reload(struct broker *b, char *why, size_t len);

int64_t broker_now_ms(void);

#endif
