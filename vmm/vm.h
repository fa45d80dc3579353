/*
 * A VM: the one builder that turns a finalized struct vm_config into guest
 * memory, a hypervisor VM with memslots, devices, a loaded kernel and vCPU
 * threads; and its lifecycle (start, wait, stop, destroy).
 */
#ifndef HUGEVMM_VMM_VM_H
#define HUGEVMM_VMM_VM_H

#include <stdbool.h>

#include "devices/virtio/balloon.h"
#include "devices/virtio/vsock.h"
#include "memory/mem.h"
#include "memory/reclaim.h"

struct sc_policy;
#include "vmm/config.h"
#include "vmm/evloop.h"
#include "vmm/hv.h"

struct vm;

enum vm_stop_reason {
	VM_STOP_NONE,
	VM_STOP_GUEST_EXIT,  /* debug-exit port */
	VM_STOP_GUEST_RESET, /* i8042 reset / system event */
	VM_STOP_SIGNAL,      /* SIGINT / SIGTERM */
	VM_STOP_ESCAPE,      /* Ctrl-A x on the console */
	VM_STOP_FATAL,       /* a vCPU hit something unrecoverable */
	VM_STOP_REQUEST,     /* vm_stop() from an embedder */
	VM_STOP_POWER_OFF,   /* ACPI S5: the guest powered off */
};

struct vm_opts {
	const struct hv_ops *hv; /* NULL: KVM */
	bool console_input;      /* read stdin into the serial port when it is a terminal */
	const int *console_fd;   /* set and >= 0: console output goes there (see vmm_opts) */
	const struct sc_policy *seccomp; /* vCPU and prefault threads' filters; NULL: none */
};

/*
 * Build the VM for @cfg (finalized with need_boot): parse the kernel, map and
 * verify memory (policy first: nothing reaches the hypervisor before it
 * holds), create the VM, register one memslot per slot, create devices,
 * load the kernel, create vCPUs in their boot state. On failure everything
 * is released and @e says why (ERR_CONFIG, ERR_POLICY or ERR_RUNTIME).
 */
int vm_create(struct vm **out, const struct vm_config *cfg, const struct vm_opts *opts,
	      struct vmm_err *e) must_check;

/*
 * Start one thread per vCPU. Each takes its seccomp filter, then waits for
 * vm_open_gate() before its first KVM_RUN: the caller confines itself in
 * between, so no guest code runs while a thread of the VMM is unconfined.
 */
int vm_start(struct vm *vm, struct vmm_err *e) must_check;
void vm_open_gate(struct vm *vm);

/*
 * Serve the VM's console (output, and input from stdin when it is a terminal)
 * on @loop, and call @on_stop on the loop's thread once the VM wants to stop
 * (guest exit or reset, a fatal vCPU exit, the console escape, vm_stop()).
 */
int vm_attach(struct vm *vm, struct evloop *loop, void (*on_stop)(void *arg), void *arg,
	      struct vmm_err *e) must_check;

/*
 * Stop and join the vCPUs, capture KVM's counts, write out what the console
 * still holds, give the terminal back and leave @loop. Returns the process
 * exit status the stop calls for. Call once, on the loop's thread.
 */
int vm_finish(struct vm *vm);

/* Park every vCPU (they have left the guest when this returns 0), or let them go on. */
int vm_pause(struct vm *vm, struct vmm_err *e) must_check;
void vm_resume(struct vm *vm);

/* Press Ctrl-Alt-Del on the guest's keyboard (the i8042). */
int vm_ctrl_alt_del(struct vm *vm, struct vmm_err *e) must_check;

/* One drive's counters (Firecracker's block_<drive_id> metrics, and hugevmm's own). */
struct vm_drive_metrics {
	char id[64];
	uint64_t read_count, write_count, read_bytes, write_bytes;
	uint64_t flush_count, discard_count, write_zeroes_count, get_id_count;
	uint64_t invalid_reqs_count; /* bad type, sector range, status buffer: IOERR/UNSUPP */
	uint64_t io_errors;          /* the host's I/O failed: IOERR to the guest */
	uint64_t rate_limiter_throttled_events;
	uint64_t fixed_count;     /* data moved by READ_FIXED/WRITE_FIXED (no copy) */
	uint64_t fixed_fallbacks; /* direct drive, but a buffer missed the fixed/O_DIRECT rules */
	uint64_t update_count;    /* PATCH swaps of the backing file */
	uint64_t inflight_max;    /* most requests in flight at once */
};

/*
 * One network interface's counters (Firecracker's net_<iface_id> metrics where the
 * names exist, and hugevmm's drops by reason).
 */
struct vm_net_metrics {
	char id[64];
	/* Host -> guest. */
	uint64_t rx_packets_count, rx_bytes_count;
	uint64_t rx_tap_event_count;        /* times the tap was readable and read */
	uint64_t rx_queue_event_count;      /* the guest gave receive buffers (kicks) */
	uint64_t no_rx_avail_buffer;        /* a frame waited (in the tap): no guest buffer */
	uint64_t rx_rate_limiter_throttled; /* a frame waited for the rx rate limiter */
	uint64_t rx_dropped_too_big;        /* dropped: larger than the guest's buffers can hold */
	uint64_t tap_read_fails;            /* read() on the tap failed (not EAGAIN) */
	/* Guest -> host. */
	uint64_t tx_packets_count, tx_bytes_count;
	uint64_t tx_queue_event_count;      /* the guest kicked the transmit queue */
	uint64_t tx_rate_limiter_throttled; /* a frame waited for the tx rate limiter */
	uint64_t tx_malformed_frames;       /* dropped, all reasons below */
	uint64_t tx_malformed_header;       /* dropped: shorter than the virtio-net header */
	uint64_t tx_malformed_size;         /* dropped: frame over 64 KiB + Ethernet header */
	uint64_t tx_malformed_offload;      /* dropped: checksum/GSO asked but not negotiated */
	uint64_t tap_write_fails;           /* dropped: write() on the tap failed */
	uint64_t no_tx_avail_buffer;        /* the tap was full: transmit waited for it */
};

struct vm_metrics {
	unsigned vcpus;
	uint64_t exits_io, exits_mmio, exits_intr, exits_other;
	uint64_t run_ns; /* summed over vCPUs: time inside KVM_RUN */
	uint64_t serial_tx_bytes, serial_tx_dropped, serial_rx_bytes;
	uint64_t virtio_notifies, virtio_interrupts, virtio_needs_reset;
	uint64_t entropy_requests, entropy_bytes, entropy_throttled, entropy_errors;
	struct vm_drive_metrics drives[CFG_MAX_DRIVES];
	unsigned ndrives;
	struct vm_net_metrics nets[CFG_MAX_NETS];
	unsigned nnets;
	bool has_balloon;
	struct balloon_counters balloon;
	struct mem_reclaim_stats reclaim;
	bool has_vsock;
	struct vsock_counters vsock;
};

void vm_metrics(struct vm *vm, struct vm_metrics *out);

/*
 * After boot (the VMM loop's thread): drive @id gets the backing file @path
 * (NULL: keep it; the guest gets a config-change interrupt and sees the new
 * capacity) and/or the rate limiter @rl (NULL: keep it). The new file is
 * checked and locked like one given at start; on any error nothing changes.
 * ERR_CONFIG for bad input (unknown id, unusable file), 0 on success.
 */
int vm_drive_update(struct vm *vm, const char *id, const char *path, const struct rl_cfg *rl,
		    struct vmm_err *e) must_check;

/*
 * After boot (the VMM loop's thread): interface @id gets the rate limiters @rx and/or
 * @tx (NULL: keep it). ERR_CONFIG when no interface is @id, 0 on success.
 */
int vm_net_update(struct vm *vm, const char *id, const struct rl_cfg *rx, const struct rl_cfg *tx,
		  struct vmm_err *e) must_check;

/*
 * After boot (the VMM loop's thread): the balloon's target becomes @amount_mib
 * (ERR_CONFIG when the VM has no balloon or @amount_mib exceeds guest RAM).
 */
int vm_balloon_set_target(struct vm *vm, uint32_t amount_mib, struct vmm_err *e) must_check;

/*
 * After boot: the statistics interval becomes @s seconds (ERR_CONFIG: no balloon,
 * statistics off at boot, or @s 0 while they are on).
 */
int vm_balloon_set_stats_interval(struct vm *vm, uint32_t s, struct vmm_err *e) must_check;

/* After boot: the balloon's state (ERR_CONFIG when the VM has none). */
int vm_balloon_info(struct vm *vm, struct balloon_info *out, struct vmm_err *e) must_check;

/*
 * Guest memory as measured now with reclaim's counts filled in and its refaults
 * noticed (mem_reclaim_refresh): what GET /memory reports. Measures @vm's memory.
 */
int vm_memory_snapshot(struct vm *vm, struct guest_mem *out) must_check;

/* Ask the VM to stop (any thread). */
void vm_stop(struct vm *vm);

/* The same, because hugevmm got SIGINT/SIGTERM. */
void vm_stop_signal(struct vm *vm);

/* Stop (if running), join vCPU threads, release everything. NULL is fine. */
void vm_destroy(struct vm *vm);

enum vm_stop_reason vm_stop_reason(const struct vm *vm);

/* Guest memory, for reports. */
struct guest_mem *vm_memory(struct vm *vm);

/* The secondary MMU's page counts now. */
void vm_mmu_stats(struct vm *vm, struct hv_mmu_stats *out);

/* KVM's counts captured when the VM stopped (before teardown). */
const struct hv_mmu_stats *vm_final_mmu_stats(const struct vm *vm);

#endif
