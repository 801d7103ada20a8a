"""Lazy loading over HTTP with perfkit.loader: one batch call per request, load statuses, `after`
dependencies, fallbacks, preloading into a shared cache, and the loaders' metrics."""

from __future__ import annotations

from typing import Any

import pytest

from perfkit.serve import ServeClient
from tests.conftest import eventually
from tests.serve._server import Receiver
from tests.serve.conftest import HAS_LOADER

pytestmark = pytest.mark.skipif(not HAS_LOADER, reason="perfkit.loader is not in this tree")


def batches(receiver: Receiver, path: str, keys: list[str]) -> list[list[str]]:
    """The batch calls made to `path` that hold any of `keys`."""
    return [b["keys"] for p, b in receiver.posts if p == path and set(b["keys"]) & set(keys)]


async def status_is(app: ServeClient, load_id: str, *wanted: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen.update(await app.load_status(load_id))
        return seen["status"] in wanted

    await eventually(reached, timeout=10, what=f"load {load_id} {wanted}", max_interval=0.05)
    return seen


async def test_the_keys_of_one_request_are_one_batch_call(app: ServeClient, receiver: Receiver) -> None:
    """Three keys loaded by one request: one POST to the batch URL with all three, values in order."""
    keys = [f"{app.namespace}-{i}" for i in range(3)]
    loads = await app.load("slides", keys, wait=True, priority="high")
    assert [ld["value"] for ld in loads] == [f"value of {k}" for k in keys]
    assert {ld["status"] for ld in loads} == {"loaded"} and loads[0]["priority"] == "high"
    assert batches(receiver, "/batch/slides", keys) == [keys]


async def test_a_load_answers_at_once_and_its_status_follows(app: ServeClient) -> None:
    """Without wait, 202 with ids; GET /v1/loads/{id} then shows it loaded with its value."""
    response = await app.http.post("/v1/loads", json={"loader": "slides", "keys": [f"{app.namespace}-x"]})
    assert response.status_code == 202
    load = response.json()["loads"][0]
    assert load["status"] in ("waiting", "loading", "loaded")
    done = await status_is(app, load["id"], "loaded")
    assert done["value"] == f"value of {app.namespace}-x"


async def test_after_waits_for_the_loads_it_names(app: ServeClient, receiver: Receiver) -> None:
    """A load `after` another starts its batch only once that one is done."""
    first = (await app.load("slides", [f"{app.namespace}-first"]))[0]
    second = (await app.load("slides", [f"{app.namespace}-second"], after=[first["id"]], wait=True))[0]
    assert second["status"] == "loaded" and second["after"] == [first["id"]]
    assert (await app.load_status(first["id"]))["status"] == "loaded"
    order = [
        b["keys"][0]
        for p, b in receiver.posts
        if p == "/batch/slides" and b["keys"][0].startswith(app.namespace)
    ]
    assert order == [f"{app.namespace}-first", f"{app.namespace}-second"]


async def test_a_failed_load_gives_its_fallback_and_is_counted(app: ServeClient, admin: ServeClient) -> None:
    """A batch callback that answers without values: the load fails, or gives `fallback` when one is set."""
    before = (await admin.metrics())["loads"]["fallbacks"]
    failed, with_fallback = (
        await app.load("broken", ["a"], wait=True),
        await app.load("broken", ["b"], wait=True, fallback={"placeholder": True}),
    )
    assert failed[0]["status"] == "failed" and "without 'values'" in failed[0]["error"]
    assert with_fallback[0]["status"] == "fallback" and with_fallback[0]["value"] == {"placeholder": True}
    assert (await admin.metrics())["loads"]["fallbacks"] == before + 1


async def test_preload_warms_the_shared_cache(app: ServeClient, receiver: Receiver) -> None:
    """Preloaded keys are in the loader's shared cache: a later load of them makes no batch call."""
    keys = [f"{app.namespace}-w{i}" for i in range(2)]
    preloaded = await app.preload("warm", keys)
    for load in preloaded:
        await status_is(app, load["id"], "loaded")
    assert batches(receiver, "/batch/warm", keys) == [keys]
    again = await app.load("warm", keys, wait=True)
    assert [ld["value"] for ld in again] == [f"value of {k}" for k in keys]
    assert batches(receiver, "/batch/warm", keys) == [keys]  # served from the shared cache
    stats = (await app.http.get("/v1/loaders")).json()["loaders"]["warm"]
    assert stats["shared_hits"] >= 2 and stats["batches"] >= 1


async def test_bad_loads_name_the_field(app: ServeClient) -> None:
    """An unknown loader, an unknown `after` id or a bad priority: 422 naming the field."""
    for body, field in [
        ({"loader": "nope", "keys": ["a"]}, "loader"),
        ({"loader": "slides", "keys": ["a"], "after": ["load_missing"]}, "after[0]"),
        ({"loader": "slides", "keys": ["a"], "priority": "urgent"}, "priority"),
        ({"loader": "slides", "keys": []}, "keys"),
    ]:
        response = await app.http.post("/v1/loads", json=body)
        assert response.status_code == 422, body
        assert response.json()["errors"][0]["field"] == field
    assert (await app.http.get("/v1/loads/load_nothing")).status_code == 404
