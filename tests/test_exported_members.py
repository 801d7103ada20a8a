"""perfkit's public API is the curated `__all__` of each package (httpx's tests/test_exported_members.py)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import perfkit

ROOT = Path(perfkit.__file__).resolve().parent
TYPING_MODULES = {"__future__", "typing", "collections.abc"}  # imported for annotations, not exported


def bound_names(init: Path) -> set[str]:
    """Public names an `__init__.py` binds at module level, `if TYPE_CHECKING:` (lazy exports) included."""
    names: set[str] = set()
    body = ast.parse(init.read_text(encoding="utf-8")).body
    for node in [*body, *(s for n in body if isinstance(n, ast.If) for s in n.body)]:
        if isinstance(node, ast.ImportFrom) and node.module not in TYPING_MODULES:
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return {n for n in names if not n.startswith("_") or n == "__version__"} - {"__all__"}


def test_all_is_complete_and_sorted() -> None:
    """Every public name perfkit/__init__.py binds (lazy ones too) is in `perfkit.__all__`, sorted."""
    assert perfkit.__all__ == sorted(bound_names(ROOT / "__init__.py"))


def test_every_exported_name_resolves() -> None:
    """Each name in a package's `__all__` exists (lazy ones load on access); none is listed twice."""
    for init in sorted(ROOT.rglob("__init__.py")):
        package = ".".join(("perfkit", *init.parent.relative_to(ROOT).parts))
        module = importlib.import_module(package)
        exported = getattr(module, "__all__", [])
        assert len(exported) == len(set(exported)), package
        missing = [name for name in exported if not hasattr(module, name)]
        assert not missing, f"{package}.__all__ names what it does not have: {missing}"
