#!/usr/bin/env bash
# Run the test tiers against one build directory, quietly: one line per suite,
# the full log of any suite that fails, and every skip with its reason.
#   scripts/run-tests.sh BUILD_DIR [unit|int|l1]
set -uo pipefail
build=${1:?build dir}
only=${2:-all}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
logs="$build/test-logs"
mkdir -p "$logs"
export HUGEVMM_BIN="$root/$build/hugevmm"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
flavour=$([ "$build" = build-san ] && echo " (ASan/UBSan)" || true)
failed=0

suite() { # name log command...
	local name=$1 log=$2
	shift 2
	if "$@" >"$log" 2>&1; then
		printf '%-28s ok\n' "$name"
		grep -h '^skip:' "$log" | sed 's/^/    /'
	else
		printf '%-28s FAILED (log: %s)\n' "$name" "$log"
		sed 's/^/    /' "$log"
		failed=1
	fi
}

if [ "$only" = all ] || [ "$only" = unit ]; then
	for t in "$build"/tests/test_*; do
		suite "unit/$(basename "$t")$flavour" "$logs/$(basename "$t").log" "$t"
	done
	for f in "$build"/tests/fuzz_*; do
		n=$(basename "$f")
		suite "fuzz/${n#fuzz_}$flavour" "$logs/$n.log" "$f" 100000
	done
fi
# A pytest tier: one line with its summary, its skips with their reasons; all of it on failure.
pytest_tier() { # name dir
	local log="$logs/$1.log"
	if /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider "$2" >"$log" 2>&1; then
		printf '%-28s %s\n' "$1$flavour" "$(tail -n 1 "$log" | tr -d '=')"
		grep '^SKIPPED' "$log" | sed 's/^/    /'
	else
		printf '%-28s FAILED (log: %s)\n' "$1$flavour" "$log"
		sed 's/^/    /' "$log"
		failed=1
	fi
}

if [ "$only" = all ] || [ "$only" = int ]; then
	pytest_tier integration tests/integration
fi
# The real-TDP tier: hugevmm inside two emulated L1 kernels (tests/l1).
if [ "$only" = all ] || [ "$only" = l1 ]; then
	pytest_tier l1 tests/l1
fi
exit $failed
