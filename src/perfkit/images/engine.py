"""The Pillow engine: decode within the limits, orient, cut and scale, blur, encode without metadata.

Everything here is synchronous and runs in the processing pool. A JPEG is decoded at the smallest
DCT scale (1/2, 1/4, 1/8) that still covers the output (`draft`), which is most of the speed on large
photos; the rest is one Lanczos resize of the needed region (`reducing_gap=2.0`, as Pillow's
`thumbnail()`: a large reduction is first done by an integer box filter, then finished by Lanczos).
EXIF orientation is applied; EXIF, XMP and comments are dropped (only the ICC profile stays: without
it colours shift); JPEGs are progressive; animations give their first frame.
"""

from __future__ import annotations

import base64
import io
import math
import struct
from dataclasses import dataclass

from perfkit.images import thumbhash
from perfkit.images.config import DEFAULT_QUALITY, Limits
from perfkit.images.errors import CorruptImageError, UnsupportedImageError
from perfkit.images.geometry import Plan, plan
from perfkit.images.negotiate import source_format
from perfkit.images.options import Options
from perfkit.images.pillow import Image, ImageFilter, ImageOps, features
from perfkit.images.probe import open_checked

__all__ = ["LQIP_WIDTH", "Placeholder", "Rendered", "avif_available", "placeholder", "render"]

LQIP_WIDTH = 32  # the low-quality preview's width: one fixed size, so it is no new cache entry per ask
_LQIP_QUALITY = 30
_LQIP_BLUR = 2
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, ZeroDivisionError)


@dataclass(frozen=True)
class Rendered:
    body: bytes
    format: str  # avif, webp, jpeg or png
    width: int
    height: int


@dataclass(frozen=True)
class Placeholder:
    """A source's ThumbHash, its (oriented) size, and the hash rendered as a tiny PNG data URI."""

    thumbhash: str  # base64 of the hash
    width: int
    height: int
    data_uri: str


def avif_available() -> bool:
    """Whether this Pillow encodes AVIF (its wheels do from 11.3)."""
    return bool(features.check("avif"))


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


@dataclass
class _Decoded:
    image: Image.Image  # the first frame, oriented, RGB or RGBA
    alpha: bool
    plan: Plan  # for the options, computed on the source's full oriented size
    size: tuple[int, int]  # that size
    format: str  # the source's format (JPEG, PNG, ...)


def _decode(data: bytes, limits: Limits, options: Options) -> _Decoded:
    image = open_checked(data, limits)
    source = str(image.format)
    w, h = image.size
    # a JPEG's EXIF is in its header; other formats may keep it after the pixels (PNG's eXIf chunk),
    # where reading it decodes the image: there, orientation is read after `load()`, which reports damage
    jpeg = source == "JPEG"
    orientation = _orientation(image) if jpeg else 1
    if jpeg:  # decode at the smallest DCT scale still covering the output
        size = (h, w) if orientation in _ROTATED else (w, h)
        p = plan(size[0], size[1], options, LQIP_WIDTH)
        scale = max(p.width / ((p.box[2] - p.box[0]) * size[0]), p.height / ((p.box[3] - p.box[1]) * size[1]))
        if scale < 1:
            image.draft(None, (math.ceil(w * scale), math.ceil(h * scale)))
    try:
        image.load()
        if not jpeg:
            orientation = _orientation(image)
        alpha = _has_alpha(image)
        image = ImageOps.exif_transpose(image) if orientation != 1 else image
        mode = "RGBA" if alpha else "RGB"
        if image.mode != mode:  # convert() copies even to the same mode: 75 MB on a 5000 x 5000 RGB
            image = image.convert(mode)
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(f"source image cannot be decoded (truncated or damaged): {exc}") from None
    size = (h, w) if orientation in _ROTATED else (w, h)
    return _Decoded(image, alpha, plan(size[0], size[1], options, LQIP_WIDTH), size, source)


def render(data: bytes, options: Options, fmt: str, limits: Limits) -> Rendered:
    """`data` processed as `options` ask, encoded as `fmt`."""
    if fmt == "avif" and not avif_available():
        raise UnsupportedImageError("f=avif: this server's Pillow cannot encode AVIF (Pillow >= 11.3 can)")
    decoded = _decode(data, limits, options)
    image, alpha, p = decoded.image, decoded.alpha, decoded.plan
    if fmt == "source":
        fmt = source_format(decoded.format, alpha)
    w, h = image.size  # smaller than the source's when the JPEG was drafted: the box is in fractions
    left, top, right, bottom = p.box
    box = (left * w, top * h, right * w, bottom * h)
    if (p.width, p.height) != (w, h) or box != (0, 0, w, h):
        image = image.resize((p.width, p.height), Image.Resampling.LANCZOS, box=box, reducing_gap=2.0)
    blur = _LQIP_BLUR if options.lqip else options.blur
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    quality = _LQIP_QUALITY if options.lqip else options.q or DEFAULT_QUALITY[fmt]
    return Rendered(_encode(image, fmt, quality, alpha), fmt, p.width, p.height)


def _encode(image: Image.Image, fmt: str, quality: int, alpha: bool) -> bytes:
    icc = image.info.get("icc_profile")
    image.info = {}  # EXIF, XMP, comments, text chunks: none of it reaches the output
    extra = {"icc_profile": icc} if icc else {}
    out = io.BytesIO()
    if fmt == "jpeg":
        if alpha:  # JPEG has no alpha: flatten onto white
            flat = Image.new("RGB", image.size, (255, 255, 255))
            flat.paste(image, mask=image.getchannel("A"))
            image = flat
        image.save(out, "JPEG", quality=quality, progressive=True, optimize=True, **extra)
    elif fmt == "webp":
        image.save(out, "WEBP", quality=quality, method=4, **extra)
    elif fmt == "avif":
        image.save(out, "AVIF", quality=quality, speed=8, **extra)
    else:
        image.save(out, "PNG", compress_level=6, **extra)
    return out.getvalue()


def placeholder(data: bytes, limits: Limits) -> Placeholder:
    """The ThumbHash of `data` (from a 32 x 32 thumbnail) and the data URI of the picture it decodes to."""
    decoded = _decode(data, limits, Options(lqip=True))  # drafted down to ~32 px when a JPEG
    small, size = decoded.image, decoded.size
    small.thumbnail((32, 32), Image.Resampling.BOX)
    small = small.convert("RGBA")
    hashed = thumbhash.encode(small.width, small.height, small.tobytes())
    pw, ph, rgba = thumbhash.decode(hashed)
    out = io.BytesIO()
    Image.frombytes("RGBA", (pw, ph), rgba).save(out, "PNG", optimize=True)
    uri = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
    return Placeholder(base64.b64encode(hashed).decode(), size[0], size[1], uri)
