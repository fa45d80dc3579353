/*
 * What the socket device's unit test (tests/unit/test_vsock.c) and its fuzzer
 * (tests/fuzz/fuzz_vsock.c) share: the guest's memory accessors over real
 * guest RAM (gm), the header's wire layout as the guest writes and reads it
 * (not the device's code), a fake dev_host (fhost) whose watches are
 * dispatched with poll() and whose timers run on a virtual clock (now_ms),
 * checking the device's use of them, and the driver's register and
 * descriptor writes to the device (dev).
 *
 * Header-only, for one translation unit. Before including it, define:
 *  - GSI, the device's interrupt line, and RING(q), the guest address of
 *    queue @q's descriptors (its avail ring at +0x1000, used at +0x2000);
 *  - VG_FAIL(fmt, ...), how a check fails (a string literal format);
 * and after it, vg_refuse_watch() and vg_refuse_timer(), called as the device
 * asks for a watch or a timer once the request is checked: true makes the
 * host refuse it (returns NULL).
 */
#ifndef HUGEVMM_TESTS_UNIT_VSOCK_GUEST_H
#define HUGEVMM_TESTS_UNIT_VSOCK_GUEST_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_mmio.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/vsock.h"

#if !defined(GSI) || !defined(RING) || !defined(VG_FAIL)
#error "define GSI, RING(q) and VG_FAIL(fmt, ...) before including vsock_guest.h"
#endif

static struct guest_mem gm;
static struct virtio_vsock dev;
static unsigned qn; /* the queue size in use */

static bool vg_refuse_watch(void);
static bool vg_refuse_timer(void);

/* ---- guest memory ---- */

static void gput(uint64_t gpa, const void *src, uint64_t len)
{
	const uint8_t *s = src;

	while (len) {
		uint8_t *h;
		uint64_t n = mem_gpa_piece(&gm, gpa, len, &h);

		if (!n)
			VG_FAIL("the model wrote outside RAM at 0x%llx", (unsigned long long)gpa);
		memcpy(h, s, n);
		s += n;
		gpa += n;
		len -= n;
	}
}

static void gget(uint64_t gpa, void *dst, uint64_t len)
{
	uint8_t *d = dst;

	while (len) {
		uint8_t *h;
		uint64_t n = mem_gpa_piece(&gm, gpa, len, &h);

		if (!n)
			VG_FAIL("the model read outside RAM at 0x%llx", (unsigned long long)gpa);
		memcpy(d, h, n);
		d += n;
		gpa += n;
		len -= n;
	}
}

static uint16_t g16(uint64_t gpa)
{
	uint16_t v;

	gget(gpa, &v, 2);
	return v;
}

static uint32_t g32(uint64_t gpa)
{
	uint32_t v;

	gget(gpa, &v, 4);
	return v;
}

/* ---- the header, as the guest writes and reads it (not the device's code) ---- */

static void le(uint8_t *w, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		w[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t ld(const uint8_t *w, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)w[i] << (8 * i);
	return v;
}

static void wire_put(uint8_t *w, const struct vsock_hdr *h)
{
	le(w, h->src_cid, 8);
	le(w + 8, h->dst_cid, 8);
	le(w + 16, h->src_port, 4);
	le(w + 20, h->dst_port, 4);
	le(w + 24, h->len, 4);
	le(w + 28, h->type, 2);
	le(w + 30, h->op, 2);
	le(w + 32, h->flags, 4);
	le(w + 36, h->buf_alloc, 4);
	le(w + 40, h->fwd_cnt, 4);
}

static void wire_get(struct vsock_hdr *h, const uint8_t *w)
{
	h->src_cid = ld(w, 8);
	h->dst_cid = ld(w + 8, 8);
	h->src_port = (uint32_t)ld(w + 16, 4);
	h->dst_port = (uint32_t)ld(w + 20, 4);
	h->len = (uint32_t)ld(w + 24, 4);
	h->type = (uint16_t)ld(w + 28, 2);
	h->op = (uint16_t)ld(w + 30, 2);
	h->flags = (uint32_t)ld(w + 32, 4);
	h->buf_alloc = (uint32_t)ld(w + 36, 4);
	h->fwd_cnt = (uint32_t)ld(w + 40, 4);
}

/* ---- a fake VMM loop: watches dispatched with poll(), timers on a virtual clock ---- */

#define FH_MAGIC 0x76736f636b66ull

struct fh {
	uint64_t magic;
	bool timer, live, fired, in_cb;
	int fd;
	short ev;
	uint64_t due;
	void (*fn)(void *, int);
	void *arg;
	struct fh *next; /* every handle ever made, freed by fh_free_all */
};

static struct fh *fh_all;
static struct fh **fh_live;
static unsigned fh_nlive, fh_cap;
static uint64_t now_ms;
static bool dev_stopped;
static unsigned long irq_pulses, irq_seen;
static char last_ran[256]; /* what the last turn ran, for a device that never settles */

static void f_irq(void *o, unsigned gsi, int level)
{
	(void)o;
	if (gsi != GSI)
		VG_FAIL("an interrupt on gsi %u", gsi);
	irq_pulses += level == 1;
}

static struct fh *fh_new(void)
{
	struct fh *h = calloc(1, sizeof(*h));

	if (!h)
		VG_FAIL("out of memory");
	h->magic = FH_MAGIC;
	h->next = fh_all;
	fh_all = h;
	if (fh_nlive == fh_cap) {
		fh_cap = fh_cap ? 2 * fh_cap : 64;
		fh_live = realloc(fh_live, fh_cap * sizeof(*fh_live));
		if (!fh_live)
			VG_FAIL("out of memory");
	}
	fh_live[fh_nlive++] = h;
	h->live = true;
	return h;
}

static struct fh *known(void *p)
{
	struct fh *h = p;

	if (h->magic != FH_MAGIC)
		VG_FAIL("the device passed a handle the host never gave it (%p)", p);
	return h;
}

static void fh_compact(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < fh_nlive; i++)
		if (fh_live[i]->live)
			fh_live[n++] = fh_live[i];
	fh_nlive = n;
}

static __attribute__((unused)) unsigned fh_count_live(void)
{
	fh_compact();
	return fh_nlive;
}

static void *f_watch(void *o, int fd, short ev, void (*fn)(void *, int), void *arg)
{
	struct fh *h;

	(void)o;
	if (dev_stopped)
		VG_FAIL("watch(fd %d) after virtio_vsock_stop", fd);
	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		VG_FAIL("watch of fd %d, which is not open", fd);
	for (unsigned i = 0; i < fh_nlive; i++)
		if (fh_live[i]->live && !fh_live[i]->timer && fh_live[i]->fd == fd &&
		    (fh_live[i]->ev & ev))
			VG_FAIL("fd %d watched twice for events 0x%x", fd, fh_live[i]->ev & ev);
	if (vg_refuse_watch())
		return NULL;
	h = fh_new();
	h->fd = fd;
	h->ev = ev;
	h->fn = fn;
	h->arg = arg;
	return h;
}

static void f_unwatch(void *o, void *w)
{
	struct fh *h;

	(void)o;
	if (!w)
		return;
	h = known(w);
	if (h->timer) {
		/* The VMM's timer_cancel and unwatch are one function: tolerated, checked alike. */
		if (h->fired && !h->in_cb)
			VG_FAIL("a timer removed after it fired (the loop has freed it)");
	} else if (!h->live && !h->in_cb) {
		VG_FAIL("the watch on fd %d removed twice (the loop has freed it)", h->fd);
	}
	h->live = false;
}

static void *f_timer(void *o, uint64_t ms, void (*fn)(void *, int), void *arg)
{
	struct fh *h;

	(void)o;
	if (dev_stopped)
		VG_FAIL("timer(%llu ms) after virtio_vsock_stop", (unsigned long long)ms);
	if (vg_refuse_timer())
		return NULL;
	h = fh_new();
	h->timer = true;
	h->fd = -1;
	h->due = now_ms + ms;
	h->fn = fn;
	h->arg = arg;
	return h;
}

static void f_cancel(void *o, void *t)
{
	struct fh *h;

	(void)o;
	if (!t)
		return;
	h = known(t);
	if (h->fired && !h->in_cb)
		VG_FAIL("a timer cancelled after it fired (the loop has freed it)");
	if (!h->live && !h->in_cb)
		VG_FAIL("a timer cancelled twice (the loop has freed it)");
	h->live = false;
}

static const struct dev_host fhost = {.irq_line = f_irq,
				      .timer = f_timer,
				      .timer_cancel = f_cancel,
				      .watch = f_watch,
				      .unwatch = f_unwatch};

/* The live timer due first, if any. */
static __attribute__((unused)) struct fh *next_timer(void)
{
	struct fh *t = NULL;

	for (unsigned i = 0; i < fh_nlive; i++)
		if (fh_live[i]->live && fh_live[i]->timer && (!t || fh_live[i]->due < t->due))
			t = fh_live[i];
	return t;
}

static void fire(struct fh *h)
{
	h->in_cb = true;
	h->fn(h->arg, 0);
	h->in_cb = false;
	h->fired = true;
	h->live = false;
}

/* One turn of the fake loop: kicks, ready watches, due timers. Whether anything ran. */
static bool fh_run_ready(void)
{
	static struct pollfd p[4096];
	static struct fh *w[4096];
	unsigned n = 0;
	bool any = false;

	fh_compact();
	for (unsigned q = 0; q < 3; q++) {
		p[n] = (struct pollfd){.fd = dev.t.kick_fd[q], .events = POLLIN};
		w[n++] = NULL;
	}
	for (unsigned i = 0; i < fh_nlive; i++) {
		if (fh_live[i]->timer)
			continue;
		if (n == 4096)
			VG_FAIL("more than 4093 watches");
		p[n] = (struct pollfd){.fd = fh_live[i]->fd, .events = fh_live[i]->ev};
		w[n++] = fh_live[i];
	}
	if (poll(p, n, 0) < 0)
		VG_FAIL("poll: %s", strerror(errno));
	for (unsigned i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		if (!w[i]) {
			snprintf(last_ran, sizeof(last_ran), "the kick of queue %u", i);
			virtio_mmio_kick(&dev.t, i);
			any = true;
			continue;
		}
		if (!w[i]->live)
			continue; /* removed by an earlier callback of this turn */
		if (p[i].revents & POLLNVAL)
			VG_FAIL("a live watch on fd %d, which the device closed", w[i]->fd);
		snprintf(last_ran, sizeof(last_ran), "the watch on fd %d (events 0x%x, revents 0x%x)",
			 w[i]->fd, w[i]->ev, p[i].revents);
		w[i]->in_cb = true;
		w[i]->fn(w[i]->arg, p[i].revents);
		w[i]->in_cb = false;
		any = true;
	}
	for (unsigned i = 0; i < fh_nlive; i++) {
		struct fh *t = fh_live[i];

		if (t->live && t->timer && t->due <= now_ms) {
			snprintf(last_ran, sizeof(last_ran), "a timer");
			fire(t);
			any = true;
		}
	}
	return any;
}

/* Turns of the fake loop until nothing is ready. */
static void fh_settle(void)
{
	for (unsigned r = 0; fh_run_ready(); r++)
		if (r > 20000)
			VG_FAIL("the device never settles: %s fires forever", last_ran);
}

/* Every handle ever made goes (after virtio_vsock_stop, or a failed test). */
static void fh_free_all(void)
{
	while (fh_all) {
		struct fh *h = fh_all;

		fh_all = h->next;
		h->magic = 0;
		free(h);
	}
	fh_nlive = 0;
}

/* ---- the driver's registers and descriptors ---- */

static uint32_t rd(uint64_t off)
{
	uint32_t v;

	dev.t.dev.ops->read(&dev.t.dev, off, &v, 4);
	return v;
}

static void wr(uint64_t off, uint32_t v)
{
	dev.t.dev.ops->write(&dev.t.dev, off, &v, 4);
}

static void desc(unsigned q, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t nx)
{
	uint8_t d[16];

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &nx, 2);
	gput(RING(q) + 16 * i, d, 16);
}

static void notify(unsigned q)
{
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, q);
}


/* Queue @q, selected: qn entries, its rings at RING(q), ready. */
static void queue_ready(unsigned q)
{
	wr(VIRTIO_MMIO_QUEUE_NUM, qn);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)RING(q));
	wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
	wr(VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)RING(q) + 0x1000);
	wr(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
	wr(VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)RING(q) + 0x2000);
	wr(VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
}

static struct vsock_counters cnt(void)
{
	struct vsock_counters k;

	virtio_vsock_counters(&dev, &k);
	return k;
}

/* The process's open descriptors (one more while counting). */
static unsigned count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	if (!d)
		VG_FAIL("opendir /proc/self/fd: %s", strerror(errno));
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

#endif
