"""The jobs package's seams: one resolved config, one event emitter, one cached sync facade."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfkit.errors import ConfigurationError
from perfkit.jobs import JobQueue, JobsConfig


def test_config_is_resolved_once_and_shared_by_siblings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arguments win over PERFKIT_JOBS_* which win over defaults; a sibling shares the one JobsConfig."""
    monkeypatch.setenv("PERFKIT_JOBS_RETENTION", "2h")
    jobs = JobQueue(f"sqlite:///{tmp_path}/a.db", lease="10s", default_queue="mail")
    assert (jobs.config.lease, jobs.config.retention, jobs.config.max_payload) == (10.0, 7200.0, 1024**2)
    assert (jobs.lease, jobs.retention, jobs.default_queue) == (10.0, 7200.0, "mail")
    monkeypatch.setenv("PERFKIT_JOBS_RETENTION", "1h")  # read once: a later change is not seen
    twin = jobs.sibling()
    assert twin.config is jobs.config
    assert twin.retention == 7200.0
    assert twin.tasks is jobs.tasks and twin.hooks is jobs.hooks
    again = JobQueue(config=JobsConfig.resolve(jobs.url, lease=10))
    assert again.url == jobs.url and again.lease == 10.0


def test_config_argument_errors(tmp_path: Path) -> None:
    """config= is a JobsConfig and is not mixed with the settings it already holds."""
    config = JobsConfig.resolve(f"sqlite:///{tmp_path}/a.db")
    with pytest.raises(ConfigurationError, match="config"):
        JobQueue(f"sqlite:///{tmp_path}/b.db", config=config)
    with pytest.raises(ConfigurationError, match="config"):
        JobQueue(config="sqlite:///x.db")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_payload"):
        JobsConfig.resolve(max_payload="lots")
    assert "k" * 16 not in repr(JobsConfig.resolve(serializer="pickle", pickle_key="k" * 16))
