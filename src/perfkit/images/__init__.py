"""perfkit.images: an image endpoint (resize, crop, AVIF/WebP, placeholders) with signed URLs, and the
srcset/`<picture>` markup that points at it. Needs the `images` extra (Pillow): `pip install
'perfkit[images]'`. See docs/images.md.

    service.py    ImageService: the ASGI endpoint, its URLs and markup helpers
    options.py    the URL options (w, h, fit, fp, q, dpr, f, blur, lqip, v) and the allow-lists (Policy)
    signing.py    HMAC-SHA256 signed URLs with key rotation
    sources.py    local folders; remote.py + addresses.py: allow-listed, SSRF-checked remote sources
    probe.py      the header checks before decoding (formats, bytes, pixels, frames)
    engine.py     the Pillow pipeline; geometry.py the fits; thumbhash.py the placeholder hash
    pool.py       the bounded processing pool with its timeout
    html.py       srcset, <img>, <picture>, preload Link; jinja.py the Jinja2 global
"""

from perfkit.images.config import Limits
from perfkit.images.engine import Placeholder
from perfkit.images.errors import (
    BadOptionsError,
    BadSignatureError,
    BusyError,
    CorruptImageError,
    ImageError,
    ImageTooLargeError,
    SourceFetchError,
    SourceNotFoundError,
    SourceRefusedError,
    UnsupportedImageError,
)
from perfkit.images.jinja import install_jinja
from perfkit.images.options import Options, Policy
from perfkit.images.remote import RemoteSource
from perfkit.images.service import ImageService, ImageStats
from perfkit.images.sources import LocalSource

__all__ = [
    "BadOptionsError",
    "BadSignatureError",
    "BusyError",
    "CorruptImageError",
    "ImageError",
    "ImageService",
    "ImageStats",
    "ImageTooLargeError",
    "Limits",
    "LocalSource",
    "Options",
    "Placeholder",
    "Policy",
    "RemoteSource",
    "SourceFetchError",
    "SourceNotFoundError",
    "SourceRefusedError",
    "UnsupportedImageError",
    "install_jinja",
]
