"""The signed-in user's security settings: two-step on (a phone checked by a code first) and
off, recovery codes, and the recent security events twostep recorded."""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twostep_client import Event, Factors, TwostepError

from examples.login_site import words
from examples.login_site.store import User
from examples.login_site.verifying import check_code, once_sent, problem
from examples.login_site.web import Site, client_ip, flash, read_form, redirect

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
        return self.site.render(
            request,
            "settings.html",
            user=user,
            factors=factors,
            phone=factors.verified[0].phone if factors and factors.verified else None,
            events=[(words.when(event), words.event(event), event) for event in events],
        )

    async def enrol_form(self, request: Request) -> Response:
        if await self._user(request) is None:
            return redirect("/login")
        return self.site.render(request, "enrol.html", enrol=request.session.get("enrol"))

    async def enrol_phone(self, request: Request) -> Response:
        """Store the phone unverified and text it a code: a typo'd or unusable number fails
        here, with 2SA still as it was, and the user can correct it."""
        form, user = await read_form(request), await self._user(request)
        if user is None:
            return redirect("/login")
        phone = form.get("phone", "").strip()[:40]
        if not phone:
            return self._phone_again(request, phone, "Type your mobile phone number.")
        twostep = self.site.twostep
        try:
            enrollment = await twostep.enroll_factor(
                user.id, as_e164(phone), client_ip=client_ip(request)
            )
        except TwostepError as error:
            return self._phone_again(request, phone, words.refusal(error, new_code=""))
        verification = await once_sent(twostep, enrollment.verification)
        if verification.status == "failed":
            return self._phone_again(request, phone, words.send_failure(verification))
        request.session["enrol"] = {
            "verification": verification.id,
            "factor": enrollment.factor.id,
            "to": enrollment.factor.phone,
        }
        return redirect("/settings/two-step")

    def _phone_again(self, request: Request, phone: str, error: str) -> Response:
        # The number goes back into the form the user typed it in, and nowhere else.
        return self.site.render(request, "enrol.html", 400, enrol=None, phone=phone, error=error)

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
        if not any(f.id == enrol["factor"] and f.status == "verified" for f in factors.factors):
            # twostep does not say why (e.g. the phone is another account's), and neither do we.
            flash(request, "error", "This phone can't be used for two-step verification.")
            return redirect("/settings/two-step")
        return await self._show_recovery_codes(request, user, "Two-step verification is on")

    async def enrol_restart(self, request: Request) -> Response:
        await read_form(request)
        enrol = request.session.pop("enrol", None)
        if enrol is not None:
            with contextlib.suppress(TwostepError):  # its code must not turn 2SA on later
                await self.site.twostep.cancel(enrol["verification"])
        return redirect("/settings/two-step")

    async def turn_off(self, request: Request) -> Response:
        form, user = await read_form(request), await self._user(request)
        if user is None:
            return redirect("/login")
        password = form.get("password", "")[:1024]
        if not await run_in_threadpool(self.site.users.password_is, user, password):
            flash(request, "error", "That password isn't right: two-step verification is still on.")
            return redirect("/settings")
        try:
            for factor in (await self.site.twostep.list_factors(user.id)).verified:
                await self.site.twostep.remove_factor(user.id, factor.id)
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
        return await self._show_recovery_codes(request, user, "Your new recovery codes")

    async def _show_recovery_codes(self, request: Request, user: User, headline: str) -> Response:
        """A new set, shown in this answer only: never kept in the session or anywhere else."""
        try:
            codes = await self.site.twostep.generate_recovery_codes(user.id)
        except TwostepError as error:
            flash(request, "error", words.refusal(error, new_code=""))
            return redirect("/settings")
        return self.site.render(request, "recovery_codes.html", codes=codes, headline=headline)


def as_e164(typed: str) -> str:
    """A number as people type it (+1 (415) 555-0123) in the form twostep takes
    (+14155550123): the spaces, dots, dashes and brackets go; anything else is left for
    twostep to refuse, with the message for an invalid number."""
    return re.sub(r"[\s().-]", "", typed)
