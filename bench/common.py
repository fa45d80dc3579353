"""Shared pieces of the benchmarks: the machine record, host settings that are
set and restored, and median/min/max summaries."""
import datetime
import json
import os
import platform
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THP = "/sys/kernel/mm/transparent_hugepage"


def choice(path):
    text = open(path).read().strip()
    return text[text.index("[") + 1:text.index("]")] if "[" in text else text


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    kvm = next((m for m in ("kvm_intel", "kvm_amd", "kvm_pvm") if os.path.exists(f"/sys/module/{m}")),
               "none")
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True)
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True)
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "thp_enabled": choice(f"{THP}/enabled"), "thp_defrag": choice(f"{THP}/defrag"),
            "shmem_enabled": choice(f"{THP}/shmem_enabled"), "kvm": kvm,
            "qemu": qemu.stdout.splitlines()[0] if qemu.returncode == 0 else "absent",
            "hugevmm": rev.stdout.strip() or "?"}


class Settings:
    """Writes sysfs values and restores them."""

    def __init__(self):
        self.saved = []

    def set(self, path, value):
        old = open(path).read().strip()
        if "[" in old:
            old = old[old.index("[") + 1:old.index("]")]
        self.saved.append((path, old))
        with open(path, "w") as f:
            f.write(str(value))

    def restore(self):
        for path, old in reversed(self.saved):
            with open(path, "w") as f:
                f.write(old)
        self.saved = []


def summary(xs):
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "n": len(xs)}


def save(name, results):
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    out = os.path.join(ROOT, "bench", "results", f"{name}-{datetime.date.today()}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    return os.path.relpath(out, ROOT)
