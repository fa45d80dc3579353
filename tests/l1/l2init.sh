#!/bin/busybox sh
# init of the L2 Linux guest (initramfs): prove userspace runs, touch some
# memory, report, then reboot (the i8042 reset line ends hugevmm with 0).
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
/bin/busybox mount -t sysfs sys /sys
echo "L2: userspace up"
echo "L2: cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo)"
echo "L2: memtotal_kb=$(/bin/busybox awk '/^MemTotal/ {print $2}' /proc/meminfo)"
# 32 MiB into tmpfs: guest page faults, backed by whatever the VMM gave.
/bin/busybox mount -t tmpfs tmp /tmp
/bin/busybox dd if=/dev/zero of=/tmp/fill bs=1M count=32 2>/dev/null && echo "L2: touched 32 MiB"
# Devices (l2.devices=1): the kernel's own virtio drivers find hugevmm's devices, through
# ACPI alone when the command line names none (a Debian kernel has no
# VIRTIO_MMIO_CMDLINE_DEVICES); the entropy device is read through /dev/hwrng.
if /bin/busybox grep -q 'l2.devices=1' /proc/cmdline; then
	while read -r m; do
		/bin/busybox insmod "/lib/l2-modules/$m" 2>/tmp/insmod.err ||
			echo "L2: insmod $m: $(/bin/busybox cat /tmp/insmod.err)"
	done </lib/l2-modules/order
	echo "L2: cmdline=$(/bin/busybox cat /proc/cmdline)"
	/bin/busybox dmesg | /bin/busybox grep -q 'Unable to enable ACPI' && echo "L2: acpi=off" ||
		echo "L2: acpi=on"
	[ -e /sys/firmware/acpi/tables/DSDT ] && echo "L2: dsdt=yes" || echo "L2: dsdt=no"
	echo "L2: acpi_devices=$(/bin/busybox ls /sys/bus/acpi/devices | /bin/busybox tr '\n' ' ')"
	echo "L2: virtio_devices=$(/bin/busybox ls /sys/bus/virtio/devices 2>/dev/null | /bin/busybox tr '\n' ' ')"
	echo "L2: rng_current=$(/bin/busybox cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
	n=$(/bin/busybox dd if=/dev/hwrng bs=4096 count=1 2>/dev/null | /bin/busybox wc -c)
	d=$(/bin/busybox dd if=/dev/hwrng bs=4096 count=1 2>/dev/null | /bin/busybox od -An -v -tu1 -w1 |
		/bin/busybox sort -u | /bin/busybox wc -l)
	echo "L2: hwrng bytes=$n distinct=$d"
	/bin/busybox dmesg | /bin/busybox grep -iE 'virtio|hwrng|acpi: ' | /bin/busybox sed 's/^/L2: dmesg /'
fi
echo "L2: done"
if /bin/busybox grep -q 'l2.end=poweroff' /proc/cmdline; then
	/bin/busybox poweroff -f
fi
/bin/busybox reboot -f
