"""Signed HTTP callbacks (Standard Webhooks): the spec's test vector, the service's POSTs (callback jobs
and loader batches) verified by docs/service.md's snippet, per-type and per-loader secrets, and no
callback type or HTTP loader without a secret unless allowed."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from perfkit.errors import ConfigurationError
from perfkit.jobs import JobQueue
from perfkit.serve import ServeClient
from perfkit.serve.config import ServeConfig
from perfkit.serve.job_types import JobTypes, parse_job_type
from perfkit.serve.loads_api import LoadsService
from perfkit.serve.signing import Secrets, parse_secret, read_secrets
from tests.serve._server import CALLBACK_SECRETS, ROOT, Receiver
from tests.serve.test_jobs import finished

# the Standard Webhooks reference vector (its libraries' tests, and the spec's)
VECTOR = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
          b'{"test": 2432232314}', "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")  # fmt: skip


def doc_verify() -> Any:
    """The `verify` function of docs/service.md's verification snippet, as written."""
    text = (ROOT / "docs" / "service.md").read_text()
    match = re.search(r"<!-- verify-example -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/service.md lost its verification snippet"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "docs/service.md", "exec"), namespace)  # noqa: S102 - our own doc
    return namespace["verify"]


def test_signatures_match_the_standard_webhooks_test_vector() -> None:
    """The signature of the spec's vector is the spec's, and the doc's snippet accepts it (and only it)."""
    secret, msg_id, timestamp, body, expected = VECTOR
    assert Secrets((parse_secret("s", secret),)).sign(msg_id, timestamp, body) == expected
    verify = doc_verify()
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": expected}
    assert verify(secret, headers, body, tolerance=10**10)
    assert not verify(secret, headers, body + b" ", tolerance=10**10)
    assert not verify(secret, headers, body)  # 2021's timestamp is outside the default tolerance


def test_every_secret_signs_so_a_secret_can_be_rotated() -> None:
    """Two secrets give two space-separated signatures; a receiver holding either verifies."""
    old, new = (parse_secret("s", "whsec_" + base64.b64encode(bytes([n]) * 32).decode()) for n in (1, 2))
    headers = Secrets((new, old)).headers("job-1", b"{}")
    assert headers["webhook-signature"].count("v1,") == 2
    verify = doc_verify()
    for key in (old, new):
        assert verify("whsec_" + base64.b64encode(key).decode(), headers, b"{}")


async def test_the_service_signs_each_callback(app: ServeClient, receiver: Receiver) -> None:
    """A callback POST carries webhook-id (the job's id), a fresh timestamp and a signature of the exact
    body with the service's secret; a type with its own secret_file is signed with that one instead."""
    verify = doc_verify()
    job = await app.enqueue("email", "s@example.com")
    bad = await app.enqueue("badmail", "t@example.com")
    await finished(app, job["id"])
    await finished(app, bad["id"])
    sent = {p: (h, b) for p, h, b in receiver.raw if h.get("webhook-id") in (job["id"], bad["id"])}
    headers, body = sent["/jobs/email"]
    assert headers["webhook-id"] == job["id"] and headers["content-type"] == "application/json"
    assert verify(CALLBACK_SECRETS["service"], headers, body)
    assert not verify(CALLBACK_SECRETS["badmail"], headers, body)
    headers, body = sent["/jobs/fail"]
    assert verify(CALLBACK_SECRETS["badmail"], headers, body)
    assert not verify(CALLBACK_SECRETS["service"], headers, body)


async def test_no_secret_is_shown_by_the_service(app: ServeClient) -> None:
    """Neither the job types nor the OpenAPI document carry a secret (nor its base64 key)."""
    shown = (await app.http.get("/v1/job-types")).text + (await app.http.get("/v1/openapi.json")).text
    for secret in CALLBACK_SECRETS.values():
        assert secret not in shown and secret.removeprefix("whsec_") not in shown


def test_a_callback_type_without_a_secret_is_refused_unless_allowed(tmp_path: Path) -> None:
    """No secret for a callback type: a ConfigurationError naming the way out; allowed: it is added."""
    spec = parse_job_type("hook=http://127.0.0.1:1/hook")
    with pytest.raises(ConfigurationError, match="--allow-unsigned-callbacks") as refused:
        JobTypes(JobQueue(f"sqlite:///{tmp_path / 'a.db'}")).add(spec)
    assert "'hook'" in str(refused.value)
    allowed = JobTypes(JobQueue(f"sqlite:///{tmp_path / 'b.db'}"), allow_unsigned=True)
    allowed.add(spec)
    assert allowed.kinds == {"hook": "callback"}


def test_bad_secrets_are_refused_without_showing_them(tmp_path: Path, monkeypatch: Any) -> None:
    """A secret that is not base64, or too short, is refused naming the file and line, never the text."""
    short = "whsec_" + base64.b64encode(b"sixteen bytes!!!").decode()
    path = tmp_path / "secrets.txt"
    path.write_text(f"# comment\n{short}\n")
    with pytest.raises(ConfigurationError, match="line 2") as refused:
        read_secrets("callback_secret_file", str(path))
    assert short.removeprefix("whsec_") not in str(refused.value)
    monkeypatch.setenv("PERFKIT_SERVE_CALLBACK_SECRET", "whsec_not*base64*at*all")
    with pytest.raises(ConfigurationError, match="PERFKIT_SERVE_CALLBACK_SECRET") as refused:
        ServeConfig.resolve()
    assert "not*base64" not in str(refused.value)


def test_the_config_repr_shows_no_secret(monkeypatch: Any) -> None:
    """ServeConfig's repr (what a debug log would print) has no key in it."""
    monkeypatch.setenv("PERFKIT_SERVE_CALLBACK_SECRET", CALLBACK_SECRETS["service"])
    config = ServeConfig.resolve()
    assert config.callback_secrets
    key = parse_secret("s", CALLBACK_SECRETS["service"])
    assert repr(key) not in repr(config) and CALLBACK_SECRETS["service"] not in repr(config)


async def test_the_service_signs_each_loader_batch(app: ServeClient, receiver: Receiver) -> None:
    """An HTTP loader's batch POST is signed like a callback (a fresh `batch_` webhook-id per call), with
    the service's secret, or with the loader's own secret_file."""
    verify = doc_verify()
    slides, warm = [f"{app.namespace}-s"], [f"{app.namespace}-w"]
    await app.load("slides", slides, wait=True)
    await app.load("warm", warm, wait=True)
    sent = {p: (h, b) for p, h, b in receiver.raw if p.startswith("/batch/") and app.namespace.encode() in b}
    headers, body = sent["/batch/slides"]
    assert headers["webhook-id"].startswith("batch_") and headers["content-type"] == "application/json"
    assert json.loads(body) == {"loader": "slides", "keys": slides}
    assert verify(CALLBACK_SECRETS["service"], headers, body)
    assert not verify(CALLBACK_SECRETS["warm"], headers, body)
    headers, body = sent["/batch/warm"]
    assert verify(CALLBACK_SECRETS["warm"], headers, body)
    assert not verify(CALLBACK_SECRETS["service"], headers, body)
    assert headers["webhook-id"] != sent["/batch/slides"][0]["webhook-id"]


def test_an_http_loader_without_a_secret_is_refused_unless_allowed(tmp_path: Path) -> None:
    """No secret for a URL loader: a ConfigurationError naming it and the way out; allowed, or a Python
    batch function (nothing is POSTed): it is configured."""
    spec = "pages=http://127.0.0.1:1/batch"
    with pytest.raises(ConfigurationError, match="--allow-unsigned-callbacks") as refused:
        LoadsService((spec,), _no_cache)
    assert "loader 'pages'" in str(refused.value)
    assert set(LoadsService((spec,), _no_cache, allow_unsigned=True).loaders) == {"pages"}
    assert set(LoadsService(("fn=tests.serve.test_signing:_no_cache",), _no_cache).loaders) == {"fn"}
    with pytest.raises(ConfigurationError, match="secret_file= is for HTTP"):
        LoadsService((f"fn=tests.serve.test_signing:_no_cache secret_file={tmp_path}/s",), _no_cache)


def _no_cache(name: str) -> Any:
    raise AssertionError("no shared cache is asked for")
