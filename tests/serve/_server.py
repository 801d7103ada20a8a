"""A real `perfkit serve` process for the tests, and a local HTTP receiver (purge hook, job callbacks,
loader batches) that records what it was sent."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKENS = {
    "reader": "reader-token-0123456789abcdef",
    "app": "app-token-0123456789abcdef0123",
    "admin": "admin-token-0123456789abcdef01",
    "limited": "limited-token-0123456789abcdef",
}
TOKEN_FILE = f"""# tests/serve tokens
reader {TOKENS["reader"]} read
app    {TOKENS["app"]}    read,write
admin  {TOKENS["admin"]}  admin
limited {TOKENS["limited"]} write 3/minute
"""

CALLBACK_SECRETS = {  # whsec_ + base64 of 32 bytes: the service's, the badmail type's and warm loader's own
    "service": "whsec_" + base64.b64encode(b"perfkit-serve-test-callback-key!").decode(),
    "badmail": "whsec_" + base64.b64encode(b"the-badmail-type-has-its-own-key").decode(),
    "warm": "whsec_" + base64.b64encode(b"the-warm-loader-has-its-own-key!").decode(),
}


class Receiver:
    """Records every POST (`posts`: path, JSON body; `raw`: path, headers, body bytes); answers `/jobs/*`
    with a result and `/batch/*` with values."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.raw: list[tuple[str, dict[str, str], bytes]] = []
        self.event = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length)
                body = json.loads(data or b"null")
                with receiver.event:
                    receiver.raw.append((self.path, {k.lower(): v for k, v in self.headers.items()}, data))
                    receiver.posts.append((self.path, body))
                    receiver.event.notify_all()
                if self.path.startswith("/jobs/fail"):
                    answer, status = {"error": "no"}, 500
                elif self.path.startswith("/jobs/"):
                    answer, status = {"result": {"sent_to": body["args"][0], "attempt": body["attempt"]}}, 200
                elif self.path.startswith("/batch/"):
                    answer, status = {"values": [f"value of {k}" for k in body["keys"]]}, 200
                else:
                    answer, status = {"ok": True}, 200
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, path: str, timeout: float = 10.0, body: Any = None) -> list[Any]:
        """The bodies POSTed to `path` once there is at least one (`body`: once it is among them; waits
        on the receiver's condition)."""
        deadline = time.monotonic() + timeout
        with self.event:
            while not (found := [b for p, b in self.posts if p == path]) or (
                body is not None and body not in found
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"nothing was POSTed to {path} within {timeout}s")
                self.event.wait(left)
            return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serve_process(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`perfkit serve ARGS` on a free port; yields its base URL once it answers, stops it (by pid) after."""
    port = free_port()
    log = (tmp / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "perfkit", "serve", "--port", str(port), "--log-level", "warning", *args],
        cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", **(env or {})},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"perfkit serve exited: {(tmp / f'serve-{port}.log').read_text()}")
            try:
                urllib.request.urlopen(url + "/v1/nothing", timeout=1)  # noqa: S310 - our own local server
            except urllib.error.HTTPError:
                break  # it answers (401/404): up
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("perfkit serve did not start within 20 s") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
