"""Placeholder: filled in by the db work of issue 16."""

from __future__ import annotations


def install() -> None:
    """Wire this part into the project (called once from `PerfkitConfig.ready()`)."""
