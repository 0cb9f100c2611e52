"""The HTTP API: decode, authenticate, call one shared service, map errors. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api.deps import ApiKeyDep
from api.draining import drain_when_stopped
from api.errors import install_error_handlers
from api.idempotency import AnswerOnce
from api.middleware import BodyLimit, NoStore, RequestObserver
from api.openapi import install_schema
from api.routes import health, limits, lockouts, users, verifications, webhooks
from shared.bootstrap import Adapters, bootstrap
from shared.kit.logging import configure_logging
from shared.kit.settings import Settings, get_settings
from shared.kit.startup import ensure_startable


def create_app(settings: Settings | None = None, adapters: Adapters | None = None) -> FastAPI:
    """The API over a core of its own (``shared.bootstrap``); tests pass ``adapters`` (fakes).
    It refuses to start with what a production API must not run with, as the command line
    does: an app made by any server (``uvicorn api.app:create_app``) is checked the same way."""
    settings = settings or get_settings()
    ensure_startable(settings, "api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        core = bootstrap(settings, adapters, main="twostep.api")
        app.state.core = core
        app.state.answer_once = AnswerOnce.of(core)
        if core.listener is not None:
            core.listener.start()
        restore_signals = drain_when_stopped(core.listener)
        await core.warm_up()
        try:
            yield
        finally:
            restore_signals()
            await core.close()

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
    # Added last runs first: every /v1 answer is marked no-store, a bug's 500 and a 413 too;
    # requests are counted and get their id (413s too); then the body limit runs before anything
    # reads or authenticates.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestObserver)
    app.add_middleware(NoStore)
    return app


def served_app() -> FastAPI:
    """The app as ``twostep api`` serves it (uvicorn's factory): each of ``--workers N``'s
    processes imports it afresh, so each configures logging as the settings say — else its lines
    come out in structlog's default console format, whatever TWOSTEP_LOG_FORMAT says."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format, process="api")
    return create_app(settings)


def _serve_schema_to_key_holders(app: FastAPI) -> None:
    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(_api_key: ApiKeyDep) -> dict[str, Any]:
        return app.openapi()
