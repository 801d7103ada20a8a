"""The JSON Schema (draft 2020-12) of the `perfkit.bench/1` report; docs/bench.md explains each field."""

from __future__ import annotations

from typing import Any

_NUM = {"type": "number"}
_INT = {"type": "integer", "minimum": 0}
_LATENCY: dict[str, Any] = {
    "type": ["object", "null"],
    "required": ["count", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"],
    "properties": {
        "count": _INT,
        **{k: _NUM for k in ("min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max")},
    },
}
_NAME: dict[str, Any] = {
    "type": "object",
    "required": [
        "requests",
        "errors",
        "error_rate",
        "rps",
        "errors_by_kind",
        "status_codes",
        "latency_ms",
        "uncorrected_latency_ms",
        "histogram",
    ],
    "properties": {
        "requests": _INT,
        "errors": _INT,
        "error_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "rps": _NUM,
        "errors_by_kind": {
            "type": "object",
            "required": ["status", "timeout", "connection", "protocol"],
            "additionalProperties": _INT,
        },
        "status_codes": {"type": "object", "additionalProperties": _INT},
        "latency_ms": _LATENCY,
        "uncorrected_latency_ms": _LATENCY,
        "histogram": {"type": "string", "description": "HdrHistogram base64 (compressed) of latency in µs"},
    },
}
_PAIRS = {"type": ["array", "null"], "items": {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2}}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "perfkit bench report",
    "type": "object",
    "required": [
        "schema",
        "perfkit_version",
        "target",
        "started_at",
        "duration_s",
        "config",
        "sent",
        "dropped",
        "interrupted",
        "names",
        "tasks",
        "checks",
        "timeline",
        "spectrum",
        "uncorrected_spectrum",
        "thresholds",
        "baseline",
        "failures",
        "warnings",
        "passed",
    ],
    "properties": {
        "schema": {"const": "perfkit.bench/1"},
        "perfkit_version": {"type": "string"},
        "target": {"type": "string"},
        "started_at": {"type": "string"},
        "duration_s": _NUM,
        "config": {
            "type": "object",
            "required": [
                "model",
                "rate",
                "users",
                "stages",
                "connections",
                "processes",
                "timeout_s",
                "max_requests",
            ],
            "properties": {
                "model": {"enum": ["open", "closed"]},
                "rate": {"type": ["number", "null"]},
                "users": {"type": ["integer", "null"]},
                "stages": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["duration_s", "target", "unit"],
                        "properties": {
                            "duration_s": _NUM,
                            "target": _NUM,
                            "unit": {"enum": ["rps", "users"]},
                        },
                    },
                },
                "connections": _INT,
                "processes": _INT,
                "timeout_s": _NUM,
                "max_requests": _INT,
            },
        },
        "sent": _INT,
        "dropped": {
            "type": "integer",
            "minimum": 0,
            "description": "open-model arrivals never sent: the run ended (or was interrupted) first, or "
            "10,000 scenario iterations were already in flight",
        },
        "interrupted": {"type": "boolean", "description": "stopped early by Ctrl-C: a partial report"},
        "names": {"type": "object", "required": ["*"], "additionalProperties": _NAME},
        "tasks": {
            "type": "object",
            "description": "scenario tasks: runs, runs that raised, the first distinct exceptions",
            "additionalProperties": {
                "type": "object",
                "required": ["runs", "raised", "exceptions"],
                "properties": {
                    "runs": _INT,
                    "raised": _INT,
                    "exceptions": {
                        "type": "array",
                        "maxItems": 5,
                        "items": {
                            "type": "object",
                            "required": ["error", "count"],
                            "properties": {"error": {"type": "string"}, "count": _INT},
                        },
                    },
                },
            },
        },
        "checks": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["passes", "fails"],
                "properties": {"passes": _INT, "fails": _INT},
            },
        },
        "timeline": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["t", "requests", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms"],
                "properties": {
                    "t": _INT,
                    "requests": _INT,
                    "errors": _INT,
                    "p50_ms": _NUM,
                    "p95_ms": _NUM,
                    "p99_ms": _NUM,
                    "max_ms": _NUM,
                },
            },
        },
        "spectrum": _PAIRS,
        "uncorrected_spectrum": _PAIRS,
        "thresholds": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["expression", "name", "metric", "op", "limit", "actual", "passed", "reason"],
                "properties": {
                    "expression": {"type": "string"},
                    "name": {"type": ["string", "null"]},
                    "metric": {"type": "string"},
                    "op": {"enum": ["<", "<=", ">", ">="]},
                    "limit": _NUM,
                    "actual": {"type": ["number", "null"]},
                    "passed": {"type": "boolean"},
                    "reason": {"type": "string"},
                },
            },
        },
        "baseline": {"type": ["object", "null"], "required": ["file", "tolerance", "comparisons"]},
        "failures": {"type": "array", "items": {"type": "string"}, "description": "why it failed"},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "passed": {"type": "boolean"},
    },
}
