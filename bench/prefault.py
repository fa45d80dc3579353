"""Prefault: time to allocate and populate guest memory per backing, in GiB/s.

  hugevmm      `hugevmm check` (map, advise, MADV_POPULATE_WRITE on one thread
               per core), its own prefault timing
  hugevmm 1t   the same on one thread
  QEMU         QMP object-add of the same memory-backend-* with prealloc=on,
               prealloc-threads=<cores> into a QEMU with no machine, timed
               round trip
  native       a single-threaded memset of the same size on the same kind of
               memory (bench/memset)

Also returned: the huge-page coverage each contender ended with, and
hugevmm's coverage measurement cost per GiB by PAGEMAP_SCAN and by smaps (the
same runs: the N-thread run measures with PAGEMAP_SCAN, the 1-thread run with
smaps). Every run follows a warm-up (common.warm)."""
import os
import time

from common import (GIB, KINDS, MIB, Qmp, Settings, case_settings, hugevmm_check, metric, native,
                    region, warm)


def qemu_prealloc(mib, backend, threads):
    q = Qmp()
    try:
        t0 = time.perf_counter()
        q.cmd("object-add", id="ram0", size=mib * MIB, prealloc=True, **{"prealloc-threads": threads},
              **backend)
        ms = (time.perf_counter() - t0) * 1000
        return ms, q.huge_bytes() / (mib * MIB)
    finally:
        q.close()


def run(a):
    mib = a.prefault_mib
    rounds = 2 if a.quick else 5
    cores = os.cpu_count()
    gib = mib / 1024
    out, skipped = [], {}
    for case, (kind, backend) in KINDS.items():
        if case == "hugetlb 1G" and mib % 1024:
            skipped[case] = f"{mib} MiB is not a whole number of 1G pages"
            continue
        with Settings() as s:
            why = case_settings(s, case, mib)
            if why:
                skipped[case] = why
                continue
            # Warm with THP memory where the case's own kind does not need a pool:
            # what is warmed is the host's physical memory, and THP warms fastest.
            wkind = kind if case.startswith("hugetlb") else "thp"
            ms = {k: [] for k in ("hugevmm", "hugevmm 1t", "QEMU", "native")}
            cov = {k: [] for k in ("hugevmm", "QEMU")}
            scan = {"PAGEMAP_SCAN": [], "smaps": []}
            for _ in range(rounds):
                warm(a.memset, mib, wkind)
                r = hugevmm_check(a.hugevmm, region(case, mib, prefault_threads=cores, policy="off"))
                ms["hugevmm"].append(r["prefault"]["ms"])
                cov["hugevmm"].append(r["host"]["coverage"])
                scan["PAGEMAP_SCAN"].append(r["measure_ms"] / gib)
                warm(a.memset, mib, wkind)
                r = hugevmm_check(a.hugevmm, region(case, mib, prefault_threads=1, policy="off"),
                                  {"HUGEVMM_MEASURE": "smaps"})
                ms["hugevmm 1t"].append(r["prefault"]["ms"])
                scan["smaps"].append(r["measure_ms"] / gib)
                warm(a.memset, mib, wkind)
                t, c = qemu_prealloc(mib, backend, cores)
                ms["QEMU"].append(t)
                cov["QEMU"].append(c)
                warm(a.memset, mib, wkind)
                ms["native"].append(native(a.memset, mib, kind)["seconds"] * 1000)
        gibs = {k: [gib / (x / 1000) for x in v] for k, v in ms.items()}
        out.append(metric("prefault", "populate bandwidth", "GiB/s", "higher", case, gibs,
                          {"hugevmm/native": ("hugevmm", "native"), "hugevmm/QEMU": ("hugevmm", "QEMU")},
                          [("hugevmm >= 0.8x native memset", "hugevmm/native", ">=", 0.8),
                           ("hugevmm >= QEMU", "hugevmm/QEMU", ">=", 1.0)],
                          note=f"hugevmm and QEMU on {cores} threads, memset on 1"))
        out.append(metric("prefault", "huge-page coverage after populate", "fraction", "higher", case, cov))
        out.append(metric("scan", "coverage measure per GiB (populated)", "ms/GiB", "lower", case, scan,
                          {"PAGEMAP_SCAN/smaps": ("PAGEMAP_SCAN", "smaps")}))
    return {"params": {"size_mib": mib, "rounds": rounds, "threads": cores}, "metrics": out,
            "skipped": skipped}
