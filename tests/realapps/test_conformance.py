"""The real-app conformance suite: perfkit on applications it did not write (../shared/realapps/).

Every folder there with a realapp.json is installed in its own cached venv, set up on a fresh PostgreSQL
database, tested bare and wired, and driven in-process (harness.py); each check of checks.py is one test
per app. Without the folder the suite skips loudly, and fails under CI=true.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.realapps import checks, harness

pytestmark = pytest.mark.timeout(900)  # a cold venv build is ~1 min; warm runs take ~1 min in all

ROOT = harness.realapps_dir()
APPS = harness.find_apps(ROOT)


def _missing() -> None:
    why = (
        f"REAL-APP CONFORMANCE SUITE SKIPPED: no app folders (with realapp.json) under {ROOT}; "
        "put ../shared/realapps beside the repository or set PERFKIT_REALAPPS_DIR"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(why.replace("SKIPPED", "CANNOT RUN (CI=true)"))
    pytest.skip(why)


@pytest.fixture(scope="session")
def outcomes() -> dict[str, harness.Outcome | harness.RealAppError]:
    """One run per app for the whole session (every check reads the same run)."""
    return {}


@pytest.fixture(params=[p.name for p in APPS] or ["<none>"])
def outcome(request: pytest.FixtureRequest, outcomes: dict[str, object]) -> harness.Outcome:
    if not APPS:
        _missing()
    name = request.param
    if name not in outcomes:
        from tests.conftest import require_postgres

        require_postgres()
        try:
            outcomes[name] = harness.run_app(ROOT / name)
        except harness.RealAppError as exc:
            outcomes[name] = exc
    got = outcomes[name]
    if isinstance(got, harness.RealAppError):
        pytest.fail(f"{name}: {got}")
    assert isinstance(got, harness.Outcome)
    return got


@pytest.mark.parametrize("check", list(checks.CHECKS), ids=[f.__name__ for f in checks.CHECKS.values()])
def test_real_app(outcome: harness.Outcome, check: str) -> None:
    """Each check of checks.py (its docstring says what it pins) holds on each real app."""
    problems = checks.CHECKS[check](outcome)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


def test_apps_are_found_generically(tmp_path: Path) -> None:
    """Any folder with a realapp.json is an app (sorted); other folders and files are ignored."""
    for name in ("b-app", "a-app"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "realapp.json").write_text("{}")
    (tmp_path / "notes").mkdir()
    (tmp_path / "README.md").write_text("x")
    assert [p.name for p in harness.find_apps(tmp_path)] == ["a-app", "b-app"]
    assert harness.find_apps(tmp_path / "absent") == []


def test_bad_realapp_json_names_the_missing_keys(tmp_path: Path) -> None:
    """A realapp.json without required keys is refused with the keys named."""
    (tmp_path / "realapp.json").write_text('{"name": "x"}')
    with pytest.raises(harness.RealAppError, match="lacks install, test, expect_passed, app, wire_file"):
        harness.RealApp.load(tmp_path)


def test_passed_reads_the_pytest_summary() -> None:
    """The pass count comes from the last pytest summary line."""
    assert harness.passed("..\n3 failed, 57 passed in 9.1s\n") == 57
    assert harness.passed("no tests ran") == 0
