"""Job types and their handlers, three ways:

- `python`: the tasks of a `JobQueue` in a module (`--tasks myapp.tasks:jobs`), run in the service's
  own worker under their own names, queues and options;
- `callback`: `--job-type "render=https://app.example/jobs/render retries=3 timeout=60"`: the service's
  worker POSTs the job (`{"id", "type", "args", "kwargs", "attempt"}`) to the URL, signed as Standard
  Webhooks sign (`perfkit.serve.signing`: the type's `secret_file=`, else the service's callback
  secrets), and records the answer (`{"result": ...}`, or any JSON) as the result; a non-2xx answer or
  a timeout fails the attempt (retried as any task is). A callback type without a secret is refused
  unless unsigned callbacks are allowed (then it is sent unsigned, with a warning at start-up);
- `remote`: `--job-type "video=remote retries=2"`: a worker in another language claims jobs over HTTP
  (claim / heartbeat / complete / fail) under perfkit.jobs' leases.

Each type is a task registered on the service's `JobQueue`; callback and remote types get a queue of
their own name, so a claim for a remote type takes only its jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perfkit.errors import ConfigurationError
from perfkit.jobs import JobQueue
from perfkit.jobs.task import Task, TaskOptions
from perfkit.serve.signing import Secrets, read_secrets, require, signed_post
from perfkit.serve.specs import split_spec

_OPTIONS = ("queue", "retries", "timeout", "priority", "backoff", "secret_file")


class CallbackError(Exception):
    """An HTTP callback did not answer with a 2xx."""


class RemoteOnly(Exception):
    """A remote type's job reached the in-process worker (it never should: its queue is not served)."""


@dataclass(frozen=True)
class JobTypeSpec:
    name: str
    handler: str  # "python", "callback", "remote"
    url: str | None
    options: TaskOptions
    secrets: Secrets = field(default=Secrets(), repr=False)  # a callback's own (`secret_file=`)


def parse_job_type(spec: str) -> JobTypeSpec:
    """`NAME=remote|URL [retries=N] [timeout=S] [priority=P] [queue=Q] [backoff=B] [secret_file=PATH]`."""
    name, target, given = split_spec("job_type", spec, _OPTIONS, "NAME=remote or NAME=URL")
    secret_file = given.pop("secret_file", None)
    raw: dict[str, Any] = dict(given)
    for key, value in given.items():
        if key == "retries" and value.isdigit():
            raw[key] = int(value)
        elif key == "backoff" and value.replace(".", "", 1).isdigit():
            raw[key] = float(value)  # a fixed number of seconds
    if target == "remote":
        handler, url = "remote", None
    elif target.startswith(("http://", "https://")):
        handler, url = "callback", target
    else:
        raise ConfigurationError("job_type", f"{spec!r}: the handler is 'remote' or an http(s) URL")
    if secret_file is not None and handler != "callback":
        raise ConfigurationError("job_type", f"{spec!r}: secret_file= is for callback (URL) types")
    secrets = read_secrets(f"job_type {name!r} secret_file", secret_file) if secret_file else Secrets()
    options = TaskOptions.check(raw.pop("queue", name), **raw)
    return JobTypeSpec(name, handler, url, options, secrets)


class JobTypes:
    """The configured types, registered on `jobs`; `kinds[name]` says how each is handled. Callbacks are
    signed with their own secrets, else `secrets`; with neither, refused unless `allow_unsigned`."""

    def __init__(
        self,
        jobs: JobQueue,
        timeout: float = 30.0,
        secrets: Secrets = Secrets(),  # noqa: B008 - frozen, empty
        allow_unsigned: bool = False,
    ) -> None:
        self.jobs = jobs
        self.secrets, self.allow_unsigned = secrets, allow_unsigned
        self.kinds: dict[str, str] = {}
        self.timeout = timeout
        self._client: Any = None

    def add_python(self, source: JobQueue) -> None:
        for task in source.registry.tasks.values():
            self.jobs.registry.add(Task(self.jobs, task.func, task.name, task.options))
            self.kinds[task.name] = "python"

    def add(self, spec: JobTypeSpec) -> None:
        if spec.name in self.kinds:
            raise ConfigurationError("job_type", f"job type {spec.name!r} is configured twice")
        func = self._callback(spec) if spec.handler == "callback" else _remote_only
        self.jobs.registry.add(Task(self.jobs, func, spec.name, spec.options))
        self.kinds[spec.name] = spec.handler

    def task(self, name: str) -> Task:
        if name not in self.kinds:
            raise ConfigurationError("type", f"no job type {name!r}; configured: {sorted(self.kinds)}")
        return self.jobs.registry.tasks[name]

    def in_process_queues(self) -> list[str]:
        """The queues the service's own worker serves (Python tasks and callbacks)."""
        return sorted({self.task(n).options.queue for n, k in self.kinds.items() if k != "remote"})

    def remote_queues(self) -> list[str]:
        return sorted({self.task(n).options.queue for n, k in self.kinds.items() if k == "remote"})

    def _callback(self, spec: JobTypeSpec) -> Any:
        url = spec.url
        secrets = spec.secrets or self.secrets
        require(secrets, f"callback type {spec.name!r}", self.allow_unsigned)

        async def call_back(ctx: Any, *args: Any, **kwargs: Any) -> Any:
            import httpx

            if self._client is None:
                self._client = httpx.AsyncClient(timeout=self.timeout)
            body = {"id": ctx.job_id, "type": ctx.task, "args": list(args), "kwargs": kwargs,
                    "attempt": ctx.attempt}  # fmt: skip
            data, headers = signed_post(secrets, str(ctx.job_id), body)
            response = await self._client.post(url, content=data, headers=headers)
            if response.status_code >= 300:
                raise CallbackError(f"{url} answered {response.status_code}: {response.text[:200]}")
            if not response.content:
                return None
            answer = response.json()
            return answer["result"] if isinstance(answer, dict) and "result" in answer else answer

        call_back.__qualname__ = f"callback[{spec.name}]"
        return call_back

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


async def _remote_only(ctx: Any, *args: Any, **kwargs: Any) -> Any:
    raise RemoteOnly(f"job type {ctx.task!r} is handled by remote workers (POST /v1/workers/claim)")
