"""Finding Lighthouse and Chromium, running Lighthouse once, and reducing its report to what perfkit keeps.

Lighthouse is the npm package (`npm install lighthouse`): `--lighthouse PATH` (its CLI, its package
folder, or a folder holding `node_modules`), else `lighthouse` on PATH, else `./node_modules/.bin`.
Chromium: `--chrome PATH`, else `CHROME_PATH`, else Debian's `/usr/bin/chromium`, else `chromium`,
`chromium-browser` or `google-chrome` on PATH. Either missing is a usage error with the install hint.
Chromium runs headless with the flags that work in a container (no sandbox, no GPU).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perfkit.bench.lighthouse.budgets import METRICS
from perfkit.errors import ConfigurationError, PerfkitError

CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
)  # fmt: skip
DEBIAN_CHROMIUM = "/usr/bin/chromium"
MAX_AUDITS = 20  # audits below 90 kept in the report, the largest savings first


def _cli(path: Path) -> list[str]:
    if path.suffix in (".js", ".mjs"):
        node = shutil.which("node")
        if node is None:
            raise ConfigurationError("--lighthouse", "node is not on PATH (Lighthouse runs on Node.js)")
        return [node, str(path)]
    return [str(path)]


def find_lighthouse(given: str | None = None) -> list[str]:
    """The command that starts Lighthouse (see the module docstring)."""
    if given:
        root = Path(given).expanduser()
        for candidate in (
            root,
            root / "node_modules" / ".bin" / "lighthouse",
            root / ".bin" / "lighthouse",
            root / "cli" / "index.js",
            root / "node_modules" / "lighthouse" / "cli" / "index.js",
        ):
            if candidate.is_file():
                return _cli(candidate)
        raise ConfigurationError(
            "--lighthouse",
            f"no Lighthouse at {given} (its CLI, package folder, or a folder with node_modules)",
        )
    on_path = shutil.which("lighthouse")
    if on_path:
        return [on_path]
    local = Path.cwd() / "node_modules" / ".bin" / "lighthouse"
    if local.is_file():
        return _cli(local)
    raise ConfigurationError(
        "--lighthouse",
        "Lighthouse is not installed: `npm install lighthouse` here, or pass --lighthouse PATH",
    )


def find_chromium(given: str | None = None) -> str:
    """The Chromium (or Chrome) executable Lighthouse drives (see the module docstring)."""
    if given:
        if os.access(given, os.X_OK) and Path(given).is_file():
            return given
        raise ConfigurationError("--chrome", f"{given} is not an executable Chromium")
    env = os.environ.get("CHROME_PATH")
    for candidate in (env, DEBIAN_CHROMIUM):
        if candidate and os.access(candidate, os.X_OK) and Path(candidate).is_file():
            return candidate
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise ConfigurationError(
        "--chrome",
        "Chromium is not installed: `apt-get install -y chromium`, or pass --chrome PATH / CHROME_PATH",
    )


def run_lighthouse(
    url: str,
    lighthouse: Sequence[str],
    chrome: str,
    *,
    categories: Sequence[str] = ("performance",),
    form_factor: str = "mobile",
    timeout: float = 120.0,
) -> dict[str, Any]:
    """One Lighthouse run: its JSON report (the "LHR"). A run Lighthouse reports as failed (the page did
    not load, Chromium did not start) or one past `timeout` raises `PerfkitError` with the reason."""
    with tempfile.TemporaryDirectory(prefix="perfkit-lighthouse-") as tmp:
        out = Path(tmp) / "report.json"
        command = [
            *lighthouse, url, "--output=json", f"--output-path={out}", "--quiet",
            f"--only-categories={','.join(categories)}", f"--chrome-flags={' '.join(CHROME_FLAGS)}",
            *(["--preset=desktop"] if form_factor == "desktop" else []),
        ]  # fmt: skip
        env = {**os.environ, "CHROME_PATH": chrome, "TMPDIR": tmp}
        proc = subprocess.Popen(  # noqa: S603  # an argument list (no shell): the URL is one argument
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # Lighthouse and the Chromium it started
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise PerfkitError(f"Lighthouse did not finish within {timeout:g}s") from None
        report: dict[str, Any] | None = None
        if out.is_file():
            with contextlib.suppress(ValueError):
                report = json.loads(out.read_text())
    if report is not None and report.get("runtimeError"):
        error = report["runtimeError"]
        raise PerfkitError(f"Lighthouse: {error.get('code')}: {error.get('message', '').strip()}")
    if report is None or proc.returncode != 0:
        last = (stderr or "").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        raise PerfkitError(f"Lighthouse failed: {last[0][:300]}")
    return report


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """Scores (0-100), the metrics budgets read, and the audits below 90 (largest savings first)."""
    audits = report.get("audits", {})
    scores = {
        key: None if c.get("score") is None else round(c["score"] * 100)
        for key, c in report.get("categories", {}).items()
    }
    metrics = {}
    for name, audit_id in METRICS.items():
        audit = audits.get(audit_id)
        if audit is not None and audit.get("numericValue") is not None:
            metrics[name] = {
                "audit": audit_id,
                "value": round(float(audit["numericValue"]), 4 if name == "cls" else 1),
                "unit": "" if name == "cls" else "ms",
                "score": audit.get("score"),
                "display": audit.get("displayValue"),
            }
    weak = []
    for audit_id, audit in audits.items():
        score = audit.get("score")
        if (
            score is None
            or score >= 0.9
            or audit.get("scoreDisplayMode") not in ("numeric", "binary", "metricSavings")
        ):
            continue
        details = audit.get("details") or {}
        weak.append({
            "id": audit_id, "title": audit.get("title"), "score": score, "display": audit.get("displayValue"),
            "savings_ms": details.get("overallSavingsMs"),
        })  # fmt: skip
    weak.sort(key=lambda a: (-(a["savings_ms"] or 0), a["score"], a["id"]))
    settings = report.get("configSettings", {})
    return {
        "url": report.get("requestedUrl"),
        "final_url": report.get("finalDisplayedUrl") or report.get("finalUrl"),
        "lighthouse_version": report.get("lighthouseVersion"),
        "fetch_time": report.get("fetchTime"),
        "form_factor": settings.get("formFactor"),
        "scores": scores,
        "metrics": metrics,
        "audits": weak[:MAX_AUDITS],
        "warnings": list(report.get("runWarnings", [])),
    }
