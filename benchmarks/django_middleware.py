"""Added time per request of Django middleware: perfkit's full middleware vs django-prometheus and
django-silk, side by side, on the same view, in one run.

    PYTHONPATH=src .venv-bench/bin/python benchmarks/django_middleware.py [--n 20000] [--no-callgrind]

Each variant is a Django project of its own (a fresh process: settings are configured once per process)
serving one small JSON view (`GET /tickets/1/`, a URL pattern with an argument, Accept-Encoding: gzip
like a browser) through Django's `WSGIHandler`, called directly in a loop (no server, no socket): what
differs between variants is the middleware alone.
  - none:       no middleware (the baseline the others are compared with);
  - perfkit:    `perfkit.django.PerfkitMiddleware` with everything a request meets: X-Request-ID,
                Server-Timing, per-route metrics, rate limit (in-process, a default limit), compression
                negotiation, ETag, a Cache-Control rule by URL name (the monitor's publisher is off: it is
                not per-request work; the response cache is off: a hit would skip the view);
  - prometheus: django-prometheus' Before/After middleware (per-view metrics);
  - silk:       django-silk's `SilkyMiddleware` (records each request and its queries in the database).
Reported: microseconds per request (best of `--rounds`, wall clock; +-30 % between runs on this shared
VM) and instructions per request counted by callgrind (the difference of two request counts, so start-up
cancels out; steady to a fraction of a percent), each minus the baseline's: the time the middleware adds.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VARIANTS = ("none", "perfkit", "perfkit-timing", "prometheus", "silk")
TARGET_US = 30.0


def settings_for(variant: str) -> dict[str, Any]:
    base: dict[str, Any] = {
        "SECRET_KEY": "bench", "DEBUG": False, "ALLOWED_HOSTS": ["*"], "ROOT_URLCONF": __name__,
        "USE_TZ": True, "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
        "INSTALLED_APPS": ["django.contrib.contenttypes", "django.contrib.auth"],
        "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        "MIDDLEWARE": [], "LOGGING_CONFIG": None,
    }  # fmt: skip
    if variant == "perfkit":  # the full middleware
        base["INSTALLED_APPS"].append("perfkit.django")
        base["MIDDLEWARE"] = ["perfkit.django.PerfkitMiddleware"]
        base["PERFKIT"] = {
            "monitor": False,
            "rate_limit": "1000000/second",
            "rules": [{"name": "ticket", "cache_control": "private, max-age=10"}],
        }
    elif variant == "perfkit-timing":  # what every request pays: request id, Server-Timing, metrics
        base["INSTALLED_APPS"].append("perfkit.django")
        base["MIDDLEWARE"] = ["perfkit.django.PerfkitMiddleware"]
        base["PERFKIT"] = {"monitor": False, "web": {"compress": False, "etag": False}}
    elif variant == "prometheus":
        base["INSTALLED_APPS"].append("django_prometheus")
        base["MIDDLEWARE"] = [
            "django_prometheus.middleware.PrometheusBeforeMiddleware",
            "django_prometheus.middleware.PrometheusAfterMiddleware",
        ]
    elif variant == "silk":
        base["INSTALLED_APPS"].append("silk")
        base["MIDDLEWARE"] = ["silk.middleware.SilkyMiddleware"]
        base["SILKY_PYTHON_PROFILER"] = False
        base["SILKY_INTERCEPT_PERCENT"] = 100
    elif variant != "none":
        raise SystemExit(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    return base


def ticket(request: Any, pk: int) -> Any:
    from django.http import JsonResponse

    return JsonResponse({"id": pk, "title": "The printer is on fire", "status": "open", "priority": 2})


def _urls() -> list[Any]:
    from django.urls import path

    return [path("tickets/<int:pk>/", ticket, name="ticket")]


def __getattr__(name: str) -> Any:  # ROOT_URLCONF = this module: its urlpatterns, made when Django asks
    if name == "urlpatterns":
        return _urls()
    raise AttributeError(name)


ENVIRON = {
    "REQUEST_METHOD": "GET", "PATH_INFO": "/tickets/1/", "QUERY_STRING": "", "SCRIPT_NAME": "",
    "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_ACCEPT": "application/json", "HTTP_ACCEPT_ENCODING": "gzip, deflate, br, zstd",
    "HTTP_USER_AGENT": "bench/1.0", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
    "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
}  # fmt: skip


def setup(variant: str) -> Any:
    """Configure Django for `variant` and return its WSGI handler, warmed up."""
    from django.conf import settings

    import django

    settings.configure(**settings_for(variant))
    django.setup()
    if variant == "silk":
        from django.core.management import call_command

        call_command("migrate", run_syncdb=True, verbosity=0)
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    status = run(handler, 50)
    if status != "200 OK":
        raise SystemExit(f"{variant}: the view answered {status}")
    return handler


def run(handler: Any, n: int) -> str:
    status = ""

    def start_response(s: str, headers: Any, exc_info: Any = None) -> None:
        nonlocal status
        status = s

    for _ in range(n):
        environ = {**ENVIRON, "wsgi.input": io.BytesIO(b"")}
        result = handler(environ, start_response)
        for _chunk in result:
            pass
        result.close()
    return status


def child(variant: str, n: int, rounds: int) -> None:
    """In the variant's own process: print the best microseconds per request over `rounds`."""
    handler = setup(variant)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run(handler, n)
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    print(f"{best:.3f}")


def counted(variant: str, n: int) -> None:
    """In the variant's own process, under callgrind: set up, then serve `n` requests."""
    handler = setup(variant)
    run(handler, n)


def _total(out_file: Path) -> int:
    text = subprocess.run(
        ["callgrind_annotate", str(out_file)], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"^\s*([\d,]+)\s.*PROGRAM TOTALS", text, re.M)
    if match is None:
        raise RuntimeError(f"no totals in {out_file}")
    return int(match.group(1).replace(",", ""))


def instructions(variant: str, work: Path, low: int = 100, high: int = 600) -> float:
    totals = []
    for n in (low, high):
        out = work / f"dj.{variant}.{n}"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
             "--counted", variant, "--n", str(n)],
            capture_output=True, check=True,
        )  # fmt: skip
        totals.append(_total(out))
    return (totals[1] - totals[0]) / (high - low)


def microseconds(variant: str, n: int, rounds: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--n", str(n), "--rounds", str(rounds)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--n", type=int, default=5000, help="requests per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--counted")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, args.rounds)
        return
    if args.counted:
        counted(args.counted, args.n)
        return
    variants = args.variants.split(",")
    if variants[0] != "none":
        variants.insert(0, "none")
    use_callgrind = not args.no_callgrind and shutil.which("valgrind") and shutil.which("callgrind_annotate")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            us = microseconds(variant, args.n, args.rounds)
            ins = instructions(variant, Path(tmp)) if use_callgrind else None
            rows.append((variant, us, ins))
            print(
                f"  measured {variant}: {us:.1f} us" + (f", {ins:.0f} instructions" if ins else ""),
                flush=True,
            )
    report(rows)


def report(rows: list[tuple[str, float, float | None]]) -> None:
    """The table: per variant its time and instructions, what it adds over `none`, and the ratios."""
    base_us, base_ins = rows[0][1], rows[0][2]
    rate = base_us / base_ins if base_ins else None  # this run's microseconds per instruction
    added = {v: us - base_us for v, us, _ in rows}
    added_ins = {v: ins - base_ins for v, _, ins in rows if ins is not None and base_ins is not None}
    print(
        f"\nDjango middleware, per request (GET /tickets/1/ via WSGIHandler), python {sys.version.split()[0]}"
    )
    head = ("variant", "us/req", "added us", "instr/req", "added instr", "added us (instr)", "peer/perfkit")
    print("  {:15s} {:>8s} {:>9s} {:>10s} {:>12s} {:>17s} {:>13s}".format(*head))
    mine = added_ins.get("perfkit")
    for variant, us, ins in rows:
        extra = added_ins.get(variant)
        ratio = ""
        if variant in ("prometheus", "silk"):
            if mine and extra is not None:
                ratio = f"{extra / mine:.2f}x"
            elif added.get("perfkit", 0) > 0:
                ratio = f"{added[variant] / added['perfkit']:.2f}x"
        cells = [
            f"{ins:10.0f}" if ins is not None else f"{'-':>10s}",
            f"{extra:+12.0f}" if extra is not None else f"{'-':>12s}",
            f"{extra * rate:+17.1f}" if extra is not None and rate else f"{'-':>17s}",
        ]
        print(f"  {variant:15s} {us:8.1f} {added[variant]:+9.1f} {' '.join(cells)} {ratio:>13s}")
    if mine is not None and rate:
        estimate = mine * rate
        verdict = "meets" if estimate <= TARGET_US else "misses"
        line = f"  perfkit adds {mine:.0f} instructions = {estimate:.1f} us at this run's rate"
        print(f"{line}: {verdict} <= {TARGET_US:g} us")
    print("  'added us (instr)': added instructions x the baseline's us per instruction in this run;")
    print("  'peer/perfkit': the peer's added instructions (us without callgrind) over perfkit's")


if __name__ == "__main__":
    main()
