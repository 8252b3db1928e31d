"""ASGI apps for the benchmark, created by uvicorn's ``--factory``.

* ``service_app``: the real CDS Hooks service (create_app) with an audit DB in
  ``$BENCH_DIR``; unauthenticated unless ``$BENCH_JWKS`` names a JWK Set file, in which
  case tokens from issuer ``bench-ehr`` are verified exactly as in production.
* ``bare_app``: the floor: a bare Starlette endpoint of the same framework, answering
  every POST with one fixed card (no parsing, no screening, no auth).
"""

from __future__ import annotations

import os
from pathlib import Path

from b12drugs_cdshooks import create_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from b12drugs.config import Config

FIXED_CARD = {
    "cards": [{
        "uuid": "8d5f8b6e-1b0e-4f57-9a8f-0c1d2e3f4a5b",
        "summary": "Metformin can lower vitamin B12; consider a B12 level",
        "indicator": "warning",
        "detail": "**Drugs:** metformin",
        "source": {"label": "b12drugs"},
    }]
}


def service_app() -> Starlette:
    bench = Path(os.environ.get("BENCH_DIR", "."))
    options: dict[str, object] = {"audit_db": str(bench / "bench-audit.sqlite3")}
    jwks = os.environ.get("BENCH_JWKS")
    if jwks:
        options["base_url"] = os.environ["BENCH_BASE_URL"]
        options["issuers"] = {"bench-ehr": {"jwks_file": jwks}}
    return create_app(Config(plugin={"cdshooks": options}), insecure_no_auth=not jwks)


def bare_app() -> Starlette:
    async def card(request: Request) -> Response:
        await request.body()
        return JSONResponse(FIXED_CARD)

    return Starlette(routes=[Route("/cds-services/{service_id}", card, methods=["POST"])])
