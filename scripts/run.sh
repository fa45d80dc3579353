#!/usr/bin/env bash
# `make run`: boot the bundled default VM and print its console and the coverage report.
#   scripts/run.sh [BUILD_DIR]
# With a usable /dev/kvm this is exactly `BUILD_DIR/hugevmm --config-file
# configs/default.json --report human`. Without one (a VM without nested virtualization,
# a container) the very same command runs inside L1 (tests/l1/vm.py): a Debian cloud
# kernel under QEMU's software emulator with nested SVM, whose KVM is real; its console,
# report and exit status come back here. That needs the test packages (QEMU...:
# scripts/deps.sh test) and, once, a Debian kernel package (cached in build/l1/cache).
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
args=(--config-file configs/default.json --report human)

# Usable: a character device that opens read-write (a node without a loaded module, or
# without permission, does not). Opened with O_RDWR only: -c first, so nothing is created.
if [ -c /dev/kvm ] && { exec 3<>/dev/kvm; } 2>/dev/null; then
	exec 3>&-
	exec "$build/hugevmm" "${args[@]}"
fi

echo "no usable /dev/kvm here: running the default VM inside an emulated L1 machine" \
	"with a real KVM (tests/l1); first run downloads a Debian kernel" >&2
bash scripts/deps.sh test
exec /usr/bin/python3 tests/l1/vm.py --hugevmm "$build/hugevmm" -- "${args[@]}"
