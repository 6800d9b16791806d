/* The data-plane figures' contract between ioreq-bench, its device
 * (ioreq-bench-dev, benchdev.c) and its kvm guest (dplane_guest.c): ports
 * and guest-physical addresses only, so that the freestanding guest can
 * include it too.
 *
 * The device serves DP_PORT + 0x00..0x1f, 4-byte accesses:
 *   DP_COPY         write: how many bytes the next copies take (at most
 *                   DP_COPY_MAX); read: copies that many from DP_SRC into
 *                   the device's own buffer through ioreq_mem_read and
 *                   answers how long the copy took (ns)
 *   DP_WRITE        write: stored at DP_SHARED + DP_WRITTEN (the doorbell's
 *                   baseline: the same write as a request through the broker)
 *   DP_BELL_ACK     doorbell (an ioeventfd): the device's doorbell thread
 *                   adds the count to its rings and stores them at
 *                   DP_SHARED + DP_ACK
 *   DP_BELL_IRQFD   doorbell: the thread stores CLOCK_MONOTONIC (ns) at
 *                   DP_SHARED + DP_T0, then writes its irqfd (IRQ line
 *                   DP_IRQ_LINE)
 *   DP_BELL_IRQMSG  doorbell: the same, then sends the protocol's Interrupt
 *                   (ioreq_dev_irq, a pulse of DP_IRQ_LINE)
 * Once its doorbells and irqfd are bound it stores DP_READY_MAGIC at
 * DP_SHARED + DP_READY; a guest waits for that before its first ring. */
#ifndef IOREQ_BENCH_DPLANE_H
#define IOREQ_BENCH_DPLANE_H

#define DP_PORT 0x530
#define DP_PORT_RANGE "0x530+0x20"
#define DP_COPY 0x00
#define DP_WRITE 0x04
#define DP_BELL_ACK 0x08
#define DP_BELL_IRQFD 0x0c
#define DP_BELL_IRQMSG 0x10

#define DP_IRQ_LINE 5

/* One page the guest and the device share (below it the kvm guest's image,
 * above it the copy source, the VMM's stacks at the top of RAM). */
#define DP_SHARED 0x400000ull
#define DP_READY 0x00   /* u32 */
#define DP_ACK 0x04     /* u32 */
#define DP_WRITTEN 0x08 /* u32 */
#define DP_T0 0x10      /* u64 */
#define DP_READY_MAGIC 0x52454459u

#define DP_SRC 0x500000ull
#define DP_COPY_MAX (1u << 20)
/* Guest RAM of the data-plane VMs: room for all of the above. */
#define DP_MEMORY "16M"

#endif
