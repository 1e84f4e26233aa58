"""SpawnIt's web API (FastAPI), started by ``spawnit serve``.

What it serves so far: health, and the service catalog generated from the
catalog's classes (each service's parameter JSON Schema). Errors are JSON.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from .. import __version__
from ..services import ParameterError, catalog_document, get_service


def create_app() -> FastAPI:
    app = FastAPI(
        title="SpawnIt",
        version=__version__,
        description="Deploy catalog services on Docker or AWS without touching infrastructure code.",
    )

    @app.exception_handler(HTTPException)
    async def json_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/api/catalog", tags=["catalog"], summary="Every service with its category, description and parameter schema")
    def catalog() -> dict[str, Any]:
        return catalog_document()

    @app.get("/api/catalog/{service}", tags=["catalog"], summary="One service's parameter JSON Schema")
    def catalog_service(service: str) -> dict[str, Any]:
        try:
            return get_service(service).schema()
        except ParameterError as error:
            raise HTTPException(status_code=404, detail=str(error)) from None

    return app
