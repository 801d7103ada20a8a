"""Route resolution on a matrix of FastAPI and Starlette releases, each in its own cached virtual env.

Every environment gets one framework release from the package index plus perfkit's own dependencies;
perfkit itself comes from this checkout (PYTHONPATH=src). `_routing_probe.py` runs there and prints what
perfkit resolved; the answers must equal the ones the installed releases give (test_routing.py).
Environments are cached under $PERFKIT_MATRIX_CACHE (default ~/.cache/perfkit-matrix) and built once:
a fresh machine spends about a minute per environment, later runs a second or two each.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .test_routing import EXPECTED, as_expected

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("_routing_probe.py")
CACHE = Path(os.environ.get("PERFKIT_MATRIX_CACHE", Path.home() / ".cache" / "perfkit-matrix"))
# what perfkit's import of perfkit.web needs besides the framework (pyproject: core + part of `web`)
PERFKIT_DEPS = ("msgspec>=0.18", "zstandard>=0.22", "cryptography>=42", "xxhash>=3.0")

# (environment, the framework pin, which probe app): the oldest supported FastAPI (pyproject's floor),
# the last one that copied included routes, the first one that keeps them as a tree (before
# `iter_route_contexts()` existed), the newest when this was written; Starlette's floor and newest.
MATRIX = [
    ("fastapi-0.110.3", "fastapi==0.110.3", "fastapi"),
    ("fastapi-0.136.3", "fastapi==0.136.3", "fastapi"),
    ("fastapi-0.137.0", "fastapi==0.137.0", "fastapi"),
    ("fastapi-0.165.0", "fastapi==0.165.0", "fastapi"),
    ("starlette-0.37.2", "starlette==0.37.2", "starlette"),
    ("starlette-1.10.0", "starlette==1.10.0", "starlette"),
]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def environment(name: str, pin: str) -> Path:
    """The cached environment `name` with `pin` installed, built under a lock if it is not there yet."""
    CACHE.mkdir(parents=True, exist_ok=True)
    home = CACHE / f"py{sys.version_info[0]}{sys.version_info[1]}-{name}"
    python = home / "bin" / "python"
    stamp = home / ".perfkit-installed"
    wanted = " ".join((pin, *PERFKIT_DEPS))
    with open(CACHE / f"{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run building the same environment: wait for it
        if stamp.exists() and stamp.read_text() == wanted and python.exists():
            return python
        venv.EnvBuilder(clear=True, with_pip=False).create(home)
        command = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                   "--disable-pip-version-check", pin, *PERFKIT_DEPS]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=540, check=False)
        if done.returncode != 0:
            message = f"cannot build the {name} environment: {done.stderr.strip()[-2000:]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        stamp.write_text(wanted)
    return python


@pytest.mark.parametrize(("name", "pin", "kind"), MATRIX, ids=[m[0] for m in MATRIX])
def test_route_resolution_on_release(name: str, pin: str, kind: str) -> None:
    """On this release: full templates with prefixes, names, 404, 405, slash redirects, Mount and Host
    routes, exactly as on the installed releases, and always the endpoint the app ran."""
    python = environment(name, pin)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONHOME", None)
    done = subprocess.run(
        [str(python), str(PROBE), kind], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    output = json.loads(done.stdout)
    framework, version = pin.split("==")
    assert output["versions"][framework] == version
    if kind == "starlette":
        assert output["versions"]["fastapi"] is None  # plain Starlette: no FastAPI in the environment
    assert as_expected(output["results"]) == EXPECTED[kind]
