"""Django ORM invalidation (issue 16, item 4): what perfkit's hooks add to a saved row, and stale reads
after the writes that send no signals, perfkit vs django-cacheops, in one run.

    PYTHONPATH=src .venv-bench/bin/python benchmarks/django_orm.py            # ~1 min
    PYTHONPATH=src .venv-bench/bin/python benchmarks/django_orm.py --quick
    PYTHONPATH=src .venv-bench/bin/python benchmarks/django_orm.py --callgrind  # + instructions per save

1. Cost per saved row: `ticket.title = ...; ticket.save()` on loaded instances of the test project's
   ticket models (SQLite file in /tmp, WAL, synchronous=NORMAL, autocommit), with perfkit's hooks
   off (Django's own methods: `perfkit.django.invalidation.uninstall()`) and on (`install()`, one
   memory cache watched, holding the dependents each save invalidates: the ticket's row and its
   organization's). Both also inside one transaction (collected per row, applied once at commit;
   compared with the same transaction without hooks). Rounds interleaved and rotated; "added" is
   the median of the per-round paired differences. `--callgrind` also counts instructions per save
   (two counts of saves, start-up cancels out), which this noisy box does not move.
2. Stale reads: a cached queryset (`perfkit.django.cache_queryset(cache, qs)` / cacheops' `qs.cache()`)
   of one organization's tickets, read twice (the second read must run no query: "hits"), then
   written with `QuerySet.update()`, `bulk_update()` (each also moving another organization's ticket
   in, a row the cached result did not hold), `bulk_create()`, `QuerySet.delete()` or `save()`, then
   read through the cache and compared with the database: a read that differs is stale. "race": a
   reader misses, runs its SELECT and is held (a `connection.execute_wrapper`, the same for both)
   while another thread's `save()` commits; then it stores what it read ("races": how many times the
   reader was really held). Each library runs in a process of its own (cacheops patches Django's
   QuerySet and connects signals to every model at start-up), on a SQLite file (WAL, one connection
   per thread) and the same Redis (DB 9, keys under a random prefix, deleted at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _util import Contender, machine_line, measure, table  # noqa: E402

REDIS = os.environ.get("PERFKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
FILE_DB = {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"}
WRITES = ("update", "update, moving a row in", "bulk_update", "bulk_update, moving a row in", "bulk_create",
          "delete", "save", "race: read before a commit, stored after it")  # fmt: skip


def setup_django(extra_apps: tuple[str, ...] = (), db: str = ":memory:", **settings: Any) -> None:
    from django.conf import settings as dj

    import django

    dj.configure(
        SECRET_KEY="bench", USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", *extra_apps,
                        "tests.django.tickets"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db, "OPTIONS": FILE_DB
                               if db != ":memory:" else {}}},
        PERFKIT={"monitor": False}, **settings,
    )  # fmt: skip
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)


def seed(n: int) -> tuple[Any, list[Any]]:
    from tests.django.tickets.models import Organization, Ticket

    org = Organization.objects.create(name="seven")
    Ticket.objects.bulk_create([Ticket(organization=org, title=f"t{i}") for i in range(n)])
    return org, list(Ticket.objects.filter(organization=org).order_by("id"))


# -- 1. cost per saved row ------------------------------------------------------------------------


def save_contenders(cache: Any, tickets: list[Any]) -> list[Contender]:
    from django.db import transaction
    from tests.django.tickets.models import Ticket

    from perfkit.django import rows
    from perfkit.django.invalidation import install, uninstall

    counter = [0]
    deps = {"ticket": rows(Ticket, pk="{pk}"), "org": rows(Ticket, organization_id="{org}")}
    from perfkit.cache.depends import compile_dependencies

    tags_of = {k: compile_dependencies([d], cache) for k, d in deps.items()}

    def refill(n: int) -> None:
        for t in tickets[:n]:
            cache.sync.set(f"t{t.pk}", 1, tags=tags_of["ticket"]({"pk": t.pk}))
        cache.sync.set("org", 1, tags=tags_of["org"]({"org": tickets[0].organization_id}))

    def saves(n: int) -> None:
        counter[0] += 1
        for i in range(n):
            t = tickets[i % len(tickets)]
            t.title = f"r{counter[0]}.{i}"
            t.save()

    def off(n: int) -> None:
        uninstall()
        saves(n)

    def on(n: int) -> None:
        install()
        saves(n)

    def on_in_transaction(n: int) -> None:
        install()
        with transaction.atomic():
            saves(n)

    def off_in_transaction(n: int) -> None:
        uninstall()
        with transaction.atomic():
            saves(n)

    async def after() -> None:
        refill(len(tickets))

    return [
        Contender("save, hooks off", off, is_async=False, after=after),
        Contender("save, hooks on", on, is_async=False, after=after),
        Contender("save, hooks off, in 1 transaction", off_in_transaction, is_async=False, after=after),
        Contender("save, hooks on, in 1 transaction", on_in_transaction, is_async=False, after=after),
    ]


def paired_added_us(base: Contender, other: Contender) -> float:
    return statistics.median(1e6 / o - 1e6 / b for b, o in zip(base.samples, other.samples, strict=True))


def part_one(args: argparse.Namespace) -> list[list[str]]:
    from perfkit import Cache

    cache = Cache("memory://", namespace="benchdjorm")
    from perfkit.django import watch

    watch(cache)
    _, tickets = seed(200)
    contenders = save_contenders(cache, tickets)
    asyncio.run(measure(contenders, rounds=args.rounds, sample=args.sample))
    out = []
    for i, c in enumerate(contenders):  # [off, on, off in a transaction, on in a transaction]
        added = f"{paired_added_us(contenders[i - 1], c):+.1f}" if i % 2 else ""
        out.append([c.name, f"{1e6 / c.median:.1f}", added])
    return out


_CALLGRIND_CHILD = """
import sys
sys.path.insert(0, {here!r}); sys.path.insert(0, {root!r})
import django_orm as b
b.setup_django(("perfkit.django",))
from perfkit import Cache
from perfkit.django import watch
from perfkit.django.invalidation import install, uninstall
cache = Cache("memory://", namespace="cg"); watch(cache)
_, tickets = b.seed(200)
(install if {hooks!r} == "on" else uninstall)()
for i in range({n}):
    t = tickets[i % 200]; t.title = f"x{{i}}"; t.save()
"""


def instructions_per_save(hooks: str, work: Path, low: int = 200, high: int = 1200) -> float:
    from web_instructions import _total

    totals = []
    for n in (low, high):
        out = work / f"cg.{hooks}.{n}"
        script = _CALLGRIND_CHILD.format(here=str(HERE), root=str(ROOT), hooks=hooks, n=n)
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", script],
            capture_output=True, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        )  # fmt: skip
        totals.append(_total(out))
    return (totals[1] - totals[0]) / (high - low)


# -- 2. stale reads -------------------------------------------------------------------------------


def write(kind: str, org: Any, step: int) -> None:
    from tests.django.tickets.models import Ticket

    qs = Ticket.objects.filter(organization=org)
    outside = Ticket.objects.exclude(organization=org).order_by("id")
    if kind == "update, moving a row in":  # the row was not in the cached result before the write
        outside.filter(pk=outside[0].pk).update(organization=org)
    elif kind == "bulk_update, moving a row in":
        obj = outside[0]
        obj.organization = org
        Ticket.objects.bulk_update([obj], ["organization"])
    elif kind == "update":
        qs.filter(pk=min(qs.values_list("pk", flat=True))).update(title=f"u{step}")
    elif kind == "bulk_update":
        objs = list(qs.order_by("id")[:2])
        for o in objs:
            o.title = f"b{step}"
        Ticket.objects.bulk_update(objs, ["title"])
    elif kind == "bulk_create":
        Ticket.objects.bulk_create([Ticket(organization=org, title=f"c{step}")])
    elif kind == "delete":
        qs.filter(pk=max(qs.values_list("pk", flat=True))).delete()
    else:
        obj = qs.order_by("id").first()
        obj.title = f"s{step}"
        obj.save()


def raced(cached: Any, org: Any, step: int) -> bool:
    """`cached()` in a thread whose SELECT is held until this thread's save() has committed."""
    import threading

    from django.db import connection

    selected, committed = threading.Event(), threading.Event()

    def hold(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if sql.startswith("SELECT") and "tickets_ticket" in sql:
            selected.set()
            committed.wait(5)
        return result

    def reader() -> None:
        try:
            with connection.execute_wrapper(hold):
                cached()
        finally:
            connection.close()

    thread = threading.Thread(target=reader)
    thread.start()
    held = selected.wait(5)  # False: the reader did not query (a hit): no race this time
    write("save", org, step + 1000)
    committed.set()
    thread.join(10)
    return held


def stale_reads(lib: str, steps: int, db: str) -> dict[str, int]:
    prefix = f"benchdjorm{uuid.uuid4().hex[:8]}"
    if lib == "cacheops":
        setup_django(
            ("cacheops",), db=db, CACHEOPS_REDIS=REDIS, CACHEOPS_PREFIX=lambda q: prefix,
            CACHEOPS={"tickets.*": {"ops": "all", "timeout": 300}},
        )  # fmt: skip
    else:
        setup_django(("perfkit.django",), db=db)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from tests.django.tickets.models import Ticket

    org, _ = seed(20)
    seed(2 * steps)  # another organization's tickets, moved in by the "moving a row in" writes
    base = Ticket.objects.filter(organization=org).order_by("id")
    if lib == "cacheops":
        # a new queryset each time: one QuerySet object keeps its own result cache
        cached = lambda: [(t.pk, t.title) for t in base.all().cache()]  # noqa: E731
    else:
        from perfkit import Cache
        from perfkit.django import cache_queryset

        cache = Cache(REDIS, namespace=prefix)
        cached = lambda: [(t.pk, t.title) for t in cache_queryset(cache, base, ttl=300)]  # noqa: E731

    def truth() -> list[tuple[int, str]]:  # raw SQL: neither library can answer it from its cache
        with connection.cursor() as cursor:
            sql = "SELECT id, title FROM tickets_ticket WHERE organization_id = %s ORDER BY id"
            cursor.execute(sql, [org.pk])
            return [tuple(r) for r in cursor.fetchall()]

    def from_cache() -> bool:
        with CaptureQueriesContext(connection) as captured:
            cached()
        return len(captured) == 0

    out: dict[str, int] = {}
    try:
        for kind in WRITES:
            stale = hits = 0
            for step in range(steps):
                cached()
                hits += from_cache()  # the cache does cache: the second read runs no query
                if kind.startswith("race"):  # save(): a write both libraries invalidate
                    write("save", org, step)  # a miss next: the reader loads
                    out["races"] = out.get("races", 0) + raced(cached, org, step)
                else:
                    write(kind, org, step)
                stale += cached() != truth()
            out[kind], out[f"{kind}.hits"] = stale, hits
    finally:
        import redis

        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(match=f"*{prefix}*", count=1000):
            client.delete(key)
        client.close()
        if lib != "cacheops":
            cache.sync.clear()
            cache.sync.close()
    return out


def part_two(steps: int) -> dict[str, dict[str, int] | str]:
    results: dict[str, dict[str, int] | str] = {}
    for lib in ("perfkit", "cacheops"):
        proc = subprocess.run(
            [sys.executable, __file__, "--stale-child", lib, "--steps", str(steps)],
            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        )  # fmt: skip
        if proc.returncode != 0:
            results[lib] = f"failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else '?'}"
        else:
            results[lib] = json.loads(proc.stdout.strip().splitlines()[-1])
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--stale-child")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    if args.stale_child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(stale_reads(args.stale_child, args.steps, f"{tmp}/stale.db")))
        return
    args.rounds, args.sample = (5, 0.2) if args.quick else (15, 0.4)
    # _util.measure drives the rounds from an event loop; the saves are plain sync Django code
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from importlib.metadata import version

    print(machine_line(f" Django {version('Django')}"))
    # a file: Django's connections are per asyncio context, and measure() runs in one of its own
    with tempfile.TemporaryDirectory() as tmp:
        setup_django(("perfkit.django",), db=f"{tmp}/bench.db")
        print("\n1. Cost per saved row (SQLite file, WAL, autocommit; µs per save, median of rounds)\n")
        print(table(["contender", "µs/save", "added µs (paired)"], part_one(args)))
    if args.callgrind:
        with tempfile.TemporaryDirectory() as tmp:
            off, on = (instructions_per_save(h, Path(tmp)) for h in ("off", "on"))
        print(f"\n   instructions per save (callgrind): off {off:,.0f}, on {on:,.0f}, added {on - off:,.0f}")
    steps = 10 if args.quick else args.steps
    print(f"\n2. Stale reads after each write, of {steps} (right: 0); hits: reads served without a query\n")
    results = part_two(steps)
    try:
        peer = f"django-cacheops {version('django-cacheops')}"
    except Exception:
        peer = "django-cacheops (not installed)"
    rows = []
    for kind in WRITES:
        row = [kind]
        for lib in ("perfkit", "cacheops"):
            got = results[lib]
            if not isinstance(got, dict):
                row.append(got)
                continue
            held = f", {got['races']} races" if kind.startswith("race") else ""
            row.append(f"{got[kind]} ({got[f'{kind}.hits']} hits{held})")
        rows.append(row)
    print(table(["write", "perfkit stale", f"{peer} stale"], rows))


if __name__ == "__main__":
    main()
