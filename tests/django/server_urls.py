"""URLs of the server tests' project: a sync and an async view that say which process answered."""

from __future__ import annotations

import json
import os
from typing import Any

from django.http import HttpResponse
from django.urls import include, path

BIG = json.dumps([{"n": i, "text": "the same words again"} for i in range(300)]).encode()


def pid(request: Any) -> HttpResponse:
    return HttpResponse(str(os.getpid()).encode(), content_type="text/plain")


async def apid(request: Any) -> HttpResponse:
    return HttpResponse(str(os.getpid()).encode(), content_type="text/plain")


async def abig(request: Any) -> HttpResponse:
    return HttpResponse(BIG, content_type="application/json")


urlpatterns = [
    path("pid/", pid, name="pid"),
    path("apid/", apid, name="apid"),
    path("abig/", abig, name="abig"),
    path("perf/", include("perfkit.django.urls")),
]
