"""What a benchmark ran on: CPU model, cores, memory, and how loaded the machine was."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores() -> int:
    """Distinct (package, core) pairs in /proc/cpuinfo; the logical count where that is unreadable."""
    try:
        cores, package = set(), "0"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "physical id":
                package = value
            elif key == "core id":
                cores.add((package, value))
        if cores:
            return len(cores)
    except OSError:
        pass
    return os.cpu_count() or 1


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: above the core count, other work shared the CPU."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def describe() -> dict:
    flags = cpu_flags()
    return {
        "cpu": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "memory_gib": memory_gib(),
        # bf16 matmul hardware: AMX tiles (Intel Sapphire Rapids+) or AVX512-BF16 dot products (AMD Zen 4, Intel Cooper Lake)
        "bf16_isa": [f for f in ("amx_bf16", "avx512_bf16") if f in flags],
        "platform": platform.platform(),
    }
