/* The allocation counter: ioreq-bench-alloc.so, preloaded (LD_PRELOAD) into
 * a benchmark process and everything it starts, counts every malloc,
 * calloc, realloc and aligned allocation, by the object that called it.
 *
 * With $IOREQ_BENCH_ALLOC_DIR set, each process keeps its counters in the
 * shared file DIR/PID (struct alloc_counts), which any other process can
 * read at any moment: the benchmark takes a snapshot of itself and of its
 * peer (a device, a pong) around a run of requests and divides. Attribution
 * is by the immediate caller's object, read from the return address: the
 * executable (our code: the broker or libioreq-device are linked in), libnng
 * (its messages), libc (its own helpers: strdup, fopen, thread stacks), or
 * anything else. */
#ifndef IOREQ_BENCH_ALLOC_COUNT_H
#define IOREQ_BENCH_ALLOC_COUNT_H

#include <stdint.h>

#define ALLOC_COUNT_ENV "IOREQ_BENCH_ALLOC_DIR"
#define ALLOC_COUNT_MAGIC 0x696f72657161636eull

enum alloc_origin {
	ALLOC_EXE,   /* the program itself */
	ALLOC_NNG,   /* libnng */
	ALLOC_LIBC,  /* libc */
	ALLOC_OTHER, /* any other library, or an unknown caller */
	ALLOC_ORIGINS,
};

struct alloc_counts {
	uint64_t magic;
	uint64_t allocs[ALLOC_ORIGINS];
	uint64_t frees;
};

#endif
