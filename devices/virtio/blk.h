/*
 * The block device (virtio-blk, Firecracker's "drives"): one request queue
 * served through io_uring, off the vCPU threads. Requests IN, OUT, FLUSH,
 * GET_ID, DISCARD and WRITE_ZEROES; any layout of header, data and status
 * the spec allows; every sector range checked against the capacity.
 *
 * Data path, per request:
 *  - a drive opened O_DIRECT ("direct") whose buffers all meet the file's
 *    O_DIRECT alignment and lie in guest RAM registered with the engine:
 *    READ_FIXED/WRITE_FIXED, one per segment, no copy and no pinning per I/O;
 *  - aligned but not registered: READV/WRITEV on the O_DIRECT descriptor;
 *  - a direct drive whose request misses the alignment: READV/WRITEV on a
 *    second, buffered descriptor of the same file (counted as a fallback);
 *  - other drives: READV/WRITEV through the page cache.
 *
 * Threads: the transport's lock serializes register access (vCPU threads)
 * with queue work and completions (both on the VMM loop).
 */
#ifndef HUGEVMM_DEVICES_VIRTIO_BLK_H
#define HUGEVMM_DEVICES_VIRTIO_BLK_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/ratelimit.h"
#include "devices/virtio/mmio.h"

#define BLK_SECTOR      512u
#define BLK_ID_BYTES    20u /* VIRTIO_BLK_ID_BYTES: the serial GET_ID returns */
#define BLK_SEG_MAX     (VQ_MAX_SIZE - 2) /* data segments: the queue less header and status */
#define BLK_WHY_LEN     384

/* An opened image: a regular file or a block device, locked for this VM. */
struct blk_file {
	int fd;       /* the descriptor I/O goes to (O_DIRECT for a direct drive) */
	int fd_buf;   /* direct drives: a buffered descriptor for unaligned requests; else -1 */
	uint64_t size; /* bytes; the capacity is size / 512 */
	bool read_only, direct;
	uint32_t dio_mem_align, dio_offset_align; /* O_DIRECT rules; 0 when not direct */
	bool punch_hole; /* discard and write-zeroes may deallocate (tried, not assumed) */
	char path[PATH_MAX];
};

/*
 * Open @path for a drive: it must be a regular file or a block device of at
 * least one sector, readable (and writable unless @read_only). It is locked
 * with an open file description lock, shared when @read_only, exclusive
 * otherwise, so two VMs cannot write one image. 0, or -errno with @why (a
 * sentence naming the file, the problem and the remedy; the caller adds the
 * field). Nothing stays open on failure.
 */
int blk_file_open(struct blk_file *f, const char *path, bool read_only, bool direct, char *why,
		  size_t whylen) must_check;

/*
 * Whether @path is the file @f has open: 1 (and @size is its size now), 0
 * when it is another file or does not exist, -errno when @f cannot be read.
 */
int blk_file_same(const struct blk_file *f, const char *path, uint64_t *size);

/* Close (and so unlock); safe on a zeroed file with fd = fd_buf = -1. */
void blk_file_close(struct blk_file *f);

/* The io_uring every drive of a VM submits to; completions are reaped on the VMM loop. */
struct blk_engine;

/* A ring of @entries submissions. 0, or -errno with @why. */
int blk_engine_create(struct blk_engine **out, unsigned entries, char *why,
		      size_t whylen) must_check;

/*
 * Register @n host ranges (guest RAM regions) as fixed buffers, each on its
 * own: pinned until the engine is destroyed. A range over 1 GiB becomes
 * several buffers (the kernel's limit per buffer). @res[i] is 0 when range i
 * is registered, else -errno (RLIMIT_MEMLOCK, memory that cannot be pinned
 * long-term such as DAX...), and that range's I/O takes the ordinary path.
 * Once per engine; 0, or -errno when nothing could be set up.
 */
int blk_engine_register(struct blk_engine *g, const struct iovec *iov, unsigned n,
			int *res) must_check;

/* An eventfd that becomes readable when completions are waiting. */
int blk_engine_fd(const struct blk_engine *g);

/* On the VMM loop: finish every completed request, one interrupt per device at most. */
void blk_engine_reap(struct blk_engine *g);

/* Wait for everything in flight (dropping it), unregister, close. NULL is fine. */
void blk_engine_destroy(struct blk_engine *g);

struct virtio_blk_cfg {
	const char *id; /* the serial GET_ID returns (at most 20 bytes are used) */
	bool flush;     /* offer VIRTIO_BLK_F_FLUSH (Writeback) */
	const struct rl_cfg *rl; /* NULL: no limit */
};

struct virtio_blk_stats {
	uint64_t read_count, write_count, read_bytes, write_bytes;
	uint64_t flush_count, discard_count, write_zeroes_count, get_id_count;
	uint64_t invalid, io_errors, throttled;
	uint64_t fixed_count, fixed_fallbacks, update_count, inflight_max;
};

/* The image a device serves; requests in flight hold it, so a swap cannot close it under them. */
struct blk_backing {
	struct blk_file f;
	unsigned refs; /* the device's, and one per request in flight */
};

struct blk_req;

struct virtio_blk {
	struct virtio_mmio t;
	struct blk_engine *g;
	struct blk_backing *b; /* the current image (a swap makes a new one) */
	char serial[BLK_ID_BYTES];
	bool flush;
	struct ratelimit rl;
	void *timer;    /* pending resume after throttling */
	bool starved;   /* the ring had no room: resume on the next reap */
	bool pending_irq; /* completions pushed in this reap, interrupt not yet decided */
	uint32_t gen;   /* bumped by a reset: completions of older requests are dropped */
	unsigned inflight;
	struct blk_req *free_reqs; /* a small cache of request structures */
	unsigned nfree;
	struct virtio_blk *next_ready; /* the engine's list of devices to resume/notify */
	struct virtio_blk_stats st;
	struct vq_chain chain; /* the chain being parsed (under the transport's lock) */
};

/*
 * The device at @base/@gsi on @g, serving @f (taken over: closed with the
 * device, also on failure). 0 or -errno.
 */
int virtio_blk_init(struct virtio_blk *b, const struct dev_host *host,
		    const struct guest_mem *mem, uint64_t base, unsigned gsi, struct blk_engine *g,
		    struct blk_file *f, const struct virtio_blk_cfg *cfg) must_check;

/*
 * Serve the image at @path from now on (Firecracker's PATCH /drives): it is
 * opened, checked and locked as at start, with the drive's read-only and
 * direct settings. Requests in flight finish on the old image, which is
 * closed after them. The same file again (another name for it, or the one
 * served) keeps its descriptor and lock and takes its new size: an image
 * that grew. Either way the capacity is read again and the driver gets a
 * configuration interrupt. On the VMM loop. 0, or -errno with @why as
 * blk_file_open gives it (nothing changed).
 */
int virtio_blk_update_path(struct virtio_blk *b, const char *path, char *why,
			   size_t whylen) must_check;

/* New rate limits (NULL: none), buckets full. On the VMM loop. */
void virtio_blk_set_limits(struct virtio_blk *b, const struct rl_cfg *rl);

/* Cancel a pending resume (the loop's thread, or once the loop no longer runs). */
void virtio_blk_stop(struct virtio_blk *b);

/* Release the device (after blk_engine_destroy has drained every request). */
void virtio_blk_destroy(struct virtio_blk *b);

/* A consistent copy of the counters (any thread). */
void virtio_blk_stats(struct virtio_blk *b, struct virtio_blk_stats *out);

/* The image's path and size now (any thread). */
void virtio_blk_backing(struct virtio_blk *b, char *path, size_t len, uint64_t *size);

#endif
