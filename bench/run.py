#!/usr/bin/env python3
"""hugevmm's benchmarks, side by side with Debian's QEMU and a native process,
in one run: `make bench` (full) or `make bench-quick` (smaller sizes, fewer
repeats, under 2 minutes).

    bench/run.py [--quick] [--only launch,prefault,latency,scan,l1,virtio,blk,net,balloon,vsock,seccomp] [--prefault-mib N] ...

Writes bench/results/<date>.json (<date>-quick.json for --quick) with the
machine it ran on, then the Markdown table (.md) and SVG chart (.svg) beside
it, and prints the table. Needs root: it sets THP modes and hugetlb pools
(restored afterwards)."""
import argparse
import datetime
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import balloon  # noqa: E402
import blk  # noqa: E402
import l1  # noqa: E402
import latency  # noqa: E402
import launch  # noqa: E402
import net  # noqa: E402
import prefault  # noqa: E402
import report  # noqa: E402
import scan  # noqa: E402
import seccomp  # noqa: E402
import virtio  # noqa: E402
import vsock  # noqa: E402
from common import ROOT, Settings, machine  # noqa: E402

REPORTING = "/sys/module/page_reporting/parameters/page_reporting_order"

SECTIONS = {"launch": launch, "prefault": prefault, "latency": latency, "scan": scan, "l1": l1,
            "virtio": virtio, "blk": blk, "net": net, "balloon": balloon,
            "vsock": vsock, "seccomp": seccomp}  # virtio: "irqchip" too
IN_L1 = ("l1", "virtio", "blk", "net", "balloon", "vsock", "seccomp")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    ap.add_argument("--only", help="comma-separated sections (default: all; --quick: all but l1, "
                    "virtio, blk, net, balloon, vsock and seccomp, whose emulated L1 takes minutes)")
    ap.add_argument("--hugevmm", default=os.path.join(ROOT, "build", "hugevmm"))
    ap.add_argument("--guest", default=os.path.join(ROOT, "build", "testguest.elf"))
    ap.add_argument("--bindir", default=os.path.join(ROOT, "build", "bench"),
                    help="memset, randread, vmtime, irqclose, netblast")
    ap.add_argument("--prefault-mib", type=int, help="prefault size (default 8192, quick 1024)")
    ap.add_argument("--randread-mib", type=int, help="randread buffer (default 1024, quick 256)")
    ap.add_argument("--randread-iters", type=int, help="dependent reads (default 10M, quick 2M)")
    ap.add_argument("--scan-gib", help="guest sizes for GET /memory (default 1,8,32; quick 1,2,4)")
    ap.add_argument("--out", help="results JSON (default bench/results/<date>[-quick].json)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (it sets THP modes and hugetlb pools, and restores them)")
    if not shutil.which("qemu-system-x86_64"):
        sys.exit("bench: qemu-system-x86_64 not found; `scripts/deps.sh bench` installs it")
    only = [s for s in (a.only or ",".join(x for x in SECTIONS if not (a.quick and x in IN_L1)))
            .split(",") if s]
    for s in only:
        if s not in SECTIONS:
            sys.exit(f"bench: --only: unknown section \"{s}\"; sections: {', '.join(SECTIONS)}")
    a.hugevmm, a.guest = os.path.abspath(a.hugevmm), os.path.abspath(a.guest)
    a.memset, a.randread = (os.path.join(os.path.abspath(a.bindir), b) for b in ("memset", "randread"))
    for p in (a.hugevmm, a.guest, a.memset, a.randread):
        if not os.path.exists(p):
            sys.exit(f"bench: {p} is missing; `make all build/bench/memset build/bench/randread` builds it "
                     "(virtio's vmtime and irqclose the same way)")
    a.prefault_mib = a.prefault_mib or (1024 if a.quick else 8192)
    a.randread_mib = a.randread_mib or (256 if a.quick else 1024)
    a.randread_iters = a.randread_iters or (2_000_000 if a.quick else 10_000_000)
    a.scan_gib = [int(x) for x in (a.scan_gib or ("1,2,4" if a.quick else "1,8,32")).split(",")]

    date = datetime.date.today().isoformat()
    cmd = "make bench-quick" if a.quick else "make bench"
    if a.only:
        cmd = f"bench/run.py{' --quick' if a.quick else ''} --only {a.only}"
    res = {"date": date, "command": cmd,
           "machine": machine(), "params": {}, "metrics": [], "skipped": {}, "seconds": {}}
    with Settings() as s:
        res["machine"]["free_page_reporting"] = pause_page_reporting(s)
        run_sections(a, only, res)
    return finish(a, res, date)


def pause_page_reporting(s):
    """Where the host is itself a VM that hands free memory back (virtio-balloon free page
    reporting), memory freed by one run is reported and the next run that touches it waits
    on the outer host: 8 GiB THP prefaults measured 0.3 s to 2.6 s at random, for every
    contender. Reporting only free blocks above the largest order pauses it for the run;
    the setting is restored afterwards."""
    if not os.path.exists(REPORTING):
        return "absent"
    old = open(REPORTING).read().strip()
    try:
        s.set(REPORTING, 11)
    except OSError as e:
        return f"active: page_reporting_order {old} could not be raised ({e.strerror})"
    return f"paused for the run (page_reporting_order {old} -> 11)"


def run_sections(a, only, res):
    for name in only:
        t0 = time.time()
        print(f"bench: {name}...", file=sys.stderr, flush=True)
        try:
            r = SECTIONS[name].run(a)
        except Exception as e:  # keep the other sections' figures; fail at the end
            res.setdefault("errors", {})[name] = f"{type(e).__name__}: {e}"
            print(f"bench: {name} failed: {e}", file=sys.stderr)
            continue
        res["params"][name] = r["params"]
        res["metrics"] += r["metrics"]
        if r.get("skipped"):
            res["skipped"][name] = r["skipped"]
        res["seconds"][name] = round(time.time() - t0, 1)


def finish(a, res, date):
    out = a.out or os.path.join(ROOT, "bench", "results", f"{date}{'-quick' if a.quick else ''}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    md, svg = report.render(out)
    with open(md) as f:
        print(f.read())
    print(f"results: {os.path.relpath(out, ROOT)}, {os.path.relpath(md, ROOT)}, {os.path.relpath(svg, ROOT)}")
    missed = [f"{m['section']} {m['case']}: {g['text']}" for m in res["metrics"] for g in m.get("goals", [])
              if not g["met"]]
    for x in missed:
        print(f"goal missed: {x}")
    for name, e in res.get("errors", {}).items():
        print(f"bench: section {name} FAILED: {e}", file=sys.stderr)
    return 1 if res.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
