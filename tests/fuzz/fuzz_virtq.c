/*
 * Fuzzing of the virtqueue walker (devices/virtio/queue.c): random queue
 * settings, descriptor tables, indirect tables and rings, in a fake guest
 * memory of two slots. Whatever the guest wrote, the walker must stop in a
 * bounded number of steps, and every buffer it hands a device must lie
 * inside guest RAM and add up to the lengths it reports; under ASan/UBSan
 * any access outside the fake RAM aborts.
 *
 *   fuzz_virtq [iterations] [seed]      (defaults: 20000, 1)
 */
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/queue.h"
#include "fuzz.h"

#define SLOT (64u << 10)

static uint8_t *mem[2];
static struct guest_mem gm;
static struct vq_chain chain;
static uint8_t noise[4096];

static uint64_t addr(void)
{
	/* Mostly inside RAM, near the ends, across the slots' seam, or far outside. */
	switch (next() % 8) {
	case 0:
		return next();
	case 1:
		return 2 * SLOT - (next() % 64);
	case 2:
		return SLOT - (next() % 64);
	default:
		return next() % (2 * SLOT);
	}
}

static void scribble(uint64_t gpa, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t *h;

		if (mem_gpa_piece(&gm, gpa + i, 1, &h))
			*h = (uint8_t)next();
	}
}

/* A plausible descriptor at @gpa: mostly small, in RAM, with a chain or an indirect table. */
static void plausible_desc(uint64_t gpa, uint16_t size)
{
	uint8_t d[16];
	uint64_t a = next() % 8 ? next() % (2 * SLOT) : addr();
	uint32_t l = (uint32_t)(next() % 8 ? next() % 512 : next());
	uint16_t f = (uint16_t)(next() % 8 ? next() % 4 : next() % 8);
	uint16_t n = (uint16_t)(next() % 8 ? next() % size : next() % (size + 2u));

	if (next() % 8 == 0) {
		f = VRING_DESC_F_INDIRECT;
		l = (uint32_t)(16 * (next() % 20));
		a = (next() % (2 * SLOT)) & ~15ull;
	}
	fuzz_desc(d, a, l, f, n);
	for (unsigned i = 0; i < 16; i++) {
		uint8_t *h;

		if (mem_gpa_piece(&gm, gpa + i, 1, &h))
			*h = d[i];
	}
}

static bool in_ram(const uint8_t *p, uint32_t len)
{
	for (unsigned i = 0; i < 2; i++)
		if (p >= mem[i] && p + len <= mem[i] + SLOT)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 0) : 20000;
	unsigned long popped = 0, refused = 0, activated = 0;

	fuzz_seed(argc, argv, 2);
	log_set_sink(quiet, NULL);
	for (unsigned i = 0; i < 2; i++) {
		mem[i] = malloc(SLOT);
		gm.slots[i] = (struct mem_slot){.id = i, .gpa = i * SLOT, .size = SLOT, .hva = mem[i]};
	}
	gm.nslots = 2;
	for (unsigned long it = 0; it < iters; it++) {
		char why[VQ_WHY_LEN];
		struct vq q;

		vq_reset(&q);
		q.size = next() % 4 ? (uint16_t)(1u << (next() % 9)) : (uint16_t)next();
		q.desc_gpa = next() % 4 ? (next() % (2 * SLOT)) & ~15ull : addr();
		q.avail_gpa = next() % 4 ? (next() % (2 * SLOT)) & ~1ull : addr();
		q.used_gpa = next() % 4 ? (next() % (2 * SLOT)) & ~3ull : addr();
		q.event_idx = next() % 2;
		q.indirect = next() % 2;
		if (vq_activate(&q, &gm, VQ_MAX_SIZE, why))
			continue;
		activated++;
		q.ready = true;
		/* The rings: plausible descriptors, random indices and flags, some noise. */
		for (unsigned d = 0; d < q.size; d++)
			plausible_desc(q.desc_gpa + 16ull * d, q.size);
		for (unsigned k = 0; k < 8; k++)
			plausible_desc(addr() & ~15ull, q.size);
		scribble(q.avail_gpa, 4 + 2ull * q.size + 2);
		for (unsigned e = 0; e < q.size && next() % 8; e++) {
			uint16_t head = (uint16_t)(next() % q.size);
			uint8_t *h;

			if (mem_gpa_piece(&gm, q.avail_gpa + 4 + 2ull * e, 2, &h) == 2)
				memcpy(h, &head, 2);
		}
		if (next() % 2) {
			uint16_t idx = (uint16_t)(next() % (q.size + 2u));
			uint8_t *h;

			if (mem_gpa_piece(&gm, q.avail_gpa + 2, 2, &h) == 2)
				memcpy(h, &idx, 2);
		}
		for (unsigned step = 0; step < 2u * q.size + 4; step++) {
			uint64_t in = 0, out = 0;
			int r = vq_pop(&q, &chain, why);

			if (r < 0) {
				refused++;
				break;
			}
			if (r == 0)
				break;
			popped++;
			if (chain.n > VQ_MAX_BUFS || chain.head >= q.size) {
				fprintf(stderr, "iteration %lu: chain of %u buffers, head %u\n", it,
					chain.n, chain.head);
				return 1;
			}
			for (unsigned b = 0; b < chain.n; b++) {
				if (!in_ram(chain.buf[b].hva, chain.buf[b].len)) {
					fprintf(stderr, "iteration %lu: buffer outside RAM\n", it);
					return 1;
				}
				*(chain.buf[b].write ? &out : &in) += chain.buf[b].len;
			}
			if (in != chain.in_len || out != chain.out_len) {
				fprintf(stderr, "iteration %lu: lengths %llu/%llu vs %u/%u\n", it,
					(unsigned long long)in, (unsigned long long)out, chain.in_len,
					chain.out_len);
				return 1;
			}
			vq_chain_write(&chain, noise, (uint32_t)(next() % sizeof(noise)));
			vq_push(&q, chain.head, (uint32_t)out);
			(void)vq_should_notify(&q);
		}
	}
	printf("fuzz_virtq: %lu iterations, %lu queues activated, %lu chains taken, %lu refused\n",
	       iters, activated, popped, refused);
	free(mem[0]);
	free(mem[1]);
	/* A fuzzer that never reached the walker's both outcomes tested nothing. */
	return popped && refused ? 0 : 1;
}
