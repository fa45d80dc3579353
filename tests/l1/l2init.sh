#!/bin/busybox sh
# init of the L2 Linux guest (initramfs): prove userspace runs, touch some
# memory, report, then reboot (the i8042 reset line ends hugevmm with 0) -- or, with a
# root= on the command line, mount that disk and switch_root into it (l2rootinit.sh).
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
# A root= on the command line (hugevmm adds root=/dev/vda rw|ro for a drive with
# is_root_device) loads the same modules, mounts that disk and switch_roots into it.
ROOT=
ROOTMODE=ro
for a in $(/bin/busybox cat /proc/cmdline); do
	case "$a" in
	root=*) ROOT=${a#root=} ;;
	rw | ro) ROOTMODE=$a ;;
	esac
done
load_modules() {
	while read -r m; do
		/bin/busybox insmod "/lib/l2-modules/$m" 2>/tmp/insmod.err ||
			echo "L2: insmod $m: $(/bin/busybox cat /tmp/insmod.err)"
	done </lib/l2-modules/order
}
if [ -n "$ROOT" ]; then
	load_modules
	echo "L2: cmdline=$(/bin/busybox cat /proc/cmdline)"
	i=0
	while [ ! -b "$ROOT" ] && [ $i -lt 100 ]; do
		/bin/busybox sleep 0.1
		i=$((i + 1))
	done
	echo "L2: acpi_devices=$(/bin/busybox ls /sys/bus/acpi/devices | /bin/busybox tr '\n' ' ')"
	echo "L2: virtio_devices=$(/bin/busybox ls /sys/bus/virtio/devices 2>/dev/null | /bin/busybox tr '\n' ' ')"
	# Each disk as the kernel sees it: capacity (512-byte sectors), read-only, the serial
	# (GET_ID: the drive_id), and the cache mode (FLUSH offered: "write back").
	for d in /sys/block/vd*; do
		[ -e "$d" ] || continue
		echo "L2: disk ${d##*/} sectors=$(/bin/busybox cat $d/size) ro=$(/bin/busybox cat $d/ro)" \
			"serial=$(/bin/busybox cat $d/serial 2>/dev/null)" \
			"cache=$(/bin/busybox cat $d/queue/write_cache 2>/dev/null | /bin/busybox tr ' ' _)"
	done
	/bin/busybox dmesg | /bin/busybox grep -E 'virtio_(blk|mmio)' | /bin/busybox sed 's/^/L2: dmesg /'
	/bin/busybox mkdir -p /newroot
	if /bin/busybox mount -t ext4 -o "$ROOTMODE" "$ROOT" /newroot 2>/tmp/mount.err; then
		echo "L2: mounted $ROOT $ROOTMODE after $((i * 100)) ms, switch_root"
		/bin/busybox umount /tmp
		/bin/busybox umount /sys
		/bin/busybox umount /dev
		/bin/busybox umount /proc
		exec /bin/busybox switch_root /newroot /sbin/init
	fi
	echo "L2: mount $ROOT: $(/bin/busybox cat /tmp/mount.err)"
	/bin/busybox poweroff -f
fi
if /bin/busybox grep -q 'l2.devices=1' /proc/cmdline; then
	load_modules
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
# Network (l2.net=ADDR/N[,ADDR/N...], the initramfs of tests/l1/build.py's L2_NET_MODULES):
# the kernel's virtio_net finds hugevmm's interfaces through ACPI alone; eth0, eth1... get
# the addresses in order and come up with the offloads the device offered and the driver
# took; the L2 pings each l2.peer= (eth0's, eth1's...), then with l2.xfer_mib=N moves N MiB
# of random bytes over TCP both ways with the first peer (busybox nc and cat; tests/l1/
# init.sh's run_net listens: port 7001 sends L1's file, port 7002 keeps what comes), and
# shows the checksums and TCP's segment counts beside eth0's frame counts.
NET=
PEERS=
XFER=
for a in $(/bin/busybox cat /proc/cmdline); do
	case "$a" in
	l2.net=*) NET=$(echo "${a#l2.net=}" | /bin/busybox tr , ' ') ;;
	l2.peer=*) PEERS=$(echo "${a#l2.peer=}" | /bin/busybox tr , ' ') ;;
	l2.xfer_mib=*) XFER=${a#l2.xfer_mib=} ;;
	esac
done
ms() { /bin/busybox awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
if [ -n "$NET" ]; then
	load_modules
	/bin/busybox ip link set lo up
	echo "L2: cmdline=$(/bin/busybox cat /proc/cmdline)"
	i=0
	for a in $NET; do
		dev=eth$i
		j=0
		while [ ! -e /sys/class/net/$dev ] && [ $j -lt 100 ]; do
			/bin/busybox sleep 0.1
			j=$((j + 1))
		done
		/bin/busybox ip addr add "$a" dev $dev && /bin/busybox ip link set $dev up
		# features: the virtio feature bits the driver acked, bit 0 first.
		echo "L2: $dev mac=$(/bin/busybox cat /sys/class/net/$dev/address 2>/dev/null)" \
			"addr=$a mtu=$(/bin/busybox cat /sys/class/net/$dev/mtu 2>/dev/null)" \
			"operstate=$(/bin/busybox cat /sys/class/net/$dev/operstate 2>/dev/null)" \
			"features=$(/bin/busybox cat /sys/class/net/$dev/device/features 2>/dev/null)"
		/bin/ethtool -k $dev 2>&1 |
			/bin/busybox grep -E '^((rx|tx)-checksumming|(tcp|generic)-segmentation-offload):' |
			/bin/busybox sed "s/^/L2: $dev offload /"
		i=$((i + 1))
	done
	echo "L2: acpi_devices=$(/bin/busybox ls /sys/bus/acpi/devices | /bin/busybox tr '\n' ' ')"
	/bin/busybox dmesg | /bin/busybox grep -iE 'virtio|net_failover' |
		/bin/busybox sed 's/^/L2: dmesg /'
	echo "L2: net up"
	for p in $PEERS; do
		r=$(/bin/busybox ping -c 5 -W 2 "$p" 2>&1 | /bin/busybox grep 'packets transmitted')
		echo "L2: ping $p: $r"
	done
	set -- $PEERS
	if [ -n "$XFER" ] && [ -n "$1" ]; then
		# cat on both ends (nc -e): 64 KiB writes and sendfile, the sizes TSO takes; nc's
		# own 1 KiB reads and writes would leave every segment alone on a slow guest.
		/bin/busybox dd if=/dev/urandom of=/tmp/out.bin bs=1M count="$XFER" 2>/dev/null
		t=$(ms)
		/bin/busybox nc "$1" 7001 -e /bin/busybox sh -c '/bin/busybox cat >/tmp/in.bin'
		rc=$?
		echo "L2: received rc=$rc bytes=$(/bin/busybox wc -c </tmp/in.bin) ms=$(($(ms) - t))" \
			"sha256=$(/bin/busybox sha256sum /tmp/in.bin | /bin/busybox cut -d' ' -f1)"
		t=$(ms)
		/bin/busybox nc "$1" 7002 -e /bin/busybox cat /tmp/out.bin
		rc=$?
		# cat is done when the last bytes are in the socket: wait until L1 took them all
		# (the connection past ESTABLISHED, FIN_WAIT1, CLOSING) before a poweroff drops them.
		j=0
		while /bin/busybox awk '$3 ~ /:1B5A$/ && ($4 == "01" || $4 == "04" || $4 == "0B") { f = 1 }
			END { exit !f }' /proc/net/tcp && [ $j -lt 100 ]; do
			/bin/busybox sleep 0.1
			j=$((j + 1))
		done
		echo "L2: sent rc=$rc bytes=$(/bin/busybox wc -c </tmp/out.bin) ms=$(($(ms) - t))" \
			"sha256=$(/bin/busybox sha256sum /tmp/out.bin | /bin/busybox cut -d' ' -f1)"
	fi
	# The driver counts a frame once however many TCP segments it carries, TCP counts
	# segments (OutSegs here, and L1's): more segments than frames, TSO or GSO at work.
	for s in rx_packets rx_bytes tx_packets tx_bytes; do
		echo "L2: eth0 $s=$(/bin/busybox cat /sys/class/net/eth0/statistics/$s)"
	done
	# TCP's own view: retransmissions, segments with a bad checksum.
	/bin/busybox grep '^Tcp:' /proc/net/snmp | /bin/busybox sed 's/^/L2: snmp /'
fi
# Balloon (l2.balloon=N): the kernel's virtio_balloon, free page reporting on (the device
# offers it), finds hugevmm's balloon through ACPI; N MiB written to tmpfs and removed
# again become free 2M blocks the driver reports; then the L2 waits for the VMM's end.
BALLOON=$(/bin/busybox sed -n 's/.*l2\.balloon=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$BALLOON" ]; then
	load_modules
	i=0
	while ! /bin/busybox ls /sys/bus/virtio/drivers/virtio_balloon 2>/dev/null |
		/bin/busybox grep -q virtio && [ $i -lt 100 ]; do
		/bin/busybox sleep 0.1
		i=$((i + 1))
	done
	for d in /sys/bus/virtio/devices/*; do
		[ "$(/bin/busybox cat $d/device 2>/dev/null)" = 0x0005 ] &&
			echo "L2: balloon features=$(/bin/busybox cat $d/features)"
	done
	/bin/busybox rm -f /tmp/fill
	/bin/busybox sleep 5 # the boot's own free memory reported first
	/bin/busybox grep -E '^(MemFree|MemAvailable):' /proc/meminfo | /bin/busybox sed 's/^/L2: /'
	/bin/busybox dd if=/dev/zero of=/tmp/balloon bs=1M count="$BALLOON" 2>/dev/null
	echo "L2: balloon filled $(/bin/busybox du -m /tmp/balloon | /bin/busybox cut -f1) MiB"
	/bin/busybox sleep 3
	/bin/busybox rm -f /tmp/balloon
	echo "L2: balloon freed"
	/bin/busybox grep -E '^(MemFree|MemAvailable):' /proc/meminfo | /bin/busybox sed 's/^/L2: /'
	/bin/busybox sleep 600
fi
# Vsock (l2.vsock=suite, the initramfs of tests/l1/build.py's L2_VSOCK_MODULES): the
# kernel's virtio-vsock transport finds hugevmm's device through ACPI; socat is both ends.
# Host -> guest: port 52 keeps what each connection brings (/tmp/rx/<pid>) and answers
# with its md5sum (a fork a connection, 64 waiting at once); port 59 takes one
# connection, the host's "go" once it is done there (tests/l1/init.sh's steps,
# cases.linux_vsock). Then guest -> host, to CID 2, the host's own bytes back: the first
# l2.vsock_stall_mib MiB of the largest to port 1027 in the background (its reader
# stalls), the largest to port 1024 meanwhile, then l2.vsock_multi=N of the others at
# once to port 1025 (a connection each), a connect to port 1026 where nobody listens;
# then the stalled one's end. Then the L2 waits for the VMM's end.
VSOCK=$(/bin/busybox sed -n 's/.*l2\.vsock=\([a-z]*\).*/\1/p' /proc/cmdline)
VSTALL=$(/bin/busybox sed -n 's/.*l2\.vsock_stall_mib=\([0-9]*\).*/\1/p' /proc/cmdline)
VSOCK_MULTI=$(/bin/busybox sed -n 's/.*l2\.vsock_multi=\([0-9]*\).*/\1/p' /proc/cmdline)
vsock_listening() { # socat's log ($1) says it listens, within 10 s
	j=0
	while ! /bin/busybox grep -q 'listening on' "$1" 2>/dev/null && [ $j -lt 100 ]; do
		/bin/busybox sleep 0.1
		j=$((j + 1))
	done
	/bin/busybox grep -q 'listening on' "$1"
}
vsock_err() { # socat's last error ("... E connect(...): Connection reset by peer"), spaces as _
	/bin/busybox cat "$@" 2>/dev/null | /bin/busybox grep ' E ' | /bin/busybox tail -n 1 |
		/bin/busybox sed 's/.* E //' | /bin/busybox tr ' ' _
}
if [ "$VSOCK" = suite ]; then
	load_modules
	/bin/busybox rm -f /tmp/fill
	/bin/busybox ln -sf busybox /bin/sh # socat's SYSTEM: runs /bin/sh -c
	i=0
	while ! /bin/busybox ls /sys/bus/virtio/drivers/vmw_vsock_virtio_transport 2>/dev/null |
		/bin/busybox grep -q virtio && [ $i -lt 100 ]; do
		/bin/busybox sleep 0.1
		i=$((i + 1))
	done
	echo "L2: cmdline=$(/bin/busybox cat /proc/cmdline)"
	echo "L2: acpi_devices=$(/bin/busybox ls /sys/bus/acpi/devices | /bin/busybox tr '\n' ' ')"
	for d in /sys/bus/virtio/devices/*; do
		[ "$(/bin/busybox cat $d/device 2>/dev/null)" = 0x0013 ] &&
			echo "L2: vsock device features=$(/bin/busybox cat $d/features)" \
				"driver=$(/bin/busybox basename "$(/bin/busybox readlink $d/driver)")"
	done
	/bin/busybox mkdir -p /tmp/rx /tmp/err
	/bin/socat -b 65536 -d -d -t 60 VSOCK-LISTEN:52,reuseaddr,fork,backlog=64 \
		SYSTEM:'/bin/busybox tee /tmp/rx/$$ | /bin/busybox md5sum' 2>/tmp/l52 &
	srv=$!
	/bin/socat -b 65536 -d -d -u VSOCK-LISTEN:59,reuseaddr OPEN:/tmp/go,creat 2>/tmp/l59 &
	go=$!
	vsock_listening /tmp/l52 && vsock_listening /tmp/l59 && echo "L2: vsock listening 52 59"
	wait $go
	echo "L2: vsock go rc=$? host_sent=$(/bin/busybox wc -c </tmp/go)" \
		"port52_accepted=$(/bin/busybox grep -c 'accepting connection' /tmp/l52)"
	big=/tmp/rx/$(/bin/busybox ls -S /tmp/rx | /bin/busybox head -n 1)
	# The stalled connection first, in the background: the others run while it waits.
	/bin/busybox head -c $((${VSTALL:-4} << 20)) $big >/tmp/stall.bin
	t0=$(ms)
	/bin/socat -b 65536 -d -u OPEN:/tmp/stall.bin VSOCK-CONNECT:2:1027 2>/tmp/err/1027 &
	stall=$!
	/bin/busybox sleep 1
	t=$(ms)
	/bin/socat -b 65536 -d -u OPEN:$big VSOCK-CONNECT:2:1024 2>/tmp/err/1024
	rc=$?
	echo "L2: vsock sent port=1024 rc=$rc bytes=$(/bin/busybox wc -c <$big)" \
		"ms=$(($(ms) - t)) err=$(vsock_err /tmp/err/1024)"
	if [ "${VSOCK_MULTI:-0}" -gt 0 ]; then
		t=$(ms)
		pids=
		n=0
		for f in /tmp/rx/*; do
			[ "$f" = "$big" ] || [ $n -ge "$VSOCK_MULTI" ] && continue
			/bin/socat -b 65536 -d -u OPEN:$f VSOCK-CONNECT:2:1025 2>/tmp/err/m${f##*/} &
			pids="$pids $!"
			n=$((n + 1))
		done
		failed=0
		for p in $pids; do wait $p || failed=$((failed + 1)); done
		echo "L2: vsock multi port=1025 conns=$n failed=$failed ms=$(($(ms) - t))" \
			"err=$(vsock_err /tmp/err/m*)"
	fi
	t=$(ms)
	/bin/socat -b 65536 -d -u OPEN:/dev/null VSOCK-CONNECT:2:1026 2>/tmp/err/1026
	echo "L2: vsock nolistener port=1026 rc=$? ms=$(($(ms) - t)) err=$(vsock_err /tmp/err/1026)"
	echo "L2: vsock others done"
	wait $stall
	rc=$?
	echo "L2: vsock sent port=1027 rc=$rc bytes=$(/bin/busybox wc -c </tmp/stall.bin)" \
		"ms=$(($(ms) - t0)) err=$(vsock_err /tmp/err/1027)"
	kill $srv
	echo "L2: vsock done"
	/bin/busybox sleep 600
fi
echo "L2: done"
if /bin/busybox grep -q 'l2.end=poweroff' /proc/cmdline; then
	/bin/busybox poweroff -f
fi
/bin/busybox reboot -f
