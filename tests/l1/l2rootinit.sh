#!/bin/busybox sh
# /sbin/init of the L2's ext4 root file system (tests/l1/build.py makes the image with
# mkfs.ext4 -d; the initramfs init mounts /dev/vda and switch_roots here). It writes files
# the L1 reads back from the image after hugevmm exits (debugfs), mounts the read-only
# second drive and shows that writes to it fail, puts / back read-only (the journal
# checkpointed: the image is clean), and powers off.
bb=/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sys /sys
$bb mount -t devtmpfs dev /dev 2>/dev/null
echo "L2root: up, / is $($bb awk '$2 == "/" { print $1, $3, $4 }' /proc/mounts)"
# What L1 reads back from the image after hugevmm exits: a text file and 1 MiB of random
# bytes (multi-segment writes), both through the page cache, then sync (FLUSH on a
# Writeback drive).
printf 'written by the L2 on its ext4 root over virtio-blk\nkernel=%s\n' "$($bb uname -r)" \
	>/l2-wrote.txt
$bb dd if=/dev/urandom of=/l2-random.bin bs=65536 count=16 2>/dev/null
echo "L2root: wrote /l2-wrote.txt, /l2-random.bin md5=$($bb md5sum /l2-random.bin | $bb cut -d' ' -f1)"
$bb sync && echo "L2root: synced"
# The read-only drive (is_read_only: VIRTIO_BLK_F_RO): the kernel marks the disk read-only,
# a file written into its read-only mount fails with EROFS, and neither a read-write
# remount nor a raw write to the disk gets through.
if [ -b /dev/vdb ]; then
	$bb mkdir -p /mnt/data
	if $bb mount -t ext4 -o ro /dev/vdb /mnt/data 2>/tmp/mount.err; then
		echo "L2root: vdb ro=$($bb cat /sys/block/vdb/ro) mounted $($bb awk '$2 == "/mnt/data" { print $4 }' /proc/mounts)"
		echo "L2root: data says: $($bb cat /mnt/data/readme.txt)"
		err=$( (echo x >/mnt/data/new) 2>&1)
		echo "L2root: write into the ro mount: rc=$? $err"
		err=$($bb mount -o remount,rw /mnt/data 2>&1)
		echo "L2root: remount rw: rc=$? $err"
		$bb umount /mnt/data
	else
		echo "L2root: mount /dev/vdb: $($bb cat /tmp/mount.err)"
	fi
	err=$($bb dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=fsync 2>&1)
	echo "L2root: raw write to /dev/vdb: rc=$? $(echo "$err" | $bb head -1)"
fi
$bb rm -f /tmp/mount.err
$bb mount -o remount,ro / && echo "L2root: / remounted ro"
$bb sync
echo "L2root: done"
$bb poweroff -f
