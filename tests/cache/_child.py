"""A second process for cross-process cache tests, driven line by line over stdin/stdout.

Usage: python -m tests.cache._child URL L1 NAMESPACE. Commands: `get KEY`, `watch KEY JSON`,
`stampede KEY N COUNTER_KEY`, `quit`. Every answer is one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from perfkit import Cache


async def main(url: str, l1: str, namespace: str) -> None:
    cache = Cache(url, l1=None if l1 == "-" else l1, namespace=namespace)
    await cache.get("__warm__")
    deadline = time.monotonic() + 5
    coherence = cache.tiers.coherence
    while coherence is not None and not coherence.ready and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    print(json.dumps({"ready": True}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        cmd, *args = line.split(" ", 3)
        if cmd == "quit":
            break
        if cmd == "get":
            before = cache.stats().tiers["l1"].hits if "l1" in cache.stats().tiers else 0
            value = await cache.get(args[0])
            after = cache.stats().tiers["l1"].hits if "l1" in cache.stats().tiers else 0
            print(json.dumps({"value": value, "l1_hit": after > before}), flush=True)
        elif cmd == "watch":
            expected = json.loads(args[1])
            start = time.monotonic()
            while (value := await cache.get(args[0])) != expected and time.monotonic() - start < 3:
                await asyncio.sleep(0.001)
            print(json.dumps({"value": value, "ms": (time.monotonic() - start) * 1000}), flush=True)
        elif cmd == "stampede":
            key, n, counter_key = args[0], int(args[1]), args[2]

            async def loader(counter_key: str = counter_key) -> str:
                await cache.incr(counter_key, ttl=60)
                await asyncio.sleep(0.3)
                return "loaded"

            results = await asyncio.gather(
                *[cache.get_or_set(key, loader, ttl=60) for _ in range(n)], return_exceptions=True
            )
            print(
                json.dumps(
                    {
                        "ok": sum(r == "loaded" for r in results),
                        "errors": [repr(r) for r in results if r != "loaded"][:3],
                    }
                ),
                flush=True,
            )
    await cache.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
