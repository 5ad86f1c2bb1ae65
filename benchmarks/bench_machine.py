"""The machine a run was made on, and how loaded it was, for the report."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

from bench_common import BENCH_LABEL, run


def _first_match(path: str, pattern: str):
    """The first group of `pattern` in a file, or None (also when it cannot be read)."""
    try:
        match = re.search(pattern, Path(path).read_text(encoding="utf-8"), re.M)
    except OSError:
        return None
    return match.group(1) if match else None


def machine_info() -> dict:
    memory_kb = _first_match("/proc/meminfo", r"^MemTotal:\s*(\d+) kB")
    info = {
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "cpu_model": (_first_match("/proc/cpuinfo", r"^model name\s*:\s*(.+)$") or "").strip()
        or platform.processor(),
        "memory_bytes": int(memory_kb) * 1024 if memory_kb else None,
        "os": _first_match("/etc/os-release", r'^PRETTY_NAME="?([^"\n]+)"?$'),
    }
    fmt = "{{.Server.Version}} (client {{.Client.Version}})"
    info["docker_server"] = run(["docker", "version", "--format", fmt]).stdout.strip()
    fmt = "{{.Driver}}, cgroup v{{.CgroupVersion}}, {{.NCPU}} CPUs seen by the engine"
    info["docker_storage"] = run(["docker", "info", "--format", fmt]).stdout.strip()
    ansible_version = run(["ansible", "--version"], check=False).stdout.split("\n")[0]
    info["toolchain"] = f"Python {platform.python_version()} / {ansible_version.strip()}"
    return info


def machine_load() -> dict:
    load = os.getloadavg()
    running = run(["docker", "ps", "-q"], check=False).stdout.split()
    ours = run(["docker", "ps", "-q", "--filter", f"label={BENCH_LABEL}"], check=False)
    return {
        "loadavg_1m": round(load[0], 2),
        "loadavg_5m": round(load[1], 2),
        "other_containers_running": len(set(running) - set(ours.stdout.split())),
    }
