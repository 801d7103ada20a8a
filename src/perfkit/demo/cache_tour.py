"""A short, real tour of perfkit's cache with measured figures, on the embedded default (SQLite).

It builds a small SQLite "tickets" database, then caches a real aggregate query over it and shows:
cold vs warm latency, one loader call for 500 concurrent misses, the hit ratio of a skewed workload
against the 80 % target, tag invalidation, compression and encryption at rest. Until the full demo
app lands (issue 8), this is what `perfkit demo` / `make demo` runs.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import time
from pathlib import Path

from perfkit.cache import Cache, generate_key

_STATUSES = ("open", "in_progress", "pending", "resolved", "closed", "cancelled")


def _seed(path: Path, rows: int = 200_000) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS tickets (id INTEGER PRIMARY KEY, org INTEGER, status TEXT, prio INT)"
        )
        have = db.execute("SELECT count(*) FROM tickets").fetchone()[0]
        if have >= rows:
            return
        rnd = random.Random(7)
        db.executemany(
            "INSERT INTO tickets (org, status, prio) VALUES (?, ?, ?)",
            ((rnd.randrange(50), rnd.choice(_STATUSES), rnd.randrange(4)) for _ in range(rows - have)),
        )


def _prepare(base: Path, db: Path) -> None:
    base.mkdir(parents=True, exist_ok=True)
    _seed(db)


def _stats_query(path: Path, org: int) -> dict[str, int]:
    """The expensive part the cache saves: a real aggregate over 200k rows (no index on org)."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT status, count(*) FROM tickets WHERE org = ? GROUP BY status", (org,)
        ).fetchall()
    return dict(rows)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f} ms"


async def _tour(label: str, cache: Cache, db: Path) -> None:
    print(f"\n== {label}: {cache!r}")
    loads = 0

    def loader_for(org: int):  # type: ignore[no-untyped-def]
        def load() -> dict[str, int]:
            nonlocal loads
            loads += 1
            return _stats_query(db, org)

        return load

    await cache.clear()
    t0 = time.perf_counter()
    await cache.get_or_set("org:1:stats", loader_for(1), ttl=300, tags=["org:1"])
    cold = time.perf_counter() - t0
    warm_times = []
    for _ in range(200):
        t0 = time.perf_counter()
        await cache.get_or_set("org:1:stats", loader_for(1), ttl=300, tags=["org:1"])
        warm_times.append(time.perf_counter() - t0)
    warm = statistics.median(warm_times)
    print(f"  cold (runs the query)    {_ms(cold)}")
    print(f"  warm (cache hit, median) {_ms(warm)}   -> {cold / warm:,.0f}x faster")

    loads = 0
    results = await asyncio.gather(
        *[cache.get_or_set("org:2:stats", loader_for(2), ttl=300) for _ in range(500)]
    )
    print(
        f"  500 concurrent misses    {loads} loader call(s), {len(set(map(str, results)))} distinct answer(s)"
    )

    before = cache.stats()
    rnd = random.Random(1)
    loads = 0
    for _ in range(2000):
        org = min(int(rnd.paretovariate(1.2)), 49)  # a few hot organizations, a long tail
        await cache.get_or_set(f"org:{org}:stats", loader_for(org), ttl=300, tags=[f"org:{org}"])
    after = cache.stats()
    hits, misses = after.hits - before.hits, after.misses - before.misses
    ratio = hits / (hits + misses)
    verdict = "meets" if ratio >= 0.8 else "below"
    print(
        f"  2,000 skewed reads       hit ratio {ratio:.1%} ({verdict} the 80 % target), {loads} queries run"
    )

    removed = await cache.invalidate_tags(["org:1"])
    loads = 0
    await cache.get_or_set("org:1:stats", loader_for(1), ttl=300, tags=["org:1"])
    print(f"  invalidate tag org:1     removed {removed} key(s); next read re-ran the query ({loads} call)")
    tiers = ", ".join(
        f"{name}({t.backend}) hits={t.hits} misses={t.misses} avg={t.latency_avg_ms:.3f}ms"
        for name, t in after.tiers.items()
    )
    print(f"  per tier                 {tiers}")


async def tour(directory: str, redis_url: str | None) -> int:
    base = Path(directory)
    db = base / "tickets.db"
    t0 = time.perf_counter()
    await asyncio.to_thread(_prepare, base, db)
    print(f"perfkit cache tour — data: {db} (200,000 tickets, ready in {time.perf_counter() - t0:.1f} s)")
    cache_db = f"sqlite:///{base / 'cache.db'}"

    async with Cache(cache_db, namespace="tour") as cache:
        await _tour("embedded SQLite L2", cache, db)
    async with Cache(cache_db, l1="memory://?max_size=10000", namespace="tour-tiered") as cache:
        await _tour("tiered: memory L1 over SQLite L2", cache, db)
    if redis_url:
        async with Cache(redis_url, l1="memory://?max_size=10000", namespace="perfkit-tour") as cache:
            await _tour("tiered: memory L1 over Redis L2", cache, db)

    secret = "4111-1111-1111-1111"  # noqa: S105 - a made-up card number, to show it is not stored
    async with Cache(cache_db, namespace="tour-secure", encryption_keys=[generate_key()]) as cache:
        big = {"rows": [{"id": i, "status": "open", "card": secret} for i in range(300)]}
        await cache.set("payload", big, ttl=60)
        with sqlite3.connect(base / "cache.db") as conn:
            raw = conn.execute(
                "SELECT value FROM perfkit_cache WHERE key = 'tour-secure:payload'"
            ).fetchone()[0]
        plain = len(cache._codec.serializer.dumps(big))
        print("\n== compression and encryption at rest")
        print(f"  {plain:,} bytes serialized -> {len(raw):,} bytes stored (zstd, then AES-GCM)")
        print(f"  plaintext card number in the stored bytes: {secret.encode() in raw}")
        assert await cache.get("payload") == big
        await cache.clear()
    print("\nThe full demo app (issue 8) will replace this tour. See README.md for the parts.")
    return 0
