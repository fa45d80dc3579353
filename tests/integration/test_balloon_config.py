"""The balloon (Firecracker's Balloon, BalloonUpdate, BalloonStatsUpdate) and a region's
"reclaim" through the config file and the API, without a guest: bad input is refused before
anything is built (exit 2 / HTTP 400, the message naming the field, the value and the
remedy), good input comes back whole from GET /balloon and GET /vm/config, and the routes that
need the device (PATCH /balloon, the statistics) say why they cannot answer before boot.
Every refusal here comes before /dev/kvm is opened, so these run everywhere; the running
device (PATCH after boot, statistics, reclaim) is tested with a guest in the L1 tier."""
import json

import pytest

from conftest import assert_refused, run, run_guest_config
from fcapi import SCHEMA, api, conforms, flush_metrics

FIELDS = ["amount_mib", "deflate_on_oom", "stats_polling_interval_s", "free_page_hinting",
          "free_page_reporting"]
KNOWN = "known fields: " + ", ".join(FIELDS)
NO_BALLOON = ["balloon: no balloon configured", "PUT /balloon", "before InstanceStart"]
HINTING = ["balloon.free_page_hinting", "true is not implemented",
           "free_page_reporting is the supported way", '"free_page_reporting": true']


def balloon(amount_mib=16, deflate_on_oom=True, **kw):
    return dict({"amount_mib": amount_mib, "deflate_on_oom": deflate_on_oom}, **kw)


def shown(body):
    """GET /balloon's and GET /vm/config's rendering of a balloon PUT with @body: every field
    of Firecracker's Balloon, defaults filled in (free_page_hinting is always false)."""
    return dict({"stats_polling_interval_s": 0, "free_page_hinting": False,
                 "free_page_reporting": False}, **body)


# ---------------------------------------------------------------- the config file

# case -> (balloon section, words the message must hold); the guest has 64 MiB (run_guest_config)
BAD = {
    "amount_missing": ({"deflate_on_oom": True},
                       ["balloon.amount_mib: missing", "Firecracker requires it",
                        "target size in MiB"]),
    "deflate_missing": ({"amount_mib": 16},
                        ["balloon.deflate_on_oom: missing", "say true or false"]),
    "amount_negative": (balloon(-1), ["balloon.amount_mib", "-1 is out of range",
                                      "use 0 to 4294967295"]),
    "amount_not_integer": (balloon(1.5), ["balloon.amount_mib", "expected an integer",
                                          "1.5"]),
    "amount_string": (balloon("16"), ["balloon.amount_mib", "expected an integer", '"16"']),
    "amount_over_u32": (balloon(4294967296), ["balloon.amount_mib", "4294967296 is out of range",
                                              "use 0 to 4294967295"]),
    "amount_null": (balloon(None), ["balloon.amount_mib: expected an integer, got null"]),
    "amount_over_ram": (balloon(65), ["balloon.amount_mib", "65 MiB",
                                      "more than the guest's RAM (64 MiB)", "give 64 or less"]),
    "deflate_string": (balloon(deflate_on_oom="yes"),
                       ["balloon.deflate_on_oom", "expected true or false", '"yes"']),
    "deflate_null": (balloon(deflate_on_oom=None),
                     ["balloon.deflate_on_oom: expected true or false, got null"]),
    "stats_negative": (balloon(stats_polling_interval_s=-1),
                       ["balloon.stats_polling_interval_s", "-1 is out of range",
                        "use 0 to 65535"]),
    "stats_over_u16": (balloon(stats_polling_interval_s=65536),
                       ["balloon.stats_polling_interval_s", "65536 is out of range"]),
    "stats_not_integer": (balloon(stats_polling_interval_s=0.5),
                          ["balloon.stats_polling_interval_s", "expected an integer", "0.5"]),
    # Firecracker's field has a default, not an Option: null is refused, as there.
    "stats_null": (balloon(stats_polling_interval_s=None),
                   ["balloon.stats_polling_interval_s: expected an integer, got null"]),
    "reporting_string": (balloon(free_page_reporting="true"),
                         ["balloon.free_page_reporting", "expected true or false"]),
    "hinting": (balloon(free_page_hinting=True), HINTING),
    "hinting_with_reporting": (balloon(free_page_hinting=True, free_page_reporting=True),
                               HINTING),
    "hinting_string": (balloon(free_page_hinting="no"),
                       ["balloon.free_page_hinting", "expected true or false"]),
    "unknown_field": (balloon(target_mib=4), ["balloon.target_mib: unknown field", KNOWN]),
    "duplicate_key": ("DUP", ["balloon.amount_mib: duplicate key"]),
    "not_an_object": ([], ["balloon: expected an object, got an array"]),
}

REGION = {"id": "ram0", "backing": "thp", "size_mib": 64, "policy": "prefer"}
BAD_REGION = {
    "reclaim_unknown": (dict(REGION, reclaim="maybe"),
                        ["memory.regions[0].reclaim", '"maybe" is not known',
                         '"keep" (the region keeps every page)', '"return"']),
    "reclaim_case": (dict(REGION, reclaim="Return"),
                     ["memory.regions[0].reclaim", '"Return" is not known']),
    "reclaim_bool": (dict(REGION, reclaim=True),
                     ["memory.regions[0].reclaim", "expected a string", "true"]),
    "reclaim_array": (dict(REGION, reclaim=[]),
                                         ["memory.regions[0].reclaim", "expected a string"]),
    # Backings whose memory is never given back (memory/mem_cfg.c): named with the remedy.
    "reclaim_return_on_file": ({"id": "pm", "backing": "file", "size_mib": 64,
                                "path": "RAMFILE", "reclaim": "return"},
                               ["memory.regions[0].reclaim",
                                '"return" is not available with backing "file"',
                                'set "keep" or leave "reclaim" out']),
    # A balloon larger than the memory section's regions together.
    "amount_over_regions": ([REGION, dict(REGION, id="ram1", size_mib=32)],
                            ["balloon.amount_mib", "97 MiB",
                             "more than the guest's RAM (96 MiB)", "give 96 or less"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_config_file_refuses(case, tmp_path):
    section, words = BAD[case]
    if section == "DUP":
        # json.dumps cannot write a duplicate key: the file is written by hand.
        cfg = tmp_path / "dup.json"
        cfg.write_text('{"balloon": {"amount_mib": 1, "deflate_on_oom": true, "amount_mib": 2}}')
        r = run(["check", "--config-file", str(cfg)])
        assert_refused(r.returncode, r.stderr, words)
        return
    assert_refused(*run_guest_config(tmp_path, {"balloon": section}), words)


@pytest.mark.parametrize("case", sorted(BAD_REGION))
def test_config_file_refuses_region(case, tmp_path):
    regions, words = BAD_REGION[case]
    regions = regions if isinstance(regions, list) else [regions]
    # A file region's file would be created when mapped: refused before, it never is.
    regions = [dict(r, path=str(tmp_path / "ram.img")) if r.get("path") == "RAMFILE" else r
               for r in regions]
    sections = {"memory": {"regions": regions}}
    if case == "amount_over_regions":
        sections["balloon"] = balloon(97)
    assert_refused(*run_guest_config(tmp_path, sections), words)


def check_config(tmp_path, cfg):
    path = tmp_path / "check.json"
    path.write_text(json.dumps(cfg))
    return run(["check", "--config-file", str(path)])


@pytest.mark.parametrize("section", [
    balloon(0, False),
    balloon(64, True, stats_polling_interval_s=1, free_page_reporting=True,
            free_page_hinting=False),
    balloon(128, False, stats_polling_interval_s=65535),
    balloon(4, True, stats_polling_interval_s=0, free_page_reporting=False),
])
def test_check_takes_every_field(section, tmp_path):
    """`hugevmm check` accepts the whole Balloon schema (amount_mib up to all of RAM), with
    no warning about the balloon (it is implemented: no "ignored")."""
    cfg = {"machine-config": {"vcpu_count": 1, "mem_size_mib": 128}, "balloon": section}
    conforms(cfg, "FullVmConfiguration")
    r = check_config(tmp_path, cfg)
    assert r.returncode in (0, 3), r.stderr
    assert "balloon" not in r.stderr, r.stderr


def test_check_takes_null_balloon_and_reclaim(tmp_path):
    cfg = {"balloon": None, "memory": {"regions": [dict(REGION, reclaim="keep"),
                                                   dict(REGION, id="ram1", reclaim="return")]}}
    r = check_config(tmp_path, cfg)
    assert r.returncode in (0, 3), r.stderr


def test_check_report_has_reclaim(tmp_path):
    """`hugevmm check`'s coverage report (the GET /memory shape): each region says what
    reclaim does there and how much was given back (nothing: no guest ran)."""
    cfg = {"memory": {"regions": [dict(REGION, reclaim="keep")]}}
    r = check_config(tmp_path, cfg)
    assert r.returncode in (0, 3), r.stderr
    region = json.loads(r.stdout)["regions"][0]
    assert region["reclaim"] == "keep", region
    assert isinstance(region["reclaim_why"], str) and region["reclaim_why"], region
    assert region["reclaimed_bytes"] == 0 and region["balloon_bytes"] == 0, region


# ---------------------------------------------------------------- the API before boot

def config_of(sock):
    st, cfg = api(sock, "GET", "/vm/config")
    assert st == 200
    conforms(cfg, "FullVmConfiguration")
    return cfg


def balloon_of(sock):
    """GET /balloon (before boot: exactly Firecracker's Balloon), and the same in
    GET /vm/config."""
    st, b = api(sock, "GET", "/balloon")
    assert st == 200, b
    conforms(b, "Balloon")
    assert config_of(sock)["balloon"] == b
    return b


def refused(sock, method, path, body, words):
    st, reply = api(sock, method, path, body)
    assert st == 400, (method, path, body, reply)
    for w in words:
        assert w in reply["fault_message"], f"{w!r} not in: {reply['fault_message']}"


def test_api_every_field_round_trips(vmm):
    body = balloon(64, True, stats_polling_interval_s=5, free_page_reporting=True,
                   free_page_hinting=False)
    assert api(vmm.sock, "PUT", "/balloon", body) == (204, None)
    assert balloon_of(vmm.sock) == shown(body)
    # PUT again replaces the balloon whole: what is not given returns to its default.
    assert api(vmm.sock, "PUT", "/balloon", balloon(0, False)) == (204, None)
    assert balloon_of(vmm.sock) == shown(balloon(0, False))
    # All of RAM (128 MiB by default, Firecracker's) is allowed; one MiB more is not.
    assert api(vmm.sock, "PUT", "/balloon", balloon(128)) == (204, None)
    refused(vmm.sock, "PUT", "/balloon", balloon(129),
            ["balloon.amount_mib: 129 MiB is more than the guest's RAM (128 MiB)",
             "give 128 or less"])
    assert balloon_of(vmm.sock) == shown(balloon(128))


@pytest.mark.parametrize("case", sorted(set(BAD) - {"amount_over_ram", "duplicate_key",
                                                     "not_an_object"}))
def test_api_put_refuses(case, vmm):
    """Each bad body is refused with the config file's message and changes nothing."""
    assert api(vmm.sock, "PUT", "/balloon", balloon(8)) == (204, None)
    section, words = BAD[case]
    refused(vmm.sock, "PUT", "/balloon", section, words)
    assert balloon_of(vmm.sock) == shown(balloon(8))


def test_api_put_refuses_more_than_ram(vmm):
    assert api(vmm.sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}) \
        == (204, None)
    refused(vmm.sock, "PUT", "/balloon", balloon(65),
            ["balloon.amount_mib", "65 MiB is more than the guest's RAM (64 MiB)"])
    refused(vmm.sock, "PUT", "/balloon", [], ["body: expected a JSON object"])
    assert "balloon" not in config_of(vmm.sock)


def test_ram_cannot_shrink_below_the_balloon(vmm):
    """Firecracker's rule both ways: with a balloon, machine-config (or a memory region)
    that would leave it larger than RAM is refused, naming the balloon."""
    assert api(vmm.sock, "PUT", "/balloon", balloon(100)) == (204, None)
    words = ["balloon.amount_mib: 100 MiB is more than the guest's RAM (64 MiB)",
             "give 64 or less, or give the guest more RAM"]
    refused(vmm.sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}, words)
    refused(vmm.sock, "PATCH", "/machine-config", {"mem_size_mib": 64}, words)
    st, reply = api(vmm.sock, "PUT", "/memory/regions/ram0",
                    {"backing": "thp", "size_mib": 64, "policy": "prefer"}, check=False)
    assert st == 400 and words[0] in reply["fault_message"], reply
    cfg = config_of(vmm.sock)
    assert cfg["machine-config"]["mem_size_mib"] == 128 and "memory" in cfg, cfg
    assert cfg["memory"]["regions"][0]["size_mib"] == 128, cfg
    assert balloon_of(vmm.sock)["amount_mib"] == 100


def test_api_routes_before_a_balloon(vmm):
    """Without a balloon every route but PUT says there is none and how to add one."""
    refused(vmm.sock, "GET", "/balloon", None, NO_BALLOON)
    refused(vmm.sock, "GET", "/balloon/statistics", None, NO_BALLOON)
    refused(vmm.sock, "PATCH", "/balloon", {"amount_mib": 1},
            ["balloon: PATCH changes the target of a running VM's balloon",
             "before InstanceStart, PUT /balloon sets amount_mib"])
    refused(vmm.sock, "PATCH", "/balloon/statistics", {"stats_polling_interval_s": 1},
            ["balloon/statistics: PATCH changes the polling interval of a running VM's balloon",
             "PUT /balloon sets stats_polling_interval_s"])
    assert "balloon" not in config_of(vmm.sock)


def test_api_routes_before_boot(vmm):
    """With a balloon configured: GET /balloon answers from the configuration; PATCH and
    the statistics need the device (Firecracker refuses them before boot too)."""
    assert api(vmm.sock, "PUT", "/balloon", balloon(32)) == (204, None)
    before = balloon_of(vmm.sock)
    refused(vmm.sock, "PATCH", "/balloon", {"amount_mib": 1},
            ["PATCH changes the target of a running VM's balloon"])
    refused(vmm.sock, "PATCH", "/balloon/statistics", {"stats_polling_interval_s": 1},
            ["PATCH changes the polling interval of a running VM's balloon"])
    # Statistics off (interval 0): said so, with how to turn them on.
    refused(vmm.sock, "GET", "/balloon/statistics", None,
            ["balloon: statistics are not enabled (stats_polling_interval_s is 0)",
             "PUT /balloon with an interval above 0 before InstanceStart"])
    assert balloon_of(vmm.sock) == before
    # On: they come from the guest's driver, which runs only after InstanceStart.
    assert api(vmm.sock, "PUT", "/balloon", balloon(32, stats_polling_interval_s=2)) \
        == (204, None)
    refused(vmm.sock, "GET", "/balloon/statistics", None,
            ["balloon/statistics: the VM has not been started",
             "the guest's driver sends statistics once it runs"])


def test_api_patch_bodies(vmm):
    """PATCH bodies are checked before the state is: Firecracker's BalloonUpdate and
    BalloonStatsUpdate, with Balloon's other fields named and sent where they belong."""
    cases = [
        ("/balloon", {}, ["balloon.amount_mib: missing", "new target size in MiB"]),
        ("/balloon", {"amount_mib": -1}, ["balloon.amount_mib: -1 is out of range"]),
        ("/balloon", {"amount_mib": 4294967296}, ["balloon.amount_mib: 4294967296 is out of"]),
        ("/balloon", {"amount_mib": "1"}, ["balloon.amount_mib: expected an integer"]),
        ("/balloon", {"amount_mib": None}, ["balloon.amount_mib: expected an integer, got null"]),
        ("/balloon", {"amount_mib": 1, "deflate_on_oom": True},
         ["balloon.deflate_on_oom: PATCH /balloon changes only amount_mib",
          "set it with PUT /balloon before InstanceStart"]),
        ("/balloon", {"amount_mib": 1, "free_page_reporting": True},
         ["balloon.free_page_reporting: PATCH /balloon changes only amount_mib"]),
        ("/balloon", {"amount_mib": 1, "free_page_hinting": True},
         ["balloon.free_page_hinting: PATCH /balloon changes only amount_mib",
          "free page hinting is not implemented"]),
        ("/balloon", {"amount_mib": 1, "stats_polling_interval_s": 3},
         ["balloon.stats_polling_interval_s: PATCH /balloon changes only amount_mib",
          "PATCH /balloon/statistics changes it"]),
        ("/balloon", {"amount_mib": 1, "target": 1},
         ["balloon.target: unknown field; known fields: amount_mib"]),
        ("/balloon/statistics", {},
         ["balloon.stats_polling_interval_s: missing", "new interval in seconds"]),
        ("/balloon/statistics", {"stats_polling_interval_s": 65536},
         ["balloon.stats_polling_interval_s: 65536 is out of range; use 0 to 65535"]),
        ("/balloon/statistics", {"stats_polling_interval_s": 1, "amount_mib": 1},
         ["balloon.amount_mib: unknown field; known fields: stats_polling_interval_s"]),
    ]
    for path, body, words in cases:
        refused(vmm.sock, "PATCH", path, body, words)
    st, reply = api(vmm.sock, "PATCH", "/balloon", check=False)
    assert st == 400 and "body: missing" in reply["fault_message"], reply


def test_api_other_balloon_routes(vmm):
    for method, path in (("PATCH", "/balloon/hinting/start"), ("GET", "/balloon/hinting/status"),
                         ("PATCH", "/balloon/hinting/stop")):
        refused(vmm.sock, method, path, {} if method == "PATCH" else None,
                [f"{method} {path}: free page hinting is not implemented in hugevmm",
                 "free_page_reporting (PUT /balloon before InstanceStart)"])
    for method, path in (("DELETE", "/balloon"), ("PUT", "/balloon/statistics"),
                         ("POST", "/balloon")):
        refused(vmm.sock, method, path, None, ["Invalid request method and/or path"])


def test_api_region_reclaim(vmm):
    """A region's reclaim comes back from GET /vm/config; a bad one is refused, nothing
    changed."""
    for value in ("keep", "return"):
        assert api(vmm.sock, "PUT", "/memory/regions/ram0", dict(REGION, reclaim=value),
                   check=False) == (204, None)
        assert config_of(vmm.sock)["memory"]["regions"][0]["reclaim"] == value
    st, reply = api(vmm.sock, "PUT", "/memory/regions/ram0", dict(REGION, reclaim="maybe"),
                    check=False)
    assert st == 400 and 'memory.regions.reclaim: "maybe" is not known' in \
        reply["fault_message"], reply
    assert config_of(vmm.sock)["memory"]["regions"][0]["reclaim"] == "return"


def test_vm_config_round_trips_as_a_config_file(vmm, tmp_path):
    """GET /vm/config with a balloon and regions' reclaim is a config file hugevmm takes."""
    assert api(vmm.sock, "PUT", "/memory/regions/ram0", dict(REGION, reclaim="keep"),
               check=False) == (204, None)
    assert api(vmm.sock, "PUT", "/balloon",
               balloon(16, False, stats_polling_interval_s=3, free_page_reporting=True)) \
        == (204, None)
    cfg = config_of(vmm.sock)
    r = check_config(tmp_path, cfg)
    assert r.returncode in (0, 3), r.stderr


def test_metrics_have_no_balloon_before_boot(vmm, tmp_path):
    """The balloon and reclaim groups come with the device: not before boot."""
    metrics = tmp_path / "metrics.json"
    assert api(vmm.sock, "PUT", "/metrics", {"metrics_path": str(metrics)}) == (204, None)
    assert api(vmm.sock, "PUT", "/balloon", balloon(8)) == (204, None)
    st, m = api(vmm.sock, "GET", "/metrics")
    assert st == 200 and "balloon" not in m and "reclaim" not in m, m
    line = flush_metrics(vmm.sock, metrics)
    assert "balloon" not in line and "reclaim" not in line["hugevmm"], line


def test_schema_knows_the_balloon_bodies():
    """fcapi's balloon definitions (from Firecracker's swagger) hold what they should."""
    conforms({"amount_mib": 0}, "BalloonUpdate")
    conforms({"stats_polling_interval_s": 1}, "BalloonStatsUpdate")
    conforms({"target_pages": 256, "actual_pages": 0, "target_mib": 1, "actual_mib": 0,
              "free_memory": 1 << 30, "oom_kill": 0}, "BalloonStats")
    assert "Balloon" in SCHEMA["definitions"]
