"""One real `perfkit serve` process for tests/serve (Redis cache, SQLite jobs, every kind of job type),
the local receiver it calls (purge hook, job callbacks, loader batches), and clients per token."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from perfkit.cache import generate_key
from perfkit.serve import ServeClient
from tests.conftest import REDIS_URL, require_redis
from tests.serve._server import CALLBACK_SECRETS, TOKEN_FILE, TOKENS, Receiver, serve_process

HAS_LOADER = importlib.util.find_spec("perfkit.loader") is not None
LEASE = 2.0  # the service's job lease: an abandoned claim is re-delivered within about this


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="session")
def serve_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("serve")
    (tmp / "tokens.txt").write_text(TOKEN_FILE)
    (tmp / "keys.txt").write_text(generate_key() + "\n")
    (tmp / "callback-secrets.txt").write_text(f"# newest first\n{CALLBACK_SECRETS['service']}\n")
    (tmp / "badmail-secret.txt").write_text(CALLBACK_SECRETS["badmail"] + "\n")
    (tmp / "warm-secret.txt").write_text(CALLBACK_SECRETS["warm"] + "\n")
    return tmp


@pytest.fixture(scope="session")
def server(serve_dir: Path, receiver: Receiver) -> Iterator[str]:
    """The base URL of the shared `perfkit serve`."""
    require_redis()
    args = [
        "--cache", REDIS_URL, "--jobs", f"sqlite:///{serve_dir / 'jobs.db'}",
        "--token-file", str(serve_dir / "tokens.txt"), "--encryption-key-file", str(serve_dir / "keys.txt"),
        "--purge-url", receiver.url + "/purge", "--max-body", "64KiB",
        "--callback-secret-file", str(serve_dir / "callback-secrets.txt"),
        "--tasks", "tests.serve.tasks:jobs",
        "--job-type", "video=remote retries=2 backoff=0",
        "--job-type", f"email={receiver.url}/jobs/email retries=1",
        "--job-type", f"badmail={receiver.url}/jobs/fail retries=1 backoff=0 "
                      f"secret_file={serve_dir / 'badmail-secret.txt'}",
    ]  # fmt: skip
    if HAS_LOADER:
        args += [
            "--loader", f"slides={receiver.url}/batch/slides max_batch=50",
            "--loader", f"broken={receiver.url}/batch-broken",
            "--loader", f"warm={receiver.url}/batch/warm shared=loaders ttl=60 "
                        f"secret_file={serve_dir / 'warm-secret.txt'}",
        ]  # fmt: skip
    with serve_process(serve_dir, *args, env={"PERFKIT_JOBS_LEASE": str(LEASE)}) as url:
        yield url


@pytest.fixture
def ns() -> str:
    """A namespace of this test's own (its keys are removed after it)."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def app(server: str, ns: str) -> AsyncIterator[ServeClient]:
    """A client with the read/write token, in the test's namespace; the namespace is cleared after."""
    async with ServeClient(server, TOKENS["app"], namespace=ns) as client:
        yield client
    async with ServeClient(server, TOKENS["admin"]) as admin:
        await admin.http.delete(f"/v1/cache/{ns}")


@pytest.fixture
async def admin(server: str, ns: str) -> AsyncIterator[ServeClient]:
    async with ServeClient(server, TOKENS["admin"], namespace=ns) as client:
        yield client


@pytest.fixture
async def reader(server: str, ns: str) -> AsyncIterator[ServeClient]:
    async with ServeClient(server, TOKENS["reader"], namespace=ns) as client:
        yield client
