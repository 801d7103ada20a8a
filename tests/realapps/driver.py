"""Drive a real app in-process with perfkit wired in, and print what the client saw next to what perfkit saw.

Runs INSIDE the app's virtual environment, in a writable copy of the app, with the app's environment:

    python driver.py --realapp <copy>/realapp.json --out result.json

It reads the framework's route table (before perfkit touches the app), wires perfkit in the way the README
says (`perfkit.instrument(app, engine=..., cache=..., config=...)`) with one rule per named GET route
(`Rule(name=..., cache_control=...)`, plus `cache_ttl` where the route has no path parameters), then sends
requests through the ASGI interface itself, timing each one to the last body byte (what a client on a
socket sees), and writes every request and perfkit's report as JSON for tests/realapps to assert on.

Traffic, from the app's own OpenAPI schema and realapp.json's `login` only (nothing app-specific):
create one resource per collection that has a POST (a body made from the schema), GET every GET route
(path parameters from the created resources), without credentials, with a bad token, with the login's
token, again without and with the bad token (and as a second user when the driver could create one
and log in as it); update the created resources (PUT/PATCH) and delete them.
Write requests only ever touch what the driver created.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import realapp_side  # beside this file: the script's folder is on sys.path

REPEAT = int(os.environ.get("PERFKIT_REALAPP_REPEAT", "20"))  # authenticated GETs per route
CONCURRENCY = int(os.environ.get("PERFKIT_REALAPP_CONCURRENCY", "4"))
BAD_TOKEN = "perfkit-realapps-not-a-token"
# Extra Rule keyword arguments for the response-cache rules, as JSON: the hook for perfkit's per-user
# opt-in (e.g. '{"cache_per_user": true}'). Set, checks.cache_respects_credentials allows a credentialed
# hit only when it replays that same client's own earlier answer.
# every statement is a slow-query finding (with its route and, once per shape, an EXPLAIN), so the route
# labels of findings are checked on all the traffic, not only on statements that happen to be slow
os.environ.setdefault("PERFKIT_SLOW_QUERY", "0.001ms")
CACHE_RULE_EXTRA = json.loads(os.environ.get("PERFKIT_REALAPP_CACHE_RULE") or "{}")
_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?}")


class Client:
    """A minimal in-process ASGI client: the app called directly, timed to the last body byte."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.records: list[dict[str, Any]] = []
        self._lifespan: asyncio.Task[None] | None = None
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def start(self) -> None:
        async def run() -> None:
            scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
            try:
                await self.app(scope, self._to_app.get, self._from_app.put)
            finally:
                await self._from_app.put({"type": "lifespan.done"})

        self._lifespan = asyncio.create_task(run())
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._from_app.get()
        if message["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"the app's startup failed: {message.get('message')}")

    async def stop(self) -> None:
        await self._to_app.put({"type": "lifespan.shutdown"})
        await self._from_app.get()
        if self._lifespan is not None:
            await self._lifespan

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        **note: Any,
    ) -> dict[str, Any]:
        headers = [(b"host", b"testserver"), (b"accept", b"application/json")]
        body = b""
        if token is not None:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.append((b"content-type", b"application/json"))
        elif form is not None:
            body = urlencode(form).encode()
            headers.append((b"content-type", b"application/x-www-form-urlencoded"))
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": headers, "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80), "state": {},
        }  # fmt: skip
        done = asyncio.Event()
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        start_msg: dict[str, Any] = {}
        chunks: list[bytes] = []
        last_byte = 0.0

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal last_byte
            if message["type"] == "http.response.start":
                start_msg.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    last_byte = time.perf_counter()
                    done.set()

        t0 = time.perf_counter()
        await self.app(scope, receive, send)
        returned = time.perf_counter()
        done.set()
        raw = b"".join(chunks)
        hdrs = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start_msg.get("headers", [])}
        record = {
            "method": method,
            "path": path,
            "status": start_msg.get("status"),
            "client_ms": round(((last_byte or returned) - t0) * 1000, 3),
            "return_ms": round((returned - t0) * 1000, 3),
            "cache_control": hdrs.get("cache-control"),
            "x_cache": hdrs.get("x-cache"),
            "vary": hdrs.get("vary"),
            "body_sha": hashlib.sha256(raw).hexdigest()[:16],
            **realapp_side.server_timing(hdrs.get("server-timing")),
            **note,
        }
        self.records.append(record)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return {**record, "json": parsed}


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def example(schema: dict[str, Any], spec: dict[str, Any], tag: str) -> Any:
    """A minimal valid value for a JSON schema: required properties only, strings long enough."""
    schema = _resolve(schema, spec)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(o, spec).get("type") != "null"]
            return example(options[0], spec, tag) if options else None
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: example(props[k], spec, tag) for k in schema.get("required", []) if k in props}
    if kind == "string":
        if schema.get("format") == "email":
            return f"{tag}@example.com"
        if "enum" in schema:
            return schema["enum"][0]
        text = f"{tag}-value"
        return (text * 4)[: max(len(text), int(schema.get("minLength", 0)))][: schema.get("maxLength", 255)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    return None


def body_for(spec: dict[str, Any], template: str, method: str, tag: str) -> Any:
    op = spec.get("paths", {}).get(template, {}).get(method.lower(), {})
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    return example(content["application/json"].get("schema", {}), spec, tag)


def _fill(template: str, values: dict[str, str]) -> str | None:
    names = _PARAM.findall(template)
    if any(n not in values for n in names):
        return None
    return _PARAM.sub(lambda m: values[m.group(1)], template)


def _created_id(body: Any, param: str) -> str | None:
    if isinstance(body, dict):
        for key in (param, "id"):
            if isinstance(body.get(key), str | int):
                return str(body[key])
    return None


def _own(api: list[dict[str, Any]], collection: str, param_ids: dict[str, str]) -> list[dict[str, Any]]:
    """The routes under `collection` addressed by the created resource's parameter (and no other)."""
    own = []
    for r in api:
        names = _PARAM.findall(r["template"])
        if r["template"].startswith(collection) and names and set(names) <= set(param_ids):
            own.append(r)
    return own


async def second_login(client: Client, login: dict[str, Any], created: Any) -> str | None:
    """A token for a user the driver just created, when its body had an email and a password: the
    login form with those in place of the first user's (`username`/`email` and `password` fields)."""
    if not isinstance(created, dict) or not isinstance(created.get("password"), str):
        return None
    email = next((v for v in created.values() if isinstance(v, str) and v.endswith("@example.com")), None)
    if email is None:
        return None
    form = dict(login["form"])
    for key in form:
        if key in ("username", "email", "login"):
            form[key] = email
        elif key == "password":
            form[key] = created["password"]
    answer = await client.request("POST", login["path"], form=form, role="login", phase="login")
    token = (answer["json"] or {}).get(login.get("token_field", "access_token"))
    return token if isinstance(token, str) and answer["status"] == 200 else None


def plan_rules(routes: list[dict[str, Any]], login_path: str) -> list[dict[str, Any]]:
    """Rules for the API's GET routes: a response cache by path pattern on those without parameters
    (`Rule(path=..., cache_ttl=60, cache_vary=("origin",))`: the credentials check; keyed on Origin
    because CORS middleware answers `Vary: Origin`, and a response varying on a header outside the key
    is never stored), and `Rule(name=..., cache_control=...)` on the named ones with parameters
    (names unique in the app): the by-name check."""
    counts: dict[str, int] = {}
    for r in routes:
        counts[r["name"]] = counts.get(r["name"], 0) + 1
    rules: list[dict[str, Any]] = []
    for r in routes:
        if "GET" not in r["methods"] or not r["api"] or r["template"] == login_path:
            continue
        if not _PARAM.search(r["template"]):
            rules.append(
                {"kind": "cache", "path": r["template"], "template": r["template"], "cache_ttl": 60.0,
                 "extra": CACHE_RULE_EXTRA}
            )  # fmt: skip
        elif r["name"] and counts[r["name"]] == 1:
            control = f"private, max-age={100 + len(rules)}"
            rules.append(
                {"kind": "name", "name": r["name"], "template": r["template"], "cache_control": control}
            )
    return rules


def make_rule(rule: dict[str, Any]) -> Any:
    from perfkit.web import Rule

    if rule["kind"] == "cache":
        extra = {**rule["extra"], "cache_vary": ("origin", *rule["extra"].get("cache_vary", ()))}
        return Rule(path=rule["path"], cache_ttl=rule["cache_ttl"], **extra)
    return Rule(name=rule["name"], cache_control=rule["cache_control"])


# C901: walks every route kind of a real app's spec in one place: a new kind is one more branch here
async def drive(  # noqa: C901
    app: Any, spec: dict[str, Any], routes: list[dict[str, Any]], realapp: dict[str, Any]
) -> Client:
    client = Client(app)
    await client.start()
    login = realapp["login"]
    answer = await client.request("POST", login["path"], form=login["form"], role="login", phase="login")
    token = (answer["json"] or {}).get(login.get("token_field", "access_token"))
    if not token:
        raise RuntimeError(f"login at {login['path']} gave no token: status {answer['status']}")
    tag = f"perfkit-realapps-{uuid.uuid4().hex[:8]}"
    api = [r for r in routes if r["api"]]
    gets = [r["template"] for r in api if "GET" in r["methods"]]
    # 1. one resource per collection with a POST (its body from the schema)
    ids: dict[str, dict[str, str]] = {}  # collection template -> {param: id}
    second: str | None = None  # a token of a second user, if the driver created one it can log in as
    for r in api:
        if "POST" not in r["methods"] or _PARAM.search(r["template"]) or r["template"] == login["path"]:
            continue
        children = [
            c for c in gets if c.startswith(r["template"]) and _PARAM.fullmatch(c[len(r["template"]) :])
        ]
        if not children:
            continue
        param = _PARAM.fullmatch(children[0][len(r["template"]) :]).group(1)  # type: ignore[union-attr]
        body = body_for(spec, r["template"], "POST", tag)
        made = await client.request(
            "POST", r["template"], token=token, json_body=body or {}, role="admin", phase="create"
        )
        created = _created_id(made["json"], param)
        if made["status"] in (200, 201) and created:
            ids[r["template"]] = {param: created}
            second = second or await second_login(client, login, body)
    values: dict[str, str] = {}
    for v in ids.values():
        values.update(v)
    targets = []  # (template, concrete path) of every GET we can fill in
    for t in gets:
        parent = next((c for c in ids if t.startswith(c) and _PARAM.fullmatch(t[len(c) :])), None)
        path = _fill(t, ids[parent] if parent else values) if _PARAM.search(t) else t
        if path is not None:
            targets.append((t, path))
    others = [("anon", None), ("invalid", BAD_TOKEN)] + ([("user2", second)] if second else [])
    # 2. before any request with the login's token: what the app answers the others
    for _, path in targets:
        for role, other in others:
            await client.request("GET", path, token=other, role=role, phase="before")
    # 3. the login's token, REPEAT times per route, CONCURRENCY at a time
    jobs = [path for _, path in targets for _ in range(REPEAT)]
    for i in range(0, len(jobs), CONCURRENCY):
        await asyncio.gather(
            *(
                client.request("GET", p, token=token, role="admin", phase="auth")
                for p in jobs[i : i + CONCURRENCY]
            )
        )
    # 4. the others again: each must get what the app answered it in (2), never the login's answer
    for _, path in targets:
        for role, other in others:
            await client.request("GET", path, token=other, role=role, phase="after")
    # 5. update and delete what (1) created
    for collection, param_ids in ids.items():
        for r in _own(api, collection, param_ids):
            path = str(_fill(r["template"], param_ids))
            for method in ("PUT", "PATCH"):
                if method in r["methods"]:
                    body = body_for(spec, r["template"], method, tag)
                    for _ in range(3):
                        await client.request(
                            method, path, token=token, json_body=body or {}, role="admin", phase="update"
                        )
    for collection, param_ids in ids.items():
        for r in _own(api, collection, param_ids):
            if "DELETE" in r["methods"]:
                path = str(_fill(r["template"], param_ids))
                await client.request("DELETE", path, token=token, role="admin", phase="delete")
    return client


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with open(args.realapp, encoding="utf-8") as fh:
        realapp = json.load(fh)
    app = realapp_side.load(realapp["app"])
    engine = realapp_side.load(realapp["engine"]) if realapp.get("engine") else None
    routes = realapp_side.app_routes(app)  # the framework's own view, before perfkit touches the app
    spec = app.openapi() if callable(getattr(app, "openapi", None)) else {}
    rules = plan_rules(routes, realapp["login"]["path"])

    import perfkit
    from perfkit import Cache
    from perfkit.web import WebConfig

    cache = Cache("memory://")
    config = WebConfig(rules=[make_rule(r) for r in rules])
    served = perfkit.instrument(app, engine=engine, cache=cache, config=config)
    handle = realapp_side.handle_of(served)
    client = await drive(served, spec, routes, realapp)
    view = await realapp_side.perfkit_view(handle)
    await client.stop()
    await cache.close()
    for r in client.records:
        r["expected"] = realapp_side.expected_template(routes, r["method"], r["path"])
    versions = {}
    for dist in ("fastapi", "starlette", "django", "sqlalchemy", "sqlmodel", "pydantic", "perfkit"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    versions["python"] = platform.python_version()
    return {"routes": routes, "rules": rules, "requests": client.records, "versions": versions, **view}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realapp", required=True, help="the app copy's realapp.json")
    parser.add_argument("--out", required=True, help="where to write the JSON")
    args = parser.parse_args()
    realapp_side.dump(args.out, asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
