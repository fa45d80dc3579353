#include "api/json_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"

/* A short rendering of a JSON value for messages. */
const char *jv_show(const cJSON *v, char *buf, size_t len)
{
	char *s = cJSON_PrintUnformatted(v);

	if (!s) {
		snprintf(buf, len, "?");
		return buf;
	}
	if (strlen(s) > 48)
		snprintf(buf, len, "%.45s...", s);
	else
		snprintf(buf, len, "%s", s);
	free(s);
	return buf;
}

static const char *type_name(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNull(v))
		return "null";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	return "invalid";
}

/* "." between a non-empty path and a key; top-level keys have no prefix. */
static const char *dot(const char *path)
{
	return path[0] ? "." : "";
}

int jv_type_err(const char *path, const char *key, const cJSON *v, const char *want,
		struct vmm_err *e)
{
	char b[64];
	/* null, true and false are their own value: "got null", not "got null null". */
	bool self = cJSON_IsNull(v) || cJSON_IsBool(v);

	return err_set(e, ERR_CONFIG, -EINVAL, "%s%s%s: expected %s, got %s%s%s",
		       path[0] || key ? path : "config", key ? dot(path) : "", key ? key : "", want,
		       self ? "" : type_name(v), self ? "" : " ", jv_show(v, b, sizeof(b)));
}

static bool in_list(const char *s, const char *const *list)
{
	for (; list && *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

bool jv_inert(const cJSON *v)
{
	return !v || cJSON_IsFalse(v) || cJSON_IsNull(v) ||
	       (cJSON_IsString(v) && !strcmp(v->valuestring, "None")) ||
	       (cJSON_IsNumber(v) && v->valuedouble == 0) ||
	       ((cJSON_IsObject(v) || cJSON_IsArray(v)) && !v->child);
}

/* Every key of @o must be in @known; duplicate keys are errors (cJSON would keep the first). */
int jv_check_keys(const cJSON *o, const char *path, const char *const *known, struct vmm_err *e)
{
	char list[512];

	if (!cJSON_IsObject(o))
		return jv_type_err(path, NULL, o, "an object", e);
	for (const cJSON *k = o->child; k; k = k->next) {
		for (const cJSON *j = o->child; j != k; j = j->next)
			if (!strcmp(j->string, k->string))
				return err_set(e, ERR_CONFIG, -EINVAL,
					       "%s%s%s: duplicate key; give it once", path,
					       dot(path), k->string);
		if (in_list(k->string, known))
			continue;
		list[0] = '\0';
		for (const char *const *n = known; *n; n++) {
			size_t u = strlen(list);

			snprintf(list + u, sizeof(list) - u, "%s%s", u ? ", " : "", *n);
		}
		return err_set(e, ERR_CONFIG, -EINVAL, "%s%s%s: unknown field; known fields: %s",
			       path, dot(path), k->string, list);
	}
	return 0;
}

/* Returns 1 when @key is present (and valid), 0 when absent, or -errno. */
int jv_get_str(const cJSON *o, const char *path, const char *key, char *out, size_t len,
	       struct vmm_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v))
		return jv_type_err(path, key, v, "a string", e);
	if (strlen(v->valuestring) >= len)
		return err_set(e, ERR_CONFIG, -ENAMETOOLONG,
			       "%s.%s: longer than %zu characters; shorten it", path, key, len - 1);
	snprintf(out, len, "%s", v->valuestring);
	return 1;
}

int jv_get_bool(const cJSON *o, const char *path, const char *key, bool *out, struct vmm_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsBool(v))
		return jv_type_err(path, key, v, "true or false", e);
	*out = cJSON_IsTrue(v);
	return 1;
}

int jv_get_uint(const cJSON *o, const char *path, const char *key, uint64_t min, uint64_t max,
		uint64_t *out, struct vmm_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	char b[64];

	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
		return jv_type_err(path, key, v, "an integer", e);
	if (v->valuedouble < (double)min || v->valuedouble > (double)max)
		return err_set(e, ERR_CONFIG, -ERANGE,
			       "%s.%s: %s is out of range; use %llu to %llu", path, key,
			       jv_show(v, b, sizeof(b)), (unsigned long long)min,
			       (unsigned long long)max);
	*out = (uint64_t)v->valuedouble;
	return 1;
}

int jv_missing(const char *path, const char *key, const char *hint, struct vmm_err *e)
{
	return err_set(e, ERR_CONFIG, -EINVAL, "%s.%s: missing; %s", path, key, hint);
}

static void position(const char *text, const char *at, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (const char *s = text; s < at; s++) {
		if (*s == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

int jv_parse(const char *text, size_t len, const char *what, cJSON **out, struct vmm_err *e)
{
	const char *end = NULL;
	cJSON *root;

	*out = NULL;
	if (memchr(text, '\0', len))
		return err_set(e, ERR_CONFIG, -EINVAL, "%s: contains a NUL byte; not JSON text",
			       what);
	root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!root) {
		unsigned line, col;
		size_t near = 0;

		if (!end || end < text || end > text + len)
			end = text + len;
		position(text, end, &line, &col);
		/* Quote what follows the error, up to 16 bytes of the same line. */
		while (near < 16 && end + near < text + len && end[near] != '\n' &&
		       end[near] != '\r')
			near++;
		if (end == text + len)
			return err_set(e, ERR_CONFIG, -EINVAL,
				       "%s: invalid JSON at line %u, column %u (unexpected end)",
				       what, line, col);
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s: invalid JSON at line %u, column %u%s%.*s%s", what, line, col,
			       near ? " near \"" : " (end of line)", (int)near, end,
			       near ? "\"" : "");
	}
	if (end && end < text + len) {
		/* Anything but whitespace after the top-level value is an error. */
		const char *s = end;

		while (s < text + len && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t'))
			s++;
		if (s < text + len) {
			unsigned line, col;

			position(text, s, &line, &col);
			cJSON_Delete(root);
			return err_set(e, ERR_CONFIG, -EINVAL,
				       "%s: unexpected text after the JSON object at line %u, "
				       "column %u",
				       what, line, col);
		}
	}
	*out = root;
	return 0;
}

static const char *enum_list(const char *const *v, char *buf, size_t len)
{
	buf[0] = '\0';
	for (; *v; v++) {
		size_t u = strlen(buf);

		snprintf(buf + u, len - u, "%s\"%s\"", u ? ", " : "", *v);
	}
	return buf;
}

static int check_value(const cJSON *v, const char *path, const char *key,
		       const struct jv_field *f, struct vmm_err *e);

/* What a field of @f's kind must be, for messages. */
static const char *kind_name(const struct jv_field *f)
{
	switch (f->kind) {
	case JV_STR:
		return "a string";
	case JV_BOOL:
		return "true or false";
	case JV_INT:
		return "an integer";
	case JV_OBJ:
		return "an object";
	case JV_ARR:
		return "an array";
	case JV_MAP:
		return "an object of strings";
	}
	return "a value";
}

static int check_object(const cJSON *o, const char *path, const struct jv_field *fields,
			struct vmm_err *e)
{
	const char *names[JV_MAX_FIELDS + 1];
	unsigned n = 0;
	int r;

	/* Tables are hugevmm's own and small; a longer one would show in the tests at once. */
	while (fields[n].name && n < JV_MAX_FIELDS) {
		names[n] = fields[n].name;
		n++;
	}
	names[n] = NULL;
	r = jv_check_keys(o, path, names, e);
	if (r)
		return r;
	for (const struct jv_field *f = fields; f->name; f++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->name);

		if (v && cJSON_IsNull(v) && (f->required || f->no_null))
			return jv_type_err(path, f->name, v, kind_name(f), e);
		if (!v || cJSON_IsNull(v)) {
			if (f->required)
				return err_set(e, ERR_CONFIG, -EINVAL,
					       "%s%s%s: missing; Firecracker requires it%s%s", path,
					       dot(path), f->name, f->hint ? "; " : "",
					       f->hint ? f->hint : "");
			continue;
		}
		r = check_value(v, path, f->name, f, e);
		if (r)
			return r;
	}
	return 0;
}

static int check_value(const cJSON *v, const char *path, const char *key,
		       const struct jv_field *f, struct vmm_err *e)
{
	char p[160], b[64], list[256];
	int i = 0;

	snprintf(p, sizeof(p), "%s%s%s", path, dot(path), key);
	switch (f->kind) {
	case JV_STR:
		if (!cJSON_IsString(v))
			return jv_type_err(path, key, v, "a string", e);
		if (!f->enums)
			return 0;
		for (const char *const *x = f->enums; *x; x++)
			if (f->nocase ? !strcasecmp(*x, v->valuestring) : !strcmp(*x, v->valuestring))
				return 0;
		return err_set(e, ERR_CONFIG, -EINVAL, "%s: \"%s\" is not known; use %s%s", p,
			       v->valuestring, enum_list(f->enums, list, sizeof(list)),
			       f->nocase ? " (any case)" : "");
	case JV_BOOL:
		return cJSON_IsBool(v) ? 0 : jv_type_err(path, key, v, "true or false", e);
	case JV_INT:
		if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
			return jv_type_err(path, key, v, "an integer", e);
		if (v->valuedouble < (double)f->min || v->valuedouble > (double)f->max)
			return err_set(e, ERR_CONFIG, -ERANGE,
				       "%s: %s is out of range; use %lld to %lld%s%s%s", p,
				       jv_show(v, b, sizeof(b)), (long long)f->min,
				       (long long)f->max, f->range_why ? " (" : "",
				       f->range_why ? f->range_why : "", f->range_why ? ")" : "");
		return 0;
	case JV_OBJ:
		return f->sub ? check_object(v, p, f->sub, e)
			      : (cJSON_IsObject(v) ? 0 : jv_type_err(path, key, v, "an object", e));
	case JV_MAP:
		if (!cJSON_IsObject(v))
			return jv_type_err(path, key, v, "an object of strings", e);
		for (const cJSON *x = v->child; x; x = x->next)
			if (!cJSON_IsString(x))
				return jv_type_err(p, x->string, x, "a string", e);
		return 0;
	case JV_ARR:
		if (!cJSON_IsArray(v))
			return jv_type_err(path, key, v, "an array", e);
		for (const cJSON *x = v->child; x; x = x->next, i++) {
			char ip[176];
			int r;

			snprintf(ip, sizeof(ip), "%s[%d]", p, i);
			r = f->sub ? check_object(x, ip, f->sub, e)
				   : (cJSON_IsString(x) ? 0 : jv_type_err(ip, NULL, x, "a string", e));
			if (r)
				return r;
		}
		return 0;
	}
	return 0;
}

int jv_validate(const cJSON *o, const char *path, const struct jv_field *fields,
		struct vmm_err *e)
{
	return check_object(o, path, fields, e);
}
