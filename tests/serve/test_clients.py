"""The clients against a real `perfkit serve`: the TypeScript one type-checked with tsc and run under
Node (its own end-to-end script and the example of docs/service.md), the Python one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from perfkit.serve import ServeClient, ServeError
from tests.serve._node import compile_with_client, run_node
from tests.serve._server import ROOT, TOKENS

E2E = Path(__file__).parent / "node" / "e2e.ts"
TRACE = Path(__file__).parent / "node" / "trace.ts"


def docs_example() -> str:
    text = (ROOT / "docs" / "service.md").read_text()
    match = re.search(r"<!-- node-example -->\s*```ts\n(.*?)```", text, re.DOTALL)
    assert match, "docs/service.md lost its Node example"
    return match.group(1)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client, this suite's Node script and the docs' example, compiled once by tsc --strict with
    the client's own tsconfig (a type error in any of them fails here)."""
    return compile_with_client(
        tmp_path_factory.mktemp("ts"),
        {"e2e.ts": E2E.read_text(), "trace.ts": TRACE.read_text(), "example.ts": docs_example()},
    )


def test_the_typescript_client_runs_under_node(server: str, dist: Path, ns: str) -> None:
    """The typed client does cache, batch, invalidation, problems and a remote worker's whole job
    under Node against the real service."""
    done = run_node(dist, "e2e.js", {"BASE_URL": server, "TOKEN": TOKENS["app"], "NS": ns})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["cacheControl"].startswith("private, max-age=")
    assert seen["invalidated"] == 2
    assert seen["problemField"] == "ttl"
    assert seen["result"] == {"rendered": "from-node.mp4", "by": "node"}
    assert {"email", "resize", "video"} <= set(seen["types"])
    assert seen["health"] is True
    httpx.delete(f"{server}/v1/cache/{ns}", headers={"authorization": f"Bearer {TOKENS['admin']}"})


def test_the_typescript_client_sends_the_callers_trace_context(dist: Path) -> None:
    """With `propagate`, every request carries the caller's traceparent and tracestate, never in place of
    the client's authorization; a propagate that throws, or none, sends no trace header."""
    done = run_node(dist, "trace.js", {})
    assert done.returncode == 0, done.stderr
    traced_enqueue, traced_set, throwing, plain = json.loads(done.stdout.strip().splitlines()[-1])
    for headers in (traced_enqueue, traced_set):
        assert headers["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        assert headers["tracestate"] == "perfkit=1"
        assert headers["authorization"] == "Bearer the-token"
    assert traced_enqueue["content-type"] == "application/json"
    for headers in (throwing, plain):
        assert "traceparent" not in headers and headers["authorization"] == "Bearer the-token"


def test_the_node_example_of_the_docs_runs(server: str, dist: Path) -> None:
    """docs/service.md's Node example, compiled as written, runs against the service as it says."""
    done = run_node(dist, "example.js", {"PERFKIT_URL": server, "PERFKIT_TOKEN": TOKENS["app"]})
    httpx.delete(f"{server}/v1/cache/presentations", headers={"authorization": f"Bearer {TOKENS['admin']}"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("cached: Q3 review (")
    assert re.match(r"job video:\w+ is queued", lines[1])
    assert lines[2] == "invalidated 1"
    assert lines[3] == "refused: ttl"


async def test_the_python_client(app: ServeClient, server: str) -> None:
    """ServeClient: the operations a Python app uses, and problems raised as ServeError with the field."""
    etag = await app.set("p", {"a": 1}, ttl=30, tags=["py"])
    assert await app.get("p") == {"a": 1}
    assert await app.get("p", etag=etag) is ...
    await app.set_bytes("raw", b"\x00\x01", tags=["py"], compress=True)
    assert await app.get("raw") == b"\x00\x01"
    assert (await app.invalidate(tags=["py"]))["removed"] == 2
    job = await app.enqueue("video", "py.mp4", priority="low")
    assert (await app.job(job["id"]))["priority"] == "low"
    assert (await app.cancel(job["id"]))["status"] == "cancelled"
    assert (await app.health())["ok"] is True
    with pytest.raises(ServeError) as refused:
        await app.set("bad", 1, ttl=0)
    assert refused.value.status == 422 and refused.value.field == "ttl"
