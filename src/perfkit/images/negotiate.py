"""The output format: the one a URL names, or (`f=auto`) AVIF, then WebP, then the source's, from Accept.

`f=auto` answers vary with the request's Accept header, so they carry `Vary: Accept`; a URL that names
its format (as `<picture>`'s `<source type=...>` entries do) is the same for everyone and carries none.
A source format with no place on the web (a GIF's first frame, an AVIF a browser does not accept) falls
back to PNG when the image has transparency, JPEG otherwise.
"""

from __future__ import annotations

__all__ = ["CONTENT_TYPES", "accepted", "choose_format", "source_format"]

CONTENT_TYPES = {"avif": "image/avif", "webp": "image/webp", "jpeg": "image/jpeg", "png": "image/png"}
_SOURCE = {"JPEG": "jpeg", "PNG": "png"}


def accepted(accept: str) -> set[str]:
    """The image media types `accept` admits with a non-zero q (`image/*` and `*/*` are not
    counted: browsers send them for every image, and they do not promise AVIF or WebP)."""
    found = set()
    for item in accept.split(",")[:32]:
        media, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            found.add(media.strip().lower())
    return found


def choose_format(requested: str, accept: str, avif: bool) -> str:
    """The format to encode: `requested` unless it is `auto`; then AVIF or WebP when `accept` admits
    them, else `source` (resolved by `source_format` once the image is open)."""
    if requested != "auto":
        return requested
    types = accepted(accept)
    if avif and "image/avif" in types:
        return "avif"
    if "image/webp" in types:
        return "webp"
    return "source"


def source_format(image_format: str | None, alpha: bool) -> str:
    """What `source` means for an image decoded from `image_format`: itself when it is JPEG or PNG,
    else PNG when it has transparency, JPEG otherwise."""
    native = _SOURCE.get(image_format or "")
    if native is not None:
        return native
    return "png" if alpha else "jpeg"
