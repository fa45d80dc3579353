#include "api/seccomp_json.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "api/json_util.h"
#include "common/log.h"

/* Firecracker's own file is ~40 KiB; anything this big is not a filter. */
#define SC_JSON_MAX (4 << 20)
#define SC_ARCH     "x86_64"

#define ACTIONS "allow, kill_process, kill_thread, trap, log, {\"errno\": N} or {\"trace\": N}"
#define OPS     "eq, ne, lt, le, gt, ge or {\"masked_eq\": MASK}"

struct ctx {
	const char *what; /* "--seccomp-filter F": every error starts with it */
	struct vmm_err *e;
	const char *end; /* of the text */
	/*
	 * The number literals of the text, in document order, and the cJSON numbers they became
	 * (the same order): cJSON keeps a double, which cannot hold every 64-bit value.
	 */
	const char **lits;
	const cJSON **nodes;
	size_t nlits, nnodes;
};

static int bad(struct ctx *x, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(struct ctx *x, const char *path, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_set(x->e, ERR_CONFIG, -EINVAL, "%s: %s: %s", x->what, path, msg);
}

/* ---- exact numbers ---- */

static bool num_char(char c)
{
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* Where each number literal of @text starts (strings skipped); @out NULL: count only. */
static size_t scan_literals(const char *text, size_t len, const char **out)
{
	size_t n = 0, i = 0;

	while (i < len) {
		char c = text[i];

		if (c == '"') {
			for (i++; i < len && text[i] != '"'; i++)
				if (text[i] == '\\')
					i++;
			i++;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			if (out)
				out[n] = text + i;
			n++;
			while (i < len && num_char(text[i]))
				i++;
		} else {
			i++;
		}
	}
	return n;
}

static void number_nodes(struct ctx *x, const cJSON *v)
{
	if (cJSON_IsNumber(v)) {
		if (x->nnodes < x->nlits)
			x->nodes[x->nnodes++] = v;
		return;
	}
	for (const cJSON *c = v->child; c; c = c->next)
		number_nodes(x, c);
}

/* The literal @v was read from, or NULL (then its double is all there is). */
static const char *literal(const struct ctx *x, const cJSON *v, int *len)
{
	if (x->nnodes != x->nlits)
		return NULL;
	for (size_t i = 0; i < x->nnodes; i++)
		if (x->nodes[i] == v) {
			const char *s = x->lits[i];

			*len = 0;
			while (s + *len < x->end && num_char(s[*len]))
				(*len)++;
			return s;
		}
	return NULL;
}

/* @v for a message: a number as written in the file, anything else as jv_show has it. */
static const char *show(const struct ctx *x, const cJSON *v, char *buf, size_t len)
{
	int n;
	const char *lit = cJSON_IsNumber(v) ? literal(x, v, &n) : NULL;

	if (!lit)
		return jv_show(v, buf, len);
	snprintf(buf, len, "%.*s", n, lit);
	return buf;
}

/* @v as an unsigned integer of at most @max, exactly; @range says what is allowed and why. */
static int get_uint(struct ctx *x, const cJSON *v, const char *path, uint64_t max,
		    const char *range, uint64_t *out)
{
	const char *lit;
	char b[64];
	uint64_t u;
	int n = 0;

	if (!cJSON_IsNumber(v))
		return bad(x, path, "expected an unsigned integer, got %s",
			   show(x, v, b, sizeof(b)));
	lit = literal(x, v, &n);
	if (lit && !memchr(lit, '.', n) && !memchr(lit, 'e', n) && !memchr(lit, 'E', n) &&
	    lit[0] != '-') {
		errno = 0;
		u = strtoull(lit, NULL, 10);
		if (errno == ERANGE)
			return bad(x, path, "%s is out of range; %s", show(x, v, b, sizeof(b)),
				   range);
	} else {
		double d = v->valuedouble;

		if (d != floor(d))
			return bad(x, path, "expected an unsigned integer, got %s",
				   show(x, v, b, sizeof(b)));
		if (d < 0 || d >= 18446744073709551616.0)
			return bad(x, path, "%s is out of range; %s", show(x, v, b, sizeof(b)),
				   range);
		u = (uint64_t)d;
	}
	if (u > max)
		return bad(x, path, "%s is out of range; %s", show(x, v, b, sizeof(b)), range);
	*out = u;
	return 0;
}

/* ---- the parts of a filter ---- */

/* @s without case and '_': "KillProcess", "kill_process" and "KILL_PROCESS" are one name. */
static void fold(const char *s, char *out, size_t len)
{
	size_t n = 0;

	for (; *s && n + 1 < len; s++)
		if (*s != '_')
			out[n++] = (char)tolower((unsigned char)*s);
	out[n] = '\0';
}

static int get_action(struct ctx *x, const cJSON *v, const char *path, struct sc_action *a)
{
	static const struct {
		const char *name;
		enum sc_act act;
	} plain[] = {
		{"allow", SC_ACT_ALLOW},
		{"killprocess", SC_ACT_KILL_PROCESS},
		{"killthread", SC_ACT_KILL_THREAD},
		{"trap", SC_ACT_TRAP},
		{"log", SC_ACT_LOG},
	};
	char f[32], b[64], sub[256];
	uint64_t data;

	if (cJSON_IsString(v)) {
		fold(v->valuestring, f, sizeof(f));
		for (size_t i = 0; i < ARRAY_SIZE(plain); i++)
			if (!strcmp(f, plain[i].name)) {
				*a = (struct sc_action){plain[i].act, 0};
				return 0;
			}
		if (!strcmp(f, "errno") || !strcmp(f, "trace"))
			return bad(x, path, "\"%s\" needs a number; write {\"%s\": N}",
				   v->valuestring, f);
		return bad(x, path, "\"%s\" is not an action; use " ACTIONS, v->valuestring);
	}
	if (!cJSON_IsObject(v) || !v->child || v->child->next) {
		if (cJSON_IsObject(v))
			return bad(x, path,
				   "%s is not an action; an object has one key, errno or "
				   "trace: {\"errno\": N} or {\"trace\": N}",
				   jv_show(v, b, sizeof(b)));
		return bad(x, path, "expected an action (" ACTIONS "), got %s",
			   show(x, v, b, sizeof(b)));
	}
	fold(v->child->string, f, sizeof(f));
	snprintf(sub, sizeof(sub), "%.180s.%s", path, v->child->string);
	if (!strcmp(f, "errno")) {
		if (get_uint(x, v->child, sub, 4095, "use 0 to 4095 (the kernel's errno range)",
			     &data))
			return -EINVAL;
		*a = (struct sc_action){SC_ACT_ERRNO, (uint32_t)data};
		return 0;
	}
	if (!strcmp(f, "trace")) {
		if (get_uint(x, v->child, sub, 65535, "use 0 to 65535 (16 bits reach the tracer)",
			     &data))
			return -EINVAL;
		*a = (struct sc_action){SC_ACT_TRACE, (uint32_t)data};
		return 0;
	}
	return bad(x, path, "{\"%s\": ...} is not an action; use " ACTIONS, v->child->string);
}

/* Every key of @o is in @known, none twice (jv_check_keys, with the file's prefix). */
static int keys(struct ctx *x, const cJSON *o, const char *path, const char *const *known)
{
	struct vmm_err t = {0};

	if (!jv_check_keys(o, path, known, &t))
		return 0;
	return err_set(x->e, ERR_CONFIG, t.code, "%s: %s", x->what, t.msg);
}

static int get_comment(struct ctx *x, const cJSON *o, const char *path)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "comment");
	char p[256], b[64];

	if (!c || cJSON_IsString(c) || cJSON_IsNull(c))
		return 0;
	snprintf(p, sizeof(p), "%.180s.comment", path);
	return bad(x, p, "expected a string, got %s", show(x, c, b, sizeof(b)));
}

static const cJSON *need(struct ctx *x, const cJSON *o, const char *path, const char *key,
			 const char *hint)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	char p[256];

	if (v && !cJSON_IsNull(v))
		return v;
	snprintf(p, sizeof(p), "%.180s.%s", path, key);
	bad(x, p, "missing; %s", hint);
	return NULL;
}

static int get_cond(struct ctx *x, const cJSON *o, const char *path, struct sc_cond *c)
{
	static const char *const known[] = {"index", "type", "op", "val", "comment", NULL};
	static const char *const ops[] = {
		[SC_OP_EQ] = "eq", [SC_OP_NE] = "ne", [SC_OP_LT] = "lt",
		[SC_OP_LE] = "le", [SC_OP_GT] = "gt", [SC_OP_GE] = "ge",
	};
	const cJSON *idx, *type, *op, *val;
	char p[256], b[64];
	uint64_t v;
	int i;

	if (keys(x, o, path, known) || get_comment(x, o, path))
		return -EINVAL;
	if (!(idx = need(x, o, path, "index", "the argument's position, 0 to 5")) ||
	    !(type = need(x, o, path, "type", "\"dword\" (its low 32 bits) or \"qword\" (64)")) ||
	    !(op = need(x, o, path, "op", "one of " OPS)) ||
	    !(val = need(x, o, path, "val", "the value compared with")))
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	snprintf(p, sizeof(p), "%.180s.index", path);
	if (get_uint(x, idx, p, 5, "use 0 to 5 (a system call has six arguments, counted from 0)",
		     &v))
		return -EINVAL;
	c->index = (uint8_t)v;
	snprintf(p, sizeof(p), "%.180s.type", path);
	if (cJSON_IsString(type) && !strcasecmp(type->valuestring, "dword"))
		c->dword = true;
	else if (!cJSON_IsString(type) || strcasecmp(type->valuestring, "qword"))
		return bad(x, p,
			   "%s is not an argument size; use \"dword\" (32 bits) or \"qword\" "
			   "(64 bits)",
			   show(x, type, b, sizeof(b)));
	snprintf(p, sizeof(p), "%.180s.op", path);
	if (cJSON_IsString(op)) {
		for (i = 0; i < (int)ARRAY_SIZE(ops); i++)
			if (!strcasecmp(op->valuestring, ops[i]))
				break;
		if (i == (int)ARRAY_SIZE(ops) && !strcasecmp(op->valuestring, "masked_eq"))
			return bad(x, p, "\"%s\" needs its mask; write {\"masked_eq\": MASK}",
				   op->valuestring);
		if (i == (int)ARRAY_SIZE(ops))
			return bad(x, p, "\"%s\" is not an operator; use " OPS, op->valuestring);
		/* libseccomp compares 64 bits; the low half alone only as a masked compare. */
		if (c->dword && i != SC_OP_EQ)
			return bad(x, p,
				   "\"%s\" on a \"dword\": libseccomp compares all 64 bits, so "
				   "the low 32 alone can only be eq or masked_eq; use \"type\": "
				   "\"qword\"",
				   op->valuestring);
		c->op = (enum sc_op)i;
	} else if (cJSON_IsObject(op) && op->child && !op->child->next &&
		   !strcasecmp(op->child->string, "masked_eq")) {
		snprintf(p, sizeof(p), "%.180s.op.%s", path, op->child->string);
		if (get_uint(x, op->child, p, c->dword ? 0xffffffffull : ~0ull,
			     c->dword
				     ? "a dword's mask is 0 to 4294967295; use \"type\": \"qword\" "
				       "for a wider one"
				     : "use 0 to 18446744073709551615",
			     &c->mask))
			return -EINVAL;
		c->op = SC_OP_MASKED_EQ;
	} else {
		return bad(x, p, "%s is not an operator; use " OPS, show(x, op, b, sizeof(b)));
	}
	snprintf(p, sizeof(p), "%.180s.val", path);
	if (get_uint(x, val, p, c->dword ? 0xffffffffull : ~0ull,
		     c->dword ? "a dword is 0 to 4294967295; use \"type\": \"qword\" for a wider "
				"value"
			      : "use 0 to 18446744073709551615",
		     &c->val))
		return -EINVAL;
	return 0;
}

static int get_rule(struct ctx *x, const cJSON *o, const char *path, struct sc_rule *r)
{
	static const char *const known[] = {"syscall", "args", "comment", NULL};
	const cJSON *name, *args, *a;
	char p[256], b[64];
	int n;

	if (keys(x, o, path, known) || get_comment(x, o, path))
		return -EINVAL;
	if (!(name = need(x, o, path, "syscall", "the system call's name, as \"read\"")))
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	snprintf(p, sizeof(p), "%.180s.syscall", path);
	if (!cJSON_IsString(name))
		return bad(x, p, "expected a system call's name, got %s",
			   show(x, name, b, sizeof(b)));
	r->nr = sc_syscall_nr(name->valuestring);
	if (r->nr < 0)
		return bad(x, p,
			   "\"%s\" is not a system call on " SC_ARCH "; use the kernel's name "
			   "(hugevmm seccomp prints the built-in lists)",
			   name->valuestring);
	args = cJSON_GetObjectItemCaseSensitive(o, "args");
	if (!args || cJSON_IsNull(args))
		return 0;
	snprintf(p, sizeof(p), "%.180s.args", path);
	if (!cJSON_IsArray(args))
		return bad(x, p, "expected a list of conditions, got %s",
			   show(x, args, b, sizeof(b)));
	n = cJSON_GetArraySize(args);
	if (n == 0)
		return bad(x, p,
			   "an empty list; leave \"args\" out to match every %s call, or give "
			   "the conditions",
			   name->valuestring);
	if (n > SC_MAX_CONDS)
		return bad(x, p,
			   "%d conditions; at most %d per rule (split it into rules, which "
			   "are OR-ed)",
			   n, SC_MAX_CONDS);
	n = 0;
	cJSON_ArrayForEach(a, args)
	{
		snprintf(p, sizeof(p), "%.180s.args[%d]", path, n);
		if (get_cond(x, a, p, &r->conds[n++]))
			return -EINVAL;
	}
	r->nconds = (unsigned)n;
	return 0;
}

/* Of @old and @new (seccompiler's two names for one field), the one @o has. */
static const cJSON *either(struct ctx *x, const cJSON *o, const char *role, const char *new_,
			   const char *old, const char *hint)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, old),
		    *b = cJSON_GetObjectItemCaseSensitive(o, new_);

	if (a && b) {
		bad(x, role,
		    "both %s and %s, seccompiler's old and new names of one field; keep one", old,
		    new_);
		return NULL;
	}
	if (a || b)
		return a ? a : b;
	return need(x, o, role, old, hint);
}

static int get_filter(struct ctx *x, const cJSON *o, const char *role, struct sc_filter *f)
{
	static const char *const known[] = {"default_action", "mismatch_action", "filter_action",
					    "match_action",   "filter",          NULL};
	const cJSON *dflt, *match, *list, *r;
	char p[256], b[64];
	int i = 0;

	if (keys(x, o, role, known))
		return -EINVAL;
	dflt = either(x, o, role, "mismatch_action", "default_action",
		      "the action when no rule matches (kill_process for an allow-list)");
	match = dflt ? either(x, o, role, "match_action", "filter_action",
			      "the action when a rule matches (allow for an allow-list)")
		     : NULL;
	list = match ? need(x, o, role, "filter", "the rules, a list ([] for none)") : NULL;
	if (!list)
		return -EINVAL;
	snprintf(p, sizeof(p), "%.180s.%s", role, dflt->string);
	if (get_action(x, dflt, p, &f->mismatch))
		return -EINVAL;
	snprintf(p, sizeof(p), "%.180s.%s", role, match->string);
	if (get_action(x, match, p, &f->match))
		return -EINVAL;
	if (f->mismatch.act == f->match.act && f->mismatch.data == f->match.data)
		return bad(x, role,
			   "%s and %s are the same action; the rules would change nothing "
			   "(for an allow-list: kill_process and allow)",
			   dflt->string, match->string);
	snprintf(p, sizeof(p), "%.180s.filter", role);
	if (!cJSON_IsArray(list))
		return bad(x, p, "expected a list of rules, got %s", show(x, list, b, sizeof(b)));
	cJSON_ArrayForEach(r, list)
	{
		struct sc_rule rule;

		snprintf(p, sizeof(p), "%.180s.filter[%d]", role, i++);
		if (get_rule(x, r, p, &rule))
			return -EINVAL;
		if (sc_filter_add(f, &rule))
			return err_set(x->e, ERR_RUNTIME, -ENOMEM, "%s: out of memory", x->what);
	}
	f->present = true;
	return 0;
}

static int parse_root(struct ctx *x, const cJSON *root, struct sc_policy *p)
{
	char b[64];

	if (!cJSON_IsObject(root))
		return err_set(x->e, ERR_CONFIG, -EINVAL,
			       "%s: expected an object of filters by thread role (vmm, api, vcpu, "
			       "prefault), got %s",
			       x->what, show(x, root, b, sizeof(b)));
	for (const cJSON *k = root->child; k; k = k->next) {
		int role = sc_role_of(k->string);

		for (const cJSON *j = root->child; j != k; j = j->next)
			if (!strcmp(j->string, k->string))
				return bad(x, k->string, "given twice; give each role once");
		if (role < 0)
			return bad(x, k->string,
				   "not a thread role of hugevmm; use vmm, api, vcpu "
				   "or prefault");
		if (get_filter(x, k, k->string, &p->f[role]))
			return -EINVAL;
	}
	for (int i = 0; i < SC_NROLES; i++)
		if (!p->f[i].present)
			log_warn("%s: no \"%s\" filter: hugevmm's %s threads run without one",
				 x->what, sc_role_name((enum sc_role)i),
				 sc_role_name((enum sc_role)i));
	return 0;
}

int sc_json_parse(const char *text, size_t len, const char *what, struct sc_policy *p,
		  struct vmm_err *e)
{
	struct ctx x = {.what = what, .e = e, .end = text + len};
	cJSON *root;
	int r;

	memset(p, 0, sizeof(*p));
	p->source = SC_SOURCE_FILE;
	if (jv_parse(text, len, what, &root, e)) {
		err_append(e, "hugevmm takes the JSON that Firecracker's seccompiler-bin compiles, "
			      "not its BPF output");
		sc_policy_free(p);
		return -EINVAL;
	}
	x.nlits = scan_literals(text, len, NULL);
	x.lits = calloc(x.nlits + 1, sizeof(*x.lits));
	x.nodes = calloc(x.nlits + 1, sizeof(*x.nodes));
	if (!x.lits || !x.nodes) {
		r = err_set(e, ERR_RUNTIME, -ENOMEM, "%s: out of memory", what);
	} else {
		scan_literals(text, len, x.lits);
		number_nodes(&x, root);
		r = parse_root(&x, root, p);
	}
	free(x.lits);
	free(x.nodes);
	cJSON_Delete(root);
	if (r)
		sc_policy_free(p);
	return r;
}

int sc_json_load(const char *path, struct sc_policy *p, struct vmm_err *e)
{
	char what[sizeof(p->path) + 32];
	struct stat st;
	size_t got = 0;
	ssize_t n = 0;
	char *buf;
	int fd, r;

	memset(p, 0, sizeof(*p));
	p->source = SC_SOURCE_OFF;
	snprintf(what, sizeof(what), "--seccomp-filter %s", path);
	if (strlen(path) >= sizeof(p->path))
		return err_set(e, ERR_CONFIG, -ENAMETOOLONG, "%s: the path is too long", what);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, ERR_CONFIG, -errno,
			       "%s: cannot open it: %s; give a filter file in seccompiler's JSON "
			       "(`hugevmm seccomp` prints the built-in one)",
			       what, strerror(errno));
	if (fstat(fd, &st) || S_ISDIR(st.st_mode)) {
		int err = S_ISDIR(st.st_mode) ? EISDIR : errno;

		close(fd);
		return err_set(e, ERR_CONFIG, -err, "%s: %s; give a filter file", what,
			       strerror(err));
	}
	buf = malloc(SC_JSON_MAX + 1);
	if (!buf) {
		close(fd);
		return err_set(e, ERR_RUNTIME, -ENOMEM, "%s: out of memory", what);
	}
	while (got <= SC_JSON_MAX && (n = read(fd, buf + got, SC_JSON_MAX + 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	if (n < 0 || got > SC_JSON_MAX) {
		free(buf);
		return err_set(e, ERR_CONFIG, n < 0 ? -errno : -EFBIG, "%s: %s", what,
			       n < 0 ? "cannot be read"
				     : "over 4 MiB; a filter file is far smaller");
	}
	r = sc_json_parse(buf, got, what, p, e);
	free(buf);
	if (!r)
		snprintf(p->path, sizeof(p->path), "%s", path);
	return r;
}

/* ---- rendering ---- */

/* A 64-bit value as written, not through a double. */
static cJSON *u64_json(uint64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	return cJSON_CreateRaw(b);
}

static cJSON *action_json(struct sc_action a)
{
	static const char *const names[] = {
		[SC_ACT_ALLOW] = "allow",
		[SC_ACT_KILL_PROCESS] = "kill_process",
		[SC_ACT_KILL_THREAD] = "kill_thread",
		[SC_ACT_TRAP] = "trap",
		[SC_ACT_LOG] = "log",
		[SC_ACT_ERRNO] = "errno",
		[SC_ACT_TRACE] = "trace",
	};
	cJSON *o;

	if (a.act != SC_ACT_ERRNO && a.act != SC_ACT_TRACE)
		return cJSON_CreateString(names[a.act]);
	o = cJSON_CreateObject();
	if (o)
		cJSON_AddItemToObject(o, names[a.act], u64_json(a.data));
	return o;
}

static cJSON *cond_json(const struct sc_cond *c)
{
	static const char *const ops[] = {
		[SC_OP_EQ] = "eq", [SC_OP_NE] = "ne", [SC_OP_LT] = "lt",
		[SC_OP_LE] = "le", [SC_OP_GT] = "gt", [SC_OP_GE] = "ge",
	};
	cJSON *o = cJSON_CreateObject(), *op;

	cJSON_AddItemToObject(o, "index", u64_json(c->index));
	cJSON_AddStringToObject(o, "type", c->dword ? "dword" : "qword");
	if (c->op == SC_OP_MASKED_EQ) {
		op = cJSON_AddObjectToObject(o, "op");
		cJSON_AddItemToObject(op, "masked_eq", u64_json(c->mask));
	} else {
		cJSON_AddStringToObject(o, "op", ops[c->op]);
	}
	cJSON_AddItemToObject(o, "val", u64_json(c->val));
	return o;
}

/*
 * The built-in lists let tgkill signal this process's own threads only: its
 * first argument must be our pid, known when the process starts. A file cannot
 * name it (the next process has another), so printed it has no condition.
 */
static bool own_pid_rule(const struct sc_policy *p, const struct sc_rule *r)
{
	return p->source == SC_SOURCE_DEFAULT && r->nr == SYS_tgkill && r->nconds == 1 &&
	       r->conds[0].index == 0 && r->conds[0].op == SC_OP_EQ &&
	       r->conds[0].val == (uint64_t)getpid();
}

static cJSON *rule_json(const struct sc_policy *p, const struct sc_rule *r)
{
	const char *name = sc_syscall_name(r->nr);
	cJSON *o = cJSON_CreateObject(), *args;
	char b[32];

	if (!name) {
		snprintf(b, sizeof(b), "syscall_%d", r->nr);
		name = b;
	}
	cJSON_AddStringToObject(o, "syscall", name);
	if (own_pid_rule(p, r)) {
		cJSON_AddStringToObject(o, "comment",
					"built in: to this process's own threads only (args[0], "
					"the pid, is known at start); a file cannot name it");
		return o;
	}
	if (!r->nconds)
		return o;
	args = cJSON_AddArrayToObject(o, "args");
	for (unsigned i = 0; i < r->nconds && i < SC_MAX_CONDS; i++)
		cJSON_AddItemToArray(args, cond_json(&r->conds[i]));
	return o;
}

/* @v on one line; false when out of memory. */
static bool put_compact(FILE *out, const cJSON *v)
{
	char *s = cJSON_PrintUnformatted(v);

	if (!s)
		return false;
	fputs(s, out);
	free(s);
	return true;
}

int sc_json_print(FILE *out, cJSON *j)
{
	bool ok = j != NULL;

	fputs("{", out);
	for (const cJSON *r = j ? j->child : NULL; ok && r; r = r->next) {
		fprintf(out, "%s\n  \"%s\": {", r == j->child ? "" : ",", r->string);
		for (const cJSON *m = r->child; ok && m; m = m->next) {
			fprintf(out, "%s\n    \"%s\": ", m == r->child ? "" : ",", m->string);
			if (!cJSON_IsArray(m)) {
				ok = put_compact(out, m);
				continue;
			}
			fputs("[", out);
			for (const cJSON *k = m->child; ok && k; k = k->next) {
				fputs(k == m->child ? "\n      " : ",\n      ", out);
				ok = put_compact(out, k);
			}
			fputs(m->child ? "\n    ]" : "]", out);
		}
		fputs("\n  }", out);
	}
	fputs("\n}\n", out);
	cJSON_Delete(j);
	return ok && !fflush(out) && !ferror(out) ? 0 : -EIO;
}

cJSON *sc_json_render(const struct sc_policy *p, unsigned roles)
{
	cJSON *root = cJSON_CreateObject();

	for (int i = 0; root && i < SC_NROLES; i++) {
		const struct sc_filter *f = &p->f[i];
		cJSON *o, *list;

		if (!f->present || !(roles & (1u << i)))
			continue;
		o = cJSON_AddObjectToObject(root, sc_role_name((enum sc_role)i));
		cJSON_AddItemToObject(o, "default_action", action_json(f->mismatch));
		cJSON_AddItemToObject(o, "filter_action", action_json(f->match));
		list = cJSON_AddArrayToObject(o, "filter");
		for (unsigned k = 0; k < f->nrules; k++)
			cJSON_AddItemToArray(list, rule_json(p, &f->rules[k]));
	}
	return root;
}
