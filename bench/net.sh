#!/bin/busybox sh
# Benchmark tooling, not product code: bench/net.py's runner, in two places.
#
# In L1, bench/net.py installs it in the benchmark image as /bin/run_netbench, so the
# init's dispatch (`run_$(cat kind)`) runs it for a case of kind "netbench":
#
#   run_netbench CASE_DIR
#
# CASE_DIR holds: runs (measured rounds), secs (each run's measured time), patterns (lines
# "NAME GUEST MODE SIZE": GUEST tg, the test guest's `test=netbench mode=MODE size=SIZE`,
# or l2, the Debian L2's iperf3 both ways, MODE and SIZE unused), contenders (names, one a
# line), and per contender and guest NAME.GUEST.json (a hugevmm config) or NAME.GUEST.qemu
# (QEMU's arguments, one a line), where @ARGS@ is the test guest's command line.
#
# The network: tap nbtap0 in L1's own namespace, 169.254.100.1/24 (IPv6 off: no router
# solicitations in the counts), made here and deleted at the end; the guest is
# 169.254.100.2 with MAC 06:00:a9:fe:64:02. mode=rx: when the guest says "net up",
# bench/netblast floods the tap's host end at nice 19 (L1 has one CPU: the VMM comes
# first) until the VMM exits. mode=echo: the guest pings 169.254.100.1 (L1's kernel
# answers). l2: an iperf3 server on 169.254.100.1 for the whole case.
#
# It runs every contender once unmeasured (the first pattern), then for each pattern RUNS
# rounds of every contender (interleaved), each under bench/vmtime (spawn -> exit, the
# child's rusage), and prints for bench/net.py:
#
#   @@ATTR NAME.PATTERN.runI <the guest's netbench figures> pass=0|1 tap_rx=.. tap_tx=..
#          [blast_sent=.. blast_pps=..] [m_KEY=..] wall_us=.. user_us=.. sys_us=.. rc=..
#   @@ATTR NAME.iperf-tx.runI mbits=X pass=.. ...  (and NAME.iperf-rx.runI: an l2 pattern)
#
# tap_rx/tap_tx: the tap's packet counters over the run (L1's side: rx is what the guest
# sent); m_KEY: hugevmm's net_eth0 metrics at exit (its config's metrics_path).
#
# In the L2 (as /init of /guest/initrd-netbench.cpio: the networking L2's initramfs,
# this script as its init), PID 1: loads the virtio and virtio_net modules, gives eth0
# nb.ip= (found through ACPI alone), then runs iperf3 -c nb.peer= for nb.secs= s, L2 to
# L1 and then -R, prints "L2: iperf3 tx mbits=X" and "L2: iperf3 rx mbits=Y" (the
# receiver's figure) and powers off.
set -u
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

if [ $$ = 1 ]; then
	/bin/busybox --install -s
	mkdir -p /proc /sys /dev /tmp
	mount -t proc proc /proc
	mount -t devtmpfs dev /dev 2>/dev/null
	mount -t sysfs sys /sys
	mount -t tmpfs tmp /tmp
	while read -r m; do
		insmod "/lib/l2-modules/$m" 2>/tmp/insmod.err || echo "L2: insmod $m: $(cat /tmp/insmod.err)"
	done </lib/l2-modules/order
	ip=
	peer=
	secs=5
	for a in $(cat /proc/cmdline); do
		case "$a" in
		nb.ip=*) ip=${a#nb.ip=} ;;
		nb.peer=*) peer=${a#nb.peer=} ;;
		nb.secs=*) secs=${a#nb.secs=} ;;
		esac
	done
	i=0
	while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	busybox ip link set lo up
	busybox ip addr add "$ip" dev eth0 && busybox ip link set eth0 up
	echo "L2: eth0 mac=$(cat /sys/class/net/eth0/address 2>/dev/null) features=$(cat /sys/class/net/eth0/device/features 2>/dev/null)"
	/bin/ethtool -k eth0 2>&1 | grep -E '^(tx-checksumming|tcp-segmentation-offload):' | sed 's/^/L2: offload /'
	busybox ping -c 2 -W 2 "$peer" >/dev/null 2>&1
	for dir in tx rx; do
		[ $dir = rx ] && r=-R || r=
		/bin/iperf3 -c "$peer" -t "$secs" -f m $r >/tmp/iperf.$dir 2>&1
		mb=$(awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") print $i }' /tmp/iperf.$dir)
		echo "L2: iperf3 $dir mbits=${mb:--1}"
		[ -n "$mb" ] || sed 's/^/L2: iperf3 /' /tmp/iperf.$dir
	done
	grep '^Tcp:' /proc/net/snmp | sed 's/^/L2: snmp /'
	echo "L2: nb done"
	poweroff -f
	exit 0
fi

d=$1
runs=$(cat "$d/runs")
secs=$(cat "$d/secs")
TAP=nbtap0
HOST=169.254.100.1
GUEST=169.254.100.2
MAC=06:00:a9:fe:64:02

attr() { echo "@@ATTR $1 $2"; }
emit() { echo "@@FILE $1"; cat "$2" 2>/dev/null; echo; echo "@@ENDFILE"; }
say() { echo "@@L1 net: $*"; }
tapstat() { cat /sys/class/net/$TAP/statistics/$1 2>/dev/null || echo 0; }

# Debian's ip (busybox's has no tuntap), by path: busybox's shell prefers its own applets.
if ! /bin/ip tuntap add dev $TAP mode tap 2>/tmp/nberr; then
	attr skipped "ip tuntap add: $(cat /tmp/nberr)"
	exit 0
fi
echo 1 >/proc/sys/net/ipv6/conf/$TAP/disable_ipv6 2>/dev/null
/bin/ip addr add $HOST/24 dev $TAP
/bin/ip link set $TAP up
attr tap "$(/bin/ip -br link show $TAP) $(/bin/ip -br addr show $TAP | awk '{ print $3 }')"
/bin/iperf3 -s -B $HOST >/tmp/iperf-server.log 2>&1 &
ipid=$!

# One run of contender $1 on pattern $2 ($3 guest, $4 mode, $5 size, $6 secs): the result
# line in /tmp/nbres.
run_one() {
	c=$1
	pguest=$3
	pmode=$4
	psize=$5
	psecs=$6
	gargs="test=netbench mode=$pmode size=$psize secs=$psecs irq=1 ip=$GUEST/24 peer=$HOST wait=60"
	rm -f /tmp/vres /tmp/nbres /tmp/nbout /tmp/nbmetrics /tmp/nbblast
	rx0=$(tapstat rx_packets)
	tx0=$(tapstat tx_packets)
	if [ -f "$d/$c.$pguest.qemu" ]; then
		set --
		while IFS= read -r a; do
			set -- "$@" "$(echo "$a" | sed "s|@ARGS@|$gargs|; s|@SECS@|$psecs|")"
		done <"$d/$c.$pguest.qemu"
		vmtime /tmp/vres 300 qemu-system-x86_64 "$@" >/tmp/nbout 2>/tmp/nberr </dev/null &
	else
		sed "s|@ARGS@|$gargs|; s|@SECS@|$psecs|" "$d/$c.$pguest.json" >/tmp/nbcfg.json
		vmtime /tmp/vres 300 hugevmm -q --config-file /tmp/nbcfg.json >/tmp/nbout 2>/tmp/nberr \
			</dev/null &
	fi
	vp=$!
	bp=
	if [ "$pguest" = tg ] && [ "$pmode" = rx ]; then
		w=0 # not i: the caller's round
		while ! grep -q "net up" /tmp/nbout 2>/dev/null && kill -0 $vp 2>/dev/null && [ $w -lt 1200 ]; do
			sleep 0.05
			w=$((w + 1))
		done
		netblast -n 19 $TAP "$psize" 600 $MAC >/tmp/nbblast 2>&1 &
		bp=$!
	fi
	wait $vp
	[ -n "$bp" ] && kill -TERM $bp 2>/dev/null; [ -n "$bp" ] && wait $bp
	rx1=$(tapstat rx_packets)
	tx1=$(tapstat tx_packets)
	grep -q 'testguest: PASS\|L2: nb done' /tmp/nbout && pass=1 || pass=0
	if [ "$pguest" = tg ]; then
		# The guest's figures, its ms= as io_ms=.
		grep -m 1 '^netbench mode=' /tmp/nbout | tr -d '\r' |
			awk '{ for (i = 3; i <= NF; i++) if ($i ~ /=/) printf " %s%s", ($i ~ /^ms=/ ? "io_" : ""), $i }' >/tmp/nbres
	else
		for dir in tx rx; do
			v=$(sed -n "s/^L2: iperf3 $dir mbits=\([0-9.-]*\).*/\1/p" /tmp/nbout | head -n 1)
			printf ' %s_mbits=%s' $dir "${v:--1}" >>/tmp/nbres
		done
	fi
	printf ' pass=%s tap_rx=%s tap_tx=%s' $pass $((rx1 - rx0)) $((tx1 - tx0)) >>/tmp/nbres
	if [ -s /tmp/nbblast ]; then
		awk '/^netblast/ { for (i = 2; i <= NF; i++) if ($i ~ /^(sent|pps|errors)=/) printf " blast_%s", $i }' \
			/tmp/nbblast >>/tmp/nbres
	fi
	# hugevmm's net_eth0 metrics at exit (its config's metrics_path).
	if [ -s /tmp/nbmetrics ]; then
		m=$(tail -n 1 /tmp/nbmetrics | grep -o '"net_eth0": *{[^}]*}')
		for k in rx_packets_count tx_packets_count no_rx_avail_buffer no_tx_avail_buffer \
			tap_write_fails tx_malformed_frames rx_dropped_too_big; do
			v=$(echo "$m" | sed -n "s/.*\"$k\": *\([0-9]*\).*/\1/p")
			printf ' m_%s=%s' "$k" "${v:--1}" >>/tmp/nbres
		done
	fi
	printf ' %s' "$(cat /tmp/vres 2>/dev/null)" >>/tmp/nbres
}

# One unmeasured run of each contender on the first pattern (one second).
read -r p0 g0 m0 s0 <"$d/patterns"
for c in $(cat "$d/contenders"); do
	run_one "$c" "$p0" "$g0" "$m0" "$s0" 1
	attr "$c.warmup" "$(cat /tmp/nbres)"
	grep -q "pass=1" /tmp/nbres || { emit "warmup.$c.stdout" /tmp/nbout; emit "warmup.$c.stderr" /tmp/nberr; }
done
while read -r pname pguest pmode psize; do
	say "$pname"
	for i in $(seq "$runs"); do
		for c in $(cat "$d/contenders"); do
			run_one "$c" "$pname" "$pguest" "$pmode" "$psize" "$secs" </dev/null
			if [ "$pguest" = l2 ]; then
				for dir in tx rx; do
					attr "$c.iperf-$dir.run$i" "$(sed "s/ ${dir}_mbits=/ mbits=/" /tmp/nbres)"
				done
			else
				attr "$c.$pname.run$i" "$(cat /tmp/nbres)"
			fi
			grep -q "pass=1" /tmp/nbres || { emit "stdout.$c.$pname.$i" /tmp/nbout; emit "stderr.$c.$pname.$i" /tmp/nberr
				[ -f /tmp/nbblast ] && emit "netblast.$c.$pname.$i" /tmp/nbblast; }
			# One L2 console of each contender, to show what its network looked like.
			[ "$i" = 1 ] && [ "$pguest" = l2 ] && emit "l2.$c" /tmp/nbout
		done
	done
done <"$d/patterns"
kill $ipid 2>/dev/null
wait $ipid 2>/dev/null
emit iperf-server.log /tmp/iperf-server.log
/bin/ip link del $TAP
exit 0
