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

/* Every key of @o must be in @known (NULL-ended); duplicate keys are errors. */
int jv_check_keys(const cJSON *o, const char *path, const char *const *known,
		  struct vmm_err *e);

/* A value that asks for nothing: absent (NULL), false, null, "None", 0, {} or []. */
bool jv_inert(const cJSON *v);

/* Field getters: 1 when present and valid, 0 when absent, or -errno with @e set. */
int jv_get_str(const cJSON *o, const char *path, const char *key, char *out, size_t len,
	       struct vmm_err *e);
int jv_get_bool(const cJSON *o, const char *path, const char *key, bool *out, struct vmm_err *e);
int jv_get_uint(const cJSON *o, const char *path, const char *key, uint64_t min, uint64_t max,
		uint64_t *out, struct vmm_err *e);

/*
 * A schema of Firecracker's kind, as a table: each field's JSON type,
 * whether it is required, its enum or range, and an object's own fields.
 * null stands for an absent optional field, as in Firecracker's Option<>s.
 */
enum jv_kind {
	JV_STR,  /* a string; @enums, when set, lists the allowed values */
	JV_BOOL, /* true or false */
	JV_INT,  /* an integer in [min, max] */
	JV_OBJ,  /* an object of @sub's fields (any object when @sub is NULL) */
	JV_ARR,  /* an array of @sub objects, or of strings when @sub is NULL */
	JV_MAP,  /* an object whose values are all strings */
};

#define JV_MAX_FIELDS 32 /* fields of one object in a jv_field table */

struct jv_field {
	const char *name; /* NULL ends a table */
	enum jv_kind kind;
	bool required;
	bool no_null; /* null is a type error (a Firecracker field with a default, not an Option) */
	const char *const *enums;
	bool nocase; /* enums compared without case */
	int64_t min, max;
	const char *range_why; /* why the range is what it is, added to an out-of-range error */
	const struct jv_field *sub;
	const char *hint; /* the remedy when a required field is missing */
};

/*
 * Check @o against @fields: no unknown or duplicate keys, each value of its
 * type, enum and range, required fields present and not null. Errors name
 * the JSON path, the value and what is allowed (ERR_CONFIG).
 */
int jv_validate(const cJSON *o, const char *path, const struct jv_field *fields,
		struct vmm_err *e);

/* "<path>.<key>: missing; <hint>" as ERR_CONFIG. */
int jv_missing(const char *path, const char *key, const char *hint, struct vmm_err *e);

#endif
