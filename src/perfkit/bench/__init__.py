"""`perfkit bench`: load testing with HDR latency histograms, thresholds for CI and reports.

Scenario files import `task`, `think` and `check` from here. The pieces: `client` (the keep-alive
HTTP/1.1 protocol), `scheduler` (open and closed models, stages), `drivers` / `scenario_driver` (the
load loops), `metrics` + `hdr` (recording), `runner` (processes and exact merging), `thresholds`,
`report` (JSON, text, HTML, baseline) and `command` (the CLI).
"""

from perfkit.bench.scenario import check, task, think

__all__ = ["check", "task", "think"]
