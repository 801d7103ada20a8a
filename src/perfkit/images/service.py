"""`ImageService`: the image endpoint (a pure ASGI app) and the URLs and markup that point at it.

    images = ImageService(sources=["static/uploads"], cache=cache, keys=["..."])
    app.mount("/img", images)                     # GET /img/<signature>/<options>/<path>
    images.url("products/42.jpg", w=640)          # /img/3q2...Zk/w=640,v=1a2b3c/products/42.jpg

A request is answered in this order: the signature (403), the options (400), the source (404; 403
for a refused remote URL), then the cache: a hit is served, a miss is processed once however many
requests ask at the same time (the cache's single flight, and its lock across processes on Redis)
in the bounded pool (503 when full or past its timeout). Nothing that failed is cached. Results carry
a strong ETag (304 on If-None-Match) and, on signed URLs pinned to a source version, `Cache-Control:
public, max-age=31536000, immutable`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from perfkit.cache import Cache
from perfkit.errors import ConfigurationError, ValueTooLargeError
from perfkit.images import engine
from perfkit.images.asgi import Receive, Scope, Send, header, lifespan
from perfkit.images.config import Limits
from perfkit.images.errors import BadSignatureError, ImageError, ImageTooLargeError, SourceNotFoundError
from perfkit.images.html import Markup
from perfkit.images.negotiate import CONTENT_TYPES, choose_format
from perfkit.images.options import EMPTY, Options, Policy
from perfkit.images.pool import WorkerPool
from perfkit.images.remote import RemoteSource, encode_path
from perfkit.images.signing import UNSIGNED, Signer
from perfkit.images.sources import LocalSource, Located, Source, check_path

__all__ = ["ImageService", "ImageStats"]

IMMUTABLE = b"public, max-age=31536000, immutable"
_SHORT = b"public, max-age=3600"  # unsigned, or a source with no version in the URL


@dataclass
class ImageStats:
    """Counters of one service: requests served, results processed, 304s, refusals (by status)."""

    requests: int = 0
    rendered: int = 0
    placeholders: int = 0
    not_modified: int = 0
    refused: dict[int, int] = field(default_factory=dict)


class ImageService:
    """The image endpoint and its helpers (see the module docstring).

    `keys` sign URLs (the first signs, all verify: rotation); `signed=False` opens the endpoint to
    unsigned URLs (`/img/_/<options>/<path>`), on purpose only. `sources` are folders (or
    `LocalSource`/`RemoteSource` objects), tried in order. `base` is where the app mounts the service,
    for the URLs it makes. Results are cached in `cache` for `ttl` seconds.
    """

    def __init__(
        self,
        sources: Iterable[str | os.PathLike[str] | Source],
        *,
        cache: Cache,
        keys: Sequence[str | bytes] | None = None,
        signed: bool = True,
        base: str = "/img",
        policy: Policy | None = None,
        limits: Limits | None = None,
        ttl: float = 30 * 86400,
    ) -> None:
        self.sources: list[Source] = [
            LocalSource(s) if isinstance(s, str | os.PathLike) else s for s in sources
        ]
        if not self.sources:
            raise ConfigurationError("sources", "at least one folder or source")
        if signed and not keys:
            raise ConfigurationError("keys", "signed URLs need keys (or signed=False, to open the endpoint)")
        self.signer = Signer(keys) if signed and keys else None
        self.cache = cache
        self.base = base.rstrip("/")
        self.policy = policy or Policy()
        self.limits = limits or Limits()
        self.ttl = ttl
        self.pool = WorkerPool(self.limits.workers, self.limits.queue, self.limits.timeout)
        self.markup = Markup(self.url, self.policy)
        self.avif = engine.avif_available()
        self._stats = ImageStats()

    # -- URLs and markup ------------------------------------------------------------------------------

    def url(self, path: str, **options: object) -> str:
        """The (signed) URL of `path` processed with `options` (`w=640, q=75, fit="cover"`, ...);
        a local source's version is pinned into it (`v=`), so an edited file gets a new URL."""
        if path.startswith(("https://", "http://")):
            path = encode_path(path)
        else:
            check_path(path)
            options.setdefault("v", self._version(path))
        canonical = Options.build(self.policy, **options).canonical()
        payload = f"{canonical}/{path}"
        signature = self.signer.sign(payload) if self.signer else UNSIGNED
        return f"{self.base}/{signature}/{canonical}/{quote(path, safe='/:')}"

    def _version(self, path: str) -> str | None:
        for source in self.sources:
            version = source.version(path)
            if version is not None:
                return version
        return None

    def srcset(self, path: str, widths: Iterable[int] | None = None, **options: Any) -> str:
        """`url 320w, url 640w, ...` for `path` over allowed `widths` (see `perfkit.images.html`)."""
        return self.markup.srcset(path, widths, **options)

    def img(self, path: str, alt: str, **options: Any) -> str:
        """An `<img>` with srcset, sizes, loading attributes and the placeholder (see `html.Markup.img`)."""
        return self.markup.img(path, alt, **options)

    def picture(self, path: str, alt: str, **options: Any) -> str:
        """`<picture>` markup: AVIF and WebP `<source>`s, then the `<img>` (see `html.Markup.picture`)."""
        return self.markup.picture(path, alt, **options)

    def preload(self, path: str, **options: Any) -> str:
        """The `Link` header value preloading the LCP image `img(path, alt, priority=True, ...)` shows."""
        return self.markup.preload(path, **options)

    async def placeholder(self, path: str) -> engine.Placeholder:
        """The source's ThumbHash, size and data-URI preview: computed once per source version, cached."""
        if path.startswith(("https://", "http://")):
            path = encode_path(path)
        located = await self._locate(path)
        key = "imgph:" + _digest(f"{located.id}\0{located.version}")

        async def load() -> dict[str, Any]:
            read = await _reader(located)
            ph = await self.pool.run(lambda: engine.placeholder(read(), self.limits))
            self._stats.placeholders += 1
            return {"t": ph.thumbhash, "w": ph.width, "h": ph.height, "d": ph.data_uri}

        value: dict[str, Any] = await self.cache.get_or_set(key, load, self._ttl(located))
        return engine.Placeholder(value["t"], value["w"], value["h"], value["d"])

    def stats(self) -> ImageStats:
        s = self._stats
        return ImageStats(s.requests, s.rendered, s.placeholders, s.not_modified, dict(s.refused))

    def close(self) -> None:
        """Stop the processing pool's threads (jobs still running end on their own)."""
        self.pool.close()

    # -- the endpoint ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})
            return
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _error(send, 405, "only GET and HEAD", [(b"allow", b"GET, HEAD")])
            return
        self._stats.requests += 1
        try:
            await self._serve(scope, send)
        except ImageError as exc:
            refused = self._stats.refused
            refused[exc.status] = refused.get(exc.status, 0) + 1
            await _error(send, exc.status, str(exc))

    async def _serve(self, scope: Scope, send: Send) -> None:
        signature, options_text, path = _split(_relative_path(scope))
        payload = f"{options_text}/{path}"
        if self.signer is not None:
            self.signer.verify(signature, payload)
        elif signature != UNSIGNED:
            raise BadSignatureError(f"this endpoint is unsigned: the signature segment is {UNSIGNED!r}")
        options = Options.parse(options_text, self.policy)
        located = await self._locate(path)
        accept = (header(scope, b"accept") or b"").decode("latin-1")
        fmt = choose_format(options.f, accept, self.avif)
        result = await self._result(located, options, fmt)
        headers = [
            (b"etag", result["e"].encode()),
            (b"cache-control", self._cache_control(options, located)),
            (b"x-content-type-options", b"nosniff"),
        ]
        if options.f == "auto":
            headers.append((b"vary", b"Accept"))
        inm = header(scope, b"if-none-match")
        if inm is not None and _etag_matches(inm, result["e"]):
            self._stats.not_modified += 1
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body: bytes = result["b"]
        headers += [(b"content-type", result["t"].encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _locate(self, path: str) -> Located:
        for source in self.sources:
            located = await source.locate(path, self.limits.max_bytes)
            if located is not None:
                return located
        raise SourceNotFoundError(f"no such image: {path[:200]!r}")

    async def _result(self, located: Located, options: Options, fmt: str) -> dict[str, Any]:
        canonical = options.without_version().canonical()
        key = "img:" + _digest(f"{located.id}\0{located.version}\0{canonical}\0{fmt}")

        async def load() -> dict[str, Any]:
            read = await _reader(located)
            rendered = await self.pool.run(lambda: engine.render(read(), options, fmt, self.limits))
            self._stats.rendered += 1
            etag = '"' + hashlib.blake2b(rendered.body, digest_size=16).hexdigest() + '"'
            return {"b": rendered.body, "t": CONTENT_TYPES[rendered.format], "e": etag}

        try:
            value: dict[str, Any] = await self.cache.get_or_set(key, load, self._ttl(located))
        except ValueTooLargeError:
            raise ImageTooLargeError(
                "the result is larger than the cache's max_value_size: ask for a smaller width or format"
            ) from None
        return value

    def _ttl(self, located: Located) -> float:
        if located.version is None:  # a remote image: no version to key on, so its own TTL
            for source in self.sources:
                if isinstance(source, RemoteSource):
                    return min(self.ttl, source.ttl)
        return self.ttl

    def _cache_control(self, options: Options, located: Located) -> bytes:
        pinned = options.v is not None and options.v == located.version
        return IMMUTABLE if self.signer is not None and pinned else _SHORT


async def _reader(located: Located) -> Callable[[], bytes]:
    """What the pool job calls for the source's bytes: a remote image is fetched first (on the event
    loop), a local file is read in the job itself (off it)."""
    if located.fetch is not None:
        data = await located.fetch()
        return lambda: data
    if located.read is None:
        raise SourceNotFoundError(f"no such image: source {located.id!r} gave no way to read it")
    return located.read


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _relative_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):  # mounted (Starlette keeps the full path, and sets root_path)
        path = path[len(root) :]
    return path


def _split(path: str) -> tuple[str, str, str]:
    parts = path.lstrip("/").split("/", 2)
    if len(parts) != 3 or not parts[2]:
        raise SourceNotFoundError("not an image URL: /<signature>/<options>/<path> expected")
    signature, options, rest = parts
    return signature, options or EMPTY, rest


def _etag_matches(if_none_match: bytes, etag: str) -> bool:
    if if_none_match.strip() == b"*":
        return True
    tags = {t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")[:64]}
    return etag.encode() in tags


async def _error(
    send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), *(extra or [])]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
