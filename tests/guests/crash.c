/* A guest that cannot go on (test_kvm.c, triple_fault): it wipes the IDT
 * (every page is writable from ring 3) and faults, so the fault cannot be
 * delivered: a triple fault, which the VMM reports and stops the VM for. */
#include "check.h"

int guest_main(unsigned cpu, unsigned ncpus)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr;

	if (cpu)
		return 0;
	__asm__ volatile("sidt %0" : "=m"(idtr));
	for (unsigned i = 0; i < (idtr.limit + 1u) / 8; i++)
		((volatile uint64_t *)idtr.base)[i] = 0;
	__asm__ volatile("ud2");
	return 0;
}
