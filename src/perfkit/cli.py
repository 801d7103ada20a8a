"""The `perfkit` command: a thin argparse front that imports each subcommand's module lazily.

Each subcommand lives next to the part it drives (`perfkit.demo`, `perfkit.jobs.cli`, ...) and exposes
`add_arguments(parser)` and `run(args) -> int`; this module only wires them. Errors that the user can
fix exit with code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from perfkit._version import __version__
from perfkit.errors import ConfigurationError, PerfkitError

# name -> (module implementing it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("perfkit.demo.command", "run perfkit's demonstration on the embedded default"),
    "worker": ("perfkit.jobs.cli", "run a background job worker for MODULE:ATTR (a JobQueue)"),
    "bench": ("perfkit.bench.command", "load-test an HTTP target with latency budgets for CI"),
    "assets": ("perfkit.assets.command", "check static asset sizes (raw, gzip, brotli) against budgets"),
    "lighthouse": (
        "perfkit.bench.lighthouse.command",
        "run Lighthouse on a URL against score and metric budgets",
    ),
    "doctor": ("perfkit.doctor.command", "check a deployment's optimisations: a scored checklist for CI"),
    "top": ("perfkit.top.command", "a live terminal view of an app or a fleet through its monitor"),
    "export": (
        "perfkit.monitor.export",
        "write a Grafana dashboard or Prometheus alerting rules for perfkit",
    ),
    "serve": ("perfkit.serve.command", "run perfkit's cache, jobs and monitor as an HTTP service (REST /v1)"),
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perfkit", description="The performance layer for Python web backends."
    )
    parser.add_argument("--version", action="version", version=f"perfkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        code: int = args._module.run(args)
    except ConfigurationError as exc:
        print(f"perfkit {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PerfkitError as exc:
        print(f"perfkit {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
