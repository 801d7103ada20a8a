"""Private `redis-server` processes for tests that stop, restart, freeze or cluster a server.

`start()` returns once the server has logged that it accepts connections: its own readiness line,
read from its stdout, instead of polling the port.
"""

from __future__ import annotations

import select
import subprocess
import threading
import time
from typing import IO

READY = b"Ready to accept connections"


def start(port: int, *extra: str, timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """redis-server on 127.0.0.1:`port` (no persistence), ready to serve; the caller stops it by pid."""
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        bufsize=0,  # unbuffered: select() on the pipe sees every line readline() has not consumed
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([proc.stdout], [], [], remaining)[0]:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            raise RuntimeError(f"redis-server on port {port} not ready within {timeout:g}s")
        line = proc.stdout.readline()
        if not line:  # it exited (e.g. the port was taken)
            proc.wait()
            proc.stdout.close()
            raise RuntimeError(
                f"redis-server on port {port} exited: {b''.join(seen[-5:]).decode(errors='replace')}"
            )
        seen.append(line)
        if READY in line:
            break
    threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
    return proc


def _drain(stream: IO[bytes]) -> None:
    """Keep reading the server's log so a full pipe never blocks it; closes at its exit."""
    with stream:
        while stream.readline():
            pass
