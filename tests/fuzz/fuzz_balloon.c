/*
 * Fuzzing of the balloon (devices/virtio/balloon.c) and of what it drives,
 * memory/reclaim.c, over real guest memory mapped by memory/: a thp region of
 * 16 or 32 MiB and a small second one (anon 4K, memfd 2M or memfd 4K), either
 * of them "keep" now and then, so that reclaim really discards (MADV_DONTNEED,
 * PUNCH_HOLE). A driver model negotiates random features (STATS_VQ, REPORTING,
 * DEFLATE_ON_OOM, MUST_TELL_HOST, EVENT_IDX, INDIRECT_DESC, now and then a
 * set the device must refuse), sets queues up with random sizes and rings
 * (some of them invalid), and offers random chains on all four queues: page
 * number arrays (pages in RAM, whole host pages, outside RAM, huge numbers,
 * split across descriptors at odd byte offsets, zero-length and writable
 * pieces, indirect tables), statistics buffers (any length, device-writable
 * pieces), free page reports (any address and length, unaligned, empty,
 * across the two regions, pieces adjacent or not, outside RAM) and chains
 * that break a virtio rule. Kicks, statistics timers (failing now and then),
 * set_target, set_stats_interval, config space accesses, resets and
 * re-negotiation, the guest's own writes and mem_reclaim_refresh come in any
 * order. Every data page holds a pattern from the start.
 *
 * What must hold after every step (the model keeps the device's balloon, the
 * driver's, and what may have been lost):
 *  - no crash, no ASan/UBSan report;
 *  - reclaim's bitmaps and counts are the model's; gone host pages are the
 *    model's; reclaimed_bytes = gone host pages * page size, balloon_bytes =
 *    the 4K pages in the balloon whose host page is not gone;
 *  - a gone host page is not resident (mincore) unless the guest wrote to it;
 *  - every 4K page neither given to the balloon nor inside a host page a
 *    report covered whole, since the guest last wrote it, still holds its
 *    pattern: never a 4K hole in a huge page, never a page the guest uses;
 *  - the device's and reclaim's counters are the model's (chains served,
 *    pages, rejected numbers and ranges, reports, discards, refaults...);
 *  - used entries name chains the driver offered, in order, with length 0;
 *    the statistics buffer is held one at a time and given back by the timer;
 *    a chain or queue that breaks a rule, and only that, sets NEEDS_RESET;
 *  - config space, target, statistics and timers are the model's.
 *
 *   fuzz_balloon [steps] [seed]      (defaults: 8000, 1)
 *
 * Runs of 2000 steps; run 0 is seeded with the seed, run k > 0 with a mix of
 * both. A failure prints the run's seed and step and the command that replays
 * it (a run depends on where the kernel maps the regions only through which
 * report pieces are adjacent in host memory).
 *
 * Bugs it found, fixed since and kept covered: a malformed statistics buffer
 * whose whole entries were stored all the same; report pieces joined across a
 * gap (the device then discarded pages the guest never reported); a device
 * reset that kept the old driver's pages in the balloon, so the new driver's
 * inflations completed host pages the rebooted guest was using (data lost).
 */
#include <errno.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/virtio/balloon.h"
#include "fuzz.h"

#define MIB    (1ull << 20)
#define PG     4096ull
#define RUNLEN 2000
#define NQ     4
#define QMAX   256
#define MAXD   16  /* descriptors of a chain */
#define MAXPFN 448 /* page numbers of a chain */
#define MAXENT 24  /* statistics entries of a buffer */
#define MAXR   12  /* report descriptors of a chain */
#define NPIECE (2 * MAXD + 2)

/* Guest RAM [0, WORK) holds the driver's rings, tables and buffers: never given away. */
#define WORK        (4 * MIB)
#define QAREA(q)    (0x8000ull * (q)) /* desc +0 (0x3000), avail +0x3000, used +0x4000 (0x2000) */
#define TABLE(q, h) (0x20000ull + 0x200ull * ((q)*QMAX + (h)))  /* indirect tables */
#define BUF(q, h)   (0x200000ull + 0x800ull * ((q)*QMAX + (h))) /* a chain's buffers */
#define BUFLEN      0x800u

#define F(b) (1ull << (b))

enum role { R_NONE, R_INFLATE, R_DEFLATE, R_STATS, R_REPORT };
enum bad { B_NONE, B_DATA, B_NEXT, B_LOOP, B_IND, B_HEAD };

/* A descriptor as the driver means it; rel: gpa is an offset in the chain's BUF area. */
struct dspec {
	uint64_t gpa;
	uint32_t len;
	bool w, rel;
	uint32_t doff; /* rel: its bytes are data[doff..] */
};

struct range {
	uint64_t gpa, len;
};

struct chain {
	bool out, evil;
	unsigned nd;
	uint16_t d[MAXD + 2];
	unsigned nds;
	struct dspec ds[MAXD + 2];
	/* inflate / deflate */
	unsigned npfn;
	uint32_t pfn[MAXPFN];
	/* statistics */
	bool st_ok;
	unsigned nent, nent_read; /* entries; complete ones in its readable bytes */
	uint16_t tag[MAXENT + 1];
	uint64_t val[MAXENT + 1];
	/* reports: the pieces (gpa, len) in RAM, and the block ranges as host addresses */
	unsigned np, nr;
	struct range pc[NPIECE];
	uint64_t rh[NPIECE], rl[NPIECE];
};

struct queue {
	bool set; /* set up and ready */
	unsigned size, nfree;
	uint64_t desc, avail, used;
	uint16_t avail_idx, used_seen;
	bool busy[QMAX];
	uint16_t fifo[QMAX + 1]; /* offered and not taken by the device, in avail order */
	unsigned fh, fn;
	struct chain c[QMAX + 1]; /* by head; [QMAX]: an entry naming no descriptor */
};

/* The model of one region. */
struct region {
	struct mem_region *r;
	struct mem_reclaim_region *rr;
	uint64_t gpa, size, ps, per, n4k, nhp, lo; /* lo: first 4K page the driver gives */
	uint8_t *hva;
	bool discards, punch;
	uint64_t *inb;    /* the device's balloon, reclaim's bitmap layout */
	uint8_t *drv;     /* the current driver's balloon */
	uint8_t *maylose; /* given (balloon, whole-page report) since the guest last wrote it */
	uint16_t *pend;   /* in chains offered and not yet served */
	uint32_t *gen;    /* pattern generation */
	uint32_t *cnt;    /* per host page: 4K pages in the balloon */
	uint8_t *gone, *dirty;
	unsigned char *vec;
};

/* Expected counters. */
struct expect {
	struct balloon_counters b;
	struct mem_reclaim_stats m;
	struct balloon_guest_stats gs;
};

static struct guest_mem gm;
static struct mem_reclaim rc;
static struct virtio_balloon dev;
static struct virtio_balloon_cfg bcfg;
static struct region R[2];
static struct queue Q[NQ];
static struct expect X;
static enum role role[NQ];
static uint64_t feat, offered;
static bool drv_ok, broken, held, inject;
static int q_stats = -1;
static unsigned held_head;
static uint32_t num_pages, actual, interval;
static uint64_t data_top; /* first GPA above RAM */

static unsigned long long seed0, run_seed;
static unsigned long step_now, run_no;

/* The fake loop's timers. */
struct handle {
	uintptr_t id;
	uint64_t ms;
	void (*fn)(void *, int);
	void *arg;
};
static struct handle hs[4];
static unsigned nhs;
static uintptr_t next_id = 1;
static bool timer_model;    /* a statistics timer is pending */
static uint64_t recent[64]; /* GPAs of pages deflated lately: the guest uses them first */
static unsigned nrecent;
static uint64_t tcalls, tcalls_model;

/* Totals for the summary. */
static unsigned long t_runs, t_chains[5], t_evil, t_resets, t_needs, t_refused, t_fires, t_touch,
	t_refresh, t_join;

static uint8_t data[BUFLEN];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_balloon: seed %llu, run %lu (run seed %llu), step %lu: ", seed0,
		run_no, run_seed, step_now);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nfuzz_balloon: replay with: fuzz_balloon %lu %llu\n", step_now + 1,
		run_seed);
	exit(1);
}

void __asan_on_error(void);
void __asan_on_error(void)
{
	fprintf(stderr,
		"fuzz_balloon: run seed %llu, step %lu: ASan reports "
		"(replay: fuzz_balloon %lu %llu):\n",
		run_seed, step_now, step_now + 1, run_seed);
}

static uint64_t below(uint64_t n)
{
	return n ? next() % n : 0;
}

static bool bit(const uint64_t *m, uint64_t i)
{
	return m[i / 64] >> (i % 64) & 1;
}

/* ---- guest memory ---- */

/* The slot holding @gpa, or NULL. */
static const struct mem_slot *slot_of(uint64_t gpa)
{
	for (unsigned i = 0; i < gm.nslots; i++)
		if (gpa >= gm.slots[i].gpa && gpa - gm.slots[i].gpa < gm.slots[i].size)
			return &gm.slots[i];
	return NULL;
}

/* Host address of [gpa, gpa + len), which the model knows to be in one slot. */
static uint8_t *hv(uint64_t gpa, uint64_t len)
{
	const struct mem_slot *s = slot_of(gpa);

	if (!s || gpa + len > s->gpa + s->size)
		fail("model: [0x%llx, +%llu) is not in one slot", (unsigned long long)gpa,
		     (unsigned long long)len);
	return s->hva + (gpa - s->gpa);
}

static bool in_ram(uint64_t gpa, uint64_t len)
{
	while (len) {
		const struct mem_slot *s = slot_of(gpa);
		uint64_t n;

		if (!s)
			return false;
		n = s->gpa + s->size - gpa;
		if (n >= len)
			return true;
		gpa += n;
		len -= n;
	}
	return true;
}

/* The region and 4K page index of @gpa, or NULL. */
static struct region *page_of(uint64_t gpa, uint64_t *pg)
{
	for (unsigned i = 0; i < 2; i++)
		if (gpa >= R[i].gpa && gpa - R[i].gpa < R[i].size) {
			*pg = (gpa - R[i].gpa) / PG;
			return &R[i];
		}
	return NULL;
}

static void put16(uint64_t gpa, uint16_t v)
{
	memcpy(hv(gpa, 2), &v, 2);
}

static uint16_t get16(uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, hv(gpa, 2), 2);
	return v;
}

static uint32_t get32(uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, hv(gpa, 4), 4);
	return v;
}

/*
 * The pattern of 4K page @pg of @m: the first word of every 512 bytes is pat +
 * i (a discard zeroes the whole page; the device writes nothing there anyway).
 */
static uint64_t pat(const struct region *m, uint64_t pg)
{
	uint64_t x = (m->gpa + pg * PG) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)m->gen[pg] << 40) ^
		     run_seed;

	x ^= x >> 29;
	return x | 1;
}

static void write_page(struct region *m, uint64_t pg)
{
	uint64_t *w = (uint64_t *)(m->hva + pg * PG), p = pat(m, pg);

	for (unsigned i = 0; i < PG / 8; i += 64)
		w[i] = p + i;
}

/* Whether page @pg still holds its pattern (@full: every word of it, else the first). */
static bool page_ok(const struct region *m, uint64_t pg, bool full)
{
	const uint64_t *w = (const uint64_t *)(m->hva + pg * PG);
	uint64_t p = pat(m, pg);

	for (unsigned i = 0; i < (full ? PG / 8 : 1); i += 64)
		if (w[i] != p + i)
			return false;
	return true;
}

static void check_page(const struct region *m, uint64_t pg, bool full, const char *when)
{
	if (!page_ok(m, pg, full))
		fail("%s: the 4K page at 0x%llx (region %s, host page %llu%s%s) lost its content: "
		     "never given to the balloon nor reported whole since the guest wrote it "
		     "(in the device's balloon: %d, host page count %u)",
		     when, (unsigned long long)(m->gpa + pg * PG), m->r->cfg.id,
		     (unsigned long long)(pg / m->per), m->gone[pg / m->per] ? ", gone" : "",
		     m->dirty[pg / m->per] ? ", touched" : "", bit(m->inb, pg),
		     m->cnt[pg / m->per]);
}

/* ---- the fake loop ---- */

static void irq(void *o, unsigned gsi, int level)
{
	(void)o;
	(void)gsi;
	(void)level;
}

static void *timer(void *o, uint64_t ms, void (*fn)(void *, int), void *arg)
{
	(void)o;
	tcalls++;
	if (arg != &dev)
		fail("a timer for %p, not the device", arg);
	if (inject && below(12) == 0) {
		X.b.event_fails++; /* the device must count it */
		timer_model = false;
		return NULL;
	}
	for (unsigned i = 0; i < nhs; i++)
		if (hs[i].fn == fn)
			fail("a second timer with the same callback while one is pending");
	if (nhs == sizeof(hs) / sizeof(hs[0]))
		fail("%u timers pending: leaked", nhs);
	hs[nhs] = (struct handle){.id = next_id++, .ms = ms, .fn = fn, .arg = arg};
	return (void *)hs[nhs++].id;
}

static void cancel(void *o, void *t)
{
	(void)o;
	if (!t)
		return;
	for (unsigned i = 0; i < nhs; i++)
		if (hs[i].id == (uintptr_t)t) {
			hs[i] = hs[--nhs];
			return;
		}
	fail("cancel of timer %lu, which is gone", (unsigned long)(uintptr_t)t);
}

static const struct dev_host host = {.irq_line = irq, .timer = timer, .timer_cancel = cancel};

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

static bool live(void)
{
	return drv_ok && !broken;
}

/* ---- the model's effects ---- */

/* A statistics timer is armed (arm_stats): the device calls the loop. */
static void model_arm(void)
{
	if (timer_model || !interval)
		return;
	tcalls_model++;
	timer_model = true; /* the fake timer() clears it when it refuses */
}

static void pend(struct chain *c, int d)
{
	uint64_t pg;
	struct region *m;

	for (unsigned i = 0; i < c->npfn; i++) {
		m = page_of((uint64_t)c->pfn[i] * PG, &pg);
		if (m)
			m->pend[pg] = (uint16_t)(m->pend[pg] + d);
	}
	for (unsigned i = 0; i < c->np; i++)
		for (uint64_t a = c->pc[i].gpa & ~(PG - 1); a < c->pc[i].gpa + c->pc[i].len;
		     a += PG) {
			m = page_of(a, &pg);
			if (m)
				m->pend[pg] = (uint16_t)(m->pend[pg] + d);
		}
}

/* The chain at slot @s of queue @q is done (served, or forgotten at a reset). */
static void retire(unsigned q, unsigned s)
{
	struct chain *c = &Q[q].c[s];

	if (!c->out)
		fail("model: chain %u of queue %u retired twice", s, q);
	for (unsigned i = 0; i < c->nd; i++)
		Q[q].busy[c->d[i]] = false;
	Q[q].nfree += c->nd;
	pend(c, -1);
	c->out = false;
}

/*
 * Host page @hp was discarded. A report gave every page of it away; a balloon
 * discard only what was given page by page (maylose is already set on those).
 */
static void gone_now(struct region *m, uint64_t hp, bool reported)
{
	if (!m->gone[hp])
		X.m.huge_reclaimed++;
	m->gone[hp] = 1;
	m->dirty[hp] = 0;
	for (uint64_t k = 0; k < m->per && reported; k++)
		m->maylose[hp * m->per + k] = 1;
}

static void discard_call(struct region *m)
{
	if (m->punch)
		X.m.discards_punch++;
	else
		X.m.discards_dontneed++;
}

static void model_inflate(uint32_t pfn)
{
	uint64_t pg, hp;
	struct region *m = page_of((uint64_t)pfn * PG, &pg);

	if (!m) {
		X.b.rejected++;
		X.m.rejected++;
		return;
	}
	hp = pg / m->per;
	m->drv[pg] = 1;
	m->maylose[pg] = 1;
	if (bit(m->inb, pg))
		return;
	m->inb[pg / 64] |= 1ull << (pg % 64);
	if (++m->cnt[hp] == m->per && m->discards) {
		discard_call(m);
		gone_now(m, hp, false);
	}
}

static void model_deflate(uint32_t pfn)
{
	uint64_t pg, hp;
	struct region *m = page_of((uint64_t)pfn * PG, &pg);

	if (!m) {
		X.b.rejected++;
		X.m.rejected++;
		return;
	}
	hp = pg / m->per;
	m->drv[pg] = 0;
	if (!bit(m->inb, pg))
		return;
	recent[nrecent++ % 64] = (uint64_t)pfn * PG;
	if (m->gone[hp]) {
		m->gone[hp] = 0;
		X.m.returned++;
	}
	m->inb[pg / 64] &= ~(1ull << (pg % 64));
	m->cnt[hp]--;
}

/* The guest address of host address @h, or false. */
static bool gpa_of(const uint8_t *h, uint64_t *gpa)
{
	for (unsigned i = 0; i < gm.nslots; i++)
		if (h >= gm.slots[i].hva && (uint64_t)(h - gm.slots[i].hva) < gm.slots[i].size) {
			*gpa = gm.slots[i].gpa + (uint64_t)(h - gm.slots[i].hva);
			return true;
		}
	return false;
}

/* One reported block, [@h, @h + @len) in host addresses. */
static void model_report(const uint8_t *h, uint64_t len)
{
	uint64_t gpa, off, hp0, hp1;
	struct region *m = NULL;

	X.b.reports++;
	X.b.reported_bytes += len;
	if (gpa_of(h, &gpa))
		m = page_of(gpa, &off);
	if (!m || !len || gpa % PG || len % PG || gpa - m->gpa + len > m->size) {
		X.b.rejected++;
		X.m.rejected++;
		return;
	}
	off = gpa - m->gpa;
	hp0 = (off + m->ps - 1) / m->ps;
	hp1 = (off + len) / m->ps;
	if (hp1 <= hp0 || !m->discards) {
		X.m.avoided_4k += len / PG;
		return;
	}
	X.m.avoided_4k += (len - (hp1 - hp0) * m->ps) / PG;
	discard_call(m);
	for (uint64_t hp = hp0; hp < hp1; hp++)
		gone_now(m, hp, true);
}

static void model_stats(const struct chain *c)
{
	/* A malformed buffer changes nothing (balloon.h: "malformed (ignored)"). */
	unsigned n = c->st_ok ? c->nent : 0;

	for (unsigned i = 0; i < n; i++)
		if (c->tag[i] < BALLOON_STAT_TAGS) {
			X.gs.val[c->tag[i]] = c->val[i];
			X.gs.have |= 1u << c->tag[i];
		}
	if (c->st_ok) {
		X.gs.updates++;
		X.b.stats_updates_count++;
	} else {
		X.b.stats_update_fails++;
	}
}

/* ---- used rings ---- */

static void check_used(unsigned q, const uint16_t *want, unsigned nw, const char *what)
{
	struct queue *qu = &Q[q];
	uint16_t idx;

	if (!qu->set)
		return;
	idx = get16(qu->used + 2);
	if ((uint16_t)(idx - qu->used_seen) != nw)
		fail("%s: queue %u's used index moved by %u, expected %u", what, q,
		     (uint16_t)(idx - qu->used_seen), nw);
	for (unsigned i = 0; i < nw; i++) {
		uint64_t e = qu->used + 4 + 8ull * ((uint16_t)(qu->used_seen + i) % qu->size);
		uint32_t id = get32(e), len = get32(e + 4);

		if (id != want[i])
			fail("%s: queue %u's used entry %u names %u, expected %u", what, q, i, id,
			     want[i]);
		if (len)
			fail("%s: queue %u's used entry for %u has length %u", what, q, id, len);
	}
	qu->used_seen = idx;
}

/* What the device must do on a kick of @q: serve its chains in order; *@nw used entries. */
static void model_serve(unsigned q, uint16_t *want, unsigned *nw)
{
	struct queue *qu = &Q[q];

	*nw = 0;
	if (!live() || !qu->set || role[q] == R_NONE)
		return;
	while (qu->fn) {
		unsigned s = qu->fifo[qu->fh];
		struct chain *c = &qu->c[s];

		qu->fh = (qu->fh + 1) % (QMAX + 1);
		qu->fn--;
		if (c->evil) {
			broken = true;
			return;
		}
		switch (role[q]) {
		case R_INFLATE:
		case R_DEFLATE:
			for (unsigned i = 0; i < c->npfn; i++)
				(role[q] == R_INFLATE ? model_inflate : model_deflate)(c->pfn[i]);
			if (role[q] == R_INFLATE) {
				X.b.inflate_count++;
				X.b.pages_inflated += c->npfn;
			} else {
				X.b.deflate_count++;
				X.b.pages_deflated += c->npfn;
			}
			want[(*nw)++] = (uint16_t)s;
			retire(q, s);
			break;
		case R_STATS:
			if (held) {
				want[(*nw)++] = (uint16_t)held_head;
				retire(q, held_head);
			}
			model_stats(c);
			held = true;
			held_head = s;
			break;
		case R_REPORT:
			for (unsigned i = 0; i < c->nr; i++)
				model_report((const uint8_t *)(uintptr_t)c->rh[i], c->rl[i]);
			want[(*nw)++] = (uint16_t)s;
			retire(q, s);
			break;
		case R_NONE:
			break;
		}
	}
}

static void kick(unsigned q)
{
	uint16_t want[QMAX + 2];
	unsigned nw;

	if (below(4) == 0)
		wr(VIRTIO_MMIO_QUEUE_NOTIFY, q); /* no ioeventfd: the register write signals */
	model_serve(q, want, &nw);
	virtio_mmio_kick(&dev.t, q);
	check_used(q, want, nw, "kick");
}

/* ---- offering chains ---- */

/*
 * Offer @t (its descriptors t->ds[0..t->nds), rel ones placed in the chain's
 * BUF area with bytes from data[]) on queue @q, breaking rule @bad. False when
 * the ring has no room.
 */
static bool post(unsigned q, struct chain *t, int bad)
{
	struct queue *qu = &Q[q];
	unsigned n = t->nds, nd, head, slot, pos[MAXD + 2];
	bool ind;
	struct chain *c;

	if (!qu->set || qu->fn == QMAX + 1 || (uint16_t)(qu->avail_idx - qu->used_seen) >= qu->size)
		return false;
	if (bad == B_HEAD) {
		if (qu->c[QMAX].out)
			return false;
		slot = QMAX;
		head = qu->size + (unsigned)below(64);
		c = &qu->c[QMAX];
		*c = *t;
		c->nd = 0;
		goto publish;
	}
	ind = bad == B_IND ||
	      ((feat & F(VIRTIO_RING_F_INDIRECT_DESC)) && (n > qu->nfree || below(3) == 0));
	nd = ind ? 1 : n;
	if (nd > qu->nfree)
		return false;
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
	head = slot = t->d[0];
	c = &qu->c[head];
	if (c->out)
		fail("model: head %u of queue %u offered twice", head, q);
	for (unsigned i = 0; i < n; i++)
		if (t->ds[i].rel) {
			t->ds[i].gpa += BUF(q, head);
			t->ds[i].rel = false;
			if (t->ds[i].len)
				memcpy(hv(t->ds[i].gpa, t->ds[i].len), data + t->ds[i].doff,
				       t->ds[i].len);
		}
	/* Where each descriptor sits in its table: direct ones as allocated, indirect shuffled. */
	for (unsigned i = 0; i < n; i++)
		pos[i] = ind ? i : t->d[i];
	if (ind)
		for (unsigned i = n - 1; i > 1; i--) {
			unsigned j = 1 + (unsigned)below(i), x = pos[i];

			pos[i] = pos[j];
			pos[j] = x;
		}
	{
		uint64_t table = ind ? TABLE(q, head) : qu->desc;
		unsigned tsize = ind ? n : qu->size;

		for (unsigned i = 0; i < n; i++) {
			uint16_t fl = t->ds[i].w ? VRING_DESC_F_WRITE : 0, nx = 0;
			uint8_t b[16];

			if (i + 1 < n) {
				fl |= VRING_DESC_F_NEXT;
				nx = (uint16_t)pos[i + 1];
			} else if (bad == B_NEXT) {
				fl |= VRING_DESC_F_NEXT;
				nx = (uint16_t)(tsize + below(8));
			} else if (bad == B_LOOP) {
				fl |= VRING_DESC_F_NEXT;
				nx = (uint16_t)pos[0];
			}
			fuzz_desc(b, t->ds[i].gpa, t->ds[i].len, fl, nx);
			memcpy(hv(table + 16ull * pos[i], 16), b, 16);
		}
		if (ind) {
			uint64_t ta = TABLE(q, head);
			uint32_t tl = 16 * n;
			uint16_t fl = VRING_DESC_F_INDIRECT;
			uint8_t b[16];

			if (bad == B_IND && (feat & F(VIRTIO_RING_F_INDIRECT_DESC))) {
				switch (below(5)) {
				case 0:
					tl = 0;
					break;
				case 1:
					tl = 16 * n + 1 + (uint32_t)below(15);
					break;
				case 2:
					ta = data_top + below(MIB) * 16;
					break;
				case 3:
					fl |= VRING_DESC_F_NEXT;
					break;
				default:
					/* An indirect descriptor inside the table. */
					fuzz_desc(b, TABLE(q, head), tl, VRING_DESC_F_INDIRECT, 0);
					memcpy(hv(TABLE(q, head), 16), b, 16);
				}
			}
			fuzz_desc(b, ta, tl, fl, 0);
			memcpy(hv(qu->desc + 16ull * head, 16), b, 16);
		}
	}
	*c = *t;
publish:
	c->out = true;
	c->evil = bad != B_NONE;
	put16(qu->avail + 4 + 2ull * (qu->avail_idx % qu->size), (uint16_t)head);
	qu->avail_idx++;
	if (below(4) == 0)
		put16(qu->avail + 4 + 2ull * qu->size, (uint16_t)next()); /* used_event */
	put16(qu->avail + 2, qu->avail_idx);
	qu->fifo[(qu->fh + qu->fn) % (QMAX + 1)] = (uint16_t)slot;
	qu->fn++;
	pend(c, 1);
	t_evil += c->evil;
	return true;
}

/*
 * Lay the @len bytes of data[] out as readable pieces in the chain's BUF
 * area: cut at random (odd) offsets, random gaps, zero-length descriptors
 * (anywhere, even outside RAM: the walker skips them), then now and then
 * device-writable pieces. *@wbytes: the writable bytes added.
 */
static void layout(struct chain *t, uint32_t len, unsigned maxd, uint32_t *wbytes)
{
	uint32_t cut[MAXD], ncut = 0, pos = 0, at = 0;
	unsigned room = (maxd - 4) / 2;

	t->nds = 0;
	*wbytes = 0;
	if (len) {
		ncut = (uint32_t)below(room < 7 ? room : 7);
		for (unsigned i = 0; i < ncut; i++)
			cut[i] = 1 + (uint32_t)below(len);
		for (unsigned i = 1; i < ncut; i++) /* sort */
			for (unsigned j = i; j && cut[j - 1] > cut[j]; j--) {
				uint32_t x = cut[j];

				cut[j] = cut[j - 1];
				cut[j - 1] = x;
			}
	}
	for (unsigned i = 0; i <= ncut; i++) {
		uint32_t end = i < ncut ? cut[i] : len;

		if (end < at)
			continue;
		if (below(8) == 0 && t->nds < maxd - 4) { /* a zero-length one, anywhere */
			if (below(2))
				t->ds[t->nds++] = (struct dspec){.gpa = next()};
			else
				t->ds[t->nds++] = (struct dspec){.gpa = pos, .rel = true};
		}
		pos += below(4) ? 0 : (uint32_t)below(16);
		if (end == at && len)
			continue;
		t->ds[t->nds++] =
			(struct dspec){.gpa = pos, .len = end - at, .rel = true, .doff = at};
		pos += end - at;
		at = end;
	}
	if (below(6) == 0)
		for (unsigned i = 1 + (unsigned)below(2); i && t->nds < maxd; i--) {
			uint32_t l = below(4) ? 1 + (uint32_t)below(64) : 0;

			if (pos + l > BUFLEN)
				break;
			t->ds[t->nds++] = (struct dspec){
				.gpa = pos, .len = l, .w = true, .rel = true, .doff = 0};
			*wbytes += l;
			pos += l;
		}
	if (pos > BUFLEN)
		fail("model: %u bytes of buffers for a chain's %u", pos, BUFLEN);
}

/* A page number the device must refuse: outside RAM or far beyond it. */
static uint32_t bad_pfn(void)
{
	switch (below(3)) {
	case 0:
		return (uint32_t)(data_top / PG + below(4096));
	case 1:
		return (uint32_t)(0xffffffffu - below(16));
	default:
		return (uint32_t)(data_top / PG + below(0xffffffffu - data_top / PG));
	}
}

/* A random 4K page the driver may give: a data page of either region. */
static struct region *rand_region(void)
{
	return &R[below(3) == 0 ? 1 : 0];
}

static uint32_t data_pfn(struct region *m, uint64_t pg)
{
	return (uint32_t)((m->gpa + pg * PG) / PG);
}

static void offer_pfns(unsigned q, bool inflate)
{
	static struct chain t;
	struct region *m = rand_region();
	uint64_t hp = m->lo / m->per + below(m->nhp - m->lo / m->per);
	unsigned n = 0, mode = (unsigned)below(10);
	uint32_t len, wb;
	int bad = B_NONE;

	memset(&t, 0, sizeof(t));
	if (mode < 4) {
		/* A run inside one host page (or several 4K ones). */
		uint64_t first = hp * m->per, a = below(m->per), b = a + 1 + below(m->per - a);

		if (m->per == 1) {
			first = m->lo + below(m->n4k - m->lo);
			a = 0;
			b = 1 + below(64);
			if (first + b > m->n4k)
				b = m->n4k - first;
		}
		for (uint64_t i = a; i < b && n < MAXPFN; i++)
			t.pfn[n++] = data_pfn(m, first + i);
	} else if (mode < 7) {
		/* Inflate: the pages of a host page the device lacks; deflate: those it has. */
		for (uint64_t i = hp * m->per; i < (hp + 1) * m->per && n < MAXPFN; i++)
			if (bit(m->inb, i) != inflate)
				t.pfn[n++] = data_pfn(m, i);
		if (inflate && m->per == 1)
			for (unsigned k = (unsigned)below(32); k && n < MAXPFN; k--)
				t.pfn[n++] = data_pfn(m, m->lo + below(m->n4k - m->lo));
	} else if (mode < 8 && inflate && m->per > 1) {
		/* All the pages of a host page the device lacks but a few the guest keeps using. */
		uint64_t keep[3];
		unsigned nk = 1 + (unsigned)below(3);

		for (unsigned i = 0; i < nk; i++)
			keep[i] = hp * m->per + below(m->per);
		for (uint64_t i = hp * m->per; i < (hp + 1) * m->per && n < MAXPFN; i++)
			if (!bit(m->inb, i) && i != keep[0] && (nk < 2 || i != keep[1]) &&
			    (nk < 3 || i != keep[2]))
				t.pfn[n++] = data_pfn(m, i);
	} else if (mode < 9 && !inflate) {
		/* The driver's own pages, anywhere. */
		unsigned want = 1 + (unsigned)below(MAXPFN);

		for (unsigned k = 0; k < 64 && n < want; k++) {
			uint64_t pg = m->lo + below(m->n4k - m->lo);

			for (uint64_t i = pg; i < m->n4k && n < want && i < pg + 64; i++)
				if (m->drv[i])
					t.pfn[n++] = data_pfn(m, i);
		}
	} else {
		for (unsigned k = (unsigned)below(64); k; k--) {
			m = rand_region();
			t.pfn[n++] = data_pfn(m, m->lo + below(m->n4k - m->lo));
		}
	}
	/* Shuffle now and then; repeat a few; refuse a few. */
	if (n > 1 && below(3) == 0)
		for (unsigned i = n - 1; i; i--) {
			unsigned j = (unsigned)below(i + 1);
			uint32_t x = t.pfn[i];

			t.pfn[i] = t.pfn[j];
			t.pfn[j] = x;
		}
	if (n && n < MAXPFN && below(8) == 0) {
		uint32_t again = t.pfn[below(n)];

		t.pfn[n++] = again;
	}
	if (below(6) == 0)
		for (unsigned k = 1 + (unsigned)below(4); k && n < MAXPFN; k--) {
			unsigned at = (unsigned)below(n + 1);

			memmove(&t.pfn[at + 1], &t.pfn[at], (n - at) * 4);
			t.pfn[at] = bad_pfn();
			n++;
		}
	t.npfn = n;
	memcpy(data, t.pfn, 4ull * n);
	len = 4 * n;
	if (below(4) == 0) { /* a partial number at the end: ignored */
		for (unsigned k = 1 + (unsigned)below(3); k; k--)
			data[len++] = (uint8_t)next();
	}
	layout(&t, len, MAXD, &wb);
	if (!t.nds)
		t.ds[t.nds++] = (struct dspec){.gpa = 0, .len = 0, .rel = true};
	if (below(80) == 0) {
		/* A buffer outside RAM, or readable after writable. */
		unsigned at = (unsigned)below(t.nds);

		if (below(2) && t.nds < MAXD) {
			t.ds[t.nds++] = (struct dspec){.gpa = 0, .len = 4, .w = true, .rel = true};
			t.ds[t.nds++] = (struct dspec){.gpa = 8, .len = 4, .rel = true};
		} else {
			t.ds[at] = (struct dspec){.gpa = data_top - below(64),
						  .len = 64 + (uint32_t)below(PG),
						  .w = t.ds[at].w};
		}
		bad = B_DATA;
	} else if (below(80) == 0) {
		bad = B_NEXT + (int)below(4);
	}
	if (post(q, &t, bad))
		t_chains[inflate ? R_INFLATE : R_DEFLATE]++;
}

static void offer_stats(unsigned q)
{
	static struct chain t;
	uint32_t len, wb;
	int bad = B_NONE;

	memset(&t, 0, sizeof(t));
	t.nent = (unsigned)below(MAXENT + 1);
	for (unsigned i = 0; i < t.nent; i++) {
		t.tag[i] = (uint16_t)(below(4) ? below(BALLOON_STAT_TAGS) : next());
		t.val[i] = next();
		memcpy(data + 10 * i, &t.tag[i], 2);
		memcpy(data + 10 * i + 2, &t.val[i], 8);
	}
	len = 10 * t.nent;
	if (below(6) == 0) {
		if (len >= 10 && below(2))
			len -= 1 + (uint32_t)below(9);
		else
			for (unsigned k = 1 + (unsigned)below(9); k; k--)
				data[len++] = (uint8_t)next();
	}
	t.nent_read = len / 10;
	layout(&t, len, MAXD, &wb);
	if (!t.nds)
		t.ds[t.nds++] = (struct dspec){.gpa = 0, .len = 0, .rel = true};
	t.st_ok = len % 10 == 0 && !wb;
	if (below(80) == 0)
		bad = B_NEXT + (int)below(4);
	if (post(q, &t, bad))
		t_chains[R_STATS]++;
}

/*
 * The walker's pieces of @t's descriptors (split where a buffer crosses
 * slots) and the blocks a correct device reports: runs of pieces adjacent in
 * host memory joined. *@dev_differs: balloon.c's join (known bug 2) makes
 * other blocks of them.
 */
static void report_blocks(struct chain *t, bool *dev_differs)
{
	const uint8_t *ph[NPIECE * 2];
	uint64_t pl[NPIECE * 2];
	unsigned n = 0, nr = 0;

	t->np = 0;
	for (unsigned i = 0; i < t->nds; i++) {
		uint64_t gpa = t->ds[i].gpa, left = t->ds[i].len;

		if (!left || !in_ram(gpa, left))
			continue;
		t->pc[t->np++] = (struct range){gpa, left};
		while (left) {
			const struct mem_slot *s = slot_of(gpa);
			uint64_t k = s->gpa + s->size - gpa;

			if (k > left)
				k = left;
			ph[n] = s->hva + (gpa - s->gpa);
			pl[n++] = k;
			gpa += k;
			left -= k;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (nr && (const uint8_t *)(uintptr_t)t->rh[nr - 1] + t->rl[nr - 1] == ph[i]) {
			t->rl[nr - 1] += pl[i];
			continue;
		}
		t->rh[nr] = (uint64_t)(uintptr_t)ph[i];
		t->rl[nr++] = pl[i];
	}
	t->nr = nr;
	/* balloon.c: while (buf[i + 1].hva == buf[i].hva + len) joins, len the run so far. */
	*dev_differs = false;
	for (unsigned i = 0, k = 0; i < n || k < nr; i++, k++) {
		uint64_t len = i < n ? pl[i] : 0;

		while (i + 1 < n && ph[i + 1] == ph[i] + len)
			len += pl[++i];
		if (i >= n || k >= nr || (uint64_t)(uintptr_t)(ph[i] + pl[i] - len) != t->rh[k] ||
		    len != t->rl[k]) {
			*dev_differs = true;
			return;
		}
	}
}

static void offer_report(unsigned q)
{
	static struct chain t;
	struct region *m = rand_region();
	unsigned n = 1 + (unsigned)below(below(2) ? 3 : MAXR), mode = (unsigned)below(10);
	uint64_t start, total;
	int bad = B_NONE;
	bool differs;

	memset(&t, 0, sizeof(t));
	if (mode < 6) {
		/* One block of whole host pages or 4K ones, cut into pieces, gaps now and then. */
		uint64_t lo = m->lo * PG, room = m->size - lo, cur;

		if (below(2))
			start = lo + below(room / m->ps) * m->ps;
		else
			start = lo + below(room / PG) * PG;
		total = below(2) ? m->ps * (1 + below(3)) : PG * (1 + below(1024));
		if (start + total > m->size)
			total = m->size - start;
		if (below(12) == 0 && m == &R[0] && R[1].gpa == R[0].gpa + R[0].size) {
			start = m->size - total; /* runs on into the second region */
			total += PG * (1 + below(64));
		}
		cur = m->gpa + start;
		for (unsigned i = 0; i < n; i++) {
			uint64_t piece = i + 1 < n ? total / n : total - (total / n) * (n - 1);

			if (below(3))
				piece &= ~(PG - 1);
			t.ds[t.nds++] =
				(struct dspec){.gpa = cur, .len = (uint32_t)piece, .w = true};
			cur += piece;
			if (below(3) == 0)
				cur += below(2) ? PG * below(3) : below(PG);
		}
		if (below(5) == 0) /* out of order */
			for (unsigned i = t.nds - 1; i; i--) {
				unsigned j = (unsigned)below(i + 1);
				struct dspec x = t.ds[i];

				t.ds[i] = t.ds[j];
				t.ds[j] = x;
			}
	} else if (mode < 9) {
		for (unsigned i = 0; i < n; i++) {
			struct region *r = rand_region();
			uint64_t a = r->lo * PG + below((r->size - r->lo * PG) / PG) * PG,
				 l = PG * (1 + below(600));

			if (below(5) == 0)
				a += below(PG);
			if (below(5) == 0)
				l += below(PG);
			if (below(10) == 0)
				l = 0;
			if (a + l > r->size)
				l = r->size - a;
			t.ds[t.nds++] =
				(struct dspec){.gpa = r->gpa + a, .len = (uint32_t)l, .w = true};
		}
	} else {
		/* The last pages of the first region and the first of the second, in one. */
		uint64_t a = R[0].gpa + R[0].size - PG * (1 + below(16));

		t.ds[t.nds++] = (struct dspec){
			.gpa = a, .len = (uint32_t)(PG * (1 + below(32))), .w = true};
		if (!in_ram(t.ds[0].gpa, t.ds[0].len))
			t.ds[0].len = (uint32_t)(data_top - a);
	}
	/* Within RAM (past its end: cut short, or empty). */
	for (unsigned i = 0; i < t.nds; i++)
		if (t.ds[i].len && !in_ram(t.ds[i].gpa, t.ds[i].len)) {
			t.ds[i].len =
				t.ds[i].gpa < data_top ? (uint32_t)(data_top - t.ds[i].gpa) : 0;
			if (!in_ram(t.ds[i].gpa, t.ds[i].len))
				t.ds[i].len = 0;
		}
	/* Readable first, as the walker wants, then writable; zero-length ones anywhere. */
	if (below(4) == 0) {
		unsigned k = (unsigned)below(t.nds + 1);

		for (unsigned i = 0; i < k; i++)
			t.ds[i].w = false;
	}
	if (below(6) == 0 && t.nds < MAXR) {
		unsigned at = (unsigned)below(t.nds + 1);

		memmove(&t.ds[at + 1], &t.ds[at], (t.nds - at) * sizeof(t.ds[0]));
		t.ds[at] = (struct dspec){
			.gpa = next(), .len = 0, .w = at < t.nds ? t.ds[at + 1].w : t.ds[at - 1].w};
		t.nds++;
	}
	if (below(40) == 0) {
		/* Outside RAM: the device must stop (NEEDS_RESET). */
		unsigned at = (unsigned)below(t.nds);

		t.ds[at].gpa = below(2) ? data_top - below(PG) : data_top + below(1ull << 40);
		t.ds[at].len = (uint32_t)(PG + below(4 * MIB));
		bad = B_DATA;
	} else if (below(80) == 0) {
		bad = B_NEXT + (int)below(4);
	}
	report_blocks(&t, &differs);
	if (differs)
		t_join++;
	if (post(q, &t, bad))
		t_chains[R_REPORT]++;
}

/* A chain of anything, for a queue the device does not serve. */
static void offer_junk(unsigned q)
{
	static struct chain t;
	uint32_t wb;

	memset(&t, 0, sizeof(t));
	for (unsigned i = 0; i < 64; i++)
		data[i] = (uint8_t)next();
	layout(&t, (uint32_t)below(64), MAXD, &wb);
	if (!t.nds)
		t.ds[t.nds++] = (struct dspec){.gpa = 0, .len = 0, .rel = true};
	post(q, &t, below(10) ? B_NONE : B_NEXT);
}

static void offer(unsigned q)
{
	switch (role[q]) {
	case R_INFLATE:
		offer_pfns(q, true);
		break;
	case R_DEFLATE:
		offer_pfns(q, false);
		break;
	case R_STATS:
		offer_stats(q);
		break;
	case R_REPORT:
		offer_report(q);
		break;
	case R_NONE:
		offer_junk(q);
	}
}

/* ---- the driver's side of the transport ---- */

static void forget_chains(void)
{
	for (unsigned q = 0; q < NQ; q++) {
		struct queue *qu = &Q[q];

		for (unsigned s = 0; s <= QMAX; s++)
			if (qu->c[s].out)
				retire(q, s);
		qu->fh = qu->fn = 0;
		qu->set = false;
	}
}

static void status0(void)
{
	wr(VIRTIO_MMIO_STATUS, 0);
	forget_chains();
	drv_ok = broken = held = false;
	q_stats = -1;
	actual = 0;
	feat = 0;
	for (unsigned q = 0; q < NQ; q++)
		role[q] = R_NONE;
	/* The driver is gone: every page is the guest's again, the balloon empty. */
	for (unsigned i = 0; i < 2; i++) {
		struct region *m = &R[i];

		memset(m->drv, 0, m->n4k);
		for (uint64_t hp = 0; hp < m->nhp; hp++) {
			if (m->gone[hp]) {
				m->gone[hp] = 0;
				X.m.returned++;
			}
			m->cnt[hp] = 0;
		}
		memset(m->inb, 0, (m->n4k + 63) / 64 * sizeof(uint64_t));
	}
}

/* Set queue @q up: valid rings in its area, or (now and then) something the device refuses. */
static void setup_queue(unsigned q)
{
	struct queue *qu = &Q[q];
	unsigned size = 1u << below(9);
	uint64_t base = QAREA(q), desc, avail, used;
	bool bad = below(50) == 0;

	desc = base + below((0x3000 - 16ull * size) / 16 + 1) * 16;
	avail = base + 0x3000 + below((0x1000 - (6 + 2ull * size)) / 2 + 1) * 2;
	used = base + 0x4000 + below((0x2000 - (6 + 8ull * size)) / 4 + 1) * 4;
	if (bad) {
		switch (below(6)) {
		case 0:
			size = below(2) ? 0 : below(2) ? 512 : 3 + 2 * (unsigned)below(100);
			break;
		case 1:
			desc += 8;
			break;
		case 2:
			avail += 1;
			break;
		case 3:
			used = data_top - 8;
			break;
		case 4:
			desc = data_top + below(1ull << 32) * 16;
			break;
		default:
			avail = 0xfffffffffffff000ull;
		}
	}
	wr(VIRTIO_MMIO_QUEUE_SEL, q);
	if (rd(VIRTIO_MMIO_QUEUE_NUM_MAX) != VQ_MAX_SIZE)
		fail("queue %u: QueueNumMax %u", q, rd(VIRTIO_MMIO_QUEUE_NUM_MAX));
	if (!bad) {
		memset(hv(desc, 16ull * size), 0, 16ull * size);
		memset(hv(avail, 6 + 2ull * size), 0, 6 + 2ull * size);
		memset(hv(used, 6 + 8ull * size), 0, 6 + 8ull * size);
		if (below(4) == 0)
			put16(avail, VRING_AVAIL_F_NO_INTERRUPT);
	}
	wr(VIRTIO_MMIO_QUEUE_NUM, size);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	wr(VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
	wr(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(avail >> 32));
	wr(VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)used);
	wr(VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(used >> 32));
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
	if (bad) {
		broken = true;
		t_evil++;
		return;
	}
	memset(qu, 0, sizeof(*qu));
	qu->set = true;
	qu->size = qu->nfree = size;
	qu->desc = desc;
	qu->avail = avail;
	qu->used = used;
}

static void driver_ok(void)
{
	uint32_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		      VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;

	/* activate: queues numbered as negotiated, the statistics timer armed. */
	drv_ok = true;
	q_stats = (feat & F(VIRTIO_BALLOON_F_STATS_VQ)) ? 2 : -1;
	model_arm();
	wr(VIRTIO_MMIO_STATUS, st);
}

/* Reset, negotiate, set queues up (or fail to). */
static void bring_up(void)
{
	uint64_t f, dfeat;
	uint32_t st;
	int next_q = 2;

	status0();
	t_resets++;
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	dfeat = rd(VIRTIO_MMIO_DEVICE_FEATURES);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	dfeat |= (uint64_t)rd(VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	if (dfeat != offered)
		fail("device features 0x%llx, expected 0x%llx", (unsigned long long)dfeat,
		     (unsigned long long)offered);
	f = (offered & next()) | F(VIRTIO_F_VERSION_1);
	if (below(2)) /* the queues the device serves: more often than not */
		f |= offered & (F(VIRTIO_BALLOON_F_STATS_VQ) | F(VIRTIO_BALLOON_F_REPORTING));
	if (below(25) == 0) {
		/* Something the device must refuse. */
		static const unsigned extra[] = {VIRTIO_BALLOON_F_FREE_PAGE_HINT,
						 VIRTIO_BALLOON_F_PAGE_POISON, 40, 63};

		if (below(3) == 0)
			f &= ~F(VIRTIO_F_VERSION_1);
		else
			f |= F(extra[below(4)]);
		if (!(f & ~offered) && (f & F(VIRTIO_F_VERSION_1)))
			f |= F(VIRTIO_BALLOON_F_FREE_PAGE_HINT);
	}
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
	wr(VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	st = rd(VIRTIO_MMIO_STATUS);
	if (!!(st & VIRTIO_CONFIG_S_FEATURES_OK) !=
	    (!(f & ~offered) && (f & F(VIRTIO_F_VERSION_1))))
		fail("features 0x%llx (offered 0x%llx): FEATURES_OK %s", (unsigned long long)f,
		     (unsigned long long)offered,
		     (st & VIRTIO_CONFIG_S_FEATURES_OK) ? "accepted" : "refused");
	if (!(st & VIRTIO_CONFIG_S_FEATURES_OK)) {
		t_refused++;
		return; /* the driver gives up; a later step resets */
	}
	feat = f;
	role[0] = R_INFLATE;
	role[1] = R_DEFLATE;
	if (f & F(VIRTIO_BALLOON_F_STATS_VQ))
		role[next_q++] = R_STATS;
	if (f & F(VIRTIO_BALLOON_F_REPORTING))
		role[next_q++] = R_REPORT;
	for (unsigned q = 0; q < NQ && !broken; q++)
		if (role[q] != R_NONE ? below(12) != 0 : below(5) == 0)
			setup_queue(q);
	/* Buffers before DRIVER_OK (Linux gives its statistics buffer so). */
	for (unsigned q = 0; q < NQ && !broken; q++)
		if (Q[q].set && below(3) == 0)
			offer(q);
	if (below(40) == 0)
		return; /* never DRIVER_OK */
	driver_ok();
}

/* ---- checks ---- */

#define EQ(what, got, want)                                                                        \
	do {                                                                                       \
		if ((uint64_t)(got) != (uint64_t)(want))                                           \
			fail("%s is %llu, expected %llu", what, (unsigned long long)(got),         \
			     (unsigned long long)(want));                                          \
	} while (0)

static void mincore_all(void)
{
	for (unsigned i = 0; i < 2; i++)
		if (mincore(R[i].hva, R[i].size, R[i].vec))
			fail("mincore: %s", strerror(errno));
}

static void check_lost(struct region *m)
{
	/*
	 * A page the guest owns and the kernel does not hold: read it (it must be
	 * intact). Eight pages at a time: maylose is 0 or 1, mincore's bit 0 says resident.
	 */
	for (uint64_t pg = m->lo & ~7ull; pg < m->n4k; pg += 8) {
		uint64_t ml, v;

		memcpy(&ml, m->maylose + pg, 8);
		memcpy(&v, m->vec + pg, 8);
		if (!(~ml & ~v & 0x0101010101010101ull))
			continue;
		for (uint64_t k = pg; k < pg + 8; k++)
			if (k >= m->lo && !m->maylose[k] && !(m->vec[k] & 1))
				check_page(m, k, false, "not resident");
	}
}

static void check_region(struct region *m)
{
	uint64_t gone = 0, bal = 0;

	if (memcmp(m->inb, m->rr->inflated, (m->n4k + 63) / 64 * 8)) {
		for (uint64_t pg = 0; pg < m->n4k; pg++)
			if (bit(m->inb, pg) != bit(m->rr->inflated, pg))
				fail("region %s: 4K page at 0x%llx is%s in reclaim's balloon, the "
				     "model says it is%s",
				     m->r->cfg.id, (unsigned long long)(m->gpa + pg * PG),
				     bit(m->rr->inflated, pg) ? "" : " not",
				     bit(m->inb, pg) ? "" : " not");
	}
	for (uint64_t hp = 0; hp < m->nhp; hp++) {
		if (m->cnt[hp] != m->rr->count[hp])
			fail("region %s: host page %llu counts %u pages in the balloon, the model "
			     "%u",
			     m->r->cfg.id, (unsigned long long)hp, m->rr->count[hp], m->cnt[hp]);
		if (m->gone[hp] != bit(m->rr->gone, hp))
			fail("region %s: host page %llu is%s gone, the model says it is%s",
			     m->r->cfg.id, (unsigned long long)hp,
			     bit(m->rr->gone, hp) ? "" : " not", m->gone[hp] ? "" : " not");
		if (m->gone[hp])
			gone++;
		else
			bal += m->cnt[hp] * PG;
		if (m->gone[hp] && !m->dirty[hp])
			for (uint64_t k = 0; k < m->per; k++)
				if (m->vec[hp * m->per + k] & 1)
					fail("region %s: host page %llu is gone, yet its 4K page "
					     "at "
					     "0x%llx is resident and the guest never wrote it",
					     m->r->cfg.id, (unsigned long long)hp,
					     (unsigned long long)(m->gpa + (hp * m->per + k) * PG));
	}
	if (m->r->reclaimed_bytes % m->ps)
		fail("region %s: reclaimed_bytes %llu is not a multiple of the %llu-byte page",
		     m->r->cfg.id, (unsigned long long)m->r->reclaimed_bytes,
		     (unsigned long long)m->ps);
	EQ("reclaimed_bytes", m->r->reclaimed_bytes, gone * m->ps);
	EQ("balloon_bytes", m->r->balloon_bytes, bal);
}

static void check_patterns(bool full)
{
	for (unsigned i = 0; i < 2; i++)
		for (uint64_t pg = R[i].lo; pg < R[i].n4k; pg++)
			if (!R[i].maylose[pg])
				check_page(&R[i], pg, full, full ? "end of run" : "sweep");
}

static void check_all(void)
{
	struct balloon_counters b;
	struct mem_reclaim_stats s;
	struct balloon_info bi;
	uint32_t st = rd(VIRTIO_MMIO_STATUS);

	/* Lost memory first: it is the worst news. */
	mincore_all();
	for (unsigned i = 0; i < 2; i++)
		check_lost(&R[i]);
	for (unsigned i = 0; i < 2; i++)
		check_region(&R[i]);
	virtio_balloon_counters(&dev, &b);
	mem_reclaim_stats(&rc, &s);
	EQ("counters.inflate_count", b.inflate_count, X.b.inflate_count);
	EQ("counters.deflate_count", b.deflate_count, X.b.deflate_count);
	EQ("counters.pages_inflated", b.pages_inflated, X.b.pages_inflated);
	EQ("counters.pages_deflated", b.pages_deflated, X.b.pages_deflated);
	EQ("counters.stats_updates_count", b.stats_updates_count, X.b.stats_updates_count);
	EQ("counters.stats_update_fails", b.stats_update_fails, X.b.stats_update_fails);
	EQ("counters.event_fails", b.event_fails, X.b.event_fails);
	EQ("counters.reports", b.reports, X.b.reports);
	EQ("counters.reported_bytes", b.reported_bytes, X.b.reported_bytes);
	EQ("counters.rejected", b.rejected, X.b.rejected);
	EQ("counters.deflate_waits", b.deflate_waits, 0);
	EQ("counters.activate_fails", b.activate_fails, 0);
	EQ("reclaim.discards_dontneed", s.discards_dontneed, X.m.discards_dontneed);
	EQ("reclaim.discards_punch", s.discards_punch, X.m.discards_punch);
	EQ("reclaim.huge_reclaimed", s.huge_reclaimed, X.m.huge_reclaimed);
	EQ("reclaim.returned", s.returned, X.m.returned);
	EQ("reclaim.avoided_4k", s.avoided_4k, X.m.avoided_4k);
	EQ("reclaim.refaults", s.refaults, X.m.refaults);
	EQ("reclaim.rejected", s.rejected, X.m.rejected);
	EQ("reclaim.repopulated", s.repopulated, 0);
	EQ("reclaim.discard_errors", s.discard_errors, 0);
	if (!!(st & VIRTIO_CONFIG_S_NEEDS_RESET) != broken)
		fail("NEEDS_RESET is %s, expected %s",
		     (st & VIRTIO_CONFIG_S_NEEDS_RESET) ? "set" : "clear",
		     broken ? "set" : "clear");
	if (dev.stats_held != held || (held && dev.stats_head != held_head))
		fail("the device holds %s statistics buffer %u; the model %s %u",
		     dev.stats_held ? "the" : "no", dev.stats_head, held ? "holds" : "none",
		     held_head);
	if (nhs != timer_model)
		fail("%u statistics timers pending, expected %u", nhs, timer_model);
	if (nhs && hs[0].ms != interval * 1000ull)
		fail("a statistics timer of %llu ms, the interval is %u s",
		     (unsigned long long)hs[0].ms, interval);
	EQ("timer calls", tcalls, tcalls_model);
	virtio_balloon_info(&dev, &bi);
	EQ("info.target_pages", bi.target_pages, num_pages);
	EQ("info.actual_pages", bi.actual_pages, actual);
	EQ("info.stats_interval_s", bi.stats_interval_s, interval);
	EQ("info.features", bi.features, live() ? feat : 0);
	EQ("info.gs.updates", bi.gs.updates, X.gs.updates);
	EQ("info.gs.have", bi.gs.have, X.gs.have);
	for (unsigned t = 0; t < BALLOON_STAT_TAGS; t++)
		if ((X.gs.have >> t & 1) && bi.gs.val[t] != X.gs.val[t])
			fail("statistic %u is %llu, the driver last sent %llu", t,
			     (unsigned long long)bi.gs.val[t], (unsigned long long)X.gs.val[t]);
}

/* ---- steps ---- */

static void fire_timer(void)
{
	struct handle h;
	uint16_t want[1];
	unsigned nw = 0;
	unsigned qs;

	if (!nhs)
		return;
	t_fires++;
	h = hs[0];
	nhs = 0;
	timer_model = false;
	/* stats_tick: the held buffer back, the next tick armed. */
	qs = q_stats >= 0 ? (unsigned)q_stats : 0;
	if (live() && q_stats >= 0) {
		if (held && Q[qs].set) {
			want[nw++] = (uint16_t)held_head;
			retire(qs, held_head);
			held = false;
		}
		model_arm();
	}
	h.fn(h.arg, 0);
	if (q_stats >= 0)
		check_used(qs, want, nw, "statistics timer");
}

static void touch(void)
{
	for (unsigned k = 1 + (unsigned)below(8); k; k--) {
		struct region *m = rand_region();
		uint64_t pg = m->lo + below(m->n4k - m->lo);

		if (nrecent && below(2)) {
			m = page_of(recent[below(nrecent < 64 ? nrecent : 64)], &pg);
			if (!m)
				fail("model: a deflated page outside RAM");
		}

		/*
		 * The driver's own balloon and pages in flight are not the guest's to use.
		 */
		if (m->drv[pg] || m->pend[pg])
			continue;
		if (!m->maylose[pg])
			check_page(m, pg, true, "before the guest writes it");
		m->gen[pg]++;
		write_page(m, pg);
		m->maylose[pg] = 0;
		m->dirty[pg / m->per] = 1;
		t_touch++;
	}
}

static void refresh(void)
{
	mincore_all();
	for (unsigned i = 0; i < 2; i++) {
		struct region *m = &R[i];

		for (uint64_t hp = 0; hp < m->nhp; hp++) {
			bool mapped = false;

			if (!m->gone[hp])
				continue;
			for (uint64_t k = 0; k < m->per; k++)
				mapped |= m->vec[hp * m->per + k] & 1;
			if (mapped) {
				m->gone[hp] = 0;
				X.m.refaults++;
			}
		}
	}
	mem_reclaim_refresh(&rc);
	t_refresh++;
}

static void config_access(void)
{
	uint8_t buf[8], want[8] = {0}, cfg[16] = {0};
	unsigned len = 1u << below(4), c = (unsigned)below(below(4) ? 16 : 0xf00 - 8);

	memcpy(cfg, &num_pages, 4);
	memcpy(cfg + 4, &actual, 4);
	if (below(3)) {
		dev.t.dev.ops->read(&dev.t.dev, VIRTIO_MMIO_CONFIG + c, buf, len);
		if (c + len <= 16)
			memcpy(want, cfg + c, len);
		if (memcmp(buf, want, len))
			fail("config read of %u bytes at %u: not num_pages %u / actual %u", len, c,
			     num_pages, actual);
		return;
	}
	for (unsigned i = 0; i < len; i++)
		buf[i] = (uint8_t)next();
	dev.t.dev.ops->write(&dev.t.dev, VIRTIO_MMIO_CONFIG + c, buf, len);
	if (c >= 4 && c + len <= 8) {
		memcpy(cfg + c, buf, len);
		memcpy(&actual, cfg + 4, 4);
	}
}

static void set_target(void)
{
	uint32_t mib = (uint32_t)(below(4) ? below(gm.top / MIB + 8) : below(1u << 24));
	uint32_t gen = rd(VIRTIO_MMIO_CONFIG_GENERATION);

	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	virtio_balloon_set_target(&dev, mib);
	num_pages = mib * 256;
	if (rd(VIRTIO_MMIO_CONFIG_GENERATION) != gen + 1)
		fail("set_target: the configuration generation did not move on");
	if (!!(rd(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG) != live())
		fail("set_target: configuration interrupt %s while the driver is %slive",
		     live() ? "missing" : "raised", live() ? "" : "not ");
}

static void set_interval(void)
{
	uint32_t s = (uint32_t)(below(8) ? 1 + below(30) : 0);
	int want = !bcfg.stats_interval_s || !s ? -EINVAL : 0, r;

	if (!want) {
		interval = s;
		if (timer_model) {
			timer_model = false; /* cancelled */
		}
		if (live() && q_stats >= 0)
			model_arm();
	}
	r = virtio_balloon_set_stats_interval(&dev, s);
	if (r != want)
		fail("set_stats_interval(%u) = %d, expected %d", s, r, want);
}

static void step(void)
{
	unsigned r = (unsigned)below(100);

	if ((!live() || !drv_ok) && below(5) == 0) {
		bring_up();
		return;
	}
	if (r < 22) {
		unsigned q = (unsigned)below(2);

		for (unsigned i = 1 + (unsigned)below(3); i; i--)
			offer(q);
		if (below(4))
			kick(q);
	} else if (r < 30) {
		unsigned q = 2 + (unsigned)below(2);

		for (unsigned i = 1 + (unsigned)below(2); i; i--)
			offer(q);
		if (below(3))
			kick(q);
	} else if (r < 42) {
		unsigned q = role[2] == R_REPORT ? 2 : 3;

		for (unsigned i = 1 + (unsigned)below(3); i; i--)
			offer(q);
		if (below(4))
			kick(q);
	} else if (r < 54) {
		kick((unsigned)below(NQ));
	} else if (r < 60) {
		fire_timer();
	} else if (r < 63) {
		set_target();
	} else if (r < 65) {
		set_interval();
	} else if (r < 70) {
		config_access();
	} else if (r < 72) {
		bring_up();
	} else if (r < 73) {
		status0(); /* down for a while */
	} else if (r < 85) {
		touch();
	} else if (r < 86) {
		/* Not often: reclaim's refresh makes a mincore call per gone host page. */
		if (below(2))
			refresh();
	} else if (r < 93) {
		(void)rd(VIRTIO_MMIO_INTERRUPT_STATUS);
		wr(VIRTIO_MMIO_INTERRUPT_ACK, 3);
	} else if (r < 94) {
		/* An avail entry that names no descriptor, on any queue. */
		unsigned q = (unsigned)below(NQ);
		static struct chain t;

		memset(&t, 0, sizeof(t));
		post(q, &t, B_HEAD);
	} else {
		/* A deflate of what the driver holds, whole host pages at a time. */
		offer_pfns(1, false);
		kick(1);
	}
}

/* ---- runs ---- */

static void *alloc(size_t n)
{
	void *p = calloc(n ? n : 1, 1);

	if (!p)
		fail("out of memory");
	return p;
}

static void start_run(void)
{
	struct mem_region_cfg c[2];
	struct vmm_err e = {0};
	static const unsigned r1[][3] = {
		{MEM_BACKING_ANON, 0, 2}, {MEM_BACKING_MEMFD, 2, 4}, {MEM_BACKING_MEMFD, 1, 2}};
	unsigned k = (unsigned)below(3);

	mem_cfg_init(&c[0], MEM_BACKING_THP, "ram", "memory.regions[0]");
	c[0].size = below(3) ? 16 * MIB : 32 * MIB;
	mem_cfg_init(&c[1], (enum mem_backing)r1[k][0], "more", "memory.regions[1]");
	c[1].size = r1[k][2] * MIB;
	c[1].page_size = r1[k][1] == 1 ? SZ_4K : r1[k][1] == 2 ? SZ_2M : 0;
	for (unsigned i = 0; i < 2; i++)
		if (below(6) == 0)
			c[i].reclaim = MEM_RECLAIM_CFG_KEEP;
	if (mem_cfg_finalize_all(c, 2, &e) || mem_map(&gm, c, 2, &e))
		fail("mapping guest RAM: %s", e.msg);
	if (mem_reclaim_init(&rc, &gm))
		fail("mem_reclaim_init failed");
	if (gm.nregions != 2 || gm.nslots != 2)
		fail("%u regions in %u slots, expected 2 and 2", gm.nregions, gm.nslots);
	data_top = gm.top;
	for (unsigned i = 0; i < 2; i++) {
		struct region *m = &R[i];
		struct mem_region *r = &gm.regions[i];
		enum mem_reclaim_kind want;

		*m = (struct region){.r = r,
				     .rr = &rc.r[i],
				     .gpa = r->gpa,
				     .size = r->size,
				     .ps = r->page_size,
				     .hva = r->hva};
		if (gm.slots[i].region != i || gm.slots[i].gpa != r->gpa ||
		    gm.slots[i].size != r->size || gm.slots[i].hva != r->hva)
			fail("region %u is not its slot", i);
		m->per = m->ps / PG;
		m->n4k = m->size / PG;
		m->nhp = m->size / m->ps;
		m->lo = i == 0 ? WORK / PG : 0;
		want = c[i].reclaim == MEM_RECLAIM_CFG_KEEP  ? MEM_RECLAIM_KEEP
		       : r->cfg.backing == MEM_BACKING_MEMFD ? MEM_RECLAIM_PUNCH
							     : MEM_RECLAIM_DONTNEED;
		if (r->reclaim != want)
			fail("region %s: reclaim kind %d, expected %d (%s)", r->cfg.id, r->reclaim,
			     want, r->reclaim_why);
		m->discards = r->reclaim != MEM_RECLAIM_KEEP;
		m->punch = r->reclaim == MEM_RECLAIM_PUNCH;
		m->inb = alloc((m->n4k + 63) / 64 * 8);
		m->drv = alloc(m->n4k);
		m->maylose = alloc(m->n4k);
		m->pend = alloc(m->n4k * 2);
		m->gen = alloc(m->n4k * 4);
		m->cnt = alloc(m->nhp * 4);
		m->gone = alloc(m->nhp);
		m->dirty = alloc(m->nhp);
		m->vec = alloc(m->n4k);
		for (uint64_t pg = m->lo; pg < m->n4k; pg++)
			write_page(m, pg);
	}
	memset(R[0].hva, 0, WORK);
	memset(&X, 0, sizeof(X));
	memset(Q, 0, sizeof(Q));
	nrecent = 0;
	bcfg = (struct virtio_balloon_cfg){
		.amount_mib = (uint32_t)below(gm.top / MIB + 1),
		.deflate_on_oom = below(2),
		.stats_interval_s = below(3) ? 1 + (uint32_t)below(10) : 0,
		.free_page_reporting = below(4) != 0,
	};
	offered = F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_EVENT_IDX) |
		  F(VIRTIO_RING_F_INDIRECT_DESC) | F(VIRTIO_BALLOON_F_MUST_TELL_HOST) |
		  (bcfg.stats_interval_s ? F(VIRTIO_BALLOON_F_STATS_VQ) : 0) |
		  (bcfg.deflate_on_oom ? F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) : 0) |
		  (bcfg.free_page_reporting ? F(VIRTIO_BALLOON_F_REPORTING) : 0);
	num_pages = bcfg.amount_mib * 256;
	interval = bcfg.stats_interval_s;
	actual = 0;
	nhs = 0;
	timer_model = false;
	tcalls = tcalls_model = 0;
	inject = below(2);
	if (virtio_balloon_init(&dev, &host, &gm, &rc, 0xd0000000, 5, &bcfg))
		fail("virtio_balloon_init failed");
	t_runs++;
	bring_up();
	check_all();
}

static void end_run(void)
{
	t_needs += dev.t.st.needs_reset;
	check_all();
	check_patterns(true);
	virtio_balloon_stop(&dev);
	if (nhs)
		fail("%u timers left after virtio_balloon_stop", nhs);
	virtio_balloon_destroy(&dev);
	mem_reclaim_destroy(&rc);
	mem_unmap(&gm);
	for (unsigned i = 0; i < 2; i++) {
		struct region *m = &R[i];

		free(m->inb);
		free(m->drv);
		free(m->maylose);
		free(m->pend);
		free(m->gen);
		free(m->cnt);
		free(m->gone);
		free(m->dirty);
		free(m->vec);
	}
	memset(&gm, 0, sizeof(gm));
}

int main(int argc, char **argv)
{
	unsigned long steps = argc > 1 ? strtoul(argv[1], NULL, 0) : 4 * RUNLEN, done = 0;
	uint64_t discards = 0, refaults = 0, reports = 0, gone_max = 0;

	fuzz_seed(argc, argv, 2);
	seed0 = rng;
	log_set_sink(quiet, NULL);
	for (run_no = 0; done < steps; run_no++) {
		unsigned long len = steps - done < RUNLEN ? steps - done : RUNLEN;

		/* Run 0 is the seed itself: a run replays as run 0 of its own seed. */
		run_seed = seed0;
		if (run_no) {
			uint64_t z = seed0 + run_no * 0x9e3779b97f4a7c15ull;

			z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9ull;
			z = (z ^ z >> 27) * 0x94d049bb133111ebull;
			run_seed = z ^ z >> 31;
		}
		rng = run_seed ? run_seed : 1;
		step_now = 0;
		start_run();
		for (step_now = 0; step_now < len; step_now++) {
			step();
			check_all();
			if (step_now % 512 == 511)
				check_patterns(false);
			for (unsigned i = 0; i < 2; i++) {
				uint64_t g = 0;

				for (uint64_t hp = 0; hp < R[i].nhp; hp++)
					g += R[i].gone[hp];
				gone_max = g > gone_max ? g : gone_max;
			}
		}
		discards += X.m.discards_dontneed + X.m.discards_punch;
		refaults += X.m.refaults;
		reports += X.b.reports;
		end_run();
		done += len;
	}
	printf("fuzz_balloon: %lu steps in %lu runs (seed %llu): %lu resets (%lu refused), %lu "
	       "rule breakers, %lu needing reset; chains: %lu inflate, %lu deflate, %lu stats, "
	       "%lu report; %llu reports, %llu discards, %llu refaults, at most %llu host pages "
	       "gone; %lu timer fires, %lu guest writes, %lu refreshes; %lu report chains "
	       "with pieces adjacent and not\n",
	       done, t_runs, seed0, t_resets, t_refused, t_evil,
	       t_needs, t_chains[R_INFLATE], t_chains[R_DEFLATE], t_chains[R_STATS],
	       t_chains[R_REPORT], (unsigned long long)reports, (unsigned long long)discards,
	       (unsigned long long)refaults, (unsigned long long)gone_max, t_fires, t_touch,
	       t_refresh, t_join);
	/* A run that never discarded, refaulted or needed a reset tested little. */
	return steps < RUNLEN || (discards && refaults && t_needs && reports) ? 0 : 1;
}
