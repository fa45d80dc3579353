"""Drives (Firecracker's Drive and PartialDrive, hugevmm's "direct") through the config file
and the API: bad input is refused before anything is built (exit 2 / HTTP 400, the message
naming the field, the value and the remedy, nothing left behind), good input comes back
whole from GET /vm/config, PATCH /drives/{id} changes the configuration before boot and the
device after it. The refusals happen before /dev/kvm is opened, so they run everywhere; what
needs a running VM skips where /dev/kvm is absent, saying so."""
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile

import pytest

from conftest import BIN, assert_refused, error_line, run, run_guest_config
from fcapi import api, conforms, flush_metrics

GUEST = os.path.join(os.path.dirname(BIN), "testguest.elf")
HAVE_KVM = os.access("/dev/kvm", os.R_OK | os.W_OK)
needs_kvm = pytest.mark.skipif(not HAVE_KVM, reason="/dev/kvm is absent or not accessible: "
                               "the running-VM half runs where it is (the L1 tier)")


def image(path, size=1 << 20):
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


def drive(drive_id, path, root=False, **kw):
    return dict({"drive_id": drive_id, "path_on_host": str(path), "is_root_device": root}, **kw)


def run_config(tmp_path, drives, refused=True, **top):
    """run_guest_config with @drives and the other top-level sections @top."""
    return run_guest_config(tmp_path, dict({"drives": drives}, **top), refused)


# ---------------------------------------------------------------- the config file

def bad_file_cases(tmp_path):
    """(drives, words the message must hold) for each kind of bad drive input."""
    ok = image(tmp_path / "ok.img")
    small = image(tmp_path / "small.img", 511)
    empty = image(tmp_path / "empty.img", 0)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.close()
    d17 = [drive(f"d{i}", ok) for i in range(17)]
    return {
        "missing": ([drive("rootfs", tmp_path / "none.img", True)],
                    ["drives[0].path_on_host", str(tmp_path / "none.img"),
                     "No such file or directory", "give an existing disk image"]),
        "directory": ([drive("rootfs", ok, True), drive("data", tmp_path)],
                      ["drives[1].path_on_host", str(tmp_path), "is a directory",
                       "a drive is a regular file (a disk image) or a block device"]),
        "fifo": ([drive("rootfs", fifo, True)],
                 ["drives[0].path_on_host", str(fifo), "is a FIFO", "a drive is a regular file"]),
        "socket": ([drive("rootfs", sock, True, is_read_only=True)],
                   ["drives[0].path_on_host", str(sock), "is a socket"]),
        "char_device": ([drive("rootfs", "/dev/null", True)],
                        ["drives[0].path_on_host", "/dev/null", "is a character device"]),
        "empty": ([drive("rootfs", empty, True)],
                  ["drives[0].path_on_host", empty, "is 0 bytes",
                   "smaller than one 512-byte sector"]),
        "smaller_than_a_sector": ([drive("rootfs", small, True, is_read_only=True)],
                                  ["drives[0].path_on_host", small, "is 511 bytes",
                                   "smaller than one 512-byte sector"]),
        "two_roots": ([drive("a", ok, True), drive("b", ok, True)],
                      ["drives[1].is_root_device", "drives[0] is already the root device",
                       "only one drive can be"]),
        "duplicate_ids": ([drive("a", ok, True), drive("a", ok)],
                          ["drives[1].drive_id", '"a"', "is already used by drives[0]",
                           "ids must be unique"]),
        "seventeen": (d17, ["drives: 17 drives; at most 16", "18 interrupt lines",
                            "give fewer"]),
        "cache_type": ([drive("a", ok, True, cache_type="Safe")],
                       ["drives[0].cache_type", '"Safe"', "is not known",
                        '"Unsafe", "Writeback"']),
        "io_engine": ([drive("a", ok, True, io_engine="Uring")],
                      ["drives[0].io_engine", '"Uring"', '"Sync", "Async"']),
        "vhost_user": ([{"drive_id": "a", "is_root_device": True, "socket": "/run/vhost.sock"}],
                       ["drives[0].socket", "no vhost-user", "give path_on_host"]),
        "partuuid": ([drive("a", ok, True, partuuid="1234 init=/bin/sh")],
                     ["drives[0].partuuid", '"1234 init=/bin/sh"', "is not a partition UUID",
                      "blkid"]),
        "rate_limiter": ([drive("a", ok, True, rate_limiter={"ops": {"size": 10}})],
                         ["drives[0].rate_limiter.ops.refill_time: missing"]),
        "direct_type": ([drive("a", ok, True, direct=1)],
                        ["drives[0].direct", "expected true or false"]),
    }


CASES = ["missing", "directory", "fifo", "socket", "char_device", "empty",
         "smaller_than_a_sector", "two_roots", "duplicate_ids", "seventeen", "cache_type",
         "io_engine", "vhost_user", "partuuid", "rate_limiter", "direct_type"]


@pytest.mark.parametrize("case", CASES)
def test_config_file_refuses(case, tmp_path):
    drives, words = bad_file_cases(tmp_path)[case]
    assert_refused(*run_config(tmp_path, drives), words)


def as_nobody(args, timeout=60):
    """hugevmm as the unprivileged user nobody (root opens any file for writing)."""
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BIN]
                          + args, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def others_may_use(path):
    """Whether a user other than the owner can reach @path (x on every directory above it)
    and read and execute it."""
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    for i in range(2, len(parts)):
        if not os.stat(os.sep.join(parts[:i])).st_mode & 0o001:
            return False
    return os.stat(path).st_mode & 0o005 == 0o005


def test_config_file_unwritable_image(tmp_path):
    """An image the user may read but not write: refused for a writable drive, naming the
    remedy, and taken for a read-only one. Root writes any file (CAP_DAC_OVERRIDE), so as
    root hugevmm runs as nobody, in a directory nobody can read."""
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("as root an unwritable image needs another user, and setpriv (util-linux) "
                    "is missing")
    if os.geteuid() == 0 and not (others_may_use(BIN) and others_may_use(GUEST)):
        pytest.skip(f"as root an unwritable image needs another user, who cannot run {BIN} "
                    "(a directory above it is private, as /root is)")
    d = tempfile.mkdtemp(prefix="hugevmm-unwritable-", dir="/tmp") if os.geteuid() == 0 \
        else str(tmp_path)
    try:
        os.chmod(d, 0o755)
        ro = image(os.path.join(d, "ro.img"))
        os.chmod(ro, 0o444)
        for read_only in (False, True):
            cfg = {"boot-source": {"kernel_image_path": GUEST, "boot_args": "test=exit code=0"},
                   "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
                   "drives": [drive("rootfs", ro, True, is_read_only=read_only)]}
            path = os.path.join(d, f"vm-{read_only}.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            os.chmod(path, 0o644)
            args = ["--config-file", path]
            r = as_nobody(args) if os.geteuid() == 0 else run(args)
            if not read_only:
                assert r.returncode == 2, r.stderr
                line = error_line(r.stderr)
                assert "drives[0].path_on_host" in line and ro in line, line
                assert "is_read_only true" in line, line
            else:  # taken; what follows (/dev/kvm, the boot) is not this test's business
                assert "drives[0]" not in r.stderr, r.stderr
    finally:
        if d != str(tmp_path):
            shutil.rmtree(d)


def test_check_takes_every_field(tmp_path):
    """`hugevmm check` accepts the whole Drive schema, no warning about drives."""
    img, data = image(tmp_path / "root.img"), image(tmp_path / "data.img", 512)
    cfg = {"drives": [
        drive("rootfs", img, True, partuuid="0eaa91a0-01", cache_type="Writeback",
              is_read_only=False, io_engine="Async", direct=True,
              rate_limiter={"bandwidth": {"size": 1 << 20, "one_time_burst": 1 << 16,
                                          "refill_time": 100},
                            "ops": {"size": 1000, "refill_time": 1000}}),
        drive("data", data, is_read_only=True, partuuid=None, rate_limiter=None,
              io_engine=None, socket=None)]}
    conforms(cfg, "FullVmConfiguration")
    path = tmp_path / "vm.json"
    path.write_text(json.dumps(cfg))
    r = run(["check", "--config-file", str(path)])
    assert r.returncode in (0, 3), r.stderr
    assert "drives" not in r.stderr, r.stderr
    # Every region says whether it is registered with the drives' io_uring: `check` starts
    # no VM, so none is, and it says why; without a direct drive, that none asked.
    for reg in json.loads(r.stdout)["regions"]:
        assert reg["io_uring"] == {"registered": False, "reason":
                                   "no VM: `hugevmm check` registers nothing with io_uring"}
    cfg["drives"][0]["direct"] = False
    path.write_text(json.dumps(cfg))
    r = run(["check", "--config-file", str(path)])
    for reg in json.loads(r.stdout)["regions"]:
        assert reg["io_uring"] == {"registered": False, "reason": "no drive is direct"}


# ---------------------------------------------------------------- the API before boot

def drives_of(sock):
    st, cfg = api(sock, "GET", "/vm/config")
    assert st == 200
    return cfg["drives"]


def test_api_drive_every_field_round_trips(vmm, tmp_path):
    img = image(tmp_path / "root.img")
    body = drive("rootfs", img, True, partuuid="0eaa91a0-01", cache_type="Writeback",
                 is_read_only=True, io_engine="Async", direct=True,
                 rate_limiter={"bandwidth": {"size": 1 << 20, "one_time_burst": 4096,
                                             "refill_time": 100}})
    assert api(vmm.sock, "PUT", "/drives/rootfs", body) == (204, None)
    assert drives_of(vmm.sock) == [body]
    # Defaults, shown: Firecracker's Unsafe and Sync, no partuuid (null), not direct.
    data = image(tmp_path / "data.img")
    assert api(vmm.sock, "PUT", "/drives/data", drive("data", data)) == (204, None)
    assert drives_of(vmm.sock)[1] == {"drive_id": "data", "partuuid": None,
                                      "is_root_device": False, "cache_type": "Unsafe",
                                      "is_read_only": False, "path_on_host": data,
                                      "io_engine": "Sync", "direct": False}


@pytest.mark.parametrize("case", ["missing", "directory", "fifo", "char_device", "empty",
                                  "two_roots", "cache_type", "vhost_user", "partuuid"])
def test_api_put_refuses(case, vmm, tmp_path):
    img = image(tmp_path / "first.img")
    assert api(vmm.sock, "PUT", "/drives/first", drive("first", img)) == (204, None)
    drives, words = bad_file_cases(tmp_path)[case]
    if case == "two_roots":
        assert api(vmm.sock, "PUT", "/drives/a", drives[0]) == (204, None)
        words = ["drives[2].is_root_device", "drives[1] is already the root device"]
    elif case in ("cache_type", "vhost_user", "partuuid"):
        # The body alone is wrong: its fields are named under "drives".
        words = [w.replace("drives[0].", "drives.") for w in words]
    else:
        # The image is checked in the configuration the drive would join, as drives[1].
        words = [w.replace("drives[0].", "drives[1].") for w in words]
    before = drives_of(vmm.sock)
    bad = drives[-1]
    st, reply = api(vmm.sock, "PUT", f"/drives/{bad['drive_id']}", bad)
    assert st == 400, reply
    for w in words:
        assert w in reply["fault_message"], f"{w!r} not in: {reply['fault_message']}"
    assert drives_of(vmm.sock) == before


def test_api_seventeenth_drive(vmm, tmp_path):
    img = image(tmp_path / "d.img")
    for i in range(16):
        assert api(vmm.sock, "PUT", f"/drives/d{i}", drive(f"d{i}", img)) == (204, None)
    st, reply = api(vmm.sock, "PUT", "/drives/d16", drive("d16", img))
    assert st == 400 and "at most 16" in reply["fault_message"] \
        and "18 interrupt lines" in reply["fault_message"], reply
    assert len(drives_of(vmm.sock)) == 16


def test_api_patch_before_boot(vmm, tmp_path):
    metrics = tmp_path / "metrics.json"
    assert api(vmm.sock, "PUT", "/metrics", {"metrics_path": str(metrics)}) == (204, None)
    a, b = image(tmp_path / "a.img"), image(tmp_path / "b.img", 4096)
    assert api(vmm.sock, "PUT", "/drives/rootfs",
               drive("rootfs", a, True, rate_limiter={"ops": {"size": 100, "refill_time": 1000}})) \
        == (204, None)
    # A new image.
    body = {"drive_id": "rootfs", "path_on_host": b}
    conforms(body, "PartialDrive")
    assert api(vmm.sock, "PATCH", "/drives/rootfs", body) == (204, None)
    d = drives_of(vmm.sock)[0]
    assert d["path_on_host"] == b and d["is_root_device"] is True
    assert d["rate_limiter"] == {"ops": {"size": 100, "refill_time": 1000}}
    # A bucket given is added, one not given stays (Firecracker's update rule).
    body = {"drive_id": "rootfs", "rate_limiter": {"bandwidth": {"size": 4096, "refill_time": 10}}}
    conforms(body, "PartialDrive")
    assert api(vmm.sock, "PATCH", "/drives/rootfs", body) == (204, None)
    assert drives_of(vmm.sock)[0]["rate_limiter"] == {
        "bandwidth": {"size": 4096, "refill_time": 10}, "ops": {"size": 100, "refill_time": 1000}}
    # A bucket of size 0 removes that limit.
    body = {"drive_id": "rootfs", "rate_limiter": {"ops": {"size": 0, "refill_time": 0}}}
    assert api(vmm.sock, "PATCH", "/drives/rootfs", body) == (204, None)
    assert drives_of(vmm.sock)[0]["rate_limiter"] == {"bandwidth": {"size": 4096, "refill_time": 10}}
    body = {"drive_id": "rootfs", "rate_limiter": {"bandwidth": {"size": 0, "refill_time": 0}}}
    assert api(vmm.sock, "PATCH", "/drives/rootfs", body) == (204, None)
    assert "rate_limiter" not in drives_of(vmm.sock)[0]
    # Nothing to change: accepted, nothing changes.
    assert api(vmm.sock, "PATCH", "/drives/rootfs", {"drive_id": "rootfs"}) == (204, None)
    assert drives_of(vmm.sock)[0]["path_on_host"] == b

    before = drives_of(vmm.sock)
    refusals = [
        ("/drives/nope", {"drive_id": "nope", "path_on_host": a},
         ['no drive has drive_id "nope"', "PUT /drives/{id}"]),
        ("/drives/rootfs", {"drive_id": "other", "path_on_host": a},
         ['"other" does not match the path\'s "rootfs"']),
        ("/drives/rootfs", {"drive_id": "rootfs", "is_read_only": True},
         ["drives.is_read_only: unknown field"]),
        ("/drives/rootfs", {"path_on_host": a}, ["drives.drive_id: missing"]),
        ("/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(tmp_path / "none.img")},
         ["drives[0].path_on_host", "none.img", "No such file or directory"]),
        ("/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(tmp_path)},
         ["drives[0].path_on_host", "is a directory"]),
        ("/drives/rootfs", {"drive_id": "rootfs", "rate_limiter": {"ops": {"size": 1}}},
         ["drives.rate_limiter.ops.refill_time: missing"]),
    ]
    for path, body, words in refusals:
        st, reply = api(vmm.sock, "PATCH", path, body)
        assert st == 400, (body, reply)
        for w in words:
            assert w in reply["fault_message"], (w, reply)
    assert drives_of(vmm.sock) == before
    # Counted as Firecracker counts them: patch_api_requests.drive_count and drive_fails.
    line = flush_metrics(vmm.sock, metrics)
    assert line["patch_api_requests"]["drive_count"] == 5 + len(refusals), line
    assert line["patch_api_requests"]["drive_fails"] == len(refusals), line
    # Firecracker's aggregate block group is there (zero before boot).
    assert line["block"]["read_count"] == 0 and "flush_count" in line["block"], line


def test_api_metrics_have_drives(vmm):
    st, m = api(vmm.sock, "GET", "/metrics")
    assert st == 200 and m["drives"] == [], m


# ---------------------------------------------------------------- the running VM

@needs_kvm
def test_running_vm_drives(vmm, tmp_path):
    metrics = tmp_path / "metrics.json"
    assert api(vmm.sock, "PUT", "/metrics", {"metrics_path": str(metrics)}) == (204, None)
    a, b = image(tmp_path / "a.img"), image(tmp_path / "b.img", 2 << 20)
    vmm.configure()
    assert api(vmm.sock, "PUT", "/drives/rootfs", drive("rootfs", a, True)) == (204, None)
    assert api(vmm.sock, "PUT", "/drives/data", drive("data", b, is_read_only=True)) == (204, None)
    assert api(vmm.sock, "PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
    vmm.wait_console("idle")
    # Per-drive metrics, in hugevmm's /metrics and Firecracker's line.
    st, m = api(vmm.sock, "GET", "/metrics")
    assert [d["drive_id"] for d in m["drives"]] == ["rootfs", "data"], m
    line = flush_metrics(vmm.sock, metrics)
    assert "block_rootfs" in line and "block_data" in line and "block" in line, line
    for k in ("read_count", "write_count", "read_bytes", "write_bytes", "flush_count",
              "invalid_reqs_count", "rate_limiter_throttled_events", "update_count"):
        assert k in line["block_rootfs"], k
    # Every region says whether it is registered with the drives' io_uring.
    st, rep = api(vmm.sock, "GET", "/memory")
    for r in rep["regions"]:
        u = r["io_uring"]
        assert isinstance(u["registered"], bool) and (u["registered"] or u["reason"]), u
    # PATCH after boot: a new image and a new limit; GET /vm/config shows them.
    c = image(tmp_path / "c.img", 4 << 20)
    assert api(vmm.sock, "PATCH", "/drives/data", {"drive_id": "data", "path_on_host": c}) \
        == (204, None)
    assert api(vmm.sock, "PATCH", "/drives/rootfs",
               {"drive_id": "rootfs", "rate_limiter": {"ops": {"size": 50, "refill_time": 100}}}) \
        == (204, None)
    ds = {d["drive_id"]: d for d in drives_of(vmm.sock)}
    assert ds["data"]["path_on_host"] == c
    assert ds["rootfs"]["rate_limiter"] == {"ops": {"size": 50, "refill_time": 100}}
    assert flush_metrics(vmm.sock, metrics)["block_data"]["update_count"] == 1
    # Refused after boot too, and nothing changes: an unknown drive, a missing image, PUT.
    st, reply = api(vmm.sock, "PATCH", "/drives/nope", {"drive_id": "nope", "path_on_host": c})
    assert st == 400 and '"nope"' in reply["fault_message"], reply
    st, reply = api(vmm.sock, "PATCH", "/drives/data",
                    {"drive_id": "data", "path_on_host": str(tmp_path / "none.img")})
    assert st == 400 and "none.img" in reply["fault_message"], reply
    st, reply = api(vmm.sock, "PUT", "/drives/data", drive("data", b))
    assert st == 400 and "InstanceStart" in reply["fault_message"], reply
    assert {d["drive_id"]: d for d in drives_of(vmm.sock)}["data"]["path_on_host"] == c
    # Paused, the same.
    assert api(vmm.sock, "PATCH", "/vm", {"state": "Paused"}) == (204, None)
    assert api(vmm.sock, "PATCH", "/drives/data", {"drive_id": "data", "path_on_host": b}) \
        == (204, None)
    assert api(vmm.sock, "PATCH", "/vm", {"state": "Resumed"}) == (204, None)


# ---------------------------------------------------------------- the image lock
# hugevmm takes an OFD lock on each image (shared read-only, exclusive read-write) when it
# opens the drives, before /dev/kvm, so the refusal shows here too.

F_OFD_SETLK = 37  # <fcntl.h>; Python's fcntl module may not name it


def ofd_lock(fd, write):
    """Take an OFD lock on all of @fd (struct flock: l_type, l_whence, l_start, l_len, l_pid)."""
    lock = struct.pack("hhqqi4x", fcntl.F_WRLCK if write else fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0)
    fcntl.fcntl(fd, getattr(fcntl, "F_OFD_SETLK", F_OFD_SETLK), lock)


@pytest.mark.parametrize("held, read_only", [("write", True), ("write", False), ("read", False)])
def test_locked_image_refused(held, read_only, tmp_path):
    img = image(tmp_path / "locked.img")
    fd = os.open(img, os.O_RDWR)
    try:
        ofd_lock(fd, held == "write")
        code, err = run_config(tmp_path, [drive("rootfs", img, True, is_read_only=read_only)])
    finally:
        os.close(fd)
    assert code == 2, f"exit {code}: {err}"
    line = error_line(err)
    assert "drives[0].path_on_host" in line and img in line and "lock" in line, line


def test_shared_locks_agree(tmp_path):
    """A read-only drive on an image another reader holds shared is not refused for the lock."""
    img = image(tmp_path / "shared.img")
    fd = os.open(img, os.O_RDONLY)
    try:
        ofd_lock(fd, False)
        code, err = run_config(tmp_path, [drive("rootfs", img, True, is_read_only=True)],
                               refused=False)
    finally:
        os.close(fd)
    assert "lock" not in err, err
    # Past the drives: the VM runs (the guest exits 0), or there is no /dev/kvm to run it on.
    assert code == 0 if HAVE_KVM else "/dev/kvm" in err, (code, err)
