"""Passkeys on the security page, once two-step is on. "Add a passkey" (named as the user
types, else after the account's email) asks for a recent second step first — whoever holds a
passkey can sign in — then starts the enrolment (``enroll_passkey``) and shows the page whose
button asks the browser for a new passkey (``static/passkeys.js``); the credential it posts goes
to ``check_passkey``, and once approved the passkey is in the list. "Remove" takes one away after
the same confirmation, which is the user's agreement to a downgrade should it be their last
strong factor (``allow_downgrade``). A credential only passes through: never kept, never logged.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twostep_client import Factor, Factors, TwostepError

from examples.login_site import words
from examples.login_site.confirming import Action, confirm_first
from examples.login_site.store import User
from examples.login_site.verifying import check_credential, passkey_options, problem
from examples.login_site.web import (
    Site,
    client_ip,
    flash,
    read_form,
    recently_confirmed,
    redirect,
)

log = logging.getLogger("login_site")

MAX_LABEL = 64  # twostep's limit: the name the authenticator shows, too
PAGE = "/settings/passkeys/new"
PREPARE_WAIT_SECONDS = 10.0  # for a worker to have Twilio's options made


async def start_enrolment(site: Site, request: Request, user: User, label: str) -> Response:
    """A new passkey named ``label``: its enrolment waits in the session for the browser."""
    try:
        enrollment = await site.twostep.enroll_passkey(
            user.id, label=label, client_ip=client_ip(request), wait=PREPARE_WAIT_SECONDS
        )
    except TwostepError as error:
        flash(request, "error", words.refusal(error, new_code=""))
        return redirect("/settings")
    if enrollment.verification.status == "failed":
        flash(request, "error", "We couldn't prepare a passkey just now. Please try again later.")
        return redirect("/settings")
    request.session["passkey"] = {
        "verification": enrollment.verification.id,
        "factor": enrollment.factor.id,
        "label": label,
    }
    return redirect(PAGE)


async def remove_passkey(site: Site, request: Request, user: User, factor_id: str) -> Response:
    """Remove the user's passkey ``factor_id``; the user has just confirmed it's them."""
    try:
        passkey = _passkey(await site.twostep.list_factors(user.id), factor_id)
        if passkey is not None:
            # Agreed, with a second step just now: even if no strong factor is left after it.
            await site.twostep.remove_factor(user.id, passkey.id, allow_downgrade=True)
    except TwostepError as error:
        log.warning("cannot remove a passkey: %s", problem(error))
        flash(request, "error", words.UNAVAILABLE)
        return redirect("/settings")
    if passkey is None:
        flash(request, "info", "That passkey was removed already.")
    else:
        flash(request, "success", words.passkey_removed(passkey.label or "Passkey"))
    return redirect("/settings")


def _passkey(factors: Factors, factor_id: str) -> Factor | None:
    """The user's verified passkey ``factor_id``, if it is one."""
    found = (f for f in factors.verified if f.id == factor_id and f.type == "passkey")
    return next(found, None)


class PasskeyPages:
    def __init__(self, site: Site) -> None:
        self.site = site

    def routes(self) -> list[Route]:
        return [
            Route("/settings/passkeys", self.add, methods=["POST"]),
            Route(PAGE, self.page, methods=["GET"]),
            Route(PAGE, self.check, methods=["POST"]),
            Route("/settings/passkeys/cancel", self.cancel, methods=["POST"]),
            Route("/settings/passkeys/remove", self.remove, methods=["POST"]),
        ]

    async def _confirmed(
        self, request: Request, user: User, action: Action, **details: Any
    ) -> Response | None:
        """None when a second step was passed recently enough; else the way to pass one."""
        if recently_confirmed(request, self.site.config.fresh_seconds, two_step_on=True):
            return None
        return await confirm_first(self.site, request, user, action, two_step_on=True, **details)

    async def add(self, request: Request) -> Response:
        form = await read_form(request)
        user = await self.site.signed_in(request)
        if user is None:
            return redirect("/login")
        label = " ".join(form.get("label", "").split())[:MAX_LABEL] or user.email[:MAX_LABEL]
        asked = await self._confirmed(request, user, "passkey", label=label)
        return asked or await start_enrolment(self.site, request, user, label)

    async def page(self, request: Request) -> Response:
        user, enrolling = await self.site.signed_in(request), request.session.get("passkey")
        if user is None or not isinstance(enrolling, dict):
            return redirect("/settings")
        options = await passkey_options(
            self.site.twostep, enrolling["verification"], "creation_options"
        )
        button = {
            "action": PAGE,
            "mode": "create",
            "options": options,
            "button": "Create the passkey",
        }
        passkey = button if options else None  # none: over, or not ready in time
        return self.site.render(request, "passkey.html", label=enrolling["label"], passkey=passkey)

    async def check(self, request: Request) -> Response:
        form, user = await read_form(request), await self.site.signed_in(request)
        enrolling: dict[str, Any] | None = request.session.get("passkey")
        if user is None or enrolling is None:
            return redirect("/settings")
        twostep = self.site.twostep
        outcome = await check_credential(twostep, enrolling["verification"], form)
        if not outcome.approved:
            flash(request, "error", outcome.message)
            return redirect(PAGE)
        del request.session["passkey"]
        try:
            added = _passkey(await twostep.list_factors(user.id), enrolling["factor"])
        except TwostepError:
            flash(request, "error", words.UNAVAILABLE)
            return redirect("/settings")
        if added is None:  # twostep does not say why, and neither do we
            flash(request, "error", "This passkey can't be used for two-step verification.")
        else:
            flash(request, "success", words.passkey_added(enrolling["label"]))
        return redirect("/settings")

    async def cancel(self, request: Request) -> Response:
        await read_form(request)
        enrolling = request.session.pop("passkey", None)
        if isinstance(enrolling, dict):
            with contextlib.suppress(TwostepError):  # no credential may verify it later
                await self.site.twostep.cancel(enrolling["verification"])
        return redirect("/settings")

    async def remove(self, request: Request) -> Response:
        form = await read_form(request)
        user = await self.site.signed_in(request)
        if user is None:
            return redirect("/login")
        factor_id = form.get("factor", "")[:64]
        asked = await self._confirmed(request, user, "passkey-remove", factor=factor_id)
        return asked or await remove_passkey(self.site, request, user, factor_id)
