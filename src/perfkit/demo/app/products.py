"""The demo's product page: `/products`, its pictures served by `perfkit.images` at `/img`.

Each product image is a `<picture>` (AVIF, WebP, then the negotiated `<img>`) with a ThumbHash
placeholder painted at once, `srcset` over the allowed widths and lazy loading; the first one is the
page's LCP image: eager, `fetchpriority="high"` and preloaded by a `Link` header. The page reports its
real web vitals like /live does (`vitals.page_script()`: web-vitals from npm and perfkit's RUM snippet), so
the dashboard shows its LCP and which element it was. The pictures are drawn
by Pillow on first start (the demo ships no binary files) into a folder of the machine's temp dir; the
signing key is derived from the demo's monitoring token.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from html import escape
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from perfkit.cache import Cache
from perfkit.demo.app import vitals
from perfkit.images import ImageService

PRODUCTS = [("mug", "A mug", (180, 60, 40)), ("lamp", "A desk lamp", (40, 90, 170)),
            ("chair", "A chair", (60, 140, 70)), ("clock", "A wall clock", (150, 120, 40))]  # fmt: skip
FOLDER = Path(tempfile.gettempdir()) / "perfkit-demo-images"


def draw(folder: Path) -> None:
    """The product pictures (a colour, radially shaded), 1600 x 1200 JPEGs, written once (atomically:
    several processes may start)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, _, colour in PRODUCTS:
        path = folder / f"{name}.jpg"
        if path.exists():
            continue
        shade = Image.radial_gradient("L").resize((1600, 1200))
        picture = Image.merge("RGB", [shade.point(lambda v, c=c: 255 - (255 - c) * v // 255) for c in colour])
        partial = folder / f".{name}.{os.getpid()}.jpg"
        picture.save(partial, "JPEG", quality=88)
        partial.replace(path)


def add_products(app: FastAPI, cache: Cache, token: str, folder: Path = FOLDER) -> ImageService:
    """Mount the image endpoint at /img and add the `/products` page."""
    draw(folder)
    key = hashlib.sha256(f"perfkit-demo-images:{token}".encode()).hexdigest()
    images = ImageService(sources=[folder], cache=cache, keys=[key])
    app.mount("/img", images)

    @app.get("/products", name="products_page", response_class=HTMLResponse, include_in_schema=False)
    async def products_page() -> HTMLResponse:
        cards, preload = [], ""
        for i, (name, title, _) in enumerate(PRODUCTS):
            placeholder = await images.placeholder(f"{name}.jpg")
            sizes = "100vw" if i == 0 else "(min-width: 800px) 33vw, 100vw"
            markup = images.picture(
                f"{name}.jpg", title, placeholder=placeholder, sizes=sizes, priority=i == 0
            )
            cards.append(f"<figure>{markup}<figcaption>{escape(title)}</figcaption></figure>")
            if i == 0:
                preload = images.preload(f"{name}.jpg", placeholder=placeholder, sizes=sizes)
        page = ("<!doctype html><html lang=en><head><meta charset=utf-8><title>perfkit demo: products</title>"
                "<meta name=viewport content=\"width=device-width, initial-scale=1\">"
                "<style>img{max-width:100%;height:auto}figure{display:inline-block;max-width:32%}"
                "figure:first-of-type{display:block;max-width:100%}</style></head><body><h1>Products</h1>"
                f"{''.join(cards)}{vitals.page_script()}</body></html>")  # fmt: skip
        return HTMLResponse(page, headers={"link": preload, "cache-control": "no-cache"})

    return images
