"""`perfkit demo`: until the full demo app lands, a short, real tour of the cache with measured figures."""

from __future__ import annotations

import argparse
import asyncio


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis", metavar="URL", help="also run the tour on this Redis (e.g. redis://127.0.0.1:6379/0)"
    )
    parser.add_argument(
        "--dir", metavar="PATH", default=".perfkit", help="where the embedded SQLite store lives"
    )


def run(args: argparse.Namespace) -> int:
    from perfkit.demo.cache_tour import tour

    return asyncio.run(tour(args.dir, args.redis))
