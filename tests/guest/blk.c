/*
 * The virtio-blk workloads of the test guest, written from the virtio 1.2
 * specification (5.2 Block Device) on the transport core of virtio.c. Disks
 * are the block devices (DeviceID 2) among the command line's
 * virtio_mmio.device= entries, in command-line order: disk=0 is the first.
 *
 * THE SECTOR PATTERN, which host tests write into an image and check after
 * the guest ran: in an image written with seed S, the 512-byte sector number
 * s (at byte offset 512 * s) holds
 *   bytes  0..7    s, little-endian 64-bit
 *   bytes  8..15   S, little-endian 64-bit
 *   bytes 16..511  byte i is (s + i) & 0xff
 * In Python: struct.pack("<QQ", s, S) + bytes((s + i) & 0xff for i in range(16, 512)).
 *
 *   test=blk seed=S [disk=N|all] [ro=1|auto] [expect_sectors=N] [wait_change=1] [qd=N]
 *       prints "blk id=<serial>" (GET_ID), "blk sectors=N" (the capacity), "blk
 *       features=0x..."; reads the first min(capacity, 32768) sectors (16 MiB) and
 *       checks they hold the pattern of seed S; then writes them with seed S+1 in a
 *       mix of requests (1 to 64 sectors; header, data and status in descriptors of
 *       their own; a 3-segment 8 KiB request split 512+4096+3584, another split
 *       1000+5000+2192 at unaligned addresses; the header sharing one descriptor with
 *       an OUT's data and the status sharing one with an IN's data; every other round
 *       of the mix through indirect tables when negotiated), up to qd (default 8) in
 *       flight; FLUSH when offered; WRITE_ZEROES when offered (a range reads back as
 *       zeros, then gets its pattern again); DISCARD when offered (status OK, then the
 *       pattern again); FLUSH; reads everything back for seed S+1. After the guest ran,
 *       those sectors of the image hold the pattern of seed S+1, the rest is untouched.
 *       ro=1: the device must offer VIRTIO_BLK_F_RO; after the read pass one write
 *       must end with IOERR and leave sector 0 as it was; nothing is written. ro=auto:
 *       the read-only checks on a disk that offers VIRTIO_BLK_F_RO, the writes on others.
 *       expect_sectors=N: the capacity must be N. disk=all: every disk in turn.
 *       wait_change=1: then prints "blk waiting for a configuration change" and waits
 *       (change_secs=N, default 120) for one (the interrupt with irq=1; InterruptStatus
 *       or ConfigGeneration when polling), prints "blk changed sectors=N", reads
 *       sector 0 and prints "blk seed=X", and checks the new image's first 16 MiB hold
 *       the pattern of seed X.
 *   test=blkbench [mode=randread|randwrite|read|write] [bs=4096] [qd=1] [secs=5] [disk=N]
 *       keeps qd requests of bs bytes in flight for secs seconds (TSC calibrated against
 *       the PIT), at random bs-aligned offsets (rand*) or sequentially (wrapping at
 *       the end); data buffers page-aligned; the loop runs in ring 3 and polls the used
 *       ring (irq=1: interrupts are taken as well); prints "blkbench mode=M bs=B qd=N
 *       iops=X mbps=Y ..." (mbps: 10^6 bytes/s; lat_us: mean submit-to-completion).
 *   test=blk-bad bad=range|status|nostatus|rodesc [disk=N]
 *       range: reads (and, on a writable disk, writes) past the end, across the end and
 *       at sector 2^55 (whose byte offset wraps to 0) must each end with IOERR (or
 *       DEVICE_NEEDS_RESET), then a good read must work; status: an IN whose status
 *       descriptor has length 0; nostatus: an OUT with no device-writable descriptor;
 *       rodesc: an IN whose data descriptor is device-readable (its bytes must stay).
 *       Each waits at most 2 s, prints "blk-bad bad=K ... verdict=ok", and
 *       "testguest: PASS" when the device kept the spec (IOERR where a status can be
 *       written, DEVICE_NEEDS_RESET where it cannot), then idles as test=idle does.
 *
 * Driver options: event_idx=, indirect=, irq=, irq_trigger=, qsize= as for the entropy
 * device (rng.c), and flush=0|1, discard=0|1, write_zeroes=0|1 (negotiate the feature;
 * default: if offered; 1: required). SEG_MAX, SIZE_MAX, BLK_SIZE and RO are taken when
 * offered, and segments are kept within seg_max and size_max.
 */
#include "chase.h"
#include "guest.h"
#include "virtio.h"

/* Feature bits (5.2.3). */
#define BLK_F_SIZE_MAX     1
#define BLK_F_SEG_MAX      2
#define BLK_F_RO           5
#define BLK_F_BLK_SIZE     6
#define BLK_F_FLUSH        9
#define BLK_F_DISCARD      13
#define BLK_F_WRITE_ZEROES 14

/* struct virtio_blk_config (5.2.4), byte offsets. */
#define CFG_CAPACITY      0
#define CFG_SIZE_MAX      8
#define CFG_SEG_MAX       12
#define CFG_BLK_SIZE      20
#define CFG_MAX_DISCARD   36
#define CFG_DISCARD_SEG   40
#define CFG_DISCARD_ALIGN 44
#define CFG_MAX_WZ        48
#define CFG_WZ_SEG        52
#define CFG_WZ_UNMAP      56

/* Request types and status values (5.2.6). */
#define T_IN           0
#define T_OUT          1
#define T_FLUSH        4
#define T_GET_ID       8
#define T_DISCARD      11
#define T_WRITE_ZEROES 13
#define S_OK           0
#define S_IOERR        1
#define S_UNSUPP       2
#define S_UNSET        0xff /* what the driver puts there: a device that never writes shows */
#define WZ_F_UNMAP     1

#define SECTOR          512u
#define PAGE            4096u
#define ID_BYTES        20
#define MAX_QD          128
#define CHECK_SECTORS   32768u /* test=blk covers the first 16 MiB */
#define REQ_MAX_SECTORS 64u    /* test=blk's largest request: 32 KiB */
/* A test=blk slot: a page before the data (a merged header goes at its end), the data,
 * a page after it (a merged status byte). */
#define SLOT_BYTES (PAGE + REQ_MAX_SECTORS * SECTOR + PAGE)
#define MAX_SEGS   6 /* data segments of one request */

/* entry.S: call fn(arg) in ring 3 (IOPL 3) and return its result. */
long run_user(long (*fn)(long), long arg);

struct blk_hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

struct blk_range {
	uint64_t sector;
	uint32_t num_sectors, flags;
};

enum layout {
	L_SPLIT,
	L_MERGED,
	L_MULTI_A,
	L_MULTI_B,
	L_COUNT
};
static const char *const layout_name[L_COUNT] = {"split", "merged", "multi_a", "multi_b"};

struct piece {
	uint8_t *p;
	uint32_t len;
};

struct slot {
	uint8_t *area, *data;
	struct blk_hdr *hdr;
	volatile uint8_t *status;
	struct piece pc[MAX_SEGS];
	unsigned npc;
	uint32_t type, nsect, wlen; /* wlen: device-writable bytes posted */
	uint64_t sector, t0;
	enum layout layout;
	bool ind, dev_writes; /* data descriptors device-writable */
};

struct disk {
	struct virtio_dev *d;
	struct virtq *q;
	unsigned n;
	uint64_t capacity;
	uint32_t blk_size, seg_max, size_max;
	uint32_t max_discard, discard_seg, discard_align, max_wz, wz_seg;
	uint8_t wz_unmap;
	bool ro, flush, discard, wz, ind_ok, ind_all, multi_ok;
	uint32_t max_req; /* sectors per request (size_max) */
	unsigned qd, inflight;
	uint64_t layouts[L_COUNT], indirect;
};

struct pass {
	uint32_t type;
	uint64_t seed, next, end, reqs, cycles;
	unsigned k;
	bool zeros;     /* IN: the sectors must read as zeros */
	uint8_t expect; /* the status every request must end with */
};

static struct blk_hdr hdrs[MAX_QD] __attribute__((aligned(16)));
static volatile uint8_t stbytes[MAX_QD] __attribute__((aligned(64)));
static struct slot slots[MAX_QD];
static unsigned nslots, free_stack[MAX_QD], nfree_slots;
static int16_t head_slot[VIRTQ_MAX_SIZE];
static uint8_t ramp[768];
static uint64_t tsc_hz, wait_max; /* TSC cycles per second; a stuck device: 10 s */
static struct pass *cur_pass;

/* ---- basics ---- */

/* A decimal with one digit after the point, from tenths. */
static void put_tenths(uint64_t t)
{
	putu(t / 10);
	putc_('.');
	putu(t % 10);
}

static uint64_t ms_of(uint64_t cycles)
{
	return cycles / (tsc_hz / 1000);
}

static void calibrate(void)
{
	if (tsc_hz)
		return;
	tsc_hz = tsc_rate("blk");
	wait_max = tsc_hz * 10;
}

static void slots_init(unsigned n, uint64_t area_bytes, uint64_t data_off)
{
	static uint8_t *mem;
	static uint64_t mem_bytes;

	if (n > MAX_QD)
		fail("blk: qd must be 1..128");
	area_bytes = (area_bytes + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	if (!mem || mem_bytes < n * area_bytes) {
		mem = ram_alloc(n * area_bytes, 2ul << 20, "blk (give the VM more memory, or a smaller qd or bs)");
		mem_bytes = n * area_bytes;
	}
	nslots = n;
	nfree_slots = 0;
	for (unsigned i = 0; i < n; i++) {
		slots[i] = (struct slot){.area = mem + i * area_bytes};
		slots[i].data = slots[i].area + data_off;
		free_stack[nfree_slots++] = n - 1 - i;
	}
}

static struct slot *slot_get(void)
{
	if (!nfree_slots)
		fail("blk: no free request slot (a driver bug)");
	return &slots[free_stack[--nfree_slots]];
}

static void slot_put(struct slot *s)
{
	free_stack[nfree_slots++] = (unsigned)(s - slots);
}

/* ---- the pattern ---- */

static void gen_sector(uint8_t *dst, uint64_t sector, uint64_t seed, bool zero)
{
	if (zero) {
		memset(dst, 0, SECTOR);
		return;
	}
	memcpy(dst, &sector, 8);
	memcpy(dst + 8, &seed, 8);
	memcpy(dst + 16, ramp + ((sector + 16) & 0xff), SECTOR - 16);
}

static bool same(const uint8_t *a, const uint8_t *b, uint32_t n)
{
	if (!(((uintptr_t)a | (uintptr_t)b | n) & 7)) {
		const uint64_t *x = (const uint64_t *)a, *y = (const uint64_t *)b;

		for (uint32_t i = 0; i < n / 8; i++)
			if (x[i] != y[i])
				return false;
		return true;
	}
	return mem_eq(a, b, n);
}

static void put_bytes(const uint8_t *p, unsigned n)
{
	static const char hex[] = "0123456789abcdef";

	for (unsigned i = 0; i < n; i++) {
		putc_(hex[p[i] >> 4]);
		putc_(hex[p[i] & 15]);
	}
}

/* Write (@fill) or check the request's data pieces against the pattern of @seed. */
static void pattern(struct slot *s, uint64_t seed, bool zero, bool fill)
{
	static uint8_t tmp[SECTOR] __attribute__((aligned(8)));
	uint64_t off = 0;

	for (unsigned i = 0; i < s->npc; i++) {
		uint8_t *p = s->pc[i].p;
		uint32_t left = s->pc[i].len;

		while (left) {
			uint64_t sec = s->sector + off / SECTOR;
			uint32_t in = (uint32_t)(off % SECTOR), n = SECTOR - in;

			if (n > left)
				n = left;
			gen_sector(tmp, sec, seed, zero);
			if (fill) {
				memcpy(p, tmp + in, n);
			} else if (!same(p, tmp + in, n)) {
				uint32_t j = 0;

				while (j < n && p[j] == tmp[in + j])
					j++;
				puts_("blk: mismatch in sector ");
				putu(sec);
				puts_(" at byte ");
				putu(in + j);
				puts_(" (request at sector ");
				putu(s->sector);
				puts_(", ");
				putu(s->nsect);
				puts_(" sectors, layout ");
				puts_(layout_name[s->layout]);
				puts_(s->ind ? ", indirect" : "");
				puts_(", segment ");
				putu(i);
				puts_(")\nblk:   got      ");
				put_bytes(p + j - (j < 8 ? j : 8), 16);
				puts_("\nblk:   expected ");
				put_bytes(tmp + in + j - (j < 8 ? j : 8), 16);
				puts_("\n");
				if (zero)
					fail("blk: a range written with WRITE_ZEROES does not read "
					     "as zeros");
				if (in + j < 8 && !mem_eq(p - in, &sec, 8))
					fail("blk: a sector does not start with its own number "
					     "(the pattern "
					     "is not there, or the device read the wrong sector)");
				fail("blk: a sector does not hold the pattern of the expected "
				     "seed");
			}
			p += n;
			off += n;
			left -= n;
		}
	}
}

/* ---- requests ---- */

/* Lay out a request in slot @s (data pieces, where the header and the status go). */
static void req_set(struct slot *s, uint32_t type, uint64_t sector, uint32_t nsect, enum layout l)
{
	unsigned idx = (unsigned)(s - slots);
	uint32_t len = nsect * SECTOR;
	uint8_t *d = s->data;

	s->type = type;
	s->sector = sector;
	s->nsect = nsect;
	s->layout = l;
	s->ind = false;
	s->hdr = &hdrs[idx];
	s->status = &stbytes[idx];
	s->dev_writes = type == T_IN || type == T_GET_ID;
	switch (l) {
	case L_SPLIT:
		s->pc[0] = (struct piece){d, len};
		s->npc = len ? 1 : 0;
		break;
	case L_MERGED: /* OUT: header + data in one; IN: data + status in one */
		s->pc[0] = (struct piece){d, len};
		s->npc = 1;
		if (type == T_OUT)
			s->hdr = (struct blk_hdr *)(void *)(d - sizeof(struct blk_hdr));
		else
			s->status = d + len;
		break;
	case L_MULTI_A: /* 16 sectors: 512 + 4096 + 3584, page-aligned, apart */
		s->pc[0] = (struct piece){d, 512};
		s->pc[1] = (struct piece){d + PAGE, 4096};
		s->pc[2] = (struct piece){d + 3 * PAGE, 3584};
		s->npc = 3;
		break;
	case L_MULTI_B: /* 16 sectors: 1000 + 5000 + 2192 at unaligned addresses */
		s->pc[0] = (struct piece){d + 8, 1000};
		s->pc[1] = (struct piece){d + PAGE + 100, 5000};
		s->pc[2] = (struct piece){d + 3 * PAGE + 3, 2192};
		s->npc = 3;
		break;
	default:
		fail("blk: bad layout");
	}
	s->hdr->type = type;
	s->hdr->reserved = 0;
	s->hdr->sector = type == T_IN || type == T_OUT ? sector : 0;
	*s->status = S_UNSET;
}

/* Post the request of slot @s; false when the ring has no room for it now. */
static bool req_post(struct disk *k, struct slot *s)
{
	struct vbuf b[MAX_SEGS + 2];
	unsigned n = 0;
	bool ind;
	int head;

	s->wlen = 0;
	if (s->layout == L_MERGED && s->type == T_OUT) {
		b[n++] = (struct vbuf){(uint64_t)(uintptr_t)s->hdr, 16 + s->pc[0].len, false};
	} else {
		b[n++] = (struct vbuf){(uint64_t)(uintptr_t)s->hdr, 16, false};
		for (unsigned i = 0; i < s->npc; i++)
			b[n++] = (struct vbuf){(uint64_t)(uintptr_t)s->pc[i].p, s->pc[i].len,
					       s->dev_writes};
		if (s->layout == L_MERGED)
			b[n - 1].len += 1; /* the status byte right after the data */
	}
	if (!(s->layout == L_MERGED && s->type != T_OUT))
		b[n++] = (struct vbuf){(uint64_t)(uintptr_t)s->status, 1, true};
	for (unsigned i = 0; i < n; i++)
		if (b[i].write)
			s->wlen += b[i].len;
	ind = s->ind && n <= VIRTQ_IND_MAX;
	if (!ind && n > k->q->size)
		fail("blk: a request needs more descriptors than the queue has (raise qsize)");
	head = virtq_add(k->q, b, n, ind);
	if (head < 0)
		return false;
	s->ind = ind;
	s->t0 = chase_rdtsc();
	head_slot[head] = (int16_t)(s - slots);
	k->inflight++;
	k->layouts[s->layout]++;
	k->indirect += ind;
	return true;
}

static void put_state(struct disk *k)
{
	puts_("blk: device status ");
	putx(vio_read(k->d, VIO_STATUS));
	puts_(" InterruptStatus ");
	putx(vio_read(k->d, VIO_INT_STATUS));
	puts_(" used_idx ");
	putu(k->q->used[1]);
	puts_(" avail_idx ");
	putu(k->q->next_avail);
	puts_(" in flight ");
	putu(k->inflight);
	puts_("\n");
}

/* Wait (bounded) for completions and hand each to @done. */
static void reap(struct disk *k, void (*done)(struct disk *, struct slot *, uint32_t))
{
	uint32_t id, len;

	if (!virtq_wait(k->q, wait_max)) {
		put_state(k);
		if (vio_read(k->d, VIO_STATUS) & VIRTIO_S_NEEDS_RESET)
			fail("blk: the device set DEVICE_NEEDS_RESET on a well-formed request");
		fail(k->d->use_irq ? "blk: no request completed within 10 s (and no interrupt "
				     "came)"
				   : "blk: no request completed within 10 s");
	}
	while (virtq_pop(k->q, &id, &len)) {
		struct slot *s = &slots[head_slot[id]];

		k->inflight--;
		if (len > s->wlen) {
			puts_("blk: used len ");
			putu(len);
			puts_(" of a request with ");
			putu(s->wlen);
			puts_(" device-writable bytes\n");
			fail("blk: the device says it wrote more than the request's writable "
			     "buffers hold");
		}
		done(k, s, len);
		slot_put(s);
	}
	if (!k->d->use_irq)
		virtio_ack(k->d);
}

static const char *type_name(uint32_t t)
{
	switch (t) {
	case T_IN:
		return "IN";
	case T_OUT:
		return "OUT";
	case T_FLUSH:
		return "FLUSH";
	case T_GET_ID:
		return "GET_ID";
	case T_DISCARD:
		return "DISCARD";
	case T_WRITE_ZEROES:
		return "WRITE_ZEROES";
	default:
		return "?";
	}
}

static void put_req(const struct slot *s)
{
	puts_(type_name(s->type));
	puts_(" sector ");
	putu(s->sector);
	puts_(" sectors ");
	putu(s->nsect);
	puts_(" layout ");
	puts_(layout_name[s->layout]);
	puts_(s->ind ? " indirect" : "");
}

static void pass_done(struct disk *k, struct slot *s, uint32_t len)
{
	struct pass *p = cur_pass;
	uint8_t st = *s->status;

	(void)k;
	if (st != p->expect) {
		puts_("blk: ");
		put_req(s);
		puts_(": status ");
		putu(st);
		puts_(" (want ");
		putu(p->expect);
		puts_(")\n");
		fail(st == S_UNSET ? "blk: the device completed a request without writing its "
				     "status byte"
				   : "blk: a request ended with an unexpected status");
	}
	if (st == S_OK && s->type == T_IN) {
		if (len < s->nsect * SECTOR + 1) {
			puts_("blk: ");
			put_req(s);
			puts_(": used len ");
			putu(len);
			puts_("\n");
			fail("blk: a read's used length is less than its data and status");
		}
		pattern(s, p->seed, p->zeros, false);
	}
}

/* One round of the request mix: sizes and layouts (multi layouts need 16 sectors). */
static const struct {
	uint16_t nsect;
	uint8_t layout;
} mix[] = {
	{1, L_SPLIT},  {16, L_MULTI_A}, {8, L_MERGED}, {3, L_SPLIT},  {16, L_MULTI_B},
	{1, L_MERGED}, {64, L_SPLIT},   {7, L_MERGED}, {16, L_SPLIT}, {32, L_MERGED},
};
#define NMIX (sizeof(mix) / sizeof(mix[0]))

/* Sectors [p->next, p->end) in the mix, up to qd in flight. */
static void run_pass(struct disk *k, struct pass *p)
{
	uint64_t t0 = chase_rdtsc();

	cur_pass = p;
	while (p->next < p->end || k->inflight) {
		while (p->next < p->end && k->inflight < k->qd) {
			struct slot *s = slot_get();
			uint32_t n = mix[p->k % NMIX].nsect;
			enum layout l = (enum layout)mix[p->k % NMIX].layout;
			bool ind;

			if (n > p->end - p->next)
				n = (uint32_t)(p->end - p->next);
			if (n > k->max_req)
				n = k->max_req;
			if ((l == L_MULTI_A || l == L_MULTI_B) && (n != 16 || !k->multi_ok))
				l = L_SPLIT;
			ind = k->ind_all || (k->ind_ok && ((p->k / NMIX) & 1));
			if (!ind && (l == L_MULTI_A || l == L_MULTI_B) && k->q->size < 5)
				l = L_SPLIT; /* 5 descriptors do not fit a small queue */
			req_set(s, p->type, p->next, n, l);
			s->ind = ind;
			if (p->type == T_OUT)
				pattern(s, p->seed, false, true);
			else /* poison: a device that does not write cannot pass the check */
				for (unsigned i = 0; i < s->npc; i++)
					memset(s->pc[i].p, 0xa5, s->pc[i].len);
			if (!req_post(k, s)) {
				slot_put(s);
				break;
			}
			p->next += n;
			p->k++;
			p->reqs++;
		}
		virtq_kick(k->q);
		reap(k, pass_done);
	}
	p->cycles = chase_rdtsc() - t0;
}

static void put_pass(const char *what, const struct pass *p, uint64_t first)
{
	puts_("blk ");
	puts_(what);
	puts_(" sectors=");
	putu(p->end - first);
	if (!p->zeros) {
		puts_(" seed=");
		putu(p->seed);
	}
	puts_(" requests=");
	putu(p->reqs);
	puts_(" ms=");
	putu(ms_of(p->cycles));
	puts_("\n");
}

static void do_pass(struct disk *k, uint32_t type, uint64_t seed, uint64_t first, uint64_t n,
		    bool zeros, const char *what)
{
	struct pass p = {.type = type,
			 .seed = seed,
			 .next = first,
			 .end = first + n,
			 .zeros = zeros,
			 .expect = S_OK};

	run_pass(k, &p);
	if (what)
		put_pass(what, &p, first);
}

/* One request with nothing else in flight; its status (and used length). */
static uint8_t one_req(struct disk *k, struct slot *s, uint32_t *used)
{
	uint32_t id, len;

	if (!req_post(k, s))
		fail("blk: no room in the ring for one request");
	virtq_kick(k->q);
	if (!virtq_wait(k->q, wait_max)) {
		put_state(k);
		puts_("blk: ");
		put_req(s);
		puts_("\n");
		fail("blk: a request did not complete within 10 s");
	}
	if (!virtq_pop(k->q, &id, &len) || head_slot[id] != s - slots)
		fail("blk: the device completed a request that was not posted");
	k->inflight--;
	if (!k->d->use_irq)
		virtio_ack(k->d);
	if (used)
		*used = len;
	return *s->status;
}

/* ---- bring-up ---- */

static int feature_opt(const char *key)
{
	char v[8];

	return arg(key, v, sizeof(v)) ? (int)arg_u64(key, 1) != 0 : -1;
}

static void disk_start(struct disk *k, unsigned n, const struct virtio_opts *o0, unsigned qd)
{
	static const struct {
		const char *opt;
		unsigned bit;
	} fopts[] = {{"flush", BLK_F_FLUSH},
		     {"discard", BLK_F_DISCARD},
		     {"write_zeroes", BLK_F_WRITE_ZEROES}};
	struct virtio_opts o = *o0;
	struct virtio_dev *d = virtio_find_nth(VIRTIO_ID_BLOCK, n);

	*k = (struct disk){.n = n, .qd = qd};
	if (!d) {
		puts_("blk: disk=");
		putu(n);
		puts_(" but there are ");
		putu(virtio_count(VIRTIO_ID_BLOCK));
		puts_(" block devices\n");
		fail("blk: no such disk (DeviceID 2, transport version 2) among the "
		     "virtio_mmio.device= entries");
	}
	k->d = d;
	o.dev_features =
		1u << BLK_F_SIZE_MAX | 1u << BLK_F_SEG_MAX | 1u << BLK_F_RO | 1u << BLK_F_BLK_SIZE;
	for (unsigned i = 0; i < sizeof(fopts) / sizeof(fopts[0]); i++)
		if (feature_opt(fopts[i].opt) != 0)
			o.dev_features |= 1u << fopts[i].bit;
	if (!virtio_start(d, 1, &o))
		fail("blk: the block device did not initialize (the line above says why)");
	for (unsigned i = 0; i < sizeof(fopts) / sizeof(fopts[0]); i++)
		if (feature_opt(fopts[i].opt) == 1 && !virtio_has(d, fopts[i].bit)) {
			puts_("blk: ");
			puts_(fopts[i].opt);
			puts_("=1 but the device does not offer the feature\n");
			fail("blk: a required feature is not offered");
		}
	k->q = d->vq[0];
	k->capacity = vio_cfg64(d, CFG_CAPACITY);
	k->ro = virtio_has(d, BLK_F_RO);
	k->flush = virtio_has(d, BLK_F_FLUSH);
	k->discard = virtio_has(d, BLK_F_DISCARD);
	k->wz = virtio_has(d, BLK_F_WRITE_ZEROES);
	k->blk_size = virtio_has(d, BLK_F_BLK_SIZE) ? vio_cfg32(d, CFG_BLK_SIZE) : SECTOR;
	k->seg_max = virtio_has(d, BLK_F_SEG_MAX) ? vio_cfg32(d, CFG_SEG_MAX) : 0;
	k->size_max = virtio_has(d, BLK_F_SIZE_MAX) ? vio_cfg32(d, CFG_SIZE_MAX) : 0;
	if (k->discard) {
		k->max_discard = vio_cfg32(d, CFG_MAX_DISCARD);
		k->discard_seg = vio_cfg32(d, CFG_DISCARD_SEG);
		k->discard_align = vio_cfg32(d, CFG_DISCARD_ALIGN);
	}
	if (k->wz) {
		k->max_wz = vio_cfg32(d, CFG_MAX_WZ);
		k->wz_seg = vio_cfg32(d, CFG_WZ_SEG);
		k->wz_unmap = vio_cfg8(d, CFG_WZ_UNMAP);
	}
	k->ind_ok = virtio_has(d, VIRTIO_F_INDIRECT_DESC);
	k->ind_all = o.indirect == 1;
	k->max_req = REQ_MAX_SECTORS;
	k->multi_ok = !k->seg_max || k->seg_max >= 3;
	if (k->size_max) {
		if (k->size_max < SECTOR + 16)
			fail("blk: size_max is below 528 bytes: the test guest cannot lay out a "
			     "request");
		if ((k->size_max - 16) / SECTOR < k->max_req)
			k->max_req = (k->size_max - 16) / SECTOR;
		if (k->size_max < 5000)
			k->multi_ok = false;
	}
	if (k->q->size < 3 && !k->ind_ok)
		fail("blk: a request needs 3 descriptors: qsize must be at least 4 without "
		     "indirect descriptors");
	for (unsigned i = 0; i < VIRTQ_MAX_SIZE; i++)
		head_slot[i] = -1;

	puts_("blk disk=");
	putu(n);
	puts_(" of ");
	putu(virtio_count(VIRTIO_ID_BLOCK));
	puts_(" at ");
	putx(d->base);
	puts_("\nblk sectors=");
	putu(k->capacity);
	puts_(" blk_size=");
	putu(k->blk_size);
	puts_(" seg_max=");
	putu(k->seg_max);
	puts_(" size_max=");
	putu(k->size_max);
	puts_("\nblk features=");
	putx(d->features);
	puts_(" offered=");
	putx(d->offered);
	puts_(" ro=");
	putu(k->ro);
	puts_(" flush=");
	putu(k->flush);
	puts_(" discard=");
	putu(k->discard);
	puts_(" write_zeroes=");
	putu(k->wz);
	puts_(" event_idx=");
	putu(virtio_has(d, VIRTIO_F_EVENT_IDX));
	puts_(" indirect=");
	putu(k->ind_ok);
	puts_(" irq=");
	putu(d->use_irq);
	puts_(" qsize=");
	putu(k->q->size);
	puts_("\n");
	if (k->discard) {
		puts_("blk discard max_sectors=");
		putu(k->max_discard);
		puts_(" max_seg=");
		putu(k->discard_seg);
		puts_(" alignment=");
		putu(k->discard_align);
		puts_("\n");
	}
	if (k->wz) {
		puts_("blk write_zeroes max_sectors=");
		putu(k->max_wz);
		puts_(" max_seg=");
		putu(k->wz_seg);
		puts_(" may_unmap=");
		putu(k->wz_unmap);
		puts_("\n");
	}
}

static void probe_all(struct virtio_opts *o)
{
	virtio_opts_from_cmdline(o);
	virtio_probe();
	if (!virtio_count(VIRTIO_ID_BLOCK))
		fail("blk: no block device (DeviceID 2, transport version 2) among the "
		     "virtio_mmio.device= entries");
	calibrate();
}

/* ---- test=blk ---- */

static void get_id(struct disk *k)
{
	struct slot *s = slot_get();
	uint32_t len;
	uint8_t st;

	req_set(s, T_GET_ID, 0, 0, L_SPLIT);
	s->pc[0] = (struct piece){s->data, ID_BYTES};
	s->npc = 1;
	memset(s->data, 0, ID_BYTES + 1);
	st = one_req(k, s, &len);
	slot_put(s);
	if (st != S_OK) {
		puts_("blk: GET_ID status ");
		putu(st);
		puts_("\n");
		fail("blk: GET_ID did not end with status OK");
	}
	puts_("blk id=");
	for (unsigned i = 0; i < ID_BYTES && s->data[i]; i++)
		putc_(s->data[i] >= 0x20 && s->data[i] < 0x7f ? (char)s->data[i] : '?');
	puts_("\n");
}

static uint8_t simple_req(struct disk *k, uint32_t type, const struct blk_range *r, unsigned nr)
{
	struct slot *s = slot_get();
	uint8_t st;

	req_set(s, type, 0, 0, L_SPLIT);
	if (nr) {
		memcpy(s->data, r, nr * sizeof(*r));
		s->pc[0] = (struct piece){s->data, (uint32_t)(nr * sizeof(*r))};
		s->npc = 1;
	}
	st = one_req(k, s, NULL);
	slot_put(s);
	return st;
}

static void flush(struct disk *k)
{
	uint64_t t0 = chase_rdtsc();
	uint8_t st = simple_req(k, T_FLUSH, NULL, 0);

	puts_("blk flush status=");
	putu(st);
	puts_(" ms=");
	putu(ms_of(chase_rdtsc() - t0));
	puts_("\n");
	if (st != S_OK)
		fail("blk: FLUSH did not end with status OK");
}

static void write_zeroes(struct disk *k, uint64_t region, uint64_t seed)
{
	uint64_t a = region / 2, n = 64;
	struct blk_range r[2];
	unsigned nr = 1;
	uint8_t st;

	if (k->max_wz && n > k->max_wz)
		n = k->max_wz;
	if (n > region - a)
		n = region - a;
	if (!n)
		return;
	r[0] = (struct blk_range){a, (uint32_t)n, 0};
	if (k->wz_seg >= 2 && n >= 2) { /* two segments; the second may deallocate */
		r[0].num_sectors = (uint32_t)(n / 2);
		r[1] = (struct blk_range){a + n / 2, (uint32_t)(n - n / 2),
					  k->wz_unmap ? WZ_F_UNMAP : 0};
		nr = 2;
	}
	st = simple_req(k, T_WRITE_ZEROES, r, nr);
	puts_("blk write_zeroes sector=");
	putu(a);
	puts_(" sectors=");
	putu(n);
	puts_(" segments=");
	putu(nr);
	puts_(" unmap=");
	putu(nr == 2 && k->wz_unmap);
	puts_(" status=");
	putu(st);
	puts_("\n");
	if (st != S_OK)
		fail("blk: WRITE_ZEROES did not end with status OK");
	do_pass(k, T_IN, 0, a, n, true, "zeros");
	do_pass(k, T_OUT, seed, a, n, false, NULL); /* the pattern back */
}

static void discard(struct disk *k, uint64_t region, uint64_t seed)
{
	uint64_t al = k->discard_align ? k->discard_align : 1, b, n = 64;
	struct blk_range r;
	uint8_t st;

	if (k->max_discard && n > k->max_discard)
		n = k->max_discard;
	n = n / al * al;
	if (!n)
		n = al;
	b = (region / 4 + al - 1) / al * al;
	if (b + n > region || (k->max_discard && n > k->max_discard)) {
		puts_("blk discard skipped: the aligned range does not fit the region\n");
		return;
	}
	r = (struct blk_range){b, (uint32_t)n, 0};
	st = simple_req(k, T_DISCARD, &r, 1);
	puts_("blk discard sector=");
	putu(b);
	puts_(" sectors=");
	putu(n);
	puts_(" status=");
	putu(st);
	puts_("\n");
	if (st != S_OK)
		fail("blk: DISCARD did not end with status OK");
	do_pass(k, T_OUT, seed, b, n, false, NULL); /* whatever it reads as now: the pattern back */
}

/* ro=1: one write must fail with IOERR and change nothing. */
static void ro_write(struct disk *k, uint64_t seed)
{
	struct slot *s = slot_get();
	uint8_t st;

	req_set(s, T_OUT, 0, 1, L_SPLIT);
	pattern(s, seed + 1, false, true);
	st = one_req(k, s, NULL);
	slot_put(s);
	puts_("blk ro write status=");
	putu(st);
	puts_("\n");
	if (st != S_IOERR)
		fail("blk: a write to a read-only device did not end with IOERR");
	do_pass(k, T_IN, seed, 0, 1, false, NULL);
	puts_("blk ro sector 0 unchanged\n");
}

static void wait_change(struct disk *k)
{
	struct virtio_dev *d = k->d;
	uint64_t secs = arg_u64("change_secs", 120), t0, cap, seed, region;
	uint32_t gen0 = vio_read(d, VIO_CONFIG_GEN), gen;
	struct slot *s;
	const char *by = NULL;
	uint8_t st;

	if (d->use_irq)
		__asm__ volatile("cli" : : : "memory");
	d->isr &= ~(uint32_t)VIRTIO_INT_CONFIG;
	if (d->use_irq)
		__asm__ volatile("sti" : : : "memory");
	puts_("blk waiting for a configuration change\n");
	t0 = chase_rdtsc();
	while (!by) {
		if (chase_rdtsc() - t0 > secs * tsc_hz)
			fail("blk: no configuration change came (change_secs=)");
		if (d->use_irq) {
			__asm__ volatile("cli" : : : "memory");
			if (d->isr & VIRTIO_INT_CONFIG)
				by = "interrupt";
			else
				__asm__ volatile("sti; hlt"
						 :
						 :
						 : "memory"); /* the LAPIC timer wakes */
			__asm__ volatile("sti" : : : "memory");
			continue;
		}
		virtio_ack(d);
		if (d->isr & VIRTIO_INT_CONFIG)
			by = "isr";
		else if (vio_read(d, VIO_CONFIG_GEN) != gen0)
			by = "generation";
		else
			wait_cycles(tsc_hz / 1000);
	}
	cap = vio_cfg64(d, CFG_CAPACITY);
	gen = vio_read(d, VIO_CONFIG_GEN);
	puts_("blk changed sectors=");
	putu(cap);
	puts_(" by=");
	puts_(by);
	puts_(" generation=");
	putu(gen0);
	puts_("->");
	putu(gen);
	puts_("\n");
	if (cap != k->capacity && gen == gen0)
		fail("blk: the capacity changed but ConfigGeneration did not");
	if (!cap)
		fail("blk: the new capacity is 0");
	k->capacity = cap;
	s = slot_get();
	req_set(s, T_IN, 0, 1, L_SPLIT);
	memset(s->data, 0xa5, SECTOR);
	st = one_req(k, s, NULL);
	slot_put(s);
	if (st != S_OK)
		fail("blk: reading sector 0 of the new image failed");
	memcpy(&seed, s->data + 8, 8);
	puts_("blk seed=");
	putu(seed);
	puts_("\n");
	region = cap < CHECK_SECTORS ? cap : CHECK_SECTORS;
	do_pass(k, T_IN, seed, 0, region, false, "verified");
}

/* @ro: 1 the disk must be read-only, 0 writable, -1 (ro=auto) whichever it says. */
static void blk_one(struct disk *k, uint64_t seed, int ro_want, uint64_t expect, bool change)
{
	bool ro = ro_want < 0 ? k->ro : ro_want != 0;
	uint64_t region;

	if (expect && k->capacity != expect) {
		puts_("blk: expect_sectors=");
		putu(expect);
		puts_("\n");
		fail("blk: the capacity is not the one expected");
	}
	if (!k->capacity)
		fail("blk: the capacity is 0");
	get_id(k);
	if (ro && !k->ro)
		fail("blk: ro=1 but the device does not offer VIRTIO_BLK_F_RO");
	if (!ro && k->ro)
		fail("blk: the device is read-only (VIRTIO_BLK_F_RO): give ro=1");
	region = k->capacity < CHECK_SECTORS ? k->capacity : CHECK_SECTORS;
	do_pass(k, T_IN, seed, 0, region, false, "read");
	if (ro) {
		ro_write(k, seed);
	} else {
		do_pass(k, T_OUT, seed + 1, 0, region, false, "wrote");
		if (k->flush)
			flush(k);
		if (k->wz)
			write_zeroes(k, region, seed + 1);
		if (k->discard)
			discard(k, region, seed + 1);
		if (k->flush && (k->wz || k->discard))
			flush(k);
		do_pass(k, T_IN, seed + 1, 0, region, false, "verified");
	}
	puts_("blk layouts split=");
	putu(k->layouts[L_SPLIT]);
	puts_(" merged=");
	putu(k->layouts[L_MERGED]);
	puts_(" multi_a=");
	putu(k->layouts[L_MULTI_A]);
	puts_(" multi_b=");
	putu(k->layouts[L_MULTI_B]);
	puts_(" indirect=");
	putu(k->indirect);
	puts_(" kicks=");
	putu(k->q->kicks);
	puts_(" notifies=");
	putu(k->q->notifies);
	puts_(" irqs=");
	putu(k->d->irqs);
	puts_("\n");
	if (k->d->use_irq && !k->d->irqs)
		fail("blk: irq=1 but no interrupt came");
	if (change)
		wait_change(k);
}

void do_blk(void)
{
	static struct disk k;
	struct virtio_opts o;
	uint64_t seed = arg_u64("seed", 1), expect = arg_u64("expect_sectors", 0);
	unsigned qd = (unsigned)arg_u64("qd", 8), first = 0, last;
	bool change = arg_u64("wait_change", 0) != 0;
	char which[8] = "0", rov[8] = "0";
	int ro;

	arg("ro", rov, sizeof(rov));
	ro = str_eq(rov, "auto") ? -1 : arg_u64("ro", 0) != 0;

	for (unsigned i = 0; i < sizeof(ramp); i++)
		ramp[i] = (uint8_t)i;
	if (!qd || qd > MAX_QD)
		fail("blk: qd must be 1..128");
	probe_all(&o);
	arg("disk", which, sizeof(which));
	if (str_eq(which, "all")) {
		last = virtio_count(VIRTIO_ID_BLOCK) - 1;
		if (change || expect)
			fail("blk: wait_change= and expect_sectors= take one disk, not disk=all");
	} else {
		first = last = (unsigned)arg_u64("disk", 0);
	}
	slots_init(qd, SLOT_BYTES, PAGE);
	for (unsigned n = first; n <= last; n++) {
		disk_start(&k, n, &o, qd);
		blk_one(&k, seed, ro, expect, change);
		puts_("blk disk=");
		putu(n);
		puts_(" ok\n");
	}
	pass(0);
}

/* ---- test=blkbench ---- */

enum {
	M_RANDREAD,
	M_RANDWRITE,
	M_READ,
	M_WRITE
};

static struct {
	struct disk *k;
	int mode;
	uint32_t bs;
	unsigned qd;
	uint64_t nblocks, pos, rnd, end_tsc;
	uint64_t ios, errors, lat_sum, t0, t1;
	uint8_t bad_status;
	bool stuck;
} B;

static uint64_t bench_block(void)
{
	uint64_t b;

	if (B.mode == M_RANDREAD || B.mode == M_RANDWRITE)
		return chase_xorshift(&B.rnd) % B.nblocks;
	b = B.pos++;
	if (B.pos == B.nblocks)
		B.pos = 0;
	return b;
}

/* Ring 3: fill the queue to qd, poll the used ring, until the time is up and all is in. */
static long bench_user(long unused)
{
	struct disk *k = B.k;
	struct virtq *q = k->q;
	bool write = B.mode == M_RANDWRITE || B.mode == M_WRITE;
	uint32_t chunk = k->size_max ? k->size_max & ~(SECTOR - 1) : B.bs;

	(void)unused;
	if (k->d->use_irq)
		__asm__ volatile("sti" : : : "memory"); /* IOPL 3: the device's interrupts come */
	B.t0 = chase_rdtsc();
	for (;;) {
		uint64_t now = chase_rdtsc();
		bool more = now < B.end_tsc && !B.errors;
		uint32_t id, len;

		if (!more && !k->inflight)
			break;
		while (more && k->inflight < B.qd && nfree_slots) {
			struct slot *s = &slots[free_stack[nfree_slots - 1]];
			unsigned idx = (unsigned)(s - slots), n = 0;
			struct vbuf b[MAX_SEGS + 2];
			int head;

			s->hdr = &hdrs[idx];
			s->status = &stbytes[idx];
			s->hdr->type = write ? T_OUT : T_IN;
			s->hdr->reserved = 0;
			s->hdr->sector = bench_block() * (B.bs / SECTOR);
			*s->status = S_UNSET;
			b[n++] = (struct vbuf){(uint64_t)(uintptr_t)s->hdr, 16, false};
			for (uint32_t off = 0; off < B.bs; off += chunk)
				b[n++] = (struct vbuf){(uint64_t)(uintptr_t)(s->data + off),
						       B.bs - off < chunk ? B.bs - off : chunk,
						       !write};
			b[n++] = (struct vbuf){(uint64_t)(uintptr_t)s->status, 1, true};
			head = virtq_add(q, b, n, k->ind_all);
			if (head < 0)
				break;
			nfree_slots--;
			head_slot[head] = (int16_t)idx;
			s->t0 = chase_rdtsc();
			k->inflight++;
		}
		virtq_kick(q);
		while (!virtq_pop(q, &id, &len)) {
			if (chase_rdtsc() - now > wait_max) {
				B.stuck = true;
				goto out;
			}
			__asm__ volatile("pause");
		}
		do {
			struct slot *s = &slots[head_slot[id]];

			B.t1 = chase_rdtsc();
			k->inflight--;
			free_stack[nfree_slots++] = (unsigned)(s - slots);
			if (*s->status != S_OK) {
				B.errors++;
				B.bad_status = *s->status;
				continue;
			}
			B.ios++;
			B.lat_sum += B.t1 - s->t0;
		} while (virtq_pop(q, &id, &len));
	}
out:
	if (k->d->use_irq)
		__asm__ volatile("cli" : : : "memory");
	return 0;
}

void do_blkbench(void)
{
	static const char *const modes[] = {"randread", "randwrite", "read", "write"};
	static struct disk k;
	struct virtio_opts o;
	char mode[16] = "randread";
	uint64_t secs = arg_u64("secs", 5), us, segs;

	B.bs = (uint32_t)arg_u64("bs", 4096);
	B.qd = (unsigned)arg_u64("qd", 1);
	B.rnd = arg_u64("seed", 1) | 1;
	B.mode = -1;
	arg("mode", mode, sizeof(mode));
	for (int i = 0; i < 4; i++)
		if (str_eq(mode, modes[i]))
			B.mode = i;
	if (B.mode < 0)
		fail("blkbench: mode= is one of randread, randwrite, read, write");
	if (B.bs < SECTOR || B.bs % SECTOR || B.bs > (4u << 20))
		fail("blkbench: bs must be a multiple of 512 up to 4 MiB");
	if (!B.qd || B.qd > MAX_QD)
		fail("blkbench: qd must be 1..128");
	if (!secs || secs > 3600)
		fail("blkbench: secs must be 1..3600");
	probe_all(&o);
	disk_start(&k, (unsigned)arg_u64("disk", 0), &o, B.qd);
	B.k = &k;
	if ((B.mode == M_RANDWRITE || B.mode == M_WRITE) && k.ro)
		fail("blkbench: a write mode on a read-only device");
	if (k.blk_size > SECTOR && B.bs % k.blk_size)
		puts_("blkbench: bs is not a multiple of the device's blk_size\n");
	segs = k.size_max ? (B.bs + (k.size_max & ~(SECTOR - 1)) - 1) / (k.size_max & ~(SECTOR - 1))
			  : 1;
	if (segs > MAX_SEGS || (k.seg_max && segs > k.seg_max) ||
	    (k.ind_all && segs + 2 > VIRTQ_IND_MAX) || (!k.ind_all && segs + 2 > k.q->size))
		fail("blkbench: bs needs more segments than size_max, seg_max or the queue allow");
	B.nblocks = k.capacity * SECTOR / B.bs;
	if (!B.nblocks)
		fail("blkbench: the disk is smaller than bs");
	slots_init(B.qd, B.bs, 0);
	for (unsigned i = 0; i < B.qd; i++)
		memset(slots[i].data, 0x5a, B.bs);
	B.end_tsc = chase_rdtsc() + secs * tsc_hz;
	run_user(bench_user, 0);
	if (B.stuck) {
		put_state(&k);
		fail("blkbench: no request completed within 10 s");
	}
	us = (B.t1 - B.t0) / (tsc_hz / 1000000);
	if (!us)
		us = 1;
	puts_("blkbench mode=");
	puts_(modes[B.mode]);
	puts_(" bs=");
	putu(B.bs);
	puts_(" qd=");
	putu(B.qd);
	puts_(" iops=");
	putu(B.ios * 1000000 / us);
	puts_(" mbps=");
	put_tenths(B.ios * B.bs * 10 / us);
	puts_(" ios=");
	putu(B.ios);
	puts_(" ms=");
	putu(us / 1000);
	puts_(" lat_us=");
	put_tenths(B.ios ? B.lat_sum * 10 / (tsc_hz / 1000000) / B.ios : 0);
	puts_(" errors=");
	putu(B.errors);
	puts_(" notifies=");
	putu(k.q->notifies);
	puts_(" irqs=");
	putu(k.d->irqs);
	puts_(" event_idx=");
	putu(virtio_has(k.d, VIRTIO_F_EVENT_IDX));
	puts_(" indirect=");
	putu(k.ind_all);
	puts_(" irq=");
	putu(k.d->use_irq);
	puts_("\n");
	if (B.errors) {
		puts_("blkbench: status ");
		putu(B.bad_status);
		puts_("\n");
		fail("blkbench: a request did not end with status OK");
	}
	if (!B.ios)
		fail("blkbench: no request completed");
	pass(0);
}

/* ---- test=blk-bad ---- */

/* Wait at most 2 s for request @s: 1 when it came back, 0 on DEVICE_NEEDS_RESET, -1 on
 * neither. */
static int bad_wait(struct disk *k, struct slot *s, uint32_t *len)
{
	uint64_t t0 = chase_rdtsc();
	uint32_t id;

	virtq_kick(k->q);
	for (;;) {
		if (virtq_pop(k->q, &id, len)) {
			k->inflight--;
			if (head_slot[id] != s - slots)
				fail("blk-bad: the device completed a request that was not posted");
			return 1;
		}
		if (vio_read(k->d, VIO_STATUS) & VIRTIO_S_NEEDS_RESET)
			return 0;
		if (chase_rdtsc() - t0 > 2 * tsc_hz)
			return -1;
		__asm__ volatile("pause");
	}
}

static void put_outcome(const char *what, int r, const struct slot *s, uint32_t len)
{
	puts_("blk-bad ");
	puts_(what);
	if (r < 0) {
		puts_(" outcome=none (no completion, no DEVICE_NEEDS_RESET within 2 s)\n");
		return;
	}
	if (!r) {
		puts_(" outcome=needs_reset\n");
		return;
	}
	puts_(" outcome=used len=");
	putu(len);
	puts_(" status=");
	putu(*s->status);
	puts_("\n");
}

static bool bad_range(struct disk *k)
{
	const uint64_t cap = k->capacity;
	const struct {
		uint32_t type;
		uint64_t sector;
		uint32_t nsect;
		const char *what;
	} cases[] = {
		{T_IN, cap, 1, "read_past_end"},
		{T_IN, cap - 1, 2, "read_across_end"},
		{T_IN, 1ull << 55, 1, "read_wrapping_offset"},
		{T_IN, ~0ull, 1, "read_last_sector_number"},
		{T_OUT, cap, 1, "write_past_end"},
		{T_OUT, cap - 1, 2, "write_across_end"},
		{T_OUT, 1ull << 55, 1, "write_wrapping_offset"},
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct slot *s;
		uint32_t len = 0;
		int r;

		if (cases[i].type == T_OUT && k->ro)
			continue;
		s = slot_get();
		req_set(s, cases[i].type, cases[i].sector, cases[i].nsect, L_SPLIT);
		memset(s->data, 0x3c, cases[i].nsect * SECTOR);
		if (!req_post(k, s))
			fail("blk-bad: no room in the ring");
		r = bad_wait(k, s, &len);
		slot_put(s);
		put_outcome(cases[i].what, r, s, len);
		if (r < 0)
			return false;
		if (!r)
			return true; /* the device stopped: nothing more to send */
		if (*s->status != S_IOERR)
			return false;
	}
	/* The device still serves a good request. */
	{
		struct slot *s = slot_get();
		uint32_t len = 0;
		int r;

		req_set(s, T_IN, 0, 1, L_SPLIT);
		if (!req_post(k, s))
			fail("blk-bad: no room in the ring");
		r = bad_wait(k, s, &len);
		slot_put(s);
		put_outcome("good_read_after", r, s, len);
		return r == 1 && *s->status == S_OK;
	}
}

void do_blk_bad(void)
{
	static struct disk k;
	struct virtio_opts o;
	char kind[16] = "range";
	struct slot *s;
	struct vbuf b[3];
	uint32_t len = 0;
	bool ok;
	int head, r;

	arg("bad", kind, sizeof(kind));
	if (!str_eq(kind, "range") && !str_eq(kind, "status") && !str_eq(kind, "nostatus") &&
	    !str_eq(kind, "rodesc"))
		fail("blk-bad: bad= is one of range, status, nostatus, rodesc");
	probe_all(&o);
	slots_init(4, SLOT_BYTES, PAGE);
	disk_start(&k, (unsigned)arg_u64("disk", 0), &o, 4);
	puts_("blk-bad: sending bad=");
	puts_(kind);
	puts_("\n");
	if (str_eq(kind, "range")) {
		ok = bad_range(&k);
	} else {
		s = slot_get();
		req_set(s, str_eq(kind, "nostatus") ? T_OUT : T_IN, 0, 1, L_SPLIT);
		memset(s->data, 0x5a, SECTOR);
		b[0] = (struct vbuf){(uint64_t)(uintptr_t)s->hdr, 16, false};
		if (str_eq(kind, "status")) { /* IN: header, data, a status of 0 bytes */
			b[1] = (struct vbuf){(uint64_t)(uintptr_t)s->data, SECTOR, true};
			b[2] = (struct vbuf){(uint64_t)(uintptr_t)s->status, 0, true};
			head = virtq_add(k.q, b, 3, false);
		} else if (str_eq(kind, "nostatus")) { /* OUT: header, data, nothing writable */
			b[1] = (struct vbuf){(uint64_t)(uintptr_t)s->data, SECTOR, false};
			head = virtq_add(k.q, b, 2, false);
		} else { /* rodesc: IN whose data the device may only read */
			b[1] = (struct vbuf){(uint64_t)(uintptr_t)s->data, SECTOR, false};
			b[2] = (struct vbuf){(uint64_t)(uintptr_t)s->status, 1, true};
			head = virtq_add(k.q, b, 3, false);
		}
		if (head < 0)
			fail("blk-bad: no room in the ring");
		head_slot[head] = (int16_t)(s - slots);
		k.inflight++;
		r = bad_wait(&k, s, &len);
		put_outcome(kind, r, s, len);
		if (str_eq(kind, "rodesc")) {
			bool kept = true;

			for (unsigned i = 0; i < SECTOR; i++)
				kept &= s->data[i] == 0x5a;
			puts_("blk-bad rodesc readable_data=");
			puts_(kept ? "kept" : "overwritten");
			puts_("\n");
			ok = kept && (r == 0 || (r == 1 && (*s->status == S_IOERR ||
							    *s->status == S_UNSUPP)));
		} else if (str_eq(kind, "status")) {
			/* Nowhere to write a status but, read as any layout, the data's last
			 * byte: IOERR there (511 bytes of data are no whole sector) will do. */
			ok = r == 0 || (r == 1 && s->data[SECTOR - 1] == S_IOERR);
		} else {
			ok = r == 0;
		}
	}
	puts_("blk-bad bad=");
	puts_(kind);
	puts_(" needs_reset=");
	putu((vio_read(k.d, VIO_STATUS) & VIRTIO_S_NEEDS_RESET) != 0);
	puts_(" verdict=");
	puts_(ok ? "ok" : "wrong");
	puts_("\n");
	if (!ok)
		fail("blk-bad: the device did not answer the bad request as the virtio spec "
		     "asks (IOERR, or DEVICE_NEEDS_RESET where no status can be written)");
	puts_("testguest: PASS\n");
	do_idle();
}
