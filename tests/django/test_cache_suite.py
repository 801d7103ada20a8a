"""Django's own cache backend tests (`BaseCacheTests`, from the source release of the installed Django)
run against PerfkitCache by Django's runner, in a subprocess.

The release is downloaded once from PyPI into ~/.cache/perfkit-django-suite/<version>/ (never copied
into this repository); tests/django/cache_suite/perfkit_suite.py is copied into its tests/cache/ package
and run there with `runtests.py`, one process per backend class, all at once: memory://, SQLite, Redis
and memory+Redis through the sync API, and memory:// and memory+Redis through the async API.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

import django
from tests.conftest import REDIS_URL, require_redis, service_missing

SUITE = Path(__file__).parent / "cache_suite" / "perfkit_suite.py"
SRC = Path(__file__).resolve().parents[2] / "src"
WANTED = ("tests/runtests.py", "tests/test_sqlite.py", "tests/urls.py", "tests/cache/")
# the only tests allowed to skip, each for its stated reason (see perfkit_suite.py)
CULL = ("test_cull", "test_zero_cull", "test_cull_delete_when_store_empty")  # cull aliases excluded
ASYNC_ONLY = (
    "test_cache_write_for_model_instance_with_deferred",
    "test_cache_read_for_model_instance_with_deferred",
)
# the suite's Redis database, of its own: its clear() after every test scans the database for the run's
# namespace, so keys anybody else left in the shared one would make each test's tearDown scan them all
SUITE_REDIS_DB = 11
CLASSES = ("Memory", "SQLite", "Redis", "Tiered", "AsyncMemory", "AsyncTiered")


def _pip_python() -> str:
    """An interpreter with pip: this one, or, in a venv made `--without-pip` (tests/django/test_versions.py
    makes its Django releases' venvs so), the interpreter the venv was made from."""
    if importlib.util.find_spec("pip") is not None:
        return sys.executable
    return str(getattr(sys, "_base_executable", sys.executable))


def _release_tests(version: str) -> Path:
    """The release's tests/ folder, downloaded and extracted on first use."""
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "perfkit-django-suite" / version
    tests = home / f"django-{version}" / "tests"
    if (tests / "cache" / "tests.py").exists() and (tests / "runtests.py").exists():
        return tests
    home.mkdir(parents=True, exist_ok=True)
    sdist = home / f"django-{version}.tar.gz"
    if not sdist.exists():
        try:
            subprocess.run(
                [_pip_python(), "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                 f"Django=={version}", "-d", str(home)],
                check=True, capture_output=True, timeout=180,
            )  # fmt: skip
        except (subprocess.SubprocessError, OSError) as exc:
            service_missing(
                f"DJANGO CACHE SUITE SKIPPED: cannot download Django {version}'s sdist from PyPI: {exc}"
            )
    with tarfile.open(sdist) as archive:
        prefix = f"django-{version}/"
        members = [m for m in archive.getmembers() if m.name.removeprefix(prefix).startswith(WANTED)]
        archive.extractall(home, members=members, filter="data")
    return tests


def _run_class(tests: Path, name: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """One backend class's tests, run by Django's runner in a process of its own (its own SQLite file;
    the suite's cache namespace is per process)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "PERFKIT_SUITE_REDIS_URL": urlunsplit(urlsplit(REDIS_URL)._replace(path=f"/{SUITE_REDIS_DB}")),
        "PERFKIT_SUITE_SQLITE_PATH": str(tmp_path / f"suite-{name}.db"),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    label = f"cache.perfkit_suite.Perfkit{name}CacheTests"
    run = subprocess.run(
        [sys.executable, "runtests.py", label, "--parallel=1", "-v", "2"],
        cwd=tests, env=env, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    return run, run.stdout + run.stderr


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(600)
def test_django_cache_suite_passes_against_perfkit_cache(tmp_path: Path) -> None:
    """Every BaseCacheTests test passes on every backend kind; only the listed ones skip, for their reason."""
    require_redis()
    tests = _release_tests(django.__version__)
    shutil.copy(SUITE, tests / "cache" / "perfkit_suite.py")
    # one runtests.py per backend class, all at once: the suite mostly waits (expiry sleeps, round trips)
    with ThreadPoolExecutor(max_workers=len(CLASSES)) as pool:
        runs = dict(
            zip(CLASSES, pool.map(lambda name: _run_class(tests, name, tmp_path), CLASSES), strict=True)
        )
    for name, (run, out) in runs.items():
        assert run.returncode == 0, f"Perfkit{name}CacheTests failed:\n{out[-6000:]}"
        ran = re.search(r"^Ran (\d+) tests", out, re.M)
        assert ran is not None and int(ran.group(1)) >= 50, (
            f"Perfkit{name}CacheTests ran too few:\n{out[-3000:]}"
        )
        skipped = set(
            re.findall(
                rf"^(test_\w+) \(cache\.perfkit_suite\.Perfkit{name}CacheTests\.\w+\) \.\.\. skipped",
                out,
                re.M,
            )
        )
        allowed = set(CULL) | (set(ASYNC_ONLY) if name.startswith("Async") else set())
        assert skipped and skipped <= allowed, (name, sorted(skipped - allowed))
