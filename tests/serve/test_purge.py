"""The CDN purge hook: off the request path, retried with backoff (bounded in attempts and time) against
a local receiver that fails then succeeds, and counted in the metrics."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from perfkit.serve.app import ServeApp
from perfkit.serve.config import ServeConfig
from perfkit.serve.purge import PurgeHook
from perfkit.serve.tokens import parse_tokens

TOKEN = "purge-test-token-0123456789abcdef"


class Flaky:
    """A local purge receiver answering the statuses of `script` in turn, then 200; `hold` (set to
    block) keeps each request waiting until it is released."""

    def __init__(self, *script: int) -> None:
        self.script, self.calls, self.hold = list(script), 0, threading.Event()
        self.hold.set()
        self.seen = threading.Condition()
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with flaky.seen:
                    flaky.calls += 1
                    flaky.seen.notify_all()
                flaky.hold.wait(10)
                status = flaky.script.pop(0) if flaky.script else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/purge"
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()

    def wait_calls(self, n: int, timeout: float = 5.0) -> None:
        with self.seen:
            assert self.seen.wait_for(lambda: self.calls >= n, timeout), f"{self.calls} calls, not {n}"

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky() -> Iterator[Any]:
    made: list[Flaky] = []

    def make(*script: int) -> Flaky:
        made.append(Flaky(*script))
        return made[-1]

    yield make
    for f in made:
        f.close()


async def test_a_failed_purge_is_retried_until_it_succeeds(flaky: Any) -> None:
    """503 then 502 then 200: three calls, the purge delivered, two retries counted."""
    receiver = flaky(503, 502)
    hook = PurgeHook(receiver.url, backoff=0.001)
    assert hook.submit("ns", ["t"], None)
    await hook.idle()
    assert receiver.calls == 3
    assert hook.stats() == {"purged": 1, "retried": 2, "failed": 0, "dropped": 0, "pending": 0}
    await hook.close()


async def test_retries_are_bounded_in_attempts_and_time(flaky: Any) -> None:
    """A hook that always fails gets `attempts` calls; with a short deadline, fewer, and no longer."""
    receiver = flaky(*[500] * 20)
    hook = PurgeHook(receiver.url, attempts=3, backoff=0.001)
    assert not await hook.purge("ns", ["t"], None)
    assert receiver.calls == 3 and hook.stats()["failed"] == 1 and hook.stats()["retried"] == 2
    hook2 = PurgeHook(receiver.url, attempts=10, backoff=0.1, deadline=0.25)
    started = time.monotonic()
    assert not await hook2.purge("ns", ["t"], None)
    assert time.monotonic() - started < 0.25
    assert receiver.calls == 3 + 2  # at 0 s and 0.1 s; the next (0.3 s) would pass the deadline
    await hook.close()
    await hook2.close()


async def test_a_refusal_that_will_not_change_is_not_retried(flaky: Any) -> None:
    """A 400 (or 401, 404) fails at once: one call."""
    receiver = flaky(400)
    hook = PurgeHook(receiver.url, backoff=0.001)
    assert not await hook.purge("ns", [], "*")
    assert receiver.calls == 1 and hook.stats()["failed"] == 1 and hook.stats()["retried"] == 0
    await hook.close()


async def test_the_invalidation_answers_before_the_purge_and_the_metrics_count_it(
    flaky: Any, tmp_path: Path
) -> None:
    """POST invalidate answers while the purge hook is still holding the call; the retried purge is then
    delivered and counted in /v1/metrics (JSON and Prometheus)."""
    receiver = flaky(503)
    receiver.hold.clear()
    config = ServeConfig(
        cache_url="memory://", jobs_url=f"sqlite:///{tmp_path / 'jobs.db'}", purge_url=receiver.url,
        tokens=tuple(parse_tokens(f"ops {TOKEN} admin", "test")),
    )  # fmt: skip
    app = ServeApp(config)
    app.purge.backoff = 0.001  # type: ignore[union-attr]  # a purge URL is configured
    auth = {"authorization": f"Bearer {TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://serve", headers=auth) as client:
            call = client.post("/v1/cache/ns/invalidate", json={"tags": ["deck-1"]})
            answer = await asyncio.wait_for(call, 2.0)  # the receiver holds the purge for 10 s
            assert answer.status_code == 200 and answer.json() == {"removed": 0, "purged": True}
            await asyncio.to_thread(receiver.wait_calls, 1)  # the purge is being sent, and held
            receiver.hold.set()
            await app.purge.idle()  # type: ignore[union-attr]
            assert receiver.calls == 2
            metrics = (await client.get("/v1/metrics")).json()
            assert metrics["purge"]["purged"] >= 1 and metrics["purge"]["retried"] >= 1
            text = (await client.get("/v1/metrics?format=prometheus")).text
            assert 'perfkit_serve_purge_total{outcome="retried"}' in text
    finally:
        await app.close()
