"""What every benchmark shares: the machine, memory readings, fresh child processes, tables.

Kept light on imports: the child processes import it before they measure memory.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

Figures = dict[str, Any]
"""One benchmark's figures: flat names (units in the names) to values."""


def machine() -> Figures:
    """The machine the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except ImportError:
        gpu = "unknown (torch not installed)"
    return {"machine_cpu": cpu, "machine_cores": os.cpu_count(), "machine_gpu": gpu,
            "python": platform.python_version()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (VmHWM on Linux: not inherited via fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / 1024 if sys.platform != "darwin" else usage / 2**20


def rss_mb(field: str = "VmRSS") -> float:
    """Current (not peak) resident memory of this process in MB: ``VmRSS``, or ``RssAnon``
    (private memory only, without mapped files) from /proc/self/status; NaN elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_child(task: str, args: list[str]) -> Figures:
    """Run one measurement (a ``CHILDREN`` task of a benchmark module) in a fresh
    interpreter and return its JSON figures."""
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.bench", "_child", task, *args],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark step {task} failed:\n{proc.stderr}")
    result: Figures = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def print_table(title: str, figures: Figures) -> None:
    """Print figures as an aligned two-column table."""
    print(f"\n{title}")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}" \
            if isinstance(value, int) and not isinstance(value, bool) else str(value)
        print(f"  {key:<{width}}  {shown:>14}")
