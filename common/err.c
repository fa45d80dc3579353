#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(struct vmm_err *e, enum err_kind kind, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e || e->kind != ERR_NONE)
		return code;
	e->kind = kind;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}

void err_append(struct vmm_err *e, const char *fmt, ...)
{
	size_t n = strlen(e->msg);
	va_list ap;

	if (n + 3 >= sizeof(e->msg))
		return;
	memcpy(e->msg + n, "; ", 3);
	va_start(ap, fmt);
	vsnprintf(e->msg + n + 2, sizeof(e->msg) - n - 2, fmt, ap);
	va_end(ap);
}

void err_clear(struct vmm_err *e)
{
	memset(e, 0, sizeof(*e));
}

int err_exit_code(const struct vmm_err *e)
{
	switch (e->kind) {
	case ERR_NONE:
		return 0;
	case ERR_CONFIG:
		return 2;
	case ERR_POLICY:
		return 3;
	case ERR_RUNTIME:
		break;
	}
	return 1;
}
