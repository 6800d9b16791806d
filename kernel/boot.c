/* Booting a guest image: see boot.h for the guest ABI. */
#include "boot.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOOT_MAX_PHDRS 64

/* Page-table entry bits. */
#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_PS 0x80ull

#define PAGE_2M (2ull << 20)

static int boot_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENOEXEC;
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

static int boot_check_ehdr(const Elf64_Ehdr *eh)
{
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64 || eh->e_type != ET_EXEC ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) || !eh->e_phnum || eh->e_phnum > BOOT_MAX_PHDRS)
		return -ENOEXEC;
	return 0;
}

/* A flat GDT and page tables that identity-map the low 4 GiB with 2 MiB
 * pages (the CPUs here offer no 1 GiB pages), user-accessible so the guest's
 * ring 3 can use them unchanged. */
static void boot_build_tables(uint8_t *low)
{
	uint64_t *gdt = (uint64_t *)(low + BOOT_GDT_ADDR);
	uint64_t *pml4 = (uint64_t *)(low + BOOT_PML4_ADDR);
	uint64_t *pdpt = pml4 + 512;
	uint64_t *pd = pdpt + 512;

	gdt[0] = 0;
	gdt[BOOT_SEL_CODE / 8] = BOOT_CODE_DESC;
	gdt[BOOT_SEL_DATA / 8] = BOOT_DATA_DESC;
	pml4[0] = (BOOT_PML4_ADDR + 0x1000) | PTE_P | PTE_RW | PTE_US;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PML4_ADDR + 0x2000 + i * 0x1000) | PTE_P | PTE_RW | PTE_US;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i * PAGE_2M) | PTE_P | PTE_RW | PTE_US | PTE_PS;
}

int boot_load(const char *path, uint8_t *low, uint64_t low_size, unsigned vcpus, uint64_t *ret_entry, char *why,
	      size_t len)
{
	uint64_t stacks = (uint64_t)vcpus * BOOT_STACK_SIZE, top;
	Elf64_Phdr ph[BOOT_MAX_PHDRS];
	const char *bad = "not a static ELF64 x86-64 executable";
	unsigned loaded = 0;
	Elf64_Ehdr eh;
	struct stat st;
	int fd, r;

	if (low_size < BOOT_RESERVED_END + stacks) {
		snprintf(why, len, "RAM at 0 (0x%llx bytes) cannot hold the VMM's tables and %u stacks of 0x%llx",
			 (unsigned long long)low_size, vcpus, BOOT_STACK_SIZE);
		return -EINVAL;
	}
	top = low_size - stacks;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(why, len, "image %s: %s", path, strerror(-r));
		return r;
	}
	r = fstat(fd, &st) < 0 ? -errno : 0;
	if (!r)
		r = boot_pread_all(fd, &eh, sizeof(eh), 0);
	if (!r)
		r = boot_check_ehdr(&eh);
	if (!r)
		r = boot_pread_all(fd, ph, eh.e_phnum * sizeof(ph[0]), eh.e_phoff);
	for (unsigned i = 0; !r && i < eh.e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];

		if (p->p_type != PT_LOAD || !p->p_memsz)
			continue;
		if (p->p_filesz > p->p_memsz || p->p_offset + p->p_filesz < p->p_offset ||
		    p->p_offset + p->p_filesz > (uint64_t)st.st_size) {
			r = -ENOEXEC;
			break;
		}
		if (p->p_paddr < BOOT_RESERVED_END || p->p_paddr > top || p->p_memsz > top - p->p_paddr) {
			snprintf(why, len, "image %s: segment 0x%llx..0x%llx outside RAM for images 0x%llx..0x%llx", path,
				 (unsigned long long)p->p_paddr, (unsigned long long)(p->p_paddr + p->p_memsz - 1),
				 BOOT_RESERVED_END, (unsigned long long)top - 1);
			bad = NULL;
			r = -ENOEXEC;
			break;
		}
		r = boot_pread_all(fd, low + p->p_paddr, p->p_filesz, p->p_offset);
		loaded++;
	}
	close(fd);
	if (!r && (!loaded || eh.e_entry < BOOT_RESERVED_END || eh.e_entry >= top))
		r = -ENOEXEC;
	if (r < 0) {
		if (bad)
			snprintf(why, len, "image %s: %s", path, r == -ENOEXEC ? bad : strerror(-r));
		return r;
	}
	boot_build_tables(low);
	*ret_entry = eh.e_entry;
	return 0;
}

void boot_regs(uint64_t entry, uint64_t low_size, unsigned index, unsigned count, struct boot_regs *ret)
{
	*ret = (struct boot_regs){
		.rip = entry,
		.rsp = low_size - (uint64_t)index * BOOT_STACK_SIZE,
		.rdi = index,
		.rsi = count,
		.rflags = 0x2,
		.cr0 = BOOT_CR0_PE | BOOT_CR0_MP | BOOT_CR0_ET | BOOT_CR0_NE | BOOT_CR0_PG,
		.cr3 = BOOT_PML4_ADDR,
		.cr4 = BOOT_CR4_PAE,
		.efer = BOOT_EFER_LME | BOOT_EFER_LMA,
		.gdt_base = BOOT_GDT_ADDR,
		.gdt_limit = BOOT_GDT_LIMIT,
		.sel_code = BOOT_SEL_CODE,
		.sel_data = BOOT_SEL_DATA,
	};
}
