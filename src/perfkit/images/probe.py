"""Open a source image by its header only and refuse it before decoding when it is over a limit.

Only JPEG, PNG, WebP, GIF and AVIF are tried (`Image.open(formats=...)`): Pillow's other plugins (EPS,
which runs Ghostscript, PSD, TIFF's many codecs, ...) are never reached by untrusted bytes. The size and
the frame count come from the header; a 50 MP cap refuses a decompression bomb before a pixel exists.
"""

from __future__ import annotations

import io

from perfkit.images.config import Limits
from perfkit.images.errors import CorruptImageError, ImageTooLargeError, UnsupportedImageError
from perfkit.images.pillow import Image, UnidentifiedImageError

__all__ = ["ACCEPTED", "open_checked", "sniff"]

ACCEPTED = ("JPEG", "PNG", "WEBP", "GIF", "AVIF")
# magic numbers of formats that are images, but not ones the endpoint decodes (for a clear message)
_OTHER = ((b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"8BPS", "PSD"),
          (b"\x00\x00\x01\x00", "ICO"), (b"%!PS", "PostScript"), (b"%PDF", "PDF"),
          (b"\xff\x0a", "JPEG XL"), (b"\x00\x00\x00\x0cJXL ", "JPEG XL"), (b"qoif", "QOI"))  # fmt: skip


def sniff(data: bytes) -> str | None:
    """The name of an image format the endpoint refuses, from its first bytes (None if unknown)."""
    head = data[:64]
    for magic, name in _OTHER:
        if head.startswith(magic):
            return name
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc"):
        return "HEIC"
    if head.lstrip().lower().startswith((b"<svg", b"<?xml")):
        return "SVG"
    return None


def open_checked(data: bytes, limits: Limits) -> Image.Image:
    """The image in `data`, opened (header read, nothing decoded) and within `limits`."""
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(f"source is {len(data)} bytes, over the cap of {limits.max_bytes}")
    if not data:
        raise UnsupportedImageError("source is empty: not an image")
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED)
    except UnidentifiedImageError:
        other = sniff(data)
        if other is not None:
            raise UnsupportedImageError(
                f"unsupported image format {other} (accepted: JPEG, PNG, WebP, GIF, AVIF)"
            ) from None
        raise UnsupportedImageError("source is not an image (accepted: JPEG, PNG, WebP, GIF, AVIF)") from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"source refused as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise CorruptImageError(f"source image header is damaged: {exc}") from None
    w, h = image.size
    if w < 1 or h < 1:
        raise CorruptImageError(f"source image header gives an empty size {w}x{h}")
    if w * h > limits.max_pixels:
        raise ImageTooLargeError(
            f"source is {w}x{h} = {w * h / 1e6:.1f} MP, over the cap of {limits.max_pixels / 1e6:g} MP"
            " (read from its header; nothing was decoded)"
        )
    frames = _frames(image)
    if frames > limits.max_frames:
        raise ImageTooLargeError(f"source has {frames} frames, over the cap of {limits.max_frames}")
    return image


def _frames(image: Image.Image) -> int:
    try:
        return int(getattr(image, "n_frames", 1))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # GIF counts frames by walking them
        raise CorruptImageError(f"source image frames are damaged: {exc}") from None
