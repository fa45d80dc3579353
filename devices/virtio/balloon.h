/*
 * The memory balloon (virtio-balloon, Firecracker's "balloon"): inflate and
 * deflate queues of 4K page numbers, the statistics queue, DEFLATE_ON_OOM and
 * free page reporting. What the guest hands over goes to memory/reclaim.h,
 * which gives it back to the host only in whole huge pages.
 *
 * Queues are numbered as the driver finds them: inflate 0, deflate 1, then
 * stats (when STATS_VQ is acked), then reporting (when REPORTING is acked).
 */
#ifndef HUGEVMM_DEVICES_VIRTIO_BALLOON_H
#define HUGEVMM_DEVICES_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/mmio.h"
#include "memory/reclaim.h"

#define BALLOON_STAT_TAGS 16 /* VIRTIO_BALLOON_S_SWAP_IN (0) .. S_DIRECT_RECLAIM (15) */

struct virtio_balloon_cfg {
	uint32_t amount_mib;       /* the target at start */
	bool deflate_on_oom;       /* offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
	uint32_t stats_interval_s; /* 0: no statistics queue (STATS_VQ not offered) */
	bool free_page_reporting;  /* offer VIRTIO_BALLOON_F_REPORTING */
};

/* The guest's latest statistics (the stats queue). */
struct balloon_guest_stats {
	uint32_t have; /* bit t: the guest reported tag t */
	uint64_t val[BALLOON_STAT_TAGS];
	uint64_t updates; /* statistics buffers received */
};

/* The device's counters (Firecracker's balloon metrics, and hugevmm's). */
struct balloon_counters {
	uint64_t activate_fails;      /* (kept 0: activation cannot fail here; Firecracker's name) */
	uint64_t inflate_count;       /* inflate buffers served */
	uint64_t deflate_count;       /* deflate buffers served */
	uint64_t stats_updates_count; /* statistics buffers received */
	uint64_t stats_update_fails;  /* statistics buffers malformed (ignored) */
	uint64_t event_fails;         /* a timer could not be armed */
	uint64_t pages_inflated, pages_deflated; /* 4K page numbers received */
	uint64_t reports, reported_bytes;        /* free page reports: ranges, bytes */
	uint64_t rejected;                       /* page numbers or ranges refused */
	uint64_t deflate_waits; /* a deflate waited: the hugetlb pool had no page for it */
};

/* What GET /balloon and GET /balloon/statistics show. */
struct balloon_info {
	uint32_t target_pages, actual_pages; /* 4K pages: asked for, and the driver's "actual" */
	uint32_t stats_interval_s;
	bool deflate_on_oom, free_page_reporting;
	uint64_t features; /* acked by the driver (0 before DRIVER_OK) */
	struct balloon_guest_stats gs;
};

struct virtio_balloon {
	struct virtio_mmio t;
	struct virtio_dev_ops ops; /* features follow the config */
	struct mem_reclaim *rc;
	struct virtio_balloon_cfg cfg;
	uint32_t num_pages, actual;   /* config space (4K pages) */
	int q_stats, q_report;        /* queue index, -1: not negotiated */
	bool stats_held;              /* the stats buffer is held by the device */
	uint16_t stats_head;
	void *stats_timer;            /* next statistics request */
	void *retry_timer;            /* a deflate waiting for the hugetlb pool */
	bool waiting;                 /* that deflate has been reported (once per wait) */
	struct vq_chain chain;        /* the request being served (under the transport's lock) */
	struct balloon_guest_stats gs;
	struct balloon_counters st;
};

/*
 * The device at @base/@gsi over guest memory @mem, handing pages to @rc
 * (which must outlive it). 0 or -errno.
 */
int virtio_balloon_init(struct virtio_balloon *b, const struct dev_host *host,
			const struct guest_mem *mem, struct mem_reclaim *rc, uint64_t base,
			unsigned gsi, const struct virtio_balloon_cfg *cfg) must_check;

/* A new target (any thread): config space changes, the driver gets a config interrupt. */
void virtio_balloon_set_target(struct virtio_balloon *b, uint32_t amount_mib);

/*
 * A new statistics interval (the loop's thread). -EINVAL when statistics were
 * off at start (0) or @s is 0 while they are on: the queue exists or not from
 * boot, as in Firecracker.
 */
int virtio_balloon_set_stats_interval(struct virtio_balloon *b, uint32_t s) must_check;

void virtio_balloon_info(struct virtio_balloon *b, struct balloon_info *out);
void virtio_balloon_counters(struct virtio_balloon *b, struct balloon_counters *out);

/* Cancel timers (the loop's thread, or once the loop no longer runs); then destroy. */
void virtio_balloon_stop(struct virtio_balloon *b);
void virtio_balloon_destroy(struct virtio_balloon *b);

#endif
