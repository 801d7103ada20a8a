"""`TaskRegistry`: the tasks of one queue by name, and which of them run on a cron schedule.

The producer registers into it and the worker looks tasks up in it; neither needs the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from perfkit.errors import ConfigurationError
from perfkit.jobs.cron import Cron
from perfkit.jobs.task import Task


@dataclass(frozen=True, slots=True)
class Periodic:
    task: Task
    cron: Cron


class TaskRegistry:
    """Tasks by name (`tasks`) and the periodic entries (`periodic`); a queue's siblings share one."""

    __slots__ = ("get", "periodic", "tasks")

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.periodic: list[Periodic] = []
        # the task named so, or None: the dict's own lookup (no Python frame: the worker calls it per job)
        self.get: Callable[[str], Task | None] = self.tasks.get

    def add(self, task: Task) -> Task:
        """Register `task` under its name; the same function again is fine, another one is refused."""
        held = self.tasks.get(task.name)
        if held is not None and held.func is not task.func:
            raise ConfigurationError("name", f"a different task is already registered as {task.name!r}")
        self.tasks[task.name] = task
        return task

    def add_periodic(self, task: Task, cron: Cron) -> None:
        self.periodic.append(Periodic(task, cron))

    def named(self, name: str) -> Task:
        """The task registered as `name`; a ConfigurationError listing the registered ones if none is."""
        try:
            return self.tasks[name]
        except KeyError:
            raise ConfigurationError(
                "task", f"no task named {name!r}; registered: {sorted(self.tasks)}"
            ) from None

    def queues(self) -> set[str]:
        """The queues the registered tasks use."""
        return {t.options.queue for t in self.tasks.values()}
