"""Codes sent and codes typed, the same way for turning two-step on and for signing in; and a
passkey's options handed to the page, and the credential its script posts back handed over as a
check like a code (never logged, never kept)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from twostep_client import (
    ApiError,
    AsyncTwostepClient,
    TwostepError,
    Verification,
    VerificationNotPending,
)

from examples.login_site import words

log = logging.getLogger("login_site")

MAX_CREDENTIAL = 64 * 1024  # a passkey's answer is a few kilobytes at most
# How long a page waits for twostep's decision on a code, or for a code to be sent: a worker
# answers in well under a second; past this the user is told to try again, not left hanging.
CHECK_WAIT_SECONDS = 10.0
SEND_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Outcome:
    approved: bool
    message: str = ""


async def check_code(
    twostep: AsyncTwostepClient, verification_id: str, typed: str, *, new_code: str
) -> Outcome:
    """Hand over the code the user typed and wait for the decision. ``new_code`` tells the
    user how to get a fresh code on this page, should this one be spent."""
    code = "".join(typed.split())
    if not (code.isdigit() and 4 <= len(code) <= 10):
        return Outcome(False, "Type the code from the message: digits only.")
    try:
        check = await twostep.check(verification_id, code, wait=CHECK_WAIT_SECONDS)
    except VerificationNotPending:
        return Outcome(False, await _why_not_pending(twostep, verification_id, new_code))
    except TwostepError as error:
        log.info("a code was refused: %s", problem(error))
        return Outcome(False, words.refusal(error, new_code=new_code))
    if check.approved:
        return Outcome(True)
    log.info("a code was not approved: %s", check.status)
    return Outcome(False, words.undecided_check(check, new_code=new_code))


async def _why_not_pending(twostep: AsyncTwostepClient, verification_id: str, new_code: str) -> str:
    try:
        verification = await twostep.get_verification(verification_id)
    except TwostepError:
        return words.not_pending("canceled", new_code=new_code)
    return words.not_pending(verification.status, new_code=new_code)


async def once_sent(twostep: AsyncTwostepClient, verification: Verification) -> Verification:
    """The verification once a worker has sent it (or failed to), so that the page can say
    which; as it was if that takes too long or twostep cannot say."""
    try:
        return await twostep.wait_for_verification(verification.id, timeout=SEND_WAIT_SECONDS)
    except TwostepError as error:
        log.warning("could not wait for a send: %s", problem(error))
        return verification


def problem(error: TwostepError) -> str:
    """An error fit for the log: its stable code, never its detail (which may quote input)."""
    return error.code if isinstance(error, ApiError) else type(error).__name__


async def passkey_options(
    twostep: AsyncTwostepClient,
    verification_id: str,
    kind: Literal["creation_options", "request_options"],
) -> dict[str, Any] | None:
    """What the page's script hands the browser (``navigator.credentials.create`` or ``.get``):
    the verification's options while it is pending; None once it is over, or if twostep cannot
    say (the page then offers to start again, or another way)."""
    try:
        verification = await twostep.get_verification(verification_id)
        if verification.in_flight:
            verification = await once_sent(twostep, verification)
    except TwostepError as error:
        log.warning("cannot read a passkey's options: %s", problem(error))
        return None
    if kind == "creation_options":
        return verification.creation_options
    return verification.request_options


async def passkey_button(
    twostep: AsyncTwostepClient, challenge: dict[str, Any], *, action: str, button: str
) -> dict[str, Any] | None:
    """A passkey button answering ``challenge`` (a login's or a confirmation's, as the session
    keeps it) when it went to a passkey (``_passkey_form.html``), posting to ``action``; its
    options None once the challenge is over. None for a challenge by code."""
    if challenge.get("channel") != "passkey" or not challenge.get("verification"):
        return None
    options = await passkey_options(twostep, challenge["verification"], "request_options")
    return {"action": action, "mode": "get", "options": options, "button": button}


def credential_of(form: dict[str, str]) -> dict[str, Any] | None:
    """The ``PublicKeyCredential`` (as JSON) the page's script posted, if it looks like one."""
    posted = form.get("credential", "")
    if not posted or len(posted) > MAX_CREDENTIAL:
        return None
    try:
        credential = json.loads(posted)
    except ValueError:
        return None
    if not isinstance(credential, dict) or not isinstance(credential.get("response"), dict):
        return None
    return credential


async def check_credential(
    twostep: AsyncTwostepClient, verification_id: str, form: dict[str, str]
) -> Outcome:
    """Hand over the credential the page posted and wait for the decision, as for a code."""
    credential = credential_of(form)
    if credential is None:
        return Outcome(False, words.PASSKEY_NEEDS_SCRIPT)
    try:
        check = await twostep.check_passkey(verification_id, credential, wait=CHECK_WAIT_SECONDS)
    except VerificationNotPending:
        try:
            status = (await twostep.get_verification(verification_id)).status
        except TwostepError:
            status = "canceled"
        return Outcome(False, words.passkey_not_pending(status))
    except TwostepError as error:
        log.info("a passkey was refused: %s", problem(error))
        return Outcome(False, words.refusal(error, new_code=""))
    if check.approved:
        return Outcome(True)
    log.info("a passkey was not approved: %s", check.status)
    return Outcome(False, words.passkey_refused(check))
