"""The monitor under the project's URLconf (`path("perf/", include("perfkit.django.urls"))`): health,
readiness with Django's database and cache, Prometheus metrics, the report in Django terms, the
dashboard and the live stream, with perfkit.monitor's token rules, on the sync and the async path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from perfkit.django import monitoring
from perfkit.metrics import default_collector
from tests.django.web_support import MIDDLEWARE, TEST_CACHE, configure

pytestmark = [pytest.mark.urls("tests.django.web_urls"), pytest.mark.django_db]


@pytest.fixture
def perfkit(settings: Any) -> Any:
    """Django's settings with perfkit's middleware installed (`web_support.configure`)."""
    return configure(settings)


TOKEN = {"Authorization": "Bearer test-token"}


def test_liveness_is_open(client: Any, perfkit: Any) -> None:
    """/perf/health answers 200 without a token."""
    response = client.get("/perf/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


@pytest.mark.parametrize(
    "path", ["/perf/health/ready", "/perf/metrics", "/perf/report", "/perf/api/findings"]
)
def test_reads_need_the_token(client: Any, perfkit: Any, path: str) -> None:
    """Every read but liveness answers 401 without the token, or with a wrong one."""
    assert client.get(path).status_code == 401
    wrong = client.get(path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "Bearer" in wrong["WWW-Authenticate"]


def test_readiness_checks_the_databases_and_the_cache(client: Any, perfkit: Any) -> None:
    """Readiness runs a SELECT 1 on each DATABASES alias and a set-and-get on the cache alias."""
    perfkit.PERFKIT = {"monitor": {"token": "test-token"}, "databases": ["default"]}
    response = client.get("/perf/health/ready", headers=TOKEN)
    body = response.json()
    assert body["checks"]["database:default"]["status"] == "pass"
    assert body["checks"]["cache"]["status"] == "pass"
    assert "jobs" not in body["checks"]  # no job queue in this project
    assert response.status_code in (200, 503)  # (disk or memory of the machine may fail it)


def test_metrics_count_the_traffic_not_the_scrapes(client: Any, perfkit: Any) -> None:
    """Prometheus text has the views' requests under their URL pattern; the monitor's own requests are
    not traffic."""
    for pk in (1, 2):
        client.get(f"/tickets/{pk}/")
    client.get("/perf/health")
    text = client.get("/perf/metrics", headers=TOKEN).content.decode()
    assert (
        'perfkit_http_request_duration_seconds_count{method="GET",route="/tickets/<int:pk>/",status="2xx"}'
        in text
    )
    assert "/perf" not in text.split("perfkit_http_request_duration_seconds_count", 1)[1].split("\n# ", 1)[0]


def test_the_report_names_django_fixes(client: Any, perfkit: Any) -> None:
    """An N+1 finding with a Django fix is recommended as a QuerySet method, not as `.options(...)`."""
    default_collector().record(
        "n_plus_one",
        {
            "relationship": "Ticket.organization",
            "count": 12,
            "route": "/tickets/",
            "fix": 'select_related("organization")',
        },
    )
    response = client.get("/perf/report", headers=TOKEN)
    assert response.status_code == 200
    fixes = [r["fix"] for r in response.json()["recommendations"] if r["kind"] == "n_plus_one"]
    assert '.select_related("organization")' in fixes
    assert not [f for f in fixes if f.startswith(".options(select_related")]


def test_the_dashboard_links_to_its_own_mount(client: Any, perfkit: Any) -> None:
    """The dashboard page is served at the include() path and its assets load from under it."""
    page = client.get("/perf/")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    assert 'data-prefix="/perf"' in html
    script = html.split('<script src="', 1)[1].split('"', 1)[0]
    assert script.startswith("/perf/assets/")
    asset = client.get(script)
    assert asset.status_code == 200 and "immutable" in asset["Cache-Control"]


def test_actions_need_the_token_and_pass_csrf(client: Any, perfkit: Any) -> None:
    """POST actions are authorised by the Bearer token (CSRF middleware on: still accepted)."""
    perfkit.MIDDLEWARE = [*MIDDLEWARE, "django.middleware.csrf.CsrfViewMiddleware"]
    client.handler.enforce_csrf_checks = True
    assert client.post("/perf/api/deploy?version=v1").status_code == 401
    response = client.post("/perf/api/deploy?version=v1", headers=TOKEN)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "backend", [TEST_CACHE, {"BACKEND": "perfkit.django.cache.PerfkitCache", "LOCATION": "memory://"}]
)
def test_clear_cache_clears_the_perfkit_cache_alias(client: Any, perfkit: Any, backend: Any) -> None:
    """POST api/cache/clear empties the perfkit cache behind PERFKIT['cache'] (it answered 404)."""
    from django.core.cache import caches

    perfkit.CACHES = {"default": backend}
    caches["default"].set("k", 1)  # through Django's API, its default timeout
    assert caches["default"].get("k") == 1
    response = client.post("/perf/api/cache/clear", headers=TOKEN)
    namespace = caches["default"].perfkit_cache.namespace
    assert response.status_code == 200 and response.json() == {"cleared": 1, "namespace": namespace}
    assert caches["default"].get("k") is None


def test_clear_cache_leaves_a_cache_that_is_not_perfkit_alone(client: Any, perfkit: Any) -> None:
    """A Django cache that is not a perfkit one (LocMem here) is not flushed: 404 saying why."""
    from django.core.cache import caches

    caches["default"].set("k", 1)
    response = client.post("/perf/api/cache/clear", headers=TOKEN)
    assert response.status_code == 404 and "not a perfkit cache" in response.json()["error"]
    assert caches["default"].get("k") == 1


def test_the_live_stream_streams_under_wsgi(client: Any, perfkit: Any) -> None:
    """/perf/live is a stream of server-sent events (here one frame) served by a sync iterator."""
    response = client.get("/perf/live?max=1", headers=TOKEN)
    assert response.status_code == 200 and response.streaming and not response.is_async
    assert response["Content-Type"] == "text/event-stream"
    frames = b"".join(response.streaming_content).decode().strip().split("\n\n")
    assert len(frames) == 1 and "throughput_rps" in json.loads(frames[0].removeprefix("data: "))


async def test_the_monitor_on_the_async_path(async_client: Any, perfkit: Any) -> None:
    """Under the async handler the same endpoints answer, the live stream as an async iterator."""
    assert (await async_client.get("/perf/health")).status_code == 200
    assert (await async_client.get("/perf/metrics")).status_code == 401
    metrics = await async_client.get("/perf/metrics", headers=TOKEN)
    assert metrics.status_code == 200 and b"perfkit_monitor_processes" in metrics.content
    live = await async_client.get("/perf/live?max=1", headers=TOKEN)
    assert live.streaming and live.is_async
    body = b"".join([chunk async for chunk in live.streaming_content])
    assert body.startswith(b"data: {")


def test_monitor_off(client: Any, perfkit: Any) -> None:
    """PERFKIT['monitor'] = False: the endpoints answer 404 and no monitor runs."""
    perfkit.PERFKIT = {"monitor": False}
    assert client.get("/perf/health").status_code == 404
    assert monitoring.get_monitor() is None


def test_the_monitor_publishes_once_traffic_starts(client: Any, perfkit: Any) -> None:
    """The first request through the middleware starts this process's publisher (multi-process
    metrics need every worker to publish)."""
    perfkit.CACHES = {"default": TEST_CACHE}
    perfkit.PERFKIT = {"monitor": {"token": "test-token", "publish_interval": 0.1}}
    client.get("/hello/")
    monitor = monitoring.get_monitor()
    assert monitor is not None and monitor.running


def test_rum_beacons_are_named_by_the_url_pattern(client: Any, perfkit: Any) -> None:
    """A page view's web vitals posted to /perf/rum land under the Django URL pattern of its page."""
    perfkit.PERFKIT = {"monitor": {"token": "test-token", "rum": {"settle": 0}}}
    lcp = {"name": "LCP", "id": "v5-1", "value": 4200.0, "delta": 4200.0, "target": "img#t"}
    beacon = json.dumps({"url": "/tickets/7/", "device": "desktop", "metrics": [lcp]})
    host = {"Host": "testserver"}  # (Django's test client sends none; every HTTP/1.1 client does)
    refused = client.post("/perf/rum", beacon, content_type="text/plain", headers=host)  # no Origin
    assert refused.status_code == 403
    origin = {**host, "Origin": "http://testserver"}
    assert client.post("/perf/rum", beacon, content_type="text/plain", headers=origin).status_code == 204
    pages = client.get("/perf/report", headers=TOKEN).json()["web_vitals"]["pages"]
    assert [(p["route"], p["vitals"]["LCP"]["rating"]) for p in pages] == [("/tickets/<int:pk>/", "poor")]
