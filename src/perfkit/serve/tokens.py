"""Bearer tokens with scopes and a rate limit each, from a file or the environment.

One line per token: `NAME TOKEN SCOPES [RATE]`, e.g. `app 3f9c... read,write 1000/second`; `#` starts
a comment. `PERFKIT_SERVE_TOKENS` holds the same lines separated by newlines or `;`. Scopes nest:
`admin` includes `write`, `write` includes `read`. A presented token is compared with every configured
one by `hmac.compare_digest` (no early exit, so the time taken does not depend on which one matched
or how much of it did). Each token's requests go through perfkit's rate limiter (GCRA).
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from perfkit.errors import ConfigurationError
from perfkit.serve.problems import Problem
from perfkit.web.config import RateLimit
from perfkit.web.ratelimit.backend import GcraTable

SCOPES = ("read", "write", "admin")
_RANK = {name: rank for rank, name in enumerate(SCOPES)}
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Token:
    name: str
    secret: bytes
    scope: str  # the highest scope granted: admin > write > read
    rate: RateLimit | None

    def grants(self, needed: str) -> bool:
        return _RANK[self.scope] >= _RANK[needed]


def parse_tokens(text: str, source: str) -> list[Token]:
    tokens: list[Token] = []
    names: set[str] = set()
    for number, raw in enumerate(text.replace(";", "\n").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source} line {number}"
        fields = line.split()
        if len(fields) not in (3, 4):
            raise ConfigurationError("tokens", f"{where}: expected 'NAME TOKEN SCOPES [RATE]'")
        name, secret, scopes = fields[:3]
        if len(secret) < MIN_TOKEN_LENGTH:
            raise ConfigurationError(
                "tokens", f"{where}: token {name!r} is shorter than {MIN_TOKEN_LENGTH} characters"
            )
        granted = [s.strip() for s in scopes.split(",") if s.strip()]
        unknown = [s for s in granted if s not in _RANK]
        if unknown or not granted:
            raise ConfigurationError("tokens", f"{where}: scopes {scopes!r}: use read, write, admin")
        if name in names:
            raise ConfigurationError("tokens", f"{where}: token name {name!r} is used twice")
        names.add(name)
        rate = RateLimit.parse(fields[3], "tokens") if len(fields) == 4 else None
        tokens.append(Token(name, secret.encode(), max(granted, key=_RANK.__getitem__), rate))
    return tokens


def load_tokens(path: str | None = None, env: str = "PERFKIT_SERVE_TOKENS") -> list[Token]:
    """The tokens of `path` (a token file) and of the environment variable `env`."""
    tokens: list[Token] = []
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError("token_file", f"cannot read {path}: {exc.strerror}") from None
        tokens += parse_tokens(text, path)
    if os.environ.get(env):
        tokens += parse_tokens(os.environ[env], env)
    if len({t.name for t in tokens}) != len(tokens):
        raise ConfigurationError("tokens", "a token name is used in both the file and the environment")
    return tokens


class Authenticator:
    """Who presented the request (a token), whether their scope allows it, and their rate limit."""

    def __init__(self, tokens: list[Token], default_rate: RateLimit | None = None) -> None:
        self.tokens = tokens
        self.default_rate = default_rate
        self.table = GcraTable()

    def identify(self, authorization: bytes | None) -> Token:
        if authorization is None or authorization[:7].lower() != b"bearer ":
            raise Problem(
                401, "unauthorized", "a bearer token is required (Authorization: Bearer <token>)",
                headers=[(b"www-authenticate", b'Bearer realm="perfkit"')],
            )  # fmt: skip
        given = authorization[7:].strip()
        found: Token | None = None
        for token in self.tokens:  # every token is compared: no early exit
            if hmac.compare_digest(given, token.secret):
                found = token
        if found is None:
            raise Problem(
                401, "unauthorized", "the bearer token is not valid",
                headers=[(b"www-authenticate", b'Bearer realm="perfkit", error="invalid_token"')],
            )  # fmt: skip
        return found

    def check(self, authorization: bytes | None, needed: str) -> Token:
        """The token, if it may do what needs `needed` now; else the problem (401, 403 or 429)."""
        token = self.identify(authorization)
        if not token.grants(needed):
            raise Problem(
                403, "forbidden", f"token {token.name!r} has scope {token.scope!r}; this needs {needed!r}"
            )
        rate = token.rate or self.default_rate
        if rate is not None:
            decision = self.table.hit_sync(token.name, rate)
            if not decision.allowed:
                wait = max(1, round(decision.retry_after + 0.499))
                raise Problem(
                    429, "rate-limited", f"token {token.name!r} is over its rate limit of {rate}",
                    headers=[
                        (b"retry-after", str(wait).encode()),
                        (b"ratelimit-policy", f'"token";q={rate.limit};w={rate.period:g}'.encode()),
                        (b"ratelimit", f'"token";r=0;t={wait}'.encode()),
                    ],
                )  # fmt: skip
        return token
