/* A sorted table of non-overlapping ranges with O(log n) lookup: one per VM
 * and kind (PIO, MMIO, PCI BDFs). Not thread-safe: the VM guards it. */
#ifndef IOREQ_RANGEMAP_H
#define IOREQ_RANGEMAP_H

#include <stddef.h>
#include <stdint.h>

struct rangemap_entry {
	uint64_t start, end; /* inclusive */
	void *owner;
	uint32_t tag;        /* the owner's index for this range */
};

struct rangemap {
	struct rangemap_entry *v;
	size_t n, cap;
};

/* -EINVAL when end < start, -EEXIST when it overlaps an entry (returned in
 * *ret_conflict when that is not NULL), -ENOMEM. */
int rangemap_add(struct rangemap *m, uint64_t start, uint64_t end, void *owner, uint32_t tag,
		 const struct rangemap_entry **ret_conflict);

/* The entry containing the whole of [start, end], or NULL. */
const struct rangemap_entry *rangemap_find(const struct rangemap *m, uint64_t start, uint64_t end);

/* Removes the entry exactly [start, end] of @owner: 0 or -ENOENT. */
int rangemap_remove(struct rangemap *m, uint64_t start, uint64_t end, const void *owner);

/* Removes every entry of @owner (NULL: of anyone) whose tag has @flag. */
void rangemap_remove_tagged(struct rangemap *m, const void *owner, uint32_t flag);

void rangemap_fini(struct rangemap *m);

#endif
