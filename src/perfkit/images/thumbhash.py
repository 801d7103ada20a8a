"""ThumbHash (Evan Wallace's placeholder format, public domain): an image in ~25 bytes, and back.

Chosen over BlurHash because the hash carries the aspect ratio and transparency, keeps more detail in
fewer bytes, and needs no component counts to be picked per image. Written here from the published
algorithm: the PyPI encoders are unmaintained (thumbhash-python, 2023) or a few weeks old
(thumbhash-rs), and it is ~120 lines that run once per source on a 32 x 32 thumbnail.

The encoding is a DCT of the image in an L (luminance), P (yellow-blue), Q (red-green) and A (alpha)
colour space; the DC terms and the scales go in a 5-byte header (6 with alpha), each AC term in 4 bits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["decode", "encode"]


def _round(x: float) -> int:
    return math.floor(x + 0.5)  # JavaScript's Math.round, as the reference encoder rounds


def _encode_channel(
    channel: Sequence[float], w: int, h: int, nx: int, ny: int
) -> tuple[float, list[float], float]:
    dc, ac, scale = 0.0, [], 0.0
    for cy in range(ny):
        fy = [math.cos(math.pi / h * cy * (y + 0.5)) for y in range(h)]
        cx = 0
        while cx * ny < nx * (ny - cy):
            fx = [math.cos(math.pi / w * cx * (x + 0.5)) for x in range(w)]
            f = 0.0
            for y in range(h):
                row = y * w
                f += fy[y] * sum(channel[row + x] * fx[x] for x in range(w))
            f /= w * h
            if cx or cy:
                ac.append(f)
                scale = max(scale, abs(f))
            else:
                dc = f
            cx += 1
    if scale:
        ac = [0.5 + 0.5 / scale * f for f in ac]
    return dc, ac, scale


def encode(w: int, h: int, rgba: bytes) -> bytes:
    """The ThumbHash of a `w` x `h` RGBA image (at most 100 x 100; 32 x 32 is plenty)."""
    if not (0 < w <= 100 and 0 < h <= 100) or len(rgba) != w * h * 4:
        raise ValueError(f"thumbhash.encode: a {w}x{h} RGBA image of at most 100x100 pixels")
    n = w * h
    avg_r = avg_g = avg_b = avg_a = 0.0
    for i in range(0, n * 4, 4):
        alpha = rgba[i + 3] / 255
        avg_r += alpha / 255 * rgba[i]
        avg_g += alpha / 255 * rgba[i + 1]
        avg_b += alpha / 255 * rgba[i + 2]
        avg_a += alpha
    if avg_a:
        avg_r, avg_g, avg_b = avg_r / avg_a, avg_g / avg_a, avg_b / avg_a
    has_alpha = avg_a < n
    l_limit = 5 if has_alpha else 7
    lx = max(1, _round(l_limit * w / max(w, h)))
    ly = max(1, _round(l_limit * h / max(w, h)))
    lum, p, q, a = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
    for i in range(n):
        j = i * 4
        alpha = rgba[j + 3] / 255
        r = avg_r * (1 - alpha) + alpha / 255 * rgba[j]
        g = avg_g * (1 - alpha) + alpha / 255 * rgba[j + 1]
        b = avg_b * (1 - alpha) + alpha / 255 * rgba[j + 2]
        lum[i], p[i], q[i], a[i] = (r + g + b) / 3, (r + g) / 2 - b, r - g, alpha
    l_dc, l_ac, l_scale = _encode_channel(lum, w, h, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = _encode_channel(p, w, h, 3, 3)
    q_dc, q_ac, q_scale = _encode_channel(q, w, h, 3, 3)
    a_dc, a_ac, a_scale = _encode_channel(a, w, h, 5, 5) if has_alpha else (1.0, [], 0.0)
    landscape = w > h
    header24 = (_round(63 * l_dc) | (_round(31.5 + 31.5 * p_dc) << 6) | (_round(31.5 + 31.5 * q_dc) << 12)
                | (_round(31 * l_scale) << 18) | (int(has_alpha) << 23))  # fmt: skip
    header16 = ((ly if landscape else lx) | (_round(63 * p_scale) << 3) | (_round(63 * q_scale) << 9)
                | (int(landscape) << 15))  # fmt: skip
    out = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    if has_alpha:
        out.append(_round(15 * a_dc) | (_round(15 * a_scale) << 4))
    factors = [*l_ac, *p_ac, *q_ac, *a_ac]
    start = len(out)
    out += [0] * ((len(factors) + 1) // 2)
    for index, f in enumerate(factors):
        out[start + (index >> 1)] |= _round(15 * f) << ((index & 1) << 2)
    return bytes(out)


def _aspect(hash_: bytes) -> float:
    has_alpha, landscape = hash_[2] & 0x80, hash_[4] & 0x80
    lx = (5 if has_alpha else 7) if landscape else hash_[3] & 7
    ly = hash_[3] & 7 if landscape else (5 if has_alpha else 7)
    return lx / ly


def decode(hash_: bytes) -> tuple[int, int, bytes]:  # the reference decoder's loops, as one
    """The placeholder a ThumbHash stands for: (width, height, RGBA bytes), at most 32 pixels a side."""
    if len(hash_) < 5:
        raise ValueError("thumbhash.decode: a ThumbHash has at least 5 bytes")
    header24 = hash_[0] | (hash_[1] << 8) | (hash_[2] << 16)
    header16 = hash_[3] | (hash_[4] << 8)
    l_dc = (header24 & 63) / 63
    p_dc = ((header24 >> 6) & 63) / 31.5 - 1
    q_dc = ((header24 >> 12) & 63) / 31.5 - 1
    l_scale = ((header24 >> 18) & 31) / 31
    has_alpha = bool(header24 >> 23)
    p_scale = ((header16 >> 3) & 63) / 63
    q_scale = ((header16 >> 9) & 63) / 63
    landscape = bool(header16 >> 15)
    lx = max(3, (5 if has_alpha else 7) if landscape else header16 & 7)
    ly = max(3, header16 & 7 if landscape else (5 if has_alpha else 7))
    a_dc = (hash_[5] & 15) / 15 if has_alpha else 1.0
    a_scale = (hash_[5] >> 4) / 15 if has_alpha else 0.0
    start = 6 if has_alpha else 5
    index = 0

    def channel(nx: int, ny: int, scale: float) -> list[float]:
        nonlocal index
        ac = []
        for cy in range(ny):
            cx = 0 if cy else 1
            while cx * ny < nx * (ny - cy):
                pos = start + (index >> 1)
                nibble = (hash_[pos] >> ((index & 1) << 2)) & 15 if pos < len(hash_) else 0
                ac.append((nibble / 7.5 - 1) * scale)
                index += 1
                cx += 1
        return ac

    l_ac = channel(lx, ly, l_scale)
    p_ac = channel(3, 3, p_scale * 1.25)  # the reference boosts saturation 1.25x against quantization
    q_ac = channel(3, 3, q_scale * 1.25)
    a_ac = channel(5, 5, a_scale) if has_alpha else []
    ratio = _aspect(hash_)
    w = _round(32 if ratio > 1 else 32 * ratio)
    h = _round(32 / ratio if ratio > 1 else 32)
    out = bytearray(w * h * 4)
    nx, ny = max(lx, 5 if has_alpha else 3), max(ly, 5 if has_alpha else 3)
    i = 0
    for y in range(h):
        fy = [math.cos(math.pi / h * (y + 0.5) * cy) for cy in range(ny)]
        for x in range(w):
            fx = [math.cos(math.pi / w * (x + 0.5) * cx) for cx in range(nx)]
            lum, p, q, a = l_dc, p_dc, q_dc, a_dc
            j = 0
            for cy in range(ly):
                cx = 0 if cy else 1
                while cx * ly < lx * (ly - cy):
                    lum += l_ac[j] * fx[cx] * fy[cy] * 2
                    j += 1
                    cx += 1
            j = 0
            for cy in range(3):
                for cx in range(0 if cy else 1, 3 - cy):
                    f = fx[cx] * fy[cy] * 2
                    p += p_ac[j] * f
                    q += q_ac[j] * f
                    j += 1
            if has_alpha:
                j = 0
                for cy in range(5):
                    for cx in range(0 if cy else 1, 5 - cy):
                        a += a_ac[j] * fx[cx] * fy[cy] * 2
                        j += 1
            b = lum - 2 / 3 * p
            r = (3 * lum - b + q) / 2
            g = r - q
            out[i : i + 4] = bytes(max(0, min(255, _round(255 * min(1.0, c)))) for c in (r, g, b, a))
            i += 4
    return w, h, bytes(out)
