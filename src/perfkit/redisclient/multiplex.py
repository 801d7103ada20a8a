"""One connection to one Redis node shared by every caller of an event loop, commands pipelined on it.

The cache's hot path is one GET or one SET; through redis-py's asyncio client each one checks a
connection out of a pool, runs in its retry and health-check wrappers and gives the connection back,
about half of the instructions a `perfkit serve` cache GET costs (benchmarks/serve.py). No maintained
Python client multiplexes concurrent callers on one connection, which is what StackExchange.Redis and
Lettuce do; this module does only that, by hand, on the two pieces of redis-py's stack that are fast:
hiredis packs each command and parses the replies, and redis-py's exception classes are raised, so
`perfkit.redisclient.errors` translates them as it does the pooled client's.

    Multiplexed   the client: redis-py's names for the commands the cache sends (get, mget, set, exists,
                  unlink, scan_iter, ping), register_script and pipeline(transaction=False)
    _Wire         one connection: a FIFO of waiting futures, the commands written once per loop turn

Semantics the cache relies on:
- Order: Redis answers in the order it was asked; each reply resolves the oldest waiting future. A
  caller that is cancelled leaves its future in the FIFO (the reply is read and dropped), so no reply is
  ever handed to the wrong caller.
- Timeouts: `socket_timeout` bounds every command. A reply that is late means the connection is stuck
  (everything behind it waits too), so one timer per connection, armed for the oldest command, fails
  every waiting command with `TimeoutError` and closes the connection; the next command reconnects.
  No timer per command.
- Outages: a lost connection fails what waits on it with `ConnectionError`; there are no retries (the
  cache front degrades). Connecting is shared: callers that arrive meanwhile wait for the same attempt.
- Event loops: a connection belongs to the loop it was made on. Used from another loop (a second
  `asyncio.run()`, a forked worker's own loop) the client opens a new one and leaves the old one
  untouched: closing it would unregister a socket from a loop a forked parent still runs.
- Head-of-line: a very large value holds the connection while it is written or read; Redis runs one
  command at a time anyway, so more connections would not run commands sooner.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    DataError,
    NoPermissionError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from perfkit.errors import ConfigurationError

_ERRORS = {  # a reply's first word -> redis-py's class for it (the pooled client raises the same)
    "NOSCRIPT": NoScriptError,
    "LOADING": BusyLoadingError,
    "READONLY": ReadOnlyError,
    "NOAUTH": AuthenticationError,
    "WRONGPASS": AuthenticationError,
    "NOPERM": NoPermissionError,
}


def pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP (hiredis); an argument Redis cannot take is redis-py's `DataError`."""
    try:
        packed: bytes = hiredis.pack_command(args)
        return packed
    except TypeError as exc:
        raise DataError(f"Invalid input for Redis command {str(args[0])!r}: {exc}") from None


def reply_error(reply: ResponseError) -> ResponseError:
    """The error reply as redis-py's class for it (`NoScriptError` for NOSCRIPT ...)."""
    text = str(reply)
    cls = _ERRORS.get(text.split(" ", 1)[0], ResponseError)
    return reply if cls is ResponseError else cls(text)  # type: ignore[return-value]  # all ResponseErrors but one


@dataclass(frozen=True)
class Settings:
    """Where and how to connect, from the URL (`Settings.from_url`) and the user of the client."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # a unix socket instead of host:port
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_name: str | None = None
    socket_timeout: float | None = None
    socket_connect_timeout: float | None = None
    ssl: ssl.SSLContext | None = None

    # redis-py URL options that mean something for one multiplexed connection (the TLS ones make `ssl`)
    TLS_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
    URL_OPTIONS = (
        "db", "username", "password", "client_name", "socket_timeout", "socket_connect_timeout", *TLS_OPTIONS,
    )  # fmt: skip

    @classmethod
    def from_url(cls, url: str, *, strict: bool = True, **given: Any) -> Settings:
        """The settings of a `redis://`, `rediss://` or `unix://` URL as redis-py reads it (its
        `parse_url`); `given` (the user's timeouts) fills what the URL leaves out. An option that
        only makes sense for a pool (`?health_check_interval=` ...) is refused, naming it (left out,
        not `strict`)."""
        from redis.asyncio.connection import SSLConnection, parse_url

        parsed: dict[str, Any] = dict(parse_url(url))
        tls = parsed.pop("connection_class", None) is SSLConnection
        unknown = sorted(set(parsed) - {"host", "port", "path", *cls.URL_OPTIONS})
        if not strict:
            for name in unknown:
                del parsed[name]
        elif unknown:
            raise ConfigurationError(
                "url", f"Redis URL option {unknown[0]!r} does not apply to the cache's connection"
            )
        context = _tls_context(parsed) if tls else None
        for name in cls.TLS_OPTIONS:
            parsed.pop(name, None)
        return cls(**{**given, **parsed, "ssl": context})

    def described(self) -> dict[str, Any]:
        """What redis-py's `connection_kwargs` would show for these settings (password left out)."""
        names = ("host", "port", "path", "db", "username", "client_name", "socket_timeout")
        shown = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        shown["socket_connect_timeout"] = self.socket_connect_timeout
        return shown


def _tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    reqs = str(options.get("ssl_cert_reqs") or "required").lower()
    if reqs in ("none", "cert_none"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif "ssl_check_hostname" in options:
        context.check_hostname = options["ssl_check_hostname"] in (True, "true", "True", "1")
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    return context


class _Wire(asyncio.Protocol):
    """One connection: commands go out in order, and each reply resolves the oldest waiting future."""

    def __init__(self, loop: asyncio.AbstractEventLoop, where: str, timeout: float | None) -> None:
        self.loop = loop
        self.where = where
        self.timeout = timeout
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.deadlines: deque[float] = deque()
        self.out: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.scripts: set[str] = set()  # SHAs loaded on this connection
        self.timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting, deadlines = self.waiting, self.deadlines
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(RedisConnectionError(f"Redis at {self.where} sent a malformed reply: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream cannot be trusted any more
                self.fail(RedisConnectionError(f"Redis at {self.where} sent a reply nobody asked for"))
                return
            future = waiting.popleft()
            deadlines.popleft()
            if future.done():  # its caller was cancelled: the reply is read and dropped
                continue
            if type(reply) is ResponseError:
                future.set_exception(reply_error(reply))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(
            RedisConnectionError(f"Connection to Redis at {self.where} lost: {exc or 'closed by server'}")
        )

    # commands
    def submit(self, packed: bytes) -> asyncio.Future[Any]:
        """Queue one packed command; its reply resolves the future returned."""
        if self.closed:
            raise RedisConnectionError(f"Connection to Redis at {self.where} is closed")
        future = self.loop.create_future()
        self.waiting.append(future)
        if not self.out:
            self.loop.call_soon(self.flush)  # every command of this loop turn in one write
        self.out.append(packed)
        if self.timeout is not None:
            deadline = self.loop.time() + self.timeout
            self.deadlines.append(deadline)
            if self.timer is None:
                self.timer = self.loop.call_at(deadline, self.check)
        else:
            self.deadlines.append(0.0)
        return future

    def serves(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Open, and made on `loop` (a connection belongs to the loop it was made on)."""
        return not self.closed and self.loop is loop

    def flush(self) -> None:
        out, self.out = self.out, []
        if out and not self.closed and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def check(self) -> None:
        """The oldest command's deadline: past it, the connection is stuck, and everything on it fails."""
        self.timer = None
        if not self.deadlines or self.closed:
            return
        if self.deadlines[0] <= self.loop.time():
            self.fail(RedisTimeoutError(f"Timeout reading from Redis at {self.where}"))
        else:
            self.timer = self.loop.call_at(self.deadlines[0], self.check)

    def fail(self, error: Exception) -> None:
        """Close the connection; every waiting command fails with `error`."""
        self.closed = True
        self.out = []
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.close()
        waiting, self.waiting = self.waiting, deque()
        self.deadlines.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: a caller that awaits it still gets it, nobody else logs it


class Multiplexed:
    """The client: one `_Wire` at a time, made on the first command and again after a failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.where = settings.path or f"{settings.host}:{settings.port}"
        self._wire: _Wire | None = None
        self._connecting: asyncio.Lock | None = None
        self._connecting_loop: asyncio.AbstractEventLoop | None = None

    @property
    def connection_kwargs(self) -> dict[str, Any]:
        return self.settings.described()

    async def wire(self) -> _Wire:
        """The connection of the running loop, opened (once, for every caller waiting) if need be."""
        loop = asyncio.get_running_loop()
        wire = self._wire
        if wire is not None and wire.serves(loop):
            return wire
        if self._connecting is None or self._connecting_loop is not loop:
            self._connecting, self._connecting_loop = asyncio.Lock(), loop
        async with self._connecting:  # callers that arrive meanwhile wait for the same attempt
            wire = self._wire
            if wire is None or not wire.serves(loop):
                self._wire = wire = await self._connect()
            return wire

    def _live(self) -> _Wire | None:
        """The connection, if it serves the running loop now (the hot path's check, no coroutine)."""
        wire = self._wire
        return wire if wire is not None and wire.serves(asyncio.get_running_loop()) else None

    async def _connect(self) -> _Wire:
        s = self.settings
        loop = asyncio.get_running_loop()
        wire = _Wire(loop, self.where, s.socket_timeout)
        try:
            async with asyncio.timeout(s.socket_connect_timeout):
                if s.path:
                    await loop.create_unix_connection(lambda: wire, s.path)
                else:
                    await loop.create_connection(lambda: wire, s.host, s.port, ssl=s.ssl)
                hello: list[tuple[Any, ...]] = []
                if s.password is not None:
                    hello.append(("AUTH", s.username, s.password) if s.username else ("AUTH", s.password))
                if s.db:
                    hello.append(("SELECT", s.db))
                if s.client_name:
                    hello.append(("CLIENT", "SETNAME", s.client_name))
                await _all([wire.submit(pack(c)) for c in hello])
        except BaseException as exc:
            wire.fail(RedisConnectionError("connect failed"))
            if isinstance(exc, ResponseError | RedisConnectionError | asyncio.CancelledError):
                raise
            if isinstance(exc, OSError | ssl.SSLError):  # TimeoutError included
                raise RedisConnectionError(f"Error connecting to Redis at {self.where}: {exc!r}") from exc
            raise
        return wire

    async def execute_command(self, *args: Any) -> Any:
        wire = self._live() or await self.wire()
        return await wire.submit(pack(args))

    # the commands the cache sends, with redis-py's names and arguments
    async def get(self, key: str) -> Any:
        wire = self._live() or await self.wire()
        return await wire.submit(pack(("GET", key)))

    async def mget(self, keys: Sequence[Any]) -> Any:
        return await self.execute_command("MGET", *keys)

    async def set(self, key: str, value: Any, *, px: int | None = None, nx: bool = False) -> Any:
        wire = self._live() or await self.wire()
        return await wire.submit(pack(_set_args(key, value, px, nx)))

    async def exists(self, *keys: Any) -> Any:
        return await self.execute_command("EXISTS", *keys)

    async def unlink(self, *keys: Any) -> Any:
        return await self.execute_command("UNLINK", *keys)

    async def ping(self) -> Any:
        return await self.execute_command("PING")

    async def scan_iter(self, match: str | None = None, count: int | None = None) -> AsyncIterator[bytes]:
        args: list[Any] = [*(("MATCH", match) if match else ()), *(("COUNT", count) if count else ())]
        cursor: Any = 0
        while True:
            cursor, keys = await self.execute_command("SCAN", cursor, *args)
            for key in keys:
                yield key
            if int(cursor) == 0:
                return

    def register_script(self, source: str) -> Script:
        return Script(self, source)

    def pipeline(self, transaction: bool = False) -> Pipeline:
        if transaction:
            raise ValueError("the multiplexed client sends no MULTI/EXEC; use a script")
        return Pipeline(self)

    async def run_script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """EVALSHA; if Redis does not know the script (first use, SCRIPT FLUSH, a restart), load it
        and run it, in one write."""
        wire = self._live() or await self.wire()
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        if script.sha in wire.scripts:
            try:
                return await wire.submit(pack(command))
            except NoScriptError:
                wire.scripts.discard(script.sha)
        loaded = wire.submit(pack(("SCRIPT", "LOAD", script.source)))
        _, result = await _all([loaded, wire.submit(pack(command))])
        wire.scripts.add(script.sha)
        return result

    async def aclose(self) -> None:
        wire, self._wire = self._wire, None
        if wire is not None and wire.serves(asyncio.get_running_loop()):
            wire.fail(RedisConnectionError(f"the client for Redis at {self.where} was closed"))


async def _all(futures: list[asyncio.Future[Any]], *, replies_only: bool = False) -> list[Any]:
    """Every future's result, in order, once all are done; the first error is raised (with
    `replies_only`, error replies are returned in place and only a connection's failure is raised).
    Each is awaited, so none is left with an exception nobody read."""
    results = await asyncio.gather(*futures, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not (replies_only and isinstance(result, ResponseError)):
            raise result
    return results


def _set_args(key: Any, value: Any, px: int | None, nx: bool) -> tuple[Any, ...]:
    args: tuple[Any, ...] = ("SET", key, value)
    if px is not None:
        args += ("PX", px)
    if nx:
        args += ("NX",)
    return args


class Script:
    """A Lua script run by SHA (redis-py's `register_script` shape: `await script(keys=, args=)`)."""

    def __init__(self, client: Multiplexed, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()

    async def __call__(
        self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Pipeline | None = None
    ) -> Any:
        if client is not None:
            return client.script(self, keys, args)
        return await self.client.run_script(self, keys, args)


class Pipeline:
    """Commands sent in one write, their replies read in order (redis-py's `pipeline(transaction=False)`:
    `execute()` returns every reply and raises the first error reply after all were read)."""

    def __init__(self, client: Multiplexed) -> None:
        self.client = client
        self.commands: list[tuple[Any, ...]] = []
        self.scripts: dict[str, Script] = {}

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.commands.clear()

    def _queue(self, *args: Any) -> Pipeline:
        self.commands.append(args)
        return self

    def set(self, key: str, value: Any, *, px: int | None = None, nx: bool = False) -> Pipeline:
        return self._queue(*_set_args(key, value, px, nx))

    def incr(self, key: str) -> Pipeline:
        return self._queue("INCR", key)

    def expire(self, key: str, seconds: int) -> Pipeline:
        return self._queue("EXPIRE", key, seconds)

    def zrange(self, key: str, start: int, end: int) -> Pipeline:
        return self._queue("ZRANGE", key, start, end)

    def script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Pipeline:
        self.scripts[script.sha] = script
        return self._queue("EVALSHA", script.sha, len(keys), *keys, *args)

    async def execute(self) -> list[Any]:
        if not self.commands:
            return []
        commands, self.commands = self.commands, []
        replies = await self._send(commands)
        unknown = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if unknown:  # SCRIPT FLUSH since they were loaded: those (and only those: they did not run) again
            again = await self._send([commands[i] for i in unknown], reload=True)
            for i, reply in zip(unknown, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def _send(self, commands: Iterable[tuple[Any, ...]], reload: bool = False) -> list[Any]:
        wire = await self.client.wire()
        if reload:
            wire.scripts.clear()
        load = [s for sha, s in self.scripts.items() if sha not in wire.scripts]
        loads = [wire.submit(pack(("SCRIPT", "LOAD", s.source))) for s in load]
        futures = [wire.submit(pack(c)) for c in commands]
        await _all(loads)
        wire.scripts.update(s.sha for s in load)
        return await _all(futures, replies_only=True)


__all__ = ["Multiplexed", "Pipeline", "Script", "Settings", "reply_error"]
