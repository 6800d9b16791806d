/* A device interrupt reaches the guest's handler (test_kvm.c, irq): the
 * test device at port 0x300 drives IRQ line 5 on command (1 assert, 0
 * deassert, 2 pulse); the handler, on vCPU 0 in ring 0, lowers the line. */
#include "check.h"

#define IRQ_DEV 0x300
#define LINE 5

static volatile unsigned fired, taken;

static void on_irq(unsigned line)
{
	outb(IRQ_DEV, 0);
	taken++;
	fired = 1;
}

int guest_main(unsigned cpu, unsigned ncpus)
{
	if (cpu)
		return 0;
	rt_irq_enable(LINE, on_irq);
	outb(IRQ_DEV, 1); /* level high, until the handler lowers it */
	rt_wait(&fired);
	CHECK_EQ(taken, 1);
	fired = 0;
	outb(IRQ_DEV, 2); /* a pulse */
	rt_wait(&fired);
	CHECK_EQ(taken, 2);
	/* Commands carried out: assert, deassert, pulse, deassert. */
	CHECK_EQ(inb(IRQ_DEV), 4);
	return 0;
}
