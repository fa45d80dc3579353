"""Section "vsock": issue 14's benchmark, inside the L1 harness's guest (tests/l1: a real TDP
KVM, under QEMU's software emulator here), hugevmm's virtio-vsock -- Firecracker's hybrid
form: the host's end is a Unix socket -- against Debian's QEMU microvm's
vhost-vsock-device (the L1 kernel's vhost_vsock: the host's end is AF_VSOCK), both with
guest CID 3 and the Debian L2's own vmw_vsock_virtio_transport:

  a 256 MiB prefaulted-THP L2, 1 vCPU, found through ACPI (bench/vsock.sh as its init),
  booted once per contender and round; in it:
    host -> guest  MIB MiB from L1 to the L2, socat at both ends (-b 65536): hugevmm's
                   side a Unix socket to uds_path that says "CONNECT 52" and waits for
                   "OK"; QEMU's VSOCK-CONNECT:3:52; the L2's socat VSOCK-LISTEN
    guest -> host  the same back: the L2's socat VSOCK-CONNECT:2:54, in L1 socat
                   UNIX-LISTEN on "<uds_path>_54" (hugevmm) or VSOCK-LISTEN:54 (QEMU)
    connect        CONNS connections L1 -> L2, one after another, each timed alone: a
                   full connect + handshake + close (bench/vsockconn.c: hugevmm's
                   CONNECT/OK over the Unix socket, QEMU's AF_VSOCK connect); the L2's
                   vsockconn accepts and closes each
  Each transfer is timed by its sender from its first byte until the receiver, having
  put all MIB MiB into its tmpfs, answered (bench/vsock.sh says how); MB/s = 10^6 bytes.
  The bytes are checked after every transfer: L1's random blob goes to the L2 and that
  copy back, md5sum compared at each end (unmeasured).

Contenders run interleaved round by round after one unmeasured round (an eighth of the
bytes, a tenth of the connections); medians of RUNS (and XFERS transfers per boot). The
L1 side is bench/vsock.sh, put into the benchmark image as /bin/run_vsockbench and as the
init of /guest/initrd-vsockbench.cpio (the L2's initramfs with the vsock,
vmw_vsock_virtio_transport_common and vmw_vsock_virtio_transport modules, Debian's socat
and vsockconn, built static here); the image also gets vhost_vsock and what it needs
(L1's /lib/vsock-modules, loaded by bench/vsock.sh), socat and vsockconn. tests/l1 is
unchanged. Where vhost_vsock cannot work in L1, QEMU is left out, the reason in the
results, and hugevmm's figures stand alone. Times are L1's and dominated by emulation:
the ratios between hugevmm and QEMU are the result.

For trying it out, the environment narrows it: HUGEVMM_BENCH_VSOCK_RUNS (5; --quick 3),
_MIB (64), _XFERS (1), _CONNS (1000), _WHO (hugevmm,qemu)."""
import json
import os
import shutil
import subprocess
import sys

from common import ROOT, metric
from l1bench import bench_image, check_tools, l1build, parse, run_l1

import cases as l1cases  # noqa: E402  (tests/l1's, on the path l1bench sets)

H, Q = "hugevmm", "QEMU microvm"
CONTENDERS = {"hugevmm": H, "qemu": Q}
RATIOS = {"hugevmm / QEMU": (H, Q)}
CID = 3
UDS = "/tmp/vb.sock"  # bench/vsock.sh's
L2_MIB = 256
L2_INITRD = "/guest/initrd-vsockbench.cpio"
L2_VSOCK_MODULES = ["vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport"]
L1_VSOCK_MODULES = ["vhost_vsock"]
SOCAT = "/usr/bin/socat"
VSOCK = {"guest_cid": CID, "uds_path": UDS}


def l2_args(reboot="k"):
    return l1cases.L2_ARGS.replace("nomodules ", "").replace("reboot=k", f"reboot={reboot}")


def hugevmm_config():
    return {"boot-source": {"kernel_image_path": "/guest/bzImage", "initrd_path": L2_INITRD,
                            "boot_args": l2_args()},
            "machine-config": {"vcpu_count": 1, "virtio_cmdline": "never"},  # ACPI
            "memory": {"regions": [{"id": "ram0", "size_mib": L2_MIB, "backing": "thp",
                                    "prefault": True, "policy": "prefer"}]},
            "vsock": VSOCK}


def qemu_device():
    return ["-device", f"vhost-vsock-device,guest-cid={CID}",
            "-global", "virtio-mmio.force-legacy=false"]


def qemu_args():
    """Debian's QEMU microvm with ACPI (the L2 finds the device in the DSDT, as under
    hugevmm), its RAM preallocated (QEMU madvises it huge), as bench/net.py's L2."""
    return ["-accel", "kvm", "-cpu", "host", "-smp", "1", "-mem-prealloc", "-nodefaults",
            "-nographic", "-no-reboot", "-serial", "stdio", "-M", "microvm", "-m", f"{L2_MIB}M"] + \
        qemu_device() + \
        ["-kernel", "/guest/bzImage", "-initrd", L2_INITRD, "-append", l2_args("t")]  # triple fault


def case_files(runs, who, mib, xfers, conns):
    files = {"kind": "vsockbench\n", "setup": "thp\n", "env": "", "runs": f"{runs}\n",
             "contenders": "".join(c + "\n" for c in who), "mib": f"{mib}\n",
             "xfers": f"{xfers}\n", "conns": f"{conns}\n"}
    files["hugevmm.json"] = json.dumps(hugevmm_config(), indent=1) + "\n"
    files["qemu.qemu"] = "".join(a + "\n" for a in qemu_args())
    return files


def vsock_image(cases):
    """The L1 benchmark image (tests/l1/build.py --bench) that also carries bench/vsock.sh as
    /bin/run_vsockbench, @cases, vhost_vsock with what it needs (/lib/vsock-modules: order,
    or why when the kernel package lacks one), socat and vsockconn, and
    /guest/initrd-vsockbench.cpio: the L2's initramfs (build.py's l2root) with the
    virtio-vsock transport, socat, vsockconn and bench/vsock.sh as its init; a context
    manager (l1bench.bench_image)."""
    def extra(work, root):
        pkg = open(os.path.join(work, "package")).read().strip()
        idx = l1build.module_index(os.path.join(os.path.dirname(work), "cache", pkg))
        conn = os.path.join(work, "vsockconn")
        subprocess.run(["gcc", "-std=gnu11", "-O2", "-D_GNU_SOURCE", "-Wall", "-Wextra",
                        "-Werror", "-static", "-o", conn,
                        os.path.join(ROOT, "bench", "vsockconn.c")], check=True)
        # L1: vhost_vsock for QEMU's device, socat and vsockconn.
        mods = os.path.join(root, "lib", "vsock-modules")
        os.makedirs(mods)
        missing = [m for m in L1_VSOCK_MODULES if m not in idx]
        with open(os.path.join(mods, "order"), "w") as f:
            if not missing:
                f.write("".join(l1build.install_module(p, mods) + "\n"
                                for p in l1build.module_closure(idx, L1_VSOCK_MODULES)))
        if missing:
            with open(os.path.join(mods, "why"), "w") as f:
                f.write(f"{pkg} ships no {', '.join(m + '.ko' for m in missing)}\n")
        l1build.copy_with_libs(root, SOCAT, "/bin/socat")
        shutil.copy(conn, os.path.join(root, "bin", "vsockconn"))
        # L2: build.py's L2 tree with the vsock transport instead of its modules.
        l2 = os.path.join(work, "l2vsockbench")
        shutil.rmtree(l2, ignore_errors=True)
        shutil.copytree(os.path.join(work, "l2root"), l2, symlinks=True)
        for tool in ("iperf3", "ethtool"):  # the networking L2's, not needed here
            if os.path.exists(os.path.join(l2, "bin", tool)):
                os.unlink(os.path.join(l2, "bin", tool))
        l2mods = os.path.join(l2, "lib", "l2-modules")
        shutil.rmtree(l2mods)
        os.makedirs(l2mods)
        order = [l1build.install_module(p, l2mods) for p in
                 l1build.module_closure(idx, l1build.L2_MODULES + L2_VSOCK_MODULES)]
        with open(os.path.join(l2mods, "order"), "w") as f:
            f.write("\n".join(order) + "\n")
        l1build.copy_with_libs(l2, SOCAT, "/bin/socat")
        shutil.copy(conn, os.path.join(l2, "bin", "vsockconn"))
        shutil.copy(os.path.join(ROOT, "bench", "vsock.sh"), os.path.join(l2, "init"))
        os.chmod(os.path.join(l2, "init"), 0o755)
        l1build.cpio(l2, os.path.join(root, L2_INITRD.lstrip("/")))

    return bench_image("vsock.sh", "run_vsockbench", cases, extra)


def good(pattern, r):
    if pattern == "conn":
        return r.get("rc") == 0 and "median_us" in r
    if pattern == "boot":
        return r.get("pass") == 1
    return r.get("ok") == 1 and r.get("md5_ok") == 1 and r.get("ns", 0) > 0


def counters(got):
    """hugevmm's vsock counters (its /metrics at each boot's end) that are not zero, summed
    over every boot, the unmeasured round's too (peaks: the largest): connections, resets,
    refusals, timeouts and what was buffered."""
    boots = got.get(("hugevmm", "boot"), [])
    keys = sorted({k for r in boots for k in r if k.startswith("m_")})
    out = {}
    for k in keys:
        vals = [r[k] for r in boots if k in r]
        if k in ("m_buffered_max", "m_conns_open", "m_buffered_bytes"):
            v = max(vals)
        else:
            v = sum(vals)
        if v:
            out[k[2:]] = int(v)
    return out


def run(a):
    check_tools(a.bindir)
    env = os.environ.get
    runs = int(env("HUGEVMM_BENCH_VSOCK_RUNS", "3" if a.quick else "5"))
    mib = int(env("HUGEVMM_BENCH_VSOCK_MIB", "64"))
    xfers = int(env("HUGEVMM_BENCH_VSOCK_XFERS", "1"))
    conns = int(env("HUGEVMM_BENCH_VSOCK_CONNS", "1000"))
    who = [w for w in env("HUGEVMM_BENCH_VSOCK_WHO", "hugevmm,qemu").split(",") if w]
    for w in who:
        if w not in CONTENDERS:
            raise RuntimeError(f"HUGEVMM_BENCH_VSOCK_WHO: unknown contender {w}")
    if not os.path.exists(SOCAT):
        raise RuntimeError(f"{SOCAT} is missing (Debian's socat: scripts/deps.sh test)")
    cases = {"97-vsock": case_files(runs, who, mib, xfers, conns)}
    res = run_l1(a, vsock_image(cases), "vsock", runs)
    c = res["cases"].get("vsock")
    if not c or not c.get("ended"):
        raise RuntimeError(f"vsock: not run or not finished; log {res['log']}")
    attrs = c["attrs"]
    got = parse(attrs)
    failed = [f"{w} {pat} run {i + 1}: {r}" for (w, pat), rs in got.items()
              for i, r in enumerate(rs) if not good(pat, r)]
    failed += [f"{k}: {v}" for k, v in attrs.items() if ".fail" in k]
    if failed:
        print("bench: vsock: failed runs (left out): " + "; ".join(failed[:8]), file=sys.stderr)
    ok = {k: [r for r in v if good(k[1], r)] for k, v in got.items()}

    def series(pat, fn):
        return {label: [fn(r) for r in ok.get((k, pat), [])] for k, label in CONTENDERS.items()}

    mbs = lambda r: r["bytes"] / r["ns"] * 1e3  # noqa: E731
    out = [
        metric("vsock", f"stream throughput, {mib} MiB one connection, socat both ends", "MB/s",
               "higher", "host -> guest", series("h2g", mbs), RATIOS),
        metric("vsock", f"stream throughput, {mib} MiB one connection, socat both ends", "MB/s",
               "higher", "guest -> host", series("g2h", mbs), RATIOS),
        metric("vsock", f"connect + handshake + close, host -> guest, median of {conns}", "us",
               "lower", "one at a time", series("conn", lambda r: r["median_us"]), RATIOS),
        metric("vsock", f"connect + handshake + close, host -> guest, p99 of {conns}", "us",
               "lower", "one at a time", series("conn", lambda r: r["p99_us"]), RATIOS),
    ]
    out = [m for m in out if m["series"]]
    if not out:
        raise RuntimeError(f"no vsock figures: {failed[:4]}; log {res['log']}")
    xf = {label: f"{sum(r.get('md5_ok') == 1 for p in ('h2g', 'g2h') for r in got.get((k, p), []))}"
          f"/{sum(len(got.get((k, p), [])) for p in ('h2g', 'g2h'))}"
          for k, label in CONTENDERS.items() if k in who}
    params = {"kernel": res["package"], "runs": runs, "MiB per transfer": mib,
              "transfers per boot each way": xfers, "connects per run": conns,
              "L2": f"{L2_MIB} MiB prefaulted THP, 1 vCPU, Debian vmw_vsock_virtio_transport, "
                    "socat -b 65536",
              "measured transfers whose md5sum matched": xf,
              "failed_runs": len(failed),
              "hugevmm vsock counters (nonzero, summed over all boots)": counters(got),
              "hugevmm": json.dumps(VSOCK), "qemu": " ".join(qemu_device()),
              "log": os.path.relpath(res["log"], ROOT)}
    r = {"params": params, "metrics": out}
    if "qemu" in who:
        if attrs.get("qemu_skipped"):
            params["QEMU"] = f"left out: {attrs['qemu_skipped']}"
            r["skipped"] = {Q: attrs["qemu_skipped"]}
        else:
            params["L1 vhost modules"] = attrs.get("vhost", "?").strip()
    return r
