"""Credentials never shown: every URL form (userinfo, `?password=`, tokens) redacted in each surface."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from perfkit import BackendUnavailableError, Cache, ConfigurationError, JobQueue
from perfkit.backends import parse_url
from perfkit.monitor.alerts import webhook_label
from perfkit.redaction import redact

from .conftest import free_port

SECRET = "hunter2"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("postgresql://app:hunter2@db/x", "postgresql://app:***@db/x"),
        ("redis://u:hun@ter2@h/0", "redis://u:***@h/0"),  # an unencoded @ in the password
        ("postgresql://app@db/x?password=hunter2", "postgresql://app@db/x?password=***"),
        ("postgresql://db/x?sslmode=require&pass=hunter2", "postgresql://db/x?sslmode=require&pass=***"),
        ("redis://h/0?auth=hunter2", "redis://h/0?auth=***"),
        ("https://h/x?token=hunter2&access_token=hunter2", "https://h/x?token=***&access_token=***"),
        ("https://h/x?secret=hunter2&api_key=hunter2", "https://h/x?secret=***&api_key=***"),
        ("https://h/x?apikey=hunter2&client_secret=hunter2", "https://h/x?apikey=***&client_secret=***"),
        ("https://h/x?X-Amz-Signature=hunter2&sig=hunter2", "https://h/x?X-Amz-Signature=***&sig=***"),
        ("host=db password='hunter2 x' user=app", "host=db password=*** user=app"),
        ("memory://?max_size=10&max_keys=5", "memory://?max_size=10&max_keys=5"),
        ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
    ],
)
def test_every_credential_form_is_redacted(raw: str, shown: str) -> None:
    """userinfo passwords and every secret-named parameter become ***; the rest of the URL stays."""
    assert redact(raw) == shown
    assert parse_url(raw if "://" in raw else "x://h?" + raw).redacted().count(SECRET) == 0


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app@127.0.0.1:5432/test?password=hunter2",
        "postgresql://app:hunter2@127.0.0.1:5432/test",
        "redis://127.0.0.1:6379/0?token=hunter2",
    ],
)
def test_job_queue_repr(url: str) -> None:
    """`repr(JobQueue(url))` (also what `perfkit worker` logs) shows no password or token."""
    assert SECRET not in repr(JobQueue(url))


async def test_job_queue_unavailable_error_on_postgres() -> None:
    """A PostgreSQL job store that is down raises BackendUnavailableError without the ?password=."""
    jobs = JobQueue(f"postgresql://postgres@127.0.0.1:{free_port()}/test?password=hunter2")

    @jobs.task()
    async def noop(ctx: Any) -> None: ...

    try:
        with pytest.raises(BackendUnavailableError) as caught:
            await noop.enqueue()
    finally:
        await jobs.close()
    assert "password=***" in str(caught.value)
    assert SECRET not in str(caught.value)


async def test_job_queue_unavailable_error_on_redis() -> None:
    """A Redis job store that is down raises BackendUnavailableError without the ?password=."""
    jobs = JobQueue(f"redis://127.0.0.1:{free_port()}/0?password=hunter2")

    @jobs.task()
    async def noop(ctx: Any) -> None: ...

    try:
        with pytest.raises(BackendUnavailableError) as caught:
            await noop.enqueue()
    finally:
        await jobs.close()
    assert SECRET not in str(caught.value)


async def test_cache_warning_and_error(caplog: pytest.LogCaptureFixture) -> None:
    """The cache's 'unavailable' WARNING and, with on_error='raise', its error hide ?password=."""
    url = f"redis://127.0.0.1:{free_port()}/0?password=hunter2"
    degrading = Cache(url, namespace="redact")
    raising = Cache(url, namespace="redact", on_error="raise")
    try:
        with caplog.at_level(logging.WARNING, logger="perfkit.cache"):
            assert await degrading.get("k") is None
        with pytest.raises(BackendUnavailableError) as caught:
            await raising.get("k")
    finally:
        await degrading.close()
        await raising.close()
    assert "unavailable" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(degrading)


def test_configuration_errors() -> None:
    """An error about a bad URL quotes it without its password (every PerfkitError message is redacted)."""
    with pytest.raises(ConfigurationError) as caught:
        parse_url("redis://:hunter2@127.0.0.1:notaport/0?password=hunter2")
    assert "port" in str(caught.value)
    assert SECRET not in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        Cache("nosuch://u:hunter2@h/?token=hunter2")
    assert SECRET not in str(caught.value)


async def test_monitor_redis_store_error() -> None:
    """The Redis monitor store's error for a server that is down hides ?password=."""
    from perfkit.errors import BackendError
    from perfkit.monitor.store import registry

    store = registry.create(f"redis://127.0.0.1:{free_port()}/0?password=hunter2", "monitor_url")
    try:
        with pytest.raises(BackendError) as caught:
            await store.ping()
    finally:
        await store.close()
    assert SECRET not in str(caught.value)


def test_webhook_logs_show_the_origin_only() -> None:
    """A webhook is logged by its origin: no userinfo, no path token, no query token."""
    assert webhook_label("https://u:hunter2@hooks.example.com/services/T0/hunter2?token=hunter2") == (
        "https://hooks.example.com/..."
    )
