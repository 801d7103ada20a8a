"""Bad input: each kind a 4xx with a clear reason, nothing cached, no worker left busy."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest

from perfkit import Cache
from perfkit.images import BusyError, ImageService, Limits
from perfkit.images.pool import WorkerPool
from tests.conftest import eventually
from tests.images.conftest import ServiceFactory, client_for, encoded, photo


def cache_sets(cache: Cache) -> int:
    return sum(t.sets for t in cache.stats().tiers.values())


BAD_FILES = [
    ("truncated.jpg", 422, "cannot be decoded (truncated or damaged)"),
    ("corrupt.png", 422, "cannot be decoded (truncated or damaged): broken data stream"),
    ("notimage.jpg", 415, "not an image"),
    ("image.bmp", 415, "unsupported image format BMP"),
    ("bomb.png", 413, "12000x5000 = 60.0 MP, over the cap of 50 MP (read from its header"),
    ("hugebomb.png", 413, "decompression bomb"),
    ("long.gif", 413, "80 frames, over the cap of 64"),
]


@pytest.mark.parametrize(("name", "status", "reason"), BAD_FILES)
async def test_bad_source_is_refused_with_its_reason_and_not_cached(
    service: ImageService, client: httpx.AsyncClient, memory_cache: Cache, name: str, status: int, reason: str
) -> None:
    """A corrupt, truncated, non-image, unsupported, bomb or over-long animated source: its 4xx, twice
    (nothing cached in between), with no cache write and no job left in the pool."""
    url = service.url(name, w=320)
    for _ in range(2):
        response = await client.get(url)
        assert response.status_code == status, response.text
        assert reason in response.json()["error"]
        assert response.headers["cache-control"] == "no-store"
    assert cache_sets(memory_cache) == 0
    assert service.pool.admitted == 0
    assert service.stats().refused == {status: 2}


@pytest.mark.parametrize(
    ("mangle", "status", "reason"),
    [
        (lambda u: u.replace("w=320", "w=321"), 403, "bad signature"),  # options changed after signing
        (lambda u: u.replace("/img/", "/img/x", 1), 403, "bad signature"),
        (lambda u: "/img/_/w=320/products/42.jpg", 403, "bad signature"),  # unsigned on a signed service
        (lambda u: u.rsplit("/", 1)[0] + "/43.jpg", 403, "bad signature"),  # another path
    ],
)
async def test_a_bad_signature_is_403(
    service: ImageService, client: httpx.AsyncClient, mangle: object, status: int, reason: str
) -> None:
    """A URL changed after signing (options, signature, path) or not signed at all is refused."""
    url = mangle(service.url("products/42.jpg", w=320))  # type: ignore[operator]
    response = await client.get(url)
    assert response.status_code == status and reason in response.json()["error"]


async def test_keys_rotate(make_service: ServiceFactory) -> None:
    """A URL signed by the old key still verifies after a new key is put first; a removed key does not."""
    old = make_service(keys=["old-key-0123456789abc"])
    url = old.url("products/42.jpg", w=320)
    rotated = make_service(keys=["new-key-0123456789abc", "old-key-0123456789abc"])
    retired = make_service(keys=["new-key-0123456789abc"])
    async with client_for(rotated) as client:
        assert (await client.get(url)).status_code == 200
        assert rotated.url("products/42.jpg", w=320) != url  # the new key signs
    async with client_for(retired) as client:
        assert (await client.get(url)).status_code == 403


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("w=320,zoom=2", "unknown parameter 'zoom'"),
        ("w=333", "w=333 is not an allowed width"),
        ("w=320,w=640", "given twice"),
        ("w=320,q=101", "q=101: from 1 to 100"),
        ("w=320,dpr=5", "dpr=5 is not allowed"),
        ("w=320,fit=stretch", "fit='stretch'"),
        ("w=320,fit=cover", "fit=cover needs both w and h"),
        ("w=320,fp=2:0", "fp='2:0'"),
        ("w=-1", "a positive whole number"),
        ("w320", "is not name=value"),
    ],
)
async def test_unknown_or_bad_parameters_are_400(
    make_service: ServiceFactory, memory_cache: Cache, options: str, reason: str
) -> None:
    """On an opened (unsigned) endpoint, where anyone can write options: each bad one is a 400 naming it."""
    service = make_service(keys=None, signed=False)
    async with client_for(service) as client:
        response = await client.get(f"/img/_/{options}/products/42.jpg")
    assert response.status_code == 400 and reason in response.json()["error"], response.text
    assert cache_sets(memory_cache) == 0


async def test_missing_and_escaping_paths_are_404(make_service: ServiceFactory, uploads: Path) -> None:
    """A missing file, `..`, and a symlink pointing out of the folder are all not found."""
    (uploads / "escape.jpg").unlink(missing_ok=True)
    outside = uploads.parent / "outside.jpg"
    outside.write_bytes(encoded(photo(), "JPEG"))
    (uploads / "escape.jpg").symlink_to(outside)
    service = make_service(keys=None, signed=False)
    async with client_for(service) as client:
        for path in ("products/none.jpg", "../outside.jpg", "products/../../outside.jpg", "escape.jpg"):
            response = await client.get(f"/img/_/w=320/{path}")
            assert response.status_code == 404, path


async def test_byte_cap_refuses_before_reading(make_service: ServiceFactory) -> None:
    """A file over `max_bytes` is refused from its size alone."""
    service = make_service(limits=Limits(max_bytes=1000))
    async with client_for(service) as client:
        response = await client.get(service.url("products/42.jpg", w=320))
    assert response.status_code == 413 and "over the cap of 1000" in response.json()["error"]


async def test_the_pool_refuses_when_full_and_times_out() -> None:
    """Past `workers + queue` jobs the next is refused at once; a job past its timeout answers 503, and
    its slot stays taken until its thread really ends (nothing piles up)."""
    release = threading.Event()
    pool = WorkerPool(workers=1, queue=0, timeout=0.2)
    try:
        slow = asyncio.ensure_future(pool.run(release.wait))
        await asyncio.sleep(0)
        with pytest.raises(BusyError, match="busy"):
            await pool.run(lambda: None)
        with pytest.raises(BusyError, match=r"longer than 0\.2 s"):
            await slow
        assert pool.admitted == 1  # the thread still waits
        release.set()

        async def free() -> bool:
            return pool.admitted == 0

        await eventually(free, timeout=5, what="the slot freed when the thread ended")
        assert await pool.run(lambda: 42) == 42
    finally:
        release.set()
        pool.close()


async def test_a_result_over_the_cache_value_cap_is_413(make_service: ServiceFactory) -> None:
    """A variant larger than the cache's max_value_size is refused with the reason, not a 500."""
    small = Cache("memory://", max_value_size=2000)
    service = make_service(cache=small)
    try:
        async with client_for(service) as client:
            response = await client.get(service.url("texture.jpg", w=640, f="png"))
        assert response.status_code == 413 and "max_value_size" in response.json()["error"]
    finally:
        await small.close()


def test_without_pillow_the_error_names_the_extra() -> None:
    """Importing perfkit.images where Pillow is missing fails with the pip line that fixes it."""
    import subprocess
    import sys

    code = "import sys; sys.modules['PIL'] = None; import perfkit.images"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "needs the 'Pillow' package: pip install 'perfkit[images]'" in done.stderr
