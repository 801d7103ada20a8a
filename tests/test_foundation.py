"""The foundation: public API surface, settings, the backend registry, the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

import perfkit
from perfkit import Cache, ConfigurationError, MissingDependencyError, PerfkitError
from perfkit.backends import Registry, parse_url
from perfkit.cli import main
from perfkit.config import parse_duration, parse_size


def test_all_is_sorted_and_complete() -> None:
    """`perfkit.__all__` is sorted and every name in it exists."""
    assert perfkit.__all__ == sorted(perfkit.__all__)
    for name in perfkit.__all__:
        assert hasattr(perfkit, name), name


def test_import_has_no_side_effects() -> None:
    """Importing perfkit starts no thread and creates no event loop or connection."""
    code = "import threading, perfkit; print(threading.active_count())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_every_error_is_a_perfkit_error() -> None:
    """Exceptions perfkit exports share one base."""
    for name in perfkit.__all__:
        obj = getattr(perfkit, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, PerfkitError), name


def test_unknown_scheme_names_the_setting_and_choices() -> None:
    """A bad URL scheme names the setting and lists the accepted schemes."""
    with pytest.raises(ConfigurationError, match=r"url: unknown cache backend scheme 'mongo'.*memory, redis"):
        Cache("mongo://x")


def test_bad_option_values_name_the_setting() -> None:
    """on_error and compression refuse unknown values and list the accepted ones."""
    with pytest.raises(ConfigurationError, match=r"on_error.*'explode'.*degrade"):
        Cache("memory://", on_error="explode")
    with pytest.raises(ConfigurationError, match="compression"):
        Cache("sqlite:///x.db", compression="lz5")
    with pytest.raises(ConfigurationError, match="l1"):
        Cache("memory://", l1="memory://")


def test_environment_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """PERFKIT_CACHE_* variables configure a cache; a bad value names the variable."""
    monkeypatch.setenv("PERFKIT_CACHE_NAMESPACE", "fromenv")
    monkeypatch.setenv("PERFKIT_CACHE_DEFAULT_TTL", "5m")
    cache = Cache()
    assert cache.namespace == "fromenv"
    assert cache.default_ttl == 300
    monkeypatch.setenv("PERFKIT_CACHE_DEFAULT_TTL", "soon")
    with pytest.raises(ConfigurationError, match="PERFKIT_CACHE_DEFAULT_TTL"):
        Cache()


def test_explicit_argument_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit argument wins over the environment."""
    monkeypatch.setenv("PERFKIT_CACHE_NAMESPACE", "fromenv")
    assert Cache(namespace="explicit").namespace == "explicit"


def test_parsers() -> None:
    """Durations and sizes accept units; nonsense is refused."""
    assert parse_duration("x", "250ms") == 0.25
    assert parse_duration("x", "2h") == 7200
    assert parse_size("x", "250kB") == 250_000
    assert parse_size("x", "1KiB") == 1024
    with pytest.raises(ConfigurationError):
        parse_duration("x", "-1s")
    with pytest.raises(ConfigurationError):
        parse_size("x", "lots")


def test_missing_driver_gives_the_install_hint() -> None:
    """A backend whose driver module is absent fails at first use with the pip line."""
    registry: Registry[object] = Registry("test")
    registry.register("nosuch", "perfkit_absent_driver_xyz:Backend", extra="nosuch")
    with pytest.raises(MissingDependencyError, match=r"pip install 'perfkit\[nosuch\]'"):
        registry.create("nosuch://host")


def test_url_redaction() -> None:
    """Passwords never appear in a redacted URL."""
    assert parse_url("redis://user:hunter2@h:6379/0").redacted() == "redis://user:***@h:6379/0"


def test_cli_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`perfkit --version` prints the version; bare `perfkit` prints help and exits 2."""
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert perfkit.__version__ in capsys.readouterr().out
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_cli_console_script() -> None:
    """The installed `perfkit` console script runs."""
    out = subprocess.run(
        [sys.executable, "-m", "perfkit.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "perfkit" in out.stdout and "demo" in out.stdout


def test_repr_names_both_tiers(tmp_path: object) -> None:
    """A tiered cache's repr names both tiers even while its L1 is empty (regression: empty L1 was falsy)."""
    assert (
        repr(Cache(f"sqlite:///{tmp_path}/r.db", l1="memory://", namespace="r"))
        == "<Cache 'r' l1=memory, l2=sqlite>"
    )
