"""The test guest's virtio-balloon driver (tests/guest/balloon.c) against QEMU's own
virtio-balloon-device on QEMU microvm under TCG (no /dev/kvm needed), driven over QMP as a
management layer would: `balloon` sets the target (QEMU's value is the guest's memory AFTER
ballooning: RAM minus the balloon), `query-balloon` reads back what the driver wrote to
`actual`, and the statistics come from polling the device's `guest-stats` QOM property.
A failure here tells a driver bug from one in hugevmm's balloon device.

QEMU 7.2 takes what the spec leaves to the device quietly: an inflated pfn outside RAM and
a report that is not aligned to its (4K) host pages are skipped and the buffer returned; a
reported range outside RAM is a descriptor it cannot map: the device is broken
(DEVICE_NEEDS_RESET), which the guest reports and outlives."""
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager

import pytest

from test_virtio_guest import QEMU, qemu_cmd

MIB = 1 << 20
RAM_MIB = 256
QOM = "/machine/peripheral/balloon0"
F_STATS_VQ, F_DEFLATE_ON_OOM, F_PAGE_POISON, F_REPORTING, F_VERSION_1 = 1, 2, 4, 5, 32

if QEMU is None:
    print("skip: qemu-system-x86_64 is not installed (Debian: qemu-system-x86)")
pytestmark = pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed "
                                "(Debian: qemu-system-x86)")


class Qmp:
    """A QMP client on a unix socket: command() returns "return" or raises on "error";
    events are dropped."""

    def __init__(self, path, secs=10):
        deadline = time.monotonic() + secs
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.s.settimeout(10)
        self.f = self.s.makefile("r")
        json.loads(self.f.readline())  # the greeting
        self.command("qmp_capabilities")

    def command(self, name, **args):
        self.s.sendall(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        while True:
            r = json.loads(self.f.readline())
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError(f"{name} {args}: {r['error']}")

    def close(self):
        self.f.close()
        self.s.close()


@contextmanager
def guest(args, dev_opts=",deflate-on-oom=on,free-page-reporting=on"):
    """The test guest under QEMU with a balloon and a QMP socket: yields (process, output
    lines so far, Qmp); killed, if still running, when the block ends."""
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "qmp")
        cmd = qemu_cmd(args, rng=None, mem=RAM_MIB,
                       extra=["-device", f"virtio-balloon-device,id=balloon0{dev_opts}",
                              "-qmp", f"unix:{sock},server=on,wait=off"])
        print(" ".join(cmd))
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             stdin=subprocess.DEVNULL)
        out = []
        t = threading.Thread(target=lambda: out.extend(iter(p.stdout.readline, "")),
                             daemon=True)
        t.start()
        qmp = None
        try:
            qmp = Qmp(sock)
            yield p, out, qmp
        finally:
            if qmp:
                qmp.close()
            if p.poll() is None:
                p.kill()
                p.wait()
            t.join(timeout=5)
            print("".join(out))


def wait_for(out, p, what, secs=30):
    """The first output line matching regex @what, or fail saying what came instead."""
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        for line in list(out):
            m = re.search(what, line)
            if m:
                return m
        if p.poll() is not None:
            break
        time.sleep(0.02)
    time.sleep(0.2)  # the reader thread's last lines
    for line in list(out):
        m = re.search(what, line)
        if m:
            return m
    state = "running" if p.poll() is None else f"exited with {p.poll()}"
    pytest.fail(f"no line matching {what!r} (QEMU {state}):\n" + "".join(out))


def set_balloon_mib(qmp, mib):
    """Ask for a balloon of @mib MiB (QEMU's value: the memory left to the guest)."""
    qmp.command("balloon", value=(RAM_MIB - mib) * MIB)


def rss_anon(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"RssAnon:\s+(\d+) kB", f.read()).group(1)) * 1024


def features(out, p):
    m = wait_for(out, p, r"balloon features=0x([0-9a-f]+) offered=0x([0-9a-f]+) queues=(\d+)")
    return int(m.group(1), 16), int(m.group(2), 16), int(m.group(3))


@pytest.mark.parametrize("opts", ["", "irq=1"], ids=["poll", "irq"])
def test_inflate_deflate_stats_report(opts):
    """Features; 8 MiB reported (the pool's top); 64 MiB of the pool touched, then ballooned:
    QEMU's actual shows RAM - 64 MiB and its RSS drops by about as much; the statistics
    polled once a second reach QEMU with the guest's RAM and the pool left free; deflated to
    16 MiB the guest takes 48 MiB back (writes every page) and exits PASS."""
    t0 = time.monotonic()
    args = f"test=balloon touch_mib=64 report_mib=8 exit_mib=16 {opts}".strip()
    with guest(args) as (p, out, qmp):
        feat, offered, queues = features(out, p)
        want = (1 << F_VERSION_1 | 1 << F_STATS_VQ | 1 << F_DEFLATE_ON_OOM | 1 << F_REPORTING)
        assert feat & want == want, hex(feat)
        assert not feat & (1 << F_PAGE_POISON) and feat & ~offered == 0, (hex(feat), hex(offered))
        assert queues == 4
        m = wait_for(out, p, r"balloon ram_bytes=(\d+) pool_mib=(\d+) ")
        ram_bytes, pool_mib = int(m.group(1)), int(m.group(2))
        assert RAM_MIB * MIB - 2 * MIB < ram_bytes <= RAM_MIB * MIB
        assert pool_mib >= RAM_MIB - 16, pool_mib
        wait_for(out, p, r"balloon touched_mib=64\r?$")
        wait_for(out, p, r"balloon reported_mib=8\r?$")
        wait_for(out, p, r"balloon actual_mib=0\r?$")
        qmp.command("qom-set", path=QOM, property="guest-stats-polling-interval", value=1)

        before = rss_anon(p.pid)
        set_balloon_mib(qmp, 64)
        wait_for(out, p, r"balloon actual_mib=64\r?$")
        assert qmp.command("query-balloon")["actual"] == (RAM_MIB - 64) * MIB
        after = rss_anon(p.pid)
        print(f"RssAnon {before / MIB:.1f} MiB -> {after / MIB:.1f} MiB after 64 MiB inflated")
        assert before - after > 56 * MIB, (before, after)

        # The guest's numbers as of the balloon at 64 MiB: at most ~2 polls away.
        deadline, stats = time.monotonic() + 10, {}
        while time.monotonic() < deadline:
            stats = qmp.command("qom-get", path=QOM, property="guest-stats")["stats"]
            if stats["stat-free-memory"] == (pool_mib - 64) * MIB:
                break
            time.sleep(0.2)
        print(stats)
        assert stats["stat-total-memory"] == ram_bytes, stats
        assert stats["stat-free-memory"] == (pool_mib - 64) * MIB, stats
        assert stats["stat-available-memory"] == stats["stat-free-memory"]
        assert stats["stat-swap-in"] == 0 and stats["stat-disk-caches"] == 0, stats
        assert int(wait_for(out, p, r"balloon stats_updates=(\d+)").group(1)) >= 1

        set_balloon_mib(qmp, 16)
        wait_for(out, p, r"balloon actual_mib=16\r?$")
        assert p.wait(timeout=20) == 1  # isa-debug-exit: status 0 -> 1
    text = "".join(out)
    assert "testguest: PASS" in text
    print(f"{opts or 'poll'}: {time.monotonic() - t0:.2f} s")


def test_retouch_and_bad_kinds_quietly_taken():
    """bad=pfn-outside and bad=report-unaligned: QEMU skips them and gives the buffers
    back; the guest goes on ballooning. The reported blocks are written again (retouch)."""
    args = ("test=balloon report_mib=6 retouch=1 bad=pfn-outside,report-unaligned "
            "exit_mib=8")
    with guest(args) as (p, out, qmp):
        wait_for(out, p, r"balloon reported_mib=6\r?$")
        wait_for(out, p, r"balloon retouched_mib=6\r?$")
        for kind in ("pfn-outside", "report-unaligned"):
            wait_for(out, p, rf"balloon bad={kind} sent\r?$")
            wait_for(out, p, rf"balloon bad={kind} used=1 needs_reset=0\r?$")
        wait_for(out, p, r"balloon actual_mib=0\r?$")
        set_balloon_mib(qmp, 8)
        wait_for(out, p, r"balloon actual_mib=8\r?$")  # exit_mib=8: QEMU is gone at once
        assert p.wait(timeout=20) == 1
    assert "testguest: PASS" in "".join(out)


def test_report_outside_breaks_qemu_device():
    """bad=report-outside: QEMU 7.2 cannot map the range ("bogus descriptor") and sets
    DEVICE_NEEDS_RESET; the guest says so and goes on (exit_mib=0: at once)."""
    with guest("test=balloon bad=report-outside exit_mib=0") as (p, out, qmp):
        wait_for(out, p, r"balloon bad=report-outside sent\r?$")
        m = wait_for(out, p, r"balloon bad=report-outside used=(\d) needs_reset=(\d)")
        assert m.group(1, 2) in (("0", "1"), ("1", "0")), m.group(0)
        assert p.wait(timeout=20) == 1
    assert "testguest: PASS" in "".join(out)


def test_plain_device_no_stats_no_reporting():
    """A device with neither deflate-on-oom nor free-page-reporting: STATS_VQ alone (QEMU
    always offers it), three queues; report_mib= is refused by name."""
    with guest("test=balloon exit_mib=4", dev_opts="") as (p, out, qmp):
        feat, offered, queues = features(out, p)
        assert not feat & (1 << F_REPORTING | 1 << F_DEFLATE_ON_OOM) and queues == 3, hex(feat)
        wait_for(out, p, r"balloon actual_mib=0\r?$")
        set_balloon_mib(qmp, 4)
        wait_for(out, p, r"balloon actual_mib=4\r?$")
        assert p.wait(timeout=20) == 1
    with guest("test=balloon report_mib=2", dev_opts="") as (p, out, qmp):
        wait_for(out, p, r"testguest: FAIL balloon: report_mib= but the device did not offer")
        assert p.wait(timeout=20) == 3
