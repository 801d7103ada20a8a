"""Scenario files: weighted async tasks that act like users, with think times, names and checks.

    # scenario.py
    from perfkit.bench import check, task, think

    host = "http://127.0.0.1:8000"          # or pass --host

    @task(weight=3)
    async def browse(client):
        r = await client.get("/tickets", name="list")
        check(r.status == 200, "list is 200")
        await think(0.1)

    @task(weight=1)
    async def buy(client):
        r = await client.post("/orders", json={"ticket": 1}, name="order")
        check(r.status == 201, "order created")

Request names a threshold may refer to are read from the file without running it (the `name=`
literals, else `METHOD path` for literal paths); a module-level `names = [...]` adds dynamic ones.
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
import importlib.util
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from perfkit.bench.recorder import Recorder
from perfkit.errors import ConfigurationError

TaskFn = Callable[[Any], Awaitable[None]]
_METHODS = {"get": "GET", "post": "POST", "put": "PUT", "patch": "PATCH", "delete": "DELETE", "head": "HEAD"}

current_recorder: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar(
    "perfkit_bench_recorder", default=None
)


@overload
def task(weight: TaskFn, /) -> TaskFn: ...


@overload
def task(weight: int = 1) -> Callable[[TaskFn], TaskFn]: ...


def task(weight: int | TaskFn = 1) -> TaskFn | Callable[[TaskFn], TaskFn]:
    """Mark an async function `fn(client)` as a task, picked with probability proportional to weight.

    `@task` (weight 1), `@task()` and `@task(weight=3)` all work.
    """
    if callable(weight):  # used bare, as `@task`: the argument is the function itself
        return task(1)(weight)
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise ConfigurationError("task weight", f"{weight!r} must be an integer >= 1")

    def mark(fn: TaskFn) -> TaskFn:
        if not asyncio.iscoroutinefunction(fn):
            raise ConfigurationError("task", f"{getattr(fn, '__name__', fn)!r} must be an async function")
        fn.__perfkit_weight__ = weight  # type: ignore[attr-defined]  # a marker read by load_scenario
        return fn

    return mark


async def think(seconds: float) -> None:
    """A user's pause between actions."""
    await asyncio.sleep(seconds)


def check(ok: object, name: str) -> bool:
    """Record a named pass/fail on a response; returns the truth of `ok` so it can be used in an if."""
    passed = bool(ok)
    rec = current_recorder.get()
    if rec is not None:
        rec.check(name, passed)
    return passed


@dataclass
class Scenario:
    """A loaded scenario file."""

    path: str
    tasks: list[tuple[str, TaskFn, int]]
    host: str | None
    names: set[str] = field(default_factory=set)


def static_names(source: str) -> set[str]:
    """Request names used in a scenario, found without running it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        method = _METHODS.get(node.func.attr)
        name_kw = next((k for k in node.keywords if k.arg == "name"), None)
        if name_kw is not None:
            if isinstance(name_kw.value, ast.Constant) and isinstance(name_kw.value.value, str):
                names.add(name_kw.value.value)
        elif (
            method
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(f"{method} {node.args[0].value.split('?')[0]}")
    return names


def load_scenario(path: str) -> Scenario:
    """Import a scenario file and collect its tasks."""
    file = Path(path)
    if not file.exists():
        raise ConfigurationError(
            "target", f"{path!r} not found: give an http:// URL or an existing scenario file"
        )
    if not file.is_file():
        raise ConfigurationError("target", f"{path!r} is not a file: give an http:// URL or a scenario file")
    source = file.read_text()
    module_name = f"perfkit_scenario_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ConfigurationError("target", f"cannot import {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError("target", f"{path!r} failed to import: {type(exc).__name__}: {exc}") from exc
    tasks = [
        (name, obj, obj.__perfkit_weight__)
        for name, obj in vars(module).items()
        if callable(obj) and hasattr(obj, "__perfkit_weight__")
    ]
    if not tasks:
        raise ConfigurationError("target", f"{path!r} defines no @task functions")
    names = static_names(source) | {str(n) for n in getattr(module, "names", [])}
    host = getattr(module, "host", None)
    return Scenario(str(file), tasks, str(host) if host else None, names)
