#!/usr/bin/env python3
"""Build the L1 image of the real-TDP harness for one Debian cloud kernel.

    tests/l1/build.py --kernel 6.1|6.12 [--out build/l1] [--hugevmm build/hugevmm] [--bench]

L1 is that kernel booted under QEMU's software emulator with AMD SVM and
nested paging, so the KVM inside it (the package's kvm-amd module) is a real
TDP KVM. Its initramfs carries: busybox-static; the KVM, NVDIMM/DAX and tun
modules of the same package with their dependencies (from each module's modinfo
`depends=`: the package ships no modules.dep), and brd (a RAM disk for the
disk images); hugevmm and the test guest; ndctl, daxctl, mkfs.ext4, e2fsck,
debugfs and curl, and for networking ip (iproute2), ping, iperf3 and ethtool,
with their shared libraries; blkimg (tests/l1/blkimg.c,
static: the test guest's sector pattern) and vsockhost (tests/l1/vsockhost.c, static:
the host's side of the vsock); an L2 Linux (the same package's
bzImage, and the ELF vmlinux inside it) with a busybox initramfs that loads
the package's virtio_mmio, virtio_rng and virtio_blk (and a second one,
initrd-net.cpio, with virtio_net, iperf3 and ethtool too; a third, initrd-vsock.cpio,
with the virtio-vsock transport and socat), and two ext4 images made
here with mkfs.ext4 -d (gzip'd): the L2's root file system (busybox and
tests/l1/l2rootinit.sh as /sbin/init) and a small data disk; the cases
(tests/l1/cases.py) and the init that runs them (tests/l1/init.sh). With --bench the cases are the launch benchmark's
(cases.bench_cases) and Debian's QEMU goes in too, with its shared libraries
and the microvm firmware, and bench/virtio.py's measuring programs (vmtime, irqclose)
when built; that image lives in OUT/<kernel>-bench.
With a run (tests/l1/vm.py: `make run` without /dev/kvm) the image is smaller: one
case of kind run (the user's own hugevmm command line), the repository files it names
under /repo, only kvm-amd, no L2 and no tools; it lives in OUT/<kernel>-run.
Downloads are cached under OUT/cache; nothing is committed.
Prints the paths of the kernel and the initramfs."""
import argparse
import gzip
import os
import re
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PACKAGES = {
    "6.1": r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$",
    "6.12": r"^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$",
}
MODULES = ["kvm-amd", "nfit", "nd_pmem", "nd_btt", "dax_pmem", "device_dax", "tun"]
L2_MODULES = ["virtio_mmio", "virtio_rng", "virtio_blk", "virtio_balloon"]
# The networking L2's initramfs (/guest/initrd-net.cpio) has these too, and L2_NET_TOOLS
# with their libraries as /bin/X; the other L2 boots (the launch benchmark's among them)
# keep the smaller one.
L2_NET_MODULES = ["virtio_net"]  # and failover, net_failover
L2_NET_TOOLS = ["/usr/bin/iperf3", "/usr/sbin/ethtool"]
# The vsock L2's initramfs (/guest/initrd-vsock.cpio): the smaller one's content, the
# kernel's virtio-vsock transport (vsock, vmw_vsock_virtio_transport_common and what
# modinfo says they need) and Debian's socat (VSOCK-LISTEN, VSOCK-CONNECT) as /bin/socat.
L2_VSOCK_MODULES = ["vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport"]
L2_VSOCK_TOOLS = ["/usr/bin/socat"]
# A RAM block device in L1 with an ext4 on it: where the disk cases' images live (a
# block-device file system, unlike L1's rootfs: O_DIRECT, hole punching, OFD locks).
DISK_MODULES = ["brd"]
TOOLS = ["/usr/bin/ndctl", "/usr/bin/daxctl", "/usr/sbin/mkfs.ext4", "/usr/bin/curl",
         "/usr/sbin/debugfs", "/usr/sbin/e2fsck"]
# Networking in L1 (taps in namespaces for the net cases and the net benchmark): Debian's
# iproute2 (busybox's ip has no netns or tuntap), iputils ping, iperf3 and ethtool, as /bin/X
# (busybox --install leaves them be). Call ip and ping by path, /bin/ip and /bin/ping: the
# busybox shell runs its own applet for a bare name whatever PATH says.
NET_TOOLS = {"/usr/sbin/ip": "/bin/ip", "/usr/bin/ping": "/bin/ping",
             "/usr/bin/iperf3": "/bin/iperf3", "/usr/sbin/ethtool": "/bin/ethtool"}
DLOPENED = ["libdaxctl.so.1"]  # hugevmm dlopen()s it: ldd does not list it
QEMU = "/usr/bin/qemu-system-x86_64"
BENCH_TOOLS = ["vmtime", "irqclose"]
BENCH_TOOLS_DIR = os.path.join(ROOT, "build", "bench")  # bench/run.py --bindir sets it
QEMU_FIRMWARE = ["bios-microvm.bin", "qboot.rom", "linuxboot_dma.bin", "pvh.bin", "kvmvapic.bin"]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def version_key(name):
    return [int(x) for x in re.findall(r"[0-9]+", name)]


def resolve(flavour):
    """The newest Debian package of this kernel flavour (apt lists refreshed if needed)."""
    for attempt in range(2):
        out = subprocess.run(["apt-cache", "search", "--names-only", PACKAGES[flavour]],
                             capture_output=True, text=True).stdout
        names = [l.split(" - ")[0] for l in out.splitlines() if l.strip()]
        if names:
            return max(names, key=version_key)
        if attempt == 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True)
    sys.exit(f"l1: no Debian package matches {PACKAGES[flavour]} (apt sources: bookworm and "
             "bookworm-security are needed)")


def fetch(pkg, cache):
    os.makedirs(cache, exist_ok=True)
    debs = [f for f in os.listdir(cache) if f.startswith(pkg + "_") and f.endswith(".deb")]
    if not debs:
        # apt's sandbox user cannot write into a root-owned build tree; it falls back and says so.
        subprocess.run(["apt-get", "download", "-q", pkg], cwd=cache, check=True, capture_output=True)
        debs = [f for f in os.listdir(cache) if f.startswith(pkg + "_") and f.endswith(".deb")]
    tree = os.path.join(cache, pkg)
    if not os.path.isdir(os.path.join(tree, "boot")):
        shutil.rmtree(tree, ignore_errors=True)
        sh(["dpkg-deb", "-x", os.path.join(cache, debs[0]), tree])
    return tree


def module_index(tree):
    idx = {}
    for d, _, files in os.walk(os.path.join(tree, "lib", "modules")):
        for f in files:
            m = re.match(r"(.+)\.ko(\.xz|\.zst)?$", f)
            if m:
                idx[m.group(1).replace("-", "_")] = os.path.join(d, f)
    return idx


def module_closure(idx, names):
    """Module files in load order: every module after what it depends on."""
    order, seen = [], set()

    def visit(n):
        n = n.replace("-", "_")
        if n in seen:
            return
        seen.add(n)
        if n not in idx:
            sys.exit(f"l1: module {n} is not in the kernel package")
        deps = sh(["modinfo", "-F", "depends", idx[n]]).strip()
        for d in filter(None, deps.split(",")):
            visit(d)
        order.append(idx[n])

    for n in names:
        visit(n)
    return order


def install_module(path, dest_dir):
    """Plain .ko into the image (busybox insmod does not decompress)."""
    base = os.path.basename(path)
    out = os.path.join(dest_dir, re.sub(r"\.(xz|zst)$", "", base))
    if path.endswith(".xz"):
        with open(out, "wb") as f:
            subprocess.run(["xz", "-dc", path], stdout=f, check=True)
    elif path.endswith(".zst"):
        with open(out, "wb") as f:
            subprocess.run(["zstd", "-qdc", path], stdout=f, check=True)
    else:
        shutil.copy(path, out)
    return os.path.basename(out)


def copy_into(root, path, dest=None):
    dest = dest or path
    target = os.path.join(root, dest.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(os.path.realpath(path), target)
    return target


def shared_libs(binary):
    libs = []
    for line in sh(["ldd", binary]).splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def copy_with_libs(root, binary, dest=None):
    copy_into(root, binary, dest)
    for lib in shared_libs(binary):
        if not os.path.exists(os.path.join(root, lib.lstrip("/"))):
            copy_into(root, lib)


def find_lib(name):
    for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    sys.exit(f"l1: {name} not found (is its Debian package installed? scripts/deps.sh l1)")


def extract_vmlinux(bzimage, out):
    """The ELF vmlinux inside a bzImage: its compressed payload, decompressed."""
    data = open(bzimage, "rb").read()
    setup_sects = data[0x1f1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = data[start:start + payload_length]
    tools = [(b"\x1f\x8b", ["gzip", "-dc"]), (b"\xfd7zXZ\x00", ["xz", "-dc"]),
             (b"\x02\x21\x4c\x18", ["lz4", "-dc"]), (b"\x28\xb5\x2f\xfd", ["zstd", "-qdc"])]
    for magic, cmd in tools:
        if payload.startswith(magic):
            # Decompressors may complain about the size trailer after the stream.
            r = subprocess.run(cmd, input=payload, capture_output=True)
            if not r.stdout.startswith(b"\x7fELF"):
                sys.exit(f"l1: {bzimage}: the payload did not decompress to an ELF: {r.stderr[:200]}")
            with open(out, "wb") as f:
                f.write(r.stdout)
            return
    sys.exit(f"l1: {bzimage}: unknown payload compression {payload[:4].hex()}")


def cpio(src, out):
    with open(out, "wb") as f:
        files = subprocess.run(["find", "."], cwd=src, capture_output=True, check=True).stdout
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=src, input=files, stdout=f,
                       check=True)


def busybox_root(root):
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "mnt", "run"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(root, "bin", "busybox"))


def ext4_image(tree, out, mib, label):
    """An ext4 file system of @mib MiB holding the directory @tree (mkfs.ext4 -d, no mount
    and no root needed), gzip'd to @out (mostly zeros: a few hundred KiB in the initramfs;
    L1 unpacks a fresh copy for each case)."""
    raw = out[:-3]
    with open(raw, "wb") as f:
        f.truncate(mib << 20)
    sh(["mkfs.ext4", "-q", "-F", "-L", label, "-b", "4096", "-E", "root_owner=0:0", "-d", tree,
        raw])
    with open(raw, "rb") as src, gzip.open(out, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    os.unlink(raw)


def disk_images(work, guest_dir):
    """The L2's disks (tests/l1/cases.py's linux-rootfs case): an ext4 root file system with
    busybox and the rootfs init (tests/l1/l2rootinit.sh as /sbin/init), and a small ext4
    data disk with one known file, for the read-only drive."""
    tree = os.path.join(work, "rootfs")
    busybox_root(tree)
    for d in ("etc", "sbin"):
        os.makedirs(os.path.join(tree, d), exist_ok=True)
    shutil.copy(os.path.join(HERE, "l2rootinit.sh"), os.path.join(tree, "sbin", "init"))
    os.chmod(os.path.join(tree, "sbin", "init"), 0o755)
    with open(os.path.join(tree, "etc", "hostname"), "w") as f:
        f.write("l2-rootfs\n")
    ext4_image(tree, os.path.join(guest_dir, "rootfs.ext4.gz"), cases.ROOTFS_MIB, "l2root")
    data = os.path.join(work, "data")
    os.makedirs(data)
    with open(os.path.join(data, cases.DATA_FILE.lstrip("/")), "w") as f:
        f.write(cases.DATA_TEXT)
    ext4_image(data, os.path.join(guest_dir, "data.ext4.gz"), cases.DATA_MIB, "l2data")


def build_blkimg(work, root):
    """tests/l1/blkimg.c, static, as /bin/blkimg: the test guest's disk pattern in L1; and
    tests/l1/vsockhost.c as /bin/vsockhost: the host's side of the vsock cases."""
    for tool in ("blkimg", "vsockhost"):
        sh(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-static", "-o",
            os.path.join(root, "bin", tool), os.path.join(HERE, tool + ".c")])


def build(flavour, out, hugevmm, guest, bench=False, tag="", run=None):
    """run: (argv, {path in /repo: host file}) for the one-command image (tests/l1/vm.py)."""
    cache = os.path.join(out, "cache")
    pkg = resolve(flavour)
    tree = fetch(pkg, cache)
    kver = os.listdir(os.path.join(tree, "lib", "modules"))[0]
    vmlinuz = os.path.join(tree, "boot", f"vmlinuz-{kver}")
    work = os.path.join(out, flavour + ("-bench" if bench else "-run" if run else "") + tag)
    root = os.path.join(work, "root")
    shutil.rmtree(work, ignore_errors=True)
    busybox_root(root)

    if run:
        os.makedirs(os.path.join(root, "repo"))
        for rel, src in run[1].items():
            copy_into(root, src, os.path.join("/repo", rel))
    else:
        # L2: the same kernel, as a bzImage and as the ELF vmlinux inside it, and its initramfs.
        l2 = os.path.join(work, "l2root")
        busybox_root(l2)
        shutil.copy(os.path.join(HERE, "l2init.sh"), os.path.join(l2, "init"))
        os.chmod(os.path.join(l2, "init"), 0o755)
        # The L2's own virtio drivers, loaded by its init when a case asks (l2.devices=1):
        # a stock kernel finds hugevmm's devices with them, through ACPI alone.
        l2mods = os.path.join(l2, "lib", "l2-modules")
        os.makedirs(l2mods)
        l2order = [install_module(p, l2mods) for p in module_closure(module_index(tree), L2_MODULES)]
        with open(os.path.join(l2mods, "order"), "w") as f:
            f.write("\n".join(l2order) + "\n")
        os.makedirs(os.path.join(root, "guest"))
        cpio(l2, os.path.join(root, "guest", "initrd.cpio"))
        l2vsock = os.path.join(work, "l2root-vsock")
        shutil.copytree(l2, l2vsock, symlinks=True)
        vmods = os.path.join(l2vsock, "lib", "l2-modules")
        vorder = [install_module(p, vmods) for p in
                  module_closure(module_index(tree), L2_MODULES + L2_VSOCK_MODULES)]
        with open(os.path.join(vmods, "order"), "w") as f:
            f.write("\n".join(vorder) + "\n")
        for t in L2_VSOCK_TOOLS:
            if not os.path.exists(t):
                sys.exit(f"l1: {t} is missing (scripts/deps.sh test installs it)")
            copy_with_libs(l2vsock, t, "/bin/" + os.path.basename(t))
        cpio(l2vsock, os.path.join(root, "guest", "initrd-vsock.cpio"))
        net_order = [install_module(p, l2mods) for p in
                     module_closure(module_index(tree), L2_MODULES + L2_NET_MODULES)]
        with open(os.path.join(l2mods, "order"), "w") as f:
            f.write("\n".join(net_order) + "\n")
        for t in L2_NET_TOOLS:
            copy_with_libs(l2, t, "/bin/" + os.path.basename(t))
        cpio(l2, os.path.join(root, "guest", "initrd-net.cpio"))
        shutil.copy(vmlinuz, os.path.join(root, "guest", "bzImage"))
        extract_vmlinux(vmlinuz, os.path.join(root, "guest", "vmlinux"))
        shutil.copy(guest, os.path.join(root, "guest", "testguest.elf"))
        disk_images(work, os.path.join(root, "guest"))
        build_blkimg(work, root)

    mods = os.path.join(root, "lib", "l1-modules")
    os.makedirs(mods)
    order = [install_module(p, mods)
             for p in module_closure(module_index(tree), ["kvm-amd"] if run else MODULES)]
    with open(os.path.join(mods, "order"), "w") as f:
        f.write("\n".join(order) + "\n")
    if not run and not bench:  # loaded by the init with their parameters (brd: its size)
        disk = [install_module(p, mods) for p in module_closure(module_index(tree), DISK_MODULES)]
        with open(os.path.join(mods, "disk-order"), "w") as f:
            f.write("\n".join(disk) + "\n")

    copy_with_libs(root, hugevmm, "/bin/hugevmm")
    for t in [] if run else TOOLS:
        copy_with_libs(root, t)
    for t, dest in ({} if run else NET_TOOLS).items():
        if not os.path.exists(t):
            sys.exit(f"l1: {t} is missing (scripts/deps.sh test installs it)")
        copy_with_libs(root, t, dest)
    for lib in DLOPENED:
        copy_with_libs(root, find_lib(lib))
    if bench:
        if not os.path.exists(QEMU):
            sys.exit(f"l1: {QEMU} is missing (Debian package qemu-system-x86)")
        copy_with_libs(root, QEMU)
        for fw in QEMU_FIRMWARE:
            copy_into(root, os.path.join("/usr/share/qemu", fw))
        # bench/virtio.py's measuring programs, when built (make's BENCH_BINS).
        for t in BENCH_TOOLS:
            if os.path.exists(os.path.join(BENCH_TOOLS_DIR, t)):
                copy_with_libs(root, os.path.join(BENCH_TOOLS_DIR, t), f"/bin/{t}")
    os.makedirs(os.path.join(root, "etc"), exist_ok=True)
    open(os.path.join(root, "etc", "passwd"), "w").write("root:x:0:0:root:/:/bin/sh\n")

    if run:
        cases.write_run(os.path.join(root, "cases"), run[0])
    else:
        cases.write(os.path.join(root, "cases"), flavour, bench)
    shutil.copy(os.path.join(HERE, "init.sh"), os.path.join(root, "init"))
    os.chmod(os.path.join(root, "init"), 0o755)
    with open(os.path.join(root, "etc", "l1-kernel"), "w") as f:
        f.write(f"{pkg} {kver}\n")
    initramfs = os.path.join(work, "initramfs.cpio")
    cpio(root, initramfs)
    shutil.copy(vmlinuz, os.path.join(work, "vmlinuz"))
    with open(os.path.join(work, "package"), "w") as f:
        f.write(pkg + "\n")
    return os.path.join(work, "vmlinuz"), initramfs, pkg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", choices=sorted(PACKAGES), required=True)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "l1"))
    ap.add_argument("--hugevmm", default=os.path.join(ROOT, "build", "hugevmm"))
    ap.add_argument("--guest", default=os.path.join(ROOT, "build", "testguest.elf"))
    ap.add_argument("--bench", action="store_true", help="the launch benchmark's image")
    a = ap.parse_args()
    for p in (a.hugevmm, a.guest):
        if not os.path.exists(p):
            sys.exit(f"l1: {p} is missing: run make first")
    for line in build(a.kernel, os.path.abspath(a.out), a.hugevmm, a.guest, a.bench):
        print(line)


if __name__ == "__main__":
    main()
