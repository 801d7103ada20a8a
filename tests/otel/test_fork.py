"""Fork safety: an app instrumented before the fork, each forked worker exports its own spans and metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_each_forked_worker_exports_its_own_spans_and_metrics() -> None:
    """Instrumented in the parent (no SDK there), forked twice, each worker configures an SDK: worker
    i sees exactly its own requests as spans and as `http.server.request.duration` counts."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env.pop("PERFKIT_OTEL", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.otel.fork_child"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    *workers, parent = lines
    assert parent["tracer"] is False  # the parent never had a global SDK, and nothing set one there
    assert parent["parent_spans"] == 1  # the explicitly configured app's one request, none from a worker
    assert sorted(len(w["spans"]) for w in workers) == [2, 4]
    for w in workers:
        assert w["pid"] != parent["parent"]
        assert w["forgot"]  # the tracer found before the fork was forgotten in the worker
        assert set(w["spans"]) == {"GET /hello/{who}"}
        assert w["counted"] == len(w["spans"])  # its own requests only: none of the parent's 3
        assert len(w["traces"]) == len(w["spans"])
    assert not set(workers[0]["traces"]) & set(workers[1]["traces"])
