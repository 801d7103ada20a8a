"""A bounded pool of keep-alive connections, shared by a scenario's users."""

from __future__ import annotations

import asyncio
from collections import deque

from perfkit.bench.client import Connection, open_connection
from perfkit.bench.target import Endpoint


class Pool:
    """At most `size` connections to one endpoint; `acquire` waits when all are busy."""

    def __init__(self, endpoint: Endpoint, size: int, timeout: float) -> None:
        self.endpoint = endpoint
        self.size = size
        self.timeout = timeout
        self._idle: list[Connection] = []
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._open = 0
        self.connections: set[Connection] = set()

    async def acquire(self) -> Connection:
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
                self._forget(conn)
            if self._open < self.size:
                self._open += 1
                try:
                    conn = await asyncio.wait_for(
                        open_connection(self.endpoint.host, self.endpoint.port, keep_body=True), self.timeout
                    )
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
                self.connections.add(conn)
                return conn
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def release(self, conn: Connection) -> None:
        if conn.closed:
            self._forget(conn)
        else:
            self._idle.append(conn)
        self._wake()

    def _forget(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self._open -= 1

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        for conn in list(self.connections):
            conn.close()
        self.connections.clear()
        self._idle.clear()
