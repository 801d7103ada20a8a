"""perfkit: the performance layer for Python web backends.

Importing perfkit has no side effects: no cache, connection, thread or metric is created until you
create one.
"""

from typing import TYPE_CHECKING, Any

from perfkit._version import __version__
from perfkit.cache import Cache, SyncCache
from perfkit.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidArgumentError,
    InvalidDurationError,
    InvalidKeyError,
    MissingDependencyError,
    PerfkitError,
    SerializationError,
    ValueTooLargeError,
)

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "Cache",
    "ConfigurationError",
    "InvalidArgumentError",
    "InvalidDurationError",
    "InvalidKeyError",
    "JobQueue",
    "MissingDependencyError",
    "PerfkitError",
    "SerializationError",
    "SyncCache",
    "ValueTooLargeError",
    "__version__",
    "instrument",
    "offload",
]

# the composition root is light to import (it imports the parts it wires when it runs); importing it
# here, not lazily, keeps `perfkit.instrument` the function even after `import perfkit.instrument`
from perfkit.instrument import instrument

if TYPE_CHECKING:
    from perfkit.cpu import offload
    from perfkit.jobs import JobQueue

_LAZY = {"JobQueue": "perfkit.jobs", "offload": "perfkit.cpu"}


def __getattr__(name: str) -> Any:
    """Import the heavier parts (jobs, the web layer) on first access, so `import perfkit` stays cheap."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'perfkit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
