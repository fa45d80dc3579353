/*
 * vsockconn: connect latency of a VM's socket device, one connection after another
 * (bench/vsock.py; built static by it into the L1 image and the L2's initramfs).
 *
 *   vsockconn uds PATH PORT N     Firecracker's hybrid vsock (hugevmm): N times connect
 *                                 to the Unix socket PATH, write "CONNECT PORT\n", read
 *                                 the answer line ("OK <n>\n"), close
 *   vsockconn vsock CID PORT N    AF_VSOCK (vhost-vsock): N times connect to CID:PORT
 *                                 (the handshake is the connect), close
 *   vsockconn serve PORT          AF_VSOCK, in the guest: listen on PORT (backlog 4096),
 *                                 accept and close each connection, forever; says
 *                                 "vsockconn: listening port=PORT" on stdout first
 *
 * Each connection is timed alone (CLOCK_MONOTONIC, from socket() to close() returned);
 * no close waits for the peer. Prints one line on stdout:
 *
 *   vsockconn conns=N ok=K failed=F median_us=X p10_us= p90_us= p99_us= mean_us=
 *             min_us= max_us= total_ms=T first_error=WHY
 *
 * over the connections that got their answer (WHY "-" when none failed: else the first
 * failure, e.g. "answer:ERR" or "connect:ECONNRESET"). After 20 failures in a row it
 * stops. Exit 0 when all N got their answer, 1 otherwise, 2 on bad arguments.
 */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static char why[96];

static void fail(const char *what, int err)
{
	if (!why[0])
		snprintf(why, sizeof(why), "%s:%s", what, err ? strerrorname_np(err) : "EOF");
}

/* One hybrid connection: connect, CONNECT line, "OK ..." line, close. 0 when answered. */
static int one_uds(const struct sockaddr_un *a, const char *line, size_t len)
{
	struct timeval tv = {.tv_sec = 10};
	char buf[64];
	size_t got = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = -1;

	if (fd < 0) {
		fail("socket", errno);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)a, sizeof(*a))) {
		fail("connect", errno);
		goto out;
	}
	if (write(fd, line, len) != (ssize_t)len) {
		fail("write", errno);
		goto out;
	}
	/* The answer line; the device sends nothing after it before the guest does. */
	while (got < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);

		if (n <= 0) {
			fail("answer", n < 0 ? errno : 0);
			goto out;
		}
		got += (size_t)n;
		if (memchr(buf, '\n', got))
			break;
	}
	buf[got] = 0;
	if (strncmp(buf, "OK ", 3)) {
		if (!why[0]) {
			buf[strcspn(buf, "\r\n ")] = 0;
			snprintf(why, sizeof(why), "answer:%.40s", buf[0] ? buf : "?");
		}
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

static int one_vsock(const struct sockaddr_vm *a)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0) {
		fail("socket", errno);
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)a, sizeof(*a))) {
		fail("connect", errno);
		rc = -1;
	}
	close(fd);
	return rc;
}

static int serve(unsigned port)
{
	struct sockaddr_vm a = {
		.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
	int l = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 4096)) {
		perror("vsockconn: serve");
		return 1;
	}
	printf("vsockconn: listening port=%u\n", port);
	fflush(stdout);
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);

		if (c >= 0)
			close(c);
		else if (errno != EINTR && errno != ECONNABORTED)
			usleep(1000);
	}
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, unsigned n, unsigned p)
{
	return (double)v[(unsigned)((uint64_t)(n - 1) * p / 100)] / 1000.0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un ua = {.sun_family = AF_UNIX};
	struct sockaddr_vm va = {.svm_family = AF_VSOCK};
	char line[32];
	unsigned n, ok = 0, failed = 0, row = 0;
	uint64_t *lat, t0, sum = 0;
	int uds;

	if (argc == 3 && !strcmp(argv[1], "serve"))
		return serve((unsigned)strtoul(argv[2], NULL, 10));
	if (argc != 5 || (strcmp(argv[1], "uds") && strcmp(argv[1], "vsock"))) {
		fprintf(stderr,
			"usage: vsockconn uds PATH PORT N | vsock CID PORT N | serve PORT\n");
		return 2;
	}
	uds = !strcmp(argv[1], "uds");
	n = (unsigned)strtoul(argv[4], NULL, 10);
	if (!n || !(lat = calloc(n, sizeof(*lat))))
		return 2;
	if (uds) {
		if (strlen(argv[2]) >= sizeof(ua.sun_path))
			return 2;
		strcpy(ua.sun_path, argv[2]);
		snprintf(line, sizeof(line), "CONNECT %s\n", argv[3]);
	} else {
		va.svm_cid = (unsigned)strtoul(argv[2], NULL, 10);
		va.svm_port = (unsigned)strtoul(argv[3], NULL, 10);
	}
	t0 = now_ns();
	for (unsigned i = 0; i < n && row < 20; i++) {
		uint64_t t = now_ns();
		int r = uds ? one_uds(&ua, line, strlen(line)) : one_vsock(&va);

		t = now_ns() - t;
		if (r) {
			failed++;
			row++;
			continue;
		}
		row = 0;
		lat[ok++] = t;
		sum += t;
	}
	t0 = now_ns() - t0;
	qsort(lat, ok, sizeof(*lat), cmp);
	printf("vsockconn conns=%u ok=%u failed=%u", n, ok, failed);
	if (ok)
		printf(" median_us=%.1f p10_us=%.1f p90_us=%.1f p99_us=%.1f mean_us=%.1f "
		       "min_us=%.1f max_us=%.1f",
		       (double)(lat[(ok - 1) / 2] + lat[ok / 2]) / 2000.0, pct(lat, ok, 10),
		       pct(lat, ok, 90), pct(lat, ok, 99), (double)sum / ok / 1000.0,
		       (double)lat[0] / 1000.0, (double)lat[ok - 1] / 1000.0);
	printf(" total_ms=%.1f first_error=%s\n", (double)t0 / 1e6, why[0] ? why : "-");
	return ok == n ? 0 : 1;
}
