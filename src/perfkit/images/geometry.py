"""Where the output comes from and how big it is: the fits, the focal point, no upscaling.

Pure arithmetic on sizes, so that the engine (whatever library decodes) only cuts and scales. The crop
box is in fractions of the (oriented) source, so it holds at whatever scale the decoder delivered
(a JPEG decoded at 1/2, 1/4 or 1/8 of its size by `draft`).
"""

from __future__ import annotations

from dataclasses import dataclass

from perfkit.images.options import Options

__all__ = ["Plan", "plan"]


@dataclass(frozen=True)
class Plan:
    width: int  # output pixels
    height: int
    box: tuple[float, float, float, float]  # the region of the source used, as fractions (l, t, r, b)


def plan(src_w: int, src_h: int, options: Options, lqip_width: int = 32) -> Plan:
    """The output size and source region for `options` on a `src_w` x `src_h` (oriented) source."""
    tw, th = options.pixel_size()
    if options.lqip:
        tw, th = lqip_width, None
    if options.fit == "cover" and tw is not None and th is not None:
        return _cover(src_w, src_h, tw, th, options.fp or (0.5, 0.5))
    if options.fit == "crop" and tw is not None and th is not None:
        bw, bh = min(tw, src_w), min(th, src_h)
        return Plan(bw, bh, _window(src_w, src_h, bw, bh, options.fp or (0.5, 0.5)))
    s = min(1.0, tw / src_w if tw else 1.0, th / src_h if th else 1.0)
    return Plan(max(1, round(src_w * s)), max(1, round(src_h * s)), (0.0, 0.0, 1.0, 1.0))


def _cover(src_w: int, src_h: int, tw: int, th: int, fp: tuple[float, float]) -> Plan:
    s = max(tw / src_w, th / src_h)
    if s > 1.0:  # never upscale: the largest box of the asked aspect ratio the source holds
        tw, th = max(1, round(tw / s)), max(1, round(th / s))
        s = 1.0
    region_w, region_h = min(src_w, tw / s), min(src_h, th / s)
    return Plan(tw, th, _window(src_w, src_h, region_w, region_h, fp))


def _window(
    src_w: int, src_h: int, region_w: float, region_h: float, fp: tuple[float, float]
) -> tuple[float, float, float, float]:
    """A `region_w` x `region_h` window centred on the focal point, moved inside the source."""
    left = min(max(fp[0] * src_w - region_w / 2, 0.0), src_w - region_w)
    top = min(max(fp[1] * src_h - region_h / 2, 0.0), src_h - region_h)
    return (left / src_w, top / src_h, (left + region_w) / src_w, (top + region_h) / src_h)
