"""`perfkit demo --django`: the same demo as a Django project (uvicorn ASGI app, `perfkit_worker`), end to
end with real child processes, real load and real stores; and the same JSON as the FastAPI app."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

import httpx

from perfkit.demo import folder, processes
from perfkit.demo.prepare import prepare
from perfkit.demo.settings import SECRET_KEY_ENV, DemoSettings

from .test_command import SMALL, assert_optimised_do_less, run_demo


def assert_django_terms(doc: dict[str, Any]) -> None:
    """What only the Django project shows: routes are URL patterns, the fix is a QuerySet method."""
    assert doc["app"] == "django"
    report = doc["report"]
    assert "GET /naive/tickets/<int:org_id>" in report["found_many_queries"]
    fixes = [r["fix"] for r in report["recommendations"]]
    assert '.prefetch_related("comments")' in fixes, fixes


def test_quick_django_demo_on_the_embedded_default(tmp_path: Path) -> None:
    """The Django project on SQLite (scale 0.01): every pair measured, the optimised variants run fewer
    queries, the cached dashboard hits, the checks pass through the API (the write visible after ORM
    invalidation, the jobs' output identical), the report finds the N+1 by itself; exit 0."""
    doc = run_demo(tmp_path, "--django", *SMALL)
    assert doc["stores"] == {"database": "sqlite", "cache": "sqlite", "jobs": "sqlite", "monitor": "sqlite"}
    tickets = doc["pairs"][1]
    assert (tickets["naive"]["queries_per_request"], tickets["fast"]["queries_per_request"]) == (26, 2)
    assert_optimised_do_less(doc, p95=False)
    assert_django_terms(doc)


def test_quick_django_demo_on_postgres_and_redis(
    tmp_path: Path, demo_postgres_url: str, demo_redis_url: str
) -> None:
    """The Django project with its data on PostgreSQL (the demo's schema) and the cache, the jobs and the
    monitoring store on Redis: the same savings and checks (the write check through Redis)."""
    doc = run_demo(tmp_path, "--django", "--postgres", demo_postgres_url, "--redis", demo_redis_url, *SMALL)
    assert doc["stores"] == {"database": "postgresql", "cache": "redis", "jobs": "redis", "monitor": "redis"}
    assert_optimised_do_less(doc, p95=False)
    assert_django_terms(doc)


_GETS = [
    f"/{v}/{name}/3" for name in ("stats", "tickets", "dashboard", "export") for v in ("naive", "fast")
    if (v, name) != ("fast", "export")
] + ["/naive/search?assignee_id={a}&status=open", "/fast/search?assignee_id={a}&status=open"]  # fmt: skip


def _body(response: httpx.Response) -> Any:
    assert response.status_code == 200, (response.request.url, response.text[:300])
    json = response.headers["content-type"].startswith("application/json")
    return response.json() if json else response.text


def test_django_app_answers_what_the_fastapi_app_answers(tmp_path: Path) -> None:
    """On one seeded database, every GET of every pair (naive and fast) returns the same data from the
    Django project as from the FastAPI app; bad ids are a 422 naming the parameter, a missing ticket 404,
    a GET of a write 405."""
    stores = folder.claim(tmp_path / "stores")
    settings = DemoSettings.choose(stores, token="t0k", scale=0.01)
    prepared = asyncio.run(prepare(settings, redis_option=False))
    env = {**os.environ, **settings.environ(), SECRET_KEY_ENV: secrets.token_urlsafe(16)}
    ports = processes.free_port(), processes.free_port()
    children = []
    try:
        for port, django in zip(ports, (False, True), strict=True):
            name = "django" if django else "fastapi"
            children.append(processes.start_app(port, env, stores / f"{name}.log", django=django))
            processes.wait_until_up(children[-1], f"http://127.0.0.1:{port}/perf/health")
        fastapi, django_app = (httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=30) for p in ports)
        with fastapi, django_app:
            for path in (p.format(a=prepared["assignee"]) for p in _GETS):
                assert _body(django_app.get(path)) == _body(fastapi.get(path)), path
            too_big = django_app.get("/naive/stats/4294967296")
            assert too_big.status_code == 422 and "org_id" in too_big.json()["detail"]
            missing = django_app.post("/tickets/2147483647/status/open")
            assert missing.status_code == 404 and "no ticket" in missing.json()["detail"]
            assert django_app.post("/tickets/1/status/bogus").status_code == 422
            wrong = django_app.get("/tickets/1/status/open")  # a write is a POST
            assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    finally:
        processes.stop_all(list(children))
