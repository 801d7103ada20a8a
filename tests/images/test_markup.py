"""Placeholders and the template helpers: srcset, <img>, <picture>, the preload Link, the Jinja2 global."""

from __future__ import annotations

import base64
import io
import random
import re

import httpx
import jinja2
import pytest
from PIL import Image

from perfkit.images import BadOptionsError, ImageService, Options, Policy, install_jinja, thumbhash
from perfkit.images.signing import Signer
from tests.images.conftest import opened


async def test_placeholder_is_computed_once_per_source(service: ImageService) -> None:
    """The ThumbHash, the oriented size and a tiny PNG data URI; a second ask is a cache hit."""
    first = await service.placeholder("rotated.jpg")
    second = await service.placeholder("rotated.jpg")
    assert first == second and service.stats().placeholders == 1
    assert (first.width, first.height) == (1200, 800)  # EXIF orientation applied
    assert 5 <= len(base64.b64decode(first.thumbhash)) <= 30
    assert first.data_uri.startswith("data:image/png;base64,") and len(first.data_uri) < 2500
    upright = await service.placeholder("products/42.jpg")
    preview = Image.open(io.BytesIO(base64.b64decode(upright.data_uri.split(",", 1)[1])))
    assert preview.width == 32 and 18 <= preview.height <= 24  # the 3:2 aspect ratio, upright
    left, right = preview.convert("RGB").getpixel((4, 12)), preview.convert("RGB").getpixel((28, 12))
    assert left[0] > left[2] and right[2] > right[0]  # red on the left, blue on the right, as the photo


async def test_srcset_and_picture_markup(service: ImageService, client: httpx.AsyncClient) -> None:
    """<picture> has AVIF and WebP sources over the allowed widths up to the source's, then an <img>
    with width/height (no layout shift), lazy loading, async decoding and the placeholder; each URL works."""
    ph = await service.placeholder("products/42.jpg")
    html = service.picture("products/42.jpg", "A red and blue thing", placeholder=ph, sizes="50vw")
    assert html.startswith('<picture><source type="image/avif" srcset="/img/')
    assert '<source type="image/webp"' in html and html.endswith("</picture>")
    assert 'width="960" height="640"' in html  # the widest allowed width under 1200, at 3:2
    assert 'loading="lazy" decoding="async"' in html and 'sizes="50vw"' in html
    assert "fetchpriority" not in html and "background-image:url(data:image/png;base64," in html
    widths = re.findall(r" (\d+)w", html.split("<img")[0])
    assert set(widths) == {"160", "320", "480", "640", "768", "960"}
    url = re.search(r'srcset="(\S+) 160w', html).group(1)  # type: ignore[union-attr]
    assert opened(await client.get(url.replace("&amp;", "&"))).format == "AVIF"


async def test_the_lcp_image_is_eager_high_priority_and_preloaded(service: ImageService) -> None:
    """priority=True: a plain <img> (format negotiated), eager with fetchpriority=high, and a preload Link
    carrying the same srcset and sizes."""
    html = service.picture("products/42.jpg", "Hero", priority=True, widths=[640, 1280], sizes="100vw")
    assert html.startswith("<img ") and "<source" not in html
    assert 'loading="eager"' in html and 'fetchpriority="high"' in html
    link = service.preload("products/42.jpg", widths=[640, 1280], sizes="100vw")
    srcset = re.search(r'srcset="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    assert link.startswith("</img/") and "rel=preload; as=image" in link and "fetchpriority=high" in link
    assert f'imagesrcset="{srcset}"' in link and 'imagesizes="100vw"' in link


def test_arbitrary_widths_are_refused(service: ImageService) -> None:
    """srcset widths outside the allow-list are refused, as the endpoint would refuse them."""
    with pytest.raises(BadOptionsError, match="not allowed"):
        service.srcset("products/42.jpg", widths=[640, 777])
    with pytest.raises(BadOptionsError, match="w=777 is not an allowed width"):
        service.url("products/42.jpg", w=777)


async def test_lqip_layers_over_the_placeholder(service: ImageService) -> None:
    """lqip=True puts the blurred low-quality variant over the ThumbHash: the blur-to-sharp chain."""
    ph = await service.placeholder("products/42.jpg")
    html = service.img("products/42.jpg", "x", placeholder=ph, lqip=True)
    assert re.search(r"background-image:url\(/img/[^)]+lqip=1[^)]*\),url\(data:image/png", html)


async def test_jinja_global(service: ImageService) -> None:
    """`install_jinja` makes the helpers a global; markup is not escaped by autoescape, text is."""
    env = jinja2.Environment(autoescape=True)
    install_jinja(env, service)
    out = env.from_string(
        '{{ images.picture("products/42.jpg", alt) }}|{{ images.url("a.jpg", w=320) }}'
    ).render(alt='<"quoted">')
    assert out.startswith("<picture><source") and "&lt;&quot;quoted&quot;&gt;" in out  # escaped once
    assert out.endswith("/a.jpg") and "w=320" in out


def test_options_round_trip_and_signing_is_over_the_canonical_form() -> None:
    """Options parse and print back in one canonical order; a signature covers options and path."""
    policy = Policy()
    options = Options.parse("q=70,w=640,fit=cover,h=480,fp=0.25:0.5,dpr=2,f=webp,blur=3", policy)
    assert options.canonical() == "w=640,h=480,fit=cover,fp=0.25:0.5,q=70,dpr=2,f=webp,blur=3"
    assert Options.parse(options.canonical(), policy) == options
    signer = Signer(["a-key-of-16-bytes!"])
    assert signer.sign("w=640/a.jpg") != signer.sign("w=640/b.jpg")
    assert len(signer.sign("w=640/a.jpg")) == 43


def _image(w: int, h: int, alpha: bool, seed: int) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGBA", (w, h))
    for x in range(w):
        for y in range(h):
            image.putpixel(
                (x, y), (rng.randrange(256), x * 9 % 256, y * 7 % 256, rng.randrange(256) if alpha else 255)
            )
    return image.tobytes()


# computed by an independent implementation (the thumbhash-python package, 1.0.1) on the same pixels
VECTORS = [
    ((32, 24, False), "1a190a4d90304a5b8278788887677878548ff89d88"),
    ((20, 32, False), "da570a5c12820777787877787877847ff77877"),
    ((32, 32, True), "5d1886350a0842497087877878548ff77c87fc753571a4694c"),
    ((17, 9, True), "537a820b8a077098736657717ff88778b561cfd685c9b6"),
    ((100, 3, False), "951b06098457560787888777049fa9afa9"),
]


@pytest.mark.parametrize(("seed", "shape", "expected"), [(i, *v) for i, v in enumerate(VECTORS)])
def test_thumbhash_matches_an_independent_encoder(
    seed: int, shape: tuple[int, int, bool], expected: str
) -> None:
    """The encoder gives byte for byte the hash another implementation of the algorithm gives, and the
    decoder gives back the average colour and the aspect ratio."""
    w, h, alpha = shape
    hashed = thumbhash.encode(w, h, _image(w, h, alpha, seed))
    assert hashed.hex() == expected
    pw, ph, rgba = thumbhash.decode(hashed)
    assert len(rgba) == pw * ph * 4 and max(pw, ph) == 32
    assert (pw > ph) == (w > h)
