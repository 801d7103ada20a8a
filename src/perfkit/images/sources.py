"""Where source images come from: local folders (the default) and, when configured, remote hosts.

A source answers `locate(path)` with a `Located` (a stable id, a version, and how to read the bytes)
or None when the path is not its own. A local path is resolved under its folder and refused when it
leaves it (`..`, an absolute path, a symlink pointing out); its version is its mtime and size, read by
one `stat`, so an edited file gets new cache entries and new URLs. A remote source (see `remote`) has
no version before it is fetched: its results are cached for a TTL instead.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from perfkit.errors import ConfigurationError
from perfkit.images.errors import ImageTooLargeError, SourceNotFoundError

__all__ = ["LocalSource", "Located", "Source", "check_path"]


@dataclass(frozen=True)
class Located:
    """A source image found: `read()` (sync: it runs in the pool) or `fetch()` (async) gives its bytes."""

    id: str  # stable across processes: part of the cache key
    version: str | None  # None: unknown before reading (a remote image), cached for a TTL instead
    read: Callable[[], bytes] | None = None
    fetch: Callable[[], Awaitable[bytes]] | None = None


class Source(Protocol):
    async def locate(self, path: str, max_bytes: int) -> Located | None: ...

    def version(self, path: str) -> str | None:
        """The version `ImageService.url` pins into a URL (None: not this source's path, or unknown)."""
        ...


def check_path(path: str) -> str:
    """`path` as a relative POSIX path without `.`/`..` parts, NULs or backslashes; else not found."""
    parts = path.split("/")
    if (not path or len(path) > 1024 or "\\" in path or "\x00" in path or path.startswith("/")
            or any(p in ("", ".", "..") for p in parts)):  # fmt: skip
        raise SourceNotFoundError(f"no such image: {path[:200]!r} is not a relative path inside a source")
    return path


class LocalSource:
    """The images under one folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ConfigurationError("sources", f"{str(root)!r} is not a folder")
        self._tag = hashlib.blake2b(str(self.root).encode(), digest_size=6).hexdigest()

    def _file(self, path: str) -> tuple[Path, os.stat_result] | None:
        candidate = (self.root / check_path(path)).resolve()
        if not candidate.is_relative_to(self.root):  # a symlink pointing out of the folder
            return None
        try:
            st = candidate.stat()
        except OSError:
            return None
        return (candidate, st) if candidate.is_file() else None

    def version(self, path: str) -> str | None:
        found = self._file(path)
        return _version(found[1]) if found else None

    async def locate(self, path: str, max_bytes: int) -> Located | None:
        found = self._file(path)
        if found is None:
            return None
        file, st = found
        if st.st_size > max_bytes:
            raise ImageTooLargeError(f"source is {st.st_size} bytes, over the cap of {max_bytes}")

        def read() -> bytes:
            with open(file, "rb") as f:
                data = f.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise ImageTooLargeError(f"source is over the cap of {max_bytes} bytes")
            return data

        return Located(f"{self._tag}/{path}", _version(st), read=read)


def _version(st: os.stat_result) -> str:
    return hashlib.blake2b(f"{st.st_mtime_ns}:{st.st_size}".encode(), digest_size=6).hexdigest()
