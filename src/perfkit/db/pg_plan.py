"""PostgreSQL plans read as `EXPLAIN (FORMAT JSON)` trees: rendered as text and searched for full scans.

Two plan shapes suggest an index:

- a `Seq Scan` with a `Filter` (the columns the filter compares on), and
- a `Limit` over a `Sort` (through `Gather Merge` for parallel plans) over a `Seq Scan` of one table:
  `ORDER BY created_at DESC LIMIT 20` read every row and sorted them to keep 20. An index on the sort
  key (after the filter's equality columns) lets PostgreSQL read the first rows in order and stop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

_DETAILS = ("Sort Key", "Index Cond", "Hash Cond", "Merge Cond", "Join Filter", "Filter", "Sort Method")
_PASS_THROUGH = {"Gather Merge", "Gather", "Result", "Materialize"}


def root(rows: list[Any]) -> dict[str, Any] | None:
    """The top plan node of the rows `EXPLAIN (FORMAT JSON)` returned (a list, or its JSON text)."""
    try:
        value = rows[0][0]  # one row, one column (psycopg: a tuple; asyncpg: a Record)
    except (IndexError, KeyError, TypeError):
        return None
    if isinstance(value, str | bytes):
        value = json.loads(value)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        plan = value[0].get("Plan")
        return plan if isinstance(plan, dict) else None
    return None


def head(node: dict[str, Any]) -> str:
    """One node as PostgreSQL's text format prints it: `Seq Scan on items i  (cost=... rows=...)`."""
    text = str(node.get("Node Type", "?"))
    if node.get("Parallel Aware"):
        text = "Parallel " + text
    if node.get("Scan Direction") == "Backward":
        text += " Backward"
    if "Index Name" in node:
        text += f" using {node['Index Name']}"
    if "Relation Name" in node:
        text += f" on {node['Relation Name']}"
        if node.get("Alias") not in (None, node["Relation Name"]):
            text += f" {node['Alias']}"
    if "Total Cost" in node:
        text += (
            f"  (cost={node.get('Startup Cost', 0):.2f}..{node['Total Cost']:.2f}"
            f" rows={node.get('Plan Rows', 0)} width={node.get('Plan Width', 0)})"
        )
    if "Actual Total Time" in node:
        text += (
            f" (actual time={node.get('Actual Startup Time', 0):.3f}..{node['Actual Total Time']:.3f}"
            f" rows={node.get('Actual Rows', 0)} loops={node.get('Actual Loops', 0)})"
        )
    return text


def render(node: dict[str, Any], depth: int = 0) -> list[str]:
    """The plan as text lines, indented like `EXPLAIN`'s text format (what the dashboard shows)."""
    pad = "" if depth == 0 else " " * (6 * depth - 4) + "->  "
    detail_pad = " " * (6 * depth + 2)
    lines = [pad + head(node)]
    for key in _DETAILS:
        value = node.get(key)
        if value:
            lines.append(f"{detail_pad}{key}: {', '.join(value) if isinstance(value, list) else value}")
    for child in node.get("Plans", ()):
        lines += render(child, depth + 1)
    return lines


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def _through(node: dict[str, Any]) -> dict[str, Any]:
    """Below the single-child nodes that only move rows (Gather Merge of a parallel plan, ...)."""
    while node.get("Node Type") in _PASS_THROUGH and len(node.get("Plans", ())) == 1:
        node = node["Plans"][0]
    return node


def _tables(scan: dict[str, Any]) -> set[str | None]:
    return {scan.get("Relation Name"), scan.get("Alias")}


def sorted_scans(tree: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(sort node, scanned table node) for every `Limit -> Sort -> Seq Scan` in the plan."""
    for node in _nodes(tree):
        if node.get("Node Type") != "Limit" or len(node.get("Plans", ())) != 1:
            continue
        sort = _through(node["Plans"][0])
        if sort.get("Node Type") != "Sort" or len(sort.get("Plans", ())) != 1:
            continue
        scan = _through(sort["Plans"][0])
        if scan.get("Node Type") == "Seq Scan" and "Relation Name" in scan:
            yield sort, scan


def filtered_scans(tree: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every `Seq Scan` node with a `Filter`."""
    for node in _nodes(tree):
        if node.get("Node Type") == "Seq Scan" and node.get("Filter") and "Relation Name" in node:
            yield node
