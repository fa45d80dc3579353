/* The VM's internals, shared by vmm/vm.c and vmm/vcpu.c only. */
#ifndef HUGEVMM_VMM_VM_PRIV_H
#define HUGEVMM_VMM_VM_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <termios.h>

#include "devices/acpi_pm.h"
#include "devices/bus.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "devices/sysctl_ports.h"
#include "vmm/machine.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

struct vm {
	const struct hv_ops *ops;
	const struct sc_policy *seccomp; /* vm_opts.seccomp */
	bool gate_open; /* vm_open_gate(): vCPUs may enter the guest (under pause_lock) */
	struct hv *hv;
	struct hv_vm *hvm;
	struct guest_mem mem;
	struct bus pio, mmio;
	struct dev_host devhost;
	struct serial serial;
	struct debug_exit debug_exit;
	struct i8042 i8042;
	struct rtc rtc;
	struct acpi_pm acpi_pm;
	struct machine machine; /* what the guest is told it has (the ACPI tables) */
	struct vm_vdev *vdevs;  /* its virtio devices, in machine.virtio's order */
	unsigned nvdevs;
	struct blk_engine *blk; /* the drives' io_uring (NULL without drives) */
	struct mem_reclaim reclaim; /* with a balloon: what the guest gives back */
	struct virtio_balloon *balloon;
	struct ev_handle *w_blk;
	int serial_fd;     /* where guest serial output goes */
	bool serial_owned; /* serial_fd is ours to close */
	bool serial_tty;   /* serial_fd is a terminal: write in small pieces */
	int tx_fd;         /* eventfd: guest output is waiting */
	bool console_input;
	uint8_t in_pending[4096]; /* console input the UART had no room for yet */
	size_t in_len;
	bool in_dropped;

	struct vcpu *vcpus;
	unsigned nvcpus;

	int stop_fd; /* eventfd: the VM wants to stop */
	atomic_int stopping;
	enum vm_stop_reason reason;
	int status;
	struct hv_mmu_stats final_stats;

	bool tty_raw;
	struct termios tty_saved;
	bool escape; /* Ctrl-A seen */

	/* The loop serving the console, and this VM's watches on it. */
	struct evloop *loop;
	struct ev_handle *w_stop, *w_tx, *w_out, *w_in, *t_in;
	void (*on_stop)(void *arg);
	void *on_stop_arg;

	/* Pause: vCPUs park until pause_req clears or the VM stops. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	atomic_bool pause_req;
	unsigned parked;
	bool kicked; /* the stopper has kicked every vCPU (joins wait for it) */
	bool finished;
};

/* A vCPU thread, confined: wait until vm_open_gate() (or a stop). */
void vm_vcpu_gate(struct vm *vm);
/* Called by a vCPU thread between exits: park while a pause is requested. */
void vm_vcpu_park(struct vm *vm);

/* Record why the VM stops (the first reason wins), wake vm_wait and kick every vCPU. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason why, int status);

#endif
