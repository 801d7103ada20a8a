"""System resources through psutil: CPU, memory and disk of the host, memory of this process."""

from __future__ import annotations

import os
from typing import Any

from perfkit.errors import MissingDependencyError


def _psutil() -> Any:
    try:
        import psutil
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("monitor", "psutil", "monitor") from exc
    return psutil


_process: Any = None


def sample(disk_path: str = "/") -> dict[str, float]:
    """CPU % (since the previous call; the first call primes it), memory %, disk % and process RSS."""
    global _process
    psutil = _psutil()
    if _process is None or _process.pid != os.getpid():  # a forked worker measures itself
        _process = psutil.Process()
        _process.cpu_percent(None)
        psutil.cpu_percent(None)
    memory = psutil.virtual_memory()
    return {
        "cpu_percent": float(psutil.cpu_percent(None)),
        "memory_percent": float(memory.percent),
        "disk_percent": float(psutil.disk_usage(disk_path).percent),
        "process_rss_bytes": float(_process.memory_info().rss),
        "process_cpu_percent": float(_process.cpu_percent(None)),
    }
