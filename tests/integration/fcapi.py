"""Talking to hugevmm's control socket as Firecracker's clients do, for every test that does:
a client over the Unix socket that holds each request body it sends and each response it
gets on a route shared with Firecracker against Firecracker's definitions
(firecracker/schema.json, our own JSON Schema of its API, with the version it follows), and
a hugevmm process serving the socket."""
import copy
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

import jsonschema

from conftest import BIN

GUEST = os.path.join(os.path.dirname(BIN), "testguest.elf")
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "firecracker")
SCHEMA = json.load(open(os.path.join(HERE, "schema.json")))

# PATCH /machine-config takes any non-empty subset of MachineConfiguration's fields.
PATCH_SCHEMA = copy.deepcopy(SCHEMA)
PATCH_SCHEMA["definitions"]["MachineConfiguration"].pop("required")
PATCH_SCHEMA["definitions"]["MachineConfigurationUpdate"] = PATCH_SCHEMA["definitions"].pop(
    "MachineConfiguration")
PATCH_SCHEMA["definitions"]["MachineConfigurationUpdate"]["minProperties"] = 1

# Firecracker's balloon API bodies (its swagger, v1.17: BalloonUpdate, BalloonStatsUpdate,
# BalloonStats), which schema.json -- the config file's definitions -- does not hold; and
# hugevmm's GET /balloon once the device runs: the Balloon with the device's sizes added.
_U32 = {"type": "integer", "minimum": 0, "maximum": 4294967295}
_U64 = {"type": "integer", "minimum": 0}
BALLOON_STATS_NAMES = ["swap_in", "swap_out", "major_faults", "minor_faults", "free_memory",
                       "total_memory", "available_memory", "disk_caches", "hugetlb_allocations",
                       "hugetlb_failures", "oom_kill", "alloc_stall", "async_scan", "direct_scan",
                       "async_reclaim", "direct_reclaim"]  # by tag, VIRTIO_BALLOON_S_* 0..15
BALLOON_SIZES = ["target_pages", "actual_pages", "target_mib", "actual_mib"]
BALLOON_DEFS = {
    "BalloonUpdate": {"type": "object", "required": ["amount_mib"], "additionalProperties": False,
                      "properties": {"amount_mib": _U32}},
    "BalloonStatsUpdate": {"type": "object", "required": ["stats_polling_interval_s"],
                           "additionalProperties": False,
                           "properties": {"stats_polling_interval_s":
                                          {"type": "integer", "minimum": 0, "maximum": 65535}}},
    "BalloonStats": {"type": "object", "required": BALLOON_SIZES, "additionalProperties": False,
                     "properties": {k: _U32 if k in BALLOON_SIZES else _U64
                                    for k in BALLOON_SIZES + BALLOON_STATS_NAMES}},
}
for _s in (SCHEMA, PATCH_SCHEMA):
    _s["definitions"].update(copy.deepcopy(BALLOON_DEFS))
    _s["definitions"]["HugevmmBalloon"] = copy.deepcopy(_s["definitions"]["Balloon"])
    _s["definitions"]["HugevmmBalloon"]["properties"].update({k: _U32 for k in BALLOON_SIZES})


def validator(definition, schema=SCHEMA):
    return jsonschema.Draft7Validator({"$ref": f"#/definitions/{definition}",
                                       "definitions": schema["definitions"]})


def errors(value, definition, schema=SCHEMA):
    return [f"{'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
            for e in validator(definition, schema).iter_errors(value)]


def conforms(value, definition, schema=SCHEMA, where=""):
    errs = errors(value, definition, schema)
    assert not errs, f"{where}not a Firecracker {definition}: {errs}\n{json.dumps(value)}"


# (method, path pattern) -> (request definition, response definition), routes shared with
# Firecracker; a definition of None: no body (204).
ROUTES = [
    ("GET", r"/", None, "InstanceInfo"),
    ("GET", r"/version", None, "FirecrackerVersion"),
    ("GET", r"/vm/config", None, "FullVmConfiguration"),
    ("GET", r"/machine-config", None, "MachineConfiguration"),
    ("PUT", r"/machine-config", "MachineConfiguration", None),
    ("PATCH", r"/machine-config", "MachineConfigurationUpdate", None),
    ("PUT", r"/boot-source", "BootSource", None),
    ("PUT", r"/drives/[^/]+", "Drive", None),
    ("PUT", r"/network-interfaces/[^/]+", "NetworkInterface", None),
    ("PUT", r"/logger", "Logger", None),
    ("PUT", r"/metrics", "Metrics", None),
    ("PUT", r"/entropy", "EntropyDevice", None),
    ("PUT", r"/actions", "InstanceActionInfo", None),
    ("PATCH", r"/vm", "Vm", None),
    ("PUT", r"/balloon", "Balloon", None),
    ("GET", r"/balloon", None, "HugevmmBalloon"),
    ("PATCH", r"/balloon", "BalloonUpdate", None),
    ("GET", r"/balloon/statistics", None, "BalloonStats"),
    ("PATCH", r"/balloon/statistics", "BalloonStatsUpdate", None),
    ("PUT", r"/vsock", "Vsock", None),
]


def check_shapes(method, path, body, status, reply):
    """What Firecracker's definitions say of this exchange: the body sent, the answer."""
    for m, pat, req, resp in ROUTES:
        if m != method or not re.fullmatch(pat, path):
            continue
        where = f"{method} {path} "
        # A body hugevmm takes must be one Firecracker takes (bodies a test sends to be
        # refused are checked by the refusal's Error).
        if body is not None and req and status < 300:
            conforms(body, req, PATCH_SCHEMA if method == "PATCH" else SCHEMA, where + "request: ")
        if status >= 300:
            pass
        elif resp:
            assert status == 200, f"{where}: {status}"
            conforms(reply, resp, where=where + "response: ")
        else:
            assert status == 204 and reply is None, f"{where}: {status} {reply}"
    if status >= 300:
        conforms(reply, "Error", where=f"{method} {path} fault: ")
        assert reply["fault_message"], reply


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def api(sock, method, path, body=None, check=True):
    """One request; returns (status, parsed JSON or None). With @check, the exchange is held
    against Firecracker's definitions (check_shapes)."""
    c = UnixHTTPConnection(sock)
    data = json.dumps(body) if body is not None else None
    c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    r = c.getresponse()
    raw = r.read()
    c.close()
    reply = json.loads(raw) if raw else None
    if check:
        check_shapes(method, path, body, r.status, reply)
    return r.status, reply


def flush_metrics(sock, path):
    """FlushMetrics, then the last line of the metrics file @path, parsed."""
    assert api(sock, "PUT", "/actions", {"action_type": "FlushMetrics"}) == (204, None)
    return json.loads(path.read_text().splitlines()[-1])


class Vmm:
    """hugevmm serving an API socket in @tmp_path (console and stderr in files there)."""

    def __init__(self, tmp_path, args=(), env=None):
        self.sock = str(tmp_path / "api.sock")
        self.console = tmp_path / "console.log"
        self.err = open(tmp_path / "hugevmm.err", "w+")
        self.proc = subprocess.Popen([BIN, "--api-sock", self.sock, *args],
                                     stdout=open(self.console, "w"), stderr=self.err,
                                     stdin=subprocess.DEVNULL, env=dict(os.environ, **(env or {})))
        # Up when it answers (a stale socket file may be there before hugevmm replaces it).
        deadline = time.time() + 30
        while True:
            assert self.proc.poll() is None and time.time() < deadline, self.stderr()
            try:
                if api(self.sock, "GET", "/version", check=False)[0] == 200:
                    break
            except OSError:
                time.sleep(0.01)

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def ticks(self):
        return len(re.findall(r"tick \d+", self.console.read_text()))

    def wait_console(self, text, timeout=30):
        deadline = time.time() + timeout
        while text not in self.console.read_text():
            assert time.time() < deadline and self.proc.poll() is None, \
                f"no {text!r}: {self.console.read_text()[-500:]} {self.stderr()}"
            time.sleep(0.02)

    def configure(self, args="test=idle tick_ms=50", vcpus=1, mib=128):
        assert api(self.sock, "PUT", "/boot-source",
                   {"kernel_image_path": GUEST, "boot_args": args})[0] == 204
        assert api(self.sock, "PUT", "/machine-config", {"vcpu_count": vcpus, "mem_size_mib": mib})[0] == 204
        assert api(self.sock, "PUT", "/memory/regions/ram0",
                   {"backing": "thp", "size_mib": mib, "policy": "prefer"}, check=False)[0] == 204

    def boot(self, **kw):
        self.configure(**kw)
        assert api(self.sock, "PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
        self.wait_console("idle")

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.err.close()
