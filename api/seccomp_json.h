/*
 * Seccomp policies as JSON, in the format of Firecracker's seccompiler-bin
 * input (its documented format; Firecracker itself takes seccompiler's
 * compiled BPF, whose serialization is not a stable format): a top-level
 * object keyed by thread role ("vmm", "api", "vcpu", and hugevmm's own
 * "prefault"), each
 *   {"default_action": A, "filter_action": A, "filter": [RULE, ...]}
 * ("mismatch_action" and "match_action", seccompiler's newer names, too), a
 * RULE {"syscall": NAME, "args": [COND, ...], "comment": TEXT} (args AND-ed;
 * rules OR-ed), a COND {"index": 0-5, "type": "dword"|"qword", "op": "eq" |
 * "ne" | "lt" | "le" | "gt" | "ge" | {"masked_eq": MASK}, "val": N, "comment":
 * TEXT}, an action "allow", "kill_process", "kill_thread", "trap", "log",
 * {"errno": N} or {"trace": N}. Only api/ reads JSON: vmm/seccomp.h's
 * structures are what comes out.
 */
#ifndef HUGEVMM_API_SECCOMP_JSON_H
#define HUGEVMM_API_SECCOMP_JSON_H

#include <stddef.h>
#include <stdio.h>

#include "common/err.h"
#include "common/util.h"
#include "vmm/seccomp.h"

struct cJSON;

/*
 * Read the file @path into @p (source SC_SOURCE_FILE, path set). Errors
 * (ERR_CONFIG) start with "--seccomp-filter PATH: " and name the JSON path of
 * the bad value, the value and the remedy. A role the file leaves out gets no
 * filter: one warning names it. @p is left empty (off) on error.
 */
int sc_json_load(const char *path, struct sc_policy *p, struct vmm_err *e) must_check;

/* The same from @len bytes of @text; @what prefixes errors ("--seccomp-filter F"). */
int sc_json_parse(const char *text, size_t len, const char *what, struct sc_policy *p,
		  struct vmm_err *e) must_check;

/*
 * @p in that format, the roles in @roles (a mask of 1 << enum sc_role) that
 * it has. NULL when out of memory.
 */
struct cJSON *sc_json_render(const struct sc_policy *p, unsigned roles);

/*
 * Print @j (sc_json_render's) to @out for people to edit: one line per rule,
 * as Firecracker's files are laid out; then free it. 0, or -EIO.
 */
int sc_json_print(FILE *out, struct cJSON *j);

#endif
