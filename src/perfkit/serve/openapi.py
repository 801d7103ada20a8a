"""The OpenAPI 3.1 document of the service, built from the route table and the msgspec structs.

Nothing is written twice: paths, methods, scopes and parameters come from the `Route`s that dispatch;
bodies from `msgspec.json.schema_components` of the structs the handlers decode and encode (JSON Schema
2020-12, the dialect of OpenAPI 3.1). The TypeScript client's types are generated from this document
(`perfkit.serve.tsgen`), and the test suite validates it (openapi-spec-validator).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from perfkit import __version__
from perfkit.serve import schemas as s
from perfkit.serve.http import Route

REF = "#/components/schemas/{name}"
OCTETS = {"type": "string", "contentMediaType": "application/octet-stream"}
PROBLEM = {"application/problem+json": {"schema": {"$ref": REF.format(name="Problem")}}}
_PARAM = re.compile(r"\{([^}]+?)(?:\.\.\.)?\}")
_ERRORS = {
    "400": "malformed request", "401": "no valid bearer token", "403": "the token's scope is too low",
    "413": "the body is over the size limit", "422": "a field is invalid (`errors[].field` names it)",
    "429": "the token is over its rate limit (see Retry-After)", "503": "a backend is unavailable",
}  # fmt: skip


def _types(routes: list[Route]) -> list[Any]:
    found: list[Any] = [s.Problem, s.CacheWrite]
    for route in routes:
        for t in (route.request, route.response):
            if isinstance(t, type) and t not in found:
                found.append(t)
    return found


def _operation(route: Route) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.template)
    ]
    params += [
        {"name": name, "in": "query", "required": False, "schema": {"type": kind}, "description": text}
        for name, kind, text in route.query
    ]
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "security": [] if not route.scope else [{"bearer": [route.scope]}],
        "x-perfkit-scope": route.scope or "open",
        "responses": {},
    }
    if route.users:
        op["description"] = f"Answers the users' `{route.users}`."
    if params:
        op["parameters"] = params
    if route.request == "value":
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": REF.format(name="CacheWrite")}},
                "application/octet-stream": {"schema": OCTETS},
            },
        }  # fmt: skip
    elif isinstance(route.request, type):
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(name=route.request.__name__)}}},
        }
    ok: dict[str, Any] = {"description": "OK"}
    if route.response == "value":
        ok["content"] = {
            "application/json": {"schema": {}},
            "application/octet-stream": {"schema": OCTETS},
        }  # fmt: skip
        ok["headers"] = {
            "ETag": {"schema": {"type": "string"}},
            "Cache-Control": {"schema": {"type": "string"}},
        }
        op["responses"]["304"] = {"description": "Not Modified (If-None-Match matched the ETag)"}
    elif route.response == "text":
        ok["content"] = {
            "application/json": {"schema": {"type": "object"}},
            "text/plain": {"schema": {"type": "string"}},
        }
    elif route.response == "object":
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    elif isinstance(route.response, type):
        ok["content"] = {"application/json": {"schema": {"$ref": REF.format(name=route.response.__name__)}}}
    if route.status == 204:
        ok = {"description": "No Content", "headers": {"ETag": {"schema": {"type": "string"}}}}
    op["responses"][str(route.status)] = ok
    if route.request is not None or params:
        op["responses"]["404"] = {"description": "not found", "content": PROBLEM}
    for code, text in _ERRORS.items():
        if code in ("400", "413") and route.request is None:
            continue
        if code in ("401", "403", "429") and not route.scope:
            continue
        op["responses"][code] = {"description": text, "content": PROBLEM}
    return op


def document(routes: list[Route]) -> dict[str, Any]:
    _, components = msgspec.json.schema_components(_types(routes), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", route.template)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "perfkit serve",
            "version": __version__,
            "description": "perfkit's cache, job queue and monitor over HTTP (see docs/service.md).",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "From --token-file or PERFKIT_SERVE_TOKENS; scopes read < write < admin.",
                }
            },
        },
    }
