/*
 * Fuzzing of the network device (devices/virtio/net.c) through its transport,
 * with a SOCK_SEQPACKET socket pair standing in for the tap, as in
 * tests/unit/test_net.c. A driver model offers random receive chains (any
 * number of buffers of 0..8 KiB, readable pieces first, indirect tables,
 * across the slots' seam, now and then one of ~4 GiB) and transmit chains
 * (the header split anywhere, short chains, frames up to ~70 KiB, any header
 * flags and GSO type) under random feature sets; the host sends frames of
 * 0..66000 bytes (and a few around the size the device's read cuts short);
 * kicks, "tap readable" and "tap writable", timer firings, failing watches
 * and timers, resets in the middle and rate limiters (on some runs) come in
 * any order. The guest RAM is two 8 MiB slots and a 4 GiB one, reserved.
 * Now and then a chain breaks a rule (outside RAM, readable after writable,
 * a bad indirect table, a receive buffer under the header).
 *
 * What must hold: nothing outside the fake RAM is touched (ASan/UBSan), nor
 * guest memory a chain did not give the device to write; every used entry
 * names a chain that was offered, once; a receive entry's length fits the
 * chain's writable bytes; a delivered frame is the host's frame, in order,
 * its num_buffers the number of its used entries (1 without MRG_RXBUF);
 * every frame on the "tap" is 12 bytes of header (num_buffers 0) and
 * 14..65550 bytes, exactly what a consumed chain held, in order; a chain is
 * counted once as sent, malformed (of the right kind) or failed; every frame
 * the host sent is delivered, counted as dropped or still waiting; the
 * device asks for a reset only when a rule was broken; watches and timers
 * are never doubled, leaked or cancelled after they are gone; and once the
 * limiters are lifted, nothing stalls: every transmit chain is consumed and
 * frames wait only when the guest has no room for them.
 *
 *   fuzz_net [iterations] [seed]      (defaults: 100000, 1)
 *
 * Runs with rate limiters also depend on the clock (the buckets refill in
 * real time), so a failure there may take a few tries to reproduce.
 */
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "fuzz.h"

#define SLOT    (8u << 20) /* two slots of 8 MiB at separate host addresses */
#define RAM     (2ull * SLOT)
/* Above it, a third slot of 4 GiB (reserved, barely touched) for receive chains of ~4 GiB. */
#define HUGE    RAM
#define HUGE_SZ ((1ull << 32) + QMAX * REG + 64)
#define TOP     (HUGE + HUGE_SZ)
#define RXQ     0
#define TXQ     1
#define QMAX    32 /* queue sizes 1..32 */
#define MAXP    16 /* buffers of one chain */
#define REG     (136u << 10)
#define MARK    0xa5
#define TXMAX   (NET_HDR_LEN + 70000u)
#define MSGMAX  (NET_HDR_LEN + 66000u)
#define SHORT   (NET_HDR_LEN + 14u) /* the shortest message the device takes from the tap */
#define SEQRING 4096u
#define EXPMAX  8192u
/* The device reads the tap into a buffer this large: a longer frame is cut short. */
#define RXBUF   (NET_HDR_LEN + NET_FRAME_MAX + 4096u)

/* Queue @q's rings: descriptors, available ring at +0x1000, used ring at +0x2000. */
#define RING(q)     (0x1000ull + 0x4000ull * (q))
#define AVAIL(q)    (RING(q) + 0x1000)
#define USED(q)     (RING(q) + 0x2000)
#define TABLE(q, h) (0x10000ull + 0x200ull * ((q)*QMAX + (h))) /* indirect tables */
/* Each chain's buffers lie in its head's region (receive in slot 0, transmit in slot 1)... */
#define REGION(q, h)                                                                               \
	((q) == RXQ ? 0x20000ull + (uint64_t)(h)*REG : SLOT + 0x100000ull + (uint64_t)(h)*REG)
/* ...or, for one chain at a time, within REG / 2 of the slots' seam. */

#define F(b) (1ull << (b))

struct piece {
	uint64_t gpa;
	uint32_t len;
	bool w, placed; /* placed: in the chain's region (not outside RAM, not ~4 GiB) */
	bool big;       /* ~4 GiB in the third slot, from HUGE + REG * head */
};

struct chain {
	bool out;   /* offered, not yet used */
	bool evil;  /* breaks a rule the walker must catch */
	bool risky; /* a receive chain under the header: may legitimately need a reset */
	bool seam;  /* holds the seam region */
	unsigned np, nd;
	struct piece p[MAXP + 2];
	uint16_t d[MAXP + 2]; /* descriptors of the ring's table it holds */
	uint32_t in_len, out_len;
	uint64_t lo, hi; /* where its placed pieces lie */
	uint64_t rhash;  /* transmit: FNV-1a of its readable bytes when offered */
};

struct queue {
	unsigned size, nfree, outstanding;
	uint16_t avail, used_seen;
	bool busy[QMAX];
	struct chain c[QMAX];
};

/* A fake loop's watch or timer (events 0). */
struct handle {
	uintptr_t id;
	short ev;
	void (*fn)(void *, int);
	void *arg;
};

static uint8_t *mem[2], *huge;
static struct guest_mem gm;
static struct virtio_net dev;
static int peer = -1;
static struct queue Q[2];
static uint64_t feat;
static bool live, evil_offered;
static int seam_owner = -1;
static unsigned long long seed0;
static unsigned long iter_now;

static struct handle hs[8];
static unsigned nhs;
static uintptr_t next_handle = 1;
static bool inject; /* watches and timers fail now and then */

/* The run's model: what the device must have done. */
static struct virtio_net_stats prev;
static uint64_t tx_consumed, tx_hdr, tx_size, tx_off;
static uint64_t rx_delivered, rx_bytes, rx_merged, reset_drops, short_sent;
static uint32_t seq_sent, seq_next; /* host frames sent; the next one not yet delivered */
static uint32_t sent_len[SEQRING];
static struct {
	uint64_t hash;
	uint32_t len;
} expect[EXPMAX];
static unsigned exp_head, exp_tail;
static uint64_t tap_frames, tap_bytes, tap_skipped; /* this run's frames on the tap */
static bool rl_run;
static struct rl_cfg rl_rx, rl_tx;

/* Totals for the summary. */
static unsigned long runs, episodes, resets, needs_resets, chains_rx, chains_tx, evils;
static unsigned long frames_sent, frames_tap, throttled, merged, spurious, delivered, failed;

static uint8_t stage[TXMAX + 64], msg[RXBUF + 64], tapbuf[RXBUF + 64];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_net: seed %llu, iteration %lu: ", seed0, iter_now);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* ASan calls this before its report: which seed and iteration to run again. */
void __asan_on_error(void);
void __asan_on_error(void)
{
	fprintf(stderr, "fuzz_net: seed %llu, iteration %lu: ASan reports:\n", seed0, iter_now);
}

static uint64_t below(uint64_t n)
{
	return n ? next() % n : 0;
}

/* ---- guest memory ---- */

/*
 * The host address of guest RAM at @gpa and how many bytes of it (at most
 * @len) are contiguous there, in *@n; outside RAM, a failure saying what the
 * model @did.
 */
static uint8_t *ram(uint64_t gpa, size_t len, uint64_t *n, const char *did)
{
	uint8_t *h;

	*n = mem_gpa_piece(&gm, gpa, len, &h);
	if (!*n)
		fail("the model %s outside RAM at 0x%llx", did, (unsigned long long)gpa);
	return h;
}

static void put(uint64_t gpa, const void *src, size_t len)
{
	const uint8_t *s = src;

	while (len) {
		uint64_t n;
		uint8_t *h = ram(gpa, len, &n, "wrote");

		memcpy(h, s, n);
		gpa += n;
		s += n;
		len -= n;
	}
}

static void get(uint64_t gpa, void *dst, size_t len)
{
	uint8_t *d = dst;

	while (len) {
		uint64_t n;
		uint8_t *h = ram(gpa, len, &n, "read");

		memcpy(d, h, n);
		gpa += n;
		d += n;
		len -= n;
	}
}

static void fill(uint64_t gpa, int c, size_t len)
{
	while (len) {
		uint64_t n;
		uint8_t *h = ram(gpa, len, &n, "filled");

		memset(h, c, n);
		gpa += n;
		len -= n;
	}
}

/* Whether [gpa, gpa+len) still holds MARK everywhere; the first other byte in *@at. */
static bool marked(uint64_t gpa, size_t len, uint64_t *at)
{
	while (len) {
		uint8_t *h;
		uint64_t n = mem_gpa_piece(&gm, gpa, len, &h);

		for (uint64_t i = 0; i < n; i++)
			if (h[i] != MARK) {
				*at = gpa + i;
				return false;
			}
		gpa += n;
		len -= n;
	}
	return true;
}

static uint16_t get16(uint64_t gpa)
{
	uint16_t v;

	get(gpa, &v, 2);
	return v;
}

static uint32_t get32(uint64_t gpa)
{
	uint32_t v;

	get(gpa, &v, 4);
	return v;
}

static void put16(uint64_t gpa, uint16_t v)
{
	put(gpa, &v, 2);
}

static void rand_bytes(uint8_t *p, size_t n)
{
	while (n) {
		uint64_t v = next();
		size_t k = n < 8 ? n : 8;

		memcpy(p, &v, k);
		p += k;
		n -= k;
	}
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

#define FNV0 0xcbf29ce484222325ull

/* Bytes [0, len) of the chain's readable or writable stream into @dst; how many there were. */
static uint32_t stream(const struct chain *c, bool w, uint8_t *dst, uint32_t len)
{
	uint32_t done = 0;

	for (unsigned i = 0; i < c->np && done < len; i++) {
		uint32_t n;

		if (c->p[i].w != w || !c->p[i].len)
			continue;
		n = c->p[i].len < len - done ? c->p[i].len : len - done;
		get(c->p[i].gpa, dst + done, n);
		done += n;
	}
	return done;
}

/* ---- the fake loop ---- */

static void irq(void *o, unsigned gsi, int level)
{
	(void)o;
	(void)gsi;
	(void)level;
}

static struct handle *find(void *h)
{
	for (unsigned i = 0; i < nhs; i++)
		if (hs[i].id == (uintptr_t)h)
			return &hs[i];
	return NULL;
}

static void drop_handle(struct handle *h)
{
	*h = hs[--nhs];
}

static void *add_handle(short ev, void (*fn)(void *, int), void *arg)
{
	if (inject && below(24) == 0)
		return NULL; /* the loop could not (ENOMEM) */
	if (nhs == sizeof(hs) / sizeof(hs[0]))
		fail("the device holds %u watches and timers: leaked", nhs);
	for (unsigned i = 0; i < nhs; i++) {
		if (ev && hs[i].ev == ev)
			fail("a second watch for events 0x%x while one is live", ev);
		if (!ev && !hs[i].ev && hs[i].fn == fn)
			fail("a second timer with the same callback while one is pending");
	}
	hs[nhs] = (struct handle){.id = next_handle++, .ev = ev, .fn = fn, .arg = arg};
	return (void *)hs[nhs++].id;
}

static void *timer(void *o, uint64_t ms, void (*fn)(void *, int), void *arg)
{
	(void)o;
	(void)ms;
	return add_handle(0, fn, arg);
}

static void *watch(void *o, int fd, short ev, void (*fn)(void *, int), void *arg)
{
	(void)o;
	if (fd != dev.tap)
		fail("a watch on fd %d, not the tap", fd);
	if (ev != POLLIN && ev != POLLOUT)
		fail("a watch for events 0x%x", ev);
	return add_handle(ev, fn, arg);
}

static void unwatch(void *o, void *w)
{
	struct handle *h;

	(void)o;
	if (!w)
		return;
	h = find(w);
	if (!h)
		fail("unwatch/cancel of handle %lu, which is gone", (unsigned long)(uintptr_t)w);
	drop_handle(h);
}

static const struct dev_host host = {.irq_line = irq,
				     .timer = timer,
				     .timer_cancel = unwatch,
				     .watch = watch,
				     .unwatch = unwatch};

/* ---- registers ---- */

static void wr(uint64_t off, uint32_t v)
{
	dev.t.dev.ops->write(&dev.t.dev, off, &v, 4);
}

static uint32_t rd(uint64_t off)
{
	uint32_t v;

	dev.t.dev.ops->read(&dev.t.dev, off, &v, 4);
	return v;
}

/* ---- the driver's queues ---- */

static void forget_chains(void)
{
	for (unsigned q = 0; q < 2; q++) {
		for (unsigned i = 0; i < QMAX; i++) {
			Q[q].c[i].out = false;
			Q[q].busy[i] = false;
		}
		Q[q].nfree = Q[q].size;
		Q[q].outstanding = 0;
		Q[q].avail = Q[q].used_seen = 0;
	}
	seam_owner = -1;
}

static void free_chain(unsigned q, struct chain *c)
{
	for (unsigned i = 0; i < c->nd; i++)
		Q[q].busy[c->d[i]] = false;
	Q[q].nfree += c->nd;
	if (c->seam)
		seam_owner = -1;
	c->out = false;
	Q[q].outstanding--;
}

/* Status 0: whatever was read from the tap and not delivered is dropped with the queues. */
static void status0(void)
{
	if (dev.pend)
		reset_drops++;
	wr(VIRTIO_MMIO_STATUS, 0);
	live = false;
	forget_chains();
}

static void write_desc(uint64_t table, unsigned i, uint64_t a, uint32_t len, uint16_t flags,
		       uint16_t nx)
{
	uint8_t b[16];

	fuzz_desc(b, a, len, flags, nx);
	put(table + 16ull * i, b, 16);
}

/*
 * Lay out chain @t (pieces with lengths and directions; tx: the readable
 * bytes in stage[]) in queue @q and offer it: descriptors (direct or an
 * indirect table), buffers in the head's region or across the seam, MARK
 * wherever the device may not write. @bad: 0 none, 1 a buffer outside RAM,
 * 2 a bad indirect descriptor.
 */
static void offer(unsigned q, struct chain *t, int bad)
{
	struct queue *qu = &Q[q];
	bool ind = (feat & F(VIRTIO_RING_F_INDIRECT_DESC)) && (t->np > qu->nfree || below(3) == 0);
	unsigned head, nd = ind || bad == 2 ? 1 : t->np, perm[MAXP + 2];
	uint64_t total = 0, start, pos;
	uint32_t gaps[MAXP + 2], off = 0;
	struct chain *c;

	if (bad == 2)
		ind = true;
	if (!qu->nfree || nd > qu->nfree)
		return;
	/* Descriptors: random free ones, in random order. */
	for (unsigned i = 0; i < nd; i++) {
		unsigned k = (unsigned)below(qu->nfree - i), d = 0;

		for (;; d++)
			if (!qu->busy[d] && !k--)
				break;
		qu->busy[d] = true;
		t->d[i] = (uint16_t)d;
	}
	qu->nfree -= nd;
	t->nd = nd;
	head = t->d[0];
	c = &qu->c[head];
	if (c->out)
		fail("model: head %u offered twice", head);
	/* Where the buffers go. */
	for (unsigned i = 0; i < t->np; i++) {
		gaps[i] = below(4) ? 0 : (uint32_t)below(16);
		if (t->p[i].placed)
			total += gaps[i] + t->p[i].len;
	}
	t->seam = false;
	if (seam_owner < 0 && below(4) == 0 && total >= 2) {
		uint64_t lo = total > REG / 2 ? total - REG / 2 : 1,
			 hi = total - 1 < REG / 2 ? total - 1 : REG / 2;

		start = SLOT - (lo + below(hi - lo + 1));
		t->seam = true;
		seam_owner = (int)(q * QMAX + head);
	} else {
		start = REGION(q, head) + below(REG - total + 1);
	}
	pos = start;
	for (unsigned i = 0; i < t->np; i++) {
		struct piece *p = &t->p[i];

		if (p->big)
			p->gpa = HUGE + REG * (uint64_t)head + below(64);
		if (!p->placed)
			continue;
		pos += gaps[i];
		p->gpa = pos;
		pos += p->len;
	}
	t->lo = start;
	t->hi = pos;
	fill(start, MARK, pos - start);
	/* Transmit data: the readable stream. */
	t->rhash = FNV0;
	for (unsigned i = 0; i < t->np; i++) {
		struct piece *p = &t->p[i];

		if (q == TXQ && !p->w && p->placed) {
			put(p->gpa, stage + off, p->len);
			t->rhash = fnv(t->rhash, stage + off, p->len);
			off += p->len;
		}
	}
	/* The descriptors. */
	for (unsigned i = 0; i < t->np; i++)
		perm[i] = i;
	if (ind) {
		uint64_t tab = TABLE(q, head);
		uint32_t len = t->np * 16;

		/* The walk starts at entry 0; the rest in any order. */
		for (unsigned i = t->np - 1; i > 1; i--) {
			unsigned j = 1 + (unsigned)below(i), x = perm[i];

			perm[i] = perm[j];
			perm[j] = x;
		}
		for (unsigned i = 0; i < t->np; i++)
			write_desc(tab, perm[i], t->p[i].gpa, t->p[i].len,
				   (uint16_t)((t->p[i].w ? VRING_DESC_F_WRITE : 0) |
					      (i + 1 < t->np ? VRING_DESC_F_NEXT : 0)),
				   (uint16_t)(i + 1 < t->np ? perm[i + 1] : 0));
		if (bad == 2)
			len = below(2) ? len + 8 : 0;
		write_desc(RING(q), head, tab, len, VRING_DESC_F_INDIRECT, 0);
	} else {
		for (unsigned i = 0; i < t->np; i++)
			write_desc(RING(q), t->d[i], t->p[i].gpa, t->p[i].len,
				   (uint16_t)((t->p[i].w ? VRING_DESC_F_WRITE : 0) |
					      (i + 1 < t->np ? VRING_DESC_F_NEXT : 0)),
				   (uint16_t)(i + 1 < t->np ? t->d[i + 1] : 0));
	}
	*c = *t;
	c->out = true;
	qu->outstanding++;
	if (c->evil || c->risky) {
		evil_offered = true;
		evils++;
	}
	put16(AVAIL(q) + 4 + 2ull * (qu->avail % qu->size), (uint16_t)head);
	qu->avail++;
	put16(AVAIL(q) + 2, qu->avail);
}

/* Make chain @t break a rule now and then; 1 or 2 for offer()'s @bad. */
static int maybe_evil(struct chain *t)
{
	int kind = below(256) ? -1 : (int)below(3);

	if (kind < 0)
		return 0;
	t->evil = true;
	if (kind == 0) { /* a buffer outside RAM (or wrapping around) */
		struct piece *p = &t->p[below(t->np)];

		p->placed = p->big = false;
		if (!p->len)
			p->len = 1 + (uint32_t)below(100);
		p->gpa = below(2) ? TOP + below(1ull << 32) : ~0ull - below(4096);
		return 1;
	}
	if (kind == 1 && t->np < MAXP + 2) { /* readable after writable */
		t->p[t->np] =
			(struct piece){.len = 1 + (uint32_t)below(64), .w = true, .placed = true};
		t->p[t->np + 1] = (struct piece){.len = 1 + (uint32_t)below(64), .placed = true};
		t->np += 2;
		return 0;
	}
	return 2; /* an indirect descriptor without the feature, or with a bad length */
}

/* The number of buffers a new chain may have, or 0 when none can be offered. */
static unsigned room_for(unsigned q)
{
	if (!live || !Q[q].nfree)
		return 0;
	return (feat & F(VIRTIO_RING_F_INDIRECT_DESC)) ? MAXP
						       : (Q[q].nfree < MAXP ? Q[q].nfree : MAXP);
}

static uint32_t rx_len(void)
{
	switch (below(10)) {
	case 0:
		return (uint32_t)below(65);
	case 1:
		return 4096 + (uint32_t)below(4097);
	case 2:
		return NET_HDR_LEN + 1514;
	default:
		return (uint32_t)below(8193);
	}
}

static void offer_rx(void)
{
	unsigned max = room_for(RXQ), nr = below(8) ? 0 : 1 + (unsigned)below(2), nw;
	struct chain t = {0};
	uint32_t w = 0;
	int bad;

	if (!max)
		return;
	nw = 1 + (unsigned)(below(4) ? below(4) : below(MAXP - 2));
	if (nr + nw > max)
		nw = max > nr ? max - nr : (nr = 0, max);
	for (unsigned i = 0; i < nr; i++)
		t.p[t.np++] = (struct piece){.len = (uint32_t)below(256), .placed = true};
	for (unsigned i = 0; i < nw; i++) {
		t.p[t.np] = (struct piece){.len = rx_len(), .w = true, .placed = true};
		w += t.p[t.np++].len;
	}
	if (below(128) == 0) {
		/* Under the header: fine as a merged frame's later buffer, a reset as its first. */
		t.risky = true;
		t.np = nr;
		t.p[t.np++] = (struct piece){
			.len = (uint32_t)below(NET_HDR_LEN), .w = true, .placed = true};
	} else if (w < NET_HDR_LEN) {
		t.p[t.np - 1].len += NET_HDR_LEN;
	}
	if (huge && below(64) == 0) {
		/* All a chain may hold (4 GiB - 1 with its other buffers) in one buffer, whose
		 * first REG bytes (more than a frame) are its own. */
		uint64_t rest = 0;

		for (unsigned i = 0; i + 1 < t.np; i++)
			rest += t.p[i].len;
		t.p[t.np - 1] = (struct piece){
			.len = (uint32_t)(UINT32_MAX - rest - below(64)), .w = true, .big = true};
	}
	bad = maybe_evil(&t);
	for (unsigned i = 0; i < t.np; i++) {
		if (t.p[i].w)
			t.out_len += t.p[i].len;
		else
			t.in_len += t.p[i].len;
	}
	offer(RXQ, &t, bad);
	chains_rx++;
}

static const uint8_t gso_types[] = {
	VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4,
	VIRTIO_NET_HDR_GSO_UDP,  VIRTIO_NET_HDR_GSO_TCPV6,
	5 /* UDP_L4 */,          VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN,
	VIRTIO_NET_HDR_GSO_ECN};

static void offer_tx(void)
{
	unsigned max = room_for(TXQ), nr, nw = below(8) ? 0 : 1 + (unsigned)below(2);
	uint32_t len, cuts[MAXP + 1];
	struct chain t = {0};
	int bad;

	if (!max)
		return;
	switch (below(16)) {
	case 0:
		len = (uint32_t)below(NET_HDR_LEN + 1); /* not even a header */
		break;
	case 1:
		len = NET_HDR_LEN + (uint32_t)below(14); /* a frame under 14 bytes */
		break;
	case 2:
		len = NET_HDR_LEN + 65536 +
		      (uint32_t)below(70000 - 65536 + 1); /* around the limit */
		break;
	case 3:
		len = NET_HDR_LEN + NET_FRAME_MAX - 1 + (uint32_t)below(3);
		break;
	case 4:
	case 5:
		len = NET_HDR_LEN + 14 + (uint32_t)below(NET_FRAME_MAX - 14 + 1);
		break;
	default:
		len = NET_HDR_LEN + 14 + (uint32_t)below(1501);
	}
	rand_bytes(stage, len);
	if (len >= 2) {
		stage[0] = below(2) ? 0 : below(2) ? VIRTIO_NET_HDR_F_NEEDS_CSUM : (uint8_t)next();
		stage[1] = below(2)   ? 0
			   : below(8) ? gso_types[below(sizeof(gso_types))]
				      : (uint8_t)next();
	}
	if (nw >= max)
		nw = 0;
	nr = 1 + (unsigned)(below(3) ? below(3) : below(MAXP - 3));
	if (nr + nw > max)
		nr = max - nw;
	/* Cut the readable stream anywhere (often inside the header). */
	for (unsigned i = 0; i + 1 < nr; i++)
		cuts[i] = (uint32_t)below(
			(i == 0 && below(2) && len > NET_HDR_LEN ? NET_HDR_LEN : len) + 1ull);
	for (unsigned i = 1; i + 1 < nr; i++)
		for (unsigned j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
			uint32_t x = cuts[j];

			cuts[j] = cuts[j - 1];
			cuts[j - 1] = x;
		}
	for (unsigned i = 0; i < nr; i++) {
		uint32_t a = i ? cuts[i - 1] : 0, b = i + 1 < nr ? cuts[i] : len;

		t.p[t.np++] = (struct piece){.len = b - a, .placed = true};
	}
	for (unsigned i = 0; i < nw; i++) /* device-writable pieces: ignored, never written */
		t.p[t.np++] = (struct piece){.len = (uint32_t)below(64), .w = true, .placed = true};
	bad = maybe_evil(&t);
	for (unsigned i = 0; i < t.np; i++) {
		if (t.p[i].w)
			t.out_len += t.p[i].len;
		else
			t.in_len += t.p[i].len;
	}
	offer(TXQ, &t, bad);
	chains_tx++;
}

/* ---- the host's end of the tap ---- */

static uint8_t frame_byte(uint32_t seq, uint32_t i)
{
	uint32_t x = seq * 0x9e3779b1u + i * 0x85ebca6bu;

	x ^= x >> 15;
	x *= 0x2c1b3c6du;
	return (uint8_t)(x ^ x >> 12);
}

/* Host frame @seq of @len bytes: its number at bytes 12..15, the rest from frame_byte. */
static void host_msg(uint32_t seq, uint32_t len, uint8_t *out)
{
	for (uint32_t i = 0; i < len; i++)
		out[i] = frame_byte(seq, i);
	if (len >= NET_HDR_LEN + 4)
		memcpy(out + NET_HDR_LEN, &seq, 4);
}

static void host_send(void)
{
	uint32_t len;
	ssize_t r;

	switch (below(16)) {
	case 0:
		len = (uint32_t)below(NET_HDR_LEN);
		break;
	case 1:
		len = NET_HDR_LEN + (uint32_t)below(14);
		break;
	case 2:
		len = NET_HDR_LEN + NET_FRAME_MAX - 2 + (uint32_t)below(5);
		break;
	case 3:
		/* Now and then one the device's read cuts short (or just does not). */
		len = below(8) ? MSGMAX - (uint32_t)below(6000) : RXBUF - 2 + (uint32_t)below(5);
		break;
	case 4:
	case 5:
		len = SHORT + (uint32_t)below(MSGMAX - SHORT + 1);
		break;
	default:
		len = SHORT + (uint32_t)below(1501);
	}
	host_msg(seq_sent, len, msg);
	r = send(peer, msg, len, MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == ENOBUFS))
		return; /* the tap's queue is full */
	if (r != (ssize_t)len)
		fail("host send of %u bytes: %zd (%s)", len, r, strerror(errno));
	sent_len[seq_sent % SEQRING] = len;
	seq_sent++;
	/* The tap holds a handful: frames this far back were dropped long ago. */
	if (seq_sent - seq_next > SEQRING / 2)
		seq_next = seq_sent - SEQRING / 2;
	frames_sent++;
	short_sent += len < SHORT;
}

static struct virtio_net_stats stats(void);

/* The host reads the tap: every frame one a transmit chain held, in order. */
static void drain_tap(void)
{
	for (;;) {
		uint64_t h;
		ssize_t r = recv(peer, tapbuf, sizeof(tapbuf), MSG_DONTWAIT | MSG_TRUNC);

		if (r < 0 && errno == EAGAIN)
			return;
		if (r < 0)
			fail("host recv: %s", strerror(errno));
		if (r < NET_HDR_LEN + 14 || r > NET_HDR_LEN + NET_FRAME_MAX)
			fail("a %zd-byte message reached the tap (12 + 14..65550 expected)", r);
		if (tapbuf[10] || tapbuf[11])
			fail("a frame reached the tap with num_buffers %u",
			     tapbuf[10] | tapbuf[11] << 8);
		/* The next good chain's frame, unless the writes of those before failed. */
		h = fnv(FNV0, tapbuf, (size_t)r);
		while (exp_head != exp_tail && (expect[exp_head % EXPMAX].len != r ||
						expect[exp_head % EXPMAX].hash != h)) {
			exp_head++;
			tap_skipped++;
		}
		if (exp_head == exp_tail)
			fail("a %zd-byte frame reached the tap that no transmit chain held "
			     "(or out of order)", r);
		if (tap_skipped > stats().tap_write_fails)
			fail("the tap got a frame after %llu good ones that never came, with %llu "
			     "failed writes", (unsigned long long)tap_skipped,
			     (unsigned long long)stats().tap_write_fails);
		exp_head++;
		frames_tap++;
		tap_frames++;
		tap_bytes += (uint64_t)r - NET_HDR_LEN;
	}
}

/* ---- what the device did ---- */

static struct virtio_net_stats stats(void)
{
	struct virtio_net_stats s;

	virtio_net_stats(&dev, &s);
	return s;
}

/* Memory of a used chain the device was not given to write must still hold MARK. */
static void check_marks(unsigned q, const struct chain *c)
{
	uint64_t pos = c->lo, at;

	for (unsigned i = 0; i < c->np; i++) {
		const struct piece *p = &c->p[i];

		if (!p->placed)
			continue;
		if (!marked(pos, p->gpa - pos, &at))
			fail("q%u chain %u: the gap at 0x%llx was written", q, c->d[0],
			     (unsigned long long)at);
		if ((!p->w && q == RXQ) || (p->w && q == TXQ))
			if (!marked(p->gpa, p->len, &at))
				fail("q%u chain %u: %s buffer written at 0x%llx", q, c->d[0],
				     p->w ? "a transmit chain's" : "a device-readable",
				     (unsigned long long)at);
		pos = p->gpa + p->len;
	}
}

static struct chain *used_chain(unsigned q, uint16_t n, uint32_t *len)
{
	uint64_t e = USED(q) + 4 + 8ull * (n % Q[q].size);
	uint32_t id = get32(e);
	struct chain *c;

	*len = get32(e + 4);
	if (id >= Q[q].size || !Q[q].c[id].out)
		fail("q%u used entry %u names chain %u, which is not on offer", q, n, id);
	c = &Q[q].c[id];
	if (c->evil)
		fail("q%u: chain %u breaks a rule, yet came back used", q, id);
	return c;
}

static void observe_tx(const struct virtio_net_stats *now)
{
	struct queue *qu = &Q[TXQ];
	uint16_t u = get16(USED(TXQ) + 2), n = (uint16_t)(u - qu->used_seen);
	uint64_t mal = 0, dhdr = 0, dsize = 0, doff = 0;
	unsigned sent = 0;

	if (!live)
		return;
	if (n > qu->outstanding)
		fail("tx used index moved by %u with %u chains on offer", n, qu->outstanding);
	for (uint16_t i = 0; i < n; i++) {
		uint32_t len, got;
		struct chain *c = used_chain(TXQ, (uint16_t)(qu->used_seen + i), &len);
		uint8_t f, g;

		if (len)
			fail("tx chain %u came back with length %u (nothing is written)", c->d[0],
			     len);
		check_marks(TXQ, c);
		got = stream(c, false, stage, c->in_len);
		if (got != c->in_len || fnv(FNV0, stage, got) != c->rhash)
			fail("tx chain %u: its readable bytes changed", c->d[0]);
		f = got > 0 ? stage[0] : 0;
		g = got > 1 ? stage[1] : 0;
		if (got < NET_HDR_LEN) {
			dhdr++;
		} else if (got - NET_HDR_LEN < 14 || got - NET_HDR_LEN > NET_FRAME_MAX) {
			dsize++;
		} else if (((f & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !(feat & F(VIRTIO_NET_F_CSUM))) ||
			   (g & VIRTIO_NET_HDR_GSO_ECN) ||
			   !(g == VIRTIO_NET_HDR_GSO_NONE ||
			     (g == VIRTIO_NET_HDR_GSO_TCPV4 &&
			      (feat & F(VIRTIO_NET_F_HOST_TSO4))) ||
			     (g == VIRTIO_NET_HDR_GSO_TCPV6 &&
			      (feat & F(VIRTIO_NET_F_HOST_TSO6))))) {
			doff++;
		} else {
			/* Written (or failed): either way in this order. */
			if (exp_tail - exp_head >= EXPMAX)
				fail("model: %u frames expected on the tap", exp_tail - exp_head);
			stage[10] = stage[11] = 0;
			expect[exp_tail % EXPMAX].hash = fnv(FNV0, stage, got);
			expect[exp_tail % EXPMAX].len = got;
			exp_tail++;
			sent++;
		}
		free_chain(TXQ, c);
	}
	qu->used_seen = u;
	mal = dhdr + dsize + doff;
	tx_consumed += n;
	tx_hdr += dhdr;
	tx_size += dsize;
	tx_off += doff;
	if (now->tx_malformed_frames - prev.tx_malformed_frames != mal ||
	    (now->tx_packets_count - prev.tx_packets_count) +
			    (now->tap_write_fails - prev.tap_write_fails) !=
		    sent)
		fail("tx: %u chains consumed (%u good, %llu malformed), the counters moved by %llu "
		     "sent, %llu failed, %llu malformed",
		     n, sent, (unsigned long long)mal,
		     (unsigned long long)(now->tx_packets_count - prev.tx_packets_count),
		     (unsigned long long)(now->tap_write_fails - prev.tap_write_fails),
		     (unsigned long long)(now->tx_malformed_frames - prev.tx_malformed_frames));
}

/* With the tap drained: every frame counted as sent is there, every other good one failed. */
static void check_tap(void)
{
	struct virtio_net_stats s = stats();

	drain_tap();
	if (tap_frames != s.tx_packets_count || tap_bytes != s.tx_bytes_count ||
	    tap_skipped + (exp_tail - exp_head) != s.tap_write_fails)
		fail("tx: %llu frames (%llu bytes) on the tap, %llu good ones not; the device "
		     "counted %llu sent (%llu bytes), %llu failed",
		     (unsigned long long)tap_frames, (unsigned long long)tap_bytes,
		     (unsigned long long)(tap_skipped + (exp_tail - exp_head)),
		     (unsigned long long)s.tx_packets_count, (unsigned long long)s.tx_bytes_count,
		     (unsigned long long)s.tap_write_fails);
}

static void observe_rx(void)
{
	struct queue *qu = &Q[RXQ];
	uint16_t u = get16(USED(RXQ) + 2), n = (uint16_t)(u - qu->used_seen), i = 0;

	if (!live)
		return;
	if (n > qu->outstanding)
		fail("rx used index moved by %u with %u chains on offer", n, qu->outstanding);
	while (i < n) {
		uint32_t len, total = 0, seq, k;
		struct chain *c = used_chain(RXQ, (uint16_t)(qu->used_seen + i), &len);
		uint8_t want[NET_HDR_LEN];

		if (len < NET_HDR_LEN || len > c->out_len)
			fail("rx chain %u (%u writable bytes) came back first of a frame with "
			     "length %u",
			     c->d[0], c->out_len, len);
		stream(c, true, msg, NET_HDR_LEN);
		k = msg[10] | (uint32_t)msg[11] << 8;
		if (!k || k > (uint32_t)(n - i) || (k > 1 && !(feat & F(VIRTIO_NET_F_MRG_RXBUF))))
			fail("rx: a frame with num_buffers %u, %u used entries here%s", k, n - i,
			     (feat & F(VIRTIO_NET_F_MRG_RXBUF)) ? "" : ", MRG_RXBUF not acked");
		for (uint32_t j = 0; j < k; j++) {
			if (j)
				c = used_chain(RXQ, (uint16_t)(qu->used_seen + i + j), &len);
			if (len > c->out_len)
				fail("rx chain %u: used length %u over its %u writable bytes",
				     c->d[0], len, c->out_len);
			if (total + len > RXBUF)
				fail("rx: a frame of more than %u bytes delivered", total + len);
			stream(c, true, msg + total, len);
			total += len;
			check_marks(RXQ, c);
			free_chain(RXQ, c);
		}
		if (total < NET_HDR_LEN + 14)
			fail("rx: a %u-byte frame delivered", total);
		memcpy(&seq, msg + NET_HDR_LEN, 4);
		if ((uint32_t)(seq - seq_next) >= (uint32_t)(seq_sent - seq_next))
			fail("rx: frame %u delivered; %u..%u were waiting", seq, seq_next,
			     seq_sent - 1);
		if (sent_len[seq % SEQRING] != total)
			fail("rx: frame %u delivered with %u bytes, sent with %u", seq, total,
			     sent_len[seq % SEQRING]);
		for (unsigned b = 0; b < NET_HDR_LEN; b++)
			want[b] = frame_byte(seq, b);
		want[10] = (uint8_t)k;
		want[11] = (uint8_t)(k >> 8);
		if (memcmp(msg, want, NET_HDR_LEN))
			fail("rx: frame %u's header is not the host's (num_buffers %u)", seq, k);
		for (uint32_t b = NET_HDR_LEN + 4; b < total; b++)
			if (msg[b] != frame_byte(seq, b))
				fail("rx: frame %u differs from the host's at byte %u of %u", seq,
				     b, total);
		seq_next = seq + 1;
		rx_delivered++;
		rx_bytes += total - NET_HDR_LEN;
		rx_merged += k > 1;
		i = (uint16_t)(i + k);
	}
	qu->used_seen = u;
}

static void bring_up(void);
static bool fire_watch(short ev, int res);

/* After every call into the device: what it did must add up. */
static void after(void)
{
	struct virtio_net_stats now = stats();

	observe_rx();
	observe_tx(&now);
	if (now.tx_packets_count + now.tx_malformed_frames + now.tap_write_fails != tx_consumed)
		fail("tx: %llu sent + %llu malformed + %llu failed != %llu chains consumed",
		     (unsigned long long)now.tx_packets_count,
		     (unsigned long long)now.tx_malformed_frames,
		     (unsigned long long)now.tap_write_fails, (unsigned long long)tx_consumed);
	if (now.tx_malformed_header != tx_hdr || now.tx_malformed_size != tx_size ||
	    now.tx_malformed_offload != tx_off)
		fail("tx: malformed header/size/offload counted %llu/%llu/%llu, expected "
		     "%llu/%llu/%llu",
		     (unsigned long long)now.tx_malformed_header,
		     (unsigned long long)now.tx_malformed_size,
		     (unsigned long long)now.tx_malformed_offload, (unsigned long long)tx_hdr,
		     (unsigned long long)tx_size, (unsigned long long)tx_off);
	if (now.rx_packets_count != rx_delivered || now.rx_bytes_count != rx_bytes)
		fail("rx: counted %llu frames, %llu bytes; %llu and %llu were delivered",
		     (unsigned long long)now.rx_packets_count,
		     (unsigned long long)now.rx_bytes_count, (unsigned long long)rx_delivered,
		     (unsigned long long)rx_bytes);
	if (dev.rx_dead)
		fail("rx: the device stopped reading the tap for good");
	prev = now;
	if (live && (rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		if (!evil_offered)
			fail("the device asked for a reset, but no chain broke a rule");
		needs_resets++;
		live = false; /* the driver stops using the queues */
		if (below(2))
			fire_watch(POLLIN, POLLIN); /* the loop runs before the driver resets */
		bring_up();
	}
}

static void kick(unsigned q)
{
	virtio_mmio_kick(&dev.t, q);
	after();
}

static struct handle *handle_for(short ev)
{
	for (unsigned i = 0; i < nhs; i++)
		if (hs[i].ev == ev)
			return &hs[i];
	return NULL;
}

static bool tap_readable(void);

/*
 * The loop calls a watch for @ev (POLLIN: "tap readable", POLLOUT: "tap
 * writable"). Level-triggered: a POLLIN watch that stays while the tap has a
 * frame and the device did nothing with it would make the loop spin.
 */
static bool fire_watch(short ev, int res)
{
	struct handle *h = handle_for(ev);
	struct handle copy;
	bool spin_check;
	uint64_t before;
	uint32_t pend = dev.pend;

	if (!h)
		return false;
	spin_check = ev == POLLIN && res > 0 && tap_readable();
	before = prev.rx_packets_count + prev.rx_dropped_too_big + prev.tap_read_fails + episodes;
	copy = *h;
	copy.fn(copy.arg, res);
	after();
	if (spin_check && handle_for(POLLIN) && dev.pend == pend &&
	    prev.rx_packets_count + prev.rx_dropped_too_big + prev.tap_read_fails + episodes ==
		    before)
		fail("the tap's POLLIN watch fired and stays without progress "
		     "(the loop would spin)");
	return true;
}

static bool fire_timer(void)
{
	struct handle *h = NULL;
	struct handle copy;
	unsigned pick = 0, ntimers = 0;

	for (unsigned i = 0; i < nhs; i++)
		ntimers += !hs[i].ev;
	if (!ntimers)
		return false;
	pick = (unsigned)below(ntimers);
	for (unsigned i = 0; i < nhs; i++)
		if (!hs[i].ev && !pick--) {
			h = &hs[i];
			break;
		}
	copy = *h;
	drop_handle(h); /* one-shot: the handle is gone once it ran */
	copy.fn(copy.arg, 0);
	after();
	return true;
}

/* ---- the driver's side of the transport ---- */

static void bring_up(void)
{
	uint64_t f = virtio_mmio_offered(&dev.t) & (next() | F(VIRTIO_F_VERSION_1));

	status0();
	episodes++;
	evil_offered = false;
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
	wr(VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	if (!(rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK))
		fail("features 0x%llx refused", (unsigned long long)f);
	feat = f;
	for (unsigned q = 0; q < 2; q++) {
		Q[q].size = 1u << below(6);
		fill(RING(q), 0, 0x3000);
		if (below(4) == 0)
			put16(AVAIL(q), VRING_AVAIL_F_NO_INTERRUPT);
		wr(VIRTIO_MMIO_QUEUE_SEL, q);
		wr(VIRTIO_MMIO_QUEUE_NUM, Q[q].size);
		wr(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)RING(q));
		wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
		wr(VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)AVAIL(q));
		wr(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
		wr(VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)USED(q));
		wr(VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
		wr(VIRTIO_MMIO_QUEUE_READY, 1);
	}
	forget_chains();
	live = true;
	/* Receive buffers before DRIVER_OK, as Linux gives them; the loop sees the kick. */
	for (unsigned i = below(4) ? 0 : 1 + (unsigned)below(4); i; i--)
		offer_rx();
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	if (!(rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK))
		fail("DRIVER_OK refused");
	kick(RXQ);
}

static void rand_rl(struct rl_cfg *c)
{
	*c = (struct rl_cfg){.set = true};
	if (below(2)) {
		c->has_bandwidth = true;
		c->bandwidth =
			(struct rl_bucket_cfg){.size = 1000 + below(300000),
					       .one_time_burst = below(2) ? below(200000) : 0,
					       .refill_time_ms = 1 + below(20)};
	}
	if (below(2)) {
		c->has_ops = true;
		c->ops = (struct rl_bucket_cfg){.size = 1 + below(64),
						.one_time_burst = below(2) ? below(32) : 0,
						.refill_time_ms = 1 + below(20)};
	}
}

/* Whether the tap has a frame for the device. */
static bool tap_readable(void)
{
	struct pollfd p = {.fd = dev.tap, .events = POLLIN};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/*
 * Limiters lifted and failures off, everything the device waits for given:
 * nothing may stall. Every transmit chain is consumed, the loop's POLLIN
 * watch never fires without progress (it would spin), and frames wait in the
 * tap only while the guest has no room for the next one.
 */
static void quiesce(void)
{
	static const struct rl_cfg none;
	bool was = inject;

	inject = false;
	virtio_net_set_limits(&dev, &none, &none);
	for (unsigned round = 0; round < 64 && (round < 4 || Q[TXQ].outstanding); round++) {
		drain_tap();
		while (fire_timer())
			;
		drain_tap();
		fire_watch(POLLOUT, POLLOUT);
		kick(TXQ);
		kick(RXQ);
		for (unsigned i = 0; i < 64 && handle_for(POLLIN) && tap_readable(); i++)
			fire_watch(POLLIN, POLLIN);
	}
	drain_tap();
	if (live) {
		struct queue *rq = &Q[RXQ];
		uint64_t room = 0;
		bool bad = false;

		if (Q[TXQ].outstanding)
			fail("%u transmit chains never consumed", Q[TXQ].outstanding);
		check_tap();
		for (unsigned i = 0; i < QMAX; i++)
			if (rq->c[i].out) {
				room += rq->c[i].out_len;
				bad |= rq->c[i].evil || rq->c[i].risky;
			}
		if (!bad && rq->outstanding) {
			if (dev.pend && !(feat & F(VIRTIO_NET_F_MRG_RXBUF)))
				fail("a %u-byte frame waits with %u receive buffers on offer",
				     dev.pend, rq->outstanding);
			if (dev.pend && (room >= dev.pend || rq->outstanding == rq->size))
				fail("a %u-byte frame waits with %llu bytes in %u buffers on offer",
				     dev.pend, (unsigned long long)room, rq->outstanding);
			if (!dev.pend && tap_readable())
				fail("frames wait in the tap with %u receive buffers on offer",
				     rq->outstanding);
			if (!dev.pend && !handle_for(POLLIN))
				fail("%u receive buffers on offer, but the tap is not watched",
				     rq->outstanding);
		}
		if (nhs > 1 || (nhs == 1 && hs[0].ev != POLLIN))
			fail("%u watches and timers left after the device settled", nhs);
	}
	if (rl_run)
		virtio_net_set_limits(&dev, &rl_rx, &rl_tx);
	inject = was;
}

static void start_run(void)
{
	struct virtio_net_cfg nc = {.id = "fuzz0", .mac = {0x06, 0, 0xac, 0x10, 0, 2}};
	int sv[2];

	runs++;
	rl_run = below(3) == 0;
	if (rl_run) {
		rand_rl(&rl_rx);
		rand_rl(&rl_tx);
		nc.rx_rl = &rl_rx;
		nc.tx_rl = &rl_tx;
	}
	nc.mtu = below(2) ? 68 + (unsigned)below(65535 - 68 + 1) : 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		fail("socketpair: %s", strerror(errno));
	peer = sv[1];
	if (below(4) == 0) {
		/* A small send buffer: the tap fills sooner, and refuses the largest frames. */
		int sz = 8192 + (int)below(100000);

		if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)))
			fail("SO_SNDBUF: %s", strerror(errno));
	}
	if (virtio_net_init(&dev, &host, &gm, 0xd0000000, 5, sv[0], &nc))
		fail("virtio_net_init failed");
	memset(&prev, 0, sizeof(prev));
	tx_consumed = tx_hdr = tx_size = tx_off = 0;
	rx_delivered = rx_bytes = rx_merged = reset_drops = short_sent = 0;
	seq_sent = seq_next = 0;
	exp_head = exp_tail = 0;
	tap_frames = tap_bytes = tap_skipped = 0;
	inject = true;
	bring_up();
}

static void end_run(void)
{
	struct virtio_net_stats s;
	uint64_t left = 0, left_short = 0, dropped;

	/* Settled, or stopped in the middle (with timers and watches pending). */
	if (below(2))
		quiesce();
	check_tap();
	virtio_net_stop(&dev);
	if (nhs)
		fail("%u watches or timers left after virtio_net_stop", nhs);
	s = stats();
	/* Every frame the host sent: delivered, dropped and counted, or still waiting. */
	for (;;) {
		ssize_t r = recv(dev.tap, tapbuf, sizeof(tapbuf), MSG_DONTWAIT | MSG_TRUNC);

		if (r < 0)
			break;
		left++;
		left_short += r < SHORT;
	}
	dropped = s.rx_dropped_too_big + s.tap_read_fails + reset_drops;
	if (seq_sent - rx_delivered != dropped + left + (dev.pend != 0))
		fail("rx: %u frames sent, %llu delivered, %llu dropped (%llu too big, %llu short, "
		     "%llu by resets), %llu waiting",
		     seq_sent, (unsigned long long)rx_delivered, (unsigned long long)dropped,
		     (unsigned long long)s.rx_dropped_too_big, (unsigned long long)s.tap_read_fails,
		     (unsigned long long)reset_drops, (unsigned long long)(left + (dev.pend != 0)));
	if (s.tap_read_fails != short_sent - left_short)
		fail("rx: %llu short frames read, %llu counted as failed reads",
		     (unsigned long long)(short_sent - left_short),
		     (unsigned long long)s.tap_read_fails);
	throttled += s.rx_rate_limiter_throttled + s.tx_rate_limiter_throttled;
	spurious += s.no_tx_avail_buffer;
	merged += rx_merged;
	delivered += rx_delivered;
	failed += s.tap_write_fails;
	virtio_net_destroy(&dev);
	close(peer);
	peer = -1;
}

/* One random thing a guest, the host or the loop does. */
static void step(void)
{
	unsigned r = (unsigned)below(100);

	if (r < 18) {
		for (unsigned i = 1 + (unsigned)below(3); i; i--)
			offer_rx();
		if (below(4))
			kick(RXQ);
	} else if (r < 36) {
		for (unsigned i = 1 + (unsigned)below(3); i; i--)
			offer_tx();
		if (below(4))
			kick(TXQ);
	} else if (r < 50) {
		for (unsigned i = 1 + (unsigned)below(3); i; i--)
			host_send();
	} else if (r < 60) {
		fire_watch(POLLIN, below(16) ? POLLIN : -EIO);
	} else if (r < 65) {
		fire_watch(POLLOUT, below(16) ? POLLOUT : -EIO);
	} else if (r < 70) {
		fire_timer();
	} else if (r < 75) {
		drain_tap();
	} else if (r < 82) {
		kick(RXQ);
	} else if (r < 90) {
		kick(TXQ);
	} else if (r < 91 && below(2)) {
		/* A reset in the middle: the loop may run before the driver is back. */
		resets++;
		status0();
		for (unsigned i = (unsigned)below(4); i; i--) {
			switch (below(4)) {
			case 0:
				fire_watch(POLLIN, POLLIN);
				break;
			case 1:
				fire_watch(POLLOUT, POLLOUT);
				break;
			case 2:
				fire_timer();
				break;
			default:
				kick((unsigned)below(2));
			}
		}
		bring_up();
	} else if (r < 92) {
		if (rl_run) {
			rand_rl(&rl_rx);
			rand_rl(&rl_tx);
			virtio_net_set_limits(&dev, below(4) ? &rl_rx : NULL,
					      below(4) ? &rl_tx : NULL);
		}
	} else if (r < 95) {
		uint8_t cfg[8];
		unsigned len = 1u << below(4);

		dev.t.dev.ops->read(&dev.t.dev, 0x100 + below(16), cfg, len);
		(void)rd(VIRTIO_MMIO_INTERRUPT_STATUS);
		wr(VIRTIO_MMIO_INTERRUPT_ACK, 3);
	} else if (r < 96) {
		quiesce();
	}
}

int main(int argc, char **argv)
{
	unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 0) : 100000;

	fuzz_seed(argc, argv, 2);
	seed0 = rng;
	log_set_sink(quiet, NULL);
	for (unsigned i = 0; i < 2; i++) {
		mem[i] = aligned_alloc(4096, SLOT);
		if (!mem[i])
			return 1;
		memset(mem[i], 0, SLOT);
		gm.slots[i] = (struct mem_slot){
			.id = i, .gpa = i * (uint64_t)SLOT, .size = SLOT, .hva = mem[i]};
	}
	gm.nslots = 2;
	gm.top = RAM;
	huge = mmap(NULL, HUGE_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		    -1, 0);
	if (huge == MAP_FAILED) {
		huge = NULL; /* no room for 4 GiB of address space: no such chains */
	} else {
		gm.slots[2] = (struct mem_slot){.id = 2, .gpa = HUGE, .size = HUGE_SZ, .hva = huge};
		gm.nslots = 3;
		gm.top = TOP;
	}
	while (iter_now < iters) {
		unsigned long len = 200 + below(3000);

		start_run();
		for (unsigned long j = 0; j < len && iter_now < iters; j++, iter_now++)
			step();
		end_run();
	}
	printf("fuzz_net: %lu iterations, %lu runs, %lu episodes, %lu resets, %lu needing reset, "
	       "%lu rx and %lu tx chains (%lu breaking rules); host to guest %lu frames, %lu "
	       "delivered (%lu merged); guest to host %lu frames, %lu failed writes; "
	       "%lu throttled, %lu tap-full waits\n",
	       iters, runs, episodes, resets, needs_resets, chains_rx, chains_tx, evils,
	       frames_sent, delivered, merged, frames_tap, failed, throttled, spurious);
	for (unsigned i = 0; i < 2; i++)
		free(mem[i]);
	if (huge)
		munmap(huge, HUGE_SZ);
	/* A fuzzer that never delivered, merged, sent or reset tested little. */
	return iters < 2000 || (merged && frames_tap && resets && needs_resets) ? 0 : 1;
}
