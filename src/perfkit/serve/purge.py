"""The CDN purge hook: on an invalidation, POST what was invalidated to a configured URL.

The body is `{"namespace": ..., "tags": [...], "pattern": ... | null, "surrogate_keys": [...]}`, the
same tags the `cdn` strategy sent as `Surrogate-Key`/`Cache-Tag`, so a small relay (or the CDN's own
API behind one) purges exactly those. Delivery is off the request path: `submit` hands the purge to a
background task and returns, and the invalidation answers at once (it has happened either way). A
failed attempt (no answer, a timeout, 408, 429 or 5xx) is retried with exponential backoff, at most
`attempts` times in all and within `deadline` seconds; another 4xx is not retried (it will not get
better). Outcomes are counted (`serve_purge_total{outcome}`: purged, retried, failed, dropped) and
logged; at most `max_pending` purges wait at once (more are dropped, counted), and `close()` gives the
pending ones until their deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from perfkit.metrics import Collector
from perfkit.redaction import redact

log = logging.getLogger("perfkit.serve")
OUTCOMES = ("purged", "retried", "failed", "dropped")
_RETRIED_STATUS = frozenset({408, 429})


class PurgeHook:
    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        token: str | None = None,
        *,
        attempts: int = 4,
        backoff: float = 0.5,
        deadline: float = 30.0,
        max_pending: int = 1000,
        collector: Collector | None = None,
    ) -> None:
        self.url, self.timeout, self.token = url, timeout, token
        self.attempts, self.backoff, self.deadline = max(1, attempts), backoff, deadline
        self.max_pending = max_pending
        self.outcomes = (collector or Collector()).counter(
            "serve_purge_total", ("outcome",), "CDN purge hook calls by outcome"
        )
        self._client: Any = None
        self._pending: set[asyncio.Task[bool]] = set()

    def submit(self, namespace: str, tags: list[str], pattern: str | None) -> bool:
        """Deliver the purge in the background (retried); False when too many are pending (dropped)."""
        if len(self._pending) >= self.max_pending:
            self.outcomes.inc(("dropped",))
            log.warning(
                "CDN purge hook %s: %d purges pending, one dropped", redact(self.url), len(self._pending)
            )
            return False
        task = asyncio.get_running_loop().create_task(self.purge(namespace, tags, pattern))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return True

    async def purge(self, namespace: str, tags: list[str], pattern: str | None) -> bool:
        """POST the purge until it is answered 2xx, a final refusal, or the attempts or deadline run out."""
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        body = {"namespace": namespace, "tags": tags, "pattern": pattern, "surrogate_keys": tags}
        end = time.monotonic() + self.deadline
        for attempt in range(1, self.attempts + 1):
            left = end - time.monotonic()
            try:
                response = await self._client.post(
                    self.url, json=body, headers=headers, timeout=max(0.001, min(self.timeout, left))
                )
            except httpx.HTTPError as exc:
                why, retry = f"failed: {type(exc).__name__} {exc}", True
            else:
                if response.status_code < 300:
                    self.outcomes.inc(("purged",))
                    return True
                status = response.status_code
                why, retry = f"answered {status}", status >= 500 or status in _RETRIED_STATUS
            pause = self.backoff * 2 ** (attempt - 1)
            if not retry or attempt == self.attempts or time.monotonic() + pause >= end:
                self.outcomes.inc(("failed",))
                log.warning("CDN purge hook %s %s (attempt %d, giving up)", redact(self.url), why, attempt)
                return False
            self.outcomes.inc(("retried",))
            log.info(
                "CDN purge hook %s %s (attempt %d, retrying in %gs)", redact(self.url), why, attempt, pause
            )
            await asyncio.sleep(pause)
        return False  # (not reached: the last attempt returns above)

    async def idle(self) -> None:
        """Wait until no purge is pending."""
        while self._pending:
            await asyncio.wait(set(self._pending))

    def stats(self) -> dict[str, Any]:
        """The outcomes so far and the purges pending now (for `GET /v1/metrics`)."""
        counts: dict[str, Any] = {o: int(self.outcomes.value((o,))) for o in OUTCOMES}
        counts["pending"] = len(self._pending)
        return counts

    async def close(self, grace: float = 5.0) -> None:
        """Give the pending purges `grace` seconds (at most their deadline) to finish, cancel the rest,
        then close the client."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.idle(), min(grace, self.deadline))
        left = list(self._pending)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
