"""perfkit: the performance layer for Python web backends.

Importing perfkit has no side effects: no cache, connection, thread or metric is created until you
create one.
"""

from perfkit._version import __version__
from perfkit.cache import Cache, SyncCache
from perfkit.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidArgumentError,
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
    "InvalidKeyError",
    "MissingDependencyError",
    "PerfkitError",
    "SerializationError",
    "SyncCache",
    "ValueTooLargeError",
    "__version__",
]
