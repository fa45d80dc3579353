"""`make install` into a staging directory, then what an embedder does with it: the
installed files and symlinks, the soname, only hugevmm_* symbols exported (by the .so
and by the .a), and tests/embed/embed_test.c compiled through pkg-config against the
installed copy, shared and static. Running it without /dev/kvm covers what needs no
guest; with /dev/kvm it boots the test guest too."""
import os
import re
import shlex
import subprocess

import pytest

from conftest import BIN, ROOT

BUILD = os.path.dirname(BIN)
SAN = os.path.basename(BUILD) == "build-san"
SANFLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"] if SAN else []
GUEST = os.path.join(BUILD, "testguest.elf")
EMBED_SRC = os.path.join(ROOT, "tests", "embed", "embed_test.c")

needs_kvm = pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                               reason="/dev/kvm is absent or not accessible")


def makefile_version():
    with open(os.path.join(ROOT, "Makefile")) as f:
        return re.search(r"^VERSION := (\S+)$", f.read(), re.M).group(1)


VERSION = makefile_version()
MAJOR = VERSION.split(".")[0]


def public_api():
    """The functions include/hugevmm.h marks HUGEVMM_API."""
    with open(os.path.join(ROOT, "include", "hugevmm.h")) as f:
        return set(re.findall(r"^HUGEVMM_API [^(]*?\b(hugevmm_\w+)\(", f.read(), re.M))


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{shlex.join(cmd)}: exit {r.returncode}\n{r.stdout}{r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """The tree of `make install DESTDIR=<tmp> PREFIX=/usr`, from the build HUGEVMM_BIN is in."""
    dest = tmp_path_factory.mktemp("destdir")
    # Called from `make test`: not the parent make's jobserver or its command-line variables.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    build = os.path.relpath(BUILD, ROOT) if BUILD.startswith(ROOT + os.sep) else BUILD
    run(["make", "-C", ROOT, "--no-print-directory", f"SAN={int(SAN)}", f"BUILD={build}",
         f"DESTDIR={dest}", "PREFIX=/usr", "install"], env=env)
    return dest


def pkg_config(staged, *args):
    env = dict(os.environ, PKG_CONFIG_PATH=f"{staged}/usr/lib/pkgconfig")
    # The .pc says prefix=/usr, where it will live; here it is staged under DESTDIR.
    return shlex.split(run(["pkg-config", f"--define-variable=prefix={staged}/usr", *args,
                            "hugevmm"], env=env))


@pytest.fixture(scope="module")
def embed(staged, tmp_path_factory):
    """embed_test built against the staged install: {"shared": path, "static": path}."""
    out = tmp_path_factory.mktemp("embed")
    cc = ["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O2", *SANFLAGS]
    cflags = pkg_config(staged, "--cflags")
    assert cflags[0] == f"-I{staged}/usr/include", cflags  # then cJSON's, a private Requires
    bins = {"shared": str(out / "embed_shared"), "static": str(out / "embed_static")}
    libs = pkg_config(staged, "--libs")
    assert libs == [f"-L{staged}/usr/lib", "-lhugevmm"], libs
    run([*cc, *cflags, EMBED_SRC, "-o", bins["shared"], *libs])
    # --static adds the private libraries; -l:libhugevmm.a takes the archive over the .so.
    libs = pkg_config(staged, "--static", "--libs")
    for need in ("-lcjson", "-luring", "-lseccomp", "-lhttp_parser", "-ldl", "-lpthread", "-lm"):
        assert need in libs, libs
    libs = ["-l:libhugevmm.a" if a == "-lhugevmm" else a for a in libs]
    run([*cc, *cflags, EMBED_SRC, "-o", bins["static"], *libs])
    return bins


def needed(path):
    return re.findall(r"\(NEEDED\).*\[(.*)\]", run(["readelf", "-d", path]))


def embed_env(staged):
    return dict(os.environ, LD_LIBRARY_PATH=f"{staged}/usr/lib")


def test_installed_files(staged):
    lib = staged / "usr" / "lib"
    assert (staged / "usr" / "bin" / "hugevmm").is_file()
    assert (staged / "usr" / "include" / "hugevmm.h").read_text() == \
        open(os.path.join(ROOT, "include", "hugevmm.h")).read()
    assert (lib / "libhugevmm.a").is_file()
    assert (lib / f"libhugevmm.so.{VERSION}").is_file()
    assert os.readlink(lib / f"libhugevmm.so.{MAJOR}") == f"libhugevmm.so.{VERSION}"
    assert os.readlink(lib / "libhugevmm.so") == f"libhugevmm.so.{MAJOR}"
    pc = (lib / "pkgconfig" / "hugevmm.pc").read_text()
    assert "prefix=/usr\n" in pc and f"Version: {VERSION}\n" in pc, pc
    assert re.search(r"^Requires\.private: libcjson liburing libseccomp$", pc, re.M), pc
    assert run([str(staged / "usr" / "bin" / "hugevmm"), "--version"]).strip() == \
        f"hugevmm {VERSION}"


def test_soname(staged):
    so = str(staged / "usr" / "lib" / f"libhugevmm.so.{VERSION}")
    assert re.search(rf"\(SONAME\).*\[libhugevmm\.so\.{MAJOR}\]$", run(["readelf", "-d", so]),
                     re.M)


def defined(nm_args, path):
    """Names of the defined symbols `nm` lists (an archive's member headers left out)."""
    return [f[2] for f in (line.split() for line in run(["nm", *nm_args, path]).splitlines())
            if len(f) == 3]


@pytest.mark.parametrize("lib,nm_args", [("libhugevmm.so", ["-D", "--defined-only"]),
                                         ("libhugevmm.a", ["-g", "--defined-only"])])
def test_only_the_api_is_exported(staged, lib, nm_args):
    names = defined(nm_args, str(staged / "usr" / "lib" / lib))
    assert [n for n in names if not n.startswith("hugevmm_")] == []
    assert set(names) == public_api()


def test_embed_links_the_library_it_should(staged, embed):
    assert f"libhugevmm.so.{MAJOR}" in needed(embed["shared"])
    assert not [n for n in needed(embed["static"]) if n.startswith("libhugevmm")]


@pytest.mark.parametrize("kind", ["shared", "static"])
def test_embed_without_kvm(staged, embed, kind):
    # The version, a bad config refused by name, the console calls, a start refused for
    # its missing kernel before anything needs /dev/kvm.
    out = run([embed[kind], "--no-kvm"], env=embed_env(staged))
    assert "embed: PASS (no KVM)" in out


@needs_kvm
@pytest.mark.parametrize("kind", ["shared", "static"])
def test_embed_boots(staged, embed, kind, tmp_path):
    out = run([embed[kind], GUEST, str(tmp_path / "console.log")], env=embed_env(staged))
    assert "embed: PASS\n" in out
