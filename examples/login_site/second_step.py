"""The second step of a sign-in: a code to the user's phone (again, or by call) or email, the
authenticator app's code, the passkey's answer (its button's script posts it), a switch from one
to another, or a recovery code instead. Until it is passed, the session holds only the sign-in in
progress."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twostep_client import (
    AsyncTwostepClient,
    Channel,
    TwostepError,
    Verification,
    VerificationNotPending,
)

from examples.login_site import words
from examples.login_site.verifying import check_code, check_credential, once_sent, passkey_button
from examples.login_site.web import (
    Site,
    client_ip,
    flash,
    read_form,
    redirect,
    sign_in,
    start_session,
)

# What a "send" button may ask for: a phone's text (the default) or call, an email, the app,
# the passkey.
_CHANNELS: dict[str, Channel] = {
    "call": "call",
    "email": "email",
    "totp": "totp",
    "passkey": "passkey",
}
# A password is good for this long without its second step; then the sign-in starts over.
PENDING_SECONDS = 600
NEW_CODE = "Use “Send the code again” below to get a new one."


async def begin_second_step(site: Site, request: Request, user_id: str) -> None:
    """The password was right and two-step is on: remember that much, and send a code to the
    user's preferred factor (twostep's answer names the others: the page offers each)."""
    start_session(request, login={"user": user_id, "since": time.time(), "factors": {}})
    login = request.session["login"]
    await send_code(site, request, login, channel=None)
    if not login["factors"]:  # the challenge was refused: the page still offers every factor
        with contextlib.suppress(TwostepError):
            for factor in (await site.twostep.list_factors(user_id)).verified:
                login["factors"].setdefault(factor.type, factor.id)


async def send_code(
    site: Site, request: Request, login: dict[str, Any], *, channel: Channel | None
) -> None:
    """Send ``login["user"]`` a code (again, or by call) for the second step in progress that
    ``login`` holds, and say on the next page what happened."""
    earlier = login.get("verification")
    try:
        verification = await _resend_or_start(site.twostep, login, channel, client_ip(request))
    except TwostepError as error:
        flash(request, "error", words.refusal(error, new_code=NEW_CODE))
        return
    verification = await once_sent(site.twostep, verification)
    if verification.status == "failed":
        flash(request, "error", words.send_failure(verification))
        return
    # A re-send by call answers with the verification as first sent (its channel: sms).
    channel = channel or verification.channel
    login.update(verification=verification.id, to=verification.to, channel=channel)
    if channel == "call":
        flash(request, "info", f"We're calling {verification.to} to read out your code.")
    elif channel == "email" and earlier is not None:
        flash(request, "info", f"We emailed a code to {verification.to}.")
    elif channel == "totp" and earlier is not None:
        flash(request, "info", "Enter the code your authenticator app shows.")
    elif earlier is not None and channel != "passkey":  # a passkey's: nothing was sent
        same = verification.id == earlier
        flash(request, "info", f"We sent {'the' if same else 'a new'} code to {verification.to}.")


async def _resend_or_start(
    twostep: AsyncTwostepClient, login: dict[str, Any], channel: Channel | None, ip: str | None
) -> Verification:
    switching = channel is not None and _kind(channel) != _kind(login.get("channel"))
    # A passkey's verification sends nothing to send again: a new challenge instead.
    if login.get("verification") and not switching and login.get("channel") != "passkey":
        try:
            return await twostep.resend(login["verification"], channel=channel)
        except VerificationNotPending:
            pass  # expired, used up or canceled: a new code instead
    factors: dict[str, str] = login.setdefault("factors", {})
    factor_id = factors.get(_kind(channel)) if switching else None
    challenge = await twostep.start_challenge(
        login["user"], factor_id=factor_id, channel=channel, client_ip=ip
    )
    factors[_kind(challenge.channel)] = challenge.factor_id
    for other in challenge.alternatives:  # preferred first: the first of each kind is offered
        factors.setdefault(other.type, other.id)
    return challenge


def _kind(channel: str | None) -> str:
    """Which of the user's factors a channel reaches: the phone, the address, the app or the
    passkey (``Factor.type``)."""
    return channel if channel in ("email", "totp", "passkey") else "phone"


def pending(request: Request) -> dict[str, Any] | None:
    login = request.session.get("login")
    if not isinstance(login, dict) or time.time() - float(login.get("since", 0)) > PENDING_SECONDS:
        return None
    return login


def _start_over(request: Request) -> Response:
    start_session(request)
    flash(request, "info", "Please sign in again.")
    return redirect("/login")


class SecondStepPages:
    def __init__(self, site: Site) -> None:
        self.site = site

    def routes(self) -> list[Route]:
        return [
            Route("/login/code", self.code_form, methods=["GET"]),
            Route("/login/code", self.check, methods=["POST"]),
            Route("/login/send", self.send_again, methods=["POST"]),
            Route("/login/recovery", self.recovery_form, methods=["GET"]),
            Route("/login/recovery", self.redeem, methods=["POST"]),
        ]

    async def code_form(self, request: Request) -> Response:
        login = pending(request)
        if login is None:
            return _start_over(request)
        passkey = await passkey_button(
            self.site.twostep, login, action="/login/code", button="Sign in with a passkey"
        )
        return self.site.render(request, "second_step.html", login=login, passkey=passkey)

    async def check(self, request: Request) -> Response:
        form = await read_form(request)
        login = pending(request)
        if login is None:
            return _start_over(request)
        if not login.get("verification"):
            flash(request, "error", "Ask for a code first.")
            return redirect("/login/code")
        twostep, verification = self.site.twostep, login["verification"]
        if login.get("channel") == "passkey":  # the passkey's answer, from its button's script
            outcome = await check_credential(twostep, verification, form)
        else:
            outcome = await check_code(
                twostep, verification, form.get("code", ""), new_code=NEW_CODE
            )
        if not outcome.approved:
            flash(request, "error", outcome.message)
            return redirect("/login/code")
        return await self._signed_in(request, login, "You're signed in.")

    async def send_again(self, request: Request) -> Response:
        form = await read_form(request)
        if pending(request) is None:
            return _start_over(request)
        asked = form.get("channel")
        channel = _CHANNELS.get(asked or "", "sms")
        await send_code(self.site, request, request.session["login"], channel=channel)
        return redirect("/login/code")

    async def recovery_form(self, request: Request) -> Response:
        if pending(request) is None:
            return _start_over(request)
        return self.site.render(request, "recovery.html")

    async def redeem(self, request: Request) -> Response:
        form = await read_form(request)
        login = pending(request)
        if login is None:
            return _start_over(request)
        twostep, typed = self.site.twostep, form.get("code", "").strip()[:64]
        try:
            redemption = await twostep.redeem_recovery_code(
                login["user"], typed, client_ip=client_ip(request)
            )
        except TwostepError as error:
            flash(request, "error", words.refusal(error, new_code=""))
            return redirect("/login/recovery")
        if not redemption.approved:
            flash(request, "error", "That recovery code isn't valid, or it has been used already.")
            return redirect("/login/recovery")
        if login.get("verification"):
            with contextlib.suppress(TwostepError):  # the phone's code is no longer needed
                await twostep.cancel(login["verification"])
        return await self._signed_in(
            request,
            login,
            "You're signed in with a recovery code; it won't work again. "
            "Running low? Make new ones below.",
        )

    async def _signed_in(self, request: Request, login: dict[str, Any], message: str) -> Response:
        since = float(login["since"])
        await sign_in(self.site, request, login["user"], password_at=since, second_step=True)
        flash(request, "success", message)
        return redirect("/settings")
