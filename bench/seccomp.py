"""Section "seccomp": issue 15's benchmark, the cost of confinement. hugevmm installs a
seccomp filter on every thread by default (vmm/seccomp.h); `--no-seccomp` runs without
them. Both run inside the L1 harness's guest (tests/l1: a real TDP KVM, under QEMU's
software emulator here) on virtio's entropy-device cases (bench/virtio.py), interleaved
round by round (round 0 unmeasured), each timed by bench/vmtime.c from spawn to exit:

  launch -> exit of the test guest (test=exit code=0, 128 MiB lazy THP, 1 vCPU, "entropy":
  {}): wall time and the VMM's CPU time (user + sys, every thread). Goal: filters on cost
  <= 1 ms.
  the virtio notification -> used buffer round trip, test=virtio-rt n=10000, with the
  interrupt (irq=1) and polling (irq=0): the guest's TSC cycles, each run's median, then
  the median over runs. Goal: filters on <= 1.02x off.

Besides each contender's own figures, each round's pair (its two runs, one right after the
other) gives a difference (on - off) and a ratio (on / off); their median over the rounds,
and min-max, are the cost and its noise, and the goals are checked on those medians.

For trying it out, HUGEVMM_BENCH_SECCOMP_RUNS sets the measured rounds (9; --quick 3).
Times are L1's and dominated by emulation: read the ratios, and the differences against
their spread."""
import math
import os
import sys

from common import ROOT, metric
from virtio import check, parse

sys.path.insert(0, os.path.join(ROOT, "tests", "l1"))
import build as l1build  # noqa: E402
import cases as l1cases  # noqa: E402
import run as l1run  # noqa: E402

KERNEL = "6.12"
ON, OFF = "hugevmm", "hugevmm --no-seccomp"
RATIO = {"on / off": (ON, OFF)}
DIFF, QUOT = "on - off", "on / off"


def median_interval(xs, conf=0.9):
    """(low, high, coverage): order statistics x(k) and x(n+1-k) that hold the true median
    with probability >= @conf (the sign test's interval; distribution-free), or min-max with
    its own coverage when the rounds are too few for @conf."""
    xs, n = sorted(xs), len(xs)
    cover = lambda k: 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n  # noqa: E731
    k = 1
    while k + 1 <= n // 2 and cover(k + 1) >= conf:
        k += 1
    return xs[k - 1], xs[n - k], cover(k)


def spread_note(case, xs, unit, fmt):
    lo, hi, c = median_interval(xs)
    slower = sum(x > (1 if unit == "x" else 0) for x in xs)
    return (f"{case}: the median's {c:.0%} interval [{fmt(lo)}, {fmt(hi)}] {unit} (sign test); "
            f"filters on slower in {slower} of {len(xs)} rounds")


def paired(on, off, f):
    """Per round: (on - off, on / off) of f(run), the rounds' runs in order."""
    if len(on) != len(off):
        raise RuntimeError(f"rounds differ: {len(on)} with filters, {len(off)} without")
    d = [f(a) - f(b) for a, b in zip(on, off)]
    q = [f(a) / f(b) for a, b in zip(on, off)]
    return d, q


def run(a):
    for t in l1build.BENCH_TOOLS:
        if not os.path.exists(os.path.join(a.bindir, t)):
            raise RuntimeError(f"{a.bindir}/{t} is missing; `make build/bench/{t}` builds it")
    l1build.BENCH_TOOLS_DIR = os.path.abspath(a.bindir)
    runs = int(os.environ.get("HUGEVMM_BENCH_SECCOMP_RUNS", "3" if a.quick else "9"))
    names = [c[0] for c in l1cases.seccomp_bench_cases()]
    res = l1run.run_all([KERNEL], only=",".join(names), timeout=3600, bench_runs=runs,
                        hugevmm=a.hugevmm)[KERNEL]
    if not res["done"]:
        raise RuntimeError(f"L1 did not finish (qemu {res['rc']}); log {res['log']}")
    cs = res["cases"]
    for n in names:
        if n not in cs or cs[n]["attrs"].get("skipped"):
            raise RuntimeError(f"{n}: not run ({cs.get(n, {}).get('attrs')}); log {res['log']}")
    ex, rt = parse(cs["seccomp-exit"]["attrs"]), parse(cs["seccomp-rt"]["attrs"])
    check("seccomp-exit", ex, lambda c: 0)
    check("seccomp-rt", rt, lambda c: 0)
    kills = {n: cs[n]["attrs"].get("audit_1326") for n in names}
    if any(k not in ("0", None) for k in kills.values()):
        raise RuntimeError(f"seccomp kills in the kernel's audit log: {kills}")

    wall = lambda r: r["wall_us"]  # noqa: E731
    cpu = lambda r: r["user_us"] + r["sys_us"]  # noqa: E731
    cyc = lambda r: r["cycles_median"]  # noqa: E731
    rows = [("L1: spawn to exit", "spawn to exit", ex["on"], ex["off"], wall),
            ("L1: VMM CPU time to exit (user+sys)", "VMM CPU time", ex["on"], ex["off"], cpu)]
    out, diffs, quots = [], [], []
    for name, case, on, off, f in rows:
        out.append(metric("seccomp", name, "ms", "lower", "entropy",
                          {ON: [f(r) / 1000 for r in on], OFF: [f(r) / 1000 for r in off]}, RATIO))
        d, q = paired(on, off, f)
        diffs.append(metric("seccomp", "L1: filters' cost, on - off in each round", "µs", "lower",
                            case, {DIFF: d}, goals=[("on - off <= 1 ms", DIFF, "<=", 1000)],
                            note=spread_note(case, d, "µs", lambda x: f"{x:.0f}")))
        quots.append(metric("seccomp", "L1: filters' cost, on / off in each round", "x", "lower",
                            case, {QUOT: q}, note=spread_note(case, q, "x", lambda x: f"{x:.3f}")))
    rt_note = ("round trip: test=virtio-rt n=10000, one one-byte buffer at a time on the "
               "entropy queue, from posting it (and the notification) to taking it back from "
               "the used ring (after its interrupt with irq=1); per run the median of 10000, "
               "then the median over runs")
    for irq in (1, 0):
        case = "round trip, interrupt (irq=1)" if irq else "round trip, polling (irq=0)"
        on, off = rt[f"on-irq{irq}"], rt[f"off-irq{irq}"]
        out.append(metric("seccomp", "L1: virtio notification round trip (guest TSC)", "cycles",
                          "lower", "interrupt (irq=1)" if irq else "polling (irq=0)",
                          {ON: [cyc(r) for r in on], OFF: [cyc(r) for r in off]}, RATIO,
                          note=rt_note))
        d, q = paired(on, off, cyc)
        diffs.append(metric("seccomp", "L1: filters' cost, on - off in each round", "cycles",
                            "lower", case, {DIFF: d},
                            note=spread_note(case, d, "cycles", lambda x: f"{x:.0f}")))
        quots.append(metric("seccomp", "L1: filters' cost, on / off in each round", "x", "lower",
                            case, {QUOT: q}, goals=[("on / off <= 1.02", QUOT, "<=", 1.02)],
                            note=spread_note(case, q, "x", lambda x: f"{x:.3f}")))
    out[0]["note"] = ("on - off, on / off: per round, the run with filters minus (over) the "
                      "run without, the two run one after the other; the median over rounds "
                      "[min-max]; the goals are checked on the median, and the median's interval "
                      "says whether a goal holds within the noise")
    return {"params": {"kernel": res["package"], "runs": runs, "guest_mib": 128,
                       "rt_n": 10000, "audit_1326": sum(int(k or 0) for k in kills.values()),
                       "log": os.path.relpath(res["log"], ROOT)},
            "metrics": out + diffs + quots}
