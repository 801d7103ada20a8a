"""WebConfig: env vars, validation, per-route rules; the fused stack's rate limiting."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

import perfkit
from perfkit.errors import ConfigurationError
from perfkit.metrics import Collector
from perfkit.web import RateLimit, Rule, WebConfig

from .conftest import make_starlette, requests


def test_env_vars_fill_unset_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """PERFKIT_* variables provide settings that were not passed explicitly."""
    monkeypatch.setenv("PERFKIT_SLOW_REQUEST", "250ms")
    monkeypatch.setenv("PERFKIT_RATE_LIMIT", "20/second")
    monkeypatch.setenv("PERFKIT_COMPRESS", "off")
    monkeypatch.setenv("PERFKIT_RATE_LIMIT_FAIL", "closed")
    config = WebConfig()
    assert config.slow_request == pytest.approx(0.25)
    assert config.default_limit == RateLimit(20, 1.0)
    assert config.compress is False
    assert config.rate_limit_fail == "closed"
    assert WebConfig(slow_request=2.0).slow_request == 2.0  # explicit wins


@pytest.mark.parametrize(
    ("var", "value"),
    [("PERFKIT_SLOW_REQUEST", "soon"), ("PERFKIT_RATE_LIMIT", "lots"), ("PERFKIT_RATE_LIMIT_FAIL", "maybe")],
)
def test_bad_env_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    """A bad value fails at start-up with a ConfigurationError naming the variable or setting."""
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError) as info:
        WebConfig()
    assert var.removeprefix("PERFKIT_").lower() in str(info.value).lower()


def test_rule_needs_a_selector() -> None:
    """A rule without path pattern or route name is refused."""
    with pytest.raises(ConfigurationError, match="rules"):
        Rule(cache_control="no-store")


def test_first_matching_rule_wins_and_methods_filter() -> None:
    """Rules are tried in order; a methods filter limits a rule to those methods."""
    config = WebConfig(
        rules=[
            Rule(path="/items/{id}", methods=frozenset({"POST"}), cache_control="a"),
            Rule(path="/items/*", cache_control="b"),
            Rule(path="*", cache_control="c"),
        ]
    )
    get = config.match("GET", "/items/1", None)
    post = config.match("POST", "/items/1", None)
    other = config.match("GET", "/x", None)
    assert (get and get.cache_control, post and post.cache_control, other and other.cache_control) == (
        "b",
        "a",
        "c",
    )


def test_fused_stack_refuses_over_limit(collector: Collector) -> None:
    """Through instrument(), the third request over a 2/minute limit is a 429 that is timed and counted."""
    app = perfkit.instrument(make_starlette(), config=WebConfig(rate_limit="2/minute"), collector=collector)
    c = TestClient(app)
    codes = [c.get("/items/1").status_code for _ in range(3)]
    refused = c.get("/items/1")
    assert codes == [200, 200, 429]
    assert refused.headers["retry-after"]
    assert refused.headers["ratelimit"].startswith('"/items/{item_id}";r=0')
    assert "server-timing" in refused.headers
    assert "x-request-id" in refused.headers
    assert requests(collector)[("GET", "/items/{item_id}", "4xx")] == 2
