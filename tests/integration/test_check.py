"""`hugevmm check` on this host, every reported number held against the kernel's
own accounting read independently (smaps of the live process, hugetlb pool
counters)."""
import os
import subprocess

import pytest

from conftest import (BIN, GiB, MiB, THP, check, held, pool_counters, region_span, run, smaps,
                      write_config)


def assert_invariants(report):
    for reg in report["regions"]:
        h = reg["host"]
        if not h["known"]:
            continue
        total = h["bytes_4k"] + h["bytes_2m"] + h["bytes_1g"] + h["bytes_not_present"]
        assert total == reg["size_bytes"]
        assert h["coverage"] == pytest.approx((h["bytes_2m"] + h["bytes_1g"]) / reg["size_bytes"],
                                              abs=1e-6)
        assert sum(s["size_bytes"] for s in reg["slots"]) == reg["size_bytes"]
    assert report["kvm"]["available"] is False
    assert report["kvm"]["reason"]


def test_anon_is_4k(tmp_path, sysfs):
    with held(tmp_path, [{"backing": "anon", "size_mib": 64}]) as (pid, rep):
        assert_invariants(rep)
        reg = rep["regions"][0]
        k = smaps(pid, *region_span(rep))
        assert reg["host"]["bytes_4k"] == k["Rss"] == 64 * MiB
        assert reg["host"]["bytes_2m"] == k["AnonHugePages"] == 0
        assert reg["verdict"] == "off"


@pytest.mark.parametrize("method", ["pagemap_scan", "smaps"])
def test_thp_fully_huge(tmp_path, sysfs, method):
    env = {"HUGEVMM_MEASURE": "smaps"} if method == "smaps" else {}
    with held(tmp_path, [{"backing": "thp", "size_mib": 256}], env) as (pid, rep):
        assert_invariants(rep)
        reg = rep["regions"][0]
        assert reg["host"]["method"] == method
        k = smaps(pid, *region_span(rep))
        assert reg["host"]["bytes_2m"] == k["AnonHugePages"]
        assert reg["host"]["bytes_2m"] + reg["host"]["bytes_4k"] == k["Rss"]
        assert reg["slots"][0]["aligned"] is True
        assert (reg["slots"][0]["host_virt_addr"] - reg["slots"][0]["guest_phys_addr"]) % (2 * MiB) == 0
        # On a quiet 24 GiB host a fresh 256 MiB THP region is fully huge.
        assert reg["host"]["coverage"] == 1.0
        assert reg["verdict"] == "pass" and reg["ok"] is True
        assert rep["host_coverage"] == 1.0


def test_memfd_with_shmem_thp(tmp_path, sysfs):
    sysfs.set(f"{THP}/shmem_enabled", "advise")
    with held(tmp_path, [{"backing": "memfd", "size_mib": 128}]) as (pid, rep):
        assert_invariants(rep)
        reg = rep["regions"][0]
        k = smaps(pid, *region_span(rep))
        assert reg["host"]["bytes_2m"] == k["ShmemPmdMapped"] == 128 * MiB
        assert reg["verdict"] == "pass"


def test_memfd_without_shmem_thp_warns(tmp_path, sysfs):
    with held(tmp_path, [{"backing": "memfd", "size_mib": 64}]) as (pid, rep):
        assert_invariants(rep)
        reg = rep["regions"][0]
        k = smaps(pid, *region_span(rep))
        assert reg["host"]["bytes_2m"] == k["ShmemPmdMapped"] == 0
        assert reg["host"]["bytes_4k"] == k["Rss"] == 64 * MiB
        assert reg["verdict"] == "warn" and reg["policy"] == "prefer"
        assert "shmem_enabled" in reg["message"]


def test_memfd_without_shmem_thp_require_refused(tmp_path, sysfs):
    rc, rep, err = check(tmp_path, [{"backing": "memfd", "size_mib": 64, "policy": "require"}])
    assert rc == 3
    assert rep["regions"][0]["ok"] is False and rep["regions"][0]["verdict"] == "fail"
    assert 'memory.regions[0] ("ram0", memfd, policy require)' in err
    assert "echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled" in err


def test_thp_never_with_require_refused(tmp_path, sysfs):
    sysfs.set(f"{THP}/enabled", "never")
    rc, rep, err = check(tmp_path, [{"backing": "thp", "size_mib": 64}])
    assert rc == 3
    reg = rep["regions"][0]
    assert reg["host"]["bytes_2m"] == 0 and reg["verdict"] == "fail"
    # An administrator's "never" is respected: no MADV_COLLAPSE behind its back.
    assert "collapse" not in reg
    assert 'THP is "never"' in err and "echo madvise >" in err


def test_hugetlb_2m_from_pool(tmp_path, hugetlb_pool):
    before = hugetlb_pool(2048, 128)
    with held(tmp_path, [{"backing": "hugetlb", "size_mib": 256}]) as (pid, rep):
        assert_invariants(rep)
        reg = rep["regions"][0]
        k = smaps(pid, *region_span(rep))
        assert k["KernelPageSize"] == 2 * MiB
        assert reg["host"]["bytes_2m"] == k["Shared_Hugetlb"] + k["Private_Hugetlb"] == 256 * MiB
        now = pool_counters(2048)
        assert before["free"] - now["free"] == 128
        assert reg["verdict"] == "pass"
    assert pool_counters(2048)["free"] == before["free"]


def test_hugetlb_1g_from_pool(tmp_path, hugetlb_pool):
    before = hugetlb_pool(1048576, 1)
    with held(tmp_path, [{"backing": "hugetlb", "size_mib": 1024, "page_size": "1G"}]) as (pid, rep):
        assert_invariants(rep)
        reg = rep["regions"][0]
        k = smaps(pid, *region_span(rep))
        assert k["KernelPageSize"] == GiB
        assert reg["host"]["bytes_1g"] == k["Shared_Hugetlb"] + k["Private_Hugetlb"] == GiB
        assert reg["host"]["bytes_2m"] == 0
        assert pool_counters(1048576)["free"] == before["free"] - 1
        assert (reg["slots"][0]["host_virt_addr"] % GiB) == 0


def test_hugetlbfs_path(tmp_path, hugetlb_pool):
    hugetlb_pool(2048, 32)
    mnt = tmp_path / "huge"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", str(mnt)]).returncode:
        pytest.skip("cannot mount hugetlbfs here")
    try:
        rc, rep, err = check(tmp_path, [{"backing": "hugetlb", "size_mib": 64, "path": str(mnt)}])
        assert rc == 0, err
        assert rep["regions"][0]["host"]["bytes_2m"] == 64 * MiB
        assert os.listdir(mnt) == []  # the file was anonymous: nothing left
    finally:
        subprocess.run(["umount", str(mnt)])


def test_short_hugetlb_pool_refused(tmp_path, hugetlb_pool):
    before = hugetlb_pool(2048, 10)
    rc, rep, err = check(tmp_path, [{"backing": "hugetlb", "size_mib": 64}])
    assert rc == 3
    assert rep is None  # refused before anything was mapped
    assert "hugetlb pool too small" in err and "needs 32 free 2M pages" in err
    assert "echo 32 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages" in err
    assert pool_counters(2048) == before  # nothing reserved, nothing held


def test_misaligned_layout(tmp_path, sysfs):
    regions = [{"backing": "thp", "size_mib": 64, "host_offset_kib": 4, "policy": "prefer"}]
    with held(tmp_path, regions) as (pid, rep):
        reg = rep["regions"][0]
        slot = reg["slots"][0]
        assert slot["aligned"] is False
        assert (slot["host_virt_addr"] - slot["guest_phys_addr"]) % (2 * MiB) == 4096
        assert reg["verdict"] == "warn" and "misaligned" in reg["message"]
        k = smaps(pid, *region_span(rep))
        # The host still maps the 2M-aligned interior huge; the ends cannot be.
        assert reg["host"]["bytes_2m"] == k["AnonHugePages"] == 62 * MiB
    regions[0]["policy"] = "require"
    rc, rep, err = check(tmp_path, regions)
    assert rc == 3 and "slot 0 is misaligned" in err


def test_devdax_missing(tmp_path):
    rc, rep, err = check(tmp_path, [{"backing": "devdax", "size_mib": 64, "device": "dax9.9"}])
    assert rc == 2 and rep is None
    assert 'memory.regions[0].device: "dax9.9" does not exist' in err
    assert "daxctl list" in err


def test_fsdax_path_on_non_dax_filesystem(tmp_path):
    path = tmp_path / "pmem.img"
    rc, rep, err = check(tmp_path, [{"backing": "file", "size_mib": 64, "path": str(path),
                                     "dax": True}])
    assert rc == 2 and rep is None
    assert f'memory.regions[0].path: "{path}" is not on a DAX filesystem' in err
    assert not path.exists()


def test_region_crossing_the_hole(tmp_path, sysfs):
    rc, rep, err = check(tmp_path, [{"backing": "thp", "size_mib": 3584, "prefault": False}])
    assert rc == 0, err
    reg = rep["regions"][0]
    assert [(s["guest_phys_addr"], s["size_bytes"]) for s in reg["slots"]] == \
        [(0, 3 * GiB), (4 * GiB, 512 * MiB)]
    assert reg["slots"][1]["host_virt_addr"] - reg["slots"][0]["host_virt_addr"] == 3 * GiB
    assert reg["verdict"] == "deferred" and reg["host"]["bytes_not_present"] == reg["size_bytes"]


def test_bad_json_names_line_and_column(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{\n  "memory": {"regions": [}\n}\n')
    r = run(["check", "--config-file", str(p)])
    assert r.returncode == 2
    assert f"{p}: invalid JSON at line 2" in r.stderr


def test_cli_usage_errors():
    assert run([]).returncode == 2
    r = run(["frobnicate"])
    assert r.returncode == 2 and 'unknown command "frobnicate"' in r.stderr
    r = run(["check"])
    assert r.returncode == 2 and "--config-file FILE is required" in r.stderr
    r = run(["check", "--config-file", "/nonexistent.json"])
    assert r.returncode == 2 and "cannot open" in r.stderr
    r = run(["check", "--bogus"])
    assert r.returncode == 2 and '"--bogus"' in r.stderr
    for cmd in (["--help"], ["check", "--help"], ["host", "--help"], ["--version"]):
        r = run(cmd)
        assert r.returncode == 0 and r.stdout


def test_host_probe_matches_sysfs():
    import json
    r = run(["host"])
    assert r.returncode == 0
    h = json.loads(r.stdout)
    from conftest import choice
    assert h["thp"]["enabled"] == choice(f"{THP}/enabled")
    assert h["thp"]["shmem_enabled"] == choice(f"{THP}/shmem_enabled")
    pools = {p["page_size"]: p for p in h["hugetlb_pools"]}
    for name, kb in (("2M", 2048), ("1G", 1048576)):
        if os.path.isdir(f"/sys/kernel/mm/hugepages/hugepages-{kb}kB"):
            c = pool_counters(kb)
            assert pools[name]["total"] == c["nr"] and pools[name]["free"] == c["free"]
    assert h["kernel"] == os.uname().release
    assert h["kvm"]["present"] == os.path.exists("/dev/kvm")
    assert isinstance(h["dax_devices"], list)
    r = run(["host", "--human"])
    assert r.returncode == 0 and "pagemap_scan=" in r.stdout


def test_every_bundled_config_checks(sysfs):
    configs = os.path.join(os.path.dirname(BIN), "..", "configs")
    names = sorted(n for n in os.listdir(configs) if n.endswith(".json"))
    assert names
    for n in names:
        r = run(["check", "--config-file", os.path.join(configs, n)])
        assert r.returncode == 0, f"{n}: {r.stderr}"


def test_human_view(tmp_path, sysfs):
    r = run(["check", "--human", "--config-file",
             write_config(tmp_path, [{"backing": "thp", "size_mib": 64},
                                     {"backing": "anon", "size_mib": 16}])])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("REGION")
    assert "[" + "M" * 40 + "]" in lines[1] and "pass" in lines[1]
    assert "[" + "k" * 40 + "]" in r.stdout


def test_overcommit_lazy_maps_prefaulted_refused(tmp_path, sysfs):
    """A region larger than the host's RAM: lazy (prefault false) it is mapped without
    committing it, as Firecracker does; prefaulted it is refused at once, naming the remedy,
    instead of being populated into the OOM killer."""
    sysfs.set("/proc/sys/vm/overcommit_memory", "0")  # the kernel's default heuristic
    with open("/proc/meminfo") as f:
        total_kib = int(next(l for l in f if l.startswith("MemTotal:")).split()[1])
    mib = (total_kib // 1024 // 1024 + 1) * 2 * 1024  # twice the RAM, whole GiB
    rc, rep, err = check(tmp_path, [{"backing": "thp", "size_mib": mib, "prefault": False,
                                     "policy": "off"}])
    assert rc == 0, err
    assert rep["regions"][0]["size_bytes"] == mib * MiB
    assert rep["regions"][0]["host"]["bytes_not_present"] == mib * MiB
    rc, rep, err = check(tmp_path, [{"backing": "thp", "size_mib": mib, "policy": "off"}])
    assert rc == 1 and rep is None
    assert f"memory.regions[0]: the host cannot commit {mib} MiB" in err
    assert '"prefault": false' in err
