/* The broker as a whole: its configuration, its runtime directory (locked:
 * one broker per directory), its VMs, and reloads.
 *
 * The list of VMs changes only on a reload, under a write lock; whoever
 * reads it (the control commands, the status line) holds the read lock
 * while using what it found. Configurations a reload replaced are kept
 * until exit, since VMs that did not change still point into them. */
#ifndef IOREQ_BROKER_H
#define IOREQ_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct broker;
struct bvm;

/* Creates the broker for @cfg (taking it over); nothing runs yet.
 * @bindir: where ioreq-launch is, and where reloads look for bare program
 * names. */
int broker_create(struct cfg *cfg, const char *bindir, struct broker **ret);

/* Locks the runtime directory, opens the cgroup tree, sets up the VMs. */
int broker_start(struct broker *b);

/* Starts the VMs that start with the broker. */
int broker_autostart(struct broker *b);

/* Where the broker keeps its sockets. */
const char *broker_runtime_dir(const struct broker *b);

/* Stops every VM (all at once) and frees everything; NULL is fine.
 * Returns the exit status for --exit-with-vms: 0 when every VM that
 * started with the broker stopped by itself with status 0. */
int broker_destroy(struct broker *b);

/* Readable (an eventfd) when a VM's state changed. */
int broker_changed_fd(const struct broker *b);

/* The number of VMs running. */
unsigned broker_vms_running(struct broker *b);

/* One line for systemd's STATUS=: "2/3 VMs running, 5/5 devices ready". */
void broker_summary(struct broker *b, char *buf, size_t len);

/* Re-reads the configuration file: starts added VMs, stops removed ones,
 * refuses changes to a running VM. 0 or a negative errno, with the reason
 * (or what was done) in @why. */
int broker_reload(struct broker *b, char *why, size_t len);

/* The VM list, for readers: between read_lock and read_unlock the VMs
 * found stay, and so does the configuration. */
void broker_read_lock(struct broker *b);
void broker_read_unlock(struct broker *b);
const struct cfg *broker_cfg(const struct broker *b);
size_t broker_n_vms(const struct broker *b);
struct bvm *broker_vm(const struct broker *b, size_t i);
struct bvm *broker_find_vm(const struct broker *b, const char *name);

int64_t broker_uptime_ms(const struct broker *b);

#endif
