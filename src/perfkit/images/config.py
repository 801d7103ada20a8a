"""The limits and defaults of an `ImageService`, resolved once (a dataclass, as every perfkit part has)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from perfkit.errors import ConfigurationError

__all__ = ["DEFAULT_QUALITY", "Limits"]

# the quality each format gets when the URL names none: roughly the same visual quality (AVIF's and
# WebP's scales run lower than JPEG's for the same look)
DEFAULT_QUALITY = {"jpeg": 80, "webp": 75, "avif": 55, "png": 100}


@dataclass(frozen=True)
class Limits:
    """What one source may cost, checked before it is decoded, and the bounds of the processing pool.

    `max_pixels` (50 MP) and `max_frames` are read from the image's header; `max_bytes` bounds what is
    read from a file or the network at all. `workers` threads process images (Pillow releases the GIL
    while it decodes, resizes and encodes); `queue` more may wait for one, beyond that a request is
    refused at once (503); each job has `timeout` seconds.
    """

    max_pixels: int = 50_000_000
    max_bytes: int = 25 * 1024 * 1024
    max_frames: int = 64
    workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    queue: int = 32
    timeout: float = 15.0

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_bytes", "max_frames", "workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(name, f"a positive integer, not {value!r}")
        if not isinstance(self.queue, int) or self.queue < 0:
            raise ConfigurationError("queue", f"a non-negative integer, not {self.queue!r}")
        if not 0 < self.timeout <= 600:
            raise ConfigurationError("timeout", f"seconds from 0 to 600, not {self.timeout!r}")
