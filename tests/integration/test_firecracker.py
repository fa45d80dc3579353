"""Firecracker compatibility: hugevmm's own JSON Schema of Firecracker's config file and API
bodies (tests/integration/firecracker/schema.json), example configs written from Firecracker's
documentation and test framework (firecracker/configs/, with cases.json saying what must happen
to each), `hugevmm check` on each of them, and the pre-boot API routes checked against the
schema. Nothing here needs /dev/kvm."""
import copy
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BIN, run
from fcapi import PATCH_SCHEMA, SCHEMA, api, conforms, errors

import jsonschema  # noqa: E402 (python3-jsonschema, installed by scripts/deps.sh test)

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "firecracker")
CONFIGS = os.path.join(HERE, "configs")
CASES = {k: v for k, v in json.load(open(os.path.join(CONFIGS, "cases.json"))).items()
         if not k.startswith("$")}


def load(name):
    with open(os.path.join(CONFIGS, name)) as f:
        return json.load(f)


# ---------------------------------------------------------------- a. the schema and the examples

def test_schema_is_draft7_and_complete():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert "81b38b9dad6056d7a48073e95ac5a9aed51cb2ab" in SCHEMA["$comment"]
    for name in ("BootSource", "MachineConfiguration", "CpuTemplate", "Drive", "NetworkInterface",
                 "RateLimiter", "TokenBucket", "Balloon", "Vsock", "EntropyDevice", "Logger",
                 "Metrics", "MmdsConfig", "Pmem", "MemoryHotplugConfig", "CpuConfig",
                 "SerialDevice", "FullVmConfiguration", "InstanceInfo", "FirecrackerVersion",
                 "InstanceActionInfo", "Vm", "Error"):
        assert name in SCHEMA["definitions"], name
    # Extensions: exactly these, nothing else extra.
    top = SCHEMA["definitions"]["FullVmConfiguration"]
    assert top["additionalProperties"] is False
    fc_sections = {"boot-source", "machine-config", "drives", "network-interfaces", "pmem",
                   "balloon", "vsock", "entropy", "logger", "metrics", "mmds-config",
                   "cpu-config", "memory-hotplug"}
    assert set(top["properties"]) - fc_sections == {"memory", "serial"}


def test_every_config_file_has_a_case():
    files = {f for f in os.listdir(CONFIGS) if f.endswith(".json") and f != "cases.json"}
    assert files == set(CASES), (files ^ set(CASES))


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_against_schema(name):
    case, cfg = CASES[name], load(name)
    errs = errors(cfg, "FullVmConfiguration")
    if case["expect"] == "accept" or case.get("schema_valid"):
        assert not errs, errs
    else:
        assert errs, f"{name} should be schema-invalid ({case['path']})"
        # The schema's complaint is about the same place hugevmm must name.
        # (an unknown or missing field is reported at its parent object).
        want = case["path"].replace("[", ".").replace("]", "")
        parent = want.rsplit(".", 1)[0] if "." in want else "<top>"
        assert any(e.split(":")[0].replace("/", ".") in (want, parent) for e in errs), errs


def test_schema_takes_nulls_and_refuses_them_where_firecracker_does():
    base = load("getting_started_minimal.json")
    for section in ("balloon", "vsock", "entropy", "logger", "metrics", "mmds-config",
                    "cpu-config", "memory-hotplug", "machine-config"):
        conforms(dict(base, **{section: None}), "FullVmConfiguration")
    for section in ("drives", "network-interfaces", "pmem", "boot-source"):
        assert errors(dict(base, **{section: None}), "FullVmConfiguration"), section
    conforms({"drive_id": "d", "is_root_device": False, "partuuid": None, "is_read_only": None,
              "path_on_host": None, "rate_limiter": None, "io_engine": None, "socket": None}, "Drive")
    assert errors({"drive_id": "d", "is_root_device": False, "cache_type": None}, "Drive")
    for level in ("Info", "info", "INFO", "Warning", "warn", "Off", "tRaCe"):
        conforms({"level": level}, "Logger")
    assert errors({"level": "Verbose"}, "Logger")


# ---------------------------------------------------------------- b. `hugevmm check` on every example

def placed(cfg, tmp_path):
    """The config with its host paths pointing into tmp_path (kernel, initrd, drives and pmem
    backing files created, small)."""
    cfg = copy.deepcopy(cfg)

    def make(name, size=1 << 20):
        p = tmp_path / name
        with open(p, "wb") as f:
            f.truncate(size)
        return str(p)

    bs = cfg.get("boot-source")
    if isinstance(bs, dict):
        if isinstance(bs.get("kernel_image_path"), str):
            bs["kernel_image_path"] = make("vmlinux.bin")
        if isinstance(bs.get("initrd_path"), str):
            bs["initrd_path"] = make("initrd.img")
    for key in ("drives", "pmem"):
        for i, d in enumerate(cfg.get(key) or []):
            if isinstance(d, dict) and isinstance(d.get("path_on_host"), str):
                d["path_on_host"] = make(f"{key}{i}.img", 2 << 20)
    for sec, field in (("logger", "log_path"), ("metrics", "metrics_path"), ("vsock", "uds_path"),
                       ("serial", "serial_out_path")):
        if isinstance(cfg.get(sec), dict) and isinstance(cfg[sec].get(field), str):
            cfg[sec][field] = str(tmp_path / os.path.basename(cfg[sec][field]))
    return cfg


def names(line, what):
    """Does @line name @what as a JSON path (not as part of a longer name)?"""
    return re.search(rf"(?<![\w.-]){re.escape(what)}(?![\w-])", line) is not None


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_example(name, tmp_path):
    case = CASES[name]
    path = tmp_path / name
    path.write_text(json.dumps(placed(load(name), tmp_path)))
    r = run(["check", "--config-file", str(path)], timeout=120)
    err = r.stderr
    if case["expect"] == "accept":
        assert r.returncode == 0, f"refused ({r.returncode}): {err}"
        warnings = [l for l in err.splitlines() if "warning" in l]
        for section in case["warn"]:
            hits = [l for l in warnings if names(l, section)]
            assert len(hits) == 1, f"{section} must be named in exactly one warning line: {warnings}"
        return
    assert r.returncode == 2, f"exit {r.returncode}, stderr: {err}"
    lines = [l for l in err.splitlines() if names(l, case["path"])]
    assert lines, f"stderr does not name {case['path']}: {err}"
    if "value" in case:
        v = case["value"]
        line = lines[0]
        assert v in line, f"the offending value {v} is not shown: {line}"
        alone = rf"(?<![\w.]){re.escape(v)}(?![\w.])"
        assert len(re.findall(alone, line)) == 1 and f"{v} {v}" not in line, \
            f"the value is printed twice: {line}"


# ---------------------------------------------------------------- c. the API, pre-boot, no KVM

def request(sock, method, path, body=None):
    """One request; every body sent and answer got on a route shared with Firecracker is
    held against its definitions (fcapi.check_shapes)."""
    return api(sock, method, path, body)


def send(sock, method, path, body, definition, schema=SCHEMA):
    """Validate the request body against its definition first (our test must send what
    Firecracker defines), then send it."""
    conforms(body, definition, schema)
    return request(sock, method, path, body)


@pytest.fixture
def vmm(tmp_path):
    sock = str(tmp_path / "api.sock")
    err = open(tmp_path / "hugevmm.err", "w+")
    proc = subprocess.Popen([BIN, "--api-sock", sock], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 30
    while True:
        if proc.poll() is not None or time.time() > deadline:
            err.seek(0)
            pytest.fail(f"hugevmm --api-sock did not come up (exit {proc.poll()}): {err.read()}")
        try:
            if request(sock, "GET", "/version")[0] == 200:
                break
        except OSError:
            time.sleep(0.01)
    yield sock
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    err.close()


def test_api_get_shapes(vmm):
    st, info = request(vmm, "GET", "/")
    assert st == 200 and info["state"] == "Not started"
    assert request(vmm, "GET", "/version")[0] == 200
    assert request(vmm, "GET", "/machine-config")[0] == 200
    assert request(vmm, "GET", "/vm/config")[0] == 200


def test_api_put_logger_and_metrics(vmm, tmp_path):
    assert send(vmm, "PUT", "/logger", {"log_path": str(tmp_path / "fc.log"), "level": "Warning",
                                        "show_level": False, "show_log_origin": False},
                "Logger") == (204, None)
    assert send(vmm, "PUT", "/logger", {"level": "info"}, "Logger") == (204, None)
    assert send(vmm, "PUT", "/metrics", {"metrics_path": str(tmp_path / "metrics.json")},
                "Metrics") == (204, None)


def test_api_machine_config(vmm):
    assert send(vmm, "PUT", "/machine-config",
                {"vcpu_count": 2, "mem_size_mib": 256, "smt": False, "track_dirty_pages": False,
                 "huge_pages": "None"}, "MachineConfiguration") == (204, None)
    st, mc = request(vmm, "GET", "/machine-config")
    assert (mc["vcpu_count"], mc["mem_size_mib"]) == (2, 256)
    assert send(vmm, "PATCH", "/machine-config", {"vcpu_count": 1}, "MachineConfigurationUpdate",
                PATCH_SCHEMA) == (204, None)
    st, mc = request(vmm, "GET", "/machine-config")
    assert (mc["vcpu_count"], mc["mem_size_mib"]) == (1, 256)
    # PUT without vcpu_count is refused, naming it (Firecracker: missing field `vcpu_count`).
    body = {"mem_size_mib": 256}
    assert errors(body, "MachineConfiguration")
    st, fault = request(vmm, "PUT", "/machine-config", body)
    assert st == 400 and "vcpu_count" in fault["fault_message"], fault
    # The refused PUT changed nothing.
    st, mc = request(vmm, "GET", "/machine-config")
    assert (mc["vcpu_count"], mc["mem_size_mib"]) == (1, 256)


def test_api_devices_and_full_config(vmm, tmp_path):
    kernel, rootfs = tmp_path / "vmlinux.bin", tmp_path / "rootfs.ext4"
    for p in (kernel, rootfs):
        with open(p, "wb") as f:
            f.truncate(2 << 20)
    assert send(vmm, "PUT", "/boot-source",
                {"kernel_image_path": str(kernel), "boot_args": "console=ttyS0 reboot=k panic=1"},
                "BootSource") == (204, None)
    assert send(vmm, "PUT", "/drives/rootfs",
                {"drive_id": "rootfs", "path_on_host": str(rootfs), "is_root_device": True,
                 "is_read_only": False}, "Drive") == (204, None)
    assert send(vmm, "PUT", "/network-interfaces/eth0",
                {"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00:02"},
                "NetworkInterface") == (204, None)
    assert send(vmm, "PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256},
                "MachineConfiguration") == (204, None)
    st, full = request(vmm, "GET", "/vm/config")
    assert full["boot-source"]["kernel_image_path"] == str(kernel)
    assert [d["drive_id"] for d in full["drives"]] == ["rootfs"]
    assert [n["iface_id"] for n in full["network-interfaces"]] == ["eth0"]
    assert (full["machine-config"]["vcpu_count"], full["machine-config"]["mem_size_mib"]) == (2, 256)


def test_api_faults_are_errors(vmm):
    # A body whose id differs from the path's, a wrong type, an unknown route: each 400 with
    # an Error body (checked in request()).
    assert request(vmm, "PUT", "/drives/a", {"drive_id": "b", "is_root_device": False,
                                             "path_on_host": "/nonexistent"})[0] == 400
    assert request(vmm, "PUT", "/machine-config", {"vcpu_count": "2", "mem_size_mib": 256})[0] == 400
    assert request(vmm, "GET", "/no-such-route")[0] == 400
