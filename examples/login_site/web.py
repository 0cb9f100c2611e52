"""What every page shares: the site's parts, rendering, flash messages, CSRF-checked forms and
who is signed in."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates
from twostep_client import AsyncTwostepClient

from examples.login_site.config import SiteConfig
from examples.login_site.store import User, Users

FlashKind = Literal["error", "info", "success"]


@dataclass(frozen=True)
class Site:
    config: SiteConfig
    users: Users
    twostep: AsyncTwostepClient
    templates: Jinja2Templates

    def render(
        self,
        request: Request,
        template: str,
        status: int = 200,
        *,
        error: str | None = None,
        **context: Any,
    ) -> Response:
        """``error``: what went wrong with the form being shown again, above it."""
        flashes = request.session.pop("flash", [])
        context["flashes"] = [*flashes, ["error", error]] if error else flashes
        context.setdefault("sandbox_url", self.config.sandbox_url)
        return self.templates.TemplateResponse(request, template, context, status_code=status)

    async def signed_in(self, request: Request) -> User | None:
        user_id = request.session.get("user")
        if not isinstance(user_id, str):
            return None
        return await run_in_threadpool(self.users.get, user_id)


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def read_form(request: Request) -> dict[str, str]:
    """The posted form's fields, once its CSRF token matches the session's."""
    form = await request.form(max_files=0, max_fields=10)
    sent = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not (isinstance(sent, str) and isinstance(expected, str)) or not hmac.compare_digest(
        sent.encode(), expected.encode()
    ):
        raise HTTPException(403, "This form has expired. Go back, reload the page and try again.")
    return {name: value for name, value in form.items() if isinstance(value, str)}


def flash(request: Request, kind: FlashKind, text: str) -> None:
    request.session.setdefault("flash", []).append([kind, text])


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def start_session(request: Request, **values: Any) -> None:
    """A fresh session at every change of who is signed in: nobody can plant a session id
    before a login and share it after."""
    request.session.clear()
    request.session.update(values)
    csrf_token(request)


def client_ip(request: Request) -> str | None:
    # Behind a proxy this would be the proxy's address: configure uvicorn's --proxy-headers.
    return request.client.host if request.client else None
