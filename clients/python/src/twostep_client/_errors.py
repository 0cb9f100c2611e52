"""One exception per problem ``code`` the API answers with, under a small tree, so a login
server can catch as broadly or as narrowly as it likes::

    TwostepError
      TwostepConnectionError        no answer: the API unreachable, or a timeout
      UnexpectedAnswer              an answer this client cannot read (not twostep's, or newer)
      ApiError                      an answer with a problem (.status, .code, .detail, .body)
        InvalidRequest              422
          InvalidPhoneNumber
          InvalidEmailAddress
          IdempotencyKeyReused
        Unauthorized                401
        Forbidden                   403
          InsufficientScope
          CountryNotAllowed
        NotFound                    404
        Conflict                    409 (a keyed request still in progress: tried again)
          VerificationNotPending
          NoVerifiedFactor          two-step is off for the user (list_factors shows why)
          ChannelMismatch
          LastStrongFactor
          FactorNotVerified
          PasskeysNotSetUp
        PayloadTooLarge             413
        UnsupportedMediaType        415
        RateLimited                 429 (.limit, .retry_after)
          MaxAttemptsReached        the verification is used up: start a new one, not wait
          UserLocked
        ServiceUnavailable          503 (.retry_after)
        ServerError                 any other 5xx

Each class's docstring says what its ``code`` means and what to do about it, as the API's
``detail`` and docs/api.md's table of errors do.
"""

from __future__ import annotations

from typing import Any

import httpx


class TwostepError(Exception):
    """Anything this client raises."""


class TwostepConnectionError(TwostepError):
    """No answer from the API (it is unreachable, or did not answer in time), after retries
    where a retry was safe."""


class UnexpectedAnswer(TwostepError):
    """A success this client cannot read: not JSON, a field missing, a status word it does not
    know (a newer server: upgrade the client), or a proxy's page instead of the API's."""


class ApiError(TwostepError):
    """The API answered with a problem (``application/problem+json``): ``.status``, ``.code``,
    ``.detail`` (what to do, in words) and ``.request_id`` (its ``X-Request-Id``, for the logs)."""

    status = 0
    code = "error"

    def __init__(self, response: httpx.Response, body: dict[str, Any]) -> None:
        self.status = response.status_code
        self.code = str(body.get("code") or type(self).code)
        self.detail = str(body.get("detail") or response.reason_phrase)
        self.body = body
        self.request_id = response.headers.get("X-Request-Id")
        super().__init__(f"{self.status} {self.code}: {self.detail}")


class InvalidRequest(ApiError):
    """422 ``invalid_request``: the input is not valid (an unknown field, a bad channel, a code
    that is not 4 to 10 letters or digits, a body that is not JSON…); ``.detail`` and
    ``.body["errors"]`` name each field and what it wants. Fix the input: as it is, it fails
    again."""

    code = "invalid_request"


class InvalidPhoneNumber(InvalidRequest):
    """422: a ``to`` or ``phone`` that is not a phone number in E.164 (a ``+``, the country code,
    no spaces: ``+14155550123``), or one no country's numbering plan has. Ask the user for the
    number again, in that form."""

    code = "invalid_phone_number"


class InvalidEmailAddress(InvalidRequest):
    """422: an ``email`` (or a ``to`` on the ``email`` channel) that is not an email address
    (``ada@``, ``ada@localhost``). Ask the user for the address again."""

    code = "invalid_email_address"


class IdempotencyKeyReused(InvalidRequest):
    """422: an ``Idempotency-Key`` already used for a different request. A key names one
    request: use a new one (the client makes one per call unless you pass yours)."""

    code = "idempotency_key_reused"


class Unauthorized(ApiError):
    """401: no API key, a malformed one, or one unknown or revoked. Give the client a live key
    (``twostep keys list`` shows which are revoked; ``twostep keys create`` makes one)."""

    code = "unauthorized"


class Forbidden(ApiError):
    """403: the request is understood but not allowed (see the two below)."""

    code = "forbidden"


class InsufficientScope(Forbidden):
    """403: the key lacks the route's scope (``verify``, ``users``, ``users:manage``, ``admin``;
    ``.detail`` names it). Use a key that has it: ``twostep keys create NAME --scopes …``."""

    code = "insufficient_scope"


class CountryNotAllowed(Forbidden):
    """403: the number's country is not on the API's ``TWOSTEP_ALLOWED_COUNTRIES`` (``.detail``
    lists those that are). Tell the user codes cannot go to that number, or have the operator
    add the country."""

    code = "country_not_allowed"


class NotFound(ApiError):
    """404: no such verification, check, factor or endpoint for this key's tenant (another
    tenant's is not found either), an id that is not a UUID, or an unknown path. Check the id
    you kept and the base URL."""

    code = "not_found"


class Conflict(ApiError):
    """409 ``conflict``: a request with the same ``Idempotency-Key`` is still being answered.
    The client tries again itself; raised once its retries are spent: try again shortly. Also
    the base of the other 409s below."""

    code = "conflict"


class VerificationNotPending(Conflict):
    """409: a check or re-send of a verification that is not ``pending`` (or a cancel of one that
    is over). Not sent yet: wait for it (``wait_for_verification``); over (approved, expired,
    canceled, failed…): start a new one. ``.detail`` says which."""

    code = "verification_not_pending"


class NoVerifiedFactor(Conflict):
    """409: a login challenge for a user without two-step: none of their factors is verified.
    So too after enrolling a phone or address already verified for another user of the tenant:
    its check is approved, but the factor ends ``disabled`` with ``disabled_reason`` "in_use".
    ``list_factors`` (GET /v1/users/{id}/factors) shows why; tell the user "cannot be used"."""

    code = "no_verified_factor"


class ChannelMismatch(Conflict):
    """409: the channel cannot reach the destination or any of the user's factors (``call`` for
    an email address), a re-send of an app's or a passkey's verification (nothing is sent), or
    a code for a passkey (a credential for a code). Use a channel ``.detail`` names."""

    code = "channel_mismatch"


class LastStrongFactor(Conflict):
    """409: removing the user's last passkey or authenticator app would leave only weaker
    factors. Ask the user first, then ``remove_factor(…, allow_downgrade=True)``."""

    code = "last_strong_factor"


class FactorNotVerified(Conflict):
    """409: a challenge named a factor that is not verified (any more): disabled, replaced or
    still enrolling. Challenge one ``list_factors`` shows ``verified``, or name none."""

    code = "factor_not_verified"


class PasskeysNotSetUp(Conflict):
    """409: a passkey enrolment before the tenant's login site is its relying party. Set it once:
    ``twostep tenants passkeys TENANT --rp-id DOMAIN --origin https://…``."""

    code = "passkeys_not_set_up"


class PayloadTooLarge(ApiError):
    """413: a body over the API's ``TWOSTEP_MAX_BODY_BYTES`` (16 KiB by default), refused before
    it is read. Send a smaller one."""

    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    """415: a body that is not JSON, or none where one is required. This client sends JSON:
    something between it and the API changed the request."""

    code = "unsupported_media_type"


class _Retryable(ApiError):
    """An answer that says when to try again (``Retry-After``, in seconds)."""

    def __init__(self, response: httpx.Response, body: dict[str, Any]) -> None:
        super().__init__(response, body)
        self.retry_after = retry_after_seconds(response)


class RateLimited(_Retryable):
    """429: a limit refused the request, which sent nothing. ``.limit`` names it
    (``per_destination``, ``resend_cooldown``, …), ``.detail`` the setting that sets it (e.g.
    ``TWOSTEP_LIMIT_PER_DESTINATION``), ``.retry_after`` when it lets the next one through:
    tell the user to wait that long."""

    code = "rate_limited"

    def __init__(self, response: httpx.Response, body: dict[str, Any]) -> None:
        super().__init__(response, body)
        limit = body.get("limit")
        self.limit = None if limit is None else str(limit)


class MaxAttemptsReached(RateLimited):
    """429: every check the verification allows has been used: start a new verification (a new
    challenge) rather than wait; ``retry_after`` is only when this one would have expired."""

    code = "max_attempts_reached"


class UserLocked(RateLimited):
    """429: too many wrong codes; the user, the number or the client address (``.limit``:
    ``user_lockout``, …) is locked out for ``.retry_after`` seconds. A hard lock (``.detail``
    says so) lasts until an admin key's ``release_lockout``."""

    code = "user_locked"


class ServiceUnavailable(_Retryable):
    """503: the API's database or Redis is unreachable (limits fail closed); nothing was done.
    Raised once the client's retries are spent: try again after ``.retry_after`` seconds."""

    code = "service_unavailable"


class ServerError(ApiError):
    """500 ``internal_error`` (a bug in twostep) or another 5xx, e.g. a proxy's 502. Report it
    with ``.request_id``: the API's log lines for the request carry it."""

    code = "internal_error"


_BY_CODE: dict[str, type[ApiError]] = {
    error.code: error
    for error in (
        InvalidRequest,
        InvalidPhoneNumber,
        InvalidEmailAddress,
        IdempotencyKeyReused,
        Unauthorized,
        Forbidden,
        InsufficientScope,
        CountryNotAllowed,
        NotFound,
        Conflict,
        VerificationNotPending,
        NoVerifiedFactor,
        ChannelMismatch,
        LastStrongFactor,
        FactorNotVerified,
        PasskeysNotSetUp,
        PayloadTooLarge,
        UnsupportedMediaType,
        RateLimited,
        MaxAttemptsReached,
        UserLocked,
        ServiceUnavailable,
    )
}
_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidRequest,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_for(response: httpx.Response) -> ApiError:
    """The exception for an answer that is not a success: by its problem ``code``, else by its
    status (a proxy's bare 502 has no problem body)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    error = _BY_CODE.get(str(body.get("code")))
    if error is None:
        fallback = ServerError if response.status_code >= 500 else ApiError
        error = _BY_STATUS.get(response.status_code, fallback)
    return error(response, body)


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # absent, or an HTTP date (the API sends seconds)
