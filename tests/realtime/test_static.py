"""The JavaScript client as a static asset: small, cached for a year under its hashed name, revalidated
under its plain name, gzipped once, and an ES module variant of the same code."""

from __future__ import annotations

import gzip

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from perfkit.realtime.static import ClientScript, source

GZIP_LIMIT = 5 * 1024


def test_client_is_under_five_kilobytes_gzipped() -> None:
    """`gzip -9` of perfkit-realtime.js is under 5 kB (the issue's budget for the browser client)."""
    size = len(gzip.compress(source(), 9))
    assert 1000 < size < GZIP_LIMIT, size


async def test_served_with_etag_cache_control_and_gzip() -> None:
    """Mounted in Starlette: the plain name is `no-cache` with an ETag (304 when unchanged), the hashed
    name is immutable, gzip goes out when accepted, HEAD has no body, unknown files are 404."""
    script = ClientScript()
    app = Starlette(routes=[Mount("/realtime", script)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        plain = await client.get("/realtime/perfkit-realtime.js", headers={"accept-encoding": "gzip"})
        assert plain.status_code == 200
        assert plain.headers["content-type"] == "text/javascript; charset=utf-8"
        assert plain.headers["cache-control"] == "no-cache"
        assert plain.headers["content-encoding"] == "gzip"
        assert plain.content == source()  # httpx decoded the gzip body
        again = await client.get(
            "/realtime/perfkit-realtime.js", headers={"if-none-match": plain.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
        hashed = await client.get(f"/realtime/{script.path('js')}", headers={"accept-encoding": "identity"})
        assert hashed.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "content-encoding" not in hashed.headers and hashed.content == source()
        assert hashed.headers["etag"] == plain.headers["etag"]
        module = await client.get(f"/realtime/{script.path('mjs')}")
        assert module.content.startswith(source()) and b"export default PerfkitRealtime;" in module.content
        assert module.headers["etag"] != plain.headers["etag"]
        head = await client.head("/realtime/perfkit-realtime.mjs")
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
        assert (await client.get("/realtime/other.js")).status_code == 404
        assert (await client.post("/realtime/perfkit-realtime.js")).status_code == 405
