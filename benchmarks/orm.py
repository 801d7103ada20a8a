"""ORM-driven invalidation benchmark (issue 3, item 8): what CacheInvalidator adds to a commit, and
how long invalidating 1k / 10k / 100k dependent keys takes.

    .venv/bin/python benchmarks/orm.py            # full run (~1 min)
    .venv/bin/python benchmarks/orm.py --quick    # short run (fewer rounds, no 100k case)

1. Hook overhead: the same transaction (load N tickets by id, change their title, commit) on a plain
   sessionmaker and on sessionmakers instrumented by a CacheInvalidator over a memory cache and over a
   Redis cache; SQLite (file in /tmp, WAL, synchronous=NORMAL, so fsync noise does not swamp the
   hooks) and PostgreSQL (defaults; a private schema, dropped at the end). Each contender has its own
   engine, so the plain one carries no listener at all. Before every commit the cache is refilled
   (untimed) with the dependents that commit will invalidate (one per ticket, one per organization).
   Rounds are interleaved and rotated; "added" is the median over rounds of (instrumented - plain),
   paired within the round; "apply step" is the median time the invalidator spent applying the
   invalidation (its metrics hook), the rest of "added" is collecting changes in the flush events.
2. Invalidating N keys that depend on `dep:tickets.organization_id=7` (as `depends_on=[Ticket.
   organization_id == "{org_id}"]` stores them: that tag plus `dep:tickets!`), on memory, SQLite and
   Redis caches: one commit that changes a ticket of organization 7, end to end through the
   invalidator, and `await cache.invalidate_tags([tag])` alone. Every key is read back before (all
   present) and after (none left); a row that fails the check says WRONG.

Peers: none. django-cacheops does this for Django's ORM only; no maintained library does ORM-driven
cache invalidation for SQLAlchemy, so there is nothing like-for-like to run beside perfkit.

Redis: DB 9, keys under the `{benchorm…}` namespaces (and perfkit's `perfkit:tag*:{benchorm…` bookkeeping),
deleted at the end; no FLUSHDB. PostgreSQL: schema `bench_orm_<random>`, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis
from sqlalchemy import ForeignKey, String, create_engine, event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from _util import machine_line, table
from perfkit import Cache
from perfkit.cache.backends import redis as redis_backend
from perfkit.cache.orm import CacheInvalidator

_perf = time.perf_counter
NS = "benchorm"
ORGS, USERS, TICKETS = 20, 50, 2000
TTL = 600
REDIS_CHUNK = getattr(redis_backend, "_CHUNK", "?")  # perfkit's page size for tag invalidation


class Base(DeclarativeBase):
    pass


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(100))


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(20), default="open")
    title: Mapped[str] = mapped_column(String(200), default="")


class TicketComment(Base):
    __tablename__ = "ticket_comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    body: Mapped[str] = mapped_column(String(500), default="")


def org_of(ticket_id: int) -> int:
    return ticket_id % ORGS + 1


# -- databases ----------------------------------------------------------------------------------------


def _sqlite_pragmas(dbapi_conn: Any, record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class Database:
    """One database (SQLite file or a PostgreSQL schema): `engine()` opens another engine on it."""

    def __init__(self, label: str, url: str, schema: str | None = None, path: str | None = None) -> None:
        self.label, self.url, self.schema, self.path = label, url, schema, path
        self.engines: list[Engine] = []

    def engine(self) -> Engine:
        opts: dict[str, Any] = {}
        if self.schema:
            opts["execution_options"] = {"schema_translate_map": {None: self.schema}}
        eng = create_engine(self.url, **opts)
        if self.path:  # the usual production setting: WAL, fsync at checkpoints rather than every commit
            event.listen(eng, "connect", _sqlite_pragmas)
        self.engines.append(eng)
        return eng

    def create(self) -> None:
        self.drop_files()
        eng = self.engine()
        with eng.begin() as conn:
            if self.schema:
                conn.execute(text(f"CREATE SCHEMA {self.schema}"))
            Base.metadata.create_all(conn)
        with Session(eng) as s:
            s.add_all([Organization(id=i, name=f"org{i}") for i in range(1, ORGS + 1)])
            s.flush()
            s.add_all([User(id=i, organization_id=i % ORGS + 1, name=f"u{i}") for i in range(1, USERS + 1)])
            s.flush()
            s.add_all(
                [
                    Ticket(id=i, organization_id=org_of(i), assignee_id=i % USERS + 1, title="t")
                    for i in range(1, TICKETS + 1)
                ]
            )
            s.commit()

    def drop(self) -> None:
        for eng in self.engines:
            eng.dispose()
        if self.schema:
            eng = create_engine(self.url)
            with eng.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE"))
            eng.dispose()
        self.drop_files()

    def drop_files(self) -> None:
        if self.path:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(self.path + suffix).unlink(missing_ok=True)


def declare_dependents(cache: Cache) -> None:
    """What an application would declare: this registers organization_id as a dependency column."""

    @cache.cached(ttl=TTL, key="org:{org_id}:open", depends_on=[Ticket.organization_id == "{org_id}"])
    async def open_tickets(org_id: int) -> int:  # pragma: no cover - declared, not called
        return 0


# -- 1. hook overhead per changed row ---------------------------------------------------------------------


def transaction(factory: Any, ids: list[int], stamp: str) -> None:
    with factory() as s:
        for t in s.scalars(select(Ticket).where(Ticket.id.in_(ids))):
            t.title = stamp
        s.commit()


async def refill(cache: Cache, ids: list[int]) -> None:
    """The dependents the next commit will invalidate: one value per ticket, one per organization."""
    sets = [
        cache.set(f"ticket:{i}", {"id": i}, ttl=TTL, tags=[f"dep:tickets.id={i}", "dep:tickets!"])
        for i in ids
    ]
    sets += [
        cache.set(f"org:{o}:open", 1, ttl=TTL, tags=[f"dep:tickets.organization_id={o}", "dep:tickets!"])
        for o in {org_of(i) for i in ids}
    ]
    await asyncio.gather(*sets)


class Contender:
    def __init__(self, name: str, factory: Any, cache: Cache | None, inv: CacheInvalidator | None) -> None:
        self.name, self.factory, self.cache, self.inv = name, factory, cache, inv
        self.rounds: dict[int, list[list[float]]] = {}  # N -> per round, the commit times
        self.applies: list[float] = []  # seconds of each invalidation the invalidator applied
        self.last: list[int] = []
        if cache is not None:
            cache.add_observer(self._observe)

    def _observe(self, namespace: str, tier: str, op: str, outcome: str, seconds: float) -> None:
        if tier == "orm":
            self.applies.append(seconds)

    def median(self, n: int) -> float:
        return statistics.median(t for r in self.rounds[n] for t in r)


# C901: one benchmark section: every contender's setup and loop side by side, on purpose
async def hook_overhead(  # noqa: C901
    db: Database, redis_url: str, sizes: list[int], rounds: int, reps: int
) -> tuple[list[list[str]], str]:
    db.create()
    contenders = [Contender("plain sessionmaker", sessionmaker(db.engine()), None, None)]
    apply: dict[tuple[str, int], float] = {}
    try:
        for label, url in (("memory", "memory://"), ("redis", redis_url)):
            cache = Cache(url, namespace=f"{NS}-hook-{label}")
            declare_dependents(cache)
            inv = CacheInvalidator(cache)
            inv.register(Ticket, related=[TicketComment], strategy="immediate")
            engine = db.engine()
            factory = sessionmaker(engine)
            inv.instrument(factory)
            inv.instrument(engine)
            contenders.append(Contender(f"instrumented, {label} cache", factory, cache, inv))
            # background dependents that these commits do not touch
            await cache.set_many({f"other:{i}": i for i in range(1000)}, ttl=TTL, tags=["dep:users"])
        counter = 0
        for n in sizes:
            for c in contenders:  # warm-up: connections, statement caches, the sync portal thread
                transaction(c.factory, list(range(1, n + 1)), "warm")
                c.rounds[n] = []
                c.applies.clear()
            for r in range(rounds):
                order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
                for c in order:
                    times = []
                    for _ in range(reps):
                        start = (counter * n) % (TICKETS - n)
                        ids = list(range(start + 1, start + n + 1))
                        counter += 1
                        if c.cache is not None:
                            await refill(c.cache, ids)
                        t0 = _perf()
                        transaction(c.factory, ids, f"s{counter}")
                        times.append(_perf() - t0)
                        c.last = ids
                    c.rounds[n].append(times)
            for c in contenders:
                if c.cache is None:
                    continue
                apply[c.name, n] = statistics.median(c.applies)
                # the last commit really invalidated its dependents
                if await c.cache.get(f"ticket:{c.last[0]}") is not None:
                    raise SystemExit(f"{c.name}: a dependent survived a commit; the benchmark is wrong")
    finally:
        for c in contenders:
            if c.inv is not None and c.cache is not None:
                c.inv.close()
                await c.cache.clear()
                await c.cache.close()
        db.drop()
    rows: list[list[str]] = []
    plain = contenders[0]
    for n in sizes:
        for c in contenders:
            med = c.median(n)
            if c is plain:
                rows.append([db.label, str(n), c.name, f"{med * 1e6:,.0f}", "", "", "", ""])
                continue
            # paired: per round, this contender's median commit minus the plain one's in the same round
            diffs = [
                statistics.median(mine) - statistics.median(base)
                for mine, base in zip(c.rounds[n], plain.rounds[n], strict=True)
            ]
            ratios = [
                statistics.median(mine) / statistics.median(base)
                for mine, base in zip(c.rounds[n], plain.rounds[n], strict=True)
            ]
            added = statistics.median(diffs)
            rows.append(
                [
                    db.label,
                    str(n),
                    c.name,
                    f"{med * 1e6:,.0f}",
                    f"{added * 1e6:+,.0f}",
                    f"{added / n * 1e6:+,.1f}",
                    f"{statistics.median(ratios):.2f}x",
                    f"{apply[c.name, n] * 1e6:,.0f}",
                ]
            )
    return rows, f"{rounds} rounds x {reps} commits per contender and N"


# -- 2. invalidating 1k / 10k / 100k dependents ---------------------------------------------------------


class PingProbe:
    """Another Redis client sending PING in a loop: the longest reply while invalidation runs shows how
    long Redis was blocked (an upper bound: this thread also waits for the GIL)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.worst = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = _perf()
            self.client.ping()
            self.worst = max(self.worst, _perf() - t0)
            time.sleep(0.0005)

    def __enter__(self) -> PingProbe:
        self.client.ping()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()


async def count_present(cache: Cache, keys: list[str]) -> int:
    found = 0
    for i in range(0, len(keys), 10_000):
        found += sum(v is not None for v in (await cache.get_many(keys[i : i + 10_000])).values())
    return found


HOWS = ("commit (end to end)", "invalidate_tags alone")


@dataclass
class Trial:
    setup: float
    seconds: float
    removed: int
    before: int
    after: int
    worst_ping: float


async def one_trial(
    label: str, url: str, n: int, how: str, engine: Engine, ticket_id: int, cache_path: str, stamp: int
) -> Trial:
    """Fill a fresh cache with n dependents of organization 7, invalidate them once, count what is left."""
    tag = "dep:tickets.organization_id=7"
    for suffix in ("", "-wal", "-shm"):
        Path(cache_path + suffix).unlink(missing_ok=True)
    cache = Cache(url, namespace=f"{NS}-bulk-{label}-{n}")
    declare_dependents(cache)
    inv = CacheInvalidator(cache)
    inv.register(Ticket, related=[TicketComment], strategy="immediate")
    factory = sessionmaker(engine, expire_on_commit=False)
    inv.instrument(factory)
    try:
        keys = [f"org7:v{i}" for i in range(n)]
        t0 = _perf()
        for i in range(0, n, 5000):
            await cache.set_many(
                {k: {"i": i} for k in keys[i : i + 5000]}, ttl=TTL, tags=[tag, "dep:tickets!"]
            )
        setup = _perf() - t0
        before = await count_present(cache, keys)
        with factory() as s:  # load the row and warm the sync portal before timing
            ticket = s.get(Ticket, ticket_id)
            assert ticket is not None
            cache.sync.exists("warm")  # starts the portal thread and its connections
            probe = PingProbe(url) if label == "redis" else None
            with probe or _nothing():
                t0 = _perf()
                if how.startswith("commit"):
                    ticket.title = f"bulk{stamp}"
                    s.commit()
                    removed = int(inv.stats()["Ticket"]["immediate"]["keys_removed"])
                else:
                    removed = await cache.invalidate_tags([tag])
                dt = _perf() - t0
        after = await count_present(cache, keys)
        return Trial(setup, dt, removed, before, after, probe.worst if probe else 0.0)
    finally:
        inv.close()
        await cache.clear()
        await cache.close()


async def bulk_invalidation(
    db: Database, redis_url: str, sizes: list[int], cache_path: str, small_reps: int
) -> tuple[list[list[str]], float]:
    db.create()
    stamp = 0
    try:
        engine = db.engine()
        rows: list[list[str]] = []
        ticket_of_org7 = next(i for i in range(1, TICKETS + 1) if org_of(i) == 7)
        plain = sessionmaker(db.engine(), expire_on_commit=False)
        baseline = []
        for i in range(9):  # the same commit without the invalidator, for reference
            with plain() as s:
                ticket = s.get(Ticket, ticket_of_org7)
                assert ticket is not None
                t0 = _perf()
                ticket.title = f"plain{i}"
                s.commit()
                baseline.append(_perf() - t0)
        backends: list[tuple[str, str]] = [
            ("memory", "memory://"),
            ("sqlite", f"sqlite:///{cache_path}"),
            ("redis", redis_url),
        ]
        for label, url in backends:
            for n in sizes:
                reps = 2 if n >= 100_000 else small_reps
                trials: dict[str, list[Trial]] = {how: [] for how in HOWS}
                for r in range(reps):  # alternate which one goes first
                    for how in HOWS[r % 2 :] + HOWS[: r % 2]:
                        stamp += 1
                        trials[how].append(
                            await one_trial(label, url, n, how, engine, ticket_of_org7, cache_path, stamp)
                        )
                for how in HOWS:
                    got = trials[how]
                    dt = statistics.median(t.seconds for t in got)
                    bad = [t for t in got if not (t.before == n and t.after == 0 and t.removed >= n)]
                    check = (
                        "ok"
                        if not bad
                        else f"WRONG (before={bad[0].before}, after={bad[0].after}, removed={bad[0].removed})"
                    )
                    worst = max(t.worst_ping for t in got)
                    rows.append(
                        [
                            label,
                            f"{n:,}",
                            how,
                            str(len(got)),
                            f"{statistics.median(t.setup for t in got):.2f} s",
                            f"{dt * 1000:,.1f} ms",
                            f"{n / dt / 1000:,.0f}k/s",
                            f"{worst * 1000:.1f} ms" if label == "redis" else "-",
                            check,
                        ]
                    )
    finally:
        Path(cache_path).unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(cache_path + suffix).unlink(missing_ok=True)
        db.drop()
    return rows, statistics.median(baseline)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def redis_cleanup(url: str) -> None:
    client = redis.Redis.from_url(url)
    # every key of a namespace carries its hash tag: `{ns}:key`, `perfkit:tag:{ns}:tag`, ...
    for pattern in (f"{{{NS}*", f"perfkit:tag:{{{NS}*", f"perfkit:tagv:{{{NS}*", f"perfkit:lock:{{{NS}*"):
        batch = list(client.scan_iter(match=pattern, count=1000))
        for i in range(0, len(batch), 1000):
            client.unlink(*batch[i : i + 1000])
    client.close()


# -- main -------------------------------------------------------------------------------------------------


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds; 1k and 10k keys only")
    ap.add_argument("--redis", default=os.environ.get("PERFKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"))
    ap.add_argument(
        "--postgres",
        default=os.environ.get(
            "PERFKIT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    ap.add_argument("--only", default="", help="comma list of sections: hooks,bulk")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    rounds, reps = (5, 2) if args.quick else (15, 3)
    sizes = [1, 10, 100]
    bulk_sizes = [1000, 10_000] if args.quick else [1000, 10_000, 100_000]
    logging.basicConfig(level=logging.WARNING)
    tag = uuid.uuid4().hex[:10]

    rc = redis.Redis.from_url(args.redis)
    redis_version = rc.info("server")["redis_version"]
    rc.close()
    pg = create_engine(args.postgres)
    with pg.connect() as conn:
        pg_version = str(conn.scalar(text("SHOW server_version")))
    pg.dispose()
    print(machine_line())
    print(
        f"python {sys.version.split()[0]}; SQLAlchemy {version('sqlalchemy')}, psycopg {version('psycopg')}; "
        f"redis-server {redis_version} at {args.redis}; PostgreSQL {pg_version}; perfkit {version('perfkit')}"
    )
    print(f"mode: {'quick' if args.quick else 'full'}")
    print(
        "peers: none. django-cacheops is Django-only; no maintained SQLAlchemy library does ORM-driven "
        "invalidation.\n"
    )

    def sqlite_db(name: str) -> Database:
        path = f"/tmp/perfkit-bench-orm-{name}-{tag}.db"
        return Database("sqlite", f"sqlite:///{path}", path=path)

    def pg_db() -> Database:
        return Database("postgres", args.postgres, schema=f"bench_orm_{tag}")

    t_start = _perf()
    redis_cleanup(args.redis)
    hook_rows: list[list[str]] = []
    note = ""
    bulk_rows: list[list[str]] = []
    baseline = 0.0
    try:
        if not only or "hooks" in only:
            for make in ("sqlite", "postgres"):
                db = sqlite_db("hooks") if make == "sqlite" else pg_db()
                got, note = await hook_overhead(db, args.redis, sizes, rounds, reps)
                hook_rows += got
        if not only or "bulk" in only:
            bulk_rows, baseline = await bulk_invalidation(
                sqlite_db("bulk"),
                args.redis,
                bulk_sizes,
                f"/tmp/perfkit-bench-orm-cache-{tag}.db",
                3 if args.quick else 5,
            )
    finally:
        redis_cleanup(args.redis)

    if hook_rows:
        print(
            "1. Hook overhead per commit: load N tickets by id, change their title, commit "
            f"(sync Session; {note}, interleaved)\n"
            "   us/commit: median; added: median over rounds of instrumented - plain (paired); "
            "added/row = added / N;\n   ratio: median of per-round instrumented / plain; apply step: median "
            "time of the invalidator's apply (cache.sync.invalidate_tags), in us"
        )
        print(
            table(
                ["db", "N", "sessionmaker", "us/commit", "added", "added/row", "ratio", "apply step"],
                hook_rows,
            )
        )
    if bulk_rows:
        print(
            "\n2. Invalidating N keys that depend on tickets.organization_id=7 (tags: that column tag "
            "+ dep:tickets!)\n   commit = one ORM commit changing one ticket of org 7 (SQLite DB, sync "
            "Session, through the invalidator and cache.sync); alone = await cache.invalidate_tags([tag])\n"
            f"   the same commit without the invalidator: {baseline * 1000:.1f} ms (median of 9)\n"
            f"   Redis works in chunks of {REDIS_CHUNK} keys (ZRANGE, then UNLINK + ZREM in one pipeline); "
            "'max PING' = longest PING reply another client saw meanwhile (upper bound)"
        )
        print(
            table(
                ["cache", "keys", "timed", "runs", "setup", "time (median)", "rate", "max PING", "check"],
                bulk_rows,
            )
        )
    print(f"\ntotal {_perf() - t_start:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
