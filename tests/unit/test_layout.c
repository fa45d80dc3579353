/* Guest-physical layout arithmetic: bases, alignment, the MMIO hole. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "memory/layout.h"

static struct mem_region_cfg region(enum mem_backing b, uint64_t size, uint64_t ps)
{
	struct mem_region_cfg c;

	mem_cfg_init(&c, b, "r", "memory.regions[0]");
	c.size = size;
	c.page_size = ps;
	return c;
}

static void one_region_at_zero(void **state)
{
	struct mem_region_cfg c = region(MEM_BACKING_THP, 512 * SZ_1M, SZ_2M);
	struct mem_layout l;
	struct vmm_err e = {0};

	(void)state;
	assert_int_equal(mem_layout_plan(&c, 1, &l, &e), 0);
	assert_int_equal(l.nslots, 1);
	assert_int_equal(l.slots[0].gpa, 0);
	assert_int_equal(l.slots[0].size, 512 * SZ_1M);
	assert_int_equal(l.slots[0].offset, 0);
	assert_int_equal(l.top, 512 * SZ_1M);
}

static void bases_follow_page_size(void **state)
{
	/* 1 MiB of 4K memory, then a 1G region: the second base rounds to 1 GiB. */
	struct mem_region_cfg c[3] = {
		region(MEM_BACKING_ANON, SZ_1M, SZ_4K),
		region(MEM_BACKING_HUGETLB, SZ_1G, SZ_1G),
		region(MEM_BACKING_THP, 6 * SZ_1M, SZ_2M),
	};
	struct mem_layout l;
	struct vmm_err e = {0};

	(void)state;
	assert_int_equal(mem_layout_plan(c, 3, &l, &e), 0);
	assert_int_equal(l.nslots, 3);
	assert_int_equal(l.slots[0].gpa, 0);
	assert_int_equal(l.slots[1].gpa, SZ_1G);
	assert_int_equal(l.slots[1].region, 1);
	assert_int_equal(l.slots[2].gpa, 2 * SZ_1G);
	/* Even a 4K region's successor starts 2M-aligned. */
	c[2].size = SZ_2M;
	c[1] = region(MEM_BACKING_ANON, 3 * SZ_1M, SZ_4K);
	assert_int_equal(mem_layout_plan(c, 3, &l, &e), 0);
	assert_int_equal(l.slots[1].gpa, SZ_2M);
	assert_int_equal(l.slots[2].gpa, 6 * SZ_1M);
}

static void region_crossing_hole_splits(void **state)
{
	struct mem_region_cfg c = region(MEM_BACKING_THP, 4 * SZ_1G, SZ_2M);
	struct mem_layout l;
	struct vmm_err e = {0};

	(void)state;
	assert_int_equal(mem_layout_plan(&c, 1, &l, &e), 0);
	assert_int_equal(l.nslots, 2);
	assert_int_equal(l.slots[0].gpa, 0);
	assert_int_equal(l.slots[0].size, MEM_HOLE_START);
	assert_int_equal(l.slots[1].gpa, MEM_HOLE_END);
	assert_int_equal(l.slots[1].size, SZ_1G);
	assert_int_equal(l.slots[1].offset, MEM_HOLE_START);
	assert_int_equal(l.slots[1].region, 0);
	assert_int_equal(l.top, 5 * SZ_1G);
}

static void region_ending_at_hole_does_not_split(void **state)
{
	struct mem_region_cfg c[2] = {
		region(MEM_BACKING_HUGETLB, 3 * SZ_1G, SZ_1G),
		region(MEM_BACKING_THP, 2 * SZ_1M, SZ_2M),
	};
	struct mem_layout l;
	struct vmm_err e = {0};

	(void)state;
	assert_int_equal(mem_layout_plan(c, 2, &l, &e), 0);
	assert_int_equal(l.nslots, 2);
	assert_int_equal(l.slots[0].size, 3 * SZ_1G);
	/* The next region would start inside the hole: it moves to 4 GiB. */
	assert_int_equal(l.slots[1].gpa, MEM_HOLE_END);
}

static void no_slot_touches_hole(void **state)
{
	/* Every combination of sizes: no slot overlaps [3G, 4G), sizes add up. */
	static const uint64_t sizes[] = {2, 512, 1022, 1024, 2046, 3070, 3072, 3074, 4096};
	struct mem_region_cfg c[3];
	struct mem_layout l;
	struct vmm_err e = {0};

	(void)state;
	for (unsigned a = 0; a < 9; a++)
		for (unsigned b = 0; b < 9; b++) {
			uint64_t sum = 0;

			c[0] = region(MEM_BACKING_THP, sizes[a] * SZ_1M, SZ_2M);
			c[1] = region(MEM_BACKING_MEMFD, sizes[b] * SZ_1M, SZ_2M);
			c[2] = region(MEM_BACKING_HUGETLB, SZ_1G, SZ_1G);
			assert_int_equal(mem_layout_plan(c, 3, &l, &e), 0);
			for (unsigned i = 0; i < l.nslots; i++) {
				const struct mem_slot_plan *s = &l.slots[i];

				sum += s->size;
				assert_true(s->gpa + s->size <= MEM_HOLE_START ||
					    s->gpa >= MEM_HOLE_END);
				assert_true(is_aligned(s->gpa, c[s->region].page_size));
				if (i)
					assert_true(s->gpa >=
						    l.slots[i - 1].gpa + l.slots[i - 1].size);
			}
			assert_int_equal(sum, c[0].size + c[1].size + c[2].size);
		}
}

static void past_gpa_limit_is_an_error(void **state)
{
	struct mem_region_cfg c[MEM_MAX_REGIONS];
	struct mem_layout l;
	struct vmm_err e = {0};

	(void)state;
	for (unsigned i = 0; i < MEM_MAX_REGIONS; i++) {
		c[i] = region(MEM_BACKING_THP, MEM_MAX_SIZE, SZ_2M);
		snprintf(c[i].origin, sizeof(c[i].origin), "memory.regions[%u]", i);
	}
	assert_int_equal(mem_layout_plan(c, MEM_MAX_REGIONS, &l, &e), -E2BIG);
	assert_int_equal(e.kind, ERR_CONFIG);
	assert_non_null(strstr(e.msg, "memory.regions[15].size_mib"));
	assert_non_null(strstr(e.msg, "guest-physical limit"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_region_at_zero),
		cmocka_unit_test(bases_follow_page_size),
		cmocka_unit_test(region_crossing_hole_splits),
		cmocka_unit_test(region_ending_at_hole_does_not_split),
		cmocka_unit_test(no_slot_touches_hole),
		cmocka_unit_test(past_gpa_limit_is_an_error),
	};

	return cmocka_run_group_tests_name("layout", tests, NULL, NULL);
}
