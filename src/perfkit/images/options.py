"""The processing options of one image URL: `w=640,q=75,fit=cover` parsed strictly, and written back.

Every key is known and given once, every value is checked against the policy (widths and heights from
an allow-list, a bounded quality, DPR and blur): an arbitrary size is a denial-of-service vector (each
one a new decode and a new cache entry), so it is refused, never rounded. `Options.canonical()` is the
one spelling of a set of options, used in signed URLs and cache keys alike.

    w=640        width in CSS pixels (from the allow-list); the output is w x dpr pixels wide
    h=480        height in CSS pixels (from the allow-list)
    fit=cover    cover (fill w x h, crop the excess around the focal point), contain (fit inside,
                 the default), crop (cut w x h at the focal point without scaling)
    fp=0.5:0.3   focal point, as fractions of the width and height (default the centre)
    q=75         quality 1-100 (default: the service's)
    dpr=2        device pixel ratio, from the allow-list (default 1)
    f=webp       output format: auto (negotiated from Accept, the default), avif, webp, jpeg, png
    blur=8       Gaussian blur radius 1-50 (a blurred variant)
    lqip=1       the low-quality blurred preview (a fixed small width): the blur-to-sharp first paint
    v=1a2b3c     the source version the URL was made for (cache busting; set by `ImageService.url`)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from perfkit.images.errors import BadOptionsError

__all__ = ["FITS", "FORMATS", "Options", "Policy"]

FITS = ("contain", "cover", "crop")
FORMATS = ("auto", "avif", "webp", "jpeg", "png")
EMPTY = "-"  # the options segment of a URL with no options
_INT = re.compile(r"[1-9][0-9]{0,4}")
_FRACTION = re.compile(r"0(\.[0-9]{1,3})?|1(\.0{1,3})?")
_DPR = re.compile(r"[1-9](\.[0-9]{1,2})?")
_VERSION = re.compile(r"[0-9a-z]{1,32}")
_ORDER = ("w", "h", "fit", "fp", "q", "dpr", "f", "blur", "lqip", "v")


@dataclass(frozen=True)
class Policy:
    """What a URL may ask for: the allow-lists of widths, heights and DPRs, and the bounds."""

    widths: tuple[int, ...] = (160, 320, 480, 640, 768, 960, 1280, 1600, 1920)
    heights: tuple[int, ...] = (160, 320, 480, 640, 768, 960, 1280, 1600, 1920)
    dprs: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)
    max_blur: int = 50

    def __post_init__(self) -> None:
        for name in ("widths", "heights"):
            values = getattr(self, name)
            if not values or any(not isinstance(v, int) or isinstance(v, bool) or not 0 < v <= 8192
                                 for v in values):  # fmt: skip
                raise BadOptionsError(f"{name}: a non-empty list of integers from 1 to 8192, not {values!r}")
        if not self.dprs or any(not 1 <= d <= 4 for d in self.dprs):
            raise BadOptionsError(f"dprs: a non-empty list of numbers from 1 to 4, not {self.dprs!r}")


@dataclass(frozen=True)
class Options:
    """One image's processing options (see the module docstring for each key)."""

    w: int | None = None
    h: int | None = None
    fit: str = "contain"
    fp: tuple[float, float] | None = None
    q: int | None = None
    dpr: float = 1.0
    f: str = "auto"
    blur: int = 0
    lqip: bool = False
    v: str | None = None

    @classmethod
    def parse(cls, text: str, policy: Policy) -> Options:
        """The options a URL segment spells, checked against `policy`; BadOptionsError names the problem."""
        if text == EMPTY:
            return cls()
        if len(text) > 200:
            raise BadOptionsError("options: longer than 200 characters")
        values: dict[str, str] = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            if not sep or not value:
                raise BadOptionsError(f"options: {item!r} is not name=value")
            if key not in _ORDER:
                raise BadOptionsError(f"unknown parameter {key!r} (known: {', '.join(_ORDER)})")
            if key in values:
                raise BadOptionsError(f"parameter {key!r} given twice")
            values[key] = value
        return cls.build(policy, **{k: _convert(k, v) for k, v in values.items()})

    @classmethod
    def build(cls, policy: Policy, **given: object) -> Options:
        """Options from keyword values (as `ImageService.url` takes them), checked against `policy`."""
        unknown = sorted(set(given) - set(_ORDER))
        if unknown:
            raise BadOptionsError(f"unknown parameter {unknown[0]!r} (known: {', '.join(_ORDER)})")
        options = cls(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]
        options.check(policy)
        return options

    def check(self, policy: Policy) -> None:
        if self.w is not None and self.w not in policy.widths:
            raise BadOptionsError(f"w={self.w} is not an allowed width (allowed: {_list(policy.widths)})")
        if self.h is not None and self.h not in policy.heights:
            raise BadOptionsError(f"h={self.h} is not an allowed height (allowed: {_list(policy.heights)})")
        if self.fit not in FITS:
            raise BadOptionsError(f"fit={self.fit!r}: one of {', '.join(FITS)}")
        if self.fit in ("cover", "crop") and (self.w is None or self.h is None):
            raise BadOptionsError(f"fit={self.fit} needs both w and h")
        if self.fp is not None and not all(0.0 <= c <= 1.0 for c in self.fp):
            raise BadOptionsError(f"fp={self.fp!r}: two fractions from 0 to 1")
        if self.q is not None and not 1 <= self.q <= 100:
            raise BadOptionsError(f"q={self.q}: from 1 to 100")
        if self.dpr not in policy.dprs:
            raise BadOptionsError(f"dpr={self.dpr:g} is not allowed (allowed: {_list(policy.dprs)})")
        if self.f not in FORMATS:
            raise BadOptionsError(f"f={self.f!r}: one of {', '.join(FORMATS)}")
        if not 0 <= self.blur <= policy.max_blur:
            raise BadOptionsError(f"blur={self.blur}: from 1 to {policy.max_blur}")
        if self.v is not None and not _VERSION.fullmatch(self.v):
            raise BadOptionsError(f"v={self.v!r}: up to 32 lower-case letters and digits")

    def canonical(self) -> str:
        """The one spelling of these options (`-` when there are none), keys in a fixed order."""
        parts = []
        for key in _ORDER:
            value = getattr(self, key)
            if value == getattr(_DEFAULT, key):
                continue
            if key == "fp":
                value = f"{value[0]:g}:{value[1]:g}"
            elif key == "dpr":
                value = f"{value:g}"
            elif key == "lqip":
                value = "1"
            parts.append(f"{key}={value}")
        return ",".join(parts) or EMPTY

    def without_version(self) -> Options:
        """The same options less `v` (what the result depends on: the cache key uses the real version)."""
        return replace(self, v=None)

    def pixel_size(self) -> tuple[int | None, int | None]:
        """The requested box in device pixels (CSS pixels times the DPR)."""
        w = round(self.w * self.dpr) if self.w is not None else None
        h = round(self.h * self.dpr) if self.h is not None else None
        return w, h


_DEFAULT = Options()


def _list(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _convert(key: str, value: str) -> object:  # one branch per key, each a one-liner
    if key in ("w", "h", "q", "blur"):
        if not _INT.fullmatch(value):
            raise BadOptionsError(f"{key}={value!r}: a positive whole number")
        return int(value)
    if key == "fit" or key == "f":
        return value
    if key == "fp":
        x, sep, y = value.partition(":")
        if not sep or not _FRACTION.fullmatch(x) or not _FRACTION.fullmatch(y):
            raise BadOptionsError(f"fp={value!r}: x:y, two fractions from 0 to 1 (fp=0.5:0.3)")
        return (float(x), float(y))
    if key == "dpr":
        if not _DPR.fullmatch(value):
            raise BadOptionsError(f"dpr={value!r}: a number such as 1, 1.5 or 2")
        return float(value)
    if key == "lqip":
        if value != "1":
            raise BadOptionsError(f"lqip={value!r}: only lqip=1")
        return True
    if key == "v":
        return value
    raise BadOptionsError(f"unknown parameter {key!r}")  # pragma: no cover  # parse checked the key
