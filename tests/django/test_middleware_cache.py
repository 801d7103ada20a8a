"""The GET response cache and request coalescing of PerfkitMiddleware (sync test client): hits, the
credentials rule (two users, cookies: never the other's page), per-user entries, what is never stored."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from perfkit.errors import ConfigurationError
from tests.django import web_views
from tests.django.web_support import TEST_CACHE, configure

pytestmark = [pytest.mark.urls("tests.django.web_urls")]


@pytest.fixture
def perfkit(settings: Any) -> Any:
    """Django's settings with perfkit's middleware installed (`web_support.configure`)."""
    return configure(settings)


@pytest.fixture
def cached(perfkit: Any) -> Any:
    """A perfkit cache behind CACHES['default'] and the ticket, whoami and cookie views cached."""
    perfkit.CACHES = {"default": TEST_CACHE}
    perfkit.PERFKIT = {
        "rules": [
            {"name": "ticket-detail", "cache_ttl": 60, "cache_tags": ("ticket:{pk}",)},
            {"name": "whoami", "cache_ttl": 60},
            {"name": "cookie", "cache_ttl": 60},
        ]
    }
    web_views.calls.clear()
    return perfkit


@pytest.fixture
def users(db: Any) -> tuple[Client, Client]:
    """Two logged-in clients (session cookies), alice and bob."""
    alice, bob = Client(), Client()
    alice.force_login(User.objects.create_user("alice"))
    bob.force_login(User.objects.create_user("bob"))
    return alice, bob


def test_hit_after_miss(client: Any, cached: Any) -> None:
    """The second GET is answered from the cache (X-Cache: HIT, Age) without running the view."""
    first = client.get("/tickets/9/")
    assert first["X-Cache"] == "MISS" and first.json() == {"ticket": 9, "run": 1}
    second = client.get("/tickets/9/")
    assert second["X-Cache"] == "HIT" and second.json() == {"ticket": 9, "run": 1}
    assert int(second["Age"]) >= 0 and second["Content-Type"] == "application/json"
    assert "Server-Timing" in second and second["X-Request-ID"] != first["X-Request-ID"]
    assert web_views.calls["ticket:9"] == 1
    assert client.get("/tickets/10/").json()["run"] == 1  # another path, another entry


def test_tags_evict(client: Any, cached: Any) -> None:
    """`cache_tags` are formatted with the view's arguments: invalidating the tag evicts the entry."""
    from django.core.cache import caches

    client.get("/tickets/4/")
    assert client.get("/tickets/4/")["X-Cache"] == "HIT"
    caches["default"].perfkit_cache.sync.invalidate_tags(["ticket:4"])
    again = client.get("/tickets/4/")
    assert again["X-Cache"] == "MISS" and again.json()["run"] == 2


def test_the_query_string_is_in_the_key(client: Any, cached: Any) -> None:
    """`?a=1` and `?a=2` are different entries."""
    assert client.get("/tickets/3/?a=1").json()["run"] == 1
    assert client.get("/tickets/3/?a=2").json()["run"] == 2
    assert client.get("/tickets/3/?a=1")["X-Cache"] == "HIT"


def test_logged_in_users_bypass_by_default(cached: Any, users: tuple[Client, Client]) -> None:
    """Requests with Django's session cookie bypass the cache: each user gets their own page, always
    from the view, and nothing they see is stored for anyone."""
    alice, bob = users
    anonymous = Client()
    for _ in range(2):
        a, b = alice.get("/whoami/"), bob.get("/whoami/")
        assert (a.content, a["X-Cache"]) == (b"page of alice", "BYPASS")
        assert (b.content, b["X-Cache"]) == (b"page of bob", "BYPASS")
    assert web_views.calls["whoami"] == 4
    first = anonymous.get("/whoami/")
    assert (first.content, first["X-Cache"]) == (b"page of anonymous", "MISS")
    assert anonymous.get("/whoami/")["X-Cache"] == "HIT"
    # and the anonymous entry is never given to a logged-in user
    assert alice.get("/whoami/").content == b"page of alice"


def test_authorization_header_bypasses(client: Any, cached: Any) -> None:
    """An Authorization header is a credential too: bypassed unless the rule keys on it."""
    first = client.get("/tickets/1/", headers={"Authorization": "Bearer one"})
    assert first["X-Cache"] == "BYPASS"
    assert client.get("/tickets/1/", headers={"Authorization": "Bearer one"})["X-Cache"] == "BYPASS"
    assert web_views.calls["ticket:1"] == 2


def test_per_user_entries(cached: Any, users: tuple[Client, Client]) -> None:
    """`cache_per_user=True` keys by `request.user`: each user has an entry of their own, and an
    anonymous request never meets one."""
    cached.PERFKIT = {"rules": [{"name": "whoami", "cache_ttl": 60, "cache_per_user": True}]}
    alice, bob = users
    assert alice.get("/whoami/")["X-Cache"] == "MISS"
    assert bob.get("/whoami/").content == b"page of bob"
    hit = alice.get("/whoami/")
    assert (hit.content, hit["X-Cache"]) == (b"page of alice", "HIT")
    assert bob.get("/whoami/").content == b"page of bob"
    assert Client().get("/whoami/").content == b"page of anonymous"
    assert web_views.calls["whoami"] == 3


def test_vary_on_authorization_keys_each_token(client: Any, cached: Any) -> None:
    """`cache_vary=("authorization",)` gives each token its own entry."""
    cached.PERFKIT = {"rules": [{"name": "ticket-detail", "cache_ttl": 60, "cache_vary": ("authorization",)}]}
    one = {"Authorization": "Bearer one"}
    assert client.get("/tickets/2/", headers=one)["X-Cache"] == "MISS"
    assert client.get("/tickets/2/", headers=one)["X-Cache"] == "HIT"
    other = client.get("/tickets/2/", headers={"Authorization": "Bearer two"})
    assert other["X-Cache"] == "MISS" and other.json()["run"] == 2


def test_a_response_that_sets_a_cookie_is_never_stored(client: Any, cached: Any) -> None:
    """A cookie issued to one client is never replayed to another."""
    for _ in range(2):
        response = Client().get("/cookie/")  # a new client each time: no cookie sent back
        assert response["X-Cache"] == "MISS" and response.cookies["issued"].value == "to-one-client"
    assert web_views.calls["cookie"] == 2


def test_a_cache_rule_without_a_perfkit_cache_fails_at_start_up(client: Any, perfkit: Any) -> None:
    """Rules with cache_ttl over a cache alias that is not perfkit's raise ConfigurationError naming
    PERFKIT['cache'] when the middleware is loaded."""
    perfkit.PERFKIT = {"rules": [{"name": "hello", "cache_ttl": 60}]}  # CACHES: Django's LocMemCache
    with pytest.raises(ConfigurationError) as err:
        client.get("/hello/")
    assert err.value.setting == "PERFKIT['cache']"


def test_coalescing_threads_share_one_view_run(perfkit: Any) -> None:
    """Concurrent identical GETs (WSGI threads) on a coalesced route run the view once and all get its
    response."""
    perfkit.PERFKIT = {"rules": [{"name": "slow", "coalesce": True}]}
    web_views.calls.clear()
    web_views.gate.clear()
    bodies: list[bytes] = []

    def fetch() -> None:
        bodies.append(Client().get("/slow/").content)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    try:
        threads[0].start()
        for _ in range(500):  # the leader is in the view before the others come
            if web_views.calls.get("slow"):
                break
            threading.Event().wait(0.01)
        for t in threads[1:]:
            t.start()
        threading.Event().wait(0.2)  # (a bounded pause: the followers reach the in-flight table)
    finally:
        web_views.gate.set()
        for t in threads:
            t.join(10)
    assert bodies == [b"slow run 1"] * 4
    assert web_views.calls["slow"] == 1


def test_the_test_backend_takes_django_timeouts(cached: Any) -> None:
    """tests' PerfkitTestCache reads Django timeouts as seconds: default and None keep the value, 0 none."""
    from django.core.cache import caches

    cache = caches["default"]
    cache.set("default", 1)
    cache.set("forever", 2, timeout=None)
    cache.set("ten", 3, timeout=10)
    cache.set("ten", 3, timeout=0)  # 0: not kept (and what was there goes)
    assert [cache.get(k) for k in ("default", "forever", "ten")] == [1, 2, None]
