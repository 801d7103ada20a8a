"""perfkit.otel's cost in a Django project: Django's test client (the WSGI handler, PerfkitMiddleware, one SQL
statement on SQLite in memory) with PERFKIT["otel"] off, on without an SDK, and on with the SDK (a
TracerProvider into an InMemorySpanExporter, a MeterProvider with an InMemoryMetricReader). The variants
run in one process, rounds alternated; CPU time per request, the median round, and what each adds to "off".

    python benchmarks/otel_django.py --requests 2000 --rounds 5
    valgrind --tool=callgrind python benchmarks/otel_django.py --only "otel on, no SDK" --requests 300
    (instructions per request: the difference between --requests 1300 and 300, divided by 1000)
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from django.conf import settings

import django

settings.configure(
    DEBUG=False, SECRET_KEY="bench", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, USE_TZ=True,
    INSTALLED_APPS=["perfkit.django"], MIDDLEWARE=["perfkit.django.PerfkitMiddleware"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    PERFKIT={"monitor": False},
)  # fmt: skip
django.setup()

from django.db import connection  # noqa: E402  (after setup)
from django.http import HttpResponse  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402


def item(request: Any, pk: int) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s", [pk])
        return HttpResponse(str(cursor.fetchone()[0]))


urlpatterns = [path("items/<int:pk>/", item)]


def variants() -> dict[str, dict[str, Any]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    sdk = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    return {
        "otel off": {"monitor": False},
        "otel on, no SDK": {"monitor": False, "otel": True},
        "otel on, SDK": {"monitor": False, "otel": sdk},
    }


def run(client: Client, requests: int) -> float:
    """CPU seconds per request."""
    start = time.process_time()
    for i in range(requests):
        client.get(f"/items/{i % 50}/")
    return (time.process_time() - start) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", help="run this variant alone, once, without printing (under callgrind)")
    args = parser.parse_args()
    client = Client()
    if args.only:
        with override_settings(PERFKIT=variants()[args.only]):
            run(client, args.requests)
        return
    found: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, perfkit in variants().items():
            with override_settings(PERFKIT=perfkit):
                run(client, 100)  # warm: the policies, the route table, the tracer
                found.setdefault(name, []).append(run(client, args.requests))
    base = statistics.median(found["otel off"])
    print(f"{'variant':<18} {'CPU µs/request':>15} {'added':>8}")
    for name, times in found.items():
        median = statistics.median(times)
        added = "" if name == "otel off" else f"{(median - base) * 1e6:+.1f}"
        print(f"{name:<18} {median * 1e6:>15.1f} {added:>8}")


if __name__ == "__main__":
    main()
