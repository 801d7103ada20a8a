"""The cache endpoints: one value (PUT/GET/DELETE with ETags), batches, invalidation, a namespace.

Each namespace is one perfkit `Cache` (its keys `{ns}:<key>` on Redis), made on first use, at most
`max_namespaces` of them. Values are stored as `values.Stored`; `sensitive` ones encrypted at rest.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import defaultdict
from typing import Any

import msgspec

from perfkit.cache import Cache
from perfkit.errors import PerfkitError
from perfkit.serve import schemas as s
from perfkit.serve.config import ServeConfig
from perfkit.serve.http import Request, Response, json_response
from perfkit.serve.problems import Problem, problem_from
from perfkit.serve.purge import PurgeHook
from perfkit.serve.values import BYTES_KIND, JSON_KIND, Stored, etag_matches

NAMESPACE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
OCTETS = b"application/octet-stream"
_b64 = base64.b64encode


def _bool(request: Request, name: str) -> bool | None:
    raw = request.arg(name)
    if raw is None:
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise Problem(422, "validation", f"{name}: {raw!r} is not a boolean (true or false)", field=name)


def _write_from_query(request: Request) -> s.CacheWrite:
    """An octet-stream PUT: the options come from the query string, checked like a JSON body's."""
    options: dict[str, Any] = {"bytes": ""}
    ttl = request.arg("ttl")
    if ttl is not None:
        try:
            options["ttl"] = None if ttl in ("", "none") else float(ttl)
        except ValueError:
            raise Problem(
                422, "validation", f"ttl: {ttl!r} is not a number of seconds", field="ttl"
            ) from None
    tags = request.query.get("tag", []) + [
        t for v in request.query.get("tags", []) for t in v.split(",") if t
    ]
    if tags:
        options["tags"] = tags
    for name in ("compress", "sensitive"):
        flag = _bool(request, name)
        if flag is not None:
            options[name] = flag
    if request.arg("strategy") is not None:
        options["strategy"] = request.arg("strategy")
    try:
        return msgspec.convert(options, s.CacheWrite)
    except msgspec.ValidationError as exc:
        from perfkit.serve.problems import validation_problem

        raise validation_problem(exc) from None


class CacheService:
    def __init__(self, config: ServeConfig, purge: PurgeHook | None, observers: Any = ()) -> None:
        self.config = config
        self.purge = purge
        self.observers = tuple(observers)  # each namespace's cache reports to them (perfkit.otel)
        self.caches: dict[str, Cache] = {}

    def cache(self, namespace: str) -> Cache:
        cache = self.caches.get(namespace)
        if cache is not None:
            return cache
        if not NAMESPACE.match(namespace):
            raise Problem(
                422, "validation", f"namespace: {namespace!r} must be 1-64 of A-Z a-z 0-9 _ . -",
                field="namespace",
            )  # fmt: skip
        if len(self.caches) >= self.config.max_namespaces:
            raise Problem(
                422, "too-many-namespaces",
                f"namespace: this service holds at most {self.config.max_namespaces} namespaces",
                field="namespace",
            )  # fmt: skip
        cache = self.caches[namespace] = Cache(
            self.config.cache_url,
            namespace=namespace,
            default_ttl=self.config.default_ttl,
            compression=None,  # values.Stored compresses (per value: `compress`)
            encryption_keys=list(self.config.encryption_keys) or None,
            encrypt_all=False,
            on_error="raise",  # the caller hears that the backend is down (503), not a silent miss
            observers=self.observers,
        )
        return cache

    def _stored(self, write: s.CacheWrite, field: str = "") -> Stored:
        if write.sensitive and not self.config.encryption_keys:
            raise Problem(
                422, "no-encryption-key",
                f"{field}sensitive: this service has no encryption key (--encryption-key-file)",
                field=f"{field}sensitive",
            )  # fmt: skip
        has_value, has_bytes = write.value is not msgspec.UNSET, write.bytes is not msgspec.UNSET
        if has_value == has_bytes:
            raise Problem(
                422,
                "validation",
                f"{field}value: give 'value' or 'bytes', one of them",
                field=f"{field}value",
            )
        if has_bytes:
            try:
                data = base64.b64decode(str(write.bytes), validate=True)
            except (binascii.Error, ValueError):
                raise Problem(
                    422, "validation", f"{field}bytes: not valid base64", field=f"{field}bytes"
                ) from None
            return Stored.new(BYTES_KIND, data, self._ttl(write), write.strategy, write.tags)
        return Stored.new(
            JSON_KIND, msgspec.json.encode(write.value), self._ttl(write), write.strategy, write.tags
        )

    def _ttl(self, write: s.CacheWrite) -> float | None:
        if write.ttl is msgspec.UNSET:
            return self.config.default_ttl
        return write.ttl

    async def _set(self, cache: Cache, key: str, stored: Stored, write: s.CacheWrite) -> None:
        try:
            await cache.set(
                key, stored.pack(write.compress), self._ttl(write),
                tags=stored.tags or None, sensitive=write.sensitive,
            )  # fmt: skip
        except PerfkitError as exc:
            raise problem_from(exc) from None

    async def _get(self, cache: Cache, key: str) -> Stored | None:
        try:
            return Stored.unpack(await cache.get(key))
        except PerfkitError as exc:
            raise problem_from(exc) from None

    # -- endpoints ------------------------------------------------------------------------------------
    async def put(self, request: Request) -> Response:
        namespace, key = request.params["namespace"], request.params["key"]
        cache = self.cache(namespace)
        if request.content_type == OCTETS:
            write = _write_from_query(request)
            stored = Stored.new(BYTES_KIND, request.body, self._ttl(write), write.strategy, write.tags)
            if write.sensitive and not self.config.encryption_keys:
                self._stored(write)  # raises the no-key problem
        else:
            write = request.json(s.CacheWrite)
            stored = self._stored(write)
        await self._set(cache, key, stored, write)
        return Response(204, headers=[(b"etag", stored.etag.encode())])

    async def get(self, request: Request) -> Response:
        namespace, key = request.params["namespace"], request.params["key"]
        stored = await self._get(self.cache(namespace), key)
        if stored is None:
            raise Problem(404, "cache-miss", f"no value for key {key!r} in namespace {namespace!r}")
        headers = stored.headers()
        if etag_matches(request.header(b"if-none-match"), stored.etag):
            return Response(304, headers=headers)
        kind = b"application/json" if stored.kind == JSON_KIND else OCTETS
        return Response(200, stored.data, kind, headers)

    async def delete(self, request: Request) -> Response:
        namespace, key = request.params["namespace"], request.params["key"]
        try:
            deleted = await self.cache(namespace).delete(key)
        except PerfkitError as exc:
            raise problem_from(exc) from None
        return json_response(s.Deleted(deleted))

    async def batch_get(self, request: Request) -> Response:
        cache = self.cache(request.params["namespace"])
        body = request.json(s.BatchGet)
        try:
            found = await cache.get_many(body.keys)
        except PerfkitError as exc:
            raise problem_from(exc) from None
        values: dict[str, s.StoredValue] = {}
        for key, raw in found.items():
            stored = Stored.unpack(raw)
            if stored is None:
                continue
            if stored.kind == JSON_KIND:
                values[key] = s.StoredValue(stored.etag, value=msgspec.Raw(stored.data))
            else:
                values[key] = s.StoredValue(stored.etag, bytes=_b64(stored.data).decode())
        return json_response(s.BatchGetResult(values, [k for k in body.keys if k not in values]))

    async def batch_set(self, request: Request) -> Response:
        cache = self.cache(request.params["namespace"])
        body = request.json(s.BatchSet)
        groups: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(dict)
        written = []
        for index, item in enumerate(body.items):
            stored = self._stored(item, f"items[{index}].")
            ttl = self._ttl(item)
            groups[(ttl, tuple(item.tags), item.sensitive)][item.key] = stored.pack(item.compress)
            written.append(s.Written(item.key, stored.etag))
        try:
            for (ttl, tags, sensitive), mapping in groups.items():
                await cache.set_many(mapping, ttl, tags=list(tags) or None, sensitive=sensitive)
        except PerfkitError as exc:
            raise problem_from(exc) from None
        return json_response(s.BatchSetResult(written))

    async def invalidate(self, request: Request) -> Response:
        namespace = request.params["namespace"]
        cache = self.cache(namespace)
        body = request.json(s.Invalidate)
        if not body.tags and body.pattern is None:
            raise Problem(422, "validation", "tags: give tags, a pattern, or both", field="tags")
        removed = 0
        try:
            if body.tags:
                removed += await cache.invalidate_tags(body.tags)
            if body.pattern is not None:
                removed += await cache.delete_match(body.pattern)
        except PerfkitError as exc:
            problem = problem_from(exc)
            if body.pattern is not None and problem.status == 422:
                problem.field = "pattern"
            raise problem from None
        purged = self.purge is not None and self.purge.submit(namespace, list(body.tags), body.pattern)
        return json_response(s.Invalidated(removed, purged))

    async def clear(self, request: Request) -> Response:
        namespace = request.params["namespace"]
        try:
            removed = await self.cache(namespace).clear()
        except PerfkitError as exc:
            raise problem_from(exc) from None
        purged = self.purge is not None and self.purge.submit(namespace, [], "*")
        return json_response(s.Invalidated(removed, purged))

    def stats(self) -> dict[str, Any]:
        """Per namespace: the cache's counters (hits, misses, sets, ... per tier) and its hit ratio."""
        return {name: cache.stats().as_dict() for name, cache in self.caches.items()}

    async def close(self) -> None:
        for cache in self.caches.values():
            await cache.close()
        self.caches.clear()
