/*
 * The configuration's drives beyond vmm/config.h: the check of a drive's
 * image, the root device's words on the kernel command line, and the reason
 * for the drive limit that every message about it gives. Implemented in
 * vmm/config.c.
 */
#ifndef HUGEVMM_VMM_CONFIG_DRIVE_H
#define HUGEVMM_VMM_CONFIG_DRIVE_H

#include <stddef.h>

#include "vmm/config.h"

/* Why CFG_MAX_DRIVES is what it is, for messages ("at most 16 (<why>)"). */
#define CFG_DRIVES_WHY                                                                    \
	"the machine has 18 interrupt lines for virtio-mmio devices; 16 disks leave one " \
	"for the entropy device and one for a network interface"

/*
 * @d's image as vm_config_check_files() checks it, @field naming it in
 * messages ("drives[0].path_on_host"): it exists, is a regular file or a
 * block device (no directory, FIFO, socket or character device), opens for
 * reading (and writing unless read-only), and holds at least one 512-byte
 * sector. Nothing is kept open or locked. ERR_CONFIG naming the field, the
 * path and the remedy.
 */
int vm_config_check_drive(const char *field, const struct cfg_drive *d,
			  struct vmm_err *e) must_check;

/*
 * Add the root device's words to @cmdline (a NUL-terminated string in a
 * buffer of @size bytes) when a drive is the root device and the kernel's
 * part of @cmdline (before a "--" word) has no "root=" word yet:
 * " root=/dev/vda" (" root=PARTUUID=<partuuid>" when the drive has one) and
 * " ro" or " rw" as the drive is read-only or not, at the end of the kernel's
 * part. 0 (also when there is nothing to add), or -E2BIG when the words do
 * not fit (@cmdline is then unchanged).
 */
int vm_config_root_args(const struct vm_config *c, char *cmdline, size_t size) must_check;

#endif
