#include "common/sysfs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sysfs_read(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	if (len == 0)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	return (int)n;
}

int sysfs_read_u64(const char *path, uint64_t *val)
{
	char buf[32], *end;
	int r = sysfs_read(path, buf, sizeof(buf));

	if (r < 0)
		return r;
	errno = 0;
	*val = strtoull(buf, &end, 10);
	if (errno || end == buf)
		return -EINVAL;
	return 0;
}

int sysfs_write(const char *path, const char *val)
{
	size_t len = strlen(val);
	ssize_t n;
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	return (size_t)n == len ? 0 : -EIO;
}

int sysfs_read_choice(const char *path, char *buf, size_t len)
{
	char raw[256], *open_b, *close_b;
	int r = sysfs_read(path, raw, sizeof(raw));

	if (r < 0)
		return r;
	open_b = strchr(raw, '[');
	close_b = open_b ? strchr(open_b, ']') : NULL;
	if (!open_b || !close_b) {
		snprintf(buf, len, "%s", "");
		return 0;
	}
	*close_b = '\0';
	snprintf(buf, len, "%s", open_b + 1);
	return 0;
}
