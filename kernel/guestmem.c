/* Guest RAM: see guestmem.h. */
#include "guestmem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUESTMEM_PAGE 4096ull
#define GUESTMEM_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define HUGE_POOL "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"

#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21u << 26)
#endif

/* Whether the operator reserved 2 MiB huge pages at all. */
static bool guestmem_have_pool(void)
{
	char buf[32] = "";
	FILE *f = fopen(HUGE_POOL, "re");
	bool have;

	if (!f)
		return false;
	have = fgets(buf, sizeof(buf), f) && strtoull(buf, NULL, 10) > 0;
	fclose(f);
	return have;
}

/* A memfd of @size with every page allocated, its size sealed; -errno. */
static int guestmem_memfd(const char *name, uint64_t size, unsigned flags)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | flags), r;

	if (fd < 0)
		return -errno;
	/* fallocate before the seals: it may not grow the file afterwards,
	 * and it is the one place a short huge page pool shows. */
	if (ftruncate(fd, (off_t)size) < 0 || fallocate(fd, 0, 0, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, GUESTMEM_SEALS) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int guestmem_create(struct hsm_vm *vm, const char *name, uint64_t size, char *note, size_t len)
{
	char full[64];
	int fd = -1, r;
	void *map;

	note[0] = '\0';
	if (!size || size % GUESTMEM_PAGE) {
		snprintf(note, len, "guest RAM must be a non-zero multiple of 4 KiB");
		return -EINVAL;
	}
	snprintf(full, sizeof(full), "ioreq-guest-%s", name);
	if (size % GUESTMEM_HUGE_PAGE == 0 && guestmem_have_pool()) {
		fd = guestmem_memfd(full, size, MFD_HUGETLB | MFD_HUGE_2MB);
		if (fd < 0)
			snprintf(note, len, "2 MiB huge pages for %" PRIu64 " MiB of guest RAM: %s: 4 KiB pages instead",
				 size >> 20, strerror(-fd));
	}
	if (fd < 0)
		fd = guestmem_memfd(full, size, 0);
	if (fd < 0) {
		snprintf(note, len, "cannot allocate %" PRIu64 " bytes of guest RAM: %s", size, strerror(-fd));
		return fd;
	}
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		r = -errno;
		close(fd);
		snprintf(note, len, "cannot map %" PRIu64 " bytes of guest RAM: %s", size, strerror(-r));
		return r;
	}
	vm->mem_fd = fd;
	vm->mem_size = size;
	vm->mem = map;
	vm->n_regions = 0;
	return 0;
}

int guestmem_add_region(struct hsm_vm *vm, uint64_t gpa, uint64_t size, uint64_t offset)
{
	if (!size || offset > vm->mem_size || size > vm->mem_size - offset || gpa + size - 1 < gpa ||
	    vm->n_regions == HSM_MAX_MEM_REGIONS)
		return -EINVAL;
	for (unsigned i = 0; i < vm->n_regions; i++) {
		const struct hsm_mem_region *m = &vm->regions[i];

		if (gpa < m->gpa + m->size && m->gpa < gpa + size)
			return -EINVAL;
	}
	vm->regions[vm->n_regions++] = (struct hsm_mem_region){ .gpa = gpa, .size = size, .offset = offset };
	return 0;
}

uint8_t *guestmem_ptr(const struct hsm_vm *vm, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < vm->n_regions; i++) {
		const struct hsm_mem_region *m = &vm->regions[i];

		/* Written so that nothing overflows: gpa - m->gpa only once
		 * gpa is known to be inside. */
		if (gpa >= m->gpa && gpa - m->gpa < m->size && len <= m->size - (gpa - m->gpa))
			return vm->mem + m->offset + (gpa - m->gpa);
	}
	return NULL;
}

int guestmem_copy(const struct hsm_vm *vm, uint64_t gpa, void *buf, size_t len, bool write)
{
	uint8_t *g = guestmem_ptr(vm, gpa, len), *b = buf;
	size_t i = 0;

	if (!g)
		return -EFAULT;
	while (i < len) {
		uint64_t w;

		if ((uintptr_t)(g + i) % 8 || len - i < 8) {
			if (write)
				__atomic_store_n(g + i, b[i], __ATOMIC_RELAXED);
			else
				b[i] = __atomic_load_n(g + i, __ATOMIC_RELAXED);
			i++;
			continue;
		}
		if (write) {
			memcpy(&w, b + i, 8);
			__atomic_store_n((uint64_t *)(g + i), w, __ATOMIC_RELAXED);
		} else {
			w = __atomic_load_n((uint64_t *)(g + i), __ATOMIC_RELAXED);
			memcpy(b + i, &w, 8);
		}
		i += 8;
	}
	return 0;
}

void guestmem_release(struct hsm_vm *vm)
{
	if (vm->mem)
		munmap(vm->mem, vm->mem_size);
	if (vm->mem_fd >= 0)
		close(vm->mem_fd);
	vm->mem = NULL;
	vm->mem_fd = -1;
	vm->mem_size = 0;
	vm->n_regions = 0;
}
