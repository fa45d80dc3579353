"""The vsock (Firecracker's Vsock: guest_cid, uds_path, vsock_id) through the config file and
the API: bad input is refused before anything is built (exit 2 / HTTP 400, the message naming
the field, the value and the remedy, nothing left behind), good input comes back whole from
GET /vm/config, PUT /vsock replaces an earlier one before boot and is refused after it, and the
metrics have a vsock group only once the device exists. Every refusal here comes before
/dev/kvm is opened, so these run everywhere; what needs a running VM skips where /dev/kvm is
absent, saying so (the device's own behaviour is tested with guests in the L1 tier)."""
import json
import os
import shutil
import socket
import tempfile

import pytest

from conftest import assert_refused, run, run_guest_config
from fcapi import SCHEMA, Vmm, api, conforms, errors, flush_metrics

HAVE_KVM = os.access("/dev/kvm", os.R_OK | os.W_OK)
needs_kvm = pytest.mark.skipif(not HAVE_KVM, reason="/dev/kvm is absent or not accessible: "
                               "the running-VM half runs where it is (the L1 tier)")

KNOWN = "known fields: guest_cid, uds_path, vsock_id"
CID_RANGE = ["use 3 to 4294967294 (CIDs below 3 are the hypervisor's, loopback's and the "
             "host's; 0xffffffff is VMADDR_CID_ANY)"]
SUN_PATH = 108  # struct sockaddr_un's sun_path, with its NUL

# struct vsock_counters (devices/virtio/vsock.h): Firecracker's names, then hugevmm's.
FC_COUNTERS = ["rx_queue_event_count", "tx_queue_event_count", "rx_bytes_count",
               "tx_bytes_count", "rx_packets_count", "tx_packets_count", "conns_added",
               "conns_killed", "conns_removed", "rx_read_fails", "tx_write_fails"]
OWN_COUNTERS = ["conns_open", "conns_host", "conns_guest", "refused_by_guest",
                "refused_no_listener", "bad_connect_lines", "connect_timeouts", "rst_by_guest",
                "rst_host_gone", "rst_credit", "rst_malformed", "rst_too_many",
                "rst_unknown", "late_packets", "malformed_dropped", "credit_updates_sent",
                "credit_requests_seen", "host_full", "buffered_bytes", "buffered_max"]
# Firecracker's VsockDeviceMetrics, every field (its metrics line's "vsock" group).
FC_VSOCK = ["activate_fails", "cfg_fails", "rx_queue_event_fails", "tx_queue_event_fails",
            "ev_queue_event_fails", "muxer_event_fails", "conn_event_fails",
            "rx_queue_event_count", "tx_queue_event_count", "rx_bytes_count", "tx_bytes_count",
            "rx_packets_count", "tx_packets_count", "conns_added", "conns_killed",
            "conns_removed", "killq_resync", "tx_flush_fails", "tx_write_fails",
            "rx_read_fails"]


def vsock(guest_cid=3, uds_path="v.sock", **kw):
    return dict({"guest_cid": guest_cid, "uds_path": uds_path}, **kw)


# ---------------------------------------------------------------- the config file

LONG = "/tmp/" + "p" * (SUN_PATH - len("/tmp/"))  # 108 bytes: one too many

# case -> (vsock section, words the message must hold); TMP stands for the test's directory.
BAD = {
    "cid_missing": ({"uds_path": "v.sock"},
                    ["vsock.guest_cid: missing", "Firecracker requires it",
                     "give the guest's context ID (3 or more)"]),
    "cid_0": (vsock(0), ["vsock.guest_cid: 0 is out of range"] + CID_RANGE),
    "cid_host": (vsock(2), ["vsock.guest_cid: 2 is out of range"] + CID_RANGE),
    "cid_negative": (vsock(-3), ["vsock.guest_cid: -3 is out of range"] + CID_RANGE),
    "cid_any": (vsock(0xFFFFFFFF), ["vsock.guest_cid: 4294967295 is out of range"] + CID_RANGE),
    "cid_over_u32": (vsock(1 << 32), ["vsock.guest_cid: 4294967296 is out of range"]),
    "cid_not_integer": (vsock(3.5), ["vsock.guest_cid", "expected an integer", "3.5"]),
    "cid_string": (vsock("3"), ["vsock.guest_cid", "expected an integer", '"3"']),
    "cid_null": (vsock(None), ["vsock.guest_cid: expected an integer, got null"]),
    "path_missing": ({"guest_cid": 3},
                     ["vsock.uds_path: missing", "Firecracker requires it",
                      "give the path of the Unix socket the host side listens on"]),
    "path_null": (vsock(uds_path=None), ["vsock.uds_path: expected a string, got null"]),
    "path_number": (vsock(uds_path=42), ["vsock.uds_path: expected a string, got a number 42"]),
    "path_empty": (vsock(uds_path=""),
                   ['vsock.uds_path: "" is empty',
                    "give the path of the Unix socket the host side listens on"]),
    "path_too_long": (vsock(uds_path=LONG),
                      ["vsock.uds_path", '"/tmp/ppp', "is 108 bytes",
                       "a Unix socket's path has at most 107 (sun_path)",
                       "give a shorter path"]),
    "path_no_directory": (vsock(uds_path="TMP/none/v.sock"),
                          ['vsock.uds_path: "TMP/none/v.sock"', 'its directory "TMP/none"',
                           "No such file or directory",
                           "give a path in an existing directory"]),
    "path_under_a_file": (vsock(uds_path="TMP/file/v.sock"),
                          ['vsock.uds_path: "TMP/file/v.sock"', '"TMP/file" is not a directory',
                           "give a path in an existing directory"]),
    "path_is_a_file": (vsock(uds_path="TMP/file"),
                       ['vsock.uds_path: "TMP/file" exists and is a regular file',
                        "give a free path"]),
    "path_is_a_directory": (vsock(uds_path="TMP/dir"),
                            ['vsock.uds_path: "TMP/dir" exists and is a directory']),
    "path_is_a_fifo": (vsock(uds_path="TMP/fifo"),
                       ['vsock.uds_path: "TMP/fifo" exists and is a FIFO']),
    "id_number": (vsock(vsock_id=1), ["vsock.vsock_id: expected a string, got a number 1"]),
    "id_too_long": (vsock(vsock_id="i" * 64),
                    ["vsock.vsock_id", '"iii', "is 64 characters", "hugevmm keeps at most 63",
                     "give a shorter one or leave it out"]),
    "unknown_field": (vsock(cid=3), ["vsock.cid: unknown field", KNOWN]),
    "duplicate_key": ("DUP", ["vsock.guest_cid: duplicate key"]),
    "not_an_object": ([], ["vsock: expected an object, got an array"]),
}


def placed(value, tmp_path):
    """@value with TMP standing for @tmp_path, where a regular file "file", a directory "dir"
    and a FIFO "fifo" exist."""
    for name, make in (("file", lambda p: p.write_text("x")), ("dir", lambda p: p.mkdir()),
                       ("fifo", lambda p: os.mkfifo(p))):
        if not (tmp_path / name).exists():
            make(tmp_path / name)
    return json.loads(json.dumps(value).replace("TMP", str(tmp_path)))


@pytest.mark.parametrize("case", sorted(BAD))
def test_config_file_refuses(case, tmp_path):
    section, words = BAD[case]
    if section == "DUP":
        # json.dumps cannot write a duplicate key: the file is written by hand.
        cfg = tmp_path / "dup.json"
        cfg.write_text('{"vsock": {"guest_cid": 3, "uds_path": "v.sock", "guest_cid": 4}}')
        r = run(["check", "--config-file", str(cfg)])
        assert_refused(r.returncode, r.stderr, words)
        return
    words = placed(words, tmp_path)
    assert_refused(*run_guest_config(tmp_path, {"vsock": placed(section, tmp_path)}), words)


def check_config(tmp_path, cfg):
    path = tmp_path / "check.json"
    path.write_text(json.dumps(cfg))
    return run(["check", "--config-file", str(path)])


@pytest.fixture
def short_dir():
    """A directory with a short path, so that a socket path of exactly 107 bytes fits in it
    whatever pytest's own directories are called."""
    d = tempfile.mkdtemp(prefix="hv", dir="/tmp")
    yield d
    shutil.rmtree(d)


def longest_path(d):
    return os.path.join(d, "s" * (SUN_PATH - 1 - len(d) - 1))


def stale_socket(path):
    """A socket file nobody listens on, as a VM that ended without removing it leaves."""
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    return str(path)


def test_check_takes_every_field(tmp_path, short_dir):
    """`hugevmm check` takes the whole Vsock schema -- the CID's whole range, a path of
    107 bytes, a stale socket at the path, vsock_id or null -- with no warning about the
    vsock (it is implemented: no "ignored")."""
    sections = [
        vsock(3, str(tmp_path / "v.sock")),
        vsock(0xFFFFFFFE, "v.sock", vsock_id="vsock0"),
        vsock(1234, longest_path(short_dir), vsock_id=None),
        vsock(3, stale_socket(tmp_path / "stale.sock"), vsock_id=""),
        None,
    ]
    assert len(longest_path(short_dir)) == SUN_PATH - 1
    for section in sections:
        cfg = {"machine-config": {"vcpu_count": 1, "mem_size_mib": 64}, "vsock": section}
        conforms(cfg, "FullVmConfiguration")
        r = check_config(tmp_path, cfg)
        assert r.returncode in (0, 3), (section, r.stderr)
        assert "vsock" not in r.stderr, r.stderr
    # Nothing was created or removed at the paths: check builds no device.
    assert not (tmp_path / "v.sock").exists() and (tmp_path / "stale.sock").exists()


def test_schema_and_hugevmm_on_the_cid():
    """Firecracker's Vsock takes any u32 of at least 3; hugevmm refuses VMADDR_CID_ANY on
    top (a refusal the schema cannot express), the rest as the schema does."""
    assert not errors(vsock(0xFFFFFFFF), "Vsock")
    for cid in (2, -1, 1 << 32, "3", None):
        assert errors(vsock(cid), "Vsock"), cid
    assert errors({"guest_cid": 3}, "Vsock") and errors({"uds_path": "v"}, "Vsock")
    assert errors(vsock(vsock_id=1), "Vsock") and errors(vsock(cid=3), "Vsock")
    assert "Vsock" in SCHEMA["definitions"]


# ---------------------------------------------------------------- the API before boot

def config_of(sock):
    st, cfg = api(sock, "GET", "/vm/config")
    assert st == 200
    conforms(cfg, "FullVmConfiguration")
    return cfg


def vsock_of(sock):
    """GET /vm/config's vsock (Firecracker's Vsock), or None."""
    v = config_of(sock).get("vsock")
    if v is not None:
        conforms(v, "Vsock")
    return v


def refused(sock, method, path, body, words):
    st, reply = api(sock, method, path, body)
    assert st == 400, (method, path, body, reply)
    for w in words:
        assert w in reply["fault_message"], f"{w!r} not in: {reply['fault_message']}"


def test_api_every_field_round_trips(vmm, tmp_path, short_dir):
    path = str(tmp_path / "v.sock")
    assert vsock_of(vmm.sock) is None
    body = vsock(3, path, vsock_id="vsock0")
    assert api(vmm.sock, "PUT", "/vsock", body) == (204, None)
    assert vsock_of(vmm.sock) == body
    # PUT again replaces the vsock whole: vsock_id not given is gone.
    body = vsock(0xFFFFFFFE, longest_path(short_dir))
    assert api(vmm.sock, "PUT", "/vsock", body) == (204, None)
    assert vsock_of(vmm.sock) == body
    # null is an absent vsock_id, as in Firecracker's Option; a relative path stays relative.
    assert api(vmm.sock, "PUT", "/vsock", vsock(77, "v.sock", vsock_id=None)) == (204, None)
    assert vsock_of(vmm.sock) == vsock(77, "v.sock")
    # A stale socket at the path is fine (the device replaces it when it is built).
    body = vsock(5, stale_socket(tmp_path / "stale.sock"), vsock_id="x")
    assert api(vmm.sock, "PUT", "/vsock", body) == (204, None)
    assert vsock_of(vmm.sock) == body
    # Nothing is created at the paths before boot.
    assert not os.path.exists(path) and not os.path.exists(longest_path(short_dir))


@pytest.mark.parametrize("case", sorted(set(BAD) - {"duplicate_key", "not_an_object"}))
def test_api_put_refuses(case, vmm, tmp_path):
    """Each bad body is refused with the config file's message and changes nothing."""
    good = vsock(9, str(tmp_path / "good.sock"), vsock_id="keep")
    assert api(vmm.sock, "PUT", "/vsock", good) == (204, None)
    section, words = BAD[case]
    refused(vmm.sock, "PUT", "/vsock", placed(section, tmp_path), placed(words, tmp_path))
    assert vsock_of(vmm.sock) == good


def test_api_put_bad_bodies(vmm):
    refused(vmm.sock, "PUT", "/vsock", [], ["body: expected a JSON object"])
    st, reply = api(vmm.sock, "PUT", "/vsock", check=False)
    assert st == 400 and "body: missing" in reply["fault_message"], reply
    assert vsock_of(vmm.sock) is None


def test_api_routes_firecracker_does_not_have(vmm):
    """Firecracker has only PUT /vsock: any other method or a path below it is not a route
    (no GET /vsock: GET /vm/config shows the vsock)."""
    assert api(vmm.sock, "PUT", "/vsock", vsock()) == (204, None)
    for method, path, body in (("GET", "/vsock", None), ("PATCH", "/vsock", {"guest_cid": 4}),
                               ("DELETE", "/vsock", None), ("PUT", "/vsock/v0", vsock())):
        refused(vmm.sock, method, path, body, [f"Invalid request method and/or path: {method} "
                                               f"{path}"])
    assert vsock_of(vmm.sock) == vsock()


def test_api_start_checks_the_path_again(vmm, tmp_path):
    """What was at uds_path when PUT /vsock took it may change before InstanceStart: the
    start checks it again, refuses naming the field, and the VM stays unstarted."""
    path = tmp_path / "v.sock"
    vmm.configure()
    assert api(vmm.sock, "PUT", "/vsock", vsock(3, str(path))) == (204, None)
    path.write_text("not a socket")
    refused(vmm.sock, "PUT", "/actions", {"action_type": "InstanceStart"},
            [f'vsock.uds_path: "{path}" exists and is a regular file'])
    assert api(vmm.sock, "GET", "/")[1]["state"] == "Not started"
    assert path.read_text() == "not a socket"


def test_vm_config_round_trips_as_a_config_file(vmm, tmp_path):
    """GET /vm/config with a vsock is a config file hugevmm takes, and says the same."""
    body = vsock(42, str(tmp_path / "v.sock"), vsock_id="vs")
    assert api(vmm.sock, "PUT", "/vsock", body) == (204, None)
    cfg = config_of(vmm.sock)
    assert cfg["vsock"] == body
    r = check_config(tmp_path, cfg)
    assert r.returncode in (0, 3), r.stderr


def test_metrics_before_boot(vmm, tmp_path):
    """No vsock group before the device exists; PUT /vsock is counted as Firecracker counts
    it (put_api_requests.vsock_count and vsock_fails)."""
    metrics = tmp_path / "metrics.json"
    assert api(vmm.sock, "PUT", "/metrics", {"metrics_path": str(metrics)}) == (204, None)
    assert api(vmm.sock, "PUT", "/vsock", vsock()) == (204, None)
    refused(vmm.sock, "PUT", "/vsock", vsock(2), ["vsock.guest_cid"])
    refused(vmm.sock, "PUT", "/vsock", [], ["body: expected a JSON object"])
    st, m = api(vmm.sock, "GET", "/metrics")
    assert st == 200 and "vsock" not in m, m
    line = flush_metrics(vmm.sock, metrics)
    assert line["put_api_requests"]["vsock_count"] == 3, line
    assert line["put_api_requests"]["vsock_fails"] == 2, line
    assert "vsock" not in line and "vsock" not in line["hugevmm"], line


# ---------------------------------------------------------------- after boot

@needs_kvm
def test_put_after_boot_is_refused(vmm, tmp_path):
    """As in Firecracker (400: not supported after starting the microVM): the configuration
    stays as it was."""
    vmm.boot()
    before = config_of(vmm.sock)
    refused(vmm.sock, "PUT", "/vsock", vsock(3, str(tmp_path / "late.sock")),
            ["vsock: the VM has started; it can only be set before InstanceStart"])
    # A bad body is refused for what is wrong with it.
    refused(vmm.sock, "PUT", "/vsock", vsock(2), ["vsock.guest_cid: 2 is out of range"])
    assert config_of(vmm.sock) == before and "vsock" not in before
    assert not (tmp_path / "late.sock").exists()


@needs_kvm
def test_metrics_with_a_vsock(tmp_path):
    """With the device: /metrics' vsock has every vsock_counters field; Firecracker's line
    has its whole vsock group and hugevmm.vsock the rest."""
    v = Vmm(tmp_path)
    try:
        metrics = tmp_path / "metrics.json"
        assert api(v.sock, "PUT", "/metrics", {"metrics_path": str(metrics)}) == (204, None)
        v.configure()
        assert api(v.sock, "PUT", "/vsock", vsock(3, str(tmp_path / "v.sock"))) == (204, None)
        st, reply = api(v.sock, "PUT", "/actions", {"action_type": "InstanceStart"})
        if st == 400 and "not yet built" in reply["fault_message"]:
            pytest.skip(f"the vsock device model is not in this build: {reply['fault_message']}")
        assert st == 204, reply
        v.wait_console("idle")
        st, m = api(v.sock, "GET", "/metrics")
        assert st == 200 and list(m["vsock"]) == FC_COUNTERS + OWN_COUNTERS, m.get("vsock")
        assert all(isinstance(x, int) and x >= 0 for x in m["vsock"].values()), m["vsock"]
        line = flush_metrics(v.sock, metrics)
        assert list(line["vsock"]) == FC_VSOCK, line["vsock"]
        assert list(line["hugevmm"]["vsock"]) == OWN_COUNTERS, line["hugevmm"]
        for name in set(FC_VSOCK) - set(FC_COUNTERS):
            assert line["vsock"][name] == 0, (name, line["vsock"])
    finally:
        v.close()
