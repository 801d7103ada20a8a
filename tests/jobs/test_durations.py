"""Every job duration goes through the one parser: NaN and infinity are refused, naming the setting."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from perfkit import ConfigurationError, InvalidArgumentError, InvalidDurationError
from perfkit.config import parse_duration
from perfkit.jobs import Context, JobQueue

NOT_FINITE = [math.nan, math.inf, -math.inf, "nan", "inf", "1e400s"]
IDS = ["nan", "inf", "-inf", "'nan'", "'inf'", "'1e400s'"]


@pytest.mark.parametrize("value", NOT_FINITE, ids=IDS)
def test_parse_duration_refuses_what_is_not_finite(value: object) -> None:
    """The one parser refuses NaN and infinity, as numbers or text, with an error naming the setting."""
    with pytest.raises(InvalidDurationError, match=r"^lease: .*not a finite number of seconds") as raised:
        parse_duration("lease", value)  # type: ignore[arg-type]
    assert isinstance(raised.value, ConfigurationError)
    assert isinstance(raised.value, InvalidArgumentError)
    assert isinstance(raised.value, ValueError)


def test_parse_duration_limits_and_units() -> None:
    """Units, a maximum, huge integers and wrong types: each accepted or refused by name."""
    assert parse_duration("d", "250ms") == 0.25
    assert parse_duration("d", "2h") == 7200.0
    assert parse_duration("d", 60, maximum=60) == 60.0
    with pytest.raises(InvalidDurationError, match=r"^d: 61 is over the maximum of 60 seconds"):
        parse_duration("d", 61, maximum=60)
    with pytest.raises(InvalidDurationError, match=r"^d: .*not a finite"):
        parse_duration("d", 10**400)
    with pytest.raises(InvalidDurationError, match=r"^d: .*not a duration"):
        parse_duration("d", [1])  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [math.nan, math.inf], ids=["nan", "inf"])
def test_queue_settings_refuse_nan_and_infinity(
    value: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lease, retention, a task's timeout and backoff, and PERFKIT_JOBS_LEASE refuse NaN and infinity."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    with pytest.raises(InvalidDurationError, match=r"^lease:"):
        JobQueue(url, lease=value)
    with pytest.raises(InvalidDurationError, match=r"^retention:"):
        JobQueue(url, retention=value)
    jobs = JobQueue(url)
    with pytest.raises(InvalidDurationError, match=r"^timeout:"):
        jobs.task(timeout=value)
    with pytest.raises(InvalidDurationError, match=r"^backoff:"):
        jobs.task(backoff=value)
    monkeypatch.setenv("PERFKIT_JOBS_LEASE", str(value))
    with pytest.raises(InvalidDurationError, match=r"^PERFKIT_JOBS_LEASE:"):
        JobQueue(url)


@pytest.mark.parametrize("setting", ["grace", "idle_wait", "heartbeat", "cleanup_every"])
def test_worker_durations_refuse_nan(setting: str, tmp_path: Path) -> None:
    """A worker's grace, idle wait, heartbeat and cleanup period refuse NaN, naming the option."""
    jobs = JobQueue(f"sqlite:///{tmp_path}/jobs.db")

    @jobs.task(queue="w")
    async def work(ctx: Context) -> None: ...

    with pytest.raises(InvalidDurationError, match=f"^{setting}:"):
        jobs.worker(**{setting: math.nan})


@pytest.mark.parametrize("value", [math.nan, math.inf, "inf"], ids=["nan", "inf", "'inf'"])
async def test_enqueue_refuses_nan_and_infinite_delays(jobs: JobQueue, value: object) -> None:
    """delay= and at= of NaN or infinity raise InvalidDurationError naming them; nothing is queued."""

    @jobs.task(queue="d", name="d.work")
    async def work(ctx: Context) -> None: ...

    with pytest.raises(InvalidDurationError, match=r"^delay:"):
        await work.enqueue(delay=value)  # type: ignore[arg-type]
    with pytest.raises(InvalidDurationError, match=r"item 0 .*delay:"):
        await jobs.enqueue_many([work.prepare(delay=value)])  # type: ignore[arg-type]
    if not isinstance(value, str):
        with pytest.raises(InvalidDurationError, match=r"^at:"):
            await work.enqueue(at=value)  # type: ignore[arg-type]
    assert await jobs.list() == ([], None)
    assert await jobs.depth() == {}


def test_explicit_duration_settings_of_other_parts_are_checked_too() -> None:
    """Durations resolved through `setting()` (web, db) refuse an explicit NaN or infinity by name."""
    from perfkit.db.config import DbConfig
    from perfkit.web.config import WebConfig

    with pytest.raises(InvalidDurationError, match=r"^slow_request: nan is not a finite"):
        WebConfig(slow_request=math.nan)
    with pytest.raises(InvalidDurationError, match=r"^slow_query: inf is not a finite"):
        DbConfig(slow_query=math.inf)
    assert WebConfig(slow_request="2s").slow_request == 2.0  # type: ignore[arg-type]
