"""Retry policies: how long to wait before attempt `n + 1` after attempt `n` failed.

`exponential` (the default) doubles from `base` up to `cap`, with full jitter so that a burst of
failures does not come back as a burst; `fixed` waits the same time; any callable
`(attempt) -> seconds` is a custom policy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from perfkit.config import parse_duration
from perfkit.errors import ConfigurationError

MAX_CUSTOM_DELAY = 365 * 86400.0  # a custom policy's delay is clamped to [0, 1 year]; NaN means 0


class RetryPolicy:
    def delay(self, attempt: int) -> float:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class Exponential(RetryPolicy):
    base: float = 1.0
    cap: float = 300.0
    jitter: bool = True

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** max(0, attempt - 1))
        return random.uniform(ceiling / 2, ceiling) if self.jitter else ceiling


@dataclass(frozen=True)
class Fixed(RetryPolicy):
    seconds: float = 1.0

    def delay(self, attempt: int) -> float:
        return self.seconds


@dataclass(frozen=True)
class Custom(RetryPolicy):
    func: Callable[[int], float]

    def delay(self, attempt: int) -> float:
        value = float(self.func(attempt))
        if math.isnan(value):  # a bad policy still retries: at once, rather than never
            return 0.0
        return min(MAX_CUSTOM_DELAY, max(0.0, value))


BackoffSpec = str | float | int | RetryPolicy | Callable[[int], float]


def make_policy(spec: BackoffSpec, setting: str = "backoff") -> RetryPolicy:
    """A policy from `"exponential"`, `"fixed"`, a number of seconds (fixed), a policy or a callable."""
    if isinstance(spec, RetryPolicy):
        return spec
    if isinstance(spec, bool):
        raise ConfigurationError(setting, f"{spec!r} is not a backoff; use 'exponential', 'fixed' or seconds")
    if isinstance(spec, int | float):
        return Fixed(parse_duration(setting, spec))
    if spec == "exponential":
        return Exponential()
    if spec == "fixed":
        return Fixed()
    if callable(spec) and not isinstance(spec, str):
        return Custom(spec)
    raise ConfigurationError(
        setting, f"{spec!r} is not a backoff; use 'exponential', 'fixed', seconds or a callable"
    )
