/*
 * netblast: Ethernet frames onto one interface as fast as it takes them, for a VM's
 * receive side (the net benchmark's mode=rx; tests/integration/test_net_guest_qemu.py):
 * sent on the host end of a tap, each frame is queued for the tap's reader, the VMM.
 *
 *   netblast [-n NICE] IFACE SIZE SECS [DST_MAC]
 *
 * An AF_PACKET raw socket bound to IFACE with PACKET_QDISC_BYPASS (straight to the
 * driver: a tap queues the frame for its reader, or drops it when that queue is full),
 * BATCH frames per sendmmsg() for SECS seconds (or until SIGINT/SIGTERM). Each frame is
 * SIZE bytes without the FCS (60..65535; more than the interface's MTU + 14 is refused):
 * DST_MAC (default ff:ff:ff:ff:ff:ff), IFACE's own MAC, EtherType 0x88b5 (IEEE 802
 * Local Experimental 1), a 64-bit big-endian sequence number counting from 1 (the test
 * guest's mode=rx counts the numbers it never saw), then bytes 0, 1, 2, ... -n: run at
 * that nice value (busybox has no nice(1); inside the L1 harness the VMM comes first).
 * Prints one line on stdout:
 *
 *   netblast if=tap0 size=64 sent=N bytes=B ms=T pps=X mbps=Y errors=E tx_dropped=D
 *
 * sent: frames the interface took (what a reader of the tap can get; sequence numbers
 * are given to these only); mbps: MB/s (10^6) of frame bytes; errors: sendmmsg() calls
 * that took no frame (the first one's errno is printed too) -- on a tap, ENOBUFS: its
 * queue for the reader was full and the frame was dropped (it goes again, with the same
 * number, after a sched_yield()); tx_dropped: the interface's own count of those over
 * the run (/sys/class/net/IFACE/statistics/tx_dropped). Exit 0 when any frame went, 1
 * when none did, 2 on bad arguments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH     64
#define ETH_BENCH 0x88b5
#ifndef PACKET_QDISC_BYPASS
#define PACKET_QDISC_BYPASS 20
#endif

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long long tx_dropped(const char *ifname)
{
	char path[128];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/tx_dropped", ifname);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static int parse_mac(const char *s, uint8_t *mac)
{
	unsigned v[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 255)
			return -1;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct mmsghdr msgs[BATCH];
	static struct iovec iov[BATCH];
	uint8_t dst[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, src[6];
	unsigned long long sent = 0, errors = 0, seq = 1;
	struct sockaddr_ll sll = {0};
	struct sigaction sa = {0};
	int fd, one = 1, first_errno = 0;
	long long drop0, drop1;
	double t0, t1, secs;
	struct ifreq ifr;
	unsigned ifindex;
	uint8_t *bufs;
	long size;

	if (argc > 2 && !strcmp(argv[1], "-n")) {
		if (setpriority(PRIO_PROCESS, 0, atoi(argv[2])) < 0)
			perror("netblast: setpriority (going on at the current nice value)");
		argc -= 2;
		argv += 2;
	}
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: netblast [-n NICE] IFACE SIZE SECS [DST_MAC]\n");
		return 2;
	}
	size = strtol(argv[2], NULL, 10);
	secs = strtod(argv[3], NULL);
	if (size < 60 || size > 65535 || !(secs > 0)) {
		fprintf(stderr, "netblast: SIZE must be 60..65535 and SECS above 0\n");
		return 2;
	}
	if (argc == 5 && parse_mac(argv[4], dst)) {
		fprintf(stderr, "netblast: DST_MAC \"%s\" is not xx:xx:xx:xx:xx:xx\n", argv[4]);
		return 2;
	}
	ifindex = if_nametoindex(argv[1]);
	if (!ifindex || strlen(argv[1]) >= IFNAMSIZ) {
		fprintf(stderr, "netblast: no interface \"%s\"\n", argv[1]);
		return 2;
	}
	fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: sends only, receives nothing */
	if (fd < 0) {
		perror("netblast: socket(AF_PACKET) (root or CAP_NET_RAW is needed)");
		return 1;
	}
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, argv[1], strlen(argv[1]));
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		perror("netblast: SIOCGIFHWADDR");
		return 1;
	}
	memcpy(src, ifr.ifr_hwaddr.sa_data, 6);
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = (int)ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		perror("netblast: bind");
		return 1;
	}
	/* Not fatal: without it frames go through the interface's qdisc first. */
	if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0)
		perror("netblast: PACKET_QDISC_BYPASS (going through the qdisc)");
	bufs = calloc(BATCH, (size_t)size);
	if (!bufs) {
		perror("netblast: calloc");
		return 1;
	}
	for (int i = 0; i < BATCH; i++) {
		uint8_t *f = bufs + (size_t)i * (size_t)size;

		memcpy(f, dst, 6);
		memcpy(f + 6, src, 6);
		f[12] = ETH_BENCH >> 8;
		f[13] = ETH_BENCH & 0xff;
		for (long k = 22; k < size; k++)
			f[k] = (uint8_t)(k - 22);
		iov[i].iov_base = f;
		iov[i].iov_len = (size_t)size;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	drop0 = tx_dropped(argv[1]);
	t0 = now_s();
	t1 = t0;
	while (!stop && t1 - t0 < secs) {
		int got;

		/* Sequence numbers of this batch, big-endian after the EtherType. */
		for (int i = 0; i < BATCH; i++) {
			uint8_t *f = bufs + (size_t)i * (size_t)size;
			unsigned long long s = seq + (unsigned long long)i;

			for (int b = 0; b < 8; b++)
				f[14 + b] = (uint8_t)(s >> (56 - 8 * b));
		}
		got = sendmmsg(fd, msgs, BATCH, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (!errors++)
				first_errno = errno;
			sched_yield();
		} else {
			sent += (unsigned long long)got;
			seq += (unsigned long long)got;
		}
		t1 = now_s();
	}
	drop1 = tx_dropped(argv[1]);
	{
		double ms = (t1 - t0) * 1e3;

		printf("netblast if=%s size=%ld sent=%llu bytes=%llu ms=%.0f pps=%.0f mbps=%.1f "
		       "errors=%llu tx_dropped=%lld",
		       argv[1], size, sent, sent * (unsigned long long)size, ms, sent / (ms / 1e3),
		       (double)sent * (double)size / 1e3 / ms, errors,
		       drop0 < 0 || drop1 < 0 ? -1 : drop1 - drop0);
		if (errors)
			printf(" first_error=%s", strerror(first_errno));
		printf("\n");
	}
	free(bufs);
	close(fd);
	return sent ? 0 : 1;
}
