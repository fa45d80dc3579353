"""Section "l1": a Linux L2 launched inside the L1 harness's guest (tests/l1), where
KVM is a real TDP KVM (kvm-amd with nested paging, under QEMU's software
emulator on this host). Launch -> the L2's first userspace line ("L2: userspace
up", as the VMM's output delivers it), and the VMM's RSS at that moment outside
the guest RAM mapping; the same Debian kernel and busybox initramfs each time.

    hugevmm on thp, hugetlb 2M and anon 4K      (its own layouts, 2M-aligned)
    Debian's QEMU, -accel kvm -M microvm        (the same memory kinds)

Times are L1's (/proc/uptime, 10 ms steps) and are dominated by emulation: the
ratios between contenders are the result, not the absolute seconds. One L1
kernel (6.12, the newer); RUNS launches each, interleaved by case."""
import os
import re
import statistics
import sys

from common import ROOT, metric

sys.path.insert(0, os.path.join(ROOT, "tests", "l1"))
import run as l1run  # noqa: E402

KERNEL = "6.12"
CASES = ("thp", "hugetlb-2m", "anon-4k")


def parse_runs(attrs):
    runs = []
    for k, v in sorted(attrs.items()):
        if re.fullmatch(r"run\d+", k):
            runs.append({kk: int(vv) for kk, vv in (x.split("=") for x in v.split())})
    return runs


def run(a):
    runs = 3 if a.quick else 5
    only = ",".join([f"{w}-{c}" for w in ("hugevmm", "qemu") for c in CASES] +
                    ["qemu-thp-kirq"])  # not virtio's
    res = l1run.run_all([KERNEL], only=only, timeout=1800, bench_runs=runs,
                        hugevmm=a.hugevmm)[KERNEL]
    if not res["done"]:
        raise RuntimeError(f"L1 did not finish (qemu {res['rc']}); log {res['log']}")
    got, errors = {}, []
    for name, c in res["cases"].items():
        rs = parse_runs(c["attrs"])
        bad = [r for r in rs if r.get("rc") != 0 or not r.get("up_ms")]
        if bad or len(rs) != runs:
            errors.append(f"{name}: {len(bad)} of {len(rs)} runs failed: {c['attrs']}")
            continue
        got[name] = rs
    if errors:
        raise RuntimeError("; ".join(errors) + f"; log {res['log']}")
    out = []
    for case in CASES:
        h, q = got[f"hugevmm-{case}"], got[f"qemu-{case}"]
        series = {"hugevmm": [r["up_ms"] for r in h], "QEMU microvm": [r["up_ms"] for r in q]}
        ratios = {"hugevmm / QEMU": ("hugevmm", "QEMU microvm")}
        if case == "thp":
            # QEMU's split irqchip (its default) against its in-kernel one, same VMM.
            series["QEMU microvm kernel-irqchip=on"] = [r["up_ms"] for r in got["qemu-thp-kirq"]]
            ratios["QEMU split / in-kernel irqchip"] = ("QEMU microvm",
                                                        "QEMU microvm kernel-irqchip=on")
        out.append(metric("l1", "launch to L2 userspace", "ms", "lower", case, series, ratios))
        out.append(metric("l1", "VMM RSS without guest RAM at L2 userspace", "MiB", "lower", case,
                          {"hugevmm": [r["rss_vmm_kb"] / 1024 for r in h],
                           "QEMU microvm": [r["rss_vmm_kb"] / 1024 for r in q]},
                          ratios))
    # hugevmm's huge layouts against its own 4K one: the probe's 2.9 s vs 5 s anchor.
    anon = statistics.median(r["up_ms"] for r in got["hugevmm-anon-4k"])
    for case in ("thp", "hugetlb-2m"):
        m = statistics.median(r["up_ms"] for r in got[f"hugevmm-{case}"])
        out.append(metric("l1", "hugevmm launch, huge vs 4K layout", "ratio", "lower", case,
                          {"hugevmm": [m / anon]}))
    return {"params": {"kernel": res["package"], "runs": runs, "guest_mib": 256,
                       "l2": "same Debian kernel bzImage + busybox initramfs, 1 vCPU",
                       "log": os.path.relpath(res["log"], ROOT)},
            "metrics": out}
