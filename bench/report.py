"""Render a benchmark results JSON as a Markdown table and an SVG chart
(matplotlib, Debian's python3-matplotlib).

    bench/report.py bench/results/<date>.json   # rewrites <date>.md and <date>.svg
"""
import json
import os
import sys
import textwrap

TITLES = {"launch": "Launch (test guest, test=exit code=0)", "overhead": "VMM overhead",
          "prefault": "Prefault (allocate and populate)", "latency": "Guest memory latency",
          "scan": "Coverage scan cost", "l1": "Linux L2 inside L1 (real TDP KVM, emulated)",
          "virtio": "Virtio inside L1: launch to exit with an entropy device, notification round trip",
          "irqchip": "Interrupt controller choice inside L1: VM teardown",
          "blk": "virtio-blk inside L1: the test guest's blkbench against QEMU microvm and fio",
          "net": "virtio-net inside L1: the test guest's netbench and the L2's iperf3 against QEMU microvm",
          "balloon": "virtio-balloon inside L1: a 1 GiB balloon in a 2 GiB Debian L2 against QEMU microvm",
          "vsock": "virtio-vsock inside L1: the Debian L2's socat and connects, hybrid Unix sockets against QEMU microvm's vhost-vsock",
          "seccomp": "seccomp inside L1: hugevmm with its filters (the default) against --no-seccomp"}
COLORS = {"hugevmm": "#1f77b4", "hugevmm 1t": "#9ecae1", "QEMU": "#d62728", "QEMU microvm": "#d62728",
          "QEMU kernel-irqchip=on": "#ff9896", "QEMU microvm kernel-irqchip=on": "#ff9896", "KVM": "#7f7f7f",
          "native": "#2ca02c", "hugevmm direct": "#17becf", "QEMU microvm cache.direct=on": "#ff7f0e",
          "fio": "#2ca02c", "fio direct": "#98df8a", "hugevmm --no-seccomp": "#aec7e8",
          "on - off": "#8c564b", "on / off": "#8c564b",
          "PAGEMAP_SCAN": "#1f77b4", "smaps": "#9467bd"}


def fmt(x):
    if x is None:
        return "-"
    ax = abs(x)
    return f"{x:.0f}" if ax >= 100 else f"{x:.1f}" if ax >= 10 else f"{x:.2f}" if ax >= 1 else f"{x:.3f}"


def sections(res):
    present = {m["section"] for m in res["metrics"]}
    return [s for s in TITLES if s in present] + sorted(present - set(TITLES))


def series_names(metrics):
    names = []
    for m in metrics:
        for k in m["series"]:
            if k not in names:
                names.append(k)
    return names


def machine_line(res):
    m = res["machine"]
    return (f"{m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}"
            f"{' (itself a VM)' if m.get('runs_in_a_vm') else ''}, KVM `{m['kvm']}`, THP "
            f"`{m['thp_enabled']}`/defrag `{m['thp_defrag']}`/shmem `{m['shmem_enabled']}`, "
            f"{m['qemu']}, hugevmm {m['hugevmm']}, free page reporting {m.get('free_page_reporting', '?')}")


def markdown(res):
    lines = [f"# hugevmm benchmarks, {res['date']} (`{res['command']}`)", "",
             f"Machine: {machine_line(res)}.", "",
             "Cells: median [min-max] over the runs; ratios on medians.", ""]
    for sec in sections(res):
        ms = [m for m in res["metrics"] if m["section"] == sec]
        names = series_names(ms)
        params = res["params"].get(sec) or {}
        lines.append(f"## {TITLES.get(sec, sec)}")
        lines.append("")
        if params:
            lines.append("Parameters: " + ", ".join(f"{k} {v}" for k, v in params.items()) + ".")
            lines.append("")
        lines.append("| metric | case | " + " | ".join(names) + " | ratios | goals |")
        lines.append("|---|---|" + "---|" * len(names) + "---|---|")
        for m in ms:
            cells = []
            for n in names:
                s = m["series"].get(n)
                cells.append(f"{fmt(s['median'])} [{fmt(s['min'])}-{fmt(s['max'])}]" if s else "-")
            ratios = ", ".join(f"{k} {v:.2f}x" for k, v in m.get("ratios", {}).items()) or "-"
            goals = "; ".join(f"{'met' if g['met'] else 'MISSED'}: {g['text']}" for g in m.get("goals", [])) or "-"
            name = f"{m['name']} ({m['unit']}, {m['better']} is better)"
            lines.append(f"| {name} | {m['case']} | " + " | ".join(cells) + f" | {ratios} | {goals} |")
        notes = sorted({m["note"] for m in ms if m.get("note")})
        for n in notes:
            lines.append(f"\n{n}.")
        lines.append("")
    for sec, e in res.get("errors", {}).items():
        lines.append(f"Section {sec} FAILED: {e}.")
    for sec, why in res.get("skipped", {}).items():
        for case, reason in why.items():
            lines.append(f"Skipped {sec} {case}: {reason}.")
    return "\n".join(lines).rstrip() + "\n"


def chart(res, path):
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: small, searchable
    import matplotlib.pyplot as plt

    groups = []
    for m in res["metrics"]:
        key = (m["section"], m["name"], m["unit"], m["better"])
        if key not in groups:
            groups.append(key)
    cols = 2
    rows = max(1, -(-len(groups) // cols))  # every section failed: an empty chart, not a crash
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.6 * rows), squeeze=False)
    for ax, key in zip(axes.flat, groups):
        ms = [m for m in res["metrics"] if (m["section"], m["name"], m["unit"], m["better"]) == key]
        names = series_names(ms)
        width = 0.8 / len(names)
        for i, n in enumerate(names):
            xs, ys, lo, hi = [], [], [], []
            for j, m in enumerate(ms):
                s = m["series"].get(n)
                if s:
                    xs.append(j + (i - (len(names) - 1) / 2) * width)
                    ys.append(s["median"])
                    lo.append(s["median"] - s["min"])
                    hi.append(s["max"] - s["median"])
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=n, color=COLORS.get(n))
        ax.set_xticks(range(len(ms)))
        ax.set_xticklabels([m["case"] for m in ms], fontsize=8)
        ax.set_title(f"{key[1]}\n({key[2]}, {key[3]} is better)", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    title = f"hugevmm benchmarks {res['date']} ({res['command']}): {machine_line(res).replace('`', '')}"
    fig.suptitle("\n".join(textwrap.wrap(title, 160)), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def render(json_path):
    with open(json_path) as f:
        res = json.load(f)
    base = os.path.splitext(json_path)[0]
    with open(base + ".md", "w") as f:
        f.write(markdown(res))
    chart(res, base + ".svg")
    return base + ".md", base + ".svg"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: bench/report.py RESULTS.json")
    for p in render(sys.argv[1]):
        print(p)
