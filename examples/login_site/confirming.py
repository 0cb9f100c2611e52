""" "Confirm it's you": before a change that would let a thief keep the account (a phone, two-step
off, new recovery codes, a new password), the user must have passed a second step within the
last few minutes — or, without two-step, typed the password. Otherwise the change waits in the
session, a code is sent (or the password asked for), and once it is given the change carries
on. A stolen session alone can then change nothing that matters."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twostep_client import Channel, TwostepError

from examples.login_site import words
from examples.login_site.second_step import send_code
from examples.login_site.store import User
from examples.login_site.verifying import check_code, check_credential, passkey_button
from examples.login_site.web import (
    Site,
    check_password,
    client_ip,
    flash,
    read_form,
    redirect,
)

Action = Literal[
    "phone", "app", "passkey", "passkey-remove", "two-step-off", "recovery-codes", "password"
]
CarryOn = Callable[[Request, User, dict[str, Any]], Awaitable[Response]]
# A change asked for and not confirmed within this long is dropped: ask again.
PENDING_SECONDS = 600
NEW_CODE = "Use “Send the code again” below to get a new one."


def what(action: str, *, two_step_on: bool) -> str:
    """The change waiting, as the rest of "To …, confirm it's you"."""
    if action == "phone":
        return "change your phone" if two_step_on else "turn on two-step verification"
    return {
        "app": "set up an authenticator app",
        "passkey": "add a passkey",
        "passkey-remove": "remove a passkey",
        "two-step-off": "turn off two-step verification",
        "recovery-codes": "make new recovery codes",
        "password": "change your password",
    }.get(action, "make this change")


async def confirm_first(
    site: Site,
    request: Request,
    user: User,
    action: Action,
    *,
    two_step_on: bool,
    send: bool = True,
    **details: Any,
) -> Response:
    """Keep ``action`` (and ``details``, what it needs to carry on) and ask for a proof: with
    two-step on, a code sent now (``send``: the user pressed a button, not followed a link)."""
    pending = {"action": action, "user": user.id, "since": time.time(), "two_step": two_step_on}
    request.session["confirm"] = {**pending, **details}
    if two_step_on and send:
        await send_code(site, request, request.session["confirm"], channel=None)
    return redirect("/confirm")


class ConfirmPages:
    """``carry_on``: what to do with a change once confirmed (the settings pages know)."""

    def __init__(self, site: Site, carry_on: CarryOn) -> None:
        self.site, self.carry_on = site, carry_on

    def routes(self) -> list[Route]:
        return [
            Route("/confirm", self.page, methods=["GET"]),
            Route("/confirm", self.check, methods=["POST"]),
            Route("/confirm/send", self.send, methods=["POST"]),
            Route("/confirm/password", self.password, methods=["POST"]),
            Route("/confirm/recovery", self.recovery, methods=["POST"]),
        ]

    async def _pending(self, request: Request) -> tuple[User, dict[str, Any]] | None:
        user = await self.site.signed_in(request)
        pending = request.session.get("confirm")
        if user is None or not isinstance(pending, dict) or pending.get("user") != user.id:
            return None
        if time.time() - float(pending.get("since", 0)) > PENDING_SECONDS:
            return None
        return user, pending

    async def page(self, request: Request) -> Response:
        waiting = await self._pending(request)
        if waiting is None:
            return redirect("/settings")
        pending = waiting[1]
        doing = what(pending["action"], two_step_on=bool(pending["two_step"]))
        passkey = await passkey_button(
            self.site.twostep, pending, action="/confirm", button="Confirm with a passkey"
        )
        return self.site.render(
            request, "confirm.html", confirm=pending, what=doing, passkey=passkey
        )

    async def check(self, request: Request) -> Response:
        form, waiting = await read_form(request), await self._pending(request)
        if waiting is None or not waiting[1]["two_step"]:
            return _ask_again(request)
        user, pending = waiting
        if not pending.get("verification"):
            flash(request, "error", "Ask for a code first.")
            return redirect("/confirm")
        twostep, verification = self.site.twostep, pending["verification"]
        if pending.get("channel") == "passkey":  # the passkey's answer, from its button's script
            outcome = await check_credential(twostep, verification, form)
        else:
            outcome = await check_code(
                twostep, verification, form.get("code", ""), new_code=NEW_CODE
            )
        if not outcome.approved:
            flash(request, "error", outcome.message)
            return redirect("/confirm")
        request.session["second_step_at"] = time.time()
        return await self._carry_on(request, user, pending)

    async def send(self, request: Request) -> Response:
        form, waiting = await read_form(request), await self._pending(request)
        if waiting is None or not waiting[1]["two_step"]:
            return _ask_again(request)
        channel: Channel = "call" if form.get("channel") == "call" else "sms"
        await send_code(self.site, request, waiting[1], channel=channel)
        return redirect("/confirm")

    async def recovery(self, request: Request) -> Response:
        """A recovery code instead of the phone's: a user who lost the phone can still
        change it."""
        form, waiting = await read_form(request), await self._pending(request)
        if waiting is None or not waiting[1]["two_step"]:
            return _ask_again(request)
        (user, pending), typed = waiting, form.get("code", "").strip()[:64]
        try:
            redemption = await self.site.twostep.redeem_recovery_code(
                user.id, typed, client_ip=client_ip(request)
            )
        except TwostepError as error:
            flash(request, "error", words.refusal(error, new_code=""))
            return redirect("/confirm")
        if not redemption.approved:
            flash(request, "error", "That recovery code isn't valid, or it has been used already.")
            return redirect("/confirm")
        if pending.get("verification"):
            with contextlib.suppress(TwostepError):  # the phone's code is no longer needed
                await self.site.twostep.cancel(pending["verification"])
        request.session["second_step_at"] = time.time()
        return await self._carry_on(request, user, pending)

    async def password(self, request: Request) -> Response:
        form, waiting = await read_form(request), await self._pending(request)
        if waiting is None or waiting[1]["two_step"]:
            return _ask_again(request)
        user, pending = waiting
        checked = await check_password(self.site, request, user.email, form.get("password", ""))
        if checked.wait is not None or checked.user != user:
            wrong = "That password isn't right."
            why = wrong if checked.wait is None else words.too_many_passwords(checked.wait)
            flash(request, "error", why)
            return redirect("/confirm")
        try:
            two_step_on = (await self.site.twostep.list_factors(user.id)).two_step_enabled
        except TwostepError:
            flash(request, "error", words.UNAVAILABLE)
            return redirect("/confirm")
        if two_step_on:  # turned on meanwhile (another tab): now only a code will do
            pending["two_step"] = True
            return redirect("/confirm")
        request.session["password_at"] = time.time()
        return await self._carry_on(request, user, pending)

    async def _carry_on(self, request: Request, user: User, pending: dict[str, Any]) -> Response:
        del request.session["confirm"]
        return await self.carry_on(request, user, pending)


def _ask_again(request: Request) -> Response:
    request.session.pop("confirm", None)
    flash(request, "info", "Please make that change again.")
    return redirect("/settings")
