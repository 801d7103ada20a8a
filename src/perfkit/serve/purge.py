"""The CDN purge hook: on an invalidation, POST what was invalidated to a configured URL.

The body is `{"namespace": ..., "tags": [...], "pattern": ... | null, "surrogate_keys": [...]}`, the
same tags the `cdn` strategy sent as `Surrogate-Key`/`Cache-Tag`, so a small relay (or the CDN's own
API behind one) purges exactly those. A hook that fails is logged and reported (`purged: false`); the
invalidation itself has happened either way.
"""

from __future__ import annotations

import logging
from typing import Any

from perfkit.redaction import redact

log = logging.getLogger("perfkit.serve")


class PurgeHook:
    def __init__(self, url: str, timeout: float = 5.0, token: str | None = None) -> None:
        self.url, self.timeout, self.token = url, timeout, token
        self._client: Any = None

    async def purge(self, namespace: str, tags: list[str], pattern: str | None) -> bool:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        body = {"namespace": namespace, "tags": tags, "pattern": pattern, "surrogate_keys": tags}
        try:
            response = await self._client.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("CDN purge hook %s failed: %s", redact(self.url), exc)
            return False
        if response.status_code >= 300:
            log.warning("CDN purge hook %s answered %d", redact(self.url), response.status_code)
            return False
        return True

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
