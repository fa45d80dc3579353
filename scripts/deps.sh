#!/usr/bin/env bash
# Install the Debian packages hugevmm needs, idempotently.
#   scripts/deps.sh build   - compilers and -dev libraries for `make`
#   scripts/deps.sh test    - plus what `make test` runs (cmocka, pytest, curl, QEMU, and
#                             what the L1 harness puts in its image: kmod, busybox, ndctl...)
#   scripts/deps.sh bench   - plus what `make bench` runs
# As root it installs what is missing; otherwise it prints the apt-get line and fails.
set -euo pipefail

build=(gcc make pkg-config liburing-dev libdaxctl-dev libndctl-dev libcjson-dev libhttp-parser-dev libseccomp-dev)
test=(libcmocka-dev python3 python3-pytest python3-jsonschema curl qemu-system-x86
	kmod busybox-static cpio xz-utils zstd lz4 ndctl daxctl e2fsprogs acpica-tools
	iputils-ping iproute2 iperf3 ethtool socat)
bench=(python3-matplotlib fio)

want=("${build[@]}")
case "${1:-build}" in
build) ;;
test) want+=("${test[@]}") ;;
bench) want+=("${test[@]}" "${bench[@]}") ;;
*) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
	s=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$s" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
	echo "hugevmm: missing Debian packages; as root run:" >&2
	echo "  apt-get update && $cmd" >&2
	exit 1
fi
echo "hugevmm: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends ${missing[*]} >/dev/null
