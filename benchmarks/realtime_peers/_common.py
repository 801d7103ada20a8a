"""What every peer server reads alike: the broker URL and the `?channel=` names of a connection."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

REDIS = os.environ.get("RT_BENCH_REDIS", "redis://127.0.0.1:6379/14")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def channels_of(scope: Scope) -> list[str]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1")).get("channel", [])
