"""Request metrics and the bounded collector."""

from __future__ import annotations

import multiprocessing

import pytest
from starlette.testclient import TestClient

from perfkit.metrics import Collector, merge
from perfkit.web import MetricsMiddleware, WebConfig

from .conftest import make_starlette, requests, series

pytestmark = pytest.mark.usefixtures("framework")


def client(collector: Collector) -> TestClient:
    app = make_starlette()
    app.add_middleware(MetricsMiddleware, config=WebConfig(), collector=collector)
    return TestClient(app, raise_server_exceptions=False)


def test_route_template_not_raw_path(collector: Collector) -> None:
    """Requests to /items/1 and /items/2 count under one series labelled with the route template."""
    c = client(collector)
    for i in range(3):
        c.get(f"/items/{i}")
    counts = requests(collector)
    assert counts == {("GET", "/items/{item_id}", "2xx"): 3.0}
    assert (
        collector.histogram("http_request_duration_seconds", ("method", "route", "status")).count(
            ("GET", "/items/{item_id}", "2xx")
        )
        == 3
    )


def test_unmatched_and_errors_by_status_class(collector: Collector) -> None:
    """A 404 counts as <unmatched> 4xx (bounded), an exception as 5xx."""
    c = client(collector)
    c.get("/no/such/path/123")
    c.get("/boom")
    counts = requests(collector)
    assert counts[("GET", "<unmatched>", "4xx")] == 1
    assert counts[("GET", "/boom", "5xx")] == 1


def test_in_flight_and_sizes(collector: Collector) -> None:
    """The in-flight gauge returns to zero and the response size histogram sees the body bytes."""
    client(collector).get("/items")
    assert collector.gauge("http_requests_in_flight").value() == 0
    row = series(collector, "http_response_size_bytes")[("GET", "/items")]
    assert sum(row[:-1]) == 1
    assert row[-1] > 4000


def test_series_capped() -> None:
    """Label sets beyond max_series fold into one __overflow__ series: memory stays bounded."""
    collector = Collector(max_series=5)
    counter = collector.counter("c", ("k",))
    for i in range(100):
        counter.inc((str(i),))
    assert len(counter.series) == 6
    assert counter.value(("__overflow__",)) == 95


def test_findings_ring_bounded() -> None:
    """Findings are kept in a ring buffer of fixed size, newest last."""
    collector = Collector(ring_size=10)
    for i in range(50):
        collector.record("slow_query", {"i": i})
    found = collector.findings("slow_query")
    assert [f["i"] for f in found] == list(range(40, 50))


def test_quantile_estimate() -> None:
    """Histogram quantiles interpolate inside the fixed buckets."""
    collector = Collector()
    h = collector.histogram("h", (), buckets=(0.1, 0.2, 0.4))
    for _ in range(50):
        h.observe((), 0.05)
    for _ in range(50):
        h.observe((), 0.3)
    p50, p95 = h.quantile(0.5), h.quantile(0.95)
    assert p50 is not None
    assert p50 == pytest.approx(0.1)
    assert p95 is not None
    assert 0.2 < p95 <= 0.4


def _serve(n: int) -> dict[str, object]:
    collector = Collector()
    c = client(collector)
    for _ in range(n):
        c.get("/")
    return collector.snapshot()


def test_merge_across_worker_processes() -> None:
    """Snapshots from several worker processes merge into correct totals."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        snaps = pool.map(_serve, [3, 5])
    merged = merge(snaps)
    hist = {tuple(k): v for k, v in merged["metrics"]["http_request_duration_seconds"]["series"]}
    assert sum(hist[("GET", "/", "2xx")][:-1]) == 8


def test_redefining_metric_kind_refused() -> None:
    """Asking for an existing name with another kind or labels is an error, not silent corruption."""
    collector = Collector()
    collector.counter("x", ("a",))
    with pytest.raises(ValueError, match="already registered"):
        collector.histogram("x", ("a",))


def test_unlocked_families_count_like_locked_ones() -> None:
    """`locked=False` families (written from the event loop) count exactly as locked ones do."""
    collector = Collector(max_series=2)
    locked, unlocked = collector.counter("a", ("x",)), collector.counter("b", ("x",), locked=False)
    hist = collector.histogram("c", ("x",), locked=False)
    for value in ("1", "1", "2", "3", "3"):  # "3" is past max_series: folds into __overflow__
        locked.inc((value,))
        unlocked.inc((value,))
        hist.observe((value,), 0.002)
    assert locked.series == unlocked.series == {("1",): 2.0, ("2",): 1.0, ("__overflow__",): 2.0}
    assert hist.count(("1",)) == 2 and hist.count(("__overflow__",)) == 2
