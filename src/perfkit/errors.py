"""perfkit's exception hierarchy: everything perfkit raises on purpose derives from `PerfkitError`.

    PerfkitError
    ├── ConfigurationError        a setting has a value perfkit cannot use (names the setting)
    │   ├── MissingDependencyError an optional extra is not installed (carries the pip hint)
    │   └── InvalidDurationError  a duration (delay, lease, timeout, TTL) is NaN, infinite, negative or
    │                             over its maximum (also an InvalidArgumentError)
    ├── BackendError              a storage backend (Redis, PostgreSQL, SQLite) failed
    │   └── BackendUnavailableError  it is down or did not answer within its timeout
    ├── InvalidArgumentError      an argument is out of range: a negative TTL, a bad tag (also ValueError)
    │   └── InvalidKeyError       a cache key is empty or not a string (also TypeError)
    ├── SerializationError        a value cannot be encoded (also a TypeError) or decoded
    └── ValueTooLargeError        a value is over the configured maximum size (also ValueError)

Driver exceptions (redis-py, asyncpg, sqlite3) are translated at the backend boundary so that
application code catches one family, whatever backend the URL picked.
"""

from __future__ import annotations

from perfkit.redaction import redact


class PerfkitError(Exception):
    """Base class of every error perfkit raises on purpose; credentials in its message are redacted
    (a URL's password, `?password=`, tokens: see `perfkit.redaction`), whoever built the message."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class ConfigurationError(PerfkitError, ValueError):
    """A setting has a value perfkit cannot use; the message names the setting and what it accepts."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional dependency is missing; the message carries the `pip install` line that fixes it."""

    def __init__(self, setting: str, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        ConfigurationError.__init__(
            self, setting, f"needs the '{module}' package: pip install 'perfkit[{extra}]'"
        )


class BackendError(PerfkitError):
    """A storage backend failed; `__cause__` holds the driver's exception."""


class BackendUnavailableError(BackendError):
    """A backend is down, refused the connection or did not answer within its timeout."""


class InvalidArgumentError(PerfkitError, ValueError):
    """An argument is out of its accepted range; the message names the argument and the key."""


class InvalidKeyError(InvalidArgumentError, TypeError):
    """A cache key is empty or is not a string."""


class SerializationError(PerfkitError, TypeError):
    """A value could not be serialized (names the key and the type) or stored bytes could not be read."""


class ValueTooLargeError(PerfkitError, ValueError):
    """A serialized value is larger than the configured maximum."""


class InvalidDurationError(ConfigurationError, InvalidArgumentError):
    """A duration is not a finite number of seconds within its range; the message names the setting.

    Raised by `perfkit.config.parse_duration`, the one parser every delay, lease, retention, timeout
    and TTL goes through; it is both a `ConfigurationError` and an `InvalidArgumentError`.
    """
