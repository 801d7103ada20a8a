"""Settings of the real-user-monitoring collector (`MonitorConfig(rum=RumConfig(...))`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from perfkit.config import parse_duration
from perfkit.errors import ConfigurationError
from perfkit.web.config import RateLimit

MAX_BODY = 64 * 1024


@dataclass
class RumConfig:
    """`POST {prefix}/rum` accepts beacons from browsers: open by design (a page cannot hold a secret),
    so it only takes pages of its own origin or of `origins`, is rate-limited per client address, and
    bounds everything it keeps (see docs/rum.md)."""

    enabled: bool = True
    origins: Sequence[str] = ()  # other origins allowed to post ("https://shop.example"); same-origin always
    rate_limit: str | RateLimit = "120/minute"  # per client address
    max_body: int = MAX_BODY
    settle: float | str = 30.0  # a metric id's deltas are summed this long before it is counted once
    max_pending: int = 20_000  # metric ids awaiting their settle time; beyond, the oldest are counted now
    max_targets: int = 100  # distinct (route, target) per metric and process; beyond, "other"
    max_routes: int = 200  # distinct routes per process; beyond, "other"
    trust_forwarded: bool = False  # take the client address from X-Forwarded-For (behind a proxy)
    allowed_origins: frozenset[str] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        if isinstance(self.rate_limit, str):
            self.rate_limit = RateLimit.parse(self.rate_limit, "rum.rate_limit")
        self.settle = parse_duration("rum.settle", self.settle)
        if not 0 < self.max_body <= 1024 * 1024:
            raise ConfigurationError("rum.max_body", f"{self.max_body} must be within 1 byte and 1 MiB")
        for name in ("max_pending", "max_targets", "max_routes"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"rum.{name}", "must be at least 1")
        origins = set()
        for origin in self.origins:
            clean = origin.strip().rstrip("/").lower()
            if not clean.startswith(("http://", "https://")) or "/" in clean.split("://", 1)[1]:
                raise ConfigurationError(
                    "rum.origins", f"{origin!r} is not an origin like 'https://a.example'"
                )
            origins.add(clean)
        self.allowed_origins = frozenset(origins)
