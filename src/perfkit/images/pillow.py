"""Pillow, the images extra's one required library, imported in one place with the install hint."""

from __future__ import annotations

from perfkit.errors import MissingDependencyError

try:
    from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError, features
except ImportError as exc:  # pragma: no cover  # the images extra is not installed
    raise MissingDependencyError("perfkit.images", "Pillow", "images") from exc

__all__ = ["Image", "ImageFilter", "ImageOps", "UnidentifiedImageError", "features"]
