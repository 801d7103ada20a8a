"""The demo's own folder: created with a marker file, reused only when that marker is there.

The demo deletes files (an earlier run's monitoring store) and writes large ones (the seeded
database), so it works only inside a folder it made itself. A folder that holds anything without the
marker belongs to someone else (an app's own `.perfkit/` stores, say) and is refused, not reused.
"""

from __future__ import annotations

from pathlib import Path

from perfkit.errors import ConfigurationError

MARKER = ".perfkit-demo"
_MARKER_TEXT = "Created by `perfkit demo`, which may delete what this folder holds. Remove it freely.\n"


def owned(directory: Path) -> bool:
    """True when `directory` is a folder the demo created (it holds the marker file)."""
    return (directory / MARKER).is_file()


def claim(directory: Path) -> Path:
    """Create the demo's folder (with its marker), or reuse one the demo made; refuse anything else.

    An empty existing folder is taken over (nothing in it can be lost). Returns the resolved path."""
    path = directory.resolve()
    if path.exists() and not path.is_dir():
        raise ConfigurationError("--dir", f"{str(directory)!r} exists and is not a folder")
    if path.is_dir() and not owned(path) and any(path.iterdir()):
        raise ConfigurationError(
            "--dir",
            f"{str(directory)!r} already holds files that `perfkit demo` did not create (no {MARKER} "
            "marker); the demo writes and deletes only inside a folder of its own: give a new or empty "
            "--dir",
        )
    path.mkdir(parents=True, exist_ok=True)
    if not owned(path):
        (path / MARKER).write_text(_MARKER_TEXT)
    return path
