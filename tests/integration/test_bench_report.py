"""bench/report.py renders a results JSON (every committed `make bench` or section run, the
newest first) into the Markdown table: every metric a row, every series a column, goals
stated."""
import glob
import importlib.util
import json
import os

import pytest

from conftest import ROOT

RUNS = sorted((p for p in glob.glob(os.path.join(ROOT, "bench", "results", "*.json"))
               if not p.endswith("-quick.json")), reverse=True)


def load_report():
    spec = importlib.util.spec_from_file_location("report", os.path.join(ROOT, "bench", "report.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_results_are_committed():
    assert RUNS, "no committed bench/results/<date>.json"


@pytest.mark.parametrize("path", RUNS, ids=[os.path.basename(p) for p in RUNS])
def test_markdown_of_the_results(path):
    with open(path) as f:
        res = json.load(f)
    md = load_report().markdown(res)
    rows = [l for l in md.splitlines() if l.startswith("| ") and not l.startswith("| metric")]
    assert len(rows) == len(res["metrics"])
    for m in res["metrics"]:
        row = next(r for r in rows if f"| {m['case']} |" in r and m["name"] in r)
        for g in m.get("goals", []):
            assert g["text"] in row and ("met" if g["met"] else "MISSED") in row
    for key in ("cpu", "kernel", "kvm", "thp_enabled", "qemu"):
        assert str(res["machine"][key]) in md
    for sec in {m["section"] for m in res["metrics"]}:
        assert f"## {load_report().TITLES[sec]}" in md
