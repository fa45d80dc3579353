#!/bin/busybox sh
# Benchmark tooling, not product code: bench/vsock.py's runner, in three places.
#
# In L1, bench/vsock.py installs it in the benchmark image as /bin/run_vsockbench, so the
# init's dispatch (`run_$(cat kind)`) runs it for a case of kind "vsockbench":
#
#   run_vsockbench CASE_DIR
#
# CASE_DIR holds: runs (measured rounds), contenders (names, one a line), per contender
# NAME.json (a hugevmm config: its vsock's uds_path is /tmp/vb.sock) or NAME.qemu (QEMU's
# arguments, one a line: its vhost-vsock-device), mib (MiB each transfer moves), xfers
# (transfers each way per boot), conns (connections of the latency run).
#
# First it loads vhost_vsock and what it needs (/lib/vsock-modules, order) for QEMU's
# device; without /dev/vhost-vsock the QEMU contender is left out (attr qemu_skipped, the
# reason). L1 writes MIB MiB from /dev/urandom to /tmp/vblob. Each run boots the Debian
# L2 (this script as its init, below) once, and when it says "L2: ready", XFERS times:
#
#   h2g    L1 -> L2: the blob to port 52; the L2's socat hands it to head -c BYTES into
#          /tmp/blob, then wc -c, whose count is the answer; then the L2's md5sum of its
#          copy is checked against L1's (unmeasured)
#   g2h    L2 -> L1: that copy to CID 2 port 54; L1's socat hands it to head -c into
#          /tmp/vbback, then wc -c; then L1's md5sum of it checked
#
# and then
#
#   conn   CONNS connections L1 -> L2 (port 53, bench/vsockconn: each alone, connect +
#          handshake + close; the L2's vsockconn serve accepts and closes)
#
# socat at both ends of every transfer (-b 65536). hugevmm's side in L1 is Firecracker's
# hybrid vsock: a host connection is a Unix socket to /tmp/vb.sock that writes
# "CONNECT <port>\n" and reads "OK <port>\n" first; the L2's connection to CID 2 port P
# reaches L1's listener on the Unix socket /tmp/vb.sock_P. QEMU's is AF_VSOCK in L1
# through vhost_vsock: VSOCK-CONNECT:3:PORT, VSOCK-LISTEN:PORT. Each transfer is timed
# by its sender (/proc/timer_list's clock, no fork), from its first data byte -- after
# the connect and, for hugevmm, after the "OK" -- until the receiver's answer, which it
# gives once all MIB MiB are in its tmpfs: every byte delivered to the receiving side.
# (The receiver counts the bytes, head -c, rather than waiting for the sender's half
# close: Debian's socat 1.7.4 keeps its EXEC child's pipe ends open, so a child cannot
# half close, and kills the child once both sides ended.) The L2 arms its listener on
# request (port 50) before L1 connects.
#
# The contenders run interleaved round by round after one unmeasured round (with an
# eighth of the blob and a tenth of the connections), and it prints for bench/vsock.py:
#
#   @@ATTR NAME.h2g.runI ns=.. bytes=.. ok=0|1 md5_ok=0|1  (I = (round-1)*XFERS + transfer)
#   @@ATTR NAME.g2h.runI ns=.. bytes=.. ok=0|1 md5_ok=0|1
#   @@ATTR NAME.conn.runR <vsockconn's figures> rc=..
#   @@ATTR NAME.boot.runR boot_ms=.. pass=0|1 [m_KEY=..: hugevmm's /metrics vsock group
#          at the end] rc=..
#
# In the L2 (as /init of /guest/initrd-vsockbench.cpio: the L2's initramfs with the
# virtio-vsock transport, socat and vsockconn), PID 1 loads the modules, waits for the
# transport, starts vsockconn serve 53 and the request listener on port 50 (socat fork,
# each request `/init --ctl`), says "L2: ready" and sleeps. Requests, one line each:
#   arm.PORT.BYTES  a one-connection listener on PORT taking BYTES bytes into /tmp/blob,
#                   answering their count; "armed" once it listens
#   md5             the md5sum of /tmp/blob
#   g2h.PORT        send /tmp/blob to CID 2 port PORT; answer the sender's figures
#
# Both places: `--send PORT|- FILE OUT` is the sender of a transfer and `--call PORT|-
# LINE OUT` one request (socat EXEC: stdin and stdout the connection): the CONNECT line
# first when PORT is given (hugevmm's host side), then FILE's bytes or LINE; the answer's
# first word, and the time, go to OUT.
set -u
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

# The monotonic clock in ns, without a fork: /proc/timer_list's "now at N nsecs".
now() {
	if [ -r /proc/timer_list ]; then
		{ read -r _; read -r _; read -r _ _ NOW _; } </proc/timer_list
	else
		read -r NOW _ </proc/uptime
		NOW=${NOW%.*}${NOW#*.}0000000
	fi
}

# hugevmm's host side: "CONNECT PORT", then the answer must be "OK <n>".
handshake() { # port out
	[ "$1" = - ] && return 0
	echo "CONNECT $1"
	read -r ok _ || ok=EOF
	[ "$ok" = OK ] && return 0
	echo "handshake=${ok:-EOF}" >"$2"
	return 1
}

if [ "${1:-}" = --send ]; then
	handshake "$2" "$4" || exit 1
	now
	t0=$NOW
	cat "$3"
	read -r reply _ || reply=
	now
	echo "ns=$((NOW - t0)) reply=${reply:--}" >"$4.t" && mv "$4.t" "$4"
	exit 0
fi
if [ "${1:-}" = --call ]; then
	handshake "$2" "$4" || exit 1
	echo "$3"
	read -r reply || reply=
	echo "${reply:--}" >"$4"
	exit 0
fi

# A socat log ($1) says it listens, within 10 s.
listening() {
	j=0
	while ! grep -q 'listening on' "$1" 2>/dev/null && [ $j -lt 100 ]; do
		sleep 0.1
		j=$((j + 1))
	done
	grep -q 'listening on' "$1"
}
socat_err() { # a socat log's last error, spaces as _
	grep ' E ' "$1" 2>/dev/null | tail -n 1 | sed 's/.* E //' | tr ' ' _
}

if [ "${1:-}" = --ctl ]; then # in the L2: one request from L1
	read -r cmd || exit 0
	case "$cmd" in
	arm.*.*)
		set -- $(echo "$cmd" | tr . ' ')
		rm -f /tmp/l$2 /tmp/blob
		socat -d -d -t 60 -b 65536 SYSTEM:"head -c $3 >/tmp/blob; wc -c </tmp/blob" \
			VSOCK-LISTEN:$2,reuseaddr </dev/null >/dev/null 2>/tmp/l$2 &
		listening /tmp/l$2 && echo "armed port=$2" || echo "failed $(socat_err /tmp/l$2)"
		;;
	md5) md5sum </tmp/blob | cut -d' ' -f1 ;;
	g2h.*)
		rm -f /tmp/g2h.res
		socat -t 60 -b 65536 VSOCK-CONNECT:2:${cmd#g2h.} EXEC:"/init --send - /tmp/blob /tmp/g2h.res" \
			</dev/null >/dev/null 2>/tmp/g2h.err
		rc=$?
		echo "$(cat /tmp/g2h.res 2>/dev/null || echo none=1) rc=$rc err=$(socat_err /tmp/g2h.err)"
		;;
	*) echo "unknown request" ;;
	esac
	exit 0
fi

if [ $$ = 1 ]; then
	/bin/busybox --install -s
	mkdir -p /proc /sys /dev /tmp
	mount -t proc proc /proc
	mount -t devtmpfs dev /dev 2>/dev/null
	mount -t sysfs sys /sys
	mount -t tmpfs tmp /tmp
	while read -r m; do
		case "$m" in virtio_net* | net_failover* | failover*) continue ;; esac
		insmod "/lib/l2-modules/$m" 2>/tmp/insmod.err || echo "L2: insmod $m: $(cat /tmp/insmod.err)"
	done </lib/l2-modules/order
	i=0
	while ! ls /sys/bus/virtio/drivers/vmw_vsock_virtio_transport 2>/dev/null | grep -q virtio &&
		[ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	for v in /sys/bus/virtio/devices/*; do
		[ "$(cat $v/device 2>/dev/null)" = 0x0013 ] &&
			echo "L2: vsock features=$(cat $v/features) driver=$(basename "$(readlink $v/driver)")"
	done
	dmesg | grep -i vsock | sed 's/^/L2: dmesg /'
	vsockconn serve 53 >/tmp/l53 2>&1 &
	socat -d -d -t 60 VSOCK-LISTEN:50,reuseaddr,fork,backlog=16 EXEC:"/init --ctl" 2>/tmp/l50 &
	j=0
	while ! grep -q listening /tmp/l53 && [ $j -lt 100 ]; do
		sleep 0.1
		j=$((j + 1))
	done
	listening /tmp/l50 && grep -q listening /tmp/l53 && echo "L2: ready" ||
		echo "L2: not ready: $(cat /tmp/l53) $(socat_err /tmp/l50)"
	while :; do sleep 3600; done
fi

d=$1
runs=$(cat "$d/runs")
mib=$(cat "$d/mib")
xfers=$(cat "$d/xfers")
conns=$(cat "$d/conns")
UDS=/tmp/vb.sock # hugevmm's uds_path (bench/vsock.py's config)
API=/tmp/vbapi.sock
SELF=$(realpath "$0")
CID=3
BYTES=$((mib * 1048576))

attr() { echo "@@ATTR $1 $2"; : >/tmp/progress; }
emit() { echo "@@FILE $1"; cat "$2" 2>/dev/null; echo; echo "@@ENDFILE"; : >/tmp/progress; }
beat() { echo "@@L1 vsock: $*"; : >/tmp/progress; }

wait_line() { # file regex pid seconds
	i=0
	while [ $i -lt $(($4 * 10)) ]; do
		grep -q "$2" "$1" && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
		i=$((i + 1))
		[ $((i % 300)) = 0 ] && beat "waiting for $2 ($i polls)"
	done
	return 1
}

# vhost_vsock for QEMU's vhost-vsock-device.
contenders=$(cat "$d/contenders")
why=
if [ -s /lib/vsock-modules/why ]; then
	why=$(cat /lib/vsock-modules/why)
else
	while read -r m; do
		insmod "/lib/vsock-modules/$m" 2>/tmp/vberr || why="${why}insmod $m: $(cat /tmp/vberr); "
	done </lib/vsock-modules/order
	[ -c /dev/vhost-vsock ] && why= || why="${why}no /dev/vhost-vsock"
fi
if [ -n "$why" ]; then
	attr qemu_skipped "$why"
	contenders=$(echo "$contenders" | grep -v '^qemu$')
else
	attr vhost "$(grep -E '^(vhost|vhost_vsock|vsock) ' /proc/modules | cut -d' ' -f1 | tr '\n' ' ')"
fi

dd if=/dev/urandom of=/tmp/vblob bs=1M count="$mib" 2>/dev/null
MD5=$(md5sum </tmp/vblob | cut -d' ' -f1)
attr blob "bytes=$(wc -c </tmp/vblob) md5=$MD5"
# The unmeasured round's: an eighth of the blob, a tenth of the connections.
head -c $((BYTES / 8)) /tmp/vblob >/tmp/vblob.w
MD5W=$(md5sum </tmp/vblob.w | cut -d' ' -f1)

# L1 -> the L2's port $1 (the blob), as contender kind $KIND; the answer's line in $r.
h2g() {
	rm -f /tmp/vbres
	if [ $KIND = qemu ]; then
		timeout 300 socat -t 60 -b 65536 VSOCK-CONNECT:$CID:$1 \
			EXEC:"$SELF --send - $BLOB /tmp/vbres" 2>/tmp/vbsocat
	else
		timeout 300 socat -t 60 -b 65536 UNIX-CONNECT:$UDS \
			EXEC:"$SELF --send $1 $BLOB /tmp/vbres" 2>/tmp/vbsocat
	fi
	rc=$?
	r="$(cat /tmp/vbres 2>/dev/null || echo none=1) rc=$rc err=$(socat_err /tmp/vbsocat)"
	h=$r
}

# A request to the L2 (port 50); its answer in $r.
call() {
	rm -f /tmp/vbres
	if [ $KIND = qemu ]; then
		timeout 300 socat -t 60 VSOCK-CONNECT:$CID:50 EXEC:"$SELF --call - $1 /tmp/vbres" \
			2>/tmp/vbsocat
	else
		timeout 300 socat -t 60 UNIX-CONNECT:$UDS EXEC:"$SELF --call 50 $1 /tmp/vbres" \
			2>/tmp/vbsocat
	fi
	r="$(cat /tmp/vbres 2>/dev/null || echo none=1) err=$(socat_err /tmp/vbsocat)"
}

# L1's one-connection listener for the L2's port $1: SZ bytes into /tmp/vbback, then
# their count is the answer; pid in $sink once it listens.
sink() {
	if [ $KIND = qemu ]; then
		a=VSOCK-LISTEN:$1,reuseaddr
	else
		a=UNIX-LISTEN:${UDS}_$1
		rm -f ${UDS}_$1
	fi
	rm -f /tmp/vbsink /tmp/vbback
	socat -d -d -t 60 -b 65536 SYSTEM:"head -c $SZ >/tmp/vbback; wc -c </tmp/vbback" $a \
		</dev/null >/dev/null 2>/tmp/vbsink &
	sink=$!
	listening /tmp/vbsink
}
unsink() { # the sink's end: with its connection, or now
	j=0
	while kill -0 $sink 2>/dev/null && [ $j -lt 50 ]; do
		sleep 0.1
		j=$((j + 1))
	done
	kill $sink 2>/dev/null
	wait $sink 2>/dev/null
}

word() { # key line: the value of key= in line
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1
}

# One boot of contender $1 in round $2 (0: unmeasured).
run_one() {
	c=$1
	round=$2
	rm -f $UDS ${UDS}_* $API /tmp/vbout /tmp/vberr /tmp/vbmetrics
	BLOB=/tmp/vblob
	SZ=$BYTES
	SUM=$MD5
	nc=$conns
	if [ $round = 0 ]; then
		BLOB=/tmp/vblob.w
		SZ=$((BYTES / 8))
		SUM=$MD5W
		nc=$(((conns + 9) / 10))
	fi
	now
	tb=$NOW
	if [ -f "$d/$c.qemu" ]; then
		KIND=qemu
		set --
		while IFS= read -r a; do set -- "$@" "$a"; done <"$d/$c.qemu"
		qemu-system-x86_64 "$@" >/tmp/vbout 2>/tmp/vberr </dev/null &
	else
		KIND=hugevmm
		hugevmm --api-sock $API --config-file "$d/$c.json" >/tmp/vbout 2>/tmp/vberr </dev/null &
	fi
	pid=$!
	boot="pass=0"
	if wait_line /tmp/vbout "^L2: ready" $pid 600; then
		now
		boot="boot_ms=$(((NOW - tb) / 1000000))"
		pass=1
		for x in $(seq "$xfers"); do
			n=$(((round - 1) * xfers + x))
			# L1 -> L2, into the L2's /tmp/blob; its md5sum after.
			call arm.52.$SZ
			[ "${r#armed}" != "$r" ] || attr "$c.arm.fail$round.$x" "$r"
			h2g 52
			[ "$(word reply "$r")" = $SZ ] && ok=1 || ok=0
			now
			tc=$NOW
			call md5
			[ "${r%% *}" = "$SUM" ] && md5=1 || md5=0
			now
			[ $round = 0 ] || attr "$c.h2g.run$n" "ns=$(word ns "$h") bytes=$(word reply "$h") ok=$ok md5_ok=$md5 check_ms=$(((NOW - tc) / 1000000))"
			[ $ok$md5 = 11 ] || { attr "$c.h2g.fail$round.$x" "$h md5=$r"; pass=0; }
			# L2 -> L1, that copy, into L1's /tmp/vbback; its md5sum after.
			sink 54
			call g2h.54
			unsink
			[ "$(word reply "$r")" = $SZ ] && ok=1 || ok=0
			now
			tc=$NOW
			[ "$(md5sum </tmp/vbback | cut -d' ' -f1)" = "$SUM" ] && md5=1 || md5=0
			now
			rm -f /tmp/vbback
			[ $round = 0 ] || attr "$c.g2h.run$n" "ns=$(word ns "$r") bytes=$(word reply "$r") ok=$ok md5_ok=$md5 check_ms=$(((NOW - tc) / 1000000))"
			[ $ok$md5 = 11 ] || { attr "$c.g2h.fail$round.$x" "$r md5_ok=$md5"; pass=0
				emit "sink.$c.$round.$x" /tmp/vbsink; }
		done
		if [ $KIND = qemu ]; then
			timeout 600 vsockconn vsock $CID 53 "$nc" >/tmp/vbconn 2>&1
		else
			timeout 600 vsockconn uds $UDS 53 "$nc" >/tmp/vbconn 2>&1
		fi
		rc=$?
		[ $rc = 0 ] || pass=0
		[ $round = 0 ] || attr "$c.conn.run$round" "$(sed -n 's/^vsockconn //p' /tmp/vbconn) rc=$rc"
		[ $rc = 0 ] || emit "conn.$c.$round" /tmp/vbconn
		if [ $KIND = hugevmm ]; then
			curl -s --unix-socket $API http://localhost/metrics >/tmp/vbmetrics
			m=$(grep -o '"vsock": *{[^}]*}' /tmp/vbmetrics | sed 's/^"vsock": *{//; s/}$//' |
				tr ',' '\n' | sed -n 's/^ *"\([a-z_0-9]*\)": *\([0-9]*\)$/m_\1=\2/p' | tr '\n' ' ')
			boot="$boot $m"
		fi
		boot="$boot pass=$pass"
	fi
	kill -TERM $pid 2>/dev/null
	wait $pid
	rc=$?
	now
	attr "$c.boot.run$round" "$boot rc=$rc run_ms=$(((NOW - tb) / 1000000))"
	# One L2 console of each contender, and everything of a failed boot.
	[ $round = 1 ] && emit "l2.$c" /tmp/vbout
	[ "${boot%pass=1}" = "$boot" ] && { emit "stdout.$c.$round" /tmp/vbout
		emit "stderr.$c.$round" /tmp/vberr; emit "metrics.$c.$round" /tmp/vbmetrics; }
	rm -f $UDS ${UDS}_* $API
}

for round in $(seq 0 "$runs"); do # round 0 unmeasured
	beat "round $round"
	for c in $contenders; do
		run_one "$c" "$round" </dev/null
	done
done
exit 0
