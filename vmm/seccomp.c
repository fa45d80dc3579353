#include "vmm/seccomp.h"

#include <asm/ioctls.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <unistd.h>

#include "common/compat.h"
#include "common/log.h"
#include "common/util.h"
#include "vmm/kvm.h"

static const char *const role_names[SC_NROLES] = {
	[SC_ROLE_VMM] = "vmm",
	[SC_ROLE_API] = "api",
	[SC_ROLE_VCPU] = "vcpu",
	[SC_ROLE_PREFAULT] = "prefault",
};

const char *sc_role_name(enum sc_role r)
{
	return (unsigned)r < SC_NROLES ? role_names[r] : NULL;
}

int sc_role_of(const char *name)
{
	for (int i = 0; i < SC_NROLES; i++)
		if (name && !strcmp(name, role_names[i]))
			return i;
	return -1;
}

int sc_syscall_nr(const char *name)
{
	int nr = seccomp_syscall_resolve_name(name);

	return nr == __NR_SCMP_ERROR || nr < 0 ? -1 : nr;
}

const char *sc_syscall_name(int nr)
{
	static _Thread_local char buf[32];
	char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

	if (!s)
		return NULL;
	snprintf(buf, sizeof(buf), "%s", s);
	free(s);
	return buf;
}

int sc_filter_add(struct sc_filter *f, const struct sc_rule *r)
{
	struct sc_rule *n;

	if (f->nrules % 32 == 0) {
		n = realloc(f->rules, (f->nrules + 32) * sizeof(*n));
		if (!n)
			return -ENOMEM;
		f->rules = n;
	}
	f->rules[f->nrules++] = *r;
	return 0;
}

void sc_policy_free(struct sc_policy *p)
{
	for (int i = 0; i < SC_NROLES; i++) {
		free(p->f[i].rules);
		free(p->f[i].bpf);
	}
	memset(p, 0, sizeof(*p));
	p->source = SC_SOURCE_OFF;
}

/* ---- the built-in allow-lists ---- */

/* O_TMPFILE's own bit (glibc's __O_TMPFILE carries O_DIRECTORY too: opendir must pass). */
#define TMPFILE_BIT 020000000

/* Every thread: memory for malloc (never executable), locks, time, logging, its own end. */
static const int base_calls[] = {
	SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_close, SYS_futex, SYS_clock_gettime,
	SYS_clock_nanosleep, SYS_nanosleep, SYS_gettimeofday, SYS_getpid, SYS_gettid,
	SYS_getrandom, SYS_madvise, SYS_munmap, SYS_brk, SYS_mremap, SYS_rt_sigreturn,
	SYS_rt_sigprocmask, SYS_exit, SYS_exit_group, SYS_sched_yield, SYS_restart_syscall,
	SYS_sched_getaffinity, SYS_fstat, SYS_newfstatat, SYS_lseek,
};

/* The VMM thread: the devices' host side, API commands, metrics, drift, shutdown. */
static const int vmm_calls[] = {
	SYS_io_uring_enter, SYS_pread64, SYS_pwrite64, SYS_preadv, SYS_pwritev, SYS_fcntl,
	SYS_statx, SYS_faccessat, SYS_faccessat2, SYS_readlinkat, SYS_readlink, SYS_getdents64,
	SYS_uname, SYS_statfs, SYS_fstatfs, SYS_flock, SYS_fallocate, SYS_mincore, SYS_fsync,
	SYS_fdatasync, SYS_connect, SYS_accept4, SYS_sendmsg, SYS_sendto, SYS_recvfrom,
	SYS_recvmsg, SYS_shutdown, SYS_getsockopt, SYS_setsockopt, SYS_getsockname,
	SYS_getpeername, SYS_unlink, SYS_unlinkat, SYS_rt_sigaction, SYS_ppoll, SYS_poll,
	SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_sysinfo, SYS_eventfd2, SYS_access,
};

/* The API thread: its accepted connections, its ring, the VMM's queue. */
static const int api_calls[] = {
	SYS_io_uring_enter, SYS_accept4, SYS_recvfrom, SYS_sendto, SYS_recvmsg, SYS_sendmsg,
	SYS_shutdown, SYS_fcntl, SYS_getsockopt,
};

/* Besides KVM's own (vmm/kvm.c lists those): a device's exit may set the tap's offloads. */
static const unsigned long vcpu_ioctls[] = {TUNSETOFFLOAD};

/* Besides KVM's: tap offloads, a drive's size, the measurement, the terminal at exit. */
static const unsigned long vmm_ioctls[] = {
	TUNSETOFFLOAD, BLKGETSIZE64, BLKSSZGET, PAGEMAP_SCAN, TCGETS,  TCSETS,
	TCSETSW,       TCSETSF,      FIONREAD,  FIONBIO,
};

/*
 * A sanitizer build's runtime makes calls of its own (LeakSanitizer's check at
 * exit stops the world with a tracer thread and reads /proc/self/maps); they
 * are allowed to every role in that build only.
 */
#if defined(__SANITIZE_ADDRESS__)
static const int san_calls[] = {
	SYS_sigaltstack, SYS_rt_sigaction, SYS_prctl,     SYS_getdents64, SYS_readlink,
	SYS_readlinkat,  SYS_ptrace,       SYS_wait4,     SYS_waitid,     SYS_pipe2,
	SYS_dup,         SYS_dup2,         SYS_dup3,      SYS_process_vm_readv,
	SYS_uname,       SYS_getppid,      SYS_kill,      SYS_fcntl,      SYS_statx,
	SYS_stat,        SYS_lstat,        SYS_getdents,  SYS_access,     SYS_sched_getaffinity,
};
#endif

static int add_calls(struct sc_filter *f, const int *nr, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct sc_rule r = {.nr = nr[i]};
		int rc = sc_filter_add(f, &r);

		if (rc)
			return rc;
	}
	return 0;
}

static int add_if(struct sc_filter *f, int nr, uint8_t idx, enum sc_op op, uint64_t val,
		  uint64_t mask)
{
	struct sc_rule r = {.nr = nr, .nconds = 1};

	r.conds[0] = (struct sc_cond){.index = idx, .op = op, .val = val, .mask = mask};
	return sc_filter_add(f, &r);
}

static int add_ioctls(struct sc_filter *f, const unsigned long *req, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = add_if(f, SYS_ioctl, 1, SC_OP_EQ, req[i], 0);

		if (rc)
			return rc;
	}
	return 0;
}

static int fill_role(struct sc_filter *f, enum sc_role role)
{
	const unsigned long *kvm;
	size_t n;
	int r;

	f->present = true;
	f->mismatch = (struct sc_action){SC_ACT_KILL_PROCESS, 0};
	f->match = (struct sc_action){SC_ACT_ALLOW, 0};
	r = add_calls(f, base_calls, ARRAY_SIZE(base_calls));
	/* Memory, never executable: no new code reaches a confined thread. */
	r = r ? r : add_if(f, SYS_mmap, 2, SC_OP_MASKED_EQ, 0, PROT_EXEC);
	r = r ? r : add_if(f, SYS_mprotect, 2, SC_OP_MASKED_EQ, 0, PROT_EXEC);
	/* Signals to this process's own threads only (abort(), the vCPU kick). */
	r = r ? r : add_if(f, SYS_tgkill, 0, SC_OP_EQ, (uint64_t)getpid(), 0);
	/* Its own name, for Firecracker-format log lines (pthread_getname_np); nothing else. */
	r = r ? r : add_if(f, SYS_prctl, 0, SC_OP_EQ, PR_GET_NAME, 0);
	switch (role) {
	case SC_ROLE_VMM:
		r = r ? r : add_calls(f, vmm_calls, ARRAY_SIZE(vmm_calls));
		r = r ? r : add_ioctls(f, vmm_ioctls, ARRAY_SIZE(vmm_ioctls));
		n = kvm_vmm_ioctls(&kvm);
		r = r ? r : add_ioctls(f, kvm, n);
		/* Files it already may use (a drive's new image, /proc/self), never a new one. */
		r = r ? r : add_if(f, SYS_openat, 2, SC_OP_MASKED_EQ, 0, O_CREAT | TMPFILE_BIT);
		/* Unix sockets only (vsock's guest-initiated connections). */
		r = r ? r : add_if(f, SYS_socket, 0, SC_OP_EQ, AF_UNIX, 0);
		/* Limits read, never set. */
		r = r ? r : add_if(f, SYS_prlimit64, 2, SC_OP_EQ, 0, 0);
		break;
	case SC_ROLE_API:
		r = r ? r : add_calls(f, api_calls, ARRAY_SIZE(api_calls));
		break;
	case SC_ROLE_VCPU:
		r = r ? r : add_ioctls(f, vcpu_ioctls, ARRAY_SIZE(vcpu_ioctls));
		n = kvm_vcpu_ioctls(&kvm);
		r = r ? r : add_ioctls(f, kvm, n);
		break;
	case SC_ROLE_PREFAULT:
	case SC_NROLES:
		break;
	}
#if defined(__SANITIZE_ADDRESS__)
	r = r ? r : add_calls(f, san_calls, ARRAY_SIZE(san_calls));
	/* Its tracer thread (CLONE_VM: never a fork), its reads of /proc (never a new file). */
	r = r ? r : add_if(f, SYS_clone, 0, SC_OP_MASKED_EQ, CLONE_VM, CLONE_VM);
	r = r ? r : add_if(f, SYS_open, 1, SC_OP_MASKED_EQ, 0, O_CREAT | TMPFILE_BIT);
	r = r ? r : add_if(f, SYS_openat, 2, SC_OP_MASKED_EQ, 0, O_CREAT | TMPFILE_BIT);
	r = r ? r : add_if(f, SYS_prlimit64, 2, SC_OP_EQ, 0, 0);
#endif
	return r;
}

int sc_policy_default(struct sc_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->source = SC_SOURCE_DEFAULT;
	for (int i = 0; i < SC_NROLES; i++) {
		int r = fill_role(&p->f[i], (enum sc_role)i);

		if (r) {
			sc_policy_free(p);
			return r;
		}
	}
	return 0;
}

/* ---- libseccomp ---- */

static uint32_t scmp_action(struct sc_action a)
{
	switch (a.act) {
	case SC_ACT_ALLOW:
		return SCMP_ACT_ALLOW;
	case SC_ACT_KILL_PROCESS:
		return SCMP_ACT_KILL_PROCESS;
	case SC_ACT_KILL_THREAD:
		return SCMP_ACT_KILL_THREAD;
	case SC_ACT_TRAP:
		return SCMP_ACT_TRAP;
	case SC_ACT_LOG:
		return SCMP_ACT_LOG;
	case SC_ACT_ERRNO:
		return SCMP_ACT_ERRNO(a.data);
	case SC_ACT_TRACE:
		return SCMP_ACT_TRACE(a.data);
	}
	return SCMP_ACT_KILL_PROCESS;
}

static enum scmp_compare scmp_op(enum sc_op op)
{
	static const enum scmp_compare t[] = {
		[SC_OP_EQ] = SCMP_CMP_EQ, [SC_OP_NE] = SCMP_CMP_NE, [SC_OP_LT] = SCMP_CMP_LT,
		[SC_OP_LE] = SCMP_CMP_LE, [SC_OP_GT] = SCMP_CMP_GT, [SC_OP_GE] = SCMP_CMP_GE,
		[SC_OP_MASKED_EQ] = SCMP_CMP_MASKED_EQ,
	};

	return t[op];
}

static struct scmp_arg_cmp scmp_cond(const struct sc_cond *c)
{
	struct scmp_arg_cmp a = {.arg = c->index, .op = scmp_op(c->op)};
	uint64_t width = c->dword ? 0xffffffffull : ~0ull;

	if (c->op == SC_OP_MASKED_EQ) {
		a.datum_a = c->mask & width;
		a.datum_b = c->val & width;
	} else if (c->dword && c->op == SC_OP_EQ) {
		/* Only the low 32 bits count: a masked compare. */
		a.op = SCMP_CMP_MASKED_EQ;
		a.datum_a = width;
		a.datum_b = c->val & width;
	} else {
		a.datum_a = c->val & width;
	}
	return a;
}

/*
 * Testing only: HUGEVMM_TEST_HOOKS=1 and HUGEVMM_SECCOMP_LOG=1 turn every
 * mismatch into a trap whose handler prints the thread and the call on stderr
 * ("hugevmm: seccomp-log: <thread> syscall <nr>") and makes the call fail
 * with ENOSYS, so one run finds what the lists lack without dying at the first.
 * (The kernel's own log, audit type=1326, records only calls that kill or trap.)
 */
static bool log_only(void)
{
	const char *h = getenv("HUGEVMM_TEST_HOOKS"), *l = getenv("HUGEVMM_SECCOMP_LOG");

	return h && !strcmp(h, "1") && l && !strcmp(l, "1");
}

/* HUGEVMM_SECCOMP_LOG_FILE: where the trap's lines go too (the harness collects them). */
static int trap_log_fd = -1;

static void put_num(char **p, unsigned long v)
{
	char t[24];
	int n = 0;

	do
		t[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < (int)sizeof(t));
	while (n)
		*(*p)++ = t[--n];
}

/* Async-signal-safe: raw writes only. */
static void on_sigsys(int sig, siginfo_t *si, void *uc_)
{
	ucontext_t *uc = uc_;
	char line[128], name[17] = {0}, *p = line;
	static const char head[] = "hugevmm: seccomp-log: ";

	(void)sig;
	prctl(PR_GET_NAME, name, 0, 0, 0);
	memcpy(p, head, sizeof(head) - 1);
	p += sizeof(head) - 1;
	for (const char *s = name; *s; s++)
		*p++ = *s == ' ' ? '_' : *s;
	memcpy(p, " syscall ", 9);
	p += 9;
	put_num(&p, (unsigned long)si->si_syscall);
	*p++ = '\n';
	(void)!write(2, line, (size_t)(p - line));
	if (trap_log_fd >= 0)
		(void)!write(trap_log_fd, line, (size_t)(p - line));
	uc->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
}

static void trap_handler_once(void)
{
	static atomic_bool done;
	struct sigaction sa;

	if (atomic_exchange(&done, true))
		return;
	if (getenv("HUGEVMM_SECCOMP_LOG_FILE"))
		trap_log_fd = open(getenv("HUGEVMM_SECCOMP_LOG_FILE"),
				   O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSYS, &sa, NULL);
}

/* @f as a libseccomp context, or NULL with @why. */
static scmp_filter_ctx build(const struct sc_filter *f, enum sc_role role, char *why,
			     size_t whylen, int *err)
{
	scmp_filter_ctx ctx =
		seccomp_init(log_only() ? SCMP_ACT_TRAP : scmp_action(f->mismatch));
	uint32_t match = scmp_action(f->match);

	*err = -ENOMEM;
	if (!ctx) {
		snprintf(why, whylen, "seccomp: %s: out of memory", role_names[role]);
		return NULL;
	}
	for (unsigned i = 0; i < f->nrules; i++) {
		const struct sc_rule *r = &f->rules[i];
		struct scmp_arg_cmp c[SC_MAX_CONDS];
		const char *n = sc_syscall_name(r->nr);
		int rc;

		for (unsigned k = 0; k < r->nconds && k < SC_MAX_CONDS; k++) {
			const struct sc_cond *sc = &r->conds[k];

			/* libseccomp compares 64 bits: a low-half compare exists only as masked_eq. */
			if (sc->dword && sc->op != SC_OP_EQ && sc->op != SC_OP_MASKED_EQ) {
				snprintf(why, whylen,
					 "seccomp: %s: rule %u (%s): argument %u: a \"dword\" "
					 "comparison can only be eq or masked_eq (the low 32 bits "
					 "alone cannot be ordered); use \"qword\"",
					 role_names[role], i, n ? n : "?", sc->index);
				seccomp_release(ctx);
				*err = -EINVAL;
				return NULL;
			}
			c[k] = scmp_cond(sc);
		}
		if (!n) {
			snprintf(why, whylen, "seccomp: %s: rule %u: %d is not a system call here",
				 role_names[role], i, r->nr);
			seccomp_release(ctx);
			*err = -EINVAL;
			return NULL;
		}
		/* A rule whose action is the default's would be refused by libseccomp: skip it. */
		if (match == scmp_action(f->mismatch))
			continue;
		rc = seccomp_rule_add_array(ctx, match, r->nr, r->nconds, c);
		if (rc) {
			snprintf(why, whylen, "seccomp: %s: rule %u (%s, %u argument condition%s): %s",
				 role_names[role], i, n ? n : "?", r->nconds,
				 r->nconds == 1 ? "" : "s", strerror(-rc));
			seccomp_release(ctx);
			*err = rc;
			return NULL;
		}
	}
	*err = 0;
	return ctx;
}

int sc_policy_check(const struct sc_policy *p, char *why, size_t whylen)
{
	if (!p || p->source == SC_SOURCE_OFF)
		return 0;
	for (int i = 0; i < SC_NROLES; i++) {
		scmp_filter_ctx ctx;
		int err;

		if (!p->f[i].present)
			continue;
		ctx = build(&p->f[i], (enum sc_role)i, why, whylen, &err);
		if (!ctx)
			return err;
		seccomp_release(ctx);
	}
	return 0;
}

/* libseccomp's program for @ctx, into a buffer of our own (2.5 exports only to an fd). */
static int export_bpf(scmp_filter_ctx ctx, void **out, size_t *len)
{
	int fd = memfd_create("hugevmm-seccomp", MFD_CLOEXEC), r;
	struct stat st;
	void *buf;

	if (fd < 0)
		return -errno;
	r = seccomp_export_bpf(ctx, fd);
	if (!r && fstat(fd, &st))
		r = -errno;
	if (!r && (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter)))
		r = -EINVAL;
	buf = r ? NULL : malloc((size_t)st.st_size);
	if (!r && !buf)
		r = -ENOMEM;
	if (!r && pread(fd, buf, (size_t)st.st_size, 0) != st.st_size)
		r = -EIO;
	close(fd);
	if (r) {
		free(buf);
		return r;
	}
	*out = buf;
	*len = (size_t)st.st_size;
	return 0;
}

int sc_policy_compile(struct sc_policy *p, char *why, size_t whylen)
{
	if (!p || p->source == SC_SOURCE_OFF)
		return 0;
	for (int i = 0; i < SC_NROLES; i++) {
		struct sc_filter *f = &p->f[i];
		scmp_filter_ctx ctx;
		int err;

		if (!f->present)
			continue;
		ctx = build(f, (enum sc_role)i, why, whylen, &err);
		if (!ctx)
			return err;
		free(f->bpf);
		f->bpf = NULL;
		err = export_bpf(ctx, &f->bpf, &f->bpf_len);
		seccomp_release(ctx);
		if (err) {
			snprintf(why, whylen, "seccomp: %s: exporting the filter: %s",
				 role_names[i], strerror(-err));
			return err;
		}
	}
	return 0;
}

static atomic_uint installed[SC_NROLES];
/* One per role: the VMM thread and the first vCPU compile theirs at the same time. */
static pthread_mutex_t compile_lock[SC_NROLES] = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
	PTHREAD_MUTEX_INITIALIZER,
};
static enum sc_source status_source = SC_SOURCE_OFF;
static char status_path[4096];

int sc_install(const struct sc_policy *p, enum sc_role role, char *why, size_t whylen)
{
	scmp_filter_ctx ctx;
	int r;

	if (!p || p->source == SC_SOURCE_OFF || (unsigned)role >= SC_NROLES || !p->f[role].present)
		return 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		r = -errno;
		snprintf(why, whylen, "seccomp: %s: PR_SET_NO_NEW_PRIVS: %s", role_names[role],
			 strerror(-r));
		return r;
	}
	if (log_only()) {
		sigset_t sys;

		trap_handler_once();
		/* A blocked SIGSYS from a trap would kill: vCPU threads block everything else. */
		sigemptyset(&sys);
		sigaddset(&sys, SIGSYS);
		pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
	}
	{
		/*
		 * The program is compiled by the role's first thread (still unconfined) unless
		 * sc_policy_compile did it at start, and kept for the others: the built-in policy
		 * is not compiled at start, so a VM pays only for the roles it has (no API
		 * socket, no prefault workers: two compilations, not four).
		 */
		struct sc_filter *f = (struct sc_filter *)&p->f[role];
		struct sock_fprog prog = {0};

		r = 0;
		pthread_mutex_lock(&compile_lock[role]);
		if (!f->bpf) {
			ctx = build(f, role, why, whylen, &r);
			if (ctx) {
				r = export_bpf(ctx, &f->bpf, &f->bpf_len);
				seccomp_release(ctx);
			} else {
				pthread_mutex_unlock(&compile_lock[role]);
				return r;
			}
		}
		prog.len = (unsigned short)(f->bpf_len / sizeof(struct sock_filter));
		prog.filter = f->bpf;
		pthread_mutex_unlock(&compile_lock[role]);
		/* Only the load (NO_NEW_PRIVS is set above). */
		if (!r && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
			r = -errno;
	}
	if (r) {
		snprintf(why, whylen, "seccomp: %s: loading the filter: %s", role_names[role],
			 strerror(-r));
		return r;
	}
	atomic_fetch_add(&installed[role], 1);
	return 0;
}

void sc_status_set_policy(const struct sc_policy *p)
{
	status_source = p ? p->source : SC_SOURCE_OFF;
	snprintf(status_path, sizeof(status_path), "%s",
		 p && p->source == SC_SOURCE_FILE ? p->path : "");
}

void sc_status(struct sc_status *s)
{
	s->source = status_source;
	s->path = status_source == SC_SOURCE_FILE ? status_path : NULL;
	for (int i = 0; i < SC_NROLES; i++)
		s->installed[i] = atomic_load(&installed[i]);
}

void sc_test_hook(enum sc_role role)
{
	const char *on = getenv("HUGEVMM_TEST_HOOKS"), *what = getenv("HUGEVMM_TEST_FORBIDDEN");
	const char *name = sc_role_name(role), *colon;
	char path[64];
	int fd;

	if (!on || strcmp(on, "1") || !what || !name || !(colon = strchr(what, ':')) ||
	    (size_t)(colon - what) != strlen(name) || strncmp(what, name, strlen(name)))
		return;
	colon++;
	log_warn("test hook: the %s thread issues the forbidden call %s", name, colon);
	if (!strcmp(colon, "execve")) {
		/* A path that does not exist: without a filter the call fails and the VM goes on. */
		char *const argv[] = {(char *)"/nonexistent/hugevmm-forbidden", NULL};

		execve(argv[0], argv, NULL);
		log_warn("test hook: execve returned: %s", strerror(errno));
	} else if (!strcmp(colon, "open")) {
		snprintf(path, sizeof(path), "/tmp/hugevmm-forbidden-%d-%s", (int)getpid(), name);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		log_warn("test hook: open(%s): %s", path, fd >= 0 ? "created" : strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
	} else if (!strcmp(colon, "socket")) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		log_warn("test hook: socket(AF_INET): %s", fd >= 0 ? "made" : strerror(errno));
		if (fd >= 0)
			close(fd);
	} else {
		log_warn("test hook: unknown call \"%s\" (execve, open or socket)", colon);
	}
}
