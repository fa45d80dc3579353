"""Booting the test guest on this machine's /dev/kvm: every workload, 1 and
several vCPUs, anon/thp/hugetlb memory, RAM across the 32-bit hole; the same
ELF under QEMU microvm; and bad boot inputs, each a clear message and exit 2."""
import datetime
import json
import os
import pathlib
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, GiB, MiB, pool_counters, run

GUEST = os.path.join(os.path.dirname(BIN), "testguest.elf")
QEMU = shutil.which("qemu-system-x86_64")

needs_kvm = pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                               reason="/dev/kvm is absent or not accessible")


def boot_config(tmp_path, args, vcpus=1, regions=None, kernel=GUEST, initrd=None, **extra):
    cfg = {"boot-source": {"kernel_image_path": kernel, "boot_args": args},
           "machine-config": {"vcpu_count": vcpus},
           "memory": {"regions": regions or [{"backing": "thp", "size_mib": 256}]}}
    if initrd:
        cfg["boot-source"]["initrd_path"] = initrd
    cfg.update(extra)
    p = tmp_path / "vm.json"
    p.write_text(json.dumps(cfg))
    return str(p)


def boot(tmp_path, args, timeout=120, extra_args=(), **kw):
    r = run(["--config-file", boot_config(tmp_path, args, **kw), *extra_args], timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def expect_pass(rc, out, err, status=0):
    assert "testguest: PASS" in out, f"guest output:\n{out}\nhugevmm stderr:\n{err}"
    assert rc == status, err


BACKINGS = {
    "anon": [{"backing": "anon", "size_mib": 256}],
    "thp": [{"backing": "thp", "size_mib": 256}],
    "hugetlb": [{"backing": "hugetlb", "size_mib": 256}],
}


@pytest.fixture
def backing_regions(request, sysfs, hugetlb_pool):
    if request.param == "hugetlb":
        hugetlb_pool(2048, 128)
    return BACKINGS[request.param]


def memcheck_bytes(regions_mib, image_bytes):
    """RAM of the e820 map (the PC low-memory hole taken out) minus the guest image."""
    return sum(regions_mib) * MiB - (0x100000 - 0x9fc00) - image_bytes


def guest_image_bytes():
    out = subprocess.run(["readelf", "-lW", GUEST], capture_output=True, text=True).stdout
    load = [l.split() for l in out.splitlines() if l.strip().startswith("LOAD")][0]
    return (int(load[5], 16) + 0xfff) // 0x1000 * 0x1000


@needs_kvm
@pytest.mark.parametrize("backing_regions", ["anon", "thp", "hugetlb"], indirect=True)
@pytest.mark.parametrize("vcpus", [1, 2])
def test_memcheck(tmp_path, backing_regions, vcpus):
    rc, out, err = boot(tmp_path, "test=memcheck", vcpus=vcpus, regions=backing_regions)
    expect_pass(rc, out, err)
    got = int(re.search(r"memcheck bytes=(\d+)", out).group(1))
    assert got == memcheck_bytes([256], guest_image_bytes())


@needs_kvm
def test_memcheck_across_the_hole(tmp_path, sysfs):
    # 3.5 GiB of THP (two memslots: below 3 GiB and from 4 GiB) and 64 MiB of anon above.
    regions = [{"backing": "thp", "size_mib": 3584}, {"backing": "anon", "size_mib": 64}]
    rc, out, err = boot(tmp_path, "test=memcheck", vcpus=2, regions=regions, timeout=300,
                        extra_args=["--report", "json"])
    expect_pass(rc, out, err)
    assert int(re.search(r"memcheck bytes=(\d+)", out).group(1)) == \
        memcheck_bytes([3584, 64], guest_image_bytes())
    assert "top 0x0000000124000000" in out  # RAM ends at 4 GiB + 512 + 64 MiB
    report = json.loads(out[out.index("{"):])
    slots = [(s["guest_phys_addr"], s["size_bytes"]) for r in report["regions"] for s in r["slots"]]
    assert slots == [(0, 3 * GiB), (4 * GiB, 512 * MiB), (4 * GiB + 512 * MiB, 64 * MiB)]


@needs_kvm
@pytest.mark.parametrize("backing_regions", ["anon", "thp", "hugetlb"], indirect=True)
def test_randread(tmp_path, backing_regions):
    rc, out, err = boot(tmp_path, "test=randread size_mib=64 iters=200000", regions=backing_regions)
    expect_pass(rc, out, err)
    cpr = float(re.search(r"cycles_per_read=([\d.]+)", out).group(1))
    assert 1 < cpr < 100000


@needs_kvm
@pytest.mark.parametrize("vcpus", [1, 2, 4])
def test_smp(tmp_path, sysfs, vcpus):
    rc, out, err = boot(tmp_path, "test=smp", vcpus=vcpus)
    expect_pass(rc, out, err)
    assert f"smp cpus={vcpus} of {vcpus}" in out


@needs_kvm
def test_rtc_tells_the_host_time(tmp_path, sysfs):
    """The guest reads the CMOS clock as a kernel does at boot: UTC, BCD, within seconds."""
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    rc, out, err = boot(tmp_path, "test=rtc")
    after = datetime.datetime.now(datetime.timezone.utc)
    expect_pass(rc, out, err)
    m = re.search(r"rtc: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", out)
    assert m, out
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    assert before <= t <= after, (before, t, after)


@needs_kvm
@pytest.mark.parametrize("code", [0, 3, 42, 255])
def test_exit_code(tmp_path, sysfs, code):
    rc, out, err = boot(tmp_path, f"test=exit code={code}")
    expect_pass(rc, out, err, status=code)


@needs_kvm
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_idle_stops_on_signal(tmp_path, sysfs, sig):
    p = subprocess.Popen([BIN, "--config-file", boot_config(tmp_path, "test=idle", vcpus=2)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         text=True)
    line = ""
    deadline = time.time() + 60
    while "idle" not in line and time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
    assert "idle" in line, p.stderr.read()
    time.sleep(0.2)
    assert p.poll() is None  # still running, halted
    p.send_signal(sig)
    assert p.wait(timeout=30) == 0
    assert "stopping the VM" in p.stderr.read()
    p.stdout.close()
    p.stderr.close()


@needs_kvm
def test_fatal_guest_exit_is_reported(tmp_path, sysfs):
    # An exception with no IDT: a triple fault on hardware; this host's ring-0
    # emulator reports it as an internal error. Either way: say so, dump, exit 1.
    rc, out, err = boot(tmp_path, "test=crash", vcpus=2, timeout=60)
    assert "crashing" in out
    assert rc == 1, err
    assert re.search(r"vCPU 0: (triple fault|internal error)", err), err
    assert re.search(r"rip=[0-9a-f]{16}", err) and "cr0=" in err and "cs=0008" in err


@needs_kvm
def test_terminal_console_escape_restores_tty(tmp_path, sysfs):
    import pty
    import termios
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    p = subprocess.Popen([BIN, "--config-file", boot_config(tmp_path, "test=idle")],
                         stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    out, deadline = b"", time.time() + 60
    while b"idle" not in out and time.time() < deadline:
        out += os.read(master, 4096)
    assert b"idle" in out
    # On a terminal the console is raw: no echo, no line editing.
    assert not termios.tcgetattr(slave)[3] & termios.ECHO
    os.write(master, b"\x01x")  # Ctrl-A x
    assert p.wait(timeout=30) == 0
    assert termios.tcgetattr(slave) == before  # the terminal is given back as it was
    os.close(master)
    os.close(slave)
    p.stderr.close()


def cpu_seconds(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


@needs_kvm
def test_console_output_nobody_reads_then_sigterm(tmp_path, sysfs):
    # The guest prints without end into a pipe nobody drains: vCPUs must not block in
    # write(), and SIGTERM must still stop everything promptly (found in review).
    import fcntl
    rfd, wfd = os.pipe()
    fcntl.fcntl(wfd, 1031, 4096)  # F_SETPIPE_SZ: one page, full at once
    p = subprocess.Popen([BIN, "--config-file", boot_config(tmp_path, "test=spam")],
                         stdout=wfd, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(wfd)
    time.sleep(2.5)  # the guest prints ~25 KB/s here: the UART's 16 KiB ring fills too
    assert p.poll() is None
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=10)
    finally:
        p.kill()
    assert rc == 0
    assert b"not written (the reader is not reading)" in p.stderr.read()
    os.close(rfd)
    p.stderr.close()


@needs_kvm
def test_console_input_the_guest_ignores(tmp_path, sysfs):
    # test=idle never reads the UART: typed input fills its FIFO. hugevmm must not spin,
    # and Ctrl-A x must still work (found in review).
    import pty
    master, slave = pty.openpty()
    p = subprocess.Popen([BIN, "--config-file", boot_config(tmp_path, "test=idle")],
                         stdin=slave, stdout=slave, stderr=subprocess.DEVNULL)
    out, deadline = b"", time.time() + 60
    while b"idle" not in out and time.time() < deadline:
        out += os.read(master, 4096)
    os.write(master, b"y" * 300)
    time.sleep(0.3)
    before = cpu_seconds(p.pid)
    time.sleep(1.0)
    assert cpu_seconds(p.pid) - before < 0.3, "busy while the UART FIFO is full"
    os.write(master, b"\x01x")
    assert p.wait(timeout=30) == 0
    os.close(master)
    os.close(slave)


@needs_kvm
def test_failed_launch_leaves_no_console_file(tmp_path, sysfs):
    # Console files are opened last: a launch that fails creates none and empties none.
    initrd = tmp_path / "initrd"
    with open(initrd, "wb") as f:
        f.truncate(300 * MiB)
    new_log, old_log = tmp_path / "new.log", tmp_path / "old.log"
    old_log.write_text("yesterday's console\n")
    for log in (new_log, old_log):
        rc, out, err = boot(tmp_path, "test=exit", initrd=str(initrd), serial={"serial_out_path": str(log)})
        assert rc == 2 and "boot-source.initrd_path" in err
    assert not new_log.exists()
    assert old_log.read_text() == "yesterday's console\n"


@needs_kvm
def test_serial_to_file_and_report(tmp_path, sysfs):
    out_file = tmp_path / "console.log"
    rc, out, err = boot(tmp_path, "test=exit code=0", serial={"serial_out_path": str(out_file)},
                        extra_args=["--report", "json"])
    assert rc == 0, err
    assert "testguest: PASS" in out_file.read_text()
    report = json.loads(out)
    assert report["regions"][0]["host"]["coverage"] == 1.0
    kvm = report["kvm"]
    if kvm["available"]:
        assert kvm["pages_4k"] + kvm["pages_2m"] + kvm["pages_1g"] > 0
    else:
        assert kvm["reason"] and "pages_4k" not in kvm  # unavailable is never zero coverage


@needs_kvm
def test_bundled_default_config_boots():
    root = os.path.dirname(os.path.dirname(BIN))
    r = subprocess.run([BIN, "--config-file", "configs/default.json", "--report", "human"],
                       cwd=root, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert "testguest: PASS" in r.stdout and "REGION" in r.stdout


# ---- QEMU microvm: the same ELF ----

def qemu(args, vcpus=1, mem=256):
    return subprocess.run([QEMU, "-M", "microvm", "-accel", "kvm", "-m", str(mem), "-smp", str(vcpus),
                           "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
                           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                           "-kernel", GUEST, "-append", args],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@needs_kvm
@pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed (make test installs "
                    "Debian's qemu-system-x86)")
@pytest.mark.parametrize("args,vcpus,expect", [
    ("test=memcheck", 1, r"memcheck bytes=\d+"),
    ("test=smp", 2, r"smp cpus=2 of 2"),
    ("test=randread size_mib=16 iters=100000", 1, r"cycles_per_read=[\d.]+"),
])
def test_same_guest_under_qemu_microvm(args, vcpus, expect):
    r = qemu(args, vcpus)
    # isa-debug-exit turns the guest's status N into 2N+1.
    assert r.returncode == 1, r.stdout + r.stderr
    assert "testguest: PASS" in r.stdout and re.search(expect, r.stdout)
    if args == "test=memcheck":
        # Same RAM, same image: QEMU's memory map and hugevmm's agree byte for byte.
        assert int(re.search(r"memcheck bytes=(\d+)", r.stdout).group(1)) == \
            memcheck_bytes([256], guest_image_bytes())


@needs_kvm
@pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed")
def test_qemu_exit_status_convention():
    assert qemu("test=exit code=5").returncode == 11


# ---- bad input: exit 2, a message naming the field, nothing left behind ----

def bad_boot(tmp_path, kernel, args="test=exit", expect="", **kw):
    before = pool_counters(2048)
    rc, out, err = boot(tmp_path, args, kernel=kernel, **kw)
    assert rc == 2, f"rc={rc}\n{err}"
    assert expect in err, err
    assert "testguest" not in out
    assert pool_counters(2048) == before
    return err


def test_missing_kernel(tmp_path):
    bad_boot(tmp_path, str(tmp_path / "nope"), expect='boot-source.kernel_image_path: "')


def test_unreadable_kernel(tmp_path):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run hugevmm as an unprivileged user")
    # pytest's own temp tree is private to root; "nobody" needs a readable config.
    d = tempfile.mkdtemp(prefix="hugevmm-")
    try:
        os.chmod(d, 0o755)
        k = os.path.join(d, "kernel")
        shutil.copy(GUEST, k)
        os.chmod(k, 0)
        cfg = boot_config(pathlib.Path(d), "test=exit", kernel=k)
        os.chmod(cfg, 0o644)
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", BIN,
                            "--config-file", cfg], capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(d)
    assert r.returncode == 2, r.stderr
    assert "boot-source.kernel_image_path" in r.stderr and "Permission denied" in r.stderr


def test_neither_bzimage_nor_elf(tmp_path):
    k = tmp_path / "kernel"
    k.write_bytes(b"#!/bin/sh\n" + os.urandom(8192))
    bad_boot(tmp_path, str(k), expect="is neither a bzImage")


def elf_with(tmp_path, name, **patch):
    data = bytearray(open(GUEST, "rb").read())
    if "entry" in patch:
        struct.pack_into("<Q", data, 24, patch["entry"])
    if "machine" in patch:
        struct.pack_into("<H", data, 18, patch["machine"])
    if "memsz" in patch:
        phoff = struct.unpack_from("<Q", data, 32)[0]
        struct.pack_into("<Q", data, phoff + 40, patch["memsz"])  # first PT_LOAD's p_memsz
    if "no_note" in patch:
        phoff = struct.unpack_from("<Q", data, 32)[0]
        struct.pack_into("<I", data, phoff + 56, 0)  # second phdr (PT_NOTE) -> PT_NULL
    p = tmp_path / name
    p.write_bytes(bytes(data))
    return str(p)


def test_elf_without_usable_entry(tmp_path):
    bad_boot(tmp_path, elf_with(tmp_path, "noentry", entry=0x40, no_note=True),
             expect="has no usable entry point")


def test_elf_for_another_machine(tmp_path):
    bad_boot(tmp_path, elf_with(tmp_path, "arm", machine=183), expect="for machine 183, not x86-64")


def test_kernel_larger_than_ram(tmp_path):
    bad_boot(tmp_path, elf_with(tmp_path, "huge", memsz=512 * MiB),
             expect="give the VM more memory")


def test_initrd_larger_than_ram(tmp_path):
    initrd = tmp_path / "initrd"
    with open(initrd, "wb") as f:
        f.truncate(300 * MiB)
    bad_boot(tmp_path, GUEST, initrd=str(initrd), expect="boot-source.initrd_path")


def test_command_line_over_the_limit(tmp_path):
    bad_boot(tmp_path, GUEST, args="x" * 5000, expect="boot-source.boot_args: longer than")


def test_boot_source_required(tmp_path):
    p = tmp_path / "vm.json"
    p.write_text(json.dumps({"machine-config": {"vcpu_count": 1, "mem_size_mib": 128}}))
    r = run(["--config-file", str(p)])
    assert r.returncode == 2 and "boot-source: missing" in r.stderr


# ---- devices: the entropy device through virtio-mmio ----

@needs_kvm
@pytest.mark.parametrize("vcpus,args", [
    (1, "test=rng bytes=65536 irq=1"),
    (2, "test=rng bytes=65536 irq=0 event_idx=0 indirect=1"),
])
def test_entropy_device(tmp_path, sysfs, vcpus, args):
    rc, out, err = boot(tmp_path, args, vcpus=vcpus, entropy={})
    expect_pass(rc, out, err)
    assert "rng bytes=65536" in out


@needs_kvm
def test_entropy_rate_limited(tmp_path, sysfs):
    """8 KiB per 100 ms and no burst: 128 KiB cannot come in under 1.5 s."""
    t0 = time.monotonic()
    rc, out, err = boot(tmp_path, "test=rng bytes=131072", entropy={
        "rate_limiter": {"bandwidth": {"size": 8192, "refill_time": 100}}})
    expect_pass(rc, out, err)
    assert time.monotonic() - t0 >= 1.5


@needs_kvm
def test_no_entropy_device_without_the_section(tmp_path, sysfs):
    rc, out, err = boot(tmp_path, "test=rng bytes=4096")
    assert rc == 1 and "testguest: FAIL" in out, out + err
