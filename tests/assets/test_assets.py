"""`perfkit assets`: sizes equal Python's gzip and brotli, budgets per glob, growth alerts, exit codes."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import brotli
import pytest

from perfkit.assets.budgets import matches, parse_budget
from perfkit.assets.sizes import scan
from perfkit.cli import main


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """A small built site: two JS bundles, a CSS file and an image-like binary."""
    rng = random.Random(7)
    root = tmp_path / "dist"
    (root / "js").mkdir(parents=True)
    words = ["function", "return", "const", "let", "=>", "{", "}", "(", ")", "value", "item", "render"]
    (root / "js" / "app.js").write_text(" ".join(rng.choice(words) for _ in range(40_000)))
    (root / "js" / "vendor.js").write_text(" ".join(rng.choice(words) for _ in range(20_000)))
    (root / "site.css").write_text(
        "".join(f".c{i}{{color:#{i % 4096:03x};margin:{i % 7}px}}\n" for i in range(2000))
    )
    (root / "logo.bin").write_bytes(rng.randbytes(5000))
    return root


def _run(*argv: str, tmp: Path) -> tuple[int, dict[str, object]]:
    out = tmp / "assets.json"
    code = main(["assets", *argv, "--json", str(out)])
    return code, json.loads(out.read_text())


def test_sizes_match_python_gzip_and_brotli(dist: Path) -> None:
    """Every file's gzip and brotli sizes are exactly those of gzip -9 (no mtime) and brotli q11."""
    files = scan(dist)
    assert [f.path for f in files] == ["js/app.js", "js/vendor.js", "logo.bin", "site.css"]
    for f in files:
        data = (dist / f.path).read_bytes()
        assert f.raw == len(data)
        assert f.gzip == len(gzip.compress(data, compresslevel=9, mtime=0))
        assert f.brotli == len(brotli.compress(data, quality=11))
        assert f.brotli < f.raw or f.path == "logo.bin"


def test_units_and_globs() -> None:
    """kB is 1000 bytes and KiB 1024 (size-limit's units); bare globs match names in any folder."""
    assert parse_budget("*.js=250kB").limit == 250_000
    assert parse_budget("*.css=50KiB").limit == 51_200
    assert matches("*.js", "js/app.js") and not matches("*.js", "js/app.json")
    assert matches("js/*.js", "js/app.js") and not matches("css/*.js", "js/app.js")
    assert matches("**/*.js", "app.js") and matches("**/*.js", "a/b/app.js")


def test_budgets_pass_and_fail(dist: Path, tmp_path: Path) -> None:
    """Group totals are the sums of their files; over budget exits 1, within exits 0."""
    files = {f.path: f for f in scan(dist)}
    js_brotli = files["js/app.js"].brotli + files["js/vendor.js"].brotli
    code, doc = _run(str(dist), "--budget", f"*.js={js_brotli}", "--budget", "*.css=50kB", tmp=tmp_path)
    assert code == 0 and doc["passed"] is True
    budgets = doc["budgets"]
    assert isinstance(budgets, list)
    assert budgets[0]["actual"] == js_brotli and budgets[0]["files"] == ["js/app.js", "js/vendor.js"]
    code, doc = _run(str(dist), "--budget", f"*.js={js_brotli - 1}", tmp=tmp_path)
    assert code == 1 and doc["passed"] is False
    gz = files["site.css"].gzip
    code, _ = _run(str(dist), "--budget", f"*.css={gz - 1}B", "--compression", "gzip", tmp=tmp_path)
    assert code == 1


def test_budget_matching_nothing_fails(dist: Path, tmp_path: Path) -> None:
    """A budget whose glob matches no file fails instead of passing silently."""
    code, doc = _run(str(dist), "--budget", "*.mjs=1MB", tmp=tmp_path)
    budgets = doc["budgets"]
    assert isinstance(budgets, list)
    assert code == 1 and budgets[0]["reason"] == "no file matches"


def test_usage_errors(dist: Path) -> None:
    """Bad budgets, units, directories and compression names exit 2."""
    assert main(["assets", str(dist), "--budget", "*.js"]) == 2
    assert main(["assets", str(dist), "--budget", "*.js=big"]) == 2
    assert main(["assets", str(dist / "missing")]) == 2
    assert main(["assets", str(dist), "--compression", "zip"]) == 2


def test_growth_against_baseline(dist: Path, tmp_path: Path) -> None:
    """A file that grew past --max-growth is an alert; exit 1 only with --fail-on-growth."""
    base = tmp_path / "base.json"
    assert main(["assets", str(dist), "--budget", "*.js=1MB", "--json", str(base)]) == 0
    with (dist / "js" / "app.js").open("a") as f:
        f.write(" ".join(f"grown{i}" for i in range(20_000)))
    code, doc = _run(str(dist), "--budget", "*.js=1MB", "--baseline", str(base), tmp=tmp_path)
    assert code == 0
    growth = doc["growth"]
    assert isinstance(growth, dict)
    assert {a["what"] for a in growth["alerts"]} == {"js/app.js", "*.js=1MB"}
    code, _ = _run(
        str(dist), "--budget", "*.js=1MB", "--baseline", str(base), "--fail-on-growth", tmp=tmp_path
    )
    assert code == 1
