"""The test guest's virtio-mmio driver against QEMU's own virtio-rng device, on QEMU
microvm under TCG (no /dev/kvm needed): the same binary and the same workloads that run
under hugevmm's entropy device, so a failure there can be told from a driver bug here.

QEMU 7.2 microvm puts virtio_mmio.device=512@0xfeb00000+512*i:5+i on the command line
only with acpi=off (with ACPI the devices are in its DSDT alone), and its virtio-mmio
transports are legacy (version 1) unless virtio-mmio.force-legacy=false."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BIN

GUEST = os.path.join(os.path.dirname(BIN), "testguest.elf")
QEMU = shutil.which("qemu-system-x86_64")

pytestmark = pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed "
                                "(make test installs Debian's qemu-system-x86)")


def qemu_cmd(args, rng="virtio-rng-device", legacy=False, mem=256):
    cmd = [QEMU, "-M", "microvm,acpi=off,rtc=off", "-accel", "tcg", "-m", str(mem),
           "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
           "-global", f"virtio-mmio.force-legacy={'true' if legacy else 'false'}"]
    if rng:
        cmd += ["-device", rng]
    return cmd + ["-kernel", GUEST, "-append", args]


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
