"""`manage.py perfkit_worker`: a perfkit job worker for `PERFKIT["jobs"]`, inside the Django project.

Django is set up before anything else (manage.py does it); then every installed app's `tasks` module
is imported (`--discover`, plus `--import MODULE`), and the worker runs with `perfkit worker`'s options.
SIGTERM or SIGINT stops it: no new job is taken, the running ones get `--grace` seconds to finish.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from perfkit.errors import ConfigurationError
from perfkit.jobs.cli import add_worker_options, serve

_WORKER_OPTIONS = ("queues", "concurrency", "prefetch", "burst", "grace", "log_level")


class Command(BaseCommand):
    help = (
        "Run a perfkit job worker for PERFKIT['jobs']: imports each installed app's tasks module, then "
        "works until SIGTERM, finishing the jobs in hand."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_worker_options(parser)
        parser.add_argument(
            "--discover", default="tasks", metavar="NAME",
            help="the module imported from every installed app that has one (default: tasks; '' for none)",
        )  # fmt: skip
        parser.add_argument(
            "--import", dest="modules", action="append", default=[], metavar="MODULE",
            help="a module of tasks to import as well (repeatable)",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        from perfkit.django.jobs import get_queue
        from perfkit.django.jobs_worker import discover, worker_queue

        try:
            queue = get_queue()
            if queue is None:
                raise CommandError("PERFKIT['jobs'] is not set: add PERFKIT = {'jobs': 'redis://...'}")
            modules = discover(options["discover"], options["modules"])
            self.stdout.write(
                f"perfkit_worker: tasks from {', '.join(modules) or 'no module'}: "
                f"{', '.join(sorted(queue.registry.tasks)) or 'none'}"
            )
            code = serve(worker_queue(queue), argparse.Namespace(**{k: options[k] for k in _WORKER_OPTIONS}))
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        if code:
            raise CommandError(f"the worker exited with status {code}", returncode=code)
