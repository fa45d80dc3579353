"""Shared pieces of the benchmarks: the machine record, host settings that are
set and restored, warming, the three contenders (hugevmm, Debian's QEMU, a
native process) and the metric records every section returns."""
import http.client
import json
import os
import platform
import select
import socket
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THP = "/sys/kernel/mm/transparent_hugepage"
POOL = "/sys/kernel/mm/hugepages/hugepages-{}kB/nr_hugepages"
MIB = 1 << 20
GIB = 1 << 30

# Region backing -> the native kind (bench/native.h) and QEMU's memory backend.
KINDS = {
    "anon": ("anon", {"qom-type": "memory-backend-ram"}),
    "thp": ("thp", {"qom-type": "memory-backend-ram"}),
    "memfd": ("memfd", {"qom-type": "memory-backend-memfd"}),
    "hugetlb 2M": ("hugetlb-2m", {"qom-type": "memory-backend-memfd", "hugetlb": True,
                                  "hugetlbsize": 2 * MIB}),
    "hugetlb 1G": ("hugetlb-1g", {"qom-type": "memory-backend-memfd", "hugetlb": True,
                                  "hugetlbsize": GIB}),
}


def region(case, mib, **extra):
    """hugevmm's region object for a case name of KINDS."""
    r = {"id": "ram0", "size_mib": mib}
    if case.startswith("hugetlb"):
        r.update(backing="hugetlb", page_size=case.split()[1])
    else:
        r["backing"] = case
    r.update(extra)
    return r


def choice(path):
    text = open(path).read().strip()
    return text[text.index("[") + 1:text.index("]")] if "[" in text else text


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    kvm = next((m for m in ("kvm_intel", "kvm_amd", "kvm_pvm") if os.path.exists(f"/sys/module/{m}")),
               "none")
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True)
    rev = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                         text=True)
    hyp = "hypervisor" in open("/proc/cpuinfo").read().split("flags", 1)[-1].split("\n", 1)[0]
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1),
            "runs_in_a_vm": hyp,
            "thp_enabled": choice(f"{THP}/enabled"), "thp_defrag": choice(f"{THP}/defrag"),
            "shmem_enabled": choice(f"{THP}/shmem_enabled"), "kvm": kvm,
            "qemu": qemu.stdout.splitlines()[0] if qemu.returncode == 0 else "absent",
            "hugevmm": rev.stdout.strip() or "?"}


def mem_available_mib():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


class Settings:
    """Writes sysfs values and restores them, in reverse order (a context manager)."""

    def __init__(self):
        self.saved = []

    def set(self, path, value):
        old = choice(path)
        self.saved.append((path, old))
        with open(path, "w") as f:
            f.write(str(value))
        return choice(path)

    def restore(self):
        for path, old in reversed(self.saved):
            with open(path, "w") as f:
                f.write(old)
        self.saved = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.restore()


def case_settings(s, case, mib):
    """Host settings a case needs: THP never for anon (so QEMU's RAM, which it
    always advises huge, gets 4K like the others), madvise otherwise; shmem THP
    advise for memfd; a hugetlb pool of @mib. Returns None, or why the case
    cannot run here."""
    s.set(f"{THP}/enabled", "never" if case == "anon" else "madvise")
    s.set(f"{THP}/shmem_enabled", "advise")
    if case.startswith("hugetlb"):
        kb = 2048 if case.endswith("2M") else 1048576
        want = -(-mib * 1024 // kb)
        got = int(s.set(POOL.format(kb), want))
        if got < want:
            return f"a {kb // 1024} MiB hugetlb pool of {want} pages could not be had ({got})"
    return None


def summary(xs):
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "n": len(xs)}


def metric(section, name, unit, better, case, series, ratios=None, goals=(), note=None):
    """One measured quantity for one case: {series: [samples]} summarised.
    @ratios: {label: (numerator series, denominator series)} on medians.
    @goals: [(text, label of a ratio or series, op, bound)] checked on the medians."""
    m = {"section": section, "name": name, "unit": unit, "better": better, "case": case,
         "series": {k: summary(v) for k, v in series.items() if v}}
    med = {k: v["median"] for k, v in m["series"].items()}
    if ratios:
        m["ratios"] = {k: med[a] / med[b] for k, (a, b) in ratios.items() if a in med and b in med}
    for text, key, op, bound in goals:
        x = m.get("ratios", {}).get(key, med.get(key))
        m.setdefault("goals", []).append({"text": text, "value": x, "met": x is not None and (
            x <= bound if op == "<=" else x >= bound)})
    if note:
        m["note"] = note
    return m


def warm(memset, mib, kind):
    """Touch and free memory of the same kind right before a measured run.

    Where the host is itself a VM with free page reporting (virtio-balloon),
    freed memory goes back to the outer host within moments and touching it
    again costs an exit to it per page: a 4 GiB hugetlb prefault measured
    892 ms cold and 257 ms warm here, for every contender alike. Warming first
    measures the contenders, not that; on bare metal it changes nothing."""
    subprocess.run([memset, str(mib), kind], capture_output=True, check=True)


def native(binary, *args):
    r = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{binary} {' '.join(map(str, args))}: exit {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def write_config(cfg):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="hugevmm-bench-", delete=False)
    json.dump(cfg, f)
    f.close()
    return f.name


def hugevmm_check(hugevmm, reg, env=None):
    """`hugevmm check` on one region; its report of that region."""
    path = write_config({"memory": {"regions": [reg]}})
    try:
        r = subprocess.run([hugevmm, "check", "-q", "--config-file", path], capture_output=True,
                           text=True, env=dict(os.environ, **(env or {})))
    finally:
        os.unlink(path)
    if r.returncode != 0:
        raise RuntimeError(f"hugevmm check {reg}: exit {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)["regions"][0]


def hugevmm_boot_config(guest, args, reg, vcpus=1):
    return {"boot-source": {"kernel_image_path": guest, "boot_args": args},
            "machine-config": {"vcpu_count": vcpus}, "memory": {"regions": [reg]}}


def qemu_cmd(guest, args, mib, backend=None, prealloc=False):
    """QEMU microvm on the test guest; @backend: a KINDS QEMU object for its RAM."""
    mach, extra = "microvm", []
    if backend:
        opts = "".join(f",{k}={'on' if v is True else v}" for k, v in backend.items() if k != "qom-type")
        extra = ["-object", f"{backend['qom-type']},id=ram0,size={mib}M{opts}"]
        mach += ",memory-backend=ram0"
    cmd = ["qemu-system-x86_64", "-M", mach, "-accel", "kvm", "-m", f"{mib}M", "-smp", "1",
           "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", guest, "-append", args]
    return cmd + extra + (["-mem-prealloc"] if prealloc else [])


def run_guest(cmd, timeout=300):
    """Run a VMM on the test guest to the end; its console output (must PASS)."""
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    if "testguest: PASS" not in r.stdout:
        raise RuntimeError(f"{cmd[0]}: guest did not pass (exit {r.returncode}): "
                           f"{(r.stdout + r.stderr)[-400:]}")
    return r.stdout


class Qmp:
    """Debian's QEMU with no machine, driven over QMP: object-add of a memory
    backend with prealloc=on is exactly QEMU's allocate-and-populate."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hugevmm-bench-qmp-")
        self.path = os.path.join(self.dir, "qmp.sock")
        self.proc = subprocess.Popen(["qemu-system-x86_64", "-M", "none", "-nodefaults", "-display", "none",
                                      "-S", "-qmp", f"unix:{self.path},server=on,wait=off"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while True:
            # The socket file appears at bind(), before listen(): retry until accepted.
            self.sock = socket.socket(socket.AF_UNIX)
            try:
                self.sock.connect(self.path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
            if self.proc.poll() is not None or time.time() > deadline:
                self.proc.kill()
                raise RuntimeError(f"qemu -qmp did not start: {self.proc.stderr.read().decode()[-300:]}")
            time.sleep(0.005)
        self.f = self.sock.makefile("rw")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "error" in r:
                raise RuntimeError(f"qmp {name}: {r['error'].get('desc')}")
            if "return" in r:
                return r["return"]

    def huge_bytes(self):
        """Bytes of QEMU's mappings backed by huge pages, from its smaps."""
        keys = ("AnonHugePages:", "ShmemPmdMapped:", "Shared_Hugetlb:", "Private_Hugetlb:")
        with open(f"/proc/{self.proc.pid}/smaps") as f:
            return sum(int(l.split()[1]) * 1024 for l in f if l.startswith(keys))

    def close(self):
        try:
            self.cmd("quit")
        except (OSError, RuntimeError, ValueError):
            pass
        self.proc.wait(timeout=60)
        self.sock.close()
        os.unlink(self.path) if os.path.exists(self.path) else None
        os.rmdir(self.dir)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def wait_for_line(proc, needle, timeout=120):
    """Read a child's stdout until @needle appears; the text read."""
    buf, deadline = b"", time.time() + timeout
    while needle.encode() not in buf:
        if time.time() > deadline or proc.poll() is not None:
            raise RuntimeError(f"no \"{needle}\" from the VMM: {buf[-300:]!r}")
        r, _, _ = select.select([proc.stdout], [], [], 1)
        if r:
            buf += os.read(proc.stdout.fileno(), 65536)
    return buf.decode(errors="replace")


def rss_without(pid, guest_bytes):
    """RSS and private memory (Private_Clean + Private_Dirty: what this process alone
    holds, shared library text excluded) of @pid, in bytes, minus the mappings of
    guest RAM (VMAs of guest size, up to +4 MiB)."""
    rss = private = size = 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                size = hi - lo
                guest = guest_bytes <= size <= guest_bytes + 4 * MIB
            elif guest:
                continue
            elif head == "Rss:":
                rss += int(line.split()[1]) * 1024
            elif head in ("Private_Clean:", "Private_Dirty:"):
                private += int(line.split()[1]) * 1024
    return rss, private
