"""`hugevmm acpi`: the tables a guest of a config gets, one file each as acpidump -b
names them, every one readable by Debian's iasl; bad input exits 2 and leaves nothing."""
import os
import shutil
import struct
import subprocess

import pytest

from conftest import run, write_config

FILES = ["rsdp.dat", "xsdt.dat", "facp.dat", "apic.dat", "dsdt.dat"]


def config(tmp_path, vcpus=2):
    return write_config(tmp_path, [{"id": "ram0", "backing": "anon", "size_mib": 64}],
                        **{"machine-config": {"vcpu_count": vcpus}})


def iasl():
    path = shutil.which("iasl")
    if not path:
        pytest.fail("iasl is missing: install Debian's acpica-tools (scripts/deps.sh test does)")
    return path


def checksum_ok(data):
    return sum(data) % 256 == 0


@pytest.mark.parametrize("vcpus", [1, 4])
def test_tables_written_and_decompiled(tmp_path, vcpus):
    out = tmp_path / "out"  # created: its parent exists
    r = run(["acpi", "--config-file", config(tmp_path, vcpus), "--out", str(out)])
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == sorted(FILES)

    rsdp = (out / "rsdp.dat").read_bytes()
    # iasl (20200925) does not disassemble a bare RSDP file: its checksums are checked here.
    assert len(rsdp) == 36 and rsdp[:8] == b"RSD PTR " and rsdp[15] == 2
    assert checksum_ok(rsdp[:20]) and checksum_ok(rsdp)
    for name in FILES[1:]:
        data = (out / name).read_bytes()
        assert data[:4].decode().lower() == name[:4]
        assert struct.unpack_from("<I", data, 4)[0] == len(data) and checksum_ok(data)
        d = subprocess.run([iasl(), "-d", name], cwd=out, capture_output=True, text=True)
        assert d.returncode == 0, d.stdout + d.stderr
        assert (out / name.replace(".dat", ".dsl")).exists()

    dsl = (out / "dsdt.dsl").read_text()
    for hid in ("PNP0501", "PNP0303", "PNP0B00"):
        assert f'EisaId ("{hid}")' in dsl
    assert "Name (\\_S5, Package (0x04)" in dsl
    assert "Hardware Reduced (V5) : 1" in (out / "facp.dsl").read_text()
    assert (out / "apic.dsl").read_text().count("[Processor Local APIC]") == vcpus


def test_same_config_same_bytes(tmp_path):
    cfg = config(tmp_path)
    for d in ("a", "b"):
        assert run(["acpi", "--config-file", cfg, "--out", str(tmp_path / d)]).returncode == 0
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_bad_out_exits_2_and_leaves_nothing(tmp_path):
    cfg = config(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (str(afile), str(tmp_path / "missing" / "out")):
        r = run(["acpi", "--config-file", cfg, "--out", out])
        assert r.returncode == 2, r.stderr
        assert "--out" in r.stderr
    assert afile.read_text() == "x"
    assert not (tmp_path / "missing").exists()
    assert sorted(os.listdir(tmp_path)) == ["afile", "vm.json"]


def test_usage_and_bad_config_exit_2(tmp_path):
    r = run(["acpi", "--config-file", config(tmp_path)])
    assert r.returncode == 2 and "--out DIR is required" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"machine-config": {"vcpu_count": 0, "mem_size_mib": 64}}')
    r = run(["acpi", "--config-file", str(bad), "--out", str(tmp_path / "o")])
    assert r.returncode == 2 and "vcpu_count" in r.stderr
    assert not (tmp_path / "o").exists()
    r = run(["acpi", "--help"])
    assert r.returncode == 0 and "acpidump" in r.stdout
