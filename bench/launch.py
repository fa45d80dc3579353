"""Launch and VMM overhead: the test guest under hugevmm and under Debian's
QEMU microvm, same ELF, same memory size, runs interleaved.

  spawn -> first guest serial line      (test=exit code=0)
  spawn -> process exit                 (test=exit code=0)
  VMM RSS excluding guest RAM           (test=idle, from smaps of the running VMM)

Two cases compare like with like: "lazy" (hugevmm prefault off, QEMU's
default) and "prefault" (hugevmm's default, every guest page populated before
boot, against QEMU -mem-prealloc)."""
import os
import subprocess
import time

from common import (MIB, hugevmm_boot_config, metric, qemu_cmd, rss_without, wait_for_line, warm,
                    write_config)

MEM_MIB = 128
QEMU_ON = "QEMU kernel-irqchip=on"


def contenders(a, args, tmp):
    def hugevmm(prefault):
        reg = {"id": "ram0", "size_mib": MEM_MIB, "backing": "thp", "prefault": prefault,
               "policy": "prefer"}
        path = write_config(hugevmm_boot_config(a.guest, args, reg))
        tmp.append(path)
        return [a.hugevmm, "-q", "--config-file", path]

    # QEMU's microvm defaults to a split irqchip (PIC and IOAPIC in QEMU); hugevmm, like
    # Firecracker, creates KVM's in-kernel one. Its teardown when the VM fd closes is part of
    # "spawn to exit", so QEMU also runs with kernel-irqchip=on to show that cost apart.
    on = qemu_cmd(a.guest, args, MEM_MIB)
    on[on.index("kvm")] = "kvm,kernel-irqchip=on"
    return {("lazy", "hugevmm"): hugevmm(False), ("prefault", "hugevmm"): hugevmm(True),
            ("lazy", "QEMU"): qemu_cmd(a.guest, args, MEM_MIB),
            ("prefault", "QEMU"): qemu_cmd(a.guest, args, MEM_MIB, prealloc=True),
            ("lazy", QEMU_ON): on}


def timed_run(cmd):
    """Seconds from spawn to the first console line and to exit."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    first, buf = None, b""
    while True:
        chunk = p.stdout.read1(4096)
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


def overhead(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        wait_for_line(p, "idle", 60)
        time.sleep(0.3)
        return [x / MIB for x in rss_without(p.pid, MEM_MIB * MIB)]
    finally:
        p.terminate()
        p.wait(timeout=30)


def run(a):
    runs = 3 if a.quick else 10
    tmp = []
    try:
        exits = contenders(a, "test=exit code=0", tmp)
        idles = contenders(a, "test=idle", tmp)
        first, total, rss, private = {}, {}, {}, {}
        for _ in range(runs):
            for key, cmd in exits.items():
                warm(a.memset, 2 * MEM_MIB, "thp")
                f, t = timed_run(cmd)
                first.setdefault(key, []).append(f * 1000)
                total.setdefault(key, []).append(t * 1000)
        for _ in range(1 if a.quick else 3):
            for key, cmd in idles.items():
                if key[1] == QEMU_ON:
                    continue
                r, pv = overhead(cmd)
                rss.setdefault(key, []).append(r)
                private.setdefault(key, []).append(pv)
    finally:
        for p in tmp:
            os.unlink(p)

    out = []
    ratio = {"hugevmm/QEMU": ("hugevmm", "QEMU"), "hugevmm/QEMU kernel-irqchip=on": ("hugevmm", QEMU_ON)}
    for name, data in (("spawn to first guest line", first), ("spawn to exit", total)):
        for case in ("lazy", "prefault"):
            out.append(metric("launch", name, "ms", "lower", case,
                              {who: data.get((case, who)) for who in ("hugevmm", "QEMU", QEMU_ON)}, ratio,
                              [("hugevmm <= 0.3x QEMU", "hugevmm/QEMU", "<=", 0.3)]))
    for case in ("lazy", "prefault"):
        out.append(metric("overhead", "VMM RSS without guest RAM", "MiB", "lower", case,
                          {who: rss.get((case, who)) for who in ("hugevmm", "QEMU")}, ratio,
                          [("hugevmm <= 2 MiB", "hugevmm", "<=", 2.0),
                           ("hugevmm <= 0.2x QEMU", "hugevmm/QEMU", "<=", 0.2)]))
        out.append(metric("overhead", "VMM private memory without guest RAM", "MiB", "lower", case,
                          {who: private.get((case, who)) for who in ("hugevmm", "QEMU")}, ratio,
                          note="private: Private_Clean + Private_Dirty from smaps, i.e. RSS without "
                          "pages shared with other processes (library text)"))
    return {"params": {"mem_mib": MEM_MIB, "vcpus": 1, "runs": runs}, "metrics": out}
