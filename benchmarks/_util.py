"""Timing helpers for perfkit's benchmarks: calibrated samples, interleaved rounds, paired ratios.

Each contender is timed for about `sample` seconds per round; the rounds of all contenders in a group
are interleaved (and their order rotated) so that noise from other work on the machine hits everyone.
Reported: best and median ops/s over rounds; ratios are the median of per-round (paired) ratios.
"""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

_perf = time.perf_counter


@dataclass
class Contender:
    """One thing to time. `run(n)` performs n operations; async when `is_async`."""

    name: str
    run: Callable[[int], Any]
    is_async: bool = True
    after: Callable[[], Awaitable[None]] | None = None  # untimed cleanup after each sample
    samples: list[float] = field(default_factory=list)  # ops/s per round
    n: int = 0

    @property
    def best(self) -> float:
        return max(self.samples) if self.samples else 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else 0.0


async def _once(c: Contender, n: int) -> float:
    gc.collect()
    t0 = _perf()
    if c.is_async:
        await c.run(n)
    else:
        c.run(n)
    dt = _perf() - t0
    if c.after is not None:
        await c.after()
    return dt


async def measure(contenders: Sequence[Contender], rounds: int, sample: float) -> None:
    """Calibrate each contender to ~`sample` s per round, then run interleaved, rotated rounds."""
    for c in contenders:
        n = 64
        while True:
            dt = await _once(c, n)
            if dt >= sample / 4 or n >= 2_000_000:
                break
            n *= 4
        c.n = max(64, int(n * sample / max(dt, 1e-9)))
    for r in range(rounds):
        order = list(contenders[r % len(contenders) :]) + list(contenders[: r % len(contenders)])
        for c in order:
            dt = await _once(c, c.n)
            c.samples.append(c.n / dt)


def paired_ratio(a: Contender, b: Contender) -> float:
    """Median over rounds of a's ops/s divided by b's ops/s in the same round."""
    return statistics.median(x / y for x, y in zip(a.samples, b.samples, strict=True))


def machine_line(extra: str = "") -> str:
    try:
        load = f" load1={os.getloadavg()[0]:.2f}"
    except OSError:
        load = ""
    return (
        f"machine: Python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.system()} {platform.machine()}, cpu_count={os.cpu_count()}{load}{extra}"
    )


def fmt_ops(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(out)


def aloop(op: Callable[[Any], Awaitable[Any]], keys: Sequence[Any]) -> Callable[[int], Awaitable[None]]:
    """An async run(n): `await op(k)` for the first n keys (cycled)."""

    async def run(n: int) -> None:
        ks = _take(keys, n)
        for k in ks:
            await op(k)

    return run


def sloop(op: Callable[[Any], Any], keys: Sequence[Any]) -> Callable[[int], None]:
    def run(n: int) -> None:
        ks = _take(keys, n)
        for k in ks:
            op(k)

    return run


def gather_loop(
    op: Callable[[Any], Awaitable[Any]], keys: Sequence[Any], concurrency: int
) -> Callable[[int], Awaitable[None]]:
    """`concurrency` tasks sharing n operations."""

    async def worker(ks: Sequence[Any]) -> None:
        for k in ks:
            await op(k)

    async def run(n: int) -> None:
        ks = _take(keys, n)
        await asyncio.gather(*(worker(ks[i::concurrency]) for i in range(concurrency)))

    return run


_cycles: dict[tuple[int, int], list[Any]] = {}


def _take(keys: Sequence[Any], n: int) -> list[Any]:
    got = _cycles.get((id(keys), n))
    if got is None:
        reps = n // len(keys) + 1
        got = (list(keys) * reps)[:n]
        if len(_cycles) > 256:
            _cycles.clear()
        _cycles[id(keys), n] = got
    return got


def python_info() -> str:
    return sys.version.split()[0]
