"""Authenticator apps (TOTP) through Twilio Verify's Factors API: the ``TotpFactors`` port's
half of the Twilio adapter (``shared.verify.twilio``), which mixes it in."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from shared.verify.port import ProviderCheck

Observed = Callable[[str, str], AbstractContextManager[None]]


class TwilioTotpFactors(ABC):
    _observed: Observed

    @abstractmethod
    def _service(self, sid: str) -> Any:
        """The SDK's context of the Verify service ``sid``."""

    async def create_totp_factor(
        self, service: str, identity: str, friendly_name: str, secret: str
    ) -> str:
        with self._observed("create_factor", "create factor"):
            instance = await (
                self._service(service)
                .entities(identity)
                .new_factors.create_async(
                    friendly_name=friendly_name, factor_type="totp", binding_secret=secret
                )
            )
        return str(instance.sid)

    async def verify_totp_factor(
        self, service: str, identity: str, factor_sid: str, code: str
    ) -> ProviderCheck:
        with self._observed("verify_factor", "verify factor"):
            instance = await (
                self._service(service)
                .entities(identity)
                .factors(factor_sid)
                .update_async(auth_payload=code)
            )
        return ProviderCheck(approved=str(instance.status) == "verified")

    async def check_totp(
        self, service: str, identity: str, factor_sid: str, code: str
    ) -> ProviderCheck:
        with self._observed("challenge", "create challenge"):
            instance = await (
                self._service(service)
                .entities(identity)
                .challenges.create_async(factor_sid=factor_sid, auth_payload=code)
            )
        return ProviderCheck(approved=str(instance.status) == "approved")
