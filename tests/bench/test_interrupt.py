"""Without a terminal a run prints a progress line every few seconds on stderr, and Ctrl-C (SIGINT)
writes the partial report, marked interrupted, and prints the summary instead of losing the run."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest

from perfkit.bench.plan import Plan
from perfkit.bench.progress import LOG_EVERY, LogProgress
from perfkit.bench.report.json_schema import SCHEMA
from perfkit.bench.target import make_target
from tests.bench.conftest import Server


class StderrReader(threading.Thread):
    """Collects a process's stderr lines; `wait_for(text)` blocks until a line contains it (or EOF)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.eof = False

    def run(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self.changed:
                self.lines.append(raw.decode())
                self.changed.notify_all()
        with self.changed:
            self.eof = True
            self.changed.notify_all()

    def wait_for(self, text: str, timeout: float) -> str:
        """The first line containing `text`; fails the test if none comes within `timeout`."""
        with self.changed:
            found = self.changed.wait_for(
                lambda: self.eof or any(text in line for line in self.lines), timeout
            )
            match = next((line for line in self.lines if text in line), None)
        if not found or match is None:
            pytest.fail(f"no stderr line with {text!r} within {timeout:g}s: {self.lines!r}")
        return match


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("processes", ["1", "2"])
def test_an_interrupt_writes_the_partial_report(
    server: Server, tmp_path: Path, processes: str, signum: signal.Signals
) -> None:
    """A 60 s run without a tty prints progress to stderr; SIGINT (Ctrl-C) or SIGTERM (a CI timeout)
    after the first line ends it with exit 130, the JSON report (interrupted=true, valid schema) and
    the summary on stdout."""
    report = tmp_path / "partial.json"
    argv = [f"{server.url}/", "--rate", "100/s", "--duration", "60s", "--processes", processes]
    with subprocess.Popen(
        [sys.executable, "-m", "perfkit.cli", "bench", *argv, "--json", str(report)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        reader = StderrReader(proc)
        reader.start()
        try:
            progress = reader.wait_for("elapsed", LOG_EVERY + 10)
            assert progress.startswith("perfkit bench:") and "left" in progress and "req/s" in progress
            proc.send_signal(signum)
            assert proc.stdout is not None
            out = proc.stdout.read().decode()  # the summary; EOF when the process exits
            proc.wait(timeout=20)
            reader.join(5)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130
    doc = json.loads(report.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert doc["interrupted"] is True and doc["passed"] is False
    assert doc["duration_s"] < 30
    assert doc["sent"] == doc["names"]["*"]["requests"] == server.count() > 0
    assert "\nall " in out and "FAILED (INTERRUPTED)" in out and "interrupted after" in out
    assert any("interrupted; waiting up to" in line for line in reader.lines)


def test_log_progress_prints_every_few_seconds() -> None:
    """The plain progress view writes one line per LOG_EVERY seconds of ticks, with the rate since
    the previous line."""
    target = make_target("http://127.0.0.1:9/")
    stream = io.StringIO()
    progress = LogProgress(Plan(endpoint=target.endpoint, target=target, duration=20), stream=stream)
    for i in range(1, 4 * 12 + 1):  # 12 s of ticks, 4 a second, 100 responses a second
        t = i / 4
        progress.tick(t, [t * 100, t * 100, 0.0, 1500.0])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines  # at 5 s and at 10 s
    assert "5.0s elapsed" in lines[0] and "15.0s left" in lines[0] and "100 req/s" in lines[0]
    assert "10.0s elapsed" in lines[1] and "sent 1000" in lines[1]


def test_second_sigint_aborts_at_once(server: Server, tmp_path: Path) -> None:
    """While the first Ctrl-C waits for requests in flight (a 20 s endpoint, --timeout 10s), a second
    one ends the run at once with exit 130 and no report."""
    report = tmp_path / "aborted.json"
    argv = [f"{server.url}/slow?ms=20000", "--rate", "10/s", "--duration", "60s", "--timeout", "10s"]
    with subprocess.Popen(
        [sys.executable, "-m", "perfkit.cli", "bench", *argv, "--json", str(report)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as proc:
        reader = StderrReader(proc)
        reader.start()
        try:
            reader.wait_for("elapsed", LOG_EVERY + 10)
            proc.send_signal(signal.SIGINT)
            reader.wait_for("interrupted; waiting", 10)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
            aborted_in = time.monotonic() - t0
            reader.join(5)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130
    assert aborted_in < 3, aborted_in
    assert not report.exists()
