#include "vmm/vm.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/config_drive.h"
#include "vmm/loader.h"
#include "memory/prefault.h"
#include "vmm/machine_cfg.h"
#include "vmm/seccomp.h"
#include "vmm/vm_priv.h"
#include "vmm/vm_virtio.h"
#include "vmm/x86_boot.h"
#include "vmm/x86_cpu.h"

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A, then 'x' quits */

static void dev_irq_line(void *opaque, unsigned gsi, int level)
{
	struct vm *vm = opaque;

	vm->ops->irq_line(vm->hvm, gsi, level);
}

static void dev_request_stop(void *opaque, enum dev_stop why, int status)
{
	struct vm *vm = opaque;

	if (why == DEV_STOP_RESET) {
		vm_request_stop(vm, VM_STOP_GUEST_RESET, 0);
	} else if (why == DEV_STOP_POWER_OFF) {
		if (!atomic_load(&vm->stopping))
			log_info("guest powered off (ACPI S5)");
		vm_request_stop(vm, VM_STOP_POWER_OFF, 0);
	} else {
		vm_request_stop(vm, VM_STOP_GUEST_EXIT, status);
	}
}

static void dev_tx_ready(void *opaque)
{
	struct vm *vm = opaque;

	efd_signal(vm->tx_fd, "serial");
}

void vm_request_stop(struct vm *vm, enum vm_stop_reason why, int status)
{
	int expected = 0;

	if (!atomic_compare_exchange_strong(&vm->stopping, &expected, 1))
		return;
	vm->reason = why;
	vm->status = status;
	if (vm->stop_fd >= 0)
		efd_signal(vm->stop_fd, "stop");
	/* Parked vCPUs wake to see the stop; running ones are kicked out of the guest. */
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i].hv)
			vcpu_kick(&vm->vcpus[i]);
	/* Joining waits for this: a thread must not be signalled after it was joined. */
	pthread_mutex_lock(&vm->pause_lock);
	vm->kicked = true;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_stop(struct vm *vm)
{
	vm_request_stop(vm, VM_STOP_REQUEST, 0);
}

void vm_stop_signal(struct vm *vm)
{
	vm_request_stop(vm, VM_STOP_SIGNAL, 0);
}

enum vm_stop_reason vm_stop_reason(const struct vm *vm)
{
	return vm->reason;
}

struct guest_mem *vm_memory(struct vm *vm)
{
	return &vm->mem;
}

void vm_mmu_stats(struct vm *vm, struct hv_mmu_stats *out)
{
	vm->ops->mmu_stats(vm->hvm, out);
}

const struct hv_mmu_stats *vm_final_mmu_stats(const struct vm *vm)
{
	return &vm->final_stats;
}

static void *dev_timer(void *opaque, uint64_t ms, void (*fn)(void *arg, int res), void *arg)
{
	struct vm *vm = opaque;

	return vm->loop ? evloop_after(vm->loop, ms, fn, arg) : NULL;
}

static void dev_unwatch(void *opaque, void *t)
{
	struct vm *vm = opaque;

	if (vm->loop)
		evloop_unwatch(vm->loop, t);
}

static void *dev_watch(void *opaque, int fd, short events, void (*fn)(void *arg, int res),
		       void *arg)
{
	struct vm *vm = opaque;

	return vm->loop ? evloop_watch(vm->loop, fd, events, fn, arg) : NULL;
}

static int devices_init(struct vm *vm, struct vmm_err *e)
{
	int r;

	vm->devhost = (struct dev_host){
		.opaque = vm,
		.irq_line = dev_irq_line,
		.request_stop = dev_request_stop,
		.tx_ready = dev_tx_ready,
		.timer = dev_timer,
		.timer_cancel = dev_unwatch,
		.watch = dev_watch,
		.unwatch = dev_unwatch,
	};
	vm->pio.name = "pio";
	vm->mmio.name = "mmio";
	vm->tx_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->tx_fd < 0)
		return err_set(e, ERR_RUNTIME, -errno, "eventfd: %s", strerror(errno));
	serial_init(&vm->serial, &vm->devhost, SERIAL_COM1_IRQ);
	debug_exit_init(&vm->debug_exit, &vm->devhost);
	i8042_init(&vm->i8042, &vm->devhost);
	rtc_init(&vm->rtc);
	acpi_pm_init(&vm->acpi_pm, &vm->devhost, MACHINE_S5_TYPE);
	r = bus_register(&vm->pio, SERIAL_COM1_BASE, SERIAL_NREGS, &vm->serial.dev);
	r = r ? r : bus_register(&vm->pio, DEBUG_EXIT_PORT, 1, &vm->debug_exit.dev);
	r = r ? r : bus_register(&vm->pio, I8042_DATA_PORT, I8042_LEN, &vm->i8042.dev);
	r = r ? r : bus_register(&vm->pio, RTC_PORT, RTC_LEN, &vm->rtc.dev);
	/* The FADT's sleep control and status registers: the port pair the DSDT's \_S5 uses. */
	static_assert(MACHINE_SLEEP_STATUS_PORT == MACHINE_SLEEP_CONTROL_PORT + ACPI_PM_STATUS &&
			      MACHINE_SLP_EN == ACPI_PM_SLP_EN &&
			      MACHINE_SLP_TYP_SHIFT == ACPI_PM_SLP_TYP_SHIFT,
		      "ACPI sleep registers");
	r = r ? r : bus_register(&vm->pio, MACHINE_SLEEP_CONTROL_PORT, ACPI_PM_LEN,
				 &vm->acpi_pm.dev);
	if (r)
		return err_set(e, ERR_RUNTIME, r, "registering devices: %s", strerror(-r));
	return 0;
}

/*
 * Where the console goes. Opened last in vm_create, when nothing else can
 * fail: a failed launch must not leave an emptied or a new log file behind.
 */
static int serial_output_open(struct vm *vm, const struct vm_config *c, int console_fd,
			      struct vmm_err *e)
{
	vm->serial_fd = STDOUT_FILENO;
	if (console_fd >= 0) {
		/* An embedder's (vm_opts.console_fd): not ours to close. */
		vm->serial_fd = console_fd;
	} else if (c->serial_out[0]) {
		vm->serial_fd = open(c->serial_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (vm->serial_fd < 0)
			return err_set(e, ERR_CONFIG, -errno,
				       "serial.serial_out_path: cannot open \"%s\": %s",
				       c->serial_out, strerror(errno));
		vm->serial_owned = true;
	}
	vm->serial_tty = isatty(vm->serial_fd);
	return 0;
}

static int vcpus_init(struct vm *vm, const struct vm_config *c, const struct x86_boot_cpu *bsp,
		      const struct hv_cpuid *sup, struct vmm_err *e)
{
	struct hv_cpuid *cpuid = malloc(sizeof(*cpuid));
	struct hv_msr msrs[16];
	unsigned nmsrs = x86_boot_msrs(msrs, ARRAY_SIZE(msrs));
	int r = 0;

	vm->vcpus = calloc(c->vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus || !cpuid) {
		free(cpuid);
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	}
	for (unsigned i = 0; i < c->vcpus && !r; i++) {
		struct vcpu *v = &vm->vcpus[i];

		v->vm = vm;
		v->id = i;
		r = vm->ops->create_vcpu(vm->hvm, i, &v->hv, e);
		if (r)
			break;
		vm->nvcpus = i + 1;
		x86_cpuid_for_vcpu(sup, i, c->vcpus, cpuid);
		r = vm->ops->set_cpuid(v->hv, cpuid);
		if (r) {
			err_set(e, ERR_RUNTIME, r, "vCPU %u: setting CPUID: %s", i, strerror(-r));
			break;
		}
		/* Each MSR alone: a hypervisor without one (kvm_pvm and MTRRs) is no reason to
		 * fail. */
		for (unsigned m = 0; m < nmsrs; m++)
			if (vm->ops->set_msrs(v->hv, &msrs[m], 1))
				log_debug("vCPU %u: MSR 0x%x not settable here", i, msrs[m].index);
		r = vm->ops->init_fpu(v->hv);
		if (r) {
			err_set(e, ERR_RUNTIME, r, "vCPU %u: setting FPU state: %s", i,
				strerror(-r));
			break;
		}
		/* Only the BSP gets a boot state; APs wait for INIT/SIPI in the in-kernel LAPIC. */
		if (i == 0) {
			r = vm->ops->set_sregs(v->hv, &bsp->sregs);
			r = r ? r : vm->ops->set_regs(v->hv, &bsp->regs);
			if (r)
				err_set(e, ERR_RUNTIME, r, "vCPU 0: setting boot registers: %s",
					strerror(-r));
		}
	}
	free(cpuid);
	return r;
}

/*
 * The command line the guest gets: the config's, and the virtio-mmio devices
 * as virtio_mmio.device= entries for kernels that find them there (the DSDT
 * names them for the rest), unless the config says never or names some itself.
 */
static int boot_cmdline(struct vm *vm, const struct vm_config *c, char **out, struct vmm_err *e)
{
	char *s = malloc(CFG_CMDLINE_MAX);

	*out = s;
	if (!s)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	snprintf(s, CFG_CMDLINE_MAX, "%s", c->cmdline);
	if (vm_config_root_args(c, s, CFG_CMDLINE_MAX))
		return err_set(e, ERR_CONFIG, -E2BIG,
			       "boot-source.boot_args: no room for the root device's root= and "
			       "ro/rw words; shorten it, or name the root yourself with root=");
	if (c->virtio_cmdline == CFG_VIRTIO_CMDLINE_NEVER || strstr(s, "virtio_mmio.device="))
		return 0;
	if (machine_virtio_cmdline(&vm->machine, s, CFG_CMDLINE_MAX))
		return err_set(e, ERR_CONFIG, -E2BIG,
			       "boot-source.boot_args: no room for the virtio_mmio.device= entries "
			       "of %u devices; shorten it, or set machine-config.virtio_cmdline "
			       "\"never\" (ACPI still describes them)",
			       vm->machine.nvirtio);
	return 0;
}

/* A prefault worker's first act: its filter (it only touches guest RAM, then ends). */
static void prefault_confine(void *arg)
{
	char why[256];

	if (sc_install(arg, SC_ROLE_PREFAULT, why, sizeof(why)))
		log_warn("%s; this prefault worker runs unconfined until it ends", why);
	else
		sc_test_hook(SC_ROLE_PREFAULT);
}

int vm_create(struct vm **out, const struct vm_config *c, const struct vm_opts *opts,
	      struct vmm_err *e)
{
	struct x86_boot_info info;
	struct x86_boot_cpu bsp;
	struct kernel_image k;
	struct hv_cpuid *sup = NULL;
	char *cmdline = NULL;
	struct vm *vm;
	int r;

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	vm->ops = opts && opts->hv ? opts->hv : &kvm_hv_ops;
	vm->stop_fd = -1;
	vm->tx_fd = -1;
	vm->serial_fd = -1;
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	vm->console_input = opts && opts->console_input;
	vm->seccomp = opts ? opts->seccomp : NULL;
	memset(&k, 0, sizeof(k));

	/* Inputs first: a bad kernel must fail before any memory is mapped. */
	r = kernel_open_as(c->kernel, c->boot_protocol, &k, e);
	if (r)
		goto fail;
	r = machine_from_config(c, &vm->machine, e);
	r = r ? r : vm_virtio_open(vm, c, e);
	if (r)
		goto fail;
	prefault_set_thread_init(vm->seccomp ? prefault_confine : NULL, (void *)vm->seccomp);
	r = mem_map(&vm->mem, c->regions, c->nregions, e);
	prefault_set_thread_init(NULL, NULL);
	r = r ? r : mem_verify(&vm->mem, e);
	if (r)
		goto fail;
	r = boot_cmdline(vm, c, &cmdline, e);
	if (r)
		goto fail;
	/* The kernel and initrd must fit guest RAM: bad input, known before any hypervisor. */
	{
		struct x86_boot_cfg bc = {
			.kernel = &k,
			.cmdline = cmdline,
			.initrd_path = c->initrd,
			.vcpus = c->vcpus,
			.machine = &vm->machine,
		};

		r = x86_boot_load(&vm->mem, &bc, &bsp, &info, e);
	}
	if (r)
		goto fail;
	log_debug("loaded %s: entry 0x%llx, initrd %llu bytes at 0x%llx, %u e820 entries",
		  kernel_kind_name(k.kind), (unsigned long long)k.entry,
		  (unsigned long long)info.initrd_size, (unsigned long long)info.initrd_gpa,
		  info.e820_entries);
	kernel_close(&k);

	r = vm->ops->open(&vm->hv, e);
	r = r ? r : vm->ops->create_vm(vm->hv, &vm->hvm, e);
	if (r)
		goto fail;
	/* Only now, with every policy holding, does guest memory reach the hypervisor. */
	for (unsigned i = 0; i < vm->mem.nslots && !r; i++) {
		const struct mem_slot *s = &vm->mem.slots[i];

		r = vm->ops->set_memslot(vm->hvm, s->id, s->gpa, s->size, s->hva, e);
	}
	r = r ? r : vm->ops->create_irqchip(vm->hvm, e);
	r = r ? r : devices_init(vm, e);
	r = r ? r : vm_virtio_init(vm, c, e);
	if (r)
		goto fail;

	sup = malloc(sizeof(*sup));
	if (!sup) {
		r = err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
		goto fail;
	}
	r = vm->ops->supported_cpuid(vm->hv, sup);
	if (r) {
		err_set(e, ERR_RUNTIME, r, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-r));
		goto fail;
	}
	{
		const struct hv_cpuid_entry *l1 = x86_cpuid_find(sup, 1, 0);

		r = x86_boot_mptable(&vm->mem, c->vcpus, l1 ? l1->eax : 0, l1 ? l1->edx : 0, e);
	}
	if (r)
		goto fail;

	r = vcpus_init(vm, c, &bsp, sup, e);
	if (r)
		goto fail;
	free(sup);
	sup = NULL;
	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_fd < 0) {
		r = err_set(e, ERR_RUNTIME, -errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	r = serial_output_open(vm, c, opts && opts->console_fd ? *opts->console_fd : -1, e);
	if (r)
		goto fail;
	free(cmdline);
	*out = vm;
	return 0;
fail:
	free(sup);
	free(cmdline);
	kernel_close(&k);
	vm_destroy(vm);
	return r;
}

int vm_start(struct vm *vm, struct vmm_err *e)
{
	vcpu_signals_init();
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		int r = vcpu_start(&vm->vcpus[i]);

		if (r) {
			vm_request_stop(vm, VM_STOP_FATAL, 1);
			return err_set(e, ERR_RUNTIME, r, "starting vCPU %u thread: %s", i,
				       strerror(-r));
		}
	}
	return 0;
}

/*
 * Take the terminal only as its foreground process: in the background
 * (`hugevmm --api-sock ... &`) tcsetattr would stop the whole process with
 * SIGTTOU, and reading stdin with SIGTTIN. tcgetpgrp fails for a terminal that
 * is not our controlling one, and there is no job control to fear there.
 */
static void tty_raw(struct vm *vm)
{
	struct termios t;
	pid_t fg;

	if (!vm->console_input || !isatty(STDIN_FILENO))
		return;
	fg = tcgetpgrp(STDIN_FILENO);
	if ((fg >= 0 && fg != getpgrp()) || tcgetattr(STDIN_FILENO, &vm->tty_saved))
		return;
	t = vm->tty_saved;
	cfmakeraw(&t);
	if (!tcsetattr(STDIN_FILENO, TCSANOW, &t))
		vm->tty_raw = true;
}

static void tty_restore(struct vm *vm)
{
	sigset_t ttou, old;

	if (!vm->tty_raw)
		return;
	/* Moved to the background meanwhile? With SIGTTOU blocked the restore still happens. */
	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	pthread_sigmask(SIG_BLOCK, &ttou, &old);
	tcsetattr(STDIN_FILENO, TCSANOW, &vm->tty_saved);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	vm->tty_raw = false;
}

static void on_input_timer(void *arg, int res);

/* Hand waiting console input to the UART as far as its FIFO has room; retry soon if not all fit. */
static void console_feed(struct vm *vm)
{
	size_t n = vm->in_len ? serial_rx(&vm->serial, vm->in_pending, vm->in_len) : 0;

	memmove(vm->in_pending, vm->in_pending + n, vm->in_len - n);
	vm->in_len -= n;
	if (vm->in_len && !vm->t_in)
		vm->t_in = evloop_after(vm->loop, 10, on_input_timer, vm);
}

static void on_input_timer(void *arg, int res)
{
	struct vm *vm = arg;

	(void)res;
	vm->t_in = NULL; /* a fired timer's handle is gone */
	console_feed(vm);
}

/*
 * Console input: bytes to the UART; Ctrl-A x quits, Ctrl-A Ctrl-A sends one
 * Ctrl-A. stdin is always read, so the escape works even when the guest has
 * stopped reading; what neither the FIFO nor the pending buffer holds is dropped.
 */
static void on_stdin(void *arg, int res)
{
	struct vm *vm = arg;
	uint8_t buf[256];
	ssize_t got = res > 0 ? read(STDIN_FILENO, buf, sizeof(buf)) : -1;

	if (got <= 0) {
		/* EOF or an error: stop watching stdin. */
		evloop_unwatch(vm->loop, vm->w_in);
		vm->w_in = NULL;
		return;
	}
	for (ssize_t i = 0; i < got; i++) {
		if (vm->escape) {
			vm->escape = false;
			if (buf[i] == 'x') {
				vm_request_stop(vm, VM_STOP_ESCAPE, 0);
				return;
			}
			if (buf[i] != CONSOLE_ESCAPE)
				continue;
		} else if (buf[i] == CONSOLE_ESCAPE) {
			vm->escape = true;
			continue;
		}
		if (vm->in_len < sizeof(vm->in_pending))
			vm->in_pending[vm->in_len++] = buf[i];
		else
			vm->in_dropped = true; /* reported once, at the end */
	}
	console_feed(vm);
}

static void on_out_ready(void *arg, int res);

/* Watch the console for writability only while output waits. */
static void want_output(struct vm *vm, bool want)
{
	if (want && !vm->w_out && vm->serial_fd >= 0)
		vm->w_out = evloop_watch(vm->loop, vm->serial_fd, POLLOUT, on_out_ready, vm);
	else if (!want && vm->w_out) {
		evloop_unwatch(vm->loop, vm->w_out);
		vm->w_out = NULL;
	}
}

/* Write waiting guest output; small pieces to a terminal so a write never blocks long. */
static void on_out_ready(void *arg, int res)
{
	struct vm *vm = arg;
	ssize_t w = serial_drain(&vm->serial, vm->serial_fd, vm->serial_tty ? 256 : 4096);

	(void)res;
	if (w < 0 && w != -EAGAIN && w != -EINTR) {
		log_warn("console output: %s; guest output is discarded from now on",
			 strerror((int)-w));
		want_output(vm, false);
		if (vm->serial_owned)
			close(vm->serial_fd);
		vm->serial_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		vm->serial_owned = vm->serial_fd >= 0;
	}
	want_output(vm, serial_tx_pending(&vm->serial) > 0);
}

static void on_tx(void *arg, int res)
{
	struct vm *vm = arg;

	(void)res;
	efd_drain(vm->tx_fd, "serial");
	want_output(vm, serial_tx_pending(&vm->serial) > 0);
}

static void on_stop_fd(void *arg, int res)
{
	struct vm *vm = arg;

	(void)res;
	efd_drain(vm->stop_fd, "stop");
	/* Once is enough: the controller takes it from here. */
	evloop_unwatch(vm->loop, vm->w_stop);
	vm->w_stop = NULL;
	vm->on_stop(vm->on_stop_arg);
}

int vm_attach(struct vm *vm, struct evloop *loop, void (*on_stop)(void *arg), void *arg,
	      struct vmm_err *e)
{
	vm->loop = loop;
	vm->on_stop = on_stop;
	vm->on_stop_arg = arg;
	vm->w_stop = evloop_watch(loop, vm->stop_fd, POLLIN, on_stop_fd, vm);
	vm->w_tx = evloop_watch(loop, vm->tx_fd, POLLIN, on_tx, vm);
	if (!vm->w_stop || !vm->w_tx)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "cannot watch the VM's event fds");
	tty_raw(vm);
	if (vm->tty_raw)
		vm->w_in = evloop_watch(loop, STDIN_FILENO, POLLIN, on_stdin, vm);
	/* Output may already wait (written before the loop ran). */
	want_output(vm, serial_tx_pending(&vm->serial) > 0);
	return vm_virtio_attach(vm, e);
}

/* At stop: write what is left, but never wait long for a stuck reader. */
static void console_flush(struct vm *vm)
{
	struct pollfd p = {.fd = vm->serial_fd, .events = POLLOUT};
	size_t left;

	while ((left = serial_tx_pending(&vm->serial)) && vm->serial_fd >= 0) {
		if (poll(&p, 1, 200) <= 0) {
			log_warn(
				"console output: %zu bytes not written (the reader is not reading)",
				left);
			return;
		}
		if (serial_drain(&vm->serial, vm->serial_fd, vm->serial_tty ? 256 : 4096) <= 0)
			return;
	}
}

/* Stop every vCPU thread and wait for it; then read KVM's counts while the VM still exists. */
static void halt_vcpus(struct vm *vm)
{
	if (!vm->nvcpus)
		return;
	vm_request_stop(vm, VM_STOP_REQUEST, vm->status);
	/* Whoever won the stop (maybe a vCPU thread) must be done kicking before the joins. */
	pthread_mutex_lock(&vm->pause_lock);
	while (!vm->kicked)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (!vcpu_started(&vm->vcpus[i]))
			continue;
		pthread_join(vm->vcpus[i].thread, NULL);
		vcpu_mark_joined(&vm->vcpus[i]);
	}
	if (vm->hvm && !vm->final_stats.available && !vm->final_stats.reason[0])
		vm->ops->mmu_stats(vm->hvm, &vm->final_stats);
}

/* Leave the loop: every watch and timer of this VM goes. */
static void detach(struct vm *vm)
{
	if (!vm->loop)
		return;
	vm_virtio_detach(vm);
	evloop_unwatch(vm->loop, vm->w_stop);
	evloop_unwatch(vm->loop, vm->w_tx);
	evloop_unwatch(vm->loop, vm->w_out);
	evloop_unwatch(vm->loop, vm->w_in);
	evloop_unwatch(vm->loop, vm->t_in);
	vm->w_stop = vm->w_tx = vm->w_out = vm->w_in = vm->t_in = NULL;
	vm->loop = NULL;
}

int vm_finish(struct vm *vm)
{
	if (vm->finished)
		return vm->status;
	vm->finished = true;
	halt_vcpus(vm);
	detach(vm);
	if (vm->in_dropped)
		log_warn("console input: the guest did not read it; some was dropped");
	tty_restore(vm);
	console_flush(vm);
	return vm->status;
}

void vm_vcpu_gate(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	while (!vm->gate_open && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_open_gate(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->gate_open = true;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_vcpu_park(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (atomic_load(&vm->pause_req) && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->parked--;
	pthread_mutex_unlock(&vm->pause_lock);
}

int vm_pause(struct vm *vm, struct vmm_err *e)
{
	struct timespec deadline;
	unsigned running = 0;
	int r = 0;

	atomic_store(&vm->pause_req, true);
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (vcpu_started(&vm->vcpus[i])) {
			running++;
			vcpu_kick(&vm->vcpus[i]);
		}
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->parked < running && !atomic_load(&vm->stopping) && r == 0)
		r = pthread_cond_timedwait(&vm->pause_cond, &vm->pause_lock, &deadline);
	pthread_mutex_unlock(&vm->pause_lock);
	if (atomic_load(&vm->stopping))
		return err_set(e, ERR_RUNTIME, -ESHUTDOWN, "the VM is stopping");
	if (r) {
		vm_resume(vm);
		return err_set(
			e, ERR_RUNTIME, -ETIMEDOUT,
			"the vCPUs did not leave the guest within 5 s; the VM keeps running");
	}
	return 0;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	atomic_store(&vm->pause_req, false);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

int vm_ctrl_alt_del(struct vm *vm, struct vmm_err *e)
{
	if (i8042_ctrl_alt_del(&vm->i8042))
		return err_set(
			e, ERR_RUNTIME, -ENOSPC,
			"the guest's keyboard buffer is full; it is not reading its keyboard");
	return 0;
}

void vm_metrics(struct vm *vm, struct vm_metrics *m)
{
	memset(m, 0, sizeof(*m));
	m->vcpus = vm->nvcpus;
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		m->exits_io += atomic_load_explicit(&v->exits_io, memory_order_relaxed);
		m->exits_mmio += atomic_load_explicit(&v->exits_mmio, memory_order_relaxed);
		m->exits_intr += atomic_load_explicit(&v->exits_intr, memory_order_relaxed);
		m->exits_other += atomic_load_explicit(&v->exits_other, memory_order_relaxed);
		m->run_ns += atomic_load_explicit(&v->run_ns, memory_order_relaxed);
	}
	pthread_mutex_lock(&vm->serial.lock);
	m->serial_tx_bytes = vm->serial.tx_bytes;
	m->serial_tx_dropped = vm->serial.tx_dropped;
	m->serial_rx_bytes = vm->serial.rx_bytes;
	pthread_mutex_unlock(&vm->serial.lock);
	vm_virtio_metrics(vm, m);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	if (!vm->finished) {
		halt_vcpus(vm);
		detach(vm);
		tty_restore(vm);
	}
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vm->ops->destroy_vcpu(vm->vcpus[i].hv);
	free(vm->vcpus);
	vm->vcpus = NULL;
	vm->nvcpus = 0;
	bus_exit(&vm->pio);
	bus_exit(&vm->mmio);
	if (vm->hvm)
		vm->ops->destroy_vm(vm->hvm);
	vm->hvm = NULL;
	/* After the VM: its ioeventfds and irqfds went with it. */
	vm_virtio_destroy(vm);
	mem_unmap(&vm->mem);
	if (vm->hv)
		vm->ops->close(vm->hv);
	vm->hv = NULL;
	if (vm->serial_owned && vm->serial_fd >= 0)
		close(vm->serial_fd);
	if (vm->stop_fd >= 0)
		close(vm->stop_fd);
	if (vm->tx_fd >= 0)
		close(vm->tx_fd);
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->pause_lock);
	free(vm);
}
