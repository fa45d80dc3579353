"""Section "blk": issue 11's benchmark, inside the L1 harness's guest (tests/l1: a real TDP
KVM, under QEMU's software emulator here). The test guest's blkbench
(`test=blkbench mode=M bs=B qd=N secs=S`, prints `blkbench mode=M bs=B qd=N iops=X mbps=Y`)
on one virtio-blk drive, under

    hugevmm         "drives": Firecracker's fields, cache_type Writeback, buffered
    hugevmm direct  the same with hugevmm's "direct": true (O_DIRECT, guest RAM registered
                    with io_uring: READ_FIXED/WRITE_FIXED)
    QEMU microvm    -device virtio-blk-device, -drive ...,aio=io_uring,cache.direct=off
    QEMU direct     the same with cache.direct=on
    fio, fio direct Debian's fio in L1, ioengine=io_uring, the same file and pattern: the ceiling

guest memory 128 MiB of prefaulted THP (QEMU: -mem-prealloc), 1 vCPU, on the same image on
a tmpfs and on ext4 on L1's one piece of storage that is not its RAM (an emulated NVDIMM,
mounted without DAX; L1 has no disk). Patterns: 4K randread and randwrite at QD1 and QD32,
128K sequential read and write at QD8. Each run is timed by bench/vmtime.c (spawn -> exit,
the child's rusage); the VMM's /proc/PID/stat is also read at its first guest line and at
the blkbench line (CPU over the I/O window), and its smaps half way (RSS outside guest RAM).
Contenders run interleaved round by round, after one unmeasured run each.

The L1 side is bench/blk.sh: this module puts it into the benchmark image as
/bin/run_blkbench (the init runs `run_KIND` for a case of kind KIND), with fio and its
libraries and the two cases, and rebuilds the image's initramfs; tests/l1 is unchanged.
Times are L1's and dominated by emulation: the ratios between contenders are the result.

For trying it out, the environment narrows it: HUGEVMM_BENCH_BLK_RUNS (5; --quick 3),
_SECS (2, each run's I/O time), _FS (tmpfs,pmem), _WHO (contenders: hugevmm,
hugevmm-direct,qemu,qemu-direct,fio,fio-direct), _MIB (the image's size)."""
import json
import os
import sys

from common import ROOT, metric
from l1bench import bench_image, check_tools, l1build, parse, run_l1

FIO = "/usr/bin/fio"
GUEST_MIB = 128
H, HD, Q, QD, F, FD = ("hugevmm", "hugevmm direct", "QEMU microvm", "QEMU microvm cache.direct=on",
                       "fio", "fio direct")
CONTENDERS = {"hugevmm": H, "hugevmm-direct": HD, "qemu": Q, "qemu-direct": QD, "fio": F,
              "fio-direct": FD}
VMMS = (H, HD, Q, QD)
# name, mode, block size, queue depth, label
PATTERNS = [("randread-4k-qd1", "randread", 4096, 1, "4K randread QD1"),
            ("randread-4k-qd32", "randread", 4096, 32, "4K randread QD32"),
            ("randwrite-4k-qd1", "randwrite", 4096, 1, "4K randwrite QD1"),
            ("randwrite-4k-qd32", "randwrite", 4096, 32, "4K randwrite QD32"),
            ("read-128k-qd8", "read", 131072, 8, "128K read QD8"),
            ("write-128k-qd8", "write", 131072, 8, "128K write QD8")]
# fs, image MiB, label: L1 has 2 GiB of RAM; its NVDIMM is 1 GiB, so ext4 on it holds 768 MiB.
FILESYSTEMS = [("tmpfs", 1024, "tmpfs"), ("pmem", 768, "ext4 on pmem")]
RATIOS = {"hugevmm / QEMU": (H, Q), "hugevmm direct / QEMU direct": (HD, QD),
          "hugevmm / fio": (H, F), "hugevmm direct / fio direct": (HD, FD)}
GE_QEMU = [("hugevmm >= 1.0x QEMU", "hugevmm / QEMU", ">=", 1.0),
           ("hugevmm direct >= 1.0x QEMU direct", "hugevmm direct / QEMU direct", ">=", 1.0)]


def hugevmm_config(direct):
    return {"boot-source": {"kernel_image_path": "/guest/testguest.elf", "boot_args": "@ARGS@"},
            "machine-config": {"vcpu_count": 1},
            "memory": {"regions": [{"id": "ram0", "size_mib": GUEST_MIB, "backing": "thp",
                                    "prefault": True, "policy": "prefer"}]},
            "drives": [{"drive_id": "d0", "path_on_host": "@IMG@", "is_root_device": False,
                        "is_read_only": False, "cache_type": "Writeback", "direct": direct}],
            "metrics": {"metrics_path": "/tmp/blkmetrics"}}  # bench/blk.sh reads block_d0


def qemu_args(direct):
    """Debian's QEMU microvm on the test guest (as bench/virtio.py's: acpi=off puts the
    device on the command line, force-legacy=false makes it modern virtio-mmio), its RAM
    preallocated like hugevmm's, the drive on io_uring, its default writeback cache."""
    return ["-accel", "kvm", "-cpu", "host", "-M", "microvm,acpi=off", "-m", f"{GUEST_MIB}M",
            "-mem-prealloc", "-smp", "1", "-nodefaults", "-nographic", "-no-reboot",
            "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-global", "virtio-mmio.force-legacy=false",
            "-device", "virtio-blk-device,drive=d0",
            "-drive", "if=none,id=d0,file=@IMG@,format=raw,aio=io_uring,"
            f"cache.direct={'on' if direct else 'off'}",
            "-kernel", "/guest/testguest.elf", "-append", "@ARGS@"]


def case_files(fs, mib, runs, secs, fio, who=CONTENDERS):
    files = {"kind": "blkbench\n", "setup": "thp\n", "env": "", "fs": f"{fs}\n",
             "mib": f"{mib}\n", "runs": f"{runs}\n", "secs": f"{secs}\n",
             "patterns": "".join(f"{n} {m} {b} {q}\n" for n, m, b, q, _ in PATTERNS)}
    names = []
    for direct in (False, True):
        sfx = "-direct" if direct else ""
        files[f"hugevmm{sfx}.json"] = json.dumps(hugevmm_config(direct), indent=1) + "\n"
        files[f"qemu{sfx}.qemu"] = "".join(a + "\n" for a in qemu_args(direct))
        names += [f"hugevmm{sfx}", f"qemu{sfx}"]
        if fio:
            files[f"fio{sfx}.fio"] = f"--direct={int(direct)}\n"
            names.append(f"fio{sfx}")
    files["contenders"] = "".join(n + "\n" for n in names if n in who)
    return files


def blk_image(cases):
    """The L1 benchmark image (tests/l1/build.py --bench) that also carries bench/blk.sh as
    /bin/run_blkbench, fio with its libraries, and @cases ({dir name: {file: text}}); its
    initramfs is packed again; a context manager (l1bench.bench_image)."""
    def extra(work, root):
        if os.path.exists(FIO):
            l1build.copy_with_libs(root, FIO)

    return bench_image("blk.sh", "run_blkbench", cases, extra)


def direct_path(got):
    """What hugevmm's drive metrics at exit say of the direct runs' data path."""
    rs = [r for (who, _), v in got.items() if who == "hugevmm-direct" for r in v]
    seen = [r for r in rs if "fixed_count" in r]
    if not seen:
        return f"no metrics line at exit in {len(rs)} runs"
    share = sorted(r["fixed_count"] / r["ios"] for r in seen if r.get("ios"))
    return (f"{len(seen)} of {len(rs)} runs: requests on fixed buffers / guest I/Os "
            f"{share[0]:.2f}-{share[-1]:.2f}, fallbacks {sum(r['fixed_fallbacks'] for r in seen):.0f}, "
            f"most in flight {max(r['inflight_max'] for r in seen):.0f}")


def good(contender, r):
    rc = 1 if contender.startswith("qemu") else 0  # QEMU's isa-debug-exit: 2*0+1
    return r.get("pass") == 1 and r.get("rc") == rc and r.get("iops", 0) > 0 and r.get("ios", 0) > 0


def run(a):
    check_tools(a.bindir)
    env = os.environ.get
    runs = int(env("HUGEVMM_BENCH_BLK_RUNS", "3" if a.quick else "5"))
    secs = int(env("HUGEVMM_BENCH_BLK_SECS", "2"))
    fio = os.path.exists(FIO)
    skipped = {} if fio else {"fio": f"{FIO} is missing (Debian package fio): no ceiling measured"}
    fss = [(fs, int(env("HUGEVMM_BENCH_BLK_MIB", mib)), label) for fs, mib, label in FILESYSTEMS
           if fs in env("HUGEVMM_BENCH_BLK_FS", "tmpfs,pmem").split(",")]
    who = env("HUGEVMM_BENCH_BLK_WHO", ",".join(CONTENDERS)).split(",")
    cases = {f"{90 + i}-blk-{fs}": case_files(fs, mib, runs, secs, fio, who)
             for i, (fs, mib, _) in enumerate(fss)}
    names = [n[3:] for n in cases]
    res = run_l1(a, blk_image(cases), ",".join(names), runs)
    out, failed, fs_params = [], [], {}
    for (fs, mib, label), name in zip(fss, names):
        c = res["cases"].get(name)
        if not c or not c.get("ended"):
            raise RuntimeError(f"{name}: not run or not finished; log {res['log']}")
        if c["attrs"].get("skipped"):
            skipped[label] = c["attrs"]["skipped"]
            continue
        fs_params[label] = {"image_mib": mib, "mount": c["attrs"].get("mount"),
                            "image_write_ms": c["attrs"].get("image_ms")}
        got = parse(c["attrs"], contender=r"[a-z-]+", strict=True)
        fs_params[label]["direct_path"] = direct_path(got)
        for (who, pat), rs in got.items():
            for i, r in enumerate(rs):
                if not good(who, r):
                    failed.append(f"{label} {who} {pat} run {i + 1}: {r}")
        out += fs_metrics(label, {k: [r for r in v if good(k[0], r)] for k, v in got.items()})
    if failed:
        print("bench: blk: failed runs (left out): " + "; ".join(failed[:8]), file=sys.stderr)
    if not out:
        raise RuntimeError(f"no blk figures: {skipped} {failed[:4]}; log {res['log']}")
    return {"params": {"kernel": res["package"], "runs": runs, "secs_per_run": secs,
                       "guest": f"{GUEST_MIB} MiB prefaulted THP, 1 vCPU",
                       "filesystems": fs_params, "failed_runs": len(failed),
                       "hugevmm": json.dumps(hugevmm_config(True)["drives"][0]),
                       "qemu": " ".join(a for a in qemu_args(True) if "virtio-blk" in a or "aio=" in a),
                       "fio": "--ioengine=io_uring --time_based --norandommap --randrepeat=0 "
                              "--invalidate=0 --direct=0|1",
                       "log": os.path.relpath(res["log"], ROOT)},
            "metrics": out, "skipped": skipped}


def fs_metrics(fs, got):
    out = []

    def series(pat, fn, who=CONTENDERS):
        return {label: [fn(r) for r in got.get((k, pat), [])] for k, label in who.items()}

    vmms = {k: v for k, v in CONTENDERS.items() if v in VMMS}
    for pat, _, bs, qd, label in PATTERNS:
        case = f"{fs}, {label}"
        goals = list(GE_QEMU)
        if pat == "randread-4k-qd32":
            goals.append(("hugevmm direct >= 0.7x fio direct", "hugevmm direct / fio direct", ">=", 0.7))
        out.append(metric("blk", "L1: IOPS", "IOPS", "higher", case,
                          series(pat, lambda r: r["iops"]), RATIOS, goals))
        out.append(metric("blk", "L1: throughput", "MB/s", "higher", case,
                          series(pat, lambda r: r["mbps"]), RATIOS))
        if qd == 1:
            out.append(metric("blk", "L1: QD1 latency (1 / IOPS)", "us", "lower", case,
                              series(pat, lambda r: 1e6 / r["iops"]), RATIOS,
                              [("hugevmm <= 0.9x QEMU", "hugevmm / QEMU", "<=", 0.9),
                               ("hugevmm direct <= 0.9x QEMU direct", "hugevmm direct / QEMU direct",
                                "<=", 0.9)]))
        le_qemu = [("hugevmm <= 1.0x QEMU", "hugevmm / QEMU", "<=", 1.0),
                   ("hugevmm direct <= 1.0x QEMU direct", "hugevmm direct / QEMU direct", "<=", 1.0)]
        out.append(metric("blk", "L1: VMM CPU per I/O, whole run (getrusage)", "us", "lower", case,
                          series(pat, lambda r: (r["user_us"] + r["sys_us"]) / r["ios"],
                                 vmms),
                          RATIOS, le_qemu, note="CPU per I/O, whole run: the child's rusage from "
                          "bench/vmtime.c (spawn to exit: launch, prefault, the I/O, exit; every "
                          "thread, the vCPU's guest time included) over the guest's I/Os (its ios=)"))
        # The window's I/Os: the guest's rate over the window's wall time.
        win = {k: [r for r in v if r.get("win_ok") == 1 and r.get("win_ms", 0) > 0]
               for k, v in got.items()}
        out.append(metric("blk", "L1: VMM CPU per I/O, I/O window", "us", "lower", case,
                          {label: [r["win_ticks"] * 1e4 / (r["iops"] * r["win_ms"] / 1e3)
                                   for r in win.get((k, pat), [])] for k, label in vmms.items()},
                          RATIOS, le_qemu, note="CPU per I/O, I/O window: user+sys of the VMM "
                          "(/proc/PID/stat, 10 ms ticks, every thread, the vCPU's guest time "
                          "included) between two samples inside the I/O (0.25 s after the first "
                          "guest line and half the run later) over the guest's IOPS times the "
                          "window; \"outside the guest\" subtracts the guest time"))
        out.append(metric("blk", "L1: VMM CPU per I/O outside the guest, I/O window", "us", "lower",
                          case, {label: [(r["win_ticks"] - r["win_guest_ticks"]) * 1e4
                                         / (r["iops"] * r["win_ms"] / 1e3)
                                         for r in win.get((k, pat), [])]
                                 for k, label in vmms.items()}, RATIOS))
    rss = {label: [r["rss_kb"] / 1024 for (k, _), rs in got.items() if k == key for r in rs
                   if r.get("win_ok") == 1]
           for key, label in vmms.items()}
    out.append(metric("blk", "L1: VMM RSS outside guest RAM, one drive, during I/O", "MiB", "lower",
                      fs, rss, {"hugevmm / QEMU": (H, Q), "hugevmm direct / QEMU direct": (HD, QD)},
                      [("hugevmm <= 3 MiB", H, "<=", 3.0), ("hugevmm direct <= 3 MiB", HD, "<=", 3.0)],
                      note="RSS outside guest RAM: the VMM's smaps at the window's second sample, "
                      "mappings under 64 MiB (guest RAM is the 128 MiB one), every pattern's runs"))
    return out
