/* The 16550A model against the datasheet and against what Linux's 8250
 * driver does to it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "uart16550.h"

struct probe {
	bool irq;
	unsigned irq_changes;
	uint8_t tx[64];
	size_t n_tx;
};

static void probe_irq(void *opaque, bool level)
{
	struct probe *p = opaque;

	p->irq = level;
	p->irq_changes++;
}

static void probe_tx(void *opaque, uint8_t byte)
{
	struct probe *p = opaque;

	assert_true(p->n_tx < sizeof(p->tx));
	p->tx[p->n_tx++] = byte;
}

static const struct uart_ops probe_ops = { .irq = probe_irq, .tx = probe_tx };

struct fixture {
	struct uart u;
	struct probe p;
};

static int setup(void **state)
{
	static struct fixture f;

	memset(&f, 0, sizeof(f));
	uart_init(&f.u, &probe_ops, &f.p);
	*state = &f;
	return 0;
}

#define IIR(id) (UART_IIR_FIFOS | (id))

static void test_power_on(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(uart_read(&f->u, UART_IER), 0);
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(uart_read(&f->u, UART_LCR), 0);
	assert_int_equal(uart_read(&f->u, UART_MCR), 0);
	assert_int_equal(uart_read(&f->u, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	/* A ready terminal: CTS, DSR, DCD; no deltas. */
	assert_int_equal(uart_read(&f->u, UART_MSR), 0xb0);
	assert_int_equal(uart_read(&f->u, UART_SCR), 0);
	assert_int_equal(f->p.irq_changes, 0);
}

/* The transmitter is immediate: after a THR write THRE and TEMT are set. */
static void test_thr_write_transmits(void **state)
{
	struct fixture *f = *state;

	uart_write(&f->u, UART_THR, 'h');
	uart_write(&f->u, UART_THR, 'i');
	assert_int_equal(f->p.n_tx, 2);
	assert_memory_equal(f->p.tx, "hi", 2);
	assert_int_equal(uart_read(&f->u, UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT), UART_LSR_THRE | UART_LSR_TEMT);
}

/* THRE interrupt: raised by enabling ETBEI with THR empty, acknowledged by
 * reading IIR while it is the source or by writing THR, after which it rises
 * again at once since the byte leaves at once; the output follows OUT2. */
static void test_thre_interrupt(void **state)
{
	struct fixture *f = *state;

	uart_write(&f->u, UART_IER, UART_IER_ETBEI);
	assert_false(f->p.irq); /* OUT2 clear: the PC's gate is shut */
	uart_write(&f->u, UART_MCR, UART_MCR_OUT2);
	assert_true(f->p.irq);
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_THRI);
	assert_false(f->p.irq);
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_NO_INT);
	/* LSR reads do not acknowledge or raise anything. */
	uart_read(&f->u, UART_LSR);
	assert_false(f->p.irq);

	uart_write(&f->u, UART_THR, 'x');
	assert_true(f->p.irq);
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_THRI);
	assert_false(f->p.irq);

	/* Linux's UART_BUG_THRE probe: clear IER, set it again, and the THRE
	 * interrupt must come back. */
	uart_write(&f->u, UART_IER, 0);
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_NO_INT);
	uart_write(&f->u, UART_IER, UART_IER_ETBEI);
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_THRI);

	/* Closing the OUT2 gate lowers the output; the source stays pending. */
	uart_write(&f->u, UART_THR, 'y');
	assert_true(f->p.irq);
	uart_write(&f->u, UART_MCR, 0);
	assert_false(f->p.irq);
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_THRI);
}

/* Line status > received data > THR empty > modem status; reading IIR
 * does not acknowledge a THRE interrupt it did not report. */
static void test_iir_priority(void **state)
{
	struct fixture *f = *state;

	uart_write(&f->u, UART_FCR, UART_FCR_ENABLE); /* trigger level 1 */
	uart_write(&f->u, UART_MCR, UART_MCR_LOOP);
	/* 17 bytes into a 16-byte FIFO: an overrun. */
	for (int i = 0; i < UART_FIFO_SIZE + 1; i++)
		uart_write(&f->u, UART_THR, (uint8_t)i);
	uart_write(&f->u, UART_MCR, UART_MCR_LOOP | UART_MCR_RTS); /* CTS rises: DCTS */
	uart_write(&f->u, UART_IER, UART_IER_ERBFI | UART_IER_ETBEI | UART_IER_ELSI | UART_IER_EDSSI);

	assert_int_equal(uart_read(&f->u, UART_IIR), IIR(UART_IIR_RLSI));
	assert_int_equal(uart_read(&f->u, UART_IIR), IIR(UART_IIR_RLSI));
	assert_int_equal(uart_read(&f->u, UART_LSR) & (UART_LSR_OE | UART_LSR_DR), UART_LSR_OE | UART_LSR_DR);
	assert_int_equal(uart_read(&f->u, UART_IIR), IIR(UART_IIR_RDI));
	/* The FIFO kept the first 16 bytes and lost the 17th. */
	for (int i = 0; i < UART_FIFO_SIZE; i++)
		assert_int_equal(uart_read(&f->u, UART_RBR), i);
	assert_int_equal(uart_read(&f->u, UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(uart_read(&f->u, UART_IIR), IIR(UART_IIR_THRI));
	assert_int_equal(uart_read(&f->u, UART_IIR), IIR(UART_IIR_MSI));
	assert_int_equal(uart_read(&f->u, UART_MSR) & UART_MSR_DCTS, UART_MSR_DCTS);
	assert_int_equal(uart_read(&f->u, UART_IIR), IIR(UART_IIR_NO_INT));
}

/* Below the trigger level the data is reported as a character timeout
 * (the host's burst has ended), at or above it as data available. */
static void test_fifo_trigger_levels(void **state)
{
	static const struct {
		uint8_t fcr;
		unsigned level;
	} levels[] = { { 0x01, 1 }, { 0x41, 4 }, { 0x81, 8 }, { 0xc1, 14 } };
	struct fixture *f = *state;
	uint8_t data[UART_FIFO_SIZE];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)('a' + i);
	uart_write(&f->u, UART_MCR, UART_MCR_OUT2);
	uart_write(&f->u, UART_IER, UART_IER_ERBFI);
	for (size_t l = 0; l < sizeof(levels) / sizeof(levels[0]); l++) {
		uart_write(&f->u, UART_FCR, levels[l].fcr | UART_FCR_CLEAR_RX);
		assert_int_equal(uart_read(&f->u, UART_IIR), IIR(UART_IIR_NO_INT));
		assert_false(f->p.irq);
		if (levels[l].level > 1) {
			assert_int_equal(uart_host_rx(&f->u, data, levels[l].level - 1), levels[l].level - 1);
			assert_int_equal(uart_read(&f->u, UART_IIR), IIR(UART_IIR_TIMEOUT));
			assert_true(f->p.irq);
			assert_int_equal(uart_host_rx(&f->u, data + levels[l].level - 1, 1), 1);
		} else {
			assert_int_equal(uart_host_rx(&f->u, data, 1), 1);
		}
		assert_int_equal(uart_read(&f->u, UART_IIR), IIR(UART_IIR_RDI));
		assert_true(f->p.irq);
		/* Reading below the level turns it back into a timeout... */
		assert_int_equal(uart_read(&f->u, UART_RBR), 'a');
		if (levels[l].level > 1)
			assert_int_equal(uart_read(&f->u, UART_IIR), IIR(UART_IIR_TIMEOUT));
		/* ...and an empty FIFO ends it. */
		for (unsigned i = 1; i < levels[l].level; i++)
			assert_int_equal(uart_read(&f->u, UART_RBR), 'a' + i);
		assert_int_equal(uart_read(&f->u, UART_IIR), IIR(UART_IIR_NO_INT));
		assert_false(f->p.irq);
	}
}

/* The host never overruns the receiver: it gets the free space and no more. */
static void test_host_rx_flow_control(void **state)
{
	struct fixture *f = *state;
	uint8_t data[20];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	/* Without FIFOs the RBR holds one byte. */
	assert_int_equal(uart_host_rx_room(&f->u), 1);
	assert_int_equal(uart_host_rx(&f->u, data, 3), 1);
	assert_int_equal(uart_host_rx(&f->u, data + 1, 2), 0);
	assert_int_equal(uart_read(&f->u, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT | UART_LSR_DR);
	assert_int_equal(uart_read(&f->u, UART_RBR), 0);
	assert_int_equal(uart_read(&f->u, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);

	uart_write(&f->u, UART_FCR, UART_FCR_ENABLE);
	assert_int_equal(uart_host_rx_room(&f->u), UART_FIFO_SIZE);
	assert_int_equal(uart_host_rx(&f->u, data, sizeof(data)), UART_FIFO_SIZE);
	assert_int_equal(uart_host_rx_room(&f->u), 0);
	assert_int_equal(uart_read(&f->u, UART_RBR), 0);
	assert_int_equal(uart_host_rx(&f->u, data + UART_FIFO_SIZE, 4), 1);
	for (int i = 1; i <= UART_FIFO_SIZE; i++)
		assert_int_equal(uart_read(&f->u, UART_RBR), i);
	assert_int_equal(uart_read(&f->u, UART_LSR) & (UART_LSR_OE | UART_LSR_DR), 0);

	/* FCR bit 1 empties the FIFO; turning the FIFOs off does too. */
	uart_host_rx(&f->u, data, 5);
	uart_write(&f->u, UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX);
	assert_int_equal(uart_read(&f->u, UART_LSR) & UART_LSR_DR, 0);
	uart_host_rx(&f->u, data, 5);
	uart_write(&f->u, UART_FCR, 0);
	assert_int_equal(uart_read(&f->u, UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(uart_read(&f->u, UART_IIR) & UART_IIR_FIFOS, 0);
}

/* Without FIFOs a second character overwrites the first and sets OE,
 * which raises the line status interrupt until LSR is read. */
static void test_overrun_without_fifo(void **state)
{
	struct fixture *f = *state;

	uart_write(&f->u, UART_IER, UART_IER_ELSI | UART_IER_ERBFI);
	uart_write(&f->u, UART_MCR, UART_MCR_LOOP);
	uart_write(&f->u, UART_THR, 'a');
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_RDI);
	uart_write(&f->u, UART_THR, 'b');
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_RLSI);
	assert_int_equal(uart_read(&f->u, UART_LSR) & UART_LSR_OE, UART_LSR_OE);
	assert_int_equal(uart_read(&f->u, UART_LSR) & UART_LSR_OE, 0);
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_RDI);
	assert_int_equal(uart_read(&f->u, UART_RBR), 'b');
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_NO_INT);
}

/* Loopback: THR comes back in RBR, nothing leaves, the host cannot feed
 * the receiver, MCR's outputs show in MSR, and the interrupt output is
 * off whatever OUT2 says. */
static void test_loopback(void **state)
{
	static const struct {
		uint8_t mcr, msr;
	} lines[] = {
		{ UART_MCR_DTR, UART_MSR_DSR }, { UART_MCR_RTS, UART_MSR_CTS }, { UART_MCR_OUT1, UART_MSR_RI },
		{ UART_MCR_OUT2, UART_MSR_DCD }, { 0x0f, 0xf0 },	       { 0, 0 },
	};
	struct fixture *f = *state;
	uint8_t byte = 'z';

	uart_write(&f->u, UART_FCR, UART_FCR_ENABLE);
	uart_write(&f->u, UART_IER, UART_IER_ERBFI);
	uart_write(&f->u, UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2);
	assert_int_equal(uart_host_rx_room(&f->u), 0);
	assert_int_equal(uart_host_rx(&f->u, &byte, 1), 0);
	uart_write(&f->u, UART_THR, 0x5a);
	uart_write(&f->u, UART_THR, 0xa5);
	assert_int_equal(f->p.n_tx, 0);
	assert_int_equal(uart_read(&f->u, UART_IIR), IIR(UART_IIR_RDI));
	assert_false(f->p.irq);
	assert_int_equal(uart_read(&f->u, UART_RBR), 0x5a);
	assert_int_equal(uart_read(&f->u, UART_RBR), 0xa5);

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		uart_write(&f->u, UART_MCR, UART_MCR_LOOP | lines[i].mcr);
		assert_int_equal(uart_read(&f->u, UART_MSR) & 0xf0, lines[i].msr);
	}
	/* Out of loopback the terminal's lines are back, and so is the output. */
	uart_write(&f->u, UART_MCR, UART_MCR_OUT2);
	assert_int_equal(uart_read(&f->u, UART_MSR) & 0xf0, 0xb0);
	uart_write(&f->u, UART_THR, 'o');
	assert_int_equal(f->p.n_tx, 1);
}

/* The delta bits latch changes until MSR is read; TERI only on RI's
 * trailing edge. */
static void test_modem_status_deltas(void **state)
{
	struct fixture *f = *state;

	uart_write(&f->u, UART_IER, UART_IER_EDSSI);
	uart_write(&f->u, UART_MCR, UART_MCR_LOOP | UART_MCR_OUT1);
	/* Entering loopback dropped CTS, DSR and DCD and raised RI. */
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_MSI);
	assert_int_equal(uart_read(&f->u, UART_MSR), UART_MSR_RI | UART_MSR_DCTS | UART_MSR_DDSR | UART_MSR_DDCD);
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_NO_INT);
	uart_write(&f->u, UART_MCR, UART_MCR_LOOP);
	assert_int_equal(uart_read(&f->u, UART_MSR), UART_MSR_TERI);
	uart_write(&f->u, UART_MCR, UART_MCR_LOOP | UART_MCR_OUT1);
	assert_int_equal(uart_read(&f->u, UART_MSR), UART_MSR_RI);
}

/* DLAB switches offsets 0 and 1 to the divisor latch, leaving RBR/THR and
 * IER alone. */
static void test_divisor_latch(void **state)
{
	struct fixture *f = *state;

	uart_write(&f->u, UART_IER, 0x05);
	uart_write(&f->u, UART_LCR, UART_LCR_DLAB | 0x03);
	assert_int_equal(uart_read(&f->u, UART_DLL), 12); /* 9600 baud */
	assert_int_equal(uart_read(&f->u, UART_DLM), 0);
	uart_write(&f->u, UART_DLL, 0x01);
	uart_write(&f->u, UART_DLM, 0x02);
	assert_int_equal(uart_read(&f->u, UART_DLL), 0x01);
	assert_int_equal(uart_read(&f->u, UART_DLM), 0x02);
	assert_int_equal(f->p.n_tx, 0);
	assert_int_equal(uart_read(&f->u, UART_LCR), 0x83);
	uart_write(&f->u, UART_LCR, 0x03);
	assert_int_equal(uart_read(&f->u, UART_IER), 0x05);
	uart_write(&f->u, UART_THR, 'd');
	assert_int_equal(f->p.n_tx, 1);
	uart_write(&f->u, UART_LCR, UART_LCR_DLAB);
	assert_int_equal(uart_read(&f->u, UART_DLL), 0x01);
	assert_int_equal(uart_read(&f->u, UART_DLM), 0x02);
}

static void test_scratch(void **state)
{
	struct fixture *f = *state;

	for (unsigned v = 0; v < 256; v += 0x55) {
		uart_write(&f->u, UART_SCR, (uint8_t)v);
		assert_int_equal(uart_read(&f->u, UART_SCR), v);
	}
}

/* The probe of drivers/tty/serial/8250/8250_port.c: autoconfig() with
 * CONFIG_SERIAL_8250_16550A_VARIANTS, step by step. Every answer must be
 * the one that leaves the port typed PORT_16550A. */
static void test_linux_autoconfig_finds_16550a(void **state)
{
	struct fixture *f = *state;
	struct uart *u = &f->u;
	uint8_t save_lcr, save_mcr, scratch, status1, status2, iersave;

	/* IER: writable low nibble only. */
	scratch = uart_read(u, UART_IER);
	uart_write(u, UART_IER, 0);
	assert_int_equal(uart_read(u, UART_IER) & 0x0f, 0);
	uart_write(u, UART_IER, 0x0f);
	assert_int_equal(uart_read(u, UART_IER) & 0x0f, 0x0f);
	uart_write(u, UART_IER, scratch);

	save_mcr = uart_read(u, UART_MCR);
	save_lcr = uart_read(u, UART_LCR);
	/* The loopback test: RTS and OUT2 come back as CTS and DCD. */
	uart_write(u, UART_MCR, UART_MCR_LOOP | 0x0a);
	assert_int_equal(uart_read(u, UART_MSR) & 0xf0, UART_MSR_DCD | UART_MSR_CTS);
	uart_write(u, UART_MCR, save_mcr);

	/* EFR (offset 2 with LCR 0xbf) does not exist: that write is an FCR write. */
	uart_write(u, UART_LCR, 0xbf);
	uart_write(u, 2, 0);
	uart_write(u, UART_LCR, 0);
	uart_write(u, UART_FCR, UART_FCR_ENABLE);
	assert_int_equal(uart_read(u, UART_IIR) >> 6, 3);
	/* The same with the trigger bits, as the brief has it. */
	uart_write(u, UART_FCR, 0xc1);
	assert_int_equal(uart_read(u, UART_IIR) >> 6, 3);
	uart_write(u, UART_FCR, UART_FCR_ENABLE);

	/* autoconfig_16550a: no EFR behind LCR 0x80 or 0xbf (IIR reads back,
	 * never 0 with FIFOs on). */
	uart_write(u, UART_LCR, 0x80);
	assert_int_not_equal(uart_read(u, 2), 0);
	uart_write(u, UART_LCR, 0xbf);
	assert_int_not_equal(uart_read(u, 2), 0);

	/* Not a National SuperIO: EXCR1 (offset 2 with LCR 0xe0) does not
	 * follow MCR's loopback bit. */
	uart_write(u, UART_LCR, 0);
	status1 = uart_read(u, UART_MCR);
	uart_write(u, UART_LCR, 0xe0);
	status2 = uart_read(u, 2);
	assert_int_equal((status2 ^ status1) & UART_MCR_LOOP, 0);
	uart_write(u, UART_LCR, 0);
	uart_write(u, UART_MCR, status1 ^ UART_MCR_LOOP);
	uart_write(u, UART_LCR, 0xe0);
	status2 = uart_read(u, 2);
	uart_write(u, UART_LCR, 0);
	uart_write(u, UART_MCR, status1);
	assert_int_equal((status2 ^ status1) & UART_MCR_LOOP, 0);

	/* Not a 16750: no 64-byte FIFO bit (IIR bit 5), with or without DLAB. */
	uart_write(u, UART_LCR, 0);
	uart_write(u, UART_FCR, UART_FCR_ENABLE | 0x20);
	status1 = uart_read(u, UART_IIR) & 0xe0;
	uart_write(u, UART_FCR, UART_FCR_ENABLE);
	uart_write(u, UART_LCR, 0x80);
	uart_write(u, UART_FCR, UART_FCR_ENABLE | 0x20);
	status2 = uart_read(u, UART_IIR) & 0xe0;
	uart_write(u, UART_FCR, UART_FCR_ENABLE);
	uart_write(u, UART_LCR, 0);
	assert_int_equal(status1, 0xc0);
	assert_int_equal(status2, 0xc0);

	/* Not an XScale: IER bit 6 (UUE) stays 0. */
	iersave = uart_read(u, UART_IER);
	uart_write(u, UART_IER, iersave & ~0x40);
	assert_int_equal(uart_read(u, UART_IER) & 0x40, 0);
	uart_write(u, UART_IER, iersave | 0x40);
	assert_int_equal(uart_read(u, UART_IER) & 0x40, 0);
	uart_write(u, UART_IER, iersave);

	uart_write(u, UART_LCR, save_lcr);
	uart_write(u, UART_MCR, save_mcr);
	/* serial8250_clear_fifos, then the startup's TX-enable test
	 * (UART_BUG_TXEN): enabling THRI must raise an interrupt at once. */
	uart_write(u, UART_FCR, UART_FCR_ENABLE);
	uart_write(u, UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX | UART_FCR_CLEAR_TX);
	uart_write(u, UART_FCR, 0);
	uart_read(u, UART_RBR);
	uart_write(u, UART_IER, 0);
	uart_write(u, UART_IER, UART_IER_ETBEI);
	assert_true(uart_read(u, UART_LSR) & UART_LSR_TEMT);
	assert_int_equal(uart_read(u, UART_IIR) & UART_IIR_NO_INT, 0);
	uart_write(u, UART_IER, 0);
}

static void test_reset(void **state)
{
	struct fixture *f = *state;
	uint8_t byte = 'r';

	uart_write(&f->u, UART_FCR, 0xc1);
	uart_write(&f->u, UART_LCR, 0x1b);
	uart_write(&f->u, UART_SCR, 0x42);
	uart_write(&f->u, UART_MCR, UART_MCR_OUT2 | UART_MCR_DTR);
	uart_write(&f->u, UART_IER, UART_IER_ERBFI | UART_IER_ETBEI);
	uart_host_rx(&f->u, &byte, 1);
	assert_true(f->p.irq);

	uart_reset(&f->u);
	assert_false(f->p.irq);
	assert_int_equal(uart_read(&f->u, UART_IER), 0);
	assert_int_equal(uart_read(&f->u, UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(uart_read(&f->u, UART_LCR), 0);
	assert_int_equal(uart_read(&f->u, UART_MCR), 0);
	assert_int_equal(uart_read(&f->u, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(uart_read(&f->u, UART_SCR), 0);
}

/* Offsets beyond the eight registers do not exist. */
static void test_bad_offsets(void **state)
{
	struct fixture *f = *state;

	uart_write(&f->u, UART_NREGS, 0x12);
	assert_int_equal(uart_read(&f->u, UART_NREGS), 0xff);
	assert_int_equal(f->p.n_tx, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_power_on, setup),
		cmocka_unit_test_setup(test_thr_write_transmits, setup),
		cmocka_unit_test_setup(test_thre_interrupt, setup),
		cmocka_unit_test_setup(test_iir_priority, setup),
		cmocka_unit_test_setup(test_fifo_trigger_levels, setup),
		cmocka_unit_test_setup(test_host_rx_flow_control, setup),
		cmocka_unit_test_setup(test_overrun_without_fifo, setup),
		cmocka_unit_test_setup(test_loopback, setup),
		cmocka_unit_test_setup(test_modem_status_deltas, setup),
		cmocka_unit_test_setup(test_divisor_latch, setup),
		cmocka_unit_test_setup(test_scratch, setup),
		cmocka_unit_test_setup(test_linux_autoconfig_finds_16550a, setup),
		cmocka_unit_test_setup(test_reset, setup),
		cmocka_unit_test_setup(test_bad_offsets, setup),
	};

	return cmocka_run_group_tests_name("uart16550", tests, NULL, NULL);
}
