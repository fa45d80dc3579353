/*
 * The socket device (virtio-vsock, Firecracker's "vsock"), in Firecracker's
 * hybrid form: guest stream connections end on Unix sockets of the host, no
 * vhost_vsock needed.
 *
 *  - Host -> guest: a host process connects to @uds_path, writes
 *    "CONNECT <port>\n"; the device asks the guest (REQUEST from CID 2, a
 *    local port of its own choosing); when the guest answers RESPONSE the
 *    host gets "OK <local port>\n" and bytes flow. A guest RST (nobody
 *    listens on that port) closes the host socket.
 *  - Guest -> host: a guest REQUEST to CID 2 port P connects to the Unix
 *    socket "<uds_path>_<P>"; no listener there -> RST.
 *
 * Queues: rx 0, tx 1, event 2. Stream sockets only (VIRTIO_VSOCK_TYPE_STREAM).
 *
 * Flow control is the spec's credit: each side says how much buffer it has
 * (buf_alloc) and how much it has consumed (fwd_cnt), in every header.
 *  - Guest -> host: the device offers VSOCK_BUF_ALLOC per connection and
 *    counts as consumed only what the host socket took. What a full host
 *    socket did not take waits in a per-connection buffer of at most
 *    VSOCK_BUF_ALLOC bytes (the credit the guest was given), never more: a
 *    guest that sends beyond its credit gets RST (counted). A slow host reader
 *    thus stops the guest's writer through credit.
 *  - Host -> guest: the device reads a host socket only while the guest's
 *    credit for that connection and its rx buffers allow, straight into
 *    the rx buffers (nothing read is ever held back in the VMM).
 *
 * Closing: the host side's EOF -> SHUTDOWN(SEND) to the guest (a half close
 * the guest sees as end of stream); a host socket that fails (EPIPE,
 * ECONNRESET) -> RST. A guest SHUTDOWN with both flags -> what waits is
 * written, the host socket closed, RST to the guest (what Linux expects);
 * a guest RST -> the host socket closed. Once both sides said they send no
 * more (the host's EOF, the guest's SHUTDOWN(SEND)) and what waits is
 * written, the connection ends the same way. The device never waits on the
 * guest to close: Linux itself resets a connection whose close is not
 * answered (VSOCK_CLOSE_TIMEOUT, 8 s), and a connection the guest keeps
 * half-open is the guest's to keep.
 *
 * A malformed packet (a header shorter than 44 bytes, a length beyond the
 * chain or VSOCK_MAX_PKT, a CID that is not the guest's / the host's) is
 * dropped or its connection reset, counted; a ring rule broken is
 * DEVICE_NEEDS_RESET as everywhere. The VM goes on.
 *
 * Threads: all socket I/O on the VMM loop (dev_host watch/timer); vCPU
 * threads only touch registers. The transport's lock serializes both.
 */
#ifndef HUGEVMM_DEVICES_VIRTIO_VSOCK_H
#define HUGEVMM_DEVICES_VIRTIO_VSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/uds.h"
#include "devices/virtio/mmio.h"

#define VSOCK_HOST_CID    2u
#define VSOCK_HDR_LEN     44u               /* struct virtio_vsock_hdr */
#define VSOCK_BUF_ALLOC   (256u * 1024u)    /* what each connection offers the guest */
#define VSOCK_MAX_PKT     (64u * 1024u)     /* the largest payload taken from the guest */
#define VSOCK_MAX_CONNS   1024u             /* open connections at once (more: RST) */
#define VSOCK_CONNECT_MS  5000u             /* host: CONNECT line, and the guest's answer */
#define VSOCK_LINE_MAX    32u               /* "CONNECT 4294967295\n" fits */
#define VSOCK_PORT_FIRST  (1u << 30)        /* local ports for host-initiated connections */
#define VSOCK_WHY_LEN     320

/* The spec's header (little-endian on the wire; the device converts). */
enum vsock_op {
	VSOCK_OP_INVALID = 0,
	VSOCK_OP_REQUEST = 1,
	VSOCK_OP_RESPONSE = 2,
	VSOCK_OP_RST = 3,
	VSOCK_OP_SHUTDOWN = 4,
	VSOCK_OP_RW = 5,
	VSOCK_OP_CREDIT_UPDATE = 6,
	VSOCK_OP_CREDIT_REQUEST = 7,
};
#define VSOCK_TYPE_STREAM      1u
#define VSOCK_SHUTDOWN_RCV     1u
#define VSOCK_SHUTDOWN_SEND    2u

struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags;
	uint32_t buf_alloc, fwd_cnt;
};

/* Header <-> its 44 wire bytes. */
void vsock_hdr_decode(struct vsock_hdr *h, const uint8_t *wire);
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *wire);

/*
 * Credit the peer still gives us: @buf_alloc - (@tx_cnt - @fwd_cnt), all in
 * wrapping 32-bit arithmetic; 0 when the peer has shrunk its buffer below
 * what is in flight.
 */
static inline uint32_t vsock_peer_free(uint32_t buf_alloc, uint32_t fwd_cnt, uint32_t tx_cnt)
{
	uint32_t inflight = tx_cnt - fwd_cnt;

	return inflight >= buf_alloc ? 0 : buf_alloc - inflight;
}

struct virtio_vsock_cfg {
	uint32_t guest_cid; /* >= 3 */
	const char *uds_path;
};

/* Firecracker's vsock metrics, and hugevmm's. */
struct vsock_counters {
	/* Firecracker's names. */
	uint64_t rx_queue_event_count, tx_queue_event_count;
	uint64_t rx_bytes_count, tx_bytes_count;     /* payload host->guest, guest->host */
	uint64_t rx_packets_count, tx_packets_count; /* packets to / from the guest */
	uint64_t conns_added, conns_killed, conns_removed;
	uint64_t rx_read_fails, tx_write_fails;      /* host socket errors */
	/* hugevmm's. */
	uint64_t conns_open;                      /* now */
	uint64_t conns_host, conns_guest;         /* established, by who asked */
	uint64_t refused_by_guest;                /* CONNECT to a port the guest does not serve */
	uint64_t refused_no_listener;             /* guest connect: nobody at <uds_path>_<P> */
	uint64_t bad_connect_lines;               /* host clients: not "CONNECT <port>\n" */
	uint64_t connect_timeouts;                /* no CONNECT line, or no guest answer, in time */
	/* Resets by reason. */
	uint64_t rst_by_guest;      /* the guest reset an open connection */
	uint64_t rst_host_gone;     /* the host socket failed (EPIPE, ECONNRESET) */
	uint64_t rst_credit;        /* the guest sent beyond the credit it was given */
	uint64_t rst_malformed;     /* a bad packet on a connection (type, length, op) */
	uint64_t rst_too_many;      /* a connection past VSOCK_MAX_CONNS */
	uint64_t rst_unknown;       /* bytes or a RESPONSE for no connection (answered with RST) */
	uint64_t late_packets;      /* a SHUTDOWN or credit packet for no connection: what an
				       ended one still sends (answered with RST, not a fault) */
	uint64_t malformed_dropped; /* packets dropped whole: short header, wrong CIDs */
	uint64_t credit_updates_sent, credit_requests_seen;
	uint64_t host_full;         /* a host socket took less than offered: buffered */
	uint64_t buffered_bytes, buffered_max; /* guest->host bytes held in the VMM: now, peak */
};

struct vsock_state; /* connections, private to vsock.c */

struct virtio_vsock {
	struct virtio_mmio t;
	uint8_t config[8]; /* guest_cid, little-endian u64 */
	uint64_t guest_cid;
	struct uds_listener l;
	void *w_listen; /* the loop's watch on the listener */
	struct vsock_counters st;
	struct vsock_state *s;
};

/*
 * The device at @base/@gsi: listens on @cfg->uds_path (0600; a stale socket
 * replaced, a live one or a non-socket refused). 0, or -errno with @why (a
 * sentence naming the path, the problem and the remedy; uds_host_error()
 * tells the host's failures from the input's).
 */
int virtio_vsock_init(struct virtio_vsock *v, const struct dev_host *host,
		      const struct guest_mem *mem, uint64_t base, unsigned gsi,
		      const struct virtio_vsock_cfg *cfg, char *why, size_t whylen) must_check;

/* Start accepting host clients: watches on the VMM loop, from its thread. 0 or -ENOMEM. */
int virtio_vsock_attach(struct virtio_vsock *v) must_check;

/* Stop watching sockets and cancel timers (the loop's thread, or once it no longer runs). */
void virtio_vsock_stop(struct virtio_vsock *v);

/* Close every connection and the listener, remove @uds_path (after virtio_vsock_stop). */
void virtio_vsock_destroy(struct virtio_vsock *v);

/* A consistent copy of the counters (any thread). */
void virtio_vsock_counters(struct virtio_vsock *v, struct vsock_counters *out);

#endif
