"""The OpenAPI 3.1 document: served, valid, complete, and the source of the TypeScript client's types."""

from __future__ import annotations

import subprocess
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator

from perfkit.serve import ServeClient
from perfkit.serve.tsgen import current_document, generate
from tests.serve._node import CLIENT
from tests.serve._server import ROOT


async def test_the_served_document_is_valid_openapi_3_1(app: ServeClient) -> None:
    """GET /v1/openapi.json is an OpenAPI 3.1 document that openapi-spec-validator accepts."""
    document = await app.openapi()
    assert document["openapi"] == "3.1.0"
    errors = [e.message for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


async def test_every_route_is_documented_with_its_scope_and_users_endpoint(app: ServeClient) -> None:
    """Each endpoint is in the document with an operationId, its bearer scope, and problem answers."""
    document = await app.openapi()
    operations = {op["operationId"]: op for methods in document["paths"].values() for op in methods.values()}
    assert len(operations) == 24
    for op_id, op in operations.items():
        assert op["security"] and op["x-perfkit-scope"] in ("read", "write", "admin"), op_id
        assert op["responses"]["401"]["content"]["application/problem+json"], op_id
    users = {op.get("description", "") for op in operations.values()}
    for endpoint in ["POST /api/performance/cache", "GET /api/performance/load-status/:id",
                     "DELETE /api/performance/jobs/:id", "GET /api/performance/reports"]:  # fmt: skip
        assert any(endpoint in text for text in users), endpoint
    write = document["paths"]["/v1/cache/{namespace}/keys/{key}"]["put"]["requestBody"]["content"]
    assert set(write) == {"application/json", "application/octet-stream"}
    assert document["components"]["schemas"]["CacheWrite"]["additionalProperties"] is False


def test_the_typescript_types_are_generated_from_the_document() -> None:
    """clients/typescript/src/types.ts is exactly what tsgen makes of the document (regenerate on change)."""
    fresh = generate(current_document())
    committed = (CLIENT / "src" / "types.ts").read_text()
    assert committed == fresh, "run: python -m perfkit.serve.tsgen > clients/typescript/src/types.ts"
    cli = subprocess.run([sys.executable, "-m", "perfkit.serve.tsgen"], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""}, timeout=60)  # fmt: skip
    assert cli.stdout == fresh
