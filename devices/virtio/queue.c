#include "devices/virtio/queue.h"

#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*
 * Guest memory is shared with running vCPUs: ring indices are read and
 * written with atomics, and everything else read once into host variables.
 */
static uint16_t ld16(volatile const uint8_t *p)
{
	return __atomic_load_n((const volatile uint16_t *)p, __ATOMIC_RELAXED);
}

static void st16(volatile uint8_t *p, uint16_t v)
{
	__atomic_store_n((volatile uint16_t *)p, v, __ATOMIC_RELAXED);
}

static void st32(volatile uint8_t *p, uint32_t v)
{
	__atomic_store_n((volatile uint32_t *)p, v, __ATOMIC_RELAXED);
}

/* Ring layouts (virtio 1.x, split): offsets into the driver and device areas. */
#define AVAIL_IDX         2
#define AVAIL_RING(i)     (4 + 2 * (size_t)(i))
#define USED_IDX          2
#define USED_RING(i)      (4 + 8 * (size_t)(i))
#define DESC_SIZE         16

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static void read_desc(const volatile uint8_t *table, unsigned i, struct desc *d)
{
	/* One copy: a guest rewriting it meanwhile gives a torn value, checked like any other. */
	memcpy(d, (const void *)(table + (size_t)i * DESC_SIZE), sizeof(*d));
}

void vq_reset(struct vq *q)
{
	memset(q, 0, sizeof(*q));
}

static int fail(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, VQ_WHY_LEN, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A ring must lie in one slot: it is used through one host pointer. */
static volatile uint8_t *ring(const struct guest_mem *gm, uint64_t gpa, uint64_t len,
			      uint64_t align, const char *name, char *why)
{
	void *p;

	if (gpa & (align - 1)) {
		fail(why, "%s at 0x%llx is not %llu-byte aligned", name, (unsigned long long)gpa,
		     (unsigned long long)align);
		return NULL;
	}
	p = mem_gpa_to_hva(gm, gpa, len);
	if (!p)
		fail(why, "%s [0x%llx, +%llu) is not in guest RAM", name, (unsigned long long)gpa,
		     (unsigned long long)len);
	return p;
}

int vq_activate(struct vq *q, const struct guest_mem *gm, uint16_t max, char *why)
{
	uint16_t n = q->size;

	if (!n || n > max || (n & (n - 1)))
		return fail(why, "queue size %u is not a power of 2 from 1 to %u", n, max);
	q->desc = ring(gm, q->desc_gpa, (uint64_t)n * DESC_SIZE, 16, "descriptor table", why);
	if (!q->desc)
		return -EINVAL;
	/* With or without EVENT_IDX the trailing event field is counted: the driver allots it. */
	q->avail = ring(gm, q->avail_gpa, AVAIL_RING(n) + 2, 2, "available ring", why);
	if (!q->avail)
		return -EINVAL;
	q->used = ring(gm, q->used_gpa, USED_RING(n) + 2, 4, "used ring", why);
	if (!q->used)
		return -EINVAL;
	q->mem = gm;
	q->last_avail = 0;
	q->used_idx = 0;
	q->signalled_valid = false;
	return 0;
}

bool vq_has_avail(const struct vq *q)
{
	return q->avail && __atomic_load_n((const volatile uint16_t *)(q->avail + AVAIL_IDX),
					   __ATOMIC_ACQUIRE) != q->last_avail;
}

/* Add [gpa, gpa+len) to the chain, split where it crosses from one slot to the next. */
static int add_buf(struct vq *q, struct vq_chain *c, uint64_t gpa, uint32_t len, bool write,
		   char *why)
{
	uint64_t left = len;

	if (gpa + len < gpa)
		return fail(why, "buffer at 0x%llx of %u bytes wraps around", (unsigned long long)gpa,
			    len);
	while (left) {
		uint8_t *hva;
		uint64_t n = mem_gpa_piece(q->mem, gpa, left, &hva);

		if (!n)
			return fail(why, "buffer at 0x%llx of %u bytes is not in guest RAM",
				    (unsigned long long)gpa, len);
		if (c->n == VQ_MAX_BUFS)
			return fail(why, "chain of more than %d buffers", VQ_MAX_BUFS);
		c->buf[c->n++] = (struct vq_buf){.hva = hva, .len = (uint32_t)n, .write = write};
		gpa += n;
		left -= n;
	}
	if (write)
		c->out_len += len;
	else
		c->in_len += len;
	return 0;
}

static int walk(struct vq *q, struct vq_chain *c, uint16_t head, char *why)
{
	const volatile uint8_t *table = q->desc;
	unsigned tsize = q->size, budget = q->size, idx = head;
	bool in_table = false, seen_write = false;
	uint64_t total = 0;

	c->head = head;
	c->n = 0;
	c->in_len = c->out_len = 0;
	for (;;) {
		struct desc d;
		int r;

		if (budget-- == 0)
			return fail(why, "chain from descriptor %u is longer than its table (%u): a loop",
				    head, tsize);
		read_desc(table, idx, &d);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!q->indirect)
				return fail(why, "descriptor %u is indirect without "
						 "VIRTIO_RING_F_INDIRECT_DESC", idx);
			if (in_table)
				return fail(why, "indirect descriptor inside an indirect table");
			if (d.flags & VRING_DESC_F_NEXT)
				return fail(why, "descriptor %u is INDIRECT and NEXT at once", idx);
			if (c->n)
				return fail(why, "indirect descriptor %u after direct ones", idx);
			if (!d.len || d.len % DESC_SIZE || d.len / DESC_SIZE > VQ_MAX_INDIRECT)
				return fail(why, "indirect table of %u bytes (a multiple of 16, at most "
						 "%d entries)", d.len, VQ_MAX_INDIRECT);
			table = mem_gpa_to_hva(q->mem, d.addr, d.len);
			if (!table)
				return fail(why, "indirect table at 0x%llx is not in guest RAM",
					    (unsigned long long)d.addr);
			tsize = budget = d.len / DESC_SIZE;
			idx = 0;
			in_table = true;
			continue;
		}
		if (d.flags & VRING_DESC_F_WRITE)
			seen_write = true;
		else if (seen_write)
			return fail(why, "device-readable descriptor %u after a device-writable one",
				    idx);
		total += d.len;
		if (total > UINT32_MAX)
			return fail(why, "chain of more than 4 GiB");
		r = d.len ? add_buf(q, c, d.addr, d.len, d.flags & VRING_DESC_F_WRITE, why) : 0;
		if (r)
			return r;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		idx = d.next;
		if (idx >= tsize)
			return fail(why, "next descriptor %u is outside its table of %u", idx, tsize);
	}
}

int vq_pop(struct vq *q, struct vq_chain *c, char *why)
{
	uint16_t avail_idx, head;

	if (!q->ready || !q->avail)
		return 0;
	avail_idx = __atomic_load_n((const volatile uint16_t *)(q->avail + AVAIL_IDX),
				    __ATOMIC_ACQUIRE);
	if (avail_idx == q->last_avail && q->event_idx) {
		/* Empty: ask for a notification at the next entry, then look once more (the
		 * driver may have added one before it could see the request). */
		st16(q->used + USED_RING(q->size), q->last_avail);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = __atomic_load_n((const volatile uint16_t *)(q->avail + AVAIL_IDX),
					    __ATOMIC_ACQUIRE);
	}
	if (avail_idx == q->last_avail)
		return 0;
	if ((uint16_t)(avail_idx - q->last_avail) > q->size)
		return fail(why, "available index moved from %u to %u, more than the queue size %u",
			    q->last_avail, avail_idx, q->size);
	head = ld16(q->avail + AVAIL_RING(q->last_avail % q->size));
	if (head >= q->size)
		return fail(why, "available entry %u names descriptor %u of %u", q->last_avail, head,
			    q->size);
	q->last_avail++;
	if (q->event_idx)
		st16(q->used + USED_RING(q->size), q->last_avail);
	return walk(q, c, head, why) ? -EINVAL : 1;
}

void vq_unpop(struct vq *q)
{
	q->last_avail--;
}

void vq_push(struct vq *q, uint16_t head, uint32_t len)
{
	volatile uint8_t *e = q->used + USED_RING(q->used_idx % q->size);

	st32(e, head);
	st32(e + 4, len);
	q->used_idx++;
	/* The entry before the index that publishes it. */
	__atomic_store_n((volatile uint16_t *)(q->used + USED_IDX), q->used_idx, __ATOMIC_RELEASE);
}

bool vq_should_notify(struct vq *q)
{
	uint16_t old = q->signalled, now = q->used_idx;
	bool notify;

	/* The used index is visible before the driver's event or flags are read. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (q->event_idx) {
		uint16_t ev = ld16(q->avail + AVAIL_RING(q->size));

		notify = !q->signalled_valid || (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
	} else {
		notify = !(ld16(q->avail) & VRING_AVAIL_F_NO_INTERRUPT);
	}
	q->signalled = now;
	q->signalled_valid = true;
	return notify;
}

uint32_t vq_chain_write(const struct vq_chain *c, const void *src, uint32_t len)
{
	const uint8_t *s = src;
	uint32_t done = 0;

	for (unsigned i = 0; i < c->n && done < len; i++) {
		uint32_t n;

		if (!c->buf[i].write)
			continue;
		n = MIN(c->buf[i].len, len - done);
		memcpy(c->buf[i].hva, s + done, n);
		done += n;
	}
	return done;
}
