"""Under CI=true a Redis or PostgreSQL that cannot be reached fails the run; elsewhere it skips loudly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent

TINY = """
from tests.conftest import require_postgres, require_redis


def test_needs_redis():
    require_redis()


def test_needs_postgres():
    require_postgres()
"""
CLUSTER = """
def test_needs_a_cluster(redis_cluster_url):
    assert redis_cluster_url
"""


def run_pytest(tmp_path: Path, source: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess on a tiny test file, with the repository importable and `env` applied;
    CI (and a given cluster URL) are removed from the inherited environment first."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    (tmp_path / "test_tiny.py").write_text(source)
    dropped = ("CI", "PYTEST_ADDOPTS", "PERFKIT_TEST_REDIS_CLUSTER_URL")
    inherited = {k: v for k, v in os.environ.items() if k not in dropped}
    path = os.pathsep.join(p for p in (str(ROOT), inherited.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args, "test_tiny.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=50,
        env={**inherited, "PYTHONPATH": path, **env},
    )  # fmt: skip


def closed(service: str) -> dict[str, str]:
    """The environment pointing one service at a port nothing listens on."""
    if service == "redis":
        return {"PERFKIT_TEST_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    return {"PERFKIT_TEST_POSTGRES_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/test"}


@pytest.mark.parametrize(
    ("service", "test"), [("redis", "test_needs_redis"), ("postgres", "test_needs_postgres")]
)
def test_missing_service_fails_under_ci(tmp_path: Path, service: str, test: str) -> None:
    """CI=true: require_redis()/require_postgres() on an unreachable service fail the test (exit 1)."""
    result = run_pytest(tmp_path, TINY, "-k", test, CI="true", **closed(service))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout
    assert f"{service.upper().replace('POSTGRES', 'POSTGRESQL')} NOT REACHABLE" in result.stdout


@pytest.mark.parametrize(
    ("service", "test"), [("redis", "test_needs_redis"), ("postgres", "test_needs_postgres")]
)
def test_missing_service_skips_loudly_elsewhere(tmp_path: Path, service: str, test: str) -> None:
    """Without CI, the same unreachable service is a skip whose reason says so (exit 0)."""
    result = run_pytest(tmp_path, TINY, "-k", test, **closed(service))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "NOT REACHABLE" in result.stdout


def test_session_fails_before_any_test_under_ci(tmp_path: Path) -> None:
    """With the suite's conftest loaded, CI=true and both services unreachable stop the run at start,
    naming both: tests that skip by their own check at collection cannot make CI green."""
    result = run_pytest(
        tmp_path, "def test_needs_nothing():\n    pass\n", "-p", "tests.conftest",
        CI="true", **closed("redis"), **closed("postgres"),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "REDIS NOT REACHABLE" in out and "POSTGRESQL NOT REACHABLE" in out
    assert "1 passed" not in out


def test_missing_cluster_binaries_fail_under_ci(tmp_path: Path) -> None:
    """CI=true and no redis-server/redis-cli on PATH: the Redis Cluster tests fail, not skip."""
    result = run_pytest(tmp_path, CLUSTER, "-p", "tests.conftest", CI="true", PATH=str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "REDIS CLUSTER TESTS SKIPPED" in result.stdout and "1 error" in result.stdout
