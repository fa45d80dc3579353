/*
 * The test guest's virtio-mmio driver core (virtio 1.x, transport version 2,
 * split virtqueues), written from the virtio 1.2 specification: devices come
 * from virtio_mmio.device=<size>@<base>:<irq> entries on the command line.
 * Freestanding, ring 0, one CPU.
 */
#ifndef HUGEVMM_TESTGUEST_VIRTIO_H
#define HUGEVMM_TESTGUEST_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

/* virtio-mmio registers (spec 4.2.2), offsets in the device's window. */
#define VIO_MAGIC         0x000 /* "virt" */
#define VIO_VERSION       0x004 /* 2; 1 is the legacy interface */
#define VIO_DEVICE_ID     0x008 /* 0: no device behind this window */
#define VIO_VENDOR_ID     0x00c
#define VIO_DEV_FEATURES  0x010
#define VIO_DEV_FEAT_SEL  0x014
#define VIO_DRV_FEATURES  0x020
#define VIO_DRV_FEAT_SEL  0x024
#define VIO_QUEUE_SEL     0x030
#define VIO_QUEUE_NUM_MAX 0x034
#define VIO_QUEUE_NUM     0x038
#define VIO_QUEUE_READY   0x044
#define VIO_QUEUE_NOTIFY  0x050
#define VIO_INT_STATUS    0x060
#define VIO_INT_ACK       0x064
#define VIO_STATUS        0x070
#define VIO_QUEUE_DESC_LO 0x080
#define VIO_QUEUE_DESC_HI 0x084
#define VIO_QUEUE_DRV_LO  0x090 /* the available ring */
#define VIO_QUEUE_DRV_HI  0x094
#define VIO_QUEUE_DEV_LO  0x0a0 /* the used ring */
#define VIO_QUEUE_DEV_HI  0x0a4
#define VIO_CONFIG_GEN    0x0fc
#define VIO_CONFIG        0x100

#define VIO_MAGIC_VALUE 0x74726976u

/* Device status bits (2.1). */
#define VIRTIO_S_ACKNOWLEDGE 0x01
#define VIRTIO_S_DRIVER      0x02
#define VIRTIO_S_DRIVER_OK   0x04
#define VIRTIO_S_FEATURES_OK 0x08
#define VIRTIO_S_NEEDS_RESET 0x40
#define VIRTIO_S_FAILED      0x80

/* InterruptStatus bits (4.2.2). */
#define VIRTIO_INT_USED   0x1
#define VIRTIO_INT_CONFIG 0x2

/* Feature bits. */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32

/* Split virtqueue (2.7). */
#define VIRTQ_DESC_F_NEXT          1
#define VIRTQ_DESC_F_WRITE         2
#define VIRTQ_DESC_F_INDIRECT      4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

#define VIRTIO_ID_NET     1
#define VIRTIO_ID_BLOCK   2
#define VIRTIO_ID_ENTROPY 4
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_ID_VSOCK   19

#define VIRTIO_MAX_DEVS   32
#define VIRTIO_MAX_QUEUES 17  /* queues the guest sets up, over all devices (16 disks + 1) */
#define VIRTQ_MAX_SIZE    256 /* the guest's cap on QueueNum */
#define VIRTQ_IND_MAX     8   /* entries in one indirect table */

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct virtq_used_elem {
	uint32_t id, len;
};

struct virtio_dev;

struct virtq {
	struct virtio_dev *dev;
	unsigned index;
	uint16_t size;
	struct virtq_desc *desc;
	volatile uint16_t *avail;                   /* flags, idx, ring[size], used_event */
	volatile uint16_t *used;                    /* flags, idx, then elements */
	volatile struct virtq_used_elem *used_ring; /* ring[size], then avail_event */
	struct virtq_desc (*ind)[VIRTQ_IND_MAX];    /* one indirect table per head */
	uint16_t next_avail;                        /* our copy of avail->idx */
	uint16_t kicked;                            /* avail->idx at the last kick */
	uint16_t last_used;                         /* used elements consumed */
	uint16_t free_head, nfree;
	uint16_t chain[VIRTQ_MAX_SIZE]; /* descriptors a head holds (0: free) */
	uint64_t kicks, notifies;
};

struct virtio_dev {
	uint64_t base, size;
	unsigned irq;
	uint32_t version, device_id, vendor_id;
	uint64_t offered, features;
	struct virtq *vq[VIRTIO_MAX_QUEUES];
	unsigned nvq;
	bool use_irq;
	uint8_t vector;
	volatile uint64_t irqs; /* interrupts taken for this device */
	volatile uint32_t isr;  /* InterruptStatus bits seen (OR of all) */
};

/* What the command line asks of the driver: event_idx=, indirect=, irq=, qsize=. */
struct virtio_opts {
	int event_idx; /* -1: if offered, 0: never, 1: required */
	int indirect;  /* -1: if offered, 0: never, 1: required, and every buffer goes indirect */
	bool irq;      /* wait by interrupt (else poll the used ring) */
	unsigned qsize;
	bool edge;             /* IOAPIC trigger for the device's GSI */
	uint64_t dev_features; /* device-type bits the driver takes when offered (0 after
				* virtio_opts_from_cmdline; the workload sets them) */
	/* Of dev_features: bits that, once negotiated, each add one queue after the @nq fixed
	 * ones, in ascending bit order; an absent one takes no index (virtio-balloon's STATS_VQ
	 * and REPORTING, as Linux numbers them); 0 after virtio_opts_from_cmdline. */
	uint64_t feature_queues;
};

struct vbuf {
	uint64_t addr;
	uint32_t len;
	bool write; /* device-writable */
};

void virtio_opts_from_cmdline(struct virtio_opts *o);
/* Probe every virtio_mmio.device= entry; prints one line per device; returns how many work. */
unsigned virtio_probe(void);
struct virtio_dev *virtio_find(uint32_t device_id);
/* The @n-th (from 0) device of type @device_id in command-line order; NULL when fewer. */
struct virtio_dev *virtio_find_nth(uint32_t device_id, unsigned n);
unsigned virtio_count(uint32_t device_id);
/* Reset, negotiate, set up @nq queues (and @o->feature_queues' negotiated ones after them),
 * DRIVER_OK; on failure prints why, sets FAILED, false. */
bool virtio_start(struct virtio_dev *d, unsigned nq, const struct virtio_opts *o);
bool virtio_has(const struct virtio_dev *d, unsigned bit);

uint32_t vio_read(const struct virtio_dev *d, unsigned reg);
void vio_write(const struct virtio_dev *d, unsigned reg, uint32_t v);
/* Device configuration space at @off, with the access width of the field (4.2.2.2). */
uint8_t vio_cfg8(const struct virtio_dev *d, unsigned off);
uint16_t vio_cfg16(const struct virtio_dev *d, unsigned off);
uint32_t vio_cfg32(const struct virtio_dev *d, unsigned off);
/* Write a driver-writable 32-bit field of configuration space (virtio-balloon's actual). */
void vio_cfg_write32(const struct virtio_dev *d, unsigned off, uint32_t v);
/* A 64-bit field as two 32-bit reads, retried until ConfigGeneration holds still. */
uint64_t vio_cfg64(const struct virtio_dev *d, unsigned off);
/* Read InterruptStatus and acknowledge what it says; returns the bits. */
uint32_t virtio_ack(struct virtio_dev *d);

/* Post a chain of @n buffers (through an indirect table when @indirect); the head, or -1. */
int virtq_add(struct virtq *q, const struct vbuf *b, unsigned n, bool indirect);
/* Tell the device about new buffers when it wants to hear (EVENT_IDX / NO_NOTIFY). */
bool virtq_kick(struct virtq *q);
void virtq_notify(struct virtq *q);
/* Take one used element; false when none is there. */
bool virtq_pop(struct virtq *q, uint32_t *id, uint32_t *len);
bool virtq_has_used(const struct virtq *q);
/* Wait for a used element, by polling or interrupt; false after @max_cycles TSC cycles. */
bool virtq_wait(struct virtq *q, uint64_t max_cycles);

/* blk.c: the virtio-blk workloads. */
__attribute__((noreturn)) void do_blk(void);
__attribute__((noreturn)) void do_blkbench(void);
__attribute__((noreturn)) void do_blk_bad(void);

/* net.c: the virtio-net workloads. */
__attribute__((noreturn)) void do_net(void);
__attribute__((noreturn)) void do_netbench(void);

/* balloon.c: the virtio-balloon workload. */
__attribute__((noreturn)) void do_balloon(void);

/* vsock.c: the virtio-vsock workload. */
__attribute__((noreturn)) void do_vsock(void);

#endif
