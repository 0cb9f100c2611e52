"""Sign up, sign in with a password (and on to the second step when it is on), sign out."""

from __future__ import annotations

import logging
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twostep_client import TwostepError

from examples.login_site import words
from examples.login_site.second_step import begin_second_step
from examples.login_site.store import EmailTaken
from examples.login_site.verifying import problem
from examples.login_site.web import (
    MAX_PASSWORD,
    Site,
    check_password,
    client_ip,
    flash,
    read_form,
    redirect,
    sign_in,
    start_session,
)

log = logging.getLogger("login_site")

MIN_PASSWORD = 8  # NIST SP 800-63B's floor for a password the user chose


class AccountPages:
    def __init__(self, site: Site) -> None:
        self.site = site

    def routes(self) -> list[Route]:
        return [
            Route("/", self.home, methods=["GET"]),
            Route("/signup", self.signup_form, methods=["GET"]),
            Route("/signup", self.signup, methods=["POST"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
        ]

    async def home(self, request: Request) -> Response:
        return redirect("/settings" if "user" in request.session else "/login")

    async def signup_form(self, request: Request) -> Response:
        return self.site.render(request, "signup.html")

    async def signup(self, request: Request) -> Response:
        form = await read_form(request)
        email, password = _email(form.get("email", "")), form.get("password", "")
        trouble = _email_problem(email) or password_problem(password)
        if trouble:
            return self.site.render(request, "signup.html", 400, email=email, error=trouble)
        # Counted before the hash and the look-up: "this email is taken" answers whether an
        # account exists, so asking it is limited too.
        wait = self.site.throttle.signup_wait(client_ip(request))
        if wait is not None:
            busy = words.too_many_signups(wait)
            return self.site.render(request, "signup.html", 429, email=email, error=busy)
        try:
            user = await run_in_threadpool(self.site.users.create, email, password)
        except EmailTaken:
            taken = "An account with this email already exists. Sign in instead."
            return self.site.render(request, "signup.html", 409, email=email, error=taken)
        start_session(request, user=user.id, password_at=time.time())
        flash(request, "success", "Welcome! Now protect your account with two-step verification.")
        return redirect("/settings")

    async def login_form(self, request: Request) -> Response:
        return self.site.render(request, "login.html")

    async def login(self, request: Request) -> Response:
        form = await read_form(request)
        email, typed_at = _email(form.get("email", "")), time.time()
        checked = await check_password(self.site, request, email, form.get("password", ""))
        if checked.wait is not None:
            busy = words.too_many_passwords(checked.wait)
            return self.site.render(request, "login.html", 429, email=email, error=busy)
        user = checked.user
        if user is None:
            wrong = "That email and password don't match an account."
            return self.site.render(request, "login.html", 401, email=email, error=wrong)
        try:
            factors = await self.site.twostep.list_factors(user.id)
        except TwostepError as error:
            # Fail closed: without twostep's answer nobody can tell whether a second step is
            # due, and a password alone must not let in a user who turned it on.
            log.warning("cannot read a user's two-step status: %s", problem(error))
            unavailable = words.UNAVAILABLE
            return self.site.render(request, "login.html", 503, email=email, error=unavailable)
        if not factors.two_step_enabled:
            await sign_in(self.site, request, user.id, password_at=typed_at, second_step=False)
            return redirect("/settings")
        await begin_second_step(self.site, request, user.id)
        return redirect("/login/code")

    async def logout(self, request: Request) -> Response:
        await read_form(request)
        start_session(request)
        flash(request, "info", "You're signed out.")
        return redirect("/login")


def _email(typed: str) -> str:
    return typed.strip().lower()


def _email_problem(email: str) -> str | None:
    if "@" not in email.strip("@") or len(email) > 254 or any(c.isspace() for c in email):
        return "Type your email address, e.g. ada@example.com."
    return None


def password_problem(password: str) -> str | None:
    """What is wrong with a new password, at sign-up and at a change alike."""
    if len(password) < MIN_PASSWORD:
        return f"Choose a password of at least {MIN_PASSWORD} characters."
    if len(password) > MAX_PASSWORD:
        return f"Choose a password of at most {MAX_PASSWORD} characters."
    return None
