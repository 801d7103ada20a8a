"""`perfkit serve`: run the HTTP service over perfkit's cache, job queue and monitor (uvicorn)."""

from __future__ import annotations

import argparse
import logging

from perfkit.errors import ConfigurationError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    add("--port", type=int, default=8787, help="port (8787)")
    add("--cache", dest="cache_url", help="cache URL (default: sqlite:///perfkit-serve-cache.db)")
    add("--jobs", dest="jobs_url", help="job queue URL (default: sqlite:///perfkit-serve-jobs.db)")
    add("--token-file", help="tokens, one 'NAME TOKEN SCOPES [RATE]' a line (or PERFKIT_SERVE_TOKENS)")
    add("--rate-limit", help="per-token rate for tokens without their own, e.g. 1000/second")
    add("--max-body", help="largest request body (1MiB)")
    add("--encryption-key-file", help="AES keys for sensitive values, newest first, one a line")
    add("--purge-url", help="CDN purge hook: POSTed the tags/pattern of every invalidation")
    add("--tasks", action="append", default=[], metavar="MODULE:ATTR",
        help="a JobQueue whose tasks become job types run in this process (repeatable)")  # fmt: skip
    add("--job-type", action="append", default=[], metavar="'NAME=remote|URL [opt=v ...]'",
        help="a job type handled by remote workers or an HTTP callback (repeatable)")  # fmt: skip
    add("--loader", action="append", default=[], metavar="'NAME=MODULE:FUNC|URL [opt=v ...]'",
        help="a batching loader for the lazy-load endpoints (repeatable)")  # fmt: skip
    add("--callback-secret-file", metavar="PATH",
        help="whsec_ secrets signing the POSTs of callback job types and HTTP loaders, newest first, "
             "one a line (or PERFKIT_SERVE_CALLBACK_SECRET_FILE / PERFKIT_SERVE_CALLBACK_SECRET)"
        )  # fmt: skip
    add("--allow-unsigned-callbacks", action="store_true",
        help="start even when a callback job type or HTTP loader has no signing secret "
             "(it POSTs unsigned)")  # fmt: skip
    add("--concurrency", type=int, default=16, help="in-process job slots (16)")
    add("--max-namespaces", type=int, default=100, help="cache namespaces the service holds at most (100)")
    add("--default-ttl", type=float, default=300.0, help="seconds a value lives when no ttl is given (300)")
    add("--open-health", action="store_true", help="answer /v1/health without a token")
    add("--allow-no-tokens", action="store_true", help="start even with no token (every call answers 401)")
    add("--otel", action="store_true", default=None,
        help="OpenTelemetry spans and metrics (the SDK the process sets up; or PERFKIT_OTEL=1)")  # fmt: skip
    add("--log-level", default="info", help="log level (info)")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from perfkit.serve.app import ServeApp
    from perfkit.serve.config import ServeConfig
    from perfkit.serve.server import server_options

    config = ServeConfig.resolve(
        cache_url=args.cache_url, jobs_url=args.jobs_url, token_file=args.token_file,
        rate_limit=args.rate_limit, max_body=args.max_body, encryption_key_file=args.encryption_key_file,
        purge_url=args.purge_url, callback_secret_file=args.callback_secret_file,
        allow_unsigned_callbacks=args.allow_unsigned_callbacks, tasks=tuple(args.tasks),
        job_types=tuple(args.job_type),
        loaders=tuple(args.loader), concurrency=args.concurrency, open_health=args.open_health,
        max_namespaces=args.max_namespaces, default_ttl=args.default_ttl, otel=args.otel,
    )  # fmt: skip
    if not config.tokens and not args.allow_no_tokens:
        raise ConfigurationError(
            "token_file",
            "no tokens configured (--token-file or PERFKIT_SERVE_TOKENS): nothing is open by default",
        )
    if args.port < 0 or args.port > 65535:
        raise ConfigurationError("port", f"{args.port} is not a port number")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = ServeApp(config)
    options = server_options()
    # proxy_headers off: the service never reads the client's address (a token names the caller), and
    # uvicorn's X-Forwarded-* middleware is one more layer on every request
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower(), access_log=False,
                lifespan="on", proxy_headers=False, **options)  # fmt: skip
    return 0
