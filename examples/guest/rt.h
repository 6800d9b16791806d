/* The guest runtime: what a program for the kvm backend links with.
 *
 * A program defines guest_main(), which every vCPU runs at once, in ring 3
 * (KVM-PVM emulates ring-0 code about 1000 times slower than it runs ring 3;
 * on hardware virtualization both are native). The runtime's ring-0 entry
 * (entry.S, rt_setup) installs a GDT with user segments, one TSS per vCPU
 * whose I/O permission bitmap allows every port, an IDT, programs the 8259
 * PICs (vCPU 0), and drops to ring 3 with IOPL 3 and interrupts on.
 *
 * When every vCPU has returned from guest_main, the last one writes the
 * first non-zero status (or 0) to the exit port RT_EXIT_PORT, which stops
 * the VM with that status; a vCPU that returns early parks (halts in ring 0).
 * An exception prints "rt: vcpu N: #GP (vector 13) error E at rip R cr2 A"
 * and exits with 128 + the vector. Ring 3 enters the runtime's ring-0
 * services (rt_wait, rt_park) with int3 (rtasm.h says why).
 *
 * Stacks: vCPU i's VMM stack (kvm.h) is split: its top RT_KSTACK_SIZE bytes
 * are the ring-0 stack (interrupts, TSS.rsp0), the rest the ring-3 stack.
 *
 * Interrupt handlers (rt_irq_enable) run in ring 0 on vCPU 0, where the PICs
 * deliver, with interrupts off: keep them short, no printing (the print lock
 * may be held by the code they interrupted).
 */
#ifndef GUEST_RT_H
#define GUEST_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtasm.h"

#define RT_MAX_CPUS 16
#define RT_EXIT_PORT 0xf4
#define RT_UART_BASE 0x3f8
#define RT_IRQ_LINES 16

/* The program: runs on every vCPU in ring 3. Returns its status (0 = pass). */
int guest_main(unsigned cpu, unsigned ncpus);

/* ---- port I/O (any ring: IOPL 3 and the TSS bitmap allow every port) ---- */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;

	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* String I/O: one instruction, @n elements, in order. */
static inline void outsb(uint16_t port, const void *buf, size_t n)
{
	__asm__ volatile("rep outsb" : "+S"(buf), "+c"(n) : "d"(port) : "memory");
}

static inline void insb(uint16_t port, void *buf, size_t n)
{
	__asm__ volatile("rep insb" : "+D"(buf), "+c"(n) : "d"(port) : "memory");
}

static inline void outsw(uint16_t port, const void *buf, size_t n)
{
	__asm__ volatile("rep outsw" : "+S"(buf), "+c"(n) : "d"(port) : "memory");
}

static inline void insw(uint16_t port, void *buf, size_t n)
{
	__asm__ volatile("rep insw" : "+D"(buf), "+c"(n) : "d"(port) : "memory");
}

/* ---- MMIO: exactly one access of the named width ---- */

static inline uint8_t mmio_read8(uint64_t addr)
{
	uint8_t v;

	__asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(addr) : "memory");
	return v;
}

static inline uint16_t mmio_read16(uint64_t addr)
{
	uint16_t v;

	__asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(addr) : "memory");
	return v;
}

static inline uint32_t mmio_read32(uint64_t addr)
{
	uint32_t v;

	__asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(addr) : "memory");
	return v;
}

static inline uint64_t mmio_read64(uint64_t addr)
{
	uint64_t v;

	__asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(addr) : "memory");
	return v;
}

static inline void mmio_write8(uint64_t addr, uint8_t v)
{
	__asm__ volatile("movb %0, (%1)" : : "q"(v), "r"(addr) : "memory");
}

static inline void mmio_write16(uint64_t addr, uint16_t v)
{
	__asm__ volatile("movw %0, (%1)" : : "r"(v), "r"(addr) : "memory");
}

static inline void mmio_write32(uint64_t addr, uint32_t v)
{
	__asm__ volatile("movl %0, (%1)" : : "r"(v), "r"(addr) : "memory");
}

static inline void mmio_write64(uint64_t addr, uint64_t v)
{
	__asm__ volatile("movq %0, (%1)" : : "r"(v), "r"(addr) : "memory");
}

static inline void rt_pause(void)
{
	__asm__ volatile("pause");
}

/* ---- output over the 16550 UART at RT_UART_BASE ---- */

/* Formats and prints whole, under a lock, so lines of several vCPUs do
 * not mix: %c %s %d %u %x %p, with a width, the 0 flag, and l/ll/z. */
void rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rt_snprintf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int rt_vsnprintf(char *buf, size_t len, const char *fmt, va_list ap);

/* ---- PCI configuration mechanism #1 (0xCF8/0xCFC), under a lock ---- */

#define RT_BDF(bus, dev, fn) ((uint32_t)(bus) << 8 | (uint32_t)(dev) << 3 | (uint32_t)(fn))

uint32_t rt_pci_read(uint32_t bdf, unsigned reg, unsigned size);
void rt_pci_write(uint32_t bdf, unsigned reg, unsigned size, uint32_t value);

/* ---- interrupts ---- */

typedef void (*rt_irq_fn)(unsigned line);

/* Calls @fn for every interrupt on PIC line @line (0..15, vector 0x20 +
 * line) and unmasks the line. Call on vCPU 0 before the device may raise it. */
void rt_irq_enable(unsigned line, rt_irq_fn fn);

/* MSIs: the local APIC of vCPU 0 (APIC ID 0) delivers them, at the
 * runtime's vectors RT_MSI_VECTOR.. (the APIC is switched on at the first
 * call). Allocates a vector whose every message calls @fn(@arg) in ring 0
 * on vCPU 0, and returns the message to program into the device (fixed
 * delivery, edge, physical destination 0): *@ret_addr, *@ret_data. -1 when
 * all RT_MSI_VECTORS are taken. Call from any vCPU; wait on vCPU 0. */
typedef void (*rt_msi_fn)(void *arg);
int rt_msi_alloc(rt_msi_fn fn, void *arg, uint64_t *ret_addr, uint32_t *ret_data);

/* Sleeps (halted, in ring 0) until *@flag is non-zero; the interrupts that
 * set it must come to this vCPU. Checked with interrupts off: no lost wake-up. */
void rt_wait(volatile unsigned *flag);

/* ---- the end ---- */

/* Stops the VM at once with @status (the exit port). */
__attribute__((noreturn)) void rt_exit(unsigned status);

/* Halts this vCPU for good. */
__attribute__((noreturn)) void rt_park(void);

#endif
