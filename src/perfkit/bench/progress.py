"""Progress while a run lasts: a live line on a terminal (rich), or a plain line every few seconds
on stderr when there is none (CI logs), so that a long run is never silent.

Each line: elapsed and remaining time, the current rate, the recent p95, requests sent and errors.
The p95 is that of the last complete second, from the slowest worker process (percentiles of
separate processes cannot be combined without their histograms, which only travel at the end).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from perfkit.bench.plan import Plan
from perfkit.bench.runner import LIVE_FIELDS
from perfkit.errors import MissingDependencyError

LOG_EVERY = 5.0  # seconds between two plain progress lines


class Counter:
    """Turns the runner's live numbers into a progress line; the rate is over the previous call."""

    def __init__(self, plan: Plan) -> None:
        self.total = plan.run_duration
        self._last = (0.0, 0.0)  # (elapsed, completed) at the previous line: the first is from the start

    def line(self, elapsed: float, live: list[float], bold: bool = False) -> str:
        n = len(live) // LIVE_FIELDS
        sent = sum(live[i * LIVE_FIELDS] for i in range(n))
        done = sum(live[i * LIVE_FIELDS + 1] for i in range(n))
        errors = sum(live[i * LIVE_FIELDS + 2] for i in range(n))
        p95 = max((live[i * LIVE_FIELDS + 3] for i in range(n)), default=0.0)
        rate = 0.0
        if elapsed > self._last[0]:
            rate = (done - self._last[1]) / (elapsed - self._last[0])
        self._last = (elapsed, done)
        elapsed = max(elapsed, 0.0)
        remaining = max(self.total - elapsed, 0.0)
        err_pct = errors / done * 100 if done else 0.0
        clock = f"{elapsed:5.1f}s"
        return (
            f"{f'[bold]{clock}[/]' if bold else clock} elapsed, {remaining:5.1f}s left | {rate:8.0f} req/s | "
            f"p95 {p95 / 1000:7.2f} ms | sent {sent:.0f} | errors {errors:.0f} ({err_pct:.2f}%)"
        )


class Progress:
    """The terminal view, fed by the runner's `on_tick(elapsed, live)`: stderr, 4 times a second."""

    def __init__(self, plan: Plan) -> None:
        try:
            from rich.console import Console
            from rich.live import Live
        except ImportError:  # pragma: no cover - the cli extra installs it
            raise MissingDependencyError("bench", "rich", "cli") from None
        self.counter = Counter(plan)
        self._live: Any = Live(
            "starting...", console=Console(stderr=True, highlight=False), refresh_per_second=4, transient=True
        )
        self._live.start()

    def line(self, elapsed: float, live: list[float]) -> str:
        return self.counter.line(elapsed, live, bold=True)

    def tick(self, elapsed: float, live: list[float]) -> None:
        self._live.update(self.line(elapsed, live))

    def stop(self) -> None:
        self._live.stop()


class LogProgress:
    """Without a terminal: one plain line every `every` seconds, flushed, on `stream` (stderr)."""

    def __init__(self, plan: Plan, every: float = LOG_EVERY, stream: TextIO | None = None) -> None:
        self.counter = Counter(plan)
        self.every = every
        self.stream = stream
        self._next = every

    def tick(self, elapsed: float, live: list[float]) -> None:
        if elapsed < self._next:
            return
        self._next = (elapsed // self.every + 1) * self.every
        print(
            f"perfkit bench: {self.counter.line(elapsed, live)}", file=self.stream or sys.stderr, flush=True
        )

    def stop(self) -> None:
        """Nothing to tear down: every line is already written."""


def make_progress(plan: Plan, quiet: bool) -> Progress | LogProgress | None:
    """The live view on a terminal, plain lines without one, nothing with `quiet`."""
    if quiet:
        return None
    return Progress(plan) if sys.stderr.isatty() else LogProgress(plan)
