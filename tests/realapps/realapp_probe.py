"""A pytest plugin (PYTEST_PLUGINS=realapp_probe) in the app's OWN test run, perfkit wired in.

It only observes: every response an httpx-based test client (Starlette's TestClient) receives is noted
(method, path, status, the Server-Timing header perfkit added), and when the session ends, perfkit's
own view of the same traffic (report routes, route labels) is written to $PERFKIT_REALAPP_PROBE_OUT,
with the framework's route table to compare it against. The app's tests stay exactly as they are.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
from typing import Any

import realapp_side

_records: list[dict[str, Any]] = []


def _note(request: Any, response: Any) -> None:
    _records.append(
        {
            "method": request.method,
            "path": request.url.path,
            "status": response.status_code,
            "auth": "token" if request.headers.get("authorization") else "none",
            **realapp_side.server_timing(response.headers.get("server-timing")),
        }
    )


def _patch(module_name: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return
    for cls, is_async in ((module.Client, False), (module.AsyncClient, True)):
        original = cls.send
        if getattr(original, "_perfkit_probe", False):
            continue
        if is_async:

            @functools.wraps(original)
            async def send_async(self: Any, request: Any, *a: Any, _o: Any = original, **kw: Any) -> Any:
                response = await _o(self, request, *a, **kw)
                _note(request, response)
                return response

            wrapped: Any = send_async
        else:

            @functools.wraps(original)
            def send_sync(self: Any, request: Any, *a: Any, _o: Any = original, **kw: Any) -> Any:
                response = _o(self, request, *a, **kw)
                _note(request, response)
                return response

            wrapped = send_sync
        wrapped._perfkit_probe = True
        cls.send = wrapped


def pytest_configure(config: Any) -> None:
    for name in ("httpx", "httpx2"):
        _patch(name)


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    out = os.environ.get("PERFKIT_REALAPP_PROBE_OUT")
    if not out:
        return
    app = realapp_side.load(os.environ["PERFKIT_REALAPP_APP"])
    handle = realapp_side.handle_of(app)
    routes = realapp_side.app_routes(app)
    for r in _records:
        r["expected"] = realapp_side.expected_template(routes, r["method"], r["path"])
    data: dict[str, Any] = {"routes": routes, "requests": _records, "instrumented": handle is not None}
    if handle is not None:
        data.update(asyncio.run(realapp_side.perfkit_view(handle)))
    realapp_side.dump(out, data)
