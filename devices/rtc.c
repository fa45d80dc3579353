#include "devices/rtc.h"

#include <string.h>

#include "common/util.h"

/* Register numbers (MC146818 datasheet; the century byte as PC BIOSes keep it). */
#define R_SEC     0x00
#define R_MIN     0x02
#define R_HOUR    0x04
#define R_WDAY    0x06
#define R_MDAY    0x07
#define R_MON     0x08
#define R_YEAR    0x09
#define R_A       0x0a
#define R_B       0x0b
#define R_C       0x0c
#define R_D       0x0d
#define R_CENTURY 0x32
#define A_UIP     0x80
#define B_24H     0x02
#define B_BINARY  0x04
#define D_VRT     0x80 /* valid RAM and time */
#define HOUR_PM   0x80

static time_t host_now(void)
{
	return time(NULL);
}

static uint8_t enc(const struct rtc *r, unsigned v)
{
	return (r->reg[R_B] & B_BINARY) ? (uint8_t)v : (uint8_t)(((v / 10) << 4) | (v % 10));
}

static unsigned dec(const struct rtc *r, uint8_t v)
{
	return (r->reg[R_B] & B_BINARY) ? v : (unsigned)(v >> 4) * 10 + (v & 0x0f);
}

static void guest_tm(const struct rtc *r, struct tm *tm)
{
	time_t t = (time_t)((int64_t)r->now() + r->offset);

	gmtime_r(&t, tm);
}

static uint8_t time_reg(const struct rtc *r, unsigned idx)
{
	struct tm tm;
	unsigned h;

	guest_tm(r, &tm);
	switch (idx) {
	case R_SEC:
		return enc(r, (unsigned)tm.tm_sec);
	case R_MIN:
		return enc(r, (unsigned)tm.tm_min);
	case R_HOUR:
		if (r->reg[R_B] & B_24H)
			return enc(r, (unsigned)tm.tm_hour);
		h = (unsigned)tm.tm_hour % 12;
		return (uint8_t)(enc(r, h ? h : 12) | (tm.tm_hour >= 12 ? HOUR_PM : 0));
	case R_WDAY:
		return enc(r, (unsigned)tm.tm_wday + 1);
	case R_MDAY:
		return enc(r, (unsigned)tm.tm_mday);
	case R_MON:
		return enc(r, (unsigned)tm.tm_mon + 1);
	case R_YEAR:
		return enc(r, (unsigned)(tm.tm_year % 100));
	default: /* R_CENTURY */
		return enc(r, (unsigned)(1900 + tm.tm_year) / 100);
	}
}

static bool is_time_reg(unsigned idx)
{
	return idx <= R_YEAR ? !(idx & 1) || idx >= R_WDAY : idx == R_CENTURY;
}

/* The guest sets one field of the date: keep the rest, move the offset. */
static void set_time_reg(struct rtc *r, unsigned idx, uint8_t v)
{
	struct tm tm;
	unsigned x;
	time_t t;

	guest_tm(r, &tm);
	x = idx == R_HOUR ? dec(r, v & (uint8_t)~HOUR_PM) : dec(r, v);
	switch (idx) {
	case R_SEC:
		tm.tm_sec = (int)x;
		break;
	case R_MIN:
		tm.tm_min = (int)x;
		break;
	case R_HOUR:
		if (!(r->reg[R_B] & B_24H))
			x = x % 12 + ((v & HOUR_PM) ? 12 : 0);
		tm.tm_hour = (int)x;
		break;
	case R_WDAY:
		return; /* derived from the date */
	case R_MDAY:
		tm.tm_mday = (int)x;
		break;
	case R_MON:
		tm.tm_mon = (int)x - 1;
		break;
	case R_YEAR:
		tm.tm_year = tm.tm_year / 100 * 100 + (int)x % 100;
		break;
	default: /* R_CENTURY */
		tm.tm_year = (int)x * 100 - 1900 + tm.tm_year % 100;
		break;
	}
	t = timegm(&tm);
	if (t != (time_t)-1)
		r->offset = (int64_t)t - (int64_t)r->now();
}

static void rtc_read(struct dev *d, uint64_t off, void *data, unsigned len)
{
	struct rtc *r = container_of(d, struct rtc, dev);
	uint8_t v = 0xff;

	memset(data, 0xff, len);
	if (off != 1) { /* the index port is write-only */
		*(uint8_t *)data = v;
		return;
	}
	pthread_mutex_lock(&r->lock);
	if (is_time_reg(r->index))
		v = time_reg(r, r->index);
	else if (r->index == R_C)
		v = 0; /* no interrupt flags: none is ever raised */
	else
		v = r->reg[r->index];
	pthread_mutex_unlock(&r->lock);
	*(uint8_t *)data = v;
}

static void rtc_write(struct dev *d, uint64_t off, const void *data, unsigned len)
{
	struct rtc *r = container_of(d, struct rtc, dev);
	uint8_t v = *(const uint8_t *)data;

	(void)len;
	pthread_mutex_lock(&r->lock);
	if (off == 0) {
		r->index = v & 0x7f; /* bit 7 masks NMIs on real hardware */
	} else if (is_time_reg(r->index)) {
		set_time_reg(r, r->index, v);
	} else if (r->index == R_A) {
		r->reg[R_A] = v & (uint8_t)~A_UIP; /* UIP is read-only, and never set here */
	} else if (r->index == R_B) {
		r->reg[R_B] = v;
	} else if (r->index != R_C && r->index != R_D) { /* C and D are read-only */
		r->reg[r->index] = v;
	}
	pthread_mutex_unlock(&r->lock);
}

static void rtc_exit(struct dev *d)
{
	pthread_mutex_destroy(&container_of(d, struct rtc, dev)->lock);
}

static const struct dev_ops rtc_ops = {
	.name = "rtc",
	.read = rtc_read,
	.write = rtc_write,
	.exit = rtc_exit,
};

void rtc_init(struct rtc *r)
{
	memset(r, 0, sizeof(*r));
	r->dev.ops = &rtc_ops;
	pthread_mutex_init(&r->lock, NULL);
	r->now = host_now;
	r->reg[R_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate: what firmware leaves */
	r->reg[R_B] = B_24H; /* BCD, 24-hour */
	r->reg[R_D] = D_VRT;
}
