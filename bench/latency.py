"""Guest memory latency: the test guest's dependent random reads
(test=randread) over the same buffer size per backing, under hugevmm and under
QEMU microvm with the same backing, beside a native process running the
identical loop (tests/guest/chase.h) on the identical kind of memory
(bench/randread). TSC cycles per read; ratios guest/native and hugevmm/QEMU."""
import os
import re

from common import (KINDS, Settings, case_settings, hugevmm_boot_config, metric, native, qemu_cmd,
                    region, run_guest, warm, write_config)

CASES = ("anon", "thp", "hugetlb 2M")
SLACK_MIB = 64  # guest RAM beyond the buffer: the guest image, its tables, alignment


def cycles(text):
    m = re.search(r"cycles_per_read=([0-9.]+)", text)
    if not m:
        raise RuntimeError(f"no cycles_per_read in: {text[-300:]}")
    return float(m.group(1))


def run(a):
    mib, iters = a.randread_mib, a.randread_iters
    rounds = 1 if a.quick else 3
    ram = mib + SLACK_MIB
    args = f"test=randread size_mib={mib} iters={iters}"
    out, skipped = [], {}
    for case in CASES:
        kind, backend = KINDS[case]
        with Settings() as s:
            why = case_settings(s, case, ram)
            if why:
                skipped[case] = why
                continue
            wkind = kind if case.startswith("hugetlb") else "thp"
            path = write_config(hugevmm_boot_config(a.guest, args, region(case, ram)))
            res = {"hugevmm": [], "QEMU": [], "native": []}
            try:
                for _ in range(rounds):
                    warm(a.memset, ram, wkind)
                    res["hugevmm"].append(cycles(run_guest([a.hugevmm, "-q", "--config-file", path])))
                    warm(a.memset, ram, wkind)
                    res["QEMU"].append(cycles(run_guest(qemu_cmd(a.guest, args, ram, backend))))
                    warm(a.memset, ram, wkind)
                    res["native"].append(native(a.randread, mib, iters, kind)["cycles_per_read"])
            finally:
                os.unlink(path)
        out.append(metric("latency", f"randread over {mib} MiB", "cycles/read", "lower", case, res,
                          {"hugevmm/native": ("hugevmm", "native"), "QEMU/native": ("QEMU", "native"),
                           "hugevmm/QEMU": ("hugevmm", "QEMU")}))
    return {"params": {"size_mib": mib, "iters": iters, "rounds": rounds, "guest_ram_mib": ram},
            "metrics": out, "skipped": skipped}
