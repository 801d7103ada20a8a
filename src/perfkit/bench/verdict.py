"""The verdict of a run: `passed`, with every reason it failed and every warning, in words.

A run fails when a threshold fails, when it got no response at all, when every response was an
error or every run of a scenario task raised (unless `--allow-errors`: load-testing an error page is
legitimate), when open-model arrivals were dropped (unless `--allow-dropped`), on a baseline
regression with `--fail-on-regression`, and when it was interrupted. Errors or exceptions in only
part of the run are warnings: gate them with `--threshold 'errors<1%'` or `'checks>99%'`.
"""

from __future__ import annotations

from typing import Any

from perfkit.bench.report.schema import ALL


def _threshold_failure(t: dict[str, Any]) -> str:
    detail = t["reason"] if t["actual"] is None else f"actual {t['actual']:.4g}"
    return f"threshold {t['expression']!r} failed ({detail})"


def _kinds(entry: dict[str, Any]) -> str:
    parts = [f"status {code}: {n}" for code, n in sorted(entry["status_codes"].items()) if int(code) >= 400]
    parts += [f"{kind}: {n}" for kind, n in entry["errors_by_kind"].items() if n and kind != "status"]
    return ", ".join(parts)


def judge(
    doc: dict[str, Any],
    *,
    allow_dropped: bool = False,
    allow_errors: bool = False,
    fail_on_regression: bool = False,
) -> None:
    """Set `passed`, `failures` and `warnings` in a report document (thresholds and baseline included)."""
    failures: list[str] = []
    warnings: list[str] = []
    if doc["interrupted"]:
        failures.append(f"interrupted after {doc['duration_s']:.1f}s: the report covers only part of the run")
    failures += [_threshold_failure(t) for t in doc["thresholds"] if not t["passed"]]
    total = doc["names"][ALL]
    if not total["latency_ms"]["count"]:
        failures.append("no response at all (is the server up?)")
    elif total["errors"] == total["requests"]:
        message = f"every one of the {total['requests']} requests failed ({_kinds(total)})"
        if allow_errors:
            warnings.append(f"{message}; allowed by --allow-errors")
        else:
            failures.append(f"{message}; pass --allow-errors if that is what you are testing")
    elif total["errors"] and not any(t["metric"] == "errors" for t in doc["thresholds"]):
        warnings.append(
            f"{total['error_rate']:.2%} of the requests failed ({_kinds(total)}) and no 'errors' "
            "threshold gates them (e.g. --threshold 'errors<1%')"
        )
    for name, task in doc["tasks"].items():
        if not task["raised"]:
            continue
        first = task["exceptions"][0]["error"] if task["exceptions"] else "an exception"
        if task["raised"] == task["runs"]:
            message = f"task {name!r} raised on every one of its {task['runs']} runs: {first}"
            if allow_errors:
                warnings.append(f"{message}; allowed by --allow-errors")
            else:
                failures.append(message)
        else:
            warnings.append(f"task {name!r} raised in {task['raised']} of its {task['runs']} runs: {first}")
    if doc["dropped"]:
        message = (
            f"{doc['dropped']:,} arrivals were dropped (never sent): the server, the connections or the "
            "client could not keep up with the rate before the end of the run"
        )
        if allow_dropped:
            warnings.append(f"{message}; allowed by --allow-dropped")
        else:
            failures.append(f"{message}; lower --rate, raise --connections, or pass --allow-dropped")
    if doc["baseline"] and fail_on_regression:
        regressions = sum(1 for r in doc["baseline"]["comparisons"] if r["regression"])
        if regressions:
            failures.append(f"{regressions} regression(s) against the baseline {doc['baseline']['file']}")
    doc["failures"] = failures
    doc["warnings"] = warnings
    doc["passed"] = not failures
