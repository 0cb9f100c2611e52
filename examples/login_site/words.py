"""What the site tells its users about twostep's answers, in one place: the pages never put
an exception's text, a code or a full phone number in front of anyone."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from twostep_client import (
    ChannelMismatch,
    Check,
    CountryNotAllowed,
    Event,
    FactorNotVerified,
    InvalidPhoneNumber,
    MaxAttemptsReached,
    NoVerifiedFactor,
    PasskeysNotSetUp,
    RateLimited,
    TwostepError,
    UserLocked,
    Verification,
    VerificationStatus,
)

UNAVAILABLE = "We can't reach our verification service right now. Please try again in a minute."
WRONG_CODE = "That code isn't right. Check the message and try again."
MAX_ATTEMPTS = "Too many tries for this code."
EXPIRED = "That code has expired."


def wait(seconds: float | None) -> str:
    """'27 seconds', '3 minutes': how long a limit holds, as the user should read it."""
    if seconds is None:
        return "a few minutes"
    whole = max(1, math.ceil(seconds))
    if whole <= 90:
        return f"{whole} second{'s' if whole != 1 else ''}"
    minutes = math.ceil(whole / 60)
    return f"{minutes} minutes"


def refusal(error: TwostepError, *, new_code: str) -> str:
    """A refused request, in words. ``new_code`` says how to get a fresh code on this page."""
    # Subclasses first: both are RateLimited too.
    if isinstance(error, MaxAttemptsReached):
        return _sentences(MAX_ATTEMPTS, new_code)
    if isinstance(error, UserLocked):
        return locked(error)
    if isinstance(error, RateLimited):
        if error.limit == "recovery_code_sets":
            return (
                "You have made too many new sets of recovery codes today. "
                f"You can make another in {wait(error.retry_after)}."
            )
        return f"You can ask for another code in {wait(error.retry_after)}."
    if isinstance(error, InvalidPhoneNumber):
        return (
            "That doesn't look like a phone number. Type it with its country code, "
            "e.g. +1 415 555 0123."
        )
    if isinstance(error, CountryNotAllowed):
        return "We can't send codes to numbers in that country. Please use another number."
    if isinstance(error, NoVerifiedFactor):
        return "Two-step verification is off for this account."
    if isinstance(error, ChannelMismatch | FactorNotVerified):
        return "That way of getting a code is no longer set up. Please choose another one."
    if isinstance(error, PasskeysNotSetUp):
        return PASSKEYS_NOT_SET_UP
    return UNAVAILABLE


# Passkeys: what the page's script shows when the browser refuses (by the DOMException's name,
# else "other"), and what the server says of the credential it posted.
PASSKEYS_NOT_SET_UP = "Passkeys aren't available on this site yet. Please use another way."
PASSKEY_SCRIPT_OFF = "Passkeys need JavaScript, which is off in this browser."
PASSKEY_NEEDS_SCRIPT = f"{PASSKEY_SCRIPT_OFF} Please use another way."
PASSKEY_BROWSER_ERRORS = {
    "create": {
        "NotAllowedError": "No passkey was made: it was canceled, or it took too long. "
        "Press “Create the passkey” to try again.",
        "InvalidStateError": "This device already has a passkey for your account.",
        "SecurityError": "Passkeys can't be made on this address of the site.",
        "other": "This browser can't make a passkey here. You can still sign in with your codes.",
    },
    "get": {
        "NotAllowedError": "Your passkey wasn't used: it was canceled, or this device has no "
        "passkey for your account. Try again, or use another way below.",
        "SecurityError": "Passkeys can't be used on this address of the site. "
        "Please use another way below.",
        "other": "This browser can't use a passkey here. Please use another way below.",
    },
}


def passkey_refused(check: Check) -> str:
    """A passkey's answer that did not pass: at sign-in, to confirm, or when adding one."""
    if check.status == "rejected":
        return "That passkey wasn't accepted. Try again, or use another way."
    if check.status == "queued":
        return "We're still checking your passkey. Please try again in a moment."
    if check.status == "max_attempts_reached":
        return "Too many tries with a passkey. Please use another way."
    return "We couldn't check your passkey just now. Please try again in a moment."


def passkey_not_pending(status: VerificationStatus) -> str:
    if status in ("queued", "sending"):
        return "Your passkey request is still being prepared. Please try again in a moment."
    if status == "max_attempts_reached":
        return "Too many tries with a passkey. Please use another way."
    return "That passkey request has ended. Please start again."


def passkey_added(label: str) -> str:
    return f"Your passkey “{label}” is added: you can sign in with it."


def passkey_removed(label: str) -> str:
    return f"Your passkey “{label}” is removed: it no longer signs you in."


def too_many_passwords(seconds: float) -> str:
    # One message for a known and an unknown email, and for the email's and the address's limit.
    return f"Too many attempts with a wrong password. Please try again in {wait(seconds)}."


def too_many_signups(seconds: float) -> str:
    return f"Too many new accounts from your network. Please try again in {wait(seconds)}."


def session_ended(why: str, idle_seconds: float) -> str:
    if why == "idle":
        return f"You were signed out after {wait(idle_seconds)} without activity."
    return "Your session has ended. Please sign in again."


def locked(error: UserLocked) -> str:
    if "administrator" in error.detail:
        return "Too many wrong codes: this account is locked. Please contact support to unlock it."
    return (
        f"Too many wrong codes. For your security, you can try again in {wait(error.retry_after)}."
    )


def undecided_check(check: Check, *, new_code: str) -> str:
    """A check that did not let the user in, in words."""
    if check.status == "rejected":
        return WRONG_CODE
    if check.status == "expired":
        return _sentences(EXPIRED, new_code)
    if check.status == "max_attempts_reached":
        return _sentences(MAX_ATTEMPTS, new_code)
    if check.status == "queued":
        return "We're still checking your code. Please submit it again in a moment."
    if check.error is not None and check.error.code == "code_unavailable":
        return "We couldn't check that code. Please type it again."
    return "We couldn't check your code just now. Please try again in a moment."


def not_pending(status: VerificationStatus, *, new_code: str) -> str:
    """A code typed for a verification that no longer takes codes."""
    if status == "expired":
        return _sentences(EXPIRED, new_code)
    if status == "max_attempts_reached":
        return _sentences(MAX_ATTEMPTS, new_code)
    if status in ("queued", "sending"):
        return "Your code is still on its way. Please wait for it, then type it."
    return _sentences("That code can't be used any more.", new_code)


def _sentences(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def send_failure(verification: Verification) -> str:
    """Why a code could not be sent: to a number being enrolled, or at a sign-in."""
    reason = verification.error.code if verification.error else None
    if reason == "landline_not_supported":
        return (
            "That number is a landline: it can't receive text messages. Check the number, or "
            "use a mobile number."
        )
    if reason == "line_type_not_allowed":
        return (
            "That number is a landline or an internet phone number: codes go to mobile phones "
            "only. Check the number, or use a mobile number."
        )
    if reason == "sim_swap_detected":
        return (
            "Your phone's SIM card was changed recently, so for your security we can't send it "
            "codes for a few days. Use a recovery code instead."
        )
    if verification.channel == "passkey":
        return "We couldn't start a sign-in with your passkey just now. Please use another way."
    if reason == "invalid_phone_number":
        return "That number doesn't exist. Check it, with its country code."
    if reason in ("country_blocked", "fraud_blocked", "provider_rejected"):
        return "We can't send codes to that number. Please use another one."
    return "We couldn't send a code just now. Please try again in a minute."


# What a user reads in their security activity. Every code this site asks for is a sign-in
# code or a phone being added, recorded as such beside "verification.requested": that one
# would only say the same thing twice.
_HIDDEN_EVENTS = frozenset({"verification.requested"})
_EVENTS = {
    "verification.sent": "Code sent",
    "verification.resend_requested": "Code requested again",
    "verification.resend_failed": "Code could not be sent again",
    "verification.failed": "Code could not be sent",
    "verification.approved": "Code accepted",
    "verification.canceled": "Code canceled",
    "verification.max_attempts_reached": "Too many tries for a code",
    "check.rejected": "Wrong code entered",
    "factor.enrollment_started": "Phone being added for two-step verification",
    "factor.verified": "Two-step verification turned on",
    "factor.replaced": "Phone replaced",
    "factor.disabled": "Phone removed from two-step verification",
    "factor.enrollment_failed": "Phone could not be added",
    "challenge.requested": "Sign-in code requested",
    "user.locked": "Locked after too many wrong codes",
    "lockout.released": "Lock lifted",
    "recovery_codes.generated": "New recovery codes made",
    "recovery_code.used": "Signed in with a recovery code",
    "recovery_code.rejected": "Wrong recovery code entered",
}


_FACTOR_NAMES = {"email": "Email address", "totp": "Authenticator app", "passkey": "Passkey"}


def event(item: Event, kinds: Mapping[str, str] | None = None) -> str:
    """``kinds``: the user's factors' types by id (``Factor.type``), where known."""
    words = _EVENTS.get(item.type, item.type)
    if not item.type.startswith("factor."):
        return words
    # A factor's events name what it is: its type, else its destination (masked) says.
    shown = item.destination or ""
    guessed = "email" if "@" in shown else "phone" if shown.startswith("+") else "totp"
    name = _FACTOR_NAMES.get((kinds or {}).get(item.factor_id or "") or guessed)
    if name is None:
        return words
    return words.replace("Phone", name).replace(
        "Two-step verification turned on", f"{name} added for two-step verification"
    )


def worth_showing(item: Event) -> bool:
    return item.type not in _HIDDEN_EVENTS


def when(item: Event) -> str:
    return item.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def notice(kind: str, data: dict[str, Any]) -> str:
    """A security notice from twostep's webhooks, as the user reads it."""
    if data.get("email"):
        what = f"email address ({data['email']})"
    elif data.get("type") == "passkey":
        what = f"passkey (“{data.get('label') or 'unnamed'}”)"
    elif data.get("type") == "totp":
        what = "authenticator app"
    else:
        what = f"phone ({data.get('phone') or 'number hidden'})"
    if kind == "factor.added":
        return f"A new {what} was added to your account"
    if kind == "factor.removed":
        return f"{'An' if what[0] in 'aeiou' else 'A'} {what} was removed from your account"
    if kind == "recovery_codes.generated":
        return "New recovery codes were made for your account; the earlier ones stopped working"
    if kind == "recovery_code.used":
        left = data.get("left")
        counted = f" ({left} left)" if isinstance(left, int) else ""
        return f"A recovery code was used to sign in{counted}"
    if kind == "user.locked":
        if data.get("hard"):
            return "Your account was locked after too many wrong codes, until support unlocks it"
        seconds = data.get("seconds")
        span = wait(seconds) if isinstance(seconds, int | float) else "a while"
        return f"Your account was locked for {span} after too many wrong codes"
    if kind == "user.unlocked":
        return "Your account was unlocked"
    return "Something changed in your account's security"


def moment(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def notice_banner(kind: str, data: dict[str, Any], at: datetime) -> str:
    """What the user is told once, at the next sign-in."""
    text = f"{notice(kind, data)} on {moment(at)}."
    if kind == "user.unlocked":
        return text
    return f"{text} Not you? Change your password now, and check your two-step settings below."
