"""The HTTP API: decode, authenticate, call one shared service, map errors. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api.deps import ApiContext, ApiKeyDep
from api.errors import install_error_handlers
from api.middleware import BodyLimit, NoStore, RequestObserver
from api.openapi import install_schema
from api.routes import health, limits, lockouts, users, verifications, webhooks
from shared.kit.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None,
    build_context: Callable[[Settings], ApiContext] = ApiContext.build,
) -> FastAPI:
    """``build_context`` is the composition root; tests pass one wired with fakes."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = build_context(settings)
        app.state.context = context
        await context.open()
        try:
            yield
        finally:
            await context.close()

    public_docs = settings.docs_public
    app = FastAPI(
        title="twostep",
        version="0.1.0",
        summary="Two-step verification for login servers, over Twilio Verify.",
        lifespan=lifespan,
        # In production the schema is for key holders only, and there is no interactive page.
        openapi_url="/openapi.json" if public_docs else None,
        docs_url="/docs" if public_docs else None,
        redoc_url=None,
        # Operation ids are the routes' names (enroll_factor, create_check, …): what a client
        # generated from the document calls its functions.
        generate_unique_id_function=lambda route: route.name,
    )
    install_error_handlers(app)
    install_schema(app, settings)
    app.include_router(health.router)
    app.include_router(verifications.router)
    app.include_router(users.router)
    app.include_router(lockouts.router)
    app.include_router(webhooks.router)
    app.include_router(limits.router)
    if not public_docs:
        _serve_schema_to_key_holders(app)
    # Added last runs first: requests are counted (413s too), then the body limit runs before
    # anything reads or authenticates.
    app.add_middleware(NoStore)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestObserver)
    return app


def _serve_schema_to_key_holders(app: FastAPI) -> None:
    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(_api_key: ApiKeyDep) -> dict[str, Any]:
        return app.openapi()
