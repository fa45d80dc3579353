/* Reading the small text files of /sys and /proc. */
#ifndef HUGEVMM_COMMON_SYSFS_H
#define HUGEVMM_COMMON_SYSFS_H

#include <stddef.h>
#include <stdint.h>

/* Read a whole small file, trailing newline stripped. Returns length or -errno. */
int sysfs_read(const char *path, char *buf, size_t len);

/* Read an unsigned decimal value. Returns 0 or -errno. */
int sysfs_read_u64(const char *path, uint64_t *val);

/* Write a string (no newline needed). Returns 0 or -errno. */
int sysfs_write(const char *path, const char *val);

/*
 * The selected word of a "a [b] c" selector file such as
 * transparent_hugepage/enabled. Returns 0 or -errno; "" when none is marked.
 */
int sysfs_read_choice(const char *path, char *buf, size_t len);

#endif
