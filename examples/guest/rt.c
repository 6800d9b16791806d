/* The guest runtime: ring-0 setup, the trap handler, and the ring-3 library
 * (printing, PCI config access, interrupts, the exit). See rt.h. */
#include "rt.h"

/* The 64-bit TSS and, right after it, an I/O permission bitmap that allows
 * every port: KVM-PVM consults it even at IOPL 3 == CPL. The CPU reads a byte
 * past the last port's bit, hence the 0xff terminator. */
struct rt_tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
	uint8_t iomap[65536 / 8];
	uint8_t iomap_end;
} __attribute__((packed));

struct rt_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

extern const uint64_t rt_vectors[RT_NR_VECTORS];

/* Null, kernel code and data, user data and code, then a 16-byte TSS
 * descriptor per vCPU (rt_setup fills its own). */
static uint64_t rt_gdt[RT_SEL_TSS / 8 + 2 * RT_MAX_CPUS] __attribute__((aligned(16))) = {
	[RT_SEL_KCODE / 8] = 0x00af9a000000ffffull,
	[RT_SEL_KDATA / 8] = 0x00cf92000000ffffull,
	[RT_SEL_UDATA / 8] = 0x00cff2000000ffffull,
	[RT_SEL_UCODE / 8] = 0x00affa000000ffffull,
};
static uint64_t rt_idt[256 * 2] __attribute__((aligned(16)));
static struct rt_tss rt_tss[RT_MAX_CPUS] __attribute__((aligned(16)));
static rt_irq_fn rt_irq_handlers[RT_IRQ_LINES];
static struct {
	rt_msi_fn fn;
	void *arg;
} rt_msi_handlers[RT_MSI_VECTORS];
static unsigned rt_msi_used;
/* The PICs' masks: all lines but the cascade (2) start masked. */
static uint16_t rt_irq_mask = 0xfffb;

struct rt_desc_ptr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

static void rt_set_gate(unsigned vector, uint64_t handler, unsigned dpl)
{
	/* Present 64-bit interrupt gate: IF is off in the handler. */
	rt_idt[2 * vector] = (handler & 0xffff) | (uint64_t)RT_SEL_KCODE << 16 | (0x8eull | dpl << 5) << 40 |
			     (handler >> 16 & 0xffff) << 48;
	rt_idt[2 * vector + 1] = handler >> 32;
}

/* ICW1..4: cascade, vectors 0x20 and 0x28, 8086 mode; then the masks. */
static void rt_pic_init(void)
{
	outb(0x20, 0x11);
	outb(0xa0, 0x11);
	outb(0x21, RT_IRQ_VECTOR);
	outb(0xa1, RT_IRQ_VECTOR + 8);
	outb(0x21, 0x04);
	outb(0xa1, 0x02);
	outb(0x21, 0x01);
	outb(0xa1, 0x01);
	outb(0x21, rt_irq_mask & 0xff);
	outb(0xa1, rt_irq_mask >> 8);
}

/* Ring 0, once per vCPU, from entry.S: as little as possible, since KVM-PVM
 * emulates every instruction here. Every vCPU writes the same IDT; that is
 * cheaper than making the others wait for vCPU 0 in emulated code. */
void rt_setup(unsigned cpu, unsigned ncpus, uint64_t stack_top);
void rt_setup(unsigned cpu, unsigned ncpus, uint64_t stack_top)
{
	struct rt_tss *tss = &rt_tss[cpu];
	uint64_t base = (uint64_t)tss, limit = sizeof(*tss) - 1;
	unsigned sel = RT_SEL_TSS + 16 * cpu;
	struct rt_desc_ptr gdtr = { sizeof(rt_gdt) - 1, (uint64_t)rt_gdt };
	struct rt_desc_ptr idtr = { sizeof(rt_idt) - 1, (uint64_t)rt_idt };

	tss->rsp[0] = stack_top;
	tss->iomap_base = __builtin_offsetof(struct rt_tss, iomap);
	tss->iomap_end = 0xff;
	rt_gdt[sel / 8] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ull << 40 | (limit >> 16 & 0xf) << 48 |
			  (base >> 24 & 0xff) << 56;
	rt_gdt[sel / 8 + 1] = base >> 32;
	for (unsigned v = 0; v < RT_NR_VECTORS; v++)
		rt_set_gate(v, rt_vectors[v], v == RT_SYSCALL_VECTOR ? 3 : 0);
	__asm__ volatile("lgdt %0" : : "m"(gdtr));
	__asm__ volatile("lidt %0" : : "m"(idtr));
	__asm__ volatile("ltr %w0" : : "r"(sel));
	if (cpu == 0)
		rt_pic_init();
}

/* ---- memory, the few functions the compiler may call ---- */

void *memset(void *s, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);

void *memset(void *s, int c, size_t n)
{
	uint8_t *p = s;

	while (n--)
		*p++ = (uint8_t)c;
	return s;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

/* ---- formatting ---- */

struct rt_out {
	char *buf;
	size_t len, pos;
};

static void rt_put(struct rt_out *o, char c)
{
	if (o->pos + 1 < o->len)
		o->buf[o->pos] = c;
	o->pos++;
}

static void rt_put_num(struct rt_out *o, uint64_t v, unsigned base, bool neg, unsigned width, char pad)
{
	char digits[24];
	unsigned n = 0;

	do {
		digits[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		digits[n++] = '-';
	while (width > n) {
		rt_put(o, pad);
		width--;
	}
	while (n)
		rt_put(o, digits[--n]);
}

int rt_vsnprintf(char *buf, size_t len, const char *fmt, va_list ap)
{
	struct rt_out o = { buf, len, 0 };

	for (; *fmt; fmt++) {
		unsigned width = 0, lng = 0;
		char pad = ' ';
		uint64_t u;
		int64_t s;

		if (*fmt != '%') {
			rt_put(&o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (unsigned)(*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 'c':
			rt_put(&o, (char)va_arg(ap, int));
			break;
		case 's':
			for (const char *p = va_arg(ap, const char *); *p; p++)
				rt_put(&o, *p);
			break;
		case 'd':
			s = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			rt_put_num(&o, s < 0 ? -(uint64_t)s : (uint64_t)s, 10, s < 0, width, pad);
			break;
		case 'u':
		case 'x':
			u = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			rt_put_num(&o, u, *fmt == 'u' ? 10 : 16, false, width, pad);
			break;
		case 'p':
			rt_put(&o, '0');
			rt_put(&o, 'x');
			rt_put_num(&o, (uint64_t)va_arg(ap, void *), 16, false, width, pad);
			break;
		case '%':
			rt_put(&o, '%');
			break;
		default:
			return -1;
		}
	}
	if (len)
		buf[o.pos < len ? o.pos : len - 1] = '\0';
	return (int)o.pos;
}

int rt_snprintf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = rt_vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

/* ---- locks (ring 3 runs natively: plain atomics) ---- */

static void rt_lock(volatile unsigned *l)
{
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
		rt_pause();
}

static void rt_unlock(volatile unsigned *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* ---- the UART ---- */

#define UART_LSR 5
#define UART_LSR_THRE 0x20

static volatile unsigned rt_print_lock;

static void rt_uart_write(const char *s)
{
	for (; *s; s++) {
		/* All ones (no UART) has THRE set too: never stuck. */
		while (!(inb(RT_UART_BASE + UART_LSR) & UART_LSR_THRE))
			rt_pause();
		outb(RT_UART_BASE, (uint8_t)*s);
	}
}

void rt_printf(const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	rt_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	rt_lock(&rt_print_lock);
	rt_uart_write(line);
	rt_unlock(&rt_print_lock);
}

/* ---- PCI: 0xCF8 is one latch for the whole VM, hence the lock ---- */

static volatile unsigned rt_pci_lock;

static uint16_t rt_pci_select(uint32_t bdf, unsigned reg)
{
	outl(0xcf8, 0x80000000u | bdf << 8 | (reg & 0xfc));
	return (uint16_t)(0xcfc + (reg & 3));
}

uint32_t rt_pci_read(uint32_t bdf, unsigned reg, unsigned size)
{
	uint32_t v;
	uint16_t port;

	rt_lock(&rt_pci_lock);
	port = rt_pci_select(bdf, reg);
	v = size == 1 ? inb(port) : size == 2 ? inw(port) : inl(port);
	rt_unlock(&rt_pci_lock);
	return v;
}

void rt_pci_write(uint32_t bdf, unsigned reg, unsigned size, uint32_t value)
{
	uint16_t port;

	rt_lock(&rt_pci_lock);
	port = rt_pci_select(bdf, reg);
	if (size == 1)
		outb(port, (uint8_t)value);
	else if (size == 2)
		outw(port, (uint16_t)value);
	else
		outl(port, value);
	rt_unlock(&rt_pci_lock);
}

/* ---- interrupts and the ring-0 services ---- */

void rt_irq_enable(unsigned line, rt_irq_fn fn)
{
	rt_irq_handlers[line] = fn;
	rt_irq_mask &= (uint16_t) ~(1u << line);
	if (line >= 8)
		outb(0xa1, rt_irq_mask >> 8);
	else
		outb(0x21, rt_irq_mask & 0xff);
}

#define RT_LAPIC 0xfee00000ull
#define RT_LAPIC_EOI 0x0b0
#define RT_LAPIC_SVR 0x0f0
#define RT_LAPIC_SVR_ENABLE 0x100
#define RT_MSI_SPURIOUS 0xff

static volatile unsigned rt_msi_lock;

/* The APIC's registers are MMIO that KVM emulates: ring 3 may write them
 * (the VMM's page tables are user-accessible). */
int rt_msi_alloc(rt_msi_fn fn, void *arg, uint64_t *ret_addr, uint32_t *ret_data)
{
	unsigned i;

	rt_lock(&rt_msi_lock);
	i = rt_msi_used;
	if (i < RT_MSI_VECTORS) {
		rt_msi_handlers[i].fn = fn;
		rt_msi_handlers[i].arg = arg;
		rt_msi_used = i + 1;
		if (i == 0)
			mmio_write32(RT_LAPIC + RT_LAPIC_SVR, RT_LAPIC_SVR_ENABLE | RT_MSI_SPURIOUS);
	}
	rt_unlock(&rt_msi_lock);
	if (i == RT_MSI_VECTORS)
		return -1;
	*ret_addr = RT_LAPIC; /* destination ID 0, physical */
	*ret_data = RT_MSI_VECTOR + i;
	return 0;
}

/* The trap entry saves and restores every register. */
static void rt_syscall(long which, const volatile void *arg)
{
	__asm__ volatile("int3" : : "D"(which), "S"(arg) : "memory");
}

void rt_wait(volatile unsigned *flag)
{
	while (!*flag)
		rt_syscall(RT_SYS_WAIT, flag);
}

void rt_park(void)
{
	for (;;)
		rt_syscall(RT_SYS_PARK, 0);
}

void rt_exit(unsigned status)
{
	outl(RT_EXIT_PORT, status);
	rt_park();
}

static const char *const rt_exception_names[32] = {
	[0] = "#DE", [1] = "#DB", [2] = "NMI", [3] = "#BP", [4] = "#OF", [5] = "#BR", [6] = "#UD", [7] = "#NM",
	[8] = "#DF", [10] = "#TS", [11] = "#NP", [12] = "#SS", [13] = "#GP", [14] = "#PF", [16] = "#MF",
	[17] = "#AC", [18] = "#MC", [19] = "#XM", [20] = "#VE", [21] = "#CP",
};

/* Ring 0, interrupts off. The vCPU is the one whose TSS is loaded. */
static void rt_exception(struct rt_frame *f)
{
	uint16_t tr;
	uint64_t cr2;
	char line[160];
	const char *name = rt_exception_names[f->vector] ? rt_exception_names[f->vector] : "exception";

	__asm__ volatile("str %0" : "=r"(tr));
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	rt_snprintf(line, sizeof(line), "rt: vcpu %u: %s (vector %u) error 0x%lx at rip 0x%lx cr2 0x%lx\n",
		    (unsigned)(tr - RT_SEL_TSS) / 16, name, (unsigned)f->vector, f->error, f->rip, cr2);
	/* Not under the print lock: the code that faulted may hold it. */
	rt_uart_write(line);
	rt_exit(128 + (unsigned)f->vector);
}

void rt_trap(struct rt_frame *f);
void rt_trap(struct rt_frame *f)
{
	if (f->vector == RT_SYSCALL_VECTOR) {
		if (f->rdi == RT_SYS_WAIT) {
			/* sti; hlt is atomic: the interrupt that sets the flag
			 * cannot slip in between the check and the halt. */
			while (!*(volatile unsigned *)f->rsi)
				__asm__ volatile("sti; hlt; cli" ::: "memory");
		} else {
			for (;;)
				__asm__ volatile("hlt");
		}
		return;
	}
	if (f->vector >= RT_MSI_VECTOR) {
		unsigned i = (unsigned)f->vector - RT_MSI_VECTOR;

		if (i < rt_msi_used && rt_msi_handlers[i].fn)
			rt_msi_handlers[i].fn(rt_msi_handlers[i].arg);
		mmio_write32(RT_LAPIC + RT_LAPIC_EOI, 0);
		return;
	}
	if (f->vector >= RT_IRQ_VECTOR) {
		unsigned line = (unsigned)f->vector - RT_IRQ_VECTOR;

		if (rt_irq_handlers[line])
			rt_irq_handlers[line](line);
		if (line >= 8)
			outb(0xa0, 0x20);
		outb(0x20, 0x20);
		return;
	}
	rt_exception(f);
}

/* ---- ring 3 ---- */

static volatile int rt_status;
static volatile unsigned rt_finished;

void rt_user_main(unsigned cpu, unsigned ncpus);
void rt_user_main(unsigned cpu, unsigned ncpus)
{
	int expected = 0, status = guest_main(cpu, ncpus);

	if (status)
		__atomic_compare_exchange_n(&rt_status, &expected, status, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	if (__atomic_add_fetch(&rt_finished, 1, __ATOMIC_SEQ_CST) == ncpus)
		rt_exit((unsigned)rt_status);
	rt_park();
}
