"""The shape of src/perfkit, by `ast`: no import cycles, no private name across modules, layers one way.

Each rule has an allowlist of today's exceptions, one reason each. A new exception fails its test; an entry
the code no longer needs fails `test_allowlists_hold_only_live_entries`, so the lists only shrink.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import perfkit

ROOT = Path(perfkit.__file__).resolve().parent

# Layers, lowest first: a module may import its own layer and the ones below, never one above (STYLE.md:
# bench/ and demo/ use everything; web/ and monitor/ use cache/, jobs/, db/; the storage parts never import
# the web parts). `core` is perfkit's top-level modules (errors, config, backends, serialization, ...).
# monitor sits above web: it reports on the web layer (web building a Monitor is the upward import issue 15
# removes). otel sits beside monitor: it subscribes to the web, db, cache and jobs seams and is wired by
# instrument(). The top wires and uses everything: the package root, the CLI, instrument(), and the commands.
LAYERS: dict[str, int] = {
    "core": 0, "cache": 1, "jobs": 1, "db": 1, "cpu": 1, "web": 2, "realtime": 2, "loader": 2, "images": 2,
    "monitor": 3, "otel": 3, "top": 4,
}  # fmt: skip
# django and serve: composition roots (Django projects, the HTTP service); doctor and top: clients of a
# running app's monitor
TOP_PARTS = {"assets", "bench", "demo", "django", "doctor", "serve", "top"}
TOP_MODULES = {"perfkit", "perfkit.__main__", "perfkit.cli", "perfkit.instrument"}
# packages of the core layer: neutral plumbing every part may use (the one Redis client module)
CORE_PARTS = {"redisclient"}

# A lazy facade may close a cycle with the type it wraps: the class imports the facade inside the method
# that builds it, and only for its annotation at module level (issue 15: "no cycle other than lazy facades").
LAZY_FACADES: dict[tuple[str, str], str] = {
    ("perfkit.cache.cache", "perfkit.cache.sync"): "Cache.sync builds the SyncCache facade lazily",
    ("perfkit.cache.cache", "perfkit.cache.decorator"): "Cache.cached builds the CachedFunction lazily",
    ("perfkit.jobs.queue", "perfkit.jobs.sync"): "JobQueue.sync() builds the SyncJobQueue facade lazily",
    ("perfkit.realtime.hub", "perfkit.realtime.sync"): "Hub.sync builds the SyncHub facade lazily",
}

# Today's exceptions (issue 15 is removing them; the integrator deletes each entry as its fix is merged,
# and `test_allowlists_hold_only_live_entries` says which). Keys are (importing module, what it uses).
ALLOWED_CYCLE_EDGES: dict[tuple[str, str], str] = {}
ALLOWED_PRIVATE_IMPORTS: dict[tuple[str, str], str] = {}
ALLOWED_PRIVATE_ATTRIBUTES: dict[tuple[str, str], str] = {}
ALLOWED_UPWARD_IMPORTS: dict[tuple[str, str], str] = {}

# A compatibility alias keeps the old address of a name that moved up a layer. It may import upward only
# lazily (in the package's module `__getattr__`) or for its annotations: importing the lower layer never
# imports the upper one, so the layers still point one way at run time. Not a backlog: these stay while
# the old addresses are documented (docs/web.md), each checked by `test_compat_aliases_are_lazy`.
COMPAT_ALIASES: dict[tuple[str, str], str] = {
    ("perfkit.web", "perfkit.instrument"): (
        "`from perfkit.web import instrument` (and Instrumentation, PerfkitStack, build_stack): the"
        " composition root moved to the top (issue 15); `perfkit.instrument` registers its old module"
        " address `perfkit.web.instrument` itself, from above"
    ),
}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # the perfkit module imported (for `from m import name`: m, or m.name when that is a module)
    name: str | None  # the name taken from `target` by a from-import, when it is not a submodule
    line: int
    when: str  # "import": runs when the importer is imported; "typing": under `if TYPE_CHECKING:`; "lazy"


@cache
def modules() -> dict[str, ast.Module]:
    """Every module of src/perfkit by dotted name, parsed."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("perfkit", *path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return found


def package_of(module: str) -> str:
    """The package a module's relative imports start from (a package is its own)."""
    path = ROOT.joinpath(*module.split(".")[1:])
    return module if (path / "__init__.py").exists() else module.rpartition(".")[0]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_imports(node: ast.AST, when: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, when
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk_imports(child, "lazy")
        elif isinstance(child, ast.If) and _is_type_checking(child.test) and when == "import":
            for stmt in child.body:
                yield from _walk_imports(ast.Module(body=[stmt], type_ignores=[]), "typing")
            for stmt in child.orelse:
                yield from _walk_imports(ast.Module(body=[stmt], type_ignores=[]), when)
        else:
            yield from _walk_imports(child, when)


@cache
def imports() -> tuple[Import, ...]:
    """Every import of a perfkit module inside src/perfkit."""
    known = modules()
    found = []
    for module, tree in known.items():
        for node, when in _walk_imports(tree, "import"):
            if isinstance(node, ast.Import):
                found += [
                    Import(module, a.name, None, node.lineno, when)
                    for a in node.names
                    if a.name.split(".")[0] == "perfkit"
                ]
                continue
            base = node.module or ""
            if node.level:
                anchor = package_of(module).split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "perfkit":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in known:
                    found.append(Import(module, sub, None, node.lineno, when))
                else:
                    found.append(Import(module, base, a.name, node.lineno, when))
    return tuple(found)


def module_graph(*kinds: str) -> dict[str, set[str]]:
    """Module -> the perfkit modules it imports, counting the import kinds given ("import", "typing")."""
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for i in imports():
        if i.when in kinds and i.target != i.importer and i.target in graph:
            graph[i.importer].add(i.target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's components with more than one module: each holds at least one import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_module_crossings() -> dict[tuple[str, str], int]:
    """(importer, private module) pairs where the importer is not in the private module's own folder.

    A private module (`_name.py`) is its package's business: its siblings and the package's `__init__` may
    import it, nothing else (httpx re-exports from its `_modules`; nobody outside imports them).
    """
    found: dict[tuple[str, str], int] = {}
    for i in imports():
        parts = i.target.split(".")
        private_at = [n for n, part in enumerate(parts) if is_private(part)]
        if not private_at:
            continue
        owner = ".".join(parts[: private_at[0]])  # the package holding the first private part
        if package_of(i.importer) != owner:
            found.setdefault((i.importer, i.target), i.line)
    return found


def private_name_imports() -> dict[tuple[str, str], int]:
    """(importer, module.name) pairs: a private name imported from another module."""
    return {
        (i.importer, f"{i.target}.{i.name}"): i.line
        for i in imports()
        if i.name is not None and is_private(i.name) and i.target != i.importer
    }


def _defined_names(tree: ast.Module) -> set[str]:
    """Private names a module defines: functions, classes, assigned names and attributes, slots, fields."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries, setattr(obj, "_x", ...), namedtuple fields
    return {n for n in names if is_private(n)}


# Underscored names that are another library's documented API, not perfkit's private state: Django's
# `Model._meta` (the Options API) and `Model._state` (adding/db of an instance) are documented for use.
THIRD_PARTY_API = {"_meta", "_state"}


def private_attribute_uses() -> dict[tuple[str, str], int]:
    """(module, attribute) pairs: `x._name` read in a module that does not define `_name` itself.

    Only names some other perfkit module defines count (a stdlib private such as `sys._getframe` is not
    perfkit's boundary). `self._name` counts too: a subclass reading its base class's private state
    crosses the module boundary as much as a neighbour does.
    """
    defined = {m: _defined_names(tree) for m, tree in modules().items()}
    everywhere = set().union(*defined.values())
    found: dict[tuple[str, str], int] = {}
    for module, tree in modules().items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and is_private(node.attr)
                and node.attr not in defined[module]
                and node.attr in everywhere
                and node.attr not in THIRD_PARTY_API
            ):
                found.setdefault((module, node.attr), node.lineno)
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    if module in TOP_MODULES or parts[1] in TOP_PARTS:
        return "top"
    if parts[1] in CORE_PARTS:
        return "core"
    if len(parts) > 2 or (ROOT / parts[1] / "__init__.py").exists():
        return parts[1]
    return "core"


def upward_imports() -> dict[tuple[str, str], int]:
    """(importer, target) pairs where the target's layer is above the importer's (lazy imports included)."""
    found: dict[tuple[str, str], int] = {}
    for i in imports():
        a, b = layer_of(i.importer), layer_of(i.target)
        if LAYERS[b] > LAYERS[a]:
            found.setdefault((i.importer, i.target), i.line)
    return found


def _new(found: dict[tuple[str, str], int], allowed: dict[tuple[str, str], str]) -> list[str]:
    return [f"{a} -> {b} (line {line})" for (a, b), line in sorted(found.items()) if (a, b) not in allowed]


def test_every_part_has_a_layer() -> None:
    """Each folder of src/perfkit is placed in a layer, so the layer test sees every module."""
    assert {layer_of(m) for m in modules()} <= set(LAYERS)


def test_no_import_cycle_at_import_time() -> None:
    """Module-level imports form no cycle: importing any perfkit module never re-enters a half-run one."""
    cycles = [sorted(c) for c in strongly_connected(module_graph("import"))]
    assert not cycles, f"import cycles (break them, or import lazily inside the function): {cycles}"


def test_no_import_cycle_even_in_annotations() -> None:
    """With `if TYPE_CHECKING:` imports counted, the only cycles are lazy facades' (a design-level circle)."""
    graph = module_graph("import", "typing")
    for a, b in LAZY_FACADES.keys() | ALLOWED_CYCLE_EDGES.keys():
        graph[a].discard(b)
    cycles = [sorted(c) for c in strongly_connected(graph)]
    assert not cycles, f"import cycles through type-only imports (depend on a narrower interface): {cycles}"


def test_no_private_module_is_imported_from_outside_its_folder() -> None:
    """A `_module.py` is imported only by its own package's modules."""
    new = _new(private_module_crossings(), ALLOWED_PRIVATE_IMPORTS)
    assert not new, f"private modules used from another folder (make them public or add a seam): {new}"


def test_no_private_name_is_imported_from_another_module() -> None:
    """`from perfkit.x import _y` does not happen: the name is public or stays in its module."""
    new = _new(private_name_imports(), ALLOWED_PRIVATE_IMPORTS)
    assert not new, f"private names imported across modules (give them a public seam): {new}"


def test_no_private_attribute_of_another_module_is_used() -> None:
    """`obj._x` is read only in the module that defines `_x`."""
    new = _new(private_attribute_uses(), ALLOWED_PRIVATE_ATTRIBUTES)
    assert not new, f"private attributes used outside their module (add a public seam): {new}"


def test_no_layer_imports_one_above_it() -> None:
    """Storage (cache, jobs, db) never imports web or monitor; web never imports monitor; and so on up."""
    new = _new(upward_imports(), ALLOWED_UPWARD_IMPORTS | COMPAT_ALIASES)
    assert not new, f"upward imports (move the code down, or wire it from the layer above): {new}"


def test_compat_aliases_are_lazy() -> None:
    """A compatibility alias imports the layer above only inside a function or for annotations."""
    eager = [
        f"{i.importer} -> {i.target} (line {i.line})"
        for i in imports()
        if (i.importer, i.target) in COMPAT_ALIASES and i.when == "import"
    ]
    assert not eager, (
        f"compatibility aliases importing upward at import time (import in __getattr__): {eager}"
    )


def test_allowlists_hold_only_live_entries() -> None:
    """Every allowlisted exception still happens: a fixed one must leave its list."""
    graph = module_graph("import", "typing")
    on_cycle = {(a, b) for c in strongly_connected(graph) for a in c for b in c if b in graph[a]}
    stale = [f"cycle edge {e}" for e in LAZY_FACADES.keys() | ALLOWED_CYCLE_EDGES.keys() if e not in on_cycle]
    private, attributes, upward = (
        private_module_crossings() | private_name_imports(),
        private_attribute_uses(),
        upward_imports(),
    )
    stale += [f"private import {e}" for e in ALLOWED_PRIVATE_IMPORTS if e not in private]
    stale += [f"private attribute {e}" for e in ALLOWED_PRIVATE_ATTRIBUTES if e not in attributes]
    stale += [
        f"upward import {e}" for e in ALLOWED_UPWARD_IMPORTS.keys() | COMPAT_ALIASES.keys() if e not in upward
    ]
    assert not stale, f"allowlist entries the code no longer needs (delete them): {sorted(stale)}"
