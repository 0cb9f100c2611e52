"""The client, written once, for asyncio in ``_async/client.py``; ``_sync/client.py`` is
generated from it by ``clients/python/generate_sync.py`` (unasync): one surface, two clients."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import fields, replace
from time import monotonic
from types import TracebackType
from typing import TypeVar

import httpx

from twostep_client._calls import (
    MAX_WAIT_SECONDS,
    POLL_FLOOR_SECONDS,
    Call,
    RetryPolicy,
    new_idempotency_key,
    nothing,
    segment,
    without_none,
)
from twostep_client._errors import TwostepConnectionError
from twostep_client._models import (
    Challenge,
    Channel,
    Check,
    Enrollment,
    EventPage,
    Factors,
    Json,
    Limits,
    Redemption,
    Verification,
    recovery_codes_from_json,
)
from twostep_client._version import USER_AGENT

T = TypeVar("T")


class AsyncTwostepClient:
    """twostep's HTTP API for a login server.

    ``timeout`` bounds each request (a long-poll gets its wait on top); POSTs that create
    something carry an ``Idempotency-Key`` (given, or made per call), so they, the reads and the
    idempotent writes are tried again after a connection error or a ``502``/``503``/``504``, up
    to ``max_retries`` times. ``max_connections`` bounds the connections, long-polls included.
    Errors are the exceptions in ``twostep_client.errors``. The key needs the scopes the routes
    do: ``verify`` for verifications and checks; ``users`` for factors, challenges and
    redemptions; ``users:manage`` to remove a factor, make recovery codes and read a user's
    events (a login site's key: ``verify,users,users:manage``); ``admin`` to lift lockouts.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_retries: int = 2,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._retry = RetryPolicy(max_retries=max_retries)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
        )

    async def __aenter__(self) -> AsyncTwostepClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- verifications

    async def start_verification(
        self,
        to: str,
        *,
        channel: Channel = "sms",
        locale: str | None = None,
        user_id: str | None = None,
        client_ip: str | None = None,
        idempotency_key: str | None = None,
        wait: float = 0.0,
    ) -> Verification:
        """Ask for a code to ``to`` (E.164). Answers at once, ``queued`` (a worker sends it), or
        with ``wait``, once it is sent (``pending``) or over, at most ``wait`` seconds (at most
        30): one call instead of this and ``wait_for_verification``."""
        body = without_none(
            to=to, channel=channel, locale=locale, user_id=user_id, client_ip=client_ip
        )
        return await self._send(
            Call(
                "POST",
                "/v1/verifications",
                Verification.from_json,
                body=body,
                idempotency_key=idempotency_key or new_idempotency_key(),
                wait=min(max(0.0, wait), MAX_WAIT_SECONDS),
            )
        )

    async def get_verification(self, verification_id: str) -> Verification:
        return await self._send(
            Call("GET", f"/v1/verifications/{segment(verification_id)}", Verification.from_json)
        )

    async def wait_for_verification(
        self, verification_id: str, *, timeout: float = MAX_WAIT_SECONDS
    ) -> Verification:
        """The verification once it is sent (``pending``) or over, or as it is after
        ``timeout`` seconds. Long-polls: no request per second, one per 30 s at most."""
        return await self._held(
            f"/v1/verifications/{segment(verification_id)}",
            Verification.from_json,
            lambda verification: not verification.in_flight,
            timeout,
        )

    async def resend(self, verification_id: str, *, channel: Channel | None = None) -> Verification:
        """Send the same code again, on the same channel or another (``"call"``). Refused
        within the cooldown after a send (``RateLimited``, ``limit == "resend_cooldown"``)."""
        return await self._send(
            Call(
                "POST",
                f"/v1/verifications/{segment(verification_id)}/resend",
                Verification.from_json,
                body=without_none(channel=channel),
                repeatable=False,  # the API does not key re-sends: a repeat may send again
            )
        )

    async def cancel(self, verification_id: str) -> Verification:
        """End a verification; canceling a canceled one changes nothing."""
        return await self._send(
            Call(
                "POST",
                f"/v1/verifications/{segment(verification_id)}/cancel",
                Verification.from_json,
            )
        )

    # --- checks

    async def check(
        self,
        verification_id: str,
        code: str,
        *,
        wait: float = 10.0,
        idempotency_key: str | None = None,
    ) -> Check:
        """Hand over the code the user typed: the check as soon as it is decided (``approved``,
        ``rejected``, …), or still ``queued`` (``not check.decided``: say "try again", not
        "wrong code") if that takes more than ``wait`` seconds; ``wait=0`` answers at once."""
        return await self._check(verification_id, {"code": code}, wait, idempotency_key)

    async def check_passkey(
        self,
        verification_id: str,
        credential: Json,
        *,
        wait: float = 10.0,
        idempotency_key: str | None = None,
    ) -> Check:
        """Hand over the browser's answer to a passkey's options (its ``PublicKeyCredential``
        as JSON, e.g. ``credential.toJSON()``): checked like a code, ``approved`` only when
        Twilio verified its signature, origin and challenge."""
        return await self._check(verification_id, {"credential": credential}, wait, idempotency_key)

    async def _check(
        self, verification_id: str, body: Json, wait: float, idempotency_key: str | None
    ) -> Check:
        started = monotonic()
        check = await self._send(
            Call(
                "POST",
                f"/v1/verifications/{segment(verification_id)}/checks",
                Check.from_json,
                body=body,
                idempotency_key=idempotency_key or new_idempotency_key(),
                wait=min(max(0.0, wait), MAX_WAIT_SECONDS),
            )
        )
        remaining = wait - (monotonic() - started)
        if check.decided or remaining <= 0:
            return check
        return await self.get_check(verification_id, check.id, wait=remaining)

    async def get_check(self, verification_id: str, check_id: str, *, wait: float = 0.0) -> Check:
        """The check; with ``wait``, once it is decided, at most ``wait`` seconds."""
        return await self._held(
            f"/v1/verifications/{segment(verification_id)}/checks/{segment(check_id)}",
            Check.from_json,
            lambda check: check.decided,
            wait,
        )

    # --- two-step authentication for a user

    async def enroll_factor(
        self,
        user_id: str,
        phone: str | None = None,
        *,
        email: str | None = None,
        channel: Channel | None = None,
        replace_existing: bool = True,
        client_ip: str | None = None,
        idempotency_key: str | None = None,
    ) -> Enrollment:
        """Start enrolling ``phone`` (codes by ``"sms"``, ``"call"`` or ``"whatsapp"``) or
        ``email``: it is sent a code; approving a check on ``enrollment.verification`` turns
        two-step on. A typo only fails the check."""
        if (phone is None) == (email is None):
            raise ValueError("enroll_factor needs a phone or an email, not both")
        body = without_none(
            phone=phone,
            email=email,
            channel=channel,
            replace_existing=replace_existing,
            client_ip=client_ip,
        )
        return await self._send(
            Call(
                "POST",
                f"/v1/users/{segment(user_id)}/factors",
                Enrollment.from_json,
                body=body,
                idempotency_key=idempotency_key or new_idempotency_key(),
            )
        )

    async def enroll_app(
        self,
        user_id: str,
        *,
        label: str | None = None,
        replace_existing: bool = True,
        client_ip: str | None = None,
    ) -> Enrollment:
        """Start enrolling an authenticator app (TOTP): show ``enrollment.otpauth_uri`` as a QR
        code, once (twostep keeps no copy); the app's first code, checked against
        ``enrollment.verification``, verifies it. Not repeated on a lost answer: a repeat would
        enrol another app."""
        body = without_none(
            type="totp", label=label, replace_existing=replace_existing, client_ip=client_ip
        )
        return await self._send(
            Call(
                "POST",
                f"/v1/users/{segment(user_id)}/factors",
                Enrollment.from_json,
                body=body,
                repeatable=False,
            )
        )

    async def enroll_passkey(
        self,
        user_id: str,
        *,
        label: str | None = None,
        replace_existing: bool = False,
        client_ip: str | None = None,
        wait: float = 10.0,
        idempotency_key: str | None = None,
    ) -> Enrollment:
        """Start enrolling a passkey: hand ``enrollment.verification.creation_options`` to the
        browser (``navigator.credentials.create({publicKey})``), then its credential to
        ``check_passkey``. A worker has the options made at Twilio: this waits up to ``wait``
        seconds for them (``None`` if it took longer: ``wait_for_verification`` again).
        ``PasskeysNotSetUp`` until the tenant's login site is the relying party."""
        body = without_none(
            type="passkey", label=label, replace_existing=replace_existing, client_ip=client_ip
        )
        enrollment = await self._send(
            Call(
                "POST",
                f"/v1/users/{segment(user_id)}/factors",
                Enrollment.from_json,
                body=body,
                idempotency_key=idempotency_key or new_idempotency_key(),
            )
        )
        if not enrollment.verification.in_flight or wait <= 0:
            return enrollment
        ready = await self.wait_for_verification(enrollment.verification.id, timeout=wait)
        return replace(enrollment, verification=ready)

    async def list_factors(self, user_id: str) -> Factors:
        return await self._send(
            Call("GET", f"/v1/users/{segment(user_id)}/factors", Factors.from_json)
        )

    async def remove_factor(
        self, user_id: str, factor_id: str, *, allow_downgrade: bool = False
    ) -> None:
        """Disable a factor; with no verified factor left, two-step is off. The user's last
        strong factor (a passkey or an authenticator app) goes only with ``allow_downgrade``
        (``LastStrongFactor`` without): ask the user first."""
        await self._send(
            Call(
                "DELETE",
                f"/v1/users/{segment(user_id)}/factors/{segment(factor_id)}",
                nothing,
                params={"allow_downgrade": "true"} if allow_downgrade else {},
            )
        )

    async def start_challenge(
        self,
        user_id: str,
        *,
        factor_id: str | None = None,
        channel: Channel | None = None,
        client_ip: str | None = None,
        idempotency_key: str | None = None,
        wait: float = 10.0,
    ) -> Challenge:
        """Login: send a code to one of the user's verified factors — ``factor_id``, else the
        preferred (a passkey or an authenticator app first, then the latest verified) — on its
        channel or ``channel`` (``NoVerifiedFactor`` when two-step is off); ``alternatives``
        are the others to offer. Let the user in only once a check on it is approved. A
        passkey's ``request_options`` are made by a worker: this waits up to ``wait`` seconds
        for them."""
        challenge = await self._send(
            Call(
                "POST",
                f"/v1/users/{segment(user_id)}/challenges",
                Challenge.from_json,
                body=without_none(factor_id=factor_id, channel=channel, client_ip=client_ip),
                idempotency_key=idempotency_key or new_idempotency_key(),
            )
        )
        if challenge.channel != "passkey" or not challenge.in_flight or wait <= 0:
            return challenge
        ready = await self.wait_for_verification(challenge.id, timeout=wait)
        return replace(challenge, **{f.name: getattr(ready, f.name) for f in fields(Verification)})

    async def generate_recovery_codes(self, user_id: str) -> tuple[str, ...]:
        """Ten new one-time codes, replacing the user's earlier set. Show them once."""
        return await self._send(
            Call(
                "POST",
                f"/v1/users/{segment(user_id)}/recovery-codes",
                recovery_codes_from_json,
                repeatable=False,  # a repeat would replace the set the user never saw
            )
        )

    async def redeem_recovery_code(
        self, user_id: str, code: str, *, client_ip: str | None = None
    ) -> Redemption:
        """Spend a recovery code instead of a phone code; wrong ones count towards the
        lockout."""
        return await self._send(
            Call(
                "POST",
                f"/v1/users/{segment(user_id)}/recovery-codes/redeem",
                Redemption.from_json,
                body=without_none(code=code, client_ip=client_ip),
                repeatable=False,  # a repeat of a spent code is "rejected"
            )
        )

    async def events(
        self, user_id: str, *, before: int | None = None, limit: int = 50
    ) -> EventPage:
        """The user's security trail, newest first."""
        return await self._send(
            Call(
                "GET",
                f"/v1/users/{segment(user_id)}/events",
                EventPage.from_json,
                params=without_none(before=before, limit=limit),
            )
        )

    async def release_lockout(
        self,
        *,
        user_id: str | None = None,
        phone: str | None = None,
        client_ip: str | None = None,
        email: str | None = None,
    ) -> None:
        """Lift a lockout, hard ones included (an ``admin`` key's decision). Wrong codes lock
        out the user a verification was started for; a verification started without a user
        locks its number and the client address that asked for it."""
        if user_id is None and phone is None and email is None and client_ip is None:
            raise ValueError("release_lockout needs a user_id, a phone, an email or a client_ip")
        await self._send(
            Call(
                "POST",
                "/v1/lockouts/release",
                nothing,
                body=without_none(user_id=user_id, phone=phone, email=email, client_ip=client_ip),
            )
        )

    async def limits(self) -> Limits:
        """The limits in force: the re-send cooldown, checks per verification, the lockout."""
        return await self._send(Call("GET", "/v1/limits", Limits.from_json))

    # --- the machinery

    async def _held(
        self, path: str, read: Callable[[Json], T], done: Callable[[T], bool], seconds: float
    ) -> T:
        """GET ``path`` with ``?wait=`` until ``done(result)`` or ``seconds`` pass."""
        deadline = monotonic() + seconds
        while True:
            hold = min(max(0.0, deadline - monotonic()), MAX_WAIT_SECONDS)
            asked = monotonic()
            result = await self._send(Call("GET", path, read, wait=hold))
            if done(result) or monotonic() >= deadline:
                return result
            if monotonic() - asked < POLL_FLOOR_SECONDS:
                await asyncio.sleep(min(POLL_FLOOR_SECONDS, max(0.0, deadline - monotonic())))

    async def _send(self, call: Call[T]) -> T:
        started, attempt = monotonic(), 0
        while True:
            # A retry of a long-poll waits only for what is left of its wait.
            request = call.after(monotonic() - started).request(self._http, self._timeout)
            try:
                response = await self._http.send(request)
            except httpx.TransportError as error:
                delay = self._retry.after_error(call, error, attempt)
                if delay is None:
                    raise TwostepConnectionError(
                        f"{call.method} {call.path}: {type(error).__name__}: {error}"
                    ) from error
            else:
                delay = self._retry.after_answer(call, response, attempt)
                if delay is None:
                    return call.result(response)
            attempt += 1
            await asyncio.sleep(delay)
