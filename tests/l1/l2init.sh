#!/bin/busybox sh
# init of the L2 Linux guest (initramfs): prove userspace runs, touch some
# memory, report, then reboot (the i8042 reset line ends hugevmm with 0).
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
echo "L2: userspace up"
echo "L2: cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo)"
echo "L2: memtotal_kb=$(/bin/busybox awk '/^MemTotal/ {print $2}' /proc/meminfo)"
# 32 MiB into tmpfs: guest page faults, backed by whatever the VMM gave.
/bin/busybox mount -t tmpfs tmp /tmp
/bin/busybox dd if=/dev/zero of=/tmp/fill bs=1M count=32 2>/dev/null && echo "L2: touched 32 MiB"
echo "L2: done"
/bin/busybox reboot -f
