"""Security of `perfkit serve`: nothing open without a token, scopes, per-token rate limits, body limits,
and the command refusing to start with no token at all."""

from __future__ import annotations

import subprocess
import sys

import httpx

from perfkit.serve.problems import Problem
from perfkit.serve.tokens import Authenticator, parse_tokens
from tests.serve._server import ROOT, TOKENS

ENDPOINTS = [
    ("GET", "/v1/cache/default/keys/k"), ("PUT", "/v1/cache/default/keys/k"),
    ("DELETE", "/v1/cache/default/keys/k"), ("POST", "/v1/cache/default/batch-get"),
    ("POST", "/v1/cache/default/batch-set"), ("POST", "/v1/cache/default/invalidate"),
    ("DELETE", "/v1/cache/default"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs"), ("GET", "/v1/jobs/q:1"),
    ("DELETE", "/v1/jobs/q:1"), ("GET", "/v1/job-types"), ("POST", "/v1/workers/claim"),
    ("POST", "/v1/jobs/q:1/heartbeat"), ("POST", "/v1/jobs/q:1/complete"), ("POST", "/v1/jobs/q:1/fail"),
    ("POST", "/v1/loads"), ("GET", "/v1/loads/x"), ("POST", "/v1/loads/preload"), ("GET", "/v1/loaders"),
    ("GET", "/v1/metrics"), ("GET", "/v1/health"), ("GET", "/v1/reports"), ("GET", "/v1/openapi.json"),
]  # fmt: skip


async def test_every_endpoint_needs_a_token(server: str) -> None:
    """No endpoint answers without a valid bearer token: 401 problem with WWW-Authenticate."""
    async with httpx.AsyncClient(base_url=server) as client:
        for method, path in ENDPOINTS:
            for headers in (
                {},
                {"authorization": "Bearer not-a-token-of-ours-at-all"},
                {"authorization": "Basic x"},
            ):
                response = await client.request(method, path, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["content-type"] == "application/problem+json"
                assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_prefix_of_a_token_is_not_a_token(server: str) -> None:
    """The token is compared whole: its first characters, or it plus more, are refused."""
    async with httpx.AsyncClient(base_url=server) as client:
        for token in (TOKENS["admin"][:-1], TOKENS["admin"] + "x", TOKENS["admin"].upper()):
            response = await client.get("/v1/metrics", headers={"authorization": f"Bearer {token}"})
            assert response.status_code == 401


async def test_scopes_nest_read_write_admin(server: str) -> None:
    """read may read, not write; write may write, not administer; admin may do everything."""
    async with httpx.AsyncClient(base_url=server) as client:

        async def status(token: str, method: str, path: str, **kw: object) -> int:
            headers = {"authorization": f"Bearer {TOKENS[token]}"}
            return (await client.request(method, path, headers=headers, **kw)).status_code  # type: ignore[arg-type]

        assert await status("reader", "GET", "/v1/job-types") == 200
        assert await status("reader", "PUT", "/v1/cache/sec/keys/k", json={"value": 1}) == 403
        assert await status("app", "PUT", "/v1/cache/sec/keys/k", json={"value": 1}) == 204
        assert await status("app", "GET", "/v1/metrics") == 403
        assert await status("app", "DELETE", "/v1/cache/sec") == 403
        assert await status("admin", "GET", "/v1/metrics") == 200
        assert await status("admin", "DELETE", "/v1/cache/sec") == 200
        forbidden = await client.put("/v1/cache/sec/keys/k", json={"value": 1},
                                     headers={"authorization": f"Bearer {TOKENS['reader']}"})  # fmt: skip
        assert "needs 'write'" in forbidden.json()["detail"]


async def test_a_token_over_its_rate_limit_gets_429_with_retry_after(server: str) -> None:
    """The `limited` token (3/minute): the fourth request is 429 with Retry-After; others are unaffected."""
    async with httpx.AsyncClient(base_url=server) as client:
        limited = {"authorization": f"Bearer {TOKENS['limited']}"}
        codes = [(await client.get("/v1/job-types", headers=limited)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        refused = await client.get("/v1/job-types", headers=limited)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["type"].endswith("/rate-limited")
        other = await client.get("/v1/job-types", headers={"authorization": f"Bearer {TOKENS['app']}"})
        assert other.status_code == 200


async def test_bodies_over_the_limit_are_refused(server: str) -> None:
    """--max-body 64KiB: a bigger body is 413, declared or streamed without a length."""
    async with httpx.AsyncClient(base_url=server, headers={"authorization": f"Bearer {TOKENS['app']}"}) as c:
        big = b"x" * (64 * 1024 + 1)
        declared = await c.put("/v1/cache/sec/keys/big", content=big,
                               headers={"content-type": "application/octet-stream"})  # fmt: skip
        assert declared.status_code == 413

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(17):
                yield b"y" * 4096

        streamed = await c.put("/v1/cache/sec/keys/big", content=chunks(),
                               headers={"content-type": "application/octet-stream"})  # fmt: skip
        assert streamed.status_code == 413
        assert streamed.json()["type"].endswith("/body-too-large")


async def test_malformed_json_and_unknown_paths_are_problems(server: str) -> None:
    """Broken JSON is 400 naming the body; an unknown path 404; a wrong method 405 with Allow."""
    async with httpx.AsyncClient(base_url=server, headers={"authorization": f"Bearer {TOKENS['app']}"}) as c:
        broken = await c.post("/v1/jobs", content=b"{nope", headers={"content-type": "application/json"})
        assert broken.status_code == 400 and broken.json()["errors"][0]["field"] == "body"
        assert (await c.get("/v1/nothing")).status_code == 404
        wrong = await c.patch("/v1/jobs")
        assert wrong.status_code == 405 and "POST" in wrong.headers["allow"]


def test_the_token_check_compares_every_token() -> None:
    """Authenticator compares the presented token with each configured one (hmac.compare_digest)."""
    import hmac
    from unittest import mock

    tokens = parse_tokens(
        "a aaaaaaaaaaaaaaaaaaaa read\nb bbbbbbbbbbbbbbbbbbbb admin\nc cccccccccccccccccccc write", "t"
    )
    auth = Authenticator(tokens)
    with mock.patch("perfkit.serve.tokens.hmac.compare_digest", side_effect=hmac.compare_digest) as compare:
        assert auth.check(b"Bearer aaaaaaaaaaaaaaaaaaaa", "read").name == "a"
    assert compare.call_count == 3  # no early exit on the first match


def test_bad_token_files_are_refused_naming_the_line() -> None:
    """A short token, an unknown scope or a repeated name: a ConfigurationError naming the line."""
    import pytest

    from perfkit.errors import ConfigurationError

    for text, words in [
        ("a short read", "shorter than 16"),
        ("a aaaaaaaaaaaaaaaaaaaa root", "scopes"),
        ("a aaaaaaaaaaaaaaaaaaaa read\na bbbbbbbbbbbbbbbbbbbb read", "used twice"),
        ("a aaaaaaaaaaaaaaaaaaaa read fast", "not a rate"),
    ]:
        with pytest.raises(ConfigurationError, match=words):
            parse_tokens(text, "tokens.txt")
    with pytest.raises(Problem):
        Authenticator([]).check(b"Bearer anything-at-all-here", "read")


def test_the_command_refuses_to_start_without_tokens(tmp_path: object) -> None:
    """`perfkit serve` with no token anywhere exits 2 with one line: nothing is open by default."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PERFKIT_SERVE_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    done = subprocess.run([sys.executable, "-m", "perfkit", "serve", "--port", "1"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "no tokens configured" in done.stderr
