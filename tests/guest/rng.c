/*
 * The virtio workloads of the test guest, on the first entropy device
 * (virtio-rng, DeviceID 4) of the command line's virtio_mmio.device= entries.
 *
 *   test=rng [bytes=N] [depth=D]  read N bytes (default 4096) in requests of up to 4096
 *                                 bytes of varying sizes, D in flight (default 4), some as
 *                                 two-descriptor chains; checks the bytes are not constant;
 *                                 prints "rng bytes=N ..."
 *   test=virtio-rt [n=N]          N (default 10000) one-byte round trips, one at a time;
 *                                 prints "virtio-rt n=N cycles_median=X ..." (TSC cycles
 *                                 from before the buffer is posted until it is taken back)
 *   test=virtio-bad [bad=KIND]    after DRIVER_OK posts one broken buffer and notifies,
 *                                 waits (bounded) for DEVICE_NEEDS_RESET, prints
 *                                 "virtio needs_reset=1|0", then idles as test=idle does
 *                                 (tick_ms=N works). KIND: addr (a buffer at
 *                                 0xfff00000000, outside RAM; the default), loop (a chain
 *                                 that loops), next (a next index past the queue),
 *                                 nested (an indirect descriptor in an indirect table),
 *                                 indlen (an indirect table whose length is not a multiple
 *                                 of 16), ring (the descriptor table itself outside RAM)
 *
 * Driver options for all three: event_idx=0|1 (negotiate VIRTIO_RING_F_EVENT_IDX; default:
 * if offered), indirect=0|1 (negotiate VIRTIO_RING_F_INDIRECT_DESC; 1 also sends every
 * buffer through an indirect table; default: negotiate if offered, direct buffers),
 * irq=0|1 (wait by polling the used ring, the default, or by interrupt), irq_trigger=
 * edge|level (IOAPIC trigger mode for irq=1; default edge), qsize=N (cap on QueueNum).
 */
#include "chase.h"
#include "guest.h"
#include "virtio.h"

#define WAIT_CYCLES 20000000000ull /* a stuck device: ~10 s at 2 GHz */
#define SLOTS       8
#define BUF         4096u
#define RT_MAX      100000

static uint8_t bufs[SLOTS][BUF] __attribute__((aligned(4096)));
static uint32_t samples[RT_MAX];

static struct virtio_dev *entropy_start(struct virtio_opts *o)
{
	struct virtio_dev *d;

	virtio_opts_from_cmdline(o);
	virtio_probe();
	d = virtio_find(VIRTIO_ID_ENTROPY);
	if (!d)
		fail("virtio: no entropy device (DeviceID 4, transport version 2) among the "
		     "virtio_mmio.device= entries");
	if (!virtio_start(d, 1, o))
		fail("virtio: the entropy device did not initialize (the line above says why)");
	return d;
}

static void put_flags(const struct virtio_dev *d)
{
	puts_(" event_idx=");
	putu(virtio_has(d, VIRTIO_F_EVENT_IDX));
	puts_(" indirect=");
	putu(virtio_has(d, VIRTIO_F_INDIRECT_DESC));
	puts_(" irq=");
	putu(d->use_irq);
}

/* ---- test=rng ---- */

void do_rng(void)
{
	static const uint32_t sizes[] = {4096, 1, 333, 4096, 2048, 17, 4000, 512, 4095, 64, 2};
	static uint64_t hist[256];
	struct virtio_opts o;
	struct virtio_dev *d = entropy_start(&o);
	struct virtq *q = d->vq[0];
	uint64_t want = arg_u64("bytes", 4096), got = 0, asked = 0, requests = 0, shorts = 0;
	unsigned depth = (unsigned)arg_u64("depth", 4), nfree = 0, k = 0, distinct = 0;
	uint8_t slot_of[VIRTQ_MAX_SIZE], free_slots[SLOTS];
	uint32_t len_of[VIRTQ_MAX_SIZE];
	bool ind = o.indirect == 1;

	if (!depth || depth > SLOTS)
		fail("rng: depth must be 1..8");
	for (unsigned s = 0; s < depth; s++)
		free_slots[nfree++] = (uint8_t)s;
	while (got < want) {
		uint32_t id, len;

		/* Fill the queue: as many requests as the bytes still missing need. */
		while (nfree && got + asked < want) {
			uint32_t n = sizes[k++ % (sizeof(sizes) / sizeof(sizes[0]))];
			uint8_t s = free_slots[nfree - 1];
			struct vbuf b[2];
			unsigned nb = 1;
			int head;

			if (n > want - got - asked)
				n = (uint32_t)(want - got - asked);
			b[0] = (struct vbuf){(uint64_t)(uintptr_t)bufs[s], n, true};
			if (n >= 2 && (k & 1)) { /* a two-descriptor chain */
				b[0].len = n / 3 ? n / 3 : 1;
				b[1] = (struct vbuf){b[0].addr + b[0].len, n - b[0].len, true};
				nb = 2;
			}
			head = virtq_add(q, b, nb, ind);
			if (head < 0)
				break; /* the ring is full */
			nfree--;
			slot_of[head] = s;
			len_of[head] = n;
			asked += n;
			requests++;
		}
		virtq_kick(q);
		if (!virtq_wait(q, WAIT_CYCLES))
			fail(d->use_irq ? "rng: no used buffer (and no interrupt) within the time "
					  "limit"
					: "rng: no used buffer within the time limit");
		while (virtq_pop(q, &id, &len)) {
			const uint8_t *p = bufs[slot_of[id]];

			if (len > len_of[id])
				fail("rng: the device wrote more than the buffer holds");
			if (len < len_of[id])
				shorts++;
			for (uint32_t i = 0; i < len; i++)
				hist[p[i]]++;
			got += len;
			asked -= len_of[id];
			free_slots[nfree++] = slot_of[id];
		}
		if (!d->use_irq)
			virtio_ack(d);
	}
	for (unsigned v = 0; v < 256; v++)
		distinct += hist[v] != 0;
	puts_("rng bytes=");
	putu(got);
	puts_(" requests=");
	putu(requests);
	puts_(" short=");
	putu(shorts);
	puts_(" distinct=");
	putu(distinct);
	puts_(" kicks=");
	putu(q->kicks);
	puts_(" notifies=");
	putu(q->notifies);
	puts_(" irqs=");
	putu(d->irqs);
	put_flags(d);
	puts_("\n");
	if (got && hist[0] == got)
		fail("rng: every byte is zero");
	if (got >= 2 && distinct < 2)
		fail("rng: every byte has the same value");
	/* Random bytes: 16 KiB miss one of the 256 values with probability ~1e-25. */
	if (got >= 16384 && distinct < 256)
		fail("rng: some byte values never occur: not random");
	if (d->use_irq && !d->irqs)
		fail("rng: irq=1 but no interrupt came");
	pass(0);
}

/* ---- test=virtio-rt ---- */

static void sift(uint32_t *a, size_t i, size_t n)
{
	for (;;) {
		size_t c = 2 * i + 1;
		uint32_t t;

		if (c >= n)
			return;
		if (c + 1 < n && a[c + 1] > a[c])
			c++;
		if (a[i] >= a[c])
			return;
		t = a[i];
		a[i] = a[c];
		a[c] = t;
		i = c;
	}
}

static void heapsort_u32(uint32_t *a, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift(a, i, n);
	for (size_t e = n; e-- > 1;) {
		uint32_t t = a[0];

		a[0] = a[e];
		a[e] = t;
		sift(a, 0, e);
	}
}

static uint64_t one_trip(struct virtio_dev *d, struct virtq *q, bool ind)
{
	struct vbuf b = {(uint64_t)(uintptr_t)bufs[0], 1, true};
	uint64_t t0 = chase_rdtsc(), t1, irqs = d->irqs;
	uint32_t id, len;

	if (virtq_add(q, &b, 1, ind) < 0)
		fail("virtio-rt: the queue is full with one request");
	virtq_kick(q);
	if (!virtq_wait(q, WAIT_CYCLES))
		fail("virtio-rt: no used buffer within the time limit");
	/* With irq=1 a round trip ends with the interrupt, not with a glimpse of the used
	 * ring before the interrupt came (a device may update the ring first). */
	while (d->use_irq && d->irqs == irqs) {
		if (chase_rdtsc() - t0 > WAIT_CYCLES)
			fail("virtio-rt: the buffer was used but no interrupt came");
		__asm__ volatile("cli" : : : "memory");
		if (d->irqs == irqs)
			__asm__ volatile("sti; hlt" : : : "memory");
		__asm__ volatile("sti" : : : "memory");
	}
	if (!virtq_pop(q, &id, &len))
		fail("virtio-rt: the used buffer went away");
	if (!d->use_irq)
		virtio_ack(d);
	t1 = chase_rdtsc();
	return t1 - t0;
}

void do_virtio_rt(void)
{
	struct virtio_opts o;
	struct virtio_dev *d = entropy_start(&o);
	struct virtq *q = d->vq[0];
	uint64_t n = arg_u64("n", 10000), warm, irqs0, notifies0, sum = 0;
	bool ind = o.indirect == 1;

	if (!n || n > RT_MAX)
		fail("virtio-rt: n must be 1..100000");
	warm = n / 10 < 100 ? n / 10 : 100;
	for (uint64_t i = 0; i < warm; i++)
		one_trip(d, q, ind);
	irqs0 = d->irqs;
	notifies0 = q->notifies;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t c = one_trip(d, q, ind);

		samples[i] = c > 0xffffffffu ? 0xffffffffu : (uint32_t)c;
		sum += c;
	}
	heapsort_u32(samples, n);
	puts_("virtio-rt n=");
	putu(n);
	puts_(" cycles_median=");
	putu(samples[n / 2]);
	puts_(" cycles_p10=");
	putu(samples[n / 10]);
	puts_(" cycles_p90=");
	putu(samples[n * 9 / 10]);
	puts_(" cycles_min=");
	putu(samples[0]);
	puts_(" cycles_mean=");
	putu(sum / n);
	puts_(" notifies=");
	putu(q->notifies - notifies0);
	puts_(" irqs=");
	putu(d->irqs - irqs0);
	put_flags(d);
	puts_("\n");
	if (d->use_irq && d->irqs == irqs0)
		fail("virtio-rt: irq=1 but no interrupt came");
	pass(0);
}

/* ---- test=virtio-bad ---- */

/* Publish descriptor @head as it stands in the table, and notify whatever EVENT_IDX says. */
static void post_raw(struct virtq *q, uint16_t head)
{
	q->avail[2 + q->next_avail % q->size] = head;
	__asm__ volatile("" : : : "memory");
	q->next_avail++;
	q->avail[1] = q->next_avail;
	__asm__ volatile("mfence" : : : "memory");
	virtq_notify(q);
}

void do_virtio_bad(void)
{
	static struct virtq_desc table[4] __attribute__((aligned(16)));
	struct virtio_opts o;
	struct virtio_dev *d;
	struct virtq *q;
	char kind[16] = "addr";
	uint64_t t0, bad = 0xfff00000000ull, waited;
	uint32_t st = 0;

	arg("bad", kind, sizeof(kind));
	if (!str_eq(kind, "addr") && !str_eq(kind, "loop") && !str_eq(kind, "next") &&
	    !str_eq(kind, "nested") && !str_eq(kind, "indlen") && !str_eq(kind, "ring"))
		fail("virtio-bad: bad= is one of addr, loop, next, nested, indlen, ring");
	d = entropy_start(&o);
	q = d->vq[0];
	if ((str_eq(kind, "nested") || str_eq(kind, "indlen")) &&
	    !virtio_has(d, VIRTIO_F_INDIRECT_DESC))
		fail("virtio-bad: this kind needs VIRTIO_RING_F_INDIRECT_DESC");
	if (q->size < 2)
		fail("virtio-bad: the queue needs 2 entries");
	if (str_eq(kind, "addr")) {
		q->desc[0] = (struct virtq_desc){bad, 64, VIRTQ_DESC_F_WRITE, 0};
	} else if (str_eq(kind, "loop")) {
		q->desc[0] = (struct virtq_desc){(uint64_t)(uintptr_t)bufs[0], 8,
						 VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1};
		q->desc[1] = (struct virtq_desc){(uint64_t)(uintptr_t)bufs[1], 8,
						 VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0};
	} else if (str_eq(kind, "next")) {
		q->desc[0] = (struct virtq_desc){(uint64_t)(uintptr_t)bufs[0], 8,
						 VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, q->size};
	} else if (str_eq(kind, "nested")) {
		table[0] = (struct virtq_desc){(uint64_t)(uintptr_t)&table[2], 16,
					       VIRTQ_DESC_F_INDIRECT, 0};
		table[2] =
			(struct virtq_desc){(uint64_t)(uintptr_t)bufs[0], 8, VIRTQ_DESC_F_WRITE, 0};
		q->desc[0] = (struct virtq_desc){(uint64_t)(uintptr_t)table, 16,
						 VIRTQ_DESC_F_INDIRECT, 0};
	} else if (str_eq(kind, "indlen")) {
		table[0] =
			(struct virtq_desc){(uint64_t)(uintptr_t)bufs[0], 8, VIRTQ_DESC_F_WRITE, 0};
		q->desc[0] = (struct virtq_desc){(uint64_t)(uintptr_t)table, 15,
						 VIRTQ_DESC_F_INDIRECT, 0};
	}
	if (str_eq(kind, "ring")) {
		/* Move the live queue's descriptor table out of RAM the way a driver may not:
		 * reset the queue (QueueReady 0), point QueueDesc at @bad, make it ready again.
		 * A device may refuse the address at QueueReady or at the next notification. */
		vio_write(d, VIO_QUEUE_SEL, 0);
		vio_write(d, VIO_QUEUE_READY, 0);
		vio_write(d, VIO_QUEUE_DESC_LO, (uint32_t)bad);
		vio_write(d, VIO_QUEUE_DESC_HI, (uint32_t)(bad >> 32));
		vio_write(d, VIO_QUEUE_READY, 1);
	}
	puts_("virtio-bad: posting a broken buffer (bad=");
	puts_(kind);
	puts_(")\n");
	post_raw(q, 0);
	t0 = chase_rdtsc();
	while (chase_rdtsc() - t0 < 2000000000ull) { /* ~1 s */
		st = vio_read(d, VIO_STATUS);
		if (st & VIRTIO_S_NEEDS_RESET)
			break;
		__asm__ volatile("pause");
	}
	waited = chase_rdtsc() - t0;
	puts_("virtio needs_reset=");
	putu((st & VIRTIO_S_NEEDS_RESET) != 0);
	puts_(" bad=");
	puts_(kind);
	puts_(" status=");
	putx(st);
	puts_(" isr=");
	putx(vio_read(d, VIO_INT_STATUS));
	puts_(" used_idx=");
	putu(q->used[1]);
	puts_(" cycles=");
	putu(waited);
	puts_("\n");
	do_idle();
}
