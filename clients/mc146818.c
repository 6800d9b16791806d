/* An MC146818 CMOS RTC register model (see mc146818.h). */
#include "mc146818.h"

#include <string.h>
#include <time.h>

#define NS_PER_S INT64_C(1000000000)
#define RTC_HZ INT64_C(32768)
/* Alarm patterns repeat at least daily: a day of missed seconds holds
 * every match there is to find. */
#define RTC_ALARM_LOOKBACK_S 86400

/* The power-on values of A and B a PC BIOS would leave: the 32.768 kHz time
 * base at a 1024 Hz periodic rate; BCD, 24-hour mode. */
#define RTC_A_POWER_ON 0x26
#define RTC_B_POWER_ON RTC_B_24H
#define RTC_DV_RUNNING_MAX 0x20 /* DV 0..2 select a time base; 6, 7 hold the divider in reset */

static int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floormod(int64_t a, int64_t b)
{
	return a - floordiv(a, b) * b;
}

/* ---- the clock ---- */

static bool divider_running(const struct rtc *r)
{
	return (r->cmos[RTC_REG_A] & RTC_A_DV) <= RTC_DV_RUNNING_MAX;
}

/* Do the time registers count? */
static bool updating(const struct rtc *r)
{
	return divider_running(r) && !(r->cmos[RTC_REG_B] & RTC_B_SET);
}

static int64_t div_now(const struct rtc *r)
{
	return r->ops->now(r->opaque) + r->div_offset_ns;
}

/* The periodic interrupt's period in 32.768 kHz ticks: RS 1 and 2 are 256
 * and 128 Hz, RS 3..15 8192 Hz down to 2 Hz; 0 is off. */
static int64_t period_ticks(const struct rtc *r)
{
	unsigned rs = r->cmos[RTC_REG_A] & RTC_A_RS;

	if (!rs)
		return 0;
	return rs <= 2 ? INT64_C(1) << (rs + 6) : INT64_C(1) << (rs - 1);
}

static int64_t ns_to_ticks(int64_t ns)
{
	return floordiv(ns, NS_PER_S) * RTC_HZ + floormod(ns, NS_PER_S) * RTC_HZ / NS_PER_S;
}

/* The first nanosecond that counts as tick @t. */
static int64_t ticks_to_ns(int64_t t)
{
	return floordiv(t, RTC_HZ) * NS_PER_S + (floormod(t, RTC_HZ) * NS_PER_S + RTC_HZ - 1) / RTC_HZ;
}

/* ---- register encodings ---- */

static uint8_t to_reg(const struct rtc *r, int v)
{
	if (r->cmos[RTC_REG_B] & RTC_B_DM_BINARY)
		return (uint8_t)v;
	return (uint8_t)((v / 10) << 4 | v % 10);
}

static int from_reg(const struct rtc *r, uint8_t v)
{
	if (r->cmos[RTC_REG_B] & RTC_B_DM_BINARY)
		return v;
	return (v >> 4) * 10 + (v & 0x0f);
}

/* In 12-hour mode hours run 12, 1, ..., 11 with bit 7 set after noon. */
static uint8_t hour_to_reg(const struct rtc *r, int h)
{
	int h12 = h % 12 ? h % 12 : 12;

	if (r->cmos[RTC_REG_B] & RTC_B_24H)
		return to_reg(r, h);
	return (uint8_t)(to_reg(r, h12) | (h >= 12 ? 0x80 : 0));
}

static int hour_from_reg(const struct rtc *r, uint8_t v)
{
	if (r->cmos[RTC_REG_B] & RTC_B_24H)
		return from_reg(r, v);
	return from_reg(r, v & 0x7f) % 12 + (v & 0x80 ? 12 : 0);
}

/* Writes @secs (since the epoch) into the time registers of @regs, in the
 * format register B selects. The day of the week runs 1 (Sunday) to 7. */
static void encode_time(const struct rtc *r, int64_t secs, uint8_t regs[RTC_NREGS])
{
	time_t t = (time_t)secs;
	struct tm tm;
	int year;

	if (!gmtime_r(&t, &tm))
		return;
	year = tm.tm_year + 1900;
	regs[RTC_SECONDS] = to_reg(r, tm.tm_sec);
	regs[RTC_MINUTES] = to_reg(r, tm.tm_min);
	regs[RTC_HOURS] = hour_to_reg(r, tm.tm_hour);
	regs[RTC_DAY_OF_WEEK] = to_reg(r, tm.tm_wday + 1);
	regs[RTC_DAY_OF_MONTH] = to_reg(r, tm.tm_mday);
	regs[RTC_MONTH] = to_reg(r, tm.tm_mon + 1);
	regs[RTC_YEAR] = to_reg(r, year % 100);
	regs[RTC_CENTURY] = to_reg(r, year / 100);
}

/* The time registers as seconds since the epoch; the day of the week is
 * implied by the date. */
static int64_t decode_time(const struct rtc *r)
{
	const uint8_t *c = r->cmos;
	struct tm tm = {
		.tm_sec = from_reg(r, c[RTC_SECONDS]),
		.tm_min = from_reg(r, c[RTC_MINUTES]),
		.tm_hour = hour_from_reg(r, c[RTC_HOURS]),
		.tm_mday = from_reg(r, c[RTC_DAY_OF_MONTH]),
		.tm_mon = from_reg(r, c[RTC_MONTH]) - 1,
		.tm_year = from_reg(r, c[RTC_CENTURY]) * 100 + from_reg(r, c[RTC_YEAR]) - 1900,
	};

	return timegm(&tm);
}

/* Copies the running time into the registers, where reads find it and
 * where it stays while the clock is stopped. */
static void snapshot(struct rtc *r)
{
	encode_time(r, floordiv(div_now(r), NS_PER_S) + r->time_offset_s, r->cmos);
}

/* The clock counts on from the time registers, in the divider's phase. */
static void restart(struct rtc *r)
{
	r->time_offset_s = decode_time(r) - floordiv(div_now(r), NS_PER_S);
}

/* ---- interrupts ---- */

static bool alarm_byte_matches(uint8_t alarm, uint8_t now)
{
	return (alarm & RTC_ALARM_DONT_CARE) == RTC_ALARM_DONT_CARE || alarm == now;
}

/* The alarm compares the registers' bytes, so it matches in whatever format
 * the guest wrote it. */
static bool alarm_matches(const struct rtc *r, int64_t secs)
{
	uint8_t t[RTC_NREGS];

	encode_time(r, secs, t);
	return alarm_byte_matches(r->cmos[RTC_SECONDS_ALARM], t[RTC_SECONDS]) &&
	       alarm_byte_matches(r->cmos[RTC_MINUTES_ALARM], t[RTC_MINUTES]) &&
	       alarm_byte_matches(r->cmos[RTC_HOURS_ALARM], t[RTC_HOURS]);
}

static bool irqf(const struct rtc *r)
{
	return r->cmos[RTC_REG_C] & r->cmos[RTC_REG_B] & (RTC_C_PF | RTC_C_AF | RTC_C_UF);
}

static void update_irq(struct rtc *r)
{
	bool level = irqf(r);

	if (level == r->irq_level)
		return;
	r->irq_level = level;
	if (r->ops->irq)
		r->ops->irq(r->opaque, level);
}

/* What happened between divider times @from and @to: periodic ticks, and
 * while the time registers count, updates and alarm matches. */
static void catch_up(struct rtc *r, int64_t from, int64_t to)
{
	int64_t period = period_ticks(r);
	int64_t s0 = floordiv(from, NS_PER_S), s1 = floordiv(to, NS_PER_S);

	if (period && floordiv(ns_to_ticks(to), period) > floordiv(ns_to_ticks(from), period))
		r->cmos[RTC_REG_C] |= RTC_C_PF;
	if (!updating(r) || s1 == s0)
		return;
	r->cmos[RTC_REG_C] |= RTC_C_UF;
	if (s1 - s0 > RTC_ALARM_LOOKBACK_S)
		s0 = s1 - RTC_ALARM_LOOKBACK_S;
	for (int64_t s = s1; s > s0 && !(r->cmos[RTC_REG_C] & RTC_C_AF); s--)
		if (alarm_matches(r, s + r->time_offset_s))
			r->cmos[RTC_REG_C] |= RTC_C_AF;
}

void rtc_sync(struct rtc *r)
{
	if (divider_running(r)) {
		int64_t now = div_now(r);

		/* A host clock stepped back just restarts the count. */
		if (now > r->last_div_ns)
			catch_up(r, r->last_div_ns, now);
		r->last_div_ns = now;
	}
	update_irq(r);
}

int64_t rtc_next_event(struct rtc *r)
{
	const uint8_t b = r->cmos[RTC_REG_B], c = r->cmos[RTC_REG_C];
	int64_t next = INT64_MAX, period = period_ticks(r), d;

	if (!divider_running(r))
		return INT64_MAX;
	d = div_now(r);
	if ((b & RTC_B_PIE) && !(c & RTC_C_PF) && period)
		next = ticks_to_ns((floordiv(ns_to_ticks(d), period) + 1) * period);
	if (updating(r) && (((b & RTC_B_UIE) && !(c & RTC_C_UF)) || ((b & RTC_B_AIE) && !(c & RTC_C_AF)))) {
		int64_t second = (floordiv(d, NS_PER_S) + 1) * NS_PER_S;

		if (second < next)
			next = second;
	}
	return next == INT64_MAX ? next : next - r->div_offset_ns;
}

/* ---- registers ---- */

/* A or B changed: the clock may stop (the registers keep the time it
 * showed) or start again (counting on from the registers). Leaving divider
 * reset puts the divider half way through a second. */
static void set_control(struct rtc *r, unsigned idx, uint8_t v)
{
	bool ran = divider_running(r), counted = updating(r);

	if (counted)
		snapshot(r);
	r->cmos[idx] = v;
	if (!ran && divider_running(r)) {
		r->div_offset_ns = NS_PER_S / 2 - r->ops->now(r->opaque);
		r->last_div_ns = NS_PER_S / 2;
	}
	if (!counted && updating(r))
		restart(r);
}

static uint8_t read_plain(struct rtc *r, unsigned idx)
{
	return r->cmos[idx];
}

static void write_plain(struct rtc *r, unsigned idx, uint8_t v)
{
	r->cmos[idx] = v;
}

static uint8_t read_time(struct rtc *r, unsigned idx)
{
	if (updating(r))
		snapshot(r);
	return r->cmos[idx];
}

/* A running clock takes the new value and counts on from it. */
static void write_time(struct rtc *r, unsigned idx, uint8_t v)
{
	if (!updating(r)) {
		r->cmos[idx] = v;
		return;
	}
	snapshot(r);
	r->cmos[idx] = v;
	restart(r);
}

static uint8_t read_a(struct rtc *r, unsigned idx)
{
	bool uip = updating(r) && floormod(div_now(r), NS_PER_S) >= NS_PER_S - RTC_UIP_NS;

	return (uint8_t)(r->cmos[RTC_REG_A] | (uip ? RTC_A_UIP : 0));
}

static void write_a(struct rtc *r, unsigned idx, uint8_t v)
{
	set_control(r, RTC_REG_A, v & (uint8_t)~RTC_A_UIP);
}

/* Setting SET also clears UIE: no update ends while the guest sets the time. */
static void write_b(struct rtc *r, unsigned idx, uint8_t v)
{
	if (v & RTC_B_SET)
		v &= (uint8_t)~RTC_B_UIE;
	set_control(r, RTC_REG_B, v);
}

/* Reading C returns the flags and clears them, which lowers the IRQ. */
static uint8_t read_c(struct rtc *r, unsigned idx)
{
	uint8_t v = (uint8_t)(r->cmos[RTC_REG_C] | (irqf(r) ? RTC_C_IRQF : 0));

	r->cmos[RTC_REG_C] = 0;
	return v;
}

static void write_read_only(struct rtc *r, unsigned idx, uint8_t v)
{
}

enum reg_kind {
	REG_PLAIN, /* the alarm and NVRAM: plain bytes */
	REG_TIME,
	REG_A,
	REG_B,
	REG_C,
	REG_D,
};

static const uint8_t reg_kind[RTC_NREGS] = {
	[RTC_SECONDS] = REG_TIME,
	[RTC_MINUTES] = REG_TIME,
	[RTC_HOURS] = REG_TIME,
	[RTC_DAY_OF_WEEK] = REG_TIME,
	[RTC_DAY_OF_MONTH] = REG_TIME,
	[RTC_MONTH] = REG_TIME,
	[RTC_YEAR] = REG_TIME,
	[RTC_CENTURY] = REG_TIME,
	[RTC_REG_A] = REG_A,
	[RTC_REG_B] = REG_B,
	[RTC_REG_C] = REG_C,
	[RTC_REG_D] = REG_D,
};

static const struct {
	uint8_t (*read)(struct rtc *, unsigned idx);
	void (*write)(struct rtc *, unsigned idx, uint8_t v);
} reg_ops[] = {
	[REG_PLAIN] = { read_plain, write_plain },
	[REG_TIME] = { read_time, write_time },
	[REG_A] = { read_a, write_a },
	[REG_B] = { read_plain, write_b },
	[REG_C] = { read_c, write_read_only },
	[REG_D] = { read_plain, write_read_only },
};

uint8_t rtc_io_read(struct rtc *r, unsigned port)
{
	uint8_t v;

	/* The index register is write-only. */
	if (port != RTC_PORT_DATA)
		return 0xff;
	rtc_sync(r);
	v = reg_ops[reg_kind[r->index]].read(r, r->index);
	update_irq(r);
	return v;
}

void rtc_io_write(struct rtc *r, unsigned port, uint8_t value)
{
	if (port == RTC_PORT_INDEX) {
		r->index = value & (RTC_NREGS - 1);
		return;
	}
	if (port != RTC_PORT_DATA)
		return;
	rtc_sync(r);
	reg_ops[reg_kind[r->index]].write(r, r->index, value);
	update_irq(r);
}

/* ---- life cycle ---- */

void rtc_reset(struct rtc *r)
{
	rtc_sync(r);
	r->cmos[RTC_REG_B] &= (uint8_t)~(RTC_B_PIE | RTC_B_AIE | RTC_B_UIE | RTC_B_SQWE);
	r->cmos[RTC_REG_C] = 0;
	update_irq(r);
}

void rtc_init(struct rtc *r, const struct rtc_ops *ops, void *opaque)
{
	memset(r, 0, sizeof(*r));
	r->ops = ops;
	r->opaque = opaque;
	r->cmos[RTC_REG_A] = RTC_A_POWER_ON;
	r->cmos[RTC_REG_B] = RTC_B_POWER_ON;
	r->cmos[RTC_REG_D] = RTC_D_VRT;
	r->last_div_ns = div_now(r);
}
