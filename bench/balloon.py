"""Section "balloon": issue 13's benchmark, inside the L1 harness's guest (tests/l1: a real
TDP KVM, under QEMU's software emulator here), hugevmm's virtio-balloon against Debian's
QEMU microvm's (-device virtio-balloon-device), the Debian L2's own virtio_balloon the
driver under both:

  a 2 GiB guest on prefaulted THP (hugevmm: "backing": "thp", "prefault": true; QEMU:
  memory-backend-ram with prealloc=on, which QEMU madvises huge; both checked: smaps
  AnonHugePages), 1 vCPU, the same kernel and initramfs (bench/balloon.sh as its init).
  The L2 writes 1.5 GiB to its tmpfs and removes it again -- it has used its memory, and
  KVM maps it -- then, per pattern:
    contiguous  nothing more: its free memory is in large blocks
    scattered   1 GiB of 64 KiB files, every other one removed: 512 MiB free in holes
                spread over 1 GiB of 2M blocks, which the balloon's pages fill first
  and idles. L1 asks for a 1 GiB balloon: hugevmm PATCH /balloon {"amount_mib": 1024},
  QEMU QMP balloon with value 1 GiB (the guest's memory after ballooning).

  Measured, from the VMM's answer to the request: the time until its RSS fell by 1 GiB
  (99% of it; only if it does), until it settled (no 1 MiB move for 3 s), and how much
  fell; the balloon's size as the VMM reports it (both drivers took the same); the huge
  coverage of the guest RAM mapping (smaps AnonHugePages / Rss) and KVM's 4K and 2M
  entries (debugfs) before, once settled, and after the guest worked again (read 128 MiB
  of the files it kept, wrote some MiB to tmpfs; each timed by the guest).

hugevmm gives memory back only in whole 2M pages (MADV_DONTNEED of aligned 2M ranges), so
a 2M page leaves only once all 512 of its 4K pages are in the balloon: what it frees is
what Linux's page allocator handed the balloon in whole 2M blocks. QEMU discards every 4K
page the guest gives, splitting the THPs it falls in. L1 runs with 4 GiB of RAM for this
section (tests/l1/run.py's l1_mib; the harness's default is 2 GiB).

Contenders run interleaved round by round after one unmeasured run each; medians of RUNS.
The L1 side is bench/balloon.sh, put into the benchmark image as /bin/run_balloonbench and
as the init of /guest/initrd-balloonbench.cpio; tests/l1's cases are unchanged. Times are
L1's and dominated by emulation: the ratios between hugevmm and QEMU are the result.

For trying it out, the environment narrows it: HUGEVMM_BENCH_BALLOON_RUNS (5; --quick 3),
_WHO (hugevmm,qemu), _PATTERNS (contiguous,scattered), _GUEST_MIB (2048), _TARGET_MIB
(1024), _L1_MIB (4096)."""
import json
import os
import shutil
import sys

from common import ROOT, metric
from l1bench import bench_image, check_tools, l1build, parse, run_l1

import cases as l1cases  # noqa: E402  (tests/l1's, on the path l1bench sets)

H, Q = "hugevmm", "QEMU microvm"
CONTENDERS = {"hugevmm": H, "qemu": Q}
RATIOS = {"hugevmm / QEMU": (H, Q)}
L2_INITRD = "/guest/initrd-balloonbench.cpio"
BALLOON = {"amount_mib": 0, "deflate_on_oom": True, "stats_polling_interval_s": 0,
           "free_page_reporting": False}
QMP_PORT = 4444  # bench/balloon.sh's
TIMEOUT_S = 180  # for the RSS to settle (QEMU took 25-52 s in trials)
# name, MiB the guest writes to tmpfs and removes, MiB of 64 KiB files of which every other
# one is removed again (scattered free memory); after the inflation, MiB of those files the
# guest reads back and MiB it writes
PATTERNS = [("contiguous", 1536, 0, 0, 512), ("scattered", 1536, 1024, 128, 128)]


def l2_args(reboot="k"):
    """The L2's command line; bench/balloon.sh puts the pattern's bb.* words for @BB@."""
    args = l1cases.L2_ARGS.replace("nomodules ", "").replace("reboot=k", f"reboot={reboot}")
    return f"{args} @BB@"


def hugevmm_config(mib):
    return {"boot-source": {"kernel_image_path": "/guest/bzImage", "initrd_path": L2_INITRD,
                            "boot_args": l2_args()},
            "machine-config": {"vcpu_count": 1, "virtio_cmdline": "never"},  # ACPI
            "memory": {"regions": [{"id": "ram0", "size_mib": mib, "backing": "thp",
                                    "prefault": True, "policy": "prefer"}]},
            "balloon": BALLOON}


def qemu_device():
    return ["-device", "virtio-balloon-device,deflate-on-oom=on",
            "-global", "virtio-mmio.force-legacy=false"]


def qemu_args(mib):
    """Debian's QEMU microvm with ACPI (the L2 finds the balloon in the DSDT, as under
    hugevmm), its RAM one memory-backend-ram preallocated (QEMU madvises its RAM huge),
    QMP on L1's loopback."""
    return ["-accel", "kvm", "-cpu", "host", "-smp", "1", "-nodefaults", "-nographic",
            "-no-reboot", "-serial", "stdio",
            "-M", "microvm,memory-backend=mem", "-m", f"{mib}M",
            "-object", f"memory-backend-ram,id=mem,size={mib}M,prealloc=on"] + qemu_device() + \
        ["-qmp", f"tcp:127.0.0.1:{QMP_PORT},server=on,wait=off",
         # microvm has no i8042: reset by triple fault (tests/l1/cases.py's qemu()).
         "-kernel", "/guest/bzImage", "-initrd", L2_INITRD, "-append", l2_args("t")]


def case_files(runs, who, mib, target, patterns):
    files = {"kind": "balloonbench\n", "setup": "thp\n", "env": "", "runs": f"{runs}\n",
             "contenders": "".join(c + "\n" for c in who), "target": f"{target}\n",
             "guest": f"{mib}\n", "timeout": f"{TIMEOUT_S}\n",
             "patterns": "".join(" ".join(map(str, p)) + "\n" for p in patterns)}
    files["hugevmm.json"] = json.dumps(hugevmm_config(mib), indent=1) + "\n"
    files["qemu.qemu"] = "".join(a + "\n" for a in qemu_args(mib))
    return files


def balloon_image(cases):
    """The L1 benchmark image (tests/l1/build.py --bench) that also carries bench/balloon.sh
    as /bin/run_balloonbench, @cases and /guest/initrd-balloonbench.cpio: the L2's initramfs
    (build.py's l2root: busybox and the virtio modules, virtio_balloon among them) with
    bench/balloon.sh as its init; a context manager (l1bench.bench_image)."""
    def extra(work, root):
        l2 = os.path.join(work, "l2balloonbench")
        shutil.rmtree(l2, ignore_errors=True)
        shutil.copytree(os.path.join(work, "l2root"), l2, symlinks=True)
        if not any(m.startswith("virtio_balloon") for m in
                   open(os.path.join(l2, "lib", "l2-modules", "order")).read().split()):
            raise RuntimeError("the L2 tree has no virtio_balloon: tests/l1/build.py's "
                               "L2_MODULES must name it")
        shutil.copy(os.path.join(ROOT, "bench", "balloon.sh"), os.path.join(l2, "init"))
        os.chmod(os.path.join(l2, "init"), 0o755)
        l1build.cpio(l2, os.path.join(root, L2_INITRD.lstrip("/")))

    return bench_image("balloon.sh", "run_balloonbench", cases, extra)


def good(r):
    return r.get("pass") == 1 and r.get("drop_mib", 0) > 0 and "t_done_ms" in r


def pattern_metrics(pname, fill, frag, reread, retouch, mib, target, ok):
    """The figures of pattern @pname from the good runs @ok ({contender: [run]})."""
    def series(fn, need=()):
        return {label: [fn(r) for r in ok[w] if all(k in r for k in need)]
                for w, label in CONTENDERS.items()}

    def cov(n):
        return lambda r: r[f"ram_huge{n}_mib"] / r[f"ram_rss{n}_mib"] if r[f"ram_rss{n}_mib"] else 0

    free = f"{fill} MiB used and freed" + (f", then {frag} MiB in 64 KiB files, every other one "
                                             "removed" if frag else "")
    case = f"{pname}: {free}; balloon {target} of {mib} MiB"
    out = [
        metric("balloon", f"RSS down by {target} MiB (99%), from the VMM's answer", "ms",
               "lower", case, series(lambda r: r["t_target_ms"], ["t_target_ms"]), RATIOS,
               note="only the runs where the RSS fell that far"),
        metric("balloon", "RSS settled (no 1 MiB move for 3 s), from the VMM's answer", "ms",
               "lower", case, series(lambda r: r["t_done_ms"]), RATIOS),
        metric("balloon", "RSS given back", "MiB", "higher", case,
               series(lambda r: r["drop_mib"]), RATIOS),
        metric("balloon", "balloon size the VMM reports", "MiB", "higher", case,
               series(lambda r: r["actual_mib"], ["actual_mib"]), RATIOS),
        # The tools' own start (curl's libraries, busybox nc), under emulation: no ratio.
        metric("balloon", "request -> the VMM's answer (curl / QMP over nc)", "ms", "lower",
               case, series(lambda r: r["ack_ms"])),
    ]
    after = "after the guest " + (f"read {reread} MiB it kept and " if reread else "") + \
        f"wrote {retouch} MiB"
    settled = f"{pname}, once settled"
    if reread:
        out.append(metric("balloon", f"the guest reads {reread} MiB it kept (its clock)", "ms",
                          "lower", settled, series(lambda r: r["reread_ms"], ["reread_ms"]),
                          RATIOS))
    out.append(metric("balloon", f"the guest writes {retouch} MiB to tmpfs (its clock)", "ms",
                      "lower", settled, series(lambda r: r["write_ms"], ["write_ms"]), RATIOS))
    for n, when in ((0, "before"), (1, "settled"), (2, after)):
        c = f"{pname}, {when}"
        out.append(metric("balloon", "guest RAM mapping: huge coverage (AnonHugePages / Rss)",
                          "fraction", "higher", c, series(cov(n))))
        out.append(metric("balloon", "guest RAM mapping: Rss", "MiB", "lower", c,
                          series(lambda r, n=n: r[f"ram_rss{n}_mib"])))
        out.append(metric("balloon", "KVM: guest memory mapped by 2M entries", "MiB", "higher",
                          c, series(lambda r, n=n: r[f"kvm2m{n}"] * 2)))
        out.append(metric("balloon", "KVM: guest memory mapped by 4K entries", "MiB", "lower",
                          c, series(lambda r, n=n: r[f"kvm4k{n}"] / 256)))
    return [m for m in out if m["series"]]


def run(a):
    check_tools(a.bindir)
    env = os.environ.get
    runs = int(env("HUGEVMM_BENCH_BALLOON_RUNS", "3" if a.quick else "5"))
    who = [w for w in env("HUGEVMM_BENCH_BALLOON_WHO", "hugevmm,qemu").split(",") if w]
    mib = int(env("HUGEVMM_BENCH_BALLOON_GUEST_MIB", "2048"))
    target = int(env("HUGEVMM_BENCH_BALLOON_TARGET_MIB", "1024"))
    l1_mib = int(env("HUGEVMM_BENCH_BALLOON_L1_MIB", "4096"))
    names = env("HUGEVMM_BENCH_BALLOON_PATTERNS", ",".join(p[0] for p in PATTERNS)).split(",")
    patterns = [p for p in PATTERNS if p[0] in names]
    for w in who:
        if w not in CONTENDERS:
            raise RuntimeError(f"HUGEVMM_BENCH_BALLOON_WHO: unknown contender {w}")
    if not patterns:
        raise RuntimeError(f"HUGEVMM_BENCH_BALLOON_PATTERNS: none of {[p[0] for p in PATTERNS]}")
    cases = {"96-balloon": case_files(runs, who, mib, target, patterns)}
    res = run_l1(a, balloon_image(cases), "balloon", runs, l1_mib=l1_mib)
    c = res["cases"].get("balloon")
    if not c or not c.get("ended"):
        raise RuntimeError(f"balloon: not run or not finished; log {res['log']}")
    if c["attrs"].get("skipped"):
        raise RuntimeError(f"balloon: skipped in L1: {c['attrs']['skipped']}")
    got = parse(c["attrs"])
    failed = [f"{w} {pat} run {i + 1}: {r}" for (w, pat), rs in got.items()
              for i, r in enumerate(rs) if not good(r)]
    if failed:
        print("bench: balloon: failed runs (left out): " + "; ".join(failed[:6]), file=sys.stderr)
    out, reached, order = [], {}, {}
    for pname, fill, frag, reread, retouch in patterns:
        ok = {w: [r for r in got.get((w, pname), []) if good(r)] for w in CONTENDERS}
        out += pattern_metrics(pname, fill, frag, reread, retouch, mib, target, ok)
        for w, label in CONTENDERS.items():
            if w in who:
                reached[f"{label}, {pname}"] = f"{sum('t_target_ms' in r for r in ok[w])}/{len(ok[w])}"
                order[f"{label}, {pname}"] = f"{sum(r.get('order_ok') == 1 for r in ok[w])}/{len(ok[w])}"
    if not out:
        raise RuntimeError(f"no balloon figures: {failed[:4]}; log {res['log']}")
    return {"params": {"kernel": res["package"], "runs": runs,
                       "guest": f"{mib} MiB prefaulted THP, 1 vCPU, the Debian L2 (virtio_balloon)",
                       "L1 RAM MiB": l1_mib, "balloon MiB": target,
                       "patterns (name, fill, frag, reread, retouch MiB)": [list(p) for p in patterns],
                       "settle timeout s": TIMEOUT_S, "runs where the RSS fell by the target": reached,
                       "runs settled before the guest's retouch": order,
                       "failed_runs": len(failed),
                       "hugevmm": json.dumps(BALLOON), "qemu": " ".join(qemu_device()),
                       "log": os.path.relpath(res["log"], ROOT)},
            "metrics": out}
