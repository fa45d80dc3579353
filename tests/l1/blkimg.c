/*
 * blkimg: the test guest's disk pattern, inside L1 (which has busybox but no
 * Python). Built on the host by tests/l1/build.py, static, into the image.
 *
 *   blkimg make FILE SECTORS SEED   write SECTORS sectors of the pattern for SEED
 *   blkimg scan FILE                print the image as runs of sectors, one a line:
 *                                   "FIRST-LAST seed=S" where every sector holds the
 *                                   pattern for S, "FIRST-LAST zero", "FIRST-LAST other"
 *                                   (anything else); then "sectors=N"
 *
 * The pattern is test=blk's (tests/guest/blk.c): a 512-byte sector N of seed S
 * holds le64 N, le64 S, then bytes (N + i) & 0xff for i = 16..511.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECTOR 512u
#define CHUNK  256u /* sectors per read or write */

static void fill(uint8_t *s, uint64_t n, uint64_t seed)
{
	for (unsigned i = 0; i < 8; i++) {
		s[i] = (uint8_t)(n >> (8 * i));
		s[8 + i] = (uint8_t)(seed >> (8 * i));
	}
	for (unsigned i = 16; i < SECTOR; i++)
		s[i] = (uint8_t)(n + i);
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* What sector @n holds: 1 the pattern (its seed in *seed), 0 zeros, -1 anything else. */
static int classify(const uint8_t *s, uint64_t n, uint64_t *seed)
{
	uint8_t want[SECTOR];
	unsigned i;

	for (i = 0; i < SECTOR && !s[i]; i++)
		;
	if (i == SECTOR)
		return 0;
	if (le64(s) != n)
		return -1;
	*seed = le64(s + 8);
	fill(want, n, *seed);
	return memcmp(s, want, SECTOR) ? -1 : 1;
}

static int do_make(const char *path, uint64_t sectors, uint64_t seed)
{
	static uint8_t buf[CHUNK * SECTOR];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0) {
		fprintf(stderr, "blkimg: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (uint64_t n = 0; n < sectors;) {
		unsigned k = sectors - n < CHUNK ? (unsigned)(sectors - n) : CHUNK;

		for (unsigned j = 0; j < k; j++)
			fill(buf + j * SECTOR, n + j, seed);
		if (write(fd, buf, k * SECTOR) != (ssize_t)(k * SECTOR)) {
			fprintf(stderr, "blkimg: %s: write: %s\n", path, strerror(errno));
			return 1;
		}
		n += k;
	}
	if (fsync(fd) || close(fd)) {
		fprintf(stderr, "blkimg: %s: %s\n", path, strerror(errno));
		return 1;
	}
	return 0;
}

struct run {
	int kind; /* as classify() */
	uint64_t seed, first, last;
	bool open;
};

static void flush_run(struct run *r)
{
	if (!r->open)
		return;
	if (r->kind == 1)
		printf("%" PRIu64 "-%" PRIu64 " seed=%" PRIu64 "\n", r->first, r->last, r->seed);
	else
		printf("%" PRIu64 "-%" PRIu64 " %s\n", r->first, r->last, r->kind ? "other" : "zero");
	r->open = false;
}

static int do_scan(const char *path)
{
	static uint8_t buf[CHUNK * SECTOR];
	struct run r = {0};
	uint64_t n = 0;
	int fd = open(path, O_RDONLY);
	ssize_t got;

	if (fd < 0) {
		fprintf(stderr, "blkimg: %s: %s\n", path, strerror(errno));
		return 1;
	}
	while ((got = read(fd, buf, sizeof(buf))) > 0) {
		for (size_t off = 0; off + SECTOR <= (size_t)got; off += SECTOR, n++) {
			uint64_t seed = 0;
			int kind = classify(buf + off, n, &seed);

			if (r.open && r.kind == kind && (kind != 1 || r.seed == seed)) {
				r.last = n;
				continue;
			}
			flush_run(&r);
			r = (struct run){kind, seed, n, n, true};
		}
	}
	if (got < 0) {
		fprintf(stderr, "blkimg: %s: read: %s\n", path, strerror(errno));
		return 1;
	}
	flush_run(&r);
	printf("sectors=%" PRIu64 "\n", n);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "make"))
		return do_make(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0));
	if (argc == 3 && !strcmp(argv[1], "scan"))
		return do_scan(argv[2]);
	fprintf(stderr, "usage: blkimg make FILE SECTORS SEED | blkimg scan FILE\n");
	return 2;
}
