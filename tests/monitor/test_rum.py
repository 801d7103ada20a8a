"""POST /perf/rum: real users' web vitals into the report, the budgets and /metrics (a real Starlette app;
two monitors sharing a SQLite store for the cross-worker merge). The browser half is test_rum_browser.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import perfkit
from perfkit.errors import ConfigurationError
from perfkit.metrics import Collector
from perfkit.monitor import Monitor, MonitorConfig
from perfkit.monitor.rum import RumConfig

TOKEN = "rum-test-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
ORIGIN = "http://shop.test"
BEACON = {"origin": ORIGIN, "content-type": "text/plain;charset=UTF-8"}


def metric(name: str, mid: str, value: float, delta: float | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "id": mid, "value": value, "delta": value if delta is None else delta, **extra}


def body(url: str, *metrics: dict[str, Any], device: str | None = "desktop") -> bytes:
    data: dict[str, Any] = {"url": url, "metrics": list(metrics)}
    if device:
        data["device"] = device
    return json.dumps(data).encode()


class Client(httpx.AsyncClient):
    monitor: Monitor


def make_client(**rum: Any) -> Client:
    """An instrumented Starlette app (routes `/` and `/products/{id}`) behind an httpx client; RUM
    settings `rum` (settle 0 unless given)."""

    async def page(request: Request) -> Response:
        return PlainTextResponse("page")

    collector = Collector()
    config = MonitorConfig(token=TOKEN, url="memory://", rum=RumConfig(**{"settle": 0.0, **rum}))
    monitor = Monitor(config, collector=collector)
    app = Starlette(routes=[Route("/", page), Route("/products/{id}", page)])
    served = perfkit.instrument(app, monitor=monitor, collector=collector)
    transport = httpx.ASGITransport(app=served, client=("10.0.0.7", 5000))
    client = Client(transport=transport, base_url=ORIGIN)
    client.monitor = monitor
    return client


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with make_client() as c:
        yield c


async def post(client: Client, data: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.post("/perf/rum", content=data, headers=BEACON if headers is None else headers)


async def report(client: Client) -> dict[str, Any]:
    response = await client.get("/perf/report", headers=AUTH)
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


async def outcomes(client: Client) -> dict[str, float]:
    text = (await client.get("/perf/metrics", headers=AUTH)).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "perfkit_rum_beacons":
            out = {s.labels["outcome"]: s.value for s in family.samples if s.name.endswith("_total")}
    return out


async def test_vitals_are_rated_per_route_template_and_device(client: Client) -> None:
    """Values land under the page's route template and device class, rated by web.dev's thresholds."""
    ttfb = metric("TTFB", "t1", 500.0, server=300.0)
    r = await post(client, body("/products/42?ref=x", metric("LCP", "l1", 3000.0, target="img.hero"),
                                metric("INP", "i1", 150.0), metric("CLS", "c1", 0.3, target="div.ad"),
                                metric("FCP", "f1", 1000.0), ttfb))  # fmt: skip
    assert r.status_code == 204
    assert (
        await post(client, body("/products/7", metric("LCP", "l2", 3000.0), device="mobile"))
    ).status_code == 204
    assert (await post(client, body("/nowhere/at/all", metric("LCP", "l3", 1000.0)))).status_code == 204
    vitals = (await report(client))["web_vitals"]
    pages = {(p["route"], p["device"]): p for p in vitals["pages"]}
    assert set(pages) == {("/products/{id}", "desktop"), ("/products/{id}", "mobile"), ("other", "desktop")}
    desk = pages["/products/{id}", "desktop"]["vitals"]
    assert {k: v["rating"] for k, v in desk.items()} == {
        "LCP": "needs-improvement", "INP": "good", "CLS": "poor", "FCP": "good", "TTFB": "good",
    }  # fmt: skip
    assert desk["LCP"]["p75"] == 3000.0 and desk["CLS"]["p75"] == 0.3 and desk["INP"]["p75"] == 150.0
    assert pages["/products/{id}", "desktop"]["ttfb_server_p75_ms"] == 300.0
    assert pages["/products/{id}", "desktop"]["ttfb_rest_p75_ms"] == 200.0
    assert pages["other", "desktop"]["vitals"]["LCP"]["rating"] == "good"
    overall = vitals["overall"]["LCP"]
    assert overall["views"] == 3 and overall["good"] == pytest.approx(1 / 3, abs=1e-3)
    assert overall["rating"] == "needs-improvement"  # only a third of the views are good
    assert vitals["targets"]["LCP"] == [{"route": "/products/{id}", "target": "img.hero", "views": 1}]
    assert vitals["targets"]["CLS"][0]["target"] == "div.ad"


async def test_budgets_score_and_recommendations_carry_the_vitals(client: Client) -> None:
    """Each vital is a budget of the report (p75 against "good") and a poor one a recommendation."""
    await post(client, body("/", metric("CLS", "c1", 0.4, target="div.banner"), metric("LCP", "l1", 1200.0)))
    data = await report(client)
    budgets = {b["kpi"]: b for b in data["budgets"]}
    assert budgets["cls_p75"]["ok"] is False and budgets["cls_p75"]["rating"] == "poor"
    assert budgets["cls_p75"]["budget"] == 0.1
    assert budgets["lcp_p75_ms"]["ok"] is True and budgets["lcp_p75_ms"]["value"] == 1200.0
    assert budgets["inp_p75_ms"]["value"] is None  # no interaction measured: not scored
    recs = [r for r in data["recommendations"] if r["kind"] == "web_vitals"]
    assert len(recs) == 1 and recs[0]["severity"] == "critical"
    assert "CLS p75 0.4 on / (desktop) is poor" in recs[0]["message"]
    assert "`div.banner`" in recs[0]["fix"] and recs[0]["evidence"]["target"] == "div.banner"


async def test_deltas_of_one_metric_id_are_summed_into_one_view() -> None:
    """web-vitals' repeated reports of one id (CLS growing) count once, with the deltas summed; a delta
    after the id was counted is dropped as late instead of counting the view twice."""
    async with make_client(settle=3600.0) as client:
        await post(client, body("/", metric("CLS", "c1", 0.05)))
        growing = metric("CLS", "c1", 0.2, delta=0.15), metric("CLS", "c1", 0.22, delta=0.02)
        await post(client, body("/", *growing))
        r = await client.get("/perf/report", headers=AUTH)
        assert "CLS" not in r.json()["web_vitals"]["overall"]  # still within its settle time: not counted yet
        client.monitor.settle_rum(everything=True)
        cls = (await report(client))["web_vitals"]["overall"]["CLS"]
        assert cls["views"] == 1 and cls["p75"] == pytest.approx(0.22)
        assert cls["rating"] == "needs-improvement"
        await post(client, body("/", metric("CLS", "c1", 0.3, delta=0.08)))
        client.monitor.settle_rum(everything=True)
        assert (await report(client))["web_vitals"]["overall"]["CLS"]["views"] == 1
        assert (await outcomes(client))["late"] == 1


async def test_refusals_name_the_reason_and_are_counted() -> None:
    """Other origins, no origin, another content type, too large, bad schema, GET, over the rate: 4xx."""
    async with make_client(origins=["https://cdn.shop.test"], rate_limit="6/minute", max_body=2048) as client:
        good = body("/", metric("LCP", "l1", 900.0))
        assert (await post(client, good, {**BEACON, "origin": "https://evil.test"})).status_code == 403
        assert (await post(client, good, {"content-type": "text/plain"})).status_code == 403
        assert (await post(client, good, {**BEACON, "origin": "https://cdn.shop.test"})).status_code == 204
        assert (
            await post(client, good, {**BEACON, "content-type": "application/x-www-form-urlencoded"})
        ).status_code == 415
        big = await post(client, b"{" + b" " * 4096 + b"}")
        assert big.status_code == 413 and "2048 bytes" in big.json()["error"]
        bad = await post(client, body("/", metric("LCP", "l1", -5.0)))
        assert bad.status_code == 400 and "$.metrics[0].value" in bad.json()["error"]
        unknown = await post(client, body("/", {"name": "XYZ", "id": "1", "value": 1, "delta": 1}))
        assert unknown.status_code == 400 and "$.metrics[0].name" in unknown.json()["error"]
        assert (await post(client, b"not json")).json()["error"].startswith("beacon: not JSON")
        assert (await client.get("/perf/rum")).status_code == 405
        limited = await post(client, good)  # the seventh request past the origin check within the minute
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert await outcomes(client) == {
            "refused_origin": 2, "accepted": 1, "bad_type": 1, "too_large": 1, "invalid": 3,
            "bad_method": 1, "rate_limited": 1,
        }  # fmt: skip


async def test_a_streamed_body_over_the_cap_is_cut_off(client: Client) -> None:
    """A body without Content-Length is counted while read and refused once past 64 KiB."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(70):
            yield b" " * 1024

    r = await client.post("/perf/rum", content=chunks(), headers=BEACON)
    assert r.status_code == 413 and "65536 bytes" in r.json()["error"]


async def test_targets_and_routes_are_bounded() -> None:
    """Past `max_targets` (route, target) pairs a metric's targets fold into "other"; routes likewise."""
    async with make_client(max_targets=2, max_routes=1) as client:
        for i, target in enumerate(["img.a", "img.b", "img.c", "img.d"]):
            await post(client, body("/", metric("LCP", f"l{i}", 3000.0, target=target)))
        await post(client, body("/products/1", metric("LCP", "l9", 3000.0, target="img.a")))
        vitals = (await report(client))["web_vitals"]
        targets = {(t["route"], t["target"]): t["views"] for t in vitals["targets"]["LCP"]}
        assert targets == {("/", "img.a"): 1, ("/", "img.b"): 1, ("/", "other"): 2, ("other", "other"): 1}
        assert {p["route"] for p in vitals["pages"]} == {"/", "other"}


async def test_device_class_falls_back_to_the_request(client: Client) -> None:
    """Without a device in the beacon, Sec-CH-UA-Mobile or a mobile User-Agent decide mobile."""
    phone = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/156.0 Mobile Safari/537.36"
    await post(client, body("/", metric("FCP", "f1", 900.0), device=None), {**BEACON, "user-agent": phone})
    await post(
        client, body("/", metric("FCP", "f2", 900.0), device=None), {**BEACON, "sec-ch-ua-mobile": "?0"}
    )
    pages = {p["device"]: p["views"] for p in (await report(client))["web_vitals"]["pages"]}
    assert pages == {"mobile": 1, "desktop": 1}


async def test_snippet_is_served_without_a_token(client: Client) -> None:
    """/perf/rum.js (revalidated) and its hashed name (immutable) are open, like the dashboard shell."""
    plain = await client.get("/perf/rum.js")
    assert plain.status_code == 200 and plain.headers["cache-control"] == "no-cache"
    assert "export function start(webVitals" in plain.text and "sendBeacon" in plain.text
    assert "onINP" in plain.text and "function onINP" not in plain.text  # web-vitals itself is not shipped
    assert (await client.get("/perf/report")).status_code == 401  # the data still needs the token


async def test_histograms_merge_across_worker_processes(tmp_path: Path) -> None:
    """Two monitors (two workers) publishing to one SQLite store: /metrics sums their RUM histograms."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    monitors = [
        Monitor(MonitorConfig(url=url, rum=RumConfig(settle=0)), collector=Collector()) for _ in range(2)
    ]
    from perfkit.monitor.rum.schema import decode

    for i, monitor in enumerate(monitors):
        monitor.rum.add(decode(body("/", metric("LCP", f"l{i}", 1000.0 + 2000.0 * i))), "/", "desktop")
        await monitor.publisher.publish()
    try:
        text = (await monitors[0].prometheus()).decode()
        family = {f.name: f for f in text_string_to_metric_families(text)}["perfkit_rum_lcp_seconds"]
        samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
        assert samples["perfkit_rum_lcp_seconds_count", None] == 2
        assert samples["perfkit_rum_lcp_seconds_bucket", "2.5"] == 1  # thresholds are bucket bounds
        assert samples["perfkit_rum_lcp_seconds_bucket", "4.0"] == 2
        assert samples["perfkit_rum_lcp_seconds_sum", None] == pytest.approx(4.0)
        merged = (await monitors[0].report())["web_vitals"]["overall"]["LCP"]
        assert merged["views"] == 2 and merged["needs_improvement"] == 0.5
    finally:
        for monitor in monitors:
            await monitor.close()


def test_bad_settings_are_refused() -> None:
    """A malformed origin or rate is a configuration error naming the setting."""
    with pytest.raises(ConfigurationError, match=r"rum\.origins"):
        RumConfig(origins=["shop.test/path"])
    with pytest.raises(ConfigurationError, match=r"rum\.rate_limit"):
        RumConfig(rate_limit="lots")


async def test_alert_rules_can_watch_the_vitals(client: Client) -> None:
    """`lcp > 2.5s` and `cls > 0.25` are alert rules on the real users' p75."""
    from perfkit.monitor.alerts import AlertRule, kpi_values

    rule = AlertRule.parse("lcp > 2.5s for 5m")
    assert (rule.kpi, rule.threshold) == ("lcp", 2500.0)
    values = kpi_values(await report(client))
    assert values["lcp"] is None and values["cls"] is None  # nothing measured: nothing fires
    await post(client, body("/", metric("LCP", "l1", 3000.0), metric("CLS", "c1", 0.3)))
    values = kpi_values(await report(client))
    assert rule.holds(values["lcp"]) and AlertRule.parse("cls > 0.25").holds(values["cls"])
