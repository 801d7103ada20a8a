"""A run's plan: everything a worker process needs to generate its share of the load (picklable)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from perfkit.bench.scheduler import Stage
from perfkit.bench.target import Endpoint, Target

MAX_DURATION = 24 * 3600.0  # a hard ceiling: no run is unbounded
DEFAULT_MAX_REQUESTS = 50_000_000


@dataclass(frozen=True)
class Plan:
    """What to load and how: a URL `target` or a `scenario` file against `endpoint`."""

    endpoint: Endpoint
    target: Target | None = None
    scenario: str | None = None
    rate: float | None = None  # open model when set (or when stages are per-second)
    users: int = 1  # closed model
    stages: tuple[Stage, ...] = ()
    connections: int = 0  # 0: open model 32, closed model one per user
    duration: float = 10.0
    max_requests: int = DEFAULT_MAX_REQUESTS
    timeout: float = 10.0
    processes: int = 1
    allow_remote: bool = False

    @property
    def open_model(self) -> bool:
        return self.rate is not None or any(s.per_second for s in self.stages)

    @property
    def run_duration(self) -> float:
        return sum(s.duration for s in self.stages) if self.stages else self.duration

    @property
    def connection_count(self) -> int:
        if self.connections:
            return self.connections
        if self.open_model:
            return 32
        peak = max([self.users, *(int(s.target) for s in self.stages)])
        return max(peak, 1)

    def share(self, index: int) -> Plan:
        """This plan's part for worker `index` of `processes`: rates, users, connections and the
        request cap are split so that the parts add up exactly to the whole."""
        n = self.processes

        def part(total: int) -> int:
            return total // n + (1 if index < total % n else 0)

        return replace(
            self,
            rate=self.rate / n if self.rate is not None else None,
            users=part(self.users),
            stages=tuple(
                Stage(s.duration, s.target / n if s.per_second else part(int(s.target)), s.per_second)
                for s in self.stages
            ),
            connections=max(part(self.connection_count), 1),
            max_requests=part(self.max_requests),
            processes=1,
        )
