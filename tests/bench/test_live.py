"""Live progress: workers publish their counters while running; the rich line shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfkit.bench.plan import Plan
from perfkit.bench.progress import Progress
from perfkit.bench.runner import run
from perfkit.bench.target import make_target
from tests.bench.conftest import Server, bench

SHOP = str(Path(__file__).parent / "scenarios" / "shop.py")


@pytest.mark.parametrize("processes", [1, 2])
def test_ticks_carry_live_counts(server: Server, processes: int) -> None:
    """on_tick sees the sent counter grow during the run, from every worker process."""
    target = make_target(f"{server.url}/")
    plan = Plan(endpoint=target.endpoint, target=target, users=2, duration=1.2, processes=processes)
    seen: list[float] = []

    def tick(elapsed: float, live: list[float]) -> None:
        assert len(live) == 4 * processes
        seen.append(sum(live[i * 4] for i in range(processes)))

    result = run(plan, tick)
    assert result.recorder.sent == server.count()
    growing = [s for s in seen if s > 0]
    assert len(growing) >= 2 and growing == sorted(growing), seen


def test_progress_line() -> None:
    """The progress line shows elapsed and remaining time, the current rate, p95 and errors."""
    target = make_target("http://127.0.0.1:9/")
    progress = Progress(Plan(endpoint=target.endpoint, target=target, duration=10))
    try:
        progress.line(1.0, [100.0, 100.0, 0.0, 1500.0])
        line = progress.line(2.0, [1100.0, 1090.0, 10.0, 2500.0, 50.0, 40.0, 0.0, 900.0])
    finally:
        progress.stop()
    assert "2.0s[/] elapsed" in line and "8.0s left" in line
    assert "1030 req/s" in line and "p95    2.50 ms" in line and "errors 10 (0.88%)" in line


def test_scenario_over_two_processes(server: Server, tmp_path: Path) -> None:
    """A scenario split over two processes: names, checks and counts merge exactly."""
    code, doc = bench(
        tmp_path, SHOP, "--host", server.url, "--users", "4", "--processes", "2", "--max-requests", "1000"
    )
    assert code == 0
    assert doc["sent"] == doc["names"]["*"]["requests"] == server.count() == 1000
    assert doc["checks"]["list is json"]["passes"] == doc["names"]["list"]["requests"]
