"""The public seams of the web stack's redesign (issue 15): names that moved, one path per decision."""

from __future__ import annotations

import subprocess
import sys

from perfkit.metrics import OVERFLOW, Collector


def test_instrument_stays_the_function_whatever_the_import_order() -> None:
    """`perfkit.instrument` is the function even after `import perfkit.instrument` or the old path."""
    code = (
        "import perfkit.instrument, perfkit.web.instrument, perfkit;"
        "from perfkit.web import instrument as a; from perfkit.web.instrument import instrument as b;"
        "print(callable(perfkit.instrument), a is b is perfkit.instrument)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_histogram_series_handle_observes_like_observe() -> None:
    """`Histogram.series_for` + `HistogramSeries.observe` leave the same rows as `observe`, overflow too."""
    a, b = Collector(max_series=1), Collector(max_series=1)
    ha = a.histogram("h", ("k",), buckets=(1.0, 2.0), locked=False)
    hb = b.histogram("h", ("k",), buckets=(1.0, 2.0), locked=False)
    first, spill = ha.series_for(("x",), 1.5), ha.series_for(("y",), 3.0)
    first.observe(0.5)
    spill.observe(0.1)
    for labels, value in ((("x",), 1.5), (("y",), 3.0), (("x",), 0.5), (("y",), 0.1)):
        hb.observe(labels, value)
    assert ha.series == hb.series
    assert ha.extremes == hb.extremes
    assert set(ha.series) == {("x",), (OVERFLOW,)}


def test_collector_attaches_a_hook_once_per_source() -> None:
    """`Collector.attach` says yes once per (source, hook): what keeps job events from counting twice."""

    class Source:
        pass

    collector, source = Collector(), Source()
    assert collector.attach(source, "jobs") is True
    assert collector.attach(source, "jobs") is False
    assert collector.attach(source, "other") is True
    assert Collector().attach(source, "jobs") is True


def test_pipelines_sharing_a_resolver_keep_their_own_route_plans() -> None:
    """Two one-part pipelines on one resolver each keep their own plan for a route (`RouteInfo.plans`)."""
    from starlette.testclient import TestClient

    from perfkit.web import MetricsMiddleware, TimingMiddleware, WebConfig
    from perfkit.web.routing import RouteResolver

    from .conftest import make_starlette

    app, config, collector = make_starlette(), WebConfig(), Collector()
    resolver = RouteResolver(app, config)
    inner = MetricsMiddleware(app, config=config, collector=collector, resolver=resolver)
    outer = TimingMiddleware(inner, config=config, collector=collector, resolver=resolver)
    with TestClient(outer) as client:
        answers = [client.get("/") for _ in range(3)]
    assert all("server-timing" in r.headers and "x-request-id" in r.headers for r in answers)
    info = resolver.resolve({"type": "http", "method": "GET", "path": "/", "headers": []})  # from its table
    assert set(info.plans) == {inner, outer}
    histogram = collector.families["http_request_duration_seconds"]
    assert histogram.count(("GET", "/", "2xx")) == 3  # type: ignore[attr-defined]


def test_repeated_rate_limit_answer_stays_per_client() -> None:
    """The limiter repeats its last allowed answer only when it is the same: each client counts its own."""
    import asyncio

    from perfkit.web import Rule, WebConfig
    from perfkit.web.ratelimit.middleware import RateLimiter
    from perfkit.web.routing import RouteResolver

    from .conftest import make_starlette

    config = WebConfig(rules=[Rule(path="/", rate_limit="2/minute")])
    limiter = RateLimiter(config, RouteResolver(make_starlette(), config), collector=Collector())

    def answer(ip: str) -> str:
        scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": (ip, 1)}
        verdict = limiter.decide_now(scope)
        assert verdict is not None
        headers, refusal = verdict
        assert headers is not None
        return dict(headers)[b"ratelimit"].decode().split(";")[1] + ("/refused" if refusal else "")

    assert [answer(ip) for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2", "10.0.0.1")] == [
        "r=1", "r=1", "r=0", "r=0", "r=0/refused",
    ]  # fmt: skip
    third = {"type": "http", "method": "GET", "path": "/", "client": ("10.0.0.3", 1)}
    slow = asyncio.run(limiter.decide(third))
    assert slow[0] is not None and dict(slow[0])[b"ratelimit"].startswith(b'"/";r=1;')
