"""Exact accounting: every request sent is recorded once, in one process or merged from several."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.bench.conftest import Server, bench


def _all(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = doc["names"]["*"]
    return entry


def test_closed_model_counts_are_exact(server: Server, tmp_path: Path) -> None:
    """Requests sent == responses recorded == requests the server saw, histogram count included."""
    code, doc = bench(tmp_path, f"{server.url}/", "--users", "8", "--duration", "1s")
    total = _all(doc)
    assert code == 0
    assert doc["sent"] == total["requests"] == total["latency_ms"]["count"] == server.count() > 100
    assert total["errors"] == 0 and total["status_codes"] == {"200": total["requests"]}


def test_processes_merge_exactly(server: Server, tmp_path: Path) -> None:
    """Two worker processes: merged counts and histograms equal the server's count exactly."""
    code, doc = bench(tmp_path, f"{server.url}/", "--users", "4", "--duration", "1s", "--processes", "2")
    total = _all(doc)
    assert code == 0
    assert doc["config"]["processes"] == 2
    assert doc["sent"] == total["requests"] == total["latency_ms"]["count"] == server.count() > 100
    assert sum(s["requests"] for s in doc["timeline"]) == total["requests"]


def test_max_requests_caps_the_run(server: Server, tmp_path: Path) -> None:
    """--max-requests is a hard cap: exactly that many are sent, even with time left."""
    code, doc = bench(
        tmp_path, f"{server.url}/", "--users", "4", "--duration", "30s", "--max-requests", "500"
    )
    assert code == 0
    assert doc["sent"] == _all(doc)["requests"] == server.count() == 500
    assert doc["duration_s"] < 10


def test_chunked_and_connection_close(server: Server, tmp_path: Path) -> None:
    """Chunked bodies are parsed, and servers closing after each response are reconnected to."""
    for path in ("/chunked", "/close"):
        code, doc = bench(tmp_path, f"{server.url}{path}", "--users", "2", "--max-requests", "300")
        assert code == 0, path
        assert _all(doc)["requests"] == 300 and _all(doc)["errors"] == 0, path
    assert server.count() == 600


def test_errors_by_kind(server: Server, tmp_path: Path) -> None:
    """5xx responses count as status errors; a refused connection as a connection error."""
    _, doc = bench(tmp_path, f"{server.url}/status/503", "--users", "2", "--max-requests", "50")
    assert _all(doc)["errors_by_kind"]["status"] == 50 and _all(doc)["error_rate"] == 1.0
    server.proc.terminate()
    server.proc.wait()
    code, doc = bench(tmp_path, f"{server.url}/", "--users", "2", "--max-requests", "20")
    assert code == 1  # no response at all is never a pass
    assert _all(doc)["errors_by_kind"]["connection"] == 20 == doc["sent"]


def test_protocol_errors_are_their_own_kind(server: Server, tmp_path: Path) -> None:
    """A reply that is not HTTP is a protocol error; the connection is replaced and the run goes on."""
    code, doc = bench(tmp_path, f"{server.url}/garbage", "--users", "2", "--max-requests", "30")
    assert code == 1
    assert _all(doc)["errors_by_kind"] == {"status": 0, "timeout": 0, "connection": 0, "protocol": 30}
    assert server.count() == 30


def test_timeout_is_recorded(server: Server, tmp_path: Path) -> None:
    """A response slower than --timeout is a timeout error, and the run still ends on time."""
    code, doc = bench(
        tmp_path, f"{server.url}/slow?ms=3000", "--users", "2", "--duration", "0.5s", "--timeout", "0.3s"
    )
    assert code == 1
    assert _all(doc)["errors_by_kind"]["timeout"] == doc["sent"] >= 2  # one per user per 0.3 s
    assert doc["duration_s"] < 2


def test_head_requests_have_no_body(server: Server, tmp_path: Path) -> None:
    """-X HEAD: a Content-Length without a body is not waited for; keep-alive continues."""
    code, doc = bench(tmp_path, f"{server.url}/", "-X", "HEAD", "--users", "2", "--max-requests", "100")
    assert code == 0
    assert _all(doc)["status_codes"] == {"200": 100} and "HEAD /" in doc["names"]


def test_closed_model_user_stages(server: Server, tmp_path: Path) -> None:
    """User stages ramp the closed model up and down; every request is still counted exactly."""
    code, doc = bench(tmp_path, f"{server.url}/", "--stage", "0.5s:4", "--stage", "0.5s:1")
    assert code == 0
    assert doc["config"]["model"] == "closed" and doc["config"]["connections"] == 4
    assert doc["sent"] == _all(doc)["requests"] == server.count() > 0
