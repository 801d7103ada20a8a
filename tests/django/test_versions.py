"""The Django suite (tests/django) on Django 4.2 LTS and the newest release, each in a cached virtual env.

Django 5.2 LTS is the main environment's: the ordinary run covers it. Each matrix environment gets one
Django release plus the dependencies pyproject.toml names for perfkit's Django tests (the core, the
`redis`, `postgres`, `web`, `monitor` and `cli` extras, and `dev` without its linters and browser);
perfkit itself and the tests come from this checkout (PYTHONPATH). Environments are cached under
$PERFKIT_DJANGO_MATRIX_CACHE (default ~/.cache/perfkit-django-matrix/<django>-py<ver>/) and rebuilt only
when that list of requirements changes: a fresh machine spends a minute or two per environment.

There, `pytest tests/django` runs in a subprocess, without this module (no matrix inside the matrix);
any failure, error or an empty run fails the release's test here.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import under_ci

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("PERFKIT_DJANGO_MATRIX_CACHE", Path.home() / ".cache" / "perfkit-django-matrix"))
PY312 = os.environ.get("PERFKIT_PYTHON312", "/root/.pyenv/versions/3.12.1/bin/python")
EXTRAS = ("redis", "postgres", "web", "monitor", "cli")
# dev tools the Django tests never import (linters, coverage, the browser, the JSON-schema checker)
NOT_NEEDED = {"ruff", "mypy", "pytest-cov", "playwright", "jsonschema"}

# (Django release, the interpreter): the oldest supported LTS on the project's floor Python, and the
# newest release (6.x needs Python >= 3.12)
MATRIX = [
    ("4.2.30", sys.executable),
    ("6.1.3", PY312),
]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.\-]+", requirement)
    assert match is not None, requirement
    return match.group(0).lower().replace("_", "-")


def requirements(django: str) -> list[str]:
    """What the environment installs: perfkit's dependencies for its Django tests, with `Django==django`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = list(project["dependencies"])
    for extra in (*EXTRAS, "dev"):
        wanted += extras[extra]
    picked = [r for r in wanted if _name(r) not in NOT_NEEDED and _name(r) != "django"]
    return [*sorted(set(picked)), f"Django=={django}"]


def _unavailable(message: str) -> None:
    if under_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def environment(django: str, interpreter: str) -> Path:
    """The cached environment for `django` on `interpreter`, built under a lock if it is not there yet."""
    if not Path(interpreter).exists():
        _unavailable(f"NO INTERPRETER {interpreter} for Django {django} (set PERFKIT_PYTHON312)")
    version = subprocess.run(
        [interpreter, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.strip()  # fmt: skip
    CACHE.mkdir(parents=True, exist_ok=True)
    home = CACHE / f"{django}-py{version}"
    python = home / "bin" / "python"
    stamp = home / ".perfkit-installed"
    wanted = "\n".join(requirements(django))
    with open(CACHE / f"{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run building the same environment: wait for it
        if stamp.exists() and stamp.read_text() == wanted and python.exists():
            return python
        subprocess.run([interpreter, "-m", "venv", "--clear", "--without-pip", str(home)], check=True)
        command = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                   "--disable-pip-version-check", *wanted.split("\n")]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        except subprocess.TimeoutExpired:
            _unavailable(f"building the Django {django} environment took over 900 s (package index slow?)")
        if done.returncode != 0:
            _unavailable(f"cannot build the Django {django} environment: {done.stderr.strip()[-2000:]}")
        stamp.write_text(wanted)
    return python


@pytest.mark.parametrize(("django", "interpreter"), MATRIX, ids=[f"django-{m[0]}" for m in MATRIX])
def test_django_suite_passes_on_release(django: str, interpreter: str) -> None:
    """On this Django release, every test of tests/django (but this one) passes: none fails or errors."""
    python = environment(django, interpreter)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONHOME", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    version = subprocess.run(
        [str(python), "-c", "import django; print(django.get_version())"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    assert version == django
    command = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/django",
               "--ignore", "tests/django/test_versions.py"]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=1200, check=False
    )
    tail = done.stdout[-4000:] + done.stderr[-2000:]
    assert done.returncode == 0, f"Django {django}: pytest exited {done.returncode}\n{tail}"
    summary = re.search(r"^=*\s*(\d+ passed.*?)\s*=*$", done.stdout, re.M)
    assert summary, f"Django {django}: nothing passed\n{tail}"
    print(f"Django {django} on {interpreter}: {summary.group(1)}")  # shown by `pytest -rP`
