"""The worker process: imports what it was told to, then runs one function at a time for the pool.

Protocol over one duplex pipe (pickled by us, between the pool and the processes it started; nothing
else writes to it): the worker sends ("ready", pid, rss) once, then per job the pool sends
(job id, (module, qualname), args, kwargs) and the worker answers ("ok", id, value, rss) or
("error", id, pickled exception or None, type name, message, traceback text, rss). None stops it.
"""

from __future__ import annotations

import importlib
import os
import pickle
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from perfkit.cpu.refs import resolve

__all__ = ["main", "rss"]


def _rss_reader() -> Callable[[], int]:
    try:
        import psutil

        me = psutil.Process()
        return lambda: int(me.memory_info().rss)
    except ImportError:  # psutil is in perfkit[monitor]; Linux has /proc
        page = os.sysconf("SC_PAGE_SIZE")

        def statm() -> int:
            with open("/proc/self/statm", "rb") as f:
                return int(f.read().split()[1]) * page

        return statm


rss = _rss_reader()


def _error(job: int, exc: BaseException, size: int) -> bytes:
    text = "".join(traceback.format_exception(exc))
    try:
        made = pickle.dumps(exc)
        pickle.loads(made)  # noqa: S301 - our own bytes, just made: does it come back whole?
        blob: bytes | None = made
    except Exception:
        blob = None
    return pickle.dumps(("error", job, blob, type(exc).__name__, str(exc), text, size))


def main(conn: Any, preload: Sequence[str], nice: int) -> None:
    """The worker's loop; returns when the pool sends None or closes the pipe."""
    if nice:
        os.nice(nice)
    if hasattr(os, "sched_setscheduler"):  # Linux: CPU-bound, no wake-up preemption of the loop
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    for module in preload:
        importlib.import_module(module)
    functions: dict[tuple[str, str], Callable[..., Any]] = {}
    conn.send_bytes(pickle.dumps(("ready", os.getpid(), rss())))
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        message = pickle.loads(data)  # noqa: S301 - written by the pool that started this process
        if message is None:
            return
        job, ref, args, kwargs = message
        try:
            fn = functions.get(ref)
            if fn is None:
                fn = functions[ref] = resolve(ref)
            value = fn(*args, **kwargs)
            out = pickle.dumps(("ok", job, value, rss()))
        except BaseException as exc:  # the caller gets it, whatever it is; the worker lives on
            out = _error(job, exc, rss())
        conn.send_bytes(out)
