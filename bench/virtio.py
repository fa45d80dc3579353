"""Sections "virtio" and "irqchip": issue 9's benchmark, inside the L1 harness's guest
(tests/l1: a real TDP KVM, under QEMU's software emulator here), hugevmm against
Debian's QEMU microvm on the same L1 KVM, runs interleaved round by round (round 0
unmeasured), each timed by bench/vmtime.c from spawn to exit.

  virtio   launch -> exit of the test guest (test=exit code=0, 128 MiB lazy THP,
           1 vCPU) without and with an entropy device (hugevmm "entropy": {}; QEMU
           -device virtio-rng-device, modern virtio-mmio, acpi=off so the device is on
           the command line): wall time, the VMM's CPU time (user + sys, every thread),
           and the part after the guest's last word (the VMM's exit and KVM's teardown).
           QEMU runs its microvm default (split irqchip) and kernel-irqchip=on.
           The virtio notification -> used buffer round trip, test=virtio-rt n=10000,
           with the interrupt (irq=1) and polling (irq=0): the guest's TSC cycles,
           median of each run's median.
  irqchip  an empty 1-vCPU VM's fd close per interrupt controller (bench/irqclose.c):
           none, split (KVM_CAP_SPLIT_IRQCHIP, 24 pins), KVM_CREATE_IRQCHIP, and with
           KVM_CREATE_PIT2 (what hugevmm creates).

Times are L1's and dominated by emulation: the ratios between contenders are the result."""
import os
import re
import statistics
import sys

from common import ROOT, metric

sys.path.insert(0, os.path.join(ROOT, "tests", "l1"))
import build as l1build  # noqa: E402
import cases as l1cases  # noqa: E402
import run as l1run  # noqa: E402

KERNEL = "6.12"
H, Q, QK = "hugevmm", "QEMU microvm", "QEMU kernel-irqchip=on"
RATIOS = {"hugevmm / QEMU": (H, Q), "hugevmm / QEMU kernel-irqchip=on": (H, QK)}


def parse(attrs):
    """{contender: [{key: int}]} of the measured rounds (round 0 dropped)."""
    out = {}
    for k, v in attrs.items():
        m = re.fullmatch(r"(.+)\.run(\d+)", k)
        if m and m.group(2) != "0":
            out.setdefault(m.group(1), []).append(
                {kk: int(vv) for kk, vv in (x.split("=") for x in v.split())})
    return out


def check(case, runs, expect_rc):
    bad = [f"{c} rc={r.get('rc')} pass={r.get('pass')}" for c, rs in runs.items() for r in rs
           if r.get("pass") != 1 or r.get("rc") != expect_rc(c) or "wall_us" not in r]
    if bad:
        raise RuntimeError(f"{case}: runs failed: {', '.join(bad[:6])}")


def exit_rc(name):
    return 0 if name.startswith("hugevmm") else 1  # QEMU's isa-debug-exit: 2*0+1


def run(a):
    for t in l1build.BENCH_TOOLS:
        if not os.path.exists(os.path.join(a.bindir, t)):
            raise RuntimeError(f"{a.bindir}/{t} is missing; `make build/bench/{t}` builds it")
    l1build.BENCH_TOOLS_DIR = os.path.abspath(a.bindir)
    runs = 3 if a.quick else 9
    names = [c[0] for c in l1cases.virtio_bench_cases()]
    res = l1run.run_all([KERNEL], only=",".join(names), timeout=3600, bench_runs=runs,
                        hugevmm=a.hugevmm)[KERNEL]
    if not res["done"]:
        raise RuntimeError(f"L1 did not finish (qemu {res['rc']}); log {res['log']}")
    cs = res["cases"]
    for n in names:
        if n not in cs or cs[n]["attrs"].get("skipped"):
            raise RuntimeError(f"{n}: not run ({cs.get(n, {}).get('attrs')}); log {res['log']}")
    ex, rt = parse(cs["virtio-exit"]["attrs"]), parse(cs["virtio-rt"]["attrs"])
    check("virtio-exit", ex, exit_rc)
    check("virtio-rt", rt, exit_rc)

    out = []
    for case, sfx in (("no device", ""), ("entropy", "-rng")):
        c = {H: ex[f"hugevmm{sfx}"], Q: ex[f"qemu{sfx}"], QK: ex[f"qemu{sfx}-kirq"]}
        out.append(metric("virtio", "L1: spawn to first guest line", "ms", "lower", case,
                          {k: [r["first_us"] / 1000 for r in v] for k, v in c.items()}, RATIOS))
        out.append(metric("virtio", "L1: spawn to exit", "ms", "lower", case,
                          {k: [r["wall_us"] / 1000 for r in v] for k, v in c.items()}, RATIOS,
                          [("hugevmm <= 0.3x QEMU", "hugevmm / QEMU", "<=", 0.3)]))
        out.append(metric("virtio", "L1: VMM CPU time to exit (user+sys)", "ms", "lower", case,
                          {k: [(r["user_us"] + r["sys_us"]) / 1000 for r in v] for k, v in c.items()},
                          RATIOS, [("hugevmm <= 0.3x QEMU", "hugevmm / QEMU", "<=", 0.3)]))
        out.append(metric("virtio", "L1: guest's last line to exit", "ms", "lower", case,
                          {k: [(r["wall_us"] - r["done_us"]) / 1000 for r in v] for k, v in c.items()},
                          RATIOS, note="guest's last line to exit: from \"testguest: PASS\" on the "
                          "VMM's stdout to the VMM reaped, i.e. the exit request, the VMM's exit and "
                          "KVM's teardown of the VM"))
    for irq in (1, 0):
        c = {H: rt[f"hugevmm-irq{irq}"], Q: rt[f"qemu-irq{irq}"], QK: rt[f"qemu-kirq-irq{irq}"]}
        goals = [("hugevmm <= 1.0x QEMU", "hugevmm / QEMU", "<=", 1.0)] if irq else []
        out.append(metric("virtio", "L1: virtio notification round trip (guest TSC)", "cycles",
                          "lower", "interrupt (irq=1)" if irq else "polling (irq=0)",
                          {k: [r["cycles_median"] for r in v] for k, v in c.items()}, RATIOS, goals,
                          note="round trip: test=virtio-rt n=10000, one one-byte buffer at a time "
                          "on the entropy queue, from posting it (and the notification) to taking "
                          "it back from the used ring (after its interrupt with irq=1); per run the "
                          "median of 10000, then the median over runs"))

    text = cs["irqchip-close"]["files"].get("irqclose", "")
    modes = {}
    for line in text.splitlines():
        kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
        if "mode" in kv and "samples" in kv:
            modes[kv["mode"]] = kv
    if cs["irqchip-close"]["attrs"].get("rc") != "0" or len(modes) != 4:
        raise RuntimeError(f"irqclose failed: {text[-300:]}")
    means = ", ".join(f"{m} {float(kv['close_mean']) / 1000:.2f}" for m, kv in modes.items())
    for m, kv in modes.items():
        out.append(metric("irqchip", "L1: empty VM fd close, 1 vCPU", "ms", "lower", m,
                          {"KVM": [int(x) / 1000 for x in kv["samples"].split(",")]},
                          note=f"means (ms): {means}; modes: none (no irqchip), split "
                          "(KVM_CAP_SPLIT_IRQCHIP, 24 pins), irqchip (KVM_CREATE_IRQCHIP), "
                          "irqchip+pit (and KVM_CREATE_PIT2, what hugevmm creates)"))
    return {"params": {"kernel": res["package"], "runs": runs, "rt_runs": 5, "guest_mib": 128,
                       "irqclose_rounds": 20, "log": os.path.relpath(res["log"], ROOT)},
            "metrics": out}
