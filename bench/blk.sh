#!/bin/sh
# Benchmark tooling, not product code: bench/blk.py's runner inside the L1 harness's guest.
# bench/blk.py installs it in the benchmark image as /bin/run_blkbench, so the init's
# dispatch (`run_$(cat kind)`) runs it for a case of kind "blkbench":
#
#   run_blkbench CASE_DIR
#
# CASE_DIR holds: fs (tmpfs | pmem), mib (the image's size), secs (each run's I/O time),
# runs (measured rounds), patterns (lines "NAME MODE BS QD"), contenders (names, one a
# line) and per contender NAME.json (a hugevmm config), NAME.qemu (QEMU's arguments, one
# a line) or NAME.fio (fio's arguments beyond the pattern's, one a line): in each, @ARGS@
# is the test guest's command line and @IMG@ the image's path.
#
# It makes the file system and the image, runs every contender once unmeasured, then for
# each pattern RUNS rounds of every contender (interleaved), each under bench/vmtime
# (spawn -> exit, the child's rusage), and prints what it saw for the host side
# (bench/blk.py) to judge:
#
#   @@ATTR NAME.PATTERN.runI iops=X mbps=Y ios=.. io_ms=.. lat_us=.. notifies=.. irqs=..
#          pass=0|1 win_ms=.. win_ticks=.. win_guest_ticks=.. rss_kb=.. ram_kb=..
#          wall_us=.. user_us=.. sys_us=.. rc=..
#
# iops .. irqs: the blkbench line's figures (its ms= as io_ms=); a hugevmm run adds
# fixed_count, fixed_fallbacks and inflight_max from its drive's metrics at exit.
# win_*: the VMM's /proc/PID/stat twice inside the I/O (0.25 s after the first guest line,
# and half the run later; win_ok=0 when a sample failed): wall ms, user+sys ticks (all
# threads; a vCPU's guest time included) and the guest-time ticks among them (USER_HZ,
# 100 a second on x86). rss_kb: the VMM's RSS outside guest RAM (smaps, mappings under
# 64 MiB) at the second sample; ram_kb: RSS of the guest RAM mappings.
# A fio run has iops, mbps (bytes / 1e6) and its rusage; no window.
set -u
d=$1
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
fs=$(cat "$d/fs")
mib=$(cat "$d/mib")
secs=$(cat "$d/secs")
runs=$(cat "$d/runs")

attr() { echo "@@ATTR $1 $2"; }
emit() { echo "@@FILE $1"; cat "$2" 2>/dev/null; echo; echo "@@ENDFILE"; }
say() { echo "@@L1 blk $fs: $*"; }

case $fs in
tmpfs)
	mnt=/mnt/blktmp
	mkdir -p $mnt
	# Its own tmpfs: the init's /tmp is capped at half of L1's RAM.
	mount -t tmpfs -o size=$((mib + 64))m blktmp $mnt || { attr skipped "tmpfs mount failed"; exit 0; }
	;;
pmem)
	# The only storage in L1 that is not its RAM: the second emulated NVDIMM (a sparse file
	# on the host), an ext4 the init made and mounted with -o dax at /mnt/pmem. Mounted
	# here without DAX, so I/O goes through the page cache and the pmem block driver.
	mnt=/mnt/blkdisk
	if [ ! -b /dev/pmem1 ]; then
		attr skipped "no /dev/pmem1 (L1 booted without NVDIMMs)"
		exit 0
	fi
	umount /mnt/pmem 2>/dev/null
	mkdir -p $mnt
	mount -t ext4 -o dax=never /dev/pmem1 $mnt 2>/tmp/blkmnt ||
		{ attr skipped "mount /dev/pmem1 without dax: $(cat /tmp/blkmnt)"; exit 0; }
	;;
*)
	attr skipped "unknown fs $fs"
	exit 0
	;;
esac
img=$mnt/disk.img
attr mount "$(grep " $mnt " /proc/mounts)"
say "writing a $mib MiB image"
t0=$(awk '{ printf "%d", $1 * 1000 }' /proc/uptime)
dd if=/dev/zero of=$img bs=1M count="$mib" conv=fsync 2>/tmp/blkdd ||
	{ attr skipped "dd: $(cat /tmp/blkdd)"; umount $mnt; exit 0; }
attr image_ms $(($(awk '{ printf "%d", $1 * 1000 }' /proc/uptime) - t0))
attr image "$img $(stat -c %s $img) bytes"
attr mem_before "$(grep -E 'MemFree|^Cached|Shmem:' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"

# One run of contender $1 ($2 mode, $3 bs, $4 qd, $5 secs); the result line in /tmp/blkres.
run_one() {
	c=$1
	rmode=$2
	rbs=$3
	rqd=$4
	rsecs=$5
	gargs="test=blkbench mode=$rmode bs=$rbs qd=$rqd secs=$rsecs"
	rm -f /tmp/vres /tmp/blkres /tmp/bfifo /tmp/blkmetrics
	if [ -f "$d/$c.fio" ]; then
		set --
		while IFS= read -r a; do
			set -- "$@" "$(echo "$a" | sed "s|@IMG@|$img|")"
		done <"$d/$c.fio"
		vmtime /tmp/vres 300 fio --name=blk --filename="$img" --ioengine=io_uring --rw="$rmode" \
			--bs="$rbs" --iodepth="$rqd" --time_based --runtime="$rsecs" --norandommap \
			--randrepeat=0 --invalidate=0 --minimal "$@" \
			>/tmp/bout 2>/tmp/berr </dev/null
		# Terse v3: 7/8 read KiB/s and IOPS, 48/49 write KiB/s and IOPS.
		awk -F';' 'NF > 50 { printf "iops=%d mbps=%.1f ios=%d pass=1", $8 + $49, ($7 + $48) * 1024 / 1e6,
			($6 + $47) * 1024 / '"$rbs"'; n++ }
			END { if (!n) printf "pass=0" }' /tmp/bout >/tmp/blkres
		printf " %s" "$(cat /tmp/vres 2>/dev/null)" >>/tmp/blkres
		return
	fi
	mkfifo /tmp/bfifo
	if [ -f "$d/$c.qemu" ]; then
		set --
		while IFS= read -r a; do
			set -- "$@" "$(echo "$a" | sed "s|@IMG@|$img|; s|@ARGS@|$gargs|")"
		done <"$d/$c.qemu"
		vmtime /tmp/vres 300 qemu-system-x86_64 "$@" >/tmp/bfifo 2>/tmp/berr </dev/null &
	else
		rm -f /tmp/blkmetrics
		sed "s|@IMG@|$img|; s|@ARGS@|$gargs|" "$d/$c.json" >/tmp/blkcfg.json
		vmtime /tmp/vres 300 hugevmm -q --config-file /tmp/blkcfg.json >/tmp/bfifo 2>/tmp/berr \
			</dev/null &
	fi
	vp=$!
	# Reads the VMM's output as it comes (no polling: the measured VMM shares L1's vCPUs).
	# At the first guest line: the VMM's pid (vmtime's child); 0.25 s later (the I/O has
	# begun) its CPU times, and half the run after that its CPU times again and its smaps:
	# a window inside the I/O, whatever the VMM's launch and exit cost. The pipe holds the
	# few lines the guest prints meanwhile.
	awk -v vp=$vp -v half="$((rsecs * 500))" '
		function now(  u, a) { getline u <"/proc/uptime"; close("/proc/uptime"); split(u, a, " "); return int(a[1] * 1000) }
		function cpu(  s, a, f) { f = "/proc/" pid "/stat"; s = ""; getline s <f; close(f)
			if (s == "") { bad = 1; return 0 }
			# comm may hold spaces: count fields after its closing parenthesis
			sub(/^.*\) /, "", s); split(s, a, " "); g = a[41]; return a[12] + a[13] }
		{ print >"/tmp/bout" }
		/testguest:/ && !t0 {
			f = "/proc/" vp "/task/" vp "/children"; getline pid <f; close(f); split(pid, p, " "); pid = p[1]
			system("sleep 0.25")
			t0 = now(); c0 = cpu(); g0 = g
			system("sleep " half / 1000)
			t1 = now(); c1 = cpu(); g1 = g
			f = "/proc/" pid "/smaps"
			while ((getline l <f) > 0) {
				print l >"/tmp/bsmaps"
				n = split(l, w, " ")
				if (w[1] == "Size:") size = w[2]
				if (w[1] == "Rss:") { if (size >= 65536) ram += w[2]; else rss += w[2] }
			}
			close(f)
			if (!ram) bad = 1 # gone before the sample
		}
		/blkbench mode=/ && !done {
			done = 1
			# the figures of the guest; its ms= (the I/O time) becomes io_ms=
			for (i = 1; i <= NF; i++)
				if ($i ~ /^(iops|mbps|ios|ms|lat_us|notifies|irqs|event_idx|indirect)=/)
					res = res " " ($i ~ /^ms=/ ? "io_" : "") $i
		}
		/testguest: PASS/ { pass = 1 }
		END { printf "%s pass=%d win_ok=%d win_ms=%d win_ticks=%d win_guest_ticks=%d rss_kb=%d ram_kb=%d",
			res, pass, t0 && !bad, t1 - t0, c1 - c0, g1 - g0, rss, ram }' </tmp/bfifo >/tmp/blkres
	wait $vp
	printf " %s" "$(cat /tmp/vres 2>/dev/null)" >>/tmp/blkres
	# hugevmm's drive metrics at exit (its config's metrics_path): requests moved with fixed
	# buffers, fallbacks from that path, the most requests in flight at once.
	if [ -f "$d/$c.json" ] && [ ! -s /tmp/blkmetrics ]; then
		printf ' metrics=0' >>/tmp/blkres # no metrics line came at exit
	elif [ -s /tmp/blkmetrics ]; then
		m=$(tail -n 1 /tmp/blkmetrics | grep -o '"block_d0": *{[^}]*}')
		for k in fixed_count fixed_fallbacks inflight_max; do
			v=$(echo "$m" | sed -n "s/.*\"$k\": *\([0-9]*\).*/\1/p")
			printf ' %s=%s' "$k" "${v:--1}" >>/tmp/blkres
		done
	fi
}

# One warm-up run of each contender (first pattern, one second), not reported.
read -r p0 m0 b0 q0 <"$d/patterns"
for c in $(cat "$d/contenders"); do
	run_one "$c" "$m0" "$b0" "$q0" 1
	grep -q "pass=1" /tmp/blkres || { emit "warmup.$c.stdout" /tmp/bout; emit "warmup.$c.stderr" /tmp/berr; }
	attr "$c.warmup" "$(cat /tmp/blkres)"
done
while read -r pname mode bs qd; do
	say "$pname"
	for i in $(seq "$runs"); do
		for c in $(cat "$d/contenders"); do
			rm -f /tmp/bsmaps
			run_one "$c" "$mode" "$bs" "$qd" "$secs"
			attr "$c.$pname.run$i" "$(cat /tmp/blkres)"
			grep -q "pass=1" /tmp/blkres || { emit "stdout.$c.$pname.$i" /tmp/bout; emit "stderr.$c.$pname.$i" /tmp/berr; }
			# A VMM's whole smaps once, to show what the RSS figure counts.
			[ "$i" = 1 ] && [ "$pname" = "$p0" ] && [ -s /tmp/bsmaps ] && emit "smaps.$c" /tmp/bsmaps
		done
	done
done <"$d/patterns"
rm -f $img
umount $mnt
if [ "$fs" = pmem ]; then
	mount -o dax /dev/pmem1 /mnt/pmem 2>/dev/null
fi
exit 0
