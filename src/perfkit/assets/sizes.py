"""Measuring one file as a browser would download it: raw, gzip (level 9) and brotli (quality 11).

gzip is Python's `gzip.compress(data, 9, mtime=0)` (deterministic: no timestamp in the header), the
same as `gzip -9n`; brotli is Google's `brotli.compress(data, quality=11)`, what a static-site build
pre-compresses with. These are the sizes size-limit reports too.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from perfkit.errors import MissingDependencyError

KINDS = ("raw", "gzip", "brotli")


@dataclass(frozen=True)
class FileSize:
    path: str  # relative to the scanned directory, with / separators
    raw: int
    gzip: int
    brotli: int

    def get(self, kind: str) -> int:
        return int(getattr(self, kind))


def measure_bytes(path: str, data: bytes) -> FileSize:
    try:
        import brotli
    except ImportError:  # pragma: no cover - the cli extra installs it
        raise MissingDependencyError("assets", "brotli", "cli") from None
    return FileSize(
        path, len(data), len(gzip.compress(data, 9, mtime=0)), len(brotli.compress(data, quality=11))
    )


def scan(root: Path) -> list[FileSize]:
    """Every regular file under `root`, sorted by path."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return [measure_bytes(p.relative_to(root).as_posix(), p.read_bytes()) for p in files]
