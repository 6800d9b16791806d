/* An MC146818 CMOS real-time clock: the register model, without I/O.
 *
 * Two ports: an index port (offset 0; bit 7, the PC's NMI mask, is ignored;
 * reads 0xff) and a data port (offset 1) onto 128 bytes: the time and alarm
 * registers, registers A-D, the century at 0x32 and NVRAM everywhere else
 * from 0x0e on.
 *
 * Time comes from an injected host clock (UTC nanoseconds). Two offsets
 * turn it into the chip's: the divider chain (its phase: where the second
 * boundaries and periodic ticks fall) and the time registers (whole seconds
 * ahead of or behind the host). While SET is on or the divider is held in
 * reset, the time registers hold what the guest wrote; when the clock runs
 * again they count on from there. Releasing the divider from reset starts
 * the first second half way through, as the datasheet says.
 *
 * Flags in register C are brought up to date on every access and by
 * rtc_sync, which the owner calls at the times rtc_next_event names. The
 * rates assume the 32.768 kHz time base. Not thread-safe: the owner
 * serialises every call. */
#ifndef IOREQ_MC146818_H
#define IOREQ_MC146818_H

#include <stdbool.h>
#include <stdint.h>

enum {
	RTC_SECONDS = 0x00,
	RTC_SECONDS_ALARM = 0x01,
	RTC_MINUTES = 0x02,
	RTC_MINUTES_ALARM = 0x03,
	RTC_HOURS = 0x04,
	RTC_HOURS_ALARM = 0x05,
	RTC_DAY_OF_WEEK = 0x06,
	RTC_DAY_OF_MONTH = 0x07,
	RTC_MONTH = 0x08,
	RTC_YEAR = 0x09,
	RTC_REG_A = 0x0a,
	RTC_REG_B = 0x0b,
	RTC_REG_C = 0x0c,
	RTC_REG_D = 0x0d,
	RTC_CENTURY = 0x32,
	RTC_NREGS = 0x80,
};

/* The two ports, as offsets from the base. */
enum {
	RTC_PORT_INDEX = 0,
	RTC_PORT_DATA = 1,
};

#define RTC_A_UIP 0x80
#define RTC_A_DV 0x70   /* divider: 0x20 is the 32.768 kHz time base; 0x60/0x70 hold it in reset */
#define RTC_A_RS 0x0f   /* periodic rate select */

#define RTC_B_SET 0x80
#define RTC_B_PIE 0x40
#define RTC_B_AIE 0x20
#define RTC_B_UIE 0x10
#define RTC_B_SQWE 0x08
#define RTC_B_DM_BINARY 0x04
#define RTC_B_24H 0x02
#define RTC_B_DSE 0x01

#define RTC_C_IRQF 0x80
#define RTC_C_PF 0x40
#define RTC_C_AF 0x20
#define RTC_C_UF 0x10

#define RTC_D_VRT 0x80

/* An alarm byte with both top bits set matches any value. */
#define RTC_ALARM_DONT_CARE 0xc0

/* UIP is set for this long before each update. */
#define RTC_UIP_NS 244000

struct rtc_ops {
	/* The IRQ output changed level (it follows C.IRQF). May be NULL. */
	void (*irq)(void *opaque, bool level);
	/* The host's time: UTC in nanoseconds since the epoch. Required. */
	int64_t (*now)(void *opaque);
};

struct rtc {
	const struct rtc_ops *ops;
	void *opaque;
	uint8_t cmos[RTC_NREGS];
	uint8_t index;
	int64_t div_offset_ns; /* divider time = host time + this */
	int64_t time_offset_s; /* the time registers = whole divider seconds + this */
	int64_t last_div_ns;   /* divider time of the last sync */
	bool irq_level;
};

/* Powers the chip on: A = 0x26 (time base running, 1024 Hz rate), B =
 * 0x02 (BCD, 24 hours), D = VRT, NVRAM zero, the time that of the host. */
void rtc_init(struct rtc *r, const struct rtc_ops *ops, void *opaque);

/* The RESET pin: clears PIE, AIE, UIE, SQWE and the flags in C and lowers
 * the IRQ. The time, the alarm, A and NVRAM are battery-backed and stay. */
void rtc_reset(struct rtc *r);

/* A guest access to port @port (RTC_PORT_INDEX or RTC_PORT_DATA). */
uint8_t rtc_io_read(struct rtc *r, unsigned port);
void rtc_io_write(struct rtc *r, unsigned port, uint8_t value);

/* Brings register C (and the IRQ) up to the host's time. */
void rtc_sync(struct rtc *r);

/* When, in host time, rtc_sync has an interrupt to raise: INT64_MAX when
 * nothing enabled is about to happen. Flags nobody is waiting for are
 * caught up on the next access instead. */
int64_t rtc_next_event(struct rtc *r);

#endif
