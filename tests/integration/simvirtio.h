/* A virtio-pci driver for a sim vCPU's script: what the virtio tests write
 * into cpu0.txt to drive a virtio device as Linux's driver would (BAR0
 * through configuration space, the status handshake, queues in guest RAM
 * written with mem statements, notifications, the used ring waited for).
 * Shared by test_virtio_sim (local devices) and test_remote (a remote one,
 * whose guest memory is reached through messages). */
#ifndef IOREQ_TEST_SIMVIRTIO_H
#define IOREQ_TEST_SIMVIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

#define BAR 0xe1000000ull
#define BDF "00:04.0"
#define COMMON(off) (BAR + (off))
#define NOTIFY(q) (BAR + 0x3000 + 4 * (q))
#define ISR (BAR + 0x1000)
#define DEVCFG(off) (BAR + 0x2000 + (off))
#define QSIZE 8
/* Queue q's rings and its buffers' area in guest RAM. */
#define RING(q) (0x100000ull + (uint64_t)(q) * 0x100000)
#define DESC(q) RING(q)
#define AVAIL(q) (RING(q) + 0x1000)
#define USED(q) (RING(q) + 0x2000)
#define BUF(q) (RING(q) + 0x10000)

#define F_NEXT 1
#define F_WRITE 2

/* The script so far. */
extern struct harness_script sim_script;

/* Appends a line to the script. */
__attribute__((format(printf, 1, 2))) void s(const char *fmt, ...);

/* An empty script, queues at their first index. */
void s_reset(void);

/* BAR0 at BAR, decoding and bus master on; the device's identity (virtio
 * device @type). */
void s_bar(unsigned type);

/* Reset, ACKNOWLEDGE, DRIVER, VERSION_1 and @features (low word) accepted,
 * FEATURES_OK, @nq queues of QSIZE with empty rings, DRIVER_OK. */
void s_init(unsigned nq, uint32_t features);

struct seg {
	uint64_t addr;
	uint32_t len;
	bool write;
};

/* Makes the chain @segs available on queue @q (descriptors from 0: one
 * chain in flight at a time) and rings its doorbell. */
void s_chain(unsigned q, const struct seg *segs, unsigned n);

/* Waits for the chain's use: head 0, @len bytes written ("any": anything). */
void s_used(unsigned q, const char *len);

/* A virtio-blk request: header at BUF, data at BUF + 0x1000 (@len bytes,
 * device-writable if @data_in), status at BUF + 0x100; the status must come
 * back as @status, the used length as @written. */
void s_blk(uint32_t type, uint64_t sector, uint32_t len, bool data_in, unsigned status, const char *written);

/* On an image whose sector i is all 'a' + i % 26: sector 3 read (all
 * 'd'), two sectors at 5 written from a pattern of the guest's (first 8
 * bytes 0x0123456789abcdef, last 8 0xfedcba9876543210) and read back. */
void s_blk_read_write(void);

#endif
