"""Per-route Cache-Control policies."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from perfkit.web import CacheControlMiddleware, Rule, WebConfig

from .conftest import make_starlette

pytestmark = pytest.mark.usefixtures("framework")

RULES = [
    Rule(path="/static/*", cache_control="public, max-age=31536000, immutable"),
    Rule(name="item", cache_control="private, no-cache"),
    Rule(path="/own-cache", cache_control="public, max-age=60"),
    Rule(path="/boom", cache_control="public, max-age=60"),
]


def client() -> TestClient:
    app = make_starlette()
    app.add_middleware(CacheControlMiddleware, config=WebConfig(rules=RULES))
    return TestClient(app, raise_server_exceptions=False)


def test_policy_by_path_pattern() -> None:
    """Fingerprinted assets under /static/* get the immutable policy."""
    response = client().get("/static/app.3f2a.js")
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_policy_by_route_name() -> None:
    """A rule by route name applies to that route's paths."""
    assert client().get("/items/5").headers["cache-control"] == "private, no-cache"


def test_app_policy_kept_and_unmatched_untouched() -> None:
    """An app's own Cache-Control wins; routes without a rule get none."""
    c = client()
    assert c.get("/own-cache").headers["cache-control"] == "no-store"
    assert "cache-control" not in c.get("/").headers


def test_errors_and_posts_untouched() -> None:
    """Error responses and non-GET requests do not get the cacheable policy."""
    c = client()
    assert "cache-control" not in c.get("/boom").headers
    assert "cache-control" not in c.post("/echo", content=b"").headers
