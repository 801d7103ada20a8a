"""Cache benchmark (issue 2, section 4): perfkit.Cache side by side with its peers, in one run.

    .venv/bin/python benchmarks/cache.py            # full run (~1-2 min)
    .venv/bin/python benchmarks/cache.py --quick    # short run (fewer rounds, no 100k tag case)
    .venv/bin/python benchmarks/cache.py --cluster redis+cluster://127.0.0.1:7000   # plus Redis Cluster rows

Peers: cashews (mem://, redis://, client-side redis), aiocache (SimpleMemoryCache, RedisCache),
dogpile.cache (memory region), cachetools (TTLCache) and raw redis-py asyncio (hiredis), the floor.
The same payloads (a ~100 B and a ~10 KB dict) and the same local Redis (DB 9, keys under `bench:`)
for everyone. Every peer is checked to read back what was written, and hits are checked to be hits,
before anything is timed. Rounds are interleaved; ops/s is the best and the median over rounds, and a
ratio is the median of the per-round perfkit/peer ratios. Exits 0 whether or not a target is met.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pickle
import random
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiocache
import cachetools
import cashews
import msgspec
import redis.asyncio as aioredis
import zstandard
from dogpile.cache import make_region
from redis.utils import HIREDIS_AVAILABLE

from _util import Contender, aloop, fmt_ops, gather_loop, machine_line, measure, paired_ratio, sloop, table
from perfkit import Cache

NKEYS = 64
TTL = 60
_mp_enc = msgspec.msgpack.Encoder().encode
_mp_dec = msgspec.msgpack.Decoder().decode

Row = list[str]
results: list[tuple[str, Row]] = []  # (section, row)
targets: list[tuple[str, str, float, float]] = []  # (target, payload, ratio, threshold)


# -- payloads --------------------------------------------------------------------------------------


def make_payloads() -> dict[str, Any]:
    rng = random.Random(42)
    small = {
        "id": 4211,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "active": True,
        "roles": ["admin", "dev"],
        "score": 98.5,
        "org": 17,
        "plan": "team",
    }
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
        "mike",
        "november",
        "oscar",
        "papa",
        "quebec",
        "romeo",
        "sierra",
        "tango",
        "uniform",
        "victor",
        "whiskey",
        "xray",
        "yankee",
        "zulu",
    ]
    items: list[dict[str, Any]] = []
    while len(_mp_enc(items)) < 9900:
        items.append(
            {
                "sku": f"SKU-{rng.randrange(10**8):08d}",
                "title": " ".join(rng.choice(words) for _ in range(3)),
                "qty": rng.randrange(1, 50),
                "price": round(rng.uniform(1, 500), 2),
                "tags": [rng.choice(words), rng.choice(words)],
                "in_stock": rng.random() < 0.8,
                "ref": f"{rng.getrandbits(48):012x}",
            }
        )
    large = {"page": 1, "total": len(items), "items": items}
    return {"100B": small, "10KB": large}


def sizes(value: Any) -> str:
    mp = _mp_enc(value)
    z = zstandard.ZstdCompressor(level=3).compress(mp)
    return f"msgpack {len(mp)} B, zstd {len(z)} B, pickle {len(pickle.dumps(value))} B"


def check(what: str, got: Any, want: Any) -> None:
    if got != want:
        raise SystemExit(f"peer check failed: {what} read back {str(got)[:80]!r}, expected the payload")


# -- reporting ---------------------------------------------------------------------------------------


def report(
    section: str,
    payload: str,
    ref_async: Contender | None,
    ref_sync: Contender | None,
    contenders: list[Contender],
    perfkit: set[str],
) -> None:
    for c in contenders:
        if c.name in perfkit:
            ratio = "(perfkit)"
        elif c.is_async and ref_async is not None:
            ratio = f"{paired_ratio(ref_async, c):.2f}x"
        elif not c.is_async and ref_sync is not None:
            ratio = f"{paired_ratio(ref_sync, c):.2f}x"
            if ref_async is not None:
                ratio += f" (async get: {paired_ratio(ref_async, c):.2f}x)"
        else:
            ratio = "-"
        results.append((section, [section, payload, c.name, fmt_ops(c.best), fmt_ops(c.median), ratio]))


def add_target(name: str, payload: str, a: Contender, b: Contender, threshold: float) -> None:
    targets.append((name, payload, paired_ratio(a, b), threshold))


# -- sections -------------------------------------------------------------------------------------------


async def l1_raw(payloads: dict[str, Any], rounds: int, sample: float) -> None:
    pk = Cache("memory://?max_size=10000", namespace="b")
    cw = cashews.Cache()
    cw.setup("mem://")
    ac = aiocache.SimpleMemoryCache()
    dp = make_region().configure("dogpile.cache.memory", expiration_time=TTL)
    ct: cachetools.TTLCache[str, Any] = cachetools.TTLCache(maxsize=10000, ttl=TTL)
    for pname, value in payloads.items():
        keys = [f"raw:{pname}:{i}" for i in range(NKEYS)]
        for k in keys:
            await pk.set(k, value, ttl=TTL)
            await cw.set(k, value, expire=TTL)
            await ac.set(k, value, ttl=TTL)
            dp.set(k, value)
            ct[k] = value
        for k in keys:
            check("perfkit memory", await pk.get(k), value)
            check("perfkit sync", pk.sync.get(k), value)
            check("cashews mem://", await cw.get(k), value)
            check("aiocache memory", await ac.get(k), value)
            check("dogpile memory", dp.get(k), value)
            check("cachetools TTLCache", ct.get(k), value)
        pa = Contender("perfkit  await c.get", aloop(pk.get, keys))
        ps = Contender("perfkit  c.sync.get", sloop(pk.sync.get, keys), is_async=False)
        cs = [
            pa,
            Contender("cashews  mem:// get", aloop(cw.get, keys)),
            Contender("aiocache SimpleMemoryCache.get", aloop(ac.get, keys)),
            ps,
            Contender("dogpile  region.get (sync)", sloop(dp.get, keys), is_async=False),
            Contender("cachetools TTLCache.get (sync)", sloop(ct.get, keys), is_async=False),
        ]
        await measure(cs, rounds, sample)
        report("L1 hit, raw API", pname, pa, ps, cs, {pa.name, ps.name})
        add_target("async L1 hit >= 3x cashews", pname, pa, cs[1], 3.0)
    await pk.close()
    await cw.close()
    await ac.close()


async def l1_decorator(payloads: dict[str, Any], rounds: int, sample: float) -> None:
    pk = Cache("memory://?max_size=10000", namespace="d")
    cw = cashews.Cache()
    cw.setup("mem://")
    dp = make_region().configure("dogpile.cache.memory", expiration_time=TTL)
    for pname, value in payloads.items():
        calls = [0]

        def named(fn: Callable[..., Any], name: str, pname: str = pname) -> Callable[..., Any]:
            fn.__name__ = fn.__qualname__ = f"{name}_{pname.lower()}"
            return fn

        async def aload(uid: int, value: Any = value, calls: list[int] = calls) -> Any:
            calls[0] += 1
            return value

        def sload(uid: int, value: Any = value, calls: list[int] = calls) -> Any:
            calls[0] += 1
            return value

        def afn() -> Callable[..., Awaitable[Any]]:
            async def f(uid: int) -> Any:
                return await aload(uid)

            return f

        def sfn() -> Callable[..., Any]:
            def f(uid: int) -> Any:
                return sload(uid)

            return f

        pk_a = pk.cached(ttl=TTL, key=pname + ":user:{uid}")(named(afn(), "pk_a"))
        pk_s = pk.cached(ttl=TTL, key=pname + ":suser:{uid}")(named(sfn(), "pk_s"))
        cw_a = cw(ttl=TTL)(named(afn(), "cw_a"))
        ac_a = aiocache.cached(ttl=TTL)(named(afn(), "ac_a"))
        dp_s = dp.cache_on_arguments()(named(sfn(), "dp_s"))
        ct_s = cachetools.cached(cachetools.TTLCache(maxsize=10000, ttl=TTL))(named(sfn(), "ct_s"))
        uids = list(range(NKEYS))
        for fn in (pk_a, cw_a, ac_a):
            for u in uids:
                check(f"{fn.__name__} (miss)", await fn(u), value)
                check(f"{fn.__name__} (hit)", await fn(u), value)
        for fn in (pk_s, dp_s, ct_s):
            for u in uids:
                check(f"{fn.__name__} (miss)", fn(u), value)
                check(f"{fn.__name__} (hit)", fn(u), value)
        if calls[0] != 6 * NKEYS:
            raise SystemExit(f"decorator check failed: {calls[0]} loader calls, expected {6 * NKEYS}")
        pa = Contender("perfkit  @c.cached async", aloop(pk_a, uids))
        ps = Contender("perfkit  @c.cached sync", sloop(pk_s, uids), is_async=False)
        cs = [
            pa,
            Contender("cashews  @cache(ttl=)", aloop(cw_a, uids)),
            Contender("aiocache @cached", aloop(ac_a, uids)),
            ps,
            Contender("dogpile  cache_on_arguments (sync)", sloop(dp_s, uids), is_async=False),
            Contender("cachetools @cached(TTLCache) (sync)", sloop(ct_s, uids), is_async=False),
        ]
        await measure(cs, rounds, sample)
        if calls[0] != 6 * NKEYS:
            raise SystemExit(
                f"decorator check failed: the loader ran {calls[0] - 6 * NKEYS} times while timing hits"
            )
        report("L1 hit, decorator", pname, pa, ps, cs, {pa.name, ps.name})
        add_target("decorator L1 hit >= 5x cashews", pname, pa, cs[1], 5.0)
        add_target("decorator L1 hit (sync) >= 1x dogpile", pname, ps, cs[4], 1.0)
    await pk.close()
    await cw.close()


def redis_peers(url: str) -> tuple[aioredis.Redis, cashews.Cache, aiocache.RedisCache]:
    u = urlparse(url)
    raw = aioredis.Redis.from_url(url)
    cw = cashews.Cache()
    cw.setup(url)
    ac = aiocache.RedisCache(endpoint=u.hostname or "127.0.0.1", port=u.port or 6379, db=int(u.path[1:] or 0))
    return raw, cw, ac


# C901: one benchmark section: every contender's setup and loop side by side, on purpose
async def redis_hit(  # noqa: C901
    url: str, payloads: dict[str, Any], rounds: int, sample: float, cluster: str | None = None
) -> None:
    pk = Cache(url, namespace="bench")
    pk_cl = Cache(cluster, namespace="bench") if cluster else None
    pk_nz = Cache(url, namespace="bench", compression=None)
    raw, cw, ac = redis_peers(url)
    await cw.init()
    cw_nr = cashews.Cache()  # cashews' default check_repr=True calls repr(value) on every read; info row
    cw_nr.setup(url, check_repr=False)
    await cw_nr.init()

    async def raw_decoded(k: str) -> Any:
        return _mp_dec(await raw.get(k))

    for pname, value in payloads.items():
        pk_keys = [f"hit:{pname}:pk:{i}" for i in range(NKEYS)]  # stored as {bench}:hit:...
        nz_keys = [f"hit:{pname}:nz:{i}" for i in range(NKEYS)]
        raw_keys = [f"bench:hit:{pname}:raw:{i}" for i in range(NKEYS)]
        cw_keys = [f"bench:hit:{pname}:cw:{i}" for i in range(NKEYS)]
        ac_keys = [f"bench:hit:{pname}:ac:{i}" for i in range(NKEYS)]
        blob = _mp_enc(value)
        for i in range(NKEYS):
            await pk.set(pk_keys[i], value, ttl=600)
            await pk_nz.set(nz_keys[i], value, ttl=600)
            await raw.set(raw_keys[i], blob, ex=600)
            await cw.set(cw_keys[i], value, expire=600)
            await ac.set(ac_keys[i], value, ttl=600)
            if pk_cl is not None:
                await pk_cl.set(pk_keys[i], value, ttl=600)
        for i in range(NKEYS):
            check("perfkit redis", await pk.get(pk_keys[i]), value)
            if pk_cl is not None:
                check("perfkit redis+cluster", await pk_cl.get(pk_keys[i]), value)
            check("perfkit redis (no zstd)", await pk_nz.get(nz_keys[i]), value)
            check("redis-py", await raw.get(raw_keys[i]), blob)
            check("cashews redis://", await cw.get(cw_keys[i]), value)
            check("cashews redis:// check_repr=false", await cw_nr.get(cw_keys[i]), value)
            check("aiocache RedisCache", await ac.get(ac_keys[i]), value)
        pa = Contender("perfkit  await c.get", aloop(pk.get, pk_keys))
        cs = [pa]
        if pname != "100B":  # below the 1 KiB threshold nothing is compressed: same as the row above
            cs.append(Contender("perfkit  c.get, compression=None (info)", aloop(pk_nz.get, nz_keys)))
        raw_c = Contender("redis-py GET (bytes, floor)", aloop(raw.get, raw_keys))
        cw_c = Contender("cashews  redis:// get", aloop(cw.get, cw_keys))
        rawdec_c = Contender("redis-py GET + msgspec decode", aloop(raw_decoded, raw_keys))
        cs += [
            raw_c,
            rawdec_c,
            cw_c,
            Contender("cashews  redis:// check_repr=false (info)", aloop(cw_nr.get, cw_keys)),
            Contender("aiocache RedisCache.get", aloop(ac.get, ac_keys)),
        ]
        if pk_cl is not None:  # another server (a local 3-node cluster): a row for information only
            cs.append(Contender("perfkit  redis+cluster get (info)", aloop(pk_cl.get, pk_keys)))
        await measure(cs, rounds, sample)
        report(
            "Redis hit, sequential", pname, pa, None, cs, {c.name for c in cs if c.name.startswith("perfkit")}
        )
        add_target("Redis hit >= 0.9x raw redis-py GET (bytes)", pname, pa, raw_c, 0.9)
        add_target("  same, vs GET + msgspec decode (info)", pname, pa, rawdec_c, 0.9)
        add_target("Redis hit >= 1.2x cashews", pname, pa, cw_c, 1.2)

        cs16 = [
            Contender("perfkit  await c.get", gather_loop(pk.get, pk_keys, 16)),
            Contender("redis-py GET (bytes, floor)", gather_loop(raw.get, raw_keys, 16)),
            Contender("cashews  redis:// get", gather_loop(cw.get, cw_keys, 16)),
            Contender("aiocache RedisCache.get", gather_loop(ac.get, ac_keys, 16)),
        ]
        await measure(cs16, rounds, sample)
        report("Redis hit, 16 concurrent", pname, cs16[0], None, cs16, {cs16[0].name})

    # miss + set: a fresh key each time (GET answers nothing, then SET); keys removed between samples
    seq = [0]

    def miss_set(
        get: Callable[[str], Awaitable[Any]], put: Callable[[str], Awaitable[Any]], prefix: str
    ) -> Callable[[int], Awaitable[None]]:
        async def run(n: int) -> None:
            seq[0] += 1
            base = f"{prefix}ms:{seq[0]}:"
            for i in range(n):
                k = base + str(i)
                if await get(k) is None:
                    await put(k)

        return run

    async def cleanup() -> None:
        # the peers' keys, and perfkit's (`{bench}:ms:…`: the namespace is the key's cluster hash tag)
        batch = [k async for k in raw.scan_iter(match="bench:ms:*", count=1000)]
        batch += [k async for k in raw.scan_iter(match="{bench}:ms:*", count=1000)]
        for i in range(0, len(batch), 1000):
            await raw.unlink(*batch[i : i + 1000])

    for pname, value in payloads.items():
        blob = _mp_enc(value)

        async def pk_put(k: str, v: Any = value) -> None:
            await pk.set(k, v, ttl=TTL)

        async def raw_put(k: str, b: bytes = blob) -> None:
            await raw.set(k, b, ex=TTL)

        async def cw_put(k: str, v: Any = value) -> None:
            await cw.set(k, v, expire=TTL)

        async def ac_put(k: str, v: Any = value) -> None:
            await ac.set(k, v, ttl=TTL)

        for name, get, put, prefix in (
            ("perfkit", pk.get, pk_put, ""),
            ("redis-py", raw.get, raw_put, "bench:"),
            ("cashews", cw.get, cw_put, "bench:"),
            ("aiocache", ac.get, ac_put, "bench:"),
        ):
            await miss_set(get, put, prefix)(3)
            want = blob if name == "redis-py" else value
            check(f"{name} miss+set", await get(f"{prefix}ms:{seq[0]}:2"), want)
        await cleanup()
        pa = Contender("perfkit  get (miss) + set", miss_set(pk.get, pk_put, ""), after=cleanup)
        raw_c = Contender("redis-py GET + SET (floor)", miss_set(raw.get, raw_put, "bench:"), after=cleanup)
        cw_c = Contender("cashews  get + set", miss_set(cw.get, cw_put, "bench:"), after=cleanup)
        ac_c = Contender("aiocache get + set", miss_set(ac.get, ac_put, "bench:"), after=cleanup)
        cs = [pa, raw_c, cw_c, ac_c]
        await measure(cs, rounds, sample)
        report("Redis miss+set", pname, pa, None, cs, {pa.name})
    await cleanup()
    if pk_cl is not None:
        await pk_cl.clear()
        await pk_cl.close()
    await pk.close()
    await pk_nz.close()
    await cw.close()
    await cw_nr.close()
    await ac.close()
    await raw.aclose()


async def tiered_hit(url: str, payloads: dict[str, Any], rounds: int, sample: float) -> None:
    pk = Cache(url, l1="memory://?max_size=10000", namespace="bencht")
    cw = cashews.Cache()
    backend = cw.setup(url, client_side=True, client_side_prefix="bench:cs:")
    await cw.init()
    await pk.get("warmup")  # starts client-side tracking
    deadline = time.monotonic() + 5
    while not (pk.tiers.coherence is not None and pk.tiers.coherence.ready):
        if time.monotonic() > deadline:
            raise SystemExit("perfkit tiered cache: client-side tracking did not become ready in 5 s")
        await asyncio.sleep(0.005)
    for pname, value in payloads.items():
        keys = [f"tier:{pname}:{i}" for i in range(NKEYS)]
        for k in keys:
            await pk.set(k, value, ttl=600)
            await cw.set(k, value, expire=600)
        await asyncio.sleep(0.1)  # let our own writes' invalidation messages arrive
        for k in keys:  # fill L1 from L2 and check the value
            check("perfkit tiered", await pk.get(k), value)
            check("cashews client_side", await cw.get(k), value)
        for k in keys:  # every timed get must be an L1 hit, for both
            if pk.tiers.l1 is None or pk.tiers.l1.lookup(pk.tiers.key(k)) is None:
                raise SystemExit("perfkit tiered: value not in L1 after a read")
            if await backend._local_cache.get(k) is None:
                raise SystemExit("cashews client_side: value not in its local cache after a read")
        l2_before = pk.stats().tiers["l2"].hits + pk.stats().tiers["l2"].misses
        pa = Contender("perfkit  tiered await c.get", aloop(pk.get, keys))
        cw_c = Contender("cashews  redis:// client_side=True get", aloop(cw.get, keys))
        cs = [pa, cw_c]
        await measure(cs, rounds, sample)
        l2_after = pk.stats().tiers["l2"].hits + pk.stats().tiers["l2"].misses
        report("Tiered hit (L1 over Redis)", pname, pa, None, cs, {pa.name})
        add_target("tiered hit >= 3x cashews client-side", pname, pa, cw_c, 3.0)
        if l2_after != l2_before:
            print(
                f"  note: perfkit tiered made {l2_after - l2_before} L2 reads while timing L1 hits ({pname})"
            )
    await pk.close()
    await cw.close()


async def tag_invalidation(url: str, sizes_: list[int], value: Any, cluster: str | None = None) -> list[Row]:
    rows: list[Row] = []
    sqlite_path = "/tmp/bench-cache.db"

    def rm_sqlite() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(sqlite_path + suffix).unlink(missing_ok=True)

    rm_sqlite()
    makers: list[tuple[str, Callable[[], Cache]]] = [
        ("redis", lambda: Cache(url, namespace="benchtag")),
        ("sqlite", lambda: Cache(f"sqlite:///{sqlite_path}", namespace="benchtag")),
        ("memory", lambda: Cache("memory://", namespace="benchtag")),
    ]
    if cluster:
        makers.insert(1, ("redis+cluster", lambda: Cache(cluster, namespace="benchtag")))
    for label, make in makers:
        for n in sizes_:
            c = make()
            t0 = time.perf_counter()
            chunk = 5000
            for start in range(0, n, chunk):
                await c.set_many(
                    {f"t{n}:{i}": value for i in range(start, min(n, start + chunk))},
                    ttl=600,
                    tags=["bulk", f"other{n}"],
                )
            setup = time.perf_counter() - t0
            check(f"{label} tagged set", await c.get(f"t{n}:{n - 1}"), value)
            t0 = time.perf_counter()
            removed = await c.invalidate_tags(["bulk"])
            dt = time.perf_counter() - t0
            gone = await c.get(f"t{n}:{n // 2}") is None and await c.get(f"t{n}:0") is None
            await c.clear()
            await c.close()
            ok = "ok" if removed == n and gone else f"WRONG (removed={removed}, gone={gone})"
            rows.append(
                [label, f"{n:,}", f"{setup:.2f} s", f"{dt * 1000:.1f} ms", f"{n / dt / 1000:.0f}k keys/s", ok]
            )
    rm_sqlite()
    return rows


# -- main -------------------------------------------------------------------------------------------------


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 short rounds; tag sizes 1k and 10k only")
    ap.add_argument("--redis", default=os.environ.get("PERFKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"))
    ap.add_argument(
        "--cluster",
        default=os.environ.get("PERFKIT_BENCH_REDIS_CLUSTER_URL"),
        help="also time perfkit on this Redis Cluster (redis+cluster://host:port; its own keys, no flush)",
    )
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--only", default="", help="comma list of sections: raw,dec,redis,tier,tags")
    args = ap.parse_args()
    rounds = args.rounds or (5 if args.quick else 9)
    sample = 0.025 if args.quick else 0.06
    tag_sizes = [1000, 10_000] if args.quick else [1000, 10_000, 100_000]
    only = set(filter(None, args.only.split(",")))
    logging.basicConfig(level=logging.WARNING)

    raw = aioredis.Redis.from_url(args.redis)
    info = await raw.info("server")
    await raw.flushdb()  # our own DB (9 by default) only
    print(machine_line())
    print(
        f"python {sys.version.split()[0]}; redis-server {info['redis_version']} at {args.redis}; "
        f"hiredis={'yes' if HIREDIS_AVAILABLE else 'NO'}"
    )
    print(
        "versions: "
        + ", ".join(
            f"{p} {version(p)}"
            for p in ("perfkit", "cashews", "aiocache", "dogpile.cache", "cachetools", "redis", "msgspec")
        )
    )
    payloads = make_payloads()
    for name, v in payloads.items():
        print(f"payload {name}: {sizes(v)}")
    print(
        f"mode: {'quick' if args.quick else 'full'}; {rounds} interleaved rounds of ~{sample * 1000:.0f} ms "
        "per contender; ops/s best and median of rounds; ratio = median of per-round perfkit/peer\n"
    )
    t_start = time.perf_counter()
    if not only or "raw" in only:
        await l1_raw(payloads, rounds, sample)
    if not only or "dec" in only:
        await l1_decorator(payloads, rounds, sample)
    if not only or "redis" in only:
        await redis_hit(args.redis, payloads, rounds + 2, sample, args.cluster)  # network timings are noisier
    if not only or "tier" in only:
        await tiered_hit(args.redis, payloads, rounds, sample)
    tag_rows = (
        await tag_invalidation(args.redis, tag_sizes, payloads["100B"], args.cluster)
        if not only or "tags" in only
        else []
    )
    await raw.flushdb()
    await raw.aclose()

    if results:
        print(
            table(
                ["section", "payload", "contender", "ops/s best", "median", "perfkit/peer"],
                [r for _, r in results],
            )
        )
    if tag_rows:
        print("\nTag invalidation (one tag on N keys; only invalidate_tags is timed)")
        print(table(["backend", "keys", "setup (set_many)", "invalidate", "rate", "check"], tag_rows))
    if targets:
        print("\nTargets (ratios from this run)")
        print(
            table(
                ["target", "payload", "ratio", "result"],
                [[t, p, f"{r:.2f}x", ("PASS" if r >= th else "MISS")] for t, p, r, th in targets],
            )
        )
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
