"""hugevmm where an orchestrator expects Firecracker: its command-line flags, its
logger and metrics (files, FIFOs nobody reads, readers that stop, paths that cannot
be opened), and a client that drives the API in the order and with the bodies the
Firecracker Go SDK and Kata Containers use. Booting needs /dev/kvm; everything
before InstanceStart does not, and runs everywhere."""
import json
import os
import re
import signal
import stat
import subprocess
import time

import pytest

from conftest import BIN
from fcapi import Vmm, api

GUEST = os.path.join(os.path.dirname(BIN), "testguest.elf")
HAVE_KVM = os.access("/dev/kvm", os.R_OK | os.W_OK)
# <local time with ns> [<id>:<thread>[:LEVEL][:file:line]] <message>
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9} "
                      r"\[(?P<id>[A-Za-z0-9-]+):(?P<thread>[^:\]]+)"
                      r"(?::(?P<level>ERROR|WARN|INFO|DEBUG))?(?::(?P<origin>[^:\]]+:\d+))?\] (?P<msg>.+)$")


def run(args, timeout=30, **kw):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def read_fifo(path):
    """What is waiting in a FIFO now, without blocking."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(fd)
    return out.decode()


def stop(v):
    v.proc.send_signal(signal.SIGTERM)
    assert v.proc.wait(timeout=30) == 0, v.stderr()


# ---- command line ----

IGNORED_FLAGS = [["--boot-timer"], ["--module", "api_server"],
                 ["--metadata", "/nonexistent.json"], ["--enable-pci"],
                 ["--http-api-max-payload-size", "51200"], ["--mmds-size-limit", "51200"]]
SILENT_FLAGS = [["--start-time-us", "1"], ["--start-time-cpu-us", "1"],
                ["--parent-cpu-time-us", "1"]]


def test_firecracker_flags_are_accepted(tmp_path):
    # --no-seccomp is acted on (no filters), with one warning; --seccomp-filter takes a file
    # (test_seccomp_cli.py).
    args = ["--id", "fc-vm-7", "--level", "Info", "--show-level", "--show-log-origin",
            "--log-path", str(tmp_path / "fc.log"), "--metrics-path", str(tmp_path / "fc.metrics"),
            "--no-seccomp"]
    for f in IGNORED_FLAGS + SILENT_FLAGS:
        args += f
    v = Vmm(tmp_path, args)
    try:
        st, info = api(v.sock, "GET", "/")
        assert st == 200 and info["id"] == "fc-vm-7" and info["seccomp"]["source"] == "off"
    finally:
        stop(v)
    err = v.stderr()
    # Each flag hugevmm does not act on is named once, with what it does instead.
    for f in IGNORED_FLAGS:
        assert len([ln for ln in err.splitlines() if f"{f[0]}: accepted and ignored" in ln]) == 1, err
    for f in SILENT_FLAGS:
        assert f[0] not in err, err
    assert "unknown option" not in err and "usage" not in err
    # The id and the flags' format reach the log file, --no-seccomp's warning with them.
    lines = (tmp_path / "fc.log").read_text().splitlines()
    assert lines, "nothing was logged"
    for ln in lines:
        m = LOG_LINE.match(ln)
        assert m and m["id"] == "fc-vm-7" and m["level"] and m["origin"], ln
    assert len([ln for ln in lines if "seccomp filters are off (--no-seccomp)" in ln]) == 1, lines
    # The metrics file got the line written at exit, with Firecracker's groups.
    last = json.loads((tmp_path / "fc.metrics").read_text().splitlines()[-1])
    assert last["get_api_requests"]["instance_info_count"] == 1
    for group in ("utc_timestamp_ms", "put_api_requests", "patch_api_requests", "logger",
                  "vcpu", "uart", "hugevmm"):
        assert group in last


@pytest.mark.parametrize("args,names", [
    (["--no-api"], "--no-api needs --config-file"),
    (["--id", "bad id!", "--api-sock", "/tmp/x.sock"], "--id"),
    (["--level", "loud", "--api-sock", "/tmp/x.sock"], "--level"),
    (["--describe-snapshot", "/tmp/s", "--api-sock", "/tmp/x.sock"], "no snapshots"),
    (["--log-path", "/nonexistent-dir/fc.log", "--api-sock", "/tmp/x.sock"], "--log-path"),
    (["--metrics-path", "/nonexistent-dir/m", "--api-sock", "/tmp/x.sock"], "--metrics-path"),
    # Firecracker's --seccomp-filter takes seccompiler's BPF; hugevmm the JSON it compiles.
    (["--seccomp-filter", "/nonexistent.bpf", "--api-sock", "/tmp/x.sock"],
     "--seccomp-filter /nonexistent.bpf: cannot open it"),
    (["--no-seccomp", "--seccomp-filter", "/nonexistent.json", "--api-sock", "/tmp/x.sock"],
     "--no-seccomp and --seccomp-filter FILE exclude each other"),
])
def test_bad_firecracker_flags_are_exit_2(args, names):
    r = run(args)
    assert r.returncode == 2, r.stderr
    assert names in r.stderr
    assert not os.path.exists("/tmp/x.sock")


def test_no_api_runs_from_the_config_alone(tmp_path):
    # Without KVM the run fails at the hypervisor (exit 1), with it the guest's status;
    # either way there is no socket, and no usage error.
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({"boot-source": {"kernel_image_path": GUEST, "boot_args": "test=exit code=4"},
                               "machine-config": {"vcpu_count": 1, "mem_size_mib": 128}}))
    r = run(["--no-api", "--config-file", str(cfg), "--id", "a1"])
    assert r.returncode == (4 if HAVE_KVM else 1), r.stderr
    if not HAVE_KVM:
        assert "/dev/kvm" in r.stderr


def test_version_flag():
    r = run(["--version"])
    assert r.returncode == 0 and re.match(r"hugevmm \d+\.\d+\.\d+", r.stdout)


# ---- logger ----

def test_logger_over_the_api_in_firecracker_format(tmp_path):
    v = Vmm(tmp_path, ["--id", "i-42"])
    log = tmp_path / "vm.log"
    try:
        assert api(v.sock, "PUT", "/logger", {"log_path": str(log), "level": "debug",
                                               "show_level": True, "show_log_origin": False}) == (204, None)
        # A config change that warns (a drive is accepted but not attached) is logged there.
        assert api(v.sock, "PUT", "/actions", {"action_type": "FlushMetrics"})[0] == 204
    finally:
        stop(v)
    lines = log.read_text().splitlines()
    assert lines
    for ln in lines:
        m = LOG_LINE.match(ln)
        assert m, ln
        assert m["id"] == "i-42" and m["level"] in ("ERROR", "WARN", "INFO", "DEBUG") and not m["origin"]
    assert any("signal 15" in ln for ln in lines), lines
    assert oct(stat.S_IMODE(os.stat(log).st_mode)) == "0o600"


@pytest.mark.parametrize("where", ["api", "config", "flag"])
def test_logger_path_in_a_missing_directory(tmp_path, where):
    bad = str(tmp_path / "no" / "such" / "dir" / "fc.log")
    if where == "api":
        v = Vmm(tmp_path)
        try:
            st, body = api(v.sock, "PUT", "/logger", {"log_path": bad})
            assert st == 400 and "logger.log_path" in body["fault_message"] and bad in body["fault_message"]
            assert api(v.sock, "GET", "/")[0] == 200
        finally:
            stop(v)
        return
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({"boot-source": {"kernel_image_path": GUEST},
                               "machine-config": {"vcpu_count": 1, "mem_size_mib": 128},
                               **({"logger": {"log_path": bad}} if where == "config" else {})}))
    r = run(["--config-file", str(cfg)] + (["--log-path", bad] if where == "flag" else []))
    assert r.returncode == 2, r.stderr
    assert ("logger.log_path" if where == "config" else "--log-path") in r.stderr and bad in r.stderr
    assert not os.path.exists(os.path.dirname(bad))


# ---- metrics ----

def test_metrics_fifo_without_a_reader_never_blocks(tmp_path):
    fifo = tmp_path / "metrics.fifo"
    os.mkfifo(fifo)
    v = Vmm(tmp_path)
    try:
        assert api(v.sock, "PUT", "/metrics", {"metrics_path": str(fifo)}) == (204, None)
        # ~2 KiB a line: 200 flushes are several times what a pipe holds (64 KiB).
        t0 = time.time()
        for _ in range(200):
            assert api(v.sock, "PUT", "/actions", {"action_type": "FlushMetrics"}) == (204, None)
        assert time.time() - t0 < 20
        assert api(v.sock, "GET", "/")[0] == 200
        # A reader that comes late finds whole lines only, and the count of the lost ones.
        lines = read_fifo(fifo).splitlines()
        assert 10 < len(lines) < 200
        parsed = [json.loads(ln) for ln in lines]
        assert api(v.sock, "PUT", "/actions", {"action_type": "FlushMetrics"}) == (204, None)
        last = json.loads(read_fifo(fifo).splitlines()[-1])
        assert last["logger"]["missed_metrics_count"] >= 200 - len(parsed)
        # The flush that wrote it is counted once it has been answered.
        assert last["put_api_requests"]["actions_count"] == 200
    finally:
        stop(v)


def test_metrics_reader_that_stops(tmp_path):
    fifo = tmp_path / "metrics.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    v = Vmm(tmp_path)
    try:
        assert api(v.sock, "PUT", "/metrics", {"metrics_path": str(fifo), "emit_id": True,
                                                "properties": {"pod": "p-1"}}) == (204, None)
        assert api(v.sock, "PUT", "/actions", {"action_type": "FlushMetrics"}) == (204, None)
        first = json.loads(os.read(reader, 65536).decode().splitlines()[0])
        assert first["id"] == api(v.sock, "GET", "/")[1]["id"]
        assert first["properties"] == {"pod": "p-1"}
        # The reader stops reading; the VMM goes on answering.
        for _ in range(150):
            assert api(v.sock, "PUT", "/actions", {"action_type": "FlushMetrics"}) == (204, None)
        assert api(v.sock, "GET", "/")[0] == 200
    finally:
        os.close(reader)
        stop(v)


def test_metrics_every_period_and_at_exit(tmp_path):
    out = tmp_path / "metrics.json"
    v = Vmm(tmp_path, ["--metrics-path", str(out)],
            env={"HUGEVMM_TEST_HOOKS": "1", "HUGEVMM_METRICS_PERIOD_MS": "200"})
    try:
        time.sleep(1.1)
        periodic = len(out.read_text().splitlines())
        assert 3 <= periodic <= 7, periodic
    finally:
        stop(v)
    lines = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert len(lines) >= periodic + 1
    stamps = [ln["utc_timestamp_ms"] for ln in lines]
    assert stamps == sorted(stamps)


def test_metrics_path_in_a_missing_directory(tmp_path):
    v = Vmm(tmp_path)
    try:
        st, body = api(v.sock, "PUT", "/metrics", {"metrics_path": str(tmp_path / "nope" / "m")})
        assert st == 400 and "metrics.metrics_path" in body["fault_message"]
        st, body = api(v.sock, "PUT", "/metrics", {"emit_id": True})
        assert st == 400 and "metrics.metrics_path: missing" in body["fault_message"]
    finally:
        stop(v)


# ---- a client that drives hugevmm as the Firecracker Go SDK and Kata do ----

def sdk_sequence(tmp_path, log_fifo, metrics_fifo, kernel, args, tap="tap0"):
    """The calls in order, with the bodies those clients send (Go SDK field names,
    omitempty: absent rather than null; Kata adds the log level and origin)."""
    rootfs = tmp_path / "rootfs.ext4"
    rootfs.write_bytes(b"\0" * 65536)
    return [
        ("PUT", "/logger", {"log_path": str(log_fifo), "level": "Debug", "show_level": True,
                            "show_log_origin": True}),
        ("PUT", "/metrics", {"metrics_path": str(metrics_fifo)}),
        ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128, "smt": False,
                                    "track_dirty_pages": False}),
        ("PUT", "/boot-source", {"kernel_image_path": kernel, "boot_args": args}),
        ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(rootfs),
                                   "is_root_device": True, "is_read_only": False}),
        ("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": tap,
                                             "guest_mac": "06:00:ac:10:00:02"}),
        ("GET", "/machine-config", None),
        ("GET", "/vm/config", None),
        ("PUT", "/actions", {"action_type": "InstanceStart"}),
    ]


def test_go_sdk_and_kata_call_sequence(tmp_path, sysfs, tapdev):
    log_fifo, metrics_fifo = tmp_path / "log.fifo", tmp_path / "metrics.fifo"
    os.mkfifo(log_fifo)
    os.mkfifo(metrics_fifo)
    v = Vmm(tmp_path, ["--id", "sdk-vm"])
    try:
        steps = sdk_sequence(tmp_path, log_fifo, metrics_fifo, GUEST, "test=idle tick_ms=50",
                             tapdev())
        for method, path, body in steps[:-1]:
            st, reply = api(v.sock, method, path, body)
            assert st == (200 if method == "GET" else 204), (path, reply)
        cfg = api(v.sock, "GET", "/vm/config")[1]
        assert cfg["drives"][0]["drive_id"] == "rootfs" and cfg["network-interfaces"][0]["iface_id"] == "eth0"
        st, reply = api(v.sock, *steps[-1][:2], steps[-1][2])
        if not HAVE_KVM:
            # Everything an orchestrator does before the boot works; the boot needs KVM.
            assert st == 500 and "/dev/kvm" in reply["fault_message"], reply
            assert api(v.sock, "PUT", "/actions", {"action_type": "FlushMetrics"})[0] == 204
            m = json.loads(read_fifo(metrics_fifo).splitlines()[-1])
            assert m["put_api_requests"]["actions_fails"] == 1
            assert m["put_api_requests"]["logger_count"] == 1
            assert all(LOG_LINE.match(ln) for ln in read_fifo(log_fifo).splitlines())
            pytest.skip("/dev/kvm is absent: the boot half of the sequence runs where it is "
                        "(and in the L1 tier)")
        assert st == 204, reply
        v.wait_console("idle")
        assert api(v.sock, "PUT", "/actions", {"action_type": "FlushMetrics"})[0] == 204
        m = json.loads(read_fifo(metrics_fifo).splitlines()[-1])
        assert m["hugevmm"]["state"] == "Running" and m["vcpu"]["exit_io"] > 0
        assert m["hugevmm"]["memory"]["ram_bytes"] == 128 << 20
        assert api(v.sock, "GET", "/")[1]["state"] == "Running"
        assert api(v.sock, "PUT", "/actions", {"action_type": "SendCtrlAltDel"})[0] == 204
        assert v.proc.wait(timeout=30) == 0
        logs = read_fifo(log_fifo).splitlines()
        assert logs and all(LOG_LINE.match(ln) for ln in logs)
    finally:
        if v.proc.poll() is None:
            stop(v)
