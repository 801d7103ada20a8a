"""Measure each naive/optimised pair the same way: `perfkit bench` drives the load, and the app's own
monitoring endpoint (`/perf/metrics`) says what the server did — queries, bytes, cache hits.

Variants run one after the other, so the difference of the app's counters across a run is that
variant's alone. Latency and throughput are the load generator's (client side, coordinated-omission
corrected); queries per request, payload bytes and the cache hit ratio are the server's.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from perfkit.bench import command as bench_command
from perfkit.bench import runner
from perfkit.bench.report import schema


@dataclass(frozen=True)
class Pair:
    name: str
    title: str
    method: str
    naive: str
    fast: str
    naive_route: str  # the route template the app's metrics use
    fast_route: str


_PAIRS = (  # name, what it shows, method, path template (the route's own), query string
    ("stats", "statistics: 11 COUNT queries vs one aggregate", "GET", "/{v}/stats/{{org_id}}", ""),
    ("tickets", "ticket list with comments: N+1 vs selectinload", "GET", "/{v}/tickets/{{org_id}}", ""),
    ("dashboard", "organization dashboard: computed vs cached", "GET", "/{v}/dashboard/{{org_id}}", ""),
    (
        "search",
        "ticket search: no usable index vs indexed",
        "GET",
        "/{v}/search",
        "?assignee_id={a}&status=open",
    ),
    ("export", "report export: in the request vs a background job", "GET", "/{v}/export/{{org_id}}", ""),
    ("notify", "bulk notification: sent inline vs by a job", "POST", "/{v}/notify/{{org_id}}", ""),
)


def pairs(org: int, assignee: int) -> list[Pair]:
    out = []
    for name, title, method, template, query in _PAIRS:
        routes = [template.format(v=v) for v in ("naive", "fast")]
        paths = [r.replace("{org_id}", str(org)) + query.format(a=assignee) for r in routes]
        out.append(Pair(name, title, method, paths[0], paths[1], routes[0], routes[1]))
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


def server_delta(before: Scrape, after: Scrape, route: str) -> dict[str, Any]:
    """What the server did for `route` between two scrapes."""

    def delta(name: str, match: Callable[[dict[str, str]], bool] = lambda _: True) -> float:
        return _sum(after, name, match) - _sum(before, name, match)

    on_route: Callable[[dict[str, str]], bool] = lambda labels: labels.get("route") == route  # noqa: E731
    requests = delta("perfkit_http_request_duration_seconds_count", on_route)
    queries = delta("perfkit_http_db_queries_total", on_route)
    size = delta("perfkit_http_response_size_bytes_sum", on_route)
    hits = delta(
        "perfkit_cache_operations_total", lambda lb: lb.get("op") == "get" and lb.get("outcome") == "hit"
    )
    misses = delta(
        "perfkit_cache_operations_total",
        lambda lb: (
            lb.get("op") == "get" and lb.get("outcome") in ("miss", "error") and lb.get("tier") == "l2"
        ),
    )
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


def measure_variant(
    client: httpx.Client, base: str, method: str, path: str, route: str, load: Load
) -> dict[str, Any]:
    for _ in range(load.warmup):  # not measured: connections, statement caches, the OS page cache
        client.request(method, path, headers=dict(h.split(": ", 1) for h in HEADERS))
    before = scrape(client)
    doc = bench(base + path, method, load, HEADERS)
    after = scrape(client)
    overall = doc["names"][schema.ALL]
    latency = overall["latency_ms"] or {}
    errors = overall["errors"]
    return {
        "path": path,
        "method": method,
        "requests": overall["requests"],
        "errors": errors,
        "throughput_rps": round(overall["rps"], 1),
        "p50_ms": latency.get("p50"),
        "p95_ms": latency.get("p95"),
        "p99_ms": latency.get("p99"),
        **server_delta(before, after, route),
    }


def measure_pair(client: httpx.Client, base: str, pair: Pair, load: Load) -> dict[str, Any]:
    naive = measure_variant(client, base, pair.method, pair.naive, pair.naive_route, load)
    fast_method = "POST" if pair.name == "export" else pair.method
    fast = measure_variant(client, base, fast_method, pair.fast, pair.fast_route, load)
    return {"name": pair.name, "title": pair.title, "naive": naive, "fast": fast}
