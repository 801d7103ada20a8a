"""The few response helpers the monitoring sub-app needs (it is plain ASGI: no framework)."""

from __future__ import annotations

import json
from typing import Any

from perfkit.redaction import redact
from perfkit.web.types import Send


def _default(value: Any) -> Any:
    if isinstance(value, set | tuple):
        return list(value)
    return str(value)


async def respond(
    send: Send, status: int, body: bytes, content_type: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_json(
    send: Send, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    # every JSON answer (health, report, jobs, errors, the dashboard's data) leaves without credentials
    body = redact(json.dumps(data, default=_default, separators=(",", ":"))).encode()
    await respond(send, status, body, "application/json", [(b"cache-control", b"no-store"), *(headers or [])])


async def error(send: Send, status: int, message: str) -> None:
    extra = [(b"www-authenticate", b'Bearer realm="perfkit"')] if status == 401 else []
    await respond_json(send, status, {"error": message}, extra)
