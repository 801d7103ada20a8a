"""Budgets: `*.js=250kB` means the files matching `*.js`, together, stay within 250 kB.

Sizes use size-limit's units (kB = 1000 B, KiB = 1024 B) via `perfkit.config.parse_size`. A glob
without a `/` matches file names in any folder (`*.js`); one with a `/` matches the relative path
(`static/js/*.js`, `**` for any depth). A budget whose glob matches no file fails: a typo or a
missing build must not pass silently.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from perfkit.assets.sizes import FileSize
from perfkit.config import parse_size
from perfkit.errors import ConfigurationError


@dataclass(frozen=True)
class Budget:
    expression: str
    glob: str
    limit: int  # bytes


def parse_budget(raw: str) -> Budget:
    glob, sep, size = raw.rpartition("=")
    if not sep or not glob.strip() or not size.strip():
        raise ConfigurationError("--budget", f"{raw!r} is not GLOB=SIZE, e.g. '*.js=250kB'")
    return Budget(raw.strip(), glob.strip(), parse_size("--budget", size))


def matches(glob: str, path: str) -> bool:
    if "/" not in glob:
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], glob)
    if fnmatch.fnmatchcase(path, glob):
        return True
    return "**/" in glob and fnmatch.fnmatchcase(path, glob.replace("**/", ""))


def evaluate(budget: Budget, files: list[FileSize], kind: str) -> dict[str, Any]:
    """The group of files a budget covers, its sizes, and whether it is within the limit."""
    group = [f for f in files if matches(budget.glob, f.path)]
    sizes = {k: sum(f.get(k) for f in group) for k in ("raw", "gzip", "brotli")}
    actual = sizes[kind]
    passed = bool(group) and actual <= budget.limit
    return {
        "budget": budget.expression,
        "glob": budget.glob,
        "limit": budget.limit,
        "compression": kind,
        "files": [f.path for f in group],
        "sizes": sizes,
        "actual": actual,
        "passed": passed,
        "reason": "" if group else "no file matches",
    }
