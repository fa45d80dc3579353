/*
 * The VM's configuration as plain data. A parser (api/config_json.c) or a
 * library user fills it; vm_config_finalize() validates it and applies
 * defaults; only then does a builder turn it into a running VM.
 */
#ifndef HUGEVMM_VMM_CONFIG_H
#define HUGEVMM_VMM_CONFIG_H

#include <limits.h>
#include <stdbool.h>

#include "common/err.h"
#include "common/ratelimit.h"
#include "memory/mem_cfg.h"
#include "vmm/loader.h"

#define CFG_MAX_VCPUS       64
/*
 * Drives: 16. The machine has 18 interrupt lines for virtio-mmio devices
 * (GSIs 5..23 without the RTC's 8, edge-triggered, never shared): 16 disks
 * leave one for the entropy device and one for a network interface.
 */
#define CFG_MAX_DRIVES      16
#define CFG_MAX_NETS        4
#define CFG_CMDLINE_MAX     4096
#define CFG_DEFAULT_MEM_MIB 128 /* Firecracker's default */

enum cfg_huge_pages {
	CFG_HUGE_UNSET,       /* no huge_pages: hugevmm's default (thp, prefer) */
	CFG_HUGE_NONE,        /* "None": 4K anonymous memory */
	CFG_HUGE_TRANSPARENT, /* "Transparent": thp */
	CFG_HUGE_2M,          /* "2M": hugetlb 2M */
};

/* Firecracker's cache_type: whether the guest may ask for a flush. */
enum cfg_cache {
	CFG_CACHE_UNSAFE,    /* "Unsafe" (Firecracker's default): no VIRTIO_BLK_F_FLUSH */
	CFG_CACHE_WRITEBACK, /* "Writeback": VIRTIO_BLK_F_FLUSH, a flush is an fsync */
};

/* Firecracker's io_engine; both are served by io_uring here (see the README). */
enum cfg_io_engine {
	CFG_IO_SYNC,  /* "Sync" (Firecracker's default) */
	CFG_IO_ASYNC, /* "Async" */
};

struct cfg_drive {
	char id[64];
	char path[PATH_MAX];
	bool root;
	bool read_only;
	char partuuid[64]; /* "" = none: root=/dev/vda, else root=PARTUUID=<partuuid> */
	enum cfg_cache cache;
	enum cfg_io_engine io_engine;
	struct rl_cfg rate_limiter; /* bandwidth (bytes) and ops; unset buckets = no limit */
	bool direct; /* hugevmm's: O_DIRECT, data moved straight into registered guest RAM */
};

/* Firecracker's NetworkInterface: a virtio-net device on an existing tap. */
struct cfg_net {
	char id[64];
	char host_dev[16];  /* tap device name (IFNAMSIZ) */
	char mac[18];       /* "aa:bb:cc:dd:ee:ff"; vm_config_finalize generates one when "" */
	bool mac_generated; /* the config gave none (the generated one is in mac[]) */
	unsigned mtu;       /* 0: not given (no VIRTIO_NET_F_MTU; the guest keeps 1500) */
	struct rl_cfg rx_rate_limiter, tx_rate_limiter; /* unset buckets = no limit */
};

/* Firecracker's logger: where hugevmm's own log lines go, and how they look. */
struct cfg_logger {
	bool set;
	char path[PATH_MAX]; /* file or FIFO; "" keeps stderr */
	bool has_level;
	int level; /* enum log_level; Trace is Debug here */
	bool show_level, show_origin;
};

/* Firecracker's metrics: one JSON object per line to a file or FIFO. */
struct cfg_metrics {
	bool set;
	char path[PATH_MAX];
	bool emit_id;
	char properties[1024]; /* a JSON object of strings, as text; "" for none */
};

/* Firecracker's entropy device (virtio-rng). */
struct cfg_entropy {
	bool set;
	struct rl_cfg rate_limiter;
};

/* Firecracker's Balloon (virtio-balloon); hugevmm gives memory back in whole huge pages. */
struct cfg_balloon {
	bool set;
	unsigned amount_mib;               /* target size of the balloon */
	bool deflate_on_oom;
	unsigned stats_polling_interval_s; /* 0: no statistics */
	bool free_page_reporting;
	/* free_page_hinting: refused by the parser (not implemented); never set here */
};

/* Firecracker's Vsock: guest stream sockets ended on Unix sockets of the host. */
struct cfg_vsock {
	bool set;
	uint32_t guest_cid;  /* >= 3 */
	char uds_path[108];  /* sun_path's size */
	char id[64];         /* vsock_id: accepted (Firecracker deprecated it), reported back */
};

/* Whether the kernel command line gets virtio_mmio.device= entries (hugevmm's). */
enum cfg_virtio_cmdline {
	CFG_VIRTIO_CMDLINE_AUTO,  /* yes, unless the boot args already name virtio-mmio devices */
	CFG_VIRTIO_CMDLINE_NEVER, /* only ACPI (the DSDT) describes them */
};

struct vm_config {
	/* boot-source */
	bool has_boot;
	char kernel[PATH_MAX];
	char initrd[PATH_MAX];
	char cmdline[CFG_CMDLINE_MAX];
	enum kernel_proto boot_protocol; /* hugevmm's extension: auto (the default), linux, pvh */

	/* machine-config */
	unsigned vcpus;
	unsigned mem_size_mib; /* 0 = not given */
	enum cfg_huge_pages huge_pages;
	enum cfg_virtio_cmdline virtio_cmdline;

	/* memory: when has_memory, regions[] define guest RAM */
	bool has_memory;
	struct mem_region_cfg regions[MEM_MAX_REGIONS];
	unsigned nregions;

	struct cfg_drive drives[CFG_MAX_DRIVES];
	unsigned ndrives;
	struct cfg_net nets[CFG_MAX_NETS];
	unsigned nnets;

	struct cfg_entropy entropy;
	struct cfg_balloon balloon;
	struct cfg_vsock vsock;

	/* serial: guest console output to this file instead of stdout */
	char serial_out[PATH_MAX];

	/* Process-wide, applied by whoever runs the VMM (the CLI, the API). */
	struct cfg_logger logger;
	struct cfg_metrics metrics;
};

/* An empty configuration with Firecracker's defaults. */
void vm_config_init(struct vm_config *c);
/* Firecracker's defaults into a configuration that is already all zero (from calloc). */
void vm_config_defaults(struct vm_config *c);

/*
 * Copy @src into @dst: the scalars and strings, and only the used elements of
 * regions[], drives[] and nets[] (elements beyond the counts are undefined
 * in any configuration). A configuration is ~120 KiB, mostly arrays; copying
 * only what is used leaves the rest of a fresh allocation untouched and out
 * of the process's RSS.
 */
void vm_config_copy(struct vm_config *dst, const struct vm_config *src);

/*
 * Validate and complete: derive RAM from machine-config when there is no
 * memory section, finalize every region, check vCPUs and drives. With
 * @need_boot a boot-source is required. Errors are ERR_CONFIG.
 */
int vm_config_finalize(struct vm_config *c, bool need_boot, struct vmm_err *e) must_check;

/* Check that the files the config names exist and can be opened as needed. */
int vm_config_check_files(const struct vm_config *c, struct vmm_err *e) must_check;

/* Total guest RAM in bytes (after finalize). */
uint64_t vm_config_ram_bytes(const struct vm_config *c);

#endif
