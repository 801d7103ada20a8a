"""tests/realtime/_app.py's app plus what a browser needs: the JavaScript client mounted at /realtime and a
test page at /page that runs it from its query (`?channel=a&channel=b&ws=/ws&sse=/events&token=alice`,
`module=1` loads the ES module instead of the classic script, `dead=<ms>` the silence after
which the client gives a connection up). Every event the client emits is kept
in `window.events`, the client itself is `window.rt`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route

from perfkit.realtime import ClientScript

from . import _app

SETUP = """
  const q = new URLSearchParams(location.search);
  window.events = [];
  const rt = (window.rt = new PerfkitRealtime({
    url: q.has("ws") ? q.get("ws") : "/ws", sse: q.get("sse"), channels: q.getAll("channel"),
    params: { token: q.get("token") || "alice" }, backoff: [50, 400],
    deadAfter: Number(q.get("dead")) || undefined, retries: Number(q.get("retries")) || undefined,
  }));
  for (const name of ["message", "resync", "state", "error", "close", "closed", "open", "subscribed"]) {
    rt.on(name, (value) => window.events.push([name, value]));
  }
  document.title = "ready";
"""
PAGE = """<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>loading</title>
<script src="/realtime/perfkit-realtime.js"></script><script>{setup}</script>"""
MODULE_PAGE = """<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>loading</title>
<script type="module">import PerfkitRealtime from "/realtime/perfkit-realtime.mjs";{setup}</script>"""


async def page(request: Request) -> HTMLResponse:
    template = MODULE_PAGE if request.query_params.get("module") else PAGE
    return HTMLResponse(template.replace("{setup}", SETUP))


def from_environment() -> Starlette:
    """The test app of `_app.from_environment()` with the client and the page added."""
    base = _app.from_environment()
    return Starlette(
        routes=[*base.routes, Mount("/realtime", ClientScript()), Route("/page", page)],
        lifespan=base.router.lifespan_context,
    )
