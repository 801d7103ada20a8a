"""A bench target's credentials (a `?token=`, a URL password) appear in no report or summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.conftest import Server, bench


def test_target_credentials_are_redacted(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The JSON's `target`, the HTML report and the text summary show `token=***`, never the token."""
    html = tmp_path / "report.html"
    target = f"http://user:hunter2@127.0.0.1:{server.port}/json?token=hunter2"
    code, doc = bench(tmp_path, target, "--users", "1", "--max-requests", "5", "--html", str(html))
    out = capsys.readouterr()
    assert code == 0, out.err
    assert doc["target"] == f"http://user:***@127.0.0.1:{server.port}/json?token=***"
    for shown in (out.out, out.err, html.read_text()):
        assert "hunter2" not in shown
