"""Functions the process-pool tests run in worker processes (imported there by name)."""

from __future__ import annotations

import ctypes
import os
import sys
import time
from pathlib import Path

from perfkit.jobs import JobQueue

_held: list[bytes] = []
_registry = JobQueue("sqlite:///never-opened.db")  # only decorates `decorated`; its backend is never made


def square(x: int) -> int:
    return x * x


def pid() -> int:
    return os.getpid()


def spin(seconds: float, mark: str | None = None) -> int:
    """Burn CPU for `seconds` (after writing its pid to `mark`, when given); returns the worker's pid."""
    if mark:
        Path(mark).write_text(str(os.getpid()))
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def segfault() -> None:
    ctypes.string_at(0)  # reads address 0: SIGSEGV


def hard_exit() -> None:
    os._exit(3)


def grow(megabytes: int) -> int:
    """Keep `megabytes` allocated in this worker (a leak); returns its pid."""
    _held.append(os.urandom(megabytes * 1024 * 1024))
    return os.getpid()


def imported(module: str) -> bool:
    return module in sys.modules


@_registry.task(cpu=True, name="funcs.decorated")
def decorated(x: int) -> int:
    """Replaced in this module by its Task: the worker must unwrap it."""
    return x + 1
