"""Two real processes sharing an L2: L1 coherence within 100 ms, and one loader call across processes."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from perfkit import Cache
from tests.conftest import REDIS_URL, require_redis

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


class Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def ask(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()
        answer = await asyncio.wait_for(self.proc.stdout.readline(), 10)
        assert answer, "child process exited"
        return json.loads(answer)  # type: ignore[no-any-return]


@pytest.fixture(
    params=[pytest.param("redis", marks=pytest.mark.redis), pytest.param("sqlite", marks=pytest.mark.sqlite)]
)
def l2_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        require_redis()
        return REDIS_URL
    return f"sqlite:///{tmp_path}/shared.db"


@pytest.fixture
async def spawn(l2_url: str, namespace: str) -> AsyncIterator[Any]:
    children: list[asyncio.subprocess.Process] = []

    async def start(l1: str = "memory://") -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.cache._child",
            l2_url,
            l1,
            namespace,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        children.append(proc)
        child = Child(proc)
        assert proc.stdout is not None
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))
        assert ready == {"ready": True}
        return child

    yield start
    for proc in children:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_l1_copies_in_another_process_are_evicted_within_100ms(
    spawn: Any, l2_url: str, namespace: str
) -> None:
    """A set, a delete and a tag invalidation here evict the other process's L1 copy within 100 ms."""
    child = await spawn()
    async with Cache(l2_url, l1="memory://", namespace=namespace) as here:
        await here.set("k", 1, tags=["grp"])
        assert (await child.ask("get k"))["value"] == 1
        second = await child.ask("get k")
        assert second == {"value": 1, "l1_hit": True}  # the other process now serves k from its L1

        await here.set("k", 2, tags=["grp"])
        seen = await child.ask("watch k 2")
        assert seen["value"] == 2 and seen["ms"] < 100, seen

        await child.ask("get k")
        await here.delete("k")
        seen = await child.ask("watch k null")
        assert seen["value"] is None and seen["ms"] < 100, seen

        await here.set("t", "tagged", tags=["grp"])
        await child.ask("get t")
        assert (await child.ask("get t"))["l1_hit"] is True
        await here.invalidate_tags(["grp"])
        seen = await child.ask("watch t null")
        assert seen["value"] is None and seen["ms"] < 100, seen
        await here.clear()


async def test_stampede_across_processes_runs_the_loader_once(
    spawn: Any, l2_url: str, namespace: str
) -> None:
    """Two processes x 200 concurrent callers on one cold key: one loader call in total, no errors."""
    a, b = await spawn("-"), await spawn("-")
    results = await asyncio.gather(a.ask("stampede cold 200 calls"), b.ask("stampede cold 200 calls"))
    assert results == [{"ok": 200, "errors": []}, {"ok": 200, "errors": []}]
    async with Cache(l2_url, namespace=namespace) as here:
        assert await here.get("calls") == 1
        await here.clear()
