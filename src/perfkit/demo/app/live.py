"""The demo's live page: `/live?org=1` follows an organization's tickets and its export jobs through
the real-time hub, with no polling.

Channels: `org:<id>` gets `{"ticket", "status", "title"}` after every committed status change
(`hub.publish_on_commit` in the write endpoint); `job:<id>` gets the job's events (`hub.follow_jobs`:
enqueued, started, progress, succeeded, ...). The page loads the organization's dashboard once, then
applies updates; on a `resync` it loads it again.

Across processes (the app and `perfkit worker`) the hub needs Redis: `perfkit demo --redis URL`. On the
embedded default the hub is `memory://`: ticket updates are live (the app publishes them), job events
only for jobs run in the app's own process; the page then also reads the job's state until it ends.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.routing import Mount, Route, WebSocketRoute

from perfkit.demo.app import vitals
from perfkit.realtime import ClientScript, Hub

CHANNELS = ("org:", "job:")  # what a page may follow (the demo has no users: anyone, these only)


def org_channel(org_id: int) -> str:
    return f"org:{org_id}"


def may_follow(user: Any, channel: str) -> bool:
    return channel.startswith(CHANNELS)


def add_live(app: FastAPI, hub: Hub) -> None:
    """`/live` (the page), `/live/ws` and `/live/events` (the hub), `/live/static/` (the client),
    `/live/vendor/web-vitals.js` (the app's web-vitals, for the page's RUM: `vitals`)."""
    script = ClientScript()
    page = resources.files(__package__).joinpath("live.html").read_text()
    page = page.replace("{{script}}", f"/live/static/{script.path('js')}")
    page = page.replace("{{jobs_live}}", "false" if hub.url.startswith("memory://") else "true")
    app.router.routes += [  # the endpoints are plain ASGI apps: starlette routes take them as they are
        WebSocketRoute("/live/ws", hub.websocket(auth=None, can_subscribe=may_follow)),
        Route("/live/events", hub.sse(auth=None, can_subscribe=may_follow)),
        Mount("/live/static", script),
        Route("/live/vendor/web-vitals.js", vitals.web_vitals),
    ]

    @app.get("/live", name="live_page", response_class=HTMLResponse, include_in_schema=False)
    async def live_page() -> HTMLResponse:  # web-vitals may be installed while the demo runs
        return HTMLResponse(
            page.replace("{{rum}}", vitals.page_script()), headers={"cache-control": "no-cache"}
        )
