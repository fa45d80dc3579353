/* The CMOS RTC against a fixed host clock: encodings, the guest's own time, NVRAM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "devices/rtc.h"

static time_t host_time;

static time_t fake_now(void)
{
	return host_time;
}

static uint8_t rd(struct rtc *r, uint8_t idx)
{
	uint8_t v = idx;

	r->dev.ops->write(&r->dev, 0, &v, 1);
	r->dev.ops->read(&r->dev, 1, &v, 1);
	return v;
}

static void wr(struct rtc *r, uint8_t idx, uint8_t v)
{
	r->dev.ops->write(&r->dev, 0, &idx, 1);
	r->dev.ops->write(&r->dev, 1, &v, 1);
}

static int setup(void **state)
{
	static struct rtc r;

	rtc_init(&r);
	r.now = fake_now;
	host_time = 1795332937; /* 2026-11-22 07:35:37 UTC, a Sunday */
	*state = &r;
	return 0;
}

static int teardown(void **state)
{
	struct rtc *r = *state;

	r->dev.ops->exit(&r->dev);
	return 0;
}

static void reads_host_utc_in_bcd_24h(void **state)
{
	struct rtc *r = *state;

	assert_int_equal(rd(r, 0x00), 0x37);
	assert_int_equal(rd(r, 0x02), 0x35);
	assert_int_equal(rd(r, 0x04), 0x07);
	assert_int_equal(rd(r, 0x06), 0x01); /* Sunday is day 1 */
	assert_int_equal(rd(r, 0x07), 0x22);
	assert_int_equal(rd(r, 0x08), 0x11);
	assert_int_equal(rd(r, 0x09), 0x26);
	assert_int_equal(rd(r, 0x32), 0x20);
	/* Never updating (a guest waits for UIP to clear), time valid. */
	assert_int_equal(rd(r, 0x0a) & 0x80, 0);
	assert_int_equal(rd(r, 0x0d), 0x80);
	/* NMI-mask bit in the index is not part of the register number. */
	assert_int_equal(rd(r, 0x80 | 0x09), 0x26);
	host_time += 3600 * 24;
	assert_int_equal(rd(r, 0x07), 0x23);
}

static void binary_and_12_hour_modes(void **state)
{
	struct rtc *r = *state;

	host_time = 1795367737; /* 17:15:37 */
	wr(r, 0x0b, 0x04 | 0x02); /* binary, 24h */
	assert_int_equal(rd(r, 0x04), 17);
	assert_int_equal(rd(r, 0x02), 15);
	wr(r, 0x0b, 0x00); /* BCD, 12h: 5 PM */
	assert_int_equal(rd(r, 0x04), 0x80 | 0x05);
	host_time -= 17 * 3600; /* 00:15 is 12 AM */
	assert_int_equal(rd(r, 0x04), 0x12);
}

static void setting_the_time_moves_only_the_guest(void **state)
{
	struct rtc *r = *state;

	wr(r, 0x09, 0x30);                   /* year 2030 */
	assert_int_equal(rd(r, 0x09), 0x30); /* the guest sees its time */
	assert_int_equal(rd(r, 0x02), 0x35); /* the rest stays */
	host_time += 60;
	assert_int_equal(rd(r, 0x02), 0x36); /* and runs on with the host */
	assert_int_equal(rd(r, 0x09), 0x30);
	wr(r, 0x04, 0x23);
	assert_int_equal(rd(r, 0x04), 0x23);
	/* Read-only: UIP in A, all of D. */
	wr(r, 0x0a, 0xa6);
	assert_int_equal(rd(r, 0x0a), 0x26);
	wr(r, 0x0d, 0x00);
	assert_int_equal(rd(r, 0x0d), 0x80);
}

static void nvram_keeps_what_is_written(void **state)
{
	struct rtc *r = *state;
	uint8_t v;

	for (unsigned i = 0x0e; i < 0x80; i++)
		if (i != 0x32)
			wr(r, (uint8_t)i, (uint8_t)(i ^ 0x5a));
	for (unsigned i = 0x0e; i < 0x80; i++)
		if (i != 0x32)
			assert_int_equal(rd(r, (uint8_t)i), i ^ 0x5a);
	/* The alarm registers are plain storage too. */
	wr(r, 0x01, 0x59);
	assert_int_equal(rd(r, 0x01), 0x59);
	/* The index port reads as nothing. */
	r->dev.ops->read(&r->dev, 0, &v, 1);
	assert_int_equal(v, 0xff);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(reads_host_utc_in_bcd_24h, setup, teardown),
		cmocka_unit_test_setup_teardown(binary_and_12_hour_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(setting_the_time_moves_only_the_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(nvram_keeps_what_is_written, setup, teardown),
	};

	return cmocka_run_group_tests_name("rtc", tests, NULL, NULL);
}
