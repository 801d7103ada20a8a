"""`@cache.cached(...)`: one decorator for async and plain functions.

Keys come from a template over the function's parameters (`key="user:{user_id}"`, checked against the
signature when decorating, so a typo fails at import time, not at the first call) or, without one,
from `<key_prefix or module.qualname>:<repr of the arguments>`. Plain functions go through the cache's
sync facade; an L1 hit never leaves the calling thread.
"""

from __future__ import annotations

import functools
import inspect
import string
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from perfkit.cache.keys import TTL, Unset, check_tags
from perfkit.errors import InvalidArgumentError

if TYPE_CHECKING:
    from perfkit.cache.cache import Cache

KeyBuilder = Callable[[tuple[Any, ...], dict[str, Any]], str]


def _template_fields(template: str) -> set[str]:
    names = set()
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None:
            head = field.split(".", 1)[0].split("[", 1)[0]
            if not head or head.isdigit():
                raise InvalidArgumentError(f"key template {template!r}: use parameter names, not positions")
            names.add(head)
    return names


def _binder(fn: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]:
    """Maps a call's arguments to parameter names; positional-only calls take a fast path."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    simple = all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    names = tuple(p.name for p in params)
    defaults = {p.name: p.default for p in params if p.default is not p.empty}

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if simple and not kwargs and len(args) <= len(names):
            values = dict(defaults)
            values.update(zip(names, args, strict=False))
            return values
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    return bind


def _positional(fn: Callable[..., Any], template: str) -> str | None:
    """`"user:{user_id}"` as `"user:{0}"` when every parameter is positional, for `str.format(*args)`."""
    params = list(inspect.signature(fn).parameters.values())
    if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
        return None
    index = {p.name: i for i, p in enumerate(params)}
    out = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if field is None:
            continue
        head = field.split(".", 1)[0].split("[", 1)[0]
        out.append(
            "{"
            + str(index[head])
            + field[len(head) :]
            + (f"!{conversion}" if conversion else "")
            + (f":{spec}" if spec else "")
            + "}"
        )
    return "".join(out)


def _template(fn: Callable[..., Any], template: str, what: str) -> KeyBuilder:
    missing = _template_fields(template) - set(inspect.signature(fn).parameters)
    if missing:
        raise InvalidArgumentError(
            f"{what} {template!r} of {fn.__qualname__} names {sorted(missing)}, which are not its parameters"
        )
    bind = _binder(fn)
    fmt = template.format_map
    positional = _positional(fn, template)
    if positional is None:
        return lambda args, kwargs: fmt(bind(args, kwargs))
    n = len(inspect.signature(fn).parameters)
    fast = positional.format

    def build(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if not kwargs and len(args) == n:  # the common call: every argument given positionally
            return fast(*args)
        return fmt(bind(args, kwargs))

    return build


def key_builder(fn: Callable[..., Any], key: str | None, key_prefix: str | None) -> KeyBuilder:
    if key is not None:
        build = _template(fn, key, "key")
        if key_prefix:
            return lambda args, kwargs: f"{key_prefix}:{build(args, kwargs)}"
        return build
    head = key_prefix or f"{fn.__module__}.{fn.__qualname__}"
    bind = _binder(fn)

    def default_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if not kwargs:
            return f"{head}:{':'.join(map(repr, args))}"
        values = bind(args, kwargs)
        return f"{head}:{':'.join(repr(v) for v in values.values())}"

    return default_key


class CachedFunction:
    """The wrapped function, plus `key(*args)` and `invalidate(*args)` for the entry a call would use."""

    __wrapped__: Callable[..., Any]
    key: Callable[..., str]
    invalidate: Callable[..., Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...  # pragma: no cover - protocol only


def make_cached(
    cache: Cache,
    *,
    ttl: TTL | Unset,
    key: str | None,
    key_prefix: str | None,
    tags: Iterable[str] | None,
    stale_ttl: TTL,
    serve_stale_on_error: bool,
    sensitive: bool,
    depends_on: Iterable[Any] | None = None,
) -> Callable[[Callable[..., Any]], CachedFunction]:
    tag_list = check_tags(tags, key or "")
    dep_tags = None
    if depends_on:
        from perfkit.cache.depends import compile_dependencies

        dep_tags = compile_dependencies(depends_on, cache)

    def decorate(fn: Callable[..., Any]) -> CachedFunction:
        build = key_builder(fn, key, key_prefix)
        tag_builders = [_template(fn, t, "tag") if "{" in t else (lambda a, k, t=t: t) for t in tag_list]
        if dep_tags is not None:
            bind, deps = _binder(fn), dep_tags
            tag_builders.append(lambda a, k: deps(bind(a, k)))  # type: ignore[arg-type]

        def tags_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
            out: list[str] = []
            for build_tag in tag_builders:
                tag = build_tag(args, kwargs)
                out.extend(tag) if isinstance(tag, list) else out.append(tag)
            return out

        wrapper: Any
        if inspect.iscoroutinefunction(fn):
            find, stored_name, load = cache.tiers.find, cache.tiers.key, cache.loader.load

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                key = build(args, kwargs)
                item = find(key, True)  # a fresh L1 hit returns before any loader is built
                if item is not None:
                    return item.value
                return await load(
                    stored_name(key),
                    key,
                    lambda: fn(*args, **kwargs),
                    ttl,
                    tags_for(args, kwargs) if tag_builders else None,
                    stale_ttl,
                    sensitive,
                    serve_stale_on_error,
                )

            async def invalidate(*args: Any, **kwargs: Any) -> bool:
                return await cache.delete(build(args, kwargs))

            wrapper = async_wrapper
        else:

            @functools.wraps(fn)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                return cache.sync.get_or_set(
                    build(args, kwargs),
                    lambda: fn(*args, **kwargs),
                    ttl,
                    tags=tags_for(args, kwargs) if tag_builders else None,
                    stale_ttl=stale_ttl,
                    serve_stale_on_error=serve_stale_on_error,
                    sensitive=sensitive,
                )

            def invalidate(*args: Any, **kwargs: Any) -> bool:  # type: ignore[misc]
                return cache.sync.delete(build(args, kwargs))

            wrapper = sync_wrapper
        wrapper.key = lambda *args, **kwargs: build(args, kwargs)
        wrapper.invalidate = invalidate
        return wrapper  # type: ignore[no-any-return]

    return decorate
