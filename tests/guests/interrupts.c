/* irqfds (test_kvm.c, irqfd): vCPU 0 takes PIC line LINE through the
 * runtime and MSI vector MSI_VECTOR through a gate of its own, then asks
 * for each by a write to port RING (1: the line, 2: the MSI); the test's
 * default client writes the matching irqfd's eventfd before it completes the
 * write, and the guest waits until its handler has run.
 *
 * The runtime has no MSI vectors: this guest enables its LAPIC (SVR) and
 * writes an interrupt gate into the runtime's IDT from ring 3 (the VMM's
 * page tables let ring 3 write anything); the ring-0 stub counts and sends
 * the LAPIC its EOI. */
#include "check.h"

#define RING 0x630
#define LINE 5
#define MSI_VECTOR 0x40
#define LAPIC_SVR 0xfee000f0ull

static volatile unsigned line_fired;
__attribute__((used)) static volatile unsigned msi_fired;
void msi_entry(void);

__asm__(".pushsection .text\n"
	"msi_entry:\n"
	"	lock incl msi_fired(%rip)\n"
	"	pushq %rax\n"
	"	movl $0xfee000b0, %eax\n" /* the LAPIC's EOI register */
	"	movl $0, (%rax)\n"
	"	popq %rax\n"
	"	iretq\n"
	".popsection\n");

static void on_line(unsigned line)
{
	line_fired++;
}

static void msi_gate(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr;
	uint64_t h = (uint64_t)msi_entry;
	volatile uint64_t *gate;

	__asm__ volatile("sidt %0" : "=m"(idtr));
	gate = (volatile uint64_t *)(idtr.base + 16 * MSI_VECTOR);
	/* A present 64-bit interrupt gate to ring 0's code segment. */
	gate[1] = h >> 32;
	gate[0] = (h & 0xffff) | (uint64_t)RT_SEL_KCODE << 16 | 0x8eull << 40 | (h >> 16 & 0xffff) << 48;
	/* The LAPIC on, spurious vector 0xff. */
	mmio_write32(LAPIC_SVR, 0x1ff);
}

int guest_main(unsigned cpu, unsigned ncpus)
{
	if (cpu)
		return 0;
	rt_irq_enable(LINE, on_line);
	msi_gate();
	outl(RING, 1);
	rt_wait(&line_fired);
	CHECK_EQ(line_fired, 1);
	outl(RING, 2);
	rt_wait(&msi_fired);
	CHECK_EQ(msi_fired, 1);
	return 0;
}
