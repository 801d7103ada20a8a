"""The errors of the image endpoint, each a 4xx (or 503) with a reason the client can act on.

ImageError (an InvalidArgumentError)     status, reason
├── BadSignatureError        403  the URL's HMAC does not match any key (or is missing)
├── BadOptionsError          400  an unknown parameter, a bad value, a width not in the allow-list
├── SourceNotFoundError      404  no source holds the path (or it escapes its folder)
├── SourceRefusedError       403  a remote URL off the allow-list, or resolving to a refused address
├── SourceFetchError         502  the remote source failed (status, timeout, too many redirects)
├── ImageTooLargeError       413  over the byte, pixel or frame cap (read from the header, not decoded)
├── UnsupportedImageError    415  not an image, or a format the endpoint does not decode
├── CorruptImageError        422  the decoder failed: truncated or damaged data
└── BusyError                503  the processing pool is full, or the work ran past its timeout
"""

from __future__ import annotations

from perfkit.errors import InvalidArgumentError

__all__ = [
    "BadOptionsError",
    "BadSignatureError",
    "BusyError",
    "CorruptImageError",
    "ImageError",
    "ImageTooLargeError",
    "SourceFetchError",
    "SourceNotFoundError",
    "SourceRefusedError",
    "UnsupportedImageError",
]


class ImageError(InvalidArgumentError):
    """A request the image endpoint refuses; `status` is the HTTP status it answers with."""

    status = 400


class BadSignatureError(ImageError):
    status = 403


class BadOptionsError(ImageError):
    status = 400


class SourceNotFoundError(ImageError):
    status = 404


class SourceRefusedError(ImageError):
    status = 403


class SourceFetchError(ImageError):
    status = 502


class ImageTooLargeError(ImageError):
    status = 413


class UnsupportedImageError(ImageError):
    status = 415


class CorruptImageError(ImageError):
    status = 422


class BusyError(ImageError):
    status = 503
