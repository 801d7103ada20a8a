"""`--app module:attr`: serve the application in this process on a free loopback port with uvicorn.

A real server (not an in-memory transport) so keep-alive, compression on the wire and the lifespan (the
monitor's publisher, the app's own startup) are what a deployment has. Shared by `doctor` and `top`.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from perfkit.errors import ConfigurationError, MissingDependencyError

STARTUP_TIMEOUT = 30.0


def load_app(spec: str) -> Any:
    """The object `module:attr` names (the current directory importable, as uvicorn does)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError("app", f"{spec!r} is not MODULE:ATTRIBUTE (e.g. myapp.main:app)")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError("app", f"cannot import {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigurationError("app", f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 for the duration of the block; yields its base URL."""
    try:
        import uvicorn
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("--app", "uvicorn", "cli") from exc
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="auto")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()  # its exception, if it raised
                    raise ConfigurationError("app", "the app's server stopped during startup")
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
