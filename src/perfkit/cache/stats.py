"""The cache's one metrics hook, and the built-in observer behind `Cache.stats()`.

Every tier operation the cache front performs is reported once, as
`(namespace, tier, op, outcome, seconds)`, to each registered observer; backends count nothing
themselves. The monitoring part adds its own observer (Prometheus, the report) to the same hook.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol

# ops: get, set, delete, incr, invalidate, evict, lock; outcomes: hit, miss, ok, error, dropped
# (dropped: a load's result not stored because its tags were invalidated while it ran)
HIT, MISS, OK, ERROR, DROPPED = "hit", "miss", "ok", "error", "dropped"


class CacheObserver(Protocol):
    """Called for each tier operation; must be fast and must not raise."""

    def __call__(self, namespace: str, tier: str, op: str, outcome: str, seconds: float) -> None: ...


@dataclass(frozen=True)
class TierStats:
    backend: str
    hits: int = 0
    misses: int = 0
    sets: int = 0
    deletes: int = 0
    evictions: int = 0
    errors: int = 0
    latency_avg_ms: float = 0.0

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@dataclass(frozen=True)
class CacheStats:
    """A snapshot: per tier, and overall (a hit in any tier is a hit; a miss is a miss in the last)."""

    namespace: str
    tiers: dict[str, TierStats] = field(default_factory=dict)

    @property
    def hits(self) -> int:
        return sum(t.hits for t in self.tiers.values())

    @property
    def misses(self) -> int:
        last = list(self.tiers.values())[-1] if self.tiers else None
        return last.misses if last else 0

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "namespace": self.namespace,
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": round(self.hit_ratio, 4),
            "tiers": {
                name: {
                    "backend": t.backend,
                    "hits": t.hits,
                    "misses": t.misses,
                    "hit_ratio": round(t.hit_ratio, 4),
                    "sets": t.sets,
                    "deletes": t.deletes,
                    "evictions": t.evictions,
                    "errors": t.errors,
                    "latency_avg_ms": round(t.latency_avg_ms, 4),
                }
                for name, t in self.tiers.items()
            },
        }


class StatsCounter:
    """The default observer: counters and latency sums, per tier."""

    def __init__(self) -> None:
        self.counts: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self._time: defaultdict[str, float] = defaultdict(float)
        self._ops: defaultdict[str, int] = defaultdict(int)

    def __call__(self, namespace: str, tier: str, op: str, outcome: str, seconds: float) -> None:
        self.counts[tier, op, outcome] += 1
        if seconds:
            self._time[tier] += seconds
            self._ops[tier] += 1

    def snapshot(self, namespace: str, backends: dict[str, str]) -> CacheStats:
        tiers = {}
        for tier, backend in backends.items():
            c = self.counts
            ops = self._ops[tier]
            tiers[tier] = TierStats(
                backend=backend,
                hits=c[tier, "get", HIT],
                misses=c[tier, "get", MISS] + c[tier, "get", ERROR],
                sets=c[tier, "set", OK],
                deletes=c[tier, "delete", OK],
                evictions=c[tier, "evict", OK],
                errors=sum(n for (t, _, o), n in list(c.items()) if t == tier and o == ERROR),
                latency_avg_ms=(self._time[tier] / ops * 1000) if ops else 0.0,
            )
        return CacheStats(namespace=namespace, tiers=tiers)

    def reset(self) -> None:
        self.counts.clear()
        self._time.clear()
        self._ops.clear()
