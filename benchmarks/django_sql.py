"""Added cost per SQL statement of perfkit's Django hook (`perfkit.django.db`), SQLite in memory.

    PYTHONPATH=src python benchmarks/django_sql.py [--n 1000] [--rounds 7] [--instructions]

The same Django connection runs an n-statement loop with perfkit's execute wrapper and without it
(the hook taken out of `connection.execute_wrappers`), rounds interleaved, the best round of each kept,
inside `perfkit.db.track()` so per-request accounting is on, as in a request. Two loops: a raw cursor
`SELECT 1` (the statement path alone, as benchmarks/web.py measures the SQLAlchemy hook) and an ORM
query (`ContentType.objects.filter(...).count()`, what a view runs). CPU time (process_time) in us.
`--instructions` also counts instructions with valgrind's callgrind: each loop is run at n and 3n
statements and the difference of the totals divided by 2n (start-up cancels out); these counts do not
move with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable


def setup() -> None:
    from django.conf import settings

    import django

    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        INSTALLED_APPS=["django.contrib.contenttypes", "perfkit.django"],
        PERFKIT={"monitor": False},
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def loops() -> dict[str, Callable[[int], None]]:
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    def raw(n: int) -> None:
        with connection.cursor() as cursor:
            for _ in range(n):
                cursor.execute("SELECT 1")

    def orm(n: int) -> None:
        query = ContentType.objects.filter(app_label="perfkit")
        for _ in range(n):
            query.count()

    return {"raw cursor SELECT 1": raw, "ORM count()": orm}


def hooked(on: bool) -> None:
    from django.db import connection

    from perfkit.django.db import attach, hook_for

    connection.ensure_connection()
    hook = hook_for("default")
    if on:
        attach(connection)
    elif hook in connection.execute_wrappers:
        connection.execute_wrappers.remove(hook)


def timed(n: int, rounds: int) -> dict[str, tuple[float, float]]:
    from perfkit.db import track

    out = {}
    for name, loop in loops().items():
        best = {True: float("inf"), False: float("inf")}
        with track("/bench"):
            for _ in range(rounds):
                for on in (False, True):
                    hooked(on)
                    start = time.process_time()
                    loop(n)
                    best[on] = min(best[on], (time.process_time() - start) / n * 1e6)
        out[name] = (best[False], best[True])
    return out


def one_run(loop: str, on: bool, n: int) -> None:
    """What callgrind runs: one loop, n statements (after a warm-up of 50)."""
    from perfkit.db import track

    hooked(on)
    run = loops()[loop]
    with track("/bench"):
        run(50)
        run(n)


def instructions(n: int) -> dict[str, tuple[float, float]]:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    out = {}
    for loop in loops():
        per = {}
        for on in (False, True):
            totals = []
            for count in (n, 3 * n):
                with tempfile.TemporaryDirectory() as tmp:
                    side = "--on" if on else "--off"
                    cmd = [valgrind, "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
                           sys.executable, __file__, "--run", loop, side, "--n", str(count)]  # fmt: skip
                    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, check=True)
                    found = re.search(r"Collected : (\d+)", done.stderr)
                    if found is None:
                        raise SystemExit(done.stderr[-2000:])
                    totals.append(int(found.group(1)))
            per[on] = (totals[1] - totals[0]) / (2 * n)
        out[loop] = (per[False], per[True])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--run")
    parser.add_argument("--on", dest="on", action="store_true")
    parser.add_argument("--off", dest="on", action="store_false")
    args = parser.parse_args()
    setup()
    if args.run:
        one_run(args.run, args.on, args.n)
        return
    import django

    print(f"Django {django.get_version()}, Python {sys.version.split()[0]}, SQLite in memory, n={args.n}")
    print("\nCPU time per statement (us, best of rounds; lower is better)")
    for name, (bare, on) in timed(args.n, args.rounds).items():
        print(f"  {name:22s} {bare:7.2f} -> {on:7.2f} us   (+{on - bare:.2f} us, {on / bare:.2f}x)")
    if args.instructions:
        print("\nInstructions per statement (callgrind, difference of n and 3n)")
        for name, (bare, on) in instructions(args.n).items():
            print(f"  {name:22s} {bare:9.0f} -> {on:9.0f}   (+{on - bare:.0f}, {on / bare:.2f}x)")


if __name__ == "__main__":
    main()
