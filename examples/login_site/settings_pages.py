"""The signed-in user's security settings: two-step on (a phone checked by a code first), a new
phone, two-step off, recovery codes, a new password, the security notices twostep sent and the
events it recorded. Every change that would let a thief keep the account is confirmed first
(``confirming``)."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twostep_client import Event, Factors, TwostepError

from examples.login_site import words
from examples.login_site.accounts import password_problem
from examples.login_site.confirming import Action, confirm_first
from examples.login_site.passkey_pages import remove_passkey, start_enrolment
from examples.login_site.store import User, hash_password
from examples.login_site.verifying import check_code, once_sent, problem
from examples.login_site.web import (
    Site,
    check_password,
    client_ip,
    flash,
    read_form,
    recently_confirmed,
    redirect,
    start_session,
)

log = logging.getLogger("login_site")

NEW_CODE = "Use “Use a different number” below to get a new one."
EVENTS_SHOWN = 20


class SettingsPages:
    def __init__(self, site: Site) -> None:
        self.site = site

    def routes(self) -> list[Route]:
        return [
            Route("/settings", self.settings, methods=["GET"]),
            Route("/settings/two-step", self.enrol_form, methods=["GET"]),
            Route("/settings/two-step/phone", self.enrol_phone, methods=["POST"]),
            Route("/settings/two-step/code", self.enrol_code, methods=["POST"]),
            Route("/settings/two-step/restart", self.enrol_restart, methods=["POST"]),
            Route("/settings/two-step/off", self.turn_off, methods=["POST"]),
            Route("/settings/recovery-codes", self.new_recovery_codes, methods=["POST"]),
            Route("/settings/password", self.change_password, methods=["POST"]),
        ]

    async def _user(self, request: Request) -> User | None:
        return await self.site.signed_in(request)

    async def settings(self, request: Request) -> Response:
        user = await self._user(request)
        if user is None:
            return redirect("/login")
        factors: Factors | None = None
        events: tuple[Event, ...] = ()
        try:
            factors = await self.site.twostep.list_factors(user.id)
            page = await self.site.twostep.events(user.id, limit=2 * EVENTS_SHOWN)
            events = tuple(filter(words.worth_showing, page.events))[:EVENTS_SHOWN]
        except TwostepError as error:
            log.warning("cannot read a user's two-step settings: %s", problem(error))
        kept = await run_in_threadpool(self.site.notices.recent, user.id)
        kinds = {f.id: f.type for f in factors.factors} if factors else {}
        return self.site.render(
            request,
            "settings.html",
            user=user,
            factors=factors,
            phone=_verified(factors, "phone"),
            email=_verified(factors, "email"),
            app=any(f.type == "totp" for f in factors.verified) if factors else False,
            passkeys=[f for f in factors.verified if f.type == "passkey"] if factors else [],
            events=[(words.when(event), words.event(event, kinds), event) for event in events],
            notices=[(n, words.moment(n.occurred_at), words.notice(n.type, n.data)) for n in kept],
        )

    async def carry_on(self, request: Request, user: User, pending: dict[str, Any]) -> Response:
        """A change the user has just confirmed (``confirming``), made now."""
        action: Action = pending["action"]
        if action == "two-step-off":
            return await self._turn_off(request, user)
        if action == "recovery-codes":
            return await self._show_recovery_codes(request, user, "Your new recovery codes")
        if action == "password":
            return await self._set_password(request, user, str(pending["password_hash"]))
        if action == "app":
            # Its QR code answers the button only: pressed again, now that it is confirmed.
            flash(request, "info", "Thanks. Now set up your authenticator app.")
            return redirect("/settings")
        if action == "passkey":
            return await start_enrolment(self.site, request, user, str(pending["label"]))
        if action == "passkey-remove":
            return await remove_passkey(self.site, request, user, str(pending["factor"]))
        return redirect("/settings/two-step")

    async def _factors(self, request: Request, user: User) -> Factors | None:
        try:
            return await self.site.twostep.list_factors(user.id)
        except TwostepError as error:
            log.warning("cannot read a user's two-step status: %s", problem(error))
            flash(request, "error", words.UNAVAILABLE)
            return None

    async def _ask_first(
        self, request: Request, user: User, factors: Factors, action: Action, **details: Any
    ) -> Response | None:
        """None when the user proved who they are recently enough; else the way to do so."""
        on = factors.two_step_enabled
        if recently_confirmed(request, self.site.config.fresh_seconds, two_step_on=on):
            return None
        return await confirm_first(self.site, request, user, action, two_step_on=on, **details)

    async def _password_problem(
        self, request: Request, user: User, typed: str, *, wrong: str
    ) -> str | None:
        """Why ``typed`` is not taken as the user's password (``wrong``, or too many tries),
        or None: it is, and it counts as a fresh proof (throttled like a sign-in)."""
        checked = await check_password(self.site, request, user.email, typed)
        if checked.wait is not None:
            return words.too_many_passwords(checked.wait)
        if checked.user != user:
            return wrong
        request.session["password_at"] = time.time()
        return None

    async def enrol_form(self, request: Request) -> Response:
        user = await self._user(request)
        if user is None:
            return redirect("/login")
        enrol = request.session.get("enrol")
        if enrol is not None:
            changing = bool(enrol.get("changing"))
            return self.site.render(request, "enrol.html", enrol=enrol, changing=changing)
        factors = await self._factors(request, user)
        if factors is None:
            return redirect("/settings")
        # A link followed: the page may ask for a proof, but sends nothing until a button says.
        asked = await self._ask_first(request, user, factors, "phone", send=False)
        changing = factors.two_step_enabled
        return asked or self.site.render(request, "enrol.html", enrol=None, changing=changing)

    async def enrol_phone(self, request: Request) -> Response:
        """Store the phone unverified and text it a code: a typo'd or unusable number fails
        here, with 2SA still as it was, and the user can correct it."""
        form, user = await read_form(request), await self._user(request)
        if user is None:
            return redirect("/login")
        factors = await self._factors(request, user)
        if factors is None:
            return redirect("/settings")
        asked = await self._ask_first(request, user, factors, "phone")
        if asked is not None:
            return asked
        changing, phone = factors.two_step_enabled, form.get("phone", "").strip()[:40]
        if not phone:
            return self._phone_again(request, phone, changing, "Type your mobile phone number.")
        twostep = self.site.twostep
        try:
            enrollment = await twostep.enroll_factor(
                user.id, as_e164(phone), client_ip=client_ip(request)
            )
        except TwostepError as error:
            return self._phone_again(request, phone, changing, words.refusal(error, new_code=""))
        verification = await once_sent(twostep, enrollment.verification)
        if verification.status == "failed":
            return self._phone_again(request, phone, changing, words.send_failure(verification))
        request.session["enrol"] = {
            "verification": verification.id,
            "factor": enrollment.factor.id,
            "to": enrollment.factor.phone,
            "changing": changing,
        }
        return redirect("/settings/two-step")

    def _phone_again(self, request: Request, phone: str, changing: bool, error: str) -> Response:
        # The number goes back into the form the user typed it in, and nowhere else.
        return self.site.render(
            request, "enrol.html", 400, enrol=None, changing=changing, phone=phone, error=error
        )

    async def enrol_code(self, request: Request) -> Response:
        form, user = await read_form(request), await self._user(request)
        enrol: dict[str, Any] | None = request.session.get("enrol")
        if user is None or enrol is None:
            return redirect("/settings")
        twostep = self.site.twostep
        outcome = await check_code(
            twostep, enrol["verification"], form.get("code", ""), new_code=NEW_CODE
        )
        if not outcome.approved:
            flash(request, "error", outcome.message)
            return redirect("/settings/two-step")
        del request.session["enrol"]
        try:
            factors = await twostep.list_factors(user.id)
        except TwostepError:
            flash(request, "error", words.UNAVAILABLE)
            return redirect("/settings")
        kind = enrol.get("kind", "phone")
        if not any(f.id == enrol["factor"] and f.status == "verified" for f in factors.factors):
            # twostep does not say why (e.g. the phone is another account's), and neither do we.
            what = {"email": "This address", "totp": "This app"}.get(kind, "This phone")
            flash(request, "error", f"{what} can't be used for two-step verification.")
            return redirect("/settings" if kind != "phone" else "/settings/two-step")
        if kind != "phone":
            where = "come from" if kind == "totp" else "go to"
            flash(request, "success", f"Your codes can now also {where} {enrol['to']}.")
            return redirect("/settings")
        if enrol.get("changing"):
            flash(request, "success", f"Your phone is changed: codes now go to {enrol['to']}.")
            return redirect("/settings")
        return await self._show_recovery_codes(request, user, "Two-step verification is on")

    async def enrol_restart(self, request: Request) -> Response:
        await read_form(request)
        enrol = request.session.pop("enrol", None)
        if enrol is not None:
            with contextlib.suppress(TwostepError):  # its code must not turn 2SA on later
                await self.site.twostep.cancel(enrol["verification"])
        extra = enrol is not None and enrol.get("kind", "phone") != "phone"
        return redirect("/settings" if extra else "/settings/two-step")

    async def turn_off(self, request: Request) -> Response:
        form, user = await read_form(request), await self._user(request)
        if user is None:
            return redirect("/login")
        wrong = "That password isn't right: two-step verification is still on."
        trouble = await self._password_problem(request, user, form.get("password", ""), wrong=wrong)
        if trouble:
            flash(request, "error", trouble)
            return redirect("/settings")
        factors = await self._factors(request, user)
        if factors is None:
            return redirect("/settings")
        asked = await self._ask_first(request, user, factors, "two-step-off")
        return asked or await self._turn_off(request, user)

    async def _turn_off(self, request: Request, user: User) -> Response:
        try:
            for factor in (await self.site.twostep.list_factors(user.id)).verified:
                # The user agreed: password and a second step just now (``_ask_first``).
                await self.site.twostep.remove_factor(user.id, factor.id, allow_downgrade=True)
        except TwostepError as error:
            log.warning("cannot turn two-step off: %s", problem(error))
            flash(request, "error", words.UNAVAILABLE)
            return redirect("/settings")
        flash(request, "success", "Two-step verification is off.")
        return redirect("/settings")

    async def new_recovery_codes(self, request: Request) -> Response:
        await read_form(request)
        user = await self._user(request)
        if user is None:
            return redirect("/login")
        factors = await self._factors(request, user)
        if factors is None:
            return redirect("/settings")
        asked = await self._ask_first(request, user, factors, "recovery-codes")
        return asked or await self._show_recovery_codes(request, user, "Your new recovery codes")

    async def _show_recovery_codes(self, request: Request, user: User, headline: str) -> Response:
        """A new set, shown in this answer only: never kept in the session or anywhere else."""
        try:
            codes = await self.site.twostep.generate_recovery_codes(user.id)
        except TwostepError as error:
            flash(request, "error", words.refusal(error, new_code=""))
            return redirect("/settings")
        return self.site.render(request, "recovery_codes.html", codes=codes, headline=headline)

    async def change_password(self, request: Request) -> Response:
        form, user = await read_form(request), await self._user(request)
        if user is None:
            return redirect("/login")
        new, current = form.get("new_password", ""), form.get("current_password", "")
        wrong = "Your current password isn't right: your password is unchanged."
        trouble = password_problem(new) or await self._password_problem(
            request, user, current, wrong=wrong
        )
        if trouble:
            flash(request, "error", trouble)
            return redirect("/settings")
        factors = await self._factors(request, user)
        if factors is None:
            return redirect("/settings")
        # Hashed now: if a code is asked for first, only the hash waits in the session.
        new_hash = await run_in_threadpool(hash_password, new)
        asked = await self._ask_first(request, user, factors, "password", password_hash=new_hash)
        return asked or await self._set_password(request, user, new_hash)

    async def _set_password(self, request: Request, user: User, password_hash: str) -> Response:
        """The new password, and every other session of the user ended: whoever took one
        with the old password is out. This browser goes on under a new session id."""
        await run_in_threadpool(self.site.users.set_password_hash, user.id, password_hash)
        await run_in_threadpool(self.site.sessions.delete_user, user.id)
        kept = ("password_at", "second_step_at")
        proofs = {k: request.session[k] for k in kept if k in request.session}
        start_session(request, user=user.id, **proofs)
        changed = "Your password is changed, and you're signed out everywhere else."
        flash(request, "success", changed)
        return redirect("/settings")


def as_e164(typed: str) -> str:
    """A number as people type it (+1 (415) 555-0123) in the form twostep takes
    (+14155550123): the spaces, dots, dashes and brackets go; anything else is left for
    twostep to refuse, with the message for an invalid number."""
    return re.sub(r"[\s().-]", "", typed)


def _verified(factors: Factors | None, kind: str) -> str | None:
    """The masked phone (``kind`` "phone") or address ("email") codes go to, if verified."""
    for factor in factors.verified if factors else ():
        shown = factor.email if kind == "email" else factor.phone
        if shown is not None:
            return shown
    return None
