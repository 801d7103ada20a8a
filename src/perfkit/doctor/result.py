"""What `perfkit doctor` answers: one `Result` per check, and the scored `Checklist` of them.

A check is `pass`, `warn` (works, could be better), `fail` (broken or unsafe: the exit code is 1) or
`skip` (nothing to check here, e.g. HSTS over plain HTTP; left out of the score). The score counts the
passes among the checks that ran: "18/22 checks passed". `Checklist.as_json()` follows `SCHEMA`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("pass", "warn", "fail", "skip")
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Result:
    id: str  # stable, for scripts: "compression", "etag", ...
    title: str
    status: str
    detail: str  # what was seen
    fix: str = ""  # what to do about a warn or fail ("" for pass and skip)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")


@dataclass
class Checklist:
    target: str
    results: list[Result] = field(default_factory=list)

    @property
    def ran(self) -> list[Result]:
        return [r for r in self.results if r.status != "skip"]

    @property
    def passed(self) -> int:
        return sum(r.status == "pass" for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.status == "fail" for r in self.results)

    @property
    def summary(self) -> str:
        return f"{self.passed}/{len(self.ran)} checks passed"

    def exit_code(self, strict: bool = False) -> int:
        """1 when a check failed (or, `strict`, warned), else 0: for CI."""
        bad = ("fail", "warn") if strict else ("fail",)
        return int(any(r.status in bad for r in self.results))

    def as_json(self) -> dict[str, Any]:
        counts = {s: sum(r.status == s for r in self.results) for s in STATUSES}
        return {
            "version": SCHEMA_VERSION,
            "target": self.target,
            "summary": self.summary,
            "passed": self.passed,
            "total": len(self.ran),
            "counts": counts,
            "checks": [asdict(r) for r in self.results],
        }


_CHECK = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "title", "status", "detail", "fix"],
    "properties": {
        "id": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "title": {"type": "string"},
        "status": {"enum": list(STATUSES)},
        "detail": {"type": "string"},
        "fix": {"type": "string"},
    },
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "perfkit doctor --json",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "target", "summary", "passed", "total", "counts", "checks"],
    "properties": {
        "version": {"const": SCHEMA_VERSION},
        "target": {"type": "string"},
        "summary": {"type": "string", "pattern": "^[0-9]+/[0-9]+ checks passed$"},
        "passed": {"type": "integer", "minimum": 0},
        "total": {"type": "integer", "minimum": 0},
        "counts": {
            "type": "object",
            "additionalProperties": False,
            "required": list(STATUSES),
            "properties": {s: {"type": "integer", "minimum": 0} for s in STATUSES},
        },
        "checks": {"type": "array", "items": _CHECK},
    },
}
