"""Verify Passkeys' routes (``sandbox.passkeys`` holds the rules), in Twilio's paths and
answers (shaped here). Unlike the rest of Verify, they take JSON bodies."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from sandbox.common import TwilioError, format_time
from sandbox.factor_routes import Answer, Handler, Params, _Sandbox
from sandbox.passkeys import PasskeyChallenge, PasskeyFactor, Passkeys


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


def factor_json(factor: PasskeyFactor, base_url: str, options: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "sid": factor.sid,
        "account_sid": factor.account_sid,
        "service_sid": factor.service_sid,
        "entity_sid": factor.entity_sid,
        "identity": factor.identity,
        "date_created": format_time(factor.created_at),
        "date_updated": format_time(factor.updated_at),
        "friendly_name": factor.friendly_name,
        "status": factor.status,
        "factor_type": "passkeys",
        "config": {"relying_party": factor.relying_party.to_json(), **factor.criteria},
        "metadata": None,
        "url": f"{base_url}/v2/Services/{factor.service_sid}/Entities/{factor.identity}"
        f"/Factors/{factor.sid}",
    }
    if options is not None:  # only the creation's answer
        answer["binding"] = None
        answer["options"] = {"publicKey": json.loads(options)}
    return answer


def challenge_json(challenge: PasskeyChallenge, base_url: str) -> dict[str, Any]:
    url = f"{base_url}/v2/Services/{challenge.service.sid}/Entities/{challenge.identity}"
    named = challenge.factor or (challenge.allowed[0] if len(challenge.allowed) == 1 else None)
    return {
        "sid": challenge.sid,
        "account_sid": challenge.service.account_sid,
        "service_sid": challenge.service.sid,
        "entity_sid": challenge.entity_sid,
        "identity": challenge.identity,
        "factor_sid": named.sid if named else None,
        "date_created": format_time(challenge.created_at),
        "date_updated": format_time(challenge.responded_at or challenge.created_at),
        "date_responded": format_time(challenge.responded_at) if challenge.responded_at else None,
        "expiration_date": format_time(challenge.expires_at),
        "status": challenge.status,
        "responded_reason": "none",
        "details": None,
        "hidden_details": None,
        "metadata": None,
        "factor_type": "passkeys",
        "url": f"{url}/Challenges/{challenge.sid}",
        "links": {"notifications": f"{url}/Challenges/{challenge.sid}/Notifications"},
        "options": {"publicKey": json.loads(challenge.options)},
    }


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
