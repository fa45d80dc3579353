#!/usr/bin/env bash
# make fresh-check: prove that the README's two commands (`make run`, then `make test`)
# work on the first try on a fresh Debian 12 machine.
#
# The fresh machine is a new Debian 12 (bookworm) root built here with mmdebstrap
# (variant minbase) holding only what a user has before reading the README: git, make
# and ca-certificates. None of hugevmm's build or test packages are in it: the commands
# must install them themselves. Into it go /proc, /sys (read-write: the test tiers set
# THP modes and hugetlb pools), /dev (recursively, so /dev/kvm too when this host has
# one, and /dev/hugepages, /dev/shm) and a fresh `git clone` of this repository's
# committed HEAD (uncommitted changes are not checked). Then, as root in that root, each
# command of the README's "The two commands" block runs once, exactly as written, in
# the clone; each must exit 0, and `make run` must print `testguest: PASS`.
#
#   scripts/fresh-check.sh          (as root; needs the network to Debian's mirrors)
#
# Kept between runs under build/fresh/: the downloaded .debs (cache/, the bootstrap's
# and the ones the commands install). Made new every run: the root (build/fresh/root),
# and with it apt's lists and the L1 kernels the test tier downloads, so those download
# paths are exercised too. Logs: build/fresh/<command>.log. Mounts are undone on any exit.
# FRESH_MIRROR=URL picks another Debian mirror (default http://deb.debian.org);
# FRESH_SOURCE=REPO clones another repository (path or URL) instead of this one.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fresh=$here/build/fresh
root=$fresh/root
cache=$fresh/cache
mirror=${FRESH_MIRROR:-http://deb.debian.org}
extra=git,make,ca-certificates

say() { printf 'fresh-check: %s\n' "$*"; }
now() { date +%s; }
elapsed() { echo $(($(now) - $1)); }

[ "$(id -u)" = 0 ] || { say "needs root (mmdebstrap, chroot, bind mounts)"; exit 2; }
source=${FRESH_SOURCE:-$here}
[ -n "${FRESH_SOURCE:-}" ] || [ -z "$(git -C "$here" status --porcelain --untracked-files=no)" ] ||
	say "note: uncommitted changes in $here are not part of the check (it clones HEAD)"

# Every mount under the root, deepest first.
mounts_under() {
	awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}
unmount_all() {
	local m
	for m in $(mounts_under); do
		umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null || true
	done
}
cleanup() {
	local rc=$?
	unmount_all
	if [ -n "$(mounts_under)" ]; then
		say "could not unmount: $(mounts_under | tr '\n' ' ')"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# A new root every run. Nothing may still be mounted in the old one before it is removed.
unmount_all
if [ -n "$(mounts_under)" ]; then
	say "FAIL: still mounted under $root: $(mounts_under | tr '\n' ' ')"
	exit 1
fi
rm -rf --one-file-system "$root"
mkdir -p "$cache" "$root"

t_all=$(now)
if ! command -v mmdebstrap >/dev/null; then
	say "installing mmdebstrap (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

say "building a fresh Debian 12 root: mmdebstrap --variant=minbase --include=$extra"
say "  (only what a user has before reading the README: git, make, ca-certificates)"
t=$(now)
if ! mmdebstrap --quiet --variant=minbase --include="$extra" \
	--skip=download/empty --skip=essential/unlink \
	--setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
	--setup-hook="sync-in $cache /var/cache/apt/archives" \
	--customize-hook="sync-out /var/cache/apt/archives $cache" \
	bookworm "$root" \
	"deb $mirror/debian bookworm main" \
	"deb $mirror/debian bookworm-updates main" \
	"deb $mirror/debian-security bookworm-security main" >"$fresh/mmdebstrap.log" 2>&1; then
	cat "$fresh/mmdebstrap.log"
	say "FAIL: mmdebstrap (log: $fresh/mmdebstrap.log)"
	exit 1
fi
t_root=$(elapsed "$t")
say "root ready in ${t_root} s ($(du -sm --exclude=var/cache/apt/archives "$root" | cut -f1) MiB)"

# The machine's file systems; .debs the commands install land in the kept cache.
for d in proc sys dev; do
	mkdir -p "$root/$d"
	mount --rbind "/$d" "$root/$d"
	mount --make-rslave "$root/$d"
done
find "$root/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -delete # copies of cache/'s
mount --bind "$cache" "$root/var/cache/apt/archives"
[ -c /dev/kvm ] && say "this host has /dev/kvm: it is in the root too" ||
	say "this host has no /dev/kvm: make run must take its L1 path"

git clone -q "$source" "$root/root/hugevmm"
rev=$(git -C "$root/root/hugevmm" rev-parse --short HEAD)
say "cloned $source (HEAD $rev) into /root/hugevmm"

# The README's commands, as written: the first sh block after "## The two commands".
mapfile -t cmds < <(awk '/^## The two commands/ { s = 1 } s && /^```sh/ { b = 1; next }
	b && /^```/ { exit } b { sub(/[ \t]*#.*/, ""); if ($0 != "") print }' "$root/root/hugevmm/README.md")
if [ ${#cmds[@]} -eq 0 ]; then
	say "FAIL: no commands found under \"## The two commands\" in README.md"
	exit 1
fi

status=PASS
summary=()
for c in "${cmds[@]}"; do
	log=$fresh/$(echo "$c" | tr -c 'a-zA-Z0-9\n' '-').log
	say "running \`$c\` in the fresh root (as root; log $log)"
	t=$(now)
	set +e
	chroot "$root" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		/bin/bash -c "cd /root/hugevmm && $c" </dev/null 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	secs=$(elapsed "$t")
	why=""
	if [ "$rc" != 0 ]; then
		why="exit $rc"
	elif [ "$c" = "make run" ] && ! grep -q '^testguest: PASS' "$log"; then
		why="no 'testguest: PASS' in its output"
	fi
	if [ -n "$why" ]; then
		status=FAIL
		summary+=("$(printf '%-10s FAIL (%s) in %d s' "$c" "$why" "$secs")")
		say "\`$c\` FAILED: $why"
		grep -E '^[^ ].* FAILED' "$log" | sed 's/^/fresh-check:   failed: /' || true
		break # the README's order: a failed first command fails the check
	fi
	summary+=("$(printf '%-10s ok in %d s' "$c" "$secs")")
done

say "summary (Debian 12 minbase + $extra, HEAD $rev, /dev/kvm $([ -c /dev/kvm ] && echo yes || echo no)):"
say "  fresh root   ok in ${t_root} s"
for s in "${summary[@]}"; do say "  $s"; done
say "$status in $(elapsed "$t_all") s"
[ $status = PASS ]
