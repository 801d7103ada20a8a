"""Lazy loading over HTTP: the endpoints in front of `perfkit.loader.Loader`s.

A loader is configured by name: `--loader "slides=myapp.loaders:slides_by_id max_batch=100"` (a Python
batch function `fn(keys) -> values`) or `--loader "slides=https://app.example/batch/slides"` (the
service POSTs `{"loader", "keys"}` and reads `{"values": [...]}` in key order, or `{key: value}`).
`POST /v1/loads` loads keys (one batch call for the keys of a request, critical ones first when a
batch is bounded), after other loads (`after`: their ids), with a fallback value on error or timeout;
An HTTP batch is signed as callback jobs are (`perfkit.serve.signing`: the loader's `secret_file=`,
else the service's callback secrets; `webhook-id` is a fresh `batch_...` per call), and a URL loader
without a secret is refused unless unsigned callbacks are allowed.
`GET /v1/loads/{id}` is a load's status; `POST /v1/loads/preload` warms keys at low priority.
Load statuses are kept in this process (the newest 10,000, for 10 minutes after they finish).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from perfkit.errors import ConfigurationError, PerfkitError
from perfkit.serve import schemas as s
from perfkit.serve.http import Request, Response, json_response
from perfkit.serve.problems import Problem
from perfkit.serve.signing import Secrets, read_secrets, require, signed_post
from perfkit.serve.specs import split_spec

KEEP, KEEP_FOR = 10_000, 600.0
_LOADER_OPTIONS = {
    "max_batch": int, "window": str, "timeout": float, "shared": str, "ttl": float, "secret_file": str,
}  # fmt: skip


class LoadCallbackError(Exception):
    """A loader's HTTP batch callback did not answer with the values."""


@dataclass
class LoadState:
    id: str
    loader: str
    key: str
    priority: str
    after: list[str]
    status: str = "waiting"
    value: Any = msgspec.UNSET
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    finished_at: float = 0.0

    def view(self) -> s.LoadStatus:
        return s.LoadStatus(
            self.id, self.loader, self.key, self.priority, self.status,  # type: ignore[arg-type]
            value=self.value, error=self.error, after=self.after,
        )  # fmt: skip


def _http_batch(name: str, url: str, holder: dict[str, Any], secrets: Secrets) -> Any:
    async def batch(keys: list[str]) -> Any:
        import httpx

        if holder.get("client") is None:
            holder["client"] = httpx.AsyncClient(timeout=30.0)
        body = {"loader": name, "keys": list(keys)}
        data, headers = signed_post(secrets, f"batch_{os.urandom(12).hex()}", body)
        response = await holder["client"].post(url, content=data, headers=headers)
        if response.status_code >= 300:
            raise LoadCallbackError(f"{url} answered {response.status_code}: {response.text[:200]}")
        values = response.json().get("values")
        if isinstance(values, list) and len(values) == len(keys):
            return values
        if isinstance(values, dict):
            return [values.get(k) for k in keys]
        raise LoadCallbackError(f"{url} answered without 'values' for {len(keys)} keys")

    batch.__qualname__ = name
    return batch


def parse_loader(
    spec: str,
    holder: dict[str, Any],
    caches: Callable[[str], Any],
    secrets: Secrets = Secrets(),  # noqa: B008 - frozen, empty
    allow_unsigned: bool = False,
) -> Any:
    """A `perfkit.loader.Loader` from `NAME=MODULE:FUNC|URL [max_batch=N] [window=D] [timeout=S]
    [shared=NAMESPACE ttl=S] [secret_file=PATH]`: `shared` keeps loaded values in that cache namespace
    for `ttl` seconds, across requests (what preloading warms). A URL's batches are signed with
    `secret_file`'s secrets, else `secrets`; with neither, refused unless `allow_unsigned`."""
    from perfkit.loader import Loader

    name, target, given = split_spec("loader", spec, _LOADER_OPTIONS, "NAME=MODULE:FUNC or NAME=URL")
    secret_file = given.pop("secret_file", None)
    options: dict[str, Any] = {}
    for key, value in given.items():
        try:
            options[key] = _LOADER_OPTIONS[key](value)
        except ValueError:
            raise ConfigurationError(
                "loader", f"{spec!r}: {key}={value!r} is not a {_LOADER_OPTIONS[key].__name__}"
            ) from None
    if target.startswith(("http://", "https://")):
        if secret_file:
            secrets = read_secrets(f"loader {name!r} secret_file", secret_file)
        require(secrets, f"loader {name!r}", allow_unsigned)
        fn = _http_batch(name, target, holder, secrets)
    elif secret_file is not None:
        raise ConfigurationError("loader", f"{spec!r}: secret_file= is for HTTP (URL) loaders")
    else:
        module_name, sep, attr = target.partition(":")
        if not sep:
            raise ConfigurationError(
                "loader", f"{spec!r}: the batch function is MODULE:FUNC or an http(s) URL"
            )
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError("loader", f"{spec!r}: cannot load {target}: {exc}") from None
    shared = options.pop("shared", None)
    if shared is not None:
        options["cache"] = caches(shared)
    elif "ttl" in options:
        raise ConfigurationError("loader", f"{spec!r}: ttl= needs shared=NAMESPACE")
    return Loader(fn, name=name, **options)


class LoadsService:
    """The configured loaders; HTTP ones signed with `secrets` unless they have their own."""

    def __init__(
        self,
        specs: tuple[str, ...],
        caches: Callable[[str], Any],
        secrets: Secrets = Secrets(),  # noqa: B008 - frozen, empty
        allow_unsigned: bool = False,
    ) -> None:
        self.holder: dict[str, Any] = {}
        self.loaders: dict[str, Any] = {}
        for spec in specs:
            loader = parse_loader(spec, self.holder, caches, secrets, allow_unsigned)
            name = spec.split("=", 1)[0]
            if name in self.loaders:
                raise ConfigurationError("loader", f"loader {name!r} is configured twice")
            self.loaders[name] = loader
        self.loads: OrderedDict[str, LoadState] = OrderedDict()
        self.tasks: set[asyncio.Task[None]] = set()
        self.fallbacks = 0

    def _loader(self, name: str) -> Any:
        loader = self.loaders.get(name)
        if loader is None:
            raise Problem(
                422, "unknown-loader", f"loader: no loader {name!r}; configured: {sorted(self.loaders)}",
                field="loader",
            )  # fmt: skip
        return loader

    def _remember(self, state: LoadState) -> None:
        self.loads[state.id] = state
        now = time.time()
        while self.loads and (len(self.loads) > KEEP or self._expired(next(iter(self.loads.values())), now)):
            self.loads.popitem(last=False)

    @staticmethod
    def _expired(state: LoadState, now: float) -> bool:
        return state.done.is_set() and now - state.finished_at > KEEP_FOR

    async def _one(self, loader: Any, state: LoadState, deps: list[LoadState], body: s.LoadRequest) -> None:
        try:
            async with asyncio.timeout(body.timeout):
                for dep in deps:
                    await dep.done.wait()
                    if dep.status == "failed":
                        raise LoadCallbackError(f"load {dep.id} it comes after failed: {dep.error}")
                state.status = "loading"
                state.value = await loader.load(state.key, priority=state.priority)
                state.status = "loaded"
        except (Exception, TimeoutError) as exc:
            error = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            state.error = error
            if body.fallback is not msgspec.UNSET:
                state.status, state.value = "fallback", body.fallback
                self.fallbacks += 1
            else:
                state.status = "failed"
        finally:
            state.finished_at = time.time()
            state.done.set()

    async def _run(
        self, loader: Any, states: list[LoadState], deps: list[LoadState], body: s.LoadRequest
    ) -> None:
        from perfkit.loader import scope

        async with scope():  # one request scope: the keys of this request share its batches
            await asyncio.gather(*(self._one(loader, st, deps, body) for st in states))

    def _start(self, body: s.LoadRequest) -> list[LoadState]:
        loader = self._loader(body.loader)
        deps = []
        for index, dep_id in enumerate(body.after):
            dep = self.loads.get(dep_id)
            if dep is None:
                raise Problem(
                    422, "unknown-load", f"after[{index}]: no load {dep_id!r}", field=f"after[{index}]"
                )
            deps.append(dep)
        states = [
            LoadState(f"load_{os.urandom(8).hex()}", body.loader, key, body.priority, list(body.after))
            for key in body.keys
        ]
        for state in states:
            self._remember(state)
        task = asyncio.create_task(self._run(loader, states, deps, body))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return states

    async def create(self, request: Request) -> Response:
        body = request.json(s.LoadRequest)
        states = self._start(body)
        if body.wait:
            for state in states:
                await state.done.wait()
        return json_response(s.Loads([st.view() for st in states]), 200 if body.wait else 202)

    async def preload(self, request: Request) -> Response:
        body = request.json(s.Preload)
        states = self._start(s.LoadRequest(body.loader, body.keys, priority=body.priority))
        return json_response(s.Loads([st.view() for st in states]), 202)

    async def status(self, request: Request) -> Response:
        state = self.loads.get(request.params["id"])
        if state is None:
            raise Problem(
                404, "unknown-load", f"no load {request.params['id']!r} (statuses are kept 10 minutes)"
            )
        return json_response(state.view())

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, loader in self.loaders.items():
            try:
                out[name] = loader.stats()
            except PerfkitError as exc:  # a loader that cannot report does not break /v1/metrics
                out[name] = {"error": str(exc)}
        return {"loaders": out, "fallbacks": self.fallbacks, "statuses_kept": len(self.loads)}

    async def loaders_stats(self, request: Request) -> Response:
        return json_response(s.LoaderStats(self.stats()["loaders"]))

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        client = self.holder.pop("client", None)
        if client is not None:
            await client.aclose()
