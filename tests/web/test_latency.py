"""Request latency is what the client sees: it ends at the last body byte, not when the app returns.

Work the app does after the response (a FastAPI yield dependency's teardown, a background task) is
counted apart, in `http_request_after_response_seconds_total`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import perfkit
from perfkit.metrics import Collector
from perfkit.web import MetricsMiddleware, WebConfig

from .conftest import series

TEARDOWN = 0.05


def teardown_app() -> FastAPI:
    """A fast endpoint whose yield dependency takes 50 ms to tear down (closing a DB session, say)."""

    def session() -> Iterator[str]:
        yield "session"
        time.sleep(TEARDOWN)

    app = FastAPI()

    @app.get("/fast")
    def fast(db: str = Depends(session)) -> dict[str, str]:
        return {"db": db}

    return app


def background_app() -> Starlette:
    """A fast endpoint whose response carries a 50 ms background task."""

    async def fast(request: Request) -> Response:
        return PlainTextResponse("ok", background=BackgroundTask(time.sleep, TEARDOWN))

    return Starlette(routes=[Route("/fast", fast)])


def latency(collector: Collector) -> tuple[float, float]:
    """(requests, mean seconds) of GET /fast 2xx."""
    row = series(collector, "http_request_duration_seconds")[("GET", "/fast", "2xx")]
    count = sum(row[:-1])
    return count, row[-1] / count


def after_response(collector: Collector) -> float:
    return float(series(collector, "http_request_after_response_seconds_total")[("GET", "/fast")])


@pytest.mark.parametrize("make", [teardown_app, background_app], ids=["yield-dependency", "background-task"])
def test_latency_ends_at_the_last_body_byte(make: object, collector: Collector) -> None:
    """A ~1 ms endpoint with 50 ms of work after its response reads ~1 ms, not ~51 ms; the 50 ms are
    counted as after-response time of that route."""
    app = perfkit.instrument(make(), collector=collector, monitor=False)  # type: ignore[operator]
    client = TestClient(app)
    for _ in range(3):
        assert client.get("/fast").status_code == 200
    count, mean = latency(collector)
    assert count == 3
    assert mean < TEARDOWN / 2, f"latency {mean * 1000:.1f} ms includes the work after the response"
    assert after_response(collector) >= 3 * TEARDOWN * 0.9


def test_metrics_middleware_alone_ends_at_the_last_body_byte(collector: Collector) -> None:
    """MetricsMiddleware used on its own measures the same way as the fused stack."""
    app = teardown_app()
    app.add_middleware(MetricsMiddleware, config=WebConfig(), collector=collector)
    assert TestClient(app).get("/fast").status_code == 200
    count, mean = latency(collector)
    assert count == 1
    assert mean < TEARDOWN / 2
    assert after_response(collector) >= TEARDOWN * 0.9
