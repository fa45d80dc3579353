#!/bin/busybox sh
# The L1 guest's init: load KVM (kvm-amd: a real TDP KVM here) and the
# NVDIMM/DAX modules, prepare DAX namespaces when QEMU gave NVDIMMs and an ext4
# on a RAM disk for the disk images, run every
# case under /cases and print what each saw as blocks on the console:
#
#   @@CASE name / @@ATTR key value / @@FILE name ... @@ENDFILE / @@ENDCASE name
#
# The host (tests/l1/run.py) parses them; tests/l1/test_l1.py asserts. The
# init never decides pass or fail itself: it reports raw evidence.
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmp /tmp
mkdir -p /mnt/pmem /dev/hugepages
dmesg -n 1
THP=/sys/kernel/mm/transparent_hugepage
POOL2M=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
ONLY=$(sed -n 's/.*l1\.only=\([^ ]*\).*/\1/p' /proc/cmdline)
REPEAT=$(sed -n 's/.*l1\.repeat=\([0-9]*\).*/\1/p' /proc/cmdline) # to hunt flakes
REPEAT=${REPEAT:-1}
RUNS=$(sed -n 's/.*l1\.runs=\([0-9]*\).*/\1/p' /proc/cmdline) # bench cases: runs each
RUNS=${RUNS:-5}

attr() { echo "@@ATTR $1 $2"; : >/tmp/progress; }
emit() { echo "@@FILE $1"; cat "$2" 2>/dev/null; echo; echo "@@ENDFILE"; : >/tmp/progress; }
uptime_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }

echo "@@L1 start kernel=$(uname -r) package=$(cut -d' ' -f1 /etc/l1-kernel)"
while read -r m; do
	insmod "/lib/l1-modules/$m" 2>/tmp/insmod.err || echo "@@L1 insmod $m: $(cat /tmp/insmod.err)"
done </lib/l1-modules/order
dmesg | grep -iE 'xsave|WARNING:' | head -5 | sed 's/^/@@L1 dmesg /'
[ -c /dev/kvm ] && echo "@@L1 kvm npt=$(cat /sys/module/kvm_amd/parameters/npt)" || echo "@@L1 no /dev/kvm"
# Networking (not in a run image): the net cases and the benchmark make taps in namespaces
# of their own, with Debian's ip called by path (build.py: NET_TOOLS).
if [ -x /bin/ip ]; then
	/bin/ip link set lo up
	[ -c /dev/net/tun ] && echo "@@L1 net tun=yes" || echo "@@L1 no /dev/net/tun"
fi

# DAX: the first NVDIMM as a devdax namespace (dax0.0, 2M), the second as fsdax with a
# DAX-mounted ext4. Only when QEMU gave NVDIMMs (the cases that need them say so).
DAX_DEV=no
DAX_FS=no
if [ -d /sys/bus/nd/devices/region0 ]; then
	ndctl create-namespace -f -e namespace0.0 -m devdax -a 2M >/tmp/nd0 2>&1 && DAX_DEV=yes
	if ndctl create-namespace -f -e namespace1.0 -m fsdax -a 2M >/tmp/nd1 2>&1 &&
		mkfs.ext4 -q -F -b 4096 -E stride=512,stripe_width=512 /dev/pmem1 >>/tmp/nd1 2>&1 &&
		mount -o dax /dev/pmem1 /mnt/pmem >>/tmp/nd1 2>&1; then
		DAX_FS=yes
	fi
	echo "@@L1 dax dev=$DAX_DEV fs=$DAX_FS"
	[ $DAX_DEV = yes ] && [ $DAX_FS = yes ] || { cat /tmp/nd0 /tmp/nd1; }
fi

# Disks: one RAM block device with an ext4 on it (not DAX, unlike /mnt/pmem), where the
# disk cases make their images fresh (tests/l1/cases.py: DISK_DIR).
DISK=no
if [ -s /lib/l1-modules/disk-order ]; then
	while read -r m; do
		case "$m" in
		brd.ko) insmod "/lib/l1-modules/$m" rd_nr=1 rd_size=393216 max_part=0 ;;
		*) insmod "/lib/l1-modules/$m" ;;
		esac 2>/tmp/insmod.err || echo "@@L1 insmod $m: $(cat /tmp/insmod.err)"
	done </lib/l1-modules/disk-order
	mkdir -p /mnt/disk
	mkfs.ext4 -q -F /dev/ram0 >/tmp/disk.err 2>&1 && mount /dev/ram0 /mnt/disk 2>>/tmp/disk.err &&
		DISK=yes
	echo "@@L1 disk $DISK"
	[ $DISK = yes ] || cat /tmp/disk.err
fi

# The stall hunt (tests/l1/run.py kills an L1 whose console is silent for 240 s): once
# nothing was reported for 90 s, show who waits where -- the kernel's blocked tasks (sysrq
# w) and every process's state -- once per quiet spell, then stay quiet again. Silence
# with no such trail means the whole L1 stopped, not one of its processes.
: >/tmp/progress
(
	told=
	while sleep 15; do
		last=$(stat -c %Y /tmp/progress 2>/dev/null) || continue
		quiet=$(($(date +%s) - last))
		[ $quiet -ge 90 ] && [ "$told" != "$last" ] || continue
		told=$last
		echo "@@L1 quiet ${quiet}s: blocked tasks and process states follow"
		dmesg -c | grep 'type=1326' >>/tmp/audit.held # the case's seccomp kills, kept
		echo w >/proc/sysrq-trigger
		dmesg | sed 's/^/@@L1 sysrq /' | head -n 200
		for p in /proc/[0-9]*; do
			echo "@@L1 ps ${p#/proc/} $(cut -d' ' -f3 $p/stat 2>/dev/null) wchan=$(cat $p/wchan 2>/dev/null) $(tr '\0' ' ' <$p/cmdline 2>/dev/null | cut -c1-100)"
		done
	done
) &

# Host settings a case asks for. Prints why it cannot, or nothing.
setup() {
	echo madvise >$THP/enabled
	echo never >$THP/shmem_enabled
	echo 0 >$POOL2M
	case "$1" in
	thp) ;;
	nothp) echo never >$THP/enabled ;;
	shmem-thp) echo advise >$THP/shmem_enabled ;;
	hugetlb-2m)
		echo "$2" >$POOL2M
		[ "$(cat $POOL2M)" = "$2" ] || echo "hugetlb pool: asked $2, got $(cat $POOL2M)"
		;;
	dax-dev) [ $DAX_DEV = yes ] || echo "no devdax namespace (L1 booted without NVDIMMs?)" ;;
	dax-fs) [ $DAX_FS = yes ] || echo "no DAX filesystem (L1 booted without NVDIMMs?)" ;;
	*) echo "unknown setup $1" ;;
	esac
}

# Wait for a line in a VMM's output, or for the VMM to die; 0 when seen.
wait_line() {
	i=0
	while [ $i -lt 1200 ]; do
		grep -q "$2" "$1" && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# The KVM side, read independently of hugevmm: debugfs of the VM hugevmm ($1) created.
kvm_debugfs() {
	for d in /sys/kernel/debug/kvm/"$1"-*; do
		[ -d "$d" ] || continue
		for f in pages_4k pages_2m pages_1g; do
			[ -f "$d/$f" ] && echo "$f $(cat "$d/$f")"
		done
	done
}

evidence() { # $1 pid, $2 suffix
	hugevmm status --api-sock $SOCK --json >/tmp/memory$2.json 2>/tmp/status$2.err
	kvm_debugfs "$1" >/tmp/debugfs$2
	cat /proc/"$1"/smaps >/tmp/smaps$2 2>/dev/null
	emit "memory$2.json" /tmp/memory$2.json
	emit "status$2.err" /tmp/status$2.err
	emit "debugfs$2" /tmp/debugfs$2
	emit "smaps$2" /tmp/smaps$2
}

IN_NS= # what hugevmm runs under: a net case's ip netns exec (or nsenter)
VMM_FLAGS= # more flags of start_vmm's hugevmm (--no-seccomp)
start_vmm() { # $1 case dir: starts hugevmm on its own API socket, sets PID, SOCK and OUT
	SOCK=/tmp/$(basename "$1").sock
	# Files of its own too: the background child truncates them only after the fork, and a
	# wait on an old file's "idle" would race ahead of the new VMM.
	OUT=/tmp/$(basename "$1").out
	ERR=/tmp/$(basename "$1").err
	env $(cat "$1/env") $IN_NS hugevmm $VMM_FLAGS --api-sock $SOCK --config-file "$1/config.json" \
		>$OUT 2>$ERR </dev/null &
	PID=$!
}

stop_vmm() { # [$1 suffix of the attributes and files: a second VM of the case]
	kill -TERM $PID
	wait $PID
	attr "rc$1" $?
	while kill -0 $PID 2>/dev/null; do sleep 0.05; done
	[ -e $SOCK ] && attr "socket_left$1" yes || attr "socket_left$1" no
	emit "stdout$1" $OUT
	emit "stderr$1" $ERR
}

# A VMM that outlives $2 seconds is a hang: show where its threads wait, then end it.
# The heartbeat says L1 itself is alive while it waits.
supervise() {
	start=$(uptime_ms)
	beat=0
	while kill -0 "$1" 2>/dev/null; do
		el=$((($(uptime_ms) - start) / 1000))
		if [ $el -ge "$2" ]; then
			attr hung "${el}s"
			for t in /proc/"$1"/task/*; do
				echo "@@L1 hung task ${t##*/} $(cut -d' ' -f3 "$t/stat") wchan=$(cat "$t/wchan" 2>/dev/null)"
				sed 's/^/@@L1   /' "$t/stack" 2>/dev/null
			done
			kill -TERM "$1"
			sleep 5
			kill -KILL "$1" 2>/dev/null
			break
		fi
		if [ $el -ge $((beat + 30)) ]; then
			beat=$el
			echo "@@L1 waiting ${el}s for pid $1"
		fi
		sleep 0.1
	done
	wait "$1"
}

run_boot() {
	rm -f /tmp/case.metrics
	t0=$(uptime_ms)
	env $(cat "$1/env") hugevmm -v --config-file "$1/config.json" >/tmp/out 2>/tmp/err </dev/null &
	supervise $! 120
	attr rc $?
	attr ms $(($(uptime_ms) - t0))
	emit stdout /tmp/out
	emit stderr /tmp/err
	[ -f /tmp/case.metrics ] && emit metrics /tmp/case.metrics
}

run_cover() {
	start_vmm "$1"
	if wait_line $OUT '^idle' $PID; then
		attr ready yes
		evidence $PID ""
	else
		attr ready no
	fi
	stop_vmm
}

run_drift() {
	start_vmm "$1"
	if wait_line $OUT '^idle' $PID; then
		attr ready yes
		evidence $PID ""
		curl -s --unix-socket $SOCK -X PUT -d '{"region": "ram0", "offset_mib": 16}' \
			http://localhost/test/split >/tmp/split 2>&1
		emit split /tmp/split
		evidence $PID "-after"
		curl -s --unix-socket $SOCK http://localhost/metrics >/tmp/metrics 2>&1
		emit metrics /tmp/metrics
	else
		attr ready no
	fi
	stop_vmm
}

# A guest that breaks the virtio rules: the device is marked DEVICE_NEEDS_RESET, and the
# VMM and its API go on answering.
run_badring() {
	start_vmm "$1"
	if wait_line $OUT '^virtio needs_reset' $PID && wait_line $OUT 'tick' $PID; then
		attr ready yes
		curl -s --unix-socket $SOCK http://localhost/ >/tmp/info 2>&1
		emit info /tmp/info
		curl -s --unix-socket $SOCK http://localhost/metrics >/tmp/metrics 2>&1
		emit metrics /tmp/metrics
	else
		attr ready no
	fi
	stop_vmm
}

# A client that drives hugevmm as the Firecracker Go SDK and Kata do: the logger and the
# metrics first, then the machine, the boot source, a drive, an interface and the entropy
# device, InstanceStart, FlushMetrics and SendCtrlAltDel, each with their bodies.
fc_call() { # method path [body]
	if [ -n "$3" ]; then
		code=$(curl -s -o /tmp/resp -w '%{http_code}' --unix-socket $SOCK -X "$1" \
			-H 'Content-Type: application/json' -d "$3" "http://localhost$2")
	else
		code=$(curl -s -o /tmp/resp -w '%{http_code}' --unix-socket $SOCK -X "$1" \
			"http://localhost$2")
	fi
	echo "$code $1 $2 $(cat /tmp/resp)" >>/tmp/calls
}

run_fcclient() {
	SOCK=/tmp/fc.sock
	OUT=/tmp/fc.out
	ERR=/tmp/fc.err
	rm -f /tmp/calls /tmp/fc.log /tmp/fc.metrics
	# The interface it puts is on tap0, which the orchestrator makes first (hugevmm opens an
	# existing tap): here in a namespace, as for the net cases.
	/bin/ip netns del $NS 2>/dev/null
	if ! net_make "$1" >/tmp/net.err 2>&1; then
		attr net_setup failed
		emit net_setup /tmp/net.err
	fi
	/bin/ip netns exec $NS hugevmm --api-sock $SOCK --id sdk-vm >$OUT 2>$ERR </dev/null &
	PID=$!
	i=0
	while [ ! -S $SOCK ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	fc_call PUT /logger '{"log_path": "/tmp/fc.log", "level": "Debug", "show_level": true, "show_log_origin": true}'
	fc_call PUT /metrics '{"metrics_path": "/tmp/fc.metrics"}'
	fc_call PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 128, "smt": false, "track_dirty_pages": false}'
	fc_call PUT /boot-source '{"kernel_image_path": "/guest/testguest.elf", "boot_args": "test=idle tick_ms=100"}'
	fc_call PUT /drives/rootfs '{"drive_id": "rootfs", "path_on_host": "/guest/initrd.cpio", "is_root_device": true, "is_read_only": true}'
	fc_call PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00:02"}'
	fc_call PUT /entropy '{}'
	fc_call PUT /actions '{"action_type": "InstanceStart"}'
	if wait_line $OUT '^idle' $PID; then
		attr ready yes
		fc_call PUT /actions '{"action_type": "FlushMetrics"}'
		fc_call GET /
		fc_call PUT /actions '{"action_type": "SendCtrlAltDel"}'
	else
		attr ready no
		kill -TERM $PID
	fi
	supervise $PID 60
	attr rc $?
	[ -e $SOCK ] && attr socket_left yes || attr socket_left no
	emit calls /tmp/calls
	emit log /tmp/fc.log
	emit metrics /tmp/fc.metrics
	emit stdout $OUT
	emit stderr $ERR
	net_gone "$1" >/tmp/net.err 2>&1 || emit net_gone /tmp/net.err
}

# A config hugevmm refuses before boot: nothing of the host changed (the hugetlb pool, the
# DAX mounts; with `pre`, a shell script run first, and `post`, one run after: what they
# made, as file post).
run_refuse() {
	[ -f "$1/pre" ] && sh "$1/pre" >/tmp/pre 2>&1
	grep -i huge /proc/meminfo >/tmp/before
	ls /dev/hugepages /mnt/pmem >>/tmp/before 2>&1
	timeout 120 hugevmm --config-file "$1/config.json" >/tmp/out 2>/tmp/err </dev/null
	attr rc $?
	grep -i huge /proc/meminfo >/tmp/after
	ls /dev/hugepages /mnt/pmem >>/tmp/after 2>&1
	emit before /tmp/before
	emit after /tmp/after
	emit stdout /tmp/out
	emit stderr /tmp/err
	if [ -f "$1/post" ]; then
		sh "$1/post" >/tmp/post 2>&1
		emit post /tmp/post
	fi
}

# ---- Disks ----
# The case's images, fresh in /mnt/disk (its `disks` file: "NAME gz:FILE" a gzip'd image,
# "NAME pattern:SECTORS:SEED" the test guest's sector pattern); the md5 of each.
disks_make() {
	rm -rf /mnt/disk/* /tmp/case.metrics
	while read -r dn spec; do
		img=/mnt/disk/$dn.img
		case "$spec" in
		gz:*) zcat "${spec#gz:}" >"$img" ;;
		pattern:*)
			sectors=${spec#pattern:}
			blkimg make "$img" "${sectors%%:*}" "${sectors#*:}"
			;;
		esac
		attr "md5.before.$dn" "$(md5sum "$img" | cut -d' ' -f1)"
	done <"$1/disks"
}

# After the VM: each image's md5; a pattern image as runs of sectors (blkimg scan), an ext4
# image checked (e2fsck -fn: no journal replay, no change) and the files of `readback`
# read out of it (debugfs; text as is, anything else as its md5). Then the images go.
disks_report() {
	while read -r dn spec; do
		img=/mnt/disk/$dn.img
		attr "md5.after.$dn" "$(md5sum "$img" | cut -d' ' -f1)"
		attr "size.$dn" "$(stat -c %s "$img")"
		case "$spec" in
		gz:*)
			e2fsck -fn "$img" >/tmp/fsck 2>&1
			attr "fsck.$dn" $?
			emit "fsck.$dn" /tmp/fsck
			;;
		pattern:*)
			blkimg scan "$img" >/tmp/scan 2>&1
			emit "scan.$dn" /tmp/scan
			;;
		esac
	done <"$1/disks"
	[ -f "$1/readback" ] && while read -r dn path; do
		rm -f /tmp/rb
		debugfs -R "dump $path /tmp/rb" "/mnt/disk/$dn.img" >/tmp/rb.err 2>&1
		if [ ! -f /tmp/rb ]; then
			emit "debugfs.$dn:$path" /tmp/rb.err
		elif [ "${path%.txt}" != "$path" ]; then
			emit "$dn:$path" /tmp/rb
		else
			attr "md5.$dn:$path" "$(md5sum /tmp/rb | cut -d' ' -f1)"
		fi
	done <"$1/readback"
	[ -f /tmp/case.metrics ] && emit metrics /tmp/case.metrics
	rm -rf /mnt/disk/* /tmp/case.metrics
}

# A VM with disks, run to its end.
run_disk() {
	disks_make "$1"
	run_boot "$1"
	disks_report "$1"
}

api_get() { # path file
	curl -s --unix-socket $SOCK "http://localhost$1" >"/tmp/$2" 2>&1
	emit "$2" "/tmp/$2"
}

# A VM with disks, asked through its API once the guest printed `waitfor`: GET /memory,
# /vm/config and /, then each line of `patch` as PATCH /drives/<drive_id> (after which
# the guest ends by itself), or /metrics and a SIGTERM.
run_diskapi() {
	disks_make "$1"
	start_vmm "$1"
	if wait_line $OUT "$(cat "$1/waitfor")" $PID; then
		attr ready yes
		hugevmm status --api-sock $SOCK --json >/tmp/memory.json 2>/tmp/status.err
		emit memory.json /tmp/memory.json
		emit status.err /tmp/status.err
		api_get /vm/config vmconfig
		api_get / info
	else
		attr ready no
	fi
	if [ -f "$1/patch" ]; then
		rm -f /tmp/calls /tmp/vmconfig-after
		# GET /vm/config in the same curl, right after the PATCH: the guest may end soon
		# after it sees the change, sooner than a new process starts under TCG.
		while read -r body; do
			id=$(echo "$body" | sed -n 's/.*"drive_id": *"\([^"]*\)".*/\1/p')
			code=$(curl -s -o /tmp/resp -w '%{http_code}' --unix-socket $SOCK -X PATCH \
				-H 'Content-Type: application/json' -d "$body" "http://localhost/drives/$id" \
				--next -s --unix-socket $SOCK -o /tmp/vmconfig-after http://localhost/vm/config)
			echo "$code PATCH /drives/$id $(cat /tmp/resp)" >>/tmp/calls
		done <"$1/patch"
		emit calls /tmp/calls
		emit vmconfig-after /tmp/vmconfig-after
		supervise $PID 120
		attr rc $?
		emit stdout $OUT
		emit stderr $ERR
	else
		api_get /metrics metrics-api
		stop_vmm
	fi
	disks_report "$1"
}

# A VM driven by the lines of `steps`, in order (the balloon's and the vsock's kinds) --
#   wait TEXT          the guest printed TEXT after what the previous wait found (else:
#                      the rest is skipped, ready no)
#   call METHOD PATH [BODY]   an API call; "CODE METHOD PATH RESPONSE" lines in calls
#   snap NAME          evidence: GET /memory (hugevmm status --json), KVM's debugfs
#                      counts, the process's smaps_rollup, the hugetlb pool, /metrics
#   sleep S
#   hog / unhog        start (until its guest idles) / stop a second VM, hog.json, whose
#                      hugetlb region takes what the pool has free
#   host NAME CMD      a command of L1's (a shell line), to its end (120 s at most): its
#                      output as file NAME, its status as NAME.rc
#   bg NAME CMD        the same in the background; join NAME waits for it (120 s at most,
#                      then it is killed: NAME.killed yes) and shows the same; one never
#                      joined is killed after the last step
#   waitout NAME TEXT  the background NAME's output shows TEXT (120 s at most; else
#                      waitout.NAME no)
#   metrics NAME       the light snap: /metrics and the process's smaps_rollup
#   cpu NAME           cpu.NAME: "ms=UPTIME main=TICKS all=TICKS", the CPU time (utime +
#                      stime) of the VMM's main thread (its event loop) and of all
#   rss NAME S         the VMM's VmRSS every 0.2 s for S seconds: file rss.NAME ("MS KB")
#   stat NAME PATH     PATH's mode and type (stat -c '%a %F') as NAME, or "absent"
# then SIGTERM (stop_vmm). The host side compares the snapshots; step_times shows when
# each step began (ms from the first, "MS OP NAME").
steps_bg_pid() { eval "echo \${BG_$1:-}"; }
run_steps() {
	bd=$1 # `call` sets the positional parameters
	start_vmm "$bd"
	rm -f /tmp/calls /tmp/step.*
	seen=0
	bgs=
	attr ready yes
	st0=$(uptime_ms)
	while read -r op rest; do
		echo "$(($(uptime_ms) - st0)) $op ${rest%% *}" >>/tmp/step.times
		case "$op" in
		wait) # a line after the one the previous wait found (targets repeat: actual_mib=0)
			i=0
			while :; do
				k=$(tail -n +$((seen + 1)) $OUT | tr -d "\r" | grep -n -e "$rest" | head -n 1 | cut -d: -f1)
				[ -n "$k" ] && break
				kill -0 $PID 2>/dev/null && [ $i -lt 1200 ] || break
				sleep 0.1
				i=$((i + 1))
			done
			[ -n "$k" ] || { attr ready no; attr stuck_at "$rest"; break; }
			seen=$((seen + k)) ;;
		call)
			set -- $rest
			m=$1 path=$2
			shift 2
			code=$(curl -s -o /tmp/resp -w '%{http_code}' --unix-socket $SOCK -X "$m" \
				-H 'Content-Type: application/json' ${1:+-d "$*"} "http://localhost$path")
			echo "$code $m $path $(cat /tmp/resp)" >>/tmp/calls ;;
		snap)
			hugevmm status --api-sock $SOCK --json >/tmp/snap.json 2>&1
			emit "memory.$rest.json" /tmp/snap.json
			kvm_debugfs $PID >/tmp/snap.kvm
			emit "debugfs.$rest" /tmp/snap.kvm
			emit "rollup.$rest" /proc/$PID/smaps_rollup
			grep -E '^HugePages_(Total|Free|Rsvd)' /proc/meminfo >/tmp/snap.pool
			emit "pool.$rest" /tmp/snap.pool
			curl -s --unix-socket $SOCK http://localhost/metrics >/tmp/snap.metrics 2>&1
			emit "metrics.$rest" /tmp/snap.metrics ;;
		sleep) sleep "$rest" ;;
		hog) # another process takes every free page of the hugetlb pool: a VM of hog.json
			hugevmm --config-file "$bd/hog.json" >/tmp/hog.out 2>&1 </dev/null &
			HOG=$!
			wait_line /tmp/hog.out '^idle' $HOG && attr hog yes || { attr hog no; emit hog /tmp/hog.out; } ;;
		unhog)
			kill -TERM $HOG 2>/dev/null
			wait $HOG
			attr hog_rc $? ;;
		host)
			sn=${rest%% *}
			timeout 120 sh -c "${rest#* }" >/tmp/step.$sn 2>&1 </dev/null
			attr "$sn.rc" $?
			emit "$sn" /tmp/step.$sn ;;
		bg)
			sn=${rest%% *}
			(eval "exec ${rest#* }") >/tmp/step.$sn 2>&1 </dev/null &
			eval "BG_$sn=$!"
			bgs="$bgs $sn" ;;
		join)
			sp=$(steps_bg_pid $rest)
			i=0
			while kill -0 "$sp" 2>/dev/null && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
			kill -0 "$sp" 2>/dev/null && { kill -KILL "$sp"; attr "$rest.killed" yes; }
			wait "$sp"
			attr "$rest.rc" $?
			emit "$rest" /tmp/step.$rest ;;
		waitout)
			sn=${rest%% *}
			i=0
			while ! grep -q -e "${rest#* }" /tmp/step.$sn 2>/dev/null && [ $i -lt 1200 ]; do
				sleep 0.1
				i=$((i + 1))
			done
			grep -q -e "${rest#* }" /tmp/step.$sn 2>/dev/null || attr "waitout.$sn" no ;;
		rss)
			set -- $rest
			t0=$(uptime_ms)
			lim=$(awk -v s="$2" 'BEGIN { print int(s * 1000) }')
			while [ $(($(uptime_ms) - t0)) -lt "$lim" ]; do
				echo "$(($(uptime_ms) - t0)) $(sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' /proc/$PID/status)"
				sleep 0.2
			done >/tmp/step.rss
			emit "rss.$1" /tmp/step.rss ;;
		cpu) # CPU time (clock ticks) of the VMM's main thread -- its event loop -- and of all
			main=$(awk '{ print $14 + $15 }' /proc/$PID/task/$PID/stat)
			attr "cpu.$rest" "ms=$(uptime_ms) main=$main all=$(awk '{ print $14 + $15 }' /proc/$PID/stat)" ;;
		metrics) # the light snap: /metrics and smaps_rollup only
			curl -s --unix-socket $SOCK http://localhost/metrics >/tmp/snap.metrics 2>&1
			emit "metrics.$rest" /tmp/snap.metrics
			emit "rollup.$rest" /proc/$PID/smaps_rollup ;;
		stat)
			set -- $rest
			attr "$1" "$(stat -c '%a_%F' "$2" 2>/dev/null || echo absent)" ;;
		esac
	done <"$bd/steps"
	echo "$(($(uptime_ms) - st0)) end" >>/tmp/step.times
	for sn in $bgs; do # never joined (the steps stopped early): ended here
		sp=$(steps_bg_pid $sn)
		kill -0 "$sp" 2>/dev/null || continue
		kill -KILL "$sp"
		wait "$sp"
		attr "$sn.killed" yes
		emit "$sn" /tmp/step.$sn
	done
	emit calls /tmp/calls
	emit step_times /tmp/step.times
	stop_vmm
}
run_balloon() { run_steps "$1"; }

# The vsock: the case's `pre` (a shell script: L1's data) runs in /tmp/vsock, then its
# steps (run_steps: the uds_path is /tmp/vsock/v.sock, the host's sides are vsockhost,
# tests/l1/vsockhost.c); after the VM, whether the uds_path is left and which sockets are
# (file sockets_left), and the metrics line at exit when the config asked for one.
run_vsock() {
	rm -rf /tmp/vsock /tmp/case.metrics
	mkdir -p /tmp/vsock
	if [ -f "$1/pre" ]; then
		t0=$(uptime_ms)
		(cd /tmp/vsock && sh "$1/pre") >/tmp/vsock.pre 2>&1
		attr pre.rc $?
		attr pre.ms $(($(uptime_ms) - t0))
		emit pre /tmp/vsock.pre
	fi
	run_steps "$1"
	[ -e /tmp/vsock/v.sock ] && attr uds_left yes || attr uds_left no
	find /tmp/vsock -type s >/tmp/vsock.ls # sockets left: the VMM's, or a listener's
	emit sockets_left /tmp/vsock.ls
	[ -f /tmp/case.metrics ] && emit metrics /tmp/case.metrics
	rm -rf /tmp/vsock /tmp/case.metrics
}

vmm_once() { # config-file tag: one more VMM, to its end
	timeout 120 hugevmm --config-file "$1" >/tmp/once.out 2>/tmp/once.err </dev/null
	attr "rc.$2" $?
	emit "stdout.$2" /tmp/once.out
	emit "stderr.$2" /tmp/once.err
}

# The image lock: while a VM holds its image, a second one on it (read-write, then
# read-only) is refused; once the first is gone, the image can be had again.
run_disklock() {
	disks_make "$1"
	start_vmm "$1"
	if wait_line $OUT "$(cat "$1/waitfor")" $PID; then
		attr ready yes
		vmm_once "$1/second.json" second
		vmm_once "$1/second-ro.json" second-ro
		kill -0 $PID 2>/dev/null && attr first_alive yes || attr first_alive no
	else
		attr ready no
	fi
	stop_vmm
	vmm_once "$1/after.json" after
	disks_report "$1"
}

# ---- Network ----
# Each net case gets its own network namespace with the taps of its `taps` file ("NAME
# ADDR/N": persistent taps, up, the L1 side's address), and hugevmm runs inside it. Debian's
# ip and ping by path (busybox's own applets first otherwise).
NS=l1net
inns() { nsenter --net=/run/netns/$NS "$@"; }

net_make() { # $1 case dir; fails saying which step did
	/bin/ip netns add $NS || return 1
	/bin/ip -n $NS link set lo up || return 1
	while read -r tap addr; do
		/bin/ip -n $NS tuntap add dev "$tap" mode tap &&
			/bin/ip -n $NS addr add "$addr" dev "$tap" &&
			/bin/ip -n $NS link set "$tap" up || return 1
	done <"$1/taps"
}

net_gone() { # $1 case dir: the taps deleted first (a tap would outlive its namespace in L1's)
	while read -r tap addr; do
		/bin/ip -n $NS tuntap del dev "$tap" mode tap
	done <"$1/taps"
	/bin/ip netns del $NS
}

# The taps' offloads as the kernel has them (hugevmm sets them from what the guest acked).
net_offloads() { # $1 case dir
	while read -r tap addr; do
		inns ethtool -k "$tap" 2>&1 |
			grep -E '^(tx-checksumming|scatter-gather|(tcp|generic)-segmentation-offload):'
	done <"$1/taps" >/tmp/offloads
	emit offloads /tmp/offloads
}

sums() { echo "bytes=$(wc -c <"$1") sha256=$(sha256sum <"$1" | cut -d' ' -f1)"; } 2>/dev/null

# A VM on taps: with `waitfor`, once the guest printed it, each address of `ping` gets 20
# echoes (0.05 s apart) and each of `flood` ping -f (1400 bytes, 32 in flight, 2 s) from the
# namespace, the neighbours it learned are shown (the guest's MAC on the wire), the API is
# read, and the VM is stopped (SIGTERM) -- or with `end` "self" left to end by itself;
# without `waitfor` it runs to its end. With `xfer` (MiB), L1's side of the L2's TCP moves
# (l2init.sh) listens first: port 7001 sends N MiB of random bytes, port 7002 keeps what
# comes; the checksums of both. Then the taps' counters (ip -j -s link) and the metrics line
# hugevmm wrote at exit.
run_net() {
	rm -f /tmp/case.metrics /tmp/net-in.bin /tmp/net-out.bin
	/bin/ip netns del $NS 2>/dev/null
	if ! net_make "$1" >/tmp/net.err 2>&1; then
		attr net_setup failed
		emit net_setup /tmp/net.err
		net_gone "$1" >/dev/null 2>&1
		return
	fi
	srv=
	if [ -f "$1/xfer" ]; then
		head -c $(($(cat "$1/xfer") << 20)) /dev/urandom >/tmp/net-in.bin
		attr l1.sent "$(sums /tmp/net-in.bin)"
		# Not through inns: $! is then the listener itself.
		nsenter --net=/run/netns/$NS nc -l -p 7001 -e cat /tmp/net-in.bin \
			</dev/null >/dev/null 2>&1 &
		srv=$!
		nsenter --net=/run/netns/$NS nc -l -p 7002 -e sh -c 'cat >/tmp/net-out.bin' \
			</dev/null >/dev/null 2>&1 &
		srv="$srv $!"
	fi
	t0=$(uptime_ms)
	# ip netns exec gives the namespace its own /sys as well; `enter` setns: only the
	# network namespace joined (nsenter), as Firecracker's jailer does (--netns).
	IN_NS="/bin/ip netns exec $NS"
	[ "$(cat "$1/enter" 2>/dev/null)" = setns ] && IN_NS="nsenter --net=/run/netns/$NS"
	start_vmm "$1"
	IN_NS=
	if [ -f "$1/waitfor" ]; then
		if wait_line $OUT "$(cat "$1/waitfor")" $PID; then
			attr ready yes
			net_offloads "$1"
			[ -f "$1/ping" ] && while read -r a; do
				inns /bin/ping -c 20 -i 0.05 -W 2 "$a" >/tmp/ping 2>&1
				attr "ping.$a.rc" $?
				emit "ping.$a" /tmp/ping
			done <"$1/ping"
			[ -f "$1/flood" ] && while read -r a; do
				inns /bin/ping -q -f -l 32 -s 1400 -w 2 "$a" >/tmp/ping 2>&1
				emit "flood.$a" /tmp/ping
			done <"$1/flood"
			# Each line of `patch_net` ("IFACE_ID BODY") as PATCH /network-interfaces/ID
			# while the guest runs, then `flood` again (flood2.ADDR).
			if [ -f "$1/patch_net" ]; then
				rm -f /tmp/calls
				while read -r id body; do
					code=$(curl -s -o /tmp/resp -w '%{http_code}' --unix-socket $SOCK \
						-X PATCH -H 'Content-Type: application/json' -d "$body" \
						"http://localhost/network-interfaces/$id")
					echo "$code PATCH /network-interfaces/$id $(cat /tmp/resp)" >>/tmp/calls
				done <"$1/patch_net"
				emit calls /tmp/calls
				[ -f "$1/flood" ] && while read -r a; do
					inns /bin/ping -q -f -l 32 -s 1400 -w 2 "$a" >/tmp/ping 2>&1
					emit "flood2.$a" /tmp/ping
				done <"$1/flood"
			fi
			inns /bin/ip neigh >/tmp/neigh 2>&1 # before the carrier goes, and they with it
			emit neigh /tmp/neigh
			api_get /metrics metrics-api
			api_get /vm/config vmconfig
		else
			attr ready no
		fi
	fi
	if [ -f "$1/waitfor" ] && [ "$(cat "$1/end" 2>/dev/null)" != self ]; then
		stop_vmm
	else
		supervise $PID 120
		attr rc $?
		emit stdout $OUT
		emit stderr $ERR
	fi
	attr ms $(($(uptime_ms) - t0))
	for p in $srv; do # the listeners end with their connection; one the L2 never made, here
		i=0
		while kill -0 "$p" 2>/dev/null && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
		kill "$p" 2>/dev/null && attr listener_left yes
	done
	[ -f "$1/xfer" ] && attr l1.received "$(sums /tmp/net-out.bin)"
	/bin/ip -n $NS -j -s link >/tmp/links 2>&1
	emit links /tmp/links
	inns grep '^Tcp:' /proc/net/snmp >/tmp/snmp 2>&1 # the namespace's TCP counters
	emit snmp /tmp/snmp
	[ -f /tmp/case.metrics ] && emit metrics /tmp/case.metrics
	net_gone "$1" >/tmp/net.err 2>&1 || emit net_gone /tmp/net.err
	rm -f /tmp/case.metrics /tmp/net-in.bin /tmp/net-out.bin
}

# ---- Confinement (issue 15) ----
# Evidence of a running VMM's confinement, as files with suffix $2: threads (every task's
# status lines Name, Seccomp, NoNewPrivs, Uid: "/proc/P/task/T/status:Key:<tab>value"),
# fdflags (every fd's fdinfo flags line, octal), fds (ls -l of /proc/P/fd: the targets),
# maps (smaps: each mapping's range, Size and VmFlags). Read with no API call under way.
confinement() { # $1 pid, $2 suffix
	grep -H -E '^(Name|Seccomp|NoNewPrivs|Uid):' /proc/"$1"/task/*/status >/tmp/cf.threads 2>&1
	grep -H '^flags:' /proc/"$1"/fdinfo/* >/tmp/cf.fdflags 2>&1
	ls -l /proc/"$1"/fd/ >/tmp/cf.fds 2>&1
	grep -E '^[0-9a-f]+-[0-9a-f]+ |^Size:|^VmFlags:' /proc/"$1"/smaps >/tmp/cf.maps 2>&1
	emit "threads$2" /tmp/cf.threads
	emit "fdflags$2" /tmp/cf.fdflags
	emit "fds$2" /tmp/cf.fds
	emit "maps$2" /tmp/cf.maps
}

# The VM with its filters (the default), once the guest touched its RAM: confinement, the
# API socket's mode, GET /; SIGTERM. Then the same VM with --no-seccomp, looked at once the
# guest booted: confinement ".off", GET / (info.off); SIGTERM.
run_confine() {
	start_vmm "$1"
	if wait_line $OUT '^idle' $PID; then
		attr ready yes
		confinement $PID ""
		attr sock_mode "$(stat -c %a $SOCK)"
		api_get / info
	else
		attr ready no
	fi
	stop_vmm
	rm -f $OUT $ERR # not read again before the next VM truncates them (start_vmm)
	VMM_FLAGS=--no-seccomp
	start_vmm "$1"
	VMM_FLAGS=
	if wait_line $OUT '^testguest: booted' $PID; then
		attr ready.off yes
		confinement $PID .off
		api_get / info.off
	else
		attr ready.off no
	fi
	stop_vmm .off
}

# The audit lines of seccomp kills (type=1326) the kernel logged since the last dmesg -c:
# the kernel's audit thread writes them a moment after the death (up to 1 s waited).
audit_kills() { # file
	i=0
	while ! dmesg | grep -q 'type=1326' && [ $i -lt 10 ]; do sleep 0.1; i=$((i + 1)); done
	dmesg | grep 'type=1326' >"$1"
}

# A forbidden call (the test hook: HUGEVMM_TEST_FORBIDDEN=ROLE:CALL, one VM for each line of
# `kills`): the VMM's exit status (159: SIGSYS), the kernel's audit lines of it (dmesg
# cleared first), its stderr. Then free.json with --no-seccomp and the hook of `free`:
# the call is made and the VM runs to its end.
run_sckill() {
	kd=$1
	sk=/tmp/sckill.sock
	attr actions_logged "$(tr ' ' , </proc/sys/kernel/seccomp/actions_logged 2>&1)"
	while read -r k; do
		rm -f $sk
		dmesg -c >/dev/null
		env $(cat "$kd/env") HUGEVMM_TEST_FORBIDDEN="$k" hugevmm --api-sock $sk \
			--config-file "$kd/config.json" >/tmp/sk.out 2>/tmp/sk.err </dev/null &
		supervise $! 60
		attr "rc.$k" $?
		audit_kills /tmp/sk.audit
		emit "audit.$k" /tmp/sk.audit
		emit "stderr.$k" /tmp/sk.err
		grep -q . /tmp/sk.out && emit "stdout.$k" /tmp/sk.out
	done <"$kd/kills"
	rm -f $sk /tmp/hugevmm-forbidden-*
	dmesg -c >/dev/null
	env $(cat "$kd/env") HUGEVMM_TEST_FORBIDDEN="$(cat "$kd/free")" hugevmm --no-seccomp \
		--config-file "$kd/free.json" >/tmp/sk.out 2>/tmp/sk.err </dev/null &
	supervise $! 60
	attr rc.free $?
	dmesg | grep 'type=1326' >/tmp/sk.audit
	emit audit.free /tmp/sk.audit
	emit stdout.free /tmp/sk.out
	emit stderr.free /tmp/sk.err
}

# The unprivileged user (`user`: uid 1000, group kvm), made once; root's files untouched.
hv_user() {
	[ -f /etc/group ] || echo "root:x:0:" >/etc/group
	grep -q "^$1:" /etc/passwd || echo "$1:x:1000:1000:hugevmm:/tmp/$1:/bin/sh" >>/etc/passwd
	grep -q "^$1:" /etc/group || echo "$1:x:1000:" >>/etc/group
	grep -q '^kvm:' /etc/group || echo "kvm:x:36:$1" >>/etc/group
}

# Files owned by uid 1000 anywhere but /proc and /sys: "MODE PATH TYPE" (stat), its own
# directory /tmp/USER (made by root for it) too.
owned_by_user() {
	find / /tmp /dev /run /mnt/disk -xdev -user 1000 2>/dev/null | sort -u |
		while read -r f; do stat -c '%a %n %F' "$f"; done
}

# hugevmm as the unprivileged `user` (su; /dev/kvm root:kvm 0660 meanwhile, restored
# after): its API socket in /tmp/USER. Once the guest idles: its ids (status: Uid, Gid,
# Groups of /proc/P/status), confinement, the coverage evidence, what it owns (created);
# SIGTERM; what it owns after (created.after).
run_unpriv() {
	u=$(cat "$1/user")
	hv_user "$u"
	kvm_was=$(stat -c '%a %u %g' /dev/kvm)
	attr kvm_before "$(echo $kvm_was | tr ' ' _)"
	chgrp kvm /dev/kvm && chmod 660 /dev/kvm
	attr kvm_during "$(stat -c '%a_%U_%G' /dev/kvm)"
	rm -rf "/tmp/$u"
	mkdir -m 755 "/tmp/$u" && chown "$u:$u" "/tmp/$u"
	SOCK=/tmp/$u/api.sock
	OUT=/tmp/unpriv.out
	ERR=/tmp/unpriv.err
	rm -f $OUT $ERR
	# busybox su execs (no fork): $! is the shell, then hugevmm itself.
	su -s /bin/sh "$u" -c "exec hugevmm --api-sock $SOCK --config-file $1/config.json" \
		>$OUT 2>$ERR </dev/null &
	PID=$!
	if wait_line $OUT '^idle' $PID; then
		attr ready yes
		attr comm "$(cat /proc/$PID/comm)"
		grep -E '^(Uid|Gid|Groups|NoNewPrivs|Seccomp):' /proc/$PID/status >/tmp/up.status
		emit status /tmp/up.status
		confinement $PID ""
		owned_by_user >/tmp/up.created
		emit created /tmp/up.created
		evidence $PID ""
	else
		attr ready no
	fi
	stop_vmm
	owned_by_user >/tmp/up.created
	emit created.after /tmp/up.created
	rm -rf "/tmp/$u" /tmp/hugevmm-forbidden-*
	set -- $kvm_was
	chown "$2:$3" /dev/kvm
	chmod "$1" /dev/kvm
	attr kvm_after "$(stat -c '%a_%u_%g' /dev/kvm)"
}

# One launch, timed: from just before exec to the L2's first userspace line (as the VMM's
# output delivers it), and the VMM's memory at that moment (smaps: RSS of the guest RAM
# mapping, the one 64 MiB or larger, and of everything else) -- then to the VMM's exit.
bench_once() { # $1 case dir, $2 run number
	bd=$1
	bn=$2
	rm -f /tmp/bfifo
	mkfifo /tmp/bfifo
	t0=$(uptime_ms)
	if [ -f "$bd/qemu" ]; then
		set --
		while IFS= read -r a; do set -- "$@" "$a"; done <"$bd/qemu"
		qemu-system-x86_64 "$@" >/tmp/bfifo 2>/tmp/berr </dev/null &
	else
		hugevmm --config-file "$bd/config.json" >/tmp/bfifo 2>/tmp/berr </dev/null &
	fi
	pid=$!
	# Not supervise(): its polling forks on L1's one vCPU would slow the boots it times
	# (one try: both contenders ~10% slower). A sleeping killer costs nothing until it fires.
	(sleep 120; kill -KILL $pid 2>/dev/null) &
	killer=$!
	awk -v pid=$pid -v t0="$t0" '
		function now(  u, a) { getline u <"/proc/uptime"; close("/proc/uptime"); split(u, a, " "); return int(a[1] * 1000) }
		/L2: userspace up/ && !up {
			up = now() - t0
			f = "/proc/" pid "/smaps"
			while ((getline l <f) > 0) {
				n = split(l, w, " ")
				if (w[1] == "Size:") size = w[2]
				if (w[1] == "Rss:") { if (size >= 65536) guest += w[2]; else vmm += w[2] }
			}
			close(f)
		}
		END { printf "up_ms=%d rss_guest_kb=%d rss_vmm_kb=%d", up, guest, vmm }' </tmp/bfifo >/tmp/bres
	wait $pid
	rc=$?
	kill $killer 2>/dev/null
	attr "run$bn" "$(cat /tmp/bres) exit_ms=$(($(uptime_ms) - t0)) rc=$rc"
	[ $rc -eq 0 ] || emit "stderr$bn" /tmp/berr
}

# The user's own command (tests/l1/vm.py: `make run` without /dev/kvm): hugevmm with the
# case's arguments, in /repo, live on the console between @@FILE console and @@ENDFILE --
# stdout as it is, each stderr line as "@@ERR line" -- then its exit code. A sleeping
# killer, not supervise(), for the same reason as bench_once.
run_run() {
	rd=$1
	set --
	while IFS= read -r a; do set -- "$@" "$a"; done <"$rd/args"
	rm -f /tmp/efifo
	mkfifo /tmp/efifo
	echo "@@FILE console"
	sed 's/^/@@ERR /' </tmp/efifo &
	errpid=$!
	(exec 2>/tmp/efifo </dev/null; cd /repo && exec hugevmm "$@") &
	pid=$!
	(sleep 1200; kill -KILL $pid 2>/dev/null) &
	killer=$!
	wait $pid
	rc=$?
	kill $killer 2>/dev/null
	wait $errpid
	echo
	echo "@@ENDFILE"
	attr rc $rc
}

# Contenders run interleaved (bench/virtio.py): each round runs every one of them once,
# round 0 unmeasured; NAME.json is a hugevmm config (NAME.args, optional: more hugevmm
# arguments one a line, before --config-file), NAME.qemu QEMU's arguments one a line.
# vmtime (bench/vmtime.c) times each from spawn to exit, with the guest's first and last
# words and the VMM's CPU time; a virtio-rt run's figures are taken from its output.
run_vbench() {
	vd=$1
	vn=$RUNS
	[ -f "$vd/runs" ] && vn=$(cat "$vd/runs")
	for i in $(seq 0 "$vn"); do
		for c in $(cat "$vd/contenders"); do
			rm -f /tmp/vres
			if [ -f "$vd/$c.qemu" ]; then
				set --
				while IFS= read -r a; do set -- "$@" "$a"; done <"$vd/$c.qemu"
				vmtime /tmp/vres 300 qemu-system-x86_64 "$@" >/tmp/vout 2>/tmp/verr </dev/null
			else
				set --
				[ -f "$vd/$c.args" ] &&
					while IFS= read -r a; do set -- "$@" "$a"; done <"$vd/$c.args"
				vmtime /tmp/vres 300 hugevmm -q "$@" --config-file "$vd/$c.json" \
					>/tmp/vout 2>/tmp/verr </dev/null
			fi
			rt=$(grep -o 'cycles_median=[0-9]* cycles_p10=[0-9]* cycles_p90=[0-9]*' /tmp/vout | head -1)
			grep -q 'testguest: PASS' /tmp/vout && vp=1 || vp=0
			attr "$c.run$i" "$(cat /tmp/vres 2>/dev/null) pass=$vp $rt"
			[ $vp = 1 ] || { emit "stdout.$c.$i" /tmp/vout; emit "stderr.$c.$i" /tmp/verr; }
		done
	done
}

# An empty VM's teardown per interrupt controller (bench/irqclose.c).
run_irqclose() {
	irqclose "$(cat "$1/rounds")" >/tmp/irq 2>&1
	attr rc $?
	emit irqclose /tmp/irq
}

run_bench() {
	for i in $(seq "$RUNS"); do bench_once "$1" "$i"; done
}

for round in $(seq "$REPEAT"); do for d in /cases/*; do
	name=${d#/cases/??-}
	case ",$ONLY," in ,,) ;; *",$name,"*) ;; *) continue ;; esac
	echo "@@CASE $name"
	dmesg -c >/dev/null
	rm -f /tmp/audit.held
	case_t0=$(uptime_ms)
	why=$(setup $(cat "$d/setup"))
	[ -z "$why" ] && [ -f "$d/disks" ] && [ $DISK != yes ] &&
		why="no ext4 on a RAM disk (brd) for the images"
	if [ -n "$why" ]; then
		attr skipped "$why"
	else
		attr kind "$(cat "$d/kind")"
		"run_$(cat "$d/kind")" "$d"
	fi
	# The seccomp kills of the case, if any (the kernel's audit lines, type=1326).
	{ cat /tmp/audit.held 2>/dev/null; dmesg -c | grep 'type=1326'; } >/tmp/audit.case
	attr audit_1326 "$(grep -c . /tmp/audit.case)"
	attr case_ms $(($(uptime_ms) - case_t0))
	[ -s /tmp/audit.case ] && emit audit /tmp/audit.case
	echo "@@ENDCASE $name"
done; done
echo "@@L1 done"
poweroff -f
