/* Guest RAM as every backend has it: one memfd, its size sealed
 * (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL: a device that holds it can
 * neither cut pages from under the guest nor grow it), every page allocated
 * at creation (fallocate: the broker's cgroup pays for it, not the device
 * that touches a page first, and a VM that starts never meets a SIGBUS),
 * mapped shared once by the backend (hsm_vm.mem).
 *
 * Huge pages: when the size is a multiple of 2 MiB and the host has a pool
 * of 2 MiB huge pages (vm.nr_hugepages > 0), the memfd is a hugetlb one, if
 * the pool can hold all of it; otherwise (and then with a note saying so)
 * ordinary 4 KiB pages. A device maps a hugetlb memfd the same way, with
 * offsets and lengths in whole huge pages (the regions are). Without a pool
 * nothing is tried: an operator who wants huge pages reserves them. */
#ifndef IOREQ_GUESTMEM_H
#define IOREQ_GUESTMEM_H

#include <stddef.h>
#include <stdint.h>

#include "hsm.h"

#define GUESTMEM_HUGE_PAGE (2ull << 20)

/* Creates @size bytes (a non-zero multiple of 4 KiB) of RAM for @vm, named
 * @name in /proc/PID/fd (the memfd's name), with no regions yet. 0, or a
 * negative errno with the reason in @note; @note may also hold a remark
 * when it succeeds (huge pages were not available). */
int guestmem_create(struct hsm_vm *vm, const char *name, uint64_t size, char *note, size_t len);

/* Maps [@gpa, @gpa + @size) of guest-physical space to @offset in the memfd.
 * -EINVAL: outside the memfd, overlapping a region, or no room. */
int guestmem_add_region(struct hsm_vm *vm, uint64_t gpa, uint64_t size, uint64_t offset);

/* The host address of guest-physical [@gpa, @gpa + @len), which must lie
 * inside one region (@len 0 included); NULL otherwise. */
uint8_t *guestmem_ptr(const struct hsm_vm *vm, uint64_t gpa, uint64_t len);

/* Copies @len bytes between guest-physical @gpa and @buf (to the guest
 * with @write) while the guest runs: its vCPUs may write the same bytes
 * at the same time, so each aligned 8 bytes (and each byte around them) is
 * loaded or stored once, whole, with a relaxed atomic: the copy is a
 * snapshot of each word, never a torn one, and races with a guest are not
 * data races of ours. 0, or -EFAULT where guestmem_ptr would give NULL. */
int guestmem_copy(const struct hsm_vm *vm, uint64_t gpa, void *buf, size_t len, bool write);

/* Unmaps and closes; the VM has no RAM afterwards. */
void guestmem_release(struct hsm_vm *vm);

#endif
