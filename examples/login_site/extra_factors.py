"""More factors beside the phone, once two-step is on: the account's own email address, and an
authenticator app (its QR code shown once, on the page that answers the button: the site keeps
no copy of the secret either). Their first code goes through the enrolment page every factor
shares (``settings_pages.enrol_code``)."""

from __future__ import annotations

import segno
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twostep_client import TwostepError

from examples.login_site import words
from examples.login_site.confirming import confirm_first
from examples.login_site.store import User
from examples.login_site.verifying import once_sent
from examples.login_site.web import (
    Site,
    client_ip,
    flash,
    read_form,
    recently_confirmed,
    redirect,
)

APP_LABEL = "your authenticator app"


class ExtraFactorPages:
    def __init__(self, site: Site) -> None:
        self.site = site

    def routes(self) -> list[Route]:
        return [
            Route("/settings/two-step/email", self.enrol_email, methods=["POST"]),
            Route("/settings/two-step/app", self.enrol_app, methods=["POST"]),
        ]

    async def enrol_email(self, request: Request) -> Response:
        """Codes by email too, to the account's own address: a second factor beside the phone
        (twostep keeps both; a new address would retire only an older address). No proof asked:
        the codes go where the account's mail already goes, to nobody new."""
        await read_form(request)
        user = await self.site.signed_in(request)
        if user is None:
            return redirect("/login")
        twostep = self.site.twostep
        try:
            enrollment = await twostep.enroll_factor(
                user.id, email=user.email, client_ip=client_ip(request)
            )
            verification = await once_sent(twostep, enrollment.verification)
        except TwostepError as error:
            flash(request, "error", words.refusal(error, new_code=""))
            return redirect("/settings")
        if verification.status == "failed":
            flash(request, "error", words.send_failure(verification))
            return redirect("/settings")
        request.session["enrol"] = {
            "verification": verification.id,
            "factor": enrollment.factor.id,
            "to": enrollment.factor.email,
            "kind": "email",
        }
        return redirect("/settings/two-step")

    async def enrol_app(self, request: Request) -> Response:
        """An authenticator app: its QR code (and the secret, to type) on this answer only; the
        app's first code, typed below it, turns it on."""
        await read_form(request)
        user: User | None = await self.site.signed_in(request)
        if user is None:
            return redirect("/login")
        # Whoever holds the app can sign in: a thief with the session must not add theirs.
        if not recently_confirmed(request, self.site.config.fresh_seconds, two_step_on=True):
            return await confirm_first(self.site, request, user, "app", two_step_on=True)
        try:
            enrollment = await self.site.twostep.enroll_app(
                user.id, label=user.email, client_ip=client_ip(request)
            )
        except TwostepError as error:
            flash(request, "error", words.refusal(error, new_code=""))
            return redirect("/settings")
        uri = str(enrollment.otpauth_uri)
        request.session["enrol"] = {
            "verification": enrollment.verification.id,
            "factor": enrollment.factor.id,
            "to": APP_LABEL,
            "kind": "totp",
        }
        return self.site.render(
            request,
            "enrol.html",
            enrol=request.session["enrol"],
            changing=True,
            qr_svg=segno.make(uri, error="m").svg_inline(scale=4, dark="#111"),
            secret=uri.split("secret=", 1)[1].split("&", 1)[0],
        )
