"""Signed HTTP callbacks, as the Standard Webhooks spec signs them (https://www.standardwebhooks.com).

What the service POSTs to an app is signed here: callback job types' jobs and HTTP loaders' batches
(`signed_post` makes the bytes and headers; `require` refuses one without a secret unless allowed).
Each callback carries `webhook-id` (the job's id: the same on every attempt, for the receiver's
idempotency), `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`:
`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per configured secret, space-separated (so a
secret is rotated by adding the new one first, then removing the old one once the app has it). A secret
is `whsec_<base64>` (the spec's form, what Standard Webhooks libraries take) of 24 to 64 random bytes:

    python -c "import base64, os; print('whsec_' + base64.b64encode(os.urandom(32)).decode())"

Secrets are never put in a message: an error says which setting and line is wrong, not what it holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from perfkit.errors import ConfigurationError

PREFIX = "whsec_"
_MIN, _MAX = 24, 64  # bytes of key, as the spec recommends
_WAYS = "--callback-secret-file (or PERFKIT_SERVE_CALLBACK_SECRET_FILE, PERFKIT_SERVE_CALLBACK_SECRET)"
log = logging.getLogger("perfkit.serve")


@dataclass(frozen=True)
class Secrets:
    """The keys a callback is signed with (newest first); never shown by `repr`."""

    keys: tuple[bytes, ...] = field(default=(), repr=False)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def sign(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """The `webhook-signature` value: `v1,<base64>` per key, space-separated."""
        content = f"{msg_id}.{timestamp}.".encode() + body
        return " ".join(
            "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
            for key in self.keys
        )

    def headers(self, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
        """The three webhook headers for `body` sent now (or at `now`, Unix seconds)."""
        timestamp = int(time.time() if now is None else now)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.sign(msg_id, timestamp, body),
        }


def parse_secret(setting: str, text: str) -> bytes:
    """The key of `whsec_<base64>` (or bare base64); a bad one is refused without echoing it."""
    raw = text.strip().removeprefix(PREFIX)
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(setting, "a secret is whsec_ followed by base64") from None
    if not _MIN <= len(key) <= _MAX:
        raise ConfigurationError(
            setting, f"a secret is {_MIN} to {_MAX} random bytes (this one is {len(key)})"
        )
    return key


def read_secrets(setting: str, path: str) -> Secrets:
    """The secrets of a file, newest first, one a line (`#` comments and blank lines skipped)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except OSError as exc:
        raise ConfigurationError(setting, f"cannot read {path}: {exc.strerror}") from None
    keys = []
    for number, line in enumerate(lines, 1):
        if line and not line.startswith("#"):
            keys.append(parse_secret(f"{setting} ({path}, line {number})", line))
    if not keys:
        raise ConfigurationError(setting, f"{path} holds no secret")
    return Secrets(tuple(keys))


def resolve_secrets(path: str | None, env_file: str, env_value: str) -> Secrets:
    """The secrets from `path`, else the file named by `$env_file`, else `$env_value` (comma-separated)."""
    path = path or os.environ.get(env_file)
    if path:
        return read_secrets("callback_secret_file", path)
    text = os.environ.get(env_value, "")
    keys = [parse_secret(env_value, part) for part in text.split(",") if part.strip()]
    return Secrets(tuple(keys))


def require(secrets: Secrets, what: str, allow_unsigned: bool) -> None:
    """Refuse `what` (`callback type 'x'`, `loader 'y'`) when it has no secret, unless `allow_unsigned`
    (then it is sent unsigned, with a warning now, at start-up)."""
    if secrets:
        return
    if not allow_unsigned:
        raise ConfigurationError(
            "callback_secret_file",
            f"{what} has no signing secret, so its app cannot tell the service's calls from anyone's: "
            f"give {_WAYS} or secret_file= on it, or --allow-unsigned-callbacks",
        )
    log.warning("%s POSTs unsigned (--allow-unsigned-callbacks)", what)


def signed_post(secrets: Secrets, msg_id: str, body: Any) -> tuple[bytes, dict[str, str]]:
    """The JSON bytes of `body` and the headers to POST them with: the webhook headers too when there
    are secrets (the bytes signed are the bytes sent)."""
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = {"content-type": "application/json"}
    if secrets:
        headers.update(secrets.headers(msg_id, data))
    return data, headers
