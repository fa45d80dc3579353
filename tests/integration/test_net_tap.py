"""Network interfaces meet the host: hugevmm opens an existing tap and refuses, with exit 2
and a message naming the field, the device and the remedy, a tap that does not exist, an
interface that is not a tap, a TUN device, and a tap another process holds. The refusals
come before /dev/kvm is opened and leave nothing behind, so they run everywhere (as root:
the test makes its own taps, each with a name of its own, and removes them). A tap that is
right gets past the check: on a machine without /dev/kvm the run then stops there."""
import fcntl
import json
import os
import struct

import pytest

from conftest import BIN, run

GUEST = os.path.join(os.path.dirname(BIN), "testguest.elf")
TUNSETIFF = 0x400454ca
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000


def run_net(tmp_path, host_dev, **extra):
    cfg = {"boot-source": {"kernel_image_path": GUEST, "boot_args": "test=exit code=0"},
           "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
           "serial": {"serial_out_path": str(tmp_path / "console.log")},
           "network-interfaces": [dict({"iface_id": "eth0", "host_dev_name": host_dev},
                                       **extra)]}
    path = tmp_path / "vm.json"
    path.write_text(json.dumps(cfg))
    before = sorted(os.listdir(tmp_path))
    r = run(["--api-sock", str(tmp_path / "api.sock"), "--config-file", str(path)], timeout=60)
    return r, before


def refused(tmp_path, host_dev, *words):
    r, before = run_net(tmp_path, host_dev)
    assert r.returncode == 2, r.stderr
    assert sorted(os.listdir(tmp_path)) == before, r.stderr  # no socket, no console file
    line = [l for l in r.stderr.splitlines() if "error" in l][-1]
    for w in ("network-interfaces[0].host_dev_name", host_dev, *words):
        assert w in line, line


def test_a_missing_tap_is_refused_with_the_lines_to_make_it(tmp_path):
    refused(tmp_path, "hvnosuch0", "ip tuntap add dev hvnosuch0 mode tap")


def test_an_interface_that_is_not_a_tap_is_refused(tmp_path):
    refused(tmp_path, "lo", "not a tap")


def test_a_tun_device_is_refused(tmp_path, tapdev):
    refused(tmp_path, tapdev("tun"), "TUN device")


def test_a_tap_another_process_holds_is_refused(tmp_path, tapdev):
    name = tapdev("tap")
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(),
                                               IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
        refused(tmp_path, name, "another process has it")
    finally:
        os.close(fd)


def test_a_good_tap_passes_the_check(tmp_path, tapdev):
    r, _ = run_net(tmp_path, tapdev("tap"))
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        # Past the tap: the next thing hugevmm needs is /dev/kvm.
        assert r.returncode == 1 and "/dev/kvm" in r.stderr, r.stderr
    else:
        assert r.returncode == 0, r.stderr
