"""Credentials out of everything perfkit shows: one function, `redact`, for URLs and driver messages.

Every place that puts a URL or a driver's message in front of a person (a `repr`, a log line, an
error, the health checks, the report, the dashboard) passes it through `redact`; `PerfkitError`
does so for every message it carries. It has no perfkit imports, so anything can use it.
"""

from __future__ import annotations

import re

REDACTED = "***"
# a parameter whose name says it holds a secret: password, pass, pwd, auth, token, secret, signature,
# credentials, and any name ending in "key" (api_key, apikey, access_key, pickle_key; not max_keys)
_SECRET_NAME = re.compile(r"pass|pwd|auth|token|secret|credential|signature|key$|^sig$", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
_PAIR = re.compile(r"(?<![\w.\-])([A-Za-z][\w.\-]*)=('[^']*'|\"[^\"]*\"|[^&\s'\"]*)")


def _redact_userinfo(url: str) -> str:
    """`scheme://user:***@host...`: the password of a URL's userinfo replaced (the user is kept)."""
    scheme, _, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:end]
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:{REDACTED}@{host}{rest[end:]}"


def _redact_pair(match: re.Match[str]) -> str:
    name, value = match.group(1), match.group(2)
    if not value or not _SECRET_NAME.search(name):
        return match.group()
    return f"{name}={REDACTED}"


def redact(text: str) -> str:
    """`text` with every credential it carries replaced by `***`, fit for logs, errors, reprs and any
    page or report: the password of each URL's userinfo (`redis://user:***@host`) and the value of
    every parameter named like a secret (`?password=`, `pass=`, `auth=`, `token=`, `access_token=`,
    `secret=`, `api_key=`, ... in a query string or a `key=value` connection string).

    The one redaction function of perfkit: everything that shows a URL or a driver's message uses it."""
    if "://" in text:
        text = _URL.sub(lambda m: _redact_userinfo(m.group()), text)
    if "=" in text:
        text = _PAIR.sub(_redact_pair, text)
    return text
