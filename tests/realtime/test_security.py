"""Security at the edge, over real processes: Origin allow-list, auth at connect, per-channel
authorisation, client publishing, the message size limit and the per-connection rate limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from perfkit.realtime.client import Client, ClientClosed, Message, RequestError
from perfkit.realtime.sse_client import SseClient
from tests.conftest import eventually

from .conftest import Server
from .test_delivery import subscribed

pytestmark = pytest.mark.slow


async def handshake_status(url: str, origin: str | None) -> int:
    """101 when the upgrade was accepted, else the HTTP status of the refusal."""
    try:
        async with connect(url, origin=origin, open_timeout=5):  # type: ignore[arg-type]
            return 101
    except websockets.InvalidStatus as exc:
        return int(exc.response.status_code)


async def test_origin_same_origin_by_default(servers: Callable[..., Server]) -> None:
    """Without `origins`, a browser page of another site is refused at the handshake (403); the page's
    own origin and clients that send no Origin (not browsers) are accepted."""
    server = servers("memory://")
    url = f"{server.ws}?token=alice"
    assert await handshake_status(url, "http://evil.example") == 403
    assert await handshake_status(url, f"http://127.0.0.1:{server.port}") == 101
    assert await handshake_status(url, None) == 101


async def test_origin_allow_list(servers: Callable[..., Server], http: httpx.AsyncClient) -> None:
    """With `origins=[...]` only those origins pass, over WebSocket and SSE alike."""
    server = servers("memory://", origins=["https://app.example.com"])
    url = f"{server.ws}?token=alice"
    assert await handshake_status(url, "https://app.example.com") == 101
    assert await handshake_status(url, "https://evil.example.com") == 403
    assert await handshake_status(url, f"http://127.0.0.1:{server.port}") == 403
    refused = await http.get(
        f"{server.http}/events?token=alice&channel=a:1", headers={"origin": "https://evil.example.com"}
    )
    assert refused.status_code == 403


async def start_and_read(client: Client) -> None:
    """Start, then read: the socket opens and closes at once, so the close shows in one or the other."""
    await client.start()
    await client.next(5)


async def read_until_closed(ws: Any) -> None:
    async with asyncio.timeout(5):
        while True:
            await ws.recv()


async def test_unauthenticated_connections_refused(
    servers: Callable[..., Server], http: httpx.AsyncClient
) -> None:
    """`auth` returning None closes a WebSocket with 4401 (the client stops, no reconnect loop) and
    answers SSE with 401."""
    server = servers("memory://")
    client = Client(f"{server.ws}?token=nobody", channels=["room:1"])
    with pytest.raises(ClientClosed) as closed:
        await start_and_read(client)
    assert closed.value.code == 4401 and client.connects == 1
    await client.close()
    assert (await http.get(f"{server.http}/events?token=nobody&channel=a:1")).status_code == 401


async def test_channel_authorisation(servers: Callable[..., Server]) -> None:
    """`can_subscribe` decides per channel: refused channels get `error` (forbidden) and nothing of
    theirs is delivered, while the allowed ones work on the same connection; SSE gets an error event."""
    server = servers("memory://", batch_window=0)
    async with Client(f"{server.ws}?token=alice") as client:
        for channel in ("secret:1", "user:bob"):
            with pytest.raises(RequestError) as refused:
                await client.subscribe(channel)
            assert refused.value.code == "forbidden" and refused.value.frame["channel"] == channel
        await client.subscribe("user:alice")
        await server.publish("user:bob", "not for alice")
        await server.publish("user:alice", "for alice", "end")  # "end": anything of bob's would come first
        events = [await client.next(5), await client.next(5)]
        assert [e.data for e in events] == ["for alice", "end"] and client.drain() == []
    async with SseClient(f"{server.http}/events?token=alice", channels=["secret:2", "room:ok"]) as sse:
        await subscribed(sse, "room:ok")

        async def refused() -> bool:
            return any(f["type"] == "error" for f in sse.frames)

        await eventually(refused, timeout=5, what="the error event for secret:2")
        errors = [f for f in sse.frames if f["type"] == "error"]
    assert [(e["code"], e["channel"]) for e in errors] == [("forbidden", "secret:2")]


async def test_clients_publish_only_where_allowed(servers: Callable[..., Server]) -> None:
    """A client publish is refused (forbidden) unless `can_publish` allows the channel; an allowed one
    is numbered and delivered to the subscribers."""
    server = servers("memory://", batch_window=0)
    async with Client(f"{server.ws}?token=alice", channels=["chat:1", "room:p"]) as client:
        await subscribed(client, "chat:1", "room:p")
        with pytest.raises(RequestError) as refused:
            await client.publish("room:p", "spoofed")
        assert refused.value.code == "forbidden"
        answer = await client.publish("chat:1", {"text": "hi"})
        event = await client.next(5)
    assert answer["type"] == "published" and answer["offset"] == 1
    assert event == Message("chat:1", answer["epoch"], 1, {"text": "hi"})


async def test_oversized_message_closes_with_1009(servers: Callable[..., Server]) -> None:
    """A client frame over max_message closes the connection with 1009; one under it is answered."""
    server = servers("memory://", max_message=1024)
    async with connect(f"{server.ws}?token=alice") as ws:
        await ws.send(json.dumps({"type": "ping", "t": 1, "pad": "x" * 900}))
        frames = [json.loads(await ws.recv()) for _ in range(2)]
        assert frames[1] == {"type": "pong", "t": 1}
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 2000}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_rate_limit_per_connection(servers: Callable[..., Server]) -> None:
    """Over `rate_limit` (here a burst of 5 per minute), frames are refused with `rate_limited` and a
    retry_after, and another connection keeps its own budget."""
    server = servers("memory://", rate_limit="5/minute")
    async with connect(f"{server.ws}?token=alice") as ws, connect(f"{server.ws}?token=bob") as other:
        for i in range(12):
            await ws.send(json.dumps({"type": "ping", "t": i}))
        answers = await _frames(ws, 13)  # welcome + 12 answers
        await other.send(json.dumps({"type": "ping", "t": 99}))
        other_answers = await _frames(other, 2)
    pongs = [f for f in answers if f["type"] == "pong"]
    limited = [f for f in answers if f.get("code") == "rate_limited"]
    assert len(pongs) == 5 and len(limited) == 7
    assert all(f["retry_after"] > 0 for f in limited)
    assert other_answers[1] == {"type": "pong", "t": 99}


async def _frames(ws: Any, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(5):
        return [json.loads(await ws.recv()) for _ in range(count)]


async def test_malformed_requests_get_errors_with_codes(servers: Callable[..., Server]) -> None:
    """Not JSON, no type, an unknown type, a bad channel name, unsubscribing from nothing: each gets an
    `error` with its code, and the connection stays usable."""
    server = servers("memory://", rate_limit="100/second")
    async with connect(f"{server.ws}?token=alice") as ws:
        for raw in ("{nope", "[1]", '{"type":"dance"}', '{"type":"subscribe","channel":"bad channel!"}',
                    '{"type":"unsubscribe","channel":"room:x","id":7}', '{"type":"ping","t":3}'):  # fmt: skip
            await ws.send(raw)
        frames = (await _frames(ws, 7))[1:]
    codes = [f.get("code") or f["type"] for f in frames]
    assert codes == ["bad_request", "bad_request", "unknown_type", "bad_request", "not_subscribed", "pong"]
    assert frames[4]["id"] == 7


async def test_repeated_protocol_errors_close_with_4400(servers: Callable[..., Server]) -> None:
    """More than 20 malformed frames close the connection with 4400 (the client does not reconnect)."""
    server = servers("memory://", rate_limit="100/second")
    async with connect(f"{server.ws}?token=alice") as ws:
        for _ in range(21):
            await ws.send("[1]")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await read_until_closed(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


async def test_subscriptions_per_connection_are_capped(servers: Callable[..., Server]) -> None:
    """Past max_channels a subscribe gets `too_many_channels`; unsubscribing frees a place."""
    server = servers("memory://", max_channels=2)
    async with Client(f"{server.ws}?token=alice", channels=["c:1", "c:2"]) as client:
        await subscribed(client, "c:1", "c:2")
        with pytest.raises(RequestError) as refused:
            await client.subscribe("c:3")
        assert refused.value.code == "too_many_channels"
        assert (await client.unsubscribe("c:1"))["type"] == "unsubscribed"
        assert (await client.subscribe("c:3"))["type"] == "subscribed"


async def test_sse_refuses_bad_requests(servers: Callable[..., Server], http: httpx.AsyncClient) -> None:
    """SSE answers 405 to anything but GET, and 400 without a channel or with an invalid channel name."""
    server = servers("memory://")
    assert (await http.post(f"{server.http}/events?token=alice&channel=a:1")).status_code == 405
    assert (await http.get(f"{server.http}/events?token=alice")).status_code == 400
    bad = await http.get(f"{server.http}/events?token=alice&channel=not%20valid")
    assert bad.status_code == 400 and "channel" in bad.text
