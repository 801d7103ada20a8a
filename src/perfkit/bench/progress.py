"""Live progress on the terminal (rich): elapsed and remaining, current rate, recent p95, errors.

The p95 is that of the last complete second, from the slowest worker process (percentiles of
separate processes cannot be combined without their histograms, which only travel at the end).
"""

from __future__ import annotations

from typing import Any

from perfkit.bench.plan import Plan
from perfkit.bench.runner import LIVE_FIELDS
from perfkit.errors import MissingDependencyError


class Progress:
    """Fed by the runner's `on_tick(elapsed, live)`; renders to stderr, 4 times a second."""

    def __init__(self, plan: Plan) -> None:
        try:
            from rich.console import Console
            from rich.live import Live
        except ImportError:  # pragma: no cover - the cli extra installs it
            raise MissingDependencyError("bench", "rich", "cli") from None
        self.total = plan.run_duration
        self._last: tuple[float, float] | None = None
        self._live: Any = Live(
            "starting...", console=Console(stderr=True, highlight=False), refresh_per_second=4, transient=True
        )
        self._live.start()

    def line(self, elapsed: float, live: list[float]) -> str:
        n = len(live) // LIVE_FIELDS
        sent = sum(live[i * LIVE_FIELDS] for i in range(n))
        done = sum(live[i * LIVE_FIELDS + 1] for i in range(n))
        errors = sum(live[i * LIVE_FIELDS + 2] for i in range(n))
        p95 = max((live[i * LIVE_FIELDS + 3] for i in range(n)), default=0.0)
        rate = 0.0
        if self._last is not None and elapsed > self._last[0]:
            rate = (done - self._last[1]) / (elapsed - self._last[0])
        self._last = (elapsed, done)
        elapsed = max(elapsed, 0.0)
        remaining = max(self.total - elapsed, 0.0)
        err_pct = errors / done * 100 if done else 0.0
        return (
            f"[bold]{elapsed:5.1f}s[/] elapsed, {remaining:5.1f}s left | {rate:8.0f} req/s | "
            f"p95 {p95 / 1000:7.2f} ms | sent {sent:.0f} | errors {errors:.0f} ({err_pct:.2f}%)"
        )

    def tick(self, elapsed: float, live: list[float]) -> None:
        self._live.update(self.line(elapsed, live))

    def stop(self) -> None:
        self._live.stop()
