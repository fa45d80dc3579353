"""What bench/blk.py and bench/net.py share: a section run inside the L1 harness's guest
(tests/l1, unchanged), its benchmark image carrying the section's shell script and cases,
and the @@ATTR lines of the measured runs."""
import contextlib
import inspect
import os
import re
import shutil
import sys

from common import ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "l1"))
import build as l1build  # noqa: E402
import run as l1run  # noqa: E402

KERNEL = "6.12"


def check_tools(bindir, extra=()):
    """The harness's benchmark tools and @extra must be built in @bindir; the image takes
    them from there."""
    for t in l1build.BENCH_TOOLS + list(extra):
        if not os.path.exists(os.path.join(bindir, t)):
            raise RuntimeError(f"{bindir}/{t} is missing; `make build/bench/{t}` builds it")
    l1build.BENCH_TOOLS_DIR = os.path.abspath(bindir)


@contextlib.contextmanager
def bench_image(script, dest, cases, extra=None):
    """While active, the L1 benchmark image (tests/l1/build.py --bench) also carries
    bench/@script as /bin/@dest and @cases ({dir name: {file: text}}) under /cases; its
    initramfs is packed again. @extra(work, root), if given, adds to the image's tree (root)
    before the cases, work being build.py's directory for it."""
    orig = l1build.build

    def build(flavour, out, hugevmm, guest, bench=False, tag="", run=None):
        r = orig(flavour, out, hugevmm, guest, bench, tag, run)
        if not bench:
            return r
        work = os.path.dirname(r[1])
        root = os.path.join(work, "root")
        path = os.path.join(root, "bin", dest)
        shutil.copy(os.path.join(ROOT, "bench", script), path)
        os.chmod(path, 0o755)
        if extra:
            extra(work, root)
        for name, files in cases.items():
            d = os.path.join(root, "cases", name)
            os.makedirs(d)
            for fname, text in files.items():
                with open(os.path.join(d, fname), "w") as f:
                    f.write(text)
        l1build.cpio(root, r[1])
        return r

    l1build.build = build
    try:
        yield
    finally:
        l1build.build = orig


def run_l1(a, image, only, runs, l1_mib=None):
    """The harness's result for KERNEL of cases @only (comma-separated) in L1, with @image
    active, under a.hugevmm and the test guest a.guest where the harness takes one
    (tests/l1/run.py --guest); @l1_mib: L1's RAM if not the harness's default."""
    kw = {"guest": a.guest} if "guest" in inspect.signature(l1run.run_all).parameters else {}
    if l1_mib:
        kw["l1_mib"] = l1_mib
    with image:
        res = l1run.run_all([KERNEL], only=only, timeout=5400, bench_runs=runs,
                            hugevmm=a.hugevmm, **kw)[KERNEL]
    if not res["done"]:
        raise RuntimeError(f"L1 did not finish (qemu {res['rc']}); log {res['log']}")
    return res


def parse(attrs, contender=r"[a-z0-9-]+", strict=False):
    """{(contender, pattern): [{key: number}]} of the measured runs: the attributes named
    CONTENDER.PATTERN.runI (@contender a regex), their key=value words. A value that is not
    a number is left out, or with @strict raises ValueError."""
    out = {}
    for k, v in attrs.items():
        m = re.fullmatch(rf"(?P<who>{contender})\.(?P<pat>[a-z0-9-]+)\.run\d+", k)
        if m:
            r = {}
            for kk, vv in (x.split("=", 1) for x in v.split() if "=" in x):
                try:
                    r[kk] = float(vv)
                except ValueError:
                    if strict:
                        raise
            out.setdefault((m["who"], m["pat"]), []).append(r)
    return out
