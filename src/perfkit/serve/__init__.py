"""`perfkit serve`: perfkit's cache, job queue and monitor as an HTTP service for any stack.

REST under `/v1` (OpenAPI 3.1 at `/v1/openapi.json`), bearer tokens with scopes, problem+json errors;
clients: `perfkit.serve.client.ServeClient` (Python, httpx) and `clients/typescript` (fetch, no deps).
See docs/service.md.
"""

from perfkit.serve.app import ServeApp, build_app
from perfkit.serve.client import ServeClient, ServeError
from perfkit.serve.config import ServeConfig

__all__ = ["ServeApp", "ServeClient", "ServeConfig", "ServeError", "build_app"]
