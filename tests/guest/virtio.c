/*
 * The test guest's virtio-mmio driver core, from the virtio 1.2 specification
 * (4.2 virtio over MMIO, 2.7 split virtqueues, 3.1 device initialization).
 *
 * Devices: every virtio_mmio.device=<size>@<base>:<irq>[:<id>] on the command
 * line (size and base as the kernel parses them: decimal or 0x hex, with an
 * optional K/M/G suffix). Windows holding no device (DeviceID 0; QEMU microvm
 * has many) are skipped; legacy version 1 devices are refused.
 *
 * Interrupts (irq=1): the device's GSI is routed through the IOAPIC that the
 * ACPI MADT (or the MP table, or 0xfec00000) names for it, edge-triggered
 * active high unless irq_trigger=level or a MADT override says otherwise; the
 * handler reads InterruptStatus, acknowledges it and sends the LAPIC its EOI.
 * A periodic LAPIC timer wakes the waiting CPU now and then so that a lost
 * interrupt is reported instead of hanging.
 *
 * Ordering: x86 keeps stores in order and loads in order, so publishing a
 * buffer needs only compiler barriers; the two store-then-load decisions
 * (whether to notify, whether an interrupt will come) need mfence.
 */
#include "virtio.h"

#include "chase.h"
#include "guest.h"

#define VEC_VIRTIO   0x40 /* + device index */
#define VEC_WAKE     0x3f
#define VEC_SPURIOUS 0xff
#define PAGE         4096u

#define barrier() __asm__ volatile("" : : : "memory")
#define mb()      __asm__ volatile("mfence" : : : "memory")

extern void irq_virtio(void), irq_wake(void), irq_spurious(void);
void irq_virtio_c(void);
void irq_wake_c(void);
void irq_spurious_c(void);

static struct virtio_dev devs[VIRTIO_MAX_DEVS];
static unsigned ndevs;
static struct virtq vqs[VIRTIO_MAX_QUEUES];
static unsigned nvqs;
/* Per queue: the descriptor table, the available ring, the used ring, a page each. */
static uint8_t vq_pages[VIRTIO_MAX_QUEUES][3][PAGE] __attribute__((aligned(PAGE)));
static struct virtq_desc vq_ind[VIRTIO_MAX_QUEUES][VIRTQ_MAX_SIZE][VIRTQ_IND_MAX]
	__attribute__((aligned(16)));
static bool irq_ready;
volatile uint64_t wakeups;

uint32_t vio_read(const struct virtio_dev *d, unsigned reg)
{
	return *(volatile uint32_t *)(uintptr_t)(d->base + reg);
}

void vio_write(const struct virtio_dev *d, unsigned reg, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)(d->base + reg) = v;
}

uint8_t vio_cfg8(const struct virtio_dev *d, unsigned off)
{
	return *(volatile uint8_t *)(uintptr_t)(d->base + VIO_CONFIG + off);
}

uint16_t vio_cfg16(const struct virtio_dev *d, unsigned off)
{
	return *(volatile uint16_t *)(uintptr_t)(d->base + VIO_CONFIG + off);
}

uint32_t vio_cfg32(const struct virtio_dev *d, unsigned off)
{
	return *(volatile uint32_t *)(uintptr_t)(d->base + VIO_CONFIG + off);
}

void vio_cfg_write32(const struct virtio_dev *d, unsigned off, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)(d->base + VIO_CONFIG + off) = v;
}

uint64_t vio_cfg64(const struct virtio_dev *d, unsigned off)
{
	uint32_t gen, lo, hi;

	/* The two halves may change in between: retry until the generation holds (4.2.2.2). */
	do {
		gen = vio_read(d, VIO_CONFIG_GEN);
		lo = vio_cfg32(d, off);
		hi = vio_cfg32(d, off + 4);
	} while (vio_read(d, VIO_CONFIG_GEN) != gen);
	return (uint64_t)hi << 32 | lo;
}

bool virtio_has(const struct virtio_dev *d, unsigned bit)
{
	return (d->features >> bit) & 1;
}

static void put_dev(const struct virtio_dev *d)
{
	puts_("virtio-mmio ");
	putx(d->base);
	puts_(": ");
}

/* ---- the command line ---- */

void virtio_opts_from_cmdline(struct virtio_opts *o)
{
	char v[8];

	o->event_idx = arg("event_idx", v, sizeof(v)) ? (int)arg_u64("event_idx", 1) != 0 : -1;
	o->indirect = arg("indirect", v, sizeof(v)) ? (int)arg_u64("indirect", 1) != 0 : -1;
	o->irq = arg_u64("irq", 0) != 0;
	o->qsize = (unsigned)arg_u64("qsize", VIRTQ_MAX_SIZE);
	o->edge = !(arg("irq_trigger", v, sizeof(v)) && str_eq(v, "level"));
	o->dev_features = 0;
	o->feature_queues = 0;
	if (o->qsize < 1 || o->qsize > VIRTQ_MAX_SIZE)
		fail("virtio: qsize must be 1..256");
}

/* A number as the kernel's memparse() reads one: 0x hex or decimal, then K/M/G. */
static bool parse_num(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t n = 0;
	unsigned base = 10, digits = 0;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (;; p++, digits++) {
		unsigned dv;

		if (*p >= '0' && *p <= '9')
			dv = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			dv = (unsigned)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			dv = (unsigned)(*p - 'A' + 10);
		else
			break;
		n = n * base + dv;
	}
	if (!digits)
		return false;
	switch (*p) {
	case 'K':
	case 'k':
		n <<= 10;
		p++;
		break;
	case 'M':
	case 'm':
		n <<= 20;
		p++;
		break;
	case 'G':
	case 'g':
		n <<= 30;
		p++;
		break;
	default:
		break;
	}
	*pp = p;
	*out = n;
	return true;
}

/* Map a register window uncached (PCD|PWT on its 2M page of the 0-4 GiB identity map). */
static void map_uncached(uint64_t base)
{
	boot_pd[base >> 21] |= 0x18;
	__asm__ volatile("invlpg (%0)" : : "r"(base) : "memory");
}

static bool overlaps_ram(uint64_t base, uint64_t size)
{
	for (unsigned i = 0; i < nram; i++)
		if (base < ram[i].end && ram[i].start < base + size)
			return true;
	return false;
}

/* ---- probing ---- */

static void probe_one(uint64_t size, uint64_t base, unsigned irq, unsigned *empty)
{
	struct virtio_dev *d = &devs[ndevs];
	uint32_t magic, version;

	*d = (struct virtio_dev){.base = base, .size = size, .irq = irq};
	if (size < 0x100 || base + size > (4ul << 30) || overlaps_ram(base, size)) {
		put_dev(d);
		puts_("window not below 4 GiB, not in RAM and at least 0x100 bytes; skipped\n");
		return;
	}
	map_uncached(base);
	if (((base + size - 1) >> 21) != (base >> 21))
		map_uncached(base + size - 1);
	magic = vio_read(d, VIO_MAGIC);
	if (magic != VIO_MAGIC_VALUE) {
		put_dev(d);
		puts_("bad magic ");
		putx(magic);
		puts_(" (want \"virt\"); skipped\n");
		return;
	}
	version = vio_read(d, VIO_VERSION);
	d->version = version;
	d->device_id = vio_read(d, VIO_DEVICE_ID);
	if (!d->device_id) {
		++*empty; /* a transport with nothing behind it */
		return;
	}
	d->vendor_id = vio_read(d, VIO_VENDOR_ID);
	put_dev(d);
	puts_("device ");
	putu(d->device_id);
	puts_(" vendor ");
	putx(d->vendor_id);
	puts_(" irq ");
	putu(irq);
	puts_(" version ");
	putu(version);
	if (version == 1) {
		puts_(": legacy virtio-mmio (version 1) refused, the test guest drives version 2 "
		      "(virtio 1.x) only\n");
		return;
	}
	if (version != 2) {
		puts_(": unknown transport version, skipped\n");
		return;
	}
	puts_("\n");
	ndevs++;
}

unsigned virtio_probe(void)
{
	static const char key[] = "virtio_mmio.device=";
	unsigned empty = 0, entries = 0;

	ndevs = 0;
	for (const char *p = cmdline; *p && ndevs < VIRTIO_MAX_DEVS;) {
		uint64_t size, base, irq;
		const char *q;

		while (*p == ' ')
			p++;
		if (!mem_eq(p, key, sizeof(key) - 1)) {
			while (*p && *p != ' ')
				p++;
			continue;
		}
		q = p + sizeof(key) - 1;
		entries++;
		if (!parse_num(&q, &size) || *q++ != '@' || !parse_num(&q, &base) || *q++ != ':' ||
		    !parse_num(&q, &irq) || (*q && *q != ' ' && *q != ':')) {
			puts_("virtio: cannot parse ");
			for (; *p && *p != ' '; p++)
				putc_(*p);
			puts_("\n");
			continue;
		}
		probe_one(size, base, (unsigned)irq, &empty);
		while (*p && *p != ' ')
			p++;
	}
	if (!entries) {
		puts_("virtio: no virtio_mmio.device= on the command line: ");
		puts_(cmdline);
		puts_("\n");
	}
	puts_("virtio: ");
	putu(entries);
	puts_(" virtio_mmio.device= entries, ");
	putu(ndevs);
	puts_(" version 2 devices, ");
	putu(empty);
	puts_(" empty\n");
	return ndevs;
}

struct virtio_dev *virtio_find(uint32_t device_id)
{
	for (unsigned i = 0; i < ndevs; i++)
		if (devs[i].device_id == device_id)
			return &devs[i];
	return NULL;
}

struct virtio_dev *virtio_find_nth(uint32_t device_id, unsigned n)
{
	for (unsigned i = 0; i < ndevs; i++)
		if (devs[i].device_id == device_id && n-- == 0)
			return &devs[i];
	return NULL;
}

unsigned virtio_count(uint32_t device_id)
{
	unsigned n = 0;

	for (unsigned i = 0; i < ndevs; i++)
		n += devs[i].device_id == device_id;
	return n;
}

/* ---- interrupts: IOAPIC route, LAPIC, IDT ---- */

struct ioapic_route {
	uint64_t ioapic;
	unsigned pin;
	bool level, low;
};

static uint32_t ioapic_read(uint64_t base, unsigned reg)
{
	*(volatile uint32_t *)(uintptr_t)base = reg;
	return *(volatile uint32_t *)(uintptr_t)(base + 0x10);
}

static void ioapic_write(uint64_t base, unsigned reg, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)base = reg;
	*(volatile uint32_t *)(uintptr_t)(base + 0x10) = v;
}

/* Which IOAPIC input a GSI is, from the MADT (with its ISA overrides) or the MP table. */
static void find_route(unsigned irq, bool edge, struct ioapic_route *r)
{
	const uint8_t *madt = acpi_table("APIC"), *mp;
	unsigned gsi = irq;

	r->ioapic = 0xfec00000;
	r->pin = irq;
	r->level = !edge;
	r->low = false;
	if (madt) {
		const uint8_t *e = madt + *(const uint32_t *)(madt + 4);
		bool found = false;

		for (const uint8_t *q = madt + 44; q + 2 <= e && q[1]; q += q[1]) {
			uint16_t flags;

			if (q[0] != 2 || q[3] != irq || irq >= 16)
				continue;
			memcpy(&gsi, q + 4, 4); /* ISA interrupt source override */
			memcpy(&flags, q + 8, 2);
			if ((flags & 3) == 3)
				r->low = true;
			if (((flags >> 2) & 3) == 3)
				r->level = true;
			else if (((flags >> 2) & 3) == 1)
				r->level = false;
		}
		for (const uint8_t *q = madt + 44; q + 2 <= e && q[1] && !found; q += q[1]) {
			uint32_t addr, base, pins;

			if (q[0] != 1)
				continue;
			memcpy(&addr, q + 4, 4);
			memcpy(&base, q + 8, 4);
			map_uncached(addr);
			pins = ((ioapic_read(addr, 1) >> 16) & 0xff) + 1;
			if (gsi >= base && gsi < base + pins) {
				r->ioapic = addr;
				r->pin = gsi - base;
				found = true;
			}
		}
		if (found)
			return;
	}
	mp = mp_table();
	if (mp) {
		const uint8_t *e = mp + *(const uint16_t *)(mp + 4);

		for (const uint8_t *q = mp + 44; q < e; q += *q == 0 ? 20 : 8)
			if (q[0] == 2 && (q[3] & 1)) {
				uint32_t addr;

				memcpy(&addr, q + 4, 4);
				r->ioapic = addr; /* the first IOAPIC; GSIs from 0 */
				break;
			}
	}
	map_uncached(r->ioapic);
}

void irq_virtio_c(void)
{
	for (unsigned i = 0; i < ndevs; i++) {
		struct virtio_dev *d = &devs[i];

		if (d->use_irq) {
			uint32_t isr = vio_read(d, VIO_INT_STATUS);

			if (isr) {
				vio_write(d, VIO_INT_ACK, isr);
				d->isr |= isr;
				d->irqs++;
			}
		}
	}
	lapic_write(0xb0, 0); /* EOI (and, for a level-triggered input, the IOAPIC's too) */
}

void irq_wake_c(void)
{
	wakeups++;
	lapic_write(0xb0, 0);
}

void irq_spurious_c(void)
{
}

static void setup_irq(struct virtio_dev *d, const struct virtio_opts *o)
{
	struct ioapic_route r;
	uint32_t apic_id;

	if (!irq_ready) {
		/* No 8259 interrupts: mask both (writes to absent ports are ignored). */
		__asm__ volatile("outb %0, $0x21; outb %0, $0xa1" : : "a"((uint8_t)0xff));
		gate(VEC_SPURIOUS, irq_spurious, 0);
		gate(VEC_WAKE, irq_wake, 0);
		lapic_write(0xf0, 0x100 | VEC_SPURIOUS); /* software-enable the LAPIC */
		lapic_write(0x80, 0);                    /* task priority: take everything */
		/* A periodic wake-up (~10 ms at KVM's and QEMU's 1 GHz APIC clock, /16). */
		lapic_write(0x3e0, 0x3);
		lapic_write(0x320, 0x20000 | VEC_WAKE);
		lapic_write(0x380, 625000);
		irq_ready = true;
	}
	d->vector = (uint8_t)(VEC_VIRTIO + (unsigned)(d - devs));
	gate(d->vector, irq_virtio, 0);
	find_route(d->irq, o->edge, &r);
	apic_id = lapic_read(0x20) >> 24;
	ioapic_write(r.ioapic, 0x11 + 2 * r.pin, apic_id << 24);
	ioapic_write(r.ioapic, 0x10 + 2 * r.pin,
		     d->vector | (r.low ? 1u << 13 : 0) | (r.level ? 1u << 15 : 0));
	d->use_irq = true;
	put_dev(d);
	puts_("irq ");
	putu(d->irq);
	puts_(" -> IOAPIC ");
	putx(r.ioapic);
	puts_(" pin ");
	putu(r.pin);
	puts_(r.level ? " level" : " edge");
	puts_(r.low ? " low" : " high");
	puts_(" vector ");
	putu(d->vector);
	puts_("\n");
}

/* ---- initialization (3.1.1) ---- */

static bool dev_fail(struct virtio_dev *d, const char *why)
{
	put_dev(d);
	puts_("init failed: ");
	puts_(why);
	puts_("\n");
	vio_write(d, VIO_STATUS, vio_read(d, VIO_STATUS) | VIRTIO_S_FAILED);
	return false;
}

static bool setup_queue(struct virtio_dev *d, unsigned index, const struct virtio_opts *o)
{
	struct virtq *q;
	uint32_t max;
	uint16_t size = 1;
	uint64_t da, aa, ua;

	if (nvqs == VIRTIO_MAX_QUEUES)
		return dev_fail(d, "the test guest has no memory for more queues");
	vio_write(d, VIO_QUEUE_SEL, index);
	if (vio_read(d, VIO_QUEUE_READY))
		return dev_fail(d, "QueueReady reads 1 before the queue was set up");
	max = vio_read(d, VIO_QUEUE_NUM_MAX);
	if (!max)
		return dev_fail(d, "QueueNumMax is 0: the queue is not available");
	while ((unsigned)size * 2 <= max && (unsigned)size * 2 <= o->qsize)
		size = (uint16_t)(size * 2); /* split queues have power-of-2 sizes */
	q = &vqs[nvqs];
	memset(q, 0, sizeof(*q));
	memset(vq_pages[nvqs], 0, sizeof(vq_pages[nvqs]));
	q->dev = d;
	q->index = index;
	q->size = size;
	q->desc = (struct virtq_desc *)vq_pages[nvqs][0];
	q->avail = (volatile uint16_t *)vq_pages[nvqs][1];
	q->used = (volatile uint16_t *)vq_pages[nvqs][2];
	q->used_ring = (volatile struct virtq_used_elem *)(vq_pages[nvqs][2] + 4);
	q->ind = vq_ind[nvqs];
	q->nfree = size;
	for (uint16_t i = 0; i < size; i++)
		q->desc[i].next = (uint16_t)(i + 1);
	/* Interrupts only when we wait for them. */
	if (!o->irq) {
		if (virtio_has(d, VIRTIO_F_EVENT_IDX))
			q->avail[2 + size] = 0x8000; /* used_event far ahead */
		else
			q->avail[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
	}
	da = (uint64_t)(uintptr_t)q->desc;
	aa = (uint64_t)(uintptr_t)q->avail;
	ua = (uint64_t)(uintptr_t)q->used;
	vio_write(d, VIO_QUEUE_NUM, size);
	vio_write(d, VIO_QUEUE_DESC_LO, (uint32_t)da);
	vio_write(d, VIO_QUEUE_DESC_HI, (uint32_t)(da >> 32));
	vio_write(d, VIO_QUEUE_DRV_LO, (uint32_t)aa);
	vio_write(d, VIO_QUEUE_DRV_HI, (uint32_t)(aa >> 32));
	vio_write(d, VIO_QUEUE_DEV_LO, (uint32_t)ua);
	vio_write(d, VIO_QUEUE_DEV_HI, (uint32_t)(ua >> 32));
	vio_write(d, VIO_QUEUE_READY, 1);
	if (vio_read(d, VIO_QUEUE_READY) != 1)
		return dev_fail(d, "QueueReady did not read back 1");
	d->vq[d->nvq++] = q;
	nvqs++;
	put_dev(d);
	puts_("queue ");
	putu(index);
	puts_(" size ");
	putu(size);
	puts_(" (max ");
	putu(max);
	puts_(")\n");
	return true;
}

bool virtio_start(struct virtio_dev *d, unsigned nq, const struct virtio_opts *o)
{
	uint64_t want = 1ull << VIRTIO_F_VERSION_1, t0;
	uint32_t st;

	/* Reset, and wait for the device to say it is done (4.2.3.1.1). */
	vio_write(d, VIO_STATUS, 0);
	t0 = chase_rdtsc();
	while (vio_read(d, VIO_STATUS) != 0)
		if (chase_rdtsc() - t0 > 5000000000ull)
			return dev_fail(d, "Status did not read 0 after the reset");
	vio_write(d, VIO_STATUS, VIRTIO_S_ACKNOWLEDGE);
	vio_write(d, VIO_STATUS, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);
	vio_write(d, VIO_DEV_FEAT_SEL, 0);
	d->offered = vio_read(d, VIO_DEV_FEATURES);
	vio_write(d, VIO_DEV_FEAT_SEL, 1);
	d->offered |= (uint64_t)vio_read(d, VIO_DEV_FEATURES) << 32;
	if (!((d->offered >> VIRTIO_F_VERSION_1) & 1))
		return dev_fail(d, "the device does not offer VIRTIO_F_VERSION_1");
	if (o->event_idx != 0)
		want |= 1ull << VIRTIO_F_EVENT_IDX;
	if (o->indirect != 0)
		want |= 1ull << VIRTIO_F_INDIRECT_DESC;
	want |= o->dev_features & 0xffffffull; /* bits 0-23: the device type's own */
	d->features = want & d->offered;
	if (o->event_idx == 1 && !virtio_has(d, VIRTIO_F_EVENT_IDX))
		return dev_fail(
			d, "event_idx=1 but the device does not offer VIRTIO_RING_F_EVENT_IDX");
	if (o->indirect == 1 && !virtio_has(d, VIRTIO_F_INDIRECT_DESC))
		return dev_fail(d, "indirect=1 but the device does not offer "
				   "VIRTIO_RING_F_INDIRECT_DESC");
	vio_write(d, VIO_DRV_FEAT_SEL, 0);
	vio_write(d, VIO_DRV_FEATURES, (uint32_t)d->features);
	vio_write(d, VIO_DRV_FEAT_SEL, 1);
	vio_write(d, VIO_DRV_FEATURES, (uint32_t)(d->features >> 32));
	vio_write(d, VIO_STATUS, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK);
	st = vio_read(d, VIO_STATUS);
	if (!(st & VIRTIO_S_FEATURES_OK))
		return dev_fail(d, "FEATURES_OK did not stick: the device refused the features");
	put_dev(d);
	puts_("features offered ");
	putx(d->offered);
	puts_(" accepted ");
	putx(d->features);
	puts_(" event_idx=");
	putu(virtio_has(d, VIRTIO_F_EVENT_IDX));
	puts_(" indirect=");
	putu(virtio_has(d, VIRTIO_F_INDIRECT_DESC));
	puts_("\n");
	for (unsigned b = 0; b < 24; b++) /* no popcount: libgcc is not linked */
		nq += (unsigned)((d->features & o->feature_queues) >> b & 1);
	for (unsigned i = 0; i < nq; i++)
		if (!setup_queue(d, i, o))
			return false;
	if (o->irq)
		setup_irq(d, o);
	vio_write(d, VIO_STATUS, st | VIRTIO_S_DRIVER_OK);
	st = vio_read(d, VIO_STATUS);
	if (st & VIRTIO_S_NEEDS_RESET)
		return dev_fail(d, "DEVICE_NEEDS_RESET right after DRIVER_OK");
	if (!(st & VIRTIO_S_DRIVER_OK))
		return dev_fail(d, "DRIVER_OK did not stick");
	return true;
}

uint32_t virtio_ack(struct virtio_dev *d)
{
	uint32_t isr = vio_read(d, VIO_INT_STATUS);

	if (isr) {
		vio_write(d, VIO_INT_ACK, isr);
		d->isr |= isr;
	}
	return isr;
}

/* ---- the split virtqueue (2.7) ---- */

static inline volatile uint16_t *used_event(struct virtq *q)
{
	return &q->avail[2 + q->size];
}

static inline volatile uint16_t *avail_event(struct virtq *q)
{
	return (volatile uint16_t *)&q->used_ring[q->size];
}

int virtq_add(struct virtq *q, const struct vbuf *b, unsigned n, bool indirect)
{
	uint16_t head = q->free_head, i, need = indirect ? 1 : (uint16_t)n;

	if (!n || q->nfree < need || (indirect && n > VIRTQ_IND_MAX))
		return -1;
	if (indirect) {
		struct virtq_desc *t = q->ind[head];

		for (unsigned k = 0; k < n; k++)
			t[k] = (struct virtq_desc){
				.addr = b[k].addr,
				.len = b[k].len,
				.flags = (uint16_t)((b[k].write ? VIRTQ_DESC_F_WRITE : 0) |
						    (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
				.next = (uint16_t)(k + 1)};
		q->free_head = q->desc[head].next;
		q->desc[head].addr = (uint64_t)(uintptr_t)t;
		q->desc[head].len = (uint32_t)(n * sizeof(*t));
		q->desc[head].flags = VIRTQ_DESC_F_INDIRECT;
	} else {
		i = head;
		for (unsigned k = 0; k < n; k++) {
			q->desc[i].addr = b[k].addr;
			q->desc[i].len = b[k].len;
			q->desc[i].flags = (uint16_t)((b[k].write ? VIRTQ_DESC_F_WRITE : 0) |
						      (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
			/* desc[i].next already links the free list: the chain follows it */
			if (k + 1 < n)
				i = q->desc[i].next;
		}
		q->free_head = q->desc[i].next;
	}
	q->nfree = (uint16_t)(q->nfree - need);
	q->chain[head] = need;
	q->avail[2 + q->next_avail % q->size] = head;
	barrier(); /* the ring entry (and the descriptors) before the index */
	q->next_avail++;
	q->avail[1] = q->next_avail;
	return head;
}

void virtq_notify(struct virtq *q)
{
	vio_write(q->dev, VIO_QUEUE_NOTIFY, q->index);
	q->notifies++;
}

bool virtq_kick(struct virtq *q)
{
	uint16_t old = q->kicked, now = q->next_avail;
	bool need;

	q->kicks++;
	q->kicked = now;
	mb(); /* our avail->idx store before reading what the device asked for */
	if (virtio_has(q->dev, VIRTIO_F_EVENT_IDX))
		need = (uint16_t)(now - *avail_event(q) - 1) < (uint16_t)(now - old);
	else
		need = !(q->used[0] & VIRTQ_USED_F_NO_NOTIFY);
	if (need)
		virtq_notify(q);
	return need;
}

bool virtq_has_used(const struct virtq *q)
{
	return q->used[1] != q->last_used;
}

bool virtq_pop(struct virtq *q, uint32_t *id, uint32_t *len)
{
	struct virtq_used_elem e;
	uint16_t i, n;

	if (q->used[1] == q->last_used)
		return false;
	barrier(); /* the index before the element (x86 keeps loads in order) */
	e.id = q->used_ring[q->last_used % q->size].id;
	e.len = q->used_ring[q->last_used % q->size].len;
	if (e.id >= q->size || !q->chain[e.id]) {
		put_dev(q->dev);
		puts_("used element id ");
		putu(e.id);
		puts_(" was not in flight\n");
		fail("virtio: the device returned a buffer the driver did not post");
	}
	q->last_used++;
	/* Interrupt on the next buffer when waiting by interrupt; push it away when polling. */
	if (virtio_has(q->dev, VIRTIO_F_EVENT_IDX))
		*used_event(q) = (uint16_t)(q->last_used + (q->dev->use_irq ? 0 : 0x8000));
	/* The chain's own next links still hold: put it back at the head of the free list. */
	n = q->chain[e.id];
	i = (uint16_t)e.id;
	for (uint16_t k = 1; k < n; k++)
		i = q->desc[i].next;
	q->desc[i].next = q->free_head;
	q->free_head = (uint16_t)e.id;
	q->nfree = (uint16_t)(q->nfree + n);
	q->chain[e.id] = 0;
	*id = e.id;
	*len = e.len;
	return true;
}

bool virtq_wait(struct virtq *q, uint64_t max_cycles)
{
	uint64_t t0 = chase_rdtsc();

	if (!q->dev->use_irq) {
		while (!virtq_has_used(q)) {
			if (chase_rdtsc() - t0 > max_cycles)
				return false;
			__asm__ volatile("pause");
		}
		return true;
	}
	for (;;) {
		__asm__ volatile("cli" : : : "memory");
		mb(); /* used_event (written by virtq_pop) before the index read */
		if (virtq_has_used(q)) {
			__asm__ volatile("sti" : : : "memory");
			return true;
		}
		if (chase_rdtsc() - t0 > max_cycles) {
			__asm__ volatile("sti" : : : "memory");
			return false;
		}
		/* sti's shadow covers hlt: an interrupt arriving now still wakes it. */
		__asm__ volatile("sti; hlt" : : : "memory");
	}
}
