"""TypeScript for the tests: tsc installed once into ~/.cache/perfkit-npm/typescript (npm registry),
compiling the client with a script of the test's into a folder Node runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import under_ci

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"
TSC_HOME = Path.home() / ".cache" / "perfkit-npm" / "typescript"
TSC = TSC_HOME / "node_modules" / ".bin" / "tsc"
PACKAGES = ("typescript@5", "@types/node@20")


def _missing(why: str) -> None:
    if under_ci():
        pytest.fail(f"{why} [CI=true: the TypeScript client tests may not be skipped]", pytrace=False)
    pytest.skip(why)


def node() -> str:
    found = shutil.which("node")
    if found is None:
        _missing("NODE NOT INSTALLED: the TypeScript client runs under Node 18+")
    return str(found)


def tsc() -> Path:
    """tsc, installed into the cache folder on first use (outside the repository)."""
    if TSC.exists() and (TSC_HOME / "node_modules" / "@types" / "node").exists():
        return TSC
    npm = shutil.which("npm")
    if npm is None:
        _missing("NPM NOT INSTALLED: cannot install tsc to type-check the TypeScript client")
    TSC_HOME.mkdir(parents=True, exist_ok=True)
    if not (TSC_HOME / "package.json").exists():
        (TSC_HOME / "package.json").write_text('{"private": true}\n')
    done = subprocess.run(
        [str(npm), "install", "--no-audit", "--no-fund", *PACKAGES], cwd=TSC_HOME,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0 or not TSC.exists():
        _missing(f"npm install {' '.join(PACKAGES)} failed: {done.stderr[-500:]}")
    return TSC


def compile_with_client(out: Path, scripts: dict[str, str]) -> Path:
    """Compile the client plus `scripts` ({name.ts: source}) with `tsc --strict` into `out`."""
    src = out / "src"
    shutil.copytree(CLIENT / "src", src, dirs_exist_ok=True)
    for name, text in scripts.items():
        (src / name).write_text(text)
    (out / "package.json").write_text('{"type": "module"}\n')
    config = json.loads((CLIENT / "tsconfig.json").read_text())
    # the test's own scripts read process.env: Node's types, from the cache folder
    config["compilerOptions"].update(types=["node"], typeRoots=[str(TSC_HOME / "node_modules" / "@types")])
    (out / "tsconfig.json").write_text(json.dumps(config))
    done = subprocess.run([str(tsc()), "-p", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"tsc failed:\n{done.stdout}\n{done.stderr}"
    (out / "dist" / "package.json").write_text('{"type": "module"}\n')
    return out / "dist"


def run_node(
    dist: Path, script: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node(), str(dist / script)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
