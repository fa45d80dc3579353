#!/bin/busybox sh
# Benchmark tooling, not product code: bench/balloon.py's runner, in three places.
#
# In L1, bench/balloon.py installs it in the benchmark image as /bin/run_balloonbench, so
# the init's dispatch (`run_$(cat kind)`) runs it for a case of kind "balloonbench":
#
#   run_balloonbench CASE_DIR
#
# CASE_DIR holds: runs (measured rounds), contenders (names, one a line), per contender
# NAME.json (a hugevmm config) or NAME.qemu (QEMU's arguments, one a line), where @BB@ is
# the L2's bb.* words; patterns (lines "NAME FILL FRAG REREAD RETOUCH", MiB: the L2's
# bb.fill=, bb.frag=, bb.reread=, bb.retouch=), target (MiB the balloon is asked for), guest (the guest's MiB),
# timeout (s to wait for the RSS to settle).
#
# Each run: the VMM boots the Debian L2 (this script as its init, below), which uses its
# memory and frees it again, then says "L2: idle". L1 snapshots the VMM (RSS, the guest
# RAM mapping's Rss and AnonHugePages from smaps, KVM's debugfs pages_4k/2m), asks for the
# balloon -- hugevmm PATCH /balloon {"amount_mib": TARGET}, QEMU QMP
# {"execute": "balloon", "arguments": {"value": GUEST - TARGET MiB in bytes}} -- and reads
# the VMM's resident pages (/proc/PID/statm: the counter smaps_rollup's Rss also shows,
# read without the page walk that would hold the VMM's mmap lock) every 20 ms, until they
# have not moved by 1 MiB for 3 s (or TIMEOUT s passed). Then the same snapshot, the
# balloon's size as the VMM reports it (GET /balloon actual_mib, QMP query-balloon), and
# once more after the L2 worked again (below): KVM maps what the guest touches, at 2M where
# the host page stayed whole. It runs every contender once unmeasured (the first pattern),
# then per pattern RUNS rounds of all of them interleaved, and prints for bench/balloon.py:
#
#   @@ATTR NAME.PATTERN.runI rss0_mib=.. ram_rss0_mib=.. ram_huge0_mib=.. kvm4k0=.. kvm2m0=..
#          (the same for 1 and 2) actual_mib=.. order_ok=0|1 ack_ms=.. t_first_ms=..
#          t_target_ms=.. t_done_ms=.. drop_mib=.. samples=.. span_ms=.. reread_ms=..
#          write_ms=.. pass=0|1
#
# (0 before, 1 once settled, 2 after the L2's retouch; ack_ms: request -> the VMM's answer;
# t_*: from that answer to the first sample 2 MiB down, 99% of TARGET down (only if it
# got there), within 1 MiB of the final RSS; kvm*: KVM's counts of 4K and 2M entries;
# order_ok: the L2 had not started its retouch before snapshot 1).
#
# In the L2, as /init of /guest/initrd-balloonbench.cpio (the L2's initramfs, with
# virtio_balloon): PID 1 loads the virtio modules, waits for the balloon's driver, writes
# bb.fill= MiB to tmpfs and removes them, with bb.frag= writes that many MiB as 64 KiB files
# and removes every other one (free memory scattered over 2M blocks), says "L2: idle";
# once its balloon holds bb.target= MiB says "L2: inflated", waits 10 s (L1's snapshot),
# reads bb.reread= MiB of the files it kept, writes bb.retouch= MiB to tmpfs and says
# "L2: retouched" with the time each took (reread_ms=, write_ms=: its own clock); then
# sleeps until the VMM is stopped.
#
# In L1 again, `run_balloonbench --qmp CMD OUT` is the QMP client: busybox nc -e runs it
# with QEMU's QMP socket on its stdin and stdout, and OUT gets the answer's time (cs) and
# the answer.
set -u
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

# Centiseconds since boot, no fork.
now_cs() {
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}"
}

if [ "${1:-}" = --qmp ]; then
	read -r l # the greeting
	echo '{"execute": "qmp_capabilities"}'
	while read -r l; do case "$l" in *'"return"'* | *'"error"'*) break ;; esac; done
	echo "$2"
	# Events (BALLOON_CHANGE) come on the same line; the answer has return or error.
	while read -r l; do
		case "$l" in *'"return"'* | *'"error"'*)
			echo "$(now_cs) $l" >"$3"
			break
			;;
		esac
	done
	exit 0
fi

ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
memfree_kb() { awk '/^MemFree:/ { print $2 }' /proc/meminfo; }
ballooned() { awk '/^balloon_inflate / { n += $2 } /^balloon_deflate / { n -= $2 } END { print n + 0 }' /proc/vmstat; }

if [ $$ = 1 ]; then
	/bin/busybox --install -s
	mkdir -p /proc /sys /dev /tmp
	mount -t proc proc /proc
	mount -t devtmpfs dev /dev 2>/dev/null
	mount -t sysfs sys /sys
	fill=1536
	frag=0
	target=1024
	reread=0
	retouch=128
	for a in $(cat /proc/cmdline); do
		case "$a" in
		bb.fill=*) fill=${a#bb.fill=} ;;
		bb.frag=*) frag=${a#bb.frag=} ;;
		bb.target=*) target=${a#bb.target=} ;;
		bb.reread=*) reread=${a#bb.reread=} ;;
		bb.retouch=*) retouch=${a#bb.retouch=} ;;
		esac
	done
	mount -t tmpfs -o size=$((fill + frag + 64))m tmp /tmp
	while read -r m; do
		case "$m" in virtio_net* | net_failover* | failover*) continue ;; esac
		insmod "/lib/l2-modules/$m" 2>/tmp/insmod.err || echo "L2: insmod $m: $(cat /tmp/insmod.err)"
	done </lib/l2-modules/order
	i=0
	while ! ls /sys/bus/virtio/drivers/virtio_balloon 2>/dev/null | grep -q virtio && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	for d in /sys/bus/virtio/devices/*; do
		[ "$(cat $d/device 2>/dev/null)" = 0x0005 ] && echo "L2: balloon features=$(cat $d/features)"
	done
	echo "L2: memtotal_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) memfree_kb=$(memfree_kb)"
	dd if=/dev/zero of=/tmp/fill bs=1M count="$fill" 2>/dev/null
	echo "L2: filled $(du -m /tmp/fill | cut -f1) MiB"
	rm -f /tmp/fill
	if [ "$frag" -gt 0 ]; then
		# Scattered free memory: FRAG MiB of 64 KiB files, every other one removed again --
		# half of each 2M block free, in 64 KiB holes the balloon's 4K pages go into first.
		mkdir /tmp/frag
		n=$((frag * 16))
		awk -v n=$n 'BEGIN { s = sprintf("%65536s", ""); for (i = 0; i < n; i++) {
			f = "/tmp/frag/" i; printf "%s", s > f; close(f) } }'
		(cd /tmp/frag && rm -f $(seq 1 2 $((n - 1))))
		echo "L2: fragmented kept_mib=$(du -sm /tmp/frag | cut -f1)"
	fi
	sync
	f0=$(memfree_kb)
	echo "L2: idle memfree_kb=$f0"
	# Inflated: the balloon holds TARGET MiB (the kernel's own count of pages in balloons;
	# MemFree says less, as the kernel frees caches while the balloon takes memory).
	i=0
	while [ $i -lt 360 ] && [ "$(ballooned)" -lt $((target * 256)) ]; do
		sleep 0.5
		i=$((i + 1))
	done
	echo "L2: inflated pages=$(ballooned) memfree_kb=$(memfree_kb) after_ms=$((i * 500))"
	sleep 10 # L1 sees the RSS settle (3 s still) and takes its snapshot
	# The guest at work again: REREAD MiB of the files it kept are read (through a pipe:
	# cat alone would sendfile to /dev/null without reading a byte), RETOUCH MiB written.
	echo "L2: retouch start"
	t=$(ms)
	[ "$reread" -gt 0 ] && (cd /tmp/frag && cat $(seq 0 2 $((reread * 32 - 2)))) |
		dd of=/dev/null bs=64k 2>/dev/null
	t1=$(ms)
	dd if=/dev/zero of=/tmp/retouch bs=1M count="$retouch" 2>/dev/null
	echo "L2: retouched $(du -m /tmp/retouch | cut -f1) MiB memfree_kb=$(memfree_kb)" \
		"reread_ms=$((t1 - t)) write_ms=$(($(ms) - t1))"
	while :; do sleep 3600; done
fi

d=$1
runs=$(cat "$d/runs")
target=$(cat "$d/target")
guest=$(cat "$d/guest")
timeout=$(cat "$d/timeout")
SOCK=/tmp/bb.sock
SELF=$(realpath "$0") # --qmp: the QMP client (above)
QMP_PORT=4444

# As tests/l1/init.sh's: /tmp/progress tells its stall hunt that reports still come.
attr() { echo "@@ATTR $1 $2"; : >/tmp/progress; }
emit() { echo "@@FILE $1"; cat "$2" 2>/dev/null; echo; echo "@@ENDFILE"; : >/tmp/progress; }
beat() { echo "@@L1 balloon: $*"; : >/tmp/progress; }

# A line in the VMM's output, or the VMM's end; 0 when seen.
wait_line() { # file regex pid seconds
	i=0
	while [ $i -lt $(($4 * 10)) ]; do
		grep -q "$2" "$1" && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
		i=$((i + 1))
		# L1 is alive (tests/l1/run.py takes 240 s of silence for a stall).
		[ $((i % 300)) = 0 ] && beat "waiting for $2 ($i polls)"
	done
	return 1
}

# KVM's counts for the VM of process $1: "4K 2M".
kvm_pages() {
	a=0
	b=0
	for k in /sys/kernel/debug/kvm/"$1"-*; do
		[ -f "$k/pages_4k" ] || continue
		a=$((a + $(cat "$k/pages_4k")))
		b=$((b + $(cat "$k/pages_2m")))
	done
	echo "$a $b"
}

# The guest RAM mapping of process $1 (the one with the most resident memory): "Rss
# AnonHugePages" in KiB.
ram_map() {
	awk '/^[0-9a-f]+-[0-9a-f]+ / { if (r > br) { br = r; bh = h }; r = 0; h = 0 }
		/^Rss:/ { r = $2 } /^AnonHugePages:/ { h = $2 }
		END { if (r > br) { br = r; bh = h }; print br + 0, bh + 0 }' /proc/"$1"/smaps
}

rss_kb() { # $1 pid
	read -r _ res _ </proc/"$1"/statm
	echo $((res * 4))
}

# One snapshot N of process $1: its RSS, its guest RAM mapping, KVM's counts.
snap() {
	set -- "$1" "$2" $(ram_map "$1") $(kvm_pages "$1")
	res="$res rss$2_mib=$(($(rss_kb "$1") / 1024)) ram_rss$2_mib=$(($3 / 1024))"
	res="$res ram_huge$2_mib=$(($4 / 1024)) kvm4k$2=$5 kvm2m$2=$6"
}

# The balloon's size as the VMM reports it, in MiB.
actual_mib() { # contender pid
	if [ -f "$d/$1.qemu" ]; then
		rm -f /tmp/qmpq
		nc 127.0.0.1 $QMP_PORT -e "$SELF" --qmp '{"execute": "query-balloon"}' \
			/tmp/qmpq 2>/dev/null
		a=$(sed -n 's/.*"actual": *\([0-9]*\).*/\1/p' /tmp/qmpq)
		[ -n "$a" ] && echo $((guest - a / 1048576))
	else
		curl -s --unix-socket $SOCK http://localhost/balloon >/tmp/bbget
		sed -n 's/.*"actual_mib": *\([0-9]*\).*/\1/p' /tmp/bbget
	fi
}

# Ask for the balloon in the background; the VMM's answer's time (cs) lands in /tmp/bback.
request() { # contender
	rm -f /tmp/bback /tmp/qmpr
	if [ -f "$d/$1.qemu" ]; then
		(nc 127.0.0.1 $QMP_PORT -e "$SELF" --qmp \
			"{\"execute\": \"balloon\", \"arguments\": {\"value\": $(((guest - target) << 20))}}" \
			/tmp/qmpr 2>/dev/null
			cut -d' ' -f1 /tmp/qmpr >/tmp/bback.t && mv /tmp/bback.t /tmp/bback) &
	else
		(curl -s -o /tmp/qmpr -w '%{http_code}' --unix-socket $SOCK -X PATCH \
			-H 'Content-Type: application/json' -d "{\"amount_mib\": $target}" \
			http://localhost/balloon >/tmp/bbcode
			now_cs >/tmp/bback.t && mv /tmp/bback.t /tmp/bback) &
	fi
}

# The VMM's resident memory every 20 ms from the request until it has not moved by 1 MiB
# for 3 s, with the time of each sample, in /tmp/bbtrace ("cs KiB"); all reads are the
# shell's own (read -t on a FIFO nobody writes is the 20 ms sleep), no fork per sample.
poll() { # pid t_spawn(cs)
	: >/tmp/bbtrace
	exec 6>>/tmp/bbtrace
	base=$(rss_kb "$1")
	ref=$base
	changed=$2
	while :; do
		read -r _ r _ </proc/"$1"/statm 2>/dev/null || break
		r=$((r * 4))
		read -r up _ </proc/uptime
		t=${up%.*}${up#*.}
		echo "$t $r" >&6
		dr=$((r - ref))
		if [ $dr -gt 1024 ] || [ $dr -lt -1024 ]; then
			ref=$r
			changed=$t
		fi
		[ $((base - r)) -ge 8192 ] && [ $((t - changed)) -ge 300 ] && break
		[ $((t - $2)) -ge $((timeout * 100)) ] && break
		[ $(((t - $2) % 3000)) -lt 3 ] && [ $((t - $2)) -ge 3000 ] && beat "RSS $((r / 1024)) MiB"
		read -r -t 0.02 -u 5 _
	done
	exec 6>&-
}

# One run of contender $1 on pattern $2 (fill, frag, reread, retouch MiB: $3 $4 $5 $6); its
# figures in $res.
run_one() {
	c=$1
	bb="bb.fill=$3 bb.frag=$4 bb.target=$target bb.reread=$5 bb.retouch=$6"
	rm -f /tmp/bbout /tmp/bberr $SOCK
	echo 1 >/proc/sys/vm/compact_memory # the same chance of 2M pages for every run
	if [ -f "$d/$c.qemu" ]; then
		set --
		while IFS= read -r a; do
			set -- "$@" "$(echo "$a" | sed "s|@BB@|$bb|")"
		done <"$d/$c.qemu"
		qemu-system-x86_64 "$@" >/tmp/bbout 2>/tmp/bberr </dev/null &
	else
		sed "s|@BB@|$bb|" "$d/$c.json" >/tmp/bbcfg.json
		hugevmm --api-sock $SOCK --config-file /tmp/bbcfg.json >/tmp/bbout 2>/tmp/bberr </dev/null &
	fi
	pid=$!
	res=
	pass=0
	if wait_line /tmp/bbout "^L2: idle" $pid 600; then
		sleep 2
		snap $pid 0
		t_spawn=$(now_cs)
		request "$c"
		poll $pid "$t_spawn"
		grep -q "^L2: retouch start" /tmp/bbout && order=0 || order=1
		snap $pid 1
		res="$res actual_mib=$(actual_mib "$c" $pid) order_ok=$order"
		if wait_line /tmp/bbout "^L2: retouched" $pid 600; then
			snap $pid 2
			res="$res $(sed -n 's/^L2: retouched.* \(reread_ms=[0-9]*\) \(write_ms=[0-9]*\).*/\1 \2/p' /tmp/bbout)"
			pass=1
		fi
		ack=$(cat /tmp/bback 2>/dev/null)
		ack=${ack:-$t_spawn}
		# From the trace: the first sample 2 MiB down, the first at 99% of the target,
		# the first within 1 MiB of the last.
		res="$res ack_ms=$(((ack - t_spawn) * 10))$(awk -v a="$ack" -v tgt=$((target * 1024 * 99 / 100)) '
			NR == 1 { b = $2; t0 = $1 } { t[NR] = $1; r[NR] = $2 }
			END {
				last = r[NR]
				for (i = 1; i <= NR; i++) {
					if (!f && b - r[i] >= 2048) f = t[i]
					if (!g && b - r[i] >= tgt) g = t[i]
					if (!h && r[i] - last <= 1024) h = t[i]
				}
				if (f) printf " t_first_ms=%d", (f - a) * 10
				if (g) printf " t_target_ms=%d", (g - a) * 10
				printf " t_done_ms=%d drop_mib=%.1f samples=%d span_ms=%d", (h - a) * 10,
					(b - last) / 1024, NR, (t[NR] - t0) * 10
			}' /tmp/bbtrace)"
	fi
	grep -q 'balloon features=' /tmp/bbout || pass=0
	res="$res pass=$pass"
	kill -TERM $pid 2>/dev/null
	wait $pid
}

mkfifo /tmp/bbnap
exec 5<>/tmp/bbnap
rm -f /tmp/bbnap

# One unmeasured run of each contender on the first pattern.
read -r p0 f0 g0 e0 r0 <"$d/patterns"
for c in $(cat "$d/contenders"); do
	run_one "$c" "$p0" "$f0" "$g0" "$e0" "$r0"
	attr "$c.warmup" "$res"
	emit "warmup.$c.stdout" /tmp/bbout
	[ "${res%pass=1}" = "$res" ] && emit "warmup.$c.stderr" /tmp/bberr
done
while read -r pname pfill pfrag preread pretouch; do
	beat "$pname"
	for round in $(seq "$runs"); do # not i: wait_line's
		for c in $(cat "$d/contenders"); do
			run_one "$c" "$pname" "$pfill" "$pfrag" "$preread" "$pretouch" </dev/null
			attr "$c.$pname.run$round" "$res"
			[ "${res%pass=1}" = "$res" ] && { emit "stdout.$c.$pname.$round" /tmp/bbout
				emit "stderr.$c.$pname.$round" /tmp/bberr; }
			[ "$round" = 1 ] && { emit "trace.$c.$pname.1" /tmp/bbtrace
				emit "l2.$c.$pname.1" /tmp/bbout; }
		done
	done
done <"$d/patterns"
exec 5<&-
exit 0
