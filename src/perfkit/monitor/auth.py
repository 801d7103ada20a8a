"""Bearer-token access to the monitoring endpoints, compared in constant time.

Liveness is always open. Reads need the token unless the monitor is configured `open=True`; actions
(cancel, retry, clear cache, mark deploy) always need it, so an open monitor without a token refuses them.
With no token configured and not open, everything but liveness answers 401.
"""

from __future__ import annotations

import hmac

from perfkit.web.headers import header
from perfkit.web.types import Scope


def presented(scope: Scope) -> bytes | None:
    value = header(scope, b"authorization")
    if value is None or value[:7].lower() != b"bearer ":
        return None
    return value[7:].strip()


def allowed(scope: Scope, token: str | None, *, open_reads: bool, action: bool) -> bool:
    if open_reads and not action:
        return True
    if not token:
        return False
    given = presented(scope)
    return given is not None and hmac.compare_digest(given, token.encode())
