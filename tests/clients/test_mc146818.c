/* The MC146818 model against the datasheet, on an injected clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mc146818.h"

#define NS INT64_C(1000000000)
#define MS INT64_C(1000000)

struct fixture {
	struct rtc rtc;
	int64_t now; /* the host clock, ns */
	bool irq;
	unsigned irq_changes;
};

static int64_t fake_now(void *opaque)
{
	return ((struct fixture *)opaque)->now;
}

static void fake_irq(void *opaque, bool level)
{
	struct fixture *f = opaque;

	f->irq = level;
	f->irq_changes++;
}

static const struct rtc_ops fake_ops = { .irq = fake_irq, .now = fake_now };

/* 2024-02-29 13:45:07 UTC, a Thursday, on a second boundary. */
static int64_t leap_day(void)
{
	struct tm tm = { .tm_year = 124, .tm_mon = 1, .tm_mday = 29, .tm_hour = 13, .tm_min = 45, .tm_sec = 7 };

	return (int64_t)timegm(&tm) * NS;
}

static int setup(void **state)
{
	static struct fixture f;

	memset(&f, 0, sizeof(f));
	f.now = leap_day();
	rtc_init(&f.rtc, &fake_ops, &f);
	*state = &f;
	return 0;
}

static uint8_t rd(struct fixture *f, unsigned idx)
{
	rtc_io_write(&f->rtc, RTC_PORT_INDEX, (uint8_t)idx);
	return rtc_io_read(&f->rtc, RTC_PORT_DATA);
}

static void wr(struct fixture *f, unsigned idx, uint8_t v)
{
	rtc_io_write(&f->rtc, RTC_PORT_INDEX, (uint8_t)idx);
	rtc_io_write(&f->rtc, RTC_PORT_DATA, v);
}

/* Moves the host clock on, letting the model see it as a timer would. */
static void advance(struct fixture *f, int64_t ns)
{
	f->now += ns;
	rtc_sync(&f->rtc);
}

static void test_power_on(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(rd(f, RTC_REG_A), 0x26);
	assert_int_equal(rd(f, RTC_REG_B), RTC_B_24H);
	assert_int_equal(rd(f, RTC_REG_C), 0);
	assert_int_equal(rd(f, RTC_REG_D), RTC_D_VRT);
	assert_false(f->irq);
	assert_int_equal(rtc_next_event(&f->rtc), INT64_MAX);
}

static void test_bcd_and_binary(void **state)
{
	static const struct {
		unsigned reg;
		uint8_t bcd, bin;
	} want[] = {
		{ RTC_SECONDS, 0x07, 7 },	  { RTC_MINUTES, 0x45, 45 }, { RTC_HOURS, 0x13, 13 },
		{ RTC_DAY_OF_WEEK, 0x05, 5 },	  { RTC_DAY_OF_MONTH, 0x29, 29 }, { RTC_MONTH, 0x02, 2 },
		{ RTC_YEAR, 0x24, 24 },		  { RTC_CENTURY, 0x20, 20 },
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(rd(f, want[i].reg), want[i].bcd);
	wr(f, RTC_REG_B, RTC_B_24H | RTC_B_DM_BINARY);
	assert_int_equal(rd(f, RTC_REG_B), RTC_B_24H | RTC_B_DM_BINARY);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(rd(f, want[i].reg), want[i].bin);
}

/* 12-hour mode: 12 AM is midnight, bit 7 marks PM. */
static void test_12_hour(void **state)
{
	static const struct {
		int hour;
		uint8_t bcd, bin;
	} want[] = {
		{ 0, 0x12, 12 },   { 1, 0x01, 1 },    { 11, 0x11, 11 },	 { 12, 0x92, 0x8c },
		{ 13, 0x81, 0x81 }, { 22, 0x90, 0x8a }, { 23, 0x91, 0x8b },
	};
	struct fixture *f = *state;
	int64_t midnight = f->now - (13 * 3600 + 45 * 60 + 7) * NS;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		f->now = midnight + want[i].hour * 3600 * NS;
		wr(f, RTC_REG_B, 0);
		assert_int_equal(rd(f, RTC_HOURS), want[i].bcd);
		wr(f, RTC_REG_B, RTC_B_DM_BINARY);
		assert_int_equal(rd(f, RTC_HOURS), want[i].bin);
	}
}

static void test_time_follows_host_clock(void **state)
{
	struct fixture *f = *state;

	advance(f, 61 * NS + 500 * MS);
	assert_int_equal(rd(f, RTC_SECONDS), 0x08);
	assert_int_equal(rd(f, RTC_MINUTES), 0x46);
	/* Across midnight into March. */
	advance(f, (10 * 3600 + 14 * 60) * NS);
	assert_int_equal(rd(f, RTC_HOURS), 0x00);
	assert_int_equal(rd(f, RTC_DAY_OF_MONTH), 0x01);
	assert_int_equal(rd(f, RTC_MONTH), 0x03);
	assert_int_equal(rd(f, RTC_DAY_OF_WEEK), 0x06);
}

/* UIP is set during the last 244 us of each second, and never while SET
 * holds the time or the divider is in reset. */
static void test_uip_window(void **state)
{
	struct fixture *f = *state;
	int64_t second = f->now;

	f->now = second + NS - RTC_UIP_NS - 1;
	assert_int_equal(rd(f, RTC_REG_A) & RTC_A_UIP, 0);
	assert_int_equal(rd(f, RTC_SECONDS), 0x07);
	f->now = second + NS - RTC_UIP_NS;
	assert_int_equal(rd(f, RTC_REG_A) & RTC_A_UIP, RTC_A_UIP);
	f->now = second + NS - 1;
	assert_int_equal(rd(f, RTC_REG_A), RTC_A_UIP | 0x26);
	assert_int_equal(rd(f, RTC_SECONDS), 0x07);
	f->now = second + NS;
	assert_int_equal(rd(f, RTC_REG_A) & RTC_A_UIP, 0);
	assert_int_equal(rd(f, RTC_SECONDS), 0x08);

	f->now = second + 2 * NS - 1;
	wr(f, RTC_REG_B, RTC_B_24H | RTC_B_SET);
	assert_int_equal(rd(f, RTC_REG_A) & RTC_A_UIP, 0);
	wr(f, RTC_REG_B, RTC_B_24H);
	wr(f, RTC_REG_A, 0x70);
	assert_int_equal(rd(f, RTC_REG_A), 0x70);
	/* UIP is read-only. Out of divider reset, the first update comes
	 * 500 ms later. */
	wr(f, RTC_REG_A, 0xa6);
	f->now += 500 * MS - 1;
	assert_int_equal(rd(f, RTC_REG_A), 0x26 | RTC_A_UIP);
	assert_int_equal(rd(f, RTC_SECONDS), 0x08);
	f->now += 1;
	assert_int_equal(rd(f, RTC_REG_A), 0x26);
	assert_int_equal(rd(f, RTC_SECONDS), 0x09);
}

/* How Linux's mc146818_set_time sets the clock: SET, divider reset, the
 * registers, then both released. The clock counts on from what was
 * written, its first second ending 500 ms after the divider restarts. */
static void test_set_time(void **state)
{
	struct fixture *f = *state;
	uint8_t b = rd(f, RTC_REG_B), a = rd(f, RTC_REG_A);

	wr(f, RTC_REG_B, b | RTC_B_SET);
	wr(f, RTC_REG_A, a | 0x70);
	advance(f, 10 * NS);
	assert_int_equal(rd(f, RTC_SECONDS), 0x07); /* frozen */
	wr(f, RTC_SECONDS, 0x58);
	wr(f, RTC_MINUTES, 0x59);
	wr(f, RTC_HOURS, 0x23);
	wr(f, RTC_DAY_OF_MONTH, 0x31);
	wr(f, RTC_MONTH, 0x12);
	wr(f, RTC_YEAR, 0x99);
	wr(f, RTC_CENTURY, 0x19);
	wr(f, RTC_REG_B, b);
	advance(f, 3 * NS);
	assert_int_equal(rd(f, RTC_SECONDS), 0x58); /* the divider still holds it */
	wr(f, RTC_REG_A, a);
	advance(f, 499 * MS);
	assert_int_equal(rd(f, RTC_SECONDS), 0x58);
	advance(f, 1 * MS);
	assert_int_equal(rd(f, RTC_SECONDS), 0x59);
	advance(f, 1 * NS);
	assert_int_equal(rd(f, RTC_SECONDS), 0x00);
	assert_int_equal(rd(f, RTC_MINUTES), 0x00);
	assert_int_equal(rd(f, RTC_HOURS), 0x00);
	assert_int_equal(rd(f, RTC_DAY_OF_MONTH), 0x01);
	assert_int_equal(rd(f, RTC_MONTH), 0x01);
	assert_int_equal(rd(f, RTC_YEAR), 0x00);
	assert_int_equal(rd(f, RTC_CENTURY), 0x20);
	assert_int_equal(rd(f, RTC_DAY_OF_WEEK), 0x07); /* 2000-01-01 was a Saturday */
}

/* With SET alone the divider keeps its phase; a register written while the
 * clock runs takes effect at once. */
static void test_set_keeps_phase(void **state)
{
	struct fixture *f = *state;

	advance(f, 300 * MS);
	wr(f, RTC_REG_B, RTC_B_24H | RTC_B_SET);
	wr(f, RTC_MINUTES, 0x10);
	wr(f, RTC_REG_B, RTC_B_24H);
	assert_int_equal(rd(f, RTC_MINUTES), 0x10);
	advance(f, 699 * MS);
	assert_int_equal(rd(f, RTC_SECONDS), 0x07);
	advance(f, 1 * MS);
	assert_int_equal(rd(f, RTC_SECONDS), 0x08);
	wr(f, RTC_HOURS, 0x02);
	assert_int_equal(rd(f, RTC_HOURS), 0x02);
	assert_int_equal(rd(f, RTC_MINUTES), 0x10);
	advance(f, 1 * NS);
	assert_int_equal(rd(f, RTC_SECONDS), 0x09);
}

/* Periodic: PF at the rate register A selects, with or without PIE; IRQF
 * and the IRQ only with PIE; reading C clears all of it. */
static void test_periodic(void **state)
{
	struct fixture *f = *state;
	int64_t next;

	/* RS 15: 2 Hz, ticks on the half seconds of the divider. */
	wr(f, RTC_REG_A, 0x2f);
	advance(f, 499 * MS);
	assert_int_equal(rd(f, RTC_REG_C), 0);
	advance(f, 1 * MS);
	assert_int_equal(rd(f, RTC_REG_C), RTC_C_PF);
	assert_false(f->irq);

	wr(f, RTC_REG_B, RTC_B_24H | RTC_B_PIE);
	next = rtc_next_event(&f->rtc);
	assert_int_equal(next, f->now + 500 * MS);
	f->now = next - 1;
	rtc_sync(&f->rtc);
	assert_false(f->irq);
	f->now = next;
	rtc_sync(&f->rtc);
	assert_true(f->irq);
	/* Nothing more to wake up for until C is read. */
	assert_int_equal(rtc_next_event(&f->rtc), INT64_MAX);
	/* A second ended too: UF is set whether or not UIE is. */
	assert_int_equal(rd(f, RTC_REG_C), RTC_C_IRQF | RTC_C_PF | RTC_C_UF);
	assert_false(f->irq);
	assert_int_equal(rd(f, RTC_REG_C), 0);

	/* RS 6: 1024 Hz, 976.5625 us. */
	wr(f, RTC_REG_A, 0x26);
	next = rtc_next_event(&f->rtc);
	assert_int_equal(next - f->now, 976563);
	advance(f, 976562);
	assert_false(f->irq);
	advance(f, 1);
	assert_true(f->irq);
	assert_int_equal(rd(f, RTC_REG_C), RTC_C_IRQF | RTC_C_PF);
	/* RS 3: 8192 Hz, RS 1: 256 Hz. */
	wr(f, RTC_REG_A, 0x23);
	assert_int_equal(rtc_next_event(&f->rtc) - f->now, 1098633 - 976563);
	wr(f, RTC_REG_A, 0x21);
	assert_int_equal(rtc_next_event(&f->rtc) - f->now, 3906250 - 976563);
	/* RS 0 or the divider in reset: no ticks. */
	wr(f, RTC_REG_A, 0x20);
	assert_int_equal(rtc_next_event(&f->rtc), INT64_MAX);
	advance(f, 2 * NS);
	assert_int_equal(rd(f, RTC_REG_C), RTC_C_UF);
	wr(f, RTC_REG_A, 0x76);
	advance(f, 2 * NS);
	assert_int_equal(rd(f, RTC_REG_C), 0);
}

/* Update-ended: UF once a second; SET stops the updates and clears UIE. */
static void test_update_ended(void **state)
{
	struct fixture *f = *state;

	wr(f, RTC_REG_A, 0x20); /* no periodic flags in the way */
	advance(f, 200 * MS);
	wr(f, RTC_REG_B, RTC_B_24H | RTC_B_UIE);
	assert_int_equal(rtc_next_event(&f->rtc), f->now + 800 * MS);
	advance(f, 799 * MS);
	assert_false(f->irq);
	advance(f, 1 * MS);
	assert_true(f->irq);
	assert_int_equal(rd(f, RTC_REG_C), RTC_C_IRQF | RTC_C_UF);
	assert_false(f->irq);

	wr(f, RTC_REG_B, RTC_B_24H | RTC_B_UIE | RTC_B_SET);
	assert_int_equal(rd(f, RTC_REG_B), RTC_B_24H | RTC_B_SET);
	advance(f, 3 * NS);
	assert_int_equal(rd(f, RTC_REG_C), 0);
}

/* The alarm matches the time registers byte for byte; 0xc0..0xff is don't care. */
static void test_alarm(void **state)
{
	struct fixture *f = *state;

	wr(f, RTC_REG_A, 0x20); /* no periodic flags in the way */
	wr(f, RTC_SECONDS_ALARM, 0x09);
	wr(f, RTC_MINUTES_ALARM, 0x45);
	wr(f, RTC_HOURS_ALARM, 0x13);
	wr(f, RTC_REG_B, RTC_B_24H | RTC_B_AIE);
	advance(f, 1 * NS);
	assert_false(f->irq);
	assert_int_equal(rd(f, RTC_REG_C), RTC_C_UF);
	assert_int_equal(rtc_next_event(&f->rtc), f->now + NS);
	advance(f, 1 * NS);
	assert_true(f->irq);
	assert_int_equal(rd(f, RTC_REG_C), RTC_C_IRQF | RTC_C_AF | RTC_C_UF);
	assert_false(f->irq);
	advance(f, 1 * NS);
	assert_int_equal(rd(f, RTC_REG_C), RTC_C_UF);

	/* Every minute at :30: hours and minutes don't care. */
	wr(f, RTC_SECONDS_ALARM, 0x30);
	wr(f, RTC_MINUTES_ALARM, 0xff);
	wr(f, RTC_HOURS_ALARM, 0xc5);
	advance(f, 19 * NS); /* 13:45:29 */
	assert_false(f->irq);
	advance(f, 1 * NS);
	assert_true(f->irq);
	rd(f, RTC_REG_C);
	advance(f, 59 * NS);
	assert_false(f->irq);
	advance(f, 1 * NS);
	assert_true(f->irq);
	rd(f, RTC_REG_C);
	/* Missed while nobody looked: found on the next access. */
	wr(f, RTC_REG_B, RTC_B_24H);
	f->now += 90 * NS;
	assert_int_equal(rd(f, RTC_REG_C), RTC_C_AF | RTC_C_UF);

	/* In 12-hour mode the alarm's hour byte carries the PM bit. */
	wr(f, RTC_REG_B, RTC_B_DM_BINARY);
	wr(f, RTC_SECONDS_ALARM, 0xc0);
	wr(f, RTC_MINUTES_ALARM, 0xc0);
	wr(f, RTC_HOURS_ALARM, 0x81); /* 1 PM */
	rd(f, RTC_REG_C);
	advance(f, 1 * NS);
	assert_int_equal(rd(f, RTC_REG_C) & RTC_C_AF, RTC_C_AF);
	wr(f, RTC_HOURS_ALARM, 0x01); /* 1 AM */
	advance(f, 1 * NS);
	assert_int_equal(rd(f, RTC_REG_C) & RTC_C_AF, 0);
}

static void test_nvram_and_read_only(void **state)
{
	struct fixture *f = *state;

	for (unsigned i = 0x0e; i < RTC_NREGS; i++)
		if (i != RTC_CENTURY)
			wr(f, i, (uint8_t)(i * 7));
	for (unsigned i = 0x0e; i < RTC_NREGS; i++)
		if (i != RTC_CENTURY)
			assert_int_equal(rd(f, i), (uint8_t)(i * 7));
	/* Bit 7 of the index is the NMI mask, not an address bit. */
	wr(f, 0x80 | 0x20, 0x5a);
	assert_int_equal(rd(f, 0x20), 0x5a);
	/* The index port is write-only. */
	assert_int_equal(rtc_io_read(&f->rtc, RTC_PORT_INDEX), 0xff);
	wr(f, RTC_REG_C, 0xff);
	wr(f, RTC_REG_D, 0x00);
	assert_int_equal(rd(f, RTC_REG_C), 0);
	assert_int_equal(rd(f, RTC_REG_D), RTC_D_VRT);
	wr(f, RTC_SECONDS_ALARM, 0x42);
	assert_int_equal(rd(f, RTC_SECONDS_ALARM), 0x42);
}

/* RESET: the interrupt enables and flags go; time, alarm, A, NVRAM stay. */
static void test_reset(void **state)
{
	struct fixture *f = *state;

	wr(f, 0x40, 0x77);
	wr(f, RTC_REG_A, 0x20);
	wr(f, RTC_REG_B, RTC_B_24H | RTC_B_PIE | RTC_B_UIE | RTC_B_SQWE | RTC_B_DM_BINARY);
	advance(f, 2 * NS);
	assert_true(f->irq);
	rtc_reset(&f->rtc);
	assert_false(f->irq);
	assert_int_equal(rd(f, RTC_REG_B), RTC_B_24H | RTC_B_DM_BINARY);
	assert_int_equal(rd(f, RTC_REG_C), 0);
	assert_int_equal(rd(f, RTC_REG_A), 0x20);
	assert_int_equal(rd(f, 0x40), 0x77);
	assert_int_equal(rd(f, RTC_SECONDS), 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_power_on, setup),
		cmocka_unit_test_setup(test_bcd_and_binary, setup),
		cmocka_unit_test_setup(test_12_hour, setup),
		cmocka_unit_test_setup(test_time_follows_host_clock, setup),
		cmocka_unit_test_setup(test_uip_window, setup),
		cmocka_unit_test_setup(test_set_time, setup),
		cmocka_unit_test_setup(test_set_keeps_phase, setup),
		cmocka_unit_test_setup(test_periodic, setup),
		cmocka_unit_test_setup(test_update_ended, setup),
		cmocka_unit_test_setup(test_alarm, setup),
		cmocka_unit_test_setup(test_nvram_and_read_only, setup),
		cmocka_unit_test_setup(test_reset, setup),
	};

	return cmocka_run_group_tests_name("mc146818", tests, NULL, NULL);
}
