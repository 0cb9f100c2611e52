"""The site's parts, put together: pages, sessions, CSRF, security headers, static files, and
the receiver of twostep's webhooks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from twostep_client import AsyncTwostepClient

from examples.login_site import words
from examples.login_site.accounts import AccountPages
from examples.login_site.config import SiteConfig
from examples.login_site.confirming import ConfirmPages
from examples.login_site.extra_factors import ExtraFactorPages
from examples.login_site.notices import WEBHOOK_PATH, Notices, WebhookReceiver
from examples.login_site.passkey_pages import PasskeyPages
from examples.login_site.second_step import SecondStepPages
from examples.login_site.sessions import SessionMiddleware, SessionStore
from examples.login_site.settings_pages import SettingsPages
from examples.login_site.store import Users
from examples.login_site.throttle import Throttle
from examples.login_site.web import Site, csrf_token

HERE = Path(__file__).resolve().parent

# Pages carry codes, phone numbers (masked) and recovery codes: never cached, never framed.
# One script, the site's own file for the passkey buttons (static/passkeys.js): no inline
# script, nothing from elsewhere, and it posts forms only (no fetch, so no connect-src).
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    if not (static and name == "Cache-Control"):
                        headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _page_globals(request: Request) -> dict[str, Any]:
    token = csrf_token(request)
    return {
        "csrf_field": Markup('<input type="hidden" name="csrf_token" value="{}">').format(token),
        "signed_in": "user" in request.session,
        "passkey_errors": words.PASSKEY_BROWSER_ERRORS,
        "passkey_script_off": words.PASSKEY_SCRIPT_OFF,
    }


def _site(config: SiteConfig, twostep: AsyncTwostepClient) -> Site:
    return Site(
        config=config,
        users=Users(config.database),  # first: the other tables' queries read it
        sessions=SessionStore(
            config.database,
            idle_seconds=config.idle_seconds,
            absolute_seconds=config.absolute_seconds,
        ),
        notices=Notices(config.database),
        throttle=Throttle(
            per_email=config.wrong_passwords_per_email,
            per_ip=config.wrong_passwords_per_ip,
            signups_per_ip=config.signups_per_ip,
        ),
        twostep=twostep,
        templates=Jinja2Templates(directory=HERE / "templates", context_processors=[_page_globals]),
    )


def create_app(config: SiteConfig, twostep: AsyncTwostepClient | None = None) -> Starlette:
    """The site; ``twostep``: a client of one's own (tests give one a fake transport)."""
    twostep = twostep or AsyncTwostepClient(config.twostep_url, config.twostep_api_key)
    site = _site(config, twostep)
    settings = SettingsPages(site)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await twostep.aclose()

    async def problem_page(request: Request, error: Exception) -> Response:
        status = error.status_code if isinstance(error, HTTPException) else 500
        detail = error.detail if isinstance(error, HTTPException) else "Something went wrong."
        if "session" not in request.scope:
            # A path without a session (a stylesheet, the webhook receiver): no page to render.
            return PlainTextResponse(detail, status_code=status)
        return site.render(request, "error.html", status, code=status, detail=detail)

    return Starlette(
        routes=[
            *AccountPages(site).routes(),
            *SecondStepPages(site).routes(),
            *settings.routes(),
            *ExtraFactorPages(site).routes(),
            *PasskeyPages(site).routes(),
            *ConfirmPages(site, carry_on=settings.carry_on).routes(),
            *WebhookReceiver(site.notices, config.webhook_secrets).routes(),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                store=site.sessions,
                https_only=config.https_only,
                # Neither a stylesheet nor twostep's deliveries touch a session.
                exempt=("/static/", WEBHOOK_PATH),
            ),
        ],
        exception_handlers={HTTPException: problem_page},
        lifespan=lifespan,
    )
