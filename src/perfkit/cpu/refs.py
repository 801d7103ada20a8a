"""How a function crosses to a worker process: by its module and qualified name, never its code.

A function registered with `@jobs.task(cpu=True)` is replaced in its module by the `Task`, which pickle
would refuse ("not the same object"), so the worker resolves `module.qualname` itself and unwraps the
object it finds (`__wrapped__`, which `Task` and `functools.wraps` set) down to a plain function.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from perfkit.errors import InvalidArgumentError

__all__ = ["check_function", "reference", "resolve"]

Ref = tuple[str, str]


def check_function(fn: Any, what: str = "function") -> Callable[..., Any]:
    """`fn` unwrapped, if it can run in a worker process: a plain, module-level, synchronous function."""
    fn = inspect.unwrap(fn) if hasattr(fn, "__wrapped__") else fn
    if not (inspect.isfunction(fn) or inspect.isbuiltin(fn)):
        raise InvalidArgumentError(f"{what} {fn!r} cannot run in a worker process: it is not a function")
    if inspect.iscoroutinefunction(fn):
        raise InvalidArgumentError(
            f"{what} {fn.__qualname__} is async; a worker process runs plain functions"
        )
    if "<locals>" in fn.__qualname__ or "<lambda>" in fn.__qualname__:
        raise InvalidArgumentError(
            f"{what} {fn.__qualname__} is a lambda or a nested function; a worker process imports it "
            "by name, so define it at module level"
        )
    return fn


def reference(fn: Callable[..., Any]) -> Ref:
    """(module, qualname) of a function `check_function` accepted."""
    return fn.__module__, fn.__qualname__


def resolve(ref: Ref) -> Callable[..., Any]:
    """The function `ref` names, imported in this (worker) process."""
    module, qualname = ref
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    while not inspect.isfunction(obj) and hasattr(obj, "__wrapped__"):
        obj = obj.__wrapped__
    return obj  # type: ignore[no-any-return]
