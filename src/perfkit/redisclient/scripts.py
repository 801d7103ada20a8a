"""Lua scripts as package data: `<package>/lua/<name>.lua`, read once with importlib.resources.

A script may be made of several files, such as a prelude of helpers and the script proper:
`lua_script("perfkit.jobs.backends", "prelude", "claim")` joins them in order, each on a new line.
Whole-line comments (`-- …` from the first column) document the file and are not sent to Redis: the
script Redis runs (and its SHA) stays as small as the code, which matters where a script is sent
whole (EVAL in a cluster pipeline, the monitor's lease).
"""

from __future__ import annotations

import functools
from importlib.resources import files

LUA_FOLDER = "lua"


@functools.cache
def lua_file(package: str, name: str) -> str:
    """The code of `<package>/lua/<name>.lua`, without its whole-line comments (read once, then kept)."""
    text = files(package).joinpath(LUA_FOLDER, f"{name}.lua").read_text(encoding="utf-8")
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("--"))


def lua_script(package: str, *names: str) -> str:
    """The script made of the files `names` of `package`'s `lua/` folder, in order."""
    return "".join("\n" + lua_file(package, name) for name in names)


def lua_names(package: str) -> list[str]:
    """The names of every `.lua` file of `package` (the tests load each one)."""
    folder = files(package).joinpath(LUA_FOLDER)
    return sorted(p.name[: -len(".lua")] for p in folder.iterdir() if p.name.endswith(".lua"))
