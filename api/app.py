"""The HTTP API: decode, authenticate, call one shared service, map errors. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deps import ApiContext
from api.errors import install_error_handlers
from api.routes import health, limits, users, verifications
from shared.settings import Settings, get_settings


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

    app = FastAPI(
        title="twostep",
        version="0.1.0",
        summary="Two-step verification for login servers, over Twilio Verify.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(verifications.router)
    app.include_router(users.router)
    app.include_router(limits.router)
    return app
