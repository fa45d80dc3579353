/*
 * An error that carries text for its user. It travels up to the CLI (exit
 * message and code) and the API (fault body). The message names the field,
 * the value and the remedy.
 */
#ifndef HUGEVMM_COMMON_ERR_H
#define HUGEVMM_COMMON_ERR_H

enum err_kind {
	ERR_NONE = 0,
	ERR_RUNTIME, /* the host or the hypervisor failed: exit 1 */
	ERR_CONFIG,  /* bad input: config, CLI, files the config names: exit 2 */
	ERR_POLICY,  /* a memory policy does not hold: exit 3 */
};

struct vmm_err {
	enum err_kind kind;
	int code; /* negative errno */
	char msg[512];
};

/* Record an error (the first one wins; later calls keep it) and return @code. */
int err_set(struct vmm_err *e, enum err_kind kind, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Append context to an already recorded message: "<msg>; <more>". */
void err_append(struct vmm_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Forget a recorded error. */
void err_clear(struct vmm_err *e);

/* The process exit status for an error kind (0 for ERR_NONE). */
int err_exit_code(const struct vmm_err *e);

#endif
