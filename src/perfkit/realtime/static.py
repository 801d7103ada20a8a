"""The browser client, served: `app.mount("/realtime", ClientScript())` answers

    /perfkit-realtime.js              a classic script (sets `PerfkitRealtime` on `window`)
    /perfkit-realtime.mjs             the same code as an ES module (`import PerfkitRealtime from ...`)
    /perfkit-realtime.<hash>.js|.mjs  the same, content-addressed: cached for a year (`immutable`)

The plain names are `no-cache` with a strong ETag (a 304 while the file is unchanged, the new version
after an upgrade); `script.path("js")` gives the hashed name for a page's `<script src>`. Each body is
gzipped once (level 9) and sent gzipped when the request accepts it, so perfkit's compression layer,
if mounted, passes it through untouched.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

from perfkit.web.compression import negotiate
from perfkit.web.conditional import etag_matches
from perfkit.web.headers import header
from perfkit.web.types import Receive, Scope, Send

NAME = "perfkit-realtime"
TYPE = b"text/javascript; charset=utf-8"
IMMUTABLE = b"public, max-age=31536000, immutable"
REVALIDATE = b"no-cache"
MODULE_TAIL = "\nexport default PerfkitRealtime;\nexport { PerfkitRealtime };\n"


@dataclass(frozen=True)
class Script:
    body: bytes
    gzipped: bytes
    etag: bytes

    @classmethod
    def of(cls, body: bytes) -> Script:
        etag = b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"'
        return cls(body, gzip.compress(body, 9, mtime=0), etag)


def source() -> bytes:
    """The client's source text (the classic script)."""
    return resources.files("perfkit.realtime").joinpath("static", f"{NAME}.js").read_bytes()


class ClientScript:
    """An ASGI app serving the JavaScript client (see the module docstring)."""

    def __init__(self) -> None:
        classic = source()
        scripts = {"js": Script.of(classic), "mjs": Script.of(classic + MODULE_TAIL.encode())}
        self.hashed = {ext: f"{NAME}.{s.etag[1:13].decode()}.{ext}" for ext, s in scripts.items()}
        self.files: dict[str, tuple[Script, bytes]] = {}
        for ext, script in scripts.items():
            self.files[f"/{NAME}.{ext}"] = (script, REVALIDATE)
            self.files[f"/{self.hashed[ext]}"] = (script, IMMUTABLE)

    def path(self, kind: str = "js") -> str:
        """The content-addressed file name (`"js"` classic script, `"mjs"` module), for a page's URL."""
        return self.hashed[kind]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope.get("path", "/")
        root = scope.get("root_path", "")
        if root and path.startswith(root):  # mounted: Starlette keeps the prefix in `path`
            path = path[len(root) :]
        found = self.files.get(path)
        if found is None or scope.get("method") not in ("GET", "HEAD"):
            status, text = (404, b"not found") if found is None else (405, b"GET only")
            plain = [(b"content-type", b"text/plain")]
            await send({"type": "http.response.start", "status": status, "headers": plain})
            await send({"type": "http.response.body", "body": text})
            return
        script, cache_control = found
        headers = [
            (b"etag", script.etag),
            (b"cache-control", cache_control),
            (b"vary", b"accept-encoding"),
            (b"x-content-type-options", b"nosniff"),
        ]
        match = header(scope, b"if-none-match")
        if match is not None and etag_matches(match, script.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = script.body
        if negotiate(header(scope, b"accept-encoding"), ("gzip",)) == "gzip":
            body = script.gzipped
            headers.append((b"content-encoding", b"gzip"))
        headers += [(b"content-type", TYPE), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
