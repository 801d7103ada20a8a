"""The dashboard's static files: one HTML page, one script, one stylesheet; no framework, no chart library.

Assets are content-hashed (`app.<sha>.js`) and served with a strong ETag and
`Cache-Control: public, max-age=31536000, immutable`; the page itself with `no-cache` and an ETag, so a
new release is picked up on the next load. Each file is gzipped once, at first use.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

from perfkit.monitor.http import respond
from perfkit.web.headers import header
from perfkit.web.types import Scope, Send

_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "html": "text/html; charset=utf-8",
}
IMMUTABLE = b"public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: bytes
    content_type: str
    cache_control: bytes

    @classmethod
    def of(cls, body: bytes, kind: str, cache_control: bytes) -> Asset:
        etag = b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"'
        return cls(body, gzip.compress(body, 9, mtime=0), etag, _TYPES[kind], cache_control)


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


class Assets:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.files: dict[str, Asset] = {}
        names = {}
        for name in ("app.js", "app.css"):
            body = _read(name)
            stem, ext = name.rsplit(".", 1)
            hashed = f"{stem}.{hashlib.sha256(body).hexdigest()[:12]}.{ext}"
            names[name] = hashed
            self.files[f"/assets/{hashed}"] = Asset.of(body, ext, IMMUTABLE)
        # the RUM snippet (perfkit.monitor.rum): `/rum.js` revalidated, its hashed name immutable
        rum = resources.files("perfkit.monitor.rum").joinpath("perfkit-rum.js").read_bytes()
        self.rum_path = f"/assets/perfkit-rum.{hashlib.sha256(rum).hexdigest()[:12]}.js"
        self.files["/rum.js"] = Asset.of(rum, "js", b"no-cache")
        self.files[self.rum_path] = Asset.of(rum, "js", IMMUTABLE)
        page = _read("index.html").decode()
        page = page.replace("{{prefix}}", prefix).replace("{{app.js}}", names["app.js"])
        page = page.replace("{{app.css}}", names["app.css"])
        self.files["/"] = Asset.of(page.encode(), "html", b"no-cache")

    def total_gzipped(self) -> int:
        return sum(len(a.gzipped) for a in self.files.values())

    async def serve(self, path: str, scope: Scope, send: Send) -> None:
        asset = self.files.get(path)
        if asset is None:
            await respond(send, 404, b"not found", "text/plain")
            return
        headers = [
            (b"etag", asset.etag),
            (b"cache-control", asset.cache_control),
            (b"vary", b"accept-encoding"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if path == "/":
            headers.append(
                (
                    b"content-security-policy",
                    b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
                )
            )
        match = header(scope, b"if-none-match")
        if match is not None and asset.etag in [t.strip().removeprefix(b"W/") for t in match.split(b",")]:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        accepted = header(scope, b"accept-encoding") or b""
        body = asset.body
        if b"gzip" in accepted:
            body = asset.gzipped
            headers.append((b"content-encoding", b"gzip"))
        if scope["method"] == "HEAD":
            headers.append((b"content-length", str(len(body)).encode()))
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", asset.content_type.encode()), *headers],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await respond(send, 200, body, asset.content_type, headers)
