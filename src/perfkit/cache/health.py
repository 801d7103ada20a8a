"""What the cache does when its shared tier fails: degrade, log once per outage, recover by itself.

After a failure the L2 is skipped outright for a short, growing interval (50 ms up to 5 s) instead of
making every call wait for its timeout; the first call after the interval probes it again.
"""

from __future__ import annotations

import logging
import time

from perfkit.errors import BackendError, BackendUnavailableError

log = logging.getLogger("perfkit.cache")


class Health:
    def __init__(self, where: str, namespace: str) -> None:
        self.where = where
        self.namespace = namespace
        self.down = False
        self._retry_at = 0.0
        self._backoff = 0.05

    def skip(self) -> bool:
        """True while the tier is known down and not yet due for a probe."""
        return self.down and time.monotonic() < self._retry_at

    def failed(self, exc: BackendError, op: str) -> None:
        if not isinstance(exc, BackendUnavailableError):
            log.warning("cache %r: %s failed on %s: %s", self.namespace, op, self.where, exc)
            return
        if not self.down:
            self.down = True
            log.warning(
                "cache %r: %s is unavailable (%s); serving without it until it is back",
                self.namespace,
                self.where,
                exc,
            )
        else:
            self._backoff = min(self._backoff * 2, 5.0)
        self._retry_at = time.monotonic() + self._backoff

    def down_for(self, seconds: float) -> None:
        """Treat the tier as down and skip it for `seconds`, as after a failure (a maintenance window)."""
        self.down = True
        self._retry_at = time.monotonic() + seconds

    def ok(self) -> None:
        if self.down:
            self.down = False
            self._backoff = 0.05
            log.warning("cache %r: %s is back", self.namespace, self.where)
