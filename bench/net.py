"""Section "net": issue 12's benchmark, inside the L1 harness's guest (tests/l1: a real TDP
KVM, under QEMU's software emulator here), hugevmm's virtio-net against Debian's QEMU
microvm's (-netdev tap,vhost=off -device virtio-net-device: both devices in userspace)
on the same tap in L1 (nbtap0, 169.254.100.1/24, made by bench/net.sh):

  the test guest's netbench (tests/guest/net.c; 128 MiB prefaulted THP, 1 vCPU, irq=1:
  the guest halts for interrupts -- polling would take the one L1 CPU from the VMM's own
  thread):
    tx    64- and 1500-byte frames: the transmit ring kept full, frames per second and
          MB/s as the guest counts them (each run also counts the tap's frames)
    rx    the same sizes from bench/netblast.c on the tap's host end (AF_PACKET, nice
          19); what the guest counts in secs s from its first frame
    echo  ICMP echo round trips of 64- and 1500-byte frames to L1's kernel, one at a time:
          the guest's median and p99 (TSC)
  the Debian L2 (the harness's networking initramfs with bench/net.sh as its init;
  256 MiB THP, 1 vCPU, found through ACPI): iperf3 TCP to an iperf3 server in L1, L2 -> L1
  (tx) and -R (rx), the receiver's Mbit/s.

Contenders run interleaved round by round after one unmeasured run each; medians of RUNS.
The L1 side is bench/net.sh: this module puts it into the benchmark image as
/bin/run_netbench and as the init of /guest/initrd-netbench.cpio, with netblast and the
case; tests/l1 is unchanged. Times are L1's and dominated by emulation: the ratios
between hugevmm and QEMU are the result.

For trying it out, the environment narrows it: HUGEVMM_BENCH_NET_RUNS (5; --quick 3),
_SECS (3, each run's measured time), _PATTERNS (names, comma-separated: tx-64, tx-1500,
rx-64, rx-1500, echo-64, echo-1500, iperf)."""
import json
import os
import shutil
import sys

from common import ROOT, metric
from l1bench import bench_image, check_tools, l1build, parse, run_l1

import cases as l1cases  # noqa: E402  (tests/l1's, on the path l1bench sets)

H, Q = "hugevmm", "QEMU microvm"
CONTENDERS = {"hugevmm": H, "qemu": Q}
RATIOS = {"hugevmm / QEMU": (H, Q)}
TAP, HOST, GUEST, MAC = "nbtap0", "169.254.100.1", "169.254.100.2", "06:00:a9:fe:64:02"
TG_MIB, L2_MIB = 128, 256
NETBLAST = "netblast"
L2_INITRD = "/guest/initrd-netbench.cpio"
# name, guest, mode, frame size
PATTERNS = [("tx-64", "tg", "tx", 64), ("tx-1500", "tg", "tx", 1500),
            ("rx-64", "tg", "rx", 64), ("rx-1500", "tg", "rx", 1500),
            ("echo-64", "tg", "echo", 64), ("echo-1500", "tg", "echo", 1500),
            ("iperf", "l2", "-", 0)]
GE = [("hugevmm >= 1.0x QEMU", "hugevmm / QEMU", ">=", 1.0)]
LE_LAT = [("hugevmm <= 0.9x QEMU", "hugevmm / QEMU", "<=", 0.9)]


def netif():
    return [{"iface_id": "eth0", "host_dev_name": TAP, "guest_mac": MAC}]


def hugevmm_config(guest):
    mib = TG_MIB if guest == "tg" else L2_MIB
    region = {"id": "ram0", "size_mib": mib, "backing": "thp", "prefault": True,
              "policy": "prefer"}
    if guest == "tg":
        bs = {"kernel_image_path": "/guest/testguest.elf", "boot_args": "@ARGS@"}
        mc = {"vcpu_count": 1}
    else:
        bs = {"kernel_image_path": "/guest/bzImage", "initrd_path": L2_INITRD,
              "boot_args": l2_args()}
        mc = {"vcpu_count": 1, "virtio_cmdline": "never"}  # the Debian kernel reads ACPI
    return {"boot-source": bs, "machine-config": mc, "memory": {"regions": [region]},
            "network-interfaces": netif(),
            "metrics": {"metrics_path": "/tmp/nbmetrics"}}  # bench/net.sh reads net_eth0


def l2_args(reboot="k"):
    args = l1cases.L2_ARGS.replace("nomodules ", "").replace("reboot=k", f"reboot={reboot}")
    return f"{args} nb.ip={GUEST}/24 nb.peer={HOST} nb.secs=@SECS@"


NETDEV = ["-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no,vhost=off",
          "-device", f"virtio-net-device,netdev=n0,mac={MAC}",
          "-global", "virtio-mmio.force-legacy=false"]


def qemu_args(guest):
    """Debian's QEMU microvm with its virtio-net-device on the same tap, vhost off, modern
    virtio-mmio; the test guest with acpi=off (its devices on the command line, as
    bench/blk.py's), the L2 with ACPI (found through the DSDT, as under hugevmm)."""
    netdev = NETDEV
    base = ["-accel", "kvm", "-cpu", "host", "-smp", "1", "-mem-prealloc", "-nodefaults",
            "-nographic", "-no-reboot", "-serial", "stdio"]
    if guest == "tg":
        return base + ["-M", "microvm,acpi=off", "-m", f"{TG_MIB}M",
                       "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"] + netdev + \
            ["-kernel", "/guest/testguest.elf", "-append", "@ARGS@"]
    # microvm has no i8042: reset by triple fault (tests/l1/cases.py's qemu()).
    return base + ["-M", "microvm", "-m", f"{L2_MIB}M"] + netdev + \
        ["-kernel", "/guest/bzImage", "-initrd", L2_INITRD, "-append", l2_args("t")]


def case_files(runs, secs, patterns):
    files = {"kind": "netbench\n", "setup": "thp\n", "env": "", "runs": f"{runs}\n",
             "secs": f"{secs}\n", "contenders": "".join(c + "\n" for c in CONTENDERS),
             "patterns": "".join(f"{n} {g} {m} {s}\n" for n, g, m, s in PATTERNS
                                 if n in patterns)}
    for g in ("tg", "l2"):
        files[f"hugevmm.{g}.json"] = json.dumps(hugevmm_config(g), indent=1) + "\n"
        files[f"qemu.{g}.qemu"] = "".join(a + "\n" for a in qemu_args(g))
    return files


def net_image(cases, bindir):
    """The L1 benchmark image (tests/l1/build.py --bench) that also carries bench/net.sh as
    /bin/run_netbench, netblast, @cases ({dir name: {file: text}}) and
    /guest/initrd-netbench.cpio: the networking L2's initramfs (build.py's l2root: busybox,
    the virtio and virtio_net modules, iperf3) with bench/net.sh as its init; a context
    manager (l1bench.bench_image)."""
    def extra(work, root):
        l1build.copy_with_libs(root, os.path.join(bindir, NETBLAST), f"/bin/{NETBLAST}")
        l2 = os.path.join(work, "l2netbench")
        shutil.rmtree(l2, ignore_errors=True)
        shutil.copytree(os.path.join(work, "l2root"), l2, symlinks=True)
        if not os.path.exists(os.path.join(l2, "bin", "iperf3")):
            raise RuntimeError("the L2 tree has no iperf3: tests/l1/build.py's networking L2 "
                               "(L2_NET_TOOLS) is needed")
        shutil.copy(os.path.join(ROOT, "bench", "net.sh"), os.path.join(l2, "init"))
        os.chmod(os.path.join(l2, "init"), 0o755)
        l1build.cpio(l2, os.path.join(root, L2_INITRD.lstrip("/")))

    return bench_image("net.sh", "run_netbench", cases, extra)


def good(contender, pattern, r):
    if pattern.startswith("iperf"):
        return r.get("pass") == 1 and r.get("mbits", -1) > 0
    rc = 1 if contender == "qemu" else 0  # QEMU's isa-debug-exit: 2*0+1
    if r.get("pass") != 1 or r.get("rc") != rc:
        return False
    return r.get("n", 0) > 0 if pattern.startswith("echo") else r.get("frames", 0) > 0


def tx_check(got):
    """Frames the guest counted as sent against what reached the tap (L1's rx counter)."""
    worst = []
    for (who, pat), rs in got.items():
        if pat.startswith("tx-"):
            worst += [r["tap_rx"] / r["frames"] for r in rs if r.get("frames")]
    return f"tap frames / guest frames {min(worst):.3f}-{max(worst):.3f}" if worst else "no tx runs"


def rx_lost(got):
    """Sequence numbers the tap took that the guest never counted, summed over the rx runs
    (issue 12: receive drops nothing the guest has room for)."""
    return {label: int(sum(r.get("lost", 0) for (w, pat), rs in got.items()
                           if w == who and pat.startswith("rx-") for r in rs))
            for who, label in CONTENDERS.items()}


def run(a):
    check_tools(a.bindir, [NETBLAST])
    env = os.environ.get
    runs = int(env("HUGEVMM_BENCH_NET_RUNS", "3" if a.quick else "5"))
    secs = int(env("HUGEVMM_BENCH_NET_SECS", "3"))
    patterns = env("HUGEVMM_BENCH_NET_PATTERNS", ",".join(p[0] for p in PATTERNS)).split(",")
    name = "95-net"
    cases = {name: case_files(runs, secs, patterns)}
    res = run_l1(a, net_image(cases, os.path.abspath(a.bindir)), "net", runs)
    c = res["cases"].get("net")
    if not c or not c.get("ended"):
        raise RuntimeError(f"net: not run or not finished; log {res['log']}")
    if c["attrs"].get("skipped"):
        raise RuntimeError(f"net: skipped in L1: {c['attrs']['skipped']}")
    got = parse(c["attrs"])
    failed = [f"{who} {pat} run {i + 1}: {r}" for (who, pat), rs in got.items()
              for i, r in enumerate(rs) if not good(who, pat, r)]
    if failed:
        print("bench: net: failed runs (left out): " + "; ".join(failed[:8]), file=sys.stderr)
    ok = {k: [r for r in v if good(k[0], k[1], r)] for k, v in got.items()}

    def series(pat, fn):
        return {label: [fn(r) for r in ok.get((k, pat), [])] for k, label in CONTENDERS.items()}

    out = []
    for pname, _, mode, size in PATTERNS:
        if pname not in patterns or mode == "-":
            continue
        case = f"{mode}, {size}-byte frames"
        if mode in ("tx", "rx"):
            out.append(metric("net", f"test guest {mode}: frames/s", "pps", "higher", case,
                              series(pname, lambda r: r["pps"]), RATIOS, GE))
            # From frames, size and the guest's window: its mbps= has 0.1 MB/s steps.
            out.append(metric("net", f"test guest {mode}: throughput", "MB/s", "higher", case,
                              series(pname, lambda r: r["frames"] * r["size"] / r["io_ms"] / 1e3),
                              RATIOS, GE))
        else:
            out.append(metric("net", "test guest echo: round trip, median", "us", "lower", case,
                              series(pname, lambda r: r["rtt_us_median"]), RATIOS, LE_LAT))
            out.append(metric("net", "test guest echo: round trip, p99", "us", "lower", case,
                              series(pname, lambda r: r["rtt_us_p99"]), RATIOS))
    if "iperf" in patterns:
        for d, label in (("tx", "L2 -> L1"), ("rx", "L1 -> L2")):
            out.append(metric("net", "L2 Linux iperf3 TCP", "Mbit/s", "higher", label,
                              series(f"iperf-{d}", lambda r: r["mbits"]), RATIOS, GE))
    out = [m for m in out if m["series"]]  # a pattern whose every run failed: said above
    if not out:
        raise RuntimeError(f"no net figures: {failed[:4]}; log {res['log']}")
    return {"params": {"kernel": res["package"], "runs": runs, "secs_per_run": secs,
                       "test guest": f"{TG_MIB} MiB prefaulted THP, 1 vCPU, irq=1",
                       "L2": f"{L2_MIB} MiB THP, 1 vCPU, Debian iperf3 -t {secs} both ways",
                       "tap": f"{TAP} {HOST}/24 in L1's namespace",
                       "failed_runs": len(failed), "tx check": tx_check(ok),
                       "rx lost": rx_lost(ok),
                       "hugevmm": json.dumps(netif()[0]),
                       "qemu": " ".join(NETDEV),
                       "log": os.path.relpath(res["log"], ROOT)},
            "metrics": out}
