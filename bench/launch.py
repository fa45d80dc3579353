#!/usr/bin/env python3
"""Launch benchmark (boot issue): the test guest under hugevmm and under Debian's
QEMU microvm, same ELF, same memory size, interleaved in one run.

  launch -> first guest serial line      (test=exit code=0)
  launch -> process exit                 (test=exit code=0)
  VMM RSS excluding guest RAM            (test=idle, from smaps of the running VMM)

hugevmm runs with its default prefault (every guest page populated before boot)
and without; QEMU with its default (lazy) and with -mem-prealloc. Ratios compare
like with like: hugevmm lazy vs QEMU lazy, hugevmm prefault vs QEMU prealloc.

    bench/launch.py [--hugevmm build/hugevmm] [--guest build/testguest.elf] [--runs N]
"""
import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time

from common import ROOT, machine, save, summary

MIB = 1 << 20


def hugevmm_cmd(a, args, prefault):
    cfg = {"boot-source": {"kernel_image_path": a.guest, "boot_args": args},
           "machine-config": {"vcpu_count": 1},
           "memory": {"regions": [{"id": "ram0", "size_mib": a.mem_mib, "backing": "thp",
                                   "prefault": prefault, "policy": "prefer"}]}}
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(cfg, f)
    f.close()
    return [a.hugevmm, "-q", "--config-file", f.name], f.name


def qemu_cmd(a, args, prealloc):
    cmd = ["qemu-system-x86_64", "-M", "microvm", "-accel", "kvm", "-m", str(a.mem_mib), "-smp", "1",
           "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", a.guest, "-append", args]
    if prealloc:
        cmd.append("-mem-prealloc")
    return cmd, None


def warm(a):
    """Touch and free twice the guest's memory right before a measured launch.

    Where the host is itself a VM with free page reporting (virtio-balloon),
    freed 2M blocks go back to the outer host within moments and the next
    touch of each costs an exit to it: a 128 MiB prefault measured 6 ms warm
    and 200-340 ms cold here, for hugevmm and QEMU alike. Warming before every
    run measures the VMMs, not that; on bare metal it changes nothing."""
    subprocess.run([a.memset, str(2 * a.mem_mib), "thp"], capture_output=True, check=True)


def timed_run(cmd):
    """Seconds from spawn to the first console line and to exit."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    first = None
    buf = b""
    while True:
        chunk = p.stdout.read1(4096) if hasattr(p.stdout, "read1") else p.stdout.read(1)
        if not chunk:
            break
        buf += chunk
        if first is None and b"testguest:" in buf:
            first = time.perf_counter() - t0
    p.wait()
    total = time.perf_counter() - t0
    if first is None or b"testguest: PASS" not in buf:
        raise RuntimeError(f"{cmd[0]}: guest did not pass: {buf[-300:]!r}")
    return first, total


def vmm_overhead_rss(cmd, guest_bytes):
    """RSS of the running VMM minus its guest-RAM mappings (VMAs of guest size, up to +4 MiB)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    buf, deadline = b"", time.time() + 60
    while b"idle" not in buf and time.time() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 1)
        if r:
            buf += os.read(p.stdout.fileno(), 4096)
    time.sleep(0.3)
    total = guest = 0
    size = rss = 0
    with open(f"/proc/{p.pid}/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                size = hi - lo
            elif line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
                total += rss
                if guest_bytes <= size <= guest_bytes + 4 * MIB:
                    guest += rss
    p.terminate()
    p.wait(timeout=30)
    return total - guest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hugevmm", default=os.path.join(ROOT, "build", "hugevmm"))
    ap.add_argument("--guest", default=os.path.join(ROOT, "build", "testguest.elf"))
    ap.add_argument("--memset", default=os.path.join(ROOT, "build", "bench", "memset"))
    ap.add_argument("--mem-mib", type=int, default=128)
    ap.add_argument("--runs", type=int, default=10)
    a = ap.parse_args()
    a.hugevmm, a.guest, a.memset = (os.path.abspath(x) for x in (a.hugevmm, a.guest, a.memset))

    variants = {
        "hugevmm lazy": lambda args: hugevmm_cmd(a, args, False),
        "hugevmm prefault": lambda args: hugevmm_cmd(a, args, True),
        "qemu lazy": lambda args: qemu_cmd(a, args, False),
        "qemu prealloc": lambda args: qemu_cmd(a, args, True),
    }
    first, total, rss, tmp = {}, {}, {}, []
    for _ in range(a.runs):
        for name, make in variants.items():
            cmd, path = make("test=exit code=0")
            tmp.append(path)
            warm(a)
            f, t = timed_run(cmd)
            first.setdefault(name, []).append(f * 1000)
            total.setdefault(name, []).append(t * 1000)
    for name, make in variants.items():
        cmd, path = make("test=idle")
        tmp.append(path)
        rss[name] = [vmm_overhead_rss(cmd, a.mem_mib * MIB) / MIB for _ in range(3)]
    for p in tmp:
        if p:
            os.unlink(p)

    res = {"machine": machine(), "mem_mib": a.mem_mib, "runs": a.runs, "variants": {}}
    for name in variants:
        res["variants"][name] = {"first_line_ms": summary(first[name]), "exit_ms": summary(total[name]),
                                 "vmm_rss_mib": summary(rss[name])}
    v = res["variants"]
    med = lambda n, k: v[n][k]["median"]
    res["ratios"] = {
        "first_line lazy hugevmm/qemu": med("hugevmm lazy", "first_line_ms") / med("qemu lazy", "first_line_ms"),
        "exit lazy hugevmm/qemu": med("hugevmm lazy", "exit_ms") / med("qemu lazy", "exit_ms"),
        "first_line prefault hugevmm/qemu": med("hugevmm prefault", "first_line_ms") / med("qemu prealloc", "first_line_ms"),
        "exit prefault hugevmm/qemu": med("hugevmm prefault", "exit_ms") / med("qemu prealloc", "exit_ms"),
        "vmm_rss hugevmm/qemu": med("hugevmm lazy", "vmm_rss_mib") / med("qemu lazy", "vmm_rss_mib"),
    }
    out = save("launch", res)
    m = res["machine"]
    print(f"launch, test guest, {a.mem_mib} MiB, 1 vCPU, {a.runs} runs (median [min-max]); {m['cpu']}, "
          f"{m['cores']} cores, Linux {m['kernel']}, {m['kvm']}, {m['qemu']}")
    print("| VMM | spawn -> first line (ms) | spawn -> exit (ms) | VMM RSS w/o guest RAM (MiB) |")
    print("|---|---|---|---|")
    for name in variants:
        f = v[name]["first_line_ms"]
        t = v[name]["exit_ms"]
        r = v[name]["vmm_rss_mib"]
        print(f"| {name} | {f['median']:.1f} [{f['min']:.1f}-{f['max']:.1f}] | {t['median']:.1f} "
              f"[{t['min']:.1f}-{t['max']:.1f}] | {r['median']:.2f} |")
    for k, x in res["ratios"].items():
        print(f"ratio {k}: {x:.2f}")
    print(f"results: {out}")


if __name__ == "__main__":
    sys.exit(main())
