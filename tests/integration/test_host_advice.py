"""`hugevmm host` says what root should set for guest memory, and hugevmm never sets it
itself (issue 15: least privilege). Each test puts the host in a known state first (the
sysfs fixture restores it)."""
import json

from conftest import POOL, THP, run, write_config


def advice(args):
    r = run(["host"] + args)
    assert r.returncode == 0, r.stderr
    return {a["setting"]: a for a in json.loads(r.stdout)["advice"]}


def test_thp_never_is_advised_madvise_and_left_alone(sysfs):
    sysfs.set(f"{THP}/enabled", "never")
    a = advice([])
    e = a[f"{THP}/enabled"]
    assert (e["now"], e["set"]) == ("never", "madvise")
    assert e["command"] == f"echo madvise > {THP}/enabled"
    # Advice only: the setting is as it was.
    assert open(f"{THP}/enabled").read().split("[")[1].startswith("never")


def test_nothing_to_advise_for_a_host_that_has_what_the_config_needs(sysfs, tmp_path):
    cfg = write_config(tmp_path, [{"id": "ram", "size_mib": 64, "backing": "thp"}])
    assert advice(["--config-file", cfg]) == {}


def test_a_config_counts_the_hugetlb_pages_it_needs(sysfs, tmp_path):
    pool = POOL.format(2048) + "/nr_hugepages"
    sysfs.set(pool, 4)
    free = int(open(POOL.format(2048) + "/free_hugepages").read())
    cfg = write_config(tmp_path, [{"id": "a", "size_mib": 64, "backing": "hugetlb"},
                                  {"id": "b", "size_mib": 32, "backing": "hugetlb"}])
    e = advice(["--config-file", cfg])[pool]
    nr = int(open(pool).read())
    assert int(e["set"]) == nr + 48 - free, e
    assert "48 pages" in e["why"]
    assert int(open(pool).read()) == nr  # untouched


def test_memfd_with_2m_pages_needs_shmem_thp(sysfs, tmp_path):
    cfg = write_config(tmp_path, [{"id": "m", "size_mib": 64, "backing": "memfd",
                                   "page_size": "2M", "policy": "prefer"}])
    e = advice(["--config-file", cfg])[f"{THP}/shmem_enabled"]
    assert (e["now"], e["set"]) == ("never", "advise")
    sysfs.set(f"{THP}/shmem_enabled", "advise")
    assert f"{THP}/shmem_enabled" not in advice(["--config-file", cfg])


def test_human_output_says_what_to_set(sysfs):
    sysfs.set(f"{THP}/enabled", "never")
    r = run(["host", "--human"])
    assert r.returncode == 0
    assert f"to set (root)   echo madvise > {THP}/enabled" in r.stdout


def test_a_bad_config_is_exit_2(tmp_path):
    r = run(["host", "--config-file", str(tmp_path / "missing.json")])
    assert r.returncode == 2
    assert "missing.json" in r.stderr
