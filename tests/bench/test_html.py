"""The HTML report: one self-contained file that headless Chromium renders with every plot drawn."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from perfkit.cli import main
from tests.bench.conftest import Server

CHROMIUM = "/usr/bin/chromium"


def _report(server: Server, tmp_path: Path) -> Path:
    html = tmp_path / "report.html"
    code = main(
        [
            "bench",
            f"{server.url}/",
            "--rate",
            "300/s",
            "--duration",
            "2s",
            "-q",
            "--html",
            str(html),
            "--threshold",
            "p99<5s",
        ]
    )
    assert code == 0
    return html


def test_html_is_self_contained(server: Server, tmp_path: Path) -> None:
    """No script, stylesheet or image is loaded from anywhere: no src=, href= or url(...)."""
    text = _report(server, tmp_path).read_text()
    assert text.startswith("<!doctype html>")
    assert not re.search(r"\b(src|href)\s*=|url\(|@import|<script", text, re.I)
    assert text.count('<svg class="plot"') == 4


@pytest.mark.browser
def test_html_renders_in_chromium(server: Server, tmp_path: Path) -> None:
    """Chromium opens the report offline: no console errors or failed requests, four plots drawn."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"CHROMIUM NOT INSTALLED at {CHROMIUM}: apt-get install -y chromium (bash .ci/run does)")
    from playwright.sync_api import sync_playwright

    html = _report(server, tmp_path)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "request",
                lambda r: problems.append(f"request {r.url}") if not r.url.startswith("file:") else None,
            )
            page.goto(html.as_uri())
            plots = page.eval_on_selector_all(
                "svg.plot",
                """els => els.map(svg => {
                    const shapes = [...svg.querySelectorAll('.series')];
                    const ink = shapes.reduce((a, s) => a + (s.getTotalLength ? s.getTotalLength()
                        : s.getBBox().height), 0);
                    const r = svg.getBoundingClientRect();
                    return {id: svg.id, shapes: shapes.length, ink, width: r.width, height: r.height};
                })""",
            )
        finally:
            browser.close()
    assert problems == []
    assert [p["id"] for p in plots] == ["latency", "spectrum", "rate", "errors"]
    for plot in plots[:3]:  # lines of a few hundred px; errors/s is all zero here: bars of no height
        assert plot["shapes"] >= 1 and plot["ink"] > 100, plot
        assert plot["width"] > 300 and plot["height"] > 150, plot
