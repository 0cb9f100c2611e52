"""Logins with a passkey on both sides: the browser's part played by a software authenticator
(``sandbox.authenticator``), Twilio's by the sandbox, which verifies every signature.

Each simulated user registers a passkey before the storm, untimed and unmetered. A login is
then, for twostep, a challenge (``queued`` until its worker has Twilio's request options made),
the options read by a long-poll, and the assertion handed over as a check its worker takes to
Twilio; for the inline baseline, two requests that each call Twilio inside them (the options,
then the approval). Both sides answer to the same relying party, set on the sandbox's service
after each reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.storm import LoginFailed, Recorder, poll_decided
from benchmarks.totp import InlineApp, TwostepApp, enrol_all, session
from sandbox.authenticator import Authenticator

RP_ID, ORIGIN = "localhost", "http://localhost:8000"
_SANDBOX_AUTH = {"Authorization": aiohttp.encode_basic_auth("AC" + "0" * 32, "sandbox")}
_RELYING_PARTY = {
    "Passkeys.RelyingParty.Id": RP_ID,
    "Passkeys.RelyingParty.Name": "bench",
    "Passkeys.RelyingParty.Origins": ORIGIN,
    "Passkeys.AuthenticatorAttachment": "any",
    "Passkeys.DiscoverableCredentials": "preferred",
    "Passkeys.UserVerification": "required",
}


async def set_relying_party(http: aiohttp.ClientSession, sandbox_url: str, service: str) -> None:
    """What ``twostep tenants passkeys`` sets on a Verify service, set again on the sandbox's
    (a reset makes its default service afresh)."""
    url = f"{sandbox_url}/v2/Services/{service}"
    async with http.post(url, data=_RELYING_PARTY, headers=_SANDBOX_AUTH) as response:
        response.raise_for_status()


@dataclass
class TwostepPasskeys(TwostepApp):
    """twostep with passkeys: ``POST …/factors {"type": "passkey"}``, its options long-polled,
    the attestation as a check; a login is a challenge, its options, the assertion."""

    service_sid: str = "VA" + "0" * 32
    devices: dict[int, Authenticator] = field(default_factory=dict)

    async def prepare(self, logins: int) -> None:
        async with session() as http:
            await set_relying_party(http, self.sandbox_url, self.service_sid)
            record = Recorder()

            async def enrol(number: int) -> None:
                path = f"/v1/users/{self._user(number)}/factors"
                made = await self._call(http, record, "enrol", path, {"type": "passkey"})
                options = await self._options(http, record, made["verification"]["id"])
                device = Authenticator()
                credential = device.register(options["creation_options"], ORIGIN)
                await self._checked(http, record, options["id"], {"credential": credential})
                self.devices[number] = device

            await enrol_all("twostep", logins, enrol, "passkeys")

    async def login(self, http: aiohttp.ClientSession, number: int, record: Recorder) -> None:
        path = f"/v1/users/{self._user(number)}/challenges"
        challenge = await self._call(http, record, "create", path, {})
        started = await self._options(http, record, challenge["id"])
        assertion = self.devices[number].sign_in(started["request_options"], ORIGIN)
        await self._checked(http, record, started["id"], {"credential": assertion})

    async def _options(
        self, http: aiohttp.ClientSession, record: Recorder, verification_id: str
    ) -> dict[str, Any]:
        """The verification once its worker has the options for the browser."""
        url = f"{self.api_url}/v1/verifications/{verification_id}"
        auth = {"Authorization": f"Bearer {self.api_key}"}
        verification = await poll_decided(http, record, "read_verification", url, auth, early=False)
        if verification["status"] != "pending":
            error = (verification.get("error") or {}).get("code")
            raise LoginFailed(f"verification {verification['status']} {error or ''}".strip())
        return verification


@dataclass
class InlinePasskeys(InlineApp):
    """The inline baseline with passkeys: Twilio Verify Passkeys called inside the requests,
    one call each."""

    service_sid: str = "VA" + "0" * 32
    devices: dict[int, tuple[str, Authenticator]] = field(default_factory=dict)

    async def prepare(self, logins: int) -> None:
        async with session() as http:
            await set_relying_party(http, self.sandbox_url, self.service_sid)
            record = Recorder()

            async def enrol(number: int) -> None:
                entity = f"bench-{self.run_id}-{number:06d}"
                made = await self._post(http, record, "/factors/passkey", {"entity": entity})
                device = Authenticator()
                credential = device.register(made["options"], ORIGIN)
                verified = await self._post(
                    http, record, "/factors/passkey/verify", {"credential": credential}
                )
                if verified.get("status") != "verified":
                    raise LoginFailed(f"factor {verified.get('status')}")
                self.devices[number] = (entity, device)

            await enrol_all("inline", logins, enrol, "passkeys")

    async def login(self, http: aiohttp.ClientSession, number: int, record: Recorder) -> None:
        entity, device = self.devices[number]
        started = await self._post(http, record, "/login/passkey/start", {"entity": entity})
        assertion = device.sign_in(started["options"], ORIGIN)
        body = {"challenge_sid": started["challenge_sid"], "credential": assertion}
        approved = await self._post(http, record, "/login/passkey/finish", body)
        if approved.get("status") != "approved":
            raise LoginFailed(f"challenge {approved.get('status')}")
