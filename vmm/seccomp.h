/*
 * Confinement: one seccomp-bpf filter per thread role, built with libseccomp.
 *
 * Roles and where each filter goes on (each thread installs its own; a filter
 * is inherited by threads created after it, so the order matters):
 *   vcpu      each vCPU thread, first thing, before its first KVM_RUN;
 *   api       the API server's thread, first thing (it then only parses HTTP,
 *             talks on its accepted sockets and queues commands: anything that
 *             opens a file or probes the host runs on the VMM thread);
 *   vmm       the VMM thread (the event loop: devices' host side, API
 *             commands, metrics, drift), right after the vCPU threads started;
 *             before InstanceStart it is not confined: building a VM opens
 *             files, maps memory and creates KVM objects;
 *   prefault  the workers that touch guest RAM in parallel, while they live.
 * A call outside a role's list kills the process (SECCOMP_RET_KILL_PROCESS);
 * the kernel logs it (audit type=1326: comm, syscall number).
 *
 * A policy is either the built-in one (sc_policy_default), a file in
 * Firecracker's seccompiler JSON format (parsed in api/: it only fills the
 * structures below), or off (--no-seccomp). vmm/ never reads JSON.
 */
#ifndef HUGEVMM_VMM_SECCOMP_H
#define HUGEVMM_VMM_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sc_role { SC_ROLE_VMM, SC_ROLE_API, SC_ROLE_VCPU, SC_ROLE_PREFAULT, SC_NROLES };

/* "vmm", "api", "vcpu", "prefault" (the keys of the JSON format); NULL when out of range. */
const char *sc_role_name(enum sc_role r);
/* The role of @name, or -1. */
int sc_role_of(const char *name);

enum sc_act {
	SC_ACT_ALLOW,
	SC_ACT_KILL_PROCESS,
	SC_ACT_KILL_THREAD,
	SC_ACT_TRAP,
	SC_ACT_LOG,
	SC_ACT_ERRNO, /* data: the errno */
	SC_ACT_TRACE, /* data: the value the tracer sees */
};

struct sc_action {
	enum sc_act act;
	uint32_t data;
};

enum sc_op { SC_OP_EQ, SC_OP_NE, SC_OP_LT, SC_OP_LE, SC_OP_GT, SC_OP_GE, SC_OP_MASKED_EQ };

/* One comparison of a syscall argument (Firecracker's "args" entry). */
struct sc_cond {
	uint8_t index; /* 0..5 */
	bool dword;    /* compare the low 32 bits only ("type": "dword") */
	enum sc_op op;
	uint64_t val;
	uint64_t mask; /* SC_OP_MASKED_EQ: (arg & mask) == val */
};

#define SC_MAX_CONDS 6

/* A syscall, allowed when all its conditions hold; rules for one syscall are OR'ed. */
struct sc_rule {
	int nr; /* the syscall's number on this architecture */
	unsigned nconds;
	struct sc_cond conds[SC_MAX_CONDS];
};

struct sc_filter {
	bool present;             /* the policy has this role (a file may leave one out) */
	struct sc_action mismatch; /* no rule matched: built-in filters kill the process */
	struct sc_action match;    /* a rule matched: allow */
	unsigned nrules;
	struct sc_rule *rules; /* owned */
	/* sc_policy_compile: the program libseccomp generated for this role (owned), which
	 * each thread of the role then only loads. NULL: sc_install compiles it itself. */
	void *bpf;
	size_t bpf_len; /* bytes */
};

enum sc_source { SC_SOURCE_DEFAULT, SC_SOURCE_FILE, SC_SOURCE_OFF };

struct sc_policy {
	enum sc_source source;
	char path[4096]; /* SC_SOURCE_FILE: the file */
	struct sc_filter f[SC_NROLES];
};

/* The built-in allow-lists (x86_64). 0, or -ENOMEM. */
int sc_policy_default(struct sc_policy *p);
/* Free the rules; @p is then an empty, off policy. */
void sc_policy_free(struct sc_policy *p);
/* Append a rule to @f; 0 or -ENOMEM. */
int sc_filter_add(struct sc_filter *f, const struct sc_rule *r);

/* The syscall number of @name on this architecture, or -1 (libseccomp's table). */
int sc_syscall_nr(const char *name);
/* The name of syscall @nr, or NULL. */
const char *sc_syscall_name(int nr);

/*
 * Check that @p's filter for each role it has compiles (libseccomp), without
 * loading anything: a bad file is refused at start, not when a thread needs it.
 * 0, or a negative errno with @why naming the role and the rule.
 */
int sc_policy_check(const struct sc_policy *p, char *why, size_t whylen);

/*
 * sc_policy_check, keeping each role's program: a thread's sc_install then
 * costs one system call instead of a compilation (~2 ms each, natively). Once,
 * at start, before any thread is confined (it uses a memfd).
 */
int sc_policy_compile(struct sc_policy *p, char *why, size_t whylen);

/*
 * Confine the calling thread to @p's filter for @role: PR_SET_NO_NEW_PRIVS,
 * then the filter. Nothing happens (0) when @p is NULL, off, or has no filter
 * for @role. A negative errno with @why on failure; the thread then runs on
 * unconfined, and the caller decides (hugevmm stops the VM: it never runs a
 * guest half confined).
 */
int sc_install(const struct sc_policy *p, enum sc_role role, char *why, size_t whylen);

/*
 * What /metrics and GET / report: the policy's source, and how many threads of
 * each role installed their filter (a vCPU thread counts once per thread).
 */
struct sc_status {
	enum sc_source source;
	const char *path; /* SC_SOURCE_FILE */
	unsigned installed[SC_NROLES];
};
void sc_status(struct sc_status *s);
/* What sc_status reports as the source: set once, at start, by the CLI. */
void sc_status_set_policy(const struct sc_policy *p);

/*
 * Testing only (HUGEVMM_TEST_HOOKS=1 in the environment): when
 * HUGEVMM_TEST_FORBIDDEN is "<role>:<call>" for @role, issue the call -- "execve"
 * (of a path that does not exist), "open" (O_CREAT of a new file in /tmp) or "socket" (AF_INET) --
 * as a compromised thread would, right after its filter went on. With the
 * filter the process dies of SIGSYS here; without one the call is made and
 * logged, and the thread goes on.
 */
void sc_test_hook(enum sc_role role);

#endif
