#include "vmm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "vmm/seccomp.h"
#include "vmm/vm_priv.h"

static void kick_handler(int sig)
{
	(void)sig; /* only interrupts KVM_RUN */
}

void vcpu_signals_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: KVM_RUN must come back with EINTR. */
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
}

void vcpu_kick(struct vcpu *v)
{
	/* immediate_exit first: a thread that starts after this check exits at once. */
	v->vm->ops->kick_prepare(v->hv);
	if (vcpu_started(v))
		pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

static const char *exit_name(const struct hv_exit *x)
{
	switch (x->reason) {
	case HV_EXIT_SHUTDOWN:
		return "triple fault (shutdown)";
	case HV_EXIT_INTERNAL:
		return "internal error";
	case HV_EXIT_FAIL_ENTRY:
		return "failed entry";
	case HV_EXIT_HLT:
		return "halt";
	default:
		return "unexpected exit";
	}
}

static void seg_line(char *buf, size_t len, const char *name, const struct hv_segment *s)
{
	snprintf(buf, len, "%s=%04x base=%llx limit=%x type=%x dpl=%u db=%u l=%u p=%u", name,
		 s->selector, (unsigned long long)s->base, s->limit, s->type, s->dpl, s->db, s->l,
		 s->present);
}

/* Say what stopped the guest and where it was, then stop the VM with status 1. */
static void fatal(struct vcpu *v, const struct hv_exit *x)
{
	struct hv_regs r;
	struct hv_sregs s;
	char cs[128], ss[128];

	log_err("vCPU %u: %s (exit %u, detail 0x%llx); stopping the VM", v->id, exit_name(x),
		x->raw, (unsigned long long)x->detail);
	if (!v->vm->ops->get_regs(v->hv, &r))
		log_err("vCPU %u: rip=%016llx rsp=%016llx rflags=%08llx rax=%016llx rbx=%016llx "
			"rcx=%016llx rdx=%016llx rsi=%016llx rdi=%016llx rbp=%016llx",
			v->id, (unsigned long long)r.rip, (unsigned long long)r.rsp,
			(unsigned long long)r.rflags, (unsigned long long)r.rax,
			(unsigned long long)r.rbx, (unsigned long long)r.rcx,
			(unsigned long long)r.rdx, (unsigned long long)r.rsi,
			(unsigned long long)r.rdi, (unsigned long long)r.rbp);
	if (!v->vm->ops->get_sregs(v->hv, &s)) {
		seg_line(cs, sizeof(cs), "cs", &s.cs);
		seg_line(ss, sizeof(ss), "ss", &s.ss);
		log_err("vCPU %u: cr0=%llx cr2=%llx cr3=%llx cr4=%llx efer=%llx %s %s gdt=%llx/%x "
			"idt=%llx/%x",
			v->id, (unsigned long long)s.cr0, (unsigned long long)s.cr2,
			(unsigned long long)s.cr3, (unsigned long long)s.cr4,
			(unsigned long long)s.efer, cs, ss, (unsigned long long)s.gdt.base,
			s.gdt.limit, (unsigned long long)s.idt.base, s.idt.limit);
	}
	vm_request_stop(v->vm, VM_STOP_FATAL, 1);
}

static void unclaimed(struct vcpu *v, const char *bus, uint64_t addr, bool write)
{
	/* Linux probes many legacy ports; that is not worth more than a debug line. */
	log_debug("vCPU %u: %s %s 0x%llx: no device", v->id, write ? "write to" : "read from", bus,
		  (unsigned long long)addr);
}

static void handle_io(struct vcpu *v, struct hv_exit *x)
{
	for (uint32_t i = 0; i < x->io.count; i++) {
		uint8_t *data = x->io.data + (size_t)i * x->io.size;

		if (bus_access(&v->vm->pio, x->io.port, data, x->io.size, x->io.write))
			continue;
		if (!x->io.write)
			memset(data, 0xff, x->io.size);
		unclaimed(v, "port", x->io.port, x->io.write);
	}
}

static void handle_mmio(struct vcpu *v, struct hv_exit *x)
{
	if (x->mmio.len > 8)
		return;
	if (bus_access(&v->vm->mmio, x->mmio.addr, x->mmio.data, x->mmio.len, x->mmio.write))
		return;
	if (!x->mmio.write)
		memset(x->mmio.data, 0xff, x->mmio.len);
	unclaimed(v, "MMIO", x->mmio.addr, x->mmio.write);
}

static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	struct hv_exit x;
	char name[16], why[256];
	sigset_t set;

	/* Named as Firecracker names its own ("fc_vcpu N"): log lines and ps show it. */
	snprintf(name, sizeof(name), "vcpu %u", v->id);
	pthread_setname_np(pthread_self(), name);
	/* This thread takes only the kick; SIGINT/SIGTERM belong to vm_wait(). */
	sigfillset(&set);
	sigdelset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
	/* Confined before any guest code runs; never run a guest unconfined by mistake. */
	if (sc_install(vm->seccomp, SC_ROLE_VCPU, why, sizeof(why))) {
		log_err("vCPU %u: %s; stopping the VM (--no-seccomp runs it without filters)",
			v->id, why);
		vm_request_stop(vm, VM_STOP_FATAL, 1);
		return NULL;
	}
	sc_test_hook(SC_ROLE_VCPU);
	vm_vcpu_gate(vm);

	while (!atomic_load(&vm->stopping)) {
		uint64_t t0 = now_ns();
		int r = vm->ops->run(v->hv, &x);

		atomic_fetch_add_explicit(&v->run_ns, now_ns() - t0, memory_order_relaxed);
		if (r) {
			log_err("vCPU %u: KVM_RUN: %s", v->id, strerror(-r));
			vm_request_stop(vm, VM_STOP_FATAL, 1);
			break;
		}
		switch (x.reason) {
		case HV_EXIT_IO:
			atomic_fetch_add_explicit(&v->exits_io, 1, memory_order_relaxed);
			handle_io(v, &x);
			break;
		case HV_EXIT_MMIO:
			atomic_fetch_add_explicit(&v->exits_mmio, 1, memory_order_relaxed);
			handle_mmio(v, &x);
			break;
		case HV_EXIT_INTR:
			atomic_fetch_add_explicit(&v->exits_intr, 1, memory_order_relaxed);
			break;
		case HV_EXIT_SYSTEM_RESET:
		case HV_EXIT_SYSTEM_OFF:
			vm_request_stop(vm, VM_STOP_GUEST_RESET, 0);
			break;
		case HV_EXIT_HLT:
		case HV_EXIT_SHUTDOWN:
		case HV_EXIT_INTERNAL:
		case HV_EXIT_FAIL_ENTRY:
		case HV_EXIT_OTHER:
			atomic_fetch_add_explicit(&v->exits_other, 1, memory_order_relaxed);
			fatal(v, &x);
			break;
		}
		if (atomic_load(&vm->pause_req))
			vm_vcpu_park(vm);
	}
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	int r = pthread_create(&v->thread, NULL, vcpu_main, v);

	if (r)
		return -r;
	atomic_store_explicit(&v->started, true, memory_order_release);
	return 0;
}

bool vcpu_started(struct vcpu *v)
{
	return atomic_load_explicit(&v->started, memory_order_acquire);
}

void vcpu_mark_joined(struct vcpu *v)
{
	atomic_store_explicit(&v->started, false, memory_order_release);
}
