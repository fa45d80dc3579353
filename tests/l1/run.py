#!/usr/bin/env python3
"""Run the L1 harness for one kernel: build the image (tests/l1/build.py),
boot it under QEMU's software emulator with AMD SVM + nested paging and two
emulated NVDIMMs, with a hard timeout, and parse the cases' reports from the
serial log.

    tests/l1/run.py --kernel 6.1|6.12|all [--only case,case] [--json OUT]
                    [--hugevmm BIN] [--guest ELF] [--out DIR]

The log goes to build/l1/<kernel>/serial.log. As a module: run(kernel) returns
{"log": path, "l1": [lines], "cases": {name: {"attrs": {}, "files": {}}}}."""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build  # noqa: E402

NVDIMM_MIB = 1024


L1_MIB = 2048  # L1's RAM; a benchmark with a bigger guest asks for more (run_all's l1_mib)


def qemu_cmd(vmlinuz, initramfs, work, only, repeat=1, runs=None, nvdimms=True, l1_mib=L1_MIB):
    cmd = ["qemu-system-x86_64", "-accel", "tcg,thread=single", "-cpu", "EPYC,+svm,+npt",
           "-M", "pc,nvdimm=on", "-m", f"{l1_mib},slots=2,maxmem=8G", "-smp", "1",
           "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
           "-kernel", vmlinuz, "-initrd", initramfs,
           "-append", "console=ttyS0 panic=-1 quiet loglevel=1 mitigations=off rdinit=/init"
           + (f" l1.only={only}" if only else "") + (f" l1.repeat={repeat}" if repeat > 1 else "")
           + (f" l1.runs={runs}" if runs else "")]
    for i in range(2 if nvdimms else 0):
        img = os.path.join(work, f"nvdimm{i}.img")
        with open(img, "wb") as f:  # sparse, fresh each run: no state between runs
            f.truncate(NVDIMM_MIB << 20)
        cmd += ["-object", f"memory-backend-file,id=nv{i},share=on,mem-path={img},"
                f"size={NVDIMM_MIB}M,align=2M",
                "-device", f"nvdimm,id=nvdimm{i},memdev=nv{i}"]
    return cmd


def parse(text):
    l1, cases, cur, fname, buf = [], {}, None, None, []
    for line in text.splitlines():
        line = line.rstrip("\r")
        if fname is not None:
            if line == "@@ENDFILE":
                cur["files"][fname] = "\n".join(buf)
                fname, buf = None, []
            else:
                buf.append(line)
        elif line.startswith("@@L1 "):
            l1.append(line[5:])
        elif line.startswith("@@CASE "):
            cur = cases.setdefault(line[7:].strip(), {"attrs": {}, "files": {}, "ended": False})
        elif line.startswith("@@ATTR ") and cur is not None:
            k, _, v = line[7:].partition(" ")
            cur["attrs"][k] = v
        elif line.startswith("@@FILE ") and cur is not None:
            fname = line[7:].strip()
        elif line.startswith("@@ENDCASE ") and cur is not None:
            cur["ended"] = True
            cur = None
    return l1, cases


# L1 itself (QEMU's software emulator running a nested-SVM guest) has been seen to freeze,
# rarely: the serial line goes silent, its userspace stops (the init's heartbeat every 30 s
# while a VMM runs stops too), and QEMU spins. That is not hugevmm -- a hung VMM is caught
# inside L1 in 120 s and shown -- so after STALL_S seconds of silence the L1 is killed and
# the cases it had not finished run again in a new L1, once; the stall is reported.
STALL_S = int(os.environ.get("HUGEVMM_L1_STALL", "240"))


def boot(image, work, only, repeat, bench_runs, suffix="", l1_mib=L1_MIB):
    vmlinuz, initramfs, _ = image
    log = open(os.path.join(work, f"serial{suffix}.log"), "wb")
    return subprocess.Popen(qemu_cmd(vmlinuz, initramfs, work, only, repeat, bench_runs,
                                     l1_mib=l1_mib),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), log


def wait(p, log, deadline):
    """The exit status, "timeout", or "stalled" (no output for STALL_S seconds)."""
    size, since = -1, time.time()
    while True:
        try:
            return p.wait(timeout=min(1, max(0.1, deadline - time.time())))
        except subprocess.TimeoutExpired:
            pass
        now, cur = time.time(), os.path.getsize(log.name)
        if cur != size:
            size, since = cur, now
        why = "timeout" if now >= deadline else "stalled" if now - since >= STALL_S else None
        if why:
            p.kill()
            p.wait()
            return why


def run_all(kernels, only=None, timeout=900, out=None, repeat=1, bench_runs=None,
            hugevmm=None, guest=None, l1_mib=L1_MIB):
    """Build every kernel's image, then boot them all at once (TCG runs one core each);
    {kernel: result}. With bench_runs, the benchmark's image, each case run that often.
    @l1_mib: L1's RAM (MiB; 6144 at most beside the two 1 GiB NVDIMMs).
    A sanitizer build of hugevmm (build-san/) gets images of its own (<kernel>-san)."""
    out = out or os.path.join(build.ROOT, "build", "l1")
    hugevmm = os.path.abspath(hugevmm or os.path.join(build.ROOT, "build", "hugevmm"))
    tag = "-san" if os.path.basename(os.path.dirname(hugevmm)) == "build-san" else ""
    guest = os.path.abspath(guest or os.path.join(build.ROOT, "build", "testguest.elf"))
    images = {k: build.build(k, out, hugevmm, guest, bench=bool(bench_runs), tag=tag)
              for k in kernels}
    procs, t0 = {}, time.time()
    for k, image in images.items():
        procs[k] = boot(image, os.path.dirname(image[1]), only, repeat, bench_runs,
                        l1_mib=l1_mib)
    results = {}
    for k, (p, log) in procs.items():
        rc = wait(p, log, t0 + timeout)
        log.close()
        l1, cases = parse(open(log.name, errors="replace").read())
        stalls = []
        if rc == "stalled":
            work = os.path.dirname(images[k][1])
            names = [n[3:] for n in sorted(os.listdir(os.path.join(work, "root", "cases")))]
            wanted = [n for n in names if not only or n in only.split(",")]
            left = [n for n in wanted if not cases.get(n, {}).get("ended")]
            started = [n for n in wanted if n in cases and not cases[n]["ended"]]
            stalls.append({"after_s": round(time.time() - t0, 1), "during": started[:1],
                           "log": log.name})
            print(f"l1: {k}: L1 stalled (serial line silent {STALL_S} s, during "
                  f"{started[:1] or 'no case'}); log {log.name}; running {len(left)} "
                  f"unfinished cases again in a new L1", file=sys.stderr)
            if left:
                p2, log2 = boot(images[k], work, ",".join(left), repeat, bench_runs, ".retry",
                                l1_mib)
                rc = wait(p2, log2, time.time() + timeout)
                log2.close()
                l1b, cases2 = parse(open(log2.name, errors="replace").read())
                l1 += l1b
                cases.update(cases2)
        results[k] = {"kernel": k, "package": images[k][2], "log": log.name, "rc": rc,
                      "seconds": round(time.time() - t0, 1), "l1": l1, "cases": cases,
                      "stalls": stalls, "done": any(x.startswith("done") for x in l1)}
    return results


def run(kernel, only=None, timeout=900, out=None):
    return run_all([kernel], only, timeout, out)[kernel]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", choices=sorted(build.PACKAGES) + ["all"], required=True)
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--repeat", type=int, default=1, help="run the cases this many times (flakes)")
    ap.add_argument("--json", help="write the parsed result here")
    ap.add_argument("--hugevmm", help="the hugevmm binary to put in L1 (default build/hugevmm)")
    ap.add_argument("--guest", help="the test guest to put in L1 (default build/testguest.elf)")
    ap.add_argument("--out", help="where the images and logs go (default build/l1; the "
                    "kernel packages are cached in OUT/cache)")
    a = ap.parse_args()
    kernels = sorted(build.PACKAGES) if a.kernel == "all" else [a.kernel]
    res = run_all(kernels, a.only, a.timeout, out=a.out and os.path.abspath(a.out),
                  repeat=a.repeat, hugevmm=a.hugevmm, guest=a.guest)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    for r in res.values():
        print(f"{r['package']}: qemu {r['rc']} in {r['seconds']} s, log {r['log']}")
        for line in r["l1"]:
            print(f"  L1 {line}")
        for name, c in r["cases"].items():
            print(f"  {name}: {c['attrs']}")


if __name__ == "__main__":
    main()
