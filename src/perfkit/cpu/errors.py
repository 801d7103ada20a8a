"""The process pool's errors, under perfkit's hierarchy (`perfkit.errors`).

PerfkitError
└── PoolError                    the pool could not run a function
    ├── PoolFullError            the pending queue is full and the pool refuses to wait
    ├── PoolClosedError          the pool is closed (also a RuntimeError)
    ├── TaskTimeoutError         past its deadline: the worker was killed (also a TimeoutError)
    ├── WorkerCrashedError       its worker process died (segfault, os._exit, OOM kill)
    └── RemoteError              it raised an exception that could not be sent back whole
"""

from __future__ import annotations

from perfkit.errors import PerfkitError

__all__ = [
    "PoolClosedError",
    "PoolError",
    "PoolFullError",
    "RemoteError",
    "TaskTimeoutError",
    "WorkerCrashedError",
]


class PoolError(PerfkitError):
    """A function sent to the process pool did not return a value; the message names it."""


class PoolFullError(PoolError):
    """`max_pending` functions are waiting already and the pool was made with `when_full="error"`."""


class PoolClosedError(PoolError, RuntimeError):
    """The pool was closed before or while the function waited."""


class TaskTimeoutError(PoolError, TimeoutError):
    """The function's deadline (counted from `run()`/`offload()`) passed; its worker process was killed."""


class WorkerCrashedError(PoolError):
    """The worker process running the function died (a signal or an exit code is in the message)."""


class RemoteError(PoolError):
    """The function raised an exception that cannot be pickled; its type, message and traceback are here."""
