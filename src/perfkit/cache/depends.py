"""What cached values depend on, as cache tags, whatever ORM wrote the rows.

Three kinds of dependency tag per table (the ORM integrations all speak them, so a value cached by
one and a write seen by another meet in the same tag):

    dep:tickets                       any change to the table (table-wide dependents)
    dep:tickets.organization_id=7     a change to a row whose organization_id was or became 7
    dep:tickets!                      a change to rows that cannot be known (raw bulk writes)

`@cache.cached(depends_on=[...])` turns each item into a `TagBuilder` (call arguments -> tags) by
asking, in order: the item itself (an object with `__perfkit_dependency__(cache)`, e.g.
`perfkit.django.rows(...)`), the compilers integrations registered with `register_dependency_compiler`
(perfkit.django registers one for model classes when the app is ready), then SQLAlchemy
(`perfkit.cache.orm.deps`, imported only then).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from perfkit.cache.keys import DEPENDENCY_TAG_PREFIX
from perfkit.errors import InvalidArgumentError

__all__ = [
    "DependencyCompiler",
    "TagBuilder",
    "column_tag",
    "compile_dependencies",
    "register_dependency_compiler",
    "table_tag",
    "unknown_rows_tag",
]

TagBuilder = Callable[[Mapping[str, Any]], list[str]]
DependencyCompiler = Callable[[Any, Any], TagBuilder | None]  # (item, cache) -> builder, None: not mine

_compilers: list[DependencyCompiler] = []


def table_tag(table: str) -> str:
    return f"{DEPENDENCY_TAG_PREFIX}{table}"


def unknown_rows_tag(table: str) -> str:
    return f"{DEPENDENCY_TAG_PREFIX}{table}!"


def column_tag(table: str, column: str, value: Any) -> str:
    return f"{DEPENDENCY_TAG_PREFIX}{table}.{column}={value}"


def register_dependency_compiler(compiler: DependencyCompiler) -> None:
    """Let `compiler(item, cache)` turn `depends_on` items it recognises into tag builders (once each)."""
    if compiler not in _compilers:
        _compilers.append(compiler)


def _compile_one(dep: Any, cache: Any) -> TagBuilder:
    own = getattr(dep, "__perfkit_dependency__", None)
    if callable(own) and not isinstance(dep, type):
        built: TagBuilder = own(cache)
        return built
    for compiler in _compilers:
        found = compiler(dep, cache)
        if found is not None:
            return found
    try:
        from perfkit.cache.orm.deps import compile_dependency  # SQLAlchemy only when asked for
    except ImportError:
        raise InvalidArgumentError(
            f"depends_on item {dep!r} is not a dependency perfkit knows: a Django model needs "
            "'perfkit.django' in INSTALLED_APPS (and apps ready); "
            "a SQLAlchemy one `pip install 'perfkit[sqlalchemy]'`"
        ) from None
    return compile_dependency(dep)


def compile_dependencies(deps: Iterable[Any], cache: Any = None) -> TagBuilder:
    """One builder for every item of `depends_on` (for `cache`, which a compiler may start watching)."""
    builders = [_compile_one(d, cache) for d in deps]
    return lambda values: [tag for b in builders for tag in b(values)]


def fill(value: Any, values: Mapping[str, Any]) -> Any:
    """`"{org_id}"` filled from the call's arguments; other values as they are."""
    if isinstance(value, str) and "{" in value:
        return value.format_map(values)
    return value
