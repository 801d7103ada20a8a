"""Django cache backends side by side on one Redis: perfkit's PerfkitCache vs django-redis and Django's
built-in RedisCache, and PerfkitCache with an in-process L1 (a tiered hit).

    PYTHONPATH=src .venv-bench/bin/python benchmarks/django_cache.py [--rounds 5] [--sample 0.3]
    PYTHONPATH=src .venv-bench/bin/python benchmarks/django_cache.py --instructions   # callgrind

Operations, each on 100 B and 10 KB values (a dict of strings: what Django projects cache, pickled by
every backend; perfkit signs its pickles): get (a hit), set, get_many (10 keys, all hits). Timed mode:
interleaved rounds (benchmarks/_util.py), µs per operation, ratios paired per round. `--instructions`:
instructions per operation counted by callgrind in a subprocess per backend and operation (two loop
lengths, the difference divided by the difference of the counts, so start-up cancels out); the client's
instructions only (Redis is another process), which this noisy 2-core VM cannot blur.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _util import Contender, machine_line, measure, paired_ratio, table  # noqa: E402

REDIS = os.environ.get("PERFKIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BACKENDS = {
    "perfkit": {"BACKEND": "perfkit.django.cache.PerfkitCache", "LOCATION": REDIS,
                "OPTIONS": {"namespace": "bench-djc"}},
    "perfkit-l1": {"BACKEND": "perfkit.django.cache.PerfkitCache", "LOCATION": REDIS,
                   "OPTIONS": {"namespace": "bench-djc-l1", "l1": "memory://?max_size=10000"}},
    "django-redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS, "KEY_PREFIX": "bench-dr"},
    "django": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS,
               "KEY_PREFIX": "bench-dj"},
}  # fmt: skip
PEERS = ("django-redis", "django")
SIZES = {"100B": 100, "10KB": 10_000}
OPS = ("get", "set", "get_many")


def setup() -> None:
    from django.conf import settings

    import django

    if not settings.configured:
        settings.configure(
            SECRET_KEY="bench-only-secret-key", CACHES={"default": BACKENDS["django"], **BACKENDS}
        )
        django.setup()


def value_of(size: int) -> dict[str, str]:
    """A dict of ~`size` bytes pickled (20-character strings under short keys)."""
    return {f"f{i}": f"{i:04d}" + "x" * 16 for i in range(max(1, size // 30))}


def operation(name: str, op: str, size: int) -> Any:
    """A run(n) doing `op` n times on backend `name`, its keys already filled."""
    from django.core.cache import caches

    cache = caches[name]
    value = value_of(size)
    keys = [f"k{size}:{i}" for i in range(10)]
    for k in keys:
        cache.set(k, value, 600)
    if op == "get":

        def run(n: int) -> None:
            get = cache.get
            for i in range(n):
                get(keys[i % 10])

    elif op == "set":

        def run(n: int) -> None:
            put = cache.set
            for i in range(n):
                put(keys[i % 10], value, 600)

    else:

        def run(n: int) -> None:
            many = cache.get_many
            for _ in range(n):
                many(keys)

    run(200)  # warm: connections open, L1 filled
    return run


def timed(args: argparse.Namespace) -> None:
    rows, verdicts = [], []
    for op in args.ops.split(","):
        for label in args.sizes.split(","):
            size = SIZES[label]
            group = [Contender(n, operation(n, op, size), is_async=False) for n in BACKENDS]
            asyncio.run(measure(group, args.rounds, args.sample))
            by = {c.name: c for c in group}
            best_peer = min(PEERS, key=lambda p: 1 / by[p].median)  # the faster peer
            vs = paired_ratio(by["perfkit"], by[best_peer])
            l1 = min(paired_ratio(by["perfkit-l1"], by[p]) for p in PEERS)
            rows.append(
                [op, label, *(f"{1e6 / by[n].median:.1f}" for n in BACKENDS), f"{vs:.2f}x vs {best_peer}",
                 f"{l1:.1f}x" if op != "set" else "-"]
            )  # fmt: skip
            verdicts.append((op, label, vs, l1))
    print(machine_line())
    print("µs per operation (median of rounds); ratios: ops/s over the better peer's, paired per round")
    print(table(["op", "value", *BACKENDS, "perfkit / better peer", "L1 hit / either"], rows))
    for op, label, vs, l1 in verdicts:
        target = "meets" if vs >= 1.2 else "MISSES"
        extra = "" if op == "set" else f"; L1 {l1:.1f}x ({'meets' if l1 >= 5 else 'MISSES'} >= 5x)"
        print(f"  {op:8} {label:5}: perfkit {vs:.2f}x the better peer ({target} >= 1.2x){extra}")


_CHILD = """
import sys
sys.path.insert(0, {here!r})
import django_cache as b
b.setup()
run = b.operation({name!r}, {op!r}, {size})
run({n})
"""


def _instructions(name: str, op: str, size: int, n: int, work: Path) -> int:
    out = work / f"cg.{name}.{op}.{size}.{n}"
    code = _CHILD.format(here=str(HERE), name=name, op=op, size=size, n=n)
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", code],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    text = subprocess.run(["callgrind_annotate", str(out)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^\s*([\d,]+)\s.*PROGRAM TOTALS", text, re.M)
    assert match is not None, text[:500]
    return int(match.group(1).replace(",", ""))


def instructions(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for op in args.ops.split(","):
            for label in args.sizes.split(","):
                size = SIZES[label]
                per = {}
                for name in BACKENDS if op != "set" else [n for n in BACKENDS if n != "perfkit-l1"]:
                    lo, hi = (_instructions(name, op, size, n, Path(tmp)) for n in (args.n, 3 * args.n))
                    per[name] = (hi - lo) / (2 * args.n)
                best_peer = min(PEERS, key=lambda p: per[p])
                rows.append(
                    [op, label, *(f"{per[n] / 1000:.1f}k" if n in per else "-" for n in BACKENDS),
                     f"{per[best_peer] / per['perfkit']:.2f}x vs {best_peer}",
                     f"{min(per[p] for p in PEERS) / per['perfkit-l1']:.1f}x" if op != "set" else "-"]
                )  # fmt: skip
    print(machine_line())
    print("instructions per operation in the client process (callgrind; Redis's own work not counted)")
    print(table(["op", "value", *BACKENDS, "better peer / perfkit", "either / L1 hit"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sample", type=float, default=0.3)
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated: get,set,get_many")
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated: 100B,10KB")
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind")
    parser.add_argument("--n", type=int, default=500, help="operations per callgrind run (and 3x that)")
    args = parser.parse_args()
    setup()
    instructions(args) if args.instructions else timed(args)


if __name__ == "__main__":
    main()
