"""Confinement from the command line and the API: --no-seccomp and --seccomp-filter FILE
(the JSON Firecracker's seccompiler-bin reads; a bad file is exit 2 naming the JSON path,
the value and the remedy), `hugevmm seccomp` (the built-in filters in that format, and back),
what GET / and the metrics line report, the work the confined API thread hands to the VMM
thread (PUT /logger, PUT /metrics, GET /host), and a forbidden call on the API thread
(HUGEVMM_TEST_HOOKS=1) killing the process. The API thread is confined from its start, so
all of this but booting runs without /dev/kvm; what needs a running VM skips without it."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import BIN, run
from fcapi import Vmm, api

HAVE_KVM = os.access("/dev/kvm", os.R_OK | os.W_OK)
needs_kvm = pytest.mark.skipif(not HAVE_KVM, reason="/dev/kvm is absent or not accessible: "
                               "the VMM thread and the vCPUs are confined only once a VM runs")
ROLES = ["vmm", "api", "vcpu", "prefault"]
OFF_WARNING = "seccomp filters are off (--no-seccomp): a compromised thread can make any system call"
SIGSYS = -signal.SIGSYS


def stop(v):
    v.proc.send_signal(signal.SIGTERM)
    assert v.proc.wait(timeout=30) == 0, v.stderr()


def write(tmp_path, doc, name="filter.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def allow_list(rules, **actions):
    return dict({"default_action": "kill_process", "filter_action": "allow", "filter": rules},
                **actions)


def printed(*args):
    """`hugevmm seccomp ARGS`: (exit code, parsed JSON or None, stderr)."""
    r = run(["seccomp", *args])
    return r.returncode, (json.loads(r.stdout) if r.returncode == 0 else None), r.stderr


def confined(pid):
    """{thread name: Seccomp mode} of @pid's threads (2: a filter)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        status = open(f"/proc/{pid}/task/{tid}/status").read()
        name = status.split("\n", 1)[0].split("\t", 1)[1]
        out[name] = int(status.split("Seccomp:\t", 1)[1].split("\n", 1)[0])
    return out


def wait_death(p, timeout=30):
    try:
        return p.wait(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ---- the flags ----

def test_no_seccomp_warns_once_and_nothing_is_confined(tmp_path):
    v = Vmm(tmp_path, ["--no-seccomp"])
    try:
        st, info = api(v.sock, "GET", "/")
        assert st == 200 and info["seccomp"]["source"] == "off", info
        assert "path" not in info["seccomp"]
        assert info["seccomp"]["threads"] == {r: 0 for r in ROLES}, info
        assert set(confined(v.proc.pid).values()) == {0}
    finally:
        stop(v)
    assert [ln for ln in v.stderr().splitlines() if OFF_WARNING in ln] and \
        len([ln for ln in v.stderr().splitlines() if "--no-seccomp" in ln]) == 1, v.stderr()


def test_no_seccomp_and_a_filter_file_exclude_each_other(tmp_path):
    f = write(tmp_path, {"api": allow_list([{"syscall": "read"}])})
    sock = tmp_path / "api.sock"
    r = run(["--api-sock", str(sock), "--no-seccomp", "--seccomp-filter", f])
    assert r.returncode == 2, r.stderr
    assert "--no-seccomp and --seccomp-filter FILE exclude each other" in r.stderr
    assert not sock.exists()


def test_the_built_in_filters_by_default(tmp_path):
    v = Vmm(tmp_path)
    try:
        st, info = api(v.sock, "GET", "/")
        sc = info["seccomp"]
        # Before boot only the API thread is confined: it installs its filter as it starts.
        assert sc["source"] == "default" and "path" not in sc, sc
        assert sc["threads"] == {"vmm": 0, "api": 1, "vcpu": 0, "prefault": 0}, sc
        assert isinstance(sc["io_uring_restricted"], int) and \
            isinstance(sc["io_uring_unrestricted"], int)
        # The API's loop and the VMM's: two rings at least, restricted where the kernel can.
        assert sc["io_uring_restricted"] + sc["io_uring_unrestricted"] >= 2, sc
        modes = confined(v.proc.pid)
        assert modes["api"] == 2 and modes["hugevmm"] == 0, modes
        assert "seccomp" not in v.stderr()
    finally:
        stop(v)


def test_the_metrics_line_says_it_too(tmp_path):
    metrics = tmp_path / "metrics.json"
    v = Vmm(tmp_path, ["--metrics-path", str(metrics)])
    try:
        assert api(v.sock, "PUT", "/actions", {"action_type": "FlushMetrics"}) == (204, None)
        line = json.loads(metrics.read_text().splitlines()[-1])
        assert line["hugevmm"]["seccomp"] == api(v.sock, "GET", "/")[1]["seccomp"], line
    finally:
        stop(v)


def test_a_filter_file(tmp_path):
    r = run(["seccomp"])
    assert r.returncode == 0, r.stderr
    f = write(tmp_path, r.stdout, "default.json")
    v = Vmm(tmp_path, ["--seccomp-filter", f])
    try:
        sc = api(v.sock, "GET", "/")[1]["seccomp"]
        assert sc["source"] == "file" and sc["path"] == f, sc
        assert sc["threads"]["api"] == 1 and confined(v.proc.pid)["api"] == 2
        # What the confined API thread does (PUT /logger now runs on the VMM thread).
        assert api(v.sock, "PUT", "/logger", {"log_path": str(tmp_path / "fc.log")}) == (204, None)
        assert api(v.sock, "GET", "/vm/config")[0] == 200
    finally:
        stop(v)
    assert "warning" not in v.stderr(), v.stderr()


def test_a_role_the_file_leaves_out_runs_without_a_filter(tmp_path):
    f = write(tmp_path, {"vcpu": allow_list([{"syscall": "ioctl"}])})
    v = Vmm(tmp_path, ["--seccomp-filter", f])
    try:
        sc = api(v.sock, "GET", "/")[1]["seccomp"]
        assert sc["source"] == "file" and sc["threads"]["api"] == 0, sc
        assert confined(v.proc.pid)["api"] == 0
    finally:
        stop(v)
    for role in ("vmm", "api", "prefault"):
        lines = [ln for ln in v.stderr().splitlines() if f'no "{role}" filter' in ln]
        assert len(lines) == 1 and "warning" in lines[0] and f, v.stderr()
    assert 'no "vcpu" filter' not in v.stderr()


# ---- bad filter files: exit 2, the JSON path, the value, the remedy ----

def rule(syscall="read", **cond):
    c = dict({"index": 0, "type": "dword", "op": "eq", "val": 1}, **cond)
    return {"syscall": syscall, "args": [c]}


BAD_FILES = [
    ("not json", "not JSON", ["invalid JSON at line 1, column 1", "not its BPF output"]),
    ("bpf", b"\x20\x00\x00\x00\x04\x00\x00\x00\x15\x00\x00\x0b>\x00\x00\xc0",
     ["not JSON text", "not its BPF output"]),
    ("a list", [], ["expected an object of filters by thread role"]),
    ("unknown role", {"vcpus": allow_list([])}, ["vcpus: not a thread role", "vmm, api, vcpu or prefault"]),
    ("role given twice", '{"api": {"default_action": "trap", "filter_action": "allow", "filter": []},'
                         ' "api": {"default_action": "trap", "filter_action": "allow", "filter": []}}',
     ["api: given twice"]),
    ("unknown syscall", {"vcpu": allow_list([{"syscall": "read"}, {"syscall": "opne"}])},
     ['vcpu.filter[1].syscall: "opne" is not a system call on x86_64']),
    ("syscall not a string", {"vcpu": allow_list([{"syscall": 0}])},
     ["vcpu.filter[0].syscall: expected a system call's name, got 0"]),
    ("no syscall", {"vcpu": allow_list([{"comment": "x"}])}, ["vcpu.filter[0].syscall: missing"]),
    ("unknown rule key", {"vcpu": allow_list([{"syscall": "read", "arg": []}])},
     ["vcpu.filter[0].arg: unknown field", "syscall, args, comment"]),
    ("bad op", {"api": allow_list([rule(op="opne")])},
     ['api.filter[0].args[0].op: "opne" is not an operator', "masked_eq"]),
    ("masked_eq without its mask", {"api": allow_list([rule(op="masked_eq")])},
     ['api.filter[0].args[0].op: "masked_eq" needs its mask', '{"masked_eq": MASK}']),
    ("index 6", {"vmm": allow_list([rule(index=6)])},
     ["vmm.filter[0].args[0].index: 6 is out of range; use 0 to 5"]),
    ("negative index", {"vmm": allow_list([rule(index=-1)])},
     ["vmm.filter[0].args[0].index: -1 is out of range"]),
    ("bad type", {"vmm": allow_list([rule(type="word")])},
     ['vmm.filter[0].args[0].type: "word" is not an argument size', '"dword"', '"qword"']),
    ("an ordered dword", {"vmm": allow_list([rule(op="lt")])},
     ['vmm.filter[0].args[0].op: "lt" on a "dword"', "eq or masked_eq", '"type": "qword"']),
    ("dword too wide", {"vmm": allow_list([rule(val=4294967296)])},
     ["vmm.filter[0].args[0].val: 4294967296 is out of range", '"type": "qword"']),
    ("qword too wide", {"vmm": allow_list([rule(type="qword", val=18446744073709551616)])},
     ["vmm.filter[0].args[0].val: 18446744073709551616 is out of range"]),
    ("val not an integer", {"vmm": allow_list([rule(val=1.5)])},
     ["vmm.filter[0].args[0].val: expected an unsigned integer, got 1.5"]),
    ("condition without val", {"vmm": allow_list([{"syscall": "read", "args": [
        {"index": 0, "type": "dword", "op": "eq"}]}])}, ["vmm.filter[0].args[0].val: missing"]),
    ("empty args", {"vmm": allow_list([{"syscall": "read", "args": []}])},
     ["vmm.filter[0].args: an empty list", 'leave "args" out']),
    ("seven conditions", {"vmm": allow_list([{"syscall": "read", "args": [
        {"index": i % 6, "type": "qword", "op": "ge", "val": 0} for i in range(7)]}])},
     ["vmm.filter[0].args: 7 conditions; at most 6"]),
    ("bad action", {"vcpu": allow_list([], default_action="deny")},
     ['vcpu.default_action: "deny" is not an action', "kill_process", '{"errno": N}']),
    ("errno without a number", {"vcpu": allow_list([], default_action="errno")},
     ['vcpu.default_action: "errno" needs a number; write {"errno": N}']),
    ("errno not a number", {"vcpu": allow_list([], default_action={"errno": "EPERM"})},
     ['vcpu.default_action.errno: expected an unsigned integer, got "EPERM"']),
    ("errno too big", {"vcpu": allow_list([], default_action={"errno": 4096})},
     ["vcpu.default_action.errno: 4096 is out of range; use 0 to 4095"]),
    ("action object with two keys", {"vcpu": allow_list([], default_action={"errno": 1, "trace": 1})},
     ["vcpu.default_action: ", "one key, errno or trace"]),
    ("no default action", {"vcpu": {"filter_action": "allow", "filter": []}},
     ["vcpu.default_action: missing", "kill_process"]),
    ("old and new names at once", {"vcpu": allow_list([], mismatch_action="trap")},
     ["vcpu: both default_action and mismatch_action"]),
    ("the same action twice", {"vcpu": allow_list([], default_action="allow")},
     ["vcpu: default_action and filter_action are the same action"]),
    ("no filter list", {"vcpu": {"default_action": "trap", "filter_action": "allow"}},
     ["vcpu.filter: missing"]),
    ("filter not a list", {"vcpu": allow_list({})}, ["vcpu.filter: expected a list of rules"]),
    ("unknown filter key", {"vcpu": dict(allow_list([]), comment="x")},
     ["vcpu.comment: unknown field", "default_action"]),
    # Well-formed, but libseccomp cannot compile it: refused at start, not when a thread
    # installs it.
    ("two conditions on one argument", {"vcpu": allow_list([{"syscall": "futex", "args": [
        {"index": 1, "type": "dword", "op": "eq", "val": 0},
        {"index": 1, "type": "dword", "op": "eq", "val": 128}]}])},
     ["libseccomp refuses it", "vcpu: rule 0 (futex"]),
]


@pytest.mark.parametrize("doc,words", [pytest.param(d, w, id=i) for i, d, w in BAD_FILES])
def test_a_bad_filter_file_is_exit_2(tmp_path, doc, words):
    path = tmp_path / "filter.json"
    if isinstance(doc, bytes):
        path.write_bytes(doc)
    else:
        write(tmp_path, doc)
    sock = tmp_path / "api.sock"
    r = run(["--api-sock", str(sock), "--seccomp-filter", str(path)])
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1, r.stderr
    assert f"--seccomp-filter {path}: " in errors[0], errors[0]
    for w in words:
        assert w in errors[0], f"{w!r} not in {errors[0]}"
    # Refused before anything was made.
    assert not sock.exists()
    # `hugevmm seccomp --seccomp-filter` checks a file the same way.
    code, _, err = printed("--seccomp-filter", str(path))
    assert code == 2 and errors[0].split("error: ", 1)[1] in err, err


@pytest.mark.parametrize("path,words", [
    ("/nonexistent/filter.json", ["cannot open it: No such file or directory", "hugevmm seccomp"]),
    ("/", ["Is a directory"]),
])
def test_a_filter_file_that_cannot_be_read_is_exit_2(path, words):
    r = run(["--config-file", "/nonexistent.json", "--seccomp-filter", path])
    assert r.returncode == 2, r.stderr
    assert f"--seccomp-filter {path}: " in r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def test_seccompilers_names_and_spellings_are_taken(tmp_path):
    """Firecracker's files name the actions default_action and filter_action, seccompiler's
    newer ones mismatch_action and match_action; seccompiler's docs write "Allow"; comments
    go with rules and conditions; values up to 2^64 - 1 are read exactly."""
    doc = {
        "vmm": {"default_action": "trap", "filter_action": "allow", "filter": [
            {"syscall": "read", "comment": "the event loop"},
            {"syscall": "ioctl", "comment": "FIONBIO", "args": [
                {"index": 1, "type": "dword", "op": "eq", "val": 21537, "comment": "FIONBIO"}]}]},
        "api": {"mismatch_action": {"errno": 1}, "match_action": "Allow", "filter": []},
        "vcpu": {"mismatch_action": "KillProcess", "match_action": "log", "filter": [
            {"syscall": "mmap", "args": [
                {"index": 2, "type": "qword", "op": {"masked_eq": 18446744073709551615},
                 "val": 18446744073709551614},
                {"index": 3, "type": "qword", "op": "ne", "val": 0}]}]},
        "prefault": {"default_action": {"trace": 7}, "filter_action": "kill_thread", "filter": []},
    }
    code, got, err = printed("--seccomp-filter", write(tmp_path, doc))
    assert code == 0, err
    assert got == {
        "vmm": {"default_action": "trap", "filter_action": "allow", "filter": [
            {"syscall": "read"},
            {"syscall": "ioctl", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 21537}]}]},
        "api": {"default_action": {"errno": 1}, "filter_action": "allow", "filter": []},
        "vcpu": {"default_action": "kill_process", "filter_action": "log", "filter": [
            {"syscall": "mmap", "args": [
                {"index": 2, "type": "qword", "op": {"masked_eq": 18446744073709551615},
                 "val": 18446744073709551614},
                {"index": 3, "type": "qword", "op": "ne", "val": 0}]}]},
        "prefault": {"default_action": {"trace": 7}, "filter_action": "kill_thread", "filter": []},
    }, got


# ---- `hugevmm seccomp` ----

def test_hugevmm_seccomp_prints_the_built_in_filters():
    code, doc, err = printed()
    assert code == 0, err
    assert list(doc) == ROLES
    for role, f in doc.items():
        assert set(f) == {"default_action", "filter_action", "filter"}, f
        assert f["default_action"] == "kill_process" and f["filter_action"] == "allow"
        names = [r["syscall"] for r in f["filter"]]
        for must in ("read", "write", "futex", "exit", "exit_group", "mmap"):
            assert must in names, (role, must)
        for r in f["filter"]:
            assert set(r) <= {"syscall", "args", "comment"}, r
            for c in r.get("args", []):
                assert set(c) == {"index", "type", "op", "val"} and 0 <= c["index"] <= 5, c
    # No role opens files but the VMM's (and it never creates one). A sanitizer build lets
    # every role make its runtime's calls (openat, clone, ptrace...): not checked there.
    assert "openat" in [r["syscall"] for r in doc["vmm"]["filter"]]
    sanitizer = "ptrace" in [r["syscall"] for r in doc["api"]["filter"]]
    for role in ("api", "vcpu", "prefault"):
        calls = {r["syscall"] for r in doc[role]["filter"]}
        assert not {"execve", "socket"} & calls, role
        assert sanitizer or not {"openat", "open"} & calls, role
    # The tgkill rule can name our pid only inside this process: printed, it has no condition.
    tgkill = [r for r in doc["vcpu"]["filter"] if r["syscall"] == "tgkill"]
    assert len(tgkill) == 1 and "args" not in tgkill[0] and "pid" in tgkill[0]["comment"]
    # --role prints one of them, the same.
    for role in ROLES:
        code, one, err = printed("--role", role)
        assert code == 0 and one == {role: doc[role]}, err


def without_comments(doc):
    return {role: dict(f, filter=[{k: v for k, v in r.items() if k != "comment"} for r in f["filter"]])
            for role, f in doc.items()}


def test_hugevmm_seccomp_round_trips(tmp_path):
    """What `hugevmm seccomp` prints is a filter file that reads back as the same policy,
    rule by rule (comments aside: they are not part of a policy)."""
    r = run(["seccomp"])
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    f = write(tmp_path, r.stdout)
    code, back, err = printed("--seccomp-filter", f)
    assert code == 0 and "warning" not in err, err
    assert list(back) == list(doc)
    for role in ROLES:
        a, b = without_comments(doc)[role], back[role]
        assert (a["default_action"], a["filter_action"]) == (b["default_action"], b["filter_action"])
        assert len(a["filter"]) == len(b["filter"]), role
        for i, (x, y) in enumerate(zip(a["filter"], b["filter"])):
            assert x == y, f"{role}.filter[{i}]: {x} != {y}"
    # And a run takes it.
    v = Vmm(tmp_path, ["--seccomp-filter", f])
    try:
        assert api(v.sock, "GET", "/")[1]["seccomp"]["source"] == "file"
    finally:
        stop(v)


@pytest.mark.parametrize("args,words", [
    (["--role", "vcpus"], ['--role: "vcpus" is not a thread role']),
    (["--no-seccomp"], ['unknown option "--no-seccomp"']),
    (["extra"], ['unexpected argument "extra"']),
])
def test_hugevmm_seccomp_usage_errors(args, words):
    r = run(["seccomp", *args])
    assert r.returncode == 2 and not r.stdout, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def test_help_names_the_command_and_the_flags():
    r = run(["--help"])
    assert r.returncode == 0
    for w in ("seccomp [--role ROLE]", "--no-seccomp", "--seccomp-filter FILE", "seccompiler-bin"):
        assert w in r.stdout, w
    r = run(["seccomp", "--help"])
    assert r.returncode == 0 and "usage: hugevmm seccomp [--role ROLE]" in r.stdout


# ---- the confined API thread hands files and host probes to the VMM thread ----

def test_logger_metrics_and_host_before_boot_with_filters_on(tmp_path):
    v = Vmm(tmp_path, ["--id", "sc-1"])
    log, metrics = tmp_path / "fc.log", tmp_path / "metrics.json"
    try:
        assert confined(v.proc.pid)["api"] == 2
        assert api(v.sock, "PUT", "/logger", {"log_path": str(log), "level": "Debug",
                                              "show_level": True}) == (204, None)
        assert api(v.sock, "PUT", "/metrics", {"metrics_path": str(metrics)}) == (204, None)
        # A bad path is still refused for what it is, and the VMM goes on.
        st, body = api(v.sock, "PUT", "/logger", {"log_path": str(tmp_path / "no" / "fc.log")})
        assert st == 400 and "logger.log_path" in body["fault_message"], body
        st, host = api(v.sock, "GET", "/host")
        local = json.loads(subprocess.run([BIN, "host"], capture_output=True, text=True).stdout)
        assert st == 200 and host["kernel"] == local["kernel"] and host["thp"] == local["thp"], host
        assert host["kvm"] == local["kvm"]
        assert api(v.sock, "PUT", "/actions", {"action_type": "FlushMetrics"}) == (204, None)
        line = json.loads(metrics.read_text().splitlines()[-1])
        assert line["put_api_requests"]["logger_count"] == 2
        assert line["put_api_requests"]["logger_fails"] == 1
        assert api(v.sock, "GET", "/")[1]["id"] == "sc-1"
    finally:
        stop(v)
    assert log.read_text().strip(), "nothing was logged"
    assert "sc-1" in log.read_text()


@needs_kvm
def test_logger_and_metrics_are_refused_after_instance_start(tmp_path):
    v = Vmm(tmp_path)
    try:
        v.boot()
        for path, body, what in (("/logger", {"log_path": str(tmp_path / "late.log")}, "logger"),
                                 ("/metrics", {"metrics_path": str(tmp_path / "late.json")}, "metrics")):
            st, reply = api(v.sock, "PUT", path, body)
            msg = reply["fault_message"]
            assert st == 400 and f"PUT {path}" in msg, reply
            assert "The requested operation is not supported after starting the microVM." in msg
            assert f"Configure the {what} before InstanceStart" in msg
        assert not (tmp_path / "late.log").exists() and not (tmp_path / "late.json").exists()
        sc = api(v.sock, "GET", "/")[1]["seccomp"]
        assert sc["threads"]["vmm"] == 1 and sc["threads"]["vcpu"] == 1 and sc["threads"]["api"] == 1
        modes = confined(v.proc.pid)
        assert modes["hugevmm"] == modes["api"] == modes["fc_vcpu 0"] == 2, modes
    finally:
        stop(v)


@needs_kvm
def test_status_shows_the_confinement(tmp_path):
    v = Vmm(tmp_path)
    try:
        v.boot()
        r = subprocess.run([BIN, "status", "--api-sock", v.sock], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        assert "seccomp: default, threads confined: vmm 1, api 1, vcpu 1" in r.stdout, r.stdout
    finally:
        stop(v)


# ---- a forbidden call on the API thread ----

def start(tmp_path, call, args=()):
    env = dict(os.environ, HUGEVMM_TEST_HOOKS="1", HUGEVMM_TEST_FORBIDDEN=f"api:{call}")
    err = open(tmp_path / "hugevmm.err", "w+")
    p = subprocess.Popen([BIN, "--api-sock", str(tmp_path / "api.sock"), *args],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
    return p, err


@pytest.mark.parametrize("call", ["socket", "open", "execve"])
def test_a_forbidden_call_on_the_api_thread_kills_the_process(tmp_path, call):
    p, err = start(tmp_path, call)
    assert wait_death(p) == SIGSYS
    err.seek(0)
    assert f"the api thread issues the forbidden call {call}" in err.read()
    assert not os.path.exists(f"/tmp/hugevmm-forbidden-{p.pid}-api")


@pytest.mark.parametrize("call", ["socket", "open"])
def test_without_filters_the_forbidden_call_is_made_and_the_vmm_goes_on(tmp_path, call):
    p, err = start(tmp_path, call, ["--no-seccomp"])
    try:
        deadline = time.time() + 30
        while True:
            assert p.poll() is None, f"hugevmm exited {p.returncode}"
            assert time.time() < deadline
            try:
                if api(str(tmp_path / "api.sock"), "GET", "/", check=False)[0] == 200:
                    break
            except OSError:
                time.sleep(0.01)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err.seek(0)
    text = err.read()
    assert f"the api thread issues the forbidden call {call}" in text
    assert ("socket(AF_INET): made" if call == "socket" else "created") in text, text
