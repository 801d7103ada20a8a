"""Measure each naive/optimised pair the same way: `perfkit bench` drives the load, and the app's own
monitoring endpoint (`/perf/metrics`) says what the server did — queries, bytes, cache hits.

Variants run one after the other, so the difference of the app's counters across a run is that
variant's alone. Latency and throughput are the load generator's (client side, coordinated-omission
corrected); queries per request, payload bytes and the cache hit ratio are the server's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from perfkit.bench import command as bench_command
from perfkit.bench import runner
from perfkit.bench.report import schema
from perfkit.demo.app.runtime import CACHE_NAMESPACE


@dataclass(frozen=True)
class Variant:
    method: str
    path: str
    route: str  # the route template the app's metrics use


@dataclass(frozen=True)
class Pair:
    name: str
    title: str
    naive: Variant
    fast: Variant
    background: bool  # the optimised variant answers 202 and a worker does the work


# name, what it shows, naive and fast methods, path template (the route's own), query string
_PAIRS = (
    ("stats", "statistics: 11 COUNT queries vs one aggregate", "GET", "GET", "/{v}/stats/{{org_id}}", ""),
    ("tickets", "ticket list: N+1 vs selectinload", "GET", "GET", "/{v}/tickets/{{org_id}}", ""),
    ("dashboard", "dashboard: computed vs cached", "GET", "GET", "/{v}/dashboard/{{org_id}}", ""),
    ("search", "ticket search: no usable index vs indexed", "GET", "GET", "/{v}/search",
     "?assignee_id={a}&status=open"),
    ("export", "export: in the request vs a job", "GET", "POST", "/{v}/export/{{org_id}}", ""),
    ("notify", "bulk notification: sent inline vs by a job", "POST", "POST", "/{v}/notify/{{org_id}}", ""),
)  # fmt: skip
BACKGROUND = ("export", "notify")


# what the Django project says differently: its ORM's eager loading
_DJANGO_TITLES = {"tickets": "ticket list: N+1 vs prefetch_related"}


def django_route(template: str) -> str:
    """The route label the Django project's metrics give `template`: its URL pattern, `"/" + route`."""
    return template.replace("{org_id}", "<int:org_id>")


def pairs(org: int, assignee: int, *, django: bool = False) -> list[Pair]:
    """Every pair's variants, with the route labels of the app that serves them (FastAPI or Django)."""
    out = []
    for name, title, naive_method, fast_method, template, query in _PAIRS:
        variants = []
        for v, method in (("naive", naive_method), ("fast", fast_method)):
            route = template.format(v=v)
            path = route.replace("{org_id}", str(org)) + query.format(a=assignee)
            variants.append(Variant(method, path, django_route(route) if django else route))
        title = _DJANGO_TITLES.get(name, title) if django else title
        out.append(Pair(name, title, variants[0], variants[1], background=name in BACKGROUND))
    return out


@dataclass(frozen=True)
class Load:
    users: int = 8
    duration: float = 4.0
    warmup: int = 3


Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: httpx.Client) -> Scrape:
    """The app's Prometheus exposition as {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/perf/metrics")
    response.raise_for_status()
    out: Scrape = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _sum(s: Scrape, name: str, match: Callable[[dict[str, str]], bool] = lambda _: True) -> float:
    return sum(v for (n, labels), v in s.items() if n == name and match(dict(labels)))


def in_flight(s: Scrape) -> float:
    return _sum(s, "perfkit_http_requests_in_flight")


def server_delta(before: Scrape, after: Scrape, route: str) -> dict[str, Any]:
    """What the server did for `route` between two scrapes."""

    def delta(name: str, match: Callable[[dict[str, str]], bool] = lambda _: True) -> float:
        return _sum(after, name, match) - _sum(before, name, match)

    on_route: Callable[[dict[str, str]], bool] = lambda labels: labels.get("route") == route  # noqa: E731
    requests = delta("perfkit_http_request_duration_seconds_count", on_route)
    queries = delta("perfkit_http_db_queries_total", on_route)
    size = delta("perfkit_http_response_size_bytes_sum", on_route)

    def gets(outcomes: tuple[str, ...], tier: str | None = None) -> float:
        """Reads of the demo's cache namespace with one of `outcomes` (in `tier`, if given)."""
        return delta(
            "perfkit_cache_operations_total",
            lambda lb: (
                lb.get("namespace") == CACHE_NAMESPACE
                and lb.get("op") == "get"
                and lb.get("outcome") in outcomes
                and (tier is None or lb.get("tier") == tier)
            ),
        )

    hits, misses = gets(("hit",)), gets(("miss", "error"), "l2")
    return {
        "server_requests": int(requests),
        "queries_per_request": round(queries / requests, 2) if requests else None,
        "payload_bytes": round(size / requests) if requests else None,
        "cache_hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
    }


def bench(url: str, method: str, load: Load, headers: list[str]) -> dict[str, Any]:
    """One closed-model run of `perfkit bench` against `url`: its JSON document."""
    parser = argparse.ArgumentParser()
    bench_command.add_arguments(parser)
    argv = [url, "-X", method, "--users", str(load.users), "--duration", f"{load.duration}s", "-q"]
    for header in headers:
        argv += ["-H", header]
    plan, _, label = bench_command.build_plan(parser.parse_args(argv))
    result = runner.run(plan)
    return schema.build(result.recorder, plan, label, result.started_at, result.elapsed)


HEADERS = ["Accept-Encoding: gzip, br"]  # what browsers send; the naive routes ignore it


def settled(client: httpx.Client, timeout: float = 30.0) -> Scrape:
    """A scrape taken once the requests the load generator abandoned at its deadline have finished, so
    they are counted in the run that sent them, not in the next."""
    deadline = time.monotonic() + timeout
    while True:
        s = scrape(client)
        if in_flight(s) <= 1 or time.monotonic() > deadline:  # 1: this scrape itself
            return s
        time.sleep(0.02)  # the app exposes no event to await over HTTP: poll its gauge, bounded


def measure_variant(client: httpx.Client, base: str, variant: Variant, load: Load) -> dict[str, Any]:
    for _ in range(load.warmup):  # not measured: connections, statement caches, the OS page cache
        client.request(variant.method, variant.path, headers=dict(h.split(": ", 1) for h in HEADERS))
    before = settled(client)
    doc = bench(base + variant.path, variant.method, load, HEADERS)
    after = settled(client)
    overall = doc["names"][schema.ALL]
    latency = overall["latency_ms"] or {}
    errors = overall["errors"]
    return {
        "path": variant.path,
        "method": variant.method,
        "requests": overall["requests"],
        "errors": errors,
        "throughput_rps": round(overall["rps"], 1),
        "p50_ms": latency.get("p50"),
        "p95_ms": latency.get("p95"),
        "p99_ms": latency.get("p99"),
        **server_delta(before, after, variant.route),
    }


def measure_pair(client: httpx.Client, base: str, pair: Pair, load: Load) -> dict[str, Any]:
    naive = measure_variant(client, base, pair.naive, load)
    fast = measure_variant(client, base, pair.fast, load)
    return {
        "name": pair.name,
        "title": pair.title,
        "background": pair.background,
        "naive": naive,
        "fast": fast,
    }
