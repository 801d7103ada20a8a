"""The hub in a Django ASGI project under a real uvicorn process (tests/django/realtime_asgi.py), routed
by perfkit's `RealtimeRouter` and by Channels' `ProtocolTypeRouter`: a logged-in Django user connects
over WebSocket and SSE with the session cookie and hears a view's commit; without a login, refused."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from perfkit.realtime.client import Client, ClientClosed, Message, RequestError
from perfkit.realtime.sse_client import SseClient
from tests.conftest import REDIS_URL, free_port, require_redis

ROOT = Path(__file__).resolve().parents[2]
SESSION_COOKIE = "sessionid"  # Django's default SESSION_COOKIE_NAME

pytestmark = pytest.mark.slow


@dataclass
class Project:
    http: str

    @property
    def ws(self) -> str:
        return self.http.replace("http://", "ws://") + "/ws"

    def login(self, name: str) -> tuple[str, int]:
        """(the session cookie, the user id) of a fresh login."""
        with httpx.Client(base_url=self.http, timeout=10) as client:
            response = client.post("/login/", data={"username": name, "password": "pw"})
            assert response.status_code == 200, response.text
            return response.cookies[SESSION_COOKIE], int(response.json()["id"])


@pytest.fixture(scope="module", params=["perfkit", "channels"])
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """uvicorn serving the Django project with the hub on the real Redis (a prefix of its own, deleted
    afterwards), routed by `request.param`; one per router for the module's tests (each logs in afresh,
    and only test_logged_in_user_hears_the_commit publishes); stopped by pid."""
    require_redis()
    prefix = f"t-rtdj-{uuid.uuid4().hex[:10]}:"
    port = free_port()
    db = tmp_path_factory.mktemp(f"rtdj-{request.param}") / "db.sqlite3"
    env = {**os.environ, "PERFKIT_TEST_RT_DB": str(db), "RT_ROUTER": request.param,
           "RT_URL": f"{REDIS_URL}?prefix={prefix}",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.django.realtime_asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "info", "--ws", "websockets-sansio",
         "--timeout-graceful-shutdown", "3"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    log: list[str] = []
    drain: threading.Thread | None = None
    try:
        for line in proc.stderr:  # uvicorn logs this once the socket is listening
            log.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            raise RuntimeError(f"uvicorn exited with {proc.wait(timeout=10)}: {''.join(log)}")
        # the server lives for several tests: keep reading its log, so a full pipe never blocks it
        drain = threading.Thread(target=log.extend, args=(proc.stderr,), daemon=True)
        drain.start()
        yield Project(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if drain is not None:
            drain.join(timeout=5)
        proc.stderr.close()
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


async def start_and_read(client: Client) -> None:
    """Start, then read: the socket opens and closes at once, so the close shows in one or the other."""
    await client.start()
    await client.next(10)


async def test_logged_in_user_hears_the_commit(project: Project) -> None:
    """With alice's session cookie: the WebSocket subscribes to her own user channel and an org channel
    but not to bob's; a view's rolled-back ticket is never published, its committed tickets are, in
    order (offsets 1, 2: nothing in between), then an async view's message; an SSE stream with the
    cookie hears them too; Django's own HTTP views are served beside the endpoints."""
    cookie, alice = project.login("alice")
    _, bob = project.login("bob")
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    async with httpx.AsyncClient(base_url=project.http, headers=headers, timeout=10) as http:
        assert (await http.get("/whoami/")).json() == {"user": "alice"}
        async with (
            Client(project.ws, channels=[f"user:{alice}", "org:1"], headers=headers) as ws,
            SseClient(f"{project.http}/events", channels=["org:1"], headers=headers) as sse,
        ):
            with pytest.raises(RequestError) as refused:
                await ws.subscribe(f"user:{bob}")
            assert refused.value.code == "forbidden"
            await ws.subscribe("org:2")  # answered: the connection-time subscriptions are live too
            assert f"user:{alice}" in ws.positions and "org:1" in ws.positions
            assert (await http.post("/tickets/", data={"title": "lost", "fail": "1"})).status_code == 409
            first = (await http.post("/tickets/", data={"title": "one"})).json()
            second = (await http.post("/tickets/", data={"title": "two"})).json()
            assert (await http.get("/announce/?text=hi")).status_code == 204
            for client in (ws, sse):
                events = [await client.next(10) for _ in range(3)]
                assert all(isinstance(e, Message) for e in events)
                assert [(e.channel, e.offset, e.data) for e in events] == [
                    ("org:1", 1, {"ticket": first["ticket"], "title": "one"}),
                    ("org:1", 2, {"ticket": second["ticket"], "title": "two"}),
                    ("org:1", 3, {"announce": "hi"}),
                ]


async def test_refused_without_a_login(project: Project) -> None:
    """No cookie, an unknown session and a logged-out session are refused (WebSocket 4401, SSE 401);
    a WebSocket to a path that is not an endpoint is refused at the handshake."""
    cookie, _ = project.login("alice")
    with httpx.Client(base_url=project.http, timeout=10) as http:
        assert http.post("/logout/", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}).status_code == 204
        assert http.get("/events?channel=org:1").status_code == 401
    for headers in (
        {},
        {"Cookie": f"{SESSION_COOKIE}=no-such-session"},
        {"Cookie": f"{SESSION_COOKIE}={cookie}"},
    ):
        client = Client(project.ws, channels=["org:1"], headers=headers)
        with pytest.raises(ClientClosed) as closed:
            await start_and_read(client)
        assert closed.value.code == 4401, headers
        await client.close()
    with pytest.raises((InvalidStatus, OSError)):
        async with connect(project.ws.replace("/ws", "/nowhere"), open_timeout=10):
            pass
