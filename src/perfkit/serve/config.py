"""`ServeConfig`: the service's settings, resolved once from arguments, `PERFKIT_SERVE_*` and defaults.

The defaults make `perfkit serve` work alone: the cache and the job queue on embedded SQLite files in
the working directory. Nothing is open: without a token (file or environment) every endpoint answers
401, and the command refuses to start without one unless `--allow-no-tokens` says so. Likewise a
callback job type or HTTP loader needs a signing secret (`perfkit.serve.signing`) unless
`allow_unsigned_callbacks`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from perfkit.config import parse_size
from perfkit.errors import ConfigurationError
from perfkit.serve.signing import Secrets, resolve_secrets
from perfkit.serve.tokens import Token, load_tokens
from perfkit.web.config import RateLimit

DEFAULT_CACHE = "sqlite:///perfkit-serve-cache.db"
DEFAULT_JOBS = "sqlite:///perfkit-serve-jobs.db"


@dataclass(frozen=True)
class ServeConfig:
    cache_url: str = DEFAULT_CACHE
    jobs_url: str = DEFAULT_JOBS
    tokens: tuple[Token, ...] = ()
    rate_limit: RateLimit | None = None  # for tokens without their own
    max_body: int = 1024 * 1024
    max_namespaces: int = 100
    default_ttl: float | None = 300.0
    encryption_keys: tuple[str, ...] = ()
    purge_url: str | None = None
    purge_token: str | None = field(default=None, repr=False)
    callback_secrets: Secrets = field(default=Secrets(), repr=False)  # callbacks/loaders without theirs
    allow_unsigned_callbacks: bool = False  # no secret: POST unsigned (else: refused)
    job_types: tuple[str, ...] = ()  # "NAME=remote", "NAME=http://app/hook?retries=3", ...
    tasks: tuple[str, ...] = ()  # MODULE:ATTR of JobQueues whose tasks are served in-process
    loaders: tuple[str, ...] = ()  # "NAME=MODULE:FUNC" or "NAME=http://app/batch"
    concurrency: int = 16  # in-process job slots (Python tasks and HTTP callbacks)
    open_health: bool = False  # /v1/health without a token (for a load balancer's probe)
    otel: bool = False  # OpenTelemetry spans and metrics (`--otel`, PERFKIT_OTEL=1); perfkit[otel] needed

    @classmethod
    def resolve(
        cls,
        *,
        cache_url: str | None = None,
        jobs_url: str | None = None,
        token_file: str | None = None,
        rate_limit: str | None = None,
        max_body: str | int | None = None,
        encryption_key_file: str | None = None,
        purge_url: str | None = None,
        callback_secret_file: str | None = None,
        otel: bool | None = None,
        **rest: object,
    ) -> ServeConfig:
        env = os.environ.get
        if otel is None:
            otel = env("PERFKIT_OTEL", "").strip().lower() in ("1", "true", "yes", "on")
        tokens = load_tokens(token_file or env("PERFKIT_SERVE_TOKEN_FILE"))
        rate_text = rate_limit or env("PERFKIT_SERVE_RATE_LIMIT")
        keys: list[str] = []
        key_file = encryption_key_file or env("PERFKIT_SERVE_ENCRYPTION_KEY_FILE")
        if key_file:
            try:
                with open(key_file, encoding="utf-8") as f:
                    keys = [line.strip() for line in f if line.strip() and not line.startswith("#")]
            except OSError as exc:
                raise ConfigurationError(
                    "encryption_key_file", f"cannot read {key_file}: {exc.strerror}"
                ) from None
        elif env("PERFKIT_SERVE_ENCRYPTION_KEYS"):
            keys = [k.strip() for k in env("PERFKIT_SERVE_ENCRYPTION_KEYS", "").split(",") if k.strip()]
        body = parse_size("max_body", max_body or env("PERFKIT_SERVE_MAX_BODY") or "1MiB")
        config = cls(
            cache_url=cache_url or env("PERFKIT_SERVE_CACHE_URL") or DEFAULT_CACHE,
            jobs_url=jobs_url or env("PERFKIT_SERVE_JOBS_URL") or DEFAULT_JOBS,
            tokens=tuple(tokens),
            rate_limit=RateLimit.parse(rate_text, "rate_limit") if rate_text else None,
            max_body=body,
            encryption_keys=tuple(keys),
            purge_url=purge_url or env("PERFKIT_SERVE_PURGE_URL"),
            purge_token=env("PERFKIT_SERVE_PURGE_TOKEN"),
            callback_secrets=resolve_secrets(
                callback_secret_file, "PERFKIT_SERVE_CALLBACK_SECRET_FILE", "PERFKIT_SERVE_CALLBACK_SECRET"
            ),
            otel=otel,
            **rest,  # type: ignore[arg-type]
        )
        if config.max_namespaces < 1:
            raise ConfigurationError("max_namespaces", "must be at least 1")
        if config.default_ttl is not None and not 0 < config.default_ttl <= 315_360_000:
            raise ConfigurationError(
                "default_ttl", f"{config.default_ttl!r} is not seconds in (0, ten years]"
            )
        if config.concurrency < 1:
            raise ConfigurationError("concurrency", "must be at least 1")
        return config
