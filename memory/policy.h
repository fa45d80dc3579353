/* Judging a measured region against its policy, and naming likely causes. */
#ifndef HUGEVMM_MEMORY_POLICY_H
#define HUGEVMM_MEMORY_POLICY_H

#include "memory/mem.h"

/* Set r->verdict and r->verdict_msg from r->host, the slots and the policy. */
void policy_judge(struct mem_region *r, const struct mem_slot *slots);

/* Whether a THP short fall of @r may be repaired with MADV_COLLAPSE. */
bool policy_may_collapse(const struct mem_region *r);

#endif
