/*
 * The VMM loop: one thread that owns the VM's configuration and lifecycle,
 * serves its console and signals on an io_uring event loop (vmm/evloop.h),
 * and executes commands that other threads submit: the API thread, an
 * embedder. Commands are plain data (no JSON here); only this thread ever
 * touches VM state.
 */
#ifndef HUGEVMM_VMM_VMM_H
#define HUGEVMM_VMM_VMM_H

#include <limits.h>
#include <stdbool.h>

#include "vmm/config.h"
#include "vmm/vm.h"

enum vmm_state {
	VMM_NOT_STARTED,
	VMM_RUNNING,
	VMM_PAUSED,
	VMM_STOPPED,
};

enum vmm_op {
	VMM_OP_INFO,          /* -> state, id */
	VMM_OP_GET_CONFIG,    /* -> config (the effective configuration, defaults applied) */
	VMM_OP_PUT_MACHINE,   /* in.machine: fields not given return to their defaults */
	VMM_OP_PATCH_MACHINE, /* in.machine: only the fields given */
	VMM_OP_PUT_BOOT,      /* in.boot */
	VMM_OP_PUT_DRIVE,     /* in.drive: add, or replace the drive of that id */
	VMM_OP_PATCH_DRIVE,   /* in.drive_patch: before boot the config, after it the device too */
	VMM_OP_PUT_NET,       /* in.net: add, or replace the interface of that id */
	VMM_OP_PATCH_NET,     /* in.net_patch: before boot the config, after it the device too */
	VMM_OP_PUT_REGION,    /* in.region: add, or replace the region of that id */
	VMM_OP_PUT_ENTROPY,   /* in.entropy: the entropy device */
	VMM_OP_START,         /* build and boot the VM */
	VMM_OP_CTRL_ALT_DEL,  /* press Ctrl-Alt-Del on the guest keyboard */
	VMM_OP_PAUSE,
	VMM_OP_RESUME,
	VMM_OP_STOP,       /* stop the VM (the loop then ends) */
	VMM_OP_MEMORY,     /* measure again -> memory */
	VMM_OP_METRICS,    /* -> metrics */
	VMM_OP_TEST_SPLIT, /* testing: in.split, see mem_test_split() */
	/* The balloon (Firecracker's /balloon routes); each refuses with a reason when there is
	 * none, or when the VM is not in the state the operation needs. */
	VMM_OP_PUT_BALLOON,         /* in.balloon: before boot, the balloon (replacing one) */
	VMM_OP_GET_BALLOON,         /* -> balloon: the config before boot, the device's too after */
	VMM_OP_PATCH_BALLOON,       /* in.balloon_mib: after boot, a new target */
	VMM_OP_BALLOON_STATS,       /* -> balloon: after boot, with statistics enabled */
	VMM_OP_PATCH_BALLOON_STATS, /* in.balloon_stats_s: after boot, a new polling interval */
	VMM_OP_PUT_VSOCK,           /* in.vsock: before boot, the vsock (replacing one) */
	/* in.call: run fn on the VMM thread. For work that opens files or probes the host (a
	 * logger's file, GET /host): the API thread is confined from its start and may not. */
	VMM_OP_CALL,
};

/* Firecracker's PartialDrive: what PATCH /drives/{id} changes of a drive. */
struct vmm_drive_patch {
	char id[64];
	bool has_path, has_rate_limiter;
	char path[PATH_MAX];
	/* Firecracker's update rule: a bucket given replaces the drive's (size or
	 * refill_time 0: no limit any more), a bucket not given stays as it was. */
	struct rl_cfg rate_limiter;
};

/* Firecracker's PartialNetworkInterface: what PATCH /network-interfaces/{id} changes. */
struct vmm_net_patch {
	char id[64];
	bool has_rx, has_tx;
	/* The drives' update rule: a bucket given replaces the interface's, one not given stays. */
	struct rl_cfg rx_rate_limiter, tx_rate_limiter;
};

struct vmm_machine {
	bool has_vcpus, has_mem, has_huge, has_virtio_cmdline;
	unsigned vcpus, mem_mib;
	enum cfg_huge_pages huge;
	enum cfg_virtio_cmdline virtio_cmdline;
};

/* A coverage snapshot: guest memory as measured now, and KVM's own counts. */
struct vmm_memory {
	struct guest_mem mem;
	struct hv_mmu_stats kvm;
};

/* The balloon: its configuration and, once the VM runs, the device's state. */
struct vmm_balloon {
	struct cfg_balloon cfg; /* amount_mib and the interval: the latest set */
	bool running;           /* the device exists: info is its state */
	struct balloon_info info;
};

struct vmm_metrics {
	enum vmm_state state;
	uint64_t uptime_ns;
	struct vm_metrics vm; /* zero before boot */
	uint64_t commands, command_errors;
	uint64_t measurements, drift_events;
	/* From the latest measurement (no new one is taken): RAM, and what of it is huge. */
	uint64_t ram_bytes, huge_bytes;
};

struct vmm_cmd {
	enum vmm_op op;
	union {
		struct vmm_machine machine;
		struct {
			char kernel[PATH_MAX];
			char initrd[PATH_MAX];
			char cmdline[CFG_CMDLINE_MAX];
		} boot;
		struct cfg_drive drive;
		struct vmm_drive_patch drive_patch;
		struct cfg_net net;
		struct vmm_net_patch net_patch;
		struct mem_region_cfg region;
		struct cfg_entropy entropy;
		struct cfg_balloon balloon;
		uint32_t balloon_mib;
		uint32_t balloon_stats_s;
		struct cfg_vsock vsock;
		struct {
			/* @booted: InstanceStart has run (the VMM thread may be confined). */
			void (*fn)(void *arg, bool booted, struct vmm_err *e);
			void *arg;
		} call;
		struct {
			char region[MEM_ID_MAX + 1];
			uint64_t offset;
		} split;
	} in;

	/* Results: err.kind is ERR_NONE on success. */
	struct vmm_err err;
	enum vmm_state state;
	char id[64];
	struct vm_config *config;  /* VMM_OP_GET_CONFIG; freed by vmm_cmd_free */
	struct vmm_memory *memory; /* VMM_OP_MEMORY; freed by vmm_cmd_free */
	struct vmm_metrics metrics;
	struct vmm_balloon balloon; /* VMM_OP_GET_BALLOON, VMM_OP_BALLOON_STATS */

	/* Submission plumbing (vmm_submit). */
	void (*done)(struct vmm_cmd *c, void *arg);
	void *done_arg;
	struct vmm_cmd *next;
};

struct vmm_opts {
	bool console_input; /* stdin to the guest's console when it is a terminal */
	bool signals;       /* SIGINT/SIGTERM stop the VM (a CLI; not for embedders) */
	const char *id;     /* instance id; NULL: "hugevmm-<pid>" */
	/* Read when the VM starts: an fd >= 0 there takes the console's output instead of
	 * serial_out_path or stdout, and is never closed by hugevmm. NULL: not set. */
	const int *console_fd;
	/* The seccomp policy (vmm/seccomp.h), kept by the caller for the vmm's life; NULL or
	 * off: no filter. The VMM thread takes its own once the vCPUs run. */
	const struct sc_policy *seccomp;
};

struct vmm;

/* The policy of vmm_opts.seccomp (for the API server's thread), or NULL. */
const struct sc_policy *vmm_seccomp(const struct vmm *m);

/* A new command of @op, zeroed. NULL when out of memory. */
struct vmm_cmd *vmm_cmd_new(enum vmm_op op);
void vmm_cmd_free(struct vmm_cmd *c);

int vmm_create(struct vmm **out, const struct vmm_opts *o, struct vmm_err *e) must_check;

/* Take @cfg (not yet finalized: a parsed config file) as the pre-boot configuration. */
void vmm_configure(struct vmm *m, const struct vm_config *cfg);

/*
 * Run the loop on this thread until the VM has stopped, or before boot until
 * a signal or vmm_quit(). Returns the process exit status. Commands still
 * queued then fail with "shutting down".
 */
int vmm_run(struct vmm *m);

/*
 * Execute @c on the calling thread: before vmm_run, after it, or from the
 * loop's own thread only.
 */
void vmm_exec(struct vmm *m, struct vmm_cmd *c);

/*
 * From any other thread: queue @c; c->done(c, c->done_arg) runs on the loop's
 * thread once it is executed (or refused). Returns 0, or -ESHUTDOWN when the
 * loop is gone (then done is not called).
 */
int vmm_submit(struct vmm *m, struct vmm_cmd *c) must_check;

/* From any other thread: queue @c and wait for it. */
int vmm_call(struct vmm *m, struct vmm_cmd *c) must_check;

/*
 * Run @fn(@arg, 0) on the loop's thread every @ms milliseconds while the loop
 * runs. Call before vmm_run, or from the loop's thread. 0 or -errno.
 */
int vmm_every(struct vmm *m, uint64_t ms, void (*fn)(void *arg, int res), void *arg) must_check;

/* End vmm_run from any thread (the VM, if any, is stopped) with @status. */
void vmm_quit(struct vmm *m, int status);

/*
 * Refuse every queued command ("shutting down": their done callbacks run now,
 * on this thread) and every later submission. vmm_run ends with it; call it
 * before tearing down a submitter when the loop never ran. Idempotent.
 */
void vmm_shutdown(struct vmm *m);

void vmm_destroy(struct vmm *m);

const char *vmm_state_name(enum vmm_state s);

#endif
