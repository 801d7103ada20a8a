"""The open model: the arrival rate holds, stages ramp, and coordinated omission is corrected."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from perfkit.bench.scheduler import ArrivalSchedule, Stage, UserSchedule, parse_stage
from tests.bench.conftest import Server, bench


def test_rate_within_five_percent(server: Server, tmp_path: Path) -> None:
    """--rate 400/s for 2 s sends 800 requests (+-5 %) at 400/s (+-5 %)."""
    code, doc = bench(tmp_path, f"{server.url}/", "--rate", "400/s", "--duration", "2s")
    total = doc["names"]["*"]
    assert code == 0
    assert total["requests"] == doc["sent"] == server.count()
    assert 760 <= total["requests"] <= 840
    assert 380 <= total["rps"] <= 420
    per_second = [s["requests"] for s in doc["timeline"]][:2]
    assert all(380 <= n <= 420 for n in per_second), per_second


def test_rate_split_over_processes(server: Server, tmp_path: Path) -> None:
    """--rate 400/s over two processes still sends 400/s in total (+-5 %), merged exactly."""
    code, doc = bench(tmp_path, f"{server.url}/", "--rate", "400/s", "--duration", "2s", "--processes", "2")
    total = doc["names"]["*"]
    assert code == 0
    assert total["requests"] == doc["sent"] == server.count() == total["uncorrected_latency_ms"]["count"]
    assert 760 <= total["requests"] <= 840


def test_schedule_constant_and_ramp() -> None:
    """A ramp from 0 to 100/s over 10 s has 500 arrivals, spaced ever closer; the end is exclusive."""
    constant = ArrivalSchedule([Stage(2, 100, True)])
    assert constant.time_of(0) == 0 and constant.time_of(199) == pytest.approx(1.99)
    assert constant.time_of(200) is None
    ramp = ArrivalSchedule([Stage(10, 100, True)], start_rate=0)
    times = []
    n = 0
    while (t := ramp.time_of(n)) is not None:
        times.append(t)
        n += 1
    assert len(times) == 500
    assert times[-1] == pytest.approx(10 * (499 / 500) ** 0.5, rel=1e-6)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] > gaps[-1]


def test_two_stages_follow_their_targets() -> None:
    """`30s:100/s` then `1m:500/s`: the second stage ramps from 100 to 500/s (18k arrivals)."""
    schedule = ArrivalSchedule([parse_stage("30s:100/s"), parse_stage("1m:500/s")])
    assert schedule.total == 30 * 100 + 60 * 300
    assert schedule.time_of(3000) == pytest.approx(30.0)
    assert schedule.time_of(21_000) is None
    users = UserSchedule([parse_stage("10s:50"), parse_stage("10s:50")], 0)
    assert [users.users_at(t) for t in (0, 5, 10, 15, 25)] == [0, 25, 50, 50, 50]


def test_stages_drive_a_real_run(server: Server, tmp_path: Path) -> None:
    """Rate stages: 1 s at 200/s then a 1 s ramp to 400/s send 200 + 300 requests."""
    code, doc = bench(tmp_path, f"{server.url}/", "--stage", "1s:200/s", "--stage", "1s:400/s")
    assert code == 0
    assert 475 <= doc["sent"] <= 525 and doc["sent"] == server.count()
    assert doc["config"]["stages"][1] == {"duration_s": 1.0, "target": 400.0, "unit": "rps"}


def test_coordinated_omission_is_corrected(start_server: Callable[..., Server], tmp_path: Path) -> None:
    """A 1 s server stall: the corrected p99 shows it, the uncorrected p99 does not."""
    server = start_server("--stall-after", "200", "--stall-for", "1.0")
    code, doc = bench(tmp_path, f"{server.url}/", "--rate", "200/s", "--duration", "3s", "--connections", "4")
    total = doc["names"]["*"]
    assert code == 0
    assert total["requests"] == server.count()
    corrected, uncorrected = total["latency_ms"], total["uncorrected_latency_ms"]
    assert corrected["p99"] >= 900, corrected
    assert uncorrected["p99"] < 100, uncorrected
    assert uncorrected["max"] >= 900  # the stall is only in the uncorrected maximum
    assert corrected["p90"] > 10 * uncorrected["p90"]
