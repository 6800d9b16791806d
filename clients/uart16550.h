/* A 16550A UART: the register model, without any I/O of its own.
 *
 * The eight byte-wide registers at offsets 0..7 behave as the National
 * PC16550D datasheet describes them, as far as a guest can observe: the
 * transmitter is infinitely fast (a byte written to THR leaves at once, so
 * THRE and TEMT read as set and the THRE interrupt rises again right after
 * the write), and the receiver is fed by the host through uart_host_rx,
 * which never overruns the FIFO. The end of each host burst counts as an
 * idle line, so data below the FIFO trigger level raises the character
 * timeout interrupt at once instead of four character times later.
 *
 * The interrupt output follows the PC wiring: it is the internal interrupt
 * condition gated by MCR.OUT2, and it is inactive in loopback mode, where
 * the datasheet forces the OUT2 pin inactive. The model is not thread-safe;
 * its owner serialises every call. */
#ifndef IOREQ_UART16550_H
#define IOREQ_UART16550_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Register offsets (DLAB = LCR bit 7 selects DLL/DLM at 0 and 1). */
enum {
	UART_RBR = 0, /* read, DLAB 0 */
	UART_THR = 0, /* write, DLAB 0 */
	UART_DLL = 0, /* DLAB 1 */
	UART_IER = 1, /* DLAB 0 */
	UART_DLM = 1, /* DLAB 1 */
	UART_IIR = 2, /* read */
	UART_FCR = 2, /* write */
	UART_LCR = 3,
	UART_MCR = 4,
	UART_LSR = 5,
	UART_MSR = 6,
	UART_SCR = 7,
	UART_NREGS = 8,
};

#define UART_IER_ERBFI 0x01 /* received data available */
#define UART_IER_ETBEI 0x02 /* transmitter holding register empty */
#define UART_IER_ELSI 0x04  /* receiver line status */
#define UART_IER_EDSSI 0x08 /* modem status */

#define UART_IIR_NO_INT 0x01
#define UART_IIR_MSI 0x00
#define UART_IIR_THRI 0x02
#define UART_IIR_RDI 0x04
#define UART_IIR_RLSI 0x06
#define UART_IIR_TIMEOUT 0x0c
#define UART_IIR_FIFOS 0xc0 /* both set when the FIFOs are enabled: a 16550A */

#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR_RX 0x02
#define UART_FCR_CLEAR_TX 0x04
#define UART_FCR_DMA 0x08
#define UART_FCR_TRIGGER 0xc0

#define UART_LCR_DLAB 0x80

#define UART_MCR_DTR 0x01
#define UART_MCR_RTS 0x02
#define UART_MCR_OUT1 0x04
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10

#define UART_LSR_DR 0x01
#define UART_LSR_OE 0x02
#define UART_LSR_PE 0x04
#define UART_LSR_FE 0x08
#define UART_LSR_BI 0x10
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40

#define UART_MSR_DCTS 0x01
#define UART_MSR_DDSR 0x02
#define UART_MSR_TERI 0x04
#define UART_MSR_DDCD 0x08
#define UART_MSR_CTS 0x10
#define UART_MSR_DSR 0x20
#define UART_MSR_RI 0x40
#define UART_MSR_DCD 0x80

#define UART_FIFO_SIZE 16

/* How the model reaches the outside; both may be NULL. */
struct uart_ops {
	/* The interrupt output changed level. */
	void (*irq)(void *opaque, bool level);
	/* A byte left the transmitter (never called in loopback mode). */
	void (*tx)(void *opaque, uint8_t byte);
};

struct uart {
	const struct uart_ops *ops;
	void *opaque;

	uint8_t ier, fcr, lcr, mcr, msr, scr;
	uint8_t lsr;      /* the error bits; DR, THRE and TEMT are derived */
	uint16_t divisor;
	/* The RX FIFO; without FIFOs it holds at most one byte, the RBR. */
	uint8_t rx[UART_FIFO_SIZE];
	unsigned rx_head, rx_count;
	bool thr_pending; /* the THRE interrupt source (latched, see IIR) */
	bool irq_level;   /* what the output was last set to */
};

/* Powers the UART on. @ops is borrowed. */
void uart_init(struct uart *u, const struct uart_ops *ops, void *opaque);

/* Master reset: the power-on state (the scratch register and the divisor
 * latch included), with the interrupt output lowered. */
void uart_reset(struct uart *u);

/* A guest access to register @reg (0..7); other offsets read 0xff and
 * ignore writes. */
uint8_t uart_read(struct uart *u, unsigned reg);
void uart_write(struct uart *u, unsigned reg, uint8_t value);

/* How many bytes uart_host_rx would take now: the free FIFO space, or 0 in
 * loopback mode, where the serial input is disconnected. */
size_t uart_host_rx_room(const struct uart *u);

/* Bytes from the host's side of the line, ending a burst. Takes at most
 * uart_host_rx_room bytes and returns how many it took. */
size_t uart_host_rx(struct uart *u, const uint8_t *buf, size_t len);

#endif
