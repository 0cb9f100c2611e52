"""Verify Passkeys' routes (``sandbox.passkeys`` holds the rules), in Twilio's paths and
answers. Unlike the rest of Verify, they take JSON bodies."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from sandbox.common import TwilioError
from sandbox.factor_routes import Answer, Handler, Params, _Sandbox
from sandbox.passkeys import Passkeys, challenge_json, factor_json


class PasskeyRoutes:
    def __init__(self, sandbox: _Sandbox, passkeys: Passkeys) -> None:
        self._sandbox = sandbox
        self._passkeys = passkeys

    def routes(self) -> list[tuple[str, str, str, Handler]]:
        passkeys = "/v2/Services/{service_sid}/Passkeys"
        return [
            (f"{passkeys}/Factors", "POST", "CreateNewFactorPasskey", self.create_factor),
            (f"{passkeys}/VerifyFactor", "POST", "UpdatePasskeysFactor", self.verify_factor),
            (f"{passkeys}/Challenges", "POST", "CreateChallengePasskeys", self.create_challenge),
            (
                f"{passkeys}/ApproveChallenge",
                "POST",
                "UpdateChallengePasskeys",
                self.approve_challenge,
            ),
        ]

    async def create_factor(self, request: Request, params: Params) -> Answer:
        service = self._sandbox._service(request, params)
        factor, options = self._passkeys.create_factor(service, await _json(request))
        return 201, factor_json(factor, _base(request), options)

    async def verify_factor(self, request: Request, params: Params) -> Answer:
        service = self._sandbox._service(request, params)
        factor = self._passkeys.verify_factor(service, await _json(request))
        return 200, factor_json(factor, _base(request))

    async def create_challenge(self, request: Request, params: Params) -> Answer:
        service = self._sandbox._service(request, params)
        challenge = self._passkeys.create_challenge(service, await _json(request))
        return 201, challenge_json(challenge, _base(request))

    async def approve_challenge(self, request: Request, params: Params) -> Answer:
        service = self._sandbox._service(request, params)
        challenge = self._passkeys.approve(service, await _json(request))
        return 200, challenge_json(challenge, _base(request))


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise TwilioError(400, 20001, "The request body is not JSON") from exc
    if not isinstance(body, dict):
        raise TwilioError(400, 20001, "The request body is not a JSON object")
    return body


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")
