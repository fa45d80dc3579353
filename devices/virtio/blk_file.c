/* A drive's image: opened, checked and locked (devices/virtio/blk.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "devices/virtio/blk.h"

/* glibc's struct statx hides the direct I/O fields: the kernel's struct, by the syscall. */
static int statx_fd(int fd, struct statx *st)
{
	return (int)syscall(SYS_statx, fd, "", AT_EMPTY_PATH,
			    STATX_TYPE | STATX_SIZE | STATX_DIOALIGN, st);
}

static int fail(char *why, size_t len, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *why, size_t len, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return r;
}

static const char *kind_of(unsigned mode)
{
	switch (mode & 0170000) {
	case 0040000:
		return "a directory";
	case 0010000:
		return "a FIFO";
	case 0140000:
		return "a socket";
	case 0020000:
		return "a character device";
	case 0120000:
		return "a symbolic link";
	}
	return "not a regular file";
}

/* Who holds the conflicting lock, in words. */
static void lock_holder(int fd, bool read_only, char *out, size_t len)
{
	struct flock fl = {.l_type = read_only ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET};

	if (fcntl(fd, F_OFD_GETLK, &fl) || fl.l_type == F_UNLCK)
		snprintf(out, len, "a lock");
	else if (fl.l_pid > 0)
		snprintf(out, len, "a %s lock (process %d)", fl.l_type == F_WRLCK ? "write" : "read",
			 (int)fl.l_pid);
	else
		snprintf(out, len, "an open file description %s lock",
			 fl.l_type == F_WRLCK ? "write" : "read");
}

static int lock_image(struct blk_file *f, char *why, size_t len)
{
	struct flock fl = {.l_type = f->read_only ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET};
	char holder[96];

	if (!fcntl(f->fd, F_OFD_SETLK, &fl))
		return 0;
	if (errno != EAGAIN && errno != EACCES)
		return fail(why, len, -errno, "%s: cannot lock the image (F_OFD_SETLK): %s", f->path,
			    strerror(errno));
	lock_holder(f->fd, f->read_only, holder, sizeof(holder));
	return fail(why, len, -EBUSY,
		    "%s: locked by another process, which holds %s; hugevmm takes %s OFD lock "
		    "on a %s image so that two VMs cannot corrupt it: stop the other VM, give "
		    "each VM its own image%s",
		    f->path, holder, f->read_only ? "a shared (read)" : "an exclusive (write)",
		    f->read_only ? "read-only" : "writable",
		    f->read_only ? "" : ", or attach it read-only everywhere");
}

/* The O_DIRECT rules of the file: statx's answer, else the device's sector size. */
static void dio_rules(struct blk_file *f, const struct statx *st)
{
	int ssz = 0;

	if ((st->stx_mask & STATX_DIOALIGN) && st->stx_dio_offset_align) {
		f->dio_mem_align = st->stx_dio_mem_align ? st->stx_dio_mem_align : 1;
		f->dio_offset_align = st->stx_dio_offset_align;
		return;
	}
	if ((st->stx_mode & 0170000) == 0060000 && !ioctl(f->fd, BLKSSZGET, &ssz) && ssz > 0)
		f->dio_offset_align = (uint32_t)ssz;
	else
		f->dio_offset_align = 4096; /* unknown: the strictest common rule */
	f->dio_mem_align = f->dio_offset_align;
}

/* Size of the file or block device open at @fd (statx'd into @st). */
static int size_of(int fd, const struct statx *st, uint64_t *size)
{
	if ((st->stx_mode & 0170000) == 0060000)
		return ioctl(fd, BLKGETSIZE64, size) ? -errno : 0;
	*size = st->stx_size;
	return 0;
}

int blk_file_open(struct blk_file *f, const char *path, bool read_only, bool direct, char *why,
		  size_t whylen)
{
	int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
	const char *need = read_only ? "read" : "read and write";
	struct statx st;
	char proc[64];
	int r;

	memset(f, 0, sizeof(*f));
	f->fd = f->fd_buf = -1;
	f->read_only = read_only;
	f->direct = direct;
	snprintf(f->path, sizeof(f->path), "%s", path);
	if (!*path)
		return fail(why, whylen, -EINVAL, "no path: give the disk image or block device");
	/* O_NONBLOCK: a FIFO must be refused, not waited on. */
	f->fd = open(path, flags);
	if (f->fd < 0) {
		r = -errno;
		if (r == -ENOENT)
			return fail(why, whylen, r, "%s: no such file; give an existing disk image "
				    "or block device", path);
		if (r == -EACCES || r == -EPERM || r == -EROFS)
			return fail(why, whylen, r, "%s: cannot be opened to %s: %s; fix its "
				    "permissions%s", path, need, strerror(-r),
				    read_only ? "" : " or set is_read_only");
		if (r == -EISDIR)
			return fail(why, whylen, r, "%s: is a directory; give a regular file or a "
				    "block device", path);
		return fail(why, whylen, r, "%s: cannot be opened: %s", path, strerror(-r));
	}
	if (statx_fd(f->fd, &st)) {
		r = fail(why, whylen, -errno, "%s: statx: %s", path, strerror(errno));
		goto out;
	}
	if ((st.stx_mode & 0170000) == 0100000 || (st.stx_mode & 0170000) == 0060000) {
		r = size_of(f->fd, &st, &f->size);
		if (r) {
			fail(why, whylen, r, "%s: BLKGETSIZE64: %s", path, strerror(-r));
			goto out;
		}
	} else {
		r = fail(why, whylen, (st.stx_mode & 0170000) == 0040000 ? -EISDIR : -EINVAL,
			 "%s: is %s; give a regular file or a block device", path,
			 kind_of(st.stx_mode));
		goto out;
	}
	if (f->size < BLK_SECTOR) {
		r = fail(why, whylen, -EINVAL, "%s: is %llu bytes, smaller than one %u-byte sector; "
			 "give an image of at least one sector", path,
			 (unsigned long long)f->size, BLK_SECTOR);
		goto out;
	}
	if (fcntl(f->fd, F_SETFL, 0)) {
		r = fail(why, whylen, -errno, "%s: F_SETFL: %s", path, strerror(errno));
		goto out;
	}
	r = lock_image(f, why, whylen);
	if (r)
		goto out;
	if (direct) {
		/* Same open file, both ways: the buffered one serves unaligned requests. */
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
		f->fd_buf = open(proc, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (f->fd_buf < 0 || fcntl(f->fd, F_SETFL, O_DIRECT)) {
			r = -errno;
			if (r == -EINVAL)
				r = fail(why, whylen, r, "%s: its file system does not support "
					 "O_DIRECT; set \"direct\": false", path);
			else
				r = fail(why, whylen, r, "%s: O_DIRECT: %s", path, strerror(-r));
			goto out;
		}
		dio_rules(f, &st);
	}
	return 0;
out:
	blk_file_close(f);
	return r;
}

int blk_file_same(const struct blk_file *f, const char *path, uint64_t *size)
{
	struct statx a, b;

	if (statx_fd(f->fd, &a))
		return -errno;
	if (syscall(SYS_statx, AT_FDCWD, path, 0, STATX_TYPE | STATX_INO, &b))
		return 0;
	if (a.stx_ino != b.stx_ino || a.stx_dev_major != b.stx_dev_major ||
	    a.stx_dev_minor != b.stx_dev_minor)
		return 0;
	return size_of(f->fd, &a, size) ?: 1;
}

void blk_file_close(struct blk_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->fd_buf >= 0)
		close(f->fd_buf);
	f->fd = f->fd_buf = -1;
}
