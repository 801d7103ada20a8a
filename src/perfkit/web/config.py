"""Typed configuration of the web stack, with per-route rules by path pattern or route name.

`WebConfig()` reads `PERFKIT_*` environment variables for anything not passed explicitly. A `Rule`
applies to the requests whose path matches its `path` pattern (`/static/*`, `/items/{id}`) or whose
route name is `name`; the first matching rule wins, so list specific rules before general ones.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from perfkit.config import parse_bool, parse_choice, parse_duration, parse_int, parse_size, setting
from perfkit.errors import ConfigurationError

Scope = dict[str, Any]
KeyFunc = Callable[[Scope], "str | Awaitable[str | None] | None"]

_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}  # fmt: skip
_LIMIT = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*([a-z]+?)s?\s*$")


@dataclass(frozen=True)
class RateLimit:
    """`limit` requests per `period` seconds (GCRA: a burst of `limit`, then one per period/limit)."""

    limit: int
    period: float

    @classmethod
    def parse(cls, text: str, setting_name: str = "rate_limit") -> RateLimit:
        """From `100/minute`, `10 per second`, `1000/5m`."""
        match = _LIMIT.match(text.lower())
        if not match or match.group(3) not in _PERIODS or int(match.group(1)) < 1:
            raise ConfigurationError(
                setting_name, f"{text!r} is not a rate; use e.g. '100/minute', '10/second', '1000/5m'"
            )
        count = int(match.group(2) or 1)
        return cls(int(match.group(1)), count * _PERIODS[match.group(3)])

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g}s"


@dataclass(frozen=True)
class Rule:
    """Settings for the routes a pattern or a route name selects; `None` means 'use the default'."""

    path: str | None = None
    name: str | None = None
    methods: frozenset[str] | None = None
    cache_control: str | None = None
    cache_ttl: float | None = None  # response cache for this route when set
    # request headers that select a cached variant (("authorization",): an entry per token)
    cache_vary: tuple[str, ...] = ()
    # an entry per user: True keys by `WebConfig.user(scope)`, a callable by what it returns for the scope
    cache_per_user: bool | KeyFunc = False
    # the response is the same for every caller: requests with credentials share the one entry (a hit skips
    # the app's authentication); without it they bypass the cache unless keyed per user (web/cache_key.py)
    cache_public: bool = False
    cache_query: bool = True
    cache_tags: tuple[str, ...] = ()
    # ORM dependencies (`Ticket`, `Ticket.id == "{ticket_id}"`) as perfkit.cache.orm tags, so the
    # CacheInvalidator evicts the cached response when those rows change
    cache_depends_on: tuple[Any, ...] = ()
    coalesce: bool | None = None
    rate_limit: RateLimit | str | None = None
    rate_class: str | None = None  # routes sharing a class share one budget
    compress: bool | None = None
    etag: bool | None = None

    def __post_init__(self) -> None:
        if self.path is None and self.name is None:
            raise ConfigurationError("rules", "a rule needs a path pattern or a route name")
        if isinstance(self.rate_limit, str):
            object.__setattr__(self, "rate_limit", RateLimit.parse(self.rate_limit, "rules.rate_limit"))
        if self.methods is not None:
            object.__setattr__(self, "methods", frozenset(m.upper() for m in self.methods))
        vary: Any = self.cache_vary  # checked: a bare string would be taken letter by letter
        if isinstance(vary, str) or not all(isinstance(h, str) for h in vary):
            raise ConfigurationError(
                "rules.cache_vary", f"{self.cache_vary!r} is not a tuple of header names"
            )
        object.__setattr__(self, "cache_vary", tuple(h.lower() for h in self.cache_vary))
        if not isinstance(self.cache_per_user, bool) and not callable(self.cache_per_user):
            raise ConfigurationError(
                "rules.cache_per_user",
                f"{self.cache_per_user!r} is neither True/False nor a function of the scope",
            )
        if self.cache_public and self.cache_per_user:
            raise ConfigurationError("rules.cache_public", "a rule is either public or per user, not both")

    @property
    def limit(self) -> RateLimit | None:
        return self.rate_limit if isinstance(self.rate_limit, RateLimit) else None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """`/items/{id}` matches one segment per parameter; `*` matches anything (also `/`, and control
    characters: a percent-decoded `%0A` must not move a path out of its rule). The whole path must match:
    `\\Z`, not `$`, which would also accept a trailing newline."""
    out, pos = [], 0
    for match in re.finditer(r"\{[^}/]+\}|\*", pattern):
        out.append(re.escape(pattern[pos : match.start()]))
        out.append(".*" if match.group() == "*" else "[^/]+")
        pos = match.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _rate(name: str, raw: str) -> RateLimit:
    return RateLimit.parse(raw, name)


_ORIGIN = re.compile(r"[a-z][a-z0-9+.\-]*://(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


def parse_origins(name: str, raw: str | Sequence[str]) -> tuple[str, ...]:
    """Origins from `"*"`, `"https://a.example, https://b.example"` or a sequence of them."""
    items: list[Any] = raw.split(",") if isinstance(raw, str) else list(raw)
    origins = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigurationError(name, f"{item!r} is not an origin string")
        origin = item.strip()
        if origin and origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigurationError(
                name, f"{origin!r} is not an origin; use '*' or scheme://host[:port] (no path, no '/' at the "
                "end), e.g. 'https://app.example.com'"
            )  # fmt: skip
        if origin:
            origins.append(origin)
    if "*" in origins and len(origins) > 1:
        raise ConfigurationError(name, "'*' already allows every origin; give it alone or list origins")
    return tuple(origins)


@dataclass
class WebConfig:
    """Everything `perfkit.instrument()` and the middleware read; env vars fill what is not given."""

    rules: Sequence[Rule] = ()
    # timing
    server_timing: bool | None = None
    request_id_header: str = "x-request-id"
    # origins whose pages may read Server-Timing (Resource Timing API); PERFKIT_TIMING_ALLOW_ORIGIN, off
    timing_allow_origin: str | Sequence[str] | None = None
    slow_request: float | None = None  # seconds; PERFKIT_SLOW_REQUEST, default 1s
    # compression
    compress: bool | None = None
    compress_min_size: int | None = None  # PERFKIT_COMPRESS_MIN_SIZE, default 500 bytes
    gzip_level: int = 5
    brotli_quality: int = 4
    zstd_level: int = 3
    # conditional
    etag: bool | None = None
    # rate limiting
    rate_limit: RateLimit | str | None = None  # default for every route; PERFKIT_RATE_LIMIT
    rate_limit_url: str | None = None  # PERFKIT_RATE_LIMIT_URL, default memory://
    rate_limit_key: KeyFunc | None = None  # client identity; default: client IP
    rate_limit_fail: str | None = None  # "open" | "closed"; PERFKIT_RATE_LIMIT_FAIL
    rate_limit_timeout: float = 0.25  # seconds to wait for Redis before failing open/closed
    # response cache and coalescing
    cache_ttl: float | None = None  # default TTL for routes with cache rules; PERFKIT_RESPONSE_CACHE_TTL
    cache_max_body: int = 1_048_576
    user: KeyFunc | None = None  # who the request is for (per-user cache keys, rate limit by user)
    # request headers that carry credentials: a request with one bypasses the response cache and coalescing
    # unless its rule keys on it (cache_vary), is per user, or is public
    credential_headers: Sequence[str] = ("authorization", "cookie")
    coalesce: bool | None = None
    # metrics
    route_name: Callable[[Scope], str] | None = None  # for plain ASGI apps without a router
    exclude: Sequence[str] = ()  # path patterns that bypass the whole stack (e.g. "/perf/*")
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.server_timing = setting("server_timing", self.server_timing, True, parse_bool)
        self.timing_allow_origin = parse_origins(
            "timing_allow_origin", setting("timing_allow_origin", self.timing_allow_origin, (), parse_origins)
        )
        self.slow_request = setting("slow_request", self.slow_request, 1.0, parse_duration)
        self.compress = setting("compress", self.compress, True, parse_bool)
        self.compress_min_size = setting("compress_min_size", self.compress_min_size, 500, parse_size)
        self.etag = setting("etag", self.etag, True, parse_bool)
        self.coalesce = setting("coalesce", self.coalesce, True, parse_bool)
        if isinstance(self.rate_limit, str):
            self.rate_limit = RateLimit.parse(self.rate_limit)
        self.rate_limit = setting("rate_limit", self.rate_limit, None, _rate)
        self.rate_limit_url = setting("rate_limit_url", self.rate_limit_url, "memory://", lambda n, r: r)
        fail = setting("rate_limit_fail", self.rate_limit_fail, "open", lambda n, r: r)
        self.rate_limit_fail = parse_choice("rate_limit_fail", fail, ["open", "closed"])
        self.cache_ttl = setting("response_cache_ttl", self.cache_ttl, 300.0, parse_duration)
        for name in ("gzip_level", "brotli_quality", "zstd_level"):
            parse_int(name, getattr(self, name), minimum=0)
        self.request_id_header = self.request_id_header.lower()
        if isinstance(self.credential_headers, str) or not all(
            isinstance(h, str) and h for h in self.credential_headers
        ):
            raise ConfigurationError(
                "credential_headers", f"{self.credential_headers!r} is not a sequence of header names"
            )
        self.credential_names = tuple(h.lower().encode("latin-1") for h in self.credential_headers)
        for rule in self.rules:
            if rule.cache_per_user is True and self.user is None:
                raise ConfigurationError(
                    "rules.cache_per_user",
                    f"the rule for {rule.path or rule.name!r} caches per user but WebConfig.user is not set; "
                    "pass user=<function of the scope> (or give the rule its own: cache_per_user=<function>)",
                )
        self._patterns = [(compile_pattern(r.path) if r.path else None, r) for r in self.rules]
        self._exclude = [compile_pattern(p) for p in self.exclude]

    @property
    def timing_allow_origin_header(self) -> bytes | None:
        """The `Timing-Allow-Origin` value, or None when no origin is allowed (the default)."""
        origins = self.timing_allow_origin
        return ", ".join(origins).encode("ascii") if origins else None

    @property
    def default_limit(self) -> RateLimit | None:
        return self.rate_limit if isinstance(self.rate_limit, RateLimit) else None

    def excluded(self, path: str) -> bool:
        return any(p.match(path) for p in self._exclude)

    def match(self, method: str, path: str, name: str | None) -> Rule | None:
        for pattern, rule in self._patterns:
            if rule.methods is not None and method not in rule.methods:
                continue
            if (pattern is not None and pattern.match(path)) or (name is not None and rule.name == name):
                return rule
        return None

    @property
    def needs_names(self) -> bool:
        return any(r.name is not None for r in self.rules)
