"""docs/frontend.md runs as written: its Python blocks in order in one namespace (as tests/test_readme.py
runs the README's, with its helpers), its shell lines name what exists, and what it says a block prints
is what the block prints."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.test_readme import (
    LOOPBACK,
    ROOT,
    blocks,
    check_command,
    close_everything,
    run_block,
    shell_commands,
)

GUIDE = ROOT / "docs" / "frontend.md"


def test_the_guide_shell_lines_name_what_exists(capsys: pytest.CaptureFixture[str]) -> None:
    """Every `perfkit ...` line of the guide parses with perfkit's parser, every `pip install` names a
    real extra (npm lines are the reader's, not perfkit's: skipped)."""
    checked = 0
    for block in blocks(GUIDE):
        if block.lang in {"sh", "bash", "shell"}:
            for words in shell_commands(block.code):
                if words[0] != "npm":
                    check_command(words, block.where)
                    checked += 1
    capsys.readouterr()
    assert checked >= 2


async def test_the_guide_python_blocks_run_and_print_what_they_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The walk-through runs in order (images, page, RUM, budgets, metrics) in a scratch folder, and the
    values its comments promise are printed: the AVIF immutable LCP image, the rated LCP of the route
    template, its target, the missed budget and the Prometheus bucket."""
    monkeypatch.chdir(tmp_path)
    python = [b for b in blocks(GUIDE) if b.lang == "python"]
    assert len(python) >= 4 and all(not b.skip for b in python)
    for url in re.findall(r"[a-z][a-z0-9+.-]*://[^\s'\"]*", "".join(b.code for b in python)):
        host = urlsplit(url).hostname  # what a reader copies reaches no other machine
        assert host is None or host in LOOPBACK or host.endswith("example.com"), url
    namespace: dict[str, Any] = {"__name__": "__guide__"}
    try:
        for block in python:
            await run_block(block, namespace)
    finally:
        await close_everything(namespace)
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"/img/[\w-]{43}/w=640,v=\w+/products/42\.jpg", out[0]), out
    assert out[1] == "True True", out
    assert out[2] == "image/avif public, max-age=31536000, immutable", out
    assert out[3] == "204 /products/{id} 3100.0 needs-improvement", out
    assert out[4:6] == ["html>body>img", "False 2500.0"], out
    bucket = 'perfkit_rum_lcp_seconds_bucket{device="mobile",le="2.5",route="/products/{id}"} 0.0'
    assert out[6] == bucket, out
