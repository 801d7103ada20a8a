"""`perfkit top URL [URL ...]` / `perfkit top --store URL`: a live terminal view of an app or a fleet.

Plain terminal I/O (rich on the alternate screen, keys read from stdin in cbreak mode): it works over
SSH and in tmux, needs no mouse. Keys: `s` next sort column, `r` reverse, `q` quit. `--once` prints a
single frame (two samples `--interval` apart, for the rates) and exits, for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from perfkit.config import parse_duration
from perfkit.errors import BackendError, ConfigurationError, MissingDependencyError, PerfkitError
from perfkit.top.frame import SORT_KEYS, Frame
from perfkit.top.source import HttpSource, Sample, Source, StoreSource


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("urls", nargs="*", metavar="URL", help="apps to watch (their base URLs)")
    parser.add_argument("--store", action="append", default=[], metavar="URL", help="read a monitor store")
    parser.add_argument("--app", metavar="MODULE:ATTR", help="serve this ASGI app in-process and watch it")
    parser.add_argument("--token", default=None, help="the monitor's bearer token ($PERFKIT_MONITOR_TOKEN)")
    parser.add_argument("--prefix", default=None, help="where the monitor is mounted (default /perf)")
    parser.add_argument("--interval", default="1s", help="refresh interval (default 1s)")
    parser.add_argument("--sort", default="rps", choices=SORT_KEYS, help="the routes' sort column")
    parser.add_argument("--once", action="store_true", help="print one frame and exit")


class Top:
    """The state of the view: the sources, the last sample of each, the sort order."""

    def __init__(self, sources: list[Source], sort: str) -> None:
        self.sources, self.sort, self.reverse = sources, sort, False
        self.last: dict[str, Sample] = {}
        self.frames: list[Frame] = []
        self.errors: dict[str, str] = {}

    async def refresh(self) -> None:
        results = await asyncio.gather(*(s.sample() for s in self.sources), return_exceptions=True)
        frames, self.errors = [], {}
        for source, result in zip(self.sources, results, strict=True):
            if isinstance(result, ConfigurationError):
                raise result  # a wrong token stays wrong: say so once and stop
            if isinstance(result, BaseException):
                if not isinstance(result, PerfkitError | OSError):
                    raise result
                self.errors[source.name] = str(result)
                continue
            frames.append(Frame.build(self.last.get(source.name), result))
            self.last[source.name] = result
        self.frames = frames

    def key(self, char: str) -> bool:
        """Apply a key press; False for quit."""
        if char in ("q", "Q", "\x03"):
            return False
        if char == "s":
            self.sort = SORT_KEYS[(SORT_KEYS.index(self.sort) + 1) % len(SORT_KEYS)]
        elif char == "r":
            self.reverse = not self.reverse
        return True

    def renderable(self, height: int) -> Any:
        from perfkit.top.view import render

        return render(self.frames, self.sort, self.reverse, self.errors, height)


@contextlib.contextmanager
def cbreak() -> Iterator[int | None]:
    """stdin in cbreak mode (keys arrive one by one, unechoed) when it is a terminal; restored after."""
    if not sys.stdin.isatty():
        yield None
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def live(top: Top, interval: float) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    keys: asyncio.Queue[str] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    with cbreak() as fd, Live(console=console, screen=True, auto_refresh=False) as view:
        if fd is not None:
            loop.add_reader(fd, lambda: keys.put_nowait(os.read(fd, 1).decode(errors="replace")))
        try:
            while True:
                await top.refresh()
                view.update(top.renderable(console.size.height), refresh=True)
                deadline = loop.time() + interval
                while (left := deadline - loop.time()) > 0:
                    try:
                        char = await asyncio.wait_for(keys.get(), left)
                    except TimeoutError:
                        break
                    if not top.key(char):
                        return
                    view.update(top.renderable(console.size.height), refresh=True)
        finally:
            if fd is not None:
                loop.remove_reader(fd)


async def once(top: Top, interval: float) -> None:
    from rich.console import Console

    await top.refresh()
    await asyncio.sleep(interval)  # the rates need a second sample, `interval` later
    await top.refresh()
    if not top.frames:
        raise BackendError("; ".join(f"{name}: {why}" for name, why in top.errors.items()))
    # piped (a script): wide enough for a fleet's columns, unless COLUMNS says otherwise
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 160)
    Console(width=width).print(top.renderable(10_000))


def sources(args: argparse.Namespace, urls: list[str]) -> list[Source]:
    token = args.token or os.environ.get("PERFKIT_MONITOR_TOKEN") or None
    prefix = args.prefix or os.environ.get("PERFKIT_MONITOR_PREFIX") or "/perf"
    made: list[Source] = [HttpSource(url, token, prefix) for url in urls]
    return made + [StoreSource(url) for url in args.store]


async def main(args: argparse.Namespace) -> None:
    interval = parse_duration("interval", args.interval)
    if interval <= 0:
        raise ConfigurationError("interval", f"{args.interval!r} must be more than 0")
    async with contextlib.AsyncExitStack() as stack:
        urls = list(args.urls)
        if args.app:
            from perfkit.doctor.serve import load_app, served

            urls.append(await stack.enter_async_context(served(load_app(args.app))))
        top = Top(sources(args, urls), args.sort)
        for source in top.sources:
            stack.push_async_callback(source.close)
        await (once(top, interval) if args.once else live(top, interval))


def run(args: argparse.Namespace) -> int:
    if not args.urls and not args.store and not args.app:
        raise ConfigurationError("top", "give one or more URLs, --store URL or --app MODULE:ATTR")
    try:
        import rich  # noqa: F401  # the drawing needs it; say so before starting
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("perfkit top", "rich", "cli") from exc
    asyncio.run(main(args))
    return 0
