"""Bad arguments are refused before any load: exit 2, one line on stderr naming the argument, and
not one request reaches the server (no traceback, no crash after the run)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from perfkit.bench.command import max_processes
from perfkit.cli import main
from tests.bench.conftest import Server

# (case id, argument the message must name, argv builder: (server url, tmp_path) -> argv)
Argv = Callable[[str, Path], list[str]]
CASES: list[tuple[str, str, Argv]] = [
    ("json-missing-folder", "--json", lambda u, t: [f"{u}/", "--json", str(t / "no" / "r.json")]),
    ("html-missing-folder", "--html", lambda u, t: [f"{u}/", "--html", str(t / "no" / "r.html")]),
    ("json-is-a-folder", "--json", lambda u, t: [f"{u}/", "--json", str(t)]),
    ("timeout-nan", "--timeout", lambda u, t: [f"{u}/", "--timeout", "nan"]),
    ("timeout-zero", "--timeout", lambda u, t: [f"{u}/", "--timeout", "0"]),
    ("timeout-inf", "--timeout", lambda u, t: [f"{u}/", "--timeout", "inf"]),
    ("ipv6-unclosed", "target", lambda u, t: ["http://[::1", "--allow-remote"]),
    ("scenario-not-found", "not found", lambda u, t: [str(t / "missing.py"), "--host", u]),
    ("processes-100000", "--processes", lambda u, t: [f"{u}/", "--processes", "100000"]),
    ("method-crlf", "--method", lambda u, t: [f"{u}/", "-X", "GET / HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET"]),
    ("header-value-crlf", "--header", lambda u, t: [f"{u}/", "-H", "X-A: 1\r\nX-Evil: 2"]),
    ("header-value-trailing-lf", "--header", lambda u, t: [f"{u}/", "-H", "X-A: 1\n"]),
    ("header-name-crlf", "--header", lambda u, t: [f"{u}/", "-H", "X\r\nEvil: 1"]),
    ("url-crlf", "target", lambda u, t: [f"{u}/a\r\nX-Evil: 1"]),
    ("rate-inf", "--rate", lambda u, t: [f"{u}/", "--rate", "inf"]),
    ("stage-not-a-number", "--stage", lambda u, t: [f"{u}/", "--stage", "1s:."]),
    (
        "connections-1e6",
        "--connections",
        lambda u, t: [f"{u}/", "--rate", "10/s", "--connections", "1000000"],
    ),
    ("users-1e6", "--users", lambda u, t: [f"{u}/", "--users", "1000000"]),
    ("stage-users-1e6", "--stage", lambda u, t: [f"{u}/", "--stage", "1s:1000000"]),
]


@pytest.mark.parametrize(("argument", "argv"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_refused_before_any_load(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str], argument: str, argv: Argv
) -> None:
    """Each bad argument exits 2 with one stderr line naming it; the server sees no request."""
    code = main(["bench", *argv(server.url, tmp_path), "--max-requests", "5", "--duration", "1s", "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("perfkit bench: ") and argument in lines[0], err
    assert server.count() == 0
    assert not (tmp_path / "no").exists()


def test_processes_limit_is_twice_the_cpus(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    """--processes accepts up to twice the usable CPUs and names the limit above it."""
    limit = max_processes()
    assert limit >= 2
    assert main(["bench", f"{server.url}/", "--processes", str(limit + 1), "--max-requests", "1", "-q"]) == 2
    assert f"maximum of {limit}" in capsys.readouterr().err
    assert server.count() == 0
