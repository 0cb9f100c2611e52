"""What every page shares: the site's parts, rendering, flash messages, CSRF-checked forms, who
is signed in, passwords checked under the throttle, and how recently the user proved who they
are."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates
from twostep_client import AsyncTwostepClient

from examples.login_site import words
from examples.login_site.config import SiteConfig
from examples.login_site.notices import Notices
from examples.login_site.sessions import SessionStore, renew
from examples.login_site.store import User, Users
from examples.login_site.throttle import Throttle

FlashKind = Literal["error", "info", "success", "warning"]
MAX_PASSWORD = 1024  # scrypt reads all of it: no megabyte "passwords"


@dataclass(frozen=True)
class Site:
    config: SiteConfig
    users: Users
    sessions: SessionStore
    notices: Notices
    throttle: Throttle
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


@dataclass(frozen=True)
class PasswordCheck:
    user: User | None  # the password matched this user's
    wait: float | None = None  # refused unread: too many wrong ones, for this many seconds


async def check_password(site: Site, request: Request, email: str, password: str) -> PasswordCheck:
    """Every password the site reads, at sign-in or to confirm a change, goes through here."""
    with site.throttle.password_attempt(email, client_ip(request)) as attempt:
        if attempt.wait is not None:
            return PasswordCheck(None, attempt.wait)
        user = await run_in_threadpool(site.users.authenticate, email, password[:MAX_PASSWORD])
        attempt.right = user is not None
        return PasswordCheck(user)


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
    """A fresh session, under a new id, at every change of who is signed in: nobody can plant
    a session id before a login and share it after."""
    renew(request)
    request.session.clear()
    request.session.update(values)
    csrf_token(request)


async def sign_in(
    site: Site, request: Request, user_id: str, *, password_at: float, second_step: bool
) -> None:
    """``user_id`` is in: a new session, stamped with the proofs just given, and the security
    notices that arrived since the user's last sign-in, each shown this once."""
    proofs: dict[str, float] = {"password_at": password_at}
    if second_step:
        proofs["second_step_at"] = time.time()
    start_session(request, user=user_id, **proofs)
    for notice in await run_in_threadpool(site.notices.take_unshown, user_id):
        flash(request, "warning", words.notice_banner(notice.type, notice.data, notice.occurred_at))


def recently_confirmed(request: Request, within: float, *, two_step_on: bool) -> bool:
    """Whether the user proved who they are within ``within`` seconds: by a second step when
    two-step is on (a password alone is what a thief may have), else by the password."""
    at = request.session.get("second_step_at" if two_step_on else "password_at")
    return isinstance(at, int | float) and 0 <= time.time() - at <= within


def client_ip(request: Request) -> str | None:
    # Behind a proxy this would be the proxy's address: configure uvicorn's --proxy-headers.
    return request.client.host if request.client else None
