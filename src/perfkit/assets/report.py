"""The terminal table of `perfkit assets`."""

from __future__ import annotations

from typing import Any


def _size(n: int) -> str:
    return f"{n / 1000:.1f} kB" if n >= 1000 else f"{n} B"


def render(doc: dict[str, Any]) -> str:
    rows = [[f["path"], _size(f["raw"]), _size(f["gzip"]), _size(f["brotli"])] for f in doc["files"]]
    t = doc["totals"]
    rows.append(["total", _size(t["raw"]), _size(t["gzip"]), _size(t["brotli"])])
    headers = ["file", "raw", "gzip", "brotli"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for b in doc["budgets"]:
        verdict = "pass" if b["passed"] else f"FAIL{' (' + b['reason'] + ')' if b['reason'] else ''}"
        lines.append(
            f"budget {b['budget']}: {len(b['files'])} file(s), {b['compression']} "
            f"{_size(b['actual'])} of {_size(b['limit'])}: {verdict}"
        )
    if doc["growth"]:
        for a in doc["growth"]["alerts"]:
            lines.append(
                f"GROWTH {a['what']}: {_size(a['baseline'])} -> {_size(a['current'])} "
                f"(+{a['growth'] * 100:.1f}%)"
            )
    lines.append("PASSED" if doc["passed"] else "FAILED")
    return "\n".join(lines)
