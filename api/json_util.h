/*
 * JSON field access with messages for people: every error names the JSON
 * path, the value found and what was expected. Shared by config files and
 * API request bodies (cJSON stays inside api/).
 */
#ifndef HUGEVMM_API_JSON_UTIL_H
#define HUGEVMM_API_JSON_UTIL_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/*
 * Parse @len bytes into *@out (the caller cJSON_Delete()s it). Syntax errors
 * name line and column, prefixed with @what ("config", "body").
 */
int jv_parse(const char *text, size_t len, const char *what, cJSON **out, struct vmm_err *e);

/* A short rendering of @v for messages, into @buf. */
const char *jv_show(const cJSON *v, char *buf, size_t len);

/* "<path>.<key>: expected <want>, got <type> <value>" as ERR_CONFIG. */
int jv_type_err(const char *path, const char *key, const cJSON *v, const char *want,
		struct vmm_err *e);

/*
 * Every key of @o must be in @known; keys in @ignored (Firecracker's) are
 * accepted with a warning when they ask for something. Duplicates are errors.
 */
int jv_check_keys(const cJSON *o, const char *path, const char *const *known,
		  const char *const *ignored, struct vmm_err *e);

/* Field getters: 1 when present and valid, 0 when absent, or -errno with @e set. */
int jv_get_str(const cJSON *o, const char *path, const char *key, char *out, size_t len,
	       struct vmm_err *e);
int jv_get_bool(const cJSON *o, const char *path, const char *key, bool *out, struct vmm_err *e);
int jv_get_uint(const cJSON *o, const char *path, const char *key, uint64_t min, uint64_t max,
		uint64_t *out, struct vmm_err *e);

/* "<path>.<key>: missing; <hint>" as ERR_CONFIG. */
int jv_missing(const char *path, const char *key, const char *hint, struct vmm_err *e);

#endif
