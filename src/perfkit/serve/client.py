"""`ServeClient`: a Python client of `perfkit serve` (httpx, async, one keep-alive connection pool).

Every method is one endpoint of the OpenAPI document; an error answer raises `ServeError` carrying
the problem details (`status`, `problem["errors"][0]["field"]`). With OpenTelemetry installed
(`perfkit[otel]`), a call made while a span is current sends its W3C trace context (`traceparent`):
the service's span for it, and a job it queues, continue the caller's trace.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from perfkit.errors import PerfkitError


class ServeError(PerfkitError):
    """The service answered with a problem (RFC 9457): `status` and the `problem` document."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status, self.problem = status, problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")

    @property
    def field(self) -> str | None:
        errors = self.problem.get("errors") or []
        return errors[0].get("field") if errors else None


@functools.cache
def _injector() -> Callable[[dict[str, str]], None] | None:
    """perfkit.otel's trace-context injector, or None without opentelemetry-api (looked up once)."""
    try:
        from perfkit.otel.propagation import inject_current
    except ImportError:  # the otel extra is not installed: nothing to propagate
        return None
    return inject_current


class ServeClient:
    def __init__(
        self, base_url: str, token: str, *, namespace: str = "default", timeout: float = 10.0
    ) -> None:
        import httpx

        self.namespace = namespace
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers={"authorization": f"Bearer {token}"}, timeout=timeout
        )

    async def _call(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kw: Any) -> Any:
        inject = _injector()
        if inject is not None:
            context: dict[str, str] = {}
            inject(context)
            if context:
                kw["headers"] = {**(kw.get("headers") or {}), **context}
        response = await self.http.request(method, path, **kw)
        if response.status_code not in ok:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text}
            raise ServeError(response.status_code, problem)
        return response

    def _key(self, key: str, namespace: str | None) -> str:
        return f"/v1/cache/{quote(namespace or self.namespace, safe='')}/keys/{quote(key, safe='')}"

    def _ns(self, namespace: str | None) -> str:
        return f"/v1/cache/{quote(namespace or self.namespace, safe='')}"

    # -- cache ----------------------------------------------------------------------------------------
    async def set(self, key: str, value: Any, *, namespace: str | None = None, **options: Any) -> str:
        """Store a JSON value (ttl=, tags=, compress=, sensitive=, strategy=); returns its ETag."""
        body = {"value": value, **options}
        response = await self._call("PUT", self._key(key, namespace), json=body, ok=(204,))
        return str(response.headers["etag"])

    async def set_bytes(self, key: str, data: bytes, *, namespace: str | None = None, **options: Any) -> str:
        """Store opaque bytes as application/octet-stream (options in the query string)."""
        params = {k: (",".join(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else v)
                  for k, v in options.items()}  # fmt: skip
        response = await self._call(
            "PUT", self._key(key, namespace), content=data, params=params,
            headers={"content-type": "application/octet-stream"}, ok=(204,),
        )  # fmt: skip
        return str(response.headers["etag"])

    async def get(self, key: str, *, namespace: str | None = None, etag: str | None = None) -> Any:
        """The value (JSON decoded, or bytes); None on a miss; `...` (Ellipsis) when `etag` still matches."""
        headers = {"if-none-match": etag} if etag else {}
        response = await self._call("GET", self._key(key, namespace), headers=headers, ok=(200, 304, 404))
        if response.status_code == 404:
            return None
        if response.status_code == 304:
            return ...
        if response.headers.get("content-type", "").startswith("application/octet-stream"):
            return response.content
        return response.json()

    async def delete(self, key: str, *, namespace: str | None = None) -> bool:
        return bool((await self._call("DELETE", self._key(key, namespace))).json()["deleted"])

    async def get_many(self, keys: list[str], *, namespace: str | None = None) -> dict[str, Any]:
        """{key: value} for the keys present (bytes values decoded from base64)."""
        answer = (await self._call("POST", self._ns(namespace) + "/batch-get", json={"keys": keys})).json()
        return {
            k: base64.b64decode(v["bytes"]) if "bytes" in v else v.get("value")
            for k, v in answer["values"].items()
        }

    async def set_many(
        self, items: list[dict[str, Any]], *, namespace: str | None = None
    ) -> list[dict[str, str]]:
        answer = await self._call("POST", self._ns(namespace) + "/batch-set", json={"items": items})
        return list(answer.json()["written"])

    async def invalidate(
        self, *, tags: list[str] | None = None, pattern: str | None = None, namespace: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"tags": tags or []}
        if pattern is not None:
            body["pattern"] = pattern
        return dict((await self._call("POST", self._ns(namespace) + "/invalidate", json=body)).json())

    # -- jobs -----------------------------------------------------------------------------------------
    async def enqueue(self, type: str, *args: Any, **options: Any) -> dict[str, Any]:
        """Queue a job (priority=, delay=, key=, kwargs=); returns the job."""
        body = {"type": type, "args": list(args), **options}
        return dict((await self._call("POST", "/v1/jobs", json=body, ok=(201,))).json())

    async def job(self, job_id: str) -> dict[str, Any]:
        return dict((await self._call("GET", f"/v1/jobs/{quote(job_id, safe='')}")).json())

    async def jobs(self, **filters: Any) -> dict[str, Any]:
        return dict((await self._call("GET", "/v1/jobs", params=filters)).json())

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return dict((await self._call("DELETE", f"/v1/jobs/{quote(job_id, safe='')}")).json())

    async def claim(
        self, types: list[str], limit: int = 1, lease: float | None = None
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"types": types, "limit": limit}
        if lease is not None:
            body["lease"] = lease
        return list((await self._call("POST", "/v1/workers/claim", json=body)).json()["jobs"])

    async def heartbeat(self, job_id: str, token: int, **progress: Any) -> dict[str, Any]:
        path = f"/v1/jobs/{quote(job_id, safe='')}/heartbeat"
        return dict((await self._call("POST", path, json={"token": token, **progress})).json())

    async def complete(self, job_id: str, token: int, result: Any = None) -> dict[str, Any]:
        path = f"/v1/jobs/{quote(job_id, safe='')}/complete"
        return dict((await self._call("POST", path, json={"token": token, "result": result})).json())

    async def fail(self, job_id: str, token: int, error: str, *, retry: bool = True) -> dict[str, Any]:
        path = f"/v1/jobs/{quote(job_id, safe='')}/fail"
        return dict(
            (await self._call("POST", path, json={"token": token, "error": error, "retry": retry})).json()
        )

    # -- loads, ops -----------------------------------------------------------------------------------
    async def load(self, loader: str, keys: list[str], **options: Any) -> list[dict[str, Any]]:
        body = {"loader": loader, "keys": keys, **options}
        return list((await self._call("POST", "/v1/loads", json=body, ok=(200, 202))).json()["loads"])

    async def load_status(self, load_id: str) -> dict[str, Any]:
        return dict((await self._call("GET", f"/v1/loads/{quote(load_id, safe='')}")).json())

    async def preload(self, loader: str, keys: list[str], **options: Any) -> list[dict[str, Any]]:
        body = {"loader": loader, "keys": keys, **options}
        return list((await self._call("POST", "/v1/loads/preload", json=body, ok=(202,))).json()["loads"])

    async def metrics(self) -> dict[str, Any]:
        return dict((await self._call("GET", "/v1/metrics")).json())

    async def health(self) -> dict[str, Any]:
        return dict((await self._call("GET", "/v1/health", ok=(200, 503))).json())

    async def report(self, window: float | None = None) -> dict[str, Any]:
        params = {"window": window} if window else {}
        return dict((await self._call("GET", "/v1/reports", params=params)).json())

    async def openapi(self) -> dict[str, Any]:
        return dict((await self._call("GET", "/v1/openapi.json")).json())

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> ServeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
