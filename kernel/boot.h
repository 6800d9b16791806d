/* Booting a guest image: what the kvm and acrn backends put into guest RAM
 * and the state each vCPU starts in. The guest ABI:
 *
 *  - The image is a static ELF64 x86-64 executable; its PT_LOAD segments are
 *    copied to their physical addresses (p_paddr), the rest of each segment
 *    (BSS) is zero, as is all other RAM. Segments must lie inside
 *    [BOOT_RESERVED_END, low - vcpus * BOOT_STACK_SIZE), where low is the
 *    size of the RAM region at guest-physical 0.
 *  - [0, BOOT_RESERVED_END) holds what the VMM sets up: a GDT at
 *    BOOT_GDT_ADDR (null, 64-bit code BOOT_SEL_CODE, data BOOT_SEL_DATA),
 *    page tables at BOOT_PML4_ADDR.. that identity-map the low 4 GiB with
 *    2 MiB pages, every level present, writable and user-accessible (U), so
 *    ring 3 can use them as they are. The guest may replace all of it.
 *  - A vCPU starts at e_entry in 64-bit ring 0 (EFER.LME|LMA, CR0.PE|PG,
 *    CR4.PAE, CR3 = BOOT_PML4_ADDR), RFLAGS = 0x2 (interrupts off),
 *    RDI = its index, RSI = the count of vCPUs that start there, RSP = the
 *    top of its own stack: vCPU i's stack is the BOOT_STACK_SIZE bytes below
 *    low - i * BOOT_STACK_SIZE. kvm starts every vCPU so; acrn only the boot
 *    vCPU (RSI = 1): the hypervisor keeps the others waiting for INIT/SIPI.
 */
#ifndef IOREQ_BOOT_H
#define IOREQ_BOOT_H

#include <stddef.h>
#include <stdint.h>

#define BOOT_GDT_ADDR 0x1000ull
#define BOOT_PML4_ADDR 0x2000ull
#define BOOT_RESERVED_END 0x8000ull
#define BOOT_SEL_CODE 0x08
#define BOOT_SEL_DATA 0x10
#define BOOT_GDT_LIMIT (3 * 8 - 1)
#define BOOT_STACK_SIZE 0x10000ull

#define BOOT_CR0_PE 0x1ull
#define BOOT_CR0_MP 0x2ull
#define BOOT_CR0_ET 0x10ull
#define BOOT_CR0_NE 0x20ull
#define BOOT_CR0_PG 0x80000000ull
#define BOOT_CR4_PAE 0x20ull
#define BOOT_EFER_LME 0x100ull
#define BOOT_EFER_LMA 0x400ull

/* The GDT's descriptors (flat, base 0, limit 4 GiB). */
#define BOOT_CODE_DESC 0x00af9a000000ffffull /* 64-bit code, DPL 0 */
#define BOOT_DATA_DESC 0x00cf92000000ffffull /* read/write data, DPL 0 */

/* One vCPU's first state; segments are the GDT's two, base 0. */
struct boot_regs {
	uint64_t rip, rsp, rdi, rsi, rflags;
	uint64_t cr0, cr3, cr4, efer;
	uint64_t gdt_base;
	uint16_t gdt_limit;
	uint16_t sel_code, sel_data;
};

/* Loads the image at @path into @low (the RAM region at guest-physical 0,
 * @low_size bytes, all zero) for @vcpus stacks, and writes the VMM's GDT and
 * page tables there. *@ret_entry: the entry point. -ENOEXEC (or the open or
 * read error) with the reason in @why. */
int boot_load(const char *path, uint8_t *low, uint64_t low_size, unsigned vcpus, uint64_t *ret_entry, char *why,
	      size_t len);

/* The state of vCPU @index of the @count that start at @entry. */
void boot_regs(uint64_t entry, uint64_t low_size, unsigned index, unsigned count, struct boot_regs *ret);

#endif
