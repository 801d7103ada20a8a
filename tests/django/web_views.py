"""Views of the middleware and monitor tests: sync and async, small and large, streamed, per user."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from tests.django.tickets.models import Organization

calls: dict[str, int] = {}
_lock = threading.Lock()
gate = threading.Event()  # the slow view waits on it (coalescing tests open it)
gate.set()


def _count(name: str) -> int:
    with _lock:
        calls[name] = calls.get(name, 0) + 1
        return calls[name]


BIG = json.dumps([{"id": i, "title": f"ticket number {i}", "status": "open"} for i in range(200)]).encode()


def hello(request: Any) -> HttpResponse:
    return HttpResponse(b"hello", content_type="text/plain")


def big(request: Any) -> HttpResponse:
    return HttpResponse(BIG, content_type="application/json")


def ticket(request: Any, pk: int) -> HttpResponse:
    n = _count(f"ticket:{pk}")
    return JsonResponse({"ticket": pk, "run": n})


def orgs(request: Any) -> JsonResponse:
    """Runs SQL: two queries through the ORM."""
    Organization.objects.create(name="a")
    return JsonResponse({"count": Organization.objects.count()})


def whoami(request: Any) -> HttpResponse:
    _count("whoami")
    user = request.user
    name = user.username if user.is_authenticated else "anonymous"
    return HttpResponse(f"page of {name}".encode(), content_type="text/plain")


def cookie(request: Any) -> HttpResponse:
    _count("cookie")
    response = HttpResponse(b"with a cookie")
    response.set_cookie("issued", "to-one-client")
    return response


def slow(request: Any) -> HttpResponse:
    n = _count("slow")
    gate.wait(10)
    return HttpResponse(f"slow run {n}".encode())


def stream(request: Any) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        for i in range(5):
            yield (f"chunk {i} " * 100).encode()

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def fail(request: Any) -> HttpResponse:
    raise RuntimeError("the view failed")


async def ahello(request: Any) -> HttpResponse:
    await asyncio.sleep(0)
    return HttpResponse(b"hello async", content_type="text/plain")


async def abig(request: Any) -> HttpResponse:
    return HttpResponse(BIG, content_type="application/json")


async def aticket(request: Any, pk: int) -> HttpResponse:
    n = _count(f"aticket:{pk}")
    return JsonResponse({"ticket": pk, "run": n})


async def aslow(request: Any) -> HttpResponse:
    n = _count("aslow")
    for _ in range(1000):
        if gate.is_set():
            break
        await asyncio.sleep(0.01)
    return HttpResponse(f"slow run {n}".encode())


async def astream(request: Any) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            await asyncio.sleep(0)
            yield (f"chunk {i} " * 100).encode()

    return StreamingHttpResponse(chunks(), content_type="text/plain")
