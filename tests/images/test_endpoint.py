"""The endpoint end to end, mounted in Starlette: resize, fits, formats, orientation, metadata, caching."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest
from PIL import Image

from perfkit.images import ImageService
from tests.images.conftest import ServiceFactory, client_for, opened

AVIF_WEBP = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"  # what Chromium sends for images


async def test_resize_to_an_allowed_width_keeps_the_aspect_ratio(
    service: ImageService, client: httpx.AsyncClient
) -> None:
    """w=640 on a 1200x800 JPEG gives 640x427, as JPEG when the client accepts nothing better."""
    image = opened(await client.get(service.url("products/42.jpg", w=640)))
    assert (image.format, image.size) == ("JPEG", (640, 427))


async def test_format_is_negotiated_from_accept_with_vary(
    service: ImageService, client: httpx.AsyncClient
) -> None:
    """f=auto: AVIF when accepted, then WebP, then the source's format; every answer says Vary: Accept."""
    url = service.url("products/42.jpg", w=320)
    found = {}
    for accept in (AVIF_WEBP, "image/webp,*/*", "image/avif;q=0,image/webp", "*/*"):
        response = await client.get(url, headers={"accept": accept})
        assert response.headers["vary"] == "Accept"
        found[accept] = (response.headers["content-type"], opened(response).format)
    assert found == {
        AVIF_WEBP: ("image/avif", "AVIF"),
        "image/webp,*/*": ("image/webp", "WEBP"),
        "image/avif;q=0,image/webp": ("image/webp", "WEBP"),
        "*/*": ("image/jpeg", "JPEG"),
    }


async def test_a_named_format_has_no_vary(service: ImageService, client: httpx.AsyncClient) -> None:
    """f=webp is the same for every client: no Vary header, WebP even when Accept lists AVIF."""
    response = await client.get(
        service.url("products/42.jpg", w=320, f="webp"), headers={"accept": AVIF_WEBP}
    )
    assert "vary" not in response.headers and opened(response).format == "WEBP"


async def test_transparency_falls_back_to_png(service: ImageService, client: httpx.AsyncClient) -> None:
    """A PNG with alpha stays PNG with alpha when the client accepts neither AVIF nor WebP."""
    image = opened(await client.get(service.url("alpha.png", w=320)))
    assert image.format == "PNG" and image.mode == "RGBA" and image.getpixel((10, 10))[3] == 128


async def test_cover_crops_around_the_focal_point(service: ImageService, client: httpx.AsyncClient) -> None:
    """fit=cover fills the box exactly; the focal point picks which half of the picture stays."""
    left = opened(await client.get(service.url("products/42.jpg", w=320, h=320, fit="cover", fp=(0.0, 0.5))))
    right = opened(await client.get(service.url("products/42.jpg", w=320, h=320, fit="cover", fp=(1.0, 0.5))))
    assert left.size == right.size == (320, 320)
    # the same output pixel: source x=250 (red) with the window at the left, x=650 (blue) at the right
    assert left.convert("RGB").getpixel((100, 300))[0] > 150
    assert right.convert("RGB").getpixel((100, 300))[2] > 150


async def test_contain_and_crop(service: ImageService, client: httpx.AsyncClient) -> None:
    """contain fits inside the box; crop cuts the box at full resolution without scaling."""
    contain = opened(await client.get(service.url("products/42.jpg", w=320, h=320)))
    by_height = opened(await client.get(service.url("products/42.jpg", h=320)))
    assert by_height.size == (480, 320)
    crop = opened(await client.get(service.url("products/42.jpg", w=160, h=160, fit="crop", fp=(0.0, 0.0))))
    assert contain.size == (320, 213)
    assert crop.size == (160, 160) and crop.convert("RGB").getpixel((10, 10))[1] > 150  # the green square


async def test_dpr_multiplies_the_pixels_and_never_upscales(
    service: ImageService, client: httpx.AsyncClient
) -> None:
    """dpr=2 doubles the pixels of w; a box larger than the source gives the source's own size."""
    double = opened(await client.get(service.url("products/42.jpg", w=320, dpr=2)))
    capped = opened(await client.get(service.url("products/42.jpg", w=960, dpr=2)))
    assert double.size == (640, 427) and capped.size == (1200, 800)


async def test_quality_changes_the_bytes(service: ImageService, client: httpx.AsyncClient) -> None:
    """q=20 gives a clearly smaller file than q=95."""
    low = await client.get(service.url("texture.jpg", w=640, q=20, f="webp"))
    high = await client.get(service.url("texture.jpg", w=640, q=95, f="webp"))
    assert len(low.content) * 1.5 < len(high.content)


async def test_exif_orientation_is_applied_and_metadata_stripped(
    service: ImageService, client: httpx.AsyncClient
) -> None:
    """A sideways JPEG with EXIF orientation 6 comes out upright, with no EXIF (GPS, camera) in any format."""
    for fmt in ("jpeg", "webp", "avif"):
        response = await client.get(service.url("rotated.jpg", w=480, f=fmt))
        image = opened(response)
        assert image.size == (480, 320), fmt
        assert not image.getexif() and b"perfkit-test-camera" not in response.content, fmt
        assert "exif" not in image.info and "xmp" not in image.info, fmt


async def test_jpeg_output_is_progressive(service: ImageService, client: httpx.AsyncClient) -> None:
    """JPEG answers are progressive (they paint coarse-to-fine)."""
    image = opened(await client.get(service.url("products/42.jpg", w=640, f="jpeg")))
    assert image.info.get("progressive") == 1


async def test_blur_and_the_low_quality_preview(service: ImageService, client: httpx.AsyncClient) -> None:
    """blur=N blurs (the sharp red/blue edge spreads); lqip=1 is a tiny blurred preview."""
    sharp = opened(await client.get(service.url("products/42.jpg", w=320, f="png"))).convert("RGB")
    blurred = opened(await client.get(service.url("products/42.jpg", w=320, f="png", blur=10))).convert("RGB")
    lqip = await client.get(service.url("products/42.jpg", lqip=True, f="webp"))
    assert sharp.getpixel((158, 100))[2] < 60 < blurred.getpixel((158, 100))[2]
    assert opened(lqip).size == (32, 21) and len(lqip.content) < 600


async def test_animated_gif_gives_its_first_frame(service: ImageService, client: httpx.AsyncClient) -> None:
    """A 5-frame GIF (within the frame cap) is served as its first frame."""
    image = opened(await client.get(service.url("anim.gif", w=160, f="png")))
    assert image.size == (16, 16) and not getattr(image, "is_animated", False)


async def test_strong_etag_and_304(service: ImageService, client: httpx.AsyncClient) -> None:
    """A strong ETag; If-None-Match with it gives 304 with no body; signed pinned URLs are immutable."""
    url = service.url("products/42.jpg", w=640)
    first = await client.get(url)
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    again = await client.get(url, headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert (await client.get(url, headers={"if-none-match": '"other"'})).status_code == 200


async def test_results_are_cached_and_keyed_by_the_source_version(
    make_service: ServiceFactory, uploads: object
) -> None:
    """A second request is a cache hit (no processing); an edited file is processed again, under a new URL."""
    from tests.images.conftest import encoded, photo

    service = make_service()
    path = uploads / "products" / "edit.jpg"  # type: ignore[operator]
    path.write_bytes(encoded(photo(), "JPEG"))
    async with client_for(service) as client:
        url = service.url("products/edit.jpg", w=320)
        await client.get(url)
        await client.get(url)
        assert service.stats().rendered == 1
        path.write_bytes(encoded(photo((900, 900)), "JPEG"))
        new_url = service.url("products/edit.jpg", w=320)
        assert new_url != url
        assert opened(await client.get(new_url)).size == (320, 320)
        assert service.stats().rendered == 2


async def test_concurrent_identical_requests_are_processed_once_on_redis(
    make_service: ServiceFactory, redis_cache: object
) -> None:
    """Twenty concurrent requests for one new variant: one processing (the cache's single flight), the
    result stored in Redis, where a second service (another process's view) finds it."""
    first = make_service(cache=redis_cache)
    url = first.url("products/42.jpg", w=768, q=61)
    async with client_for(first) as client:
        responses = await asyncio.gather(*(client.get(url) for _ in range(20)))
    assert {r.status_code for r in responses} == {200} and len({r.content for r in responses}) == 1
    assert first.stats().rendered == 1
    second = make_service(cache=redis_cache)
    async with client_for(second) as client:
        assert (await client.get(url)).content == responses[0].content
    assert second.stats().rendered == 0


async def test_head_has_headers_and_no_body(service: ImageService, client: httpx.AsyncClient) -> None:
    """HEAD answers the GET's headers without the body; other methods are 405."""
    url = service.url("products/42.jpg", w=320)
    head = await client.head(url)
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
    assert (await client.post(url)).status_code == 405


async def test_avif_is_in_this_pillow() -> None:
    """The installed Pillow encodes AVIF (the images extra asks for Pillow >= 11.3, whose wheels have it)."""
    from PIL import features

    assert features.check("avif")
    Image.new("RGB", (8, 8)).save(io.BytesIO(), "AVIF")


@pytest.mark.parametrize("fmt", ["webp", "avif"])
async def test_modern_formats_are_smaller_than_the_jpeg(
    service: ImageService, client: httpx.AsyncClient, fmt: str
) -> None:
    """At the default qualities, WebP and AVIF are smaller than the JPEG of the same size."""
    jpeg = await client.get(service.url("texture.jpg", w=640, f="jpeg"))
    other = await client.get(service.url("texture.jpg", w=640, f=fmt))
    assert len(other.content) < len(jpeg.content)


async def test_served_alone_it_answers_the_lifespan_protocol(service: ImageService) -> None:
    """Run directly by a server (not mounted), the service completes lifespan startup and shutdown."""
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return incoming.pop(0)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    await service({"type": "lifespan"}, receive, send)  # type: ignore[arg-type]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_processing_runs_off_the_event_loop(
    service: ImageService, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decode/resize/encode runs in one of the pool's threads, not on the event loop's."""
    import threading

    from perfkit.images import engine

    threads: list[str] = []
    render = engine.render

    def observed(*args: object) -> engine.Rendered:
        threads.append(threading.current_thread().name)
        return render(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "render", observed)
    assert (await client.get(service.url("products/42.jpg", w=480, q=33))).status_code == 200
    assert len(threads) == 1 and threads[0].startswith("perfkit-images")
    assert threading.current_thread().name != threads[0]
