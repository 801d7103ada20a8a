"""Reports: the JSON document validates against its published schema; the text summary is complete."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from perfkit.bench.hdr import Histogram
from perfkit.bench.report.json_schema import SCHEMA
from tests.bench.conftest import Server, bench


def test_json_report_matches_schema(server: Server, tmp_path: Path) -> None:
    """Open and closed model reports validate against the JSON Schema, and the embedded histogram
    decodes to the reported count."""
    for shape in (["--users", "2", "--duration", "0.5s"], ["--rate", "200/s", "--duration", "0.5s"]):
        code, doc = bench(tmp_path, f"{server.url}/json", *shape, "--threshold", "p99<5s")
        assert code == 0
        jsonschema.validate(doc, SCHEMA)
        total = doc["names"]["*"]
        assert Histogram.decode(total["histogram"]).count == total["latency_ms"]["count"] == total["requests"]
        if doc["config"]["model"] == "closed":
            assert total["uncorrected_latency_ms"] is None
        else:
            assert total["uncorrected_latency_ms"]["count"] == total["requests"]


def test_summary_table_lists_every_name(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text summary has a row per name plus the global row and the verdict."""
    code, _ = bench(tmp_path, f"{server.url}/", "--users", "1", "--max-requests", "10", "--name", "home")
    out = capsys.readouterr().out
    assert code == 0
    assert "\nall " in out and "\nhome " in out and out.rstrip().endswith("PASSED")
