"""The app the multi-process tests serve with uvicorn: its store and token come from PERFKIT_MONITOR_*."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import perfkit
from perfkit.metrics import Collector
from perfkit.monitor import MonitorConfig


async def hello(request: Request) -> Response:
    return PlainTextResponse(f"hello from {os.getpid()}")


app = perfkit.instrument(
    Starlette(routes=[Route("/hello", hello)]),
    collector=Collector(),
    monitor=MonitorConfig(publish_interval=0.2),
)
