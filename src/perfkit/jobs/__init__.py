"""Background jobs: a reliable queue with priorities, retries, progress and cancellation.

jobs = JobQueue("sqlite:///jobs.db")  # or postgresql://..., redis://...

@jobs.task(queue="email", priority="high", retries=3, timeout=30)
async def send_email(ctx, to: str) -> str: ...

job = await send_email.enqueue("a@example.com")
"""

from perfkit.jobs.config import JobsConfig
from perfkit.jobs.context import Context
from perfkit.jobs.hooks import JobEvent
from perfkit.jobs.models import JobInfo, Priority, Status
from perfkit.jobs.queue import JobQueue
from perfkit.jobs.retry import Exponential, Fixed, RetryPolicy
from perfkit.jobs.sync import SyncJobQueue
from perfkit.jobs.task import PreparedJob, Task
from perfkit.jobs.worker import Worker, WorkerStats

__all__ = [
    "Context",
    "Exponential",
    "Fixed",
    "JobEvent",
    "JobInfo",
    "JobQueue",
    "JobsConfig",
    "PreparedJob",
    "Priority",
    "RetryPolicy",
    "Status",
    "SyncJobQueue",
    "Task",
    "Worker",
    "WorkerStats",
]
