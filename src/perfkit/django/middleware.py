"""Placeholder: the middleware work of issue 16 fills this in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class PerfkitMiddleware:
    """Passes requests through unchanged (sync and async capable)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)
