#include "memory/layout.h"

#include <errno.h>
#include <string.h>

int mem_layout_plan(const struct mem_region_cfg *c, unsigned n, struct mem_layout *out,
		    struct vmm_err *e)
{
	uint64_t cursor = 0;
	char f[96];

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < n; i++) {
		uint64_t align = MAX(c[i].page_size, SZ_2M);
		uint64_t base = align_up(cursor, align);
		uint64_t left = c[i].size, off = 0;

		if (base >= MEM_HOLE_START && base < MEM_HOLE_END)
			base = align_up(MEM_HOLE_END, align);
		while (left) {
			struct mem_slot_plan *s = &out->slots[out->nslots++];
			uint64_t chunk = left;

			if (base < MEM_HOLE_START && base + left > MEM_HOLE_START)
				chunk = MEM_HOLE_START - base;
			s->region = i;
			s->gpa = base;
			s->size = chunk;
			s->offset = off;
			off += chunk;
			left -= chunk;
			base = left ? MEM_HOLE_END : base + chunk;
		}
		cursor = base;
		if (cursor > MEM_GPA_LIMIT)
			return err_set(e, ERR_CONFIG, -E2BIG,
				       "%s: guest RAM would end at %llu GiB, past the %llu GiB "
				       "guest-physical limit; make the regions smaller",
				       mem_cfg_field(&c[i], "size_mib", f, sizeof(f)),
				       (unsigned long long)(cursor >> 30),
				       (unsigned long long)(MEM_GPA_LIMIT >> 30));
	}
	out->top = cursor;
	return 0;
}
