"""Shared fixtures: the hugevmm binary, host settings that tests set and restore,
and readers of the kernel's own accounting (smaps, hugetlb pool counters)."""
import json
import os
import signal
import subprocess
from contextlib import contextmanager

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(os.environ.get("HUGEVMM_BIN", os.path.join(ROOT, "build", "hugevmm")))
THP = "/sys/kernel/mm/transparent_hugepage"
POOL = "/sys/kernel/mm/hugepages/hugepages-{}kB"
MiB = 1 << 20
GiB = 1 << 30


def choice(path):
    """The bracketed word of a sysfs selector file."""
    with open(path) as f:
        text = f.read()
    return text[text.index("[") + 1:text.index("]")] if "[" in text else text.strip()


class Sysfs:
    """Writes sysfs values and puts the originals back at teardown."""

    def __init__(self):
        self.saved = []

    def set(self, path, value):
        if not os.path.exists(path):
            pytest.skip(f"{path} does not exist on this kernel")
        old = choice(path) if "transparent_hugepage" in path else open(path).read().strip()
        self.saved.append((path, old))
        with open(path, "w") as f:
            f.write(str(value))

    def restore(self):
        for path, old in reversed(self.saved):
            with open(path, "w") as f:
                f.write(old)


@pytest.fixture
def sysfs():
    if os.geteuid() != 0:
        pytest.skip("needs root to change host memory settings in /sys")
    s = Sysfs()
    # A known baseline: THP on request, shmem THP off, as on a stock Debian host.
    s.set(f"{THP}/enabled", "madvise")
    s.set(f"{THP}/defrag", "madvise")
    s.set(f"{THP}/shmem_enabled", "never")
    yield s
    s.restore()


def _ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@pytest.fixture
def tapdev():
    """make(mode="tap") -> the name of a new tun/tap device of that mode (as an orchestrator
    makes one: hugevmm never does), or skips saying why it cannot; all removed after."""
    made = []

    def make(mode="tap"):
        if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
            pytest.skip("making a tap device needs root and /dev/net/tun")
        name = f"hvt{os.getpid() % 10000}{len(made)}{mode[1]}"
        r = _ip("tuntap", "add", "dev", name, "mode", mode)
        if r.returncode:
            pytest.skip(f"ip tuntap add dev {name} failed here: {r.stderr.strip()}")
        made.append(name)
        return name

    yield make
    for name in made:
        _ip("link", "del", name)


def stray_vmms():
    """hugevmm processes that this pytest started and that are still there."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm == "hugevmm" and int(rest[1]) == os.getpid():
            out.append(int(pid))
    return out


@pytest.fixture(autouse=True)
def no_vmm_outlives_its_test():
    """A test that fails half-way must not leave its VMM running into the next ones (or
    after the suite): whatever it started is killed and reaped here, after its own
    fixtures have had their turn."""
    yield
    for pid in stray_vmms():
        os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def pool_counters(kb):
    d = POOL.format(kb)
    return {k: int(open(f"{d}/{k}_hugepages").read()) for k in ("nr", "free", "resv", "surplus")}


@pytest.fixture
def hugetlb_pool(sysfs):
    """pool(kb, pages): size a hugetlb pool (restored after); skips when the host
    cannot find that many contiguous pages."""

    def pool(kb, pages):
        d = POOL.format(kb)
        if not os.path.isdir(d):
            pytest.skip(f"no {kb} kB hugetlb pages on this kernel")
        sysfs.set(f"{d}/nr_hugepages", pages)
        got = pool_counters(kb)["nr"]
        if got < pages:
            pytest.skip(f"host could allocate only {got} of {pages} hugetlb pages of {kb} kB "
                        "(memory fragmented or too small)")
        return pool_counters(kb)

    return pool


def write_config(tmp_path, regions=None, **top):
    cfg = dict(top)
    if regions is not None:
        cfg["memory"] = {"regions": regions}
    path = tmp_path / "vm.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def run(args, env=None, timeout=120):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN] + args, capture_output=True, text=True, env=e, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def listing(d):
    return sorted(os.listdir(d))


def run_guest_config(tmp_path, sections, refused=True):
    """`hugevmm --api-sock S --config-file F` with the test guest (test=exit code=0, one vCPU,
    64 MiB, its console in tmp_path) and the top-level @sections after those; returns (exit
    code, stderr). With @refused, checks that the run left nothing behind in tmp_path."""
    cfg = dict({"boot-source": {"kernel_image_path": os.path.join(os.path.dirname(BIN),
                                                                  "testguest.elf"),
                                "boot_args": "test=exit code=0"},
                "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
                "serial": {"serial_out_path": str(tmp_path / "console.log")}}, **sections)
    path = tmp_path / "vm.json"
    path.write_text(json.dumps(cfg))
    before = listing(tmp_path)
    r = run(["--api-sock", str(tmp_path / "api.sock"), "--config-file", str(path)], timeout=60)
    # No socket, no console file: the refusal came before anything was made.
    if refused:
        assert listing(tmp_path) == before, (listing(tmp_path), before, r.stderr)
    return r.returncode, r.stderr


def error_line(err):
    """The last line of @err that says "error"."""
    lines = [l for l in err.splitlines() if "error" in l]
    assert lines, err
    return lines[-1]


def assert_refused(code, err, words):
    """A config refused (exit 2), its error line holding each of @words."""
    assert code == 2, f"exit {code}: {err}"
    line = error_line(err)
    for w in words:
        assert w in line, f"{w!r} not in: {line}"


@pytest.fixture
def vmm(tmp_path):
    """hugevmm serving its API in tmp_path (fcapi.Vmm); after the test, it must have removed
    its socket. test_api.py and test_firecracker.py have a `vmm` of their own."""
    from fcapi import Vmm  # fcapi imports this module

    v = Vmm(tmp_path)
    yield v
    v.close()
    assert not os.path.exists(v.sock), "the socket was not removed"


def check(tmp_path, regions=None, env=None, **top):
    """Run `hugevmm check`; returns (exit code, report or None, stderr)."""
    r = run(["check", "--config-file", write_config(tmp_path, regions, **top)], env=env)
    report = json.loads(r.stdout) if r.stdout.strip() else None
    return r.returncode, report, r.stderr


@contextmanager
def held(tmp_path, regions, env=None):
    """`hugevmm check --hold`: yields (pid, report) while the memory stays mapped."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.Popen([BIN, "check", "--hold", "--config-file", write_config(tmp_path, regions)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=e)
    text = ""
    try:
        while True:
            line = p.stdout.readline()
            if not line:
                raise AssertionError(f"hugevmm exited {p.wait()}: {p.stderr.read()}")
            text += line
            if line.startswith("}"):
                break
        yield p.pid, json.loads(text)
    finally:
        p.stdin.close()
        p.wait(timeout=60)
        p.stdout.close()
        p.stderr.close()
    assert p.returncode in (0, 3), f"hugevmm check --hold exited {p.returncode}"


def smaps(pid, start, size):
    """Sum the smaps counters (bytes) of @pid's VMAs inside [start, start+size)."""
    end = start + size
    tot, inside, kps = {}, False, 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo < end and hi > start
                continue
            if inside and line.split()[-1] == "kB":
                key, val = line.split(":")[0], int(line.split()[1]) * 1024
                if key == "KernelPageSize":
                    kps = max(kps, val)
                else:
                    tot[key] = tot.get(key, 0) + val
    tot["KernelPageSize"] = kps
    return tot


def region_span(report, i=0):
    reg = report["regions"][i]
    start = min(s["host_virt_addr"] for s in reg["slots"])
    return start, reg["size_bytes"]
