"""npm packages for tests, installed once into ~/.cache/perfkit-npm/<name> (never into the repository).

A missing npm skips the test loudly; under CI=true a package that cannot be installed fails the run
instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("PERFKIT_NPM_CACHE", Path.home() / ".cache" / "perfkit-npm"))
INSTALL_TIMEOUT = 600.0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"NPM PACKAGE UNAVAILABLE under CI: {reason}")
    pytest.skip(f"NPM PACKAGE TESTS SKIPPED: {reason}")


def package(name: str, spec: str) -> Path:
    """The folder `node_modules/<name>` of `name@spec`, installed into the cache when absent."""
    prefix = CACHE / name
    folder = prefix / "node_modules" / name
    if (folder / "package.json").exists():
        return folder
    npm = shutil.which("npm")
    if npm is None:
        _unavailable(f"npm is not on PATH to install {name}@{spec} (apt-get install -y npm)")
    prefix.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [str(npm), "install", "--prefix", str(prefix), "--no-audit", "--no-fund", f"{name}@{spec}"],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"npm install {name}@{spec} took over {INSTALL_TIMEOUT:g}s")
    if done.returncode != 0 or not (folder / "package.json").exists():
        _unavailable(f"npm install {name}@{spec} failed: {done.stderr.strip()[-300:]}")
    return folder
