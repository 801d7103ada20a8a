"""What `perfkit demo` prints: progress lines, the before/after table and the monitoring verdict."""

from __future__ import annotations

import sys
from typing import Any

COLUMNS = (
    ("queries/req", "queries_per_request", "{:.1f}"),
    ("p50 ms", "p50_ms", "{:.1f}"),
    ("p95 ms", "p95_ms", "{:.1f}"),
    ("p99 ms", "p99_ms", "{:.1f}"),
    ("req/s", "throughput_rps", "{:.0f}"),
    ("bytes/resp", "payload_bytes", "{:,.0f}"),
    ("cache hit", "cache_hit_ratio", "{:.0%}"),
)


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _change(naive: Any, fast: Any, key: str) -> str:
    if naive is None or fast is None or key == "cache_hit_ratio":
        return ""
    if key == "throughput_rps":
        return f"x{fast / naive:.1f}" if naive else ""
    if naive == 0:
        return ""
    return f"{(fast - naive) / naive:+.0%}"


def render_table(doc: dict[str, Any]) -> str:
    head = f"{'':12}{'':8}" + "".join(f"{title:>12}" for title, _, _ in COLUMNS)
    lines = [head, "-" * len(head)]
    for pair in doc["pairs"]:
        for variant in ("naive", "fast"):
            row = pair[variant]
            label = pair["name"] if variant == "naive" else ""
            if variant == "fast" and pair.get("background"):
                label = "  (202 *)"
            cells = "".join(f"{_cell(row.get(key), fmt):>12}" for _, key, fmt in COLUMNS)
            errors = f"  ({row['errors']} errors)" if row.get("errors") else ""
            lines.append(f"{label:12}{variant:8}{cells}{errors}")
        change = "".join(
            f"{_change(pair['naive'].get(k), pair['fast'].get(k), k):>12}" for _, k, _ in COLUMNS
        )
        lines.append(f"{'':12}{'change':8}{change}")
    return "\n".join(lines)


def render_markdown(doc: dict[str, Any]) -> str:
    """The table as Markdown (the README's), naive -> optimised in each cell."""

    def cell(pair: dict[str, Any], key: str, fmt: str) -> str:
        a, b = pair["naive"].get(key), pair["fast"].get(key)
        return f"{_cell(a, fmt)} → {_cell(b, fmt)}"

    head = "| pair | " + " | ".join(title for title, _, _ in COLUMNS) + " |"
    lines = [head, "|---" * (len(COLUMNS) + 1) + "|"]
    for pair in doc["pairs"]:
        cells = " | ".join(cell(pair, key, fmt) for _, key, fmt in COLUMNS)
        name = pair["name"] + (" *" if pair.get("background") else "")
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


class Printer:
    def __init__(self) -> None:
        self.out = sys.stdout

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def header(self, settings: Any) -> None:
        self.line("perfkit demo: a support-ticket API, each endpoint slow then fast, measured")
        self.line(
            f"  data {settings.database_url.split('://')[0]}, cache {settings.cache_url.split('://')[0]}"
            f" (+ in-process L1), jobs {settings.jobs_url.split('://')[0]}"
        )

    def seeded(self, prepared: dict[str, Any]) -> None:
        v = prepared["volume"]
        how = "reused" if prepared["reused"] else f"seeded in {prepared['seed_seconds']:.1f}s"
        self.line(
            f"  {v.organizations} organizations, {v.users:,} users, {v.tickets:,} tickets, "
            f"{v.comments:,} comments ({how})"
        )

    def serving(self, base: str, app_pid: int, worker_pid: int) -> None:
        self.line(f"  app {base} (pid {app_pid}), job worker (pid {worker_pid})")

    def measuring(self, pair: Any) -> None:
        self.line(f"  measuring {pair.name}: {pair.title}")

    def table(self, doc: dict[str, Any]) -> None:
        load = doc["load"]
        self.line()
        self.line(
            f"Before/after, {load['users']} concurrent users for {load['duration_s']:g}s per variant "
            "(latency and req/s from perfkit bench;\n"
            "queries, bytes and cache hits from the app's own /perf/metrics):"
        )
        self.line()
        self.line(render_table(doc))
        self.line(
            "* export, notify: the optimised request only enqueues a job (202) and the worker does the work;"
            "\n  its queries and time are not in that row: the job's own time is in the checks below."
        )
        self.line()
        checks = doc["checks"]
        self.line("Checks through the API:")
        written = _yes(checks["write_visible_on_next_read"])
        self.line(f"  a write is visible on the next read of the cached dashboard: {written}")
        e, n = checks["export_job"], checks["notify_job"]
        self.line(
            f"  the export job's CSV equals the blocking export ({e['rows']} rows, progress {_steps(e)},"
            f" enqueue to done {_secs(e)}): {_yes(e['identical'])}"
        )
        self.line(
            f"  the notification job sends what the inline variant sends ({n['sent']} users,"
            f" enqueue to done {_secs(n)}): {_yes(n['identical'])}"
        )
        r = doc["report"]
        self.line()
        score = "-" if r["score"] is None else f"{r['score']}/100"
        self.line(
            f"Monitoring report (GET /perf/report, this run): score {score} against the latency, error,"
            " database, cache and system budgets"
            + (f"; over budget: {', '.join(r['budgets_failed'])}" if r["budgets_failed"] else "")
        )
        self.line("  findings and recommendations, from measurement (nobody told the report where to look):")
        self.line(f"  N+1 found on: {', '.join(r['found_n_plus_one']) or 'nothing'}")
        self.line(
            f"  routes over the queries-per-request budget: {', '.join(r['found_many_queries']) or 'none'}"
        )
        self.line("  top recommendations:")
        for rec in r["recommendations"]:
            self.line(f"    [{rec['severity']}] {rec['message']}  ->  {rec['fix']}")
        self.line()
        self.line(
            f"Done in {doc['elapsed_s']:.0f}s." + ("" if doc["ok"] else " Some checks FAILED (exit code 1).")
        )

    def keep_serving(self, base: str, token: str, *, shown: bool) -> None:
        """`shown`: the demo made the token up; one the user set (PERFKIT_MONITOR_TOKEN) is not printed."""
        self.line()
        self.line(f"Serving until Ctrl-C:  API {base}/docs")
        self.line(f"  live page {base}/live?org=1 (open it in two tabs)")
        if shown:
            self.line(f"  dashboard {base}/perf/#token={token}")
        else:
            self.line(f"  dashboard {base}/perf/ (token: your PERFKIT_MONITOR_TOKEN)")


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def _secs(job: dict[str, Any]) -> str:
    seconds = job.get("job_seconds")
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _steps(job: dict[str, Any]) -> str:
    seen = job.get("progress_seen") or []
    return " -> ".join(f"{p:.0%}" for p in seen[:6]) or "-"
