/* ioreq-bench-alloc.so: see alloc_count.h.
 *
 * The allocator itself stays glibc's: each entry point counts, then calls
 * glibc's exported __libc_* twin, which needs no dlsym and so has no
 * bootstrap problem (dlsym itself allocates). */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc_count.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);

#define MAX_SEGMENTS 128

/* Executable segments and whose they are; written once by the constructor,
 * before any thread exists, read-only afterwards. */
static struct {
	uintptr_t start, end;
	enum alloc_origin origin;
} segs[MAX_SEGMENTS];
static unsigned n_segs;

/* Counts land here until the shared file is mapped, then there. */
static struct alloc_counts early;
static struct alloc_counts *counts = &early;

static enum alloc_origin origin_of(const char *name, int first)
{
	/* dl_iterate_phdr reports the executable first, with an empty name. */
	if (first || !name || !name[0])
		return ALLOC_EXE;
	if (strstr(name, "libnng"))
		return ALLOC_NNG;
	if (strstr(name, "/libc.so") || strstr(name, "/libc-"))
		return ALLOC_LIBC;
	return ALLOC_OTHER;
}

static int add_object(struct dl_phdr_info *info, size_t size, void *data)
{
	int *first = data;

	for (unsigned i = 0; i < info->dlpi_phnum && n_segs < MAX_SEGMENTS; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		segs[n_segs].start = info->dlpi_addr + ph->p_vaddr;
		segs[n_segs].end = segs[n_segs].start + ph->p_memsz;
		segs[n_segs].origin = origin_of(info->dlpi_name, *first);
		n_segs++;
	}
	*first = 0;
	return 0;
}

static enum alloc_origin classify(const void *caller)
{
	uintptr_t a = (uintptr_t)caller;

	for (unsigned i = 0; i < n_segs; i++)
		if (a >= segs[i].start && a < segs[i].end)
			return segs[i].origin;
	return ALLOC_OTHER;
}

static void count(const void *caller)
{
	__atomic_fetch_add(&counts->allocs[classify(caller)], 1, __ATOMIC_RELAXED);
}

__attribute__((constructor)) static void alloc_count_init(void)
{
	const char *dir = getenv(ALLOC_COUNT_ENV);
	struct alloc_counts *shared;
	char path[4096];
	int first = 1, fd;

	dl_iterate_phdr(add_object, &first);
	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/%d", dir, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (ftruncate(fd, sizeof(*shared)) == 0) {
		shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (shared != MAP_FAILED) {
			*shared = early;
			shared->magic = ALLOC_COUNT_MAGIC;
			counts = shared;
		}
	}
	close(fd);
}

void *malloc(size_t size)
{
	count(__builtin_return_address(0));
	return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	count(__builtin_return_address(0));
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	count(__builtin_return_address(0));
	return __libc_realloc(p, size);
}

void *reallocarray(void *p, size_t n, size_t size)
{
	size_t bytes;

	if (__builtin_mul_overflow(n, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	count(__builtin_return_address(0));
	return __libc_realloc(p, bytes);
}

void *memalign(size_t align, size_t size)
{
	count(__builtin_return_address(0));
	return __libc_memalign(align, size);
}

void *aligned_alloc(size_t align, size_t size)
{
	count(__builtin_return_address(0));
	return __libc_memalign(align, size);
}

int posix_memalign(void **ret, size_t align, size_t size)
{
	void *p;

	if (!align || (align & (align - 1)) || align % sizeof(void *))
		return EINVAL;
	count(__builtin_return_address(0));
	p = __libc_memalign(align, size);
	if (!p)
		return ENOMEM;
	*ret = p;
	return 0;
}

void *valloc(size_t size)
{
	count(__builtin_return_address(0));
	return __libc_memalign(sysconf(_SC_PAGESIZE), size);
}

void free(void *p)
{
	if (p)
		__atomic_fetch_add(&counts->frees, 1, __ATOMIC_RELAXED);
	__libc_free(p);
}
