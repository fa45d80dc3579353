"""Coverage scan cost: latency of GET /memory (a fresh measurement of every
slot, the report rendered as JSON) on a running idle guest of 1, 8 and 32 GiB,
with hugevmm measuring by PAGEMAP_SCAN and by smaps (HUGEVMM_MEASURE=smaps).

RAM is THP. A guest that fits in half of the host's available memory is
prefaulted, so the scan walks populated huge pages; a larger one runs lazy
(mostly absent) and the case says so."""
import json
import os
import shutil
import subprocess
import tempfile
import time

from common import (GIB, MIB, Settings, THP, UnixHTTPConnection, hugevmm_boot_config, mem_available_mib,
                    metric, wait_for_line, write_config)

METHODS = {"PAGEMAP_SCAN": {}, "smaps": {"HUGEVMM_MEASURE": "smaps"}}


def get_memory_ms(sock, n):
    conn = UnixHTTPConnection(sock)
    times, present = [], 0
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            conn.request("GET", "/memory")
            resp = conn.getresponse()
            body = resp.read()
            times.append((time.perf_counter() - t0) * 1000)
            if resp.status != 200:
                raise RuntimeError(f"GET /memory: {resp.status} {body[:200]!r}")
            rep = json.loads(body)
            present = sum(r["host"]["bytes_4k"] + r["host"]["bytes_2m"] + r["host"]["bytes_1g"]
                          for r in rep["regions"])
    finally:
        conn.close()
    return times, present


def one(a, gib, prefault, env, n):
    d = tempfile.mkdtemp(prefix="hugevmm-bench-scan-")
    sock = os.path.join(d, "api.sock")
    reg = {"id": "ram0", "size_mib": gib * 1024, "backing": "thp", "prefault": prefault,
           "policy": "prefer"}
    path = write_config(hugevmm_boot_config(a.guest, "test=idle", reg))
    errf = open(os.path.join(d, "stderr"), "w+")
    p = subprocess.Popen([a.hugevmm, "-q", "--api-sock", sock, "--config-file", path],
                         stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL,
                         env=dict(os.environ, **env))
    try:
        try:
            wait_for_line(p, "idle", 300)
        except RuntimeError as e:
            errf.seek(0)
            raise RuntimeError(f"{gib} GiB guest: {e}; stderr: {errf.read()[-400:]}") from None
        return get_memory_ms(sock, n)
    finally:
        errf.close()
        p.terminate()
        p.wait(timeout=60)
        os.unlink(path)
        shutil.rmtree(d)


def run(a):
    sizes = a.scan_gib
    n = 5 if a.quick else 20
    budget = mem_available_mib() // 2
    out = []
    with Settings() as s:
        s.set(f"{THP}/enabled", "madvise")
        for gib in sizes:
            prefault = gib * 1024 <= budget
            res, present = {}, 0
            for method, env in METHODS.items():
                res[method], present = one(a, gib, prefault, env, n)
            case = f"{gib} GiB " + ("prefaulted" if prefault else f"lazy, {present / GIB:.2f} GiB present")
            out.append(metric("scan", "GET /memory latency", "ms", "lower", case, res,
                              {"PAGEMAP_SCAN/smaps": ("PAGEMAP_SCAN", "smaps")},
                              note=f"{present // MIB} MiB present"))
    return {"params": {"sizes_gib": sizes, "requests": n, "prefault_budget_mib": budget}, "metrics": out}
