/* A 16550A UART register model (see uart16550.h). */
#include "uart16550.h"

#include <string.h>

/* Outside loopback the modem inputs are those of an attached terminal that
 * is ready (DSR), lets us send (CTS) and holds the carrier (DCD). */
#define UART_MSR_LINES (UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD)
#define UART_MSR_DELTAS (UART_MSR_DCTS | UART_MSR_DDSR | UART_MSR_TERI | UART_MSR_DDCD)
#define UART_LSR_ERRORS (UART_LSR_OE | UART_LSR_PE | UART_LSR_FE | UART_LSR_BI)
/* The bits a 16550A implements; the rest read 0, which is how Linux tells
 * it from the XScale (IER bit 6) and 16750 (MCR bit 5) variants. */
#define UART_IER_MASK 0x0f
#define UART_MCR_MASK 0x1f
/* A 1.8432 MHz crystal: 12 is 9600 baud, what a PC BIOS leaves behind. */
#define UART_DEFAULT_DIVISOR 12

static const unsigned rx_trigger[4] = { 1, 4, 8, 14 };

static bool fifo_enabled(const struct uart *u)
{
	return u->fcr & UART_FCR_ENABLE;
}

static unsigned rx_capacity(const struct uart *u)
{
	return fifo_enabled(u) ? UART_FIFO_SIZE : 1;
}

static bool loopback(const struct uart *u)
{
	return u->mcr & UART_MCR_LOOP;
}

/* ---- interrupts ---- */

/* The identification code of the highest-priority pending interrupt, in the
 * datasheet's order: line status, received data (or character timeout),
 * THR empty, modem status. */
static uint8_t pending_interrupt(const struct uart *u)
{
	if ((u->ier & UART_IER_ELSI) && (u->lsr & UART_LSR_ERRORS))
		return UART_IIR_RLSI;
	if ((u->ier & UART_IER_ERBFI) && u->rx_count) {
		/* Below the trigger level the line is idle (every host burst
		 * has ended), so the character timeout has already expired. */
		if (fifo_enabled(u) && u->rx_count < rx_trigger[u->fcr >> 6])
			return UART_IIR_TIMEOUT;
		return UART_IIR_RDI;
	}
	if ((u->ier & UART_IER_ETBEI) && u->thr_pending)
		return UART_IIR_THRI;
	if ((u->ier & UART_IER_EDSSI) && (u->msr & UART_MSR_DELTAS))
		return UART_IIR_MSI;
	return UART_IIR_NO_INT;
}

/* Called after every change of state: drives the output when it moves. */
static void update_irq(struct uart *u)
{
	bool level = pending_interrupt(u) != UART_IIR_NO_INT && (u->mcr & UART_MCR_OUT2) && !loopback(u);

	if (level == u->irq_level)
		return;
	u->irq_level = level;
	if (u->ops && u->ops->irq)
		u->ops->irq(u->opaque, level);
}

/* ---- the modem status lines ---- */

/* In loopback the outputs feed the inputs: DTR->DSR, RTS->CTS, OUT1->RI,
 * OUT2->DCD. The delta bits latch every change until MSR is read; TERI
 * only on the trailing edge of RI. */
static void update_msr(struct uart *u)
{
	uint8_t now = UART_MSR_LINES, was = u->msr, changed;

	if (loopback(u))
		now = (uint8_t)(((u->mcr & UART_MCR_DTR) << 5) | ((u->mcr & UART_MCR_RTS) << 3) |
				((u->mcr & UART_MCR_OUT1) << 4) | ((u->mcr & UART_MCR_OUT2) << 4));
	changed = (uint8_t)((now ^ was) & 0xf0);
	/* Each delta bit sits four bits below its line. */
	u->msr = (uint8_t)(now | (was & UART_MSR_DELTAS) |
			   ((changed >> 4) & (UART_MSR_DCTS | UART_MSR_DDSR | UART_MSR_DDCD)));
	if ((changed & UART_MSR_RI) && !(now & UART_MSR_RI))
		u->msr |= UART_MSR_TERI;
}

/* ---- receiver ---- */

static void rx_clear(struct uart *u)
{
	u->rx_head = u->rx_count = 0;
}

/* One character arrives at the receiver. A full FIFO keeps its contents
 * and loses the new character; a full RBR (no FIFO) is overwritten. */
static void rx_push(struct uart *u, uint8_t byte)
{
	if (u->rx_count == rx_capacity(u)) {
		u->lsr |= UART_LSR_OE;
		if (fifo_enabled(u))
			return;
		rx_clear(u);
	}
	u->rx[(u->rx_head + u->rx_count) % UART_FIFO_SIZE] = byte;
	u->rx_count++;
}

size_t uart_host_rx_room(const struct uart *u)
{
	return loopback(u) ? 0 : rx_capacity(u) - u->rx_count;
}

size_t uart_host_rx(struct uart *u, const uint8_t *buf, size_t len)
{
	size_t n = uart_host_rx_room(u);

	if (n > len)
		n = len;
	for (size_t i = 0; i < n; i++)
		rx_push(u, buf[i]);
	update_irq(u);
	return n;
}

/* ---- registers ---- */

static uint8_t read_rbr(struct uart *u)
{
	uint8_t byte;

	if (u->lcr & UART_LCR_DLAB)
		return (uint8_t)u->divisor;
	if (!u->rx_count)
		return 0;
	byte = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
	u->rx_count--;
	return byte;
}

static uint8_t read_ier(struct uart *u)
{
	return u->lcr & UART_LCR_DLAB ? (uint8_t)(u->divisor >> 8) : u->ier;
}

/* Reading IIR acknowledges the THRE interrupt, but only when IIR names it:
 * a higher-priority source hides it and leaves it pending. */
static uint8_t read_iir(struct uart *u)
{
	uint8_t id = pending_interrupt(u);

	if (id == UART_IIR_THRI)
		u->thr_pending = false;
	return (uint8_t)(id | (fifo_enabled(u) ? UART_IIR_FIFOS : 0));
}

static uint8_t read_lcr(struct uart *u)
{
	return u->lcr;
}

static uint8_t read_mcr(struct uart *u)
{
	return u->mcr;
}

/* Reading LSR clears the error bits, and with them the line status
 * interrupt. The transmitter is always empty. */
static uint8_t read_lsr(struct uart *u)
{
	uint8_t v = u->lsr | UART_LSR_THRE | UART_LSR_TEMT | (u->rx_count ? UART_LSR_DR : 0);

	u->lsr &= (uint8_t)~UART_LSR_ERRORS;
	return v;
}

static uint8_t read_msr(struct uart *u)
{
	uint8_t v = u->msr;

	u->msr &= (uint8_t)~UART_MSR_DELTAS;
	return v;
}

static uint8_t read_scr(struct uart *u)
{
	return u->scr;
}

/* THR: the byte leaves at once, so the holding register is empty again
 * and the THRE interrupt, which the write acknowledged, rises anew. */
static void write_thr(struct uart *u, uint8_t v)
{
	if (u->lcr & UART_LCR_DLAB) {
		u->divisor = (uint16_t)((u->divisor & 0xff00) | v);
		return;
	}
	if (loopback(u))
		rx_push(u, v);
	else if (u->ops && u->ops->tx)
		u->ops->tx(u->opaque, v);
	u->thr_pending = true;
}

/* Enabling ETBEI while THR is empty (here: always) raises the THRE
 * interrupt: Linux's 8250 driver relies on it to start transmitting, and its
 * startup probe (UART_BUG_THRE) checks that it happens again after IER was
 * cleared. */
static void write_ier(struct uart *u, uint8_t v)
{
	uint8_t was = u->ier;

	if (u->lcr & UART_LCR_DLAB) {
		u->divisor = (uint16_t)((u->divisor & 0x00ff) | v << 8);
		return;
	}
	u->ier = v & UART_IER_MASK;
	if (u->ier & ~was & UART_IER_ETBEI)
		u->thr_pending = true;
}

/* FCR is written whatever DLAB says. Its other bits only take effect
 * together with bit 0, and switching the FIFOs on or off empties them. */
static void write_fcr(struct uart *u, uint8_t v)
{
	if ((v ^ u->fcr) & UART_FCR_ENABLE)
		rx_clear(u);
	if (!(v & UART_FCR_ENABLE)) {
		u->fcr = 0;
		return;
	}
	if (v & UART_FCR_CLEAR_RX)
		rx_clear(u);
	/* The transmitter never holds anything: clearing it is a no-op. */
	u->fcr = v & (UART_FCR_ENABLE | UART_FCR_DMA | UART_FCR_TRIGGER);
}

static void write_lcr(struct uart *u, uint8_t v)
{
	u->lcr = v;
}

static void write_mcr(struct uart *u, uint8_t v)
{
	u->mcr = v & UART_MCR_MASK;
	update_msr(u);
}

/* LSR and MSR writes are for factory testing only; IIR is read-only. */
static void write_ignored(struct uart *u, uint8_t v)
{
}

static void write_scr(struct uart *u, uint8_t v)
{
	u->scr = v;
}

static uint8_t (*const reg_read[UART_NREGS])(struct uart *) = {
	[UART_RBR] = read_rbr,
	[UART_IER] = read_ier,
	[UART_IIR] = read_iir,
	[UART_LCR] = read_lcr,
	[UART_MCR] = read_mcr,
	[UART_LSR] = read_lsr,
	[UART_MSR] = read_msr,
	[UART_SCR] = read_scr,
};

static void (*const reg_write[UART_NREGS])(struct uart *, uint8_t) = {
	[UART_THR] = write_thr,
	[UART_IER] = write_ier,
	[UART_FCR] = write_fcr,
	[UART_LCR] = write_lcr,
	[UART_MCR] = write_mcr,
	[UART_LSR] = write_ignored,
	[UART_MSR] = write_ignored,
	[UART_SCR] = write_scr,
};

uint8_t uart_read(struct uart *u, unsigned reg)
{
	uint8_t v;

	if (reg >= UART_NREGS)
		return 0xff;
	v = reg_read[reg](u);
	update_irq(u);
	return v;
}

void uart_write(struct uart *u, unsigned reg, uint8_t value)
{
	if (reg >= UART_NREGS)
		return;
	reg_write[reg](u, value);
	update_irq(u);
}

/* ---- life cycle ---- */

void uart_reset(struct uart *u)
{
	const struct uart_ops *ops = u->ops;
	void *opaque = u->opaque;
	bool level = u->irq_level;

	memset(u, 0, sizeof(*u));
	u->ops = ops;
	u->opaque = opaque;
	u->irq_level = level;
	u->msr = UART_MSR_LINES;
	u->divisor = UART_DEFAULT_DIVISOR;
	update_irq(u);
}

void uart_init(struct uart *u, const struct uart_ops *ops, void *opaque)
{
	memset(u, 0, sizeof(*u));
	u->ops = ops;
	u->opaque = opaque;
	uart_reset(u);
}
