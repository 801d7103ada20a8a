"""The demo's product page: pictures through the image endpoint, with placeholders and the LCP preload."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from fastapi import FastAPI

from perfkit import Cache
from perfkit.demo.app.products import PRODUCTS, add_products


async def test_product_page_serves_its_images_through_the_endpoint(tmp_path: Path, namespace: str) -> None:
    """/products: one <picture> per product with a ThumbHash background, the first one preloaded and
    high priority; its image URLs are answered by the mounted endpoint (AVIF for Chromium's Accept)."""
    app = FastAPI()
    cache = Cache("memory://", namespace=namespace)
    images = add_products(app, cache, "token", folder=tmp_path)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            page = await client.get("/products")
            assert page.status_code == 200
            html = page.text
            assert html.count("background-image:url(data:image/png;base64,") == len(PRODUCTS)
            assert html.count("<picture>") == len(PRODUCTS) - 1 and 'fetchpriority="high"' in html
            assert page.headers["link"].startswith("</img/") and "rel=preload" in page.headers["link"]
            src = re.search(r'<img src="([^"]+)"', html).group(1)  # type: ignore[union-attr]
            image = await client.get(src.replace("&amp;", "&"), headers={"accept": "image/avif,image/webp"})
            assert image.status_code == 200 and image.headers["content-type"] == "image/avif"
    finally:
        images.close()
        await cache.close()
