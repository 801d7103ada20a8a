"""Fixtures of the image tests: source files made here (no binary fixtures), services, an ASGI client."""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.routing import Mount

from perfkit import Cache
from perfkit.images import ImageService
from tests.conftest import REDIS_URL, require_redis

KEYS = ["k2-new-key-0123456789", "k1-old-key-0123456789"]  # the first signs, both verify


def photo(size: tuple[int, int] = (1200, 800), mode: str = "RGB") -> Image.Image:
    """A picture with structure: left half red, right half blue, a green square top-left."""
    w, h = size
    image = Image.new(mode, size, (200, 30, 30, 255)[: len(mode)])
    image.paste((30, 30, 200, 255)[: len(mode)], (w // 2, 0, w, h))
    image.paste((30, 200, 30, 255)[: len(mode)], (0, 0, w // 8, h // 8))
    return image


def texture(size: tuple[int, int] = (1000, 700)) -> Image.Image:
    """A picture with detail everywhere (fractal plus noise), where quality and format show in bytes."""
    fractal = Image.effect_mandelbrot(size, (-2.0, -1.2, 1.0, 1.2), 80)
    return Image.merge(
        "RGB", (fractal, Image.effect_noise(size, 30), Image.linear_gradient("L").resize(size))
    )


def encoded(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def exif_jpeg(orientation: int = 6) -> bytes:
    """A 1200x800 JPEG stored sideways with EXIF orientation `orientation` and a GPS position."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "perfkit-test-camera"  # Make
    gps = exif.get_ifd(0x8825)
    gps[2] = (48.0, 51.0, 24.0)  # GPSLatitude
    return encoded(photo((800, 1200)), "JPEG", exif=exif.tobytes(), quality=90)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def corrupt_png() -> bytes:
    """A PNG whose compressed pixel data is scrambled (its header is intact)."""
    data = encoded(photo((300, 200)), "PNG")
    at = data.index(b"IDAT") + 6
    return data[:at] + bytes(b ^ 0x5A for b in data[at : at + 34]) + data[at + 34 :]


def bomb_png(width: int = 12000, height: int = 5000) -> bytes:
    """A PNG whose header claims width x height but whose data is garbage: decoding it would fail, so a
    413 (not a 422) shows the header alone was read."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"junk")
        + png_chunk(b"IEND", b"")
    )


def animated_gif(frames: int) -> bytes:
    images = [Image.new("RGB", (16, 16), (i * 3 % 256, 0, 0)) for i in range(frames)]
    return encoded(images[0], "GIF", save_all=True, append_images=images[1:], duration=20, loop=0)


@pytest.fixture(scope="module")
def uploads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of sources: good images, and every kind of bad input."""
    root = tmp_path_factory.mktemp("uploads")
    (root / "products").mkdir()
    jpeg = encoded(photo(), "JPEG", quality=90)
    files = {
        "products/42.jpg": jpeg,
        "rotated.jpg": exif_jpeg(),
        "alpha.png": encoded(_alpha(), "PNG"),
        "anim.gif": animated_gif(5),
        "texture.jpg": encoded(texture(), "JPEG", quality=90),
        "long.gif": animated_gif(80),
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "corrupt.png": corrupt_png(),
        "notimage.jpg": b"<html>this is not an image</html>" * 10,
        "image.bmp": encoded(photo((64, 64)), "BMP"),
        "bomb.png": bomb_png(),  # 60 MP: over perfkit's cap, under Pillow's
        "hugebomb.png": bomb_png(20000, 20000),  # 400 MP: Pillow's own bomb check refuses it first
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def _alpha() -> Image.Image:
    image = photo((600, 400), "RGBA")
    image.putalpha(128)
    return image


@pytest.fixture
async def memory_cache() -> AsyncIterator[Cache]:
    cache = Cache("memory://", namespace=f"img{uuid.uuid4().hex[:10]}")
    yield cache
    await cache.close()


@pytest.fixture
async def redis_cache() -> AsyncIterator[Cache]:
    """A cache on the real Redis, in a namespace of this test's own (cleared afterwards)."""
    require_redis()
    cache = Cache(REDIS_URL, namespace=f"img{uuid.uuid4().hex[:10]}")
    yield cache
    await cache.clear()
    await cache.close()


ServiceFactory = Callable[..., ImageService]


@pytest.fixture
async def make_service(uploads: Path, memory_cache: Cache) -> AsyncIterator[ServiceFactory]:
    made: list[ImageService] = []

    def make(**options: Any) -> ImageService:
        options.setdefault("cache", memory_cache)
        options.setdefault("keys", KEYS)
        service = ImageService(options.pop("sources", [uploads]), **options)
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()


@pytest.fixture
async def service(make_service: ServiceFactory) -> ImageService:
    return make_service()


def client_for(service: ImageService) -> httpx.AsyncClient:
    """A client of a Starlette app with `service` mounted at /img, as the docs mount it."""
    app = Starlette(routes=[Mount("/img", app=service)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def client(service: ImageService) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(service) as c:
        yield c


def opened(response: httpx.Response) -> Image.Image:
    """The response body as an image (asserting it is one)."""
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))
