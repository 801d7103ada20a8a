"""Debian's headless Chromium for the browser tests, driven by Playwright (never `playwright install`).

The flags are the ones that work on these machines: without the background-networking ones Chromium
keeps trying hosts the closed network refuses.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium (Playwright's Browser), closed when the block ends."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()
