#!/usr/bin/env python3
"""Run one hugevmm command inside L1 (a Debian cloud kernel under QEMU's software
emulator with AMD SVM + nested paging: a real TDP KVM), for a host without a usable
/dev/kvm. `make run` uses it (scripts/run.sh):

    tests/l1/vm.py [--kernel 6.12] [--hugevmm build/hugevmm] -- --config-file configs/default.json --report human

The image (tests/l1/build.py, OUT/<kernel>-run) carries hugevmm, kvm-amd and the files the
command names: the --config-file and every file the config names (kernel, initrd, drives),
each at its path relative to the current directory, under /repo, where the command runs
(absolute paths stay absolute). The VM's console (hugevmm's stdout) comes to stdout and
hugevmm's stderr to stderr as L1 prints them; the exit status is hugevmm's, or 1 when L1
itself failed (the message names the serial log, build/l1/<kernel>-run/serial.log)."""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build  # noqa: E402
import run as l1run  # noqa: E402


def config_files(cfg):
    """Every string in the config that names an existing file: paths the VM will open."""
    if isinstance(cfg, dict):
        for v in cfg.values():
            yield from config_files(v)
    elif isinstance(cfg, list):
        for v in cfg:
            yield from config_files(v)
    elif isinstance(cfg, str) and "/" in cfg and os.path.isfile(cfg):
        yield cfg


def image_files(argv):
    """{path in /repo: host file} for the command line's --config-file and what it names."""
    files = {}

    def add(path):  # an absolute path stays absolute (os.path.join("/repo", "/x") is "/x")
        files[os.path.normpath(path)] = os.path.abspath(path)

    for i, a in enumerate(argv):
        path = None
        if a == "--config-file" and i + 1 < len(argv):
            path = argv[i + 1]
        elif a.startswith("--config-file="):
            path = a.split("=", 1)[1]
        if path and os.path.isfile(path):
            add(path)
            try:
                with open(path) as f:
                    cfg = json.load(f)
            except (OSError, ValueError):
                continue  # hugevmm inside says what is wrong with it
            for p in config_files(cfg):
                add(p)
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", choices=sorted(build.PACKAGES), default="6.12")
    ap.add_argument("--hugevmm", default=os.path.join(build.ROOT, "build", "hugevmm"))
    ap.add_argument("--timeout", type=int, default=1500, help="seconds for all of L1")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="-- then hugevmm's arguments")
    a = ap.parse_args()
    argv = a.args[1:] if a.args[:1] == ["--"] else a.args
    if any("\n" in x for x in argv):
        sys.exit("l1 vm: an argument with a newline cannot be passed into L1")
    hugevmm = os.path.abspath(a.hugevmm)
    if not os.path.exists(hugevmm):
        sys.exit(f"l1 vm: {hugevmm} is missing: run make first")
    out = os.path.join(build.ROOT, "build", "l1")
    tag = "-san" if os.path.basename(os.path.dirname(hugevmm)) == "build-san" else ""
    vmlinuz, initramfs, pkg = build.build(a.kernel, out, hugevmm, None, tag=tag,
                                          run=(argv, image_files(argv)))
    work = os.path.dirname(initramfs)
    log_path = os.path.join(work, "serial.log")
    print(f"l1: booting {pkg} under QEMU TCG (log {os.path.relpath(log_path)})",
          file=sys.stderr, flush=True)
    t0 = time.time()
    rc, in_console, held_blank, l1_lines = None, False, False, []
    with open(log_path, "wb") as log:
        p = subprocess.Popen(l1run.qemu_cmd(vmlinuz, initramfs, work, None, nvdimms=False),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        killed = False

        def expire():
            nonlocal killed
            killed = True
            p.kill()
        timer = threading.Timer(a.timeout, expire)
        timer.start()
        try:
            for raw in p.stdout:
                log.write(raw)
                line = raw.decode("utf-8", "replace").rstrip("\r\n").rstrip("\r")
                if in_console:
                    if line == "@@ENDFILE":
                        in_console = False
                        continue
                    if held_blank:  # the init's closing newline: not the VM's
                        sys.stdout.write("\n")
                        held_blank = False
                    if line.startswith("@@ERR "):
                        sys.stdout.flush()
                        sys.stderr.write(line[6:] + "\n")
                        sys.stderr.flush()
                    elif line == "":
                        held_blank = True
                    else:
                        sys.stdout.write(line + "\n")
                        sys.stdout.flush()
                elif line == "@@FILE console":
                    in_console = True
                elif line.startswith("@@ATTR rc "):
                    rc = int(line[10:])
                elif line.startswith("@@ATTR skipped "):
                    l1_lines.append("case skipped: " + line[15:])
                elif line.startswith("@@L1 "):
                    l1_lines.append(line[5:])
            p.wait()
        except KeyboardInterrupt:
            p.kill()
            p.wait()
            return 130
        finally:
            timer.cancel()
    secs = time.time() - t0
    if rc is None:
        why = f"timed out after {a.timeout} s" if killed else f"QEMU exited {p.returncode}"
        print(f"l1: no exit status from hugevmm inside L1 ({why}, {secs:.1f} s); L1 said:",
              file=sys.stderr)
        for line in l1_lines:
            print(f"  {line}", file=sys.stderr)
        print(f"l1: serial log: {log_path}", file=sys.stderr)
        return 1
    print(f"l1: hugevmm exited {rc} inside L1 (L1 up and down in {secs:.1f} s)", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
