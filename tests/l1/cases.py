"""The cases the L1 init runs, written into the image as one directory each:

    cases/NN-name/kind         boot | cover | refuse | drift | badring | fcclient | disk |
                               diskapi | disklock | net | balloon | vsock | bench | run |
                               vbench | irqclose | confine | sckill | unpriv
    cases/NN-name/args         run only: hugevmm's arguments, one a line, run in /repo
    cases/NN-name/config.json  the hugevmm config
    cases/NN-name/env          extra environment (KEY=VALUE lines), optional
    cases/NN-name/setup        what the host must offer first (thp, nothp, shmem-thp,
                               hugetlb-2m N, dax-dev, dax-fs), optional
    cases/NN-name/qemu         bench only: QEMU's arguments instead of a hugevmm config
    cases/NN-name/contenders   vbench only: contender names, one a line, each with
                               NAME.json (hugevmm config) or NAME.qemu (QEMU's arguments)
    cases/NN-name/NAME.args    vbench only, optional: more hugevmm arguments for NAME.json's
                               contender, one a line, put before --config-file (e.g.
                               --no-seccomp)
    cases/NN-name/disks        disk kinds: the images made in /mnt/disk first, one a line:
                               "NAME gz:FILE" or "NAME pattern:SECTORS:SEED"
    cases/NN-name/readback     disk kinds, optional: "NAME PATH" files read from an ext4
                               image after the VM (debugfs)
    cases/NN-name/waitfor      diskapi, disklock, net: the guest's line to wait for
    cases/NN-name/patch        diskapi, optional: PATCH /drives/<drive_id> bodies, one a
                               line, sent after that line; then the guest ends by itself
    cases/NN-name/second.json  disklock: configs run while the first VM holds the image
                               (and second-ro.json), and after.json once it is gone
    cases/NN-name/taps         net, fcclient: the taps made in a namespace first, one a line:
                               "NAME ADDR/N" (the L1 side's address)
    cases/NN-name/ping         net, optional: addresses pinged (20 echoes) from the
                               namespace once the guest printed `waitfor` (and `flood`:
                               ping -f, 2 s); then GET /metrics and SIGTERM, or with `end`
                               "self" the VM's own end (without `waitfor`: that alone)
    cases/NN-name/xfer         net, optional: MiB L1 sends the L2 and keeps from it (TCP)
    cases/NN-name/steps        balloon, vsock: wait TEXT / call METHOD PATH [BODY] /
                               snap NAME / metrics NAME / cpu NAME / sleep S / host NAME
                               CMD / bg NAME CMD / join NAME / waitout NAME TEXT / rss NAME
                               S / stat NAME PATH, one a line, in order (init.sh's
                               run_steps); then SIGTERM
    cases/NN-name/pre          vsock: a shell script run first in /tmp/vsock (L1's data);
                               refuse: run first
    cases/NN-name/post         refuse, optional: a shell script run after, its output shown
    cases/NN-name/enter        net, optional: "setns": hugevmm joins the namespace with
                               nsenter (the namespace only) instead of ip netns exec
    cases/NN-name/kills        sckill: "ROLE:CALL" lines, one VM each with
                               HUGEVMM_TEST_FORBIDDEN=ROLE:CALL (config.json); then
                               free.json once with --no-seccomp and HUGEVMM_TEST_FORBIDDEN
                               set to the line of `free`
    cases/NN-name/user         unpriv: the user hugevmm runs as (made by the init: uid 1000)

The init (tests/l1/init.sh) runs them in order and prints what it saw; the
assertions are on the host side (tests/l1/test_l1.py), keyed by case name. After every
case the init shows the kernel's audit lines of seccomp kills (type=1326) the case caused
(file audit, attr audit_1326: how many)."""
import json
import os

L2_ARGS = ("console=ttyS0 reboot=k panic=-1 pci=off nomodules 8250.nr_uarts=1 i8042.noaux "
           "i8042.nomux i8042.dumbkbd quiet rdinit=/init")
COVER_MIB = 128  # the test guest touches all of it (memcheck then=idle)


def boot(kernel, vcpus, protocol=None, backing="thp", mib=256):
    bs = {"kernel_image_path": f"/guest/{kernel}", "boot_args": L2_ARGS,
          "initrd_path": "/guest/initrd.cpio"}
    if protocol:
        bs["boot_protocol"] = protocol
    return {"boot-source": bs, "machine-config": {"vcpu_count": vcpus},
            "memory": {"regions": [{"id": "ram0", "size_mib": mib, "backing": backing,
                                    "policy": "off" if backing == "anon" else "prefer"}]}}


def guest(region, args="test=memcheck then=idle"):
    return {"boot-source": {"kernel_image_path": "/guest/testguest.elf", "boot_args": args},
            "machine-config": {"vcpu_count": 1},
            "memory": {"regions": [dict({"id": "ram0", "size_mib": COVER_MIB}, **region)]}}


def entropy(cfg, rate_limiter=None, virtio_cmdline=None, metrics=False):
    """@cfg with Firecracker's entropy device (and hugevmm's virtio_cmdline choice); with
    @metrics, Firecracker's metrics line at exit in /tmp/case.metrics."""
    cfg = json.loads(json.dumps(cfg))
    cfg["entropy"] = {"rate_limiter": rate_limiter} if rate_limiter else {}
    if metrics:
        cfg["metrics"] = {"metrics_path": "/tmp/case.metrics"}
    if virtio_cmdline:
        cfg["machine-config"]["virtio_cmdline"] = virtio_cmdline
    return cfg


def linux_devices(vcpus):
    """A Debian L2 with hugevmm's devices, told of them by ACPI only, that powers off."""
    cfg = entropy(boot("bzImage", vcpus), virtio_cmdline="never")
    cfg["boot-source"]["boot_args"] = (L2_ARGS.replace("nomodules ", "") +
                                       " l2.devices=1 l2.end=poweroff")
    return cfg


RNG_LIMIT = {"bandwidth": {"size": 8192, "refill_time": 100}}  # 80 KiB/s, no burst

# Disks. Images live on an ext4 on a RAM block device in L1 (brd: O_DIRECT, hole punching
# and OFD locks as on a host's disk), made fresh for each case from a case's `disks` file
# ("NAME gz:FILE" a gzip'd image from /guest, "NAME pattern:SECTORS:SEED" the test guest's
# sector pattern, written by tests/l1/blkimg.c) and removed after it.
DISK_DIR = "/mnt/disk"
ROOTFS_MIB, DATA_MIB = 16, 4  # the L2's ext4 root file system and its read-only data disk
DATA_FILE = "/readme.txt"
DATA_TEXT = "hugevmm read-only data drive: found by the L2 through ACPI\n"
ROOTFS_FILE = "/l2-wrote.txt"  # what the rootfs init writes (tests/l1/l2rootinit.sh)
ROOTFS_TEXT = "written by the L2 on its ext4 root over virtio-blk\n"
BLK_SECTORS = 8192  # 4 MiB test=blk images
# 400 requests/s, 40 at once: well under what the emulation gives unlimited even when both
# L1s share the machine (QD8 4K random reads: 1900-16500 IOPS seen).
BLK_LIMIT = {"ops": {"size": 40, "refill_time": 100}}


def drive(name, root=False, ro=False, cache="Writeback", **extra):
    d = {"drive_id": name, "path_on_host": f"{DISK_DIR}/{name}.img", "is_root_device": root,
         "is_read_only": ro, "cache_type": cache}
    d.update(extra)
    return d


def with_drives(cfg, drives, metrics=True):
    """@cfg with Firecracker's drives, and its metrics (one line at exit) in /tmp/case.metrics."""
    cfg = json.loads(json.dumps(cfg))
    cfg["drives"] = drives
    if metrics:
        cfg["metrics"] = {"metrics_path": "/tmp/case.metrics"}
    return cfg


def linux_rootfs():
    """The Debian L2 on an ext4 root file system on /dev/vda (found through ACPI alone:
    no virtio_mmio.device=), with a read-only data disk as /dev/vdb; it powers off."""
    cfg = boot("bzImage", 1)
    cfg["machine-config"]["virtio_cmdline"] = "never"
    cfg["boot-source"]["boot_args"] = L2_ARGS.replace("nomodules ", "") + " l2.end=poweroff"
    return Files({
        "config.json": json.dumps(with_drives(cfg, [drive("rootfs", root=True),
                                                    drive("data", ro=True)]), indent=1),
        "disks": "rootfs gz:/guest/rootfs.ext4.gz\ndata gz:/guest/data.ext4.gz\n",
        "readback": f"rootfs {ROOTFS_FILE}\nrootfs /l2-random.bin\ndata {DATA_FILE}\n"})


def blk_guest(args, drives, region=None, vcpus=1, metrics=True):
    cfg = guest(dict({"backing": "thp"}, **(region or {})), args)
    cfg["machine-config"]["vcpu_count"] = vcpus
    return with_drives(cfg, drives, metrics)


def pattern(*disks):
    """A `disks` file: (name, sectors, seed) images holding the test guest's pattern."""
    return "".join(f"{n} pattern:{sectors}:{seed}\n" for n, sectors, seed in disks)


def disk_case(cfg, disks, **files):
    return Files(dict({"config.json": json.dumps(cfg, indent=1), "disks": disks}, **files))


def blk_cases():
    """The test guest's virtio-blk driver (tests/guest/blk.c) on hugevmm's device, and the
    VMM's side of it: caches, O_DIRECT with registered guest RAM, a swap after boot, the
    image lock, the rate limiter, a guest that breaks the rules. test=blk checks seed S over
    the image and leaves seed S+1 in it (blk.c's header)."""
    n = BLK_SECTORS
    blk = f"test=blk expect_sectors={n} seed="
    idle = "test=idle tick_ms=200"
    # Registered RAM needs a prefaulted region; a lazy one is never pinned, and says why.
    two_regions = guest({"backing": "thp", "prefault": True}, idle)
    two_regions["memory"]["regions"].append({"id": "lazy", "size_mib": 64, "backing": "thp",
                                             "prefault": False})
    exit0 = "test=exit code=0"
    bench = "test=blkbench mode=randread bs=4096 qd=8 secs=2"
    return [
        ("blk-writeback", "disk", disk_case(blk_guest(blk + "101", [drive("d0")]),
                                            pattern(("d0", n, 101))), "thp", {}),
        ("blk-unsafe", "disk", disk_case(blk_guest(blk + "111 irq=1",
                                                   [drive("d0", cache="Unsafe")]),
                                         pattern(("d0", n, 111))), "thp", {}),
        # Disk 1 (the second drive) rewritten, disk 0 untouched; two vCPUs.
        ("blk-2drives", "disk",
         disk_case(blk_guest("test=blk seed=202 disk=1 irq=1", [drive("d0"), drive("d1")],
                             vcpus=2),
                   pattern(("d0", n, 201), ("d1", 2 * n, 202))), "thp", {}),
        ("blk-ro", "disk", disk_case(blk_guest(blk + "301 ro=1", [drive("d0", ro=True)]),
                                     pattern(("d0", n, 301))), "thp", {}),
        ("blk-direct", "disk",
         disk_case(blk_guest(blk + "401 irq=1 qd=32", [drive("d0", direct=True)],
                             {"prefault": True}), pattern(("d0", n, 401))), "thp", {}),
        ("blk-direct-memory", "diskapi",
         disk_case(with_drives(two_regions, [drive("d0", direct=True)]),
                   pattern(("d0", n, 402)), waitfor="^idle\n"), "thp", {}),
        # PATCH /drives/d0 with a new path_on_host while the guest waits for the change
        # (the configuration interrupt through the IOAPIC).
        ("blk-swap", "diskapi",
         disk_case(blk_guest(blk + "501 wait_change=1 irq=1", [drive("d0")]),
                   pattern(("d0", n, 501), ("d0b", 2 * n, 542)),
                   waitfor="^blk waiting for a configuration change\n",
                   patch=json.dumps({"drive_id": "d0", "path_on_host": f"{DISK_DIR}/d0b.img"})
                   + "\n"), "thp", {}),
        # A second VM on the same writable image: refused (exit 2), read-write or read-only;
        # once the first is gone, the image is free again.
        ("blk-lock", "disklock",
         disk_case(blk_guest(idle, [drive("d0")]), pattern(("d0", n, 601)), waitfor="^idle\n",
                   **{"second.json": json.dumps(blk_guest(exit0, [drive("d0")], metrics=False)),
                      "second-ro.json": json.dumps(blk_guest(exit0, [drive("d0", ro=True)],
                                                             metrics=False)),
                      "after.json": json.dumps(blk_guest(exit0, [drive("d0")], metrics=False))}),
         "thp", {}),
        ("blk-bench-free", "disk", disk_case(blk_guest(bench, [drive("d0")]),
                                             pattern(("d0", 8 * n, 701))), "thp", {}),
        ("blk-bench-limited", "disk",
         disk_case(blk_guest(bench, [drive("d0", rate_limiter=BLK_LIMIT)]),
                   pattern(("d0", 8 * n, 702))), "thp", {}),
        # Bad requests: out-of-range sectors (IOERR), an OUT with no status to write
        # (DEVICE_NEEDS_RESET); the guest idles on, the API answers.
        ("blk-bad-range", "diskapi",
         disk_case(blk_guest("test=blk-bad bad=range tick_ms=200", [drive("d0")]),
                   pattern(("d0", n, 801)), waitfor="^tick 2"), "thp", {}),
        ("blk-bad-nostatus", "diskapi",
         disk_case(blk_guest("test=blk-bad bad=nostatus tick_ms=200", [drive("d0")]),
                   pattern(("d0", n, 802)), waitfor="^tick 2"), "thp", {}),
    ]


# Networking. Every net case gets a network namespace of its own in L1 (made and deleted by
# the init) with the taps of its `taps` file in it ("NAME ADDR/N": the L1 side's link-local
# address); hugevmm runs inside it and opens them by name. Nothing leaves L1.
GUEST_MAC = "06:00:ac:10:00:02"
SECOND_MAC = "06:00:ac:10:01:02"
L2_MAC = "06:00:ac:10:00:12"
NET_TX_LIMIT = {"bandwidth": {"size": 100000, "refill_time": 100}}  # 1 MB/s, no burst
NET_RX_LIMIT = {"bandwidth": {"size": 12500, "refill_time": 100}}  # 125 kB/s
NET_XFER_MIB = 4  # random bytes over TCP each way, L1 <-> L2


def nic(i, mac=None, **extra):
    """Interface eth@i on tap@i; without @mac hugevmm generates one."""
    n = {"iface_id": f"eth{i}", "host_dev_name": f"tap{i}"}
    if mac:
        n["guest_mac"] = mac
    n.update(extra)
    return n


def with_nics(cfg, nics):
    """@cfg with Firecracker's network interfaces, and its metrics (a line at exit) in
    /tmp/case.metrics."""
    cfg = json.loads(json.dumps(cfg))
    cfg["network-interfaces"] = nics
    cfg["metrics"] = {"metrics_path": "/tmp/case.metrics"}
    return cfg


def taps(*addrs):
    """A `taps` file: tap0, tap1... with these L1-side addresses."""
    return "".join(f"tap{i} {a}\n" for i, a in enumerate(addrs))


def net_case(cfg, addrs, **files):
    """A case of kind net: `waitfor` the guest's line, then ping each address of `ping`
    (20 echoes) from the namespace, `flood` (ping -f: as fast as answered), read the API,
    and stop the VM (SIGTERM), or with `end` self let it end by itself; without `waitfor`
    the VM runs to its end. `xfer` (MiB): L1's side of the L2's TCP moves (l2init.sh)."""
    return Files(dict({"config.json": json.dumps(cfg, indent=1), "taps": taps(*addrs)},
                      **files))


def net_guest(args, nics):
    cfg = guest({"backing": "thp"}, args)
    return with_nics(cfg, nics)


def linux_net():
    """The Debian L2 with two interfaces (eth0 with guest_mac, eth1 with a generated one),
    found through ACPI alone by its own virtio_net: it pings the L1 side of each tap and
    moves NET_XFER_MIB of random bytes over TCP each way with L1; it powers off."""
    cfg = boot("bzImage", 1)
    cfg["boot-source"]["initrd_path"] = "/guest/initrd-net.cpio"
    cfg["machine-config"]["virtio_cmdline"] = "never"
    cfg["boot-source"]["boot_args"] = (
        L2_ARGS.replace("nomodules ", "") + " l2.net=169.254.20.2/24,169.254.21.2/24"
        " l2.peer=169.254.20.1,169.254.21.1" f" l2.xfer_mib={NET_XFER_MIB} l2.end=poweroff")
    return net_case(with_nics(cfg, [nic(0, L2_MAC), nic(1)]),
                    ["169.254.20.1/24", "169.254.21.1/24"], waitfor="^L2: net up",
                    end="self\n", xfer=f"{NET_XFER_MIB}\n")


def net_cases():
    """The test guest's virtio-net driver (tests/guest/net.c) and the Debian L2's on
    hugevmm's device over taps in L1: pings with one and two interfaces, the configured
    and the generated MAC, the rate limiters each way, malformed transmit frames; TCP
    both ways with the L2's offloads on."""
    up = "^net up mac="
    ping = "test=net ip=169.254.10.2/24 irq=1"
    bench = "test=netbench mode=tx size=1500 secs=2 irq=1 ip=169.254.10.2/24"
    return [
        # 20 echoes, then ping -f for 2 s: the unlimited receive rate.
        ("net-ping", "net", net_case(net_guest(ping, [nic(0, GUEST_MAC)]), ["169.254.10.1/24"],
                                     waitfor=up, ping="169.254.10.2\n",
                                     flood="169.254.10.2\n"), "thp", {}),
        # Two interfaces, the first (the one the test guest drives) with a generated MAC.
        ("net-ping-2nics", "net",
         net_case(net_guest(ping, [nic(0), nic(1, SECOND_MAC)]),
                  ["169.254.10.1/24", "169.254.11.1/24"], waitfor=up, ping="169.254.10.2\n"),
         "thp", {}),
        # The same two, the test guest driving the second (nic=1) on the second tap.
        ("net-ping-nic1", "net",
         net_case(net_guest("test=net nic=1 ip=169.254.11.2/24 irq=1",
                            [nic(0), nic(1, SECOND_MAC)]),
                  ["169.254.10.1/24", "169.254.11.1/24"], waitfor=up, ping="169.254.11.2\n"),
         "thp", {}),
        # hugevmm in the namespace by setns alone, as Firecracker's jailer puts it there:
        # /sys is still the L1's (ip netns exec mounts the namespace's own).
        ("net-ping-setns", "net", net_case(net_guest(ping, [nic(0, GUEST_MAC)]),
                                           ["169.254.10.1/24"], waitfor=up,
                                           ping="169.254.10.2\n", enter="setns\n"), "thp", {}),
        # ping -f of 1442-byte frames (32 in flight, 2 s) against the receive limit.
        ("net-flood-rx-limited", "net",
         net_case(net_guest(ping, [nic(0, GUEST_MAC, rx_rate_limiter=NET_RX_LIMIT)]),
                  ["169.254.10.1/24"], waitfor=up, flood="169.254.10.2\n"), "thp", {}),
        # The same limit, then PATCH /network-interfaces/eth0 lifts it while the guest runs
        # (a bucket of size 0: no limit) and ping -f again.
        ("net-patch-rx", "net",
         net_case(net_guest(ping, [nic(0, GUEST_MAC, rx_rate_limiter=NET_RX_LIMIT)]),
                  ["169.254.10.1/24"], waitfor=up, flood="169.254.10.2\n",
                  patch_net='eth0 {"iface_id": "eth0", "rx_rate_limiter": '
                            '{"bandwidth": {"size": 0, "refill_time": 0}}}\n'), "thp", {}),
        # 2 s of 1500-byte frames sent as fast as the device takes them, without and with
        # the transmit limit.
        ("net-bench-free", "net", net_case(net_guest(bench, [nic(0, GUEST_MAC)]),
                                           ["169.254.10.1/24"]), "thp", {}),
        ("net-bench-tx-limited", "net",
         net_case(net_guest(bench, [nic(0, GUEST_MAC, tx_rate_limiter=NET_TX_LIMIT)]),
                  ["169.254.10.1/24"]), "thp", {}),
        # Malformed transmit frames (too short for the header, over 64 KiB + 14, a GSO
        # header never negotiated): dropped and counted, the pings still answered.
        ("net-bad-tx", "net",
         net_case(net_guest(ping + " bad=4", [nic(0, GUEST_MAC)]), ["169.254.10.1/24"],
                  waitfor="^net bad ", ping="169.254.10.2\n"), "thp", {}),
        ("linux-net", "net", linux_net(), "thp", {}),
    ]


def all_cases():
    """(name, kind, config, setup, env) in run order."""
    return [
        # 1. Linux L2 boots under hugevmm: bzImage, ELF vmlinux (Linux 64-bit entry), PVH.
        ("boot-bzimage-1cpu", "boot", boot("bzImage", 1), "thp", {}),
        ("boot-bzimage-2cpu", "boot", boot("bzImage", 2), "thp", {}),
        ("boot-vmlinux-linux", "boot", boot("vmlinux", 1, "linux"), "thp", {}),
        ("boot-vmlinux-pvh", "boot", boot("vmlinux", 2, "pvh"), "thp", {}),
        # 2. KVM coverage after the guest touched all its memory.
        ("cover-thp", "cover", guest({"backing": "thp"}), "thp", {}),
        ("cover-hugetlb-2m", "cover", guest({"backing": "hugetlb", "page_size": "2M"}),
         f"hugetlb-2m {COVER_MIB // 2}", {}),
        ("cover-memfd-shmem-thp", "cover", guest({"backing": "memfd"}), "shmem-thp", {}),
        ("cover-misaligned", "cover", guest({"backing": "thp", "host_offset_kib": 4,
                                             "policy": "prefer"}), "thp", {}),
        ("cover-anon", "cover", guest({"backing": "anon"}), "thp", {}),
        # 3. DAX: a devdax namespace and a DAX-mounted fsdax filesystem.
        ("cover-devdax", "cover", guest({"backing": "devdax", "device": "dax0.0",
                                         "size_mib": COVER_MIB}), "dax-dev", {}),
        ("cover-fsdax", "cover", guest({"backing": "file", "path": "/mnt/pmem/guest.img",
                                        "dax": True, "size_mib": COVER_MIB}), "dax-fs", {}),
        # 4. Refusals before boot, nothing left behind.
        ("refuse-devdax-align", "refuse", guest({"backing": "devdax", "device": "dax0.0",
                                                 "page_size": "1G", "size_mib": 1024}),
         "dax-dev", {}),
        ("refuse-hugetlb-pool", "refuse", guest({"backing": "hugetlb", "page_size": "2M"}),
         "hugetlb-2m 8", {}),
        # 5. Devices: the entropy device (virtio-mmio) found by a Debian kernel through ACPI
        #    alone and read through /dev/hwrng, then `poweroff` (ACPI S5); the test guest's
        #    own driver with interrupts and polling, EVENT_IDX and indirect tables on and
        #    off, 1 and 2 vCPUs; the rate limiter; a guest that breaks the ring rules.
        ("linux-entropy-acpi-poweroff", "boot", linux_devices(2), "thp", {}),
        ("rng-irq-1cpu", "boot", entropy(guest({"backing": "thp"}, "test=rng bytes=262144 irq=1"),
                                          metrics=True), "thp", {}),
        ("rng-poll-2cpu", "boot",
         entropy(dict(guest({"backing": "thp"}, "test=rng bytes=65536 irq=0 event_idx=0 indirect=1"),
                      **{"machine-config": {"vcpu_count": 2}})), "thp", {}),
        ("rng-rate-limited", "boot",
         entropy(guest({"backing": "thp"}, "test=rng bytes=262144 irq=1"), RNG_LIMIT, metrics=True),
         "thp", {}),
        ("rng-bad-ring", "badring",
         entropy(guest({"backing": "thp"}, "test=virtio-bad bad=addr tick_ms=200")), "thp", {}),
        # 6. Disks: a Debian L2 on an ext4 root on /dev/vda with a read-only /dev/vdb, and
        #    the test guest's driver; then networking (net_cases: taps in a namespace).
        ("linux-rootfs", "disk", linux_rootfs(), "thp", {}),
    ] + blk_cases() + net_cases() + balloon_cases() + vsock_cases() + [
        # 7. Firecracker's clients: the Go SDK's and Kata's calls, in order, then the boot.
        ("fc-sdk-sequence", "fcclient", Files({"taps": "tap0 169.254.30.1/24\n"}), "thp", {}),
        # Coverage drift: split one huge page of a running guest (test hook), re-measure.
        ("drift-thp-split", "drift", guest({"backing": "thp"}), "thp",
         {"HUGEVMM_TEST_HOOKS": "1"}),
        # 8. Confinement: the seccomp filters, a forbidden call, an unprivileged user.
    ] + confine_cases()


BENCH_MIB = 256


def qemu(backend, machine=""):
    """Debian's QEMU inside L1 on the same L2 kernel and initramfs: microvm, KVM, one vCPU
    (@machine: more -M options, e.g. ",kernel-irqchip=on")."""
    return ["-accel", "kvm", "-cpu", "host", "-M", "microvm,memory-backend=mem" + machine, "-smp", "1",
            "-m", f"{BENCH_MIB}M", "-object", f"{backend},id=mem,size={BENCH_MIB}M",
            "-nodefaults", "-nographic", "-no-reboot", "-serial", "stdio",
            "-kernel", "/guest/bzImage", "-initrd", "/guest/initrd.cpio",
            # microvm has no i8042: reset by triple fault (reboot=k would first poll the absent
            # controller ~650000 times, each an exit; the time to userspace is the same).
            "-append", L2_ARGS.replace("reboot=k", "reboot=t")]


def bench_cases():
    """Launch -> first L2 userspace line: hugevmm on thp, hugetlb 2M and anon 4K, and QEMU on
    the same memory kinds (its RAM is madvised huge by default; THP off makes it 4K)."""
    pool = f"hugetlb-2m {BENCH_MIB // 2}"
    return [
        ("hugevmm-thp", "bench", boot("bzImage", 1, backing="thp", mib=BENCH_MIB), "thp", {}),
        ("hugevmm-hugetlb-2m", "bench",
         boot("bzImage", 1, backing="hugetlb", mib=BENCH_MIB), pool, {}),
        ("hugevmm-anon-4k", "bench", boot("bzImage", 1, backing="anon", mib=BENCH_MIB), "nothp", {}),
        ("qemu-thp", "bench", qemu("memory-backend-ram"), "thp", {}),
        # The same with QEMU's in-kernel irqchip (PIC, IOAPIC, PIT) instead of its default
        # split one: the interrupt controller's own effect on a Linux boot, one VMM.
        ("qemu-thp-kirq", "bench", qemu("memory-backend-ram", ",kernel-irqchip=on"), "thp", {}),
        ("qemu-hugetlb-2m", "bench", qemu("memory-backend-memfd,hugetlb=on,hugetlbsize=2M"), pool, {}),
        ("qemu-anon-4k", "bench", qemu("memory-backend-ram"), "nothp", {}),
    ] + virtio_bench_cases() + seccomp_bench_cases()


VBENCH_MIB = 128


BALLOON_MIB = 512  # the balloon cases' guest RAM
BALLOON_TAKE = 256  # what PATCH /balloon asks back


def balloon_guest(region, args, stats=1, reporting=False):
    cfg = guest(dict({"size_mib": BALLOON_MIB}, **region), args)
    cfg["balloon"] = {"amount_mib": 0, "deflate_on_oom": True,
                      "stats_polling_interval_s": stats, "free_page_reporting": reporting}
    return cfg


def balloon_case(cfg, *steps):
    return Files({"config.json": json.dumps(cfg, indent=1), "steps": "".join(s + "\n" for s in steps)})


def take_and_give_back(ready):
    """The balloon's round trip on a running guest: snapshots before, after inflating
    BALLOON_TAKE MiB, after deflating to 0 (the guest writes every page it took back)."""
    return (f"wait {ready}", "snap before",
            "call PATCH /balloon {\"amount_mib\": %d}" % (BALLOON_MIB + 1),
            "call PATCH /balloon/statistics {\"stats_polling_interval_s\": 0}",
            "call PATCH /balloon {\"amount_mib\": %d}" % BALLOON_TAKE,
            f"wait ^balloon actual_mib={BALLOON_TAKE}$", "sleep 2", "snap inflated",
            "call GET /balloon", "call GET /balloon/statistics",
            "call PATCH /balloon {\"amount_mib\": 0}", "wait ^balloon actual_mib=0$",
            "sleep 1", "snap deflated")


def balloon_cases():
    """The balloon (issue 13): the test guest's driver inflates BALLOON_TAKE MiB of a
    prefaulted 512 MiB guest and gives it back, on thp and on memfd (shmem THP): whole 2M
    pages leave the process (RSS, GET /memory), what stays mapped stays 2M (PAGEMAP_SCAN,
    KVM's NPT counts), and deflated pages come back as 2M. On hugetlb (reclaim "keep", the
    default) nothing leaves the pool. Bad page numbers and reports are refused and counted.
    The Debian L2's own virtio_balloon with free page reporting: 200 MiB written to tmpfs
    and removed come back to the host."""
    ready = "^balloon touched_mib="
    args = f"test=balloon touch_mib={BALLOON_MIB - 64} irq=1"  # irq: L1 has one CPU
    l2 = boot("bzImage", 1, mib=BALLOON_MIB)
    l2["machine-config"]["virtio_cmdline"] = "never"
    l2["boot-source"]["boot_args"] = L2_ARGS.replace("nomodules ", "") + " l2.balloon=200"
    l2["balloon"] = {"amount_mib": 0, "deflate_on_oom": True, "stats_polling_interval_s": 1,
                     "free_page_reporting": True}
    return [
        ("balloon-thp", "balloon",
         balloon_case(balloon_guest({"backing": "thp"}, args), *take_and_give_back(ready)),
         "thp", {}),
        ("balloon-memfd", "balloon",
         balloon_case(balloon_guest({"backing": "memfd"}, args), *take_and_give_back(ready)),
         "shmem-thp", {}),
        ("balloon-hugetlb-keep", "balloon",
         balloon_case(balloon_guest({"backing": "hugetlb", "page_size": "2M"}, args),
                      f"wait {ready}", "snap before",
                      "call PATCH /balloon {\"amount_mib\": %d}" % BALLOON_TAKE,
                      f"wait ^balloon actual_mib={BALLOON_TAKE}$", "snap inflated"),
         f"hugetlb-2m {BALLOON_MIB // 2 + 8}", {}),
        ("balloon-hugetlb-return", "balloon",
         Files(dict(balloon_case(
             balloon_guest({"backing": "hugetlb", "page_size": "2M", "reclaim": "return"}, args),
             f"wait {ready}", "snap before",
             "call PATCH /balloon {\"amount_mib\": %d}" % BALLOON_TAKE,
             f"wait ^balloon actual_mib={BALLOON_TAKE}$", "snap inflated", "hog",
             "call PATCH /balloon {\"amount_mib\": 0}", "sleep 1", "snap waiting", "unhog",
             "wait ^balloon actual_mib=0$", "sleep 1", "snap deflated"),
             **{"hog.json": json.dumps(guest({"backing": "hugetlb", "page_size": "2M",
                                              "size_mib": BALLOON_TAKE + 16},
                                             "test=idle"), indent=1)})),
         f"hugetlb-2m {BALLOON_MIB // 2 + 8}", {}),
        ("balloon-bad", "balloon",
         balloon_case(balloon_guest({"backing": "thp"},
                                    args + " bad=pfn-outside,report-unaligned", reporting=True),
                      f"wait {ready}", "call PATCH /balloon {\"amount_mib\": 8}",
                      "wait ^balloon actual_mib=8$", "snap after"),
         "thp", {}),
        ("balloon-bad-outside", "balloon",
         balloon_case(balloon_guest({"backing": "thp"}, "test=balloon irq=1 bad=report-outside",
                                    reporting=True),
                      "wait ^balloon bad=report-outside used=", "snap after", "call GET /"),
         "thp", {}),
        ("linux-balloon", "balloon",
         balloon_case(l2, "wait ^L2: balloon filled", "sleep 1", "snap filled",
                      "wait ^L2: balloon freed", "sleep 10", "snap freed",
                      "call GET /balloon/statistics"),
         "thp", {}),
    ]


# The vsock (issue 14), Firecracker's hybrid form: the uds_path and the host's listeners
# (<uds_path>_<port>) live in /tmp/vsock in L1, made fresh for each case (init.sh's
# run_vsock); the host's side is tests/l1/vsockhost.c, the L2's socat (l2init.sh's
# l2.vsock=suite).
VSOCK_DIR = "/tmp/vsock"
VSOCK_UDS = VSOCK_DIR + "/v.sock"
VSOCK_CID = 3
VSOCK_L2_MIB = 384  # prefaulted
VSOCK_MIB = 64  # each way, one connection
VSOCK_MULTI = 32  # connections at once, host -> guest
VSOCK_MULTI_KIB = 256  # what each of them carries
VSOCK_G2H_MULTI = 8  # of them back at once, guest -> host (each an exec of socat in the L2)
VSOCK_STALL_MIB = 4  # what the L2 writes to the reader that stalls
VSOCK_STALL_AT = 1 << 20  # the reader stops after this many bytes, until the rest is done
VSOCK_STALL_SAMPLE_S = 3  # and then the VMM's RSS is sampled this long
VSOCK_REFUSE_FILE = "/tmp/vsock-uds-is-a-file.txt"
VSOCK_REFUSE_TEXT = "a regular file where the uds_path should be"


def linux_vsock():
    """The Debian L2 with hugevmm's vsock (found through ACPI alone by its own
    vmw_vsock_virtio_transport) and VSOCK_L2_MIB of prefaulted RAM (the VMM's RSS then
    moves only with the VMM's own memory). L1's pseudo-random bytes (`pre`: h2g.bin,
    VSOCK_MIB MiB, and VSOCK_MULTI hm.N of VSOCK_MULTI_KIB KiB, with their md5sums) go to
    the L2 and back: host -> guest port 52 (the L2 keeps them and answers each with its
    md5sum), one connection, then VSOCK_MULTI at once, and a CONNECT to port 53 where
    nothing listens; the host's "go" (port 59); guest -> host the same bytes: the first
    VSOCK_STALL_MIB MiB of h2g.bin to port 1027, whose reader stops after VSOCK_STALL_AT
    bytes, while h2g.bin goes to 1024, VSOCK_G2H_MULTI of the others at once to 1025, and
    a connect to 1026 (no listener) is refused; once they are done the stalled writer
    waits on: the VMM's RSS sampled, /metrics before and after; then the reader reads on."""
    cfg = boot("bzImage", 1, mib=VSOCK_L2_MIB)
    cfg["memory"]["regions"][0]["prefault"] = True
    cfg["boot-source"]["initrd_path"] = "/guest/initrd-vsock.cpio"
    cfg["machine-config"]["virtio_cmdline"] = "never"
    cfg["boot-source"]["boot_args"] = (
        L2_ARGS.replace("nomodules ", "") + f" l2.vsock=suite l2.vsock_stall_mib="
        f"{VSOCK_STALL_MIB} l2.vsock_multi={VSOCK_G2H_MULTI}")
    cfg["vsock"] = {"guest_cid": VSOCK_CID, "uds_path": VSOCK_UDS}
    d, u = VSOCK_DIR, VSOCK_UDS
    pre = (f"vsockhost gen {VSOCK_MIB << 20} 1 >h2g.bin\n"
           f"for i in $(seq {VSOCK_MULTI}); do vsockhost gen {VSOCK_MULTI_KIB << 10} "
           "$((i + 1)) >hm.$i; done\n"
           "md5sum h2g.bin hm.*\n"
           f"head -c {VSOCK_STALL_MIB << 20} h2g.bin | md5sum | sed 's/-$/stall/'\n")
    steps = [
        "wait ^L2: vsock listening",
        f"stat uds_mode {u}",
        f"host h2g vsockhost connect {u} 52 {d}/h2g.bin",
        f"host h2g_multi vsockhost connect {u} 52 {d}/hm.*",
        f"host refused vsockhost connect {u} 53 /dev/null",
        "metrics h2g",
        f"bg stall vsockhost listen {u}_1027 1 {d}/sin stall_at={VSOCK_STALL_AT} "
        f"stall_ms=100000 release={d}/release timeout_s=300",
        f"bg g2h vsockhost listen {u}_1024 1 {d}/in",
        f"bg g2h_multi vsockhost listen {u}_1025 {VSOCK_G2H_MULTI} {d}/min",
        "waitout g2h ^listening", "waitout g2h_multi ^listening", "waitout stall ^listening",
        f"host go vsockhost connect {u} 59 /dev/null",
        "join g2h", "join g2h_multi",
        "wait ^L2: vsock others done",
        "metrics stall1", f"rss stall {VSOCK_STALL_SAMPLE_S}", "metrics stall2",
        f"host release touch {d}/release",
        "join stall",
        "wait ^L2: vsock done",
        f"host md5 md5sum {d}/in.1 {d}/sin.1 {d}/min.*",
        "metrics end",
    ]
    return Files({"config.json": json.dumps(cfg, indent=1), "pre": pre,
                  "steps": "".join(s + "\n" for s in steps)})


VSOCK_TG_BYTES = 1 << 20  # the test guest's stream each way
VSOCK_TG_CID = 7
VSOCK_SPLIT_MS = 2000  # the pause inside a CONNECT line


def guest_vsock():
    """The test guest's own driver (tests/guest/vsock.c, test=vsock; the host's side as
    its header says): the host's listeners on 1024 (the guest's stream) and 1025 (the
    bad=credit,hdr connections) and 1026 (bad=flood's, never read) first; a CONNECT to 53
    (refused; its line in two pieces VSOCK_SPLIT_MS apart, the VMM's CPU time around
    it), VSOCK_TG_BYTES random bytes to 52 (the guest answers their FNV-1a); then
    the bad= packets, and the guest's VSOCK_TG_BYTES of its pattern to 1024; the guest
    ends itself. /metrics: the line at exit."""
    cfg = guest({"backing": "thp"},
                f"test=vsock bytes={VSOCK_TG_BYTES} bad=credit,hdr,flood irq=1")
    cfg["vsock"] = {"guest_cid": VSOCK_TG_CID, "uds_path": VSOCK_UDS}
    cfg["metrics"] = {"metrics_path": "/tmp/case.metrics"}
    d, u = VSOCK_DIR, VSOCK_UDS
    steps = [
        f"bg g2h vsockhost listen {u}_1024 1 {d}/in",
        f"bg bad vsockhost listen {u}_1025 3 {d}/bad",
        f"bg flood vsockhost hold {u}_1026 1 60",
        "waitout g2h ^listening", "waitout bad ^listening", "waitout flood ^listening",
        "wait ^vsock listening port=52",
        # The refused CONNECT's line in two pieces, 2 s apart: the VMM's loop waits idle.
        "cpu before_split",
        f"host refused vsockhost connect split_ms={VSOCK_SPLIT_MS} {u} 53 /dev/null",
        "cpu after_split",
        f"host h2g vsockhost connect {u} 52 {d}/t.bin",
        "join bad", "join flood", "join g2h",
        "wait ^testguest: PASS",
        f"host md5 vsockhost pattern {VSOCK_TG_BYTES} | md5sum; md5sum {d}/in.1",
    ]
    return Files({"config.json": json.dumps(cfg, indent=1),
                  "pre": f"dd if=/dev/urandom of=t.bin bs=1K count={VSOCK_TG_BYTES >> 10} "
                         "2>/dev/null\n",
                  "steps": "".join(s + "\n" for s in steps)})


def vsock_cases():
    """The vsock (issue 14): the Debian L2's own driver both ways (linux_vsock), the test
    guest's (guest_vsock), and a uds_path that is a regular file refused before boot
    (exit 2), the file untouched."""
    refuse = guest({"backing": "thp"}, "test=exit code=0")
    refuse["vsock"] = {"guest_cid": VSOCK_CID, "uds_path": VSOCK_REFUSE_FILE}
    f = VSOCK_REFUSE_FILE
    return [
        ("linux-vsock", "vsock", linux_vsock(), "thp", {}),
        ("vsock-guest", "vsock", guest_vsock(), "thp", {}),
        ("vsock-refuse-file", "refuse",
         Files({"config.json": json.dumps(refuse, indent=1),
                "pre": f"rm -f {f}\nprintf '%s\\n' '{VSOCK_REFUSE_TEXT}' >{f}\nchmod 644 {f}\n",
                "post": f"stat -c '%a %F %s' {f}\ncat {f}\nrm -f {f}\n"}), "thp", {}),
    ]


# Confinement (issue 15). Every case runs with hugevmm's seccomp filters on (the default);
# these look at the confinement itself.
CONFINE_VCPUS = 2
SCKILL_MIB = 64
# The forbidden calls the test hook (HUGEVMM_TEST_HOOKS=1, vmm/seccomp.h) makes a thread
# issue right after its filter went on: each kills the process.
SC_KILLS = ("vcpu:execve", "vcpu:open", "vcpu:socket", "api:execve", "api:open", "api:socket",
            "vmm:socket")
SC_FREE = "vcpu:socket"  # the same hook with --no-seccomp: made, and the VM goes on
UNPRIV_USER, UNPRIV_UID = "hv", 1000  # init.sh's hv_user
UNPRIV_DIR = "/tmp/hv"  # the user's directory: the API socket, the log, the metrics


def confine_case():
    """The test guest (memcheck, then idle) on 2 vCPUs with the entropy device and
    Firecracker's logger (as an orchestrator gives it: every log line after the filters
    went on goes through it), filters on: the threads' Seccomp and NoNewPrivs, the fds'
    flags, the guest RAM mapping's VmFlags, the API socket's mode, GET /; then the same VM
    with --no-seccomp (its threads once the guest booted)."""
    cfg = entropy(guest({"backing": "thp"}))
    cfg["machine-config"]["vcpu_count"] = CONFINE_VCPUS
    cfg["logger"] = {"log_path": "/tmp/seccomp-threads.log", "level": "Info"}
    return cfg


def sckill_case():
    """One VM per SC_KILLS entry (the test guest idles: only a kill ends it), then the
    SC_FREE hook with --no-seccomp on a guest that exits by itself."""
    cfg = guest({"backing": "thp", "size_mib": SCKILL_MIB}, "test=idle")
    free = guest({"backing": "thp", "size_mib": SCKILL_MIB}, "test=exit code=0")
    return Files({"config.json": json.dumps(cfg, indent=1),
                  "free.json": json.dumps(free, indent=1),
                  "kills": "".join(k + "\n" for k in SC_KILLS), "free": SC_FREE + "\n"})


def unpriv_case(region):
    """The test guest (memcheck, then idle) run by UNPRIV_USER (given /dev/kvm through the
    group kvm), its API socket, log and metrics in UNPRIV_DIR."""
    cfg = guest(region)
    cfg["logger"] = {"log_path": f"{UNPRIV_DIR}/hugevmm.log", "level": "Info"}
    cfg["metrics"] = {"metrics_path": f"{UNPRIV_DIR}/metrics.json"}
    return Files({"config.json": json.dumps(cfg, indent=1), "user": UNPRIV_USER + "\n"})


def confine_cases():
    return [
        ("seccomp-threads", "confine", confine_case(), "thp", {}),
        ("seccomp-kill", "sckill", sckill_case(), "thp", {"HUGEVMM_TEST_HOOKS": "1"}),
        ("unprivileged-thp", "unpriv", unpriv_case({"backing": "thp"}), "thp", {}),
        ("unprivileged-hugetlb", "unpriv",
         unpriv_case({"backing": "hugetlb", "page_size": "2M"}), f"hugetlb-2m {COVER_MIB // 2}",
         {}),
    ]


class Files(dict):
    """A case written as these files ({name: text}) instead of a config.json or qemu file."""


def vguest(args, rng):
    """hugevmm on the test guest: 128 MiB of lazy THP memory, 1 vCPU, the entropy device if
    @rng (the launch section's lazy case, plus the device)."""
    cfg = {"boot-source": {"kernel_image_path": "/guest/testguest.elf", "boot_args": args},
           "machine-config": {"vcpu_count": 1},
           "memory": {"regions": [{"id": "ram0", "size_mib": VBENCH_MIB, "backing": "thp",
                                   "prefault": False}]}}
    if rng:
        cfg["entropy"] = {}
    return json.dumps(cfg, indent=1) + "\n"


def vqemu(args, rng, kernel_irqchip=False):
    """Debian's QEMU microvm on the test guest, same memory (lazy, madvised huge by default).
    QEMU 7.2 puts virtio_mmio.device= on the command line only with acpi=off, and its
    virtio-mmio is legacy unless force-legacy=false (tests/integration/test_virtio_guest.py);
    its microvm runs a split irqchip unless kernel-irqchip=on."""
    argv = ["-accel", "kvm" + (",kernel-irqchip=on" if kernel_irqchip else ""), "-cpu", "host",
            "-M", "microvm,acpi=off", "-m", f"{VBENCH_MIB}M", "-smp", "1", "-nodefaults",
            "-nographic", "-no-reboot", "-serial", "stdio",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-global", "virtio-mmio.force-legacy=false"]
    if rng:
        argv += ["-device", "virtio-rng-device"]
    return "".join(a + "\n" for a in argv + ["-kernel", "/guest/testguest.elf", "-append", args])


def vbench(contenders, runs=None):
    """A case of kind vbench: {name: ("hugevmm"|"qemu", file text[, [hugevmm argument, ...]])},
    run interleaved round by round (round 0 unmeasured) under bench/vmtime; the arguments,
    if any, go to NAME.args (hugevmm's, before --config-file); @runs overrides l1.runs."""
    files = {"contenders": "".join(n + "\n" for n in contenders)}
    for n, (who, text, *args) in contenders.items():
        files[f"{n}.json" if who == "hugevmm" else f"{n}.qemu"] = text
        if args and args[0]:
            assert who == "hugevmm", f"{n}: extra arguments are hugevmm's"
            files[f"{n}.args"] = "".join(a + "\n" for a in args[0])
    if runs:
        files["runs"] = f"{runs}\n"
    return Files(files)


def virtio_bench_cases():
    """bench/virtio.py: launch -> exit of the test guest with and without an entropy device,
    the virtio notification -> interrupt round trip, and an empty VM's teardown per
    interrupt controller (bench/irqclose.c)."""
    ex = "test=exit code=0"
    exits = {"hugevmm": ("hugevmm", vguest(ex, False)),
             "qemu": ("qemu", vqemu(ex, False)),
             "qemu-kirq": ("qemu", vqemu(ex, False, True)),
             "hugevmm-rng": ("hugevmm", vguest(ex, True)),
             "qemu-rng": ("qemu", vqemu(ex, True)),
             "qemu-rng-kirq": ("qemu", vqemu(ex, True, True))}
    rt = {}
    for irq in (1, 0):
        a = f"test=virtio-rt n=10000 irq={irq}"
        rt[f"hugevmm-irq{irq}"] = ("hugevmm", vguest(a, True))
        rt[f"qemu-irq{irq}"] = ("qemu", vqemu(a, True))
        rt[f"qemu-kirq-irq{irq}"] = ("qemu", vqemu(a, True, True))
    return [
        ("virtio-exit", "vbench", vbench(exits), "thp", {}),
        ("virtio-rt", "vbench", vbench(rt, runs=5), "thp", {}),
        ("irqchip-close", "irqclose", Files({"rounds": "20\n"}), "thp", {}),
    ]


SECCOMP_OFF = ["--no-seccomp"]


def seccomp_bench_cases():
    """bench/seccomp.py: the cost of hugevmm's seccomp filters (on by default) against
    --no-seccomp, on virtio's entropy-device cases: launch -> exit of the test guest, and the
    notification -> used buffer round trip with the interrupt and polling."""
    ex = "test=exit code=0"
    exits = {"on": ("hugevmm", vguest(ex, True)),
             "off": ("hugevmm", vguest(ex, True), SECCOMP_OFF)}
    rt = {}
    for irq in (1, 0):
        a = f"test=virtio-rt n=10000 irq={irq}"
        rt[f"on-irq{irq}"] = ("hugevmm", vguest(a, True))
        rt[f"off-irq{irq}"] = ("hugevmm", vguest(a, True), SECCOMP_OFF)
    return [
        ("seccomp-exit", "vbench", vbench(exits), "thp", {}),
        ("seccomp-rt", "vbench", vbench(rt), "thp", {}),
    ]


def write(dest, flavour, bench=False):
    os.makedirs(dest, exist_ok=True)
    for i, (name, kind, cfg, setup, env) in enumerate(bench_cases() if bench else all_cases()):
        d = os.path.join(dest, f"{i:02d}-{name}")
        os.makedirs(d)
        with open(os.path.join(d, "kind"), "w") as f:
            f.write(kind + "\n")
        if isinstance(cfg, Files):
            for fname, text in cfg.items():
                with open(os.path.join(d, fname), "w") as f:
                    f.write(text)
        elif isinstance(cfg, list):
            with open(os.path.join(d, "qemu"), "w") as f:
                f.write("\n".join(cfg) + "\n")  # one argument per line: L2_ARGS has spaces
        else:
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cfg, f, indent=1)
        with open(os.path.join(d, "setup"), "w") as f:
            f.write(setup + "\n")
        with open(os.path.join(d, "env"), "w") as f:
            f.write("".join(f"{k}={v}\n" for k, v in env.items()))


def write_run(dest, argv, setup="thp"):
    """The one case of tests/l1/vm.py's image: hugevmm ARGV in /repo (where the repository
    files the command names are), its output on the console as it comes."""
    d = os.path.join(dest, "00-run")
    os.makedirs(d)
    for name, text in (("kind", "run\n"), ("setup", setup + "\n"), ("env", ""),
                       ("args", "".join(a + "\n" for a in argv))):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
