"""Passkeys through Twilio Verify Passkeys: the ``PasskeyFactors`` port's half of the Twilio
adapter (``shared.verify.twilio``), which mixes it in. Twilio verifies WebAuthn; an attestation
or assertion it refuses (60311, 60324) is a rejected check, not a provider failure."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

from twilio.rest.verify.v2.service.approve_challenge import ApproveChallengeList
from twilio.rest.verify.v2.service.new_challenge import NewChallengeList
from twilio.rest.verify.v2.service.new_factor import NewFactorList
from twilio.rest.verify.v2.service.new_verify_factor import NewVerifyFactorList

from shared.errors import ProviderPermanentError
from shared.verify.port import PasskeyOptions, ProviderCheck, RelyingParty

Observed = Callable[[str, str], AbstractContextManager[None]]

# "Factor verification failed" and "Challenge verification failed": the browser's answer did
# not verify (another origin, challenge or key, a counter gone back). The user's to try again.
_REFUSED = frozenset({60311, 60324})


class TwilioPasskeyFactors(ABC):
    _observed: Observed

    @abstractmethod
    def _service(self, sid: str) -> Any:
        """The SDK's context of the Verify service ``sid``."""

    async def configure_passkeys(self, service: str, relying_party: RelyingParty) -> None:
        with self._observed("configure_passkeys", "configure passkeys"):
            await self._service(service).update_async(
                passkeys_relying_party_id=relying_party.id,
                passkeys_relying_party_name=relying_party.name,
                passkeys_relying_party_origins=",".join(relying_party.origins),
                passkeys_authenticator_attachment="any",
                passkeys_discoverable_credentials="preferred",
                passkeys_user_verification="required",
            )

    async def create_passkey_factor(
        self, service: str, identity: str, friendly_name: str
    ) -> PasskeyOptions:
        request = NewFactorList.CreateNewPasskeysFactorRequest(
            {"friendly_name": friendly_name, "identity": identity}
        )
        with self._observed("create_passkey", "create passkey factor"):
            instance = await self._service(service).new_factors.create_async(request)
        return PasskeyOptions(str(instance.sid), dict(instance.options["publicKey"]))

    async def verify_passkey_factor(
        self, service: str, factor_sid: str, credential: dict[str, Any]
    ) -> ProviderCheck:
        request = NewVerifyFactorList.VerifyPasskeysFactorRequest(credential)
        answer = self._service(service).new_verify_factors.update_async(request)
        return await self._decided(
            answer, ("verify_passkey", "verify passkey factor"), (factor_sid, "verified")
        )

    async def create_passkey_challenge(
        self, service: str, identity: str, factor_sid: str
    ) -> PasskeyOptions:
        request = NewChallengeList.CreatePasskeysChallengeRequest(
            {"identity": identity, "factor_sid": factor_sid}
        )
        with self._observed("passkey_challenge", "create passkey challenge"):
            instance = await self._service(service).new_challenge().create_async(request)
        return PasskeyOptions(str(instance.sid), dict(instance.options["publicKey"]))

    async def approve_passkey_challenge(
        self, service: str, challenge_sid: str, assertion: dict[str, Any]
    ) -> ProviderCheck:
        request = ApproveChallengeList.ApprovePasskeysChallengeRequest(assertion)
        answer = self._service(service).approve_challenge.update_async(request)
        return await self._decided(
            answer, ("approve_passkey", "approve passkey challenge"), (challenge_sid, "approved")
        )

    async def _decided(
        self, answer: Awaitable[Any], observed: tuple[str, str], wanted: tuple[str, str]
    ) -> ProviderCheck:
        """Approved when Twilio's answer is the resource asked about (``wanted``: its SID) in
        the state asked for; a refusal of the browser's answer (60311, 60324) is not."""
        try:
            with self._observed(*observed):
                instance = await answer
        except ProviderPermanentError as exc:
            if exc.provider_code in _REFUSED:
                return ProviderCheck(approved=False)
            raise
        return ProviderCheck(approved=(str(instance.sid), str(instance.status)) == wanted)
