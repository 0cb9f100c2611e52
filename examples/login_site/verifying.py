"""Codes sent and codes typed, the same way for turning two-step on and for signing in."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from twostep_client import (
    ApiError,
    AsyncTwostepClient,
    TwostepError,
    Verification,
    VerificationNotPending,
)

from examples.login_site import words

log = logging.getLogger("login_site")

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
