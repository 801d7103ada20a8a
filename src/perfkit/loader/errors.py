"""The loader's errors, under perfkit's hierarchy (`perfkit.errors`).

PerfkitError
└── LoaderError                  a batching loader could not give a value
    ├── NoLoaderScopeError       load() outside any request scope (also a RuntimeError)
    ├── LoaderCycleError         `after=` dependencies form a cycle (also an InvalidArgumentError)
    ├── LoaderTimeoutError       the batch call took longer than `timeout` (also a TimeoutError)
    └── BatchResultError         batch_fn returned the wrong number or kind of values
"""

from __future__ import annotations

from perfkit.errors import InvalidArgumentError, PerfkitError

__all__ = ["BatchResultError", "LoaderCycleError", "LoaderError", "LoaderTimeoutError", "NoLoaderScopeError"]


class LoaderError(PerfkitError):
    """A batching loader could not give a value; the message names the loader."""


class NoLoaderScopeError(LoaderError, RuntimeError):
    """`load()` ran outside a request scope (`perfkit.loader.scope()`, the middleware, a perfkit request)."""


class LoaderCycleError(LoaderError, InvalidArgumentError):
    """The `after=` dependencies of a load lead back to itself; the message shows the cycle."""


class LoaderTimeoutError(LoaderError, TimeoutError):
    """The batch function did not answer within the loader's `timeout`."""


class BatchResultError(LoaderError, TypeError):
    """The batch function returned something other than one value per key (a list or a mapping)."""
