"""The test guest's virtio-mmio drivers against QEMU's own virtio-rng and virtio-blk
devices, on QEMU microvm under TCG (no /dev/kvm needed): the same binary and the same
workloads that run under hugevmm's entropy and block devices, so a failure there can be told
from a driver bug here.

QEMU 7.2 microvm puts virtio_mmio.device=512@0xfeb00000+512*i:5+i on the command line
only with acpi=off (with ACPI the devices are in its DSDT alone), and its virtio-mmio
transports are legacy (version 1) unless virtio-mmio.force-legacy=false. It gives the
first -device the highest transport and lists the transports from the highest down: the
guest's disk 0 is the first -device.

The sector pattern of test=blk (tests/guest/blk.c) is written and checked by
write_image() and image_runs() here; test_blk_guest.py uses them too."""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from conftest import BIN

GUEST = os.path.join(os.path.dirname(BIN), "testguest.elf")
QEMU = shutil.which("qemu-system-x86_64")

pytestmark = pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed "
                                "(make test installs Debian's qemu-system-x86)")


def qemu_cmd(args, rng="virtio-rng-device", legacy=False, mem=256, extra=()):
    cmd = [QEMU, "-M", "microvm,acpi=off,rtc=off", "-accel", "tcg", "-m", str(mem),
           "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
           "-global", f"virtio-mmio.force-legacy={'true' if legacy else 'false'}"]
    if rng:
        cmd += ["-device", rng]
    return cmd + list(extra) + ["-kernel", GUEST, "-append", args]


def qemu(args, timeout=20, **kw):
    t0 = time.monotonic()
    r = subprocess.run(qemu_cmd(args, **kw), capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    print(f"{args}: {time.monotonic() - t0:.2f} s\n{r.stdout}{r.stderr}")
    return r


def expect_pass(r):
    # isa-debug-exit turns the guest's status N into 2N+1: PASS (0) is 1, FAIL (1) is 3.
    assert r.returncode == 1 and "testguest: PASS" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("irq", [0, 1])
@pytest.mark.parametrize("indirect", [0, 1])
@pytest.mark.parametrize("event_idx", [0, 1])
def test_rng(event_idx, indirect, irq):
    r = qemu(f"test=rng bytes=65536 event_idx={event_idx} indirect={indirect} irq={irq}")
    expect_pass(r)
    assert re.search(r"^rng bytes=65536 .*distinct=256 ", r.stdout, re.M)
    assert f"event_idx={event_idx} indirect={indirect} irq={irq}\n" in r.stdout.replace("\r", "")
    if irq:
        assert int(re.search(r" irqs=(\d+)", r.stdout).group(1)) > 0


@pytest.mark.parametrize("irq", [0, 1])
def test_rng_small_ring_wraps(irq):
    """A 4-entry ring with 8 requests wanted in flight: the ring fills and wraps many
    times, chains of two descriptors cross the free list."""
    r = qemu(f"test=rng bytes=65536 qsize=4 depth=8 irq={irq}")
    expect_pass(r)
    assert "queue 0 size 4 " in r.stdout
    assert int(re.search(r"requests=(\d+)", r.stdout).group(1)) > 16


def test_rng_default_and_empty_transport_skipped():
    # One more entry naming a transport with no device behind it (DeviceID 0).
    r = qemu("test=rng virtio_mmio.device=512@0xfeb00000:5")
    expect_pass(r)
    assert re.search(r"^rng bytes=4096 ", r.stdout, re.M)
    assert "2 virtio_mmio.device= entries, 1 version 2 devices, 1 empty" in r.stdout


def test_rng_device_without_ring_features():
    rng = "virtio-rng-device,event_idx=off,indirect_desc=off"
    expect_pass(qemu("test=rng bytes=8192", rng=rng))
    r = qemu("test=rng event_idx=1", rng=rng)
    assert r.returncode == 3 and "testguest: FAIL" in r.stdout
    assert "event_idx=1 but the device does not offer VIRTIO_RING_F_EVENT_IDX" in r.stdout


def test_legacy_device_refused():
    r = qemu("test=rng", legacy=True)
    assert r.returncode == 3, r.stdout
    assert "legacy virtio-mmio (version 1) refused" in r.stdout
    assert "testguest: FAIL virtio: no entropy device" in r.stdout


def test_no_device():
    r = qemu("test=rng", rng=None)
    assert r.returncode == 3 and "testguest: FAIL virtio: no entropy device" in r.stdout


@pytest.mark.parametrize("irq", [0, 1])
def test_virtio_round_trip(irq):
    r = qemu(f"test=virtio-rt n=1000 irq={irq}")
    expect_pass(r)
    m = re.search(r"virtio-rt n=1000 cycles_median=(\d+) .* notifies=(\d+) irqs=(\d+)", r.stdout)
    assert m and int(m.group(1)) > 0
    assert int(m.group(2)) == 1000  # QEMU asks for every notification
    if irq:
        assert int(m.group(3)) >= 1000  # every round trip ends with its interrupt


# QEMU 7.2 marks DEVICE_NEEDS_RESET for these; for bad=addr it completes the buffer, and it
# lets bad=nested and bad=ring pass unnoticed (hugevmm's device must catch all six).
@pytest.mark.parametrize("kind", ["loop", "next", "indlen"])
def test_bad_ring_needs_reset_then_idle(kind):
    p = subprocess.Popen(qemu_cmd(f"test=virtio-bad bad={kind} tick_ms=50"),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         stdin=subprocess.DEVNULL)
    out = ""
    try:
        deadline = time.monotonic() + 20
        while "tick 2" not in out and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            out += line
        assert p.poll() is None, out  # the guest keeps running
    finally:
        p.send_signal(signal.SIGTERM)
        out += p.communicate(timeout=10)[0]
    print(out)
    assert f"virtio needs_reset=1 bad={kind} " in out
    assert "tick 2" in out


# ---- virtio-blk: QEMU's virtio-blk-device with aio=io_uring ----

SECTOR = 512
CHECK_SECTORS = 32768  # test=blk covers the first 16 MiB of a disk
RAMP = bytes(range(256)) * 3


def sector_bytes(s, seed):
    """Sector @s of an image written with @seed: le64 s, le64 seed, then (s + i) & 0xff
    for i in 16..511."""
    o = (s + 16) & 0xff
    return struct.pack("<QQ", s, seed) + RAMP[o:o + SECTOR - 16]


def write_image(path, sectors, seed, first=0):
    """An image of @sectors sectors holding the pattern of @seed (or, with @first, those
    sectors appended from sector @first on)."""
    with open(path, "ab" if first else "wb") as f:
        f.write(b"".join(sector_bytes(s, seed) for s in range(first, first + sectors)))
    return str(path)


def image_runs(path):
    """What an image holds, as runs [first, end, seed]: seed None for sectors that do not
    hold the pattern of any seed, 0 for zeros."""
    data = open(path, "rb").read()
    runs = []
    for s in range(len(data) // SECTOR):
        sec = data[s * SECTOR:(s + 1) * SECTOR]
        seed = struct.unpack_from("<Q", sec, 8)[0]
        if sec != sector_bytes(s, seed):
            seed = 0 if sec == bytes(SECTOR) else None
        if runs and runs[-1][1] == s and runs[-1][2] == seed:
            runs[-1][1] = s + 1
        else:
            runs.append([s, s + 1, seed])
    return runs


def after_blk(sectors, seed):
    """The runs of an image of @sectors sectors of @seed after test=blk seed=@seed."""
    done = min(sectors, CHECK_SECTORS)
    return [[0, done, seed + 1]] + ([[done, sectors, seed]] if sectors > done else [])


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def drive_args(drives):
    """-drive/-device pairs; each drive: a dict with file, and optional serial,
    readonly, cache (default writeback), dev (virtio-blk-device properties)."""
    out = []
    for i, d in enumerate(drives):
        drive = (f"if=none,id=d{i},file={d['file']},format=raw,aio=io_uring,"
                 f"cache={d.get('cache', 'writeback')}")
        if d.get("readonly"):
            drive += ",readonly=on"
        dev = f"virtio-blk-device,drive=d{i},serial={d.get('serial', f'disk{i}')}"
        dev += "".join(f",{k}={v}" for k, v in d.get("dev", {}).items())
        out += ["-drive", drive, "-device", dev]
    return out


def qemu_blk(args, drives, timeout=60):
    return qemu(args, timeout=timeout, rng=None, extra=drive_args(drives))


def expect_blk_pass(r, sectors, serial="disk0"):
    expect_pass(r)
    assert f"blk sectors={sectors} " in r.stdout
    assert f"blk id={serial}\n" in r.stdout
    assert re.search(r"^blk features=0x[0-9a-f]{16} ", r.stdout, re.M)


@pytest.mark.parametrize("opts,cache", [
    ("", "writeback"),
    ("irq=1", "none"),
    ("irq=1 event_idx=0", "writeback"),
    ("indirect=1 qsize=8 qd=16", "unsafe"),
    ("indirect=0 event_idx=0 qsize=4 qd=4", "writeback"),
    ("qd=1 irq=1 indirect=0", "none"),
])
def test_blk_pattern(tmp_path, opts, cache):
    """The pattern of seed 7 read back, seed 8 written in every layout and flushed; after
    QEMU exits the file holds 8 over the first 16 MiB and 7 after them."""
    img = write_image(tmp_path / "disk.img", 40000, 7)
    r = qemu_blk(f"test=blk seed=7 {opts}", [{"file": img, "cache": cache}])
    expect_blk_pass(r, 40000)
    out = r.stdout.replace("\r", "")
    assert "blk read sectors=32768 seed=7 " in out and "blk verified sectors=32768 seed=8 " in out
    assert "blk flush status=0 " in out
    assert re.search(r"^blk write_zeroes sector=16384 sectors=64 .* status=0$", out, re.M)
    assert re.search(r"^blk discard sector=8192 sectors=64 status=0$", out, re.M)
    layouts = dict(re.findall(r"(split|merged|multi_a|multi_b|indirect)=(\d+)",
                              re.search(r"^blk layouts .*$", out, re.M).group(0)))
    assert all(int(layouts[k]) > 0 for k in ("split", "merged"))
    if "qsize=4" not in opts:  # 5 descriptors do not fit a queue of 4
        assert int(layouts["multi_a"]) > 0 and int(layouts["multi_b"]) > 0
    assert (int(layouts["indirect"]) > 0) == ("indirect=0" not in opts)
    if "irq=1" in opts:
        assert int(re.search(r"^blk layouts .* irqs=(\d+)$", out, re.M).group(1)) > 0
    assert image_runs(img) == after_blk(40000, 7)


@pytest.mark.parametrize("sectors", [1, 37, 100])
def test_blk_small_image(tmp_path, sectors):
    """Images smaller than one round of the request mix: every sector rewritten."""
    img = write_image(tmp_path / "disk.img", sectors, 1000)
    r = qemu_blk(f"test=blk seed=1000 expect_sectors={sectors}", [{"file": img}])
    expect_blk_pass(r, sectors)
    assert image_runs(img) == [[0, sectors, 1001]]


def test_blk_two_drives(tmp_path):
    """disk=all: both disks in command-line order, each with its own serial and size; then
    disk=1 alone changes only the second image."""
    a = write_image(tmp_path / "a.img", 2048, 5)
    b = write_image(tmp_path / "b.img", 3000, 5)
    drives = [{"file": a, "serial": "first"}, {"file": b, "serial": "second"}]
    r = qemu_blk("test=blk seed=5 disk=all", drives)
    expect_pass(r)
    out = r.stdout.replace("\r", "")
    assert re.search(r"blk disk=0 of 2 .*\nblk sectors=2048 .*\n.*\n(.*\n)*?blk id=first\n", out)
    assert re.search(r"blk disk=1 of 2 .*\nblk sectors=3000 .*\n.*\n(.*\n)*?blk id=second\n", out)
    assert "blk disk=0 ok" in out and "blk disk=1 ok" in out
    assert image_runs(a) == [[0, 2048, 6]] and image_runs(b) == [[0, 3000, 6]]
    expect_blk_pass(qemu_blk("test=blk seed=6 disk=1", drives), 3000, "second")
    assert image_runs(a) == [[0, 2048, 6]] and image_runs(b) == [[0, 3000, 7]]
    r = qemu_blk("test=blk seed=6 disk=2", drives)
    assert r.returncode == 3 and "disk=2 but there are 2 block devices" in r.stdout


def test_blk_eight_drives_with_interrupts(tmp_path):
    """As many drives as QEMU microvm has transports (8): a vector and a queue each."""
    imgs = [write_image(tmp_path / f"d{i}.img", 64 + i, 3) for i in range(8)]
    r = qemu_blk("test=blk seed=3 disk=all qd=4 irq=1",
                 [{"file": p, "serial": f"d{i}"} for i, p in enumerate(imgs)])
    expect_pass(r)
    for i, p in enumerate(imgs):
        assert re.search(rf"^blk disk={i} of 8 .*\nblk sectors={64 + i} (.*\n)*?blk id=d{i}\n",
                         r.stdout, re.M), i
        assert image_runs(p) == [[0, 64 + i, 4]], i
    assert r.stdout.count(" -> IOAPIC ") == 8


def test_blk_read_only(tmp_path):
    """readonly=on: VIRTIO_BLK_F_RO, the pattern read, a write fails with IOERR, the file
    unchanged; a guest that expects a writable disk says why it fails."""
    img = write_image(tmp_path / "disk.img", 4096, 9)
    before = sha(img)
    drives = [{"file": img, "readonly": True}]
    r = qemu_blk("test=blk seed=9 ro=1", drives)
    expect_blk_pass(r, 4096)
    out = r.stdout.replace("\r", "")
    assert re.search(r"^blk features=.* ro=1 ", out, re.M)
    assert "blk read sectors=4096 seed=9 " in out
    assert "blk ro write status=1\nblk ro sector 0 unchanged\n" in out
    assert sha(img) == before
    r = qemu_blk("test=blk seed=9", drives)
    assert r.returncode == 3 and "FAIL blk: the device is read-only (VIRTIO_BLK_F_RO): give ro=1" in r.stdout
    r = qemu_blk("test=blk seed=9 ro=1", [{"file": img}])
    assert r.returncode == 3 and "FAIL blk: ro=1 but the device does not offer VIRTIO_BLK_F_RO" in r.stdout
    assert sha(img) == before


def test_blk_ro_auto_with_a_writable_and_a_read_only_drive(tmp_path):
    a = write_image(tmp_path / "a.img", 1024, 3)
    b = write_image(tmp_path / "b.img", 1024, 3)
    before = sha(b)
    r = qemu_blk("test=blk seed=3 disk=all ro=auto", [{"file": a}, {"file": b, "readonly": True}])
    expect_pass(r)
    assert "blk ro write status=1" in r.stdout
    assert image_runs(a) == [[0, 1024, 4]] and sha(b) == before


def test_blk_wrong_seed_or_size_fails(tmp_path):
    img = write_image(tmp_path / "disk.img", 2048, 21)
    before = sha(img)
    r = qemu_blk("test=blk seed=22", [{"file": img}])
    assert r.returncode == 3, r.stdout
    assert "blk: mismatch in sector 0 at byte 8 " in r.stdout
    assert "FAIL blk: a sector does not hold the pattern of the expected seed" in r.stdout
    r = qemu_blk("test=blk seed=21 expect_sectors=2047", [{"file": img}])
    assert r.returncode == 3 and "FAIL blk: the capacity is not the one expected" in r.stdout
    assert sha(img) == before  # nothing written before the read pass passed


def test_blk_features_declined_and_required(tmp_path):
    img = write_image(tmp_path / "disk.img", 2048, 1)
    r = qemu_blk("test=blk seed=1 flush=0 discard=0 write_zeroes=0", [{"file": img}])
    expect_blk_pass(r, 2048)
    out = r.stdout.replace("\r", "")
    assert re.search(r"^blk features=.* flush=0 discard=0 write_zeroes=0 ", out, re.M)
    assert "blk flush" not in out and "blk discard" not in out and "blk write_zeroes" not in out
    assert image_runs(img) == [[0, 2048, 2]]
    dev = {"discard": "off", "write-zeroes": "off"}
    r = qemu_blk("test=blk seed=2", [{"file": img, "dev": dev}])
    expect_blk_pass(r, 2048)
    assert "discard=0 write_zeroes=0" in r.stdout
    r = qemu_blk("test=blk seed=3 discard=1", [{"file": img, "dev": dev}])
    assert r.returncode == 3 and "discard=1 but the device does not offer the feature" in r.stdout


def test_blk_no_disk(tmp_path):
    r = qemu("test=blk seed=1")  # only an entropy device
    assert r.returncode == 3 and "FAIL blk: no block device (DeviceID 2" in r.stdout


def qmp(path, command, arguments=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(path))
    f = s.makefile("rw")
    json.loads(f.readline())  # the greeting
    replies = []
    for cmd in ({"execute": "qmp_capabilities"},
                {"execute": command, "arguments": arguments or {}}):
        f.write(json.dumps(cmd) + "\n")
        f.flush()
        while True:
            reply = json.loads(f.readline())
            if "return" in reply or "error" in reply:
                replies.append(reply)
                break
    s.close()
    assert "return" in replies[-1], replies
    return replies[-1]["return"]


def read_until(p, text, timeout=30):
    out, deadline = "", time.monotonic() + timeout
    while text not in out and time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        out += line
    return out


@pytest.mark.parametrize("irq", [0, 1])
def test_blk_configuration_change(tmp_path, irq):
    """wait_change=1: the disk grows under the running guest (QMP block_resize, the new
    sectors written first); the guest sees the configuration interrupt (or, polling,
    InterruptStatus), the new capacity, and the new sectors' pattern."""
    img = write_image(tmp_path / "disk.img", 2048, 11)
    sock = tmp_path / "qmp.sock"
    cmd = qemu_cmd(f"test=blk seed=11 wait_change=1 change_secs=60 irq={irq}", rng=None,
                   extra=drive_args([{"file": img}]) + ["-qmp", f"unix:{sock},server=on,wait=off"])
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         stdin=subprocess.DEVNULL)
    try:
        out = read_until(p, "blk waiting for a configuration change")
        assert "blk waiting for a configuration change" in out, out
        write_image(img, 2048, 12, first=2048)  # what the guest wrote: seed 12
        qmp(sock, "block_resize", {"device": "d0", "size": 4096 * SECTOR})
        out += p.communicate(timeout=60)[0]
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    print(out)
    out = out.replace("\r", "")
    assert p.returncode == 1 and "testguest: PASS" in out, out
    by = "interrupt" if irq else "isr"
    assert re.search(rf"^blk changed sectors=4096 by={by} generation=\d+->\d+$", out, re.M)
    assert "blk seed=12\n" in out and "blk verified sectors=4096 seed=12 " in out
    assert image_runs(img) == [[0, 4096, 12]]


def bench_line(out):
    m = re.search(r"^blkbench mode=(\w+) bs=(\d+) qd=(\d+) iops=(\d+) mbps=([\d.]+) ios=(\d+) "
                  r"ms=(\d+) lat_us=([\d.]+) errors=0 ", out, re.M)
    assert m, out
    return m


@pytest.mark.parametrize("mode,bs,qd,opts", [
    ("randread", 4096, 1, ""),
    ("randread", 4096, 32, "irq=1"),
    ("randwrite", 4096, 8, "indirect=1"),
    ("read", 131072, 4, ""),
    ("write", 131072, 2, "event_idx=0"),
])
def test_blkbench(tmp_path, mode, bs, qd, opts):
    img = write_image(tmp_path / "disk.img", 65536, 1)
    before = sha(img)
    t0 = time.monotonic()
    r = qemu_blk(f"test=blkbench mode={mode} bs={bs} qd={qd} secs=2 {opts}", [{"file": img}])
    wall = time.monotonic() - t0
    expect_pass(r)
    m = bench_line(r.stdout)
    assert m.group(1) == mode and int(m.group(2)) == bs and int(m.group(3)) == qd
    iops, mbps, ios, ms = int(m.group(4)), float(m.group(5)), int(m.group(6)), int(m.group(7))
    assert ios > 0 and iops > 0
    assert 1900 <= ms <= 2600 and wall >= 2  # the TSC calibration holds against wall time
    assert abs(iops - ios * 1000 / ms) <= max(2, iops * 0.01)
    assert abs(mbps - iops * bs / 1e6) <= max(0.2, mbps * 0.01)
    assert (sha(img) == before) == mode.endswith("read")


def test_blkbench_refuses_a_write_mode_on_a_read_only_disk(tmp_path):
    img = write_image(tmp_path / "disk.img", 64, 1)
    r = qemu_blk("test=blkbench mode=randwrite secs=1", [{"file": img, "readonly": True}])
    assert r.returncode == 3 and "FAIL blkbench: a write mode on a read-only device" in r.stdout


def blk_bad(tmp_path, kind, readonly=False):
    img = write_image(tmp_path / "disk.img", 1024, 1)
    before = sha(img)
    p = subprocess.Popen(qemu_cmd(f"test=blk-bad bad={kind} tick_ms=50", rng=None,
                                  extra=drive_args([{"file": img, "readonly": readonly}])),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         stdin=subprocess.DEVNULL)
    try:
        out = read_until(p, "tick 2")
        # Still running after two ticks of its idle loop, or the status it exited with.
        status = None if "tick 2" in out and p.poll() is None else p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        out += p.communicate(timeout=10)[0]
    print(out)
    assert sha(img) == before  # no bad request wrote anything
    return out.replace("\r", ""), status


@pytest.mark.parametrize("readonly", [False, True])
def test_blk_bad_range_ioerr_then_idle(tmp_path, readonly):
    """Sectors past the end, across it, and at 2^55 (512 * 2^55 wraps to 0): IOERR each,
    the file untouched, a good read afterwards; then the guest idles."""
    out, status = blk_bad(tmp_path, "range", readonly)
    assert status is None, out
    for what in ("read_past_end", "read_across_end", "read_wrapping_offset",
                 "read_last_sector_number") + (() if readonly else (
                     "write_past_end", "write_across_end", "write_wrapping_offset")):
        assert re.search(rf"^blk-bad {what} outcome=used len=\d+ status=1$", out, re.M), what
    assert ("write_past_end" in out) != readonly
    assert re.search(r"^blk-bad good_read_after outcome=used len=513 status=0$", out, re.M)
    assert "blk-bad bad=range needs_reset=0 verdict=ok\ntestguest: PASS\n" in out


# QEMU 7.2 marks DEVICE_NEEDS_RESET for a zero-length status descriptor ("zero sized buffers
# are not allowed") and for a chain with nothing device-writable ("missing headers"); an IN
# whose data is device-readable it takes as an IN of 0 bytes and completes with OK, which the
# guest calls wrong (hugevmm's device must answer IOERR or DEVICE_NEEDS_RESET).
@pytest.mark.parametrize("kind", ["status", "nostatus"])
def test_blk_bad_needs_reset_then_idle(tmp_path, kind):
    out, status = blk_bad(tmp_path, kind)
    assert status is None, out
    assert f"blk-bad {kind} outcome=needs_reset\n" in out
    assert f"blk-bad bad={kind} needs_reset=1 verdict=ok\ntestguest: PASS\nidle\n" in out


def test_blk_bad_rodesc_qemu_completes_it(tmp_path):
    out, status = blk_bad(tmp_path, "rodesc")
    assert status == 3, out
    assert "blk-bad rodesc outcome=used len=1 status=0\nblk-bad rodesc readable_data=kept\n" in out
    assert "verdict=wrong\ntestguest: FAIL blk-bad: the device did not answer" in out
